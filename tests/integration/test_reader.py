"""Issue 14's acceptance for the read path on the real broker: read processes
(``python -m streams.reader``) answer what the worker's own views answer, for the same version.

One deployment runs through the module in order: a worker drains day_end.py's
``exact_workload`` (its outcome, position versions included, does not depend on the
interleaving, so a model says what every view must show) while a read process reads
``inventory-changes`` from the start. Then:

* exact answers: every position, SKU (network totals included) and batch the worker's views
  return equals the read process's answer, field by field, at the same version (one SKU's code
  holds '/', ':', '#' and '.', percent-encoded in the paths);
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
import os
import signal
import socket
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
from urllib.parse import quote

import pytest
from prometheus_client.parser import text_string_to_metric_families

from config.settings import REPO_ROOT
from streams.worker_process import ReaderProcess, WorkerProcess
from tables.center import InventoryCenter
from tests.integration.conftest import Deployment, free_port, wait_until
from tests.integration.day_end import (
    WAREHOUSES,
    assignments_split,
    exact_model,
    exact_workload,
    owned,
    ready_positions,
    settle_exactly,
)

pytestmark = pytest.mark.kafka

SKUS, ORDERS = 8, 160  # 16 positions (and 2 of a SKU with an odd code), a few hundred order events
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


def at(sku: str, warehouse: str) -> str:
    """The path of one position (codes may hold '/', ':', '#': percent-encoded)."""
    return f"/inventory/{quote(sku, safe='')}/{quote(warehouse, safe='')}"


def of(sku: str) -> str:
    return f"/inventory/{quote(sku, safe='')}"


def batch(skus: list[str] | None = None, positions: list[str] | None = None) -> str:
    """``/inventory?skus=`` or ``?positions=`` (``sku|warehouseCode`` keys)."""
    if skus is not None:
        return "/inventory?skus=" + ",".join(quote(s, safe="") for s in skus)
    return "/inventory?positions=" + ",".join(quote(k, safe="") for k in positions or [])


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
    flow: list[dict[str, Any]]  # the day's orders, published by the fixture and the tests in turn
    extra: list[dict[str, Any]] = field(default_factory=list)  # receipts published by the tests
    published: int = 0  # events of ``flow`` published

    @property
    def positions(self) -> list[Position]:
        return [(s, wh) for s in self.skus for wh in WAREHOUSES]

    def model(self) -> InventoryCenter:
        return exact_model(self.receipts + self.extra, self.flow[: self.published])

    def publish_flow(self, until: int) -> None:
        self.d.publish(self.flow[self.published : until])
        self.published = until

    def receive(self, sku: str, warehouse: str, qty: int) -> None:
        """One more GoodsReceived: the position's version moves by one."""
        no = f"RC-more-{uuid.uuid4().hex[:8]}"
        event = {
            "eventType": "GoodsReceived",
            "eventId": f"rc-{no}",
            "occurredAt": "2025-11-22T10:00:00+08:00",
            "receiptNo": no,
            "warehouseCode": warehouse,
            "lines": [{"sku": sku, "sellableQty": qty}],
        }
        self.d.publish([event])
        self.extra.append(event)

    def settle(self) -> None:
        """The worker's views equal the model, and the read process's the worker's (same versions)."""
        settle_exactly(self.d, self.worker, self.model(), timeout_s=120)
        try:
            wait_until(lambda: versions(self.reader, self.positions) == versions_of_worker(self), timeout_s=30)
        except AssertionError:
            got, want = versions(self.reader, self.positions), versions_of_worker(self)
            differ = {p: (got.get(p), want.get(p)) for p in set(got) | set(want) if got.get(p) != want.get(p)}
            raise AssertionError(
                f"read process (version, worker version) where they differ: {differ}; "
                f"its health: {ok(self.reader.url + '/health')}"
            ) from None


def versions(reader: ReaderProcess, positions: list[Position]) -> dict[Position, int]:
    items = ok(reader.url + batch(positions=[f"{s}|{wh}" for s, wh in positions]))["items"]
    return {tuple(k.split("|", 1)): v["version"] for k, v in items.items()}  # type: ignore[misc]


def versions_of_worker(day: Day) -> dict[Position, int]:
    items = ok(day.worker.url + batch(skus=day.skus))["items"]
    return {(sku, p["warehouseCode"]): p["version"] for sku, item in items.items() for p in item["warehouses"]}


