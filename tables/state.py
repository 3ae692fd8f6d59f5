"""State records of the inventory core: small, frozen values.

Per-event state is kept small on purpose. A hot SKU's record (`SkuStock`, one position per
warehouse) never lists its open orders; each order line's reservation is its own record
(`Reservation`, keyed sku|orderNo), and so is each open inbound document
(`InboundExpectation`, keyed sku|warehouseCode|documentNo). A transition rewrites the SKU
record plus the one or two small records it touches.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TypedDict

from schemas.codec import register_records
from schemas.inputs import OrderType, TimeRequirement
from schemas.outputs import OrderStatus


@dataclass(frozen=True, slots=True)
class Position:
    """One SKU in one warehouse. All quantities are integers.

    ``on_hand_qty`` is signed: below 0 it is units that physically left (a shipment, a
    transfer, an adjustment) before the books saw them arrive (their receipt is on another
    topic and not read yet). The receipt settles it; until then ``availableQty`` is negative,
    so nothing can be reserved against units the books have not seen."""

    warehouse_code: str
    on_hand_qty: int = 0
    reserved_qty: int = 0
    in_transit_qty: int = 0
    presold_qty: int = 0
    outbound_qty: int = 0
    damaged_qty: int = 0
    delivered_qty: int = 0  # cumulative units signed for: the deduction ERP books
    version: int = 0
    updated_at: datetime | None = None
    # The countedAt of the last count applied: an on-hand movement that happened by then but
    # is read after the count (another topic) was counted already.
    counted_at: datetime | None = None
    # The on-hand movements applied that happened after ``counted_at``, in time order, at
    # most CorePolicy.count_history of them (tables/history.py packs them: the SKU record is
    # encoded on every change, so a list of records would cost more than the rest of it):
    # a count read late is netted against them. Every movement after ``history_since`` is
    # here (None: every movement since the first).
    movement_log: bytes = b""
    history_since: datetime | None = None
    # Damaged units the WMS disposed of before the books saw them arrive (a disposal read
    # before the return inspection that brought them): written off when they arrive.
    disposed_ahead_qty: int = 0
    # Units promised to open reservations here whose supply failed (the sum of their
    # short_qty): served first, first ordered first served, from the next units available.
    short_qty: int = 0
    # The planner's reorder point for this position (None: the SKU's, else the default), and
    # when it was set: the latest setting wins whatever order settings are read in.
    reorder_point: int | None = None
    reorder_point_at: datetime | None = None

    @property
    def available_qty(self) -> int:
        return self.on_hand_qty - self.reserved_qty

    @property
    def total_qty(self) -> int:
        return self.on_hand_qty + self.in_transit_qty

    def same_quantities(self, other: Position) -> bool:
        return (
            self.on_hand_qty == other.on_hand_qty
            and self.reserved_qty == other.reserved_qty
            and self.in_transit_qty == other.in_transit_qty
            and self.presold_qty == other.presold_qty
            and self.outbound_qty == other.outbound_qty
            and self.damaged_qty == other.damaged_qty
            and self.delivered_qty == other.delivered_qty
            and self.disposed_ahead_qty == other.disposed_ahead_qty
        )


class PositionChanges(TypedDict, total=False):
    """The fields of a ``Position`` that a transition may change (keyword arguments of
    ``evolve``), typed: every field but ``warehouse_code``, each optional."""

    on_hand_qty: int
    reserved_qty: int
    in_transit_qty: int
    presold_qty: int
    outbound_qty: int
    damaged_qty: int
    delivered_qty: int
    version: int
    updated_at: datetime | None
    counted_at: datetime | None
    movement_log: bytes
    history_since: datetime | None
    disposed_ahead_qty: int
    short_qty: int
    reorder_point: int | None
    reorder_point_at: datetime | None


@dataclass(frozen=True, slots=True)
class SkuStock:
    """Every warehouse position of one SKU (table key: sku). Warehouses are few."""

    sku: str
    positions: tuple[Position, ...] = ()
    reservation_seq: int = 0  # arrival order of reservations: first ordered, first served
    reorder_point: int | None = None  # the SKU's default for positions without their own
    reorder_point_at: datetime | None = None
    answer_seq: int = 0  # the last ReservationUpdated.seq this SKU's partition sent

    def position(self, warehouse_code: str) -> Position | None:
        for position in self.positions:
            if position.warehouse_code == warehouse_code:
                return position
        return None


@dataclass(frozen=True, slots=True)
class Allocation:
    """Units of one order line held on hand at one warehouse: one part of a line split
    across warehouses because no single warehouse could fill it."""

    warehouse_code: str
    reserved_qty: int


def _held_at(warehouse_code: str, primary_code: str | None, primary_qty: int, splits: tuple[Allocation, ...]) -> int:
    """Units a line holds on hand at ``warehouse_code``: its split part there, else its
    primary part if that is the primary warehouse, else 0 (the one rule behind
    ``Reservation.held_at`` and ``OrderLine.held_at``)."""
    for part in splits:
        if part.warehouse_code == warehouse_code:
            return part.reserved_qty
    return primary_qty if warehouse_code == primary_code else 0


def _taken_at(warehouse_code: str, units: int, splits: tuple[Allocation, ...]) -> tuple[Allocation, ...] | None:
    """``splits`` with ``units`` fewer at ``warehouse_code`` (a part left empty is dropped),
    or None when no split part is there (the units are the primary's)."""
    if all(part.warehouse_code != warehouse_code for part in splits):
        return None
    kept = []
    for part in splits:
        if part.warehouse_code == warehouse_code:
            part = Allocation(warehouse_code, part.reserved_qty - units)
        if part.reserved_qty:
            kept.append(part)
    return tuple(kept)


@dataclass(frozen=True, slots=True)
class Reservation:
    """One order line's hold on one SKU (table key: sku|orderNo).

    ``warehouse_code`` / ``reserved_qty`` are the primary part: the warehouse named or
    chosen, and the units held on hand there. A NORMAL or GIFT line no single warehouse
    could fill also holds ``splits``: its parts at other warehouses (the primary's part is
    the largest when reserved; a part emptied by a shipment is dropped). Presold and short
    units are the primary's only: PRESALE lines and lines naming a warehouse are never
    split."""

    sku: str
    order_no: str
    warehouse_code: str
    order_type: OrderType
    reserved_qty: int
    presold_qty: int
    short_qty: int
    seq: int
    splits: tuple[Allocation, ...] = ()

    @property
    def total_reserved_qty(self) -> int:
        """Units held on hand over every warehouse: the primary part and the splits."""
        return self.reserved_qty + sum(part.reserved_qty for part in self.splits)

    def parts(self) -> tuple[Allocation, ...]:
        """Every warehouse's on-hand part, the primary first (even when it is 0)."""
        return (Allocation(self.warehouse_code, self.reserved_qty), *self.splits)

    def held_at(self, warehouse_code: str) -> int:
        """Units this reservation holds on hand at ``warehouse_code`` (0 where it holds none)."""
        return _held_at(warehouse_code, self.warehouse_code, self.reserved_qty, self.splits)

    def taken_at(self, warehouse_code: str, units: int) -> Reservation:
        """This reservation with ``units`` (at most ``held_at(warehouse_code)``) fewer held
        there: a shipment from that warehouse consumed them."""
        splits = _taken_at(warehouse_code, units, self.splits)
        if splits is None:
            return replace(self, reserved_qty=self.reserved_qty - units)
        return replace(self, splits=splits)


class ExpectationKind(StrEnum):
    PURCHASE = "PURCHASE"  # an ASN from a supplier
    TRANSFER = "TRANSFER"  # our units moving between warehouses
    FAILED_DELIVERY = "FAILED_DELIVERY"  # our units coming back from a failed delivery
    RETURN = "RETURN"  # a customer's return


@dataclass(frozen=True, slots=True)
class InboundExpectation:
    """Units announced into a warehouse under one document and not yet received
    (table key: sku|warehouseCode|documentNo). A negative outstanding is a credit: units
    received before they were announced. A closed document (a receipt said nothing more
    will come) puts nothing more in transit: an announcement read after its closing receipt
    cancels what it announces beyond the credit."""

    sku: str
    warehouse_code: str
    document_no: str
    kind: ExpectationKind
    outstanding_qty: int
    closed: bool = False
    # The newest occurredAt of the commands that wrote it: a settled document (outstanding
    # <= 0) is forgotten once its partition's receipt horizon passes it (tables/retention.py).
    updated_at: datetime | None = None


class LineState(StrEnum):
    REQUESTED = "REQUESTED"  # ReserveStock sent, no answer yet
    RESERVED = "RESERVED"
    REJECTED = "REJECTED"
    RELEASED = "RELEASED"
    UNRESERVED = "UNRESERVED"  # shipped without a reservation (unknown order)


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line of an order and what its reservation holds. ``reserved_qty`` is the total
    held on hand; a line split across warehouses lists its parts at warehouses other than
    ``warehouse_code`` in ``splits``, and ``warehouse_code`` holds the rest."""

    sku: str
    quantity: int
    requested_warehouse: str | None = None
    state: LineState = LineState.REQUESTED
    warehouse_code: str | None = None
    reserved_qty: int = 0
    presold_qty: int = 0
    short_qty: int = 0
    best_available_qty: int = 0
    shipped_qty: int = 0
    delivered_qty: int = 0
    returned_qty: int = 0
    reserve_command_id: str = ""  # the last ReserveStock sent for the line: its release names it
    answer_seq: int = 0  # the seq of the last reservation answer read for the line
    splits: tuple[Allocation, ...] = ()

    def held_at(self, warehouse_code: str) -> int:
        """Units this line's reservation holds on hand at ``warehouse_code``."""
        primary = self.reserved_qty - sum(part.reserved_qty for part in self.splits)
        return _held_at(warehouse_code, self.warehouse_code, primary, self.splits)

    def taken_at(self, warehouse_code: str, units: int) -> OrderLine:
        """This line with ``units`` (at most ``held_at(warehouse_code)``) fewer held there."""
        splits = _taken_at(warehouse_code, units, self.splits)
        return replace(self, reserved_qty=self.reserved_qty - units, splits=self.splits if splits is None else splits)

    def shares(self) -> tuple[Allocation, ...]:
        """Every warehouse's share of the line's quantity, the primary first: the splits'
        parts, and the rest of the quantity at ``warehouse_code`` (what its
        OutboundInstructions ask each warehouse for)."""
        assert self.warehouse_code is not None
        rest = self.quantity - sum(part.reserved_qty for part in self.splits)
        return (Allocation(self.warehouse_code, rest), *self.splits)


class ShipmentState(StrEnum):
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class ShipmentLine:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Shipment:
    shipment_no: str
    warehouse_code: str
    waybill_no: str
    lines: tuple[ShipmentLine, ...]
    state: ShipmentState = ShipmentState.SHIPPED


@dataclass(frozen=True, slots=True)
class CustomerReturn:
    return_no: str
    lines: tuple[ShipmentLine, ...]
    warehouse_code: str | None = None  # known once picked up
    picked_up: bool = False
    inspected: bool = False


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    what: str  # a status, or a tracking event (PickedUp, InTransit, ...)
    cause_event_id: str


MAX_TIMELINE = 64


@dataclass(frozen=True, slots=True)
class Order:
    """One order (table key: orderNo). Bounded by the order's lifecycle, not by traffic."""

    order_no: str
    status: OrderStatus
    order_type: OrderType = OrderType.NORMAL
    known: bool = True  # False: first seen through a shipment or return, never created
    lines: tuple[OrderLine, ...] = ()
    consignee_name: str = ""
    consignee_phone: str = ""
    consignee_address: str = ""
    time_requirement: TimeRequirement = TimeRequirement.STANDARD
    paid: bool = True
    reservation_expires_at: datetime | None = None
    outbound_issued: bool = False
    shipments: tuple[Shipment, ...] = ()
    returns: tuple[CustomerReturn, ...] = ()
    version: int = 0
    created_at: datetime | None = None
    timeline: tuple[TimelineEntry, ...] = field(default=())

    def line(self, sku: str) -> OrderLine | None:
        for line in self.lines:
            if line.sku == sku:
                return line
        return None

    def shipment(self, shipment_no: str) -> Shipment | None:
        for shipment in self.shipments:
            if shipment.shipment_no == shipment_no:
                return shipment
        return None

    def customer_return(self, return_no: str) -> CustomerReturn | None:
        for customer_return in self.returns:
            if customer_return.return_no == return_no:
                return customer_return
        return None


@dataclass(frozen=True, slots=True)
class Receipt:
    """What processing one message emitted, kept so that a replay re-emits it and changes
    nothing (table key: message id). A stock document's receipt is kept under its document
    key too (``document_key``), so that the document re-sent under a new event id is
    applied once. ``fingerprint`` is the message's (or document's) content: the same id
    with other content is an ANOMALY, not a duplicate. ``event_id``: the input event."""

    message_id: str
    events: tuple[object, ...]
    fingerprint: str = ""
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    """A receipt as kept in a table: each emitted event in its own wire encoding."""

    message_id: str
    events: tuple[bytes, ...]
    fingerprint: str = ""
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class PartitionClock:
    """A partition's event time, for receipt retention (table key ``c|``; see
    tables/retention.py). Hours are UTC and whole: the clock is rewritten once an hour."""

    # The hour of the newest occurredAt among the messages the partition kept a receipt of.
    newest_hour: datetime | None = None
    # Every index entry of an hour before this one was pruned (None: nothing pruned yet).
    pruned_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Write:
    """One key of a table set to a value, or deleted (value None)."""

    key: bytes
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Transaction:
    """Everything a run of messages of one partition wrote and emitted (the agents apply
    messages in batches), recorded before it is applied (a redo record): after a crash the
    last one of a partition is applied again, which completes a transaction cut short (every
    write is idempotent). ``message_id`` names the run's last message."""

    message_id: str
    writes: tuple[Write, ...]
    outputs: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record a transaction sends: its topic, key, value, and partition (-1: by its key)."""

    topic: str
    key: bytes
    value: bytes
    partition: int = -1


@dataclass(frozen=True, slots=True)
class Outbox:
    """What transaction ``seq`` of a partition sends, kept (table key ``q|<seq>``) until the
    broker has acknowledged all of it: after a crash every entry still kept is sent again, in
    order, before anything new (streams/checkpoint.py)."""

    seq: int
    records: tuple[OutRecord, ...]


STATE_RECORDS = (
    Position,
    SkuStock,
    Allocation,
    Reservation,
    InboundExpectation,
    OrderLine,
    ShipmentLine,
    Shipment,
    CustomerReturn,
    TimelineEntry,
    Order,
    StoredReceipt,
    PartitionClock,
    Write,
    Transaction,
    OutRecord,
    Outbox,
)
register_records(STATE_RECORDS)  # the default codec encodes and decodes them (schemas/codec.py)
