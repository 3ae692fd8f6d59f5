"""Rules of the order partition (tables/orders.py): the lifecycle table, payment and expiry,
outbound instructions, late and refused messages. Driven through the in-memory core so that
reservations really happen."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.base import Event
from schemas.internal import ReservationExpiryDue
from schemas.outputs import AlertType, InventoryAlert, OrderStatus, OrderStatusChanged, OutboundInstruction
from tables.center import InventoryCenter
from tables.orders import _HANDLERS, LIFECYCLE, apply_order
from tables.policy import CorePolicy
from tests.unit.event_factory import EventFactory

S = OrderStatus


class Core:
    def __init__(self, policy: CorePolicy | None = None) -> None:
        self.center = InventoryCenter(policy or CorePolicy(reorder_point=0))
        self.f = EventFactory()

    def submit(self, event: Event) -> list[object]:
        n = len(self.center.outputs)
        self.center.submit(event)
        return self.center.outputs[n:]

    def stock(self, warehouse: str, **skus: int) -> None:
        self.submit(self.f.goods_received(f"RCV-{self.f.count}", warehouse, [(s, q, 0) for s, q in skus.items()]))

    def status(self, order_no: str) -> OrderStatus:
        order = self.center.order(order_no)
        assert order is not None
        return order.status

    def reserved(self, sku: str, warehouse: str) -> int:
        position = self.center.position(sku, warehouse)
        return position.reserved_qty if position else 0


def of_type(outputs: list[object], cls: type) -> list:  # type: ignore[type-arg]
    return [x for x in outputs if isinstance(x, cls)]


@pytest.fixture
def core() -> Core:
    c = Core()
    c.stock("WH1", A=10, B=10)
    return c


# --- the lifecycle table ----------------------------------------------------------------


def test_every_message_the_order_partition_handles_has_a_lifecycle_row() -> None:
    assert {cls.__name__ for cls in _HANDLERS} == set(LIFECYCLE)


def _shipped(core: Core) -> None:
    core.submit(core.f.order_created("O1", [("A", 2)]))
    core.submit(core.f.order_shipped("O1", "SHP-1", "WH1", [("A", 2)]))


def _cancelled(core: Core) -> None:
    core.submit(core.f.order_created("O1", [("A", 2)]))
    core.submit(core.f.order_cancelled("O1"))


def _reserved(core: Core) -> None:
    core.submit(core.f.order_created("O1", [("A", 2)]))


@pytest.mark.parametrize(
    ("setup", "refused"),
    [
        (_reserved, lambda f: f.order_created("O1", [("A", 5)])),  # a second OrderCreated
        (_cancelled, lambda f: f.order_paid("O1")),
        (_shipped, lambda f: f.order_cancelled("O1")),
        (_shipped, lambda f: f.order_paid("O1")),
        (_reserved, lambda f: f.tracking("PickedUp", "O1", "SHP-1")),  # nothing shipped yet
        (_reserved, lambda f: f.return_picked_up("O1", "RET-1", "WH1")),
        (lambda core: None, lambda f: f.order_paid("NOPE")),  # no such order
        (lambda core: None, lambda f: f.order_cancelled("NOPE")),
    ],
    ids=[
        "created-twice",
        "paid-after-cancel",
        "cancel-after-ship",
        "paid-after-ship",
        "picked-up-before-ship",
        "return-pickup-before-ship",
        "paid-unknown",
        "cancel-unknown",
    ],
)
def test_a_message_the_lifecycle_does_not_allow_is_an_anomaly_and_changes_nothing(core: Core, setup, refused) -> None:  # type: ignore[no-untyped-def]
    setup(core)
    tables = core.center.tables
    before = (dict(tables.orders_by_no), dict(tables.stock_by_sku), dict(tables.reservations_by_key))
    event = refused(core.f)
    outputs = core.submit(event)
    assert [type(x).__name__ for x in outputs] == ["InventoryAlert"]
    assert (outputs[0].alert_type, outputs[0].order_no) == (AlertType.ANOMALY, event.order_no)
    assert "rejected" in outputs[0].message
    assert (dict(tables.orders_by_no), dict(tables.stock_by_sku), dict(tables.reservations_by_key)) == before


def test_cancelling_an_order_that_already_ended_unshipped_is_a_quiet_no_op(core: Core) -> None:
    _cancelled(core)
    assert core.submit(core.f.order_cancelled("O1", "again")) == []
    assert core.status("O1") == S.CANCELLED


# --- payment, expiry, outbound instructions ---------------------------------------------


def test_an_unpaid_order_is_reserved_but_not_sent_to_the_warehouse_until_paid(core: Core) -> None:
    outputs = core.submit(core.f.order_created("O1", [("A", 2)], expires_in=timedelta(minutes=30)))
    assert of_type(outputs, OutboundInstruction) == []
    assert core.status("O1") == S.RESERVED
    [instruction] = of_type(core.submit(core.f.order_paid("O1")), OutboundInstruction)
    assert (instruction.warehouse_code, [(x.sku, x.quantity) for x in instruction.lines]) == ("WH1", [("A", 2)])
    assert core.status("O1") == S.OUTBOUND_REQUESTED
    assert core.submit(core.f.order_paid("O1")) == []  # paid again: nothing new


def test_expiry_releases_an_unpaid_reservation(core: Core) -> None:
    core.submit(core.f.order_created("O1", [("A", 2), ("B", 3)], expires_in=timedelta(minutes=30)))
    core.center.expire_due(core.f.now + timedelta(minutes=29))
    assert (core.status("O1"), core.reserved("A", "WH1"), core.reserved("B", "WH1")) == (S.RESERVED, 2, 3)
    core.center.expire_due(core.f.now + timedelta(minutes=30))
    assert (core.status("O1"), core.reserved("A", "WH1"), core.reserved("B", "WH1")) == (S.EXPIRED, 0, 0)
    assert core.center.tables.expiry_index == {}


def test_expiry_is_a_no_op_for_a_paid_order(core: Core) -> None:
    core.submit(core.f.order_created("O1", [("A", 2)], expires_in=timedelta(minutes=30)))
    core.submit(core.f.order_paid("O1"))
    assert core.center.tables.expiry_index == {}  # payment took it off the timer
    order = core.center.order("O1")
    assert order is not None and order.reservation_expires_at is not None
    tick = ReservationExpiryDue(
        event_id="O1|expiry|late",
        order_no="O1",
        due_at=order.reservation_expires_at,
        occurred_at=order.reservation_expires_at + timedelta(minutes=1),
    )
    outcome = apply_order(core.center.tables, tick)  # a tick that was already in flight
    assert outcome.order is None and outcome.events == ()
    assert (core.status("O1"), core.reserved("A", "WH1")) == (S.OUTBOUND_REQUESTED, 2)


def test_a_multi_warehouse_order_gets_one_instruction_per_warehouse() -> None:
    core = Core()
    core.stock("WH2", A=5)
    core.stock("WH1", B=5)
    outputs = core.submit(core.f.order_created("O1", [("A", 2), ("B", 1)]))
    instructions = [
        (i.warehouse_code, [(x.sku, x.quantity) for x in i.lines]) for i in of_type(outputs, OutboundInstruction)
    ]
    assert instructions == [("WH1", [("B", 1)]), ("WH2", [("A", 2)])]


# --- split lines: no single warehouse can fill a line ------------------------------------


def _split_stock(policy: CorePolicy | None = None) -> Core:
    core = Core(policy)
    core.stock("WH1", A=5, B=9)
    core.stock("WH2", A=4)
    core.stock("WH3", A=2)
    return core


def _instructions(outputs: list[object]) -> list[tuple[str, list[tuple[str, int]]]]:
    return [(i.warehouse_code, [(x.sku, x.quantity) for x in i.lines]) for i in of_type(outputs, OutboundInstruction)]


def test_a_line_split_across_two_warehouses_is_reserved_and_each_warehouse_told_its_part() -> None:
    core = _split_stock()
    outputs = core.submit(core.f.order_created("O1", [("A", 8), ("B", 2)]))
    assert core.status("O1") == S.OUTBOUND_REQUESTED
    assert _instructions(outputs) == [("WH1", [("A", 5), ("B", 2)]), ("WH2", [("A", 3)])]
    assert [core.reserved("A", wh) for wh in ("WH1", "WH2", "WH3")] == [5, 3, 0]
    line = of_type(outputs, OrderStatusChanged)[-1].lines[0]
    assert (line.warehouse_code, line.reserved_qty) == ("WH1", 8)
    assert [(x.warehouse_code, x.reserved_qty) for x in line.splits] == [("WH2", 3)]


def test_a_line_only_three_warehouses_can_cover_is_split_across_three() -> None:
    core = _split_stock()
    outputs = core.submit(core.f.order_created("O1", [("A", 10)]))
    assert core.status("O1") == S.OUTBOUND_REQUESTED
    assert _instructions(outputs) == [("WH1", [("A", 5)]), ("WH2", [("A", 4)]), ("WH3", [("A", 1)])]


@pytest.mark.parametrize("split_lines", [True, False])
def test_a_line_nobody_can_cover_is_rejected_with_the_best_single_warehouse(split_lines: bool) -> None:
    """Even split (12 > 5 + 4 + 2), or with split_lines off (8): the reason names the best
    single warehouse, as before splitting existed."""
    core = _split_stock(CorePolicy(reorder_point=0, split_lines=split_lines))
    wanted = 12 if split_lines else 8
    outputs = core.submit(core.f.order_created("O1", [("A", wanted)]))
    assert core.status("O1") == S.REJECTED
    assert of_type(outputs, OrderStatusChanged)[-1].reason == f"insufficient stock: A (wanted {wanted}, best 5)"
    assert [core.reserved("A", wh) for wh in ("WH1", "WH2", "WH3")] == [0, 0, 0]


def test_a_split_line_shipped_from_both_warehouses_consumes_both_parts() -> None:
    core = _split_stock()
    core.submit(core.f.order_created("O1", [("A", 8)]))
    outputs = core.submit(core.f.order_shipped("O1", "SHP-2", "WH2", [("A", 3)]))
    assert of_type(outputs, InventoryAlert) == []  # the units were held there
    assert core.status("O1") == S.PARTIALLY_SHIPPED
    line = core.center.order("O1").line("A")  # type: ignore[union-attr]
    assert (line.reserved_qty, line.splits, line.held_at("WH1")) == (5, (), 5)  # type: ignore[union-attr]
    outputs = core.submit(core.f.order_shipped("O1", "SHP-1", "WH1", [("A", 5)]))
    assert of_type(outputs, InventoryAlert) == []
    assert core.status("O1") == S.SHIPPED
    assert core.center.tables.reservation("A", "O1") is None
    positions = [core.center.position("A", wh) for wh in ("WH1", "WH2")]
    assert [(p.reserved_qty, p.on_hand_qty, p.outbound_qty) for p in positions] == [(0, 0, 5), (0, 1, 3)]  # type: ignore[union-attr]


def test_a_cancel_releases_every_part_of_a_split_line_and_recalls_each_instruction() -> None:
    from schemas.outputs import OutboundCancellation

    core = _split_stock()
    core.submit(core.f.order_created("O1", [("A", 10)]))
    outputs = core.submit(core.f.order_cancelled("O1"))
    recalls = [
        (r.warehouse_code, [(x.sku, x.quantity) for x in r.lines]) for r in of_type(outputs, OutboundCancellation)
    ]
    assert recalls == [("WH1", [("A", 5)]), ("WH2", [("A", 4)]), ("WH3", [("A", 1)])]
    assert core.status("O1") == S.CANCELLED
    assert [core.reserved("A", wh) for wh in ("WH1", "WH2", "WH3")] == [0, 0, 0]
    assert core.center.tables.reservation("A", "O1") is None


def test_a_rejected_line_releases_every_part_of_a_split_line_of_the_same_order() -> None:
    from schemas.outputs import InventoryChanged

    core = _split_stock()
    outputs = core.submit(core.f.order_created("O1", [("A", 8), ("B", 10)]))
    assert core.status("O1") == S.REJECTED
    held = [(e.warehouse_code, e.reserved_qty) for e in of_type(outputs, InventoryChanged) if e.sku == "A"]
    assert held == [("WH1", 5), ("WH2", 3), ("WH1", 0), ("WH2", 0)]  # split, then released
    assert [core.reserved("A", wh) for wh in ("WH1", "WH2", "WH3")] == [0, 0, 0]
    assert core.center.tables.reservations_by_key == {}


def test_status_changes_form_a_chain_with_growing_versions(core: Core) -> None:
    core.submit(core.f.order_created("O1", [("A", 2)]))
    core.submit(core.f.order_shipped("O1", "SHP-1", "WH1", [("A", 1)]))
    core.submit(core.f.order_shipped("O1", "SHP-2", "WH1", [("A", 1)]))
    core.submit(core.f.tracking("Delivered", "O1", "SHP-1"))
    core.submit(core.f.tracking("Delivered", "O1", "SHP-2"))
    changes = of_type(core.center.outputs, OrderStatusChanged)
    assert [(c.previous_status, c.status) for c in changes] == [
        (None, S.PENDING),
        (S.PENDING, S.RESERVED),
        (S.RESERVED, S.OUTBOUND_REQUESTED),
        (S.OUTBOUND_REQUESTED, S.PARTIALLY_SHIPPED),
        (S.PARTIALLY_SHIPPED, S.SHIPPED),
        (S.SHIPPED, S.DELIVERED),
    ]
    assert [c.version for c in changes] == sorted({c.version for c in changes})


# --- returns, late and unknown orders ---------------------------------------------------


def test_returning_part_of_what_was_delivered_is_partially_returned(core: Core) -> None:
    core.submit(core.f.order_created("O1", [("A", 3)]))
    core.submit(core.f.order_shipped("O1", "SHP-1", "WH1", [("A", 3)]))
    core.submit(core.f.tracking("Delivered", "O1", "SHP-1"))
    core.submit(core.f.return_requested("O1", "RET-1", [("A", 1)]))
    core.submit(core.f.return_picked_up("O1", "RET-1", "WH1"))
    core.submit(core.f.return_inspected("O1", "RET-1", "WH1", [("A", 1, "SELLABLE")]))
    assert core.status("O1") == S.PARTIALLY_RETURNED
    position = core.center.position("A", "WH1")
    assert position is not None and (position.on_hand_qty, position.in_transit_qty) == (8, 0)


def test_an_order_created_after_its_shipment_reserves_what_is_still_to_ship(core: Core) -> None:
    core.submit(core.f.order_shipped("LATE", "SHP-1", "WH1", [("A", 2)]))
    assert core.status("LATE") == S.SHIPPED
    outputs = core.submit(core.f.order_created("LATE", [("A", 3), ("B", 1)]))
    # 1 A and the B are still to ship: reserved as for any order, and the order says so.
    assert (core.reserved("A", "WH1"), core.reserved("B", "WH1")) == (1, 1)
    assert of_type(outputs, InventoryAlert) == []
    order = core.center.order("LATE")
    assert order is not None and order.known and core.status("LATE") == S.PARTIALLY_SHIPPED
    assert [(x.sku, x.shipped_qty, x.reserved_qty) for x in order.lines] == [("A", 2, 1), ("B", 0, 1)]
    assert of_type(outputs, OutboundInstruction) == []  # the WMS is shipping it already
    # Now it is known: another OrderCreated is refused.
    [again] = core.submit(core.f.order_created("LATE", [("A", 2)]))
    assert isinstance(again, InventoryAlert) and "rejected" in again.message
    # The rest ships: the reservation is consumed, nothing stays held.
    core.submit(core.f.order_shipped("LATE", "SHP-2", "WH1", [("A", 1), ("B", 1)]))
    assert core.status("LATE") == S.SHIPPED
    assert (core.reserved("A", "WH1"), core.reserved("B", "WH1")) == (0, 0)
    assert core.center.tables.reservations_by_key == {}
    position = core.center.position("A", "WH1")
    assert position is not None and (position.on_hand_qty, position.outbound_qty) == (7, 3)


def test_an_order_created_after_all_of_it_shipped_stays_shipped_and_reserves_nothing(core: Core) -> None:
    core.submit(core.f.order_shipped("LATE", "SHP-1", "WH1", [("A", 2)]))
    core.submit(core.f.tracking("Delivered", "LATE", "SHP-1"))
    assert core.submit(core.f.order_created("LATE", [("A", 2)])) == []
    assert core.status("LATE") == S.DELIVERED and core.reserved("A", "WH1") == 0


def test_a_late_order_whose_delivered_part_is_not_all_is_partially_shipped(core: Core) -> None:
    core.submit(core.f.order_shipped("LATE", "SHP-1", "WH1", [("A", 1)]))
    core.submit(core.f.tracking("Delivered", "LATE", "SHP-1"))
    core.submit(core.f.order_created("LATE", [("A", 2)]))
    assert core.status("LATE") == S.PARTIALLY_SHIPPED and core.reserved("A", "WH1") == 1
    core.submit(core.f.order_shipped("LATE", "SHP-2", "WH1", [("A", 1)]))
    core.submit(core.f.tracking("Delivered", "LATE", "SHP-2"))
    assert core.status("LATE") == S.DELIVERED and core.reserved("A", "WH1") == 0


def test_a_late_order_whose_rest_cannot_be_reserved_says_so(core: Core) -> None:
    core.submit(core.f.order_shipped("LATE", "SHP-1", "WH1", [("A", 2)]))
    outputs = core.submit(core.f.order_created("LATE", [("A", 2), ("B", 50)]))
    [anomaly] = [a for a in of_type(outputs, InventoryAlert) if a.alert_type == AlertType.ANOMALY]
    assert (anomaly.order_no, anomaly.sku, anomaly.quantity) == ("LATE", "B", 50)
    assert core.status("LATE") == S.PARTIALLY_SHIPPED and core.reserved("B", "WH1") == 0
    assert core.center.tables.reservations_by_key == {}


def test_a_late_order_whose_return_was_read_first_reserves_nothing(core: Core) -> None:
    """Its returns settle the status (RETURNED is finished): holding stock for it would leak."""
    core.submit(core.f.order_shipped("LATE", "SHP-1", "WH1", [("A", 1)]))
    core.submit(core.f.tracking("Delivered", "LATE", "SHP-1"))
    core.submit(core.f.return_inspected("LATE", "RT-1", "WH1", [("A", 1, "SELLABLE")]))
    outputs = core.submit(core.f.order_created("LATE", [("A", 2)]))
    [anomaly] = of_type(outputs, InventoryAlert)
    assert (anomaly.sku, anomaly.quantity) == ("A", 1) and "not reserved" in anomaly.message
    assert core.status("LATE") == S.RETURNED and core.reserved("A", "WH1") == 0


# --- arrivals out of order across topics (review findings) --------------------------------


def test_a_return_inspected_for_an_order_that_never_shipped_keeps_order_and_reservation(core: Core) -> None:
    core.submit(core.f.order_created("O-R1", [("A", 2)]))
    assert core.status("O-R1") == S.OUTBOUND_REQUESTED
    out = core.submit(core.f.return_inspected("O-R1", "RT-R1", "WH1", [("A", 1, "SELLABLE")]))
    assert core.status("O-R1") == S.OUTBOUND_REQUESTED
    assert core.reserved("A", "WH1") == 2
    assert any(a.alert_type == AlertType.ANOMALY for a in of_type(out, InventoryAlert))
    core.submit(core.f.order_cancelled("O-R1"))
    assert core.status("O-R1") == S.CANCELLED and core.reserved("A", "WH1") == 0


def test_a_return_requested_before_the_shipment_is_read_waits_for_it(core: Core) -> None:
    """The orders and shipments topics interleave: the request is kept, not refused, and the
    order moves to RETURN_REQUESTED once its shipment is read."""
    core.submit(core.f.order_created("O-R4", [("A", 2)]))
    out = core.submit(core.f.return_requested("O-R4", "RT-R4", [("A", 1)]))
    assert core.status("O-R4") == S.OUTBOUND_REQUESTED and not out
    out = core.submit(core.f.order_shipped("O-R4", "SH-R4", "WH1", [("A", 2)]))
    assert [x.status for x in of_type(out, OrderStatusChanged)] == [S.SHIPPED, S.RETURN_REQUESTED]
    core.submit(core.f.tracking("Delivered", "O-R4", "SH-R4"))
    core.submit(core.f.return_picked_up("O-R4", "RT-R4", "WH1"))
    core.submit(core.f.return_inspected("O-R4", "RT-R4", "WH1", [("A", 1, "SELLABLE")]))
    assert core.status("O-R4") == S.PARTIALLY_RETURNED


def test_a_delivery_read_after_the_inspection_settles_the_return_status(core: Core) -> None:
    core.submit(core.f.order_created("O-R5", [("A", 3)]))
    core.submit(core.f.order_shipped("O-R5", "SH-R5", "WH1", [("A", 3)]))
    core.submit(core.f.return_requested("O-R5", "RT-R5", [("A", 1)]))
    core.submit(core.f.return_inspected("O-R5", "RT-R5", "WH1", [("A", 1, "SELLABLE")]))
    assert core.status("O-R5") == S.RETURNED  # 1 returned, none delivered yet
    core.submit(core.f.tracking("Delivered", "O-R5", "SH-R5"))
    assert core.status("O-R5") == S.PARTIALLY_RETURNED  # 1 of 3 delivered units came back


def test_a_delivery_failure_read_after_a_return_keeps_the_return_status(core: Core) -> None:
    """Two parcels: one delivered and returned, the other failed. Whichever is read first,
    the order ends in the return's status."""
    core.submit(core.f.order_created("O-R6", [("A", 1), ("B", 1)]))
    core.submit(core.f.order_shipped("O-R6", "SH-R6a", "WH1", [("A", 1)]))
    core.submit(core.f.order_shipped("O-R6", "SH-R6b", "WH1", [("B", 1)]))
    core.submit(core.f.tracking("Delivered", "O-R6", "SH-R6a"))
    core.submit(core.f.return_requested("O-R6", "RT-R6", [("A", 1)]))
    core.submit(core.f.tracking("DeliveryFailed", "O-R6", "SH-R6b"))
    assert core.status("O-R6") == S.RETURN_REQUESTED
    position = core.center.position("B", "WH1")
    assert position is not None and position.in_transit_qty == 1  # the failed parcel still comes back


