"""Adapters from Faust's RocksDB tables to the core's read protocols, and crash-safe writes.

Crash safety, in three parts:

1. One table per partition family. Everything one message writes (the order and its
   receipt; the SKU record, reservations, expectations and receipt) lands in one changelog
   partition, in the order written.
2. A redo record. Before its writes, a message's whole transaction (every write and every
   output) is stored under the partition's head key ``h|``. A crash can cut the writes short;
   after recovery the head is applied once more (every write is idempotent, and nothing was
   written after it), which completes the transaction, and its outputs are sent again.
3. A worker that did not shut down cleanly discards its local RocksDB and recovers from the
   changelog alone (streams/worker.py): the local store can be ahead of the changelog after
   SIGKILL, and a mix of the two is not a state that ever existed.

Reads inside an agent go to the RocksDB database of the current event's partition. The one
scan the core needs (a SKU's open reservations, on rare paths) and the expiry index walk
use rocksdict's ordered iteration from a key prefix through the store's per-partition
database (``Store._db_for_partition``: private in faust-streaming 0.15.3, pinned, and
exercised by the integration tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from faust.types import EventT

from schemas.codec import decode, encode
from tables.orders import OrderOutcome
from tables.state import (
    InboundExpectation,
    Order,
    Receipt,
    Reservation,
    SkuStock,
    StoredReceipt,
    Transaction,
    Write,
)
from tables.stock import StockOutcome

SEP = "|"
HEAD = b"h|"


def key(kind: str, *parts: str) -> bytes:
    return SEP.join((kind, *parts)).encode()


def expiry_key(expires_at: datetime, order_no: str) -> bytes:
    return key("x", expires_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f"), order_no)


def scan_prefix(table: Any, partition: int, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    db = table.data._db_for_partition(partition)
    for k, v in db.items(from_key=prefix):
        if not k.startswith(prefix):
            return
        yield k, v


class FamilyStore:
    """One partition family's table: reads for the core, transactional writes."""

    def __init__(self, table: Any, decode_output: Callable[..., Any] = decode) -> None:
        self.table = table
        self.event: EventT | None = None
        # Stored outputs are kept as sent: in the topic's framing (streams/wire.py).
        self.decode_output = decode_output

    def _get(self, k: bytes) -> Any:
        raw = self.table.get(k)
        return None if raw is None else decode(raw, validate=False)

    def receipt(self, message_id: str) -> Receipt | None:
        stored: StoredReceipt | None = self._get(key("r", message_id))
        if stored is None:
            return None
        return Receipt(message_id=stored.message_id, events=tuple(self.decode_output(e, validate=False) for e in stored.events))

    def commit(self, message_id: str, writes: list[Write], outputs: tuple[bytes, ...], receipt: bool) -> None:
        """Record the transaction as the partition's head, then apply its writes."""
        if receipt:
            writes = [*writes, Write(key("r", message_id), encode(StoredReceipt(message_id, outputs)))]
        if not writes:
            return
        self.table[HEAD] = encode(Transaction(message_id=message_id, writes=tuple(writes), outputs=outputs))
        self._apply(writes)

    def redo_head(self) -> tuple[bytes, ...]:
        """After recovery: apply this partition's last transaction again; its outputs."""
        head: Transaction | None = self._get(HEAD)
        if head is None:
            return ()
        self._apply(list(head.writes))
        return head.outputs

    def _apply(self, writes: list[Write]) -> None:
        for w in writes:
            if w.value is not None:
                self.table[w.key] = w.value
            elif self.table.get(w.key) is not None:
                del self.table[w.key]


class StockStore(FamilyStore):
    """The SKU partition's records; implements tables.stock.StockView."""

    def stock(self, sku: str) -> SkuStock | None:
        return self._get(key("s", sku))

    def reservation(self, sku: str, order_no: str) -> Reservation | None:
        return self._get(key("v", sku, order_no))

    def reservations_of(self, sku: str) -> Iterator[Reservation]:
        assert self.event is not None
        for _, raw in scan_prefix(self.table, self.event.message.partition, key("v", sku, "")):
            yield decode(raw, validate=False)

    def expectation(self, sku: str, warehouse_code: str, document_no: str) -> InboundExpectation | None:
        return self._get(key("e", sku, warehouse_code, document_no))

    def store(self, outcome: StockOutcome, outputs: tuple[bytes, ...]) -> None:
        writes: list[Write] = []
        for (sku, order_no), reservation in outcome.reservations.items():
            writes.append(Write(key("v", sku, order_no), None if reservation is None else encode(reservation)))
        for (sku, warehouse_code, document_no), expectation in outcome.expectations.items():
            writes.append(
                Write(key("e", sku, warehouse_code, document_no), None if expectation is None else encode(expectation))
            )
        if outcome.stock is not None:
            writes.append(Write(key("s", outcome.sku), encode(outcome.stock)))
        message_id = outcome.receipt.message_id if outcome.receipt else ""
        self.commit(message_id, writes, outputs, receipt=outcome.receipt is not None)


class OrderStore(FamilyStore):
    """The order partition's records; implements tables.orders.OrderView."""

    def order(self, order_no: str) -> Order | None:
        return self._get(key("o", order_no))

    def store(self, outcome: OrderOutcome, outputs: tuple[bytes, ...]) -> None:
        writes: list[Write] = []
        if outcome.expiry_cleared is not None:
            writes.append(Write(expiry_key(outcome.expiry_cleared, outcome.order_no), None))
        if outcome.expiry_set is not None:
            writes.append(Write(expiry_key(outcome.expiry_set, outcome.order_no), b"1"))
        if outcome.order is not None:
            writes.append(Write(key("o", outcome.order_no), encode(outcome.order)))
        message_id = outcome.receipt.message_id if outcome.receipt else ""
        self.commit(message_id, writes, outputs, receipt=outcome.receipt is not None)
