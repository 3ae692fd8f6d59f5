"""The core's one alert builder (tables/alerts.py): ids deterministic from their cause, text
cut to the contract, and the result a valid InventoryAlert."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.outputs import AlertType, InventoryAlert
from tables.alerts import inventory_alert

AT = datetime(2025, 11, 22, 8, tzinfo=UTC)


def _alert(**overrides: object) -> InventoryAlert:
    fields: dict[str, object] = dict(
        sku="SKU1",
        warehouse_code="WH1",
        order_no=None,
        quantity=3,
        message="low",
        cause_event_type="OrderCreated",
        cause_event_id="ev-1",
        occurred_at=AT,
    )
    return inventory_alert(AlertType.LOW_STOCK, "ev-1|SKU1|reserve", 2, **{**fields, **overrides})  # type: ignore[arg-type]


def test_an_alert_is_named_by_its_cause_type_and_place() -> None:
    assert _alert().alert_id == "ev-1|SKU1|reserve|LOW_STOCK|2"
    assert _alert(alert_id="ev-1|SKU1|receive|beyond-retention").alert_id == "ev-1|SKU1|receive|beyond-retention"


def test_an_alert_is_a_valid_contract_whatever_its_text() -> None:
    alert = _alert(message="x" * 1000, orders_at_risk=["O1", "O2"])
    assert len(alert.message) == 256 and alert.orders_at_risk == ["O1", "O2"]
    assert InventoryAlert.model_validate(alert.model_dump()) == alert
    assert _alert().orders_at_risk == []