def test_a_return_inspected_for_a_shipped_placeholder_moves_it_to_returned(core: Core) -> None:
    """The whole shipments topic of an order read before its OrderCreated: the inspection
    settles the placeholder's status as it would the known order's."""
    core.submit(core.f.order_shipped("O-R7", "SH-R7", "WH1", [("A", 2)]))
    core.submit(core.f.tracking("Delivered", "O-R7", "SH-R7"))
    core.submit(core.f.return_inspected("O-R7", "RT-R7", "WH1", [("A", 1, "SELLABLE")]))
    assert core.status("O-R7") == S.PARTIALLY_RETURNED
    core.submit(core.f.order_created("O-R7", [("A", 2)]))
    core.submit(core.f.return_requested("O-R7", "RT-R7", [("A", 1)]))
    assert core.status("O-R7") == S.PARTIALLY_RETURNED


def test_a_late_shipment_report_does_not_move_a_returned_order_back(core: Core) -> None:
    core.submit(core.f.order_created("O-R2", [("A", 2)]))
    core.submit(core.f.order_shipped("O-R2", "SH-R2a", "WH1", [("A", 1)]))
    core.submit(core.f.tracking("Delivered", "O-R2", "SH-R2a"))
    core.submit(core.f.return_inspected("O-R2", "RT-R2", "WH1", [("A", 1, "SELLABLE")]))
    assert core.status("O-R2") == S.RETURNED
    core.submit(core.f.order_shipped("O-R2", "SH-R2b", "WH1", [("A", 1)]))
    assert core.status("O-R2") == S.RETURNED


