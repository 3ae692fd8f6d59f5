"""Where each input event goes: stateless, pure.

Order-scoped events (orders and shipments topics, plus ReturnInspected from the WMS) go to
the order partition, keyed by orderNo. Every other stock movement is split here into
per-SKU commands, keyed by SKU, for the SKU partition. Command ids are derived from the
event id, so replaying an event yields the same commands, which the SKU partition applies
once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypedDict

from schemas.base import Event
from schemas.inputs import (
    DamagedDisposed,
    GoodsReceived,
    InboundAnnounced,
    ReorderPointSet,
    StockAdjusted,
    StockSnapshot,
    TransferDispatched,
    TransferReceived,
)
from schemas.internal import (
    AdjustStock,
    AnnounceInbound,
    DispatchTransfer,
    DisposeDamaged,
    ReceiveStock,
    ReconcileStock,
    SetReorderPoint,
    StockCommand,
)
from tables.orders import ORDER_MESSAGES


def is_order_scoped(event: object) -> bool:
    return type(event) in ORDER_MESSAGES


class _CommandBase(TypedDict):
    """The fields every stock command takes from its cause (schemas.internal.StockCommand)."""

    command_id: str
    sku: str
    occurred_at: datetime
    cause_event_type: str
    cause_event_id: str


def _base(event: Event, sku: str, step: str) -> _CommandBase:
    return {
        "command_id": f"{event.event_id}|{sku}|{step}",
        "sku": sku,
        "occurred_at": event.occurred_at,
        "cause_event_type": type(event).__name__,
        "cause_event_id": event.event_id,
    }


def _announced(e: InboundAnnounced) -> list[StockCommand]:
    return [
        AnnounceInbound.model_construct(
            **_base(e, line.sku, "announce"),
            document_no=e.asn_no,
            warehouse_code=e.warehouse_code,
            quantity=line.quantity,
        )
        for line in e.lines
    ]


def _received(e: GoodsReceived) -> list[StockCommand]:
    return [
        ReceiveStock.model_construct(
            **_base(e, line.sku, "receive"),
            receipt_no=e.receipt_no,
            document_no=e.asn_no,
            warehouse_code=e.warehouse_code,
            sellable_qty=line.sellable_qty,
            damaged_qty=line.damaged_qty,
            closes_document=e.closes_asn,
            is_transfer=False,
        )
        for line in e.lines
    ]


def _transfer_received(e: TransferReceived) -> list[StockCommand]:
    return [
        ReceiveStock.model_construct(
            **_base(e, line.sku, "receive"),
            receipt_no=e.transfer_no,
            document_no=e.transfer_no,
            warehouse_code=e.to_warehouse_code,
            sellable_qty=line.sellable_qty,
            damaged_qty=line.damaged_qty,
            closes_document=True,
            is_transfer=True,
        )
        for line in e.lines
    ]


def _adjusted(e: StockAdjusted) -> list[StockCommand]:
    return [
        AdjustStock.model_construct(
            **_base(e, e.sku, "adjust"),
            adjustment_no=e.adjustment_no,
            warehouse_code=e.warehouse_code,
            delta=e.delta,
            reason=e.reason,
        )
    ]


def _dispatched(e: TransferDispatched) -> list[StockCommand]:
    return [
        DispatchTransfer.model_construct(
            **_base(e, line.sku, "dispatch"),
            transfer_no=e.transfer_no,
            from_warehouse_code=e.from_warehouse_code,
            to_warehouse_code=e.to_warehouse_code,
            quantity=line.quantity,
        )
        for line in e.lines
    ]


def _snapshot(e: StockSnapshot) -> list[StockCommand]:
    return [
        ReconcileStock.model_construct(
            **_base(e, line.sku, "reconcile"),
            snapshot_id=e.snapshot_id,
            warehouse_code=e.warehouse_code,
            counted_qty=line.counted_qty,
            counted_at=e.counted_at,
        )
        for line in e.lines
    ]


def _disposed(e: DamagedDisposed) -> list[StockCommand]:
    return [
        DisposeDamaged.model_construct(
            **_base(e, e.sku, "dispose"),
            disposal_no=e.disposal_no,
            warehouse_code=e.warehouse_code,
            quantity=e.quantity,
        )
    ]


def _reorder_point(e: ReorderPointSet) -> list[StockCommand]:
    return [
        SetReorderPoint.model_construct(
            **_base(e, e.sku, "reorder-point"), warehouse_code=e.warehouse_code, reorder_point=e.reorder_point
        )
    ]


# Each splitter takes the one event class it is keyed by, which a dict's value type cannot
# say: hence one dict-item ignore per entry (stock_commands_for looks them up by exact type).
_SPLITTERS: dict[type[Event], Callable[[Event], list[StockCommand]]] = {
    InboundAnnounced: _announced,  # type: ignore[dict-item]
    GoodsReceived: _received,  # type: ignore[dict-item]
    TransferReceived: _transfer_received,  # type: ignore[dict-item]
    StockAdjusted: _adjusted,  # type: ignore[dict-item]
    TransferDispatched: _dispatched,  # type: ignore[dict-item]
    StockSnapshot: _snapshot,  # type: ignore[dict-item]
    DamagedDisposed: _disposed,  # type: ignore[dict-item]
    ReorderPointSet: _reorder_point,  # type: ignore[dict-item]
}


def stock_commands_for(event: Event) -> list[StockCommand]:
    """Split a stock-movement document into one command per SKU."""
    return _SPLITTERS[type(event)](event)
