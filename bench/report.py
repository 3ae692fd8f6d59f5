"""Where a benchmark run's results go, and how they read: a new folder per run, the markdown
table, the chart, and the deliberate publication of one run as the committed summary.

* ``new_run_dir(base)`` creates ``base/<UTC stamp>[-label]/``, never a folder that existed
  before (a suffix when two runs start in the same second); the default base,
  ``bench/results/runs/``, is ignored by git.
* ``write_run(results, run_dir)`` writes benchmark.json, .md and .png into ``run_dir`` only.
* ``publish(run_dir, targets)`` copies a run's files over the committed summary (``PUBLISHED``:
  docs/benchmark.md and .png, bench/results/benchmark.json, the tracked profile), only when
  asked (``--publish`` / ``--publish-from``).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.settings import REPO_ROOT

RUNS = REPO_ROOT / "bench" / "results" / "runs"
RUN_FILES = {
    "json": "benchmark.json",
    "markdown": "benchmark.md",
    "chart": "benchmark.png",
    "profile": "profile-1w.txt",
}
PUBLISHED = {
    "json": REPO_ROOT / "bench" / "results" / "benchmark.json",
    "markdown": REPO_ROOT / "docs" / "benchmark.md",
    "chart": REPO_ROOT / "docs" / "benchmark.png",
    "profile": REPO_ROOT / "bench" / "results" / "benchmark-profile-1w.txt",
}
STAGES = (
    ("limit", "limit: confluent-kafka consume->produce, no processing"),
    ("pipeline_1w", "pipeline, 1 worker"),
    ("pipeline_2w", "pipeline, 2 workers"),
    ("peer", "peer: Quix Streams, same core, at-least-once (its default)"),
    ("peer_eos", "peer: Quix Streams, same core, exactly-once"),
    ("pipeline_day_1w", "pipeline, 1 worker, simulated day (all flows)"),
)


def new_run_dir(base: Path = RUNS, label: str = "", now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ") + (f"-{label}" if label else "")
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = base / (stamp if n == 0 else f"{stamp}.{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"no new folder for {stamp} under {base}")


def write_run(results: dict[str, Any], run_dir: Path) -> dict[str, Path]:
    """The run's json, markdown and chart, in ``run_dir`` only. Returns what was written."""
    written = {"json": run_dir / RUN_FILES["json"], "markdown": run_dir / RUN_FILES["markdown"]}
    written["json"].write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    written["markdown"].write_text(markdown(results), encoding="utf-8")
    try:
        plot(results, run_dir / RUN_FILES["chart"])
        written["chart"] = run_dir / RUN_FILES["chart"]
    except Exception as exc:  # noqa: BLE001 - a chart that fails must not lose the figures
        print(f"chart not drawn: {type(exc).__name__}: {exc}")
    return written


def publish(run_dir: Path, targets: dict[str, Path] | None = None) -> list[Path]:
    """Copy a run's files over the committed summary (on purpose only)."""
    targets = targets or PUBLISHED
    done = []
    for kind, name in RUN_FILES.items():
        source = run_dir / name
        if source.exists():
            targets[kind].parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, targets[kind])
            done.append(targets[kind])
    return done


# --- the table ---------------------------------------------------------------------------


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{value:,.0f}"


