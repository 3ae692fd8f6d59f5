"""The tables' partitions as the core's read protocols, with transactional writes.

A store reads and writes one partition's RocksDB database at a time (``open``), under the keys
of streams/keys.py. A transaction is a run of that partition's messages: each one's writes are
staged (the next message reads them: staged values win over RocksDB, scans merge them in key
order); ``commit`` numbers it and writes its outbox entry, its redo record and its writes (each
once, last value) to the changelog through the record sink, then in one local write batch. After
an assignment ``recover`` applies the head again (every write is idempotent) and returns the
outbox entries still kept, to send again in order. Committed records read again stay decoded in
a bounded per-partition cache, dropped on every assignment. The order of the steps around a
commit: streams/checkpoint.py; why: docs/decisions.md ("Envelopes and an outbox").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, cast

from rocksdict import WriteBatch

from schemas.codec import decode, encode
from streams import faust_private
from streams.envelopes import Outgoing
from streams.keys import (
    CLOCK,
    EXPECTATION,
    HEAD,
    INDEX,
    ORDER,
    OUTBOX,
    RESERVATION,
    STOCK,
    expectation_key,
    expiry_key,
    index_entry,
    index_key,
    kind,
    order_key,
    outbox_key,
    outbox_sequence,
    receipt_key,
    received_key,
    reservation_key,
    reservations_prefix,
    stock_key,
)
from tables.orders import OrderOutcome
from tables.retention import UNCHANGED, IndexEntry, Retention
from tables.state import (
    InboundExpectation,
    Order,
    Outbox,
    OutRecord,
    PartitionClock,
    Receipt,
    Reservation,
    SkuStock,
    StoredReceipt,
    Transaction,
    Write,
)
from tables.stock import StockOutcome

# partition, key, value (None: a tombstone)
SendChangelog = Callable[[int, bytes, bytes | None], None]

ENCODE: Any = object()  # a staged value: the staged object, to be encoded at commit
CACHED = frozenset((STOCK, RESERVATION, EXPECTATION, ORDER))  # record kinds kept decoded between transactions
CACHE_ENTRIES = 50_000  # per partition

WRITE_OVERHEAD = 8  # per staged write in the transaction record (lengths, union tags)


class TooLarge(ValueError):
    """One message's writes and outputs would not fit in a transaction record: the message is
    refused whole (nothing of it is staged), and the agent dead-letters it."""


def head_sequence(head: Transaction | None) -> int:
    """A head's transaction number (0: none, or a head written before heads were numbered)."""
    if head is None or not head.message_id.startswith("#"):
        return 0
    return int(head.message_id[1:].split("|", 1)[0])


@dataclass
class _PartitionLog:
    """A partition's transaction numbers, as this worker knows them since its assignment."""

    seq: int  # the last transaction's
    kept: deque[int]  # the numbers of the outbox entries kept, in order
    delivered: int = 0  # every record of the transactions up to this one is acknowledged


