"""The producer CLI as an operator runs it through a broker outage: the run against a broker
that does not answer names every line and writes them to the unsent file (exit 75); producing
that file once the broker answers sends each of them, once, to its input topic, and removes
the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from config.settings import REPO_ROOT
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.kafka


def events(tag: str) -> list[dict[str, Any]]:
    receipts = [
        {
            "eventType": "GoodsReceived",
            "eventId": f"rc-{tag}-{i}",
            "occurredAt": "2025-11-22T08:00:00+08:00",
            "receiptNo": f"RC-{tag}-{i}",
            "warehouseCode": f"WH00{i % 3 + 1}",
            "lines": [{"sku": f"SKU-{tag}-{i}", "sellableQty": 10}],
        }
        for i in range(6)
    ]
    orders = [
        {
            "eventType": "OrderCreated",
            "eventId": f"oc-{tag}-{i}",
            "occurredAt": "2025-11-22T09:00:00+08:00",
            "orderNo": f"OMS-{tag}-{i}",
            "orderType": "NORMAL",
            "consignee": {"name": "张三", "phone": "13800138000", "address": "北京市朝阳区"},
            "items": [{"sku": f"SKU-{tag}-{i}", "quantity": 1, "price": 9.0}],
            "totalAmount": 9.0,
            "timeRequirement": "STANDARD",
        }
        for i in range(4)
    ]
    return receipts + orders


def run_cli(deployment: Deployment, bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **deployment.env, "INVENTORY_BOOTSTRAP_SERVERS": bootstrap}
    return subprocess.run(
        [sys.executable, "-m", "connectors.produce", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_lines_not_sent_during_an_outage_are_resumed_once(deployment: Deployment, tmp_path: Path) -> None:
    day = events(uuid.uuid4().hex[:8])
    source = tmp_path / "day.jsonl"
    source.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in day), encoding="utf-8")

    down = run_cli(deployment, "127.0.0.1:1", str(source), "--retry-for", "1")
    assert down.returncode == 75, down.stderr
    unsent = tmp_path / "day.jsonl.unsent"
    assert f"not sent: lines 1-{len(day)}" in down.stderr
    assert unsent.read_text(encoding="utf-8") == source.read_text(encoding="utf-8")

    up = run_cli(deployment, deployment.settings.bootstrap_servers, str(unsent))
    assert up.returncode == 0, up.stderr
    assert f"{len(day)} valid, 0 invalid, {len(day)} sent, 0 not sent" in up.stderr
    assert not unsent.exists()

    topics = deployment.topics
    written = Counter(r["eventId"] for topic in (topics.orders, topics.stock_movements) for r in deployment.read(topic))
    assert written == Counter(e["eventId"] for e in day)  # every line, once
