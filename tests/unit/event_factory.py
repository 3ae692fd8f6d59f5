"""Input events for core tests, built the way they arrive: camelCase dicts validated by the
input contracts (``schemas.inputs.INPUT_EVENTS``), with a test clock and fresh event ids.

``EventFactory`` keeps a clock that moves one minute per event unless told otherwise, so
that events are ordered in time the way a stream orders them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from schemas.base import Event
from schemas.inputs import INPUT_EVENTS

T0 = datetime(2025, 11, 22, 10, 0, tzinfo=timezone(timedelta(hours=8)))
CONSIGNEE = {"name": "张三", "phone": "13800138000", "address": "北京市朝阳区XX街道XX号"}

Line = tuple[str, int]  # (sku, quantity)


class EventFactory:
    def __init__(self, start: datetime = T0, step: timedelta = timedelta(minutes=1)) -> None:
        self.now = start
        self.step = step
        self.count = 0

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now

    def event(self, event_type: str, **fields: Any) -> Event:
        """One validated input event; ``fields`` are camelCase, as on the wire."""
        self.count += 1
        self.now += self.step
        fields.setdefault("eventId", f"ev-{self.count}")
        fields.setdefault("occurredAt", self.now.isoformat())
        return INPUT_EVENTS[event_type].model_validate(fields)

    # --- orders (OMS) ---------------------------------------------------------------------

    def order_created(
        self,
        order_no: str,
        items: Iterable[tuple[str, int] | tuple[str, int, str | None]],
        order_type: str = "NORMAL",
        warehouse_code: str | None = None,
        expires_in: timedelta | None = None,
    ) -> Event:
        lines = []
        for item in items:
            line: dict[str, Any] = {"sku": item[0], "quantity": item[1], "price": "9.90"}
            if len(item) > 2 and item[2] is not None:
                line["warehouseCode"] = item[2]
            lines.append(line)
        fields: dict[str, Any] = {
            "orderNo": order_no,
            "orderType": order_type,
            "consignee": CONSIGNEE,
            "items": lines,
            "totalAmount": "0.00",
            "timeRequirement": "STANDARD",
        }
        if warehouse_code is not None:
            fields["warehouseCode"] = warehouse_code
        if expires_in is not None:
            fields["reservationExpiresAt"] = (self.now + self.step + expires_in).isoformat()
        return self.event("OrderCreated", **fields)

    def order_paid(self, order_no: str) -> Event:
        return self.event("OrderPaid", orderNo=order_no)

    def order_cancelled(self, order_no: str, reason: str = "customer") -> Event:
        return self.event("OrderCancelled", orderNo=order_no, reason=reason)

    def return_requested(self, order_no: str, return_no: str, items: Iterable[Line]) -> Event:
        return self.event(
            "ReturnRequested",
            orderNo=order_no,
            returnNo=return_no,
            items=[{"sku": s, "quantity": q} for s, q in items],
        )

    # --- shipments (WMS, TMS) -------------------------------------------------------------

    def order_shipped(self, order_no: str, shipment_no: str, warehouse_code: str, lines: Iterable[Line]) -> Event:
        return self.event(
            "OrderShipped",
            orderNo=order_no,
            shipmentNo=shipment_no,
            warehouseCode=warehouse_code,
            lines=[{"sku": s, "quantity": q} for s, q in lines],
            waybillNo=f"WB-{shipment_no}",
            carrier="SF",
        )

    def tracking(self, event_type: str, order_no: str, shipment_no: str) -> Event:
        return self.event(event_type, orderNo=order_no, shipmentNo=shipment_no, waybillNo=f"WB-{shipment_no}")

    def return_picked_up(self, order_no: str, return_no: str, warehouse_code: str) -> Event:
        return self.event(
            "ReturnPickedUp",
            orderNo=order_no,
            returnNo=return_no,
            waybillNo=f"WB-{return_no}",
            warehouseCode=warehouse_code,
        )

    # --- stock movements (WMS) ------------------------------------------------------------

    def inbound_announced(
        self, asn_no: str, warehouse_code: str, lines: Iterable[Line], inbound_type: str = "PURCHASE"
    ) -> Event:
        return self.event(
            "InboundAnnounced",
            asnNo=asn_no,
            warehouseCode=warehouse_code,
            inboundType=inbound_type,
            lines=[{"sku": s, "quantity": q} for s, q in lines],
        )

    def goods_received(
        self,
        receipt_no: str,
        warehouse_code: str,
        lines: Iterable[tuple[str, int, int]],
        asn_no: str | None = None,
        closes_asn: bool = True,
    ) -> Event:
        """``lines``: (sku, sellableQty, damagedQty)."""
        return self.event(
            "GoodsReceived",
            receiptNo=receipt_no,
            asnNo=asn_no,
            warehouseCode=warehouse_code,
            lines=[{"sku": s, "sellableQty": ok, "damagedQty": bad} for s, ok, bad in lines],
            closesAsn=closes_asn,
        )

    def return_inspected(
        self, order_no: str, return_no: str, warehouse_code: str, lines: Iterable[tuple[str, int, str]]
    ) -> Event:
        """``lines``: (sku, quantity, disposition)."""
        return self.event(
            "ReturnInspected",
            orderNo=order_no,
            returnNo=return_no,
            warehouseCode=warehouse_code,
            lines=[{"sku": s, "quantity": q, "disposition": d} for s, q, d in lines],
        )

    def stock_adjusted(self, adjustment_no: str, warehouse_code: str, sku: str, delta: int, reason: str) -> Event:
        return self.event(
            "StockAdjusted",
            adjustmentNo=adjustment_no,
            warehouseCode=warehouse_code,
            sku=sku,
            delta=delta,
            reason=reason,
        )

    def transfer_dispatched(
        self, transfer_no: str, from_warehouse: str, to_warehouse: str, lines: Iterable[Line]
    ) -> Event:
        return self.event(
            "TransferDispatched",
            transferNo=transfer_no,
            fromWarehouseCode=from_warehouse,
            toWarehouseCode=to_warehouse,
            lines=[{"sku": s, "quantity": q} for s, q in lines],
        )

    def transfer_received(self, transfer_no: str, to_warehouse: str, lines: Iterable[tuple[str, int, int]]) -> Event:
        return self.event(
            "TransferReceived",
            transferNo=transfer_no,
            toWarehouseCode=to_warehouse,
            lines=[{"sku": s, "sellableQty": ok, "damagedQty": bad} for s, ok, bad in lines],
        )

    def stock_snapshot(
        self, snapshot_id: str, warehouse_code: str, lines: Iterable[Line], counted_at: datetime
    ) -> Event:
        return self.event(
            "StockSnapshot",
            snapshotId=snapshot_id,
            warehouseCode=warehouse_code,
            countedAt=counted_at.isoformat(),
            lines=[{"sku": s, "countedQty": q} for s, q in lines],
        )

    def damaged_disposed(self, disposal_no: str, warehouse_code: str, sku: str, quantity: int) -> Event:
        return self.event(
            "DamagedDisposed",
            disposalNo=disposal_no,
            warehouseCode=warehouse_code,
            sku=sku,
            quantity=quantity,
        )
