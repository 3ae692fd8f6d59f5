"""Adapters from Faust's RocksDB tables to the core's read protocols, and back for writes.

Reads inside an agent go to the RocksDB database of the current event's partition (Faust's
rocksdb store does this); writes also send the changelog record for that partition. The one
scan the core needs (a SKU's open reservations, on rare paths: presale arrivals, shortages)
and the expiry index walk use rocksdict's ordered iteration from a key prefix, through the
store's per-partition database (``Store._db_for_partition``: private in faust-streaming
0.15.3, pinned, and covered by the integration tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from faust.types import EventT

from schemas.codec import decode, encode
from tables.declarations import InventoryTables
from tables.orders import OrderOutcome
from tables.state import InboundExpectation, Order, Receipt, Reservation, SkuStock, StoredReceipt
from tables.stock import StockOutcome

SEP = "|"


def key(*parts: str) -> bytes:
    return SEP.join(parts).encode()


def expiry_key(expires_at: datetime, order_no: str) -> bytes:
    return key(expires_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f"), order_no)


def _get(table, k: bytes):  # type: ignore[no-untyped-def]
    raw = table.get(k)
    return None if raw is None else decode(raw, validate=False)


def scan_prefix(table, partition: int, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:  # type: ignore[no-untyped-def]
    db = table.data._db_for_partition(partition)
    for k, v in db.items(from_key=prefix):
        if not k.startswith(prefix):
            return
        yield k, v


class TableViews:
    """StockView and OrderView over the worker's tables, for the current event."""

    def __init__(self, tables: InventoryTables) -> None:
        self.t = tables
        self.event: EventT | None = None
        # Receipt events decoded lazily: the events are stored encoded, ready to resend.
        self._stored_events: dict[str, tuple[bytes, ...]] = {}

    # StockView
    def stock(self, sku: str) -> SkuStock | None:
        return _get(self.t.stock, key(sku))

    def reservation(self, sku: str, order_no: str) -> Reservation | None:
        return _get(self.t.reservations, key(sku, order_no))

    def reservations_of(self, sku: str) -> Iterator[Reservation]:
        assert self.event is not None
        for _, raw in scan_prefix(self.t.reservations, self.event.message.partition, key(sku, "")):
            yield decode(raw, validate=False)

    def expectation(self, sku: str, warehouse_code: str, document_no: str) -> InboundExpectation | None:
        return _get(self.t.expectations, key(sku, warehouse_code, document_no))

    def receipt(self, message_id: str) -> Receipt | None:
        table = self.t.stock_receipts if self._is_stock else self.t.order_receipts
        stored: StoredReceipt | None = _get(table, message_id.encode())
        if stored is None:
            return None
        return Receipt(message_id=stored.message_id, events=tuple(decode(e, validate=False) for e in stored.events))

    # OrderView
    def order(self, order_no: str) -> Order | None:
        return _get(self.t.orders, key(order_no))

    _is_stock = False


class StockTableViews(TableViews):
    _is_stock = True

    def store(self, outcome: StockOutcome, encoded_events: tuple[bytes, ...]) -> None:
        t = self.t
        if outcome.stock is not None:
            t.stock[key(outcome.sku)] = encode(outcome.stock)
        for (sku, order_no), reservation in outcome.reservations.items():
            k = key(sku, order_no)
            if reservation is None:
                if t.reservations.get(k) is not None:
                    del t.reservations[k]
            else:
                t.reservations[k] = encode(reservation)
        for (sku, warehouse_code, document_no), expectation in outcome.expectations.items():
            k = key(sku, warehouse_code, document_no)
            if expectation is None:
                if t.expectations.get(k) is not None:
                    del t.expectations[k]
            else:
                t.expectations[k] = encode(expectation)
        if outcome.receipt is not None:
            stored = StoredReceipt(message_id=outcome.receipt.message_id, events=encoded_events)
            t.stock_receipts[outcome.receipt.message_id.encode()] = encode(stored)


class OrderTableViews(TableViews):
    def store(self, outcome: OrderOutcome, encoded_events: tuple[bytes, ...]) -> None:
        t = self.t
        if outcome.order is not None:
            t.orders[key(outcome.order_no)] = encode(outcome.order)
        if outcome.expiry_cleared is not None:
            k = expiry_key(outcome.expiry_cleared, outcome.order_no)
            if t.order_expiry.get(k) is not None:
                del t.order_expiry[k]
        if outcome.expiry_set is not None:
            t.order_expiry[expiry_key(outcome.expiry_set, outcome.order_no)] = b"1"
        if outcome.receipt is not None:
            stored = StoredReceipt(message_id=outcome.receipt.message_id, events=encoded_events)
            t.order_receipts[outcome.receipt.message_id.encode()] = encode(stored)