def markdown(results: dict[str, Any]) -> str:
    w = results["workload"]
    stages = results["stages"]
    lines = [
        f"# Benchmark ({results['at']}, {results['machine']})",
        "",
        f"One run of `{results.get('command', 'make bench')}`; every figure below comes from that run "
        f"({results.get('run_dir', 'its run folder')}). {results.get('note', '')}".rstrip(),
        "",
        f"Reservation workload: {w['orders']:,} orders ({w['order_lines']:,} lines) after {w['receipts']:,} "
        f"receipts stocking {w['positions']:,} positions; {w['input_events']:,} input events on "
        f"{w['partitions']} partitions. Per-order figures divide the whole run (receipts included) by the orders.",
        "",
        "Records are counted on the broker after each stage (read_committed, every topic of the stage by role); "
        "CPU is the processing processes' and the broker's /proc time over the stage's window, from the first "
        "input read to the last record written.",
        "",
        "| what | s | input events/s | orders/s | order lines/s | consumed/s | produced/s | outputs/s | "
        "internal/s | changelog/s | record ops/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in STAGES:
        f = stages.get(key)
        if not f:
            continue
        if f.get("error"):
            lines.append(f"| {label} | {f['error'][:120]} |" + " |" * 10)
            continue
        by = f["produced_per_s_by_role"]
        lines.append(
            f"| {label} | {_n(f['seconds'], 1)} | {_n(f['input_events_per_s'])} | {_n(f['orders_per_s'])} | "
            f"{_n(f['order_lines_per_s'])} | {_n(f['consumed_per_s'])} | {_n(f['produced_per_s'])} | "
            f"{_n(by['output'])} | {_n(by['internal'])} | {_n(by['changelog'])} | {_n(f['record_ops_per_s'])} |"
        )
    lines += [
        "",
        "| what | consumed / order | produced / order (outputs + internal + changelog) | worker CPU µs / order | "
        "µs / consumed | µs / produced | broker CPU µs / order | worker cores | broker cores | peak RSS MiB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in STAGES:
        f = stages.get(key)
        if not f or f.get("error"):
            continue
        po = f["produced_per_order_by_role"]
        split = (
            "-"
            if f["produced_per_order"] is None
            else (
                f"{f['produced_per_order']:.2f} ({po['output']:.2f} + {po['internal']:.2f} + {po['changelog']:.2f}"
                + (f" + {po['other']:.2f} other" if po.get("other") else "")
                + ")"
            )
        )
        lines.append(
            f"| {label} | {_n(f['consumed_per_order'], 2)} | {split} | {_n(f['worker_cpu_us_per_order'])} | "
            f"{_n(f['worker_cpu_us_per_consumed'], 1)} | {_n(f['worker_cpu_us_per_produced'], 1)} | "
            f"{_n(f['broker_cpu_us_per_order'])} | {_n(f['worker_cores'], 2)} | {_n(f['broker_cores'], 2)} | "
            f"{_n(f['peak_rss_mb'])} |"
        )
    limit = stages.get("limit") or {}
    if limit and not limit.get("error"):
        lines += [
            "",
            f"The limit read its input {limit.get('passes', 1)} time(s) over {limit['seconds']:.1f} s "
            f"(at least {results.get('limit_min_seconds', 10):g} s); its worker CPU is per consumed message "
            "and per produced record (it has no orders).",
        ]
    lines += _latency_lines(results.get("latency") or {})
    lines += ["", "| ratio | value | how |", "|---|---:|---|"]
    for name, r in (results.get("ratios") or {}).items():
        lines.append(f"| {name} | {_n(r['value'], 3)} | {r['how']} |")
    lines += ["", "| target (issue 13) | goal | measured | verdict |", "|---|---:|---:|---|"]
    for t in results.get("targets") or []:
        value = t["value"]
        shown = (
            "-" if value is None else (f"{value:,.2f}" if isinstance(value, float) and value < 100 else f"{value:,.0f}")
        )
        lines.append(f"| {t['target']} | {t['goal']} | {shown} | {t['verdict']} |")
    lines += ["", "![benchmark](benchmark.png)", ""]
    if results.get("profile_top"):
        lines += [
            f"## Where a worker's time goes (py-spy, {results.get('profile_what', 'one-worker drain')}, self time)",
            "",
            "```",
        ]
        lines += [f"{share:5.1f}%  {name}" for name, share in results["profile_top"]]
        lines += ["```", ""]
    return "\n".join(lines)


def _latency_lines(lat: dict[str, Any]) -> list[str]:
    if not lat:
        return []
    if lat.get("error"):
        return ["", f"Latency: {lat['error']}"]
    best = lat.get("highest_rate")
    lines = [
        "",
        f"End-to-end latency, OrderCreated -> OrderStatusChanged, one worker: the highest offered rate "
        f"whose p99 stays under {lat['limit_ms']:g} ms is **{_n(best)} orders/s** "
        f"({lat.get('search_note', '')}).".replace(" ()", ""),
        "",
        "| step | offered orders/s | ran s | orders | answered | p50 ms | p99 ms | under the limit |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows = [(f"search {i + 1}", r) for i, r in enumerate(lat.get("search", []))]
    rows += [
        (name, lat[key])
        for name, key in (
            ("at 50% of it", "at_50"),
            ("at 80% of it", "at_80"),
            ("at 80% of the 1-worker drain rate", "at_80_of_drain"),
        )
        if lat.get(key)
    ]
    for name, r in rows:
        p99 = _n(r["p99_ms"], 1) if r["answered"] else "-"
        if r["unanswered_after_settle"]:
            p99 = f"> {p99} ({r['unanswered_after_settle']:,} unanswered)"
        note = "yes" if r["passed"] else ("no, stopped early" if r["aborted"] else "no")
        lines.append(
            f"| {name} | {_n(r['offered_per_s'])} | {r['ran_s']:.1f} | {r['orders']:,} | {r['answered']:,} "
            f"| {_n(r['p50_ms'], 1)} | {p99} | {note} |"
        )
    return lines


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [
        (key, label.split(":")[0].split(",")[0] if key == "limit" else label, results["stages"].get(key))
        for key, label in STAGES
    ]
    stages = [(k, lbl, f) for k, lbl, f in stages if f and not f.get("error")]
    short = {
        "limit": "limit",
        "pipeline_1w": "pipeline\n1 worker",
        "pipeline_2w": "pipeline\n2 workers",
        "peer": "peer\nat-least-once",
        "peer_eos": "peer\nexactly-once",
        "pipeline_day_1w": "pipeline\nsim. day",
    }
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    names = [short[k] for k, _, _ in stages]
    ops = [f["record_ops_per_s"] or 0 for _, _, f in stages]
    bars = left.bar(
        names, ops, color=["#888" if k == "limit" else "#47c" if k.startswith("peer") else "#2a7" for k, _, _ in stages]
    )
    left.set_yscale("log")
    left.set_ylabel("records consumed + produced per s (log)")
    left.set_title("Record operations per second")
    for bar, v in zip(bars, ops, strict=True):
        left.text(bar.get_x() + bar.get_width() / 2, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    left.tick_params(axis="x", labelsize=7)
    # The simulated day's orders carry every other flow's work too: not comparable per order.
    per_order = [(short[k], f) for k, _, f in stages if f.get("worker_cpu_us_per_order") and k != "pipeline_day_1w"]
    xs = [n for n, _ in per_order]
    worker = [f["worker_cpu_us_per_order"] for _, f in per_order]
    broker = [f.get("broker_cpu_us_per_order") or 0 for _, f in per_order]
    middle.bar(xs, worker, color="#2a7", label="worker")
    middle.bar(xs, broker, bottom=worker, color="#bbb", label="broker")
    middle.axhline(650, color="#c33", linestyle="--", linewidth=1)
    middle.text(-0.4, 650, " target 650 µs (worker)", color="#c33", va="bottom", fontsize=8)
    middle.set_ylabel("CPU µs per order")
    middle.set_title("CPU per order")
    middle.legend(fontsize=8)
    middle.tick_params(axis="x", labelsize=7)
    lat = results.get("latency") or {}
    steps = [
        r
        for key in ("search", "at_50", "at_80", "at_80_of_drain")
        for r in (lat.get(key) if key == "search" else [lat.get(key)]) or []
        if r
    ]
    if steps:
        for r in steps:
            right.scatter(r["offered_per_s"], max(r["p99_ms"], 0.1), color="#2a7" if r["passed"] else "#c33", s=25)
            right.scatter(r["offered_per_s"], max(r["p50_ms"], 0.1), color="#888", s=12, marker="x")
        right.axhline(lat.get("limit_ms", 100), color="#c33", linestyle="--", linewidth=1)
        right.set_yscale("log")
        right.set_xlabel("offered orders/s")
        right.set_ylabel("ms (log): p99 dots (green under the limit), p50 crosses")
        right.set_title("OrderCreated -> status latency")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
