"""Output event contracts: what the inventory center tells the OMS, WMS, TMS and ERP.

Every output carries a deterministic ``eventId`` and a per-key ``version`` where a key has a
history, so that consumers can drop the duplicates that at-least-once delivery may bring.
The core builds these with ``model_construct`` (it is trusted); consumers validate.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from schemas.base import Contract, DerivedId, DocumentNo, ShortText, Sku, Timestamp, WarehouseCode
from schemas.inputs import Consignee, OrderType, StockLine, TimeRequirement


class InventoryLevel(Contract):
    """The seed's inventory data standard (库存数据标准)."""

    sku: Sku = Field(description="Stock keeping unit.")
    warehouse_code: WarehouseCode = Field(description="Warehouse.")
    available_qty: int = Field(description="onHandQty - reservedQty: what can be promised now.")
    reserved_qty: int = Field(description="Units pre-allocated to open orders, in the warehouse.")
    in_transit_qty: int = Field(description="Inbound units announced, not yet received.")
    total_qty: int = Field(description="availableQty + reservedQty + inTransitQty.")


class InventoryChanged(InventoryLevel):
    """The whole position after a change (compacted topic, keyed sku|warehouseCode)."""

    event_id: DerivedId = Field(description="Deterministic: sku|warehouseCode|v<version>.")
    on_hand_qty: int = Field(description="Sellable units physically in the warehouse.")
    presold_qty: int = Field(description="Part of inTransitQty promised to PRESALE orders.")
    outbound_qty: int = Field(description="Shipped units not yet signed for.")
    damaged_qty: int = Field(description="Units in the warehouse that cannot be sold.")
    version: int = Field(description="Per-position version, +1 on every change.")
    cause_event_type: str = Field(description="Type of the input event that caused the change.")
    cause_event_id: str = Field(description="Id of the input event that caused the change.")
    occurred_at: Timestamp = Field(description="When the causing event happened.")
    updated_at: Timestamp | None = Field(
        default=None,
        description="The position's updatedAt: the newest occurredAt among the events that changed it, so never "
        "earlier than the previous version's (occurredAt is this change's own event; they differ when "
        "events are applied out of event-time order). Null in records written before it was added.",
    )


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    RESERVED = "RESERVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    OUTBOUND_REQUESTED = "OUTBOUND_REQUESTED"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    RETURN_REQUESTED = "RETURN_REQUESTED"
    PARTIALLY_RETURNED = "PARTIALLY_RETURNED"
    RETURNED = "RETURNED"


class WarehouseAllocation(Contract):
    """One part of an order line split across warehouses: the units reserved at one of them."""

    warehouse_code: WarehouseCode = Field(description="Warehouse holding this part.")
    reserved_qty: int = Field(description="Units of the line reserved there.")


class OrderLineAllocation(Contract):
    sku: Sku = Field(description="Stock keeping unit.")
    quantity: int = Field(description="Units ordered.")
    warehouse_code: WarehouseCode | None = Field(
        description="Allocated warehouse, if any (split line: the primary one, shipping what the splits do not)."
    )
    reserved_qty: int = Field(description="Units reserved, over every warehouse of the line.")
    presold_qty: int = Field(description="Units promised from inbound supply (PRESALE).")
    shipped_qty: int = Field(description="Units shipped.")
    delivered_qty: int = Field(description="Units signed for.")
    returned_qty: int = Field(description="Units returned and inspected.")
    short_qty: int = Field(0, description="Promised units whose inbound supply failed, not yet served.")
    splits: list[WarehouseAllocation] = Field(
        default_factory=list,
        description="A line no single warehouse could fill: its parts at warehouses other than warehouseCode.",
    )


class OrderStatusChanged(Contract):
    """For the OMS: an order's new status (keyed by orderNo). Also sent with the status
    unchanged (``previousStatus`` = ``status``) when a line becomes short of promised supply
    and when it recovers: the reason says which."""

    event_id: DerivedId = Field(description="Deterministic: orderNo|v<version>.")
    order_no: DocumentNo = Field(description="Order.")
    status: OrderStatus = Field(description="New status.")
    previous_status: OrderStatus | None = Field(description="Status before; null when new.")
    reason: ShortText = Field(description="Why, in words (e.g. the short SKUs).")
    lines: list[OrderLineAllocation] = Field(description="Per-line allocation.")
    version: int = Field(description="Per-order version, +1 on every change.")
    cause_event_type: str = Field(description="Type of the message that caused the change.")
    cause_event_id: str = Field(description="Id of the message that caused the change.")
    occurred_at: Timestamp = Field(description="When the causing event happened.")


class OutboundInstruction(Contract):
    """For the WMS (seed step 4): pick and ship these lines from this warehouse."""

    event_id: DerivedId = Field(description="Deterministic: orderNo|warehouseCode|outbound.")
    instruction_no: DocumentNo = Field(description="orderNo-warehouseCode.")
    order_no: DocumentNo = Field(description="Order.")
    warehouse_code: WarehouseCode = Field(description="Warehouse to ship from.")
    order_type: OrderType = Field(description="NORMAL, PRESALE or GIFT.")
    consignee: Consignee = Field(description="Who receives the goods.")
    time_requirement: TimeRequirement = Field(description="STANDARD, EXPRESS or URGENT.")
    lines: list[StockLine] = Field(description="Units to pick.")
    occurred_at: Timestamp = Field(description="When the order became ready to ship.")


