"""Query latency of the worker's HTTP views while it ingests a steady stream of events.

Run: ``python bench/query_bench.py`` (``--help`` lists the knobs). A benchmark, not a test: it
prints and saves figures, asserts nothing. Target: p99 < 10 ms for single lookups at 1,000
events/s. In an isolated deployment with one worker (the local broker started if none answers,
stopped only then) it preloads ~2,000 SKUs x 3 warehouses, has a producer process publish orders,
cancellations and receipts at a fixed rate, and from one keep-alive client times GET
/inventory/{sku}/{warehouseCode} of random positions, then GET /inventory?skus=... of 50 SKUs
(request sent -> body read; warm-up unrecorded). Prints p50/p95/p99/max beside the achieved
ingest and lag; saves bench/results/query_bench.json and .png. Cleans up all it started.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Progress, cpu_seconds, free_port, percentile  # noqa: E402
from config.settings import Settings, get_settings  # noqa: E402
from streams import local_kafka  # noqa: E402
from streams.topics import Topics, create_topics  # noqa: E402
from streams.worker_process import WorkerProcess, http_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
WAREHOUSES = ("WH001", "WH002", "WH003")
LINES_PER_RECEIPT = 200  # MAX_LINES of the contract
PRELOAD_QTY = 100_000  # per position: the stream never runs a position dry
TARGET_P99_MS = 10.0
WORKER_PID = [0]  # the worker's pid, for its CPU time


# --------------------------------------------------------------------------- helpers
def skus_of(n: int) -> list[str]:
    return [f"QB{i:05d}" for i in range(n)]


class Backlog:
    """Input records published but not yet committed by the worker's consumer group, from the
    broker (end offsets vs committed offsets). The worker's own lag gauge reads its fetcher's
    highwater marks, which stop moving while a backlogged consumer pauses fetching."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Consumer, TopicPartition

        from streams.kafka_config import consumer_config

        topics = Topics(settings)
        self.consumer = Consumer(consumer_config(settings, group_id=settings.app_id))
        metadata = self.consumer.list_topics(timeout=10)
        self.partitions = [
            TopicPartition(name, p)
            for name in (topics.orders, topics.shipments, topics.stock_movements)
            for p in metadata.topics[name].partitions
        ]

    def __call__(self) -> int:
        committed = self.consumer.committed(self.partitions, timeout=10)
        total = 0
        for tp in committed:
            _, high = self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            total += max(0, high - max(tp.offset, 0))
        return total

    def close(self) -> None:
        self.consumer.close()


def cpu_percent(before: dict[str, float], after: dict[str, float]) -> float:
    return round(100 * (after["cpu"] - before["cpu"]) / max(1e-3, after["at"] - before["at"]), 1)


def input_counts(url: str, topics: Topics, backlog: Backlog) -> dict[str, float]:
    """Input events the worker has processed (its counters, from /metrics) and its backlog."""
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    inputs = {topics.orders, topics.shipments, topics.stock_movements}
    consumed = 0.0
    for line in text.splitlines():
        m = re.match(r'inventory_events_in_total\{topic="([^"]+)"\} (\S+)', line)
        if m and m.group(1) in inputs:
            consumed += float(m.group(2))
    return {"consumed": consumed, "lag": float(backlog()), "cpu": cpu_seconds(WORKER_PID[0]), "at": time.monotonic()}


