"""The agents' transactions over a real RocksDB database (rocksdict), no Kafka: staged writes
are read back before commit, scans merge them in key order, a key written twice is committed
once, the redo record comes first in the changelog, and redo completes a cut transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from schemas.codec import decode, encode
from streams.envelopes import Outgoing
from streams.keys import HEAD, receipt_key, reservation_key, stock_key
from tables.state import Reservation, SkuStock, StoredReceipt, Transaction, Write
from tests.unit.rocks import stock_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    with stock_store(tmp_path, name="") as s:
        yield s


OUT = encode(SkuStock("OUTPUT"))  # any record stands in for an emitted event


def reservation(order_no: str, qty: int, seq: int) -> Reservation:
    return Reservation(
        sku="A",
        order_no=order_no,
        warehouse_code="WH1",
        order_type="NORMAL",
        reserved_qty=qty,
        presold_qty=0,
        short_qty=0,
        seq=seq,
    )


def test_staged_writes_are_read_before_commit_and_reach_rocksdb_at_commit(store: Any) -> None:
    store.open(0)
    store.stage("m1", [Write(stock_key("A"), encode(SkuStock("A", reservation_seq=1)))], (OUT,), receipt=True)
    assert store.stock("A") == SkuStock("A", reservation_seq=1)  # the next message sees it
    assert store.dbs[0].get(stock_key("A")) is None  # nothing written yet
    assert store.changelog == []

    store.commit()

    assert decode(store.dbs[0][stock_key("A")], validate=False) == SkuStock("A", reservation_seq=1)
    assert store.receipt("m1").events == (SkuStock("OUTPUT"),)


def test_a_key_written_by_several_messages_is_committed_once_with_its_last_value(store: Any) -> None:
    store.open(1)
    for n in range(1, 4):
        store.stage(f"m{n}", [Write(stock_key("A"), encode(SkuStock("A", reservation_seq=n)))], (), receipt=True)
    store.commit()

    keys = [k for _, k, _ in store.changelog]
    assert keys[0] == HEAD  # the redo record first (nothing sent: no outbox entry)
    assert keys.count(stock_key("A")) == 1
    assert sorted(keys[1:]) == sorted([stock_key("A"), receipt_key("m1"), receipt_key("m2"), receipt_key("m3")])
    assert {p for p, _, _ in store.changelog} == {1}
    assert decode(store.dbs[1][stock_key("A")], validate=False).reservation_seq == 3
    head: Transaction = decode(store.dbs[1][HEAD], validate=False)
    assert head.message_id == "#1|m3"  # the partition's first transaction, and its last message


def test_scans_merge_staged_inserts_updates_and_deletes_in_key_order(store: Any) -> None:
    store.open(0)
    store.stage(
        "m1",
        [
            Write(reservation_key("A", "O2"), encode(reservation("O2", 2, 2))),
            Write(reservation_key("A", "O4"), encode(reservation("O4", 4, 4))),
        ],
        (),
        receipt=False,
    )
    store.commit()

    store.stage(
        "m2",
        [
            Write(reservation_key("A", "O3"), encode(reservation("O3", 3, 3))),  # insert between
            Write(reservation_key("A", "O2"), None),  # delete a committed one
            Write(reservation_key("A", "O4"), encode(reservation("O4", 40, 4))),  # update
            Write(reservation_key("B", "O9"), encode(reservation("O9", 9, 9))),
        ],
        (),
        receipt=False,
    )

    assert [(r.order_no, r.reserved_qty) for r in store.reservations_of("A")] == [("O3", 3), ("O4", 40)]
    store.commit()
    assert [(r.order_no, r.reserved_qty) for r in store.reservations_of("A")] == [("O3", 3), ("O4", 40)]
    assert store.dbs[0].get(reservation_key("A", "O2")) is None


def test_redo_completes_a_transaction_cut_after_its_redo_record(store: Any) -> None:
    store.open(2)
    writes = (
        Write(stock_key("A"), encode(SkuStock("A", reservation_seq=7))),
        Write(receipt_key("m7"), encode(StoredReceipt("m7", (OUT,)))),
    )
    store.dbs[2][HEAD] = encode(Transaction(message_id="m7", writes=writes, outputs=(OUT,)))  # cut here

    assert store.recover() == ((OUT,), [])  # a head written before outboxes: its outputs, to send again

    assert decode(store.dbs[2][stock_key("A")], validate=False).reservation_seq == 7
    assert store.receipt("m7") is not None
    assert [k for _, k, _ in store.changelog] == [stock_key("A"), receipt_key("m7")]


def test_nothing_staged_commits_nothing(store: Any) -> None:
    store.open(0)
    store.stage("m1", [], (b"out",), receipt=False)  # outputs only: sent, nothing to redo
    store.commit()
    assert store.changelog == []
    assert store.dbs[0].get(HEAD) is None


def test_a_message_over_its_budget_is_refused_whole_and_the_transaction_goes_on(store: Any) -> None:
    from streams.stores import TooLarge

    store.message_budget = 2_000
    store.open(0)
    store.stage("small", [Write(stock_key("A"), encode(SkuStock("A", reservation_seq=1)))], (OUT,), receipt=True)
    staged = store.staged_bytes
    with pytest.raises(TooLarge, match="big"):
        store.stage("big", [Write(stock_key("B"), b"x" * 1_000)], (b"y" * 1_500,), receipt=True)
    assert store.staged_bytes == staged and store.stock("B") is None and store.receipt("big") is None
    store.commit()
    assert store.stock("A") == SkuStock("A", reservation_seq=1)
    assert decode(store.dbs[0][HEAD], validate=False).message_id == "#1|small"


# --- a transaction's outputs wait for its redo record -------------------------------------------


class _HeldProducer:
    """A producer whose records stay in flight until their topic is ``reachable`` (as after a
    broker outage: librdkafka sends each partition's records on their own, in no order across
    them); ``poll`` delivers what can be."""

    def __init__(self) -> None:
        self.in_flight: list[tuple[str, int | None, Any]] = []
        self.produced: list[str] = []  # topics, in the order records were handed over
        self.reachable: set[str] = set()

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None, partition: int | None = None, on_delivery: Any = None
    ) -> None:
        self.in_flight.append((topic, partition, on_delivery))
        self.produced.append(topic)

    def poll(self, _: float) -> int:
        delivered = [r for r in self.in_flight if r[0] in self.reachable]
        for record in delivered:
            self.in_flight.remove(record)
            t, p, on_delivery = record
            on_delivery(None, SimpleNamespace(topic=lambda t=t: t, partition=lambda p=p: p, offset=lambda: 0))
        return len(delivered)

    def __len__(self) -> int:
        return len(self.in_flight)


def test_a_transactions_outputs_leave_only_once_its_redo_record_is_acknowledged(store: Any) -> None:
    """Soak profile of the fault-injection suite (issue 12): the worker applied a backlog
    fetched during a broker outage and was SIGKILLed while the queued records were being sent.
    Some stock-commands partitions got the order agent's ExpectReturns, the order-state
    changelog did not get the transactions that sent them; the replay read the returns'
    inspections before their pickups (another interleaving), so no InspectReturn closed the
    pickups' warehouse and those units stayed in transit for ever. An output must never
    outlive the state that decided it: it leaves once the transaction's redo record is in
    Kafka, in the order sent, and the flush before an offset commit waits for it."""
    import asyncio

    from streams.checkpoint import commit_then_send
    from streams.record_sink import RecordSink

    producer = _HeldProducer()
    sink = RecordSink.over(producer)
    sink.watch("stock-changelog", lambda *_: None)
    store._send_changelog = lambda partition, k, v: sink.send("stock-changelog", k, v, partition=partition)

    for n, partition in enumerate((1, 1, 2)):  # two transactions of partition 1, one of 2
        store.open(partition)
        store.stage(f"m{n}", [Write(stock_key("A"), encode(SkuStock("A", reservation_seq=n)))], (OUT,), receipt=True)
        outgoing = Outgoing(4)
        outgoing.output("stock-commands", b"A", OUT)
        commit_then_send(store, sink, "stock-changelog", outgoing)
        assert not outgoing
    sink.poll()
    # A SIGKILL now may land any partition's records and lose the others': no output may be
    # among them while the changelog records before it are unacknowledged.
    assert "stock-commands" not in producer.produced
    flushing = asyncio.new_event_loop()
    try:
        flush = flushing.create_task(sink.flush())
        flushing.run_until_complete(asyncio.sleep(0.02))
        assert not flush.done()  # no offset commit passes held outputs
        producer.reachable |= {"stock-changelog", "stock-commands"}  # the broker is back
        flushing.run_until_complete(asyncio.wait_for(flush, 1))  # the outputs were released, then delivered
    finally:
        flushing.close()
    # each transaction: its outbox entry, its redo record, the SKU and the receipt
    assert producer.produced == ["stock-changelog"] * 12 + ["stock-commands"] * 3
