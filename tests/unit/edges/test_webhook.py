"""The TMS/WMS webhook without Kafka: the bearer check, body parsing and validation (one
event or an array, all or nothing, which system may post what), and the HTTP answers of the
shell in front of a publisher that records what it was given."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from config.settings import Settings
from schemas.base import SourceSystem
from schemas.codec import decode
from schemas.inputs import MOVEMENT_EVENTS, SHIPMENT_EVENTS, GoodsReceived
from streams.topics import Topics
from streams.webhook import (
    EVENTS_BY_SOURCE,
    AckedProducer,
    Delivery,
    NotDurable,
    Record,
    Rejection,
    Webhook,
    authorized,
    parse_body,
)
from streams.wire import RegistryUnavailable, Wire

TOKEN = SecretStr("s3cret-token")
TMS, WMS = SourceSystem.TMS, SourceSystem.WMS
SEED_DAY = Path(__file__).resolve().parents[3] / "connectors" / "samples" / "seed-day.jsonl"


def receipt(event_id: str = "wms-rc-1", **extra: Any) -> dict[str, Any]:
    return {
        "eventType": "GoodsReceived",
        "eventId": event_id,
        "occurredAt": "2025-11-22T08:00:00+08:00",
        "receiptNo": "RC1",
        "warehouseCode": "WH001",
        "lines": [{"sku": "SKU001", "sellableQty": 10}],
        **extra,
    }


def picked_up(event_id: str = "tms-1") -> dict[str, Any]:
    return {
        "eventType": "PickedUp",
        "eventId": event_id,
        "occurredAt": "2025-11-22T12:00:00+08:00",
        "orderNo": "OMS1",
        "shipmentNo": "SH1",
        "waybillNo": "SF1",
        "location": "北京分拨中心",
    }


def dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


# --- the bearer check -------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Bearer s3cret-token", "bearer s3cret-token", "  Bearer   s3cret-token "])
def test_the_configured_token_passes(header: str) -> None:
    assert authorized(header, TOKEN)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "s3cret-token",
        "Basic s3cret-token",
        "Bearer s3cret-token2",
        "Bearer s3cret-toke",
        "Bearer S3CRET-TOKEN",
        "Bearer s3cret-tökén",
        "Bearer \udcff",
    ],
)
def test_anything_else_fails_without_raising(header: str | None) -> None:
    assert not authorized(header, TOKEN)


# --- which system posts what ------------------------------------------------------------


def test_every_shipment_and_movement_event_belongs_to_exactly_one_source() -> None:
    tms, wms, erp = set(EVENTS_BY_SOURCE[TMS]), set(EVENTS_BY_SOURCE[WMS]), set(EVENTS_BY_SOURCE[SourceSystem.ERP])
    assert not tms & wms and not erp & (tms | wms)
    assert tms | wms | erp == {cls.__name__ for cls in SHIPMENT_EVENTS + MOVEMENT_EVENTS}
    assert erp == {"ReorderPointSet"}  # the planner's setting
    assert "OrderShipped" in wms  # the warehouse ships (its contract's source is WMS)
    assert tms == {"PickedUp", "InTransit", "OutForDelivery", "Delivered", "DeliveryFailed", "ReturnPickedUp"}


def test_each_tms_and_wms_line_of_the_seed_day_is_accepted_by_its_own_route_only() -> None:
    lines = [json.loads(line) for line in SEED_DAY.read_text(encoding="utf-8").splitlines() if line.strip()]
    posted = 0
    for line in lines:
        if (
            line["eventType"].startswith("Order")
            and line["eventType"] != "OrderShipped"
            or line["eventType"] == "ReturnRequested"
        ):
            for system in (TMS, WMS):
                assert isinstance(parse_body(dumps(line), system), Rejection)
            continue
        own = TMS if line["eventType"] in EVENTS_BY_SOURCE[TMS] else WMS
        other = WMS if own is TMS else TMS
        events = parse_body(dumps(line), own)
        assert isinstance(events, list) and events[0].event_id == line["eventId"], events
        refused = parse_body(dumps(line), other)
        assert isinstance(refused, Rejection) and refused.status == 422
        assert f"POST it to /webhooks/{own.lower()}" in refused.invalid[0]["errors"][0]["message"]
        posted += 1
    assert posted >= 10


# --- parsing and validation -------------------------------------------------------------


def test_one_object_is_one_event() -> None:
    events = parse_body(dumps(receipt()), WMS)
    assert isinstance(events, list) and len(events) == 1
    assert isinstance(events[0], GoodsReceived) and events[0].source is WMS


def test_an_array_is_its_events_in_order() -> None:
    events = parse_body(dumps([receipt("a"), receipt("b"), receipt("c")]), WMS)
    assert isinstance(events, list)
    assert [e.event_id for e in events] == ["a", "b", "c"]


def test_one_invalid_item_refuses_the_whole_array_listing_each_bad_item() -> None:
    bad_line = receipt("b", lines=[{"sku": "SKU001"}])
    no_receipt = receipt("d")
    del no_receipt["receiptNo"]
    refused = parse_body(dumps([receipt("a"), bad_line, receipt("c"), no_receipt, 7]), WMS)
    assert isinstance(refused, Rejection) and refused.status == 422
    assert "3 of 5 events are invalid" in refused.error and "nothing was published" in refused.error
    assert [item["index"] for item in refused.invalid] == [1, 3, 4]
    assert refused.invalid[0]["eventType"] == "GoodsReceived"
    assert refused.invalid[0]["errors"] == [
        {"field": "lines.0", "message": "Value error, sellableQty + damagedQty must be > 0"}
    ]
    assert refused.invalid[1]["errors"] == [{"field": "receiptNo", "message": "Field required"}]
    assert refused.invalid[2] == {
        "index": 4,
        "eventType": None,
        "errors": [{"field": "<event>", "message": "expected a JSON object, got number"}],
    }
    body = refused.body()
    assert body["status"] == 422 and body["error"] == refused.error and len(body["invalid"]) == 3


@pytest.mark.parametrize(
    ("item", "system", "field", "words"),
    [
        (picked_up(), WMS, "eventType", "PickedUp is a TMS event: POST it to /webhooks/tms"),
        (receipt(), TMS, "eventType", "GoodsReceived is a WMS event: POST it to /webhooks/wms"),
        (
            {"eventType": "OrderPaid", "eventId": "x", "occurredAt": "2025-11-22T08:00:00Z", "orderNo": "O1"},
            TMS,
            "eventType",
            "OrderPaid is not a TMS event (the OMS publishes it)",
        ),
        (
            {**picked_up(), "eventType": "Teleported"},
            TMS,
            "eventType",
            "eventType 'Teleported' is not one of: PickedUp",
        ),
        ({k: v for k, v in picked_up().items() if k != "eventType"}, TMS, "eventType", "eventType None is not one of"),
        ({**picked_up(), "source": "WMS"}, TMS, "source", "WMS events are not accepted from the TMS webhook"),
        ({**picked_up(), "secret": 1}, TMS, "secret", "Extra inputs are not permitted"),
        (
            {**receipt(), "lines": [{"sku": "SKU001", "sellableQty": 2.0}]},
            WMS,
            "lines.0.sellableQty",
            "Input should be a valid integer",
        ),
    ],
)
def test_a_wrong_event_is_422_naming_the_field(
    item: dict[str, Any], system: SourceSystem, field: str, words: str
) -> None:
    refused = parse_body(dumps(item), system)
    assert isinstance(refused, Rejection) and refused.status == 422, refused
    assert refused.invalid[0]["index"] == 0
    errors = refused.invalid[0]["errors"]
    assert errors[0]["field"] == field and words in errors[0]["message"], errors


def test_a_source_matching_the_route_is_fine() -> None:
    assert isinstance(parse_body(dumps({**picked_up(), "source": "TMS"}), TMS), list)


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b"", 400, "body is not JSON"),
        (b'{"eventType": ', 400, "body is not JSON"),
        (b"\xff\xfe{}", 400, "body is not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b"[" + b"9" * 5000 + b"]", 400, "Exceeds the limit"),
        (b"[]", 422, "the array holds no events"),
        (b'"GoodsReceived"', 422, "expected an event object or an array of them, got string"),
        (b"null", 422, "got null"),
    ],
)
def test_a_body_that_is_not_events_is_refused(raw: bytes, status: int, words: str) -> None:
    refused = parse_body(raw, WMS)
    assert isinstance(refused, Rejection) and refused.status == status and words in refused.error, refused


# --- the HTTP shell, in front of a publisher that only records ----------------------------


class RecordingPublisher:
    def __init__(self, fail: str | None = None) -> None:
        self.sent: list[Record] = []
        self.fail = fail

    async def send(self, records: Sequence[Record]) -> list[Delivery]:
        if self.fail:
            raise NotDurable(self.fail)
        self.sent.extend(records)
        return [Delivery(r.topic, 0, len(self.sent) - len(records) + i) for i, r in enumerate(records)]

    def close(self, timeout_s: float) -> None:
        pass


def serve(webhook: Webhook, exchange: Callable[[TestClient[Any, Any]], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        app = web.Application()

        async def handler(request: web.Request) -> web.Response:
            return await webhook.handle(request, request.match_info["source"])

        app.router.add_post("/webhooks/{source:tms|wms}", handler)
        async with TestClient(TestServer(app)) as client:
            return await exchange(client)

    return asyncio.run(main())


def hook(token: SecretStr | None = TOKEN, max_bytes: int = 4096, fail: str | None = None) -> Webhook:
    settings = Settings(topic_prefix="t.")
    return Webhook(
        token=token,
        max_bytes=max_bytes,
        topics=Topics(settings),
        publisher=RecordingPublisher(fail),
        encode=Wire(settings).encode,
    )


AUTH = {"Authorization": "Bearer s3cret-token", "Content-Type": "application/json"}


def post(
    webhook: Webhook,
    path: str,
    data: bytes | Any,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async def exchange(client: TestClient[Any, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        async with client.post(path, data=data, headers=AUTH if headers is None else headers) as response:
            return response.status, await response.json(), dict(response.headers)

    return serve(webhook, exchange)


def sent(webhook: Webhook) -> list[Record]:
    assert isinstance(webhook.publisher, RecordingPublisher)
    return webhook.publisher.sent


def test_accepted_events_are_published_keyed_and_encoded_and_answered_202_with_offsets() -> None:
    webhook = hook()
    transfer = {
        "eventType": "TransferDispatched",
        "eventId": "trf-1",
        "occurredAt": "2025-11-23T09:00:00+08:00",
        "transferNo": "TRF1",
        "fromWarehouseCode": "WH002",
        "toWarehouseCode": "WH001",
        "lines": [{"sku": "SKU003", "quantity": 5}],
    }
    status, body, _ = post(webhook, "/webhooks/wms", dumps([receipt(), transfer]))
    assert status == 202, body
    assert body == {
        "accepted": 2,
        "events": [
            {"eventId": "wms-rc-1", "topic": "t.stock-movements", "partition": 0, "offset": 0},
            {"eventId": "trf-1", "topic": "t.stock-movements", "partition": 0, "offset": 1},
        ],
    }
    records = sent(webhook)
    assert [r.key for r in records] == [b"WH001", b"WH002"]  # by warehouse; a transfer by its sender
    assert decode(records[0].value).event_id == "wms-rc-1"
    assert answers(webhook) == {("wms", "202", "accepted"): 1}
    assert webhook.metrics.value("inventory_webhook_events_accepted_total", source="wms") == 2

    status, body, _ = post(webhook, "/webhooks/tms", dumps(picked_up()))
    assert status == 202 and body["events"][0]["topic"] == "t.shipments"
    assert sent(webhook)[-1].key == b"OMS1"


def answers(webhook: Webhook) -> dict[tuple[str, str, str], float]:
    """(source, status, reason) -> requests, as the worker's /metrics exports them."""
    body, _ = webhook.metrics.render()
    return {
        (s.labels["source"], s.labels["status"], s.labels["reason"]): s.value
        for family in text_string_to_metric_families(body.decode())
        if family.name == "inventory_webhook_requests"
        for s in family.samples
    }


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({"Content-Type": "application/json"}, 401, "unauthorized"),
        ({**AUTH, "Authorization": "Bearer nope"}, 401, "unauthorized"),
        ({**AUTH, "Authorization": "Basic czNjcmV0LXRva2Vu"}, 401, "unauthorized"),
        ({**AUTH, "Content-Type": "text/plain"}, 415, "media_type"),
        ({**AUTH, "Content-Type": "application/json; charset=latin-1"}, 415, "media_type"),
    ],
)
def test_unauthenticated_or_mistyped_requests_are_refused_and_publish_nothing(
    headers: dict[str, str], status: int, reason: str
) -> None:
    webhook = hook()
    got, body, response_headers = post(webhook, "/webhooks/wms", dumps(receipt()), headers)
    assert (got, body["status"]) == (status, status) and body["error"]
    if status == 401:
        assert response_headers["WWW-Authenticate"] == "Bearer"
    assert sent(webhook) == [] and answers(webhook) == {("wms", str(status), reason): 1}