@pytest.fixture(scope="module")
def day(deployment: Deployment) -> Iterator[Day]:
    """A worker and a read process (started before the day), the first half of the day drained."""
    receipts, flow = exact_workload(seed=14, skus=SKUS, orders=ORDERS)
    tag = uuid.uuid4().hex[:4]
    odd = f"R/{tag}:1#a.b"  # the characters a code may hold beyond letters, digits and '-'
    odd_receipts = [
        {
            "eventType": "GoodsReceived",
            "eventId": f"rc-odd-{wh}-{tag}",
            "receiptNo": f"RC-odd-{wh}-{tag}",
            "occurredAt": "2025-11-22T08:00:00+08:00",
            "warehouseCode": wh,
            "lines": [{"sku": odd, "sellableQty": 5}],
        }
        for wh in WAREHOUSES
    ]
    data_dir = deployment.root / "w1-state"
    worker = deployment.start_worker("w1", data_dir=data_dir)
    reader = ReaderProcess(deployment.env, deployment.root / "reader.log", free_port()).start()
    try:
        reader.wait_ready()
        skus = sorted({line["sku"] for r in receipts for line in r["lines"]} - {odd}) + [odd]
        today = Day(deployment, worker, reader, data_dir, skus, odd_receipts + receipts, flow)
        deployment.publish(odd_receipts + receipts)
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
        self.path = batch(positions=[f"{s}|{wh}" for s, wh in positions])
        self.seen: list[dict[Position, int]] = []
        self.failures: list[str] = []
        self._done = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self._done.is_set():
            try:
                connection.request("GET", self.path)
                response = connection.getresponse()
                body = json.loads(response.read())
                if response.status != 200:
                    self.failures.append(f"{response.status}: {body}")
                else:
                    self.seen.append(
                        {
                            tuple(k.split("|", 1)): v["version"]  # type: ignore[misc]
                            for k, v in body["items"].items()
                        }
                    )
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.failures.append(repr(exc))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self._done.wait(0.02)
        connection.close()

    def finish(self) -> None:
        self._done.set()
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


def assert_same_answers(day: Day, reader: ReaderProcess) -> None:
    """Every position, SKU and batch answer of ``reader`` equals the worker's view (at the
    model's versions): all fields, a SKU's warehouses compared by code (in code order from a
    read process), unknown keys missing from both."""
    w, r = day.worker.url, reader.url
    model = day.model()
    for sku, wh in day.positions:
        want = ok(w + at(sku, wh))
        assert ok(r + at(sku, wh)) == want
        assert want["version"] == model.tables.stock_by_sku[sku].position(wh).version  # type: ignore[union-attr]
    for sku in day.skus:
        got = ok(r + of(sku))
        assert [p["warehouseCode"] for p in got["warehouses"]] == sorted(WAREHOUSES)
        assert by_code(got) == by_code(ok(w + of(sku)))

    unknown = f"NOPE-{uuid.uuid4().hex[:6]}"
    asked = [*day.skus, unknown]
    got, want = ok(r + batch(skus=asked)), ok(w + batch(skus=asked))
    assert got["missing"] == want["missing"] == [unknown]
    assert {s: by_code(v) for s, v in got["items"].items()} == {s: by_code(v) for s, v in want["items"].items()}

    keys = [f"{s}|{wh}" for s, wh in day.positions] + [f"{unknown}|WH001", f"{day.skus[0]}|WH999"]
    got = ok(r + batch(positions=keys))
    assert got["missing"] == keys[-2:]
    assert got["items"] == {k: ok(w + at(*k.split("|", 1))) for k in keys[:-2]}
    status, _, body = get(r + at(unknown, "WH001"))
    assert (status, body["status"]) == (404, 404)
    assert get(r + of(unknown))[0] == 404


def metrics(url: str, headers: dict[str, str] | None = None) -> dict[str, float]:
    """Sample name -> value, summed over its labels (Prometheus' own parser reads the page)."""
    status, _, text = get(f"{url}/metrics", headers)
    assert status == 200, (status, text)
    return summed(text)


