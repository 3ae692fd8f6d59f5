"""The SKU partition of the core: stock commands applied to one SKU's positions.

``apply_stock(view, command, policy) -> StockOutcome``: reads the records it needs through a
read-only ``StockView``, returns the new SKU record, the changed reservation and expectation
records (``None`` = delete), the receipt that makes the command idempotent, and the events
to emit. No Kafka, no RocksDB, no clock, no randomness: time comes in on the command.
See docs/inventory-model.md for the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from schemas.inputs import AdjustmentReason, OrderType
from schemas.internal import (
    AdjustStock,
    AnnounceInbound,
    DeliverStock,
    DispatchTransfer,
    DisposeDamaged,
    ExpectReturn,
    InspectReturn,
    ReceiveStock,
    ReconcileStock,
    ReleaseStock,
    ReservationStatus,
    ReservationUpdated,
    ReserveStock,
    ReturnUndelivered,
    ShipStock,
    StockCommand,
)
from schemas.outputs import (
    AlertType,
    InventoryAlert,
    InventoryChanged,
    InventoryLedgerEntry,
    MovementType,
    StockBucket,
)
from tables.construct import construct, evolve
from tables.policy import MAX_ORDERS_AT_RISK, CorePolicy
from tables.state import ExpectationKind, InboundExpectation, Position, Receipt, Reservation, SkuStock

ReservationKey = tuple[str, str]  # (sku, orderNo)
ExpectationKey = tuple[str, str, str]  # (sku, warehouseCode, documentNo)


class StockView(Protocol):
    """Read access to the SKU partition's records."""

    def stock(self, sku: str) -> SkuStock | None: ...
    def reservation(self, sku: str, order_no: str) -> Reservation | None: ...
    def reservations_of(self, sku: str) -> Iterable[Reservation]: ...
    def expectation(
        self, sku: str, warehouse_code: str, document_no: str
    ) -> InboundExpectation | None: ...
    def receipt(self, message_id: str) -> Receipt | None: ...


@dataclass(frozen=True, slots=True)
class StockOutcome:
    sku: str
    stock: SkuStock | None  # None: the SKU record did not change
    reservations: dict[ReservationKey, Reservation | None]
    expectations: dict[ExpectationKey, InboundExpectation | None]
    receipt: Receipt | None  # None: duplicate, nothing to store
    events: tuple[object, ...]
    duplicate: bool = False


_EMPTY = Position(warehouse_code="")


