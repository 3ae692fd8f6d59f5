"""Issue 14's acceptance for the read path on the real broker: read processes
(``python -m streams.reader``) answer what the worker's own views answer, for the same version.

One deployment runs through the module in order: a worker drains day_end.py's
``exact_workload`` (its outcome, position versions included, does not depend on the
interleaving, so a model says what every view must show) while a read process reads
``inventory-changes`` from the start. Then:

* exact answers: every position, SKU (network totals included) and batch the worker's views
  return equals the read process's answer, field by field, at the same version;
* a change reaches the read process within seconds, and ``X-Inventory-Behind`` returns to 0;
* the worker stopped (SIGTERM) and killed (SIGKILL), restarted on its state, changes made: the
  read process, kept running, answers the new versions and never a lower version than before
  (a poller reads every position all along);
* a second worker joins (partitions move) while changes continue: same checks;
* a read process started after all that (the compacted topic from its beginning) answers the same;
* ``--processes 2``: both processes answer, SIGTERM to the parent stops both, a child's death
  stops the parent (exit 1); ``--help`` starts nothing;
* ``read_token``: 401 without the bearer, 200 with it, the probes open.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from config.settings import REPO_ROOT
from streams.worker_process import ReaderProcess, WorkerProcess, http_json
from tables.center import InventoryCenter
from tests.integration.conftest import Deployment, free_port, wait_until
from tests.integration.day_end import (
    WAREHOUSES,
    assignments_split,
    exact_model,
    exact_workload,
    ready_positions,
    settle_exactly,
)

pytestmark = pytest.mark.kafka

SKUS, ORDERS = 8, 160  # 16 positions, a few hundred order events
FRESH_S = 5.0  # a change published reaches a caught-up read process within this
Position = tuple[str, str]


# --- HTTP ---------------------------------------------------------------------------------------


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body or text); status 0 when nothing answers."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status, dict(response.headers), _body(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), _body(exc.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, {}, None


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def ok(url: str, headers: dict[str, str] | None = None) -> Any:
    status, _, body = get(url, headers)
    assert status == 200, (url, status, body)
    return body


def by_code(sku_view: dict[str, Any]) -> dict[str, Any]:
    """A SKU answer with its warehouses keyed by code (the worker lists them in its own order)."""
    return {**sku_view, "warehouses": {p["warehouseCode"]: p for p in sku_view["warehouses"]}}


# --- the day ------------------------------------------------------------------------------------


@dataclass
class Day:
    d: Deployment
    worker: WorkerProcess
    reader: ReaderProcess
    data_dir: Path
    skus: list[str]
    receipts: list[dict[str, Any]]
    flow: list[dict[str, Any]]  # the orders still to publish, consumed by the tests in turn
    extra: list[dict[str, Any]] = field(default_factory=list)  # receipts published by the tests
    published: int = 0  # events of ``flow`` published

    @property
    def positions(self) -> list[Position]:
        return [(s, wh) for s in self.skus for wh in WAREHOUSES]

    def model(self) -> InventoryCenter:
        return exact_model(self.receipts + self.extra, self.flow[:self.published])

    def publish_flow(self, until: int) -> None:
        self.d.publish(self.flow[self.published:until])
        self.published = until

    def receive(self, sku: str, warehouse: str, qty: int) -> None:
        """One more GoodsReceived: the position's version moves by one."""
        no = f"RC-more-{uuid.uuid4().hex[:8]}"
        event = {"eventType": "GoodsReceived", "eventId": f"rc-{no}", "occurredAt": "2025-11-22T10:00:00+08:00",
                 "receiptNo": no, "warehouseCode": warehouse, "lines": [{"sku": sku, "sellableQty": qty}]}
        self.d.publish([event])
        self.extra.append(event)

    def settle(self) -> None:
        """The worker's views equal the model, and the read process's the worker's (same versions)."""
        settle_exactly(self.d, self.worker, self.model(), timeout_s=120)
        wait_until(lambda: versions(self.reader, self.positions) == versions_of_worker(self), timeout_s=30)


def versions(reader: ReaderProcess, positions: list[Position]) -> dict[Position, int]:
    keys = ",".join(f"{s}|{wh}" for s, wh in positions)
    items = ok(f"{reader.url}/inventory?positions={keys}")["items"]
    return {tuple(k.split("|", 1)): v["version"] for k, v in items.items()}  # type: ignore[misc]


