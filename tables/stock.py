"""The SKU partition of the core: stock commands applied to one SKU's positions.

``apply_stock(view, command, policy) -> StockOutcome``: reads the records it needs through a
read-only ``StockView``, returns the new SKU record, the changed reservation and expectation
records (``None`` = delete), the receipt that makes the command idempotent, what it
changes in the partition's receipt retention (tables/retention.py), and the events to emit.
No Kafka, no RocksDB, no clock, no randomness: time comes in on the command. See
docs/inventory-model.md for the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Unpack

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
    SetReorderPoint,
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
    WarehouseAllocation,
)
from tables import history
from tables.alerts import inventory_alert
from tables.construct import construct, evolve, fingerprint
from tables.policy import MAX_ORDERS_AT_RISK, CorePolicy
from tables.retention import (
    DOCUMENT,
    RECEIPT,
    STOCK,
    UNCHANGED,
    IndexEntry,
    Ref,
    Retention,
    RetentionView,
    beyond,
    horizon,
    hour_of,
    keep,
)
from tables.state import (
    Allocation,
    ExpectationKind,
    InboundExpectation,
    PartitionClock,
    Position,
    PositionChanges,
    Receipt,
    Reservation,
    SkuStock,
)

ReservationKey = tuple[str, str]  # (sku, orderNo)
ExpectationKey = tuple[str, str, str]  # (sku, warehouseCode, documentNo)


class StockView(RetentionView, Protocol):
    """Read access to the SKU partition's records."""

    def stock(self, sku: str) -> SkuStock | None: ...
    def reservation(self, sku: str, order_no: str) -> Reservation | None: ...
    def reservations_of(self, sku: str) -> Iterable[Reservation]: ...
    def expectation(self, sku: str, warehouse_code: str, document_no: str) -> InboundExpectation | None: ...
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
    # More receipts to keep: a document's, under its document key; or the receipt of a
    # ReserveStock whose release was read first, so that it reserves nothing when it comes.
    extra_receipts: tuple[Receipt, ...] = ()
    retention: Retention = UNCHANGED  # the partition's clock, index and pruned receipts


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
        self.sku_reorder_point = (self.base.reorder_point, self.base.reorder_point_at)
        self.answer_seq = self.base.answer_seq
        self.reservations: dict[ReservationKey, Reservation | None] = {}
        self.expectations: dict[ExpectationKey, InboundExpectation | None] = {}
        self.ledger_entries: list[InventoryLedgerEntry] = []
        self.alerts: list[InventoryAlert] = []
        self.results: list[ReservationUpdated] = []
        self.extra_receipts: list[Receipt] = []
        self.by_receipt = True  # False: applied once by its envelope (no receipt kept or read)

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
        """Open reservations at one position in arrival order (a scan: rare paths only): those
        whose primary warehouse it is and those holding a split part there."""
        merged = {r.order_no: r for r in self.view.reservations_of(self.sku)}
        for (_, order_no), r in self.reservations.items():
            if r is None:
                merged.pop(order_no, None)
            else:
                merged[order_no] = r
        found = [r for r in merged.values() if r.warehouse_code == warehouse_code or r.held_at(warehouse_code)]
        found.sort(key=lambda r: r.seq)
        return found

    def expectation(self, warehouse_code: str, document_no: str) -> InboundExpectation | None:
        key = (self.sku, warehouse_code, document_no)
        if key in self.expectations:
            return self.expectations[key]
        return self.view.expectation(self.sku, warehouse_code, document_no)

    # --- writes -------------------------------------------------------------------------

    def set(self, warehouse_code: str, **changes: Unpack[PositionChanges]) -> Position:
        position = evolve(self.position(warehouse_code), **changes)
        self.positions[warehouse_code] = position
        return position

    def put_reservation(self, reservation: Reservation) -> None:
        """Keep a reservation that still holds units anywhere; one that holds none is deleted."""
        key = (self.sku, reservation.order_no)
        if reservation.total_reserved_qty or reservation.presold_qty or reservation.short_qty:
            self.reservations[key] = reservation
        else:
            self.reservations[key] = None

    def put_expectation(self, expectation: InboundExpectation) -> None:
        """Keep an open document; a negative outstanding is a credit: units received before
        their announcement, which the late announcement must not put in transit again. Its
        ``updated_at`` is the newest occurredAt that wrote it (see tables/retention.py)."""
        key = (self.sku, expectation.warehouse_code, expectation.document_no)
        if expectation.outstanding_qty == 0 and not expectation.closed:
            self.expectations[key] = None
            return
        at = self.command.occurred_at
        if expectation.updated_at is None or at > expectation.updated_at:
            expectation = evolve(expectation, updated_at=at)
        self.expectations[key] = expectation

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
        alert_id: str | None = None,
    ) -> None:
        cmd = self.command
        self.alerts.append(
            inventory_alert(
                alert_type,
                cmd.command_id,
                len(self.alerts),
                sku=self.sku,
                warehouse_code=warehouse_code,
                order_no=order_no,
                quantity=quantity,
                message=message,
                cause_event_type=cmd.cause_event_type,
                cause_event_id=cmd.cause_event_id,
                occurred_at=cmd.occurred_at,
                orders_at_risk=orders_at_risk,
                alert_id=alert_id,
            )
        )

    def result(
        self,
        order_no: str,
        status: ReservationStatus,
        best_available: int = 0,
        warehouse_code: str | None = None,
    ) -> None:
        """Tell the order partition where this line's reservation stands now: its primary
        warehouse, the units held over every warehouse, and the split parts."""
        cmd = self.command
        r = self.reservation(order_no)
        self.answer_seq += 1
        self.results.append(
            construct(
                ReservationUpdated,
                result_id=f"{cmd.command_id}|result|{len(self.results)}",
                order_no=order_no,
                sku=self.sku,
                status=status,
                warehouse_code=r.warehouse_code if r else warehouse_code,
                reserved_qty=r.total_reserved_qty if r else 0,
                presold_qty=r.presold_qty if r else 0,
                short_qty=r.short_qty if r else 0,
                best_available_qty=best_available,
                occurred_at=cmd.occurred_at,
                cause_event_type=cmd.cause_event_type,
                cause_event_id=cmd.cause_event_id,
                splits=[
                    construct(WarehouseAllocation, warehouse_code=part.warehouse_code, reserved_qty=part.reserved_qty)
                    for part in (r.splits if r else ())
                ],
                seq=self.answer_seq,
            )
        )

    # --- shared moves -------------------------------------------------------------------

    def move_on_hand(
        self,
        warehouse_code: str,
        delta: int,
        movement: MovementType,
        document_type: str,
        document_no: str,
    ) -> None:
        """Units physically arrived (``delta`` > 0) or left (< 0). Never clamped: units that
        leave before the books saw them arrive make on hand negative until their receipt is
        read, so the order in which topics are read cannot invent or lose units.

        A movement that happened by the last count applied at the position was in that
        count: the count booked it as drift, which is taken back here, so the units move
        once (as if the movement had been read first). A later movement joins the position's
        history, against which a count read late is netted (``_reconcile``)."""
        if delta == 0:
            return
        p = self.position(warehouse_code)
        at = self.command.occurred_at
        if p.counted_at is not None and at <= p.counted_at:
            self.set(warehouse_code, on_hand_qty=p.on_hand_qty - delta)
            self.ledger(
                warehouse_code, StockBucket.ON_HAND, MovementType.RECONCILED, -delta, document_type, document_no
            )
            self.alert(
                AlertType.RECONCILIATION_DRIFT,
                warehouse_code,
                -delta,
                f"{document_no} was read after a count that included it: drift {-delta:+d} taken back",
            )
        else:
            self.remember(warehouse_code, at, delta)
        p = self.position(warehouse_code)
        self.set(warehouse_code, on_hand_qty=p.on_hand_qty + delta)
        self.ledger(warehouse_code, StockBucket.ON_HAND, movement, delta, document_type, document_no)

    def remember(self, warehouse_code: str, at: datetime, delta: int) -> None:
        """Add an on-hand movement to the position's history; beyond ``count_history``
        movements the oldest are forgotten and the horizon moves past them."""
        p = self.position(warehouse_code)
        movements, forgotten = history.add(p.movement_log, at, delta, self.policy.count_history)
        since = p.history_since
        if forgotten is not None and (since is None or forgotten > since):
            since = forgotten
        self.set(warehouse_code, movement_log=movements, history_since=since)

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
            damaged_qty=position.damaged_qty + damaged,
        )
        self.ledger(warehouse_code, StockBucket.IN_TRANSIT, movement, -from_transit, document_type, reference)
        self.move_on_hand(warehouse_code, sellable, movement, document_type, reference)
        self.ledger(warehouse_code, StockBucket.DAMAGED, movement, damaged, document_type, reference)
        remaining = outstanding - (sellable + damaged)
        if document_no is not None:
            if expectation is None:
                expectation = InboundExpectation(
                    sku=self.sku,
                    warehouse_code=warehouse_code,
                    document_no=document_no,
                    kind=kind,
                    outstanding_qty=0,
                )
            if closes and remaining > 0:
                self.cancel_in_transit(warehouse_code, remaining, document_type, reference)
                remaining = 0
            self.put_expectation(evolve(expectation, outstanding_qty=remaining, closed=expectation.closed or closes))
        self.write_off_disposed_ahead(warehouse_code, damaged, document_type, reference)
        self.serve_presale(warehouse_code, min(sellable, from_transit))

    def cancel_in_transit(self, warehouse_code: str, units: int, document_type: str, reference: str) -> None:
        """Announced units that will not come (their document was closed)."""
        position = self.position(warehouse_code)
        self.set(warehouse_code, in_transit_qty=position.in_transit_qty - units)
        self.ledger(
            warehouse_code, StockBucket.IN_TRANSIT, MovementType.INBOUND_CANCELLED, -units, document_type, reference
        )

    def write_off_disposed_ahead(self, warehouse_code: str, damaged: int, document_type: str, reference: str) -> None:
        """Damaged units the WMS disposed of before the books saw them arrive are written off
        as they arrive (a disposal read before the receipt, inspection or adjustment that
        brought them)."""
        p = self.position(warehouse_code)
        taken = min(damaged, p.disposed_ahead_qty)
        if taken <= 0:
            return
        self.set(warehouse_code, damaged_qty=p.damaged_qty - taken, disposed_ahead_qty=p.disposed_ahead_qty - taken)
        self.ledger(warehouse_code, StockBucket.DAMAGED, MovementType.DISPOSED, -taken, document_type, reference)

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
            short_qty=position.short_qty + presold - reserved,
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

    def serve_short(self, warehouse_code: str) -> None:
        """Reservations left short (their inbound supply failed) take the units available
        at their position, first ordered first served, before anything else can: whatever
        made units available (a receipt, a return, an adjustment, a transfer in, a count, a
        release). Each served order hears where its reservation stands."""
        p = self.position(warehouse_code)
        if p.short_qty <= 0 or p.available_qty <= 0:
            return
        for r in self.reservations_at(warehouse_code):
            available = self.position(warehouse_code).available_qty
            if available <= 0:
                break
            if r.short_qty == 0:
                continue
            k = min(r.short_qty, available)
            p = self.position(warehouse_code)
            self.set(warehouse_code, reserved_qty=p.reserved_qty + k, short_qty=p.short_qty - k)
            self.put_reservation(evolve(r, reserved_qty=r.reserved_qty + k, short_qty=r.short_qty - k))
            self.result(r.order_no, ReservationStatus.RESERVED)

    # --- the end of the command ---------------------------------------------------------

    def finish(
        self, content: str = "", clock: PartitionClock | None = None, hour: datetime | None = None
    ) -> StockOutcome:
        """The command's outcome; ``content``: its fingerprint, kept on its receipt;
        ``clock``: the partition's, as the command found it; ``hour``: the command's."""
        cmd = self.command
        warehouses = sorted(self.positions)
        for warehouse_code in warehouses:
            self.serve_short(warehouse_code)
        changed_events: list[object] = []
        positions = []
        changed = False
        for warehouse_code in warehouses:
            after = self.positions[warehouse_code]
            before = self.before.get(warehouse_code)
            if after is before:  # not touched by this command
                positions.append(before)
                continue
            if before is not None and before.same_quantities(after):
                # Bookkeeping only (a count that matched the books, the movement history):
                # kept, but no new version and nothing to tell.
                positions.append(evolve(after, version=before.version, updated_at=before.updated_at))
                changed = True
                continue
            if before is None and after == evolve(_EMPTY, warehouse_code=warehouse_code):
                continue  # a command at a warehouse the SKU never had, that changed nothing
            changed = True
            previous = before if before is not None else Position(warehouse_code=warehouse_code)
            updated_at = cmd.occurred_at
            if previous.updated_at is not None and previous.updated_at > updated_at:
                updated_at = previous.updated_at
            after = evolve(after, version=previous.version + 1, updated_at=updated_at)
            positions.append(after)
            changed_events.append(self.inventory_changed(after))
            self.threshold_alerts(previous, after, first_stocked=before is None)
        stock = None
        point, point_at = self.sku_reorder_point
        bookkeeping = (self.reservation_seq, point_at, self.answer_seq)
        if changed or bookkeeping != (self.base.reservation_seq, self.base.reorder_point_at, self.base.answer_seq):
            stock = SkuStock(
                sku=self.sku,
                positions=tuple(positions),
                reservation_seq=self.reservation_seq,
                reorder_point=point,
                reorder_point_at=point_at,
                answer_seq=self.answer_seq,
            )
        events = (*changed_events, *self.ledger_entries, *self.alerts, *self.results)
        return StockOutcome(
            sku=self.sku,
            stock=stock,
            reservations=self.reservations,
            expectations=self.expectations,
            receipt=Receipt(cmd.command_id, events, content, cmd.cause_event_id) if self.by_receipt else None,
            events=events,
            extra_receipts=tuple(self.extra_receipts),
            retention=self.retain(clock, hour),
        )

    def retain(self, clock: PartitionClock | None, hour: datetime | None) -> Retention:
        """Index this command's receipts and the settled documents it wrote; prune what the
        partition's horizon passed (a settled document pruned is deleted here)."""
        if hour is None:  # no retention
            return UNCHANGED
        cmd = self.command
        indexed: list[IndexEntry] = [(hour, (RECEIPT, cmd.command_id))]
        for extra in self.extra_receipts:
            indexed.append((hour, (RECEIPT, extra.message_id)))
        for (sku, warehouse_code, document_no), e in self.expectations.items():
            if e is not None and e.outstanding_qty <= 0 and e.updated_at is not None:
                indexed.append((hour_of(e.updated_at), (DOCUMENT, sku, warehouse_code, document_no)))
        retention, dropped = keep(self.view, STOCK, self.policy, clock, hour, indexed, self.settled)
        for _, sku, warehouse_code, document_no in dropped:
            self.expectations[(sku, warehouse_code, document_no)] = None
        return retention

    def settled(self, ref: Ref, limit: datetime) -> bool:
        """Whether an inbound document may be forgotten: settled (nothing in transit under
        it) and last written before the horizon ``limit``."""
        if ref[0] != DOCUMENT:
            return False
        _, sku, warehouse_code, document_no = ref
        key = (sku, warehouse_code, document_no)
        e = self.expectations[key] if key in self.expectations else self.view.expectation(*key)
        return e is not None and e.outstanding_qty <= 0 and e.updated_at is not None and e.updated_at < limit

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
            updated_at=p.updated_at,
        )

    def reorder_point(self, p: Position) -> int:
        """The position's own reorder point, else its SKU's, else the default."""
        if p.reorder_point is not None:
            return p.reorder_point
        sku_point = self.sku_reorder_point[0]
        return sku_point if sku_point is not None else self.policy.reorder_point

    def threshold_alerts(self, before: Position, after: Position, first_stocked: bool = False) -> None:
        was, now = before.available_qty, after.available_qty
        wh = after.warehouse_code
        point = self.reorder_point(after)
        if (was >= point or first_stocked) and point > now > 0:
            self.alert(AlertType.LOW_STOCK, wh, now, f"availableQty {now} fell below reorder point {point}")
        if was > 0 >= now:
            self.alert(AlertType.OUT_OF_STOCK, wh, now, f"availableQty reached {now}")
        if now < 0 and now < was:
            at_risk: list[str] = []
            covered = 0
            for r in reversed(self.reservations_at(wh)):
                if covered >= -now or len(at_risk) >= MAX_ORDERS_AT_RISK:
                    break
                held = r.held_at(wh)
                if held > 0:
                    at_risk.append(r.order_no)
                    covered += held
            self.alert(
                AlertType.SHORTAGE,
                wh,
                -now,
                f"onHandQty {after.on_hand_qty} is below reservedQty {after.reserved_qty}",
                orders_at_risk=at_risk,
            )