def summed(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def test_every_answer_equals_the_workers_view_at_the_same_version(day: Day) -> None:
    assert_same_answers(day, day.reader)


def test_a_change_reaches_the_read_process_within_seconds(day: Day) -> None:
    sku, wh = day.skus[0], WAREHOUSES[0]
    url = day.reader.url + at(sku, wh)
    before = ok(url)["version"]
    began = time.monotonic()
    day.receive(sku, wh, 7)

    def arrived() -> Any:
        status, _, body = get(url)
        return body if status == 200 and body["version"] > before else None

    got = wait_until(arrived, timeout_s=FRESH_S, interval_s=0.02)
    took = time.monotonic() - began
    assert got["version"] == before + 1
    assert got == ok(day.worker.url + at(sku, wh))

    def caught_up() -> dict[str, str] | None:
        status, headers, _ = get(url)
        return headers if status == 200 and headers["X-Inventory-Behind"] == "0" else None

    headers = wait_until(caught_up, timeout_s=FRESH_S, interval_s=0.05)
    assert 0 <= int(headers["X-Inventory-Caught-Up-Ms"]) < FRESH_S * 1000
    print(
        f"\nfresh: v{before} -> v{got['version']} answered by the read process {took * 1000:.0f} ms after "
        f"the publish; X-Inventory-Behind 0, caught up {headers['X-Inventory-Caught-Up-Ms']} ms ago"
    )


def test_the_read_process_rides_through_worker_restarts(day: Day) -> None:
    """SIGTERM, a change while no worker runs, a restart; then a SIGKILL in the middle of a
    drain and a restart that sends again what it had sent: versions only go up."""
    poller = Poller(day.reader, day.positions)
    poller.start()
    try:
        day.worker.stop()
        assert day.worker.proc is not None and day.worker.proc.returncode is not None
        sku, wh = day.skus[1], WAREHOUSES[1]
        url = day.reader.url + at(sku, wh)
        before = ok(url)["version"]
        day.receive(sku, wh, 3)
        day.worker = day.d.start_worker("w1-after-sigterm", data_dir=day.data_dir)
        wait_until(lambda: ok(url)["version"] == before + 1, timeout_s=60, interval_s=0.1)

        stale_before = metrics(day.reader.url)["inventory_reader_changes_stale_total"]
        day.publish_flow(day.published + (len(day.flow) - day.published) // 2)
        time.sleep(1.0)  # part of the chunk drained and sent
        day.worker.kill()
        day.worker = day.d.start_worker("w1-after-sigkill", data_dir=day.data_dir)
        day.settle()
        assert_same_answers(day, day.reader)
    finally:
        poller.finish()
    assert not poller.failures, poller.failures[:5]
    assert len(poller.seen) > 20 and not poller.regressions(), poller.regressions()[:5]
    stale = metrics(day.reader.url)["inventory_reader_changes_stale_total"] - stale_before
    print(
        f"\nrestarts: {len(poller.seen)} answers polled through a SIGTERM and a SIGKILL restart, versions "
        f"never lower; changes sent again after the SIGKILL and skipped by the reader: {stale:.0f}"
    )


def test_a_rebalance_changes_nothing_the_read_process_answers(day: Day) -> None:
    poller = Poller(day.reader, day.positions)
    poller.start()
    try:
        second = day.d.start_worker("w2")
        day.publish_flow(day.published + (len(day.flow) - day.published) // 2)  # while partitions move
        wait_until(lambda: assignments_split(day.worker, second), timeout_s=90)
        day.publish_flow(len(day.flow))
        day.settle()
        assert_same_answers(day, day.reader)
    finally:
        poller.finish()
    assert not poller.failures, poller.failures[:5]
    assert len(poller.seen) > 20 and not poller.regressions(), poller.regressions()[:5]
    print(
        f"\nrebalance: {len(poller.seen)} answers polled while a second worker took partitions; the whole day "
        f"answered as the workers answer it"
    )
    second.stop()
    changelog = day.d.topics.changelog("stock-state")
    wait_until(
        lambda: len(owned(day.worker, changelog)) == day.d.settings.partitions, timeout_s=90
    )  # every partition back on the first worker before the next test asks it


def test_a_read_process_started_after_the_day_answers_the_same(day: Day) -> None:
    late = ReaderProcess(day.d.env, day.d.root / "late-reader.log", free_port()).start()
    try:
        began = time.monotonic()
        late.wait_ready()
        took = time.monotonic() - began
        assert_same_answers(day, late)
        health = ok(f"{late.url}/health")
        assert health["positions"] == len(day.positions) and health["behind"] == 0, health
    finally:
        late.kill()
    print(f"\nlate reader: ready {took:.1f}s after its start, {health['positions']} positions, answers equal")


# --- several processes on one port --------------------------------------------------------------


def server_sockets(port: int) -> dict[int, str]:
    """Client port -> inode of the established server-side socket on loopback ``port``."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if int(local.split(":")[1], 16) == port and state == "01":  # 01: ESTABLISHED
            found[int(remote.split(":")[1], 16)] = inode
    return found


def status_on(connection: http.client.HTTPConnection, path: str) -> int:
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return response.status


def sockets_of(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def test_two_processes_share_the_port_and_stop_together(day: Day) -> None:
    pair = ReaderProcess(day.d.env, day.d.root / "pair.log", free_port(), processes=2).start()
    connections: list[http.client.HTTPConnection] = []
    try:
        pair.wait_ready()
        assert pair.proc is not None
        children = wait_until(
            lambda: (
                [p for p in pair.session() if p != pair.proc.pid]  # type: ignore[union-attr]
                if len(pair.session()) == 3
                else None
            ),
            timeout_s=10,
        )
        sku, wh = day.skus[2], WAREHOUSES[0]
        want = ok(day.worker.url + at(sku, wh))
        for _ in range(24):  # the kernel spreads connections over both listening sockets
            c = http.client.HTTPConnection("127.0.0.1", pair.port, timeout=5)
            c.request("GET", "/ready")
            assert c.getresponse().read()
            connections.append(c)
        inode_of = server_sockets(pair.port)
        held = {pid: sockets_of(pid) for pid in children}
        served: dict[int, list[http.client.HTTPConnection]] = {pid: [] for pid in children}
        for c in connections:
            inode = inode_of[c.sock.getsockname()[1]]
            (owner,) = [pid for pid in children if inode in held[pid]]
            served[owner].append(c)
        assert all(served.values()), {pid: len(cs) for pid, cs in served.items()}

        for pid, mine in served.items():
            wait_until(lambda c=mine[0]: status_on(c, "/ready") == 200, timeout_s=30, interval_s=0.2)
            for c in mine:
                c.request("GET", at(sku, wh))
                response = c.getresponse()
                assert (response.status, json.loads(response.read())) == (200, want)
            mine[0].request("GET", "/metrics")
            text = mine[0].getresponse().read().decode()
            assert summed(text)["inventory_reader_requests_total"] >= 2 * len(mine), (pid, len(mine), text)
        for c in connections:
            c.close()

        pair.proc.send_signal(signal.SIGTERM)
        assert pair.proc.wait(timeout=15) == 0
        assert pair.session() == [], "a read process outlived its parent"  # the parent waits for its children
    finally:
        for c in connections:
            c.close()
        pair.kill()
    print(f"\n--processes 2: connections per process {[len(cs) for cs in served.values()]}; SIGTERM stopped all")


def test_a_dying_child_stops_the_others_and_the_parent_exits_1(day: Day) -> None:
    pair = ReaderProcess(day.d.env, day.d.root / "pair-dies.log", free_port(), processes=2).start()
    try:
        assert pair.proc is not None
        children = wait_until(
            lambda: (
                [p for p in pair.session() if p != pair.proc.pid]  # type: ignore[union-attr]
                if len(pair.session()) == 3
                else None
            ),
            timeout_s=20,
        )
        os.kill(children[0], signal.SIGKILL)
        assert pair.proc.wait(timeout=15) == 1
        assert pair.session() == [], "the other read process outlived its parent"
    finally:
        pair.kill()


def test_help_prints_the_options_and_starts_nothing(day: Day) -> None:
    port = free_port()
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streams.reader", "--port", str(port), "--help"],
        cwd=REPO_ROOT,
        env={**os.environ, **day.d.env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m streams.reader") and "--processes" in done.stdout
    assert "serving" not in done.stdout + done.stderr and time.monotonic() - began < 10
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # nothing holds the port


# --- the bearer token ---------------------------------------------------------------------------


def test_with_a_read_token_only_the_probes_answer_without_it(day: Day) -> None:
    token = f"read-{uuid.uuid4().hex}"
    bearer = {"Authorization": f"Bearer {token}"}
    guarded = ReaderProcess(
        {**day.d.env, "INVENTORY_READ_TOKEN": token}, day.d.root / "guarded.log", free_port()
    ).start()
    try:
        guarded.wait_ready()  # /ready is open
        sku, wh = day.skus[3], WAREHOUSES[1]
        r = guarded.url
        for path in (at(sku, wh), of(sku), batch(skus=[sku]), batch(positions=[f"{sku}|{wh}"]), "/metrics", "/ping"):
            status, headers, body = get(f"{r}{path}")
            assert (status, headers.get("WWW-Authenticate")) == (401, "Bearer"), (path, status, body)
            assert token not in json.dumps(body)
            assert get(f"{r}{path}", {"Authorization": f"Bearer {token}x"})[0] == 401, path
            assert get(f"{r}{path}", {"Authorization": token})[0] == 401, path
            assert get(f"{r}{path}", bearer)[0] == 200, path
        assert ok(r + at(sku, wh), bearer) == ok(day.worker.url + at(sku, wh))
        for path in ("/health", "/ready"):
            assert get(f"{r}{path}")[0] == 200, path
    finally:
        guarded.stop()
    assert token not in guarded.log_path.read_text(errors="replace")
