"""Pipeline throughput: preload the input topics, then let N workers drain them.

Run: ``python bench/pipeline_bench.py drain [--events N] [--workers 1] [--profile]``.
A benchmark, not a test: it prints and saves figures and asserts nothing.

The producer runs before the workers start, so it does not compete with them for the two
cores. The clock starts when the first input event is counted by a worker and stops when
every input event is consumed and the internal topics are drained (each worker's counters,
from /metrics, polled every 50 ms).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import RESULTS, Deployment, Progress, cpu_seconds, peak_rss_mb, worker_counters  # noqa: E402
from bench.report import new_run_dir  # noqa: E402
from schemas.base import Event  # noqa: E402


def reservation_workload(seed: int, orders: int, skus: int, warehouses: int) -> list[Event]:
    """Receipts that stock every position, then orders of 1-5 lines over Zipf-popular SKUs."""
    from schemas.inputs import Consignee, GoodsReceived, OrderCreated, OrderItem, ReceivedLine

    rng = random.Random(seed)
    codes = [f"SKU{i:06d}" for i in range(skus)]
    whs = [f"WH{i + 1:03d}" for i in range(warehouses)]
    weights = [1 / (rank + 1) for rank in range(skus)]
    at = datetime(2025, 11, 22, 8, 0, tzinfo=UTC)
    events: list[Event] = []
    for wh in whs:
        for i in range(0, skus, 200):
            events.append(
                GoodsReceived(
                    event_id=f"rc-{wh}-{i}",
                    occurred_at=at,
                    receipt_no=f"RC-{wh}-{i}",
                    warehouse_code=wh,
                    lines=[ReceivedLine(sku=s, sellable_qty=1_000_000) for s in codes[i : i + 200]],
                )
            )
    consignee = Consignee(name="张三", phone="13800138000", address="北京市朝阳区XX街道XX号")
    for n in range(orders):
        lines = sorted(set(rng.choices(codes, weights, k=rng.randint(1, 5))))
        events.append(
            OrderCreated(
                event_id=f"oc-{n}",
                occurred_at=at + timedelta(milliseconds=n),
                order_no=f"BO{n:08d}",
                order_type="NORMAL",
                consignee=consignee,
                time_requirement="STANDARD",
                items=[OrderItem(sku=s, quantity=rng.randint(1, 3), price=10) for s in lines],
                total_amount=10,
            )
        )
    return events


def publish(settings: Any, events: list[Event], progress: Progress) -> float:
    from connectors.produce import EventPublisher

    publisher = EventPublisher(settings)
    started = time.monotonic()
    for i, event in enumerate(events, 1):
        publisher.publish(event)
        if i % 2000 == 0:
            progress.show(f"preload {i:,}/{len(events):,}")
    report = publisher.flush()
    if report.failed:
        raise RuntimeError(f"not published: {report.failed[:3]}")
    elapsed = time.monotonic() - started
    progress.done(f"preload {len(events):,} events in {elapsed:.1f}s")
    return elapsed


def drained(d: Deployment, inputs: int) -> tuple[float, bool]:
    """(input events consumed by all workers, whether everything is processed)."""
    totals: dict[str, dict[str, float]] = {"in": {}, "out": {}}
    for w in d.workers:
        for direction, by_topic in worker_counters(w.url).items():
            for topic, n in by_topic.items():
                totals[direction][topic] = totals[direction].get(topic, 0) + n
    t = d.topics
    consumed = sum(totals["in"].get(name, 0) for name in (t.orders, t.shipments, t.stock_movements))
    if totals["out"].get(t.dead_letters):
        raise RuntimeError(f"{totals['out'][t.dead_letters]:.0f} dead letters: the run is not valid (see the logs)")
    internal_done = all(
        totals["in"].get(name, 0) >= totals["out"].get(name, 0) for name in (t.stock_commands, t.order_inbox)
    )
    return consumed, consumed >= inputs and internal_done


def drain_events(
    events: list[Event],
    workers: int,
    partitions: int,
    progress: Progress,
    profile_out: Path | None = None,
    timeout_s: float = 900,
    keep_logs: bool = False,
    name: str = "pb",
    before_close: Callable[[Deployment, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Preload ``events`` into a fresh deployment, start ``workers`` workers, time the drain.

    The result holds the window in wall-clock time (``t0_wall``/``t1_wall``) and the workers'
    pids; ``before_close(deployment, result)`` runs once drained, before the deployment's
    topics are deleted (the benchmark counts records on the broker there)."""
    d = Deployment(name, partitions)
    profiler: subprocess.Popen[bytes] | None = None
    try:
        preload_s = publish(d.settings, events, progress)
        started = [d.start_worker() for _ in range(workers)]
        for w in started:
            w.wait_ready(timeout_s=180)
        pids = [w.proc.pid for w in started if w.proc]
        if profile_out is not None:
            profiler = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(pids[0]),
                    "--rate",
                    "100",
                    "--format",
                    "raw",
                    "--output",
                    str(profile_out),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cpu0 = 0.0
        t0 = t0_wall = None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            consumed, done = drained(d, len(events))
            now = time.monotonic()
            if consumed and t0 is None:
                t0, t0_wall, cpu0 = now, time.time(), sum(cpu_seconds(p) for p in pids)
            if t0 is not None:
                rate = consumed / max(1e-3, now - t0)
                progress.show(
                    f"drain ({workers} worker{'s' * (workers > 1)}) "
                    f"{consumed:,.0f}/{len(events):,} input events, {rate:,.0f}/s"
                )
            if done:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"not drained within {timeout_s}s")
        elapsed = time.monotonic() - (t0 or time.monotonic())
        cpu = sum(cpu_seconds(p) for p in pids) - cpu0
        t1_wall = time.time()
        peak = max(peak_rss_mb(p) for p in pids)
        progress.done(f"drained {len(events):,} input events with {workers} worker(s) in {elapsed:.2f}s")
        result: dict[str, Any] = {
            "workers": workers,
            "partitions": partitions,
            "input_events": len(events),
            "preload_s": round(preload_s, 2),
            "seconds": round(elapsed, 3),
            "events_per_s": round(len(events) / elapsed, 1),
            "cpu_s": round(cpu, 3),
            "cpu_s_per_1000_events": round(1000 * cpu / len(events), 3),
            "peak_rss_mb": round(peak, 1),
            "t0_wall": t0_wall,
            "t1_wall": t1_wall,
            "pids": pids,
        }
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(timeout=60)
            profiler = None
        if before_close is not None:
            before_close(d, result)
        return result
    finally:
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(timeout=60)
        d.close(keep_logs=keep_logs)


def drain(args: argparse.Namespace) -> dict[str, Any]:
    events = reservation_workload(args.seed, args.events, args.skus, args.warehouses)
    # A new folder per profiled drain (bench/results/runs/, ignored by git): never over a tracked profile.
    profile = new_run_dir(label=f"drain-{args.label or 'run'}") / "profile.txt" if args.profile else None
    return drain_events(events, args.workers, args.partitions, Progress(), profile, args.timeout, args.keep_logs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["drain"])
    parser.add_argument("--events", type=int, default=20_000, help="orders in the workload")
    parser.add_argument("--skus", type=int, default=2_000)
    parser.add_argument("--warehouses", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy profile of the first worker, into a new folder under bench/results/runs/",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the workers' logs")
    parser.add_argument("--label", default="", help="name of this run in the results file")
    args = parser.parse_args(argv)
    result = {k: v for k, v in drain(args).items() if k not in ("pids", "t0_wall", "t1_wall")}
    result["label"] = args.label
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "pipeline_drain_runs.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"at": datetime.now(UTC).isoformat(timespec="seconds"), **result}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