# --- the transitions, one per command ---------------------------------------------------


def _reserve(tx: _Tx, cmd: ReserveStock) -> None:
    """Reserve a line at the warehouse it names, else at the one warehouse that can fill it
    with the most available (ties by priority rank, then code), else - a NORMAL or GIFT line,
    ``policy.split_lines`` on - across the fewest warehouses that together can (``_split``).
    Otherwise REJECTED with the most any single warehouse could give."""
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
    candidates = [cmd.warehouse_code] if cmd.warehouse_code is not None else [p for p in sorted(tx.positions)]
    best: tuple[int, int, str] | None = None
    best_available = 0
    for warehouse_code in candidates:
        p = tx.position(warehouse_code)
        available = max(0, p.available_qty)
        capacity = available + (p.in_transit_qty - p.presold_qty if presale else 0)
        best_available = max(best_available, capacity)
        if capacity < cmd.quantity:
            continue
        rank = _source_rank(tx, warehouse_code)
        if best is None or rank < best:
            best = rank
    splits: tuple[Allocation, ...] = ()
    if best is not None:
        warehouse_code = best[2]
    elif not presale and cmd.warehouse_code is None and tx.policy.split_lines:
        parts = _split(tx, cmd.quantity)
        if not parts:
            tx.result(cmd.order_no, ReservationStatus.REJECTED, best_available)
            return
        warehouse_code, splits = parts[0].warehouse_code, parts[1:]
        for part in splits:
            p = tx.position(part.warehouse_code)
            tx.set(part.warehouse_code, reserved_qty=p.reserved_qty + part.reserved_qty)
    else:
        tx.result(cmd.order_no, ReservationStatus.REJECTED, best_available)
        return
    p = tx.position(warehouse_code)
    quantity = cmd.quantity - sum(part.reserved_qty for part in splits)
    from_available = min(quantity, max(0, p.available_qty))
    presold = quantity - from_available
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
            splits=splits,
        )
    )
    tx.result(cmd.order_no, ReservationStatus.RESERVED)