def test_a_late_order_keeps_shipped_lines_it_does_not_list(core: Core) -> None:
    core.submit(core.f.order_shipped("O-R3", "SH-R3", "WH1", [("A", 1), ("B", 1)]))
    core.submit(core.f.order_created("O-R3", [("A", 1)]))
    order = core.center.order("O-R3")
    assert order is not None and order.known
    assert {(line.sku, line.shipped_qty) for line in order.lines} == {("A", 1), ("B", 1)}


def test_a_message_that_overtook_its_order_is_applied_when_redelivered(core: Core) -> None:
    """A replay can deliver an order's cancel before its creation: the early cancel is refused
    without a receipt, so the same event delivered again after the order exists is applied."""
    created = core.f.order_created("O-EARLY", [("A", 2)])
    cancelled = core.f.order_cancelled("O-EARLY")
    core.submit(cancelled)
    assert core.center.order("O-EARLY") is None
    core.submit(created)
    assert core.status("O-EARLY") == S.OUTBOUND_REQUESTED
    core.submit(cancelled)
    assert core.status("O-EARLY") == S.CANCELLED and core.reserved("A", "WH1") == 0


# --- recall: a cancel after the warehouse was instructed ---------------------------------


def test_a_cancel_after_the_outbound_instruction_recalls_it_from_each_warehouse() -> None:
    from schemas.outputs import OutboundCancellation

    core = Core()
    core.stock("WH1", B=5)
    core.stock("WH2", A=5)
    instructed = of_type(core.submit(core.f.order_created("O1", [("A", 2), ("B", 1)])), OutboundInstruction)
    assert core.status("O1") == S.OUTBOUND_REQUESTED
    cancel = core.f.order_cancelled("O1", "customer changed mind")
    outputs = core.submit(cancel)
    recalls = of_type(outputs, OutboundCancellation)
    assert [(r.instruction_no, r.warehouse_code, [(x.sku, x.quantity) for x in r.lines]) for r in recalls] == [
        (i.instruction_no, i.warehouse_code, [(x.sku, x.quantity) for x in i.lines]) for i in instructed
    ]
    assert [r.event_id for r in recalls] == ["O1|WH1|outbound-cancelled", "O1|WH2|outbound-cancelled"]
    assert {(r.order_no, r.reason, r.cause_event_id, r.occurred_at) for r in recalls} == {
        ("O1", "customer changed mind", cancel.event_id, cancel.occurred_at)
    }
    assert core.status("O1") == S.CANCELLED and core.reserved("A", "WH2") == core.reserved("B", "WH1") == 0
    assert core.submit(cancel) == outputs  # redelivered: the same recalls, under the same ids


