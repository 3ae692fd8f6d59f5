"""The whole core in one process, with dicts for tables: the reference model.

It routes messages exactly as the Kafka topology does (input event -> order partition or
per-SKU commands; what the core emits by the routing table of schemas/topics.py: internal
messages back in, the rest out) but through an in-memory FIFO queue, so golden scenarios,
property tests and the core benchmark exercise the same messages and rules as the streaming
pipeline, with no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel

from schemas.internal import ReservationExpiryDue, StockCommand
from schemas.topics import ROUTES
from tables.orders import OrderOutcome, apply_order
from tables.policy import CorePolicy
from tables.retention import ORDERS, STOCK, UNCHANGED, IndexEntry, Ref, Retention
from tables.routing import is_order_scoped, stock_commands_for
from tables.state import InboundExpectation, Order, PartitionClock, Position, Receipt, Reservation, SkuStock
from tables.stock import StockOutcome, apply_stock


@dataclass
class MemoryTables:
    """The records of both partitions, keyed as in RocksDB; implements both views. Each
    partition family is one partition here: one clock and one retention index per family
    (tables/retention.py), where the worker keeps one per Kafka partition."""

    stock_by_sku: dict[str, SkuStock] = field(default_factory=dict)
    reservations_by_key: dict[tuple[str, str], Reservation] = field(default_factory=dict)
    expectations_by_key: dict[tuple[str, str, str], InboundExpectation] = field(default_factory=dict)
    orders_by_no: dict[str, Order] = field(default_factory=dict)
    receipts_by_id: dict[str, Receipt] = field(default_factory=dict)
    expiry_index: dict[tuple[datetime, str], None] = field(default_factory=dict)
    clocks: dict[str, PartitionClock] = field(default_factory=dict)  # family -> clock
    # family -> UTC hour -> the records indexed under it
    retention_index: dict[str, dict[datetime, dict[Ref, None]]] = field(default_factory=dict)

    # StockView
    def stock(self, sku: str) -> SkuStock | None:
        return self.stock_by_sku.get(sku)

    def reservation(self, sku: str, order_no: str) -> Reservation | None:
        return self.reservations_by_key.get((sku, order_no))

    def reservations_of(self, sku: str) -> Iterator[Reservation]:
        return (r for (s, _), r in self.reservations_by_key.items() if s == sku)

    def expectation(self, sku: str, warehouse_code: str, document_no: str) -> InboundExpectation | None:
        return self.expectations_by_key.get((sku, warehouse_code, document_no))

    def receipt(self, message_id: str) -> Receipt | None:
        return self.receipts_by_id.get(message_id)

    # OrderView
    def order(self, order_no: str) -> Order | None:
        return self.orders_by_no.get(order_no)

    # RetentionView (both)
    def clock(self, family: str) -> PartitionClock | None:
        return self.clocks.get(family)

    def aged(self, family: str, since: datetime | None, before: datetime, limit: int) -> list[IndexEntry]:
        index = self.retention_index.get(family, {})
        found: list[IndexEntry] = []
        for hour in sorted(h for h in index if h < before and (since is None or h >= since)):
            for ref in sorted(index[hour], key="|".join):
                if len(found) == limit:
                    return found
                found.append((hour, ref))
        return found

    # writes, as the agents do them
    def store_stock(self, outcome: StockOutcome) -> None:
        if outcome.stock is not None:
            self.stock_by_sku[outcome.sku] = outcome.stock
        for key, reservation in outcome.reservations.items():
            if reservation is None:
                self.reservations_by_key.pop(key, None)
            else:
                self.reservations_by_key[key] = reservation
        for ekey, expectation in outcome.expectations.items():
            if expectation is None:
                self.expectations_by_key.pop(ekey, None)
            else:
                self.expectations_by_key[ekey] = expectation
        if outcome.receipt is not None:
            self.receipts_by_id[outcome.receipt.message_id] = outcome.receipt
        for extra in outcome.extra_receipts:
            self.receipts_by_id[extra.message_id] = extra
        if outcome.retention is not UNCHANGED:
            self._retain(STOCK, outcome.retention)

    def store_order(self, outcome: OrderOutcome) -> None:
        if outcome.order is not None:
            self.orders_by_no[outcome.order_no] = outcome.order
        if outcome.expiry_cleared is not None:
            self.expiry_index.pop((outcome.expiry_cleared, outcome.order_no), None)
        if outcome.expiry_set is not None:
            self.expiry_index[(outcome.expiry_set, outcome.order_no)] = None
        if outcome.receipt is not None:
            self.receipts_by_id[outcome.receipt.message_id] = outcome.receipt
        if outcome.retention is not UNCHANGED:
            self._retain(ORDERS, outcome.retention)

    def _retain(self, family: str, retention: Retention) -> None:
        if retention.clock is not None:
            self.clocks[family] = retention.clock
        index = self.retention_index.setdefault(family, {})
        for hour, ref in retention.indexed:
            index.setdefault(hour, {})[ref] = None
        for hour, ref in retention.unindexed:
            refs = index.get(hour)
            if refs is not None:
                refs.pop(ref, None)
                if not refs:
                    del index[hour]
        for message_id in retention.forgotten:
            self.receipts_by_id.pop(message_id, None)


class InventoryCenter:
    """Feed input events in; read positions, orders and every emitted output.

    The expiry timer runs when told (``expire_due(now)``, the wall clock of a test or a
    shadow) and, with ``tick_on_watermark=grace``, also after every submitted event, on the
    event-time watermark (the latest ``occurredAt`` submitted) less ``grace``: as the worker's
    timer sees a stream read at full speed (streams/app.py)."""

    def __init__(self, policy: CorePolicy | None = None, tick_on_watermark: timedelta | None = None) -> None:
        self.policy = policy or CorePolicy()
        self.tables = MemoryTables()
        self.outputs: list[object] = []  # every event for the outside world, in order
        self.messages_processed = 0
        self.tick_on_watermark = tick_on_watermark
        self.watermark: datetime | None = None  # the latest occurredAt submitted

    def submit(self, event: BaseModel) -> None:
        """Process one input event and everything it sets in motion, to quiescence."""
        queue: deque[BaseModel] = deque()
        if is_order_scoped(event):
            queue.append(event)
        else:
            queue.extend(stock_commands_for(event))  # type: ignore[arg-type]  # not order-scoped: a stock Event
        self._drain(queue)
        self._advance_watermark(event.occurred_at)  # type: ignore[attr-defined]  # every input event has one

    def submit_all(self, events: Iterable[BaseModel]) -> None:
        for event in events:
            self.submit(event)

    def expire_due(self, now: datetime) -> None:
        """The expiry timer: every unpaid reservation due by ``now`` gets a tick. The tick
        happened at the due time (event time): ``now`` is never written anywhere."""
        due = sorted(key for key in self.tables.expiry_index if key[0] <= now)
        for due_at, order_no in due:
            tick = ReservationExpiryDue.model_construct(
                event_id=f"{order_no}|expiry|{due_at.isoformat()}",
                order_no=order_no,
                due_at=due_at,
                occurred_at=due_at,
            )
            self._drain(deque([tick]))

    def _advance_watermark(self, occurred_at: datetime) -> None:
        if self.watermark is None or occurred_at > self.watermark:
            self.watermark = occurred_at
        if self.tick_on_watermark is not None:
            self.expire_due(self.watermark - self.tick_on_watermark)

    def _drain(self, queue: deque[BaseModel]) -> None:
        while queue:
            message = queue.popleft()
            self.messages_processed += 1
            if isinstance(message, StockCommand):
                stock_outcome = apply_stock(self.tables, message, self.policy)
                self.tables.store_stock(stock_outcome)
                emitted = stock_outcome.events
            else:
                order_outcome = apply_order(self.tables, message, self.policy)
                self.tables.store_order(order_outcome)
                emitted = order_outcome.events
            for event in emitted:
                if ROUTES[type(event).__name__].internal:  # as the worker routes it (schemas/topics.py)
                    queue.append(event)  # type: ignore[arg-type]  # an internal route: a command
                else:
                    self.outputs.append(event)

    # reads
    def position(self, sku: str, warehouse_code: str) -> Position | None:
        stock = self.tables.stock(sku)
        return stock.position(warehouse_code) if stock else None

    def order(self, order_no: str) -> Order | None:
        return self.tables.order(order_no)