def _source_rank(tx: _Tx, warehouse_code: str) -> tuple[int, int, str]:
    """Source selection order: most available first, then priority rank, then code."""
    available = max(0, tx.position(warehouse_code).available_qty)
    return (-available, tx.policy.priority_rank(warehouse_code), warehouse_code)


def _split(tx: _Tx, quantity: int) -> tuple[Allocation, ...]:
    """The parts of a line no single warehouse can fill, fewest warehouses first: warehouses
    in source selection order, each giving all it has available until the line is covered
    (so the first part is the largest). Empty when all of them together cannot cover it."""
    parts: list[Allocation] = []
    left = quantity
    for rank in sorted(_source_rank(tx, warehouse_code) for warehouse_code in tx.positions):
        available, warehouse_code = -rank[0], rank[2]
        if left == 0 or available == 0:
            break
        taken = min(available, left)
        parts.append(Allocation(warehouse_code, taken))
        left -= taken
    return tuple(parts) if left == 0 else ()


def _release(tx: _Tx, cmd: ReleaseStock) -> None:
    """Give back every part the reservation holds: on hand at each of its warehouses, and
    presold and short units at its primary one."""
    r = tx.reservation(cmd.order_no)
    if r is not None:
        for part in r.parts():
            p = tx.position(part.warehouse_code)
            tx.set(part.warehouse_code, reserved_qty=p.reserved_qty - part.reserved_qty)
        p = tx.position(r.warehouse_code)
        tx.set(
            r.warehouse_code,
            presold_qty=p.presold_qty - r.presold_qty,
            short_qty=p.short_qty - r.short_qty,
        )
        tx.reservations[(tx.sku, cmd.order_no)] = None
    tx.result(cmd.order_no, ReservationStatus.RELEASED, warehouse_code=r.warehouse_code if r else None)
    reserve_id = cmd.reserve_command_id
    if r is None and reserve_id and tx.by_receipt and tx.view.receipt(reserve_id) is None:
        # The release overtook its reservation (after a crash, the outputs of the last
        # transaction are sent again before those of messages read again): the ReserveStock,
        # when it comes, finds this receipt and reserves nothing.
        tx.extra_receipts.append(Receipt(reserve_id, (tx.results[-1],), "", cmd.cause_event_id))


