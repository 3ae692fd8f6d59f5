"""The OMS outbox bridge's pure part: a relayed outbox record -> an input event or a refusal.

Records are built as Debezium's outbox event router emits them (the payload column's JSON
text as the value; ``id`` and ``eventType`` headers), see ``streams/outbox.py``.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from schemas.codec import decode, encode
from schemas.events import parse_event
from schemas.inputs import OrderCancelled, OrderCreated
from streams.outbox import Refused, event_from_outbox
from streams.topics import input_key

ROW_ID = "5f0c6f4e-8a47-4a3c-9d1e-2b7c1e0a9f11"


def order_created(**overrides: Any) -> dict[str, Any]:
    body = {
        "eventType": "OrderCreated",
        "eventId": "oc-1",
        "occurredAt": "2025-11-22T10:00:00+08:00",
        "orderNo": "OMS202511220001",
        "orderType": "NORMAL",
        "consignee": {"name": "张三", "phone": "13800138000", "address": "北京市朝阳区"},
        "items": [{"sku": "SKU001", "quantity": 2, "price": "19.90"}],
        "totalAmount": "39.80",
        "timeRequirement": "STANDARD",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def record(body: Any, *, raw_numbers: bool = False) -> bytes:
    text = json.dumps(body, ensure_ascii=False)
    if raw_numbers:  # money as JSON numbers, as an OMS writing jsonb would
        text = text.replace('"19.90"', "19.90").replace('"39.80"', "39.80")
    return text.encode()


def headers(event_type: str | None = "OrderCreated", row_id: str | None = ROW_ID) -> dict[str, bytes]:
    out = {"__debezium.context.connectorName": b"postgresql"}
    if row_id is not None:
        out["id"] = row_id.encode()
    if event_type is not None:
        out["eventType"] = event_type.encode()
    return out


def test_an_outbox_row_becomes_the_same_event_as_its_json_line() -> None:
    body = order_created()
    event = event_from_outbox(record(body), headers())
    assert event == parse_event(body)
    assert isinstance(event, OrderCreated)
    assert input_key(event) == "OMS202511220001"
    assert decode(encode(event)) == event


def test_money_keeps_its_digits_when_the_payload_has_json_numbers() -> None:
    event = event_from_outbox(record(order_created(), raw_numbers=True), headers())
    assert isinstance(event, OrderCreated)
    assert event.total_amount == Decimal("39.80")
    assert event.items[0].price == Decimal("19.90")


def test_the_rows_type_supplies_a_missing_event_type() -> None:
    event = event_from_outbox(record(order_created(eventType=None)), headers("OrderCreated"))
    assert isinstance(event, OrderCreated)


def test_the_rows_id_supplies_a_missing_event_id() -> None:
    event = event_from_outbox(record(order_created(eventId=None)), headers())
    assert isinstance(event, OrderCreated)
    assert event.event_id == ROW_ID


def test_the_payloads_own_event_id_wins_over_the_rows_id() -> None:
    event = event_from_outbox(record(order_created()), headers())
    assert isinstance(event, OrderCreated) and event.event_id == "oc-1"


def test_headers_as_pairs_are_read_like_a_mapping() -> None:
    pairs = [("id", ROW_ID.encode()), ("eventType", b"OrderCancelled")]
    body = {
        "eventId": "cx-1",
        "occurredAt": "2025-11-22T11:00:00+08:00",
        "orderNo": "OMS1",
        "reason": "customer changed mind",
    }
    event = event_from_outbox(record(body), pairs)
    assert isinstance(event, OrderCancelled) and event.reason == "customer changed mind"


def test_a_payload_double_encoded_as_a_json_string_is_read_through() -> None:
    as_string = json.dumps(json.dumps(order_created())).encode()
    assert isinstance(event_from_outbox(as_string, headers()), OrderCreated)


def test_a_type_that_contradicts_the_payload_is_refused() -> None:
    refused = event_from_outbox(record(order_created()), headers("OrderCancelled"))
    assert isinstance(refused, Refused) and refused.error_type == "VALIDATION"
    assert "OrderCreated" in refused.reason and "OrderCancelled" in refused.reason


@pytest.mark.parametrize("value", [None, b""])
def test_an_empty_record_is_a_decode_error(value: bytes | None) -> None:
    refused = event_from_outbox(value, headers())
    assert isinstance(refused, Refused) and refused.error_type == "DECODE"


@pytest.mark.parametrize("value", [b"\xff\xfe not utf-8", b"{not json", b'{"eventType": "OrderCreated"'])
def test_unreadable_bytes_are_a_decode_error(value: bytes) -> None:
    refused = event_from_outbox(value, headers())
    assert isinstance(refused, Refused) and refused.error_type == "DECODE"


@pytest.mark.parametrize("body", [[1, 2], 42, None, "just a string"])
def test_json_that_is_not_an_object_is_a_validation_error(body: Any) -> None:
    refused = event_from_outbox(json.dumps(body).encode(), headers())
    assert isinstance(refused, Refused)
    # "just a string" is read through once and is then not JSON: undecodable.
    assert refused.error_type == ("DECODE" if body == "just a string" else "VALIDATION")


def test_an_invalid_field_is_reported_by_its_camel_case_path() -> None:
    bad = order_created(items=[{"sku": "SKU001", "quantity": 0, "price": "1.00"}])
    refused = event_from_outbox(record(bad), headers())
    assert isinstance(refused, Refused) and refused.error_type == "VALIDATION"
    assert "items.0.quantity" in refused.reason


def test_an_unknown_event_type_is_refused() -> None:
    refused = event_from_outbox(record(order_created(eventType="OrderTeleported")), headers(None))
    assert isinstance(refused, Refused) and refused.error_type == "VALIDATION"
    assert "OrderTeleported" in refused.reason


def test_no_event_type_anywhere_is_refused() -> None:
    refused = event_from_outbox(record(order_created(eventType=None)), headers(None))
    assert isinstance(refused, Refused) and refused.error_type == "VALIDATION"


def test_another_systems_event_is_refused_on_the_oms_outbox() -> None:
    receipt = {
        "eventType": "GoodsReceived",
        "eventId": "rc-1",
        "occurredAt": "2025-11-22T10:00:00+08:00",
        "receiptNo": "RC1",
        "warehouseCode": "WH001",
        "lines": [{"sku": "SKU001", "sellableQty": 5}],
    }
    assert not isinstance(parse_event(receipt), OrderCreated)  # a valid event, elsewhere
    refused = event_from_outbox(record(receipt), headers("GoodsReceived"))
    assert isinstance(refused, Refused) and refused.error_type == "VALIDATION"
    assert "not an OMS event" in refused.reason


def test_unknown_fields_are_refused_as_everywhere_else() -> None:
    refused = event_from_outbox(record(order_created(couponCode="X")), headers())
    assert isinstance(refused, Refused) and refused.error_type == "VALIDATION"


def test_an_undecodable_header_is_ignored_not_trusted() -> None:
    hdrs = {"id": b"\xff\xff", "eventType": b"OrderCreated"}
    event = event_from_outbox(record(order_created(eventId=None)), hdrs)
    assert isinstance(event, Refused) and "eventId" in event.reason


def test_a_fresh_row_id_is_a_valid_event_id() -> None:
    row_id = str(uuid.uuid4())
    event = event_from_outbox(record(order_created(eventId=None)), headers(row_id=row_id))
    assert isinstance(event, OrderCreated) and event.event_id == row_id
