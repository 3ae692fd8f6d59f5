"""Receipt retention on event time: what a partition remembers of the messages it applied, and for
how long. Receipts (per message id, stock document, and release read before its reservation)
and settled inbound documents (closed, or a credit) are indexed under the UTC hour of their
event time and pruned once the partition's horizon has passed that hour.

- Clock (``PartitionClock``, one per partition): the hour of the newest ``occurredAt`` it kept a
  receipt of, expiry ticks excluded; no wall clock. Horizon: that hour less
  ``CorePolicy.receipt_retention_days``; it never moves back.
- A message with no receipt that occurred before the horizon is refused (ANOMALY, no change): it
  may have been applied already. An expiry tick that old is applied (judged on its order), no receipt.
- Each message applied prunes at most ``CorePolicy.prune_batch`` entries, in its own outcome
  (same transaction, redone after a crash). Why: docs/decisions.md ("Receipts kept by event time").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple, Protocol

from tables.policy import CorePolicy
from tables.state import PartitionClock

STOCK = "stock"  # the partition families: each has its own clock and index
ORDERS = "orders"

RECEIPT = "r"  # (RECEIPT, message id): a receipt, forgotten when its hour is passed
DOCUMENT = "e"  # (DOCUMENT, sku, warehouse code, document no): a settled inbound document

Ref = tuple[str, ...]
IndexEntry = tuple[datetime, Ref]  # (UTC hour, the record it ages)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)


class RetentionView(Protocol):
    """Read access to a partition's retention records."""

    def clock(self, family: str) -> PartitionClock | None: ...

    def aged(self, family: str, since: datetime | None, before: datetime, limit: int) -> list[IndexEntry]:
        """Index entries of the hours from ``since`` (None: the first) to before ``before``,
        in (hour, ref) order - refs ordered as ``"|".join(ref)`` - at most ``limit``."""
        ...


class Retention(NamedTuple):
    """What one message changes in its partition's retention records (a tuple: one is built
    per message, and a tuple is the cheapest immutable record to build)."""

    clock: PartitionClock | None = None  # the partition's new clock (None: unchanged)
    indexed: tuple[IndexEntry, ...] = ()  # entries to add
    unindexed: tuple[IndexEntry, ...] = ()  # entries pruned: to delete
    forgotten: tuple[str, ...] = ()  # receipts pruned: message ids to delete


UNCHANGED = Retention()


def hour_of(at: datetime) -> datetime:
    """The UTC hour ``at`` falls in."""
    global _last
    last = _last
    if last[0] is at:  # the commands and answers an event causes share its occurredAt object
        return last[1]
    hour = _hour((at - _EPOCH) // _HOUR)
    _last = (at, hour)
    return hour


_last: tuple[datetime, datetime] = (_EPOCH, _EPOCH)  # the last hour_of: (at, its hour)


@lru_cache(maxsize=1024)
def _hour(n: int) -> datetime:
    return _EPOCH + n * _HOUR


def horizon(clock: PartitionClock | None, policy: CorePolicy) -> datetime | None:
    """Messages that occurred before this (an hour: compare hours) are refused (None:
    nothing is, yet)."""
    days = policy.receipt_retention_days
    if clock is None or days is None or clock.newest_hour is None:
        return None
    return _horizon(clock.newest_hour, days)


@lru_cache(maxsize=256)
def _horizon(newest_hour: datetime, days: int) -> datetime:
    return newest_hour - timedelta(days=days)


def beyond(what: str, occurred_at: datetime, limit: datetime, policy: CorePolicy) -> str:
    """The ANOMALY message of a message refused for its age."""
    return (
        f"{what} occurred at {occurred_at.isoformat()}, before the receipt horizon {limit.isoformat()} "
        f"({policy.receipt_retention_days} days of receipts are kept): refused, it may have been applied already"
    )


def keep(
    view: RetentionView,
    family: str,
    policy: CorePolicy,
    clock: PartitionClock | None,
    hour: datetime | None,
    indexed: list[IndexEntry],
    settled: Callable[[Ref, datetime], bool] | None = None,
) -> tuple[Retention, list[Ref]]:
    """What one applied message changes in its partition's retention records: the clock moved
    to ``hour`` (None: the message does not move it), ``indexed`` added, and the entries of
    hours the horizon passed pruned, at most ``policy.prune_batch``: their receipts
    forgotten, their other records returned when ``settled(ref, horizon)`` says they may go
    (the caller deletes them; an entry whose record stays is dropped from the index: a
    record written again is indexed again)."""
    days = policy.receipt_retention_days
    if days is None:
        return UNCHANGED, []
    newest = clock.newest_hour if clock is not None else None
    pruned_before = clock.pruned_before if clock is not None else None
    if hour is not None and (newest is None or hour > newest):
        newest = hour
    elif newest is not None and pruned_before == _horizon(newest, days):
        # The usual case: the clock stays in its hour and everything before it is pruned.
        return Retention(None, tuple(indexed)), []
    aged: list[IndexEntry] = []
    forgotten: list[str] = []
    dropped: list[Ref] = []
    if newest is not None:
        limit = _horizon(newest, days)
        if pruned_before is None or pruned_before < limit:
            batch = policy.prune_batch
            aged = view.aged(family, pruned_before, limit, batch)
            for _, ref in aged:
                if ref[0] == RECEIPT:
                    forgotten.append(ref[1])
                elif settled is not None and settled(ref, limit):
                    dropped.append(ref)
            if len(aged) < batch:
                pruned_before = limit  # every hour before the horizon is done
            elif pruned_before is None or aged[-1][0] > pruned_before:
                pruned_before = aged[-1][0]  # the hours before the last one seen are done
    new_clock = None
    if clock is None or newest != clock.newest_hour or pruned_before != clock.pruned_before:
        if newest is not None:
            new_clock = PartitionClock(newest, pruned_before)
    if new_clock is None and not indexed and not aged:
        return UNCHANGED, dropped
    return Retention(new_clock, tuple(indexed), tuple(aged), tuple(forgotten)), dropped