class _Tx:
    """The working set of one command: reads through the view, collects changes."""

    def __init__(self, view: StockView, command: StockCommand, policy: CorePolicy) -> None:
        self.view = view
        self.command = command
        self.policy = policy
        self.sku = command.sku
        self.base = view.stock(command.sku) or SkuStock(sku=command.sku)
        self.positions: dict[str, Position] = {p.warehouse_code: p for p in self.base.positions}
        self.before: dict[str, Position] = dict(self.positions)
        self.reservation_seq = self.base.reservation_seq
        self.reservations: dict[ReservationKey, Reservation | None] = {}
        self.expectations: dict[ExpectationKey, InboundExpectation | None] = {}
        self.ledger_entries: list[InventoryLedgerEntry] = []
        self.alerts: list[InventoryAlert] = []
        self.results: list[ReservationUpdated] = []

    # --- reads that see this command's own writes ---------------------------------------

    def position(self, warehouse_code: str) -> Position:
        position = self.positions.get(warehouse_code)
        return position if position is not None else Position(warehouse_code=warehouse_code)

    def reservation(self, order_no: str) -> Reservation | None:
        key = (self.sku, order_no)
        if key in self.reservations:
            return self.reservations[key]
        return self.view.reservation(self.sku, order_no)

    def reservations_at(self, warehouse_code: str) -> list[Reservation]:
        """Open reservations at one position in arrival order (a scan: rare paths only)."""
        merged = {r.order_no: r for r in self.view.reservations_of(self.sku)}
        for (_, order_no), r in self.reservations.items():
            if r is None:
                merged.pop(order_no, None)
            else:
                merged[order_no] = r
        found = [r for r in merged.values() if r.warehouse_code == warehouse_code]
        found.sort(key=lambda r: r.seq)
        return found

    def expectation(self, warehouse_code: str, document_no: str) -> InboundExpectation | None:
        key = (self.sku, warehouse_code, document_no)
        if key in self.expectations:
            return self.expectations[key]
        return self.view.expectation(self.sku, warehouse_code, document_no)

    # --- writes -------------------------------------------------------------------------

    def set(self, warehouse_code: str, **quantities: int) -> Position:
        position = evolve(self.position(warehouse_code), **quantities)
        self.positions[warehouse_code] = position
        return position

    def put_reservation(self, reservation: Reservation) -> None:
        key = (self.sku, reservation.order_no)
        if reservation.reserved_qty or reservation.presold_qty or reservation.short_qty:
            self.reservations[key] = reservation
        else:
            self.reservations[key] = None

    def put_expectation(self, expectation: InboundExpectation) -> None:
        """Keep an open document; a negative outstanding is a credit: units received before
        their announcement, which the late announcement must not put in transit again."""
        key = (self.sku, expectation.warehouse_code, expectation.document_no)
        self.expectations[key] = expectation if expectation.outstanding_qty != 0 else None

    def ledger(
        self,
        warehouse_code: str,
        bucket: StockBucket,
        movement: MovementType,
        quantity: int,
        document_type: str,
        document_no: str,
    ) -> None:
        if quantity == 0:
            return
        cmd = self.command
        self.ledger_entries.append(
            construct(
                InventoryLedgerEntry,
                entry_id=f"{cmd.command_id}|{warehouse_code}|{bucket}|{movement}",
                sku=self.sku,
                warehouse_code=warehouse_code,
                bucket=bucket,
                movement_type=movement,
                quantity=quantity,
                document_type=document_type,
                document_no=document_no,
                cause_event_id=cmd.cause_event_id,
                occurred_at=cmd.occurred_at,
            )
        )

    def alert(
        self,
        alert_type: AlertType,
        warehouse_code: str | None,
        quantity: int,
        message: str,
        order_no: str | None = None,
        orders_at_risk: list[str] | None = None,
    ) -> None:
        cmd = self.command
        self.alerts.append(
            construct(
                InventoryAlert,
                alert_id=f"{cmd.command_id}|{alert_type}|{len(self.alerts)}",
                alert_type=alert_type,
                sku=self.sku,
                warehouse_code=warehouse_code,
                order_no=order_no,
                quantity=quantity,
                orders_at_risk=orders_at_risk or [],
                message=message[:256],
                cause_event_type=cmd.cause_event_type,
                cause_event_id=cmd.cause_event_id,
                occurred_at=cmd.occurred_at,
            )
        )

    def result(
        self,
        order_no: str,
        status: ReservationStatus,
        best_available: int = 0,
        warehouse_code: str | None = None,
    ) -> None:
        """Tell the order partition where this line's reservation stands now."""
        cmd = self.command
        r = self.reservation(order_no)
        self.results.append(
            construct(
                ReservationUpdated,
                result_id=f"{cmd.command_id}|result|{len(self.results)}",
                order_no=order_no,
                sku=self.sku,
                status=status,
                warehouse_code=r.warehouse_code if r else warehouse_code,
                reserved_qty=r.reserved_qty if r else 0,
                presold_qty=r.presold_qty if r else 0,
                short_qty=r.short_qty if r else 0,
                best_available_qty=best_available,
                occurred_at=cmd.occurred_at,
                cause_event_type=cmd.cause_event_type,
                cause_event_id=cmd.cause_event_id,
            )
        )

    # --- shared moves -------------------------------------------------------------------

    def take_on_hand(self, warehouse_code: str, quantity: int, document_no: str) -> None:
        """Units physically left the warehouse. If the books show fewer, the missing units
        are booked as found first (physical truth wins) and an ANOMALY says so."""
        position = self.position(warehouse_code)
        missing = quantity - position.on_hand_qty
        if missing > 0:
            self.set(warehouse_code, on_hand_qty=position.on_hand_qty + missing)
            self.ledger(
                warehouse_code, StockBucket.ON_HAND, MovementType.ADJUSTED, missing, "ADJUSTMENT", document_no
            )
            self.alert(
                AlertType.ANOMALY,
                warehouse_code,
                missing,
                f"{quantity} units left {warehouse_code} but only {position.on_hand_qty} were on "
                f"hand: {missing} booked as found",
            )
        position = self.position(warehouse_code)
        self.set(warehouse_code, on_hand_qty=position.on_hand_qty - quantity)

    def receive_into(
        self,
        warehouse_code: str,
        document_no: str | None,
        sellable: int,
        damaged: int,
        closes: bool,
        movement: MovementType,
        document_type: str,
        reference: str,
        kind: ExpectationKind,
    ) -> None:
        """Units arrived: take the announced part out of transit, put the rest on hand or
        damaged, hand arriving presold units to their PRESALE orders. Units beyond what was
        announced under the document are remembered as a credit (negative outstanding)."""
        expectation = self.expectation(warehouse_code, document_no) if document_no else None
        outstanding = expectation.outstanding_qty if expectation else 0
        from_transit = min(sellable + damaged, max(0, outstanding))
        position = self.position(warehouse_code)
        self.set(
            warehouse_code,
            in_transit_qty=position.in_transit_qty - from_transit,
            on_hand_qty=position.on_hand_qty + sellable,
            damaged_qty=position.damaged_qty + damaged,
        )
        self.ledger(warehouse_code, StockBucket.IN_TRANSIT, movement, -from_transit, document_type, reference)
        self.ledger(warehouse_code, StockBucket.ON_HAND, movement, sellable, document_type, reference)
        self.ledger(warehouse_code, StockBucket.DAMAGED, movement, damaged, document_type, reference)
        remaining = outstanding - (sellable + damaged)
        if document_no is not None:
            if expectation is None:
                expectation = InboundExpectation(
                    sku=self.sku, warehouse_code=warehouse_code, document_no=document_no,
                    kind=kind, outstanding_qty=0,
                )
            if closes and remaining > 0:
                position = self.position(warehouse_code)
                self.set(warehouse_code, in_transit_qty=position.in_transit_qty - remaining)
                self.ledger(
                    warehouse_code,
                    StockBucket.IN_TRANSIT,
                    MovementType.INBOUND_CANCELLED,
                    -remaining,
                    document_type,
                    reference,
                )
                remaining = 0
            self.put_expectation(evolve(expectation, outstanding_qty=remaining))
        self.serve_presale(warehouse_code, min(sellable, from_transit))

    def serve_presale(self, warehouse_code: str, arrived_sellable: int) -> None:
        """Presold units that arrived become reserved, first ordered first served; supply
        that will not come is taken from availableQty if it can, else SHORTAGE."""
        position = self.position(warehouse_code)
        if position.presold_qty == 0:
            return
        waiting = [r for r in self.reservations_at(warehouse_code) if r.presold_qty > 0]
        to_convert = min(arrived_sellable, position.presold_qty)
        for r in waiting:
            if to_convert == 0:
                break
            k = min(r.presold_qty, to_convert)
            to_convert -= k
            self.convert_presold(r, k, k)
        position = self.position(warehouse_code)
        deficit = position.presold_qty - position.in_transit_qty
        if deficit <= 0:
            return
        at_risk: list[str] = []
        short_total = 0
        for r in reversed([r for r in self.reservations_at(warehouse_code) if r.presold_qty > 0]):
            if deficit == 0:
                break
            k = min(r.presold_qty, deficit)
            deficit -= k
            covered = min(k, max(0, self.position(warehouse_code).available_qty))
            self.convert_presold(r, k, covered)
            if covered < k:
                short_total += k - covered
                at_risk.append(r.order_no)
        if at_risk:
            self.alert(
                AlertType.SHORTAGE,
                warehouse_code,
                short_total,
                f"inbound supply for presale orders fell short by {short_total} units",
                orders_at_risk=at_risk[:MAX_ORDERS_AT_RISK],
            )

    def convert_presold(self, r: Reservation, presold: int, reserved: int) -> None:
        """``presold`` units of a line stop waiting for inbound supply; ``reserved`` of them
        are now held on hand, the rest are short."""
        position = self.position(r.warehouse_code)
        self.set(
            r.warehouse_code,
            presold_qty=position.presold_qty - presold,
            reserved_qty=position.reserved_qty + reserved,
        )
        self.put_reservation(
            evolve(
                r,
                presold_qty=r.presold_qty - presold,
                reserved_qty=r.reserved_qty + reserved,
                short_qty=r.short_qty + presold - reserved,
            )
        )
        self.result(r.order_no, ReservationStatus.RESERVED)

    # --- the end of the command ---------------------------------------------------------

    def finish(self) -> StockOutcome:
        cmd = self.command
        changed_events: list[object] = []
        positions = []
        changed = False
        for warehouse_code in sorted(self.positions):
            after = self.positions[warehouse_code]
            before = self.before.get(warehouse_code)
            if before is not None and before.same_quantities(after):
                if after.counted_at != before.counted_at:  # a count that matched the books
                    positions.append(evolve(before, counted_at=after.counted_at))
                    changed = True
                else:
                    positions.append(before)
                continue
            if before is None and after.same_quantities(_EMPTY):
                continue  # a command at a warehouse the SKU never had, that moved nothing
            changed = True
            previous = before if before is not None else Position(warehouse_code=warehouse_code)
            updated_at = cmd.occurred_at
            if previous.updated_at is not None and previous.updated_at > updated_at:
                updated_at = previous.updated_at
            after = evolve(after, version=previous.version + 1, updated_at=updated_at)
            positions.append(after)
            changed_events.append(self.inventory_changed(after))
            self.threshold_alerts(previous, after)
        stock = None
        if changed or self.reservation_seq != self.base.reservation_seq:
            stock = SkuStock(sku=self.sku, positions=tuple(positions), reservation_seq=self.reservation_seq)
        events = (*changed_events, *self.ledger_entries, *self.alerts, *self.results)
        return StockOutcome(
            sku=self.sku,
            stock=stock,
            reservations=self.reservations,
            expectations=self.expectations,
            receipt=Receipt(message_id=cmd.command_id, events=events),
            events=events,
        )

    def inventory_changed(self, p: Position) -> InventoryChanged:
        cmd = self.command
        return construct(
            InventoryChanged,
            sku=self.sku,
            warehouse_code=p.warehouse_code,
            available_qty=p.available_qty,
            reserved_qty=p.reserved_qty,
            in_transit_qty=p.in_transit_qty,
            total_qty=p.total_qty,
            event_id=f"{self.sku}|{p.warehouse_code}|v{p.version}",
            on_hand_qty=p.on_hand_qty,
            presold_qty=p.presold_qty,
            outbound_qty=p.outbound_qty,
            damaged_qty=p.damaged_qty,
            version=p.version,
            cause_event_type=cmd.cause_event_type,
            cause_event_id=cmd.cause_event_id,
            occurred_at=cmd.occurred_at,
        )

    def threshold_alerts(self, before: Position, after: Position) -> None:
        was, now = before.available_qty, after.available_qty
        wh = after.warehouse_code
        point = self.policy.reorder_point
        if was >= point > now and now > 0:
            self.alert(AlertType.LOW_STOCK, wh, now, f"availableQty {now} fell below reorder point {point}")
        if was > 0 >= now:
            self.alert(AlertType.OUT_OF_STOCK, wh, now, f"availableQty reached {now}")
        if now < 0 and now < was:
            at_risk: list[str] = []
            covered = 0
            for r in reversed(self.reservations_at(wh)):
                if covered >= -now or len(at_risk) >= MAX_ORDERS_AT_RISK:
                    break
                if r.reserved_qty > 0:
                    at_risk.append(r.order_no)
                    covered += r.reserved_qty
            self.alert(
                AlertType.SHORTAGE,
                wh,
                -now,
                f"onHandQty {after.on_hand_qty} is below reservedQty {after.reserved_qty}",
                orders_at_risk=at_risk,
            )


