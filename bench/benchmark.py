"""The benchmark: the pipeline beside the limit and a peer, like with like, in one run.

Run: ``make bench`` (``python -m bench.benchmark``; ``--quick`` for a few minutes, ``--help`` for
the knobs). Starts the local broker if none answers, and stops only that one. Stages, each in a
fresh deployment on the same preloaded reservation workload: *limit* (bench/limit.py),
*pipeline* with 1 and 2 workers (bench/pipeline_bench.py) and a *profile* drain under py-spy,
*peer* (bench/peer_quix/, at-least-once and exactly-once), *day* (a simulated day), *latency*
(bench/latency.py). All are measured alike (bench/broker.py, bench/figures.py). Each run writes
bench/results/runs/<UTC stamp>/; the committed summary (docs/benchmark.md and .png,
bench/results/benchmark.json, the profile) changes only with ``--publish`` or ``--publish-from``.
The method in full: docs/performance.md ("How make bench measures"); why: docs/decisions.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The limit streams ~40,000 records/s here: its input is copied up to this many records so that
# it seldom has to seek back to a partition's start within its 10 s (bench/limit.py).
LIMIT_INPUT_RECORDS = 300_000
STAGE_NAMES = ("limit", "pipeline", "profile", "peer", "peer-eos", "day", "latency")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.benchmark",
        description=__doc__.splitlines()[0],
        epilog="Results: a new folder under bench/results/runs/ per run; the committed summary only with --publish.",
    )
    parser.add_argument("--orders", type=int, default=20_000, help="orders in the reservation workload (20,000)")
    parser.add_argument("--skus", type=int, default=2_000, help="SKUs (2,000; x warehouses = positions stocked)")
    parser.add_argument("--warehouses", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--limit-seconds", type=float, default=10.0, help="the limit runs at least this long (10)")
    parser.add_argument("--latency-step-seconds", type=float, default=15.0, help="each latency search step (15)")
    parser.add_argument("--latency-final-seconds", type=float, default=20.0, help="the 50%%/80%% steps (20)")
    parser.add_argument("--latency-steps", type=int, default=6, help="latency search steps at most (6)")
    parser.add_argument("--latency-limit-ms", type=float, default=100.0, help="the p99 the search keeps under (100)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small run (about 5 min): 3,000 orders over 300 SKUs (positions per order as in the full run), "
        "short latency steps",
    )
    parser.add_argument(
        "--stages",
        nargs="+",
        default=list(STAGE_NAMES),
        choices=STAGE_NAMES,
        metavar="STAGE",
        help=f"run only these ({', '.join(STAGE_NAMES)}); the others are reported as skipped",
    )
    parser.add_argument(
        "--assume-rate",
        type=float,
        default=300.0,
        help="one worker's orders/s for the latency search when 'pipeline' is skipped",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the run's folder (must not exist); default bench/results/runs/<UTC stamp>/",
    )
    parser.add_argument(
        "--publish", action="store_true", help="also copy this run over the committed summary (docs/benchmark.md, ...)"
    )
    parser.add_argument(
        "--publish-from",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="copy an earlier run's folder over the committed summary, run nothing",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.orders, args.skus = min(args.orders, 3_000), min(args.skus, 300)
        args.latency_step_seconds, args.latency_final_seconds, args.latency_steps = 6.0, 8.0, 4
    return args


@dataclass
class Run:
    """What every stage shares: the settings, the broker's pid, the CPU sampler, the folder."""

    args: argparse.Namespace
    settings: Any
    run_dir: Path
    progress: Any
    sampler: Any
    broker_pid: int | None
    started: float = field(default_factory=time.monotonic)

    def broker_cpu(self, t0: float | None, t1: float | None) -> float | None:
        if self.broker_pid is None or t0 is None or t1 is None:
            return None
        return self.sampler.between(self.broker_pid, t0, t1)


@dataclass(frozen=True)
class Workload:
    events: list[Any]
    orders: int
    order_lines: int
    receipts: int

    @classmethod
    def of(cls, events: list[Any]) -> Workload:
        from schemas.inputs import GoodsReceived, OrderCreated

        orders = [e for e in events if isinstance(e, OrderCreated)]
        return cls(
            events,
            len(orders),
            sum(len(o.items) for o in orders),
            sum(1 for e in events if isinstance(e, GoodsReceived)),
        )


# --- counting a stage on the broker --------------------------------------------------------


