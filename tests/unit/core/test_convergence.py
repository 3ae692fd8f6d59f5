"""Positions that converge whatever order the topics are read in, documents applied once,
counts that always land (docs/inventory-model.md, "Convergence").

Scripted races first, each in both delivery orders, then a property: any set of physical
movements (receipts with and without their announcement, adjustments, transfers, counts,
disposals), applied in any order, ends at the same positions.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.base import Event
from schemas.outputs import AlertType, InventoryAlert, InventoryLedgerEntry, MovementType
from tables.center import InventoryCenter
from tables.policy import CorePolicy
from tables.state import Position
from tests.unit.event_factory import EventFactory
from tests.unit.interleaving import InterleavingCenter

M = MovementType


def quantities(p: Position | None) -> dict[str, int]:
    assert p is not None
    return {
        "on_hand": p.on_hand_qty,
        "reserved": p.reserved_qty,
        "in_transit": p.in_transit_qty,
        "outbound": p.outbound_qty,
        "damaged": p.damaged_qty,
        "delivered": p.delivered_qty,
    }


def both_orders(first: list[Event], second: list[Event], sku: str, *warehouses: str) -> list[dict[str, int]]:
    """The same events read as ``first + second`` and as ``second + first``: the positions."""
    ends = []
    for events in (first + second, second + first):
        center = InventoryCenter()
        center.submit_all(events)
        ends.append({wh: quantities(center.position(sku, wh)) for wh in warehouses})
    assert ends[0] == ends[1], ends
    return ends[0]  # type: ignore[return-value]


def alerts_of(center: InventoryCenter | InterleavingCenter, alert_type: AlertType) -> list[InventoryAlert]:
    return [e for e in center.outputs if isinstance(e, InventoryAlert) and e.alert_type == alert_type]


def ordered(f: EventFactory, quantity: int, warehouse: str | None = "WH1") -> InterleavingCenter:
    """10 units of SKU1 received at WH1, then order O1 for ``quantity`` of them, all read."""
    center = InterleavingCenter(seed=0)
    center.publish(f.goods_received("RCV-1", "WH1", [("SKU1", 10, 0)]))
    center.drain()
    center.publish(f.order_created("O1", [("SKU1", quantity, warehouse)]))
    center.drain()
    return center


# --- physical movements commute -------------------------------------------------------------


def test_a_shipment_read_before_the_receipt_that_stocked_it_invents_no_units() -> None:
    f = EventFactory()
    receipt = f.goods_received("RCV-1", "WH1", [("SKU1", 5, 0)])
    shipped = f.order_shipped("O1", "SHP-1", "WH1", [("SKU1", 3)])
    center = InventoryCenter()
    center.submit(shipped)
    p = center.position("SKU1", "WH1")
    assert p is not None and (p.on_hand_qty, p.available_qty) == (-3, -3)  # owed, not found
    center.submit(receipt)
    assert quantities(center.position("SKU1", "WH1"))["on_hand"] == 2  # settled: 5 in, 3 out
    found = [e for e in center.outputs if isinstance(e, InventoryLedgerEntry) and e.movement_type == M.ADJUSTED]
    assert not found
    assert both_orders([receipt], [shipped], "SKU1", "WH1")["WH1"]["on_hand"] == 2


def test_nothing_is_reserved_against_units_the_books_have_not_seen_arrive() -> None:
    f = EventFactory()
    center = InventoryCenter()
    center.submit(f.order_shipped("O1", "SHP-1", "WH1", [("SKU1", 3)]))
    center.submit(f.goods_received("RCV-1", "WH1", [("SKU1", 2, 0)]))  # still owes 1
    center.submit(f.order_created("O2", [("SKU1", 1, "WH1")]))
    order = center.order("O2")
    assert order is not None and order.status == "REJECTED"


def test_a_negative_adjustment_read_before_the_receipt_commutes_with_it() -> None:
    f = EventFactory()
    ends = both_orders(
        [f.goods_received("RCV-1", "WH1", [("SKU1", 4, 0)])],
        [f.stock_adjusted("ADJ-1", "WH1", "SKU1", -6, "DAMAGE")],
        "SKU1",
        "WH1",
    )
    assert (ends["WH1"]["on_hand"], ends["WH1"]["damaged"]) == (-2, 6)


def test_a_transfer_received_short_before_its_dispatch_is_read_leaves_nothing_in_transit() -> None:
    f = EventFactory()
    opening = f.goods_received("RCV-1", "WH1", [("SKU1", 10, 0)])
    dispatched = f.transfer_dispatched("T9", "WH1", "WH2", [("SKU1", 5)])
    received = f.transfer_received("T9", "WH2", [("SKU1", 4, 0)])  # closes the transfer: 1 lost
    ends = both_orders([opening, dispatched], [received], "SKU1", "WH1", "WH2")
    assert ends["WH1"]["on_hand"] == 5
    assert (ends["WH2"]["on_hand"], ends["WH2"]["in_transit"]) == (4, 0)


def test_a_failed_parcel_received_back_short_before_the_failure_is_read_leaves_nothing_in_transit() -> None:
    f = EventFactory()
    center = ordered(f, 3)
    center.publish(f.order_shipped("O1", "SHP-1", "WH1", [("SKU1", 3)]))
    center.drain()
    center.publish(f.tracking("DeliveryFailed", "O1", "SHP-1"))
    center.publish(f.goods_received("RCV-BACK", "WH1", [("SKU1", 2, 0)], asn_no="SHP-1"))  # 1 lost on the way
    center.deliver_next("stock-movements")  # the parcel is received back first
    center.drain()
    assert quantities(center.position("SKU1", "WH1")) == {
        "on_hand": 9,
        "reserved": 0,
        "in_transit": 0,
        "outbound": 0,
        "damaged": 0,
        "delivered": 0,
    }


def returned_elsewhere(first: str) -> InterleavingCenter:
    """O1 delivered from WH1; its return is picked up for WH1 and inspected at WH2."""
    f = EventFactory()
    center = ordered(f, 2)
    center.publish(f.order_shipped("O1", "SHP-1", "WH1", [("SKU1", 2)]))
    center.publish(f.tracking("Delivered", "O1", "SHP-1"))
    center.publish(f.return_requested("O1", "RET-1", [("SKU1", 2)]))
    center.drain()
    center.publish(f.return_picked_up("O1", "RET-1", "WH1"))
    center.publish(f.return_inspected("O1", "RET-1", "WH2", [("SKU1", 2, "SELLABLE")]))
    if first == "inspection":
        center.deliver_next("stock-movements")
        center.deliver_next("order-inbox")
    else:
        center.deliver_next("shipments")
    center.drain()
    return center


def test_a_return_inspected_at_another_warehouse_closes_the_units_its_pickup_announced() -> None:
    for first in ("pickup", "inspection"):
        center = returned_elsewhere(first)
        assert quantities(center.position("SKU1", "WH1"))["in_transit"] == 0, first
        assert quantities(center.position("SKU1", "WH2"))["on_hand"] == 2, first


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), moves=st.integers(6, 14))
def test_physical_movements_end_at_the_same_positions_in_any_order(seed: int, moves: int) -> None:
    """Receipts with and without their ASN (closing or not), adjustments of any sign and
    reason, transfers received short, counts and disposals, at two warehouses: every
    permutation of the same events ends at the same positions."""
    rng = random.Random(seed)
    f = EventFactory()
    events: list[Event] = [
        f.goods_received("OPEN-1", "WH1", [("SKU1", 20, 0)]),
        f.goods_received("OPEN-2", "WH2", [("SKU1", 20, 0)]),
    ]
    opening = len(events)
    for n in range(moves):
        wh, other = rng.sample(["WH1", "WH2"], 2)
        kind = rng.choice(["asn", "receipt", "adjust", "transfer", "count", "dispose"])
        qty = rng.randint(1, 8)
        if kind == "asn":
            events.append(f.inbound_announced(f"ASN-{n}", wh, [("SKU1", qty)]))
            events.append(
                f.goods_received(
                    f"RCV-{n}",
                    wh,
                    [("SKU1", max(1, qty - rng.randint(0, 2)), rng.randint(0, 1))],
                    asn_no=f"ASN-{n}",
                    closes_asn=rng.random() < 0.7,
                )
            )
        elif kind == "receipt":
            events.append(f.goods_received(f"RCV-{n}", wh, [("SKU1", qty, rng.randint(0, 2))]))
        elif kind == "adjust":
            reason = rng.choice(["DAMAGE", "LOSS", "FOUND", "CYCLE_COUNT"])
            events.append(f.stock_adjusted(f"ADJ-{n}", wh, "SKU1", rng.choice([-qty, qty]), reason))
        elif kind == "transfer":
            events.append(f.transfer_dispatched(f"T-{n}", wh, other, [("SKU1", qty)]))
            events.append(f.transfer_received(f"T-{n}", other, [("SKU1", max(1, qty - rng.randint(0, 2)), 0)]))
        elif kind == "count":
            events.append(f.stock_snapshot(f"CNT-{n}", wh, [("SKU1", rng.randint(0, 30))], counted_at=f.now))
        else:
            events.append(f.damaged_disposed(f"DSP-{n}", wh, "SKU1", rng.randint(1, 2)))
    rest = events[opening:]
    shuffled = rng.sample(rest, len(rest))
    ends = []
    for order in (rest, shuffled):
        center = InventoryCenter()
        center.submit_all(events[:opening] + order)
        ends.append(
            {
                wh: replace(
                    center.position("SKU1", wh),
                    version=0,
                    updated_at=None,
                    movement_log=b"",
                    history_since=None,
                    counted_at=None,
                )
                for wh in ("WH1", "WH2")
            }
        )
    assert {wh: quantities(p) for wh, p in ends[0].items()} == {wh: quantities(p) for wh, p in ends[1].items()}
    assert ends[0] == ends[1]


# --- documents applied once -------------------------------------------------------------------


def resend(f: EventFactory, event: Event) -> Event:
    """The same document, re-sent by a retry that regenerated the event id."""
    f.count += 1
    return event.model_copy(update={"event_id": f"retry-{f.count}"})


def test_a_document_resent_under_a_new_event_id_is_applied_once() -> None:
    f = EventFactory()
    documents = [
        f.goods_received("RCV-1", "WH1", [("SKU1", 10, 0)]),
        f.inbound_announced("ASN-1", "WH1", [("SKU1", 6)]),
        f.stock_adjusted("ADJ-1", "WH1", "SKU1", -2, "LOSS"),
        f.transfer_dispatched("T-1", "WH1", "WH2", [("SKU1", 3)]),
        f.transfer_received("T-1", "WH2", [("SKU1", 3, 0)]),
        f.damaged_disposed("DSP-1", "WH1", "SKU1", 1),
    ]
    once, twice = InventoryCenter(), InventoryCenter()
    once.submit_all(documents)
    for document in documents:
        twice.submit(document)
        twice.submit(resend(f, document))
    for wh in ("WH1", "WH2"):
        assert quantities(twice.position("SKU1", wh)) == quantities(once.position("SKU1", wh)), wh
    duplicates = alerts_of(twice, AlertType.DUPLICATE_DOCUMENT)
    assert len(duplicates) == len(documents)
    assert all("same content" in a.message and "first applied as event" in a.message for a in duplicates)


def test_a_document_resent_with_other_content_is_an_anomaly_naming_both_events() -> None:
    f = EventFactory()
    center = InventoryCenter()
    first = f.goods_received("RCV-1", "WH1", [("SKU1", 10, 0)])
    center.submit(first)
    other = f.goods_received("RCV-1", "WH1", [("SKU1", 12, 0)])
    center.submit(other)
    assert quantities(center.position("SKU1", "WH1"))["on_hand"] == 10  # the first stands
    [anomaly] = alerts_of(center, AlertType.ANOMALY)
    assert first.event_id in anomaly.message and other.event_id in anomaly.message


def test_an_event_id_reused_for_another_order_is_an_anomaly_not_a_silent_drop() -> None:
    f = EventFactory()
    center = InventoryCenter()
    center.submit(f.goods_received("RCV-1", "WH1", [("SKU1", 10, 0)]))
    first = f.order_created("O1", [("SKU1", 1, "WH1")])
    center.submit(first)
    reused = f.order_created("O2", [("SKU1", 2, "WH1")]).model_copy(update={"event_id": first.event_id})
    # One partition in memory holds both orders: the receipt of O1's event is found for O2's.
    before = len(center.outputs)
    center.submit(reused)
    anomalies = [a for a in alerts_of(center, AlertType.ANOMALY) if "reused" in a.message]
    assert anomalies, center.outputs[before:]


def test_a_command_id_reused_with_other_content_changes_nothing_and_says_so() -> None:
    f = EventFactory()
    center = InventoryCenter()
    first = f.stock_adjusted("ADJ-1", "WH1", "SKU1", 5, "FOUND")
    center.submit(first)
    reused = f.stock_adjusted("ADJ-2", "WH1", "SKU1", 7, "FOUND").model_copy(update={"event_id": first.event_id})
    center.submit(reused)
    assert quantities(center.position("SKU1", "WH1"))["on_hand"] == 5
    assert any("reused" in a.message for a in alerts_of(center, AlertType.ANOMALY))


# --- counts always land ------------------------------------------------------------------------


def test_a_count_taken_before_a_reservation_still_lands() -> None:
    f = EventFactory()
    center = InventoryCenter()
    center.submit(f.goods_received("RCV-1", "WH1", [("SKU1", 1000, 0)]))
    counted_at = f.now + timedelta(seconds=30)
    for n in range(5):
        center.submit(f.order_created(f"O{n}", [("SKU1", 1, "WH1")]))  # reservations move no unit
    center.submit(f.stock_snapshot("CNT-1", "WH1", [("SKU1", 900)], counted_at=counted_at))
    p = center.position("SKU1", "WH1")
    assert p is not None and (p.on_hand_qty, p.reserved_qty) == (900, 5)


def test_a_count_read_after_later_movements_is_netted_against_them() -> None:
    f = EventFactory()
    center = InventoryCenter()
    center.submit(f.goods_received("RCV-1", "WH1", [("SKU1", 100, 0)]))
    counted_at = f.now + timedelta(seconds=30)
    center.submit(f.goods_received("RCV-2", "WH1", [("SKU1", 10, 0)]))  # after the count
    center.submit(f.stock_adjusted("ADJ-1", "WH1", "SKU1", -3, "LOSS"))  # after the count
    center.submit(f.stock_snapshot("CNT-1", "WH1", [("SKU1", 95)], counted_at=counted_at))  # read late
    assert quantities(center.position("SKU1", "WH1"))["on_hand"] == 95 + 10 - 3
    [drift] = alerts_of(center, AlertType.RECONCILIATION_DRIFT)
    assert drift.quantity == -5


def test_a_movement_read_after_a_count_that_included_it_moves_its_units_once() -> None:
    f = EventFactory()
    received = f.goods_received("RCV-1", "WH1", [("SKU1", 10, 0)])
    adjusted = f.stock_adjusted("ADJ-1", "WH1", "SKU1", -4, "LOSS")
    count = f.stock_snapshot("CNT-1", "WH1", [("SKU1", 6)], counted_at=f.now + timedelta(seconds=1))
    for order in ([received, adjusted, count], [count, adjusted, received], [adjusted, count, received]):
        center = InventoryCenter()
        center.submit_all(order)
        assert quantities(center.position("SKU1", "WH1"))["on_hand"] == 6, [type(e).__name__ for e in order]


def test_a_count_older_than_the_last_count_applied_is_reported() -> None:
    f = EventFactory()
    center = InventoryCenter()
    center.submit(f.goods_received("RCV-1", "WH1", [("SKU1", 10, 0)]))
    late = f.stock_snapshot("CNT-1", "WH1", [("SKU1", 50)], counted_at=f.now + timedelta(seconds=1))
    center.submit(f.stock_snapshot("CNT-2", "WH1", [("SKU1", 8)], counted_at=f.now + timedelta(seconds=2)))
    center.submit(late)
    assert quantities(center.position("SKU1", "WH1"))["on_hand"] == 8
    [report] = alerts_of(center, AlertType.ANOMALY)
    assert "CNT-1" in report.message and "later count" in report.message


def test_a_count_older_than_the_history_reaches_is_reported_not_dropped() -> None:
    f = EventFactory()
    center = InventoryCenter(CorePolicy(count_history=3))
    center.submit(f.goods_received("RCV-0", "WH1", [("SKU1", 10, 0)]))
    counted_at = f.now + timedelta(seconds=1)
    for n in range(5):
        center.submit(f.stock_adjusted(f"ADJ-{n}", "WH1", "SKU1", 1, "FOUND"))
    before = quantities(center.position("SKU1", "WH1"))
    center.submit(f.stock_snapshot("CNT-1", "WH1", [("SKU1", 7)], counted_at=counted_at))
    assert quantities(center.position("SKU1", "WH1")) == before
    [report] = alerts_of(center, AlertType.ANOMALY)
    assert "too old to net" in report.message and report.quantity == 7


def test_a_count_over_books_that_owe_units_settles_them_with_an_anomaly() -> None:
    f = EventFactory()
    center = InventoryCenter()
    center.submit(f.order_shipped("O1", "SHP-1", "WH1", [("SKU1", 3)]))  # receipt never read
    center.submit(f.stock_snapshot("CNT-1", "WH1", [("SKU1", 2)], counted_at=f.now + timedelta(seconds=1)))
    assert quantities(center.position("SKU1", "WH1"))["on_hand"] == 2
    assert any("before any receipt" in a.message for a in alerts_of(center, AlertType.ANOMALY))


def test_a_position_first_stocked_below_its_reorder_point_raises_low_stock() -> None:
    f = EventFactory()
    center = InventoryCenter(CorePolicy(reorder_point=10))
    center.submit(f.goods_received("RCV-1", "WH1", [("SKU1", 4, 0)]))
    [low] = alerts_of(center, AlertType.LOW_STOCK)
    assert low.quantity == 4


# --- presale and shortage recovery -------------------------------------------------------------


def short_presale_orders() -> tuple[InventoryCenter, EventFactory]:
    """An ASN of 6 units promised to two PRESALE orders (P1: 4, P2: 2) arrives 3 short."""
    f = EventFactory()
    center = InventoryCenter()
    center.submit(f.inbound_announced("ASN-1", "WH1", [("SKU1", 6)]))
    center.submit(f.order_created("P1", [("SKU1", 4, "WH1")], order_type="PRESALE"))
    center.submit(f.order_created("P2", [("SKU1", 2, "WH1")], order_type="PRESALE"))
    center.submit(f.goods_received("RCV-1", "WH1", [("SKU1", 3, 0)], asn_no="ASN-1"))  # closes: 3 never come
    return center, f


def notices(center: InventoryCenter, order_no: str) -> list[str]:
    from schemas.outputs import OrderStatusChanged

    return [
        e.reason
        for e in center.outputs
        if isinstance(e, OrderStatusChanged) and e.order_no == order_no and e.status == e.previous_status
    ]


def test_orders_left_short_are_served_first_ordered_first_served_from_the_next_units() -> None:
    center, f = short_presale_orders()
    p1, p2 = center.order("P1"), center.order("P2")
    assert p1 is not None and p2 is not None
    assert (p1.line("SKU1").reserved_qty, p1.line("SKU1").short_qty) == (3, 1)  # type: ignore[union-attr]
    assert (p2.line("SKU1").reserved_qty, p2.line("SKU1").short_qty) == (0, 2)  # type: ignore[union-attr]
    assert any(n.startswith("SHORT") for n in notices(center, "P2"))
    center.submit(f.goods_received("RCV-2", "WH1", [("SKU1", 2, 0)]))  # two more units, unannounced
    p1, p2 = center.order("P1"), center.order("P2")
    assert p1 is not None and p2 is not None
    assert (p1.line("SKU1").reserved_qty, p1.line("SKU1").short_qty) == (4, 0)  # type: ignore[union-attr]
    assert p1.status == "OUTBOUND_REQUESTED"  # complete: its OutboundInstruction went out
    assert (p2.line("SKU1").reserved_qty, p2.line("SKU1").short_qty) == (1, 1)  # type: ignore[union-attr]
    assert any(n.startswith("RECOVERED") for n in notices(center, "P1"))
    center.submit(f.stock_adjusted("ADJ-1", "WH1", "SKU1", 1, "FOUND"))
    p2 = center.order("P2")
    assert p2 is not None and p2.status == "OUTBOUND_REQUESTED"
    p = center.position("SKU1", "WH1")
    assert p is not None and (p.on_hand_qty, p.reserved_qty, p.available_qty, p.short_qty) == (6, 6, 0, 0)


def test_a_new_order_does_not_take_units_a_short_order_waits_for() -> None:
    center, f = short_presale_orders()
    center.submit(f.goods_received("RCV-2", "WH1", [("SKU1", 1, 0)]))
    center.submit(f.order_created("N1", [("SKU1", 1, "WH1")]))
    n1 = center.order("N1")
    assert n1 is not None and n1.status == "REJECTED"
    assert center.order("P1").line("SKU1").reserved_qty == 4  # type: ignore[union-attr]


# --- reorder points set at runtime -----------------------------------------------------------------


def reorder_point_set(f: EventFactory, point: int, warehouse: str | None = None, sku: str = "SKU1") -> Event:
    fields = {"sku": sku, "reorderPoint": point}
    if warehouse is not None:
        fields["warehouseCode"] = warehouse
    return f.event("ReorderPointSet", **fields)


def test_reorder_points_are_set_per_sku_and_per_position_at_runtime() -> None:
    f = EventFactory()
    center = InventoryCenter(CorePolicy(reorder_point=2))
    center.submit(f.goods_received("RCV-1", "WH1", [("SKU1", 30, 0)]))
    center.submit(f.goods_received("RCV-2", "WH2", [("SKU1", 30, 0)]))
    center.submit(reorder_point_set(f, 20))  # the SKU's default
    center.submit(reorder_point_set(f, 5, "WH2"))  # WH2 its own
    center.submit(f.order_created("O1", [("SKU1", 15, "WH1")]))  # WH1: 15 < 20
    center.submit(f.order_created("O2", [("SKU1", 15, "WH2")]))  # WH2: 15 >= 5
    lows = alerts_of(center, AlertType.LOW_STOCK)
    assert [(a.warehouse_code, a.quantity) for a in lows] == [("WH1", 15)]


def test_a_reorder_point_raised_above_available_raises_low_stock_now() -> None:
    f = EventFactory()
    center = InventoryCenter(CorePolicy(reorder_point=2))
    center.submit(f.goods_received("RCV-1", "WH1", [("SKU1", 8, 0)]))
    center.submit(reorder_point_set(f, 10, "WH1"))
    [low] = alerts_of(center, AlertType.LOW_STOCK)
    assert (low.warehouse_code, low.quantity) == ("WH1", 8)


def test_the_latest_reorder_point_wins_whatever_the_read_order() -> None:
    f = EventFactory()
    older, newer = reorder_point_set(f, 50, "WH1"), reorder_point_set(f, 3, "WH1")
    for settings_read in ([older, newer], [newer, older]):
        center = InventoryCenter(CorePolicy(reorder_point=0))
        center.submit_all(settings_read)
        center.submit(f.goods_received(f"RCV-{len(center.outputs)}", "WH1", [("SKU1", 10, 0)]))
        p = center.position("SKU1", "WH1")
        assert p is not None and p.reorder_point == 3
        assert not alerts_of(center, AlertType.LOW_STOCK)


# --- a release read before the reservation it ends ------------------------------------------------


def test_a_release_read_before_its_reservation_leaves_nothing_held() -> None:
    """After a crash the worker sends the outputs of its last transaction again (the redo
    record) before those of the messages it reads again (their receipts): an order's
    ReleaseStock can then reach the SKU ahead of its ReserveStock. The release names the
    reservation it ends, which is never made."""
    f = EventFactory()
    center = InterleavingCenter(seed=0)
    center.publish(f.goods_received("RCV-1", "WH1", [("SKU1", 10, 0)]))
    center.drain()
    center.publish(f.order_created("O1", [("SKU1", 2)]))
    center.deliver_next("orders")  # ReserveStock queued
    center.publish(f.order_shipped("O1", "SHP-1", "WH2", [("SKU1", 2)]))  # shipped from elsewhere
    center.deliver_next("shipments")  # ShipStock (WH2) and ReleaseStock queued behind it
    queue = center.queues[("stock-commands", "SKU1")]
    reserve = queue.popleft()
    queue.append(reserve)  # the crash: the reservation comes again, after its release
    center.drain()
    assert not center.tables.reservations_by_key
    p = center.position("SKU1", "WH1")
    assert p is not None and (p.reserved_qty, p.available_qty) == (0, 10)
    order = center.order("O1")
    assert order is not None and order.status == "SHIPPED"


def test_an_old_reservation_answer_sent_again_after_a_newer_one_changes_nothing() -> None:
    """After a crash the SKU partition sends its last transaction's answers again (the redo
    record) before those of the commands it reads again: an order can read an answer older
    than one it already read. Answers carry the SKU partition's sequence; an older one is
    ignored."""
    f = EventFactory()
    center = InterleavingCenter(seed=0)
    center.publish(f.goods_received("RCV-1", "WH1", [("SKU1", 10, 0)]))
    center.drain()
    center.publish(f.order_created("O1", [("SKU1", 2, "WH1")]))
    center.deliver_next("orders")
    center.deliver_next("stock-commands")  # the RESERVED answer (2 held) is queued
    reserved = center.queues[("order-inbox", "O1")].popleft()  # ...and lost in the crash
    center.drain()
    center.publish(f.order_shipped("O1", "SHP-1", "WH1", [("SKU1", 2)]))
    center.drain()  # the shipment consumed the hold: the order heard "0 held"
    center.queues[("order-inbox", "O1")].append(reserved)  # the old answer, sent again
    center.drain()
    order = center.order("O1")
    assert order is not None and order.status == "SHIPPED"
    line = order.line("SKU1")
    assert line is not None and line.reserved_qty == 0


def test_a_delivery_read_before_its_shipment_commutes_with_it() -> None:
    f = EventFactory()
    center = ordered(f, 2)
    center.publish(f.order_shipped("O1", "SHP-1", "WH1", [("SKU1", 2)]))
    center.publish(f.tracking("Delivered", "O1", "SHP-1"))
    center.deliver_next("shipments")
    center.deliver_next("shipments")  # ShipStock then DeliverStock queued for the SKU
    queue = center.queues[("stock-commands", "SKU1")]
    ship = next(m for m in queue if type(m).__name__ == "ShipStock")
    queue.remove(ship)
    queue.append(ship)  # after a crash: the delivery is read first
    center.drain()
    p = center.position("SKU1", "WH1")
    assert p is not None and (p.on_hand_qty, p.outbound_qty, p.delivered_qty) == (8, 0, 2)


def test_the_anomaly_of_a_reused_event_id_has_an_id_of_its_own() -> None:
    """Consumers drop alerts by id: the reuse must not share the first message's alert ids."""
    f = EventFactory()
    center = InventoryCenter()
    center.submit(f.goods_received("RCV-1", "WH1", [("SKU1", 10, 0)]))
    first = f.damaged_disposed("DSP-1", "WH1", "SKU1", 2)  # nothing damaged: an ANOMALY of its own
    center.submit(first)
    center.submit(f.damaged_disposed("DSP-2", "WH1", "SKU1", 3).model_copy(update={"event_id": first.event_id}))
    center.submit(f.order_created("O1", [("SKU1", 1, "WH1")]))
    again = f.order_created("O1", [("SKU1", 1, "WH1")])  # refused: an ANOMALY of its own
    center.submit(again)
    center.submit(f.order_created("O2", [("SKU1", 2, "WH1")]).model_copy(update={"event_id": again.event_id}))
    ids = [a.alert_id for a in center.outputs if isinstance(a, InventoryAlert)]
    assert len(ids) == len(set(ids)), ids
    assert sum("reused" in a.message for a in alerts_of(center, AlertType.ANOMALY)) == 2
