"""Receipt retention (tables/retention.py): receipts, document receipts, release receipts and
settled inbound documents are pruned once their partition's event-time horizon passes them,
in the outcome of the message that moved it; a message older than the horizon with no receipt
is refused with an ANOMALY and changes nothing; within the retention a re-send is a duplicate
as before. The in-memory tables (the reference model) and the worker's RocksDB store agree."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.base import Event
from schemas.codec import decode
from schemas.internal import ReleaseStock
from schemas.outputs import AlertType, InventoryAlert, InventoryChanged
from streams.keys import CLOCK, EXPECTATION, HEAD, INDEX, index_entry, index_key, parts, receipt_key
from streams.keys import RECEIPT as RECEIPT_KEY
from tables.center import InventoryCenter, MemoryTables
from tables.policy import CorePolicy
from tables.retention import DOCUMENT, ORDERS, RECEIPT, STOCK, horizon, hour_of
from tables.routing import stock_commands_for
from tables.state import Transaction
from tables.stock import apply_stock
from tests.unit.event_factory import EventFactory
from tests.unit.rocks import stock_store

DAY = timedelta(days=1)
POLICY = CorePolicy(reorder_point=0)  # receipts kept 7 days, the default


def outputs_of(center: InventoryCenter, event: Event) -> list[object]:
    n = len(center.outputs)
    center.submit(event)
    return center.outputs[n:]


def anomalies(outputs: list[object]) -> list[InventoryAlert]:
    return [x for x in outputs if isinstance(x, InventoryAlert) and x.alert_type == AlertType.ANOMALY]


def indexed(tables: MemoryTables, family: str) -> dict[tuple[str, ...], Any]:
    return {ref: hour for hour, refs in tables.retention_index.get(family, {}).items() for ref in refs}


def indexed_receipts(tables: MemoryTables) -> set[str]:
    return {ref[1] for family in (STOCK, ORDERS) for ref in indexed(tables, family) if ref[0] == RECEIPT}


def snapshot(center: InventoryCenter) -> tuple[object, ...]:
    t = center.tables
    return (
        dict(t.stock_by_sku),
        dict(t.reservations_by_key),
        dict(t.orders_by_no),
        {k: e for k, e in t.expectations_by_key.items() if e.outstanding_qty > 0},
    )


@pytest.fixture
def day0() -> tuple[InventoryCenter, EventFactory, list[Event]]:
    """A receipt, an order shipped and delivered, an ASN received short and closed."""
    center, f = InventoryCenter(POLICY), EventFactory()
    events = [
        f.goods_received("RCV-1", "WH1", [("A", 10, 0)]),
        f.order_created("O1", [("A", 2)]),
        f.order_shipped("O1", "SH1", "WH1", [("A", 2)]),
        f.tracking("Delivered", "O1", "SH1"),
        f.inbound_announced("ASN-1", "WH1", [("B", 5)]),
        f.goods_received("RCV-2", "WH1", [("B", 4, 0)], asn_no="ASN-1", closes_asn=True),
    ]
    center.submit_all(events)
    return center, f, events


def test_receipts_and_settled_documents_older_than_the_retention_are_pruned_with_their_index(day0: Any) -> None:
    center, f, _ = day0
    t = center.tables
    old_receipts = set(t.receipts_by_id)
    assert old_receipts == indexed_receipts(t)  # every receipt is indexed
    assert any(k.startswith("doc|") for k in old_receipts)  # document receipts too
    assert ("B", "WH1", "ASN-1") in t.expectations_by_key  # closed, kept: it refuses a late dispatch
    before = {sku: t.stock_by_sku[sku] for sku in ("A", "B")}

    f.advance(6 * DAY)
    center.submit(f.goods_received("RCV-3", "WH2", [("C", 1, 0)]))  # stock partition, within retention
    center.submit(f.order_created("O2", [("C", 1)]))
    assert old_receipts <= set(t.receipts_by_id)

    f.advance(2 * DAY)  # day 8: the horizon passes day 0
    center.submit(f.goods_received("RCV-4", "WH2", [("C", 1, 0)]))
    center.submit(f.order_created("O3", [("C", 1)]))

    assert not old_receipts & set(t.receipts_by_id)
    assert ("B", "WH1", "ASN-1") not in t.expectations_by_key
    for family in (STOCK, ORDERS):
        clock = t.clocks[family]
        limit = horizon(clock, POLICY)
        assert limit is not None and clock.pruned_before == limit
        assert all(hour >= limit for hour in t.retention_index[family])
    assert set(t.receipts_by_id) == indexed_receipts(t)
    assert {sku: t.stock_by_sku[sku] for sku in ("A", "B")} == before  # pruning moved no position
    assert t.orders_by_no["O1"].status == "DELIVERED"


def test_a_resend_after_its_receipt_was_pruned_is_an_anomaly_and_changes_nothing(day0: Any) -> None:
    center, f, events = day0
    f.advance(8 * DAY)
    center.submit(f.goods_received("RCV-3", "WH2", [("C", 1, 0)]))
    center.submit(f.order_created("O2", [("C", 1)]))
    before = snapshot(center)
    receipts = dict(center.tables.receipts_by_id)

    for event in events:  # every day-0 event again, same ids, same content
        out = outputs_of(center, event)
        refused = anomalies(out)
        assert refused and out == refused, (type(event).__name__, out)
        assert all(a.alert_id.endswith("|beyond-retention") for a in refused)
        assert "refused, it may have been applied already" in refused[0].message

    assert snapshot(center) == before
    assert center.tables.receipts_by_id == receipts  # nothing kept for a refused message
    again = outputs_of(center, events[0])  # refused again: the same alert id, consumers drop it
    assert [a.alert_id for a in again] == [a.alert_id for a in anomalies(outputs_of(center, events[0]))]


def test_a_document_resent_under_a_new_id_after_the_horizon_is_refused_too(day0: Any) -> None:
    center, f, events = day0
    f.advance(8 * DAY)
    center.submit(f.goods_received("RCV-3", "WH2", [("C", 1, 0)]))
    before = snapshot(center)
    retry = events[0].model_copy(update={"event_id": "wms-retry-1"})  # same receipt, same (old) time
    out = outputs_of(center, retry)
    assert anomalies(out) and all(isinstance(x, InventoryAlert) for x in out)
    assert snapshot(center) == before


def test_a_resend_within_the_retention_is_a_duplicate_as_before(day0: Any) -> None:
    center, f, events = day0
    first = [x for x in center.outputs if isinstance(x, InventoryChanged)]
    f.advance(6 * DAY + timedelta(hours=23))
    center.submit(f.goods_received("RCV-3", "WH2", [("C", 1, 0)]))
    center.submit(f.order_created("O2", [("C", 1)]))
    before = snapshot(center)

    out = outputs_of(center, events[0])

    assert not anomalies(out)
    assert [x for x in out if isinstance(x, InventoryChanged)] == first[:1]  # re-emitted as recorded
    assert snapshot(center) == before


def test_a_late_announcement_of_a_document_pruned_after_its_closing_is_refused(day0: Any) -> None:
    """The closed ASN-1 was forgotten; its dispatch, read now with its own (old) time, must not
    put units in transit for ever."""
    center, f, _ = day0
    old = f.now
    f.advance(8 * DAY)
    center.submit(f.goods_received("RCV-3", "WH2", [("C", 1, 0)]))
    late = f.inbound_announced("ASN-1", "WH1", [("B", 5)]).model_copy(update={"occurred_at": old})
    out = outputs_of(center, late)
    assert anomalies(out)
    position = center.position("B", "WH1")
    assert position is not None and position.in_transit_qty == 0


def test_an_open_document_is_live_state_and_stays() -> None:
    center, f = InventoryCenter(POLICY), EventFactory()
    center.submit(f.inbound_announced("ASN-9", "WH1", [("B", 5)]))
    f.advance(30 * DAY)
    center.submit(f.goods_received("RCV-9", "WH1", [("B", 2, 0)], asn_no="ASN-9", closes_asn=False))
    assert center.tables.expectations_by_key[("B", "WH1", "ASN-9")].outstanding_qty == 3
    f.advance(30 * DAY)
    center.submit(f.goods_received("RCV-10", "WH2", [("C", 1, 0)]))
    assert ("B", "WH1", "ASN-9") in center.tables.expectations_by_key
    position = center.position("B", "WH1")
    assert position is not None and position.in_transit_qty == 3


def test_an_expiry_tick_older_than_the_horizon_still_expires_its_order_and_keeps_no_receipt() -> None:
    center, f = InventoryCenter(POLICY), EventFactory()
    center.submit(f.goods_received("RCV-1", "WH1", [("A", 5, 0)]))
    center.submit(f.order_created("O1", [("A", 2)], expires_in=timedelta(minutes=30)))
    order = center.order("O1")
    assert order is not None and order.reservation_expires_at is not None
    due = order.reservation_expires_at
    f.advance(8 * DAY)
    center.submit(f.order_created("O2", [("A", 1)]))  # the order partition's clock moves on

    center.expire_due(f.now)

    order = center.order("O1")
    assert order is not None and order.status == "EXPIRED"
    tick_id = f"O1|expiry|{due.isoformat()}"
    assert tick_id not in center.tables.receipts_by_id
    assert tick_id not in {ref[1] for ref in indexed(center.tables, ORDERS)}


def test_ticks_and_refused_messages_never_move_the_clock() -> None:
    center, f = InventoryCenter(POLICY), EventFactory()
    center.submit(f.order_created("O1", [("A", 2)], expires_in=timedelta(days=30)))
    clock = center.tables.clocks[ORDERS]
    center.expire_due(f.now + timedelta(days=31))  # a tick 30 days ahead of every event
    assert center.tables.clocks[ORDERS] == clock


def test_a_release_receipt_is_pruned_like_any_receipt() -> None:
    """A release read before its reservation leaves a receipt under the reservation's id;
    the horizon passes it like any other (the reservation it blocks occurred before it)."""
    tables, f = MemoryTables(), EventFactory()
    release = ReleaseStock.model_construct(
        command_id="ev-9|A|release",
        sku="A",
        occurred_at=f.now,
        cause_event_type="OrderCancelled",
        cause_event_id="ev-9",
        order_no="O9",
        reserve_command_id="ev-1|A|reserve",
    )
    tables.store_stock(apply_stock(tables, release, POLICY))
    assert {"ev-9|A|release", "ev-1|A|reserve"} <= indexed_receipts(tables)
    f.advance(8 * DAY)
    for command in stock_commands_for(f.goods_received("RCV-1", "WH1", [("A", 1, 0)])):
        tables.store_stock(apply_stock(tables, command, POLICY))
    assert "ev-1|A|reserve" not in tables.receipts_by_id
    assert "ev-9|A|release" not in tables.receipts_by_id


def test_pruning_is_bounded_per_message_and_catches_up() -> None:
    policy = CorePolicy(reorder_point=0, prune_batch=3)
    center, f = InventoryCenter(policy), EventFactory()
    for n in range(10):
        center.submit(f.goods_received(f"RCV-{n}", "WH1", [("A", 1, 0)]))  # 2 receipts each
    old = set(center.tables.receipts_by_id)
    f.advance(8 * DAY)
    left = []
    for n in range(10):
        center.submit(f.goods_received(f"NEW-{n}", "WH2", [("C", 1, 0)]))
        left.append(len(old & set(center.tables.receipts_by_id)))
    assert left[:4] == [17, 14, 11, 8]  # 3 index entries a message, oldest first
    assert left[-1] == 0
    clock = center.tables.clocks[STOCK]
    assert clock.pruned_before == horizon(clock, policy)


def test_no_retention_keeps_everything_and_refuses_nothing(day0: Any) -> None:
    _, f, events = day0
    center = InventoryCenter(CorePolicy(reorder_point=0, receipt_retention_days=None))
    center.submit_all(events)
    f.advance(30 * DAY)
    center.submit(f.goods_received("RCV-3", "WH2", [("C", 1, 0)]))
    kept = set(center.tables.receipts_by_id)
    assert not anomalies(outputs_of(center, events[0]))
    assert set(center.tables.receipts_by_id) == kept and not center.tables.clocks


# --- properties -----------------------------------------------------------------------------

STEP = st.tuples(
    st.sampled_from(["receipt", "order", "cancel", "asn", "close"]),
    st.integers(0, 3),  # which SKU / order
    st.integers(0, 60),  # hours before it
)


@given(st.lists(STEP, min_size=1, max_size=40))
def test_pruning_never_changes_state_and_keeps_the_index_exact(steps: list[tuple[str, int, int]]) -> None:
    """Events in time order over up to ~100 days, pruned after 2 days and kept (almost) for
    ever: the same positions, reservations, orders and open documents; every receipt kept is
    indexed; nothing is indexed before the horizon; exactly the receipts the horizon passed
    are gone."""
    f = EventFactory()
    pruned = InventoryCenter(CorePolicy(reorder_point=0, receipt_retention_days=2))
    kept = InventoryCenter(CorePolicy(reorder_point=0, receipt_retention_days=100_000))
    announced = [0, 0, 0, 0]  # every announcement a new document (no re-sent documents here)
    for n, (kind, k, hours) in enumerate(steps):
        f.advance(timedelta(hours=hours))
        sku = "ABCD"[k]
        if kind == "receipt":
            event = f.goods_received(f"R{n}", "WH1", [(sku, 3, 0)])
        elif kind == "order":
            event = f.order_created(f"O{k}-{n}", [(sku, 1)])
        elif kind == "cancel":
            orders = sorted(pruned.tables.orders_by_no)
            if not orders:
                continue
            event = f.order_cancelled(orders[k % len(orders)])
        elif kind == "asn":
            announced[k] += 1
            event = f.inbound_announced(f"ASN{k}-{announced[k]}", "WH1", [(sku, 2)])
        else:
            event = f.goods_received(f"C{n}", "WH1", [(sku, 1, 0)], asn_no=f"ASN{k}-{announced[k]}", closes_asn=True)
        out = outputs_of(pruned, event)
        kept.submit(event)
        assert not [a for a in anomalies(out) if a.alert_id.endswith("|beyond-retention")]
        assert snapshot(pruned) == snapshot(kept)
        t = pruned.tables
        assert set(t.receipts_by_id) == indexed_receipts(t)
        for family, clock in t.clocks.items():
            limit = horizon(clock, pruned.policy)
            assert limit is not None and clock.pruned_before == limit
            assert all(hour >= limit for hour in t.retention_index.get(family, {}))
            for ref, hour in indexed(kept.tables, family).items():
                if ref[0] == RECEIPT:
                    assert (ref[1] in t.receipts_by_id) == (hour >= limit), (family, ref, hour, limit)
                elif ref in indexed(t, family) or hour >= limit:
                    assert ref[1:] in t.expectations_by_key  # a settled document the horizon has not passed


# --- the worker's store: the same decisions over RocksDB, and redo -------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    with stock_store(tmp_path, name="") as s:
        s.open(0)
        yield s


def stock_day(days: int, per_day: int) -> list[Any]:
    """Stock commands over ``days`` days: receipts (with document receipts), announcements
    closed by receipts, re-sent documents."""
    f, commands = EventFactory(step=timedelta(hours=24 / per_day)), []
    for n in range(days * per_day):
        sku = f"S{n % 5}"
        events = [f.goods_received(f"R{n}", "WH1", [(sku, 2, 0)])]
        if n % 3 == 0:
            events.append(f.inbound_announced(f"A{n}", "WH2", [(sku, 4)]))
            events.append(f.goods_received(f"RA{n}", "WH2", [(sku, 3, 0)], asn_no=f"A{n}", closes_asn=True))
        for event in events:
            commands.extend(stock_commands_for(event))
    return commands


def run_store(store: Any, commands: list[Any], policy: CorePolicy, batch: int) -> None:
    for n, command in enumerate(commands):
        outcome = apply_stock(store, command, policy)
        if not outcome.duplicate:
            store.stage_outcome(outcome, ())
        if n % batch == batch - 1:
            store.commit()
    store.commit()


def store_state(store: Any) -> dict[bytes, bytes]:
    return {k: v for k, v in store.dbs[0].items() if k != HEAD}


def test_the_store_prunes_what_the_memory_tables_prune(store: Any) -> None:
    """The same commands through the in-memory tables and through RocksDB (in batches, staged
    writes read back): the same receipts, documents, index and clock."""
    policy = CorePolicy(reorder_point=0, receipt_retention_days=2, prune_batch=5)
    commands = stock_day(days=6, per_day=12)
    memory = MemoryTables()
    for command in commands:
        memory.store_stock(apply_stock(memory, command, policy))
    run_store(store, commands, policy, batch=7)

    rows = store_state(store)
    assert {parts(k)[0] for k in rows if k.startswith(RECEIPT_KEY)} == set(memory.receipts_by_id)
    assert {parts(k) for k in rows if k.startswith(EXPECTATION)} == set(memory.expectations_by_key)
    assert [index_entry(k) for k in sorted(rows) if k.startswith(INDEX)] == memory.aged(
        STOCK, None, hour_of(commands[-1].occurred_at) + DAY, 10**6
    )
    assert decode(rows[CLOCK], validate=False) == memory.clocks[STOCK]
    assert len(memory.receipts_by_id) < len(commands)  # pruned


def test_aged_merges_staged_index_writes_in_key_order(store: Any) -> None:
    f = EventFactory()
    h0, h1, h2 = hour_of(f.now), hour_of(f.now) + timedelta(hours=1), hour_of(f.now) + timedelta(hours=2)
    store.dbs[0][index_key(h0, (RECEIPT, "b|x"))] = b"1"
    store.dbs[0][index_key(h1, (RECEIPT, "d"))] = b"1"
    store.dbs[0][index_key(h2, (RECEIPT, "z"))] = b"1"
    from tables.state import Write

    store.stage(
        "m",
        [
            Write(index_key(h0, (RECEIPT, "a")), b"1"),
            Write(index_key(h0, (DOCUMENT, "S", "W", "D")), b"1"),
            Write(index_key(h1, (RECEIPT, "d")), None),
            Write(index_key(h1, (RECEIPT, "e")), b"1"),
        ],
        (),
        receipt=False,
    )
    assert store.aged(STOCK, None, h2, 100) == [
        (h0, (DOCUMENT, "S", "W", "D")),
        (h0, (RECEIPT, "a")),
        (h0, (RECEIPT, "b|x")),
        (h1, (RECEIPT, "e")),
    ]
    assert store.aged(STOCK, h1, h2, 100) == [(h1, (RECEIPT, "e"))]
    assert store.aged(STOCK, None, h2, 2) == [(h0, (DOCUMENT, "S", "W", "D")), (h0, (RECEIPT, "a"))]


def test_a_pruning_transaction_cut_short_is_completed_by_redo_and_redo_is_idempotent(
    store: Any, tmp_path: Path
) -> None:
    policy = CorePolicy(reorder_point=0, receipt_retention_days=1, prune_batch=1000)
    commands = stock_day(days=3, per_day=6)
    cut = len(commands) - 1
    run_store(store, commands[:cut], policy, batch=5)
    store.open(0)
    outcome = apply_stock(store, commands[cut], policy)  # the day's last one prunes a day
    assert outcome.retention.forgotten
    store.stage_outcome(outcome, ())
    store.commit()
    done = store_state(store)
    head: Transaction = decode(store.dbs[0][HEAD], validate=False)
    assert any(w.value is None and w.key.startswith(RECEIPT_KEY) for w in head.writes)  # deletes are redo writes

    # The crash: the redo record reached RocksDB, none of the writes did.
    db = store.dbs[0]
    for w in head.writes:
        if w.value is None:
            db[w.key] = b"stale"  # "not deleted yet" (any value: redo must delete it)
        else:
            db.delete(w.key)
    assert store_state(store) != done
    store.recover()
    assert store_state(store) == done
    store.recover()  # a second crash during redo: the same again
    assert store_state(store) == done


def test_a_refused_message_writes_nothing(store: Any) -> None:
    policy = CorePolicy(reorder_point=0, receipt_retention_days=1)
    commands = stock_day(days=3, per_day=4)
    run_store(store, commands, policy, batch=3)
    done = store_state(store)
    outcome = apply_stock(store, commands[0], policy)
    assert outcome.duplicate and outcome.receipt is None
    assert [a.alert_id for a in outcome.events] == [f"{commands[0].command_id}|beyond-retention"]  # type: ignore[attr-defined]
    assert store_state(store) == done
    assert receipt_key(commands[0].command_id) not in done
