"""The read-path load benchmark (issue 14): stock queries against the read processes
(streams/reader.py), idle and while the worker drains, beside the worker's ingest rate.

Run: ``make bench-query`` (``python -m bench.read_bench``; ``--quick`` for about 2 minutes,
``--help`` for the knobs, starting nothing). A benchmark, not a test: it prints, saves and judges
figures against the targets, and asserts nothing. It starts the local broker if none answers
(and stops only that one), an isolated deployment with one worker and ``--skus`` x 3 preloaded
positions, then autocannon (bench/read_load.js, installed into bench/.node/) against 1 and 2
read processes: *idle* runs, then *drain* runs, each one drain of ``--drain-orders`` orders
compared with the same drain without load (the baseline). Writes bench/results/runs/<stamp>-read/;
``--publish`` copies the .md and .png over docs/read-benchmark.*. Cleans up all it started.
The method: docs/read-benchmark.md; why: docs/decisions.md ("measures ingest by drains").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BENCH = Path(__file__).resolve().parent
AUTOCANNON = "7.15.0"
NODE_DIR = BENCH / ".node"
LOAD_SCRIPT = BENCH / "read_load.js"
CLIENTS = (1, 8, 32, 128)
WAREHOUSES = ("WH001", "WH002", "WH003")
LINES_PER_RECEIPT = 200  # MAX_LINES of the contract
PRELOAD_QTY = 1_000_000  # per position: the drains never run a position dry
WORKER_VIEW_CLIENTS = 32


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.read_bench",
        description=(__doc__ or "").splitlines()[0],
        epilog="Results: a new folder bench/results/runs/<stamp>-read/ per run; docs/read-benchmark.* only with "
        "--publish. Needs Node.js and, once, npm (autocannon is installed into bench/.node/).",
    )
    parser.add_argument("--skus", type=int, default=2_000, help="SKUs preloaded, x3 warehouses (2,000)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=list(CLIENTS),
        help="concurrent keep-alive clients per run (1 8 32 128)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=6.0,
        help="recorded seconds per idle run (6; a drain run lasts as long as its drain)",
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="unrecorded warm-up before each run (1)")
    parser.add_argument(
        "--drain-orders",
        type=int,
        default=4_000,
        help="orders per drain run and per baseline drain (4,000; the rate-limited run twice that)",
    )
    parser.add_argument(
        "--max-drain-seconds",
        type=float,
        default=120.0,
        help="a drain not done by then is stopped and marked incomplete (120)",
    )
    parser.add_argument(
        "--limited-rate",
        type=float,
        default=5_000.0,
        help="requests/s of the rate-limited run during the drain (5,000)",
    )
    parser.add_argument("--limited-clients", type=int, default=32, help="its clients (32)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="about 2 minutes: 2 s idle runs after 0.5 s of warm-up, 1 and 128 clients, drains of 1,000 orders",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the run's folder (must not exist); default bench/results/runs/<UTC stamp>-read/",
    )
    parser.add_argument("--publish", action="store_true", help="also copy this run over docs/read-benchmark.md/.png")
    parser.add_argument(
        "--publish-from",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="copy an earlier run's read-benchmark.md/.png over docs/, run nothing",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup = min(args.seconds, 2.0), min(args.warmup, 0.5)
        args.drain_orders = min(args.drain_orders, 1_000)
        if args.clients == list(CLIENTS):
            args.clients = [1, 128]
    return args


# --- the load client -------------------------------------------------------------------------------------


def ensure_autocannon(node_dir: Path = NODE_DIR) -> tuple[Path, str]:
    """(node_modules folder holding autocannon ``AUTOCANNON``, node's version), installing it
    with npm on first use. Exits with what to install when node or npm is missing."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit(
            "read_bench: the load client needs Node.js (`node`, 18 or later) on the PATH; "
            "e.g. apt-get install nodejs npm"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    modules = node_dir / "node_modules"
    package = modules / "autocannon" / "package.json"
    if package.exists() and json.loads(package.read_text()).get("version") == AUTOCANNON:
        return modules, version
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            f"read_bench: npm is needed once, to install autocannon@{AUTOCANNON} into {node_dir}; "
            "e.g. apt-get install npm"
        )
    print(f"installing autocannon@{AUTOCANNON} into {node_dir} (first use; npm)", flush=True)
    node_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(node_dir),
            f"autocannon@{AUTOCANNON}",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not package.exists():
        raise SystemExit(f"read_bench: npm could not install autocannon@{AUTOCANNON}:\n{done.stderr[-2000:]}")
    return modules, version


