"""Our core's read protocols (``StockView``, ``OrderView``) over a Quix Streams ``State``.

Quix scopes a ``State`` to the current message key, so every key below is stored under the
message key plus ``|``. Records are the same Avro single-object bytes our Faust tables hold
(``get_bytes``/``set_bytes``: Quix's JSON serializer never runs), under the same kinds of key:

    stock step (message key sku):     s -> SkuStock, v|orderNo -> Reservation,
                                      e|warehouse|document -> InboundExpectation,
                                      r|commandId -> StoredReceipt
    order step (message key orderNo): o -> Order, r|messageId -> StoredReceipt

No redo record ``h|``: Quix commits state and offsets together (why: bench/peer_quix/README.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from schemas.codec import decode, encode
from tables.orders import OrderOutcome
from tables.state import InboundExpectation, Order, Receipt, Reservation, SkuStock, StoredReceipt
from tables.stock import StockOutcome

SEP = b"|"


def _key(kind: str, *parts: str) -> bytes:
    return "|".join((kind, *parts)).encode()


class StateRecords:
    """Records of one message key, read and written through its Quix ``State``."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def _get(self, key: bytes) -> Any:
        raw = self.state.get_bytes(key)
        return None if raw is None else decode(raw, validate=False)

    def _put(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.state.delete(key)
        else:
            self.state.set_bytes(key, value)

    def receipt(self, message_id: str) -> Receipt | None:
        stored: StoredReceipt | None = self._get(_key("r", message_id))
        if stored is None:
            return None
        events = tuple(decode(e, validate=False) for e in stored.events)
        return Receipt(stored.message_id, events, stored.fingerprint, stored.event_id)

    def store_receipt(self, receipt: Receipt, outputs: tuple[bytes, ...]) -> None:
        stored = StoredReceipt(receipt.message_id, outputs, receipt.fingerprint, receipt.event_id)
        self.state.set_bytes(_key("r", receipt.message_id), encode(stored))


class StockRecords(StateRecords):
    """One SKU's records; implements ``tables.stock.StockView``."""

    def stock(self, sku: str) -> SkuStock | None:
        return self._get(b"s")

    def reservation(self, sku: str, order_no: str) -> Reservation | None:
        return self._get(_key("v", order_no))

    def reservations_of(self, sku: str) -> Iterator[Reservation]:
        """The SKU's open reservations. Quix's ``State`` has no range read, so this walks
        the partition's RocksDB from the key prefix and overlays the checkpoint's pending
        writes: private Quix internals (``_transaction``, ``_prefix``), as our Faust shell
        reaches into ``_db_for_partition``. The core calls it on rare paths only (presale
        arrivals, shortages)."""
        tx = self.state._transaction  # noqa: SLF001 - no public range read (see above)
        prefix: bytes = self.state._prefix  # noqa: SLF001
        if tx._partition.uses_ttl_stamps:  # noqa: SLF001 - values would carry expiry stamps
            raise RuntimeError("reservations_of cannot read a TTL-stamped Quix store")
        start = prefix + SEP + _key("v", "")
        merged: dict[bytes, bytes] = {}
        deleted = tx._update_cache.get_deletes("default")  # noqa: SLF001
        for k, v in tx._partition.iter_items(lower_bound=start, upper_bound=start + b"\xff"):  # noqa: SLF001
            if k not in deleted:
                merged[k] = v
        for k, v in tx._update_cache.get_updates("default").get(prefix, {}).items():  # noqa: SLF001
            if k.startswith(start) and k not in deleted:
                merged[k] = v
        for k in sorted(merged):
            yield decode(merged[k], validate=False)

    def expectation(self, sku: str, warehouse_code: str, document_no: str) -> InboundExpectation | None:
        return self._get(_key("e", warehouse_code, document_no))

    def store(self, outcome: StockOutcome, outputs: tuple[bytes, ...]) -> None:
        for (_, order_no), reservation in outcome.reservations.items():
            self._put(_key("v", order_no), None if reservation is None else encode(reservation))
        for (_, warehouse_code, document_no), expectation in outcome.expectations.items():
            self._put(_key("e", warehouse_code, document_no), None if expectation is None else encode(expectation))
        if outcome.stock is not None:
            self.state.set_bytes(b"s", encode(outcome.stock))
        for extra in outcome.extra_receipts:
            self.store_receipt(extra, tuple(encode(e) for e in extra.events))
        if outcome.receipt is not None:
            self.store_receipt(outcome.receipt, outputs)


class OrderRecords(StateRecords):
    """One order's records; implements ``tables.orders.OrderView``."""

    def order(self, order_no: str) -> Order | None:
        return self._get(b"o")

    def store(self, outcome: OrderOutcome, outputs: tuple[bytes, ...]) -> None:
        if outcome.order is not None:
            self.state.set_bytes(b"o", encode(outcome.order))
        if outcome.receipt is not None:
            self.store_receipt(outcome.receipt, outputs)