def test_a_cancel_before_any_instruction_recalls_nothing(core: Core) -> None:
    from schemas.outputs import OutboundCancellation

    core.submit(core.f.order_created("O1", [("A", 2)], expires_in=timedelta(minutes=30)))  # unpaid
    assert core.status("O1") == S.RESERVED
    assert of_type(core.submit(core.f.order_cancelled("O1")), OutboundCancellation) == []
    assert core.status("O1") == S.CANCELLED


def test_a_recalled_order_the_warehouse_ships_anyway_is_shipped(core: Core) -> None:
    """Physical truth: the recall came too late, the parcel left."""
    core.submit(core.f.order_created("O1", [("A", 2)]))
    core.submit(core.f.order_cancelled("O1"))
    outputs = core.submit(core.f.order_shipped("O1", "SHP-1", "WH1", [("A", 2)]))
    assert core.status("O1") == S.SHIPPED
    assert {a.alert_type for a in of_type(outputs, InventoryAlert)} == {AlertType.ANOMALY}
    position = core.center.position("A", "WH1")
    assert position is not None
    assert (position.on_hand_qty, position.reserved_qty, position.outbound_qty) == (8, 0, 2)


def test_every_output_is_carried_by_one_output_topic_and_a_recall_by_the_instructions_topic() -> None:
    from config.settings import Settings
    from schemas.outputs import OUTPUT_EVENTS
    from streams.topics import Topics

    specs = [s for s in Topics(Settings()).specs if s.role == "output"]
    for name in OUTPUT_EVENTS:
        assert len([s for s in specs if name in s.records]) == 1, name
    [wms] = [s for s in specs if "OutboundInstruction" in s.records]
    assert "OutboundCancellation" in wms.records and wms.key == "orderNo"


