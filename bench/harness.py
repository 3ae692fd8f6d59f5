"""What every benchmark here shares: an isolated deployment on the local broker, workers as
child processes, their CPU time and peak memory, percentiles and a progress line.

A deployment has its own topic prefix, Faust app id and state folder (as the integration
tests do), so a benchmark never reads another run's records, and it deletes what it
created when it ends.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.settings import Settings, get_settings  # noqa: E402
from streams import local_kafka  # noqa: E402
from streams.topics import Topics, create_topics  # noqa: E402
from streams.worker_process import WorkerProcess  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TTY = sys.stdout.isatty()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Progress:
    """One status line, rewritten in place on a terminal, every few seconds otherwise."""

    def __init__(self) -> None:
        self.last = 0.0
        self.width = 0

    def due(self) -> bool:
        return time.monotonic() - self.last >= (0.5 if TTY else 5.0)

    def show(self, text: str, force: bool = False) -> None:
        if not force and not self.due():
            return
        self.last = time.monotonic()
        if TTY:
            sys.stdout.write("\r" + text + " " * max(0, self.width - len(text)))
            self.width = len(text)
        else:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def done(self, text: str) -> None:
        self.show(text, force=True)
        if TTY:
            sys.stdout.write("\n")
            self.width = 0
        sys.stdout.flush()


def worker_counters(url: str) -> dict[str, dict[str, float]]:
    """A worker's ``inventory_events_in_total`` / ``_out_total`` by topic (from /metrics)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    counters: dict[str, dict[str, float]] = {"in": {}, "out": {}}
    for m in re.finditer(r'inventory_events_(in|out)_total\{topic="([^"]+)"\} (\S+)', text):
        counters[m.group(1)][m.group(2)] = float(m.group(3))
    return counters


class Deployment:
    """An isolated deployment on the configured (by default the local) broker."""

    def __init__(self, name: str, partitions: int, base: Settings | None = None, **overrides: Any) -> None:
        self.base = base or get_settings()
        self.broker_started = False
        if self.base.uses_local_broker:
            self.broker_started = local_kafka.start(self.base)
            bootstrap = local_kafka.bootstrap_address(self.base)
        else:
            bootstrap = self.base.bootstrap_servers
        tag = uuid.uuid4().hex[:8]
        self.root = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.settings = self.base.model_copy(
            update={
                "bootstrap_servers": bootstrap,
                "topic_prefix": f"{name}{tag}.",
                "app_id": f"inventory-{name}-{tag}",
                "partitions": partitions,
                "data_dir": self.root / "worker",
                **overrides,
            }
        )
        self.topics = Topics(self.settings)
        self.created = create_topics(self.settings)
        self.workers: list[WorkerProcess] = []

    def env(self) -> dict[str, str]:
        s = self.settings
        return {
            "INVENTORY_BOOTSTRAP_SERVERS": s.bootstrap_servers,
            "INVENTORY_TOPIC_PREFIX": s.topic_prefix,
            "INVENTORY_APP_ID": s.app_id,
            "INVENTORY_PARTITIONS": str(s.partitions),
        }

    def start_worker(self, extra_env: dict[str, str] | None = None) -> WorkerProcess:
        n = len(self.workers)
        env = {**self.env(), "INVENTORY_DATA_DIR": str(self.root / f"worker{n}"), **(extra_env or {})}
        worker = WorkerProcess(env, self.root / f"worker{n}.log", free_port()).start()
        self.workers.append(worker)
        return worker

    def close(self, keep_logs: bool = False) -> None:
        from confluent_kafka.admin import AdminClient

        from streams.kafka_config import admin_config

        for worker in self.workers:
            if worker.alive():
                worker.kill()
        admin = AdminClient(admin_config(self.settings))
        names = [
            n
            for n in admin.list_topics(timeout=10).topics
            if n.startswith(self.settings.topic_prefix) or n.startswith(self.settings.app_id)
        ]
        if names:
            for future in admin.delete_topics(names, operation_timeout=30).values():
                try:
                    future.result()
                except Exception:  # noqa: BLE001 - best effort clean-up
                    pass
        try:
            admin.delete_consumer_groups([self.settings.app_id])[self.settings.app_id].result()
        except Exception:  # noqa: BLE001
            pass
        if keep_logs:
            for n in range(len(self.workers)):
                shutil.rmtree(self.root / f"worker{n}", ignore_errors=True)
            print(f"worker logs kept in {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        if self.broker_started:
            local_kafka.stop(self.base)