# --------------------------------------------------------------------------- the producer
def produce_forever(
    settings: Settings, rate: float, skus: list[str], seed: int, sent: Any, acked: Any, failed: Any, stop: Any
) -> None:
    """Child process: publish input events at ``rate`` per second until ``stop`` is set."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    from connectors.produce import EventPublisher
    from schemas.inputs import Consignee, GoodsReceived, OrderCancelled, OrderCreated, OrderItem, ReceivedLine

    publisher = EventPublisher(settings)

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is None:
            acked.value += 1
        else:
            failed.value += 1

    publisher._on_delivery = on_delivery  # type: ignore[method-assign] - count into shared values
    rng = random.Random(seed)
    consignee = Consignee(name="张三", phone="13800138000", address="北京市朝阳区XX街道XX号")
    t0 = datetime(2025, 11, 22, 8, 0, tzinfo=UTC)
    open_orders: list[str] = []
    run = uuid.uuid4().hex[:6]
    n = 0

    def next_event() -> Any:
        nonlocal n
        n += 1
        at = t0 + timedelta(milliseconds=n)
        roll = rng.random()
        if roll < 0.40 and len(open_orders) > 50:
            return OrderCancelled(
                event_id=f"qbc-{run}-{n}", occurred_at=at, order_no=open_orders.pop(0), reason="bench"
            )
        if roll < 0.85:
            order_no = f"QBO-{run}-{n}"
            open_orders.append(order_no)
            qty = rng.randint(1, 3)
            return OrderCreated(
                event_id=f"qbo-{run}-{n}",
                occurred_at=at,
                order_no=order_no,
                order_type="NORMAL",
                consignee=consignee,
                items=[OrderItem(sku=rng.choice(skus), quantity=qty, price=9.9)],
                total_amount=round(9.9 * qty, 2),
                time_requirement="STANDARD",
            )
        return GoodsReceived(
            event_id=f"qbr-{run}-{n}",
            occurred_at=at,
            receipt_no=f"QBR-{run}-{n}",
            warehouse_code=rng.choice(WAREHOUSES),
            lines=[ReceivedLine(sku=rng.choice(skus), sellable_qty=rng.randint(1, 5))],
        )

    start = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - start) * rate) - sent.value
        if due <= 0:
            publisher.producer.poll(0)
            time.sleep(min(0.002, 1 / rate))
            continue
        for _ in range(min(due, 200)):  # catch up in bounded bursts
            publisher.publish(next_event())
            sent.value += 1
    publisher.producer.flush(10)


class Ingest:
    """The producer process and its shared counters."""

    def __init__(self, settings: Settings, rate: float, skus: list[str], seed: int) -> None:
        ctx = mp.get_context("spawn")
        self.sent = ctx.Value("q", 0, lock=False)
        self.acked = ctx.Value("q", 0, lock=False)
        self.failed = ctx.Value("q", 0, lock=False)
        self.stop_event = ctx.Event()
        self.proc = ctx.Process(
            target=produce_forever,
            name="query-bench-producer",
            daemon=True,
            args=(settings, rate, skus, seed, self.sent, self.acked, self.failed, self.stop_event),
        )

    def start(self) -> Ingest:
        self.proc.start()
        return self

    def check(self) -> None:
        if not self.proc.is_alive() and not self.stop_event.is_set():
            raise RuntimeError(f"the producer process died (exit code {self.proc.exitcode}); see its output above")

    def stop(self) -> None:
        self.stop_event.set()
        self.proc.join(15)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# --------------------------------------------------------------------------- the client
class Client:
    """One keep-alive HTTP/1.1 connection; reconnects after an error."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.errors = 0

    def get(self, path: str) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        try:
            self.conn.request("GET", path, headers={"Accept": "application/json"})
            response = self.conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.errors += 1
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            return 0, b"", time.perf_counter() - started
        return response.status, body, time.perf_counter() - started


