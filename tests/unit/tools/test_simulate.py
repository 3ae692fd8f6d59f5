"""The source-system simulator (connectors/traffic.py): reproducible, valid, causal, realistic.

One small day is generated once per module; the checks read it as the pipeline would (JSON
lines through ``connectors.produce.parse_event``) and replay it on a fresh reference model,
so they test the stream itself, not the generator's own shadow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from connectors.simulate import main as simulate_main
from connectors.traffic import (
    BACKLOG,
    CALM,
    DayParams,
    DaySimulation,
    generate_day,
    iter_json_lines,
    replay,
    to_json_line,
)
from schemas.base import Event
from schemas.events import parse_event
from schemas.inputs import (
    INPUT_EVENTS,
    Delivered,
    DeliveryFailed,
    GoodsReceived,
    InboundAnnounced,
    InTransit,
    OrderCancelled,
    OrderCreated,
    OrderPaid,
    OrderShipped,
    OutForDelivery,
    PickedUp,
    ReturnInspected,
    ReturnPickedUp,
    ReturnRequested,
    StockAdjusted,
    TransferDispatched,
    TransferReceived,
)
from schemas.outputs import AlertType, InventoryAlert, InventoryLedgerEntry, MovementType, StockBucket
from tables.center import InventoryCenter
from tables.state import ShipmentState
from tests.unit.core.test_core_laws import BUCKET_OF_POSITION, INSIDE, Ledger, held_by_reservations

REPO = Path(__file__).resolve().parents[3]
DAY = {"seed": 5, "orders": 300, "skus": 60, "warehouses": 3}


@pytest.fixture(scope="module")
def day() -> tuple[list[str], DaySimulation]:
    simulation = DaySimulation(DayParams(**DAY))  # type: ignore[arg-type]
    return list(iter_json_lines(simulation.events())), simulation


@pytest.fixture(scope="module")
def events(day: tuple[list[str], DaySimulation]) -> list[Event]:
    return [parse_event(json.loads(line)) for line in day[0]]


@pytest.fixture(scope="module")
def replayed(events: list[Event]) -> InventoryCenter:
    """The day on a fresh model, its expiry timer ticking on the simulated clock."""
    return replay(events)


def _quantities(center: InventoryCenter) -> dict[tuple[str, str], tuple[int, ...]]:
    return {
        (sku, p.warehouse_code): (
            p.on_hand_qty,
            p.reserved_qty,
            p.in_transit_qty,
            p.presold_qty,
            p.outbound_qty,
            p.damaged_qty,
            p.delivered_qty,
            p.version,
        )
        for sku, stock in center.tables.stock_by_sku.items()
        for p in stock.positions
    }


# --- reproducible ------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_lines_and_another_seed_other_lines(
    day: tuple[list[str], DaySimulation],
) -> None:
    assert list(iter_json_lines(generate_day(**DAY))) == day[0]
    assert list(iter_json_lines(generate_day(**{**DAY, "seed": 6}))) != day[0]


def test_the_lines_do_not_depend_on_the_process_hash_seed(tmp_path: Path) -> None:
    """Iterating a set of strings would reorder events between processes."""
    args = ["--seed", "3", "--orders", "80", "--skus", "20", "--warehouses", "2", "--dry-run"]
    runs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"day-{hash_seed}.jsonl"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        runs.append(
            (
                out,
                subprocess.Popen(
                    [sys.executable, "-m", "connectors.simulate", *args, "--out", str(out)],
                    cwd=REPO,
                    env=env,
                    stderr=subprocess.PIPE,
                ),
            )
        )
    for _out, process in runs:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr.decode()
    first, second = (out.read_bytes() for out, _ in runs)
    assert first and first == second


def test_the_cli_writes_the_lines_generate_day_yields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "day.jsonl"
    code = simulate_main(
        ["--seed", "2", "--orders", "40", "--skus", "15", "--warehouses", "2", "--dry-run", "--out", str(out)]
    )
    assert code == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines == list(iter_json_lines(generate_day(seed=2, orders=40, skus=15, warehouses=2)))
    summary = capsys.readouterr().err
    assert f"{len(lines):,} events in" in summary and "OrderCreated" in summary


def test_a_rate_paces_the_day() -> None:
    from connectors.simulate import run

    report, _ = run(DayParams(seed=1, orders=20, skus=10, warehouses=2), None, None, 2000.0, None)
    assert report.events > 50
    assert report.seconds >= (report.events - 1) / 2000.0
    assert report.rate <= 2000.0 * 1.05


# --- valid ---------------------------------------------------------------------------------


def test_every_line_is_a_valid_event_that_reads_back_unchanged(
    day: tuple[list[str], DaySimulation], events: list[Event]
) -> None:
    assert len(events) == len(day[0])
    assert [to_json_line(e) for e in events] == day[0]


def test_event_ids_are_unique_and_time_moves_forward_through_one_day(events: list[Event]) -> None:
    ids = [e.event_id for e in events]
    assert len(set(ids)) == len(ids)
    times = [e.occurred_at for e in events]
    assert times == sorted(times)
    assert times[0].date() == times[-1].date()
    assert (times[-1] - times[0]).total_seconds() > 18 * 3600


# --- causal --------------------------------------------------------------------------------


def test_every_flow_keeps_its_causal_order(events: list[Event]) -> None:
    """Replayed on a fresh model, each event finds what must have come before it: an order
    ships what it holds, a parcel is tracked, delivered and returned in turn, a receipt
    names a document already announced, transfers and negative adjustments take only
    available units."""
    center = InventoryCenter()
    expiry: dict[str, datetime | None] = {}  # orderNo -> reservationExpiresAt
    announced: set[str] = set()  # ASNs, transfers, failed shipments: documents a receipt may name
    requested: set[str] = set()
    picked_up: set[str] = set()
    tracked: Counter[str] = Counter()  # shipmentNo -> tracking steps so far
    steps = (PickedUp, InTransit, OutForDelivery)
    for e in events:
        center.expire_due(e.occurred_at)
        match e:
            case OrderCreated():
                expiry[e.order_no] = e.reservation_expires_at
            case OrderPaid() | OrderCancelled():
                order = center.order(e.order_no)
                assert order is not None and not order.shipments, e
                due = expiry[e.order_no]
                assert not isinstance(e, OrderPaid) or (due is not None and e.occurred_at < due), e
            case OrderShipped():
                order = center.order(e.order_no)
                assert order is not None and order.outbound_issued, f"shipped before it was instructed: {e}"
                for line in e.lines:
                    held = order.line(line.sku)
                    # A line split across warehouses ships each part from its own warehouse.
                    assert held is not None and held.held_at(e.warehouse_code) >= line.quantity, (
                        f"shipped more than reserved there: {e}"
                    )
            case PickedUp() | InTransit() | OutForDelivery() | Delivered() | DeliveryFailed():
                order = center.order(e.order_no)
                shipment = order.shipment(e.shipment_no) if order else None
                assert shipment is not None and shipment.state == ShipmentState.SHIPPED, e
                step = steps.index(type(e)) if isinstance(e, steps) else len(steps)
                assert tracked[e.shipment_no] == step, f"tracked out of turn: {e}"
                tracked[e.shipment_no] += 1
                if isinstance(e, DeliveryFailed):
                    announced.add(e.shipment_no)  # the parcel comes back under its number
            case ReturnRequested():
                order = center.order(e.order_no)
                assert order is not None and any(s.state == ShipmentState.DELIVERED for s in order.shipments)
                requested.add(e.return_no)
            case ReturnPickedUp():
                assert e.return_no in requested, e
                picked_up.add(e.return_no)
            case ReturnInspected():
                assert e.return_no in picked_up, e
            case InboundAnnounced():
                announced.add(e.asn_no)
            case GoodsReceived():
                assert e.asn_no is None or e.asn_no in announced, f"received before announced: {e}"
            case TransferDispatched():
                for line in e.lines:
                    p = center.position(line.sku, e.from_warehouse_code)
                    assert p is not None and p.available_qty >= line.quantity, (e, p)
                announced.add(e.transfer_no)
            case TransferReceived():
                assert e.transfer_no in announced, e
            case StockAdjusted() if e.delta < 0:
                p = center.position(e.sku, e.warehouse_code)
                assert p is not None and p.available_qty >= -e.delta, (e, p)
        center.submit(e)


# --- realistic -------------------------------------------------------------------------------


def test_the_day_has_every_event_type_of_the_three_source_systems(events: list[Event]) -> None:
    seen = Counter(type(e).__name__ for e in events)
    planner = {"ReorderPointSet"}  # the ERP planner's settings are not part of a simulated day
    assert set(seen) == set(INPUT_EVENTS) - planner, f"missing: {set(INPUT_EVENTS) - planner - set(seen)}"
    created = [e for e in events if isinstance(e, OrderCreated)]
    assert len(created) == DAY["orders"]
    assert {e.order_type.value for e in created} == {"NORMAL", "PRESALE", "GIFT"}
    assert any(e.reservation_expires_at for e in created)
    assert {len(e.items) for e in created} == {1, 2, 3, 4, 5}


def test_sku_popularity_is_long_tailed(events: list[Event]) -> None:
    lines = Counter(item.sku for e in events if isinstance(e, OrderCreated) for item in e.items)
    ranked = [n for _, n in lines.most_common()]
    top_tenth = sum(ranked[: DAY["skus"] // 10]) / sum(ranked)
    assert top_tenth > 0.4, f"the top 10% of SKUs get {top_tenth:.0%} of the order lines"
    assert len(lines) > DAY["skus"] * 0.6, "the tail is ordered too, now and then"


def test_replayed_on_the_model_few_orders_are_rejected_some_expire_and_nothing_is_anomalous(
    replayed: InventoryCenter,
) -> None:
    statuses = Counter(o.status.value for o in replayed.tables.orders_by_no.values())
    assert 0 < statuses["REJECTED"] <= 0.08 * DAY["orders"], statuses
    assert statuses["EXPIRED"] > 0 and statuses["CANCELLED"] > 0, statuses
    assert statuses["DELIVERED"] + statuses["RETURNED"] + statuses["PARTIALLY_RETURNED"] > DAY["orders"] / 3


def test_the_stream_alone_rebuilds_the_generators_shadow(
    day: tuple[list[str], DaySimulation], replayed: InventoryCenter
) -> None:
    shadow = day[1].shadow
    assert _quantities(replayed) == _quantities(shadow)
    assert {k: o.status for k, o in replayed.tables.orders_by_no.items()} == {
        k: o.status for k, o in shadow.tables.orders_by_no.items()
    }


def test_the_inventory_laws_hold_after_the_day(replayed: InventoryCenter, events: list[Event]) -> None:
    """Quantities consistent with the reservations, the ledger complete, units conserved
    over the network (docs/inventory-model.md, as tests/unit/core/test_core_laws.py states them),
    and nothing the core had to book as an anomaly or a shortage."""
    center = replayed
    t = center.tables
    ledger = Ledger()
    anomalies = []
    for out in center.outputs:
        if isinstance(out, InventoryLedgerEntry):
            ledger.add(out)
        elif isinstance(out, InventoryAlert) and out.alert_type in (AlertType.ANOMALY, AlertType.SHORTAGE):
            anomalies.append(out.message)
    assert not anomalies, anomalies[:5]
    reserved = held_by_reservations(t.reservations_by_key.values())
    for sku, stock in t.stock_by_sku.items():
        for p in stock.positions:
            assert min(p.on_hand_qty, p.reserved_qty, p.in_transit_qty, p.outbound_qty, p.damaged_qty) >= 0, p
            assert p.available_qty >= 0, (sku, p)
            assert p.reserved_qty == reserved[(sku, p.warehouse_code)], (sku, p)
            for bucket, name in BUCKET_OF_POSITION.items():
                assert ledger.totals[(sku, p.warehouse_code, bucket)] == getattr(p, name), (sku, p, bucket)
    ours = {
        (line.sku, e.to_warehouse_code, e.transfer_no)
        for e in events
        if isinstance(e, TransferDispatched)
        for line in e.lines
    } | {
        (e.sku, e.warehouse_code, e.document_no)
        for e in ledger.entries.values()
        if e.movement_type == MovementType.DELIVERY_FAILED and e.bucket == StockBucket.OUTBOUND
    }
    inside = sum(
        getattr(p, BUCKET_OF_POSITION[bucket])
        for stock in t.stock_by_sku.values()
        for p in stock.positions
        for bucket in INSIDE
    )
    travelling = sum(e.outstanding_qty for key, e in t.expectations_by_key.items() if key in ours)
    assert inside + travelling == sum(ledger.flows(ours).values())


def test_the_calm_day_rejects_nothing_and_routes_every_order() -> None:
    """The conditions under which a pipeline must end exactly where the model ends."""
    simulation = DaySimulation(DayParams(seed=2, orders=150, skus=30, warehouses=2, mix=CALM))
    events = list(simulation.events())
    kinds = {type(e).__name__ for e in events}
    assert not kinds & {"StockSnapshot", "ReturnRequested", "ReturnPickedUp", "ReturnInspected"}
    for e in events:
        if isinstance(e, OrderCreated):
            assert e.warehouse_code or all(item.warehouse_code for item in e.items), e
    statuses = Counter(o.status.value for o in simulation.shadow.tables.orders_by_no.values())
    assert statuses["REJECTED"] == 0 and statuses["DELIVERED"] > 0, statuses


def test_the_days_date_and_ids_follow_the_parameters() -> None:
    from datetime import date

    first = next(generate_day(seed=9, orders=5, skus=5, warehouses=1, day=date(2026, 1, 2), tag="T9"))
    assert first.occurred_at.date() == date(2026, 1, 2)
    assert first.event_id.startswith("T9-")
    assert isinstance(first.occurred_at, datetime)


# --- a backlog's day: retries and odd routes ------------------------------------------------


@pytest.fixture(scope="module")
def backlog_day() -> tuple[list[Event], DaySimulation]:
    simulation = DaySimulation(DayParams(seed=4, orders=200, skus=30, warehouses=3, mix=BACKLOG))
    return [parse_event(json.loads(line)) for line in iter_json_lines(simulation.events())], simulation


def test_the_retry_knobs_are_off_by_default() -> None:
    mix = DayParams().mix
    assert (mix.resent_document, mix.redelivered, mix.return_elsewhere, mix.transfer_short, mix.parcel_back_short) == (
        0,
        0,
        0,
        0,
        0,
    )


def test_a_backlog_day_is_reproducible(backlog_day: tuple[list[Event], DaySimulation]) -> None:
    again = DaySimulation(DayParams(seed=4, orders=200, skus=30, warehouses=3, mix=BACKLOG))
    assert list(iter_json_lines(again.events())) == [to_json_line(e) for e in backlog_day[0]]


def test_a_backlog_day_resends_documents_and_redelivers_events(
    backlog_day: tuple[list[Event], DaySimulation],
) -> None:
    """A WMS retry: the same stock document, occurredAt included, under a new eventId. A
    producer retry: the same message, eventId included."""
    events, simulation = backlog_day
    by_content: dict[str, list[Event]] = {}
    for e in events:
        by_content.setdefault(json.dumps(e.model_dump(mode="json", exclude={"event_id"}), sort_keys=True), []).append(e)
    resent = Counter(type(same[0]).__name__ for same in by_content.values() if len({e.event_id for e in same}) > 1)
    assert {"GoodsReceived", "StockAdjusted", "TransferDispatched", "InboundAnnounced"} <= set(resent), resent
    redelivered = Counter(e.event_id for e in events)
    assert (
        sum(n - 1 for n in redelivered.values())
        == sum(n for kind, n in simulation.counts.items() if kind.endswith(" redelivered"))
        > 0
    )
    assert sum(resent.values()) == sum(n for kind, n in simulation.counts.items() if kind.endswith(" re-sent"))


def test_a_backlog_day_has_returns_elsewhere_and_short_closing_receipts(
    backlog_day: tuple[list[Event], DaySimulation],
) -> None:
    events, _ = backlog_day
    picked_up = {e.return_no: e.warehouse_code for e in events if isinstance(e, ReturnPickedUp)}
    inspected = [e for e in events if isinstance(e, ReturnInspected)]
    assert any(picked_up[e.return_no] != e.warehouse_code for e in inspected)
    assert any(picked_up[e.return_no] == e.warehouse_code for e in inspected)
    dispatched = {
        (e.transfer_no, line.sku): line.quantity
        for e in events
        if isinstance(e, TransferDispatched)
        for line in e.lines
    }
    received = [(e.transfer_no, line) for e in events if isinstance(e, TransferReceived) for line in e.lines]
    assert any(line.sellable_qty + line.damaged_qty < dispatched[(no, line.sku)] for no, line in received)
    assert all(0 < line.sellable_qty + line.damaged_qty <= dispatched[(no, line.sku)] for no, line in received)
    shipped = {
        (e.shipment_no, line.sku): line.quantity for e in events if isinstance(e, OrderShipped) for line in e.lines
    }
    failed = {e.shipment_no for e in events if isinstance(e, DeliveryFailed)}
    back = [(e.asn_no, line) for e in events if isinstance(e, GoodsReceived) and e.asn_no in failed for line in e.lines]
    assert back and any(line.sellable_qty < shipped[(no, line.sku)] for no, line in back)


def test_the_backlog_stream_alone_rebuilds_the_generators_shadow(
    backlog_day: tuple[list[Event], DaySimulation],
) -> None:
    """The shadow read every re-sent document; a redelivered event is dropped by its id."""
    events, simulation = backlog_day
    replayed = replay(events)
    assert _quantities(replayed) == _quantities(simulation.shadow)
    assert {k: o.status for k, o in replayed.tables.orders_by_no.items()} == {
        k: o.status for k, o in simulation.shadow.tables.orders_by_no.items()
    }