def scan_prefix(table: Any, partition: int, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    db = faust_private.db_for_partition(table, partition)
    for k, v in db.items(from_key=prefix):
        if not k.startswith(prefix):
            return
        yield k, v


class FamilyStore:
    """One partition family's table: reads for the core, staged transactional writes."""

    def __init__(
        self,
        table: Any,
        send_changelog: SendChangelog,
        decode_output: Callable[..., Any] = decode,
        message_budget: int | None = None,
        name: str = "",
    ) -> None:
        self.table = table
        self.name = name  # the table's name: envelopes name their source <name>|<partition>
        self._logs: dict[int, _PartitionLog] = {}
        self.message_budget = message_budget  # most bytes one message may stage (None: no limit)
        self._send_changelog = send_changelog
        # Stored outputs are kept as sent: in the topic's framing (streams/wire.py).
        self.decode_output = decode_output
        self.partition = -1
        self._db: Any = None
        # The open transaction: key -> value (None: delete; ENCODE: the object in _objects,
        # encoded at commit), and the objects staged (read back without decoding).
        self._staged: dict[bytes, Any] = {}
        self._objects: dict[bytes, Any] = {}
        # Per partition: decoded committed records (key -> (object, encoded size)), oldest first.
        self._caches: dict[int, dict[bytes, tuple[Any, int]]] = {}
        self._cache: dict[bytes, tuple[Any, int]] = {}
        self._last_message_id = ""
        self.staged_bytes = 0
        self.applies_envelope = False  # the open transaction applies an envelope (streams/faults.py)
        self._clock: PartitionClock | None = None  # decoded from _clock_raw
        self._clock_raw: bytes | None = None

    @property
    def source(self) -> str:
        return f"{self.name}|{self.partition}"

    def open(self, partition: int) -> None:
        """Read and write this partition's records from now on (nothing may be staged)."""
        assert not self._staged, "commit before switching partitions"
        self.partition = partition
        self._db = faust_private.db_for_partition(self.table, partition)
        self._cache = self._caches.setdefault(partition, {})

    def _raw(self, k: bytes) -> bytes | None:
        staged = self._staged
        if k in staged:
            value = staged[k]
            return encode(self._objects[k]) if value is ENCODE else value
        return cast("bytes | None", self._db.get(k))  # rocksdict is untyped: values are what we put

    def _get(self, k: bytes) -> Any:
        """The record under ``k``: staged in this transaction, else committed (decoded once and
        kept in the partition's cache, for the kinds of records read again)."""
        objects = self._objects
        if k in objects:
            return objects[k]
        staged = self._staged
        if k in staged:
            raw = staged[k]
            return None if raw is None else decode(raw, validate=False)
        hit = self._cache.get(k)
        if hit is not None:
            return hit[0]
        raw = self._db.get(k)
        value = None if raw is None else decode(raw, validate=False)
        if kind(k) in CACHED:
            self._remember(k, value, 0 if raw is None else len(raw))
        return value

    def _remember(self, k: bytes, value: Any, size: int) -> None:
        cache = self._cache
        cache.pop(k, None)
        if len(cache) >= CACHE_ENTRIES:
            del cache[next(iter(cache))]  # the oldest
        cache[k] = (value, size)

    def _scan(self, prefix: bytes) -> Iterator[Any]:
        """The records under ``prefix`` in key order, staged writes included."""
        staged = [k for k in self._staged if k.startswith(prefix)]
        committed = scan_prefix(self.table, self.partition, prefix)
        if not staged:
            cache = self._cache
            for k, raw in committed:
                hit = cache.get(k)
                yield hit[0] if hit is not None else decode(raw, validate=False)
            return
        keys = sorted({*(k for k, _ in committed), *staged})
        for k in keys:
            value = self._get(k)
            if value is not None:
                yield value

    def _keys_between(self, low: bytes, high: bytes) -> Iterator[bytes]:
        """The keys in [low, high) in order, staged writes over committed ones."""
        staged = sorted((k, v) for k, v in self._staged.items() if low <= k < high)
        i = 0
        for k, _ in self._db.items(from_key=low):
            if k >= high:
                break
            while i < len(staged) and staged[i][0] < k:
                if staged[i][1] is not None:
                    yield staged[i][0]
                i += 1
            if i < len(staged) and staged[i][0] == k:
                if staged[i][1] is not None:
                    yield k
                i += 1
            else:
                yield k
        for k, v in staged[i:]:
            if v is not None:
                yield k

    def clock(self, family: str) -> PartitionClock | None:
        """The open partition's clock (a store is one family: ``family`` is its own)."""
        raw = self._raw(CLOCK)
        if raw != self._clock_raw:  # decoded once per change (once an hour), not per message
            self._clock = None if raw is None else decode(raw, validate=False)
            self._clock_raw = raw
        return self._clock

    def aged(self, family: str, since: datetime | None, before: datetime, limit: int) -> list[IndexEntry]:
        """Index entries of the hours from ``since`` to before ``before``, in key order,
        staged writes included: a bounded range read, however large the index."""
        low = INDEX if since is None else index_key(since, ())
        keys = self._keys_between(low, index_key(before, ()))
        return [index_entry(k) for k in islice(keys, limit)]

    def receipt(self, message_id: str) -> Receipt | None:
        stored: StoredReceipt | None = self._get(receipt_key(message_id))
        if stored is None:
            return None
        events = tuple(self.decode_output(e, validate=False) for e in stored.events)
        return Receipt(stored.message_id, events, stored.fingerprint, stored.event_id)

    def stage(
        self,
        message_id: str,
        writes: list[Write],
        outputs: tuple[bytes, ...],
        receipt: bool,
        fingerprint: str = "",
        event_id: str = "",
        internal_bytes: int = 0,
        objects: list[tuple[bytes, Any]] = (),  # type: ignore[assignment]  # read only: () is the empty default
    ) -> None:
        """Add one message's writes (and its receipt) to the open transaction, or raise
        ``TooLarge`` (staging nothing) when they exceed ``message_budget``. ``outputs``: what
        its receipt keeps (the outputs for the outside world); ``internal_bytes``: the size of
        its internal messages (they travel in envelopes, and count against the budget);
        ``objects``: records written as objects (key, record), encoded once, at commit; their
        size is counted as they last were (a record grows little from one message to the
        next, and TRANSACTION_OVERHEAD leaves room for it)."""
        if receipt:
            stored = StoredReceipt(message_id, outputs, fingerprint, event_id)
            writes = [*writes, Write(receipt_key(message_id), encode(stored))]
        sized = [(k, obj, self._size_of(k, obj)) for k, obj in objects]
        size = (
            internal_bytes
            + sum(map(len, outputs))
            + sum(WRITE_OVERHEAD + len(w.key) + (len(w.value) if w.value is not None else 0) for w in writes)
            + sum(WRITE_OVERHEAD + len(k) + (len(raw) if isinstance(raw, bytes) else raw) for k, _, raw in sized)
        )
        if self.message_budget is not None and size > self.message_budget:
            raise TooLarge(
                f"{message_id or 'a message'}: its writes and outputs take {size} bytes, more than "
                f"the {self.message_budget} one message may stage (record_max_bytes)"
            )
        if not writes and not sized:
            return  # nothing to redo: its outputs are sent, and a replay sends them again
        staged, staged_objects = self._staged, self._objects
        for w in writes:
            staged[w.key] = w.value
            staged_objects.pop(w.key, None)
        for k, obj, raw in sized:
            staged[k] = raw if isinstance(raw, bytes) else ENCODE
            staged_objects[k] = obj
        self.staged_bytes += size
        self._last_message_id = message_id

    def _size_of(self, k: bytes, obj: Any) -> bytes | int:
        """An object's encoded size: the size it had when last read or written, if known (it
        is then encoded once, at commit), else its encoding, made now."""
        hit = self._cache.get(k)
        if hit is not None and hit[1]:
            return hit[1]
        return encode(obj)

    def received(self, source: str) -> int:
        """The highest envelope sequence number applied from ``source`` (0: none)."""
        raw = self._raw(received_key(source))
        return 0 if raw is None else int(raw)

    def stage_received(self, source: str, seq: int) -> None:
        """Record, in the open transaction, that ``source``'s envelope ``seq`` is applied."""
        k = received_key(source)
        self._staged[k] = str(seq).encode()
        self.staged_bytes += WRITE_OVERHEAD + len(k) + 20
        self._last_message_id = f"{source}#{seq}"
        self.applies_envelope = True

    def sequence(self) -> int:
        """The open partition's last transaction number (0: none yet)."""
        return self._log().seq

    def _log(self) -> _PartitionLog:
        log = self._logs.get(self.partition)
        if log is None:
            seq = head_sequence(self._get(HEAD))
            kept = deque(outbox_sequence(k) for k, _ in scan_prefix(self.table, self.partition, OUTBOX))
            log = self._logs[self.partition] = _PartitionLog(seq, kept)
        return log

    def commit(self, outgoing: Outgoing | None = None) -> list[OutRecord]:
        """Record the open transaction and apply it; the records it sends (``outgoing``, its
        envelopes numbered with the transaction's sequence), to be sent once its changelog
        records are acknowledged.

        Written in this order, to the changelog and then in one local write batch: the outbox
        entry ``q|<seq>`` (what the transaction sends), the head ``h|`` (its writes, and its
        sequence number), then the writes, among them the deletion of the outbox entries the
        broker has acknowledged in full (``delivered``)."""
        if not self._staged and not outgoing:
            return []
        log = self._log()
        seq = log.seq + 1
        records = outgoing.records(self.source, seq) if outgoing else []
        staged, kept, objects = self._staged, log.kept, self._objects
        while kept and kept[0] <= log.delivered:
            staged[outbox_key(kept.popleft())] = None
        writes = tuple(Write(k, encode(objects[k]) if v is ENCODE else v) for k, v in staged.items())
        head = encode(Transaction(message_id=f"#{seq}|{self._last_message_id}", writes=writes, outputs=()))
        self._staged, self._objects = {}, {}
        self.staged_bytes = 0
        self.applies_envelope = False
        for w in writes:
            if w.key in objects:
                self._remember(w.key, objects[w.key], len(w.value))  # type: ignore[arg-type]  # staged bytes here, not ENCODE
            elif kind(w.key) in CACHED:
                self._remember(
                    w.key,
                    None if w.value is None else decode(w.value, validate=False),
                    0 if w.value is None else len(w.value),
                )
        items: list[tuple[bytes, bytes | None]] = []
        if records:
            items.append((outbox_key(seq), encode(Outbox(seq, tuple(records)))))
        items.append((HEAD, head))
        items += ((w.key, w.value) for w in writes)
        self._apply(items)
        log.seq = seq
        if records:
            kept.append(seq)
        return records

    def recover(self) -> tuple[tuple[bytes, ...], list[OutRecord]]:
        """After an assignment: apply this partition's last transaction again (a crash may
        have cut it short) and return what must be sent again, in order: a head's outputs
        (written before outboxes existed) and every record of the outbox entries kept, up to
        the head's sequence (an entry past it belongs to a transaction cut short before its
        head: never sent, and its number is used again)."""
        self._logs.pop(self.partition, None)
        self._cache.clear()
        head: Transaction | None = self._get(HEAD)
        if head is None:
            return (), []
        self._apply([(w.key, w.value) for w in head.writes])
        seq = head_sequence(head)
        records: list[OutRecord] = []
        strays: list[tuple[bytes, bytes | None]] = []
        for k, raw in scan_prefix(self.table, self.partition, OUTBOX):
            if outbox_sequence(k) > seq:
                strays.append((k, None))  # its transaction never completed: never sent
                continue
            entry: Outbox = decode(raw, validate=False)
            records.extend(entry.records)
        if strays:
            self._apply(strays)
        return head.outputs, records

    def flushed(self, marks: dict[int, int]) -> None:
        """Every record of the transactions numbered up to ``marks[partition]`` has been
        acknowledged: their outbox entries may go (with the next transaction's writes)."""
        for partition, seq in marks.items():
            log = self._logs.get(partition)
            if log is not None and seq > log.delivered:
                log.delivered = seq

    def marks(self) -> dict[int, int]:
        """Each partition's last transaction number, as handed to the sink so far."""
        return {partition: log.seq for partition, log in self._logs.items()}

    def forget(self) -> None:
        """A rebalance: what was known of any partition is re-read from its state."""
        self._logs.clear()
        for cache in self._caches.values():
            cache.clear()

    def retention_writes(self, retention: Retention) -> list[Write]:
        """The writes of a message's retention changes: its partition's clock, index entries
        added and pruned, receipts forgotten."""
        if retention is UNCHANGED:
            return []
        writes = [Write(index_key(hour, ref), b"1") for hour, ref in retention.indexed]
        writes += [Write(index_key(hour, ref), None) for hour, ref in retention.unindexed]
        writes += [Write(receipt_key(message_id), None) for message_id in retention.forgotten]
        if retention.clock is not None:
            writes.append(Write(CLOCK, encode(retention.clock)))
        return writes

    def _apply(self, items: Any) -> None:
        """Changelog records first (in order, through the sink), then one local write batch."""
        send, partition = self._send_changelog, self.partition
        batch = WriteBatch(raw_mode=True)
        for k, v in items:
            send(partition, k, v)
            if v is None:
                batch.delete(k)
            else:
                batch.put(k, v)
        self._db.write(batch)


class StockStore(FamilyStore):
    """The SKU partition's records; implements tables.stock.StockView."""

    def stock(self, sku: str) -> SkuStock | None:
        return cast("SkuStock | None", self._get(stock_key(sku)))  # the key says the kind

    def reservation(self, sku: str, order_no: str) -> Reservation | None:
        return cast("Reservation | None", self._get(reservation_key(sku, order_no)))

    def reservations_of(self, sku: str) -> Iterator[Reservation]:
        return self._scan(reservations_prefix(sku))

    def expectation(self, sku: str, warehouse_code: str, document_no: str) -> InboundExpectation | None:
        return cast("InboundExpectation | None", self._get(expectation_key(sku, warehouse_code, document_no)))

    def stage_outcome(self, outcome: StockOutcome, outputs: tuple[bytes, ...], internal_bytes: int = 0) -> None:
        writes: list[Write] = []
        objects: list[tuple[bytes, Any]] = []
        for (sku, order_no), reservation in outcome.reservations.items():
            if reservation is None:
                writes.append(Write(reservation_key(sku, order_no), None))
            else:
                objects.append((reservation_key(sku, order_no), reservation))
        for (sku, warehouse_code, document_no), expectation in outcome.expectations.items():
            if expectation is None:
                writes.append(Write(expectation_key(sku, warehouse_code, document_no), None))
            else:
                objects.append((expectation_key(sku, warehouse_code, document_no), expectation))
        if outcome.stock is not None:
            objects.append((stock_key(outcome.sku), outcome.stock))
        for extra in outcome.extra_receipts:  # a document's; a reservation released before it was read
            events = tuple(encode(e) for e in extra.events)  # single-object: decode_output reads both
            stored = StoredReceipt(extra.message_id, events, extra.fingerprint, extra.event_id)
            writes.append(Write(receipt_key(extra.message_id), encode(stored)))
        writes += self.retention_writes(outcome.retention)
        receipt = outcome.receipt
        if receipt is None:
            self.stage("", writes, outputs, False, internal_bytes=internal_bytes, objects=objects)
        else:
            self.stage(
                receipt.message_id,
                writes,
                outputs,
                True,
                receipt.fingerprint,
                receipt.event_id,
                internal_bytes,
                objects,
            )


class OrderStore(FamilyStore):
    """The order partition's records; implements tables.orders.OrderView."""

    def order(self, order_no: str) -> Order | None:
        return cast("Order | None", self._get(order_key(order_no)))

    def stage_outcome(self, outcome: OrderOutcome, outputs: tuple[bytes, ...], internal_bytes: int = 0) -> None:
        writes: list[Write] = []
        objects: list[tuple[bytes, Any]] = []
        if outcome.expiry_cleared is not None:
            writes.append(Write(expiry_key(outcome.expiry_cleared, outcome.order_no), None))
        if outcome.expiry_set is not None:
            writes.append(Write(expiry_key(outcome.expiry_set, outcome.order_no), b"1"))
        if outcome.order is not None:
            objects.append((order_key(outcome.order_no), outcome.order))
        writes += self.retention_writes(outcome.retention)
        receipt = outcome.receipt
        if receipt is None:
            self.stage("", writes, outputs, False, internal_bytes=internal_bytes, objects=objects)
        else:
            self.stage(
                receipt.message_id,
                writes,
                outputs,
                True,
                receipt.fingerprint,
                receipt.event_id,
                internal_bytes,
                objects,
            )