# --- the transitions, one per command ---------------------------------------------------


def _reserve(tx: _Tx, cmd: ReserveStock) -> None:
    existing = tx.reservation(cmd.order_no)
    if existing is not None:
        tx.alert(
            AlertType.ANOMALY,
            existing.warehouse_code,
            cmd.quantity,
            f"order {cmd.order_no} already holds a reservation of {tx.sku}",
            order_no=cmd.order_no,
        )
        tx.result(cmd.order_no, ReservationStatus.RESERVED)
        return
    presale = cmd.order_type == OrderType.PRESALE
    candidates = (
        [cmd.warehouse_code] if cmd.warehouse_code is not None else [p for p in sorted(tx.positions)]
    )
    best: tuple[int, int, str] | None = None
    best_available = 0
    for warehouse_code in candidates:
        p = tx.position(warehouse_code)
        available = max(0, p.available_qty)
        capacity = available + (p.in_transit_qty - p.presold_qty if presale else 0)
        best_available = max(best_available, capacity)
        if capacity < cmd.quantity:
            continue
        rank = (-available, tx.policy.priority_rank(warehouse_code), warehouse_code)
        if best is None or rank < best:
            best = rank
    if best is None:
        tx.result(cmd.order_no, ReservationStatus.REJECTED, best_available)
        return
    warehouse_code = best[2]
    p = tx.position(warehouse_code)
    from_available = min(cmd.quantity, max(0, p.available_qty))
    presold = cmd.quantity - from_available
    tx.set(
        warehouse_code,
        reserved_qty=p.reserved_qty + from_available,
        presold_qty=p.presold_qty + presold,
    )
    tx.reservation_seq += 1
    tx.put_reservation(
        Reservation(
            sku=tx.sku,
            order_no=cmd.order_no,
            warehouse_code=warehouse_code,
            order_type=cmd.order_type,
            reserved_qty=from_available,
            presold_qty=presold,
            short_qty=0,
            seq=tx.reservation_seq,
        )
    )
    tx.result(cmd.order_no, ReservationStatus.RESERVED)


