"""`make bench` works from a stopped broker (issue 13): the benchmark starts the local broker
it needs, runs the peer stage (whose clean-up once ran after the broker was stopped, and
crashed), stops the broker it started, and writes into a new run folder, not over the
committed summary.

On a broker of the test's own (free ports, its own data folder, the shared jars), never
started before the run: the session's shared broker is not touched. About a minute; skipped
when .venv-quix is missing, unless CI=true (then bench/peer_quix/setup_venv.sh makes it, as
the benchmark itself does).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from config.settings import REPO_ROOT
from streams import local_kafka
from tests.integration.conftest import PrivateBroker

pytestmark = pytest.mark.kafka


def _digests(paths: list[Path]) -> dict[Path, str | None]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths}


def test_the_benchmark_runs_from_a_stopped_broker(tmp_path: Path) -> None:
    if not (REPO_ROOT / ".venv-quix" / "bin" / "python").exists() and os.environ.get("CI") != "true":
        pytest.skip(".venv-quix is missing: run bench/peer_quix/setup_venv.sh (with CI=true this test runs)")
    broker = PrivateBroker(tmp_path / "local")  # prepared, not started
    assert not local_kafka.is_running(broker.settings)
    published = _digests(list(report.PUBLISHED.values()))
    s = broker.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
    env.update(
        {
            "INVENTORY_LOCAL_DIR": str(s.local_dir),
            "INVENTORY_LOCAL_KAFKA_PORT": str(s.local_kafka_port),
            "INVENTORY_LOCAL_CONTROLLER_PORT": str(s.local_controller_port),
            "INVENTORY_BOOTSTRAP_SERVERS": s.bootstrap_servers,
        }
    )
    run_dir: Path | None = None
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.benchmark", "--quick", "--orders", "300", "--stages", "peer"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        found = re.search(r"results go to (\S+)", done.stdout)
        run_dir = Path(found.group(1)) if found else None
        output = (done.stdout + done.stderr)[-4000:]
        assert done.returncode == 0, output
        assert run_dir is not None and run_dir.parent == report.RUNS, output
        results = json.loads((run_dir / "benchmark.json").read_text())
        assert results["broker"]["started_by_this_run"] is True
        peer = results["stages"]["peer"]
        assert "error" not in peer, peer
        assert peer["orders"] == 300 and peer["records_by_role"]["input"] == results["workload"]["input_events"]
        assert peer["produced_by_role"]["output"] > 0 and peer["produced_by_role"]["changelog"] > 0
        assert (run_dir / "benchmark.md").exists()
        assert not local_kafka.is_running(broker.settings), "the run left the broker it started running"
        assert _digests(list(report.PUBLISHED.values())) == published, "the committed summary was written"
    finally:
        broker.stop()
        if run_dir is not None and run_dir.parent == report.RUNS:
            shutil.rmtree(run_dir, ignore_errors=True)