def _ship(tx: _Tx, cmd: ShipStock) -> None:
    """Units leave ``cmd.warehouse_code``: the order's hold there (its primary part or a
    split part) is consumed first; units beyond it come out of available (ANOMALY)."""
    wh = cmd.warehouse_code
    r = tx.reservation(cmd.order_no)
    from_reserved = min(cmd.quantity, r.held_at(wh)) if r is not None else 0
    excess = cmd.quantity - from_reserved
    tx.move_on_hand(wh, -cmd.quantity, MovementType.SHIPPED, "SHIPMENT", cmd.shipment_no)
    p = tx.position(wh)
    tx.set(wh, reserved_qty=p.reserved_qty - from_reserved, outbound_qty=p.outbound_qty + cmd.quantity)
    if r is not None and from_reserved:
        tx.put_reservation(r.taken_at(wh, from_reserved))
    if r is not None:
        # The order may have read this reservation's earlier answer after the shipment (they
        # travel on different topics): the last answer it reads must be the one after it.
        tx.result(cmd.order_no, ReservationStatus.RESERVED, warehouse_code=r.warehouse_code)
    tx.ledger(wh, StockBucket.OUTBOUND, MovementType.SHIPPED, cmd.quantity, "SHIPMENT", cmd.shipment_no)
    if not cmd.order_known:
        tx.alert(
            AlertType.ANOMALY,
            wh,
            cmd.quantity,
            f"shipment {cmd.shipment_no} for unknown order {cmd.order_no}",
            order_no=cmd.order_no,
        )
    elif excess > 0:
        tx.alert(
            AlertType.ANOMALY,
            wh,
            excess,
            f"shipment {cmd.shipment_no} shipped {excess} more than reserved",
            order_no=cmd.order_no,
        )