def _release(tx: _Tx, cmd: ReleaseStock) -> None:
    r = tx.reservation(cmd.order_no)
    if r is not None:
        p = tx.position(r.warehouse_code)
        tx.set(
            r.warehouse_code,
            reserved_qty=p.reserved_qty - r.reserved_qty,
            presold_qty=p.presold_qty - r.presold_qty,
        )
        tx.reservations[(tx.sku, cmd.order_no)] = None
    tx.result(cmd.order_no, ReservationStatus.RELEASED, warehouse_code=r.warehouse_code if r else None)


def _ship(tx: _Tx, cmd: ShipStock) -> None:
    wh = cmd.warehouse_code
    r = tx.reservation(cmd.order_no)
    from_reserved = min(cmd.quantity, r.reserved_qty) if r and r.warehouse_code == wh else 0
    excess = cmd.quantity - from_reserved
    if _counted_already(tx, wh):
        _take_back_counted_drift(tx, wh, cmd.quantity, "SHIPMENT", cmd.shipment_no)
    tx.take_on_hand(wh, cmd.quantity, cmd.shipment_no)
    p = tx.position(wh)
    tx.set(wh, reserved_qty=p.reserved_qty - from_reserved, outbound_qty=p.outbound_qty + cmd.quantity)
    if r is not None and from_reserved:
        tx.put_reservation(evolve(r, reserved_qty=r.reserved_qty - from_reserved))
    if r is not None:
        # The order may have read this reservation's earlier answer after the shipment (they
        # travel on different topics): the last answer it reads must be the one after it.
        tx.result(cmd.order_no, ReservationStatus.RESERVED, warehouse_code=r.warehouse_code)
    tx.ledger(wh, StockBucket.ON_HAND, MovementType.SHIPPED, -cmd.quantity, "SHIPMENT", cmd.shipment_no)
    tx.ledger(wh, StockBucket.OUTBOUND, MovementType.SHIPPED, cmd.quantity, "SHIPMENT", cmd.shipment_no)
    if not cmd.order_known:
        tx.alert(
            AlertType.ANOMALY, wh, cmd.quantity,
            f"shipment {cmd.shipment_no} for unknown order {cmd.order_no}", order_no=cmd.order_no,
        )
    elif excess > 0:
        tx.alert(
            AlertType.ANOMALY, wh, excess,
            f"shipment {cmd.shipment_no} shipped {excess} more than reserved", order_no=cmd.order_no,
        )


