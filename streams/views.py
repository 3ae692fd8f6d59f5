"""Read-only web views served by the worker, straight from the tables.

With several workers, ``table_route`` proxies a request for a key owned by another worker
to that worker's canonical URL, so any worker answers for every key.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View, Web

from schemas.base import CODE_PATTERN
from schemas.codec import decode
from streams.stores import key
from tables.state import Order, Position, SkuStock

if TYPE_CHECKING:
    from streams.app import Pipeline

_CODE = re.compile(CODE_PATTERN)


def position_json(sku: str, p: Position) -> dict[str, Any]:
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
        "updatedAt": p.updated_at.isoformat() if p.updated_at else None,
    }


def order_json(o: Order) -> dict[str, Any]:
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
            }
            for line in o.lines
        ],
        "timeline": [
            {"at": entry.at.isoformat(), "what": entry.what, "causeEventId": entry.cause_event_id}
            for entry in o.timeline
        ],
    }


def _error(web: Web, status: int, message: str) -> Response:
    return web.json({"error": message, "status": status}, status=status)


def register_views(pipeline: Pipeline) -> None:
    app, tables, metrics = pipeline.app, pipeline.tables, pipeline.metrics

    def load_stock(sku: str) -> SkuStock | None:
        raw = tables.stock.get(key("s", sku))
        return None if raw is None else decode(raw, validate=False)

    @app.page("/inventory/{sku}/{warehouse_code}")
    @app.table_route(table=tables.stock, match_info="sku")
    async def inventory_position(web: Web, request: Request, sku: str, warehouse_code: str) -> Response:
        if not _CODE.match(sku) or not _CODE.match(warehouse_code):
            return _error(web, 400, "sku and warehouseCode must be codes")
        stock = load_stock(sku)
        position = stock.position(warehouse_code) if stock else None
        if position is None:
            return _error(web, 404, f"no position for sku {sku} in warehouse {warehouse_code}")
        return web.json(position_json(sku, position))

    @app.page("/inventory/{sku}")
    @app.table_route(table=tables.stock, match_info="sku")
    async def inventory_sku(web: Web, request: Request, sku: str) -> Response:
        if not _CODE.match(sku):
            return _error(web, 400, "sku must be a code")
        stock = load_stock(sku)
        if stock is None or not stock.positions:
            return _error(web, 404, f"unknown sku {sku}")
        positions = [position_json(sku, p) for p in stock.positions]
        totals = {
            name: sum(p[name] for p in positions)
            for name in ("availableQty", "reservedQty", "inTransitQty", "totalQty", "onHandQty",
                         "presoldQty", "outboundQty", "damagedQty")
        }
        return web.json({"sku": sku, "warehouses": positions, "network": totals})

    @app.page("/orders/{order_no}")
    @app.table_route(table=tables.orders, match_info="order_no")
    async def order_view(web: Web, request: Request, order_no: str) -> Response:
        if not _CODE.match(order_no):
            return _error(web, 400, "orderNo must be a code")
        raw = tables.orders.get(key("o", order_no))
        if raw is None:
            return _error(web, 404, f"unknown order {order_no}")
        return web.json(order_json(decode(raw, validate=False)))

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/ready")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            ready = app.rebalancing is False and app.tables.recovery.completed.is_set()
            return self.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.text(metrics.prometheus(), content_type="text/plain; version=0.0.4")
