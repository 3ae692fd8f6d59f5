"""Faust must not commit past a record that was never acknowledged (streams/faust_private.py)."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from intervaltree import IntervalTree

from streams import faust_private

TP = ("orders", 0)


def _consumer(committed: int | None, acked: list[int]) -> Any:
    return SimpleNamespace(
        _acked=defaultdict(list, {TP: list(acked)}),
        _acked_index=defaultdict(set, {TP: set(acked)}),
        _gap=defaultdict(IntervalTree),
        _committed_offset=defaultdict(lambda: None, {TP: committed}),
    )


UPSTREAM_NEW_OFFSET = faust_private.upstream(Consumer, "_new_offset")


def test_upstream_commits_past_a_single_missing_record() -> None:
    """The upstream defect (fails if upstream fixes it: drop the fix). 31 is the next offset
    to read; 31 was lost, 32 and 33 were processed: upstream commits 34, so 31 is gone."""
    assert UPSTREAM_NEW_OFFSET(_consumer(31, [32, 33]), TP) == 34


@pytest.mark.parametrize(("committed", "acked"), [(31, [32, 33]), (31, [35, 36]), (0, [1, 2])])
def test_a_hole_at_the_committed_offset_holds_the_commit(committed: int, acked: list[int]) -> None:
    consumer = _consumer(committed, acked)
    assert faust_private._new_offset_stopping_at_holes(consumer, TP) is None
    assert consumer._acked[TP] == acked  # kept: committed once the hole is read again


@pytest.mark.parametrize(
    ("committed", "acked", "expected", "left"),
    [(31, [31, 32, 33], 34, []), (31, [31, 32, 40], 33, [40]), (None, [5, 6], 7, []), (0, [0], 1, [])],
)
def test_acknowledged_runs_from_the_committed_offset_are_committed(
    committed: int | None, acked: list[int], expected: int, left: list[int]
) -> None:
    consumer = _consumer(committed, acked)
    assert faust_private._new_offset_stopping_at_holes(consumer, TP) == expected
    assert consumer._acked[TP] == left


def test_nothing_acknowledged_commits_nothing() -> None:
    assert faust_private._new_offset_stopping_at_holes(_consumer(3, []), TP) is None