def _take_outbound(tx: _Tx, wh: str, quantity: int, order_no: str, what: str) -> None:
    p = tx.position(wh)
    if quantity > p.outbound_qty:
        tx.alert(
            AlertType.ANOMALY, wh, quantity - p.outbound_qty,
            f"{what} of {quantity} exceeds outboundQty {p.outbound_qty}", order_no=order_no,
        )
        # Physical truth: book the unknown units as found in the outbound bucket first.
        missing = quantity - p.outbound_qty
        tx.set(wh, outbound_qty=p.outbound_qty + missing)
        tx.ledger(wh, StockBucket.OUTBOUND, MovementType.ADJUSTED, missing, "ADJUSTMENT", order_no)
    p = tx.position(wh)
    tx.set(wh, outbound_qty=p.outbound_qty - quantity)


def _deliver(tx: _Tx, cmd: DeliverStock) -> None:
    wh = cmd.warehouse_code
    _take_outbound(tx, wh, cmd.quantity, cmd.order_no, "delivery")
    p = tx.position(wh)
    tx.set(wh, delivered_qty=p.delivered_qty + cmd.quantity)
    tx.ledger(wh, StockBucket.OUTBOUND, MovementType.DELIVERED, -cmd.quantity, "SHIPMENT", cmd.shipment_no)
    tx.ledger(wh, StockBucket.DELIVERED, MovementType.DELIVERED, cmd.quantity, "SHIPMENT", cmd.shipment_no)


