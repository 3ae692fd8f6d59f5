"""The JSON answers of the inventory and order views: one shape for the worker's views
(streams/views.py), the read processes (streams/reader.py) and the OpenAPI document.

Pure: builds dicts from the worker's state records or from ``InventoryChanged`` outputs;
imports nothing of Faust or Kafka.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

QUANTITIES = (
    "availableQty",
    "reservedQty",
    "inTransitQty",
    "totalQty",
    "onHandQty",
    "presoldQty",
    "outboundQty",
    "damagedQty",
)
MAX_BATCH = 200  # SKUs or positions one batch request may name


def position_json(sku: str, p: Any, updated_at: datetime | None) -> dict[str, Any]:
    """One position: ``p`` is a ``tables.state.Position`` or an ``InventoryChanged``;
    ``updated_at``: the position's (the newest occurredAt that changed it, which an
    ``InventoryChanged`` carries as ``updated_at``: its own ``occurred_at`` is older when
    events were applied out of event-time order)."""
    return {
        "sku": sku,
        "warehouseCode": p.warehouse_code,
        "availableQty": p.available_qty,
        "reservedQty": p.reserved_qty,
        "inTransitQty": p.in_transit_qty,
        "totalQty": p.total_qty,
        "onHandQty": p.on_hand_qty,
        "presoldQty": p.presold_qty,
        "outboundQty": p.outbound_qty,
        "damagedQty": p.damaged_qty,
        "version": p.version,
        "updatedAt": updated_at.isoformat() if updated_at else None,
    }


def sku_json(sku: str, positions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Every warehouse of a SKU (its ``position_json`` answers) and the network totals."""
    return {
        "sku": sku,
        "warehouses": list(positions),
        "network": {name: sum(p[name] for p in positions) for name in QUANTITIES},
    }


def order_json(o: Any) -> dict[str, Any]:
    """One order (``tables.state.Order``)."""
    return {
        "orderNo": o.order_no,
        "status": o.status.value,
        "orderType": o.order_type.value,
        "known": o.known,
        "paid": o.paid,
        "version": o.version,
        "reservationExpiresAt": o.reservation_expires_at.isoformat() if o.reservation_expires_at else None,
        "lines": [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "warehouseCode": line.warehouse_code,
                "reservationState": line.state.value,
                "reservedQty": line.reserved_qty,
                "presoldQty": line.presold_qty,
                "shortQty": line.short_qty,
                "shippedQty": line.shipped_qty,
                "deliveredQty": line.delivered_qty,
                "returnedQty": line.returned_qty,
                "splits": [
                    {"warehouseCode": part.warehouse_code, "reservedQty": part.reserved_qty} for part in line.splits
                ],
            }
            for line in o.lines
        ],
        "timeline": [
            {"at": entry.at.isoformat(), "what": entry.what, "causeEventId": entry.cause_event_id}
            for entry in o.timeline
        ],
    }


def error_json(status: int, message: str) -> dict[str, Any]:
    return {"error": message, "status": status}
