"""The read benchmark's pure parts (bench/read_report.py, bench/read_bench.py's arguments and
workload): no broker, no worker, no Node.

- the load client's JSON lines are read, its failure reported with its own message;
- the worker's /metrics are parsed as the worker writes them (streams/metrics.py), and a
  drain is over only when every input and every internal record is consumed;
- a drain run is compared with the mean of the baseline drains around its group;
- the targets are judged from the runs (p99 under 50 ms, the rate held, ingest within 10%);
- a run writes into its own folder only; publishing copies it over the summary it is given;
- ``--help`` starts nothing and installs nothing; the client's folder is ignored by git.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import read_bench, read_report
from config.settings import REPO_ROOT
from streams.metrics import Metrics


def _client(rps: float = 20_000.0, p99: float = 5.0, **extra: Any) -> dict[str, Any]:
    return {
        "event": "result",
        "connections": 32,
        "responses": int(rps * 6),
        "non2xx": 0,
        "errors": 0,
        "timeouts": 0,
        "seconds": 6.0,
        "requestsPerS": rps,
        "p50": 1.0,
        "p90": 2.0,
        "p99": p99,
        "p999": p99 * 2,
        "max": p99 * 3,
        "mean": 1.2,
        **extra,
    }


def _run(
    phase: str = "idle",
    target: str = "position",
    processes: int | None = 2,
    clients: int = 32,
    rate: float | None = None,
    client: dict[str, Any] | None = None,
    worker: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec = {"phase": phase, "target": target, "processes": processes, "clients": clients, "rate": rate}
    return read_report.row(spec, client or _client(), worker)


def _drain(orders: int = 4000, seconds: float = 8.0, complete: bool = True) -> dict[str, Any]:
    return {
        "orders": orders,
        "seconds": seconds,
        "complete": complete,
        "ingest_per_s": orders / seconds,
        "applied_per_s": 3000.0,
        "cpu_percent": {"worker": 90, "readers": 40, "client": 50},
    }


def test_the_client_result_is_read_from_its_json_lines() -> None:
    lines = ["Running 2s test @ http://x\n", '{"event":"measuring"}\n', json.dumps(_client(1234.5)) + "\n"]
    assert read_report.client_result(lines)["requestsPerS"] == 1234.5


def test_a_client_failure_is_reported_with_its_own_message() -> None:
    with pytest.raises(read_report.LoadClientError, match="ECONNREFUSED"):
        read_report.client_result(['{"event":"error","error":"connect ECONNREFUSED 127.0.0.1:1"}'])
    with pytest.raises(read_report.LoadClientError, match="(?s)printed no result.*last words"):
        read_report.client_result(['{"event":"measuring"}', "last words"])


def test_the_worker_metrics_are_parsed_as_the_worker_writes_them() -> None:
    m = Metrics()
    for _ in range(3):
        m.received("p.orders")
    m.received("p.stock-commands")
    m.sent("p.stock-commands")
    m.sent("p.stock-commands")
    m.processed("order-agent", 0.001, False)
    m.processed("stock-agent", 0.002, False)
    m.processed("stock-agent", 0.002, True)
    m.read_on_scrape(lambda: {("p.orders", 0): 5}, lambda: {"stock": 3})
    parsed = read_report.parse_metrics(m.render()[0].decode())
    assert parsed == {
        "in": {"p.orders": 3.0, "p.stock-commands": 1.0},
        "out": {"p.stock-commands": 2.0},
        "applied": {"order-agent": 1.0, "stock-agent": 2.0},
    }


def test_a_drain_is_over_when_every_input_and_internal_record_is_consumed() -> None:
    counters = {
        "in": {"orders": 100.0, "moves": 30.0, "commands": 50.0, "inbox": 9.0},
        "out": {"commands": 50.0, "inbox": 10.0},
    }
    inputs, internal = ["orders", "moves"], ["commands", "inbox"]
    assert not read_report.drained(counters, 130, inputs, internal)  # one inbox record still to read
    counters["in"]["inbox"] = 10.0
    assert read_report.drained(counters, 130, inputs, internal)
    assert not read_report.drained(counters, 131, inputs, internal)  # one published input unread


def test_cpu_percent_is_per_group_over_the_window() -> None:
    assert read_report.cpu_percent(
        {"worker": 10.0, "client": 1.0, "at": 100.0}, {"worker": 11.5, "client": 1.5, "at": 102.0}
    ) == {"worker": 75, "client": 25}


def test_a_drain_run_is_compared_with_the_mean_of_the_baselines_around_its_group() -> None:
    rows = [_run("drain", worker=_drain(seconds=10.0)), _run("drain", worker=_drain(seconds=8.0, complete=False))]
    assert rows[0]["ingest_per_s"] == 400.0 and rows[0]["drain_orders"] == 4000
    read_report.attach_baseline(rows, _drain(seconds=8.0), _drain(seconds=10.0))  # 500/s and 400/s
    assert [x["baseline_ingest_per_s"] for x in rows] == [450.0, 450.0]
    assert [x["ingest_ratio"] for x in rows] == [round(400 / 450, 3), round(500 / 450, 3)]
    assert read_report.table(rows)[2].count("89%") == 1
    assert "a drain unfinished" in read_report.table(rows)[3]


def test_the_targets_are_judged_from_the_runs() -> None:
    runs = [
        _run(client=_client(30_000, p99=60.0), clients=128),  # fastest, but over 50 ms: not counted
        _run(client=_client(18_000, p99=9.0)),
        _run(processes=1, client=_client(25_000, p99=5.0)),  # one process: not this target
        _run("drain", clients=32, rate=5000.0, client=_client(4_990, p99=12.0), worker=_drain(seconds=10.0)),
        _run("drain", client=_client(9_000, p99=20.0), worker=_drain()),
    ]
    read_report.attach_baseline(runs[3:], _drain(seconds=9.0), _drain(seconds=9.0))
    idle, drain, ingest = read_report.judge(runs)
    assert idle["met"] and idle["value"] == 18_000
    assert drain["met"] and drain["value"] == 4_990 and "closed-loop best during the drain: 9,000/s" in drain["verdict"]
    assert ingest["value"] == 0.9 and ingest["met"]


def test_targets_missed_say_so() -> None:
    runs = [
        _run(client=_client(8_000, p99=9.0)),
        _run("drain", rate=5000.0, client=_client(4_000, p99=12.0), worker=_drain(seconds=12.0)),
    ]
    read_report.attach_baseline(runs[1:], _drain(seconds=9.0), _drain(seconds=9.0))
    idle, drain, ingest = read_report.judge(runs)
    assert not idle["met"] and not drain["met"]  # 4,000 of 5,000 offered: the rate was not held
    assert not ingest["met"] and ingest["value"] == 0.75
    runs[1]["drain_complete"] = False
    assert "did not finish" in read_report.judge(runs)[2]["verdict"]
    assert read_report.judge([])[2]["verdict"] == "not measured"


def _results(run_dir: Path) -> dict[str, Any]:
    runs = [
        _run(),
        _run(target="ping", processes=1, clients=8),
        _run(target="worker", processes=None),
        _run("drain", worker=_drain()),
        _run("drain", rate=5000.0, client=_client(5000), worker=_drain(8000)),
    ]
    before, after = {"group": "before", **_drain()}, {"group": "after", **_drain(seconds=9.0)}
    read_report.attach_baseline(runs[3:], before, after)
    return {
        "at": "2026-12-07T00:00:00+00:00",
        "machine": "x86_64, 2 cores",
        "command": "python -m bench.read_bench",
        "run_dir": str(run_dir),
        "seconds": 400.0,
        "config": {
            "skus": 2000,
            "warehouses": 3,
            "positions": 6000,
            "partitions": 4,
            "autocannon": "7.15.0",
            "node": "v20",
            "random_keys": True,
            "seconds": 6.0,
            "warmup_seconds": 1.0,
        },
        "drain_note": "drains.",
        "runs": runs,
        "baselines": [before, after],
        "targets": read_report.judge(runs),
    }


def test_a_run_writes_into_its_own_folder_and_publishes_only_where_told(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "x-read"
    run_dir.mkdir(parents=True)
    written = read_report.write_run(_results(run_dir), run_dir)
    assert {p.parent for p in written.values()} == {run_dir}
    assert set(written) == {"json", "markdown", "chart"}
    text = written["markdown"].read_text()
    assert "| idle | GET /inventory/{sku}/{wh}, 2 read processes | 32 | 20,000 |" in text
    assert "| drain | GET /inventory/{sku}/{wh}, 2 read processes | 32 @ 5,000/s | 5,000 |" in text
    assert "between 444 and 500 orders/s" in text and "worker's own view" in text
    targets = {"markdown": tmp_path / "docs" / "r.md", "chart": tmp_path / "docs" / "r.png"}
    assert read_report.publish(run_dir, targets) == [targets["markdown"], targets["chart"]]
    assert targets["markdown"].read_text() == text
    assert set(read_report.PUBLISHED) == {"markdown", "chart"}
    assert all(p.parent == REPO_ROOT / "docs" for p in read_report.PUBLISHED.values())


def test_quick_is_shorter() -> None:
    quick, full = read_bench.parse_args(["--quick"]), read_bench.parse_args([])
    assert full.clients == [1, 8, 32, 128] and quick.clients == [1, 128]
    assert quick.seconds < full.seconds and quick.drain_orders < full.drain_orders
    assert read_bench.parse_args(["--quick", "--clients", "4"]).clients == [4]


def test_the_drain_orders_are_new_every_time() -> None:
    orders = read_bench.Orders(read_bench.skus_of(50), seed=1, tag="t")
    first, second = orders.take(20), orders.take(20)
    ids = [o.event_id for o in first + second]
    assert len(set(ids)) == 40 and len({o.order_no for o in first + second}) == 40
    assert all(1 <= len(o.items) <= 5 and all(i.sku.startswith("RB") for i in o.items) for o in first)


def test_a_missing_node_is_said_before_anything_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="needs Node.js"):
        read_bench.ensure_autocannon(tmp_path / ".node")
    assert not (tmp_path / ".node").exists()


def test_help_prints_and_starts_nothing() -> None:
    runs = read_report.REPO_ROOT / "bench" / "results" / "runs"
    before = sorted(runs.iterdir()) if runs.exists() else []
    node = REPO_ROOT / "bench" / ".node"
    had_node = node.exists()
    done = subprocess.run(
        [sys.executable, "-m", "bench.read_bench", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "INVENTORY_LOCAL_KAFKA_PORT": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "usage: python -m bench.read_bench" in done.stdout and "--publish" in done.stdout
    assert (sorted(runs.iterdir()) if runs.exists() else []) == before
    assert node.exists() == had_node


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_client_folder_and_the_runs_are_ignored_by_git() -> None:
    for probe in (
        REPO_ROOT / "bench" / ".node" / "node_modules" / "autocannon" / "package.json",
        REPO_ROOT / "bench" / "results" / "runs" / "20260101T000000Z-read" / "read-benchmark.json",
    ):
        assert subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=REPO_ROOT).returncode == 0, probe