def _count(run: Run, settings: Any, roles: Any, markers: tuple[str, ...]) -> dict[str, Any]:
    from bench.broker import count_records, deployment_topics, offset_spans, wait_quiet

    topics = deployment_topics(settings, *markers)
    wait_quiet(settings, topics)
    counts = count_records(settings, topics)
    spans = offset_spans(settings, topics)
    return {
        "records_by_role": roles.by_role(counts),
        "offsets_by_role": roles.by_role(spans),
        "records_by_topic": {t: n for t, n in counts.items() if n},
    }


def _pipeline_roles(settings: Any) -> Any:
    from bench.figures import pipeline_roles
    from streams.topics import Topics

    topics = Topics(settings)
    return pipeline_roles({topics.name(s): s.role for s in topics.specs}, settings.app_id)


def _figures(stage: Any, counted: dict[str, Any], **extra: Any) -> dict[str, Any]:
    from bench.figures import derive

    return {
        **derive(stage),
        **extra,
        "records_by_role": counted["records_by_role"],
        "offsets_by_role": counted["offsets_by_role"],
        "records_by_topic": counted["records_by_topic"],
    }


# --- the stages ----------------------------------------------------------------------------


def stage_limit(run: Run, w: Workload) -> dict[str, Any]:
    from bench import limit
    from bench.figures import Stage
    from bench.harness import Deployment
    from bench.pipeline_bench import publish

    d = Deployment("lim", run.args.partitions)
    try:
        publish(d.settings, w.events, run.progress)
        t = d.topics
        copies = limit.amplify(d.settings, [t.orders, t.shipments, t.stock_movements], LIMIT_INPUT_RECORDS)
        run.progress.done(f"limit: the input copied up to {copies:,} records")
        r = limit.consume_produce(d, run.progress, min_seconds=run.args.limit_seconds, on_start=run.sampler.watch)
        counted = _count(run, d.settings, _pipeline_roles(d.settings), (d.settings.topic_prefix, d.settings.app_id))
        stage = Stage(
            "limit",
            "limit",
            counted["records_by_role"],
            r["seconds"],
            r["cpu_s"],
            run.broker_cpu(r["t0"], r["t1"]),
            consumed=r["consumed"],
            input_events=r["consumed"],
            peak_rss_mb=r["peak_rss_mb"],
        )
        figures = _figures(stage, counted, passes=r["passes"])
        if counted["records_by_role"]["output"] != r["consumed"]:
            figures["warning"] = (
                f"the broker holds {counted['records_by_role']['output']:,} output records for "
                f"{r['consumed']:,} consumed"
            )
        return figures
    finally:
        d.close()


def stage_pipeline(run: Run, w: Workload, workers: int, name: str, profile_out: Path | None = None) -> dict[str, Any]:
    from bench.figures import Stage
    from bench.pipeline_bench import drain_events

    counted: dict[str, Any] = {}

    def before_close(d: Any, result: dict[str, Any]) -> None:
        counted.update(
            _count(run, d.settings, _pipeline_roles(d.settings), (d.settings.topic_prefix, d.settings.app_id))
        )

    r = drain_events(
        w.events,
        workers,
        run.args.partitions,
        run.progress,
        profile_out=profile_out,
        before_close=before_close,
        name=name,
    )
    stage = Stage(
        name,
        name,
        counted["records_by_role"],
        r["seconds"],
        r["cpu_s"],
        run.broker_cpu(r["t0_wall"], r["t1_wall"]),
        input_events=len(w.events),
        orders=w.orders,
        order_lines=w.order_lines,
        peak_rss_mb=r["peak_rss_mb"],
        workers=workers,
    )
    figures = _figures(stage, counted, workers=workers, preload_s=r["preload_s"])
    if counted["records_by_role"]["input"] != len(w.events):
        figures["warning"] = (
            f"the broker holds {counted['records_by_role']['input']:,} input records, not {len(w.events):,}"
        )
    return figures


_PEER_PYTHON: list[Path] = []