# --- returns above what was delivered ----------------------------------------------------


def _delivered(core: Core, order_no: str, qty: int) -> None:
    core.submit(core.f.order_created(order_no, [("A", qty), ("B", 1)]))
    core.submit(core.f.order_shipped(order_no, f"SHP-{order_no}", "WH1", [("A", qty), ("B", 1)]))
    core.submit(core.f.tracking("Delivered", order_no, f"SHP-{order_no}"))


def _above_delivered(outputs: list[object]) -> list[InventoryAlert]:
    return [
        a for a in of_type(outputs, InventoryAlert) if a.alert_type == AlertType.ANOMALY and "delivered" in a.message
    ]


def test_a_return_requested_above_what_was_delivered_is_an_anomaly(core: Core) -> None:
    _delivered(core, "O1", 2)
    [anomaly] = _above_delivered(core.submit(core.f.return_requested("O1", "RET-1", [("A", 3)])))
    assert (anomaly.order_no, anomaly.sku, anomaly.quantity) == ("O1", "A", 1)
    assert "3 units of A" in anomaly.message and "2 delivered" in anomaly.message
    assert _above_delivered(core.submit(core.f.return_picked_up("O1", "RET-1", "WH1"))) == []  # said once


def test_a_return_inspected_above_what_was_delivered_is_an_anomaly_and_the_stock_still_moves(core: Core) -> None:
    _delivered(core, "O1", 2)
    core.submit(core.f.return_requested("O1", "RET-1", [("A", 2)]))
    core.submit(core.f.return_picked_up("O1", "RET-1", "WH1"))
    outputs = core.submit(core.f.return_inspected("O1", "RET-1", "WH1", [("A", 3, "SELLABLE"), ("B", 1, "DAMAGED")]))
    [anomaly] = _above_delivered(outputs)
    assert (anomaly.order_no, anomaly.sku, anomaly.quantity) == ("O1", "A", 1)
    position = core.center.position("A", "WH1")
    assert position is not None and (position.on_hand_qty, position.in_transit_qty) == (11, 0)


