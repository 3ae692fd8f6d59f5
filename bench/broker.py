"""What the benchmark reads from the broker and from /proc: records per topic, and CPU time.

* ``count_records(settings, topics)``: topic -> records, read after the stage from the beginning
  to each partition's end with ``read_committed`` (a transactional producer's commit markers take
  offsets but are no records; ``offset_spans`` gives the offset spans beside). Compaction cannot
  make it short: every topic is fresh and far below a segment's roll size and age.
* ``deployment_topics(settings, *markers)``: the broker's topics whose name starts with or
  contains a marker (a deployment's prefix, app id, Quix group).
* ``broker_pid(settings)``: the local broker's java pid for this local_dir, or None (remote).
* ``CpuSampler``: CPU seconds (user + system, all threads) of watched pids every ``interval`` s
  from a daemon thread; ``between(pid, t0, t1)`` interpolates a wall-clock window known only
  afterwards (the peer's, from its stats). Why: docs/decisions.md ("like with like").
"""

from __future__ import annotations

import bisect
import os
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from config.settings import Settings
from streams.local_kafka import MAIN_CLASS, KafkaPaths


def deployment_topics(settings: Settings, *markers: str) -> list[str]:
    from confluent_kafka.admin import AdminClient

    from streams.kafka_config import admin_config

    admin = AdminClient(admin_config(settings))
    names = admin.list_topics(timeout=30).topics
    return sorted(n for n in names if any(n.startswith(m) or f"__{m}--" in n for m in markers if m))


def offset_spans(settings: Settings, topics: Iterable[str]) -> dict[str, int]:
    """topic -> sum over partitions of (end offset - start offset)."""
    from confluent_kafka import Consumer, TopicPartition

    from streams.kafka_config import consumer_config

    consumer = Consumer(consumer_config(settings, group_id=f"bench-span-{uuid.uuid4().hex[:8]}"))
    try:
        out: dict[str, int] = {}
        meta = consumer.list_topics(timeout=30).topics
        for topic in topics:
            total = 0
            for p in meta[topic].partitions if topic in meta else ():
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                total += high - low
            out[topic] = total
        return out
    finally:
        consumer.close()


def count_records(settings: Settings, topics: Iterable[str], timeout_s: float = 300) -> dict[str, int]:
    """topic -> committed records in it (read_committed, from the beginning to the end)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    from streams.kafka_config import consumer_config

    topics = list(topics)
    consumer = Consumer(
        consumer_config(
            settings,
            group_id=f"bench-count-{uuid.uuid4().hex[:8]}",
            **{
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "enable.auto.commit": False,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 16 * 1024 * 1024,
            },
        )
    )
    counts = dict.fromkeys(topics, 0)
    try:
        meta = consumer.list_topics(timeout=30).topics
        parts = [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics if t in meta for p in meta[t].partitions]
        pending = {(tp.topic, tp.partition) for tp in parts}
        consumer.assign(parts)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"records not counted within {timeout_s}s: {sorted(pending)[:5]} ...")
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                err = msg.error()
                if err is None:
                    counts[msg.topic()] += 1  # type: ignore[index]
                elif err.code() == KafkaError._PARTITION_EOF:
                    pending.discard((msg.topic(), msg.partition()))
                else:
                    raise RuntimeError(f"counting {msg.topic()}: {err}")
        return counts
    finally:
        consumer.close()


def wait_quiet(settings: Settings, topics: Iterable[str], quiet_s: float = 1.0, timeout_s: float = 30) -> None:
    """Wait until no end offset of ``topics`` moves for ``quiet_s`` (the last sends acknowledged)."""
    topics = list(topics)
    last = offset_spans(settings, topics)
    still_since = time.monotonic()
    deadline = still_since + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = offset_spans(settings, topics)
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet_s:
            return


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def broker_pid(settings: Settings) -> int | None:
    """The local broker's java pid (pid file first, then a scan of /proc), or None."""
    if not settings.uses_local_broker:
        return None
    paths = KafkaPaths.of(settings)
    wanted = str(paths.properties)
    try:
        pid = int(paths.pid_file.read_text().strip())
        if MAIN_CLASS in _cmdline(pid) and wanted in _cmdline(pid):
            return pid
    except (OSError, ValueError):
        pass
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            argv = _cmdline(int(entry.name))
            if MAIN_CLASS in argv and wanted in argv:
                return int(entry.name)
    return None


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) a process has used; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuSampler:
    """Samples the CPU seconds of watched pids from a daemon thread (see the module doc)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.samples: dict[int, tuple[list[float], list[float]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, *pids: int) -> None:
        with self._lock:
            for pid in pids:
                self.samples.setdefault(pid, ([], []))
        self.sample()

    def sample(self) -> None:
        now = time.time()
        with self._lock:
            for pid, (times, cpus) in self.samples.items():
                cpu = cpu_seconds(pid)
                if cpu is not None:
                    times.append(now)
                    cpus.append(cpu)

    def start(self) -> CpuSampler:
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def at(self, pid: int, t: float) -> float | None:
        """The pid's CPU seconds at wall time t (linear between samples, clamped at the ends)."""
        with self._lock:
            times, cpus = self.samples.get(pid, ([], []))
            times, cpus = list(times), list(cpus)
        return interpolate(times, cpus, t)

    def between(self, pid: int, t0: float, t1: float) -> float | None:
        a, b = self.at(pid, t0), self.at(pid, t1)
        return None if a is None or b is None else max(0.0, b - a)


def interpolate(times: list[float], values: list[float], t: float) -> float | None:
    """values at t, linear between the neighbouring samples; the first/last value outside."""
    if not times:
        return None
    i = bisect.bisect_left(times, t)
    if i <= 0:
        return values[0]
    if i >= len(times):
        return values[-1]
    t0, t1, v0, v1 = times[i - 1], times[i], values[i - 1], values[i]
    return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def describe_load() -> dict[str, Any]:
    return {"load_average_1m": round(os.getloadavg()[0], 2)}
