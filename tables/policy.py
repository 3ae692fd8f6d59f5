"""The knobs of the core's decisions, passed in (never read from the environment here)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_ORDERS_AT_RISK = 100


@dataclass(frozen=True, slots=True)
class CorePolicy:
    """Source selection tie-break order and the default reorder point for LOW_STOCK."""

    warehouse_priority: tuple[str, ...] = ()
    reorder_point: int = 10

    def priority_rank(self, warehouse_code: str) -> int:
        try:
            return self.warehouse_priority.index(warehouse_code)
        except ValueError:
            return len(self.warehouse_priority)
