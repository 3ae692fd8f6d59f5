"""Receipt retention on a real worker (RocksDB tables, changelogs on the broker): a receipt a
week and a day behind its partition's newest event is pruned by a later transaction - its
tombstone reaches the changelog - and the same event sent again is then an ANOMALY that
changes nothing, while a re-send within the retention is a plain duplicate."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.kafka_config import consumer_config
from streams.keys import CLOCK, INDEX, receipt_key
from tests.integration.conftest import Deployment, wait_until

pytestmark = pytest.mark.kafka


def receipt(sku: str, qty: int, at: str) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    return {
        "eventType": "GoodsReceived",
        "eventId": f"rc-{tag}",
        "occurredAt": at,
        "receiptNo": f"RC-{tag}",
        "warehouseCode": "WH1",
        "lines": [{"sku": sku, "sellableQty": qty}],
    }


def changelog_keys(d: Deployment, topic: str) -> dict[bytes, bytes | None]:
    """Every key of a changelog with its last value (None: a tombstone), read to the end."""
    consumer = Consumer(consumer_config(d.settings, group_id=f"check-{uuid.uuid4().hex[:8]}"))
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        last: dict[bytes, bytes | None] = {}
        read = {p: 0 for p in parts}
        deadline = time.monotonic() + 30
        while any(read[p] < ends[p] for p in parts) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            last[msg.key()] = msg.value()
            read[msg.partition()] = msg.offset() + 1
        return last
    finally:
        consumer.close()


def test_a_receipt_past_the_horizon_is_pruned_and_its_resend_refused(fresh_deployment: Deployment) -> None:
    d = fresh_deployment
    worker = d.start_worker("retention")
    try:
        sku = f"SKU-{uuid.uuid4().hex[:8]}"

        def on_hand_is(qty: int) -> dict[str, Any]:
            return wait_until(
                lambda: (p := d.position(worker, sku, "WH1")) and p["onHandQty"] == qty and p, timeout_s=30
            )

        day0 = receipt(sku, 10, "2025-11-01T08:00:00+08:00")
        d.publish([day0])
        on_hand_is(10)
        day8 = receipt(sku, 5, "2025-11-09T09:00:00+08:00")  # same SKU: same partition, its clock moves
        d.publish([day8])
        on_hand_is(15)

        d.publish([day0, day8])  # day 0 again: refused; day 8 again: a duplicate
        refused = f"{day0['eventId']}|{sku}|receive|beyond-retention"
        alerts = wait_until(
            lambda: [a for a in d.read(d.topics.inventory_alerts) if a.get("alertId") == refused], timeout_s=30
        )
        assert alerts[0]["alertType"] == "ANOMALY"
        time.sleep(2)  # the duplicate, read after the refusal on the same partition, changes nothing either
        position = on_hand_is(15)
        assert position["version"] == 2
        assert not [a for a in d.read(d.topics.inventory_alerts) if day8["eventId"] in a.get("alertId", "")]

        keys = changelog_keys(d, d.topics.changelog("stock-state"))
        pruned = [
            receipt_key(f"{day0['eventId']}|{sku}|receive"),
            receipt_key(f"doc|GoodsReceived|{day0['receiptNo']}|{sku}"),
        ]
        for k in pruned:
            assert k in keys and keys[k] is None, k  # written, then a tombstone
        assert keys[receipt_key(f"{day8['eventId']}|{sku}|receive")] is not None
        assert any(k.startswith(INDEX) for k in keys) and CLOCK in keys
    finally:
        worker.stop()
