"""Internal messages between the two partitions of the core.

Input documents are split into per-SKU **commands** (imperative names) keyed by SKU, so that
every warehouse of one SKU lives in one partition: source selection and transfers stay local.
The SKU partition answers reservations with **ReservationUpdated** keyed by orderNo, which the
order partition folds into the order. Ids are deterministic (derived from the input event id)
so that a replayed message is recognised and applied once.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from schemas.base import Contract, DerivedId, DocumentNo, Sku, Timestamp, WarehouseCode
from schemas.inputs import AdjustmentReason, OrderType
from schemas.outputs import WarehouseAllocation


class StockCommand(Contract):
    """A command for one SKU's positions (topic key: sku)."""

    command_id: DerivedId = Field(description="Deterministic: <cause event id>|<sku>|<step>.")
    sku: Sku = Field(description="Stock keeping unit (the topic key).")
    occurred_at: Timestamp = Field(description="When the causing event happened.")
    cause_event_type: str = Field(description="Type of the input event.")
    cause_event_id: str = Field(description="Id of the input event.")


class ReserveStock(StockCommand):
    order_no: DocumentNo = Field(description="Order reserving.")
    order_type: OrderType = Field(description="PRESALE may reserve inbound supply.")
    quantity: int = Field(gt=0, description="Units to reserve.")
    warehouse_code: WarehouseCode | None = Field(description="Required warehouse, or null.")


class ReleaseStock(StockCommand):
    order_no: DocumentNo = Field(description="Order whose reservation of this SKU ends.")
    reserve_command_id: DerivedId | None = Field(
        None, description="The ReserveStock it ends: read before it, that reservation is never made."
    )


class ShipStock(StockCommand):
    order_no: DocumentNo = Field(description="Order shipped.")
    shipment_no: DocumentNo = Field(description="Shipment.")
    warehouse_code: WarehouseCode = Field(description="Shipping warehouse.")
    quantity: int = Field(gt=0, description="Units shipped.")
    order_known: bool = Field(description="False: a shipment for an order never seen.")


class DeliverStock(StockCommand):
    order_no: DocumentNo = Field(description="Order.")
    shipment_no: DocumentNo = Field(description="Shipment signed for.")
    warehouse_code: WarehouseCode = Field(description="Origin warehouse.")
    quantity: int = Field(gt=0, description="Units signed for.")


class ReturnUndelivered(StockCommand):
    order_no: DocumentNo = Field(description="Order.")
    shipment_no: DocumentNo = Field(description="Failed shipment; goods come back against it.")
    warehouse_code: WarehouseCode = Field(description="Origin warehouse.")
    quantity: int = Field(gt=0, description="Units coming back.")


class ExpectReturn(StockCommand):
    order_no: DocumentNo = Field(description="Order.")
    return_no: DocumentNo = Field(description="Return document.")
    warehouse_code: WarehouseCode = Field(description="Warehouse the return goes to.")
    quantity: int = Field(gt=0, description="Units coming back.")


class InspectReturn(StockCommand):
    order_no: DocumentNo = Field(description="Order.")
    return_no: DocumentNo = Field(description="Return document.")
    warehouse_code: WarehouseCode = Field(description="Inspecting warehouse.")
    sellable_qty: int = Field(ge=0, description="Units back on hand.")
    damaged_qty: int = Field(ge=0, description="Units damaged.")
    announced_warehouse_code: WarehouseCode | None = Field(
        None, description="Warehouse the return's pickup announced it to, when another: closed there."
    )


class AnnounceInbound(StockCommand):
    document_no: DocumentNo = Field(description="ASN number.")
    warehouse_code: WarehouseCode = Field(description="Receiving warehouse.")
    quantity: int = Field(gt=0, description="Units announced.")


class ReceiveStock(StockCommand):
    receipt_no: DocumentNo = Field(description="Receipt document.")
    document_no: DocumentNo | None = Field(
        description="Inbound document received against (ASN, transfer, failed shipment); null: blind."
    )
    warehouse_code: WarehouseCode = Field(description="Receiving warehouse.")
    sellable_qty: int = Field(ge=0, description="Units received sellable.")
    damaged_qty: int = Field(ge=0, description="Units received damaged.")
    closes_document: bool = Field(description="True: the rest of what was announced won't come.")
    is_transfer: bool = Field(description="True: the end of a transfer between warehouses.")


class AdjustStock(StockCommand):
    adjustment_no: DocumentNo = Field(description="Adjustment document.")
    warehouse_code: WarehouseCode = Field(description="Warehouse.")
    delta: int = Field(description="Signed change of on-hand units.")
    reason: AdjustmentReason = Field(description="Why.")