def _take_outbound(tx: _Tx, wh: str, quantity: int, order_no: str, what: str) -> None:
    """Units leave the outbound bucket (signed for, or coming back). Never clamped, like on
    hand: a delivery read before its shipment (after a crash, the redo record's outputs are
    sent again before those the replayed messages re-emit) leaves it negative until the
    shipment is read."""
    p = tx.position(wh)
    if quantity > p.outbound_qty:
        tx.alert(
            AlertType.ANOMALY,
            wh,
            quantity - p.outbound_qty,
            f"{what} of {quantity} exceeds outboundQty {p.outbound_qty}: applied (its shipment may be read later)",
            order_no=order_no,
        )
    tx.set(wh, outbound_qty=p.outbound_qty - quantity)


def _deliver(tx: _Tx, cmd: DeliverStock) -> None:
    wh = cmd.warehouse_code
    _take_outbound(tx, wh, cmd.quantity, cmd.order_no, "delivery")
    p = tx.position(wh)
    tx.set(wh, delivered_qty=p.delivered_qty + cmd.quantity)
    tx.ledger(wh, StockBucket.OUTBOUND, MovementType.DELIVERED, -cmd.quantity, "SHIPMENT", cmd.shipment_no)
    tx.ledger(wh, StockBucket.DELIVERED, MovementType.DELIVERED, cmd.quantity, "SHIPMENT", cmd.shipment_no)


