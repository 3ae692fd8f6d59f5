"""The benchmark's arithmetic and where it writes (bench/figures.py, bench/latency.py's search,
bench/report.py, bench/benchmark.py's summary): no broker, no worker.

- topics are classified by role as schemas/topics.py declares them, changelogs by name, the
  Quix peer's by its own names, anything else as "other";
- per-order, per-message and per-record figures, and the pipeline/limit ratio in record
  operations (not input events);
- the latency search brackets the highest passing rate;
- a run writes into a new folder only (the committed summary is untouched unless published),
  and ``--help`` starts nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench import latency, report
from bench.benchmark import parse_args, summarise
from bench.figures import TARGETS, Stage, derive, peer_roles, pipeline_roles, verdict
from bench.peer_quix.topics import TopicNames
from config.settings import REPO_ROOT, Settings
from streams.topics import Topics


def _pipeline_roles() -> tuple[Topics, Any]:
    settings = Settings(topic_prefix="pb1.", app_id="inventory-pb-1")
    topics = Topics(settings)
    return topics, pipeline_roles({topics.name(s): s.role for s in topics.specs}, settings.app_id)


def test_pipeline_topics_are_classified_by_their_declared_role() -> None:
    topics, roles = _pipeline_roles()
    assert roles.role(topics.orders) == "input"
    assert roles.role(topics.stock_movements) == "input"
    assert roles.role(topics.stock_commands) == "internal"
    assert roles.role(topics.order_inbox) == "internal"
    assert roles.role(topics.inventory_changes) == "output"
    assert roles.role(topics.dead_letters) == "output"
    for name in topics.owned():  # every declared topic and every table changelog has a role
        assert roles.role(name) != "other", name
    assert roles.role("inventory-pb-1-stock-state-changelog") == "changelog"
    assert roles.role("inventory-pb-1-__assignor-__leader") == "other"
    assert roles.role("pb2.orders") == "other"  # another deployment's


def test_peer_topics_are_classified_by_its_own_names() -> None:
    names = TopicNames.of("peer1.")
    roles = peer_roles(names.inputs, names.order_inbox, [n for n in names.own if n != names.order_inbox], "g1")
    assert roles.role("peer1.orders") == "input"
    assert roles.role("peer1.quix.order-inbox") == "internal"
    assert roles.role("repartition__g1--peer1.orders--peer1.quix.order-inbox--sku") == "internal"
    assert roles.role("peer1.quix.inventory-changes") == "output"
    assert roles.role("changelog__g1--peer1.orders--default") == "changelog"
    assert roles.role("changelog__g2--peer1.orders--default") == "other"
    assert roles.role("peer1.order-inbox") == "other"  # the pipeline's, which the peer does not use
    assert roles.by_role({"peer1.orders": 5, "changelog__g1--x": 7, "peer1.quix.order-status": 2, "zzz": 1}) == {
        "input": 5,
        "internal": 0,
        "output": 2,
        "changelog": 7,
        "other": 1,
    }


def test_per_order_and_cpu_figures() -> None:
    stage = Stage(
        "pipeline_1w",
        "p",
        {"input": 1_030, "internal": 6_000, "output": 8_000, "changelog": 13_000, "other": 0},
        seconds=10.0,
        worker_cpu_s=2.0,
        broker_cpu_s=0.5,
        orders=1_000,
        order_lines=2_600,
    )
    f = derive(stage)
    assert f["consumed"] == 7_030  # input + internal, each read once
    assert f["produced"] == 27_000  # internal + output + changelog
    assert f["consumed_per_order"] == 7.03
    assert f["produced_per_order"] == 27.0
    assert f["produced_per_order_by_role"]["changelog"] == 13.0
    assert f["orders_per_s"] == 100.0
    assert f["order_lines_per_s"] == 260.0
    assert f["input_events_per_s"] == 103.0
    assert f["produced_per_s_by_role"]["output"] == 800.0
    assert f["record_ops_per_s"] == 3_403.0
    assert f["worker_cpu_us_per_order"] == 2_000.0
    assert f["worker_cpu_us_per_consumed"] == round(2e6 / 7_030, 1)
    assert f["worker_cpu_us_per_produced"] == round(2e6 / 27_000, 1)
    assert f["broker_cpu_us_per_order"] == 500.0
    assert f["worker_cores"] == 0.2


def test_the_limit_counts_what_it_read_and_has_no_per_order_figures() -> None:
    limit = derive(
        Stage(
            "limit",
            "limit",
            {"input": 1_030, "output": 100_000},
            seconds=10.0,
            worker_cpu_s=1.0,
            consumed=100_000,
            input_events=100_000,
        )
    )
    assert limit["consumed"] == 100_000 and limit["produced"] == 100_000
    assert limit["record_ops_per_s"] == 20_000.0
    assert limit["worker_cpu_us_per_order"] is None and limit["consumed_per_order"] is None
    assert limit["worker_cpu_us_per_record_op"] == 5.0


def test_pipeline_over_limit_is_a_ratio_of_record_operations() -> None:
    pipeline = derive(
        Stage(
            "pipeline_1w",
            "p",
            {"input": 1_000, "internal": 6_000, "output": 8_000, "changelog": 13_000},
            seconds=10.0,
            worker_cpu_s=2.0,
            orders=1_000,
        )
    )
    limit = derive(
        Stage(
            "limit",
            "limit",
            {"input": 1_000, "output": 200_000},
            seconds=10.0,
            worker_cpu_s=1.0,
            consumed=200_000,
            input_events=200_000,
        )
    )
    peer = derive(
        Stage(
            "peer",
            "peer",
            {"input": 1_000, "internal": 6_000, "output": 8_000, "changelog": 5_000},
            seconds=5.0,
            worker_cpu_s=2.0,
            orders=1_000,
        )
    )
    results: dict[str, Any] = {
        "stages": {"pipeline_1w": pipeline, "limit": limit, "peer": peer, "peer_eos": {"error": "skipped (--stages)"}},
        "latency": {},
    }
    summarise(results)
    ratios = results["ratios"]
    # (7,000 + 27,000) / 10 s against (200,000 + 200,000) / 10 s - not 100 events/s against 20,000/s
    assert ratios["pipeline (1 worker) / limit"]["value"] == round(3_400 / 40_000, 3)
    assert ratios["pipeline (1 worker) / peer at-least-once"]["value"] == 0.5
    assert ratios["pipeline (1 worker) / peer exactly-once"]["value"] is None
    verdicts = {t["target"]: t for t in results["targets"]}
    assert verdicts[TARGETS["orders_per_s"].name]["verdict"] == "missed by 15.00x (needs +1400%)"
    assert verdicts[TARGETS["produced_per_order"].name]["met"] is False
    assert verdicts[TARGETS["p99_ms_at_80"].name]["verdict"] == "not measured"
    assert "| pipeline (1 worker) / limit | 0.085 |" in report.markdown(_results(results))


def test_verdicts_say_by_how_much() -> None:
    assert verdict(750, 1500, True) == "missed by 2.00x (needs +100%)"
    assert verdict(3000, 1500, True) == "met (2.00x the target)"
    assert verdict(1300, 650, False) == "missed by 2.00x (needs -50%)"
    assert verdict(325, 650, False) == "met (50% below the limit)"
    assert verdict(None, 650, False) == "not measured"
    assert TARGETS["p99_ms_at_80"].judge(100.0)["met"] is False  # p99 < 100 ms, strictly
    assert TARGETS["p99_ms_at_80"].judge(99.9)["met"] is True


def _step(rate: float, edge: float) -> dict[str, Any]:
    p99 = 50.0 if rate <= edge else 500.0
    return {"offered_per_s": rate, "p99_ms": p99, "passed": p99 < 100}


@pytest.mark.parametrize("start", [50.0, 400.0, 2_000.0])
def test_latency_search_brackets_the_highest_passing_rate(start: float) -> None:
    best, steps = latency.search(lambda r: _step(r, 437), start, steps=12)
    assert best is not None and best <= 437
    failing = min(s["offered_per_s"] for s in steps if not s["passed"])
    assert failing / best <= 1.15  # bracketed within the precision
    assert steps[0]["offered_per_s"] == round(start)


def test_latency_search_stops_within_its_steps_and_when_nothing_passes() -> None:
    best, steps = latency.search(lambda r: _step(r, 437), 5_000.0, steps=3)
    assert len(steps) == 3 and best is None
    best, steps = latency.search(lambda r: _step(r, 1), 100.0, steps=20)
    assert best is None and steps[-1]["offered_per_s"] >= 5  # stops at the floor


def _results(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    stage = derive(
        Stage(
            "pipeline_1w",
            "p",
            {"input": 10, "internal": 6, "output": 8, "changelog": 13},
            seconds=1.0,
            worker_cpu_s=0.01,
            orders=1,
        )
    )
    results = {
        "at": "2026-01-01T00:00:00+00:00",
        "machine": "test",
        "run_dir": "x",
        "workload": {"orders": 1, "order_lines": 3, "receipts": 1, "positions": 3, "input_events": 2, "partitions": 1},
        "stages": {"pipeline_1w": stage},
        "latency": {},
    }
    results.update(extra or {})
    if "targets" not in results:
        summarise(results)
    return results


def _digests(paths: list[Path]) -> dict[Path, str | None]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths}


def test_a_run_writes_into_a_new_folder_only(tmp_path: Path) -> None:
    published = _digests(list(report.PUBLISHED.values()))
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = report.new_run_dir(tmp_path / "runs", now=now)
    second = report.new_run_dir(tmp_path / "runs", now=now)  # same second: still a new folder
    assert first != second and first.name == "20260102T030405Z" and second.parent == first.parent
    (first / "keep.txt").write_text("earlier")
    written = report.write_run(_results(), second)
    assert set(written) >= {"json", "markdown"}
    assert {p.parent for p in written.values()} == {second}
    assert sorted(p.name for p in second.iterdir()) == sorted(p.name for p in written.values())
    assert [p.name for p in first.iterdir()] == ["keep.txt"]
    assert _digests(list(report.PUBLISHED.values())) == published  # the committed summary is untouched


def test_publishing_copies_a_run_over_the_summary_it_is_given(tmp_path: Path) -> None:
    run = report.new_run_dir(tmp_path / "runs")
    report.write_run(_results(), run)
    (run / report.RUN_FILES["profile"]).write_text("a;b 1\n")
    targets = {kind: tmp_path / "summary" / f"{kind}.out" for kind in report.RUN_FILES}
    done = report.publish(run, targets)
    assert sorted(done) == sorted(p for p in targets.values() if p.exists())
    assert targets["markdown"].read_text() == (run / "benchmark.md").read_text()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_default_run_folder_is_ignored_by_git() -> None:
    probe = report.RUNS / "20260101T000000Z" / "benchmark.json"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=REPO_ROOT)
    assert ignored.returncode == 0, f"{report.RUNS} is not ignored by git"
    for path in report.PUBLISHED.values():  # published only on purpose: never the default
        assert report.RUNS not in path.parents


def test_help_prints_and_starts_nothing() -> None:
    before = sorted(report.RUNS.iterdir()) if report.RUNS.exists() else []
    done = subprocess.run(
        [sys.executable, "-m", "bench.benchmark", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "INVENTORY_LOCAL_KAFKA_PORT": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "usage: python -m bench.benchmark" in done.stdout and "--publish" in done.stdout
    assert "local-kafka" not in done.stdout + done.stderr
    assert (sorted(report.RUNS.iterdir()) if report.RUNS.exists() else []) == before


def test_quick_is_smaller_and_keeps_the_limit_at_ten_seconds() -> None:
    quick, full = parse_args(["--quick"]), parse_args([])
    assert quick.orders < full.orders and quick.latency_step_seconds < full.latency_step_seconds
    assert quick.limit_seconds == full.limit_seconds == 10.0
    assert quick.skus * quick.warehouses / quick.orders == full.skus * full.warehouses / full.orders