def _expect(tx: _Tx, wh: str, document_no: str, kind: ExpectationKind, quantity: int) -> int:
    """Announce inbound units under a document; returns how many went into transit (fewer
    when some already arrived before the announcement)."""
    existing = tx.expectation(wh, document_no)
    before = existing.outstanding_qty if existing else 0
    after = before + quantity
    into_transit = max(0, after) - max(0, before)
    p = tx.position(wh)
    tx.set(wh, in_transit_qty=p.in_transit_qty + into_transit)
    tx.put_expectation(
        InboundExpectation(sku=tx.sku, warehouse_code=wh, document_no=document_no, kind=kind, outstanding_qty=after)
    )
    return into_transit


def _return_undelivered(tx: _Tx, cmd: ReturnUndelivered) -> None:
    wh = cmd.warehouse_code
    _take_outbound(tx, wh, cmd.quantity, cmd.order_no, "failed delivery")
    coming = _expect(tx, wh, cmd.shipment_no, ExpectationKind.FAILED_DELIVERY, cmd.quantity)
    tx.ledger(wh, StockBucket.OUTBOUND, MovementType.DELIVERY_FAILED, -cmd.quantity, "SHIPMENT", cmd.shipment_no)
    tx.ledger(wh, StockBucket.IN_TRANSIT, MovementType.DELIVERY_FAILED, coming, "SHIPMENT", cmd.shipment_no)


def _expect_return(tx: _Tx, cmd: ExpectReturn) -> None:
    coming = _expect(tx, cmd.warehouse_code, cmd.return_no, ExpectationKind.RETURN, cmd.quantity)
    tx.ledger(cmd.warehouse_code, StockBucket.IN_TRANSIT, MovementType.RETURN_EXPECTED, coming, "RETURN", cmd.return_no)


def _inspect_return(tx: _Tx, cmd: InspectReturn) -> None:
    wh = cmd.warehouse_code
    tx.receive_into(
        wh, cmd.return_no, cmd.sellable_qty, cmd.damaged_qty, True,
        MovementType.RETURN_INSPECTED, "RETURN", cmd.return_no, ExpectationKind.RETURN,
    )
    if _counted_already(tx, wh):
        _take_back_counted_drift(tx, wh, -cmd.sellable_qty, "RETURN", cmd.return_no)
    _dispose_arrived(tx, wh, cmd.damaged_qty, cmd.return_no)