def measure(
    name: str,
    client: Client,
    next_path: Callable[[], str],
    check: Callable[[bytes], bool],
    args: argparse.Namespace,
    ingest: Ingest,
    counts: Callable[[], dict[str, float]],
    progress: Progress,
) -> dict[str, Any]:
    """Sequential GETs for ``args.duration`` s after ``args.warmup`` s; latencies in ms."""
    duration_s = args.duration
    end_warmup = time.monotonic() + args.warmup
    while time.monotonic() < end_warmup:
        client.get(next_path())
        progress.show(f"[{name}] warming up")
    before = counts()
    sent0, acked0 = ingest.sent.value, ingest.acked.value
    latencies: list[float] = []
    bad = 0
    checked = 0
    started = time.monotonic()
    deadline = started + duration_s
    window: list[float] = []
    while (now := time.monotonic()) < deadline:
        status, body, seconds = client.get(next_path())
        if status != 200:
            bad += 1
            continue
        ms = seconds * 1000
        latencies.append(ms)
        window.append(ms)
        if len(latencies) % 97 == 0:  # spot-check the answers (outside the timed region)
            checked += 1
            if not check(body):
                bad += 1
        if len(window) >= 2000:
            window = window[-1000:]
        elapsed = now - started
        if elapsed > 0 and progress.due():
            ingest.check()
            recent = sorted(window)
            progress.show(
                f"[{name}] {elapsed:5.1f}/{duration_s:.0f}s  n={len(latencies):,}  "
                f"p50 {percentile(recent, 50):.2f} ms  p99 {percentile(recent, 99):.2f} ms  "
                f"ingest {(ingest.acked.value - acked0) / elapsed:,.0f}/s"
            )
    wall = time.monotonic() - started
    after = counts()
    values = sorted(latencies)
    result = {
        "requests": len(values),
        "errors": bad + client.errors,
        "answers_checked": checked,
        "seconds": round(wall, 2),
        "requests_per_s": round(len(values) / wall, 1),
        "p50_ms": round(percentile(values, 50), 3),
        "p95_ms": round(percentile(values, 95), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "p999_ms": round(percentile(values, 99.9), 3),
        "max_ms": round(values[-1], 3) if values else None,
        "mean_ms": round(sum(values) / len(values), 3) if values else None,
        "ingest_published_per_s": round((ingest.acked.value - acked0) / wall, 1),
        "ingest_offered_per_s": round((ingest.sent.value - sent0) / wall, 1),
        "ingest_consumed_per_s": round((after["consumed"] - before["consumed"]) / wall, 1),
        "consumer_lag_end": int(after["lag"]),
        "worker_cpu_percent": cpu_percent(before, after),
    }
    client.errors = 0
    progress.done(
        f"[{name}] done: n={result['requests']:,}  p50 {result['p50_ms']:.2f}  p99 {result['p99_ms']:.2f}  "
        f"max {result['max_ms']:.1f} ms; ingest {result['ingest_published_per_s']:,.0f}/s published, "
        f"{result['ingest_consumed_per_s']:,.0f}/s consumed"
    )
    return {"summary": result, "latencies_ms": values}


# --------------------------------------------------------------------------- set-up / tear-down
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base = get_settings()
        self.broker_started = False
        self.worker: WorkerProcess | None = None
        self.ingest: Ingest | None = None
        self.settings: Settings | None = None
        self.root = Path(tempfile.mkdtemp(prefix="query-bench-"))
        self.progress = Progress()

    def deploy(self) -> None:
        if self.base.uses_local_broker:
            self.broker_started = local_kafka.start(self.base)
            bootstrap = local_kafka.bootstrap_address(self.base)
        else:
            bootstrap = self.base.bootstrap_servers
        tag = uuid.uuid4().hex[:8]
        self.settings = self.base.model_copy(
            update={
                "bootstrap_servers": bootstrap,
                "topic_prefix": f"qb{tag}.",
                "app_id": f"inventory-qbench-{tag}",
                "partitions": self.args.partitions,
                "data_dir": self.root / "worker",
            }
        )
        created = create_topics(self.settings)
        print(f"deployment {self.settings.topic_prefix}* ({len(created)} topics, app id {self.settings.app_id})")
        env = {
            "INVENTORY_BOOTSTRAP_SERVERS": bootstrap,
            "INVENTORY_TOPIC_PREFIX": self.settings.topic_prefix,
            "INVENTORY_APP_ID": self.settings.app_id,
            "INVENTORY_PARTITIONS": str(self.args.partitions),
            "INVENTORY_DATA_DIR": str(self.root / "worker"),
        }
        self.worker = WorkerProcess(env, self.root / "worker.log", free_port()).start()
        started = time.monotonic()
        print(f"worker starting on {self.worker.url} (log {self.worker.log_path})", flush=True)
        assert self.worker.proc is not None
        WORKER_PID[0] = self.worker.proc.pid
        self.worker.wait_ready(timeout_s=180)
        print(f"worker ready in {time.monotonic() - started:.1f}s", flush=True)

    def preload(self, skus: list[str]) -> None:
        from connectors.produce import EventPublisher
        from schemas.inputs import GoodsReceived, ReceivedLine

        assert self.settings is not None and self.worker is not None
        publisher = EventPublisher(self.settings)
        at = datetime(2025, 11, 22, 7, 0, tzinfo=UTC)
        receipts = 0
        for wh in WAREHOUSES:
            for i in range(0, len(skus), LINES_PER_RECEIPT):
                chunk = skus[i : i + LINES_PER_RECEIPT]
                publisher.publish(
                    GoodsReceived(
                        event_id=f"qbpre-{self.settings.topic_prefix}{wh}-{i}",
                        occurred_at=at,
                        receipt_no=f"QBPRE-{wh}-{i}",
                        warehouse_code=wh,
                        lines=[ReceivedLine(sku=s, sellable_qty=PRELOAD_QTY) for s in chunk],
                    )
                )
                receipts += 1
        report = publisher.flush()
        if report.failed:
            raise RuntimeError(f"preload not published: {report.failed[:3]}")
        print(f"preload: {receipts} receipts = {len(skus):,} SKUs x {len(WAREHOUSES)} warehouses published", flush=True)
        started = time.monotonic()
        deadline = started + 300
        while True:
            complete = 0
            for i in range(0, len(skus), 200):
                status, body = http_json(f"{self.worker.url}/inventory?skus={','.join(skus[i : i + 200])}", 10)
                if status == 200:
                    complete += sum(len(v["warehouses"]) == len(WAREHOUSES) for v in body["items"].values())
            total = len(skus)
            self.progress.show(
                f"preload: {complete:,}/{total:,} SKUs complete ({time.monotonic() - started:.0f}s)", force=True
            )
            if complete == total:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"preload incomplete after 300s: {complete}/{total}")
            time.sleep(1.0)
        self.progress.done(
            f"preload: {len(skus) * len(WAREHOUSES):,} positions applied in {time.monotonic() - started:.1f}s"
        )

    def run(self) -> dict[str, Any]:
        args = self.args
        skus = skus_of(args.skus)
        self.deploy()
        self.preload(skus)
        assert self.settings is not None and self.worker is not None
        topics = Topics(self.settings)
        rng = random.Random(args.seed)
        backlog = Backlog(self.settings)
        self.ingest = Ingest(self.settings, args.rate, skus, args.seed).start()
        print(f"ingest: {args.rate:,.0f} events/s in the background (orders, cancellations, receipts)", flush=True)
        # Ingest alone first: the worker's steady state under the stream, and its consumption
        # rate when nobody queries it (the baseline for the rates measured beside the queries).
        time.sleep(min(2.0, args.settle))
        counts = lambda: input_counts(self.worker.url, topics, backlog)  # noqa: E731
        before, acked0, t0 = counts(), self.ingest.acked.value, time.monotonic()
        while (elapsed := time.monotonic() - t0) < max(0.0, args.settle - 2.0):
            self.ingest.check()
            rate = (self.ingest.acked.value - acked0) / max(elapsed, 1e-3)
            self.progress.show(f"[ingest only] {elapsed:4.1f}s  published {rate:,.0f}/s")
            time.sleep(0.2)
        after, wall = counts(), max(1e-3, time.monotonic() - t0)
        baseline = {
            "seconds": round(wall, 2),
            "ingest_published_per_s": round((self.ingest.acked.value - acked0) / wall, 1),
            "ingest_consumed_per_s": round((after["consumed"] - before["consumed"]) / wall, 1),
            "consumer_lag_end": int(after["lag"]),
            "worker_cpu_percent": cpu_percent(before, after),
        }
        self.progress.done(
            f"[ingest only] {baseline['ingest_published_per_s']:,.0f}/s published, "
            f"{baseline['ingest_consumed_per_s']:,.0f}/s consumed, "
            f"backlog {baseline['consumer_lag_end']:,}"
        )
        client = Client(self.worker.web_port)

        def single_path() -> str:
            return f"/inventory/{rng.choice(skus)}/{rng.choice(WAREHOUSES)}"

        def single_ok(body: bytes) -> bool:
            doc = json.loads(body)
            return isinstance(doc.get("availableQty"), int) and doc.get("warehouseCode") in WAREHOUSES

        def batch_path() -> str:
            return f"/inventory?skus={','.join(rng.sample(skus, args.batch))}"

        def batch_ok(body: bytes) -> bool:
            doc = json.loads(body)
            return len(doc.get("items", {})) == args.batch and not doc.get("missing")

        phases = {}
        phases["single"] = measure(
            "single GET /inventory/{sku}/{wh}", client, single_path, single_ok, args, self.ingest, counts, self.progress
        )
        phases["batch"] = measure(
            f"batch GET /inventory?skus= x{args.batch}",
            client,
            batch_path,
            batch_ok,
            args,
            self.ingest,
            counts,
            self.progress,
        )
        client.conn.close()
        backlog.close()
        ingest_failed = self.ingest.failed.value
        self.ingest.stop()
        return {"phases": phases, "ingest_failed": ingest_failed, "baseline": baseline}

    def cleanup(self) -> None:
        if self.ingest is not None:
            self.ingest.stop()
        if self.worker is not None:
            self.worker.kill()
        if self.settings is not None:
            try:
                from confluent_kafka.admin import AdminClient

                from streams.kafka_config import admin_config

                admin = AdminClient(admin_config(self.settings))
                names = list(Topics(self.settings).all())
                for future in admin.delete_topics(names, operation_timeout=30).values():
                    try:
                        future.result()
                    except Exception:  # noqa: BLE001 - best effort on a throwaway deployment
                        pass
                for future in admin.delete_consumer_groups([self.settings.app_id], request_timeout=15).values():
                    try:
                        future.result()
                    except Exception:  # noqa: BLE001
                        pass
                print(f"cleaned up: worker killed, {len(names)} topics of {self.settings.topic_prefix}* deleted")
            except Exception as exc:  # noqa: BLE001
                print(f"cleanup of the topics failed: {exc}", file=sys.stderr)
        shutil.rmtree(self.root, ignore_errors=True)
        if self.broker_started:
            local_kafka.stop(self.base)


