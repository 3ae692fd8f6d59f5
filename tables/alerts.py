"""The one builder of the core's ``InventoryAlert`` (stock and order transitions alike).

An alert's id, unless its cause names one, is ``<cause id>|<type>|<index>``: the command or
message that raised it, and its place among what that cause emitted, so that a replay emits
the same alert under the same id. Its text is cut to the contract's 256 characters.
"""

from __future__ import annotations

from datetime import datetime

from schemas.outputs import AlertType, InventoryAlert
from tables.construct import construct

MESSAGE_CHARS = 256  # schemas/base.py ShortText


def inventory_alert(
    alert_type: AlertType,
    cause_id: str,
    index: int,
    *,
    sku: str | None,
    warehouse_code: str | None,
    order_no: str | None,
    quantity: int,
    message: str,
    cause_event_type: str,
    cause_event_id: str,
    occurred_at: datetime,
    orders_at_risk: list[str] | None = None,
    alert_id: str | None = None,
) -> InventoryAlert:
    return construct(
        InventoryAlert,
        alert_id=alert_id or f"{cause_id}|{alert_type}|{index}",
        alert_type=alert_type,
        sku=sku,
        warehouse_code=warehouse_code,
        order_no=order_no,
        quantity=quantity,
        orders_at_risk=orders_at_risk or [],
        message=message[:MESSAGE_CHARS],
        cause_event_type=cause_event_type,
        cause_event_id=cause_event_id,
        occurred_at=occurred_at,
    )
