"""Nothing answers the network unless asked: with ``read_token`` set, a real worker's read
views, metrics and live feed answer 401 without ``Authorization: Bearer <token>`` and 200
with it; the probes stay open; ``/debug/consumer`` and Faust's ``/table`` views are 404 unless
``debug_views`` is on. Two workers with the token still answer for every key (``table_route``
forwards the caller's header; a batch's fan-out sends the token itself)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from streams.worker_process import WorkerProcess
from tests.integration.conftest import Deployment, wait_until

pytestmark = pytest.mark.kafka

TOKEN = f"read-{uuid.uuid4().hex}"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def get(url: str, headers: dict[str, str] | None = None, first_bytes: int | None = None) -> tuple[int, bytes]:
    """(status, body) - or only the body's first bytes, for a stream that never ends; status 0
    when nothing answers."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
            return response.status, response.read(first_bytes) if first_bytes else response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


def receipt(sku: str, qty: int) -> dict[str, Any]:
    return {
        "eventType": "GoodsReceived",
        "eventId": f"rc-{sku}",
        "occurredAt": "2025-11-22T08:00:00+08:00",
        "receiptNo": f"RC-{sku}",
        "warehouseCode": "WH001",
        "lines": [{"sku": sku, "sellableQty": qty}],
    }


@pytest.fixture(scope="module")
def guarded(deployment: Deployment) -> Deployment:
    deployment.env["INVENTORY_READ_TOKEN"] = TOKEN
    return deployment


def _position(worker: WorkerProcess, sku: str) -> dict[str, Any] | None:
    status, body = get(f"{worker.url}/inventory/{sku}/WH001", BEARER)
    return json.loads(body) if status == 200 else None


def test_read_views_metrics_and_the_live_feed_need_the_token(guarded: Deployment) -> None:
    worker = guarded.start_worker("guarded")
    try:
        _check_one_worker(guarded, worker)
    finally:
        worker.stop()


def _check_one_worker(guarded: Deployment, worker: WorkerProcess) -> None:
    sku = f"TOK-{uuid.uuid4().hex[:8]}"
    guarded.publish([receipt(sku, 7)])
    wait_until(lambda: _position(worker, sku), timeout_s=60)

    for path in (
        f"/inventory/{sku}/WH001",
        f"/inventory/{sku}",
        f"/inventory?skus={sku}",
        "/metrics",
        "/dead-letters/latest",
        "/openapi.json",
        "/dashboard",
        "/static/app.js",
        "/no/such/view",
    ):
        status, body = get(worker.url + path)
        assert status == 401, (path, status)
        assert TOKEN.encode() not in body
        assert get(worker.url + path, {"Authorization": "Bearer wrong"})[0] == 401, path
    assert get(f"{worker.url}/events/stream", first_bytes=64)[0] == 401

    status, body = get(f"{worker.url}/inventory/{sku}/WH001", BEARER)
    assert status == 200 and json.loads(body)["availableQty"] == 7
    status, body = get(f"{worker.url}/metrics", BEARER)
    assert status == 200 and b"inventory_events_in_total" in body
    status, body = get(f"{worker.url}/events/stream", BEARER, first_bytes=13)
    assert status == 200 and body.startswith(b": connected")
    for path in ("/dashboard", "/static/app.js", "/openapi.json", "/dead-letters/latest"):
        assert get(worker.url + path, BEARER)[0] == 200, path

    # The probes stay open (orchestrators call them without credentials).
    assert get(f"{worker.url}/health")[0] == 200
    assert get(f"{worker.url}/ready")[0] == 200

    # Diagnostics are off unless debug_views: 404 even with the token.
    assert get(f"{worker.url}/debug/consumer", BEARER)[0] == 404
    assert get(f"{worker.url}/table/", BEARER)[0] == 404
    assert get(f"{worker.url}/debug/consumer")[0] == 401  # deny by default: no hint what exists

    # The log never holds the token.
    assert TOKEN not in worker.log_path.read_text(errors="replace")


def test_two_guarded_workers_answer_for_every_key(guarded: Deployment) -> None:
    skus = [f"TK2-{uuid.uuid4().hex[:6]}-{i}" for i in range(12)]
    first = guarded.start_worker("guarded-a")
    second = guarded.start_worker("guarded-b")

    def split() -> bool:
        """Both workers see the same routing, and each owns partitions of the stock table."""
        seen = []
        for w in (first, second):
            status, body = get(f"{w.url}/router/", BEARER)
            if status != 200:
                return False
            seen.append(json.loads(body))
        owners = [h for h, tables in seen[0].items() if any("stock-state" in t and p for t, p in tables.items())]
        return seen[0] == seen[1] and len(owners) == 2

    wait_until(split, timeout_s=90)
    for w in (first, second):
        w.wait_ready(timeout_s=90)
    guarded.publish([receipt(sku, 3) for sku in skus])
    for w in (first, second):  # each key from each worker: half of them proxied to the owner
        wait_until(lambda w=w: all(_position(w, sku) for sku in skus), timeout_s=60)
        status, body = get(f"{w.url}/inventory?skus={','.join(skus)}", BEARER)
        assert status == 200, body
        assert json.loads(body)["missing"] == []
        assert get(f"{w.url}/inventory/{skus[0]}")[0] == 401