def _expect(
    tx: _Tx,
    wh: str,
    document_no: str,
    kind: ExpectationKind,
    quantity: int,
    movement: MovementType,
    document_type: str,
) -> None:
    """Announce units under a document and book them in transit: fewer when some already
    arrived before the announcement (a credit). Under a document already closed (its closing
    receipt was read first: another topic) they are cancelled at once: the receipt said what
    arrived, and nothing more will."""
    existing = tx.expectation(wh, document_no)
    before = existing.outstanding_qty if existing else 0
    after = before + quantity
    coming = max(0, after) - max(0, before)
    p = tx.position(wh)
    tx.set(wh, in_transit_qty=p.in_transit_qty + coming)
    tx.ledger(wh, StockBucket.IN_TRANSIT, movement, coming, document_type, document_no)
    closed = existing is not None and existing.closed
    if closed and after > 0:
        tx.cancel_in_transit(wh, after, document_type, document_no)
        after = 0
    tx.put_expectation(
        InboundExpectation(
            sku=tx.sku,
            warehouse_code=wh,
            document_no=document_no,
            kind=kind,
            outstanding_qty=after,
            closed=closed,
            updated_at=existing.updated_at if existing else None,
        )
    )


def _return_undelivered(tx: _Tx, cmd: ReturnUndelivered) -> None:
    wh = cmd.warehouse_code
    _take_outbound(tx, wh, cmd.quantity, cmd.order_no, "failed delivery")
    tx.ledger(wh, StockBucket.OUTBOUND, MovementType.DELIVERY_FAILED, -cmd.quantity, "SHIPMENT", cmd.shipment_no)
    _expect(
        tx, wh, cmd.shipment_no, ExpectationKind.FAILED_DELIVERY, cmd.quantity, MovementType.DELIVERY_FAILED, "SHIPMENT"
    )


def _expect_return(tx: _Tx, cmd: ExpectReturn) -> None:
    _expect(
        tx,
        cmd.warehouse_code,
        cmd.return_no,
        ExpectationKind.RETURN,
        cmd.quantity,
        MovementType.RETURN_EXPECTED,
        "RETURN",
    )


def _inspect_return(tx: _Tx, cmd: InspectReturn) -> None:
    wh = cmd.warehouse_code
    announced = cmd.announced_warehouse_code
    if announced is not None and announced != wh:
        # The pickup announced the parcel to another warehouse: nothing more comes there.
        _close_document(tx, announced, cmd.return_no, ExpectationKind.RETURN, "RETURN")
    tx.receive_into(
        wh,
        cmd.return_no,
        cmd.sellable_qty,
        cmd.damaged_qty,
        True,
        MovementType.RETURN_INSPECTED,
        "RETURN",
        cmd.return_no,
        ExpectationKind.RETURN,
    )


def _close_document(tx: _Tx, wh: str, document_no: str, kind: ExpectationKind, document_type: str) -> None:
    """Nothing more will arrive at ``wh`` under this document: what is in transit under it
    is cancelled, and an announcement read later puts nothing in transit."""
    expectation = tx.expectation(wh, document_no) or InboundExpectation(
        sku=tx.sku, warehouse_code=wh, document_no=document_no, kind=kind, outstanding_qty=0
    )
    outstanding = expectation.outstanding_qty
    if outstanding > 0:
        tx.cancel_in_transit(wh, outstanding, document_type, document_no)
    tx.put_expectation(evolve(expectation, outstanding_qty=min(0, outstanding), closed=True))


def _announce(tx: _Tx, cmd: AnnounceInbound) -> None:
    _expect(
        tx,
        cmd.warehouse_code,
        cmd.document_no,
        ExpectationKind.PURCHASE,
        cmd.quantity,
        MovementType.INBOUND_ANNOUNCED,
        "ASN",
    )


def _receive(tx: _Tx, cmd: ReceiveStock) -> None:
    movement = MovementType.TRANSFER_IN if cmd.is_transfer else MovementType.RECEIVED
    document_type = "TRANSFER" if cmd.is_transfer else "RECEIPT"
    tx.receive_into(
        cmd.warehouse_code,
        cmd.document_no,
        cmd.sellable_qty,
        cmd.damaged_qty,
        cmd.closes_document,
        movement,
        document_type,
        cmd.document_no or cmd.receipt_no,
        ExpectationKind.TRANSFER if cmd.is_transfer else ExpectationKind.PURCHASE,
    )


def _adjust(tx: _Tx, cmd: AdjustStock) -> None:
    """Applied whole, never floored: an adjustment read before the receipt that stocked its
    units leaves on hand negative until that receipt is read. A negative DAMAGE moves the
    units to damaged."""
    wh = cmd.warehouse_code
    tx.move_on_hand(wh, cmd.delta, MovementType.ADJUSTED, "ADJUSTMENT", cmd.adjustment_no)
    if cmd.delta < 0 and cmd.reason == AdjustmentReason.DAMAGE:
        p = tx.position(wh)
        tx.set(wh, damaged_qty=p.damaged_qty - cmd.delta)
        tx.ledger(wh, StockBucket.DAMAGED, MovementType.ADJUSTED, -cmd.delta, "ADJUSTMENT", cmd.adjustment_no)
        tx.write_off_disposed_ahead(wh, -cmd.delta, "ADJUSTMENT", cmd.adjustment_no)


