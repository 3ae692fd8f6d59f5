"""Restart-to-ready after SIGKILL as history grows on the same positions, and a standby takeover.

Run: ``python bench/recovery_bench.py [--days 1,7,30] [--orders 200] [--repeats 3]``
(``--help`` for the rest; it starts nothing). A measurement, not a test: it asserts only that a
restarted worker answers with the positions it had before the kill. In a fresh deployment one
worker reads simulated days on the same positions. After each of ``--days``: SIGKILL while idle
and restart, with the local RocksDB kept and with it deleted (``--repeats`` each), then killed
in the middle of the next day (``--load-repeats``); the clock runs to /ready, then every
position must read as before. Takeover: of two workers the loaded one is killed and a receipt per
SKU published; the clock runs until the survivor serves and applies them all, with
``standby_replicas`` 1 and 0. Results: bench/results/issue12/ (JSON, PNG); docs/recovery.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OUT = Path(__file__).resolve().parent / "results" / "issue12"
PROBE_WAREHOUSE = "WH001"
STANDBY_BUFFER = 1000  # Faust's default table recovery_buffer_size, which standbys use too


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", default="1,7,30", help="after which simulated days to measure restarts (default 1,7,30)")
    p.add_argument("--orders", type=int, default=200, help="orders per simulated day (default 200: ~1,200 events)")
    p.add_argument("--skus", type=int, default=150, help="SKUs, the same every day (default 150)")
    p.add_argument("--warehouses", type=int, default=3, help="warehouses, the same every day (default 3)")
    p.add_argument("--seed", type=int, default=12, help="simulator seed (default 12)")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3, help="restarts of each kind per measured day (default 3)")
    p.add_argument(
        "--load-repeats",
        type=int,
        default=2,
        help="restarts per measured day after a kill in the middle of the next day's traffic "
        "(each publishes one more day; default 2)",
    )
    p.add_argument("--takeover-repeats", type=int, default=3, help="takeovers per standby setting; 0: none")
    p.add_argument(
        "--audit",
        action="store_true",
        help="before each restart after a kill under load, check every partition's verdict against a "
        "full scan of its changelog (reads the whole changelog: slow on long histories)",
    )
    p.add_argument("--out", type=Path, default=OUT, help=f"results folder (default {OUT})")
    p.add_argument("--keep-logs", action="store_true", help="keep the workers' logs (their folder is printed)")
    args = p.parse_args(argv)
    args.day_marks = sorted({int(d) for d in args.days.split(",")})
    return args


# --- the deployment: idle, positions, changelogs -------------------------------------------


def lag(settings: Any) -> int | None:
    """Records the worker group has not committed, over every input and internal partition;
    None while it has committed nothing."""
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    from streams.kafka_config import admin_config, consumer_config
    from streams.topics import Topics

    t = Topics(settings)
    names = [t.orders, t.shipments, t.stock_movements, t.order_inbox, t.stock_commands]
    partitions = [TopicPartition(n, p) for n in names for p in range(settings.partitions)]
    group = settings.app_id
    admin = AdminClient(admin_config(settings))  # held: a collected client never completes its futures
    try:
        committed = (
            admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group, partitions)],
                request_timeout=15,
            )[group]
            .result(timeout=30)
            .topic_partitions
        )
    except Exception:  # noqa: BLE001 - the coordinator is busy (a rebalance): ask again later
        return None
    if all(tp.offset < 0 for tp in committed):
        return None
    at = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in committed}
    probe = Consumer(consumer_config(settings, f"{group}-bench-probe"))
    try:
        return sum(
            max(0, probe.get_watermark_offsets(tp, timeout=10)[1] - at[(tp.topic, tp.partition)]) for tp in partitions
        )
    finally:
        probe.close()


def wait_idle(settings: Any, workers: list[Any], say: Any, timeout_s: float = 900.0) -> float:
    """Until nothing is left to read, twice in a row two seconds apart; the seconds waited."""
    started = time.monotonic()
    quiet = 0
    while quiet < 2:
        for w in workers:
            if not w.alive():
                raise RuntimeError(f"worker exited; log:\n{w.log_tail(40)}")
        left = lag(settings)
        quiet = quiet + 1 if left == 0 else 0
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"still {left} records to read after {timeout_s}s")
        say(f"  draining: {left if left is not None else '?'} records left, {time.monotonic() - started:.0f}s")
        time.sleep(2.0)
    return time.monotonic() - started


def positions(url: str, skus: list[str]) -> dict[str, dict[str, int]] | None:
    """sku -> warehouse -> (onHandQty, version), through the batch view; None unless it answers."""
    from streams.worker_process import http_json

    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(skus), 200):
        status, body = http_json(f"{url}/inventory?skus={','.join(skus[start : start + 200])}", timeout_s=10)
        if status != 200 or not isinstance(body, dict):
            return None
        for sku, item in body["items"].items():
            found[sku] = {p["warehouseCode"]: (p["onHandQty"], p["version"]) for p in item["warehouses"]}
    return found


def changelog_offsets(settings: Any) -> dict[str, int]:
    """Offsets each table's changelog spans (high - low, summed over its partitions)."""
    from confluent_kafka import Consumer, TopicPartition

    from streams.kafka_config import consumer_config
    from streams.topics import TABLES, Topics

    consumer = Consumer(consumer_config(settings, f"{settings.app_id}-bench-probe"))
    try:
        out = {}
        for table in TABLES:
            topic = Topics(settings).changelog(table)
            total = 0
            for p in range(settings.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                total += high - low
            out[table] = total
        return out
    finally:
        consumer.close()


def folder_mib(path: Path) -> float:
    return round(sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def local_decisions(log_text: str) -> dict[str, Any]:
    """What the worker's start said of each local partition (streams/local_state.py)."""
    kept = len(re.findall(r"local state kept", log_text))
    deleted = len(re.findall(r"local state deleted", log_text))
    reread = sum(int(b) - int(a) + 1 for a, b in re.findall(r"the restore reads offsets (\d+)\.\.(\d+)", log_text))
    return {"kept": kept, "deleted": deleted, "offsets_reread": reread}


def timeline(log_text: str, spawned_at: float) -> dict[str, float | None]:
    """Seconds from the process start to Faust's worker start, its first group join and its
    ready line (from the log's own timestamps; None where a line is missing)."""
    from datetime import datetime

    marks = {"faust_start_s": "[^Worker]: Starting", "joined_s": "Joined group", "ready_s_log": "Worker ready"}
    out: dict[str, float | None] = dict.fromkeys(marks)
    for line in log_text.splitlines():
        for name, mark in marks.items():
            if out[name] is None and mark in line and line.startswith("["):
                at = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                out[name] = round(at - spawned_at, 2)
    return out


def changelog_read_s(log_text: str) -> float | None:
    """Seconds Faust spent reading changelogs (its recovery log lines), None if it read none."""
    from datetime import datetime

    stamps = {}
    for name, mark in (("start", "Restoring state from changelog topics"), ("end", "Done reading from changelog")):
        for line in log_text.splitlines():
            if mark in line and line.startswith("["):
                stamps[name] = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
                break
    return (stamps["end"] - stamps["start"]).total_seconds() if len(stamps) == 2 else None


class Run:
    """The deployment, its worker processes and their folders."""

    def __init__(self, args: argparse.Namespace) -> None:
        from bench.harness import Deployment

        self.args = args
        self.d = Deployment("rb", args.partitions)
        self.settings = self.d.settings
        self.starts = 0
        self.last_day = 0
        self.skus = [f"RB{n:05d}" for n in range(1, args.skus + 1)]

    def worker(self, folder: str, **env: str) -> Any:
        from bench.harness import free_port
        from streams.worker_process import WorkerProcess

        self.starts += 1
        w = WorkerProcess(
            {**self.d.env(), "INVENTORY_DATA_DIR": str(self.d.root / folder), **env},
            self.d.root / f"{folder}-{self.starts:02d}.log",
            free_port(),
        )
        self.d.workers.append(w)
        return w.start()

    def last_event_time(self) -> Any:
        """The end of the last day published: a probe dated earlier would be read after that
        day's stock counts, which the core takes to have counted it already."""
        from connectors.traffic import DEFAULT_DAY, day_end

        return day_end(DEFAULT_DAY + timedelta(days=self.last_day - 1)) - timedelta(seconds=1)

    def publish_day(self, day: int) -> int:
        from connectors.produce import EventPublisher
        from connectors.simulate import run
        from connectors.traffic import DEFAULT_DAY, DayParams

        a = self.args
        params = DayParams(
            seed=a.seed + day,
            orders=a.orders,
            skus=a.skus,
            warehouses=a.warehouses,
            day=DEFAULT_DAY + timedelta(days=day - 1),
            tag=f"D{day:02d}",
            sku_prefix="RB",
        )
        report, _ = run(params, EventPublisher(self.settings), None, None, None, opening_pause_s=1.0 if day == 1 else 0)
        self.last_day = max(self.last_day, day)
        if report.failures:
            raise RuntimeError(f"day {day} not published: {report.failures[:3]}")
        return report.events


def wait_ready(w: Any, timeout_s: float = 600.0) -> float:
    """Poll /ready every 50 ms; the monotonic time it first said ready."""
    from streams.worker_process import http_json

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not w.alive():
            raise RuntimeError(f"worker exited; log:\n{w.log_tail(40)}")
        status, body = http_json(f"{w.url}/ready", 1.0)
        if status == 200 and body and body.get("ready"):
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"worker not ready after {timeout_s}s; log:\n{w.log_tail(40)}")


def restart(run: Run, w: Any, keep: bool, before: dict[str, Any], say: Any) -> tuple[Any, dict[str, Any]]:
    """SIGKILL ``w``, restart it on the same folder (or an emptied one); the figures."""
    w.kill()
    folder = Path(w.env["INVENTORY_DATA_DIR"])
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    began, spawned_at = time.monotonic(), time.time()
    again = run.worker(folder.name)
    ready_s = wait_ready(again) - began
    deadline = time.monotonic() + 60
    while (now := positions(again.url, run.skus)) != before and time.monotonic() < deadline:
        time.sleep(0.5)
    if now != before:
        raise AssertionError(f"positions after the restart differ from before the kill; log {again.log_path}")
    log_text = again.log_path.read_text(errors="replace")
    trial = {
        "store": "kept" if keep else "deleted",
        "ready_s": round(ready_s, 2),
        "changelog_read_s": changelog_read_s(log_text),
        **timeline(log_text, spawned_at),
        **local_decisions(log_text),
    }
    say(
        f"  restart, local store {trial['store']}: ready in {ready_s:.1f}s (Faust started at "
        f"{trial['faust_start_s']}s, joined the group at {trial['joined_s']}s, read changelogs for "
        f"{trial['changelog_read_s'] or 0:.1f}s; partitions kept {trial['kept']}, deleted {trial['deleted']})"
    )
    return again, trial


def consumed(w: Any) -> float:
    """Input and internal messages the worker process has read so far (its /metrics)."""
    from bench.harness import worker_counters

    try:
        return sum(worker_counters(w.url)["in"].values())
    except OSError:
        return 0.0


def audit_decisions(run: Run, folder: Path) -> dict[str, int]:
    """Before the restart: the worker's check (``judge``) for every partition against a full
    scan of its changelog for the local head. A deleted partition must have its head nowhere
    in Kafka, a kept one somewhere."""
    from streams.keys import HEAD
    from streams.local_state import ChangelogReader, judge, partition_paths, read_local
    from streams.topics import Topics

    counts = {"kept": 0, "kept_head_not_in_kafka": 0, "deleted_ahead": 0, "deleted_head_in_kafka": 0}
    reader = ChangelogReader(run.settings)
    try:
        for table, partition, path in partition_paths(folder):
            local = read_local(table, partition, path)
            topic = Topics(run.settings).changelog(table)
            low, high = reader.watermarks(topic, partition)
            verdict = judge(local, low, high, lambda s, e, t=topic, p=partition: reader.read(t, p, s, e))
            anywhere = any(k == HEAD and v == local.head for _, k, v in reader.read(topic, partition, low, high))
            if verdict.keep:
                counts["kept" if anywhere else "kept_head_not_in_kafka"] += 1
            elif local.head is not None and local.offset is not None:
                counts["deleted_head_in_kafka" if anywhere else "deleted_ahead"] += 1
    finally:
        reader.close()
    if counts["kept_head_not_in_kafka"] or counts["deleted_head_in_kafka"]:
        raise AssertionError(f"the worker's check disagrees with a full scan: {counts}")
    return counts


def restart_under_load(run: Run, w: Any, day: int, say: Any) -> tuple[Any, dict[str, Any]]:
    """Publish ``day`` and SIGKILL the worker in the middle of reading it; restart on the same
    folder. Partitions whose last transaction had not reached Kafka are deleted (and restored in
    full); the others are kept."""
    base = consumed(w)
    events = run.publish_day(day)
    deadline = time.monotonic() + 60
    while consumed(w) - base < min(300, events // 3) and time.monotonic() < deadline:
        time.sleep(0.02)
    read_before_kill = consumed(w) - base
    w.kill()
    audit = audit_decisions(run, Path(w.env["INVENTORY_DATA_DIR"])) if run.args.audit else None
    began, spawned_at = time.monotonic(), time.time()
    again = run.worker(Path(w.env["INVENTORY_DATA_DIR"]).name)
    ready_s = wait_ready(again) - began
    log_text = again.log_path.read_text(errors="replace")
    trial = {
        "store": "kept, killed under load",
        "ready_s": round(ready_s, 2),
        "read_before_kill": read_before_kill,
        "changelog_read_s": changelog_read_s(log_text),
        **timeline(log_text, spawned_at),
        **local_decisions(log_text),
        **({"audit": audit} if audit else {}),
    }
    say(
        f"  restart after a kill under load (day {day}, {read_before_kill:.0f} messages read): ready in "
        f"{ready_s:.1f}s; partitions kept {trial['kept']}, deleted {trial['deleted']} "
        f"(changelog read {trial['changelog_read_s'] or 0:.1f}s)"
    )
    return again, trial


# --- takeover --------------------------------------------------------------------------------


def standbys_caught_up(folder: Path, settings: Any, partitions: list[int]) -> bool:
    """The survivor's copies of ``partitions`` (read as a RocksDB secondary) have reached
    their changelog's end."""
    import tempfile

    import rocksdict
    from confluent_kafka import Consumer, TopicPartition

    from streams.faust_private import PERSISTED_OFFSET_KEY, local_partition_db_paths
    from streams.kafka_config import consumer_config
    from streams.topics import TABLES, Topics

    consumer = Consumer(consumer_config(settings, f"{settings.app_id}-bench-probe"))
    try:
        for table in TABLES:
            topic = Topics(settings).changelog(table)
            for p in partitions:
                path = next((path for t, q, path in local_partition_db_paths(folder) if (t, q) == (table, p)), None)
                if path is None:
                    return False
                with tempfile.TemporaryDirectory() as secondary:
                    db = rocksdict.Rdict(
                        str(path),
                        options=rocksdict.Options(raw_mode=True),
                        access_type=rocksdict.AccessType.secondary(secondary),
                    )
                    try:
                        db.try_catch_up_with_primary()
                        raw = db.get(PERSISTED_OFFSET_KEY)
                    finally:
                        db.close()
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                # Faust applies standby records in batches of its recovery buffer: a standby
                # that read to the end may hold up to that many in memory (applied on takeover).
                if high > STANDBY_BUFFER and (raw is None or int(raw) < high - 1 - STANDBY_BUFFER):
                    return False
        return True
    finally:
        consumer.close()


def owned(url: str, settings: Any) -> list[int]:
    """The stock-table partitions the worker at ``url`` is active for (its /router/ view)."""
    from streams.topics import Topics
    from streams.worker_process import http_json

    status, body = http_json(f"{url}/router/")
    if status != 200 or not isinstance(body, dict):
        return []
    changelog = Topics(settings).changelog("stock-state")
    me = url.rstrip("/")
    for host, tables in body.items():
        if host.rstrip("/").endswith(me.split("//", 1)[1]):
            return sorted(tables.get(changelog, []))
    return []


def takeover(run: Run, old: Any, standby: int, n: int, before: dict[str, Any], say: Any) -> tuple[Any, dict[str, Any]]:
    """``old`` holds everything; a fresh worker joins; ``old`` is killed: the figures."""
    from connectors.produce import EventPublisher
    from schemas.inputs import GoodsReceived, ReceivedLine

    env = {"INVENTORY_STANDBY_REPLICAS": str(standby)}
    old.stop()  # the state of the day, kept cleanly; restarted with this standby setting
    old = run.worker("main", **env)
    wait_ready(old)
    survivor = run.worker(f"fresh-{standby}-{n}", **env)
    wait_ready(survivor)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # both own stock partitions, and both say ready
        mine, theirs = owned(survivor.url, run.settings), owned(old.url, run.settings)
        if mine and theirs and len(mine) + len(theirs) == run.settings.partitions:
            break
        say(f"  takeover: waiting for the two workers to share the partitions (new {mine}, old {theirs})")
        time.sleep(2.0)
    else:
        raise TimeoutError(f"the two workers never shared the partitions; logs {old.log_path}, {survivor.log_path}")
    wait_ready(old)
    wait_ready(survivor)
    survivor_folder = Path(survivor.env["INVENTORY_DATA_DIR"])
    if standby:
        caught = time.monotonic() + 600
        while not standbys_caught_up(survivor_folder, run.settings, theirs):
            if time.monotonic() > caught:
                raise TimeoutError("the survivor's standbys never caught up")
            say(f"  takeover: waiting for the standbys of partitions {theirs} to catch up")
            time.sleep(1.0)
    time.sleep(2.0)  # a few heartbeats in a settled group
    publisher = EventPublisher(run.settings)
    probes = [  # one unit more of every SKU at one warehouse: commands on every stock partition
        GoodsReceived(
            event_id=f"probe-{standby}-{n}-{i}",
            occurred_at=run.last_event_time(),
            receipt_no=f"PROBE-{standby}-{n}-{i}",
            warehouse_code=PROBE_WAREHOUSE,
            lines=[ReceivedLine(sku=s, sellable_qty=1) for s in run.skus[i : i + 100]],
        )
        for i in range(0, len(run.skus), 100)
    ]
    old.kill()
    killed = time.monotonic()
    for probe in probes:
        publisher.publish(probe)
    publisher.flush()
    answered_s = applied_s = None
    wanted = {
        sku: {**by_wh, PROBE_WAREHOUSE: (by_wh.get(PROBE_WAREHOUSE, (0, 0))[0] + 1, None)}
        for sku, by_wh in before.items()
    }
    while time.monotonic() - killed < 180:
        now = positions(survivor.url, run.skus)
        # Answers: every SKU, as it was before the kill or with the probe applied (a table
        # still being restored answers too, with older values: not counted).
        if (
            now is not None
            and answered_s is None
            and (_applied(now, before) or _applied(now, wanted) or _applied_some(now, before, wanted))
        ):
            answered_s = time.monotonic() - killed
        if now is not None and _applied(now, wanted):
            applied_s = time.monotonic() - killed
            break
        time.sleep(0.1)
    if applied_s is None:
        _diagnose(survivor, now, wanted, run.d.root / "takeover-failure.json", run.settings)
        raise TimeoutError(
            f"the survivor never applied the probe; log {survivor.log_path}, "
            f"diagnostics {run.d.root / 'takeover-failure.json'}"
        )
    log_text = survivor.log_path.read_text(errors="replace")
    trial = {
        "standby_replicas": standby,
        "killed_partitions": theirs,
        "answers_s": round(answered_s or 0, 2),
        "applies_s": round(applied_s, 2),
        "survivor_start_restore_s": changelog_read_s(log_text),
    }  # its own half, before the kill
    say(
        f"  takeover, standby_replicas={standby}: partitions {theirs} answered in {trial['answers_s']:.1f}s, "
        f"probe applied on all of them in {applied_s:.1f}s"
    )
    for sku, by_wh in wanted.items():  # the next trial starts from this state
        before[sku] = {wh: (qty, None) for wh, (qty, _) in by_wh.items()}
    return survivor, trial


def _diagnose(w: Any, now: dict[str, Any] | None, wanted: dict[str, Any], path: Path, settings: Any) -> None:
    """What the survivor shows when a probe never lands: the positions that differ, its
    consumer's view and its metrics."""
    import urllib.request

    from streams.worker_process import http_json

    differ = {
        sku: {"want": by_wh, "got": (now or {}).get(sku)}
        for sku, by_wh in wanted.items()
        if not _applied({sku: (now or {}).get(sku, {})}, {sku: by_wh})
    }
    try:
        metrics = urllib.request.urlopen(f"{w.url}/metrics", timeout=5).read().decode()  # noqa: S310 - loopback
    except OSError as exc:
        metrics = repr(exc)
    from connectors.tail import tail
    from streams.topics import Topics

    alerts = [
        r
        for r in tail(settings, [Topics(settings).inventory_alerts], from_beginning=True, timeout_s=30, idle_s=3)
        if "PROBE" in json.dumps(r, default=str)
    ]
    path.write_text(
        json.dumps(
            {
                "differ": differ,
                "alerts": alerts[-20:],
                "consumer": http_json(f"{w.url}/debug/consumer", 10),
                "router": http_json(f"{w.url}/router/"),
                "metrics": metrics,
            },
            indent=1,
            default=str,
        )
    )


def _applied_some(now: dict[str, Any], before: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Every position reads as before the kill or as after the probe (the probe is being applied)."""
    for sku, by_wh in wanted.items():
        got = now.get(sku, {})
        for wh, (qty, _) in by_wh.items():
            if got.get(wh, (None,))[0] not in (qty, before[sku].get(wh, (None,))[0]):
                return False
    return True


def _applied(now: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for sku, by_wh in wanted.items():
        got = now.get(sku, {})
        for wh, (qty, _) in by_wh.items():
            if got.get(wh, (None,))[0] != qty:
                return False
    return True


# --- report ----------------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def summarise(restarts: list[dict[str, Any]], takeovers: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"restart_ready_s": {}, "takeover": {}}
    for day in sorted({t["day"] for t in restarts}):
        for store in ("kept", "deleted", "kept, killed under load"):
            xs = [t["ready_s"] for t in restarts if t["day"] == day and t["store"] == store]
            out["restart_ready_s"].setdefault(str(day), {})[store] = (
                {"median": median(xs), "min": min(xs), "max": max(xs)}
                if xs
                else {"median": None, "min": None, "max": None}
            )
    for standby in sorted({t["standby_replicas"] for t in takeovers}):
        rows = [t for t in takeovers if t["standby_replicas"] == standby]
        out["takeover"][f"standby_replicas={standby}"] = {
            "answers_s_median": median([t["answers_s"] for t in rows]),
            "applies_s_median": median([t["applies_s"] for t in rows]),
            "applies_s_max": max(t["applies_s"] for t in rows),
        }
    return out


def table(summary: dict[str, Any], history: dict[str, Any]) -> str:
    lines = [
        "| after day | events so far | changelog offsets | store kept, idle kill (s) | folder deleted (s) "
        "| store kept, kill under load (s) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for day, by in summary["restart_ready_s"].items():
        h = history[day]
        cells = [
            f"{x['median']} ({x['min']}-{x['max']})" for x in (by["kept"], by["deleted"], by["kept, killed under load"])
        ]
        lines.append(
            f"| {day} | {h['events']:,} | {sum(h['changelog_offsets'].values()):,} | " + " | ".join(cells) + " |"
        )
    for name, t in summary["takeover"].items():
        lines.append(
            f"\ntakeover with {name}: answers in {t['answers_s_median']} s, processes again in "
            f"{t['applies_s_median']} s (median; max {t['applies_s_max']} s)"
        )
    return "\n".join(lines)


def chart(summary: dict[str, Any], history: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    days = sorted(summary["restart_ready_s"], key=int)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for store, style, label in (
        ("deleted", "o-", "folder deleted (full restore)"),
        ("kept, killed under load", "^--", "store kept, killed under load"),
        ("kept", "s-", "store kept, killed idle"),
    ):
        points = [(int(d), summary["restart_ready_s"][d][store]["median"]) for d in days]
        points = [(x, y) for x, y in points if y is not None]
        if points:
            ax.plot([x for x, _ in points], [y for _, y in points], style, label=label)
    ax.set_xlabel("simulated days on the same positions")
    ax.set_ylabel("SIGKILL -> ready (s, median)")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the workers are killed on the way out

    def say(text: str) -> None:
        print(text, flush=True)

    run = Run(args)
    restarts: list[dict[str, Any]] = []
    takeovers: list[dict[str, Any]] = []
    history: dict[str, Any] = {}
    started = time.monotonic()
    load_before = os.getloadavg()
    events = 0
    failed: BaseException | None = None
    try:
        say(f"deployment {run.settings.topic_prefix} ({args.partitions} partitions), folders in {run.d.root}")
        w = run.worker("main")
        wait_ready(w)
        day = 0
        while day < max(args.day_marks):
            day += 1
            events += run.publish_day(day)
            say(f"day {day}: published, {events:,} events so far")
            wait_idle(run.settings, [w], say)
            if day not in args.day_marks:
                continue
            before = positions(w.url, run.skus)
            assert before, "no positions to compare"
            history[str(day)] = {
                "events": events,
                "changelog_offsets": changelog_offsets(run.settings),
                "rocksdb_mib": folder_mib(Path(w.env["INVENTORY_DATA_DIR"])),
                "positions": sum(len(v) for v in before.values()),
            }
            say(f"day {day}: {history[str(day)]}")
            for r in range(args.repeats):
                for keep in (True, False) if r % 2 == 0 else (False, True):
                    w, trial = restart(run, w, keep, before, say)
                    restarts.append({"day": day, "repeat": r, **trial})
                    wait_idle(run.settings, [w], say)
            marked = day
            for r in range(args.load_repeats):  # the next days arrive while it is killed
                day += 1
                w, trial = restart_under_load(run, w, day, say)
                restarts.append({"day": marked, "repeat": r, **trial})
                wait_idle(run.settings, [w], say)
        if args.takeover_repeats:
            before = positions(w.url, run.skus)
            assert before
            for n in range(args.takeover_repeats):
                for standby in (1, 0):
                    survivor, trial = takeover(run, w, standby, n, before, say)
                    takeovers.append({"repeat": n, **trial})
                    wait_idle(run.settings, [survivor], say)
                    survivor.stop()
                    # The old folder, SIGKILLed and behind the survivor's transactions: its
                    # restart keeps it and reads the changelogs from its last transaction on.
                    w = run.worker("main")
                    wait_ready(w)
                    shutil.rmtree(Path(survivor.env["INVENTORY_DATA_DIR"]), ignore_errors=True)
                    wait_idle(run.settings, [w], say)
        w.stop()
    except BaseException as exc:  # noqa: BLE001 - what was measured so far is still written
        failed = exc
        say(f"FAILED: {type(exc).__name__}: {exc}")
    finally:
        run.d.close(keep_logs=args.keep_logs or failed is not None)
    summary = summarise(restarts, takeovers)
    from config.settings import Settings

    defaults = Settings()
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)},
        },
        "params": {k: v for k, v in vars(args).items() if k not in ("out", "day_marks")},
        "settings": {
            "session_timeout_s": defaults.session_timeout_s,
            "heartbeat_interval_s": defaults.heartbeat_interval_s,
        },
        "failed": None if failed is None else f"{type(failed).__name__}: {failed}",
        "history": history,
        "summary": summary,
        "restarts": restarts,
        "takeovers": takeovers,
        "seconds": round(time.monotonic() - started),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recovery.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    drawn = chart(summary, history, args.out / "recovery.png") if summary["restart_ready_s"] else False
    say(table(summary, history))
    say(f"written {args.out / 'recovery.json'}" + (f" and {args.out / 'recovery.png'}" if drawn else ""))
    return 0 if failed is None else 1


if __name__ == "__main__":
    sys.exit(main())
