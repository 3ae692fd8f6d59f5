"""When the worker's expiry timer may tick an order: event time first, the wall clock as a
fallback for a quiet partition. No Faust here, so that the rule is tested on its own.

Each order-agent partition keeps in memory a watermark: the latest ``occurredAt`` of an input
event its agent read. An order due at ``dueAt`` is ticked once the watermark reaches ``dueAt +
expiry_grace_s``, or once the wall clock reaches ``dueAt + expiry_wall_clock_fallback_s`` *and*
the watermark has not moved for that long: a quiet partition still expires its orders, a backlog
read faster than real time expires nothing early. After a restart or a rebalance the watermark
is unknown and the idle time counts from then. The tick carries the due time (streams/app.py).
Why: docs/inventory-model.md ("Pay, expire, outbound").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta


class ExpiryClock:
    """Per-partition watermarks, and the latest due time the timer may tick now."""

    def __init__(self, grace: timedelta, fallback: timedelta, wall: Callable[[], datetime]) -> None:
        if fallback < grace:
            raise ValueError("the wall-clock fallback must be at least the event-time grace")
        self.grace = grace
        self.fallback = fallback
        self.wall = wall
        self.watermarks: dict[int, datetime] = {}
        self.moved_at: dict[int, datetime] = {}  # wall time the watermark last moved
        self.since = wall()  # before that, nothing is known: start or last rebalance

    def saw(self, partition: int, occurred_at: datetime) -> None:
        """The order agent read an input event of ``partition`` that happened then."""
        mark = self.watermarks.get(partition)
        if mark is None or occurred_at > mark:
            self.watermarks[partition] = occurred_at
            self.moved_at[partition] = self.wall()

    def forget(self) -> None:
        """Partitions were reassigned: what another worker read is unknown here."""
        self.watermarks.clear()
        self.moved_at.clear()
        self.since = self.wall()

    def tick_by(self, partition: int, now: datetime) -> datetime | None:
        """Every order of ``partition`` due by the returned time may be ticked now (None:
        none may)."""
        bounds = []
        mark = self.watermarks.get(partition)
        if mark is not None:
            bounds.append(mark - self.grace)
        if now - self.moved_at.get(partition, self.since) >= self.fallback:
            bounds.append(now - self.fallback)
        return max(bounds) if bounds else None