def _dispatch(tx: _Tx, cmd: DispatchTransfer) -> None:
    source, destination = cmd.from_warehouse_code, cmd.to_warehouse_code
    tx.move_on_hand(source, -cmd.quantity, MovementType.TRANSFER_OUT, "TRANSFER", cmd.transfer_no)
    _expect(
        tx, destination, cmd.transfer_no, ExpectationKind.TRANSFER, cmd.quantity, MovementType.TRANSFER_OUT, "TRANSFER"
    )


def _reconcile(tx: _Tx, cmd: ReconcileStock) -> None:
    """A count is the shelf's truth as of ``countedAt``, whenever it is read: the books as
    of that time are today's on hand less the movements that happened after it (the
    position's history), and the difference is the drift. Reservations never make a count
    stale. A count older than the last one applied, or older than the history reaches, is
    reported (an alert saying why) and changes nothing."""
    wh = cmd.warehouse_code
    p = tx.position(wh)
    at = cmd.counted_at
    why_not = _why_a_count_cannot_land(p, at)
    if why_not:
        tx.alert(
            AlertType.ANOMALY,
            wh,
            cmd.counted_qty,
            f"count {cmd.snapshot_id} of {cmd.counted_qty} at {at.isoformat()} not applied: {why_not}",
        )
        return
    later, moved_since = history.after(p.movement_log, at)
    books = p.on_hand_qty - moved_since
    tx.set(wh, counted_at=at, movement_log=later)
    if books < 0:
        tx.alert(
            AlertType.ANOMALY,
            wh,
            -books,
            f"{-books} units had left {wh} before any receipt of them was read; count {cmd.snapshot_id} settles them",
        )
    drift = cmd.counted_qty - books
    if drift == 0:
        return
    tx.set(wh, on_hand_qty=p.on_hand_qty + drift)
    tx.ledger(wh, StockBucket.ON_HAND, MovementType.RECONCILED, drift, "SNAPSHOT", cmd.snapshot_id)
    tx.alert(
        AlertType.RECONCILIATION_DRIFT,
        wh,
        drift,
        f"WMS counted {cmd.counted_qty} at {at.isoformat()}, books said {books}: drift {drift:+d}",
    )


def _why_a_count_cannot_land(p: Position, at: datetime) -> str:
    """Why a count taken at ``at`` cannot be netted exactly at this position ("" if it can)."""
    if p.counted_at is not None and at < p.counted_at:
        return f"a later count (at {p.counted_at.isoformat()}) was applied first"
    if p.history_since is not None and at < p.history_since:
        return f"too old to net, the movements before {p.history_since.isoformat()} are no longer kept"
    return ""


def _dispose(tx: _Tx, cmd: DisposeDamaged) -> None:
    wh = cmd.warehouse_code
    p = tx.position(wh)
    taken = min(cmd.quantity, p.damaged_qty)
    # The rest may still be on its way to the books: a return inspection travels through the
    # order partition, the disposal straight from the WMS - also to a warehouse the SKU
    # never had (a return inspected elsewhere brings its first units there).
    ahead = cmd.quantity - taken
    if taken < cmd.quantity:
        later = f", {ahead} written off when returned damaged units arrive" if ahead else ""
        tx.alert(
            AlertType.ANOMALY,
            wh,
            cmd.quantity - taken,
            f"disposal of {cmd.quantity} exceeds damagedQty {p.damaged_qty}: {taken} applied{later}",
        )
    tx.set(wh, damaged_qty=p.damaged_qty - taken, disposed_ahead_qty=p.disposed_ahead_qty + ahead)
    tx.ledger(wh, StockBucket.DAMAGED, MovementType.DISPOSED, -taken, "DISPOSAL", cmd.disposal_no)


def _set_reorder_point(tx: _Tx, cmd: SetReorderPoint) -> None:
    """The latest setting (by occurredAt) wins; a position already below a point raised
    above its availableQty hears LOW_STOCK now, as if it had just fallen below it."""
    at = cmd.occurred_at
    if cmd.warehouse_code is None:
        if tx.sku_reorder_point[1] is not None and at <= tx.sku_reorder_point[1]:
            return
        olds = {wh: tx.reorder_point(tx.position(wh)) for wh in tx.positions}
        tx.sku_reorder_point = (cmd.reorder_point, at)
    else:
        p = tx.position(cmd.warehouse_code)
        if p.reorder_point_at is not None and at <= p.reorder_point_at:
            return
        olds = {cmd.warehouse_code: tx.reorder_point(p)}
        tx.set(cmd.warehouse_code, reorder_point=cmd.reorder_point, reorder_point_at=at)
    for wh, old in olds.items():
        p = tx.position(wh)
        new, available = tx.reorder_point(p), p.available_qty
        if wh in tx.before and available >= old and new > available > 0:
            tx.alert(
                AlertType.LOW_STOCK, wh, available, f"availableQty {available} is below the new reorder point {new}"
            )