class DispatchTransfer(StockCommand):
    transfer_no: DocumentNo = Field(description="Transfer document.")
    from_warehouse_code: WarehouseCode = Field(description="Sending warehouse.")
    to_warehouse_code: WarehouseCode = Field(description="Receiving warehouse.")
    quantity: int = Field(gt=0, description="Units sent.")


class ReconcileStock(StockCommand):
    snapshot_id: DocumentNo = Field(description="Snapshot.")
    warehouse_code: WarehouseCode = Field(description="Warehouse counted.")
    counted_qty: int = Field(ge=0, description="Units counted.")
    counted_at: Timestamp = Field(description="When the count was taken.")


class DisposeDamaged(StockCommand):
    disposal_no: DocumentNo = Field(description="Disposal document.")
    warehouse_code: WarehouseCode = Field(description="Warehouse.")
    quantity: int = Field(gt=0, description="Damaged units written off.")


class SetReorderPoint(StockCommand):
    warehouse_code: WarehouseCode | None = Field(description="Warehouse; null: the SKU's default.")
    reorder_point: int = Field(ge=0, description="LOW_STOCK when availableQty falls below it.")


class ReservationStatus(StrEnum):
    RESERVED = "RESERVED"
    REJECTED = "REJECTED"
    RELEASED = "RELEASED"


class ReservationUpdated(Contract):
    """SKU partition -> order partition: the state of one order line's reservation."""

    result_id: DerivedId = Field(description="Deterministic: <command id>|result.")
    order_no: DocumentNo = Field(description="Order (the topic key).")
    sku: Sku = Field(description="Stock keeping unit.")
    status: ReservationStatus = Field(description="RESERVED, REJECTED or RELEASED.")
    warehouse_code: WarehouseCode | None = Field(description="Allocated warehouse (split line: the primary one).")
    reserved_qty: int = Field(description="Units reserved on hand, over every warehouse of the line.")
    presold_qty: int = Field(description="Units promised from inbound supply.")
    short_qty: int = Field(description="Promised units whose supply failed to arrive.")
    best_available_qty: int = Field(description="REJECTED: most any single warehouse could give.")
    occurred_at: Timestamp = Field(description="When the causing event happened.")
    cause_event_type: str = Field(description="Type of the input event.")
    cause_event_id: str = Field(description="Id of the input event.")
    splits: list[WarehouseAllocation] = Field(
        default_factory=list,
        description="A line no single warehouse could fill: its parts at warehouses other than warehouseCode, "
        "which holds the rest of reservedQty.",
    )
    seq: int = Field(
        0,
        description="The SKU partition's answer sequence: an answer older than one the order read "
        "(sent again after a crash) is ignored. 0: unknown.",
    )


class ReservationExpiryDue(Contract):
    """Timer -> order partition: an unpaid order's reservation may have expired."""

    event_id: DerivedId = Field(description="Deterministic: orderNo|expiry|<expiresAt>.")
    order_no: DocumentNo = Field(description="Order (the topic key).")
    due_at: Timestamp = Field(description="The reservationExpiresAt that came due.")
    occurred_at: Timestamp = Field(
        description="The due time (event time), never the wall clock: the release it causes happened then."
    )


class Envelope(Contract):
    """One transaction of a partition -> one partition of an internal topic: every command (or
    reservation answer) the transaction sends there. The receiver applies an envelope once,
    by the highest ``seq`` it applied from ``source`` (kept in its own state)."""

    source: str = Field(description="The sending partition: <table>|<partition>.")
    seq: int = Field(ge=1, description="The sending partition's transaction sequence: increasing, never reused.")
    items: list[bytes] = Field(description="The messages, each in the topic's framing, in the order applied.")


STOCK_COMMANDS: tuple[type[StockCommand], ...] = (
    ReserveStock,
    ReleaseStock,
    ShipStock,
    DeliverStock,
    ReturnUndelivered,
    ExpectReturn,
    InspectReturn,
    AnnounceInbound,
    ReceiveStock,
    AdjustStock,
    DispatchTransfer,
    ReconcileStock,
    DisposeDamaged,
    SetReorderPoint,
)
_INTERNAL_CLASSES: tuple[type[Contract], ...] = (*STOCK_COMMANDS, ReservationUpdated, ReservationExpiryDue, Envelope)
INTERNAL_MESSAGES: dict[str, type[Contract]] = {cls.__name__: cls for cls in _INTERNAL_CLASSES}