def test_charset_utf8_is_fine() -> None:
    status, _, _ = post(
        hook(), "/webhooks/wms", dumps(receipt()), {**AUTH, "Content-Type": "application/json; charset=UTF-8"}
    )
    assert status == 202


def test_without_a_configured_token_the_webhook_is_off_for_everyone() -> None:
    webhook = hook(token=None)
    status, body, _ = post(webhook, "/webhooks/tms", dumps(picked_up()))
    assert status == 503 and "no webhook token is configured" in body["error"]
    assert sent(webhook) == []


def test_a_declared_oversized_body_is_413_before_it_is_read() -> None:
    webhook = hook(max_bytes=1000)
    big = dumps([receipt(f"e{i}") for i in range(20)])
    assert len(big) > 1000
    status, body, headers = post(webhook, "/webhooks/wms", big)
    assert status == 413 and body == {"error": "body larger than 1000 bytes", "status": 413}
    assert headers.get("Connection", "").lower() == "close"
    assert sent(webhook) == []


def test_a_streamed_body_without_length_is_cut_at_the_limit() -> None:
    webhook = hook(max_bytes=1000)
    chunks = [b"[" + dumps(receipt("e0"))] + [b"," + dumps(receipt(f"e{i}")) for i in range(1, 50)] + [b"]"]

    async def body() -> Any:
        for chunk in chunks:
            yield chunk

    async def exchange(client: TestClient[Any, Any]) -> tuple[int, Any]:
        async with client.post("/webhooks/wms", data=body(), headers=AUTH) as response:
            assert "Content-Length" not in response.request_info.headers
            return response.status, await response.json()

    status, answer = serve(webhook, exchange)
    assert status == 413, answer
    assert sent(webhook) == []


