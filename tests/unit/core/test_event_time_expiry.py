"""Reservation expiry decided on event time (docs/inventory-model.md, "Pay, expire, outbound").

A payment is judged by when it happened, not by when it is read: one that occurred by the
order's ``reservationExpiresAt`` is honoured even after a (wall-clock fallback) tick expired
the order - the order is re-opened and its lines reserved again - and one that occurred
later is refused and expires the order, tick or no tick. The tick itself is stamped with the
due time, so no wall-clock value reaches a position. Then whole days: replayed at full
speed with ticks driven by the event-time watermark, a day ends with the statuses of a
replay paced on its own clock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from connectors.traffic import CALM, DayParams, DaySimulation, replay
from schemas.base import Event
from schemas.internal import ReservationExpiryDue
from schemas.outputs import (
    AlertType,
    InventoryAlert,
    InventoryChanged,
    OrderStatus,
    OrderStatusChanged,
    OutboundInstruction,
)
from tables.center import InventoryCenter
from tests.unit.core.test_interleaving import assert_no_leaked_reservation
from tests.unit.core.test_order_core import Core, of_type
from tests.unit.event_factory import EventFactory
from tests.unit.interleaving import InterleavingCenter

S = OrderStatus
WINDOW = timedelta(minutes=30)
WALL_CLOCK = datetime.fromisoformat("2030-01-01T00:00:00+00:00")  # far past any event time


def statuses(core: Core, order_no: str) -> list[OrderStatus]:
    return [c.status for c in of_type(core.center.outputs, OrderStatusChanged) if c.order_no == order_no]


def anomalies(outputs: list[object]) -> list[InventoryAlert]:
    return [a for a in of_type(outputs, InventoryAlert) if a.alert_type == AlertType.ANOMALY]


@pytest.fixture
def core() -> Core:
    c = Core()
    c.stock("WH1", A=10, B=10)
    return c


def unpaid(core: Core, order_no: str = "O1", items: list[tuple[str, int]] | None = None) -> datetime:
    """An unpaid order, reserved; returns its due time."""
    core.submit(core.f.order_created(order_no, items or [("A", 2)], expires_in=WINDOW))
    order = core.center.order(order_no)
    assert order is not None and order.status == S.RESERVED and order.reservation_expires_at is not None
    return order.reservation_expires_at


# --- the tick is stamped with event time --------------------------------------------------


def test_an_expiry_by_the_wall_clock_writes_the_due_time_never_the_wall_clock(core: Core) -> None:
    due = unpaid(core)
    n = len(core.center.outputs)
    core.center.expire_due(WALL_CLOCK)
    assert core.status("O1") == S.EXPIRED
    emitted = core.center.outputs[n:]
    assert {e.occurred_at for e in emitted} == {due}  # type: ignore[attr-defined]
    [changed] = of_type(emitted, InventoryChanged)
    assert changed.reserved_qty == 0
    position = core.center.position("A", "WH1")
    assert position is not None and position.updated_at == due


# --- a payment that happened in time ------------------------------------------------------


def test_a_payment_in_time_read_after_a_fallback_expiry_reopens_the_order(core: Core) -> None:
    due = unpaid(core, items=[("A", 2), ("B", 1)])
    core.center.expire_due(WALL_CLOCK)  # the wall-clock fallback fired before the payment was read
    assert (core.status("O1"), core.reserved("A", "WH1")) == (S.EXPIRED, 0)
    paid = core.f.order_paid("O1")
    assert paid.occurred_at <= due
    outputs = core.submit(paid)
    [anomaly] = anomalies(outputs)
    assert anomaly.order_no == "O1" and "re-opened" in anomaly.message
    assert (core.status("O1"), core.reserved("A", "WH1"), core.reserved("B", "WH1")) == (S.OUTBOUND_REQUESTED, 2, 1)
    assert statuses(core, "O1") == [S.PENDING, S.RESERVED, S.EXPIRED, S.PENDING, S.RESERVED, S.OUTBOUND_REQUESTED]
    [instruction] = of_type(outputs, OutboundInstruction)
    assert [(x.sku, x.quantity) for x in instruction.lines] == [("A", 2), ("B", 1)]
    assert core.submit(core.f.order_paid("O1")) == []  # paid again: nothing new


def test_a_reopened_order_whose_stock_went_meanwhile_is_rejected(core: Core) -> None:
    unpaid(core, items=[("A", 2)])
    core.center.expire_due(WALL_CLOCK)
    core.submit(core.f.order_created("O2", [("A", 10)]))  # takes every unit the expiry freed
    core.submit(core.f.order_paid("O1"))
    assert core.status("O1") == S.REJECTED and core.reserved("A", "WH1") == 10
    order = core.center.order("O1")
    assert order is not None and all(line.reserved_qty == 0 for line in order.lines)


def test_a_reopening_waits_for_the_release_answers_of_its_expiry() -> None:
    """In the pipeline the expiry's releases are answered after the payment may be read:
    the order re-reserves only once every release is answered, so no older answer is taken
    for the new reservation. Delivered in many interleavings."""
    for seed in range(40):
        f = EventFactory()
        center = InterleavingCenter(seed)
        center.publish(f.goods_received("RCV-1", "WH1", [("A", 10, 0), ("B", 10, 0)]))
        center.drain()
        created = f.order_created("O1", [("A", 2), ("B", 1)], expires_in=WINDOW)
        assert created.reservation_expires_at is not None  # type: ignore[attr-defined]
        center.publish(created)
        center.deliver_next("orders")  # ReserveStock queued; the answers may come at any time
        if seed % 2:
            center.drain()
        # The worker's timer publishes the tick to the order inbox (the wall-clock fallback).
        center._enqueue(("order-inbox", "O1"), expiry_tick("O1", created.reservation_expires_at))  # type: ignore[attr-defined]
        if not seed % 2:
            center.deliver_next("order-inbox")  # the tick overtakes the reservation answers
        center.publish(f.order_paid("O1"))
        center.drain()
        order = center.order("O1")
        assert order is not None and order.status == S.OUTBOUND_REQUESTED, (seed, order)
        assert [(x.sku, x.reserved_qty) for x in order.lines] == [("A", 2), ("B", 1)], seed
        assert_no_leaked_reservation(center.tables)
        instructions = of_type(center.outputs, OutboundInstruction)
        assert len(instructions) == 1, seed


def expiry_tick(order_no: str, due: datetime) -> ReservationExpiryDue:
    return ReservationExpiryDue(
        event_id=f"{order_no}|expiry|{due.isoformat()}", order_no=order_no, due_at=due, occurred_at=due
    )


def test_a_cancel_that_happened_before_the_due_time_read_after_a_fallback_expiry_cancels(core: Core) -> None:
    unpaid(core)
    cancel = core.f.order_cancelled("O1")
    core.center.expire_due(WALL_CLOCK)
    core.submit(cancel)
    assert core.status("O1") == S.CANCELLED and core.reserved("A", "WH1") == 0
    core.submit(core.f.order_paid("O1"))  # refused: a cancelled order is not re-opened
    assert core.status("O1") == S.CANCELLED and core.reserved("A", "WH1") == 0


# --- a payment that happened too late -----------------------------------------------------


def test_a_late_payment_is_refused_and_expires_the_order_without_a_tick(core: Core) -> None:
    due = unpaid(core)
    core.f.advance(WINDOW)
    paid = core.f.order_paid("O1")
    assert paid.occurred_at > due
    outputs = core.submit(paid)
    [anomaly] = anomalies(outputs)
    assert anomaly.order_no == "O1" and "refused" in anomaly.message
    assert (core.status("O1"), core.reserved("A", "WH1")) == (S.EXPIRED, 0)
    assert of_type(outputs, OutboundInstruction) == []
    assert core.center.tables.expiry_index == {}
    core.center.expire_due(WALL_CLOCK)  # the tick that comes later changes nothing
    assert statuses(core, "O1") == [S.PENDING, S.RESERVED, S.EXPIRED]


def test_a_late_payment_read_after_the_expiry_is_refused(core: Core) -> None:
    unpaid(core)
    core.f.advance(WINDOW)
    core.center.expire_due(core.f.now)
    outputs = core.submit(core.f.order_paid("O1"))
    [anomaly] = anomalies(outputs)
    assert "refused" in anomaly.message
    assert (core.status("O1"), core.reserved("A", "WH1")) == (S.EXPIRED, 0)


def test_a_payment_at_the_due_time_is_in_time(core: Core) -> None:
    due = unpaid(core)
    paid = core.f.event("OrderPaid", orderNo="O1", occurredAt=due.isoformat())
    core.submit(paid)
    assert core.status("O1") == S.OUTBOUND_REQUESTED


# --- the center's timer on the event-time watermark ---------------------------------------


def test_the_center_can_tick_on_the_watermark_of_the_events_submitted() -> None:
    center = InventoryCenter(tick_on_watermark=timedelta(minutes=5))
    f = EventFactory()
    center.submit(f.goods_received("RCV-1", "WH1", [("A", 10, 0)]))
    center.submit(f.order_created("O1", [("A", 2)], expires_in=WINDOW))
    f.advance(WINDOW + timedelta(minutes=3))  # past the due time, within the grace
    center.submit(f.goods_received("RCV-2", "WH1", [("A", 1, 0)]))
    order = center.order("O1")
    assert order is not None and order.status == S.RESERVED
    f.advance(timedelta(minutes=2))
    center.submit(f.goods_received("RCV-3", "WH1", [("A", 1, 0)]))
    order = center.order("O1")
    assert order is not None and order.status == S.EXPIRED
    assert center.watermark == f.now


# --- whole days: full speed vs paced -------------------------------------------------------


PAY_LATER_DAY = replace(CALM, pay_later=0.6, never_paid=0.3, cancelled=0.1)


def pay_later_day(seed: int) -> list[Event]:
    params = DayParams(seed=seed, orders=150, skus=12, warehouses=3, mix=PAY_LATER_DAY)
    return list(DaySimulation(params).events())


def order_statuses(center: InventoryCenter) -> dict[str, OrderStatus]:
    return {no: o.status for no, o in center.tables.orders_by_no.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_day_replayed_at_full_speed_on_the_watermark_ends_as_the_paced_replay(seed: int) -> None:
    events = pay_later_day(seed)
    paced = replay(events)  # expire_due(occurredAt) before each event, as the day happened
    fast = InventoryCenter(tick_on_watermark=timedelta(minutes=5))
    fast.submit_all(events)
    expected = order_statuses(paced)
    assert S.EXPIRED in expected.values() and S.CANCELLED in expected.values()
    assert order_statuses(fast) == expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_day_replayed_at_full_speed_on_the_wall_clock_ends_as_the_paced_replay(seed: int) -> None:
    """The worst case of the wall-clock fallback: every pay-later order expires as soon as
    it is read. Payments and cancels that happened in time still decide its status."""
    events = pay_later_day(seed)
    paced = replay(events)
    paced.expire_due(WALL_CLOCK)  # the day is over: what was not paid by its end expired
    fast = InventoryCenter()
    for event in events:
        fast.submit(event)
        fast.expire_due(WALL_CLOCK)
    assert order_statuses(fast) == order_statuses(paced)