class LoadClient:
    """Runs bench/read_load.js once per call; ``on_measuring`` is called when its recorded
    window starts and ``on_result`` as soon as the window's result arrives."""

    def __init__(self, modules: Path, folder: Path) -> None:
        self.modules, self.folder = modules, folder
        self.proc: subprocess.Popen[str] | None = None
        self.runs = 0

    def run(
        self,
        url: str,
        paths: list[str],
        clients: int,
        seconds: float,
        warmup: float,
        rate: float | None,
        on_measuring: Callable[[], None],
        on_result: Callable[[], None],
    ) -> dict[str, Any]:
        from bench.read_report import client_result

        self.runs += 1
        config = self.folder / f"load-{self.runs}.json"
        config.write_text(
            json.dumps(
                {
                    "modules": str(self.modules),
                    "url": url,
                    "paths": paths,
                    "connections": clients,
                    "seconds": seconds,
                    "warmupSeconds": warmup,
                    "overallRate": rate,
                    "timeoutSeconds": 10,
                }
            )
        )
        stderr = open(self.folder / f"load-{self.runs}.err", "w")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            ["node", str(LOAD_SCRIPT), str(config)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
        stderr.close()
        lines = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            lines.append(line)
            if '"event":"measuring"' in line:
                on_measuring()
            elif '"event":"result"' in line:
                on_result()
        self.proc.wait(timeout=30)
        self.proc = None
        try:
            return client_result(lines)
        except Exception as exc:
            err = (self.folder / f"load-{self.runs}.err").read_text()[-2000:]
            raise RuntimeError(f"{exc}\n{err}") from exc

    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def end_run(self) -> None:
        """End the recorded run now (the client still prints its result)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


# --- the read processes -------------------------------------------------------------------------------


class Readers:
    """``python -m streams.reader --processes N --port P`` for one deployment."""

    def __init__(self, env: dict[str, str], processes: int, port: int, log_path: Path) -> None:
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.processes, self.port, self.log_path = processes, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Readers:
        from config.settings import REPO_ROOT

        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.reader", "--processes", str(self.processes), "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def pids(self) -> list[int]:
        """The serving processes (the parent's children with several, else the parent)."""
        if self.proc is None:
            return []
        if self.processes == 1:
            return [self.proc.pid]
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def wait_ready(self, positions: int, timeout_s: float = 180.0) -> float:
        """Until /ready and every process holds ``positions``: fresh connections land on any of
        the processes, so 10 x N answers in a row must all say so. Returns the seconds waited."""
        from streams.worker_process import http_json

        started = time.monotonic()
        deadline = started + timeout_s
        in_a_row = 0
        while in_a_row < 10 * self.processes:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the read processes exited; log:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"read processes not ready with {positions:,} positions after {timeout_s}s; log:\n{self.log_tail()}"
                )
            status, body = http_json(f"{self.url}/health")
            if (
                status == 200
                and body
                and body.get("ready")
                and body.get("positions", 0) >= positions
                and len(self.pids()) == self.processes
            ):
                in_a_row += 1
            else:
                in_a_row = 0
                time.sleep(0.2)
        return time.monotonic() - started

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # the parent stops its children
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of its group
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self.proc = None


# --- the workload -----------------------------------------------------------------------------------------


def skus_of(n: int) -> list[str]:
    return [f"RB{i:06d}" for i in range(n)]


class Orders:
    """The drain's orders: 1-5 lines over Zipf-popular SKUs (as bench/pipeline_bench.py's
    reservation workload), numbered on across top-ups so that every event id is new."""

    def __init__(self, skus: list[str], seed: int, tag: str) -> None:
        self.skus, self.tag = skus, tag
        self.rng = random.Random(seed)
        self.weights = [1 / (rank + 1) for rank in range(len(skus))]
        self.n = 0
        self.at = datetime(2025, 11, 22, 8, 0, tzinfo=UTC)

    def take(self, count: int) -> list[Any]:
        from schemas.inputs import Consignee, OrderCreated, OrderItem

        consignee = Consignee(name="张三", phone="13800138000", address="北京市朝阳区XX街道XX号")
        out = []
        for _ in range(count):
            self.n += 1
            lines = sorted(set(self.rng.choices(self.skus, self.weights, k=self.rng.randint(1, 5))))
            out.append(
                OrderCreated(
                    event_id=f"rb-{self.tag}-{self.n}",
                    occurred_at=self.at + timedelta(milliseconds=self.n),
                    order_no=f"RB{self.tag}{self.n:09d}",
                    order_type="NORMAL",
                    consignee=consignee,
                    time_requirement="STANDARD",
                    total_amount=10,
                    items=[OrderItem(sku=s, quantity=self.rng.randint(1, 3), price=10) for s in lines],
                )
            )
        return out


# --- the benchmark ------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, modules: Path, node_version: str) -> None:
        from bench.harness import Progress

        self.args, self.modules, self.node_version = args, modules, node_version
        self.progress = Progress()
        self.deployment: Any = None
        self.worker: Any = None
        self.readers: Readers | None = None
        self.client: LoadClient | None = None
        self.publisher: Any = None
        self.published = 0  # input events acknowledged by the broker
        self.runs: list[dict[str, Any]] = []
        self.baselines: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.started = time.monotonic()

    # -- set-up
    def deploy(self) -> None:
        from bench.harness import Deployment
        from connectors.produce import EventPublisher

        self.deployment = d = Deployment("rb", self.args.partitions)
        print(
            f"deployment {d.settings.topic_prefix}* ({len(d.created)} topics, app id {d.settings.app_id})"
            + (" on the local broker this run started" if d.broker_started else ""),
            flush=True,
        )
        self.worker = d.start_worker()
        print(f"worker starting on {self.worker.url} (log {self.worker.log_path})", flush=True)
        started = time.monotonic()
        self.worker.wait_ready(timeout_s=180)
        print(f"worker ready in {time.monotonic() - started:.1f}s", flush=True)
        self.publisher = EventPublisher(d.settings)
        self.client = LoadClient(self.modules, d.root)

    def publish(self, events: list[Any]) -> float:
        started = time.monotonic()
        for i, event in enumerate(events, 1):
            self.publisher.publish(event)
            if i % 5000 == 0:
                self.progress.show(f"publishing {i:,}/{len(events):,}")
        report = self.publisher.flush()
        if report.failed:
            raise RuntimeError(f"not published: {report.failed[:3]}")
        self.published += len(events)
        return time.monotonic() - started

    def preload(self, skus: list[str]) -> None:
        from schemas.inputs import GoodsReceived, ReceivedLine
        from streams.worker_process import http_json

        at = datetime(2025, 11, 22, 7, 0, tzinfo=UTC)
        receipts = [
            GoodsReceived(
                event_id=f"rbpre-{wh}-{i}",
                occurred_at=at,
                receipt_no=f"RBPRE-{wh}-{i}",
                warehouse_code=wh,
                lines=[ReceivedLine(sku=s, sellable_qty=PRELOAD_QTY) for s in skus[i : i + LINES_PER_RECEIPT]],
            )
            for wh in WAREHOUSES
            for i in range(0, len(skus), LINES_PER_RECEIPT)
        ]
        self.publish(receipts)
        started = time.monotonic()
        while True:
            complete = 0
            for i in range(0, len(skus), 200):
                status, body = http_json(f"{self.worker.url}/inventory?skus={','.join(skus[i : i + 200])}", 10)
                if status == 200:
                    complete += sum(len(v["warehouses"]) == len(WAREHOUSES) for v in body["items"].values())
            if complete == len(skus):
                break
            self.progress.show(f"preload: {complete:,}/{len(skus):,} SKUs complete in the worker", force=True)
            if time.monotonic() - started > 300:
                raise TimeoutError(f"preload incomplete after 300s: {complete}/{len(skus)}")
            time.sleep(0.5)
        self.progress.done(
            f"preload: {len(receipts)} receipts, {len(skus) * len(WAREHOUSES):,} positions held by "
            f"the worker in {time.monotonic() - started:.1f}s"
        )

    def start_readers(self, processes: int) -> None:
        from bench.harness import free_port

        self.stop_readers()
        d = self.deployment
        self.readers = Readers(d.env(), processes, free_port(), d.root / f"readers-{processes}.log").start()
        waited = self.readers.wait_ready(len(self.positions))
        self.progress.done(
            f"{processes} read process{'es' * (processes > 1)} on {self.readers.url}: ready with "
            f"every position in {waited:.1f}s"
        )

    def stop_readers(self) -> None:
        if self.readers is not None:
            self.readers.stop()
            self.readers = None

    def check_answers(self, n: int = 50) -> None:
        """A reader's answers equal the worker's own view (idle: nothing changes meanwhile)."""
        from streams.worker_process import http_json

        assert self.readers is not None
        rng = random.Random(self.args.seed)
        differ = [
            p
            for p in rng.sample(self.positions, min(n, len(self.positions)))
            if http_json(self.readers.url + p)[1] != http_json(self.worker.url + p)[1]
        ]
        if differ:
            self.notes.append(
                f"{len(differ)} of {n} positions differed between a read process and the worker "
                f"at idle, e.g. {differ[0]}"
            )
            print(f"WARNING: {self.notes[-1]}", flush=True)
        else:
            print(f"answers checked: {n} random positions equal to the worker's own view", flush=True)

    # -- measurements
    def counters(self) -> dict[str, Any]:
        """The worker's counters (read_report.parse_metrics) with the monotonic time read."""
        import urllib.request

        from bench.read_report import parse_metrics

        with urllib.request.urlopen(f"{self.worker.url}/metrics", timeout=10) as response:  # noqa: S310 - loopback
            text = response.read().decode()
        return {**parse_metrics(text), "at": time.monotonic()}

    def cpu(self) -> dict[str, float]:
        from bench.harness import cpu_seconds

        groups = {
            "worker": [self.worker.proc.pid],
            "readers": self.readers.pids() if self.readers else [],
            "client": [p for p in [self.client.pid() if self.client else None] if p],
        }
        return {g: sum(cpu_seconds(p) for p in pids) for g, pids in groups.items()} | {"at": time.monotonic()}

    def reading(self) -> dict[str, Any]:
        return {"counters": self.counters(), "cpu": self.cpu()}

    def drain_batch(self, events: list[Any]) -> dict[str, Any]:
        """Publish ``events`` and wait until the worker has processed all of them through every
        stage; the worker's figures over that time."""
        from bench.read_report import applied_per_s, cpu_percent, drained

        t = self.deployment.topics
        before = self.reading()
        self.publish(events)
        deadline = before["counters"]["at"] + self.args.max_drain_seconds
        while True:
            counters = self.counters()
            done = drained(
                counters, self.published, [t.orders, t.shipments, t.stock_movements], [t.stock_commands, t.order_inbox]
            )
            if done or counters["at"] > deadline:
                break
            time.sleep(0.05)
        after = {"counters": counters, "cpu": self.cpu()}
        seconds = after["counters"]["at"] - before["counters"]["at"]
        dead = after["counters"]["out"].get(t.dead_letters, 0) - before["counters"]["out"].get(t.dead_letters, 0)
        if dead:
            self.notes.append(f"{dead:.0f} dead letters during a drain (see the worker's log)")
        return {
            "orders": len(events),
            "seconds": round(seconds, 3),
            "complete": done,
            "ingest_per_s": round(len(events) / seconds, 1),
            "applied_per_s": round(applied_per_s(before["counters"], after["counters"]) or 0.0, 1),
            "cpu_percent": cpu_percent(before["cpu"], after["cpu"]),
        }

    def run(
        self, phase: str, target: str, processes: int | None, clients: int, rate: float | None = None, orders: int = 0
    ) -> dict[str, Any]:
        """One load run: idle for ``--seconds``; during the drain, for as long as the worker
        takes to drain ``orders`` published when the recorded window opens."""
        from bench.read_report import cpu_percent, label, row

        assert self.client is not None
        client_runner = self.client
        if target == "worker":
            url, paths = self.worker.url, self.positions
        else:
            assert self.readers is not None
            url, paths = self.readers.url, (["/ping"] if target == "ping" else self.positions)
        spec = {"phase": phase, "target": target, "processes": processes, "clients": clients, "rate": rate}
        name = f"[{phase}] {label(spec)}, {clients} clients" + (f" @ {rate:,.0f}/s" if rate else "")
        self.progress.show(f"{name}: running ({time.monotonic() - self.started:.0f}s into the run)", force=True)
        events = self.orders.take(orders) if orders else []  # built outside the window
        marks: dict[str, Any] = {}

        def measuring() -> None:
            if events:
                marks["drain"] = self.drain_batch(events)
                client_runner.end_run()
            else:
                marks["cpu0"] = self.cpu()

        def result() -> None:
            if not events:
                marks["cpu_percent"] = cpu_percent(marks["cpu0"], self.cpu())

        seconds = self.args.max_drain_seconds + 30 if events else self.args.seconds
        client = client_runner.run(url, paths, clients, seconds, self.args.warmup, rate, measuring, result)
        worker = marks.get("drain") or {"cpu_percent": marks.get("cpu_percent")}
        x = row(spec, client, worker)
        self.runs.append(x)
        text = (
            f"{name}: {x['requests_per_s']:,.0f} req/s, p50 {x['p50_ms']:.2f} p99 {x['p99_ms']:.2f} "
            f"p999 {x['p999_ms']:.2f} ms"
        )
        if x["errors"] or x["non2xx"] or x["timeouts"]:
            text += f", {x['errors']} errors {x['non2xx']} non-2xx {x['timeouts']} timeouts"
        if x["ingest_per_s"] is not None:
            text += (
                f"; the worker drained {x['drain_orders']:,} orders in {x['drain_seconds']:.1f}s = "
                f"{x['ingest_per_s']:,.0f}/s" + ("" if x["drain_complete"] else " (INCOMPLETE)")
            )
        self.progress.done(text)
        return x

    def baseline(self, name: str, orders: int) -> dict[str, Any]:
        """The same drain with no query load."""
        b = {"group": name, **self.drain_batch(self.orders.take(orders))}
        self.baselines.append(b)
        self.progress.done(
            f"[drain] baseline {name}: the worker drained {b['orders']:,} orders in {b['seconds']:.1f}s"
            f" = {b['ingest_per_s']:,.0f}/s with no query load" + ("" if b["complete"] else " (INCOMPLETE)")
        )
        return b

    # -- the whole run
    def execute(self) -> None:
        args = self.args
        self.skus = skus_of(args.skus)
        self.positions = [f"/inventory/{s}/{wh}" for s in self.skus for wh in WAREHOUSES]
        self.deploy()
        self.orders = Orders(self.skus, args.seed, self.deployment.settings.topic_prefix.strip(".")[-6:])
        self.preload(self.skus)
        for processes in (1, 2):
            self.start_readers(processes)
            if processes == 1:
                self.check_answers()
            for target in ("ping", "position"):
                for c in args.clients:
                    self.run("idle", target, processes, c)
        self.run("idle", "worker", None, WORKER_VIEW_CLIENTS)
        self.drain()

    def drain(self) -> None:
        """Groups of drain runs, each group between two baseline drains: 2 read processes
        (already running), then 1 (started again: it reads the whole topic meanwhile)."""
        from bench.read_report import attach_baseline, label

        args = self.args
        n = args.drain_orders
        # (group, read processes, orders per drain, runs as (target, clients, rate))
        groups: list[tuple[str, int, int, list[tuple[str, int, float | None]]]] = [
            ("2 read processes, /ping", 2, n, [("ping", c, None) for c in args.clients]),
            ("2 read processes, positions", 2, n, [("position", c, None) for c in args.clients]),
            (
                f"2 read processes, {args.limited_rate:,.0f}/s",
                2,
                2 * n,
                [("position", args.limited_clients, args.limited_rate)],
            ),
            ("1 read process, /ping", 1, n, [("ping", c, None) for c in args.clients]),
            ("1 read process, positions", 1, n, [("position", c, None) for c in args.clients]),
        ]
        latest: dict[str, Any] | None = None  # the last baseline, while nothing has happened since
        for group, processes, orders, runs in groups:
            if self.readers is None or self.readers.processes != processes:
                self.start_readers(processes)
                latest = None
            # a baseline drains as many orders as its runs: a drain's start and tail weigh less in a longer one
            before = (
                latest
                if latest is not None and latest["orders"] == orders
                else self.baseline(f"before {group}", orders)
            )
            rows = [self.run("drain", target, processes, c, rate, orders) for target, c, rate in runs]
            latest = self.baseline(f"after {group}", orders)
            attach_baseline(rows, before, latest)
            for x in rows:
                self.progress.done(
                    f"[drain] {label(x)}, {x['clients']} clients: the worker's ingest was "
                    f"{x['ingest_ratio']:.0%} of its baselines' "
                    f"{x['baseline_ingest_per_s']:,.0f} orders/s"
                )

    def cleanup(self) -> None:
        if self.client is not None:
            self.client.stop()
        self.stop_readers()
        if self.worker is not None:
            self.worker.stop(timeout_s=20)  # it leaves its consumer group, which can then be deleted
        if self.deployment is not None:
            import gc

            self.publisher = None
            gc.collect()  # the producer closes before its broker may go
            d = self.deployment
            d.close()
            left = "" if d.broker_started else delete_group(d.settings)
            print(
                f"cleaned up: worker and read processes stopped, topics of {d.settings.topic_prefix}* deleted"
                + (", the broker this run started stopped" if d.broker_started else "")
                + left,
                flush=True,
            )


def delete_group(settings: Any, timeout_s: float = 30.0) -> str:
    """Delete the deployment's consumer group (bench/harness.py tries once; a member that has
    not left yet makes that fail). Returns "" when gone, else what is left."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    from streams.kafka_config import admin_config

    admin = AdminClient(admin_config(settings))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.delete_consumer_groups([settings.app_id], request_timeout=10)[settings.app_id].result()
            return ""
        except KafkaException as exc:
            code = exc.args[0].code() if exc.args and hasattr(exc.args[0], "code") else None
            if code == KafkaError.GROUP_ID_NOT_FOUND:
                return ""
            if time.monotonic() > deadline:
                return f"; consumer group {settings.app_id} not deleted: {exc}"
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # --help prints and exits here, before anything starts
    from bench import read_report, report

    if args.publish_from is not None:
        for path in read_report.publish(args.publish_from):
            print(f"published {path}")
        return 0
    modules, node_version = ensure_autocannon()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=False)
        run_dir = args.out
    else:
        run_dir = report.new_run_dir(label="read")
    print(f"read benchmark: results go to {run_dir}", flush=True)

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    bench = Bench(args, modules, node_version)
    load_at_start = round(os.getloadavg()[0], 2)
    failure = None
    try:
        bench.execute()
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        failure = "interrupted"
    except Exception as exc:  # noqa: BLE001 - the runs made so far are still written
        failure = f"{type(exc).__name__}: {exc}"
        print(f"read benchmark FAILED: {failure}", file=sys.stderr)
        if bench.worker is not None:
            print(f"worker log tail:\n{bench.worker.log_tail(20)}", file=sys.stderr)
    finally:
        bench.cleanup()
    results = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": ("python -m bench.read_bench " + " ".join(argv if argv is not None else sys.argv[1:])).strip(),
        "run_dir": str(run_dir.relative_to(report.REPO_ROOT) if run_dir.is_relative_to(report.REPO_ROOT) else run_dir),
        "seconds": round(time.monotonic() - bench.started, 1),
        "load_average_1m": {"start": load_at_start, "end": round(os.getloadavg()[0], 2)},
        "config": {
            "skus": args.skus,
            "warehouses": len(WAREHOUSES),
            "positions": args.skus * len(WAREHOUSES),
            "partitions": args.partitions,
            "clients": args.clients,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "drain_orders": args.drain_orders,
            "limited_rate": args.limited_rate,
            "limited_clients": args.limited_clients,
            "autocannon": AUTOCANNON,
            "node": node_version,
            "random_keys": True,
            "seed": args.seed,
        },
        "drain_note": (
            f"each drain run publishes {args.drain_orders:,} orders (1-5 lines over Zipf-popular SKUs; "
            f"the rate-limited run {2 * args.drain_orders:,}) when its recorded window opens, and the "
            "load runs until the worker has processed all of them through every stage (its "
            "`inventory_events_in/out_total` counters: every input consumed, every internal record "
            "sent also consumed); the worker's ingest is those orders over that time, at its own full "
            "rate. The baseline is the same drain with no query load, run before and after each group "
            "of runs; a run is compared with the mean of its group's two. The read processes read "
            "every change the drain makes meanwhile."
        ),
        "orders_published": bench.orders.n if hasattr(bench, "orders") else 0,
        "runs": bench.runs,
        "baselines": bench.baselines,
        "notes": bench.notes,
        "failure": failure,
    }
    results["targets"] = read_report.judge(bench.runs)
    read_report.write_run(results, run_dir)
    print()
    print(read_report.markdown(results))
    print(f"read benchmark: {results['seconds']:.0f}s; results in {run_dir}")
    if failure is None and args.publish:
        for path in read_report.publish(run_dir):
            print(f"published {path}")
    return 0 if failure is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