# --------------------------------------------------------------------------- report
def report(args: argparse.Namespace, outcome: dict[str, Any]) -> dict[str, Any]:
    phases = outcome["phases"]
    rows = [("single", "GET /inventory/{sku}/{wh}"), ("batch", f"GET /inventory?skus= ({args.batch} SKUs)")]
    print()
    print(f"Query latency while ingesting (target {args.rate:,.0f} events/s), keep-alive client, sequential:")
    header = (
        f"{'query':34} {'n':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>8}  ms   "
        f"{'published/s':>11} {'consumed/s':>10} {'backlog':>7} {'worker CPU':>10}"
    )
    print(header)
    print("-" * len(header))
    for key, label in rows:
        s = phases[key]["summary"]
        print(
            f"{label:34} {s['requests']:>7,} {s['p50_ms']:>7.2f} {s['p95_ms']:>7.2f} {s['p99_ms']:>7.2f} "
            f"{s['max_ms']:>8.2f}       {s['ingest_published_per_s']:>11,.0f} "
            f"{s['ingest_consumed_per_s']:>10,.0f} {s['consumer_lag_end']:>7,} {s['worker_cpu_percent']:>9.0f}%"
        )
    b = outcome["baseline"]
    print(
        f"{'(no queries: ingest only)':34} {'':>7} {'':>7} {'':>7} {'':>7} {'':>8}       "
        f"{b['ingest_published_per_s']:>11,.0f} {b['ingest_consumed_per_s']:>10,.0f} "
        f"{b['consumer_lag_end']:>7,} {b['worker_cpu_percent']:>9.0f}%"
    )
    single = phases["single"]["summary"]
    verdict = "met" if single["p99_ms"] < TARGET_P99_MS else "NOT met"
    print(f"\ntarget p99 < {TARGET_P99_MS:.0f} ms for single lookups: {verdict} ({single['p99_ms']:.2f} ms)")
    if any(phases[k]["summary"]["errors"] for k in phases) or outcome["ingest_failed"]:
        print(
            f"errors: single {single['errors']}, batch {phases['batch']['summary']['errors']}, "
            f"ingest delivery failures {outcome['ingest_failed']}"
        )
    return {
        "benchmark": "query_bench",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "config": {
            "skus": args.skus,
            "warehouses": len(WAREHOUSES),
            "rate_per_s": args.rate,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "batch_size": args.batch,
            "partitions": args.partitions,
            "seed": args.seed,
            "mix": {"OrderCreated": 0.45, "OrderCancelled": 0.40, "GoodsReceived": 0.15},
        },
        "target": {"single_p99_ms": TARGET_P99_MS, "met": single["p99_ms"] < TARGET_P99_MS},
        "single": single,
        "batch": phases["batch"]["summary"],
        "ingest_only": outcome["baseline"],
        "ingest_delivery_failures": outcome["ingest_failed"],
    }


