"""Input event contracts of the three source streams: orders (OMS), shipments (WMS/TMS) and
stock movements (WMS).

Each class is one Avro record (``schemas/avro/<Name>.avsc``); the class name is the
``eventType`` of a JSON line. Quantities are integers > 0, codes are bounded and non-empty,
money is decimal, lists and strings are bounded.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from schemas.base import (
    MAX_LINES,
    MAX_QTY,
    Contract,
    DocumentNo,
    Event,
    Money,
    NonNegativeQty,
    Quantity,
    ShortText,
    Sku,
    SourceSystem,
    Timestamp,
    WarehouseCode,
)


class OrderType(StrEnum):
    NORMAL = "NORMAL"
    PRESALE = "PRESALE"
    GIFT = "GIFT"


class TimeRequirement(StrEnum):
    STANDARD = "STANDARD"
    EXPRESS = "EXPRESS"
    URGENT = "URGENT"


class AdjustmentReason(StrEnum):
    CYCLE_COUNT = "CYCLE_COUNT"
    DAMAGE = "DAMAGE"
    LOSS = "LOSS"
    FOUND = "FOUND"


class Disposition(StrEnum):
    SELLABLE = "SELLABLE"
    DAMAGED = "DAMAGED"


class InboundType(StrEnum):
    PURCHASE = "PURCHASE"
    TRANSFER = "TRANSFER"
    RETURN = "RETURN"


# --- value objects ----------------------------------------------------------------------


class Consignee(Contract):
    name: Annotated[str, Field(min_length=1, max_length=128)] = Field(description="Recipient name.")
    phone: Annotated[str, Field(min_length=3, max_length=32, pattern=r"^[0-9+\- ()]+$")] = Field(
        description="Recipient phone."
    )
    address: Annotated[str, Field(min_length=1, max_length=512)] = Field(description="Delivery address.")


class OrderItem(Contract):
    sku: Sku = Field(description="Stock keeping unit.")
    quantity: Quantity = Field(description="Units ordered.")
    price: Money = Field(description="Unit price.")
    warehouse_code: WarehouseCode | None = Field(
        None, description="Ship from this warehouse; absent: the inventory center chooses."
    )


class StockLine(Contract):
    sku: Sku = Field(description="Stock keeping unit.")
    quantity: Quantity = Field(description="Units.")


class ReceivedLine(Contract):
    sku: Sku = Field(description="Stock keeping unit.")
    sellable_qty: NonNegativeQty = Field(0, description="Units received in sellable condition.")
    damaged_qty: NonNegativeQty = Field(0, description="Units received damaged.")

    @model_validator(mode="after")
    def _something_received(self) -> Self:
        if self.sellable_qty + self.damaged_qty == 0:
            raise ValueError("sellableQty + damagedQty must be > 0")
        return self


class InspectedLine(Contract):
    sku: Sku = Field(description="Stock keeping unit.")
    quantity: Quantity = Field(description="Units inspected with this disposition.")
    disposition: Disposition = Field(description="SELLABLE goes on hand, DAMAGED to damaged.")


class CountedLine(Contract):
    sku: Sku = Field(description="Stock keeping unit.")
    counted_qty: NonNegativeQty = Field(description="Sellable units physically counted (reserved ones included).")


Lines = Annotated[list[StockLine], Field(min_length=1, max_length=MAX_LINES)]


def _unique_skus(skus: list[str], what: str) -> None:
    if len(set(skus)) != len(skus):
        raise ValueError(f"{what}: each sku may appear once")


# --- orders topic (OMS), keyed by orderNo -------------------------------------------------


class OmsEvent(Event):
    source: SourceSystem = Field(SourceSystem.OMS, description="The system that published it.")
    order_no: DocumentNo = Field(description="Order number (the topic key).")


class OrderCreated(OmsEvent):
    """The seed's order data standard, plus optional warehouse and reservation expiry."""

    order_type: OrderType = Field(description="NORMAL, PRESALE or GIFT.")
    consignee: Consignee = Field(description="Who receives the goods.")
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=MAX_LINES)] = Field(description="Order lines.")
    total_amount: Money = Field(description="Order total.")
    time_requirement: TimeRequirement = Field(description="STANDARD, EXPRESS or URGENT.")
    warehouse_code: WarehouseCode | None = Field(
        None, description="Ship every line from this warehouse unless the line names one."
    )
    reservation_expires_at: Timestamp | None = Field(
        None, description="Unpaid order: release the reservation if not paid by then."
    )

    @field_validator("items")
    @classmethod
    def _one_line_per_sku(cls, value: list[Any]) -> list[Any]:
        _unique_skus([x.sku for x in value], "items")
        return value