def peer_python() -> Path:
    """.venv-quix's python, made (or found up to date) by bench/peer_quix/setup_venv.sh once per run."""
    from config.settings import REPO_ROOT

    if not _PEER_PYTHON:
        setup = subprocess.run(
            ["bash", str(REPO_ROOT / "bench" / "peer_quix" / "setup_venv.sh")],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        python = REPO_ROOT / ".venv-quix" / "bin" / "python"
        if setup.returncode != 0 or not python.exists():
            raise RuntimeError(f"peer venv setup failed: {setup.stdout[-300:]}{setup.stderr[-500:]}")
        _PEER_PYTHON.append(python)
    return _PEER_PYTHON[0]


def stage_peer(run: Run, w: Workload, guarantee: str) -> dict[str, Any]:
    from bench.figures import Stage, peer_roles
    from bench.harness import Deployment
    from bench.peer_quix.topics import TopicNames
    from bench.pipeline_bench import publish
    from config.settings import REPO_ROOT

    python = peer_python()
    d = Deployment("peer" if guarantee == "at-least-once" else "peeq", run.args.partitions)
    state = Path(tempfile.mkdtemp(prefix="peer-state-"))
    stats = state / "stats.json"
    group = f"peer-{uuid.uuid4().hex[:8]}"
    log = run.run_dir / f"peer-{guarantee}.log"
    try:
        publish(d.settings, w.events, run.progress)
        cmd = [
            str(python),
            "-m",
            "bench.peer_quix.app",
            "--bootstrap",
            d.settings.bootstrap_servers,
            "--topic-prefix",
            d.settings.topic_prefix,
            "--group",
            group,
            "--state-dir",
            str(state / "rocksdb"),
            "--expect",
            str(len(w.events)),
            "--stats-out",
            str(stats),
            "--processing-guarantee",
            guarantee,
            # Tuned as a Quix user would: with concat, the default 1 s poll leaves the process
            # idle about half the time (bench/peer_quix/README.md).
            "--idle-exit-s",
            "30",
            "--consumer-poll-timeout",
            "0.01",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
        began = time.monotonic()
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        run.sampler.watch(proc.pid)
        try:
            while proc.poll() is None:
                if time.monotonic() - began > 1800:
                    proc.kill()
                    raise TimeoutError("the peer did not finish within 1800 s")
                run.progress.show(f"peer ({guarantee}): running for {time.monotonic() - began:.0f}s")
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        if proc.returncode != 0 or not stats.exists():
            tail = log.read_text(errors="replace")[-800:]
            raise RuntimeError(f"peer exited {proc.returncode}: {tail}")
        raw = json.loads(stats.read_text())
        run.progress.done(
            f"peer ({guarantee}): {raw['consumed']:,} input events in {raw['seconds']:.1f}s ({raw['stop_reason']})"
        )
        names = TopicNames.of(d.settings.topic_prefix)
        roles = peer_roles(names.inputs, names.order_inbox, [n for n in names.own if n != names.order_inbox], group)
        counted = _count(run, d.settings, roles, (d.settings.topic_prefix, group))
        t0, t1 = raw["first_input_ts"], raw["last_output_ts"]
        cpu = run.sampler.between(proc.pid, t0, t1)
        stage = Stage(
            f"peer {guarantee}",
            f"peer {guarantee}",
            counted["records_by_role"],
            raw["seconds"],
            cpu if cpu is not None else raw.get("cpu_s_processing"),
            run.broker_cpu(t0, t1),
            input_events=len(w.events),
            orders=w.orders,
            order_lines=w.order_lines,
            peak_rss_mb=raw["peak_rss_mb"],
        )
        return _figures(
            stage,
            counted,
            processing_guarantee=guarantee,
            complete=raw["consumed"] >= len(w.events),
            orders_rejected=raw.get("orders_rejected"),
            errors=raw.get("errors"),
            stop_reason=raw.get("stop_reason"),
            seconds_to_stopped=raw.get("seconds_to_stopped"),
            cpu_s_processing_own=raw.get("cpu_s_processing"),
        )
    finally:
        # The peer's topics first: Deployment.close() stops the broker when it started it (not
        # the case inside a run, which starts the broker itself, but this order holds alone too).
        _delete_topics(d.settings, group)
        d.close()
        shutil.rmtree(state, ignore_errors=True)


def _delete_topics(settings: Any, group: str) -> None:
    """Quix's changelog__<group>--* and repartition__<group>--* (best effort)."""
    from confluent_kafka.admin import AdminClient

    from streams.kafka_config import admin_config

    admin = AdminClient(admin_config(settings))
    names = [n for n in admin.list_topics(timeout=10).topics if f"__{group}--" in n]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception:  # noqa: BLE001 - best effort clean-up
                pass


def stage_latency(run: Run, drain_orders_per_s: float) -> dict[str, Any]:
    from bench import latency
    from bench.harness import Deployment
    from bench.pipeline_bench import drained, publish, reservation_workload

    a = run.args
    d = Deployment("lat", a.partitions)
    try:
        stock = reservation_workload(seed=3, orders=0, skus=a.skus, warehouses=a.warehouses)
        publish(d.settings, stock, run.progress)
        worker = d.start_worker()
        worker.wait_ready(timeout_s=180)
        deadline = time.monotonic() + 300
        while not drained(d, len(stock))[1] and time.monotonic() < deadline:
            time.sleep(0.2)
        start = max(5.0, round(0.8 * drain_orders_per_s))

        def at(rate: float, seconds: float) -> dict[str, Any]:
            return latency.measure(d, rate, seconds, a.skus, run.progress, limit_ms=a.latency_limit_ms)

        latency.measure(d, max(5.0, round(0.25 * start)), 3.0, a.skus, run.progress, early_stop=False)  # warm-up
        best, steps = latency.search(lambda r: at(r, a.latency_step_seconds), start, a.latency_steps)
        out: dict[str, Any] = {
            "limit_ms": a.latency_limit_ms,
            "highest_rate": best,
            "search": steps,
            "drain_orders_per_s": drain_orders_per_s,
            "at_80_of_drain": steps[0],
            "search_note": f"{len(steps)} steps of {a.latency_step_seconds:g} s from 80% of the "
            f"1-worker drain rate, {drain_orders_per_s:,.0f} orders/s",
        }
        if best:
            out["at_50"] = at(round(0.5 * best), a.latency_final_seconds)
            out["at_80"] = at(round(0.8 * best), a.latency_final_seconds)
        return out
    finally:
        d.close()


# --- the run -------------------------------------------------------------------------------


def summarise(results: dict[str, Any]) -> None:
    """Ratios and target verdicts from the stages' figures (in place)."""
    from bench.figures import TARGETS, ratio

    st = results["stages"]

    def get(stage: str, key: str) -> Any:
        f = st.get(stage) or {}
        return None if f.get("error") else f.get(key)

    results["ratios"] = {
        "pipeline (1 worker) / limit": {
            "value": ratio(get("pipeline_1w", "record_ops_per_s"), get("limit", "record_ops_per_s")),
            "how": "record operations per second (records consumed + produced)",
        },
        "pipeline (1 worker) / peer at-least-once": {
            "value": ratio(get("pipeline_1w", "orders_per_s"), get("peer", "orders_per_s")),
            "how": "orders/s",
        },
        "pipeline (1 worker) / peer exactly-once": {
            "value": ratio(get("pipeline_1w", "orders_per_s"), get("peer_eos", "orders_per_s")),
            "how": "orders/s",
        },
        "peer at-least-once / pipeline (1 worker), worker CPU per order": {
            "value": ratio(get("peer", "worker_cpu_us_per_order"), get("pipeline_1w", "worker_cpu_us_per_order")),
            "how": "> 1: the pipeline spends less CPU per order",
        },
        "2 workers / 1 worker": {
            "value": ratio(get("pipeline_2w", "orders_per_s"), get("pipeline_1w", "orders_per_s")),
            "how": "orders/s",
        },
    }
    lat = results.get("latency") or {}
    p99_80 = (lat.get("at_80_of_drain") or {}).get("p99_ms")
    if lat.get("at_80_of_drain") and lat["at_80_of_drain"]["unanswered_after_settle"]:
        p99_80 = None
    results["targets"] = [
        TARGETS["orders_per_s"].judge(get("pipeline_1w", "orders_per_s")),
        TARGETS["pipeline_over_peer"].judge(results["ratios"]["pipeline (1 worker) / peer at-least-once"]["value"]),
        TARGETS["consumed_per_order"].judge(get("pipeline_1w", "consumed_per_order")),
        TARGETS["produced_per_order"].judge(get("pipeline_1w", "produced_per_order")),
        TARGETS["cpu_us_per_order"].judge(get("pipeline_1w", "worker_cpu_us_per_order")),
        TARGETS["p99_ms_at_80"].judge(p99_80),
    ]
    if lat.get("at_80_of_drain", {}).get("aborted"):
        results["targets"][-1]["verdict"] += " (the step stopped early: over the limit for > 1% of its orders)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # --help prints and exits here, before anything starts
    from bench import report

    if args.publish_from is not None:
        for path in report.publish(args.publish_from):
            print(f"published {path}")
        return 0

    from bench.broker import CpuSampler, broker_pid
    from bench.harness import Progress
    from bench.pipeline_bench import reservation_workload
    from config.settings import get_settings
    from streams import local_kafka

    settings = get_settings()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=False)
        run_dir = args.out
    else:
        run_dir = report.new_run_dir()
    progress = Progress()
    print(f"benchmark: results go to {run_dir}", flush=True)
    w = Workload.of(reservation_workload(1, args.orders, args.skus, args.warehouses))
    from connectors.traffic import generate_day

    day = Workload.of(list(generate_day(seed=1, orders=args.orders // 2, skus=args.skus, warehouses=args.warehouses)))
    results: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": ("python -m bench.benchmark " + " ".join(argv if argv is not None else sys.argv[1:])).strip(),
        "run_dir": str(run_dir),
        "limit_min_seconds": args.limit_seconds,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "workload": {
            "orders": w.orders,
            "order_lines": w.order_lines,
            "receipts": w.receipts,
            "positions": args.skus * args.warehouses,
            "skus": args.skus,
            "warehouses": args.warehouses,
            "input_events": len(w.events),
            "partitions": args.partitions,
            "simulated_day_events": len(day.events),
            "simulated_day_orders": day.orders,
        },
        "stages": {},
        "latency": {},
    }
    stages = set(args.stages)
    started = time.monotonic()
    profile = run_dir / report.RUN_FILES["profile"]
    broker_started = local_kafka.start(settings) if settings.uses_local_broker else False
    results["broker"] = {"bootstrap": settings.bootstrap_servers, "started_by_this_run": broker_started}
    sampler = CpuSampler().start()
    failed: list[str] = []
    try:
        bpid = broker_pid(settings)
        results["broker"]["pid"] = bpid
        if bpid is not None:
            sampler.watch(bpid)
        if not broker_started:
            results["broker"]["note"] = "a broker already running: its CPU includes whatever else uses it"
        run = Run(args, settings, run_dir, progress, sampler, bpid, started)
        plan: list[tuple[str, str, Callable[[], Any]]] = [
            ("limit", "limit", lambda: stage_limit(run, w)),
            ("pipeline", "pipeline_1w", lambda: stage_pipeline(run, w, 1, "pipeline_1w")),
            (
                "profile",
                "profile_1w",
                lambda: stage_pipeline(
                    run,
                    Workload.of(reservation_workload(2, max(1, args.orders // 2), args.skus, args.warehouses)),
                    1,
                    "profile_1w",
                    profile_out=profile,
                ),
            ),
            ("pipeline", "pipeline_2w", lambda: stage_pipeline(run, w, 2, "pipeline_2w")),
            ("peer", "peer", lambda: stage_peer(run, w, "at-least-once")),
            ("peer-eos", "peer_eos", lambda: stage_peer(run, w, "exactly-once")),
            ("day", "pipeline_day_1w", lambda: stage_pipeline(run, day, 1, "pipeline_day_1w")),
        ]
        todo = [p for p in plan if p[0] in stages]
        total = len(todo) + ("latency" in stages)
        for i, (_stage, key, work) in enumerate(todo, 1):
            progress.done(f"[{i}/{total}] {key} ({time.monotonic() - started:.0f}s into the run)")
            try:
                results["stages"][key] = work()
            except Exception as exc:  # noqa: BLE001 - one stage failing must not lose the others
                failed.append(key)
                results["stages"][key] = {
                    "error": f"{type(exc).__name__}: {exc}"[:2000],
                    "traceback": traceback.format_exc()[-4000:],
                }
                progress.done(f"{key} FAILED: {type(exc).__name__}: {str(exc)[:300]}")
            (run_dir / report.RUN_FILES["json"]).write_text(json.dumps(results, indent=2, ensure_ascii=False))
        for _, key, _ in plan:
            results["stages"].setdefault(key, {"error": "skipped (--stages)"})
        if "latency" in stages:
            progress.done(f"[{total}/{total}] latency ({time.monotonic() - started:.0f}s into the run)")
            p1 = results["stages"]["pipeline_1w"]
            rate = p1.get("orders_per_s") or args.assume_rate
            try:
                results["latency"] = stage_latency(run, rate)
            except Exception as exc:  # noqa: BLE001
                failed.append("latency")
                results["latency"] = {
                    "error": f"{type(exc).__name__}: {exc}"[:2000],
                    "traceback": traceback.format_exc()[-4000:],
                }
                progress.done(f"latency FAILED: {type(exc).__name__}: {str(exc)[:300]}")
    finally:
        sampler.stop()
        if broker_started:
            import gc

            gc.collect()  # producers of the preloads: closed before their broker goes
            local_kafka.stop(settings)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    summarise(results)
    if profile.exists():
        from bench.profile_summary import summarise as profile_summary

        total_samples, self_time, _ = profile_summary(str(profile))
        if total_samples:
            results["profile_top"] = [(n, round(100 * c / total_samples, 1)) for n, c in self_time.most_common(15)]
            results["profile_what"] = "a second one-worker drain with py-spy attached"
    report.write_run(results, run_dir)
    print(report.markdown(results))
    print(f"\nbenchmark: {results['seconds']:.0f}s; results in {run_dir}")
    if args.publish:
        for path in report.publish(run_dir):
            print(f"published {path}")
    if failed:
        print(f"benchmark: stages that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
