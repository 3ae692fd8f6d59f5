"""Deliberate crashes, for tests only: ``INVENTORY_KILL_AT=<point>@<n>`` SIGKILLs this process
the n-th time it reaches ``<point>`` (each counted apart; several comma-separated, e.g.
``commit:stock@3,flushed@9``); unset, a point costs one test. streams/checkpoint.py calls them:
``commit:orders``/``commit:stock`` after a transaction of that table that sends an envelope is
committed, before any of its records is handed to the sink (the sink is flushed first, so the
crash leaves envelopes only the outbox can send); ``flushed`` after Faust's flush and before it
commits the offsets, counted only when both tables applied an envelope since the previous flush.
The kill prints one line (``INVENTORY_KILL_AT: killed at <point> #<n>: ...``) to stderr first.
Read once at import, straight from the environment: a test-only switch no deployment sets.
Imports nothing of Faust. Why: docs/decisions.md ("Crash points ...", "The flush crash point").
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

ENV = "INVENTORY_KILL_AT"
POINTS = frozenset({"commit:orders", "commit:stock", "flushed"})
TABLES = frozenset({"orders", "stock"})


def parse(spec: str) -> dict[str, int]:
    """``<point>@<n>[,<point>@<n>...]`` -> {point: n}; an unknown point or a bad count raises."""
    armed: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        point, at, count = part.rpartition("@")
        if not at or point not in POINTS or not count.isdigit() or int(count) < 1:
            raise ValueError(f"{ENV}={spec!r}: expected <point>@<n> (n >= 1), point one of {sorted(POINTS)}")
        armed[point] = int(count)
    return armed


_armed: dict[str, int] = parse(os.environ.get(ENV, ""))
_reached: dict[str, int] = {}
_applied: set[str] = set()  # tables that committed an envelope's application since the last flush


def reach(point: str, detail: str = "", settle: Callable[[], object] | None = None) -> None:
    """Count one arrival at ``point``; at its armed count, ``settle()`` then SIGKILL."""
    count = _reached.get(point, 0) + 1
    _reached[point] = count
    if count != _armed.get(point):
        return
    if settle is not None:
        settle()
    sys.stderr.write(f"{ENV}: killed at {point} #{count}" + (f": {detail}" if detail else "") + "\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def committed(table: str, records: Sequence[Any], sink: Any, applied_envelope: bool = False) -> None:
    """A transaction of ``table`` committed, its ``records`` (``OutRecord``) not yet sent: the
    point ``commit:<table>`` when one of them is an envelope (a record with a partition of its
    own: streams/envelopes.py). Its detail names each record: topic[partition] and the first
    16 hex digits of the value's SHA-256, so a test can find them on the topics later.
    ``applied_envelope``: the transaction applied an envelope (what ``flushed`` waits for)."""
    if not _armed:
        return
    if applied_envelope:
        _applied.add(table)
    if any(r.partition >= 0 for r in records):
        unsent = " ".join(f"{r.topic}[{r.partition}]={hashlib.sha256(r.value).hexdigest()[:16]}" for r in records)
        reach(f"commit:{table}", unsent, settle=lambda: sink.flush_blocking(30.0))


def flushed() -> None:
    """Every record handed to the sink is acknowledged; no input offset of this commit is."""
    if _armed:
        if _applied >= TABLES:
            reach("flushed")
        _applied.clear()
