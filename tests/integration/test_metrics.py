"""/metrics of a real worker (its webhook included) and of a read process, read with
Prometheus' own parsers (``prometheus_client.parser``; ``.openmetrics.parser`` when asked for
OpenMetrics): every family has HELP and a type, counters end in ``_total`` and timings in
``_seconds``; the lag gauge has a series per assigned topic partition and reaches 0 on an idle
worker (the tables' changelogs, never committed by the group, are left out, so a lag alert can
clear); a poison record on an input topic is counted as a dead letter with its topic and
reason and listed by GET /dead-letters/latest; the webhook's answers are counted by status;
the offset commits are timed."""

from __future__ import annotations

import http.client
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as text_families

from streams.worker_process import ReaderProcess, WorkerProcess
from tests.integration.conftest import Deployment, free_port, wait_until

pytestmark = pytest.mark.kafka

SEED_DAY = Path(__file__).resolve().parents[2] / "connectors" / "samples" / "seed-day.jsonl"
TOKEN = "metrics-test-webhook-token-0123"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def scrape(url: str, accept: str | None = None) -> tuple[str, dict[str, Any]]:
    """(content type, family name -> family) of ``url``/metrics."""
    request = urllib.request.Request(f"{url}/metrics", headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        content_type, text = response.headers["Content-Type"], response.read().decode()
    parse = openmetrics_families if content_type.startswith("application/openmetrics-text") else text_families
    return content_type, {f.name: f for f in parse(text)}


def conventional(families: dict[str, Any]) -> None:
    for name, family in families.items():
        assert family.documentation, f"{name} has no HELP"
        assert family.type in ("counter", "gauge", "histogram"), (name, family.type)
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), name
        if family.type == "histogram":
            assert name.endswith("_seconds"), name
        assert not any(s.name.endswith("_created") for s in family.samples), name


def series(families: dict[str, Any], name: str, sample: str | None = None) -> dict[tuple[str, ...], float]:
    """Sorted label values -> value of ``name``'s samples (``sample``: one of a histogram's)."""
    return {
        tuple(v for _, v in sorted(s.labels.items())): s.value
        for s in families[name].samples
        if s.name == (sample or s.name)
    }


def lags(url: str) -> dict[tuple[str, int], float]:
    _, families = scrape(url)
    return {
        (s.labels["topic"], int(s.labels["partition"])): s.value for s in families["inventory_consumer_lag"].samples
    }


def post_receipt(worker: WorkerProcess, token: str) -> int:
    body = {
        "eventType": "GoodsReceived",
        "eventId": "metrics-rc-1",
        "occurredAt": "2025-11-22T08:00:00+08:00",
        "receiptNo": "RC-METRICS-1",
        "warehouseCode": "WH001",
        "lines": [{"sku": "SKU-METRICS", "sellableQty": 3}],
    }
    conn = http.client.HTTPConnection("127.0.0.1", worker.web_port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request("POST", "/webhooks/wms", body=json.dumps(body).encode(), headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.fixture(scope="module")
def worker(deployment: Deployment) -> Iterator[WorkerProcess]:
    deployment.env = {**deployment.env, "INVENTORY_WEBHOOK_TOKEN": TOKEN}
    w = deployment.start_worker("metrics")
    try:
        yield w
    finally:
        w.stop()


def test_the_lag_gauge_reaches_zero_when_the_worker_is_idle(deployment: Deployment, worker: WorkerProcess) -> None:
    deployment.publish([json.loads(line) for line in SEED_DAY.read_text().splitlines() if line.strip()])
    wait_until(lambda: deployment.order(worker, "OMS202511220003"))
    idle = wait_until(
        lambda: (lambda gauge: gauge if gauge and not any(gauge.values()) else None)(lags(worker.url)),
        timeout_s=60,
        interval_s=1.0,
    )
    assert not any("changelog" in topic for topic, _ in idle), sorted(idle)
    topics = deployment.topics
    for topic in (topics.orders, topics.shipments, topics.stock_movements, topics.stock_commands):
        assert {(topic, p) for p in range(4)} <= set(idle), (topic, sorted(idle))  # one series per partition


def test_the_worker_and_a_read_process_export_parseable_metrics(deployment: Deployment, worker: WorkerProcess) -> None:
    topics = deployment.topics
    deployment.produce_raw(topics.orders, b"OMS-POISON", b"not avro at all")
    assert post_receipt(worker, TOKEN) == 202
    assert post_receipt(worker, "wrong-token") == 401

    def dead_lettered() -> list[dict[str, Any]] | None:
        with urllib.request.urlopen(f"{worker.url}/dead-letters/latest", timeout=5) as response:  # noqa: S310
            letters = json.loads(response.read())["deadLetters"]
        return [d for d in letters if d["sourceTopic"] == topics.orders] or None

    (letter,) = wait_until(dead_lettered, timeout_s=60)
    assert letter["errorType"] == "DECODE" and letter["key"] == "OMS-POISON" and letter["error"]

    content_type, families = scrape(worker.url)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    conventional(families)
    assert series(families, "inventory_dead_letters")[("DECODE", topics.orders)] == 1
    webhook = series(families, "inventory_webhook_requests")
    assert webhook[("accepted", "wms", "202")] == 1 and webhook[("unauthorized", "wms", "401")] == 1
    assert series(families, "inventory_webhook_events_accepted")[("wms",)] == 1
    count = "inventory_offset_commit_seconds_count"
    commits = wait_until(
        lambda: series(scrape(worker.url)[1], "inventory_offset_commit_seconds", count)[()] or None, timeout_s=30
    )
    assert commits >= 1
    _, families = scrape(worker.url)
    flushes = series(families, "inventory_durability_flush_seconds", "inventory_durability_flush_seconds_count")
    assert flushes[()] >= commits
    assert series(families, "inventory_processing_seconds", "inventory_processing_seconds_count")
    assert set(series(families, "inventory_table_keys")) == {("order-state",), ("stock-state",)}

    content_type, families = scrape(worker.url, OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    conventional(families)

    reader = ReaderProcess(deployment.env, deployment.root / "metrics-reader.log", free_port()).start()
    try:
        reader.wait_ready()
        urllib.request.urlopen(f"{reader.url}/inventory/SKU-METRICS/WH001", timeout=5).read()  # noqa: S310
        content_type, families = scrape(reader.url)
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        conventional(families)
        assert series(families, "inventory_reader_requests")[("200",)] >= 2  # /ready and the position
        assert series(families, "inventory_reader_ready") == {(): 1}
        assert series(families, "inventory_reader_positions")[()] > 0
    finally:
        reader.kill()