def _counted_already(tx: _Tx, wh: str) -> bool:
    """Whether the last count applied at ``wh`` was taken when this command's event had
    happened: a shipment or return inspection reaches the SKU partition through the order
    partition, so a count routed straight from the WMS can overtake it."""
    counted_at = tx.position(wh).counted_at
    return counted_at is not None and tx.command.occurred_at <= counted_at


def _take_back_counted_drift(tx: _Tx, wh: str, units: int, document_type: str, document_no: str) -> None:
    """The count saw these units leave (``units`` > 0) or arrive (< 0) and booked them as
    drift; give that drift back so that the command moves them once, as if it had been read
    before the count."""
    if units == 0:
        return
    p = tx.position(wh)
    tx.set(wh, on_hand_qty=p.on_hand_qty + units)
    tx.ledger(wh, StockBucket.ON_HAND, MovementType.RECONCILED, units, document_type, document_no)
    tx.alert(
        AlertType.RECONCILIATION_DRIFT, wh, units,
        f"{document_no} was read after a count that included it: drift {units:+d} taken back",
    )


def _dispose_arrived(tx: _Tx, wh: str, damaged: int, return_no: str) -> None:
    """Damaged units the WMS disposed of before their inspection was read are written off
    as they arrive."""
    p = tx.position(wh)
    taken = min(damaged, p.disposed_ahead_qty)
    if taken == 0:
        return
    tx.set(wh, damaged_qty=p.damaged_qty - taken, disposed_ahead_qty=p.disposed_ahead_qty - taken)
    tx.ledger(wh, StockBucket.DAMAGED, MovementType.DISPOSED, -taken, "RETURN", return_no)


def _announce(tx: _Tx, cmd: AnnounceInbound) -> None:
    coming = _expect(tx, cmd.warehouse_code, cmd.document_no, ExpectationKind.PURCHASE, cmd.quantity)
    tx.ledger(cmd.warehouse_code, StockBucket.IN_TRANSIT, MovementType.INBOUND_ANNOUNCED, coming, "ASN", cmd.document_no)


def _receive(tx: _Tx, cmd: ReceiveStock) -> None:
    movement = MovementType.TRANSFER_IN if cmd.is_transfer else MovementType.RECEIVED
    document_type = "TRANSFER" if cmd.is_transfer else "RECEIPT"
    tx.receive_into(
        cmd.warehouse_code, cmd.document_no, cmd.sellable_qty, cmd.damaged_qty, cmd.closes_document,
        movement, document_type, cmd.document_no or cmd.receipt_no,
        ExpectationKind.TRANSFER if cmd.is_transfer else ExpectationKind.PURCHASE,
    )


def _adjust(tx: _Tx, cmd: AdjustStock) -> None:
    wh = cmd.warehouse_code
    p = tx.position(wh)
    if cmd.delta > 0:
        tx.set(wh, on_hand_qty=p.on_hand_qty + cmd.delta)
        tx.ledger(wh, StockBucket.ON_HAND, MovementType.ADJUSTED, cmd.delta, "ADJUSTMENT", cmd.adjustment_no)
        return
    taken = min(-cmd.delta, p.on_hand_qty)
    if taken < -cmd.delta:
        tx.alert(
            AlertType.ANOMALY, wh, -cmd.delta - taken,
            f"adjustment {cmd.delta} exceeds onHandQty {p.on_hand_qty}: {taken} applied",
        )
    to_damaged = taken if cmd.reason == AdjustmentReason.DAMAGE else 0
    tx.set(wh, on_hand_qty=p.on_hand_qty - taken, damaged_qty=p.damaged_qty + to_damaged)
    tx.ledger(wh, StockBucket.ON_HAND, MovementType.ADJUSTED, -taken, "ADJUSTMENT", cmd.adjustment_no)
    tx.ledger(wh, StockBucket.DAMAGED, MovementType.ADJUSTED, to_damaged, "ADJUSTMENT", cmd.adjustment_no)


