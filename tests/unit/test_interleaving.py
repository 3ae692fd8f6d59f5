"""The core under the delivery orders Kafka allows (``tests/unit/interleaving.py``).

First, scripted: each message race the pipeline can run into, delivered in the losing
order, with the outcome the sequential model reaches. Then seeded days from the source-system
simulator (``connectors/traffic.py``) delivered in random interleavings: the laws of
docs/inventory-model.md hold at the end, no finished order holds a reservation, no return is
lost, and a day whose outcome cannot depend on the order of reservations (every order names
its warehouse, stock is ample, counts match the books) ends with every position equal to the
sequential model's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from connectors.traffic import CALM, DayParams, DaySimulation, Mix, is_opening_stock, replay
from schemas.base import Event
from schemas.inputs import OrderCancelled, ReturnInspected, ReturnRequested, TransferDispatched
from schemas.outputs import InventoryLedgerEntry, MovementType, OrderStatus, StockBucket
from tables.center import InventoryCenter, MemoryTables
from tables.state import LineState
from tests.unit.event_factory import EventFactory
from tests.unit.interleaving import InterleavingCenter
from tests.unit.test_core_laws import BUCKET_OF_POSITION, INSIDE, Ledger

S = OrderStatus
B = StockBucket
M = MovementType
UNFINISHED = frozenset({S.PENDING, S.RESERVED, S.OUTBOUND_REQUESTED, S.PARTIALLY_SHIPPED})
RETURN_STATUSES = frozenset({S.RETURN_REQUESTED, S.PARTIALLY_RETURNED, S.RETURNED})


def stocked(f: EventFactory, units: dict[str, int], sku: str = "SKU1") -> InterleavingCenter:
    center = InterleavingCenter(seed=0)
    for wh, qty in units.items():
        center.publish(f.goods_received(f"RCV-{wh}", wh, [(sku, qty, 0)]))
    center.drain()
    return center


def quantities(center: InterleavingCenter | InventoryCenter, wh: str, sku: str = "SKU1") -> dict[str, int]:
    p = center.position(sku, wh)
    assert p is not None
    return {
        "on_hand": p.on_hand_qty, "reserved": p.reserved_qty, "in_transit": p.in_transit_qty,
        "outbound": p.outbound_qty, "damaged": p.damaged_qty, "delivered": p.delivered_qty,
    }


def shipped_and_delivered(f: EventFactory, center: InterleavingCenter, order_no: str, wh: str, qty: int) -> None:
    center.publish(f.order_created(order_no, [("SKU1", qty, wh)]))
    center.drain()
    center.publish(f.order_shipped(order_no, f"SHP-{order_no}", wh, [("SKU1", qty)]))
    center.publish(f.tracking("Delivered", order_no, f"SHP-{order_no}"))
    center.drain()


# --- bug 1: a return request read before the shipment -----------------------------------


def test_a_return_requested_before_its_shipment_is_read_is_kept() -> None:
    f = EventFactory()
    center = stocked(f, {"WH1": 10})
    center.publish(f.order_created("O1", [("SKU1", 2, "WH1")]))
    center.drain()
    center.publish(f.order_shipped("O1", "SHP-1", "WH1", [("SKU1", 2)]))
    center.publish(f.tracking("Delivered", "O1", "SHP-1"))
    center.publish(f.return_requested("O1", "RET-1", [("SKU1", 1)]))
    center.publish(f.return_picked_up("O1", "RET-1", "WH1"))
    center.deliver_next("orders")  # the request overtakes the shipment
    center.drain()
    order = center.order("O1")
    assert order is not None
    customer_return = order.customer_return("RET-1")
    assert customer_return is not None and [(x.sku, x.quantity) for x in customer_return.lines] == [("SKU1", 1)]
    assert order.status == S.RETURN_REQUESTED
    assert quantities(center, "WH1")["in_transit"] == 1  # the pickup put the unit on its way back


def test_a_return_inspected_before_its_shipment_is_read_ends_returned() -> None:
    f = EventFactory()
    center = stocked(f, {"WH1": 10})
    center.publish(f.order_created("O1", [("SKU1", 2, "WH1")]))
    center.drain()
    center.publish(f.order_shipped("O1", "SHP-1", "WH1", [("SKU1", 2)]))
    center.publish(f.tracking("Delivered", "O1", "SHP-1"))
    center.publish(f.return_picked_up("O1", "RET-1", "WH1"))
    center.publish(f.return_requested("O1", "RET-1", [("SKU1", 2)]))
    center.publish(f.return_inspected("O1", "RET-1", "WH1", [("SKU1", 2, "SELLABLE")]))
    center.deliver_next("orders")
    center.deliver_next("stock-movements")  # the inspection, routed to the order
    center.deliver_next("order-inbox")
    center.drain()
    order = center.order("O1")
    assert order is not None and order.status == S.RETURNED
    assert quantities(center, "WH1") == {
        "on_hand": 10, "reserved": 0, "in_transit": 0, "outbound": 0, "damaged": 0, "delivered": 2,
    }


# --- bugs 2 and 3: a reservation answer read after the shipment ----------------------------


def test_a_reservation_answer_after_a_shipment_from_another_warehouse_leaks_nothing() -> None:
    f = EventFactory()
    center = stocked(f, {"WH1": 5, "WH2": 5})
    center.publish(f.order_created("O1", [("SKU1", 2)]))  # no warehouse named: the core picks WH1
    center.deliver_next("orders")  # ReserveStock queued, not yet applied
    center.publish(f.order_shipped("O1", "SHP-1", "WH2", [("SKU1", 2)]))  # the WMS shipped from WH2
    center.deliver_next("shipments")  # read before the reservation's answer
    center.drain()
    assert quantities(center, "WH1")["reserved"] == 0
    assert quantities(center, "WH2") == {
        "on_hand": 3, "reserved": 0, "in_transit": 0, "outbound": 2, "damaged": 0, "delivered": 0,
    }
    order = center.order("O1")
    assert order is not None and order.status == S.SHIPPED
    assert not center.tables.reservations_by_key
    assert all(line.reserved_qty == 0 for line in order.lines)


def test_a_reservation_answer_after_the_shipment_that_consumed_it_is_not_held_again() -> None:
    f = EventFactory()
    center = stocked(f, {"WH1": 5})
    center.publish(f.order_created("O1", [("SKU1", 3)]))
    center.deliver_next("orders")
    center.publish(f.order_shipped("O1", "SHP-1", "WH1", [("SKU1", 2)]))  # partial
    center.deliver_next("shipments")
    center.drain()
    # The shipment consumed 2 of the 3 held units: 1 stays held, and the order says so.
    assert quantities(center, "WH1")["reserved"] == 1
    order = center.order("O1")
    assert order is not None
    line = order.line("SKU1")
    assert line is not None and (line.state, line.reserved_qty, line.shipped_qty) == (LineState.RESERVED, 1, 2)
    reservation = center.tables.reservation("SKU1", "O1")
    assert reservation is not None and reservation.reserved_qty == 1


# --- bug 5: a count read before a shipment it counted -------------------------------------


def test_a_count_that_overtakes_a_shipment_it_counted_does_not_subtract_it_twice() -> None:
    f = EventFactory()
    center = stocked(f, {"WH1": 10})
    center.publish(f.order_created("O1", [("SKU1", 3, "WH1")]))
    center.drain()
    center.publish(f.order_shipped("O1", "SHP-1", "WH1", [("SKU1", 3)]))
    center.publish(f.stock_snapshot("CNT-1", "WH1", [("SKU1", 7)], counted_at=f.now + timedelta(seconds=30)))
    center.deliver_next("stock-movements")  # ReconcileStock queued ahead of the ShipStock
    center.drain()
    assert quantities(center, "WH1") == {
        "on_hand": 7, "reserved": 0, "in_transit": 0, "outbound": 3, "damaged": 0, "delivered": 0,
    }


def test_a_count_that_overtakes_a_return_inspection_it_counted_does_not_add_it_twice() -> None:
    f = EventFactory()
    center = stocked(f, {"WH1": 10})
    shipped_and_delivered(f, center, "O1", "WH1", 2)
    center.publish(f.return_requested("O1", "RET-1", [("SKU1", 2)]))
    center.publish(f.return_picked_up("O1", "RET-1", "WH1"))
    center.drain()
    center.publish(f.return_inspected("O1", "RET-1", "WH1", [("SKU1", 2, "SELLABLE")]))
    center.publish(f.stock_snapshot("CNT-1", "WH1", [("SKU1", 10)], counted_at=f.now + timedelta(seconds=30)))
    center.deliver_next("stock-movements")  # the inspection goes to the order first...
    center.deliver_next("stock-movements")  # ...the count straight to the SKU: it arrives first
    center.drain()
    assert quantities(center, "WH1") == {
        "on_hand": 10, "reserved": 0, "in_transit": 0, "outbound": 0, "damaged": 0, "delivered": 2,
    }


# --- bug 6: a disposal read before the inspection that brought the damaged units ----------


def test_a_disposal_that_overtakes_the_inspection_of_its_damaged_units_still_disposes_them() -> None:
    f = EventFactory()
    center = stocked(f, {"WH1": 10})
    shipped_and_delivered(f, center, "O1", "WH1", 2)
    center.publish(f.return_requested("O1", "RET-1", [("SKU1", 2)]))
    center.publish(f.return_picked_up("O1", "RET-1", "WH1"))
    center.drain()
    center.publish(f.return_inspected("O1", "RET-1", "WH1", [("SKU1", 2, "DAMAGED")]))
    center.publish(f.damaged_disposed("DSP-1", "WH1", "SKU1", 2))
    center.deliver_next("stock-movements")
    center.deliver_next("stock-movements")  # DisposeDamaged reaches the SKU before InspectReturn
    center.drain()
    assert quantities(center, "WH1") == {
        "on_hand": 8, "reserved": 0, "in_transit": 0, "outbound": 0, "damaged": 0, "delivered": 2,
    }
    disposed = sum(e.quantity for e in center.outputs
                   if isinstance(e, InventoryLedgerEntry) and e.movement_type == M.DISPOSED)
    assert disposed == -2