class OutboundCancellation(Contract):
    """For the WMS: the order of an OutboundInstruction was cancelled - do not ship it, and
    intercept it if it is being picked. Sent on the instructions' topic under the same key,
    so it follows its instruction. A parcel that leaves anyway is still applied when its
    OrderShipped is read (physical truth)."""

    event_id: DerivedId = Field(description="Deterministic: orderNo|warehouseCode|outbound-cancelled.")
    instruction_no: DocumentNo = Field(description="The instruction recalled (orderNo-warehouseCode).")
    order_no: DocumentNo = Field(description="Order cancelled.")
    warehouse_code: WarehouseCode = Field(description="Warehouse that was told to ship.")
    lines: list[StockLine] = Field(description="Units not to ship: the instruction's lines.")
    reason: ShortText = Field(description="Why the order was cancelled.")
    cause_event_type: str = Field(description="Type of the input event that cancelled the order.")
    cause_event_id: str = Field(description="Id of the input event that cancelled the order.")
    occurred_at: Timestamp = Field(description="When the order was cancelled.")


class StockBucket(StrEnum):
    ON_HAND = "ON_HAND"
    IN_TRANSIT = "IN_TRANSIT"
    OUTBOUND = "OUTBOUND"
    DAMAGED = "DAMAGED"
    DELIVERED = "DELIVERED"


class MovementType(StrEnum):
    INBOUND_ANNOUNCED = "INBOUND_ANNOUNCED"
    INBOUND_CANCELLED = "INBOUND_CANCELLED"
    RECEIVED = "RECEIVED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    RETURN_EXPECTED = "RETURN_EXPECTED"
    RETURN_INSPECTED = "RETURN_INSPECTED"
    ADJUSTED = "ADJUSTED"
    RECONCILED = "RECONCILED"
    TRANSFER_OUT = "TRANSFER_OUT"
    TRANSFER_IN = "TRANSFER_IN"
    DISPOSED = "DISPOSED"


class InventoryLedgerEntry(Contract):
    """For ERP: one signed movement of units in one bucket (append-only)."""

    entry_id: DerivedId = Field(description="Deterministic: commandId|warehouseCode|bucket.")
    sku: Sku = Field(description="Stock keeping unit.")
    warehouse_code: WarehouseCode = Field(description="Warehouse.")
    bucket: StockBucket = Field(description="Which quantity moved.")
    movement_type: MovementType = Field(description="What kind of movement.")
    quantity: int = Field(description="Signed units (+ in, - out).")
    document_type: str = Field(description="Kind of document (order, ASN, transfer, ...).")
    document_no: str = Field(description="Document number.")
    cause_event_id: str = Field(description="Id of the input event.")
    occurred_at: Timestamp = Field(description="When it happened.")


class AlertType(StrEnum):
    LOW_STOCK = "LOW_STOCK"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    SHORTAGE = "SHORTAGE"
    RECONCILIATION_DRIFT = "RECONCILIATION_DRIFT"
    ANOMALY = "ANOMALY"
    DUPLICATE_DOCUMENT = "DUPLICATE_DOCUMENT"  # a document re-sent under a new event id: applied once


class InventoryAlert(Contract):
    alert_id: DerivedId = Field(description="Deterministic: cause message id|type|sequence.")
    alert_type: AlertType = Field(description="What is wrong.")
    sku: Sku | None = Field(description="SKU concerned, if any.")
    warehouse_code: WarehouseCode | None = Field(description="Warehouse concerned, if any.")
    order_no: DocumentNo | None = Field(description="Order concerned, if any.")
    quantity: int = Field(description="Size of the problem in units (0 if not applicable).")
    orders_at_risk: Annotated[list[str], Field(max_length=100)] = Field(
        description="Orders whose reservation is at risk (SHORTAGE), at most 100."
    )
    message: ShortText = Field(description="What happened, in words.")
    cause_event_type: str = Field(description="Type of the input event.")
    cause_event_id: str = Field(description="Id of the input event.")
    occurred_at: Timestamp = Field(description="When it happened.")


class DeadLetter(Contract):
    """A record that could not be decoded, validated or applied, with where it came from."""

    source_topic: str = Field(description="Topic the record was read from.")
    source_partition: int = Field(description="Partition.")
    source_offset: int = Field(description="Offset.")
    key: bytes | None = Field(description="Raw key bytes (the first dead_letter_excerpt_bytes of them).")
    payload: bytes | None = Field(description="Raw value bytes (the first dead_letter_excerpt_bytes of them).")
    error_type: str = Field(description="Class of error: DECODE, VALIDATION, TOO_LARGE, PROCESSING, ...")
    error: Annotated[str, Field(max_length=4096)] = Field(description="What was wrong.")
    failed_at: Timestamp = Field(description="When the record was dead-lettered.")
    payload_size: int = Field(0, description="Size of the whole raw value in bytes (0: none).")
    payload_sha256: str | None = Field(None, description="SHA-256 of the whole raw value (hex), to find the record.")
    truncated: bool = Field(False, description="True when key or payload holds only an excerpt of the record's.")


OUTPUT_EVENTS: dict[str, type[Contract]] = {
    cls.__name__: cls
    for cls in (
        InventoryChanged,
        OrderStatusChanged,
        OutboundInstruction,
        OutboundCancellation,
        InventoryLedgerEntry,
        InventoryAlert,
        DeadLetter,
    )
}
