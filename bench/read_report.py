"""The read benchmark's arithmetic, table, chart and publication (bench/read_bench.py runs it).
Pure but for ``plot``, ``write_run`` and ``publish`` (files), so it is tested as plain functions.

* ``client_result(lines)``: the load client's JSON result, or ``LoadClientError`` with its message.
* ``parse_metrics(text)``: a worker's /metrics as ``in``/``out`` records by topic and ``applied``
  messages by agent; ``drained(...)``: every published input and every internal record consumed.
* ``row(spec, client, worker)``: one table row (the run, requests/s, latency percentiles in ms,
  errors, a drain run's orders/s and CPU by process group); ``attach_baseline(rows, before,
  after)`` sets each run's baseline (the mean of its group's two) and its ratio to it.
* ``judge(runs)``: the issue-14 targets, value and verdict; never asserted. ``markdown(results)``:
  the table. ``write_run`` writes into the run's folder only; ``publish(run_dir, targets)`` copies
  the .md and .png over docs/read-benchmark.*, only on ``--publish``/``--publish-from``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from config.settings import REPO_ROOT

RUN_FILES = {"json": "read-benchmark.json", "markdown": "read-benchmark.md", "chart": "read-benchmark.png"}
PUBLISHED = {"markdown": REPO_ROOT / "docs" / "read-benchmark.md", "chart": REPO_ROOT / "docs" / "read-benchmark.png"}
TARGET_P99_MS = 50.0
TARGET_IDLE_PER_S = 10_000.0
TARGET_DRAIN_PER_S = 5_000.0
TARGET_INGEST_RATIO = 0.90
RATE_TOLERANCE = 0.99  # a rate-limited run "holds" its rate when it answers at least 99% of it
TARGET_LABELS = {"ping": "/ping", "position": "GET /inventory/{sku}/{wh}", "worker": "worker's own view"}


class LoadClientError(RuntimeError):
    """The load client failed: its message, or what it printed instead of a result."""


def client_result(lines: Iterable[str]) -> dict[str, Any]:
    printed = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        printed.append(line)
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        if doc.get("event") == "error":
            raise LoadClientError(f"the load client failed: {doc.get('error')}")
        if doc.get("event") == "result":
            return doc
    tail = "\n".join(printed[-5:]) or "(nothing)"
    raise LoadClientError(f"the load client printed no result; its last lines:\n{tail}")


METRIC = re.compile(
    r'^inventory_(events_in_total|events_out_total|processing_seconds_count)\{(?:topic|agent)="([^"]+)"\} (\S+)$'
)


def parse_metrics(text: str) -> dict[str, dict[str, float]]:
    """A worker's /metrics: ``in`` and ``out`` (records by topic, ``inventory_events_in_total``
    / ``_out_total``) and ``applied`` (messages applied by agent, an envelope's each counted:
    ``inventory_processing_seconds_count``)."""
    kinds = {"events_in_total": "in", "events_out_total": "out", "processing_seconds_count": "applied"}
    out: dict[str, dict[str, float]] = {"in": {}, "out": {}, "applied": {}}
    for line in text.splitlines():
        m = METRIC.match(line)
        if m:
            out[kinds[m.group(1)]][m.group(2)] = float(m.group(3))
    return out


def _per_s(before: Mapping[str, Any], after: Mapping[str, Any], kind: str, names: Iterable[str] | None) -> float | None:
    seconds = after["at"] - before["at"]
    if seconds <= 0:
        return None
    keys = list(names) if names is not None else sorted(set(before[kind]) | set(after[kind]))
    return (sum(after[kind].get(n, 0.0) for n in keys) - sum(before[kind].get(n, 0.0) for n in keys)) / seconds


def drained(counters: Mapping[str, Any], published: int, inputs: Iterable[str], internal: Iterable[str]) -> bool:
    """Every input event published has been consumed, and every internal record the worker
    sent has been consumed again: nothing of the drain is left in the pipeline."""
    consumed = sum(counters["in"].get(n, 0.0) for n in inputs)
    return consumed >= published and all(counters["in"].get(n, 0.0) >= counters["out"].get(n, 0.0) for n in internal)


def applied_per_s(before: Mapping[str, Any], after: Mapping[str, Any]) -> float | None:
    """Messages applied by all agents per second (input and internal, envelopes' items each)."""
    seconds = after["at"] - before["at"]
    if seconds <= 0:
        return None
    return (sum(after["applied"].values()) - sum(before["applied"].values())) / seconds


def cpu_percent(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float | None]:
    """CPU % of a core per process group between two readings (``at``: monotonic seconds)."""
    seconds = after["at"] - before["at"]
    return {g: (round(100 * (after[g] - before[g]) / seconds) if seconds > 0 else None) for g in before if g != "at"}


def row(spec: Mapping[str, Any], client: Mapping[str, Any], worker: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One run as a table row (see the module doc); ``spec`` names the run, ``worker`` holds
    the worker's drain over the run (``Bench.drain_batch``) or only its CPU (idle)."""
    w = worker or {}
    return {
        "phase": spec["phase"],
        "target": spec["target"],
        "processes": spec.get("processes"),
        "clients": spec["clients"],
        "offered_per_s": spec.get("rate"),
        "requests_per_s": client["requestsPerS"],
        "responses": client["responses"],
        "p50_ms": client["p50"],
        "p90_ms": client.get("p90"),
        "p99_ms": client["p99"],
        "p999_ms": client["p999"],
        "max_ms": client.get("max"),
        "mean_ms": client.get("mean"),
        "non2xx": client.get("non2xx", 0),
        "errors": client.get("errors", 0),
        "timeouts": client.get("timeouts", 0),
        "seconds": client["seconds"],
        "drain_orders": w.get("orders"),
        "drain_seconds": w.get("seconds"),
        "drain_complete": w.get("complete"),
        "ingest_per_s": w.get("ingest_per_s"),
        "applied_per_s": w.get("applied_per_s"),
        "baseline_ingest_per_s": None,
        "ingest_ratio": None,
        "cpu_percent": dict(w.get("cpu_percent") or {}),
    }


def attach_baseline(rows: Iterable[dict[str, Any]], before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
    """Each drain run's baseline: the mean of the baseline drains before and after its group
    (a drift of the worker's own rate across the group cancels to first order), and the ratio."""
    base = (before["ingest_per_s"] + after["ingest_per_s"]) / 2
    for x in rows:
        x["baseline_ingest_per_s"] = round(base, 1)
        r = ratio(x["ingest_per_s"], base)
        x["ingest_ratio"] = None if r is None else round(r, 3)
        x["baseline_complete"] = bool(before.get("complete") and after.get("complete"))


def spread(baselines: Iterable[Mapping[str, Any]]) -> dict[str, float] | None:
    """The baselines' min, max and mean ingest: how much the worker's rate moves by itself."""
    values = [b["ingest_per_s"] for b in baselines if b.get("ingest_per_s") is not None]
    if not values:
        return None
    return {"min": min(values), "max": max(values), "mean": round(sum(values) / len(values), 1)}


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def _best(runs: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The run with the most requests/s among those whose p99 is under the target."""
    passing = [
        x
        for x in runs
        if x["p99_ms"] is not None and x["p99_ms"] < TARGET_P99_MS and not x["errors"] and not x["non2xx"]
    ]
    return max(passing, key=lambda x: x["requests_per_s"], default=None)


def _at(x: Mapping[str, Any]) -> str:
    return f"{x['requests_per_s']:,.0f}/s at {x['clients']} clients, p99 {x['p99_ms']:.2f} ms" + (
        f" ({x['offered_per_s']:,.0f}/s offered)" if x.get("offered_per_s") else ""
    )


def _complete(x: Mapping[str, Any] | None) -> bool:
    return x is not None and bool(x.get("drain_complete")) and bool(x.get("baseline_complete", True))


def judge(runs: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The issue-14 targets against the runs (none is asserted)."""
    out = []
    idle = _best(x for x in runs if x["phase"] == "idle" and x["target"] == "position" and x["processes"] == 2)
    out.append(
        {
            "target": "single positions from 2 read processes, idle",
            "goal": f">= {TARGET_IDLE_PER_S:,.0f}/s with p99 < {TARGET_P99_MS:g} ms",
            "value": None if idle is None else idle["requests_per_s"],
            "met": idle is not None and idle["requests_per_s"] >= TARGET_IDLE_PER_S,
            "verdict": "no run had p99 under the target" if idle is None else _at(idle),
        }
    )
    limited = [x for x in runs if x["phase"] == "drain" and x.get("offered_per_s")]
    lim = limited[0] if limited else None
    closed = _best(
        x for x in runs if x["phase"] == "drain" and x["target"] == "position" and not x.get("offered_per_s")
    )
    held = lim is not None and lim["requests_per_s"] >= RATE_TOLERANCE * (lim["offered_per_s"] or 0)
    drain_ok = (
        lim is not None
        and held
        and lim["p99_ms"] is not None
        and lim["p99_ms"] < TARGET_P99_MS
        and lim["requests_per_s"] >= RATE_TOLERANCE * TARGET_DRAIN_PER_S
    )
    note = "" if closed is None else f"; closed-loop best during the drain: {_at(closed)}"
    out.append(
        {
            "target": "single positions during the drain (the rate-limited run)",
            "goal": f">= {TARGET_DRAIN_PER_S:,.0f}/s with p99 < {TARGET_P99_MS:g} ms",
            "value": None if lim is None else lim["requests_per_s"],
            "met": drain_ok,
            "verdict": ("no rate-limited run" if lim is None else _at(lim)) + note,
        }
    )
    ingest = None if lim is None else lim.get("ingest_ratio")
    out.append(
        {
            "target": "worker ingest under that query load",
            "goal": f">= {TARGET_INGEST_RATIO:.0%} of its rate without it",
            "value": ingest,
            "met": ingest is not None and ingest >= TARGET_INGEST_RATIO and _complete(lim),
            "verdict": "not measured"
            if lim is None or ingest is None
            else (
                f"{ingest:.1%} ({lim['ingest_per_s']:,.0f} vs {lim['baseline_ingest_per_s']:,.0f} orders/s drained)"
                + ("" if _complete(lim) else " - a drain did not finish: not a rate")
            ),
        }
    )
    return out


# --- the table --------------------------------------------------------------------------------------


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if digits:
        return f"{value:,.{digits}f}"
    return f"{value:,.0f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def label(x: Mapping[str, Any]) -> str:
    what = TARGET_LABELS.get(x["target"], x["target"])
    if x["target"] == "worker":
        return f"{what} (GET /inventory/{{sku}}/{{wh}} on the worker)"
    return f"{what}, {x['processes']} read process{'es' if x['processes'] != 1 else ''}"


def table(runs: list[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| phase | what | clients | req/s | p50 ms | p99 ms | p999 ms | errors | worker drain, orders/s "
        "(baseline) | vs baseline | CPU % worker / readers / client |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for x in runs:
        clients = f"{x['clients']}" + (f" @ {x['offered_per_s']:,.0f}/s" if x.get("offered_per_s") else "")
        errors = x["errors"] + x["non2xx"] + x["timeouts"]
        if x["phase"] == "drain":
            ingest = f"{_n(x['ingest_per_s'])} ({_n(x['baseline_ingest_per_s'])})"
            vs = (
                "-"
                if x["ingest_ratio"] is None
                else (f"{x['ingest_ratio']:.0%}" + ("" if _complete(x) else " (a drain unfinished)"))
            )
        else:
            ingest, vs = "-", "-"
        cpu = x.get("cpu_percent") or {}
        cpus = " / ".join(_n(cpu.get(k)) for k in ("worker", "readers", "client"))
        lines.append(
            f"| {x['phase']} | {label(x)} | {clients} | {_n(x['requests_per_s'])} | {_ms(x['p50_ms'])} | "
            f"{_ms(x['p99_ms'])} | {_ms(x['p999_ms'])} | {errors:,} | {ingest} | {vs} | {cpus} |"
        )
    return lines


def markdown(results: Mapping[str, Any]) -> str:
    c = results["config"]
    lines = [
        f"# Read-path benchmark ({results['at']}, {results['machine']})",
        "",
        f"One run of `{results.get('command', 'make bench-query')}` ({results.get('seconds', 0):,.0f} s); every "
        f"figure below comes from that run ({results.get('run_dir', 'its run folder')}). The load client, the read "
        "processes, the worker and the broker share this machine's cores, as do the other sessions that use it: "
        "development figures, not a capacity plan"
        + (
            f" (1-minute load average {results['load_average_1m']['start']:.1f} at the start, "
            f"{results['load_average_1m']['end']:.1f} at the end)."
            if results.get("load_average_1m")
            else "."
        ),
        "",
        f"Deployment: one worker, {c['skus']:,} SKUs x {c['warehouses']} warehouses = {c['positions']:,} positions "
        f"preloaded, {c['partitions']} partitions. Read processes: `python -m streams.reader --processes N` "
        "(one port, SO_REUSEPORT), each holding the whole compacted inventory-changes topic. Load: autocannon "
        f"{c['autocannon']} (Node {c.get('node', '?')}), keep-alive connections, no pipelining, "
        + (
            f"one random position of the {c['positions']:,} per request; "
            if c.get("random_keys")
            else "a fixed set of positions; "
        )
        + f"{c['seconds']:g} s per idle run, each after {c['warmup_seconds']:g} s of unrecorded warm-up. "
        "Latency: request written -> last byte read, nearest-rank percentiles over every response of the run.",
        "",
        "`/ping` is a trivial handler in the same server (what it can answer at all); the worker's own view is "
        "its aiohttp `GET /inventory/{sku}/{wh}`, for comparison.",
        "",
        f"*Idle*: nothing is published. *Drain*: {results.get('drain_note', '')}",
        "",
    ]
    lines += table(results["runs"])
    baselines = results.get("baselines") or []
    if baselines:
        lines += [
            "",
            "Baseline drains: the same drain with no query load, before and after each group of drain runs "
            "(a run's baseline is the mean of its group's two):",
            "",
            "| baseline | orders | s | orders/s | messages applied/s | CPU % worker / readers |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for b in baselines:
            cpu = b.get("cpu_percent") or {}
            lines.append(
                f"| {b['group']} | {b['orders']:,} | {b['seconds']:.1f} | {_n(b['ingest_per_s'])}"
                f"{'' if b.get('complete') else ' (unfinished)'} | {_n(b.get('applied_per_s'))} | "
                f"{_n(cpu.get('worker'))} / {_n(cpu.get('readers'))} |"
            )
        sp = spread(baselines)
        if sp:
            lines += [
                "",
                f"With no query load at all, the worker drained between {sp['min']:,.0f} and "
                f"{sp['max']:,.0f} "
                f"orders/s from one baseline to the next (mean {sp['mean']:,.0f}): a run's ratio to its "
                "baseline is only as exact as that.",
            ]
    lines += ["", "| target (issue 14) | goal | measured | verdict |", "|---|---|---|---|"]
    for t in results.get("targets") or []:
        v = t["value"]
        shown = "-" if v is None else (f"{v:.1%}" if isinstance(v, float) and v < 5 else f"{v:,.0f}/s")
        lines.append(f"| {t['target']} | {t['goal']} | {shown} | {'met' if t['met'] else 'NOT met'}: {t['verdict']} |")
    lines += ["", "![read benchmark](read-benchmark.png)", ""]
    return "\n".join(lines)


# --- files -------------------------------------------------------------------------------------------


def write_run(results: Mapping[str, Any], run_dir: Path) -> dict[str, Path]:
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


def publish(run_dir: Path, targets: Mapping[str, Path] | None = None) -> list[Path]:
    """Copy a run's markdown and chart over the committed summary (on purpose only)."""
    targets = targets or PUBLISHED
    done = []
    for kind, path in targets.items():
        source = run_dir / RUN_FILES[kind]
        if source.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, path)
            done.append(path)
    return done


def plot(results: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, (rate_ax, p99_ax, ingest_ax) = plt.subplots(1, 3, figsize=(17, 4.8))
    colors = {("ping", 1): "#bbb", ("ping", 2): "#777", ("position", 1): "#6ad", ("position", 2): "#15a"}
    for (target, procs), color in colors.items():
        for phase, style in (("idle", "-"), ("drain", "--")):
            pts = sorted(
                (x["clients"], x)
                for x in runs
                if x["phase"] == phase
                and x["target"] == target
                and x["processes"] == procs
                and not x.get("offered_per_s")
            )
            if not pts:
                continue
            xs = [c for c, _ in pts]
            name = f"{TARGET_LABELS[target] if target == 'ping' else 'position'}, {procs}p, {phase}"
            rate_ax.plot(xs, [x["requests_per_s"] for _, x in pts], style, marker="o", color=color, label=name)
            p99_ax.plot(
                xs, [max(x["p99_ms"] or 0.01, 0.01) for _, x in pts], style, marker="o", color=color, label=name
            )
    for x in runs:
        if x["target"] == "worker":
            rate_ax.scatter(
                [x["clients"]],
                [x["requests_per_s"]],
                marker="s",
                color="#c33",
                zorder=3,
                label="worker's own view, idle",
            )
            p99_ax.scatter(
                [x["clients"]], [x["p99_ms"]], marker="s", color="#c33", zorder=3, label="worker's own view, idle"
            )
        if x.get("offered_per_s"):
            rate_ax.scatter(
                [x["clients"]],
                [x["requests_per_s"]],
                marker="*",
                s=120,
                color="#2a7",
                zorder=3,
                label=f"{x['offered_per_s']:,.0f}/s offered, drain",
            )
            p99_ax.scatter(
                [x["clients"]],
                [x["p99_ms"]],
                marker="*",
                s=120,
                color="#2a7",
                zorder=3,
                label=f"{x['offered_per_s']:,.0f}/s offered, drain",
            )
    rate_ax.axhline(TARGET_IDLE_PER_S, color="#c33", linestyle=":", linewidth=1)
    rate_ax.axhline(TARGET_DRAIN_PER_S, color="#e93", linestyle=":", linewidth=1)
    p99_ax.axhline(TARGET_P99_MS, color="#c33", linestyle=":", linewidth=1)
    for ax in (rate_ax, p99_ax):
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 8, 32, 128], ["1", "8", "32", "128"])
        ax.set_xlabel("concurrent keep-alive clients")
        ax.grid(True, which="both", alpha=0.25)
    rate_ax.set_ylabel("requests/s")
    rate_ax.set_title("Answers per second (solid idle, dashed drain)")
    p99_ax.set_yscale("log")
    p99_ax.set_ylabel("p99 ms (log)")
    p99_ax.set_title("p99 latency (dotted: 50 ms)")
    handles, labels = rate_ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    rate_ax.legend(unique.values(), unique.keys(), fontsize=7)
    drain = [x for x in runs if x["phase"] == "drain" and x.get("ingest_ratio") is not None]
    names = [
        ("R " if x.get("offered_per_s") else "") + f"{'ping' if x['target'] == 'ping' else 'pos'} "
        f"{x['processes']}p c{x['clients']}"
        for x in drain
    ]
    values = [100 * x["ingest_ratio"] for x in drain]
    bar_colors = ["#2a7" if x.get("offered_per_s") else "#777" if x["target"] == "ping" else "#15a" for x in drain]
    ingest_ax.bar(range(len(drain)), values, color=bar_colors)
    ingest_ax.set_xticks(range(len(drain)), names, rotation=70, fontsize=7)
    ingest_ax.axhline(100 * TARGET_INGEST_RATIO, color="#c33", linestyle=":", linewidth=1)
    ingest_ax.set_ylabel("worker ingest, % of its baseline")
    ingest_ax.set_title("Worker ingest during each drain run (R: rate-limited)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
