"""The knobs of the core's decisions, passed in (never read from the environment here)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_ORDERS_AT_RISK = 100


@dataclass(frozen=True, slots=True)
class CorePolicy:
    """Source selection tie-break order and whether a line no single warehouse can fill may
    be split across warehouses, the default reorder point for LOW_STOCK, how many on-hand
    movements a position remembers for netting counts read late, and how long a partition
    remembers the messages it applied (``receipt_retention_days``, on event time; None: for
    ever, for a store that keeps no partition clock) and how many old records one message
    may prune (``prune_batch``): see tables/retention.py."""

    warehouse_priority: tuple[str, ...] = ()
    reorder_point: int = 10
    count_history: int = 64
    split_lines: bool = True
    receipt_retention_days: int | None = 7
    prune_batch: int = 128

    def priority_rank(self, warehouse_code: str) -> int:
        try:
            return self.warehouse_priority.index(warehouse_code)
        except ValueError:
            return len(self.warehouse_priority)
