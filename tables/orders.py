"""The order partition of the core: one order's lifecycle (table key: orderNo).

``apply_order(view, message) -> OrderOutcome``: folds an order-scoped input event, a
reservation answer from the SKU partition, or an expiry tick into the order, and returns the
new order, the events for the OMS/WMS, and the stock commands for the SKU partition.

Everything that decides which message may move an order from which status lives in
``LIFECYCLE`` below (read it top to bottom). A message outside it is a named domain error
that becomes an ANOMALY alert, never a crash and never a silent drop. Physical events
(shipped, delivered, failed, inspected) still move stock when the order is in an
unexpected status: the warehouse's truth wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

from schemas.inputs import (
    Consignee,
    Delivered,
    DeliveryFailed,
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
    StockLine,
)
from schemas.internal import (
    DeliverStock,
    ExpectReturn,
    InspectReturn,
    ReleaseStock,
    ReservationExpiryDue,
    ReservationStatus,
    ReservationUpdated,
    ReserveStock,
    ReturnUndelivered,
    ShipStock,
)
from schemas.outputs import (
    AlertType,
    OrderLineAllocation,
    OrderStatus,
    OrderStatusChanged,
    OutboundCancellation,
    OutboundInstruction,
    WarehouseAllocation,
)
from tables.alerts import inventory_alert
from tables.construct import construct, evolve, fingerprint
from tables.policy import CorePolicy
from tables.retention import (
    ORDERS,
    RECEIPT,
    UNCHANGED,
    IndexEntry,
    Retention,
    RetentionView,
    beyond,
    horizon,
    hour_of,
    keep,
)
from tables.state import (
    MAX_TIMELINE,
    Allocation,
    CustomerReturn,
    LineState,
    Order,
    OrderLine,
    PartitionClock,
    Receipt,
    Shipment,
    ShipmentLine,
    ShipmentState,
    TimelineEntry,
)

S = OrderStatus
OPEN = frozenset({S.PENDING, S.RESERVED, S.OUTBOUND_REQUESTED})
SHIPPED_OR_LATER = frozenset(
    {
        S.PARTIALLY_SHIPPED,
        S.SHIPPED,
        S.DELIVERED,
        S.DELIVERY_FAILED,
        S.RETURN_REQUESTED,
        S.PARTIALLY_RETURNED,
        S.RETURNED,
    }
)
ENDED_UNSHIPPED = frozenset({S.REJECTED, S.EXPIRED, S.CANCELLED})

PLACEHOLDER = "PLACEHOLDER"  # an order known only from physical events (shipment, return)
ANY = frozenset({None, *S})

# Which message may act on an order in which status. ``None`` stands for "no such order".
# Messages of a type listed here that arrive in any other status are domain errors (ANOMALY).
# The three input topics are not ordered with respect to each other (a backlog drained after
# downtime interleaves them), so the physical and return events are accepted in any order
# and merged; only what cannot be merged is an anomaly.
LIFECYCLE: dict[str, frozenset[OrderStatus | str | None]] = {
    "OrderCreated": frozenset({None, PLACEHOLDER}),
    "ReservationUpdated": frozenset(set(S)),
    # Judged on event time: in time (occurredAt <= reservationExpiresAt) an EXPIRED order is
    # re-opened (it expired on the wall-clock fallback before the payment was read); late,
    # it is refused and an open order expires.
    "OrderPaid": frozenset({S.PENDING, S.RESERVED, S.OUTBOUND_REQUESTED, S.EXPIRED}),
    "ReservationExpiryDue": frozenset(set(S)),  # a no-op unless unpaid, open and due
    # Ended: already released, a no-op - except an EXPIRED order cancelled before its due
    # time (or while it waits to re-open), which ends CANCELLED.
    "OrderCancelled": frozenset(OPEN | ENDED_UNSHIPPED),
    "OrderShipped": frozenset({None, *S}),  # physical truth: always applied
    "PickedUp": frozenset(SHIPPED_OR_LATER),
    "InTransit": frozenset(SHIPPED_OR_LATER),
    "OutForDelivery": frozenset(SHIPPED_OR_LATER),
    "Delivered": frozenset(set(S)),  # physical: applied wherever its shipment is known
    "DeliveryFailed": frozenset(set(S)),
    "ReturnRequested": frozenset(set(S)),  # before its shipment is read: kept until it is
    "ReturnPickedUp": frozenset(SHIPPED_OR_LATER),
    "ReturnInspected": ANY,  # physical truth: always applied
}
RETURN_STATUSES = frozenset({S.RETURN_REQUESTED, S.PARTIALLY_RETURNED, S.RETURNED})
AFTER_DELIVERY = RETURN_STATUSES | {S.DELIVERED}


class OrderView(RetentionView, Protocol):
    def order(self, order_no: str) -> Order | None: ...
    def receipt(self, message_id: str) -> Receipt | None: ...


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    order_no: str
    order: Order | None  # None: the order record did not change
    receipt: Receipt | None  # None: duplicate
    events: tuple[object, ...]  # outputs and stock commands, in emission order
    expiry_set: datetime | None = None  # index this order under this expiry time
    expiry_cleared: datetime | None = None  # drop it from the expiry index
    duplicate: bool = False
    retention: Retention = UNCHANGED  # the partition's clock, index and pruned receipts


class _Tx:
    def __init__(self, order: Order | None, message: BaseModel) -> None:
        # Receipt retention (set by apply_order): the view and policy, the partition's clock
        # as the message found it, and whether the message is older than its horizon (an
        # expiry tick, then: it keeps no receipt). No view: nothing kept, nothing pruned.
        self.view: OrderView | None = None
        self.policy: CorePolicy | None = None
        self.clock: PartitionClock | None = None
        self.hour: datetime | None = None  # the message's
        self.late = False
        self.before = order
        self.order = order
        self.message = message
        # A model's field values are in its __dict__; reading them there avoids pydantic's slow
        # __getattr__ for the fields a message type does not have.
        fields = message.__dict__
        self.message_id: str = fields.get("event_id") or fields["result_id"]
        self.message_type = type(message).__name__
        self.cause_event_id: str = fields.get("cause_event_id", self.message_id)
        self.cause_event_type: str = fields.get("cause_event_type", self.message_type)
        self.occurred_at: datetime = message.occurred_at  # type: ignore[attr-defined]  # every order message has one
        self.events: list[object] = []
        self.expiry_set: datetime | None = None
        self.expiry_cleared: datetime | None = None
        self.version = order.version if order is not None else 0
        self.moved = False
        # The status the OMS last heard of: None for an order this message creates.
        self.announced_status: OrderStatus | None = order.status if order is not None else None

    @property
    def o(self) -> Order:
        assert self.order is not None
        return self.order

    def update(self, **changes: object) -> None:
        self.order = evolve(self.o, **changes)

    def set_line(self, line: OrderLine) -> None:
        lines = tuple(line if x.sku == line.sku else x for x in self.o.lines)
        if all(x.sku != line.sku for x in lines):
            lines = (*lines, line)
        self.update(lines=lines)

    def noted(self, what: str) -> tuple[TimelineEntry, ...]:
        entry = TimelineEntry(at=self.occurred_at, what=what, cause_event_id=self.cause_event_id)
        return (*self.o.timeline, entry)[-MAX_TIMELINE:]

    def note(self, what: str) -> None:
        self.update(timeline=self.noted(what))

    def move_to(self, status: OrderStatus, reason: str = "") -> None:
        """Change status and tell the OMS, one OrderStatusChanged per move."""
        previous = self.announced_status
        if previous == status:
            return
        self.announced_status = status
        self.version += 1
        self.update(status=status, timeline=self.noted(status.value), version=self.version)
        self.moved = True
        self.events.append(_status_changed(self.o, previous, self, reason))

    def notify(self, reason: str) -> None:
        """Tell the OMS something about an order whose status does not change (a line left
        short of its promised supply, or served again): an OrderStatusChanged with the same
        status, a new version."""
        if self.announced_status is None:
            return
        self.version += 1
        self.update(version=self.version)
        self.moved = True
        self.events.append(_status_changed(self.o, self.announced_status, self, reason))

    def command(self, cls: type[BaseModel], sku: str, step: str, **fields: object) -> None:
        self.events.append(
            construct(
                cls,
                command_id=f"{self.message_id}|{sku}|{step}",
                sku=sku,
                occurred_at=self.occurred_at,
                cause_event_type=self.cause_event_type,
                cause_event_id=self.cause_event_id,
                **fields,
            )
        )

    def anomaly(self, message: str, sku: str | None = None, quantity: int = 0, alert_id: str | None = None) -> None:
        order_no: str = self.message.order_no  # type: ignore[attr-defined]  # every order message has one
        self.events.append(
            inventory_alert(
                AlertType.ANOMALY,
                self.message_id,
                len(self.events),
                sku=sku,
                warehouse_code=None,
                order_no=order_no,
                quantity=quantity,
                message=message,
                cause_event_type=self.cause_event_type,
                cause_event_id=self.cause_event_id,
                occurred_at=self.occurred_at,
                alert_id=alert_id,
            )
        )

    def release(self, line: OrderLine) -> None:
        """Send the line's ReleaseStock, naming the reservation it ends (read before that
        ReserveStock - after a crash - it keeps the reservation from being made)."""
        self.command(
            ReleaseStock,
            line.sku,
            "release",
            order_no=self.o.order_no,
            reserve_command_id=line.reserve_command_id or None,
        )

    def release_held_lines(self) -> None:
        for line in self.o.lines:
            if line.state in (LineState.REQUESTED, LineState.RESERVED):
                self.release(line)
        if self.o.reservation_expires_at is not None:
            self.expiry_cleared = self.o.reservation_expires_at

    def maybe_request_outbound(self) -> None:
        """Seed step 4: a reserved, paid, fully allocated order goes to the WMS, one
        instruction per warehouse."""
        o = self.o
        if o.status != S.RESERVED or not o.paid or o.outbound_issued:
            return
        if any(line.state != LineState.RESERVED or line.reserved_qty < line.quantity for line in o.lines):
            return
        consignee = construct(Consignee, name=o.consignee_name, phone=o.consignee_phone, address=o.consignee_address)
        for warehouse_code, lines in _instruction_lines(o).items():
            self.events.append(
                construct(
                    OutboundInstruction,
                    event_id=f"{o.order_no}|{warehouse_code}|outbound",
                    instruction_no=f"{o.order_no}-{warehouse_code}",
                    order_no=o.order_no,
                    warehouse_code=warehouse_code,
                    order_type=o.order_type,
                    consignee=consignee,
                    time_requirement=o.time_requirement,
                    lines=lines,
                    occurred_at=self.occurred_at,
                )
            )
        self.update(outbound_issued=True)
        self.move_to(S.OUTBOUND_REQUESTED)

    def recall_outbound(self, reason: str) -> None:
        """The order's instructions were sent and nothing shipped: one OutboundCancellation
        per instruction, so that the WMS does not ship what was cancelled."""
        o = self.o
        for warehouse_code, lines in _instruction_lines(o).items():
            self.events.append(
                construct(
                    OutboundCancellation,
                    event_id=f"{o.order_no}|{warehouse_code}|outbound-cancelled",
                    instruction_no=f"{o.order_no}-{warehouse_code}",
                    order_no=o.order_no,
                    warehouse_code=warehouse_code,
                    lines=lines,
                    reason=reason[:256],
                    cause_event_type=self.cause_event_type,
                    cause_event_id=self.cause_event_id,
                    occurred_at=self.occurred_at,
                )
            )

    def finish(self, content: str = "", keep_receipt: bool = True) -> OrderOutcome:
        """The message's outcome; ``content``: its fingerprint, kept on its receipt (none
        when ``keep_receipt`` is false, or for an expiry tick older than the horizon)."""
        order_no: str = self.message.order_no  # type: ignore[attr-defined]  # every order message has one
        order = self.order
        if order is not None and order != self.before:
            if not self.moved:
                order = replace(order, version=self.version + 1)
        else:
            order = None
        events = tuple(self.events)
        receipt = None
        if keep_receipt and not self.late:
            receipt = Receipt(self.message_id, events, content, self.message_id if content else "")
        return OrderOutcome(
            order_no=order_no,
            order=order,
            receipt=receipt,
            events=events,
            expiry_set=self.expiry_set,
            expiry_cleared=self.expiry_cleared,
            retention=self.retain(receipt),
        )

    def retain(self, receipt: Receipt | None) -> Retention:
        """Index the message's receipt, move the partition's clock (not for an expiry tick:
        its time is a due time), prune what the horizon passed."""
        policy, hour = self.policy, self.hour
        if policy is None or self.view is None or hour is None:
            return UNCHANGED
        indexed: list[IndexEntry] = []
        if receipt is not None:
            indexed.append((hour, (RECEIPT, receipt.message_id)))
        if receipt is None or type(self.message) is ReservationExpiryDue:
            hour = None  # the clock moves with the messages it keeps a receipt of, ticks excepted
        return keep(self.view, ORDERS, policy, self.clock, hour, indexed)[0]


def _instruction_lines(o: Order) -> dict[str, list[StockLine]]:
    """An instructed order's lines by warehouse, as its OutboundInstructions list them: a
    split line asks each split warehouse for its part and the primary one for the rest."""
    by_warehouse: dict[str, list[StockLine]] = {}
    for line in o.lines:
        for share in line.shares():
            if share.reserved_qty > 0:
                by_warehouse.setdefault(share.warehouse_code, []).append(
                    construct(StockLine, sku=line.sku, quantity=share.reserved_qty)
                )
    return {warehouse_code: by_warehouse[warehouse_code] for warehouse_code in sorted(by_warehouse)}


def _status_changed(order: Order, previous: OrderStatus | None, tx: _Tx, reason: str) -> OrderStatusChanged:
    return construct(
        OrderStatusChanged,
        event_id=f"{order.order_no}|v{order.version}",
        order_no=order.order_no,
        status=order.status,
        previous_status=previous,
        reason=reason[:256],
        lines=[
            construct(
                OrderLineAllocation,
                sku=line.sku,
                quantity=line.quantity,
                warehouse_code=line.warehouse_code,
                reserved_qty=line.reserved_qty,
                presold_qty=line.presold_qty,
                shipped_qty=line.shipped_qty,
                delivered_qty=line.delivered_qty,
                returned_qty=line.returned_qty,
                short_qty=line.short_qty,
                splits=[
                    construct(WarehouseAllocation, warehouse_code=part.warehouse_code, reserved_qty=part.reserved_qty)
                    for part in line.splits
                ],
            )
            for line in order.lines
        ],
        version=order.version,
        cause_event_type=tx.cause_event_type,
        cause_event_id=tx.cause_event_id,
        occurred_at=tx.occurred_at,
    )


def _placeholder(tx: _Tx, status: OrderStatus) -> None:
    """A physical event for an order never created: keep what we learn, say so."""
    order_no: str = tx.message.order_no  # type: ignore[attr-defined]  # every order message has one
    tx.order = Order(order_no=order_no, status=status, known=False, created_at=tx.occurred_at)
    tx.move_to(status)
    tx.anomaly(f"{tx.message_type} for unknown order {order_no}")


# --- transitions ---------------------------------------------------------------------------


def _created(tx: _Tx, e: OrderCreated) -> None:
    if tx.order is not None:
        _created_after_shipment(tx, e)
        return
    lines = tuple(
        OrderLine(sku=item.sku, quantity=item.quantity, requested_warehouse=item.warehouse_code or e.warehouse_code)
        for item in e.items
    )
    tx.order = Order(
        order_no=e.order_no,
        status=S.PENDING,
        order_type=e.order_type,
        lines=lines,
        consignee_name=e.consignee.name,
        consignee_phone=e.consignee.phone,
        consignee_address=e.consignee.address,
        time_requirement=e.time_requirement,
        paid=e.reservation_expires_at is None,
        reservation_expires_at=e.reservation_expires_at,
        created_at=e.occurred_at,
    )
    tx.move_to(S.PENDING)
    for line in lines:
        _reserve_line(tx, line, "reserve", line.quantity)
    tx.expiry_set = e.reservation_expires_at


def _reserve_line(tx: _Tx, line: OrderLine, step: str, quantity: int) -> None:
    """Send the line's ReserveStock and remember its id: every release names the reservation
    it ends, so that a release read first (after a crash) cancels it before it is made."""
    command_id = f"{tx.message_id}|{line.sku}|{step}"
    tx.command(
        ReserveStock,
        line.sku,
        step,
        order_no=tx.o.order_no,
        order_type=tx.o.order_type,
        quantity=quantity,
        warehouse_code=line.requested_warehouse,
    )
    current = tx.o.line(line.sku) or line
    tx.set_line(replace(current, reserve_command_id=command_id))


def _created_after_shipment(tx: _Tx, e: OrderCreated) -> None:
    """The order arrives after its shipment or return (topics interleave): adopt the order's
    data and keep what physically happened. Shipped units need no reservation any more; the
    units still to ship are reserved as for any order (``_reserve_rest``)."""
    lines, rest = [], []
    for item in e.items:
        seen = tx.o.line(item.sku)
        requested = item.warehouse_code or e.warehouse_code
        line = OrderLine(sku=item.sku, quantity=item.quantity, requested_warehouse=requested)
        if seen is not None:
            line = replace(seen, quantity=item.quantity, requested_warehouse=requested)
        if line.shipped_qty < item.quantity:
            rest.append(line)
        lines.append(line)
    ordered = {item.sku for item in e.items}
    lines.extend(line for line in tx.o.lines if line.sku not in ordered)  # shipped, never ordered
    tx.update(
        known=True,
        order_type=e.order_type,
        lines=tuple(lines),
        consignee_name=e.consignee.name,
        consignee_phone=e.consignee.phone,
        consignee_address=e.consignee.address,
        time_requirement=e.time_requirement,
        created_at=e.occurred_at,
    )
    tx.note("OrderCreated")
    if rest:
        _reserve_rest(tx, rest)


def _reserve_rest(tx: _Tx, rest: list[OrderLine]) -> None:
    """A merged order with units still to ship is PARTIALLY_SHIPPED, as it would be had it been
    read first, and its lines hold the rest (ReserveStock of the unshipped units, answered as
    for a partially shipped order: a later shipment consumes the hold, a full shipment
    releases what is left). Not when its returns or a failed delivery already decide its
    status (a finished order must hold nothing): then an ANOMALY names the units."""
    if tx.o.status not in (S.SHIPPED, S.DELIVERED):
        for line in rest:
            units = line.quantity - line.shipped_qty
            tx.anomaly(
                f"order created after shipment of {line.shipped_qty} of {line.quantity} units of {line.sku}: "
                "the rest is not reserved",
                line.sku,
                units,
            )
        return
    for line in rest:
        tx.set_line(replace(line, state=LineState.REQUESTED, reserved_qty=0, presold_qty=0, splits=()))
        _reserve_line(tx, line, "reserve", line.quantity - line.shipped_qty)
    tx.move_to(S.PARTIALLY_SHIPPED, "order read after part of it shipped")


def _reservation_updated(tx: _Tx, r: ReservationUpdated) -> None:
    line = tx.o.line(r.sku)
    if line is None:
        tx.anomaly(f"reservation answer for {r.sku}, which order {r.order_no} does not contain", r.sku)
        return
    if r.seq and r.seq <= line.answer_seq:
        return  # older than the last answer read: sent again after a crash, out of order
    state = {
        ReservationStatus.RESERVED: LineState.RESERVED,
        ReservationStatus.REJECTED: LineState.REJECTED,
        ReservationStatus.RELEASED: LineState.RELEASED,
    }[r.status]
    tx.set_line(
        replace(
            line,
            state=state,
            warehouse_code=r.warehouse_code or line.warehouse_code,
            reserved_qty=r.reserved_qty,
            presold_qty=r.presold_qty,
            short_qty=r.short_qty,
            best_available_qty=r.best_available_qty,
            splits=tuple(Allocation(part.warehouse_code, part.reserved_qty) for part in r.splits),
            answer_seq=max(line.answer_seq, r.seq),
        )
    )
    if r.short_qty > line.short_qty:
        tx.anomaly(f"{r.short_qty} units of {r.sku} promised to this order will not arrive", r.sku, r.short_qty)
        tx.notify(f"SHORT: {r.short_qty} units of {r.sku} promised from inbound supply will not arrive")
    elif r.short_qty < line.short_qty:
        left = f", {r.short_qty} still short" if r.short_qty else ""
        tx.notify(f"RECOVERED: {line.short_qty - r.short_qty} units of {r.sku} served from new stock{left}")
    unshipped = line.quantity - line.shipped_qty
    if state == LineState.REJECTED and tx.o.status in SHIPPED_OR_LATER and unshipped > 0:
        tx.anomaly(
            f"the {unshipped} units of {r.sku} still to ship could not be reserved (best {r.best_available_qty})",
            r.sku,
            unshipped,
        )
    if tx.o.status == S.EXPIRED and tx.o.paid:
        _reopen_once_released(tx)  # paid in time, read after the expiry
        return
    if tx.o.status != S.PENDING or any(x.state == LineState.REQUESTED for x in tx.o.lines):
        tx.maybe_request_outbound()
        return
    rejected = [x for x in tx.o.lines if x.state == LineState.REJECTED]
    if rejected:
        short = ", ".join(f"{x.sku} (wanted {x.quantity}, best {x.best_available_qty})" for x in rejected)
        tx.release_held_lines()
        tx.move_to(S.REJECTED, f"insufficient stock: {short}")
    else:
        tx.move_to(S.RESERVED)
        tx.maybe_request_outbound()


def _paid(tx: _Tx, e: OrderPaid) -> None:
    """Judged on event time: a payment that occurred by ``reservationExpiresAt`` is honoured
    whenever it is read, one that occurred later is refused."""
    o = tx.o
    if o.paid:
        return
    due = o.reservation_expires_at
    if due is not None and e.occurred_at > due:
        _paid_too_late(tx, e, due)
        return
    if o.status == S.EXPIRED:
        assert due is not None  # only an unpaid order expires
        _paid_after_expiry(tx, e, due)
        return
    tx.expiry_cleared = due
    tx.update(paid=True)
    tx.note("PAID")
    tx.maybe_request_outbound()


def _paid_too_late(tx: _Tx, e: OrderPaid, due: datetime) -> None:
    """Refused (ANOMALY); an order still open expires now, whether or not a tick came."""
    tx.anomaly(f"payment at {e.occurred_at.isoformat()} refused: the reservation expired at {due.isoformat()}")
    if tx.o.status in (S.PENDING, S.RESERVED):
        _expire(tx, due)


def _paid_after_expiry(tx: _Tx, e: OrderPaid, due: datetime) -> None:
    """Paid in time, read after a tick expired the order (the wall-clock fallback fired
    first): the order is paid and re-opened, with an ANOMALY as its trace."""
    tx.anomaly(
        f"paid at {e.occurred_at.isoformat()}, in time for {due.isoformat()}, but read after the "
        "order expired: re-opened, its lines reserved again"
    )
    tx.update(paid=True)
    tx.note("PAID")
    _reopen_once_released(tx)


def _reopen_once_released(tx: _Tx) -> None:
    """Re-open an EXPIRED, paid order once every line's release is answered: the expiry
    released every line, so each line's last answer before the new reservation is that
    RELEASED one, and no older answer can be taken for the new reservation. Then every line
    is reserved again (``<message id>|<sku>|reserve-again``) and the order is PENDING: the
    answers take it to RESERVED (and, paid, to the warehouse) or REJECTED, as at creation."""
    o = tx.o
    if any(line.state != LineState.RELEASED for line in o.lines):
        return  # an answer to the expiry's releases is still to be read: it re-opens
    lines = tuple(
        OrderLine(sku=line.sku, quantity=line.quantity, requested_warehouse=line.requested_warehouse)
        for line in o.lines
    )
    tx.update(lines=lines)
    for line in lines:
        _reserve_line(tx, line, "reserve-again", line.quantity)
    tx.move_to(S.PENDING, "re-opened: paid in time, read after the expiry")


def _expire(tx: _Tx, due: datetime) -> None:
    """Release every line, held or not (so that each line's last reservation answer is a
    RELEASED one: see ``_reopen_once_released``), and end EXPIRED."""
    for line in tx.o.lines:
        tx.release(line)
    tx.expiry_cleared = due
    tx.move_to(S.EXPIRED, f"not paid by {due.isoformat()}")


def _expiry_due(tx: _Tx, e: ReservationExpiryDue) -> None:
    o = tx.o
    if o.paid or o.status not in (S.PENDING, S.RESERVED) or o.reservation_expires_at != e.due_at:
        return
    _expire(tx, e.due_at)


def _cancelled(tx: _Tx, e: OrderCancelled) -> None:
    o = tx.o
    if o.status == S.EXPIRED and (o.paid or _by_due_time(o, e.occurred_at)):
        # Cancelled before it was due (or while it waited to re-open) but read after the
        # expiry: it ends as cancelled; its lines were released when it expired.
        tx.move_to(S.CANCELLED, e.reason)
        return
    if o.status in ENDED_UNSHIPPED:
        return  # already released
    if o.status == S.OUTBOUND_REQUESTED:
        tx.recall_outbound(e.reason)
    tx.release_held_lines()
    tx.move_to(S.CANCELLED, e.reason)


def _by_due_time(o: Order, occurred_at: datetime) -> bool:
    return o.reservation_expires_at is not None and occurred_at <= o.reservation_expires_at


def _shipped(tx: _Tx, e: OrderShipped) -> None:
    if tx.order is None:
        _placeholder(tx, S.SHIPPED)
    elif tx.o.status in ENDED_UNSHIPPED:
        tx.anomaly(f"order {e.order_no} shipped after it was {tx.o.status}")
    if tx.o.shipment(e.shipment_no) is not None:
        tx.anomaly(f"shipment {e.shipment_no} reported twice under different event ids")
        return
    for shipped in e.lines:
        line = tx.o.line(shipped.sku) or OrderLine(
            sku=shipped.sku, quantity=0, state=LineState.UNRESERVED, warehouse_code=e.warehouse_code
        )
        tx.command(
            ShipStock,
            shipped.sku,
            "ship",
            order_no=e.order_no,
            shipment_no=e.shipment_no,
            warehouse_code=e.warehouse_code,
            quantity=shipped.quantity,
            order_known=tx.o.known,
        )
        consumed = min(shipped.quantity, line.held_at(e.warehouse_code))
        tx.set_line(replace(line.taken_at(e.warehouse_code, consumed), shipped_qty=line.shipped_qty + shipped.quantity))
    shipment = Shipment(
        shipment_no=e.shipment_no,
        warehouse_code=e.warehouse_code,
        waybill_no=e.waybill_no,
        lines=tuple(ShipmentLine(sku=x.sku, quantity=x.quantity) for x in e.lines),
    )
    tx.update(shipments=(*tx.o.shipments, shipment))
    if tx.o.reservation_expires_at is not None and not tx.o.paid:
        tx.expiry_cleared = tx.o.reservation_expires_at
    if all(line.shipped_qty >= line.quantity for line in tx.o.lines):
        # Whatever is still held (shipped from another warehouse) is no longer needed. A line
        # still REQUESTED may be held too: its answer can be read after the shipment (another
        # topic). The release follows its ReserveStock on the SKU's partition, so it finds
        # whatever the shipment did not consume.
        for line in tx.o.lines:
            held = line.state == LineState.RESERVED and (line.reserved_qty or line.presold_qty)
            if held or line.state == LineState.REQUESTED:
                tx.release(line)
        if tx.o.status not in AFTER_DELIVERY:  # a late shipment report never moves it back
            tx.move_to(S.SHIPPED)
    elif tx.o.status not in (S.SHIPPED, *AFTER_DELIVERY):
        tx.move_to(S.PARTIALLY_SHIPPED)
    _settle_returns(tx)


def _tracked(tx: _Tx, e: PickedUp) -> None:
    if tx.o.shipment(e.shipment_no) is None:
        tx.anomaly(f"{tx.message_type} for unknown shipment {e.shipment_no}")
        return
    tx.note(tx.message_type)


def _shipment_for(tx: _Tx, shipment_no: str) -> Shipment | None:
    shipment = tx.o.shipment(shipment_no)
    if shipment is None:
        tx.anomaly(f"{tx.message_type} for unknown shipment {shipment_no}: quantities unknown")
        return None
    if shipment.state != ShipmentState.SHIPPED:
        tx.anomaly(f"{tx.message_type} for shipment {shipment_no} already {shipment.state}")
        return None
    return shipment


def _replace_shipment(tx: _Tx, shipment: Shipment) -> None:
    tx.update(shipments=tuple(shipment if s.shipment_no == shipment.shipment_no else s for s in tx.o.shipments))


def _command_per_line(tx: _Tx, shipment: Shipment, cls: type[BaseModel], step: str, order_no: str) -> None:
    """One stock command per line of a shipment, at the warehouse that shipped it."""
    for shipped in shipment.lines:
        tx.command(
            cls,
            shipped.sku,
            step,
            order_no=order_no,
            shipment_no=shipment.shipment_no,
            warehouse_code=shipment.warehouse_code,
            quantity=shipped.quantity,
        )


def _delivered(tx: _Tx, e: Delivered) -> None:
    shipment = _shipment_for(tx, e.shipment_no)
    if shipment is None:
        return
    _command_per_line(tx, shipment, DeliverStock, "deliver", e.order_no)
    for shipped in shipment.lines:
        line = tx.o.line(shipped.sku)
        if line is not None:
            tx.set_line(replace(line, delivered_qty=line.delivered_qty + shipped.quantity))
    _replace_shipment(tx, replace(shipment, state=ShipmentState.DELIVERED))
    fully_shipped = all(line.shipped_qty >= line.quantity for line in tx.o.lines)
    all_delivered = all(s.state == ShipmentState.DELIVERED for s in tx.o.shipments)
    if fully_shipped and all_delivered and tx.o.status not in RETURN_STATUSES:
        tx.move_to(S.DELIVERED)
    else:
        tx.note("Delivered")
    _settle_returns(tx)


def _delivery_failed(tx: _Tx, e: DeliveryFailed) -> None:
    shipment = _shipment_for(tx, e.shipment_no)
    if shipment is None:
        return
    _command_per_line(tx, shipment, ReturnUndelivered, "undelivered", e.order_no)
    _replace_shipment(tx, replace(shipment, state=ShipmentState.FAILED))
    if _return_status(tx.o) is None:
        tx.move_to(S.DELIVERY_FAILED, e.reason)
    else:  # another parcel came back as a return: the return's status holds, however read
        tx.note("DeliveryFailed")


def _replace_return(tx: _Tx, customer_return: CustomerReturn) -> None:
    others = tuple(r for r in tx.o.returns if r.return_no != customer_return.return_no)
    tx.update(returns=(*others, customer_return))


def _expect_return(tx: _Tx, customer_return: CustomerReturn, order_no: str) -> None:
    assert customer_return.warehouse_code is not None
    for line in customer_return.lines:
        tx.command(
            ExpectReturn,
            line.sku,
            "expect-return",
            order_no=order_no,
            return_no=customer_return.return_no,
            warehouse_code=customer_return.warehouse_code,
            quantity=line.quantity,
        )


def _return_requested(tx: _Tx, e: ReturnRequested) -> None:
    lines = tuple(ShipmentLine(sku=x.sku, quantity=x.quantity) for x in e.items)
    seen = tx.o.customer_return(e.return_no)
    if seen is not None and seen.lines:
        _settle_returns(tx)  # requested before (different event id), or already inspected
        return
    customer_return = replace(seen, lines=lines) if seen else CustomerReturn(return_no=e.return_no, lines=lines)
    _replace_return(tx, customer_return)
    if customer_return.picked_up and not customer_return.inspected:
        _expect_return(tx, customer_return, e.order_no)  # the pickup came first
    if tx.o.status not in SHIPPED_OR_LATER:
        tx.note("ReturnRequested")  # read before the shipment (another topic): kept for it
    _settle_returns(tx, e.reason)


def _return_picked_up(tx: _Tx, e: ReturnPickedUp) -> None:
    seen = tx.o.customer_return(e.return_no)
    if seen is not None and seen.picked_up:
        return
    customer_return = (
        replace(seen, picked_up=True, warehouse_code=seen.warehouse_code or e.warehouse_code)
        if seen
        else CustomerReturn(return_no=e.return_no, lines=(), picked_up=True, warehouse_code=e.warehouse_code)
    )
    _replace_return(tx, customer_return)
    if customer_return.lines and not customer_return.inspected:
        _expect_return(tx, customer_return, e.order_no)
    tx.note("ReturnPickedUp")


def _return_inspected(tx: _Tx, e: ReturnInspected) -> None:
    if tx.order is None:
        _placeholder(tx, S.RETURNED)
    seen = tx.o.customer_return(e.return_no)
    if seen is not None and seen.inspected:
        tx.anomaly(f"return {e.return_no} inspected twice under different event ids")
        return
    totals: dict[str, list[int]] = {}
    for inspected in e.lines:
        sellable_damaged = totals.setdefault(inspected.sku, [0, 0])
        sellable_damaged[0 if inspected.disposition == "SELLABLE" else 1] += inspected.quantity
    # The units a pickup put in transit to another warehouse are closed there.
    announced = seen.warehouse_code if seen is not None and seen.picked_up and seen.lines else None
    for sku, (sellable, damaged) in totals.items():
        tx.command(
            InspectReturn,
            sku,
            "inspect-return",
            order_no=e.order_no,
            return_no=e.return_no,
            warehouse_code=e.warehouse_code,
            sellable_qty=sellable,
            damaged_qty=damaged,
            announced_warehouse_code=announced,
        )
        line = tx.o.line(sku)
        if line is not None:
            tx.set_line(replace(line, returned_qty=line.returned_qty + sellable + damaged))
    # Inspected is final: a pickup or request arriving later must not expect these units again.
    inspected_lines = tuple(ShipmentLine(sku=sku, quantity=sum(q)) for sku, q in totals.items())
    if seen is None:
        seen = CustomerReturn(return_no=e.return_no, lines=inspected_lines)
    _replace_return(
        tx, replace(seen, inspected=True, warehouse_code=e.warehouse_code, lines=seen.lines or inspected_lines)
    )
    if tx.o.status not in SHIPPED_OR_LATER:
        # Goods came back for an order not shipped yet, or whose shipment is not read yet
        # (another topic): the stock is taken in (physical truth), the order and its
        # reservation stay as they are until a shipment is read.
        tx.anomaly(f"return {e.return_no} inspected for order {e.order_no}, which is {tx.o.status}")
        return
    _settle_returns(tx)


def _return_status(o: Order) -> OrderStatus | None:
    """Where the order's returns put it, in whatever order their messages were read (None:
    no return). Inspected units are compared with the delivered ones."""
    if any(r.inspected for r in o.returns):
        delivered = sum(line.delivered_qty for line in o.lines)
        returned = sum(line.returned_qty for line in o.lines)
        return S.RETURNED if returned >= delivered else S.PARTIALLY_RETURNED
    if any(r.lines for r in o.returns):
        return S.RETURN_REQUESTED
    return None


def _settle_returns(tx: _Tx, reason: str = "") -> None:
    """Once shipped, an order with returns is in the return status they give it: a request
    or inspection read before the shipment, or a delivery read after an inspection, ends
    where the sequential order of events would have put it."""
    if tx.o.status not in SHIPPED_OR_LATER:
        return
    status = _return_status(tx.o)
    if status is not None:
        tx.move_to(status, reason)


def _returning(o: Order) -> dict[str, int]:
    """Units of each SKU coming back to us: inspected, plus requested and not inspected yet."""
    units = {line.sku: line.returned_qty for line in o.lines}
    for customer_return in o.returns:
        for line in customer_return.lines:
            if not customer_return.inspected or o.line(line.sku) is None:
                units[line.sku] = units.get(line.sku, 0) + line.quantity
    return units


def _returned_above_delivered(o: Order | None) -> dict[str, tuple[int, int]]:
    """SKU -> (returning, delivered) where more comes back than was delivered, once that is
    settled: the order fully shipped and none of its parcels still on its way (a delivery
    read after the return, on another topic, would otherwise look like a return too many)."""
    if o is None or not o.returns or not o.shipments or o.status not in SHIPPED_OR_LATER:
        return {}
    if any(s.state == ShipmentState.SHIPPED for s in o.shipments):
        return {}
    if any(line.shipped_qty < line.quantity for line in o.lines):
        return {}
    delivered = {line.sku: line.delivered_qty for line in o.lines}
    return {
        sku: (units, delivered.get(sku, 0)) for sku, units in _returning(o).items() if units > delivered.get(sku, 0)
    }


def _flag_returns_above_delivered(tx: _Tx) -> None:
    """An ANOMALY naming the order, SKU and quantities when a message makes the units coming
    back exceed the units delivered (the stock moves anyway: physical truth)."""
    before = _returned_above_delivered(tx.before)
    for sku, (units, delivered) in _returned_above_delivered(tx.order).items():
        if sku not in before or before[sku][0] - before[sku][1] < units - delivered:
            tx.anomaly(
                f"order {tx.o.order_no}: {units} units of {sku} returned or requested back, {delivered} delivered",
                sku,
                units - delivered,
            )


# Each handler takes the one message class it is keyed by, which a dict's value type cannot
# say: hence one dict-item ignore per entry (apply_order looks them up by exact type).
_HANDLERS: dict[type[BaseModel], Callable[[_Tx, BaseModel], None]] = {
    OrderCreated: _created,  # type: ignore[dict-item]
    ReservationUpdated: _reservation_updated,  # type: ignore[dict-item]
    OrderPaid: _paid,  # type: ignore[dict-item]
    ReservationExpiryDue: _expiry_due,  # type: ignore[dict-item]
    OrderCancelled: _cancelled,  # type: ignore[dict-item]
    OrderShipped: _shipped,  # type: ignore[dict-item]
    PickedUp: _tracked,  # type: ignore[dict-item]
    InTransit: _tracked,  # type: ignore[dict-item]
    OutForDelivery: _tracked,  # type: ignore[dict-item]
    Delivered: _delivered,  # type: ignore[dict-item]
    DeliveryFailed: _delivery_failed,  # type: ignore[dict-item]
    ReturnRequested: _return_requested,  # type: ignore[dict-item]
    ReturnPickedUp: _return_picked_up,  # type: ignore[dict-item]
    ReturnInspected: _return_inspected,  # type: ignore[dict-item]
}
ORDER_MESSAGES = tuple(_HANDLERS)


_DEFAULT_POLICY = CorePolicy()


def apply_order(
    view: OrderView, message: BaseModel, policy: CorePolicy = _DEFAULT_POLICY, *, by_receipt: bool = True
) -> OrderOutcome:
    """Fold one order-scoped message into its order. A message already applied (same id)
    changes nothing and re-emits what it emitted the first time. Receipts are kept
    ``policy.receipt_retention_days`` of the partition's event time: a message with no
    receipt that occurred before the horizon is ANOMALY and changes nothing (it may have been
    applied already) - except an expiry tick, judged on its order, which then keeps no
    receipt; one applied prunes what the horizon passed (tables/retention.py).
    ``by_receipt=False``: the caller applies the message once by other means (an envelope's
    sequence number: streams/envelopes.py); no receipt is read or kept, nothing is pruned."""
    order_no: str = message.order_no  # type: ignore[attr-defined]  # every order message has one
    tx = _Tx(view.order(order_no), message)
    if not by_receipt:
        return _apply_once(tx, view, message)
    # Input events are checked for content (an id reused for another event); the core's own
    # messages (reservation answers, expiry ticks) have ids derived from their content.
    content = "" if isinstance(message, (ReservationUpdated, ReservationExpiryDue)) else fingerprint(message)
    seen = view.receipt(tx.message_id)
    if seen is not None:
        if seen.fingerprint and content and seen.fingerprint != content:
            # Its own alert id: the first message's alerts already use <id>|ANOMALY|<n>.
            tx.anomaly(
                f"event id {tx.message_id} reused for another {tx.message_type}: ignored",
                alert_id=f"{tx.message_id}|reused|{content}",
            )
            return OrderOutcome(order_no, None, None, tuple(tx.events), duplicate=True)
        return OrderOutcome(order_no, None, None, seen.events, duplicate=True)
    clock, hour = None, None
    if policy.receipt_retention_days is not None:
        clock, hour = view.clock(ORDERS), hour_of(tx.occurred_at)
    limit = horizon(clock, policy)
    if limit is not None and hour is not None and hour < limit:
        if type(message) is not ReservationExpiryDue:
            tx.anomaly(
                beyond(f"{tx.message_type} {tx.message_id}", tx.occurred_at, limit, policy),
                alert_id=f"{tx.message_id}|beyond-retention",
            )
            return OrderOutcome(order_no, None, None, tuple(tx.events), duplicate=True)
        tx.late = True
    tx.view, tx.policy, tx.clock, tx.hour = view, policy, clock, hour
    status: OrderStatus | str | None = tx.order.status if tx.order is not None else None
    if tx.order is not None and not tx.order.known and tx.message_type == "OrderCreated":
        status = PLACEHOLDER
    if status is None and status not in LIFECYCLE[tx.message_type]:
        # A message that overtook its order (topics interleave; a replay can reorder them):
        # alert, but keep no receipt, so that once the order exists its redelivery is applied.
        tx.anomaly(f"{tx.message_type} rejected: no such order {order_no} yet (applied if redelivered)")
        return tx.finish(keep_receipt=False)
    if status not in LIFECYCLE[tx.message_type]:
        what = "no such order" if status is None else f"order is {status}"
        if tx.message_type == "OrderCreated":
            what = "order already exists"
        tx.anomaly(f"{tx.message_type} rejected: {what}")
        return tx.finish(content)
    return _transition(tx, message, content)


def _apply_once(tx: _Tx, view: OrderView, message: BaseModel) -> OrderOutcome:
    """``apply_order`` for a message applied once by its envelope: no receipt, no retention."""
    tx.view = view
    status: OrderStatus | str | None = tx.order.status if tx.order is not None else None
    if status not in LIFECYCLE[tx.message_type]:
        what = "no such order" if status is None else f"order is {status}"
        tx.anomaly(f"{tx.message_type} rejected: {what}")
        return tx.finish(keep_receipt=False)
    return _transition(tx, message, "", keep_receipt=False)


def _transition(tx: _Tx, message: BaseModel, content: str, keep_receipt: bool = True) -> OrderOutcome:
    _HANDLERS[type(message)](tx, message)
    if tx.order is not None and tx.order.returns:
        _flag_returns_above_delivered(tx)
    return tx.finish(content, keep_receipt=keep_receipt)
