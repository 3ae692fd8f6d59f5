"""The core's fast builders make exactly what pydantic's model_construct and
dataclasses.replace make (tables/construct.py)."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from schemas.inputs import Consignee, StockLine
from schemas.internal import ReleaseStock, ReservationUpdated, ReserveStock
from schemas.outputs import (
    InventoryAlert,
    InventoryChanged,
    InventoryLedgerEntry,
    OrderLineAllocation,
    OrderStatusChanged,
    OutboundInstruction,
    WarehouseAllocation,
)
from tables.construct import construct, evolve
from tables.state import InboundExpectation, Order, OrderLine, Position, Reservation, SkuStock

NOW = datetime(2025, 11, 22, 10, 0, tzinfo=UTC)
LINE = {
    "sku": "S",
    "quantity": 2,
    "warehouse_code": "WH1",
    "reserved_qty": 2,
    "presold_qty": 0,
    "shipped_qty": 0,
    "delivered_qty": 0,
    "returned_qty": 0,
    "short_qty": 0,
    "splits": [],
}
CAUSE = {"cause_event_type": "OrderCreated", "cause_event_id": "e1", "occurred_at": NOW}
SAMPLES: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (
        InventoryChanged,
        {
            "sku": "S",
            "warehouse_code": "WH1",
            "available_qty": 1,
            "reserved_qty": 2,
            "in_transit_qty": 3,
            "total_qty": 6,
            "event_id": "S|WH1|v1",
            "on_hand_qty": 3,
            "presold_qty": 0,
            "outbound_qty": 0,
            "damaged_qty": 0,
            "version": 1,
            **CAUSE,
            "updated_at": NOW,
        },
    ),
    (
        InventoryLedgerEntry,
        {
            "entry_id": "x",
            "sku": "S",
            "warehouse_code": "WH1",
            "bucket": "ON_HAND",
            "movement_type": "SHIPPED",
            "quantity": -1,
            "document_type": "SHIPMENT",
            "document_no": "SHP1",
            "cause_event_id": "e1",
            "occurred_at": NOW,
        },
    ),
    (
        InventoryAlert,
        {
            "alert_id": "a",
            "alert_type": "SHORTAGE",
            "sku": "S",
            "warehouse_code": "WH1",
            "order_no": None,
            "quantity": 2,
            "orders_at_risk": ["O1"],
            "message": "m",
            **CAUSE,
        },
    ),
    (
        ReservationUpdated,
        {
            "result_id": "r",
            "order_no": "O1",
            "sku": "S",
            "status": "RESERVED",
            "warehouse_code": "WH1",
            "reserved_qty": 2,
            "presold_qty": 0,
            "short_qty": 0,
            "best_available_qty": 0,
            **CAUSE,
            "splits": [WarehouseAllocation.model_construct(warehouse_code="WH2", reserved_qty=1)],
            "seq": 3,
        },
    ),
    (
        ReserveStock,
        {
            "command_id": "c",
            "sku": "S",
            "order_no": "O1",
            "order_type": "NORMAL",
            "quantity": 2,
            "warehouse_code": None,
            **CAUSE,
        },
    ),
    (ReleaseStock, {"command_id": "c", "sku": "S", "order_no": "O1", "reserve_command_id": None, **CAUSE}),
    (StockLine, {"sku": "S", "quantity": 2}),
    (Consignee, {"name": "n", "phone": "123", "address": "a"}),
    (OrderLineAllocation, LINE),
    (
        OrderStatusChanged,
        {
            "event_id": "O1|v1",
            "order_no": "O1",
            "status": "PENDING",
            "previous_status": None,
            "reason": "",
            "lines": [OrderLineAllocation.model_construct(**LINE)],
            "version": 1,
            **CAUSE,
        },
    ),
    (
        OutboundInstruction,
        {
            "event_id": "e",
            "instruction_no": "O1-WH1",
            "order_no": "O1",
            "warehouse_code": "WH1",
            "order_type": "NORMAL",
            "consignee": Consignee.model_construct(name="n", phone="1", address="a"),
            "time_requirement": "STANDARD",
            "lines": [],
            "occurred_at": NOW,
        },
    ),
]


@pytest.mark.parametrize(("cls", "values"), SAMPLES, ids=[cls.__name__ for cls, _ in SAMPLES])
def test_construct_makes_what_model_construct_makes(cls: type[BaseModel], values: dict[str, Any]) -> None:
    fast, slow = construct(cls, **values), cls.model_construct(**values)
    assert fast == slow
    assert list(fast.__dict__) == list(slow.__dict__)  # field order
    assert fast.model_fields_set == slow.model_fields_set
    assert (fast.__pydantic_extra__, fast.__pydantic_private__) == (slow.__pydantic_extra__, slow.__pydantic_private__)
    assert repr(fast) == repr(slow)


def test_construct_refuses_an_incomplete_or_misspelt_set_of_fields() -> None:
    with pytest.raises(TypeError, match="missing"):
        construct(StockLine, sku="S")
    with pytest.raises((TypeError, KeyError)):
        construct(StockLine, sku="S", qty=1)


RECORDS = [
    (Position("WH1", 5, 2), {"on_hand_qty": 4, "version": 3}),
    (SkuStock("S", (Position("WH1"),), 2), {"reservation_seq": 3}),
    (Reservation("S", "O1", "WH1", "NORMAL", 2, 0, 0, 1), {"reserved_qty": 1}),  # type: ignore[arg-type]
    (InboundExpectation("S", "WH1", "ASN1", "PURCHASE", 4), {"outstanding_qty": -1}),  # type: ignore[arg-type]
    (Order("O1", "PENDING", lines=(OrderLine("S", 2),)), {"status": "RESERVED", "version": 2}),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("record", "changes"), RECORDS, ids=[type(r).__name__ for r, _ in RECORDS])
def test_evolve_makes_what_dataclasses_replace_makes(record: Any, changes: dict[str, Any]) -> None:
    fast, slow = evolve(record, **changes), replace(record, **changes)
    assert fast == slow and type(fast) is type(slow)
    assert all(getattr(fast, f.name) is getattr(slow, f.name) for f in fields(record))
    assert evolve(record) == record and evolve(record) is not record


def test_evolve_refuses_an_unknown_field() -> None:
    with pytest.raises(TypeError, match="no field"):
        evolve(Position("WH1"), on_hand=1)


def test_position_changes_names_every_position_field_but_its_key():
    """tables.state.PositionChanges types the fields a transition may change (_Tx.set): it
    must follow Position, or a new field could not be set through it."""
    from tables.state import Position, PositionChanges

    names = [f.name for f in fields(Position) if f.name != "warehouse_code"]
    assert list(PositionChanges.__annotations__) == names
