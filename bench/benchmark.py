"""The benchmark: the pipeline beside the limit and a peer, measured in one run on this machine.

Run: ``make bench`` (``python -m bench.benchmark``; ``--quick`` for a smaller run). Prints a
table, and saves bench/results/benchmark.json, docs/benchmark.md (the table) and
docs/benchmark.png (the chart), plus a py-spy profile of the one-worker drain.

1. *limit* - a plain confluent-kafka consume -> produce loop over the same preloaded input
   topics (bench/limit.py).
2. *pipeline* - preload the input topics, then drain them with 1 and with 2 worker processes
   (bench/pipeline_bench.py); the same with a simulated day (connectors/traffic.py) for the
   realistic mix. Then end-to-end latency, OrderCreated -> OrderStatusChanged, at fixed input
   rates (bench/latency.py): the target's 5,000/s and half of what one worker sustained.
3. *peer* - the same reservation logic on Quix Streams in its own virtualenv
   (bench/peer_quix/), on the same preloaded input.
4. ratios pipeline/limit and pipeline/peer, CPU seconds per 1,000 input events, peak memory.

The reservation workload (receipts stocking every position, then orders of 1-5 lines over
Zipf-popular SKUs) is the one input all three can process, so their figures compare.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import latency, limit  # noqa: E402
from bench.harness import RESULTS, Deployment, Progress  # noqa: E402
from bench.pipeline_bench import drain_events, publish, reservation_workload  # noqa: E402
from bench.profile_summary import summarise  # noqa: E402
from config.settings import REPO_ROOT  # noqa: E402

DOCS = REPO_ROOT / "docs"
TARGETS = {"events_per_s_one_worker": 10_000, "p99_ms_at_5000": 100.0, "pipeline_over_peer": 1.0}


def run_limit(events: list[Any], partitions: int, progress: Progress) -> dict[str, Any]:
    d = Deployment("lim", partitions)
    try:
        publish(d.settings, events, progress)
        return limit.consume_produce(d, len(events), progress)
    finally:
        d.close()


def run_peer(events: list[Any], partitions: int, progress: Progress) -> dict[str, Any]:
    venv_python = REPO_ROOT / ".venv-quix" / "bin" / "python"
    setup = subprocess.run(["bash", str(REPO_ROOT / "bench" / "peer_quix" / "setup_venv.sh")],
                           capture_output=True, text=True)
    if setup.returncode != 0 or not venv_python.exists():
        return {"error": f"peer venv setup failed: {setup.stderr[-500:]}"}
    d = Deployment("peer", partitions)
    state = Path(tempfile.mkdtemp(prefix="peer-state-"))
    stats = state / "stats.json"
    group = f"peer-{uuid.uuid4().hex[:8]}"
    try:
        publish(d.settings, events, progress)
        progress.done(f"peer: Quix Streams on {len(events):,} preloaded input events")
        proc = subprocess.run(
            [str(venv_python), "-m", "bench.peer_quix.app", "--bootstrap", d.settings.bootstrap_servers,
             "--topic-prefix", d.settings.topic_prefix, "--group", group,
             "--state-dir", str(state / "rocksdb"), "--expect", str(len(events)), "--stats-out", str(stats),
             # Tuned as a Quix user would: with concat, the default 1 s poll leaves the process
             # idle about half the time (bench/peer_quix/README.md).
             "--idle-exit-s", "30", "--consumer-poll-timeout", "0.01"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0 or not stats.exists():
            return {"error": f"peer exited {proc.returncode}: {proc.stderr[-800:]}"}
        raw = json.loads(stats.read_text())
        consumed = raw.get("consumed") or 0
        return {
            "input_events": consumed, "seconds": round(raw["seconds"], 2), "events_per_s": round(raw["events_per_s"], 1),
            "cpu_s_per_1000_events": round(1000 * (raw.get("cpu_s_processing") or raw["cpu_s"]) / max(consumed, 1), 3),
            "peak_rss_mb": round(raw["peak_rss_mb"], 1), "complete": consumed >= len(events),
        }
    finally:
        d.close()
        _delete_topics_naming(d, group)  # Quix's changelog__<group>--* and repartition__<group>--*
        subprocess.run(["rm", "-rf", str(state)], check=False)


def _delete_topics_naming(d: Deployment, group: str) -> None:
    from confluent_kafka.admin import AdminClient

    from streams.kafka_config import admin_config

    admin = AdminClient(admin_config(d.settings))
    names = [n for n in admin.list_topics(timeout=10).topics if group in n]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception:  # noqa: BLE001 - best effort clean-up
                pass


def run_latency(rates: list[float], seconds: float, skus: int, warehouses: int, partitions: int,
                progress: Progress) -> list[dict[str, Any]]:
    d = Deployment("lat", partitions)
    try:
        stock = reservation_workload(seed=3, orders=0, skus=skus, warehouses=warehouses)
        publish(d.settings, stock, progress)
        worker = d.start_worker()
        worker.wait_ready(timeout_s=180)
        from bench.pipeline_bench import drained

        deadline = time.monotonic() + 300
        while not drained(d, len(stock))[1] and time.monotonic() < deadline:
            time.sleep(0.2)
        results = []
        for i, rate in enumerate(rates):
            results.append(latency.measure(d, rate, seconds, skus, progress))
            while i + 1 < len(rates) and not drained(d, 0)[1]:  # a backlog clears before the next rate
                time.sleep(0.5)
        return results
    finally:
        d.close()


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def markdown(results: dict[str, Any]) -> str:
    rows = [("limit: confluent-kafka consume->produce, no processing", results["limit"]),
            ("pipeline, 1 worker (reservation workload)", results["pipeline_1w"]),
            ("pipeline, 2 workers (reservation workload)", results["pipeline_2w"]),
            ("pipeline, 1 worker (simulated day, all flows)", results["pipeline_day_1w"]),
            ("peer: Quix Streams, same reservation logic", results["peer"])]
    lines = [
        f"# Benchmark ({results['at']}, {results['machine']})", "",
        "One run of `make bench` on this machine; every figure below comes from that run "
        "(bench/results/benchmark.json).", "",
        "| what | input events | events/s | CPU s / 1,000 events | peak RSS MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        if r.get("error"):
            lines.append(f"| {name} | - | {r['error'][:80]} | - | - |")
            continue
        lines.append(f"| {name} | {r['input_events']:,} | {r['events_per_s']:,.0f} | "
                     f"{r['cpu_s_per_1000_events']:.3f} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "| end-to-end latency, OrderCreated -> OrderStatusChanged | orders | answered | p50 ms | p99 ms |",
              "|---|---:|---:|---:|---:|"]
    for r in results["latency"]:
        p99 = f"{r['p99_ms']:,.1f}" if not r["unanswered_after_settle"] else \
            f"> {r['p99_ms']:,.0f} ({r['unanswered_after_settle']:,} unanswered)"
        lines.append(f"| offered {r['offered_per_s']:,.0f}/s for {r['seconds']:.0f}s "
                     f"(published {r.get('published_per_s', 0):,.0f}/s) | {r['orders']:,} | "
                     f"{r['answered']:,} | {r['p50_ms']:,.1f} | {p99} |")
    r = results["ratios"]
    t = results["targets"]
    lines += ["", "| ratio / target | value | target | met |", "|---|---:|---:|---|",
              f"| pipeline (1 worker) / limit | {r['pipeline_over_limit']} | - | - |",
              f"| pipeline (1 worker) / peer | {r['pipeline_over_peer']} | >= 1.0 | {t['pipeline_over_peer']} |",
              f"| events/s, one worker | {results['pipeline_1w'].get('events_per_s')} | >= 10,000 | "
              f"{t['events_per_s_one_worker']} |",
              f"| p99 ms at 5,000/s | {t['p99_at_5000']} | < 100 | {t['p99_ms_at_5000']} |",
              "", "![benchmark](benchmark.png)", ""]
    if results.get("profile_top"):
        lines += ["## Where a worker's time goes (py-spy, one-worker drain, self time)", "", "```"]
        lines += [f"{share:5.1f}%  {name}" for name, share in results["profile_top"]]
        lines += ["```", ""]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = ["limit", "pipeline\n1 worker", "pipeline\n2 workers", "pipeline\nsim. day", "peer\nQuix"]
    keys = ["limit", "pipeline_1w", "pipeline_2w", "pipeline_day_1w", "peer"]
    values = [results[k].get("events_per_s") or 0 for k in keys]
    bars = left.bar(names, values, color=["#888", "#2a7", "#2a7", "#7c4", "#47c"])
    left.axhline(TARGETS["events_per_s_one_worker"], color="#c33", linestyle="--", linewidth=1)
    left.text(0, TARGETS["events_per_s_one_worker"], " target 10,000/s", color="#c33", va="bottom", fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("input events/s (log)")
    left.set_title("Throughput, preloaded input drained")
    for bar, v in zip(bars, values, strict=True):
        left.text(bar.get_x() + bar.get_width() / 2, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    lat = results["latency"]
    xs = [f"{r['offered_per_s']:,.0f}/s" for r in lat]
    right.bar([x + "\np50" for x in xs], [r["p50_ms"] for r in lat], color="#2a7")
    right.bar([x + "\np99" for x in xs], [r["p99_ms"] for r in lat], color="#c73")
    right.axhline(100, color="#c33", linestyle="--", linewidth=1)
    right.set_yscale("log")
    right.set_ylabel("ms (log)")
    right.set_title("End-to-end latency OrderCreated -> status")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000, help="orders in the reservation workload")
    parser.add_argument("--skus", type=int, default=2_000)
    parser.add_argument("--warehouses", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="a small run (a few minutes): 3,000 orders")
    parser.add_argument("--stages", nargs="+", default=["limit", "pipeline", "day", "peer", "latency"],
                        help="run only these stages (the others are reported as skipped)")
    parser.add_argument("--assume-rate", type=float, default=200.0,
                        help="one worker's events/s for choosing latency rates when 'pipeline' is skipped")
    args = parser.parse_args(argv)
    if args.quick:
        args.orders, args.latency_seconds = 3_000, 10.0
    progress = Progress()
    events = reservation_workload(1, args.orders, args.skus, args.warehouses)
    from connectors.traffic import generate_day

    day = list(generate_day(seed=1, orders=args.orders // 2, skus=args.skus, warehouses=args.warehouses))
    RESULTS.mkdir(exist_ok=True)
    profile = RESULTS / "benchmark-profile-1w.txt"
    results: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}",
        "workload": {"orders": args.orders, "skus": args.skus, "warehouses": args.warehouses,
                     "input_events": len(events), "partitions": args.partitions, "simulated_day_events": len(day)},
    }
    print(f"reservation workload: {len(events):,} input events; simulated day: {len(day):,}", flush=True)
    skipped: dict[str, Any] = {"error": "skipped (--stages)"}
    stages = set(args.stages)
    results["limit"] = run_limit(events, args.partitions, progress) if "limit" in stages else skipped
    results["pipeline_1w"] = drain_events(events, 1, args.partitions, progress, profile_out=profile) \
        if "pipeline" in stages else {**skipped, "events_per_s": args.assume_rate}
    results["pipeline_2w"] = drain_events(events, 2, args.partitions, progress) if "pipeline" in stages else skipped
    results["pipeline_day_1w"] = drain_events(day, 1, args.partitions, progress) if "day" in stages else skipped
    results["peer"] = run_peer(events, args.partitions, progress) if "peer" in stages else skipped
    sustained = results["pipeline_1w"]["events_per_s"]
    rates = sorted({5000.0, max(10.0, round(sustained * 0.5, -1))})
    results["latency"] = run_latency(rates, args.latency_seconds, args.skus, args.warehouses, args.partitions,
                                     progress) if "latency" in stages else []
    p1 = results["pipeline_1w"].get("events_per_s") if "pipeline" in stages else None
    results["ratios"] = {"pipeline_over_limit": ratio(p1, results["limit"].get("events_per_s")),
                         "pipeline_over_peer": ratio(p1, results["peer"].get("events_per_s"))}
    at_5000 = next((r for r in results["latency"] if r["offered_per_s"] == 5000.0), None)
    p99_5000 = at_5000["p99_ms"] if at_5000 and not at_5000["unanswered_after_settle"] else None
    results["targets"] = {
        "events_per_s_one_worker": (p1 or 0) >= TARGETS["events_per_s_one_worker"],
        "p99_ms_at_5000": p99_5000 is not None and p99_5000 < TARGETS["p99_ms_at_5000"],
        "p99_at_5000": p99_5000 if p99_5000 is not None else "not sustained",
        "pipeline_over_peer": (results["ratios"]["pipeline_over_peer"] or 0) >= TARGETS["pipeline_over_peer"],
    }
    if profile.exists():
        total, self_time, _ = summarise(str(profile))
        results["profile_top"] = [(name, round(100 * n / total, 1)) for name, n in self_time.most_common(15)]
    (RESULTS / "benchmark.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    DOCS.mkdir(exist_ok=True)
    (DOCS / "benchmark.md").write_text(markdown(results), encoding="utf-8")
    plot(results, DOCS / "benchmark.png")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
