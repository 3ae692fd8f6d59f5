"""Rules of the SKU partition (tables/stock.py), one command at a time.

Commands are applied with ``apply_stock`` against an in-memory view and the outcome is
stored the way the stock agent stores it, so each test reads like the command log of one
SKU.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count
from typing import Any

import pytest

from schemas.internal import (
    AdjustStock,
    AnnounceInbound,
    DisposeDamaged,
    ReceiveStock,
    ReconcileStock,
    ReleaseStock,
    ReservationStatus,
    ReservationUpdated,
    ReserveStock,
    ShipStock,
    StockCommand,
)
from schemas.outputs import AlertType, InventoryAlert, InventoryLedgerEntry, MovementType, StockBucket
from tables.center import MemoryTables
from tables.policy import CorePolicy
from tables.state import Allocation, Position
from tables.stock import StockOutcome, apply_stock
from tests.unit.event_factory import T0

SKU = "SKU1"


class Partition:
    """One SKU partition: tables, a policy and a clock."""

    def __init__(self, policy: CorePolicy | None = None) -> None:
        self.tables = MemoryTables()
        self.policy = policy or CorePolicy(reorder_point=0)
        self.ids = count(1)
        self.now = T0

    def apply(self, cls: type[StockCommand], **fields: Any) -> StockOutcome:
        n = next(self.ids)
        self.now += timedelta(minutes=1)
        fields.setdefault("command_id", f"cmd-{n}|{SKU}|{cls.__name__}")
        fields.setdefault("occurred_at", self.now)
        command = cls.model_validate({"sku": SKU, "cause_event_type": "Test", "cause_event_id": f"cmd-{n}", **fields})
        self.last_command = command
        outcome = apply_stock(self.tables, command, self.policy)
        self.tables.store_stock(outcome)
        return outcome

    def receive(
        self, warehouse: str, sellable: int, damaged: int = 0, document: str | None = None, closes: bool = True
    ) -> StockOutcome:
        return self.apply(
            ReceiveStock,
            receipt_no=f"RCV-{next(self.ids)}",
            document_no=document,
            warehouse_code=warehouse,
            sellable_qty=sellable,
            damaged_qty=damaged,
            closes_document=closes,
            is_transfer=False,
        )

    def announce(self, warehouse: str, quantity: int, document: str) -> StockOutcome:
        return self.apply(AnnounceInbound, document_no=document, warehouse_code=warehouse, quantity=quantity)

    def reserve(
        self, order_no: str, quantity: int, warehouse: str | None = None, order_type: str = "NORMAL"
    ) -> StockOutcome:
        return self.apply(
            ReserveStock, order_no=order_no, order_type=order_type, quantity=quantity, warehouse_code=warehouse
        )

    def release(self, order_no: str) -> StockOutcome:
        return self.apply(ReleaseStock, order_no=order_no)

    def adjust(self, warehouse: str, delta: int, reason: str = "CYCLE_COUNT") -> StockOutcome:
        return self.apply(
            AdjustStock, adjustment_no=f"ADJ-{next(self.ids)}", warehouse_code=warehouse, delta=delta, reason=reason
        )

    def position(self, warehouse: str) -> Position:
        stock = self.tables.stock(SKU)
        position = stock.position(warehouse) if stock else None
        assert position is not None, warehouse
        return position


def answer(outcome: StockOutcome) -> ReservationUpdated:
    [result] = [e for e in outcome.events if isinstance(e, ReservationUpdated)]
    return result


def alerts(outcome: StockOutcome, alert_type: AlertType | None = None) -> list[InventoryAlert]:
    return [
        e
        for e in outcome.events
        if isinstance(e, InventoryAlert) and (alert_type is None or e.alert_type == alert_type)
    ]


def stocked(levels: dict[str, int], policy: CorePolicy | None = None) -> Partition:
    part = Partition(policy)
    for warehouse, quantity in levels.items():
        part.receive(warehouse, quantity)
    return part


# --- source selection -------------------------------------------------------------------


def test_the_warehouse_with_the_most_available_fills_the_line() -> None:
    part = stocked({"WH1": 5, "WH2": 9, "WH3": 7}, CorePolicy(warehouse_priority=("WH1", "WH3")))
    result = answer(part.reserve("O1", 4))
    assert (result.status, result.warehouse_code, result.reserved_qty) == (ReservationStatus.RESERVED, "WH2", 4)
    assert part.position("WH2").available_qty == 5


@pytest.mark.parametrize(
    ("priority", "chosen"),
    [
        ((), "WH1"),  # nobody ranked: code order
        (("WH3",), "WH3"),  # ranked beats unranked
        (("WH2", "WH1"), "WH2"),  # the earlier rank wins
        (("WH9", "WH3", "WH2"), "WH3"),  # ranks of absent warehouses do not matter
    ],
)
def test_ties_on_available_go_by_priority_then_code(priority: tuple[str, ...], chosen: str) -> None:
    part = stocked({"WH3": 6, "WH1": 6, "WH2": 6}, CorePolicy(warehouse_priority=priority))
    assert answer(part.reserve("O1", 2)).warehouse_code == chosen


def test_a_warehouse_that_cannot_fill_the_line_is_not_chosen_even_if_ranked_first() -> None:
    part = stocked({"WH1": 3, "WH2": 4}, CorePolicy(warehouse_priority=("WH1",)))
    assert answer(part.reserve("O1", 4)).warehouse_code == "WH2"


def test_a_named_warehouse_is_used_and_never_replaced() -> None:
    part = stocked({"WH1": 2, "WH2": 50})
    assert answer(part.reserve("O1", 2, warehouse="WH1")).warehouse_code == "WH1"
    rejected = answer(part.reserve("O2", 1, warehouse="WH1"))
    assert (rejected.status, rejected.best_available_qty) == (ReservationStatus.REJECTED, 0)
    assert part.position("WH2").reserved_qty == 0


def test_with_split_lines_off_a_line_no_single_warehouse_can_fill_is_rejected_with_the_best_offer() -> None:
    part = stocked({"WH1": 3, "WH2": 4}, CorePolicy(split_lines=False))
    result = answer(part.reserve("O1", 5))
    assert (result.status, result.best_available_qty, result.warehouse_code) == (ReservationStatus.REJECTED, 4, None)
    assert part.position("WH1").reserved_qty == part.position("WH2").reserved_qty == 0


# --- split lines: no single warehouse can fill the line ---------------------------------


def test_a_line_no_single_warehouse_can_fill_is_split_across_the_fewest_warehouses() -> None:
    part = stocked({"WH1": 5, "WH2": 4, "WH3": 2})
    result = answer(part.reserve("O1", 8))
    assert (result.status, result.warehouse_code, result.reserved_qty) == (ReservationStatus.RESERVED, "WH1", 8)
    assert [(x.warehouse_code, x.reserved_qty) for x in result.splits] == [("WH2", 3)]
    assert [part.position(wh).reserved_qty for wh in ("WH1", "WH2", "WH3")] == [5, 3, 0]
    r = part.tables.reservation(SKU, "O1")
    assert r is not None and (r.warehouse_code, r.reserved_qty, r.splits) == ("WH1", 5, (Allocation("WH2", 3),))
    assert (r.held_at("WH1"), r.held_at("WH2"), r.held_at("WH3"), r.total_reserved_qty) == (5, 3, 0, 8)


def test_a_line_only_three_warehouses_can_cover_is_split_in_priority_then_code_order() -> None:
    part = stocked({"WH1": 4, "WH2": 4, "WH3": 4}, CorePolicy(warehouse_priority=("WH3",)))
    result = answer(part.reserve("O1", 10))
    assert (result.status, result.warehouse_code, result.reserved_qty) == (ReservationStatus.RESERVED, "WH3", 10)
    assert [(x.warehouse_code, x.reserved_qty) for x in result.splits] == [("WH1", 4), ("WH2", 2)]
    assert [part.position(wh).available_qty for wh in ("WH1", "WH2", "WH3")] == [0, 2, 0]


def test_a_line_all_warehouses_together_cannot_cover_is_rejected_with_the_best_single_offer() -> None:
    part = stocked({"WH1": 3, "WH2": 4})
    result = answer(part.reserve("O1", 8))
    assert (result.status, result.best_available_qty, result.warehouse_code) == (ReservationStatus.REJECTED, 4, None)
    assert part.position("WH1").reserved_qty == part.position("WH2").reserved_qty == 0
    assert part.tables.reservation(SKU, "O1") is None


def test_presale_lines_and_lines_naming_a_warehouse_are_never_split() -> None:
    part = stocked({"WH1": 3, "WH2": 4})
    assert answer(part.reserve("P1", 5, order_type="PRESALE")).status == ReservationStatus.REJECTED
    assert answer(part.reserve("O1", 5, warehouse="WH2")).status == ReservationStatus.REJECTED
    assert part.position("WH1").reserved_qty == part.position("WH2").reserved_qty == 0


def test_a_split_line_ships_each_part_from_its_warehouse_and_releases_every_part() -> None:
    part = stocked({"WH1": 5, "WH2": 4})
    part.reserve("O1", 8)  # WH1 5 + WH2 3
    shipped = part.apply(
        ShipStock, order_no="O1", shipment_no="SHP-1", warehouse_code="WH2", quantity=3, order_known=True
    )
    assert alerts(shipped, AlertType.ANOMALY) == []  # the units were held there
    assert (answer(shipped).reserved_qty, answer(shipped).splits) == (5, [])
    p1, p2 = part.position("WH1"), part.position("WH2")
    assert (p1.reserved_qty, p2.reserved_qty, p2.on_hand_qty, p2.outbound_qty, p2.available_qty) == (5, 0, 1, 3, 1)
    released = answer(part.release("O1"))
    assert (released.status, released.reserved_qty) == (ReservationStatus.RELEASED, 0)
    assert (part.position("WH1").reserved_qty, part.position("WH1").available_qty) == (0, 5)
    assert part.tables.reservation(SKU, "O1") is None


def test_releasing_a_split_line_gives_back_every_part() -> None:
    part = stocked({"WH1": 4, "WH2": 4, "WH3": 4})
    assert len(answer(part.reserve("O1", 10)).splits) == 2
    part.release("O1")
    assert [part.position(wh).reserved_qty for wh in ("WH1", "WH2", "WH3")] == [0, 0, 0]
    assert part.tables.reservation(SKU, "O1") is None


def test_a_shortage_at_a_split_warehouse_names_the_order_holding_a_part_there() -> None:
    part = stocked({"WH1": 5, "WH2": 4})
    part.reserve("O1", 8)  # WH1 5 + WH2 3
    [shortage] = alerts(part.adjust("WH2", -3, "LOSS"), AlertType.SHORTAGE)
    assert (shortage.warehouse_code, shortage.quantity, shortage.orders_at_risk) == ("WH2", 2, ["O1"])


# --- reservations and availableQty ------------------------------------------------------


def test_presale_takes_available_first_then_unpromised_inbound() -> None:
    part = stocked({"WH1": 3})
    part.announce("WH1", 10, "ASN-1")
    first = answer(part.reserve("P1", 5, order_type="PRESALE"))
    assert (first.reserved_qty, first.presold_qty) == (3, 2)
    second = answer(part.reserve("P2", 8, order_type="PRESALE"))
    assert (second.reserved_qty, second.presold_qty) == (0, 8)
    assert answer(part.reserve("P3", 1, order_type="PRESALE")).status == ReservationStatus.REJECTED
    p = part.position("WH1")
    assert (p.available_qty, p.reserved_qty, p.presold_qty, p.in_transit_qty) == (0, 3, 10, 10)


@pytest.mark.parametrize("order_type", ["NORMAL", "GIFT"])
def test_normal_and_gift_lines_never_reserve_inbound_units(order_type: str) -> None:
    part = stocked({"WH1": 1})
    part.announce("WH1", 10, "ASN-1")
    assert answer(part.reserve("O1", 2, order_type=order_type)).status == ReservationStatus.REJECTED


def test_a_reservation_never_lowers_a_negative_available() -> None:
    part = stocked({"WH1": 5})
    part.reserve("O1", 5)
    part.adjust("WH1", -2, "LOSS")  # available -2
    part.announce("WH1", 4, "ASN-1")
    assert answer(part.reserve("N1", 1)).status == ReservationStatus.REJECTED
    presale = answer(part.reserve("P1", 3, order_type="PRESALE"))
    assert (presale.reserved_qty, presale.presold_qty) == (0, 3)
    assert part.position("WH1").available_qty == -2


def test_release_gives_back_reserved_and_presold_units() -> None:
    part = stocked({"WH1": 2})
    part.announce("WH1", 5, "ASN-1")
    part.reserve("P1", 4, order_type="PRESALE")
    released = answer(part.release("P1"))
    assert (released.status, released.warehouse_code) == (ReservationStatus.RELEASED, "WH1")
    p = part.position("WH1")
    assert (p.reserved_qty, p.presold_qty, p.available_qty) == (0, 0, 2)
    assert part.tables.reservation(SKU, "P1") is None


# --- LOW_STOCK and OUT_OF_STOCK, once per crossing --------------------------------------


def test_low_stock_and_out_of_stock_fire_once_per_crossing() -> None:
    part = stocked({"WH1": 12}, CorePolicy(reorder_point=10))
    fired = []
    for n in range(12):  # available 12 -> 0, one unit at a time
        fired.append([(a.alert_type, a.quantity) for a in alerts(part.reserve(f"O{n}", 1))])
    assert fired[2] == [(AlertType.LOW_STOCK, 9)]
    assert fired[11] == [(AlertType.OUT_OF_STOCK, 0)]
    assert sum(len(f) for f in fired) == 2
    for n in range(11):  # back up to 11: no alerts on the way up
        assert alerts(part.release(f"O{n}")) == []
    # Down again: a new crossing, a new alert.
    assert [a.alert_type for a in alerts(part.reserve("again-1", 2))] == [AlertType.LOW_STOCK]
    assert alerts(part.reserve("again-2", 1)) == []


def test_falling_from_above_the_reorder_point_to_zero_is_out_of_stock_only() -> None:
    part = stocked({"WH1": 12}, CorePolicy(reorder_point=10))
    assert [a.alert_type for a in alerts(part.reserve("O1", 12))] == [AlertType.OUT_OF_STOCK]


# --- presale supply: FIFO conversion, SHORTAGE newest first -----------------------------


def test_arriving_presold_units_serve_the_oldest_presale_orders_first() -> None:
    part = Partition()
    part.announce("WH1", 9, "ASN-1")
    for order_no, quantity in (("P1", 2), ("P2", 3), ("P3", 4)):
        part.reserve(order_no, quantity, order_type="PRESALE")
    outcome = part.receive("WH1", 4, document="ASN-1", closes=False)
    served = [(r.order_no, r.reserved_qty, r.presold_qty) for r in outcome.events if isinstance(r, ReservationUpdated)]
    assert served == [("P1", 2, 0), ("P2", 2, 1)]
    assert part.tables.reservation(SKU, "P3").presold_qty == 4  # type: ignore[union-attr]
    p = part.position("WH1")
    assert (p.reserved_qty, p.presold_qty, p.in_transit_qty, p.available_qty) == (4, 5, 5, 0)


def test_supply_that_will_not_come_is_taken_from_available_then_named_short_newest_first() -> None:
    part = Partition()
    part.announce("WH1", 9, "ASN-1")
    for order_no, quantity in (("P1", 3), ("P2", 3), ("P3", 3)):
        part.reserve(order_no, quantity, order_type="PRESALE")
    part.receive("WH1", 2)  # blind: 2 available, no presale served
    outcome = part.receive("WH1", 1, damaged=1, document="ASN-1", closes=True)  # 7 never come
    # 1 sellable arrived: P1 served. 8 presold without supply: P3 (3) takes 2 available and
    # is 1 short, P2 is 3 short, P1 is 2 short: 6 short, newest first.
    [shortage] = alerts(outcome, AlertType.SHORTAGE)
    assert (shortage.quantity, shortage.orders_at_risk) == (6, ["P3", "P2", "P1"])
    shorts = {r.order_no: (r.reserved_qty, r.short_qty) for r in part.tables.reservations_by_key.values()}
    assert shorts == {"P1": (1, 2), "P2": (0, 3), "P3": (2, 1)}
    p = part.position("WH1")
    assert (p.presold_qty, p.in_transit_qty, p.reserved_qty, p.available_qty) == (0, 0, 3, 0)


def test_shortage_after_an_adjustment_names_the_newest_reservations_that_cover_the_gap() -> None:
    part = stocked({"WH1": 10})
    for order_no, quantity in (("O1", 3), ("O2", 3), ("O3", 3)):
        part.reserve(order_no, quantity)
    [shortage] = alerts(part.adjust("WH1", -5, "LOSS"), AlertType.SHORTAGE)  # available 1 -> -4
    assert (shortage.quantity, shortage.orders_at_risk) == (4, ["O3", "O2"])
    assert alerts(part.adjust("WH1", 1, "FOUND"), AlertType.SHORTAGE) == []  # better, not worse


# --- physical movements -----------------------------------------------------------------


def test_a_shipment_moves_reserved_units_to_outbound_with_two_ledger_entries() -> None:
    part = stocked({"WH1": 10})
    part.reserve("O1", 4)
    outcome = part.apply(
        ShipStock, order_no="O1", shipment_no="SHP-1", warehouse_code="WH1", quantity=3, order_known=True
    )
    p = part.position("WH1")
    assert (p.on_hand_qty, p.reserved_qty, p.outbound_qty, p.available_qty) == (7, 1, 3, 6)
    entries = [
        (e.bucket, e.movement_type, e.quantity, e.document_no)
        for e in outcome.events
        if isinstance(e, InventoryLedgerEntry)
    ]
    assert entries == [
        (StockBucket.ON_HAND, MovementType.SHIPPED, -3, "SHP-1"),
        (StockBucket.OUTBOUND, MovementType.SHIPPED, 3, "SHP-1"),
    ]
    assert alerts(outcome) == []


def test_a_negative_adjustment_beyond_on_hand_is_applied_whole() -> None:
    part = stocked({"WH1": 3})
    outcome = part.adjust("WH1", -5, "LOSS")
    assert not alerts(outcome, AlertType.ANOMALY)  # the receipt may simply not be read yet
    assert part.position("WH1").on_hand_qty == -2
    part.receive("WH1", 2)
    assert part.position("WH1").on_hand_qty == 0


def test_a_damage_adjustment_moves_units_to_damaged() -> None:
    part = stocked({"WH1": 3})
    part.adjust("WH1", -2, "DAMAGE")
    p = part.position("WH1")
    assert (p.on_hand_qty, p.damaged_qty, p.total_qty) == (1, 2, 1)


def test_a_receipt_before_its_announcement_leaves_a_credit() -> None:
    part = Partition()
    part.receive("WH1", 4, document="ASN-1", closes=False)
    assert part.tables.expectation(SKU, "WH1", "ASN-1").outstanding_qty == -4  # type: ignore[union-attr]
    part.announce("WH1", 10, "ASN-1")  # only the 6 not yet received are still coming
    p = part.position("WH1")
    assert (p.on_hand_qty, p.in_transit_qty) == (4, 6)


@pytest.mark.parametrize(
    ("age", "on_hand"), [(timedelta(0), 8), (timedelta(seconds=-1), 8), (timedelta(seconds=1), 18)]
)
def test_a_snapshot_is_the_truth_as_of_its_count(age: timedelta, on_hand: int) -> None:
    part = stocked({"WH1": 10})
    last_change: datetime = part.position("WH1").updated_at  # type: ignore[assignment]
    part.reserve("O1", 4)  # reservations move no unit: they never make a count stale
    part.apply(ReconcileStock, snapshot_id="SNAP-1", warehouse_code="WH1", counted_qty=8, counted_at=last_change - age)
    # Counted before the receipt of 10 (age > 0): 8 then, 18 now.
    assert part.position("WH1").on_hand_qty == on_hand


def test_a_command_applied_twice_changes_nothing_and_repeats_its_events() -> None:
    part = stocked({"WH1": 10})
    first = part.reserve("O1", 4)
    before = (dict(part.tables.stock_by_sku), dict(part.tables.reservations_by_key))
    again = apply_stock(part.tables, part.last_command, part.policy)
    assert again.duplicate and again.events == first.events and again.receipt is None
    part.tables.store_stock(again)
    assert (dict(part.tables.stock_by_sku), dict(part.tables.reservations_by_key)) == before


def test_a_command_that_moves_nothing_at_an_unknown_warehouse_creates_no_position() -> None:
    from schemas.outputs import InventoryChanged
    from tables.center import InventoryCenter
    from tests.unit.event_factory import EventFactory

    center, f = InventoryCenter(), EventFactory()
    center.submit(f.goods_received("RC-Z", "WH1", [("Z", 5, 0)]))
    before = len(center.outputs)
    center.submit(f.order_created("O-Z", [("Z", 1, "WH9")]))  # rejected: nothing there
    assert center.position("Z", "WH9") is None
    assert not [e for e in center.outputs[before:] if isinstance(e, InventoryChanged)]


def test_a_disposal_at_a_warehouse_the_sku_never_had_keeps_its_units_ahead() -> None:
    """A return inspected at another warehouse may bring the SKU's first units there, and
    its disposal can be read first: the units are written off when they arrive."""
    part = Partition()
    part.apply(DisposeDamaged, disposal_no="DSP-1", warehouse_code="WH9", quantity=2)
    assert part.position("WH9").disposed_ahead_qty == 2


def test_a_change_carries_the_positions_updated_at_when_an_earlier_event_is_applied_later() -> None:
    """Events reach a SKU out of event-time order (several input topics): the position's
    updatedAt stays the newest occurredAt, and its InventoryChanged says so (``updated_at``)
    beside its own event's time - what a read process answers as updatedAt."""
    from schemas.outputs import InventoryChanged

    part = Partition()
    part.receive("WH1", 10)  # at T0 + a minute
    later = part.apply(
        AdjustStock,
        adjustment_no="ADJ-1",
        warehouse_code="WH1",
        delta=5,
        reason="FOUND",
        occurred_at=T0 + timedelta(hours=3),
    )
    earlier = part.apply(
        AdjustStock,
        adjustment_no="ADJ-2",
        warehouse_code="WH1",
        delta=-1,
        reason="LOSS",
        occurred_at=T0 + timedelta(hours=1),
    )
    (first,) = [e for e in later.events if isinstance(e, InventoryChanged)]
    (second,) = [e for e in earlier.events if isinstance(e, InventoryChanged)]
    position = part.tables.stock_by_sku[SKU].position("WH1")
    assert position is not None and position.version == second.version == first.version + 1
    assert first.updated_at == first.occurred_at == T0 + timedelta(hours=3)
    assert second.occurred_at == T0 + timedelta(hours=1)
    assert second.updated_at == position.updated_at == T0 + timedelta(hours=3)