def _dispatch(tx: _Tx, cmd: DispatchTransfer) -> None:
    source, destination = cmd.from_warehouse_code, cmd.to_warehouse_code
    tx.take_on_hand(source, cmd.quantity, cmd.transfer_no)
    tx.ledger(source, StockBucket.ON_HAND, MovementType.TRANSFER_OUT, -cmd.quantity, "TRANSFER", cmd.transfer_no)
    coming = _expect(tx, destination, cmd.transfer_no, ExpectationKind.TRANSFER, cmd.quantity)
    tx.ledger(destination, StockBucket.IN_TRANSIT, MovementType.TRANSFER_OUT, coming, "TRANSFER", cmd.transfer_no)


def _reconcile(tx: _Tx, cmd: ReconcileStock) -> None:
    wh = cmd.warehouse_code
    p = tx.position(wh)
    if p.updated_at is not None and cmd.counted_at < p.updated_at:
        return  # older than the last change applied: the count no longer describes the shelf
    if p.counted_at is None or cmd.counted_at > p.counted_at:
        tx.set(wh, counted_at=cmd.counted_at)  # even when it matches: see _counted_already
    drift = cmd.counted_qty - p.on_hand_qty
    if drift == 0:
        return
    tx.set(wh, on_hand_qty=cmd.counted_qty)
    tx.ledger(wh, StockBucket.ON_HAND, MovementType.RECONCILED, drift, "SNAPSHOT", cmd.snapshot_id)
    tx.alert(
        AlertType.RECONCILIATION_DRIFT, wh, drift,
        f"WMS counted {cmd.counted_qty}, books said {p.on_hand_qty}: drift {drift:+d}",
    )


def _dispose(tx: _Tx, cmd: DisposeDamaged) -> None:
    wh = cmd.warehouse_code
    p = tx.position(wh)
    taken = min(cmd.quantity, p.damaged_qty)
    # The rest may still be on its way to the books: a return inspection travels through the
    # order partition, the disposal straight from the WMS. At a position the SKU never had,
    # it is a mistake, not a race: nothing is kept there.
    ahead = cmd.quantity - taken if wh in tx.before else 0
    if taken < cmd.quantity:
        later = f", {ahead} written off when returned damaged units arrive" if ahead else ""
        tx.alert(
            AlertType.ANOMALY, wh, cmd.quantity - taken,
            f"disposal of {cmd.quantity} exceeds damagedQty {p.damaged_qty}: {taken} applied{later}",
        )
    tx.set(wh, damaged_qty=p.damaged_qty - taken, disposed_ahead_qty=p.disposed_ahead_qty + ahead)
    tx.ledger(wh, StockBucket.DAMAGED, MovementType.DISPOSED, -taken, "DISPOSAL", cmd.disposal_no)


_TRANSITIONS: dict[type[StockCommand], Callable[[_Tx, StockCommand], None]] = {
    ReserveStock: _reserve,  # type: ignore[dict-item]
    ReleaseStock: _release,  # type: ignore[dict-item]
    ShipStock: _ship,  # type: ignore[dict-item]
    DeliverStock: _deliver,  # type: ignore[dict-item]
    ReturnUndelivered: _return_undelivered,  # type: ignore[dict-item]
    ExpectReturn: _expect_return,  # type: ignore[dict-item]
    InspectReturn: _inspect_return,  # type: ignore[dict-item]
    AnnounceInbound: _announce,  # type: ignore[dict-item]
    ReceiveStock: _receive,  # type: ignore[dict-item]
    AdjustStock: _adjust,  # type: ignore[dict-item]
    DispatchTransfer: _dispatch,  # type: ignore[dict-item]
    ReconcileStock: _reconcile,  # type: ignore[dict-item]
    DisposeDamaged: _dispose,  # type: ignore[dict-item]
}


def apply_stock(view: StockView, command: StockCommand, policy: CorePolicy) -> StockOutcome:
    """Apply one command to its SKU's positions. A command already applied (same id)
    changes nothing and re-emits what it emitted the first time."""
    seen = view.receipt(command.command_id)
    if seen is not None:
        return StockOutcome(
            sku=command.sku, stock=None, reservations={}, expectations={}, receipt=None,
            events=seen.events, duplicate=True,
        )
    tx = _Tx(view, command, policy)
    _TRANSITIONS[type(command)](tx, command)
    return tx.finish()