def test_a_body_at_the_limit_is_read() -> None:
    raw = dumps(receipt())
    status, _, _ = post(hook(max_bytes=len(raw)), "/webhooks/wms", raw)
    assert status == 202


@pytest.mark.parametrize(("data", "status"), [(b"{not json", 400), (b"[]", 422), (dumps([receipt(), {}]), 422)])
def test_malformed_or_invalid_bodies_publish_nothing(data: bytes, status: int) -> None:
    webhook = hook()
    got, body, _ = post(webhook, "/webhooks/wms", data)
    assert got == status and body["status"] == status
    assert sent(webhook) == []


def test_a_batch_the_broker_did_not_acknowledge_is_503_asking_for_a_retry() -> None:
    webhook = hook(fail="t.stock-movements: Local: Message timed out")
    status, body, _ = post(webhook, "/webhooks/wms", dumps(receipt()))
    assert status == 503
    assert "retry" in body["error"] and "Message timed out" in body["error"]
    assert answers(webhook) == {("wms", "503", "not_written"): 1}
    assert webhook.metrics.value("inventory_webhook_events_accepted_total", source="wms") == 0


def test_a_schema_registry_that_does_not_answer_is_503_and_nothing_is_sent() -> None:
    webhook = hook()
    encoded: list[str] = []

    def registry_down(event: Any, topic: str) -> bytes:
        if encoded:
            raise RegistryUnavailable("schema registry http://127.0.0.1:1: ConnectError")
        encoded.append(event.event_id)
        return b"framed"

    webhook.encode = registry_down
    status, body, _ = post(webhook, "/webhooks/wms", dumps([receipt("a"), receipt("b")]))
    assert status == 503 and "retry" in body["error"] and "ConnectError" in body["error"]
    assert sent(webhook) == [] and answers(webhook) == {("wms", "503", "registry_unavailable"): 1}


# --- the producer's failure path, without a broker ----------------------------------------


def test_a_record_librdkafka_cannot_deliver_is_not_durable() -> None:
    producer = AckedProducer(
        {
            "bootstrap.servers": "127.0.0.1:1",
            "delivery.timeout.ms": 300,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 0,
            "reconnect.backoff.max.ms": 100,
            "log_level": 0,
        }
    )

    async def main() -> None:
        with pytest.raises(NotDurable, match="1 of 1 records not written"):
            await producer.send([Record("t.stock-movements", b"WH001", b"x")])

    try:
        asyncio.run(main())
    finally:
        producer.close(0.1)
    with pytest.raises(NotDurable, match="shutting down"):
        asyncio.run(producer.send([Record("t.stock-movements", b"WH001", b"x")]))