def versions_of_worker(day: Day) -> dict[Position, int]:
    items = ok(f"{day.worker.url}/inventory?skus={','.join(day.skus)}")["items"]
    return {(sku, p["warehouseCode"]): p["version"] for sku, item in items.items() for p in item["warehouses"]}


@pytest.fixture(scope="module")
def day(deployment: Deployment) -> Iterator[Day]:
    """A worker and a read process (started before the day), the first half of the day drained."""
    receipts, flow = exact_workload(seed=14, skus=SKUS, orders=ORDERS)
    data_dir = deployment.root / "w1-state"
    worker = deployment.start_worker("w1", data_dir=data_dir)
    reader = ReaderProcess(deployment.env, deployment.root / "reader.log", free_port()).start()
    try:
        reader.wait_ready()
        skus = sorted({line["sku"] for r in receipts for line in r["lines"]})
        today = Day(deployment, worker, reader, data_dir, skus, receipts, flow)
        deployment.publish(receipts)
        ready_positions(deployment, worker, receipts)
        today.publish_flow(len(flow) // 2)
        today.settle()
        yield today
    finally:
        reader.kill()


# --- a poller: every position's version, all along -----------------------------------------------


class Poller(threading.Thread):
    """Reads every position from a read process over one keep-alive connection, as fast as it
    answers, recording each answer's versions and any failure."""

    def __init__(self, reader: ReaderProcess, positions: list[Position]) -> None:
        super().__init__(name="reader-poller", daemon=True)
        self.port = reader.port
        self.path = "/inventory?positions=" + ",".join(f"{s}|{wh}" for s, wh in positions)
        self.seen: list[dict[Position, int]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self._stop.is_set():
            try:
                connection.request("GET", self.path)
                response = connection.getresponse()
                body = json.loads(response.read())
                if response.status != 200:
                    self.failures.append(f"{response.status}: {body}")
                else:
                    self.seen.append({tuple(k.split("|", 1)): v["version"]  # type: ignore[misc]
                                      for k, v in body["items"].items()})
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.failures.append(repr(exc))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self._stop.wait(0.02)
        connection.close()

    def finish(self) -> None:
        self._stop.set()
        self.join(timeout=10)

    def regressions(self) -> list[str]:
        """Positions whose answered version ever went down."""
        found = []
        highest: dict[Position, int] = {}
        for n, answer in enumerate(self.seen):
            for position, version in answer.items():
                if version < highest.get(position, 0):
                    found.append(f"{position}: v{version} after v{highest[position]} (answer {n})")
                highest[position] = max(version, highest.get(position, 0))
        return found


# --- the tests ----------------------------------------------------------------------------------


def test_every_answer_equals_the_workers_view_at_the_same_version(day: Day) -> None:
    w, r = day.worker.url, day.reader.url
    model = day.model()
    for sku, wh in day.positions:
        want = ok(f"{w}/inventory/{sku}/{wh}")
        assert ok(f"{r}/inventory/{sku}/{wh}") == want
        assert want["version"] == model.tables.stock_by_sku[sku].position(wh).version  # type: ignore[union-attr]
    for sku in day.skus:
        got = ok(f"{r}/inventory/{sku}")
        assert [p["warehouseCode"] for p in got["warehouses"]] == sorted(WAREHOUSES)
        assert by_code(got) == by_code(ok(f"{w}/inventory/{sku}"))

    unknown = f"NOPE-{uuid.uuid4().hex[:6]}"
    asked = [*day.skus, unknown]
    got, want = ok(f"{r}/inventory?skus={','.join(asked)}"), ok(f"{w}/inventory?skus={','.join(asked)}")
    assert got["missing"] == want["missing"] == [unknown]
    assert {s: by_code(v) for s, v in got["items"].items()} == {s: by_code(v) for s, v in want["items"].items()}

    keys = [f"{s}|{wh}" for s, wh in day.positions] + [f"{unknown}|WH001", f"{day.skus[0]}|WH999"]
    got = ok(f"{r}/inventory?positions={','.join(keys)}")
    assert got["missing"] == keys[-2:]
    assert got["items"] == {k: ok(f"{w}/inventory/{k.replace('|', '/')}") for k in keys[:-2]}
    status, _, body = get(f"{r}/inventory/{unknown}/WH001")
    assert (status, body["status"]) == (404, 404)
    assert get(f"{r}/inventory/{unknown}")[0] == 404