def test_a_return_within_what_was_delivered_is_no_anomaly(core: Core) -> None:
    _delivered(core, "O1", 2)
    outputs = core.submit(core.f.return_requested("O1", "RET-1", [("A", 2), ("B", 1)]))
    outputs += core.submit(core.f.return_picked_up("O1", "RET-1", "WH1"))
    outputs += core.submit(core.f.return_inspected("O1", "RET-1", "WH1", [("A", 2, "SELLABLE"), ("B", 1, "SELLABLE")]))
    assert of_type(outputs, InventoryAlert) == []


def test_a_return_read_before_its_delivery_is_judged_once_the_delivery_is_read(core: Core) -> None:
    """The topics interleave: a return read while its parcel is on its way is no anomaly yet."""
    core.submit(core.f.order_created("O1", [("A", 2)]))
    core.submit(core.f.order_shipped("O1", "SHP-1", "WH1", [("A", 2)]))
    assert _above_delivered(core.submit(core.f.return_inspected("O1", "RET-1", "WH1", [("A", 2, "SELLABLE")]))) == []
    assert _above_delivered(core.submit(core.f.tracking("Delivered", "O1", "SHP-1"))) == []
    core.submit(core.f.order_created("O2", [("A", 1)]))
    core.submit(core.f.order_shipped("O2", "SHP-2", "WH1", [("A", 1)]))
    assert _above_delivered(core.submit(core.f.return_requested("O2", "RET-2", [("A", 2)]))) == []
    [anomaly] = _above_delivered(core.submit(core.f.tracking("Delivered", "O2", "SHP-2")))
    assert (anomaly.order_no, anomaly.sku, anomaly.quantity) == ("O2", "A", 1)


