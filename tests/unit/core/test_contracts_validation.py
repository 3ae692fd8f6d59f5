"""Bad input is rejected at the contract, and the error says which field (``loc``, in the
camelCase wire names) so that a dead letter points at what to fix."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from schemas.inputs import (
    GoodsReceived,
    OrderCreated,
    OrderShipped,
    StockAdjusted,
    TransferDispatched,
)
from schemas.internal import ReservationExpiryDue
from schemas.outputs import InventoryChanged, OrderStatusChanged

ENVELOPE = {"eventId": "evt-0001", "occurredAt": "2025-11-22T10:30:00+08:00"}

VALID: dict[type[BaseModel], dict[str, Any]] = {
    OrderCreated: {
        **ENVELOPE,
        "orderNo": "OMS202511220001",
        "orderType": "NORMAL",
        "consignee": {"name": "张三", "phone": "13800138000", "address": "北京市朝阳区XX街道XX号"},
        "items": [{"sku": "SKU001", "quantity": 2, "price": "99.00"}],
        "totalAmount": "198.00",
        "timeRequirement": "STANDARD",
    },
    OrderShipped: {
        **ENVELOPE,
        "shipmentNo": "SH-1",
        "orderNo": "OMS202511220001",
        "warehouseCode": "WH001",
        "lines": [{"sku": "SKU001", "quantity": 2}],
        "waybillNo": "SF123",
        "carrier": "SF Express",
    },
    StockAdjusted: {
        **ENVELOPE,
        "adjustmentNo": "ADJ-1",
        "warehouseCode": "WH001",
        "sku": "SKU001",
        "delta": -3,
        "reason": "DAMAGE",
    },
    TransferDispatched: {
        **ENVELOPE,
        "transferNo": "TR-1",
        "fromWarehouseCode": "WH001",
        "toWarehouseCode": "WH002",
        "lines": [{"sku": "SKU001", "quantity": 5}],
    },
    GoodsReceived: {
        **ENVELOPE,
        "receiptNo": "RC-1",
        "warehouseCode": "WH001",
        "lines": [{"sku": "SKU001", "sellableQty": 10}],
    },
}


def mutated(model: type[BaseModel], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    payload = copy.deepcopy(VALID[model])
    change(payload)
    return payload


def setter(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(payload: dict[str, Any]) -> None:
        target: Any = payload
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


def item(**fields: Any) -> dict[str, Any]:
    return {"sku": "SKU001", "quantity": 1, "price": "1.00", **fields}


# fmt: off
CASES = [
    # (id, model, change, loc, error type)
    ("negative-quantity", OrderCreated, setter("items", 0, "quantity", value=-1), ("items", 0, "quantity"), "greater_than"),
    ("zero-quantity", OrderShipped, setter("lines", 0, "quantity", value=0), ("lines", 0, "quantity"), "greater_than"),
    ("quantity-over-max", OrderShipped, setter("lines", 0, "quantity", value=1_000_001), ("lines", 0, "quantity"), "less_than_equal"),
    ("quantity-as-float", OrderCreated, setter("items", 0, "quantity", value=2.0), ("items", 0, "quantity"), "int_type"),
    ("quantity-as-string", OrderShipped, setter("lines", 0, "quantity", value="2"), ("lines", 0, "quantity"), "int_type"),
    ("empty-sku", OrderCreated, setter("items", 0, "sku", value=""), ("items", 0, "sku"), "string_too_short"),
    ("empty-top-level-sku", StockAdjusted, setter("sku", value=""), ("sku",), "string_too_short"),
    ("sku-with-pipe", OrderShipped, setter("lines", 0, "sku", value="SKU|001"), ("lines", 0, "sku"), "string_pattern_mismatch"),
    ("sku-with-space", OrderCreated, setter("items", 0, "sku", value="SKU 001"), ("items", 0, "sku"), "string_pattern_mismatch"),
    ("sku-leading-space", StockAdjusted, setter("sku", value=" SKU001"), ("sku",), "string_pattern_mismatch"),
    ("warehouse-with-pipe", OrderShipped, setter("warehouseCode", value="WH|1"), ("warehouseCode",), "string_pattern_mismatch"),
    ("unknown-order-type", OrderCreated, setter("orderType", value="BULK"), ("orderType",), "enum"),
    ("placeholder-order-type", OrderCreated, setter("orderType", value="NORMAL/PRESALE/GIFT"), ("orderType",), "enum"),
    ("unknown-time-requirement", OrderCreated, setter("timeRequirement", value="ASAP"), ("timeRequirement",), "enum"),
    ("unknown-adjustment-reason", StockAdjusted, setter("reason", value="THEFT"), ("reason",), "enum"),
    ("naive-timestamp", OrderCreated, setter("occurredAt", value="2025-11-22T10:30:00"), ("occurredAt",), "timezone_aware"),
    ("naive-datetime-object", StockAdjusted, setter("occurredAt", value=datetime(2025, 11, 22)), ("occurredAt",), "timezone_aware"),
    ("malformed-timestamp", OrderShipped, setter("occurredAt", value="yesterday"), ("occurredAt",), "datetime_from_date_parsing"),
    ("impossible-date", OrderCreated, setter("occurredAt", value="2025-02-30T10:00:00+08:00"), ("occurredAt",), "datetime_from_date_parsing"),
    ("naive-optional-timestamp", OrderCreated, setter("reservationExpiresAt", value="2025-11-22T11:00:00"), ("reservationExpiresAt",), "timezone_aware"),
    ("oversized-order-no", OrderCreated, setter("orderNo", value="O" * 65), ("orderNo",), "string_too_long"),
    ("oversized-sku", OrderShipped, setter("lines", 0, "sku", value="S" * 65), ("lines", 0, "sku"), "string_too_long"),
    ("oversized-warehouse", StockAdjusted, setter("warehouseCode", value="W" * 33), ("warehouseCode",), "string_too_long"),
    ("oversized-consignee-name", OrderCreated, setter("consignee", "name", value="张" * 129), ("consignee", "name"), "string_too_long"),
    ("oversized-address", OrderCreated, setter("consignee", "address", value="址" * 513), ("consignee", "address"), "string_too_long"),
    ("oversized-event-id", OrderShipped, setter("eventId", value="e" * 129), ("eventId",), "string_too_long"),
    ("oversized-carrier", OrderShipped, setter("carrier", value="c" * 65), ("carrier",), "string_too_long"),
    ("bad-phone", OrderCreated, setter("consignee", "phone", value="call me"), ("consignee", "phone"), "string_pattern_mismatch"),
    ("too-many-lines", OrderCreated, setter("items", value=[item(sku=f"S{i}") for i in range(201)]), ("items",), "too_long"),
    ("too-many-shipped-lines", OrderShipped, setter("lines", value=[{"sku": f"S{i}", "quantity": 1} for i in range(201)]), ("lines",), "too_long"),
    ("no-lines", OrderShipped, setter("lines", value=[]), ("lines",), "too_short"),
    ("price-three-places", OrderCreated, setter("items", 0, "price", value="99.001"), ("items", 0, "price"), "decimal_max_places"),
    ("negative-price", OrderCreated, setter("items", 0, "price", value="-1.00"), ("items", 0, "price"), "greater_than_equal"),
    ("total-not-a-number", OrderCreated, setter("totalAmount", value="NaN"), ("totalAmount",), "finite_number"),
    ("total-too-many-digits", OrderCreated, setter("totalAmount", value="1234567890123.00"), ("totalAmount",), "decimal_whole_digits"),
    ("adjustment-over-max", StockAdjusted, setter("delta", value=-1_000_001), ("delta",), "greater_than_equal"),
    ("nothing-received-on-a-line", GoodsReceived, setter("lines", 0, "sellableQty", value=0), ("lines", 0), "value_error"),
    ("negative-received", GoodsReceived, setter("lines", 0, "damagedQty", value=-1), ("lines", 0, "damagedQty"), "greater_than_equal"),
    ("unknown-extra-field", OrderCreated, setter("bogusField", value=1), ("bogusField",), "extra_forbidden"),
    ("snake-case-name-twice", OrderCreated, setter("order_no", value="OMS2"), ("order_no",), "extra_forbidden"),
    ("unknown-nested-field", OrderCreated, setter("consignee", "nickname", value="x"), ("consignee", "nickname"), "extra_forbidden"),
    ("unknown-line-field", OrderShipped, setter("lines", 0, "lot", value="L1"), ("lines", 0, "lot"), "extra_forbidden"),
    ("missing-field", OrderCreated, lambda p: p.pop("consignee"), ("consignee",), "missing"),
    ("null-required-field", OrderShipped, setter("waybillNo", value=None), ("waybillNo",), "string_type"),
]
# fmt: on


@pytest.mark.parametrize("model", list(VALID), ids=lambda m: m.__name__)
def test_the_valid_payloads_are_valid(model: type[BaseModel]) -> None:
    model.model_validate(VALID[model])


@pytest.mark.parametrize(("model", "change", "loc", "kind"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_names_the_field(
    model: type[BaseModel],
    change: Callable[[dict[str, Any]], None],
    loc: tuple[Any, ...],
    kind: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(mutated(model, change))
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [(loc, kind)]


# Cross-field rules are field validators, so the error's loc names the field.
CROSS_FIELD = [
    (
        "duplicate-sku",
        OrderCreated,
        setter("items", value=[item(sku="SKU001"), item(sku="SKU001")]),
        ("items",),
        "items: each sku may appear once",
    ),
    (
        "duplicate-sku-in-lines",
        TransferDispatched,
        setter("lines", value=[{"sku": "SKU001", "quantity": 1}, {"sku": "SKU001", "quantity": 2}]),
        ("lines",),
        "lines: each sku may appear once",
    ),
    ("zero-delta", StockAdjusted, setter("delta", value=0), ("delta",), "delta must be non-zero"),
    (
        "transfer-to-same-warehouse",
        TransferDispatched,
        setter("toWarehouseCode", value="WH001"),
        ("toWarehouseCode",),
        "toWarehouseCode must differ from fromWarehouseCode",
    ),
]


@pytest.mark.parametrize(
    ("model", "change", "loc", "message"),
    [c[1:] for c in CROSS_FIELD],
    ids=[c[0] for c in CROSS_FIELD],
)
def test_cross_field_rule_rejects_and_says_which_field(
    model: type[BaseModel],
    change: Callable[[dict[str, Any]], None],
    loc: tuple[Any, ...],
    message: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(mutated(model, change))
    (error,) = caught.value.errors()
    assert message in error["msg"]


@pytest.mark.parametrize(
    ("model", "change", "loc"),
    [pytest.param(*c[1:4], id=c[0]) for c in CROSS_FIELD],
)
def test_cross_field_rule_loc_names_the_field(
    model: type[BaseModel], change: Callable[[dict[str, Any]], None], loc: tuple[Any, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(mutated(model, change))
    assert [e["loc"] for e in caught.value.errors()] == [loc]


def test_python_names_are_accepted_too() -> None:
    # populate_by_name: the core builds contracts with snake_case keywords.
    StockAdjusted(
        event_id="evt-1",
        occurred_at=datetime(2025, 11, 22, tzinfo=UTC),
        adjustment_no="ADJ-1",
        warehouse_code="WH001",
        sku="SKU001",
        delta=5,
        reason="FOUND",
    )


def test_contracts_are_frozen() -> None:
    adjusted = StockAdjusted.model_validate(VALID[StockAdjusted])
    with pytest.raises(ValidationError) as caught:
        adjusted.delta = 1  # type: ignore[misc]
    assert caught.value.errors()[0]["loc"] == ("delta",)


# Derived ids (joined with "|", ISO timestamps with "+") validate as documented.


def test_documented_inventory_changed_event_id_validates() -> None:
    InventoryChanged(
        sku="SKU001",
        warehouse_code="WH001",
        available_qty=100,
        reserved_qty=20,
        in_transit_qty=50,
        total_qty=170,
        event_id="SKU001|WH001|v1",  # "Deterministic: sku|warehouseCode|v<version>."
        on_hand_qty=120,
        presold_qty=0,
        outbound_qty=0,
        damaged_qty=0,
        version=1,
        cause_event_type="OrderCreated",
        cause_event_id="evt-0001",
        occurred_at=datetime(2025, 11, 22, tzinfo=UTC),
    )


def test_documented_order_status_event_id_validates() -> None:
    OrderStatusChanged(
        event_id="OMS202511220001|v1",  # "Deterministic: orderNo|v<version>."
        order_no="OMS202511220001",
        status="RESERVED",
        previous_status=None,
        reason="",
        lines=[],
        version=1,
        cause_event_type="OrderCreated",
        cause_event_id="evt-0001",
        occurred_at=datetime(2025, 11, 22, tzinfo=UTC),
    )


def test_documented_expiry_event_id_validates() -> None:
    due = datetime(2025, 11, 22, 11, 0, tzinfo=UTC)
    ReservationExpiryDue(
        event_id=f"OMS202511220001|expiry|{due.isoformat()}",  # orderNo|expiry|<expiresAt>
        order_no="OMS202511220001",
        due_at=due,
        occurred_at=due,
    )
