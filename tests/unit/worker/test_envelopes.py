"""Envelopes and the outbox, over a real RocksDB database (rocksdict), no Kafka: a
transaction's internal messages go in one envelope per destination partition, numbered with
the partition's transaction sequence; what a transaction sends is kept until a flush covered
it; after a crash the kept entries are sent again, in order, and only those."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from schemas.codec import decode, encode
from schemas.internal import Envelope
from streams.envelopes import Outgoing, partition_for
from streams.keys import HEAD, OUTBOX, outbox_key, stock_key
from streams.stores import head_sequence
from tables.state import Outbox, OutRecord, SkuStock, Transaction, Write
from tests.unit.rocks import stock_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    with stock_store(tmp_path) as s:
        yield s


def _write(store: Any, n: int) -> None:
    store.stage(f"m{n}", [Write(stock_key("A"), encode(SkuStock("A", reservation_seq=n)))], (), receipt=False)


def _outgoing(n: int) -> Outgoing:
    out = Outgoing(4)
    out.internal("stock-commands", b"SKU-1", b"cmd-%d" % n)
    out.output("inventory-changes", b"SKU-1|WH1", b"out-%d" % n)
    return out


def test_the_destination_partition_is_kafkas_murmur2_partition_of_the_key() -> None:
    rng = random.Random(7)
    for _ in range(500):
        k = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24)))
        for partitions in (1, 4, 12):
            assert partition_for(k, partitions) == DefaultPartitioner()(k, list(range(partitions)), [])


def test_internal_messages_go_in_one_envelope_per_destination_partition_in_order() -> None:
    out = Outgoing(4)
    keys = [b"SKU-%d" % n for n in range(12)]
    for n, k in enumerate(keys):
        out.internal("stock-commands", k, b"cmd-%d" % n)
    out.output("order-status", b"O1", b"status")
    records = out.records("orders|3", 17)

    envelopes = [r for r in records if r.topic == "stock-commands"]
    assert len(envelopes) == len({partition_for(k, 4) for k in keys})
    assert [r.topic for r in records[len(envelopes) :]] == ["order-status"]  # outputs: one record each
    for r in envelopes:
        envelope: Envelope = decode(r.value, validate=True)
        assert (envelope.source, envelope.seq, r.key) == ("orders|3", 17, b"orders|3")
        expected = [b"cmd-%d" % n for n, k in enumerate(keys) if partition_for(k, 4) == r.partition]
        assert envelope.items == expected  # in the order decided
    assert sorted(i for r in envelopes for i in decode(r.value).items) == sorted(b"cmd-%d" % n for n in range(12))


def test_transactions_are_numbered_and_what_they_send_is_kept_before_their_head(store: Any) -> None:
    store.open(2)
    for n in (1, 2, 3):
        _write(store, n)
        records = store.commit(_outgoing(n))
        assert [decode(r.value).seq for r in records if r.topic == "stock-commands"] == [n]
    assert store.sequence() == 3
    assert head_sequence(decode(store.dbs[2][HEAD], validate=False)) == 3
    first = [k for _, k, _ in store.changelog[:3]]
    assert first == [outbox_key(1), HEAD, stock_key("A")]  # the outbox entry before the head
    kept = [k for k, _ in store.dbs[2].items(from_key=OUTBOX) if k.startswith(OUTBOX)]
    assert kept == [outbox_key(1), outbox_key(2), outbox_key(3)]  # nothing flushed yet


def test_a_flush_releases_the_entries_it_covered_with_the_next_transaction(store: Any) -> None:
    store.open(0)
    for n in (1, 2):
        _write(store, n)
        store.commit(_outgoing(n))
    marks = store.marks()  # taken before the flush: transactions 1 and 2 handed to the sink
    _write(store, 3)
    store.commit(_outgoing(3))  # committed while the flush waited: not covered
    store.flushed(marks)
    _write(store, 4)
    store.commit(_outgoing(4))
    kept = [k for k, _ in store.dbs[0].items(from_key=OUTBOX) if k.startswith(OUTBOX)]
    assert kept == [outbox_key(3), outbox_key(4)]
    head: Transaction = decode(store.dbs[0][HEAD], validate=False)
    assert {w.key for w in head.writes if w.value is None} == {outbox_key(1), outbox_key(2)}  # redo deletes them too


def test_recovery_sends_again_every_kept_entry_in_order_and_drops_one_past_the_head(store: Any) -> None:
    store.open(1)
    for n in (1, 2, 3):
        _write(store, n)
        store.commit(_outgoing(n))
    # A transaction cut short after its outbox entry, before its head: never sent.
    stray = Outbox(4, (OutRecord("stock-commands", b"stock|1", b"never", 2),))
    store.dbs[1][outbox_key(4)] = encode(stray)

    store.forget()  # a rebalance, or a restart
    legacy, records = store.recover()
    assert legacy == ()
    assert records == [r for n in (1, 2, 3) for r in _outgoing(n).records("stock|1", n)]  # all, in order
    assert b"never" not in [r.value for r in records]
    assert store.dbs[1].get(outbox_key(4)) is None  # deleted, and its number is used again
    _write(store, 4)
    records = store.commit(_outgoing(4))
    assert [decode(r.value).seq for r in records if r.topic == "stock-commands"] == [4]


def test_the_numbering_survives_a_restart_from_the_state_alone(store: Any) -> None:
    store.open(0)
    for n in (1, 2):
        _write(store, n)
        store.commit(_outgoing(n))
    store.forget()
    store.open(0)
    assert store.sequence() == 2
    _write(store, 3)
    assert [decode(r.value).seq for r in store.commit(_outgoing(3)) if r.topic == "stock-commands"] == [3]


def test_a_receiver_keeps_the_highest_number_applied_per_source_in_the_transaction(store: Any) -> None:
    store.open(3)
    assert store.received("orders|1") == 0
    store.stage_received("orders|1", 5)
    assert store.received("orders|1") == 5  # the next envelope of the batch sees it
    store.commit()
    store.stage_received("orders|2", 9)
    store.commit()
    assert (store.received("orders|1"), store.received("orders|2")) == (5, 9)
    head: Transaction = decode(store.dbs[3][HEAD], validate=False)
    assert head.message_id == "#2|orders|2#9"


def test_a_transaction_that_only_sends_is_numbered_and_kept(store: Any) -> None:
    store.open(0)
    records = store.commit(_outgoing(1))  # e.g. answers that change no state
    assert records and store.sequence() == 1
    assert store.dbs[0].get(outbox_key(1)) is not None
    assert store.commit(Outgoing(4)) == [] and store.sequence() == 1  # nothing at all: no transaction