class OrderPaid(OmsEvent):
    """The customer paid: a reserved order may now be shipped."""


class OrderCancelled(OmsEvent):
    reason: ShortText = Field("", description="Why the order was cancelled.")


class ReturnRequested(OmsEvent):
    return_no: DocumentNo = Field(description="Return document number.")
    items: Lines = Field(description="Units the customer sends back.")
    reason: ShortText = Field("", description="Why the goods come back.")


# --- shipments topic (WMS, TMS), keyed by orderNo ----------------------------------------


class OrderShipped(Event):
    """WMS: the parcel left the warehouse."""

    source: SourceSystem = Field(SourceSystem.WMS, description="The system that published it.")
    shipment_no: DocumentNo = Field(description="Shipment number.")
    order_no: DocumentNo = Field(description="Order shipped (the topic key).")
    warehouse_code: WarehouseCode = Field(description="Warehouse that shipped.")
    lines: Lines = Field(description="Units in the parcel.")
    waybill_no: DocumentNo = Field(description="Carrier waybill.")
    carrier: Annotated[str, Field(min_length=1, max_length=64)] = Field(description="Carrier.")

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, value: list[Any]) -> list[Any]:
        _unique_skus([x.sku for x in value], "lines")
        return value


class TrackingEvent(Event):
    """TMS tracking of one shipment."""

    source: SourceSystem = Field(SourceSystem.TMS, description="The system that published it.")
    order_no: DocumentNo = Field(description="Order (the topic key).")
    shipment_no: DocumentNo = Field(description="Shipment tracked.")
    waybill_no: DocumentNo = Field(description="Carrier waybill.")
    location: ShortText = Field("", description="Where the parcel is.")


class PickedUp(TrackingEvent):
    """The carrier collected the parcel (seed step 7)."""


class InTransit(TrackingEvent):
    """The parcel is moving between hubs."""


class OutForDelivery(TrackingEvent):
    """The parcel is on its last leg."""


class Delivered(TrackingEvent):
    """Signed for: the deduction is final (seed step 9)."""

    signed_by: ShortText = Field("", description="Who signed.")


class DeliveryFailed(TrackingEvent):
    """Refused or undeliverable: the goods go back to the origin warehouse."""

    reason: ShortText = Field("", description="Why it failed.")


class ReturnPickedUp(Event):
    """Reverse flow: the carrier collected the customer's return."""

    source: SourceSystem = Field(SourceSystem.TMS, description="The system that published it.")
    order_no: DocumentNo = Field(description="Order returned (the topic key).")
    return_no: DocumentNo = Field(description="Return document number.")
    waybill_no: DocumentNo = Field(description="Carrier waybill of the return.")
    warehouse_code: WarehouseCode = Field(description="Warehouse the return goes to.")


# --- stock movements topic (WMS), keyed by document number -------------------------------


class WmsEvent(Event):
    source: SourceSystem = Field(SourceSystem.WMS, description="The system that published it.")


class InboundAnnounced(WmsEvent):
    """ASN: units on their way into a warehouse."""

    asn_no: DocumentNo = Field(description="Advance shipping notice number (the topic key).")
    warehouse_code: WarehouseCode = Field(description="Receiving warehouse.")
    inbound_type: InboundType = Field(InboundType.PURCHASE, description="Why units come in.")
    lines: Lines = Field(description="Units announced.")

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, value: list[Any]) -> list[Any]:
        _unique_skus([x.sku for x in value], "lines")
        return value


class GoodsReceived(WmsEvent):
    """Units arrived, against an ASN or blind."""

    receipt_no: DocumentNo = Field(description="Receipt number (the topic key).")
    asn_no: DocumentNo | None = Field(None, description="ASN received against; absent: blind.")
    warehouse_code: WarehouseCode = Field(description="Receiving warehouse.")
    lines: Annotated[list[ReceivedLine], Field(min_length=1, max_length=MAX_LINES)] = Field(
        description="Units received."
    )
    closes_asn: bool = Field(True, description="True: what was announced and not received will not come.")

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, value: list[Any]) -> list[Any]:
        _unique_skus([x.sku for x in value], "lines")
        return value