def plot(args: argparse.Namespace, outcome: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(12, 4.6))
    colors = {"single": "#1f77b4", "batch": "#d62728"}
    labels = {"single": "GET /inventory/{sku}/{wh}", "batch": f"GET /inventory?skus= ({args.batch} SKUs)"}
    all_values = [v for k in ("single", "batch") for v in outcome["phases"][k]["latencies_ms"]]
    lo, hi = max(0.05, min(all_values)), max(all_values)
    bins = np.logspace(np.log10(lo), np.log10(hi * 1.01), 80)
    for key in ("single", "batch"):
        values = np.asarray(outcome["phases"][key]["latencies_ms"])
        s = outcome["phases"][key]["summary"]
        label = f"{labels[key]}: p50 {s['p50_ms']:.2f}, p99 {s['p99_ms']:.2f} ms"
        hist.hist(values, bins=bins, alpha=0.6, color=colors[key], label=label)
        cdf.plot(values, np.arange(1, len(values) + 1) / len(values), color=colors[key], label=labels[key])
        cdf.axvline(s["p99_ms"], color=colors[key], linestyle=":", linewidth=1)
    for ax in (hist, cdf):
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log scale)")
        ax.axvline(TARGET_P99_MS, color="black", linestyle="--", linewidth=1)
        ax.grid(True, which="both", alpha=0.25)
    hist.set_ylabel("requests")
    hist.set_title("Latency histogram")
    hist.legend(fontsize=8, loc="upper right")
    cdf.set_ylabel("fraction of requests")
    cdf.set_ylim(0, 1.0)
    cdf.set_title("CDF (dotted: p99; dashed: 10 ms target)")
    cdf.legend(fontsize=8, loc="lower right")
    single = outcome["phases"]["single"]["summary"]
    fig.suptitle(
        f"Query latency at {single['ingest_published_per_s']:,.0f} events/s published "
        f"({single['ingest_consumed_per_s']:,.0f}/s consumed), {args.skus:,} SKUs x {len(WAREHOUSES)} "
        f"warehouses, keep-alive client"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=2000, help="SKUs preloaded (x3 warehouses)")
    parser.add_argument("--rate", type=float, default=1000.0, help="input events/s ingested during the queries")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per query kind")
    parser.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds before each measurement")
    parser.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="seconds of ingest alone before the first query (its rate is reported too)",
    )
    parser.add_argument("--batch", type=int, default=50, help="SKUs per batch query")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "query_bench.json")
    args = parser.parse_args(argv)

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    bench = Bench(args)
    try:
        outcome = bench.run()
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception:
        if bench.worker is not None:
            print(f"worker log tail:\n{bench.worker.log_tail(30)}", file=sys.stderr)
        raise
    finally:
        bench.cleanup()
    summary = report(args, outcome)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    png = args.out.with_suffix(".png")
    plot(args, outcome, png)
    print(f"wrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