# Each transition takes the one command class it is keyed by, which a dict's value type
# cannot say: hence one dict-item ignore per entry (looked up by exact type).
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
    SetReorderPoint: _set_reorder_point,  # type: ignore[dict-item]
}


# The number each stock document is applied once by (with the input event's type, so that
# a transfer's dispatch and its receipt are two documents).
_DOCUMENT_NUMBER: dict[type[StockCommand], str] = {
    AnnounceInbound: "document_no",
    ReceiveStock: "receipt_no",
    AdjustStock: "adjustment_no",
    DispatchTransfer: "transfer_no",
    ReconcileStock: "snapshot_id",
    DisposeDamaged: "disposal_no",
}
# What is not a command's content: the same content under these may be the same document.
_NOT_CONTENT = frozenset({"command_id", "occurred_at", "cause_event_id"})


def document_key(command: StockCommand) -> str | None:
    """The receipt key a stock document is applied once by, for this command's SKU."""
    field_name = _DOCUMENT_NUMBER.get(type(command))
    if field_name is None:
        return None
    number = command.__dict__[field_name]
    return f"doc|{command.cause_event_type}|{number}|{command.sku}"


def apply_stock(view: StockView, command: StockCommand, policy: CorePolicy, *, by_receipt: bool = True) -> StockOutcome:
    """Apply one command to its SKU's positions, once per message id and once per document.

    - The same message again (same id, same content) changes nothing and re-emits what it
      emitted the first time. The same id with other content is ANOMALY and changes nothing.
    - A document (receipt, ASN, transfer, adjustment, count, disposal) re-sent under a new
      event id with the same content changes nothing (DUPLICATE_DOCUMENT alert); with other
      content it is ANOMALY naming both events and changes nothing: the first one stands.
    - Receipts are kept ``policy.receipt_retention_days`` of the partition's event time: a
      command with no receipt that occurred before the horizon is ANOMALY and changes
      nothing (it may have been applied already); one applied prunes what the horizon
      passed (tables/retention.py).
    - ``by_receipt=False``: the caller applies the command once by other means (an envelope's
      sequence number: streams/envelopes.py); no receipt is read or kept, nothing is pruned."""
    if not by_receipt:  # no receipt: no fingerprint to keep on it
        tx = _Tx(view, command, policy)
        tx.by_receipt = False
        _TRANSITIONS[type(command)](tx, command)
        return tx.finish()
    content = fingerprint(command, _NOT_CONTENT)
    seen = view.receipt(command.command_id)
    if seen is not None:
        if seen.fingerprint and seen.fingerprint != content:
            tx = _Tx(view, command, policy)
            tx.alert(
                AlertType.ANOMALY,
                _warehouse_of(command),
                0,
                f"event {command.cause_event_id} reused for other content ({command.cause_event_type}): ignored",
                # Its own alert id: the first message's alerts already use <command id>|ANOMALY|0.
                alert_id=f"{command.command_id}|reused|{content}",
            )
            return _changes_nothing(command, tuple(tx.alerts))
        return _changes_nothing(command, seen.events)
    clock, hour = None, None
    if policy.receipt_retention_days is not None:
        clock, hour = view.clock(STOCK), hour_of(command.occurred_at)
    limit = horizon(clock, policy)
    tx = _Tx(view, command, policy)
    if limit is not None and hour is not None and hour < limit:
        tx.alert(
            AlertType.ANOMALY,
            _warehouse_of(command),
            0,
            beyond(
                f"{type(command).__name__} of {command.cause_event_type} {command.cause_event_id}",
                command.occurred_at,
                limit,
                policy,
            ),
            alert_id=f"{command.command_id}|beyond-retention",
        )
        return _changes_nothing(command, tuple(tx.alerts))
    doc_key = document_key(command)
    first = view.receipt(doc_key) if doc_key is not None else None
    if first is not None:
        same = first.fingerprint == content
        tx.alert(
            AlertType.DUPLICATE_DOCUMENT if same else AlertType.ANOMALY,
            _warehouse_of(command),
            0,
            f"{command.cause_event_type} {doc_key.split('|')[2]} re-sent as event {command.cause_event_id} "  # type: ignore[union-attr]  # a document's command
            f"(first applied as event {first.event_id}): "
            + ("same content, applied once" if same else "different content, ignored: the first stands"),
        )
        doc_key = None
    else:
        _TRANSITIONS[type(command)](tx, command)
    if doc_key is not None:
        tx.extra_receipts.append(Receipt(doc_key, (), content, command.cause_event_id))
    return tx.finish(content, clock, hour)


def _changes_nothing(command: StockCommand, events: tuple[object, ...]) -> StockOutcome:
    """A message already applied (or an id reused): nothing to store, ``events`` to send."""
    return StockOutcome(
        sku=command.sku, stock=None, reservations={}, expectations={}, receipt=None, events=events, duplicate=True
    )


def _warehouse_of(command: StockCommand) -> str | None:
    fields = command.__dict__
    return fields.get("warehouse_code") or fields.get("from_warehouse_code")
