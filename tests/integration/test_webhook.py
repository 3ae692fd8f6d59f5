"""The TMS/WMS webhook on a real worker and broker: an accepted event is on its input topic at
the offset the 202 names and changes the inventory; a refused request (bad token, too large,
not JSON, invalid, wrong source, wrong media type) writes nothing to any input topic."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas.codec import decode
from streams.kafka_config import consumer_config
from streams.worker_process import WorkerProcess
from tests.integration.conftest import Deployment, wait_until

pytestmark = pytest.mark.kafka

TOKEN = "webhook-test-token-0123456789"
MAX_BYTES = 4096
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def worker(deployment: Deployment) -> WorkerProcess:
    deployment.env = {**deployment.env, "INVENTORY_WEBHOOK_TOKEN": TOKEN, "INVENTORY_WEBHOOK_MAX_BYTES": str(MAX_BYTES)}
    return deployment.start_worker("webhook")


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def receipt(sku: str, qty: int, wh: str = "WH001", event_id: str | None = None) -> dict[str, Any]:
    return {
        "eventType": "GoodsReceived",
        "eventId": event_id or _id("wms-rc"),
        "occurredAt": "2025-11-22T08:00:00+08:00",
        "receiptNo": _id("RC"),
        "warehouseCode": wh,
        "lines": [{"sku": sku, "sellableQty": qty}],
    }


def post(
    worker: WorkerProcess, path: str, body: bytes | Iterable[bytes], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", worker.web_port, timeout=30)
    try:
        chunked = not isinstance(body, bytes)
        conn.request("POST", path, body=body, headers=AUTH if headers is None else headers, encode_chunked=chunked)
        response = conn.getresponse()
        return response.status, json.loads(response.read()), dict(response.getheaders())
    finally:
        conn.close()


def end_offsets(d: Deployment) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of the three input topics."""
    consumer = Consumer(consumer_config(d.settings, group_id=_id("webhook-probe")))
    try:
        out = {}
        for topic in (d.topics.orders, d.topics.shipments, d.topics.stock_movements):
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            for p in partitions:
                out[(topic, p)] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return out
    finally:
        consumer.close()


def record_at(d: Deployment, topic: str, partition: int, offset: int) -> Any:
    consumer = Consumer(consumer_config(d.settings, group_id=_id("webhook-probe")))
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        msg = consumer.poll(10)
        assert msg is not None and msg.error() is None, msg and msg.error()
        return msg.key(), decode(msg.value())
    finally:
        consumer.close()


def test_an_accepted_receipt_is_on_its_topic_at_the_202s_offset_and_changes_the_position(
    deployment: Deployment, worker: WorkerProcess
) -> None:
    d, sku = deployment, _id("SKU")
    first = receipt(sku, 7)
    status, body, _ = post(worker, "/webhooks/wms", json.dumps(first).encode())
    assert status == 202, body
    [ack] = body["events"]
    assert body["accepted"] == 1 and ack["eventId"] == first["eventId"]
    assert ack["topic"] == d.topics.stock_movements
    key, event = record_at(d, ack["topic"], ack["partition"], ack["offset"])
    assert key == b"WH001" and event.event_id == first["eventId"]
    wait_until(lambda: (p := d.position(worker, sku, "WH001")) and p["availableQty"] == 7 and p, timeout_s=30)

    # A batch, and a retry of the first receipt (same eventId) inside it: applied once.
    status, body, _ = post(worker, "/webhooks/wms", json.dumps([receipt(sku, 3, "WH002"), first]).encode())
    assert status == 202 and body["accepted"] == 2, body
    assert [e["eventId"] for e in body["events"]][1] == first["eventId"]
    wait_until(lambda: (p := d.position(worker, sku, "WH002")) and p["availableQty"] == 3, timeout_s=30)
    time.sleep(1.0)  # the retried receipt, one partition behind, is applied by now too
    assert d.position(worker, sku, "WH001")["availableQty"] == 7  # type: ignore[index]


def test_an_accepted_tracking_event_goes_to_the_shipments_topic(deployment: Deployment, worker: WorkerProcess) -> None:
    d = deployment
    before = end_offsets(d)
    order_no = _id("OMS")
    event = {
        "eventType": "PickedUp",
        "eventId": _id("tms"),
        "occurredAt": "2025-11-22T12:00:00+08:00",
        "orderNo": order_no,
        "shipmentNo": _id("SH"),
        "waybillNo": "SF1",
        "location": "北京分拨中心",
    }
    status, body, _ = post(worker, "/webhooks/tms", json.dumps(event, ensure_ascii=False).encode())
    assert status == 202, body
    [ack] = body["events"]
    after = end_offsets(d)
    grew = {tp: after[tp] - before[tp] for tp in after if after[tp] != before[tp]}
    assert grew == {(d.topics.shipments, ack["partition"]): 1}
    assert after[(ack["topic"], ack["partition"])] == ack["offset"] + 1
    assert record_at(d, ack["topic"], ack["partition"], ack["offset"])[0] == order_no.encode()


def _oversized() -> bytes:
    return json.dumps([receipt("SKU-BIG", 1) for _ in range(40)]).encode()


def _streamed_oversized() -> Iterable[bytes]:
    body = _oversized()
    return [body[i : i + 1000] for i in range(0, len(body), 1000)]


def _invalid() -> bytes:
    bad = receipt("SKU-BAD", 1)
    del bad["receiptNo"]
    return json.dumps([receipt("SKU-OK", 1), bad]).encode()


REFUSALS = {
    "no token": (lambda: json.dumps(receipt("SKU-X", 1)).encode(), {"Content-Type": "application/json"}, 401),
    "bad token": (
        lambda: json.dumps(receipt("SKU-X", 1)).encode(),
        {**AUTH, "Authorization": "Bearer not-the-token"},
        401,
    ),
    "oversized": (_oversized, AUTH, 413),
    "oversized, streamed without a length": (_streamed_oversized, AUTH, 413),
    "malformed JSON": (lambda: b'{"eventType": "GoodsReceived", ', AUTH, 400),
    "invalid event (all or nothing)": (_invalid, AUTH, 422),
    "event of the other system": (
        lambda: json.dumps(
            {
                "eventType": "Delivered",
                "eventId": "tms-x",
                "occurredAt": "2025-11-22T12:00:00+08:00",
                "orderNo": "OMS1",
                "shipmentNo": "SH1",
                "waybillNo": "SF1",
            }
        ).encode(),
        AUTH,
        422,
    ),
    "not JSON media type": (
        lambda: json.dumps(receipt("SKU-X", 1)).encode(),
        {**AUTH, "Content-Type": "text/plain"},
        415,
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_request_writes_nothing(deployment: Deployment, worker: WorkerProcess, case: str) -> None:
    body, headers, expected = REFUSALS[case]
    before = end_offsets(deployment)
    status, answer, response_headers = post(worker, "/webhooks/wms", body(), headers)
    assert status == expected, answer
    assert answer["status"] == expected and answer["error"], answer
    if expected == 401:
        assert response_headers["WWW-Authenticate"] == "Bearer"
    if expected == 413:
        assert answer["error"] == f"body larger than {MAX_BYTES} bytes"
    if expected == 422 and case.startswith("invalid"):
        assert [item["index"] for item in answer["invalid"]] == [1]
        assert answer["invalid"][0]["errors"] == [{"field": "receiptNo", "message": "Field required"}]
    time.sleep(0.3)  # a stray record (linger 0) would have landed by now
    assert end_offsets(deployment) == before