def test_a_late_order_leaks_no_reservation_in_any_delivery_order() -> None:
    """Part shipped, the order read, the rest shipped (maybe from another warehouse), in
    every interleaving the topics allow: nothing stays held, the order is SHIPPED."""
    from tests.unit.core.test_interleaving import assert_no_leaked_reservation
    from tests.unit.interleaving import InterleavingCenter

    for seed in range(60):
        f = EventFactory()
        center = InterleavingCenter(seed)
        center.publish(f.goods_received("RCV-1", "WH1", [("A", 10, 0), ("B", 10, 0)]))
        center.publish(f.goods_received("RCV-2", "WH2", [("A", 10, 0), ("B", 10, 0)]))
        center.drain()
        center.publish(f.order_shipped("LATE", "SHP-1", "WH1", [("A", 2)]))
        center.deliver_next("shipments")
        center.publish(f.order_created("LATE", [("A", 3), ("B", 1)]))
        center.publish(f.order_shipped("LATE", "SHP-2", "WH2" if seed % 3 == 0 else "WH1", [("A", 1), ("B", 1)]))
        center.drain()
        order = center.order("LATE")
        assert order is not None and order.status == S.SHIPPED, (seed, order)
        assert center.tables.reservations_by_key == {}, seed
        assert_no_leaked_reservation(center.tables)