class ReturnInspected(WmsEvent):
    """Reverse flow: the warehouse inspected a return."""

    return_no: DocumentNo = Field(description="Return document number (the topic key).")
    order_no: DocumentNo = Field(description="Order the return belongs to.")
    warehouse_code: WarehouseCode = Field(description="Inspecting warehouse.")
    lines: Annotated[list[InspectedLine], Field(min_length=1, max_length=MAX_LINES)] = Field(
        description="Units inspected."
    )


class StockAdjusted(WmsEvent):
    adjustment_no: DocumentNo = Field(description="Adjustment number (the topic key).")
    warehouse_code: WarehouseCode = Field(description="Warehouse adjusted.")
    sku: Sku = Field(description="Stock keeping unit.")
    delta: Annotated[int, Field(strict=True, ge=-MAX_QTY, le=MAX_QTY)] = Field(
        description="Signed change of on-hand units, non-zero."
    )
    reason: AdjustmentReason = Field(description="CYCLE_COUNT, DAMAGE, LOSS or FOUND.")

    @field_validator("delta")
    @classmethod
    def _non_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("delta must be non-zero")
        return value


class TransferDispatched(WmsEvent):
    transfer_no: DocumentNo = Field(description="Transfer number (the topic key).")
    from_warehouse_code: WarehouseCode = Field(description="Sending warehouse.")
    to_warehouse_code: WarehouseCode = Field(description="Receiving warehouse.")
    lines: Lines = Field(description="Units sent.")

    @field_validator("to_warehouse_code")
    @classmethod
    def _distinct_warehouses(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("from_warehouse_code"):
            raise ValueError("toWarehouseCode must differ from fromWarehouseCode")
        return value

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, value: list[Any]) -> list[Any]:
        _unique_skus([x.sku for x in value], "lines")
        return value


class TransferReceived(WmsEvent):
    transfer_no: DocumentNo = Field(description="Transfer number (the topic key).")
    to_warehouse_code: WarehouseCode = Field(description="Receiving warehouse.")
    lines: Annotated[list[ReceivedLine], Field(min_length=1, max_length=MAX_LINES)] = Field(
        description="Units received."
    )

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, value: list[Any]) -> list[Any]:
        _unique_skus([x.sku for x in value], "lines")
        return value


class StockSnapshot(WmsEvent):
    """The WMS physical count: the truth for the units in the warehouse."""

    snapshot_id: DocumentNo = Field(description="Snapshot id (the topic key).")
    warehouse_code: WarehouseCode = Field(description="Warehouse counted.")
    counted_at: Timestamp = Field(description="When the count was taken.")
    lines: Annotated[list[CountedLine], Field(min_length=1, max_length=MAX_LINES * 10)] = Field(
        description="Counted units per SKU."
    )

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, value: list[Any]) -> list[Any]:
        _unique_skus([x.sku for x in value], "lines")
        return value


class DamagedDisposed(WmsEvent):
    disposal_no: DocumentNo = Field(description="Disposal number (the topic key).")
    warehouse_code: WarehouseCode = Field(description="Warehouse.")
    sku: Sku = Field(description="Stock keeping unit.")
    quantity: Quantity = Field(description="Damaged units written off.")


class ReorderPointSet(Event):
    """An inventory planner sets the reorder point below which LOW_STOCK is raised: for one
    position, or (no warehouse) for every position of the SKU that has none of its own. The
    latest ``occurredAt`` wins, whatever order settings are read in."""

    source: SourceSystem = Field(SourceSystem.ERP, description="The system that published it.")
    sku: Sku = Field(description="Stock keeping unit.")
    warehouse_code: WarehouseCode | None = Field(
        None, description="Warehouse (the topic key); absent: the SKU's default for every warehouse."
    )
    reorder_point: int = Field(ge=0, description="LOW_STOCK when availableQty falls below it.")


ORDER_EVENTS: tuple[type[Event], ...] = (OrderCreated, OrderPaid, OrderCancelled, ReturnRequested)
SHIPMENT_EVENTS: tuple[type[Event], ...] = (
    OrderShipped,
    PickedUp,
    InTransit,
    OutForDelivery,
    Delivered,
    DeliveryFailed,
    ReturnPickedUp,
)
MOVEMENT_EVENTS: tuple[type[Event], ...] = (
    InboundAnnounced,
    GoodsReceived,
    ReturnInspected,
    StockAdjusted,
    TransferDispatched,
    TransferReceived,
    StockSnapshot,
    DamagedDisposed,
    ReorderPointSet,
)
INPUT_EVENTS: dict[str, type[Event]] = {cls.__name__: cls for cls in ORDER_EVENTS + SHIPMENT_EVENTS + MOVEMENT_EVENTS}
