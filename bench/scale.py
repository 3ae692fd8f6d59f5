"""A scale curve: state-recovery time and throughput as the number of positions grows.

Run: ``python -m bench.scale [--positions 10000 100000 1000000] [--orders 5000]``. A benchmark,
not a test: the one thing it checks is that sampled positions hold what was loaded (a worker
with an empty table is not timed). Per size, in a fresh deployment: the stock table is
bulk-loaded into its changelog (one ``SkuStock`` per SKU, in the partition murmur2 gives the SKU),
orders are preloaded, one worker starts; *recovery* is process start -> /ready, *throughput* the
drain of the orders; then peak RSS, RocksDB size and a read-back sample. A small deployment
checks the placement first (a GoodsReceived per partition must land on the loaded record). Each
size runs ``--repeat`` times, interleaved, summarised by medians: bench/results/scale.json,
docs/scale.png, a table on stdout. The method and figures: docs/scale.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import statistics
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka.partitioner import murmur2

from bench.harness import RESULTS, Deployment, Progress, cpu_seconds, peak_rss_mb
from bench.pipeline_bench import drained, publish
from schemas.base import Event
from schemas.codec import encode
from streams.keys import stock_key
from streams.producer import produce
from tables.state import Position, SkuStock

DOCS = Path(__file__).resolve().parent.parent / "docs"
LOADED_AT = datetime(2025, 11, 21, 23, 0, tzinfo=UTC)  # the restore's point in time
ORDERS_AT = datetime(2025, 11, 22, 8, 0, tzinfo=UTC)
MIN_ON_HAND, MAX_ON_HAND = 2_000, 10_000  # ample: no order line of the workload goes short


# --- the pure part: codes, records, partitions, the workload ------------------------------


def sku_codes(count: int) -> list[str]:
    return [f"SKU{i:06d}" for i in range(count)]


def warehouse_codes(count: int) -> list[str]:
    return [f"WH{i + 1:03d}" for i in range(count)]


def partition_for(message_key: bytes, partitions: int) -> int:
    """The partition a keyed record lands in: Kafka's Java client, aiokafka's
    DefaultPartitioner and librdkafka's ``murmur2_random`` all agree on this."""
    return (murmur2(message_key) & 0x7FFFFFFF) % partitions


def build_stock(sku: str, on_hand: Sequence[tuple[str, int]], at: datetime = LOADED_AT) -> SkuStock:
    """A SKU record as restored: each warehouse's on-hand units, nothing reserved, version 1."""
    return SkuStock(
        sku=sku,
        positions=tuple(
            Position(warehouse_code=wh, on_hand_qty=qty, version=1, updated_at=at) for wh, qty in sorted(on_hand)
        ),
    )


def check_against_core(stock: SkuStock) -> None:
    """Apply a ReserveStock to ``stock`` through the pure core: the record must be one the
    core accepts as it stands (a reservation taken from on-hand, version 1 -> 2)."""
    from schemas.internal import ReservationStatus, ReservationUpdated, ReserveStock
    from tables.center import MemoryTables
    from tables.policy import CorePolicy
    from tables.stock import apply_stock

    view = MemoryTables(stock_by_sku={stock.sku: stock})
    command = ReserveStock(
        command_id=f"scale-check|{stock.sku}|0",
        sku=stock.sku,
        occurred_at=ORDERS_AT,
        cause_event_type="OrderCreated",
        cause_event_id="scale-check",
        order_no="SCALE-CHECK",
        order_type="NORMAL",
        quantity=1,
        warehouse_code=None,
    )
    outcome = apply_stock(view, command, CorePolicy())
    results = [e for e in outcome.events if isinstance(e, ReservationUpdated)]
    if outcome.stock is None or [r.status for r in results] != [ReservationStatus.RESERVED]:
        raise ValueError(f"the core did not reserve from the loaded record: {outcome.events}")
    changed = [p for p in outcome.stock.positions if p.reserved_qty]
    before = {p.warehouse_code: p for p in stock.positions}
    if len(changed) != 1 or changed[0].version != 2 or changed[0].reserved_qty != 1:
        raise ValueError(f"unexpected positions after one reservation: {outcome.stock.positions}")
    if changed[0].on_hand_qty != before[changed[0].warehouse_code].on_hand_qty:
        raise ValueError("a reservation changed on-hand units")
    if any(p.available_qty < 0 or p.reserved_qty < 0 for p in outcome.stock.positions):
        raise ValueError("negative quantities after one reservation")


def order_workload(seed: int, orders: int, skus: Sequence[str]) -> list[Event]:
    """Orders of 1-5 lines over Zipf-popular SKUs (rank r weighs 1/(r+1)), as
    bench/pipeline_bench.py's reservation_workload without its receipts: here the stock is
    already there. Cumulative weights, computed once: a million-position run has 333k SKUs."""
    from schemas.inputs import Consignee, OrderCreated, OrderItem

    rng = random.Random(seed)
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(skus))))
    consignee = Consignee(name="张三", phone="13800138000", address="北京市朝阳区XX街道XX号")
    events: list[Event] = []
    for n in range(orders):
        lines = sorted(set(rng.choices(skus, cum_weights=cumulative, k=rng.randint(1, 5))))
        events.append(
            OrderCreated(
                event_id=f"oc-{n}",
                occurred_at=ORDERS_AT + timedelta(milliseconds=n),
                order_no=f"BO{n:08d}",
                order_type="NORMAL",
                consignee=consignee,
                time_requirement="STANDARD",
                items=[OrderItem(sku=s, quantity=rng.randint(1, 3), price=10) for s in lines],
                total_amount=10,
            )
        )
    return events


@dataclass
class Inventory:
    """What is bulk-loaded: every SKU's on-hand units per warehouse (deterministic by seed)."""

    skus: list[str]
    warehouses: list[str]
    seed: int

    def on_hand(self) -> Iterator[tuple[str, list[tuple[str, int]]]]:
        rng = random.Random(self.seed)
        for sku in self.skus:
            yield sku, [(wh, rng.randint(MIN_ON_HAND, MAX_ON_HAND)) for wh in self.warehouses]

    @property
    def positions(self) -> int:
        return len(self.skus) * len(self.warehouses)


# --- the parts that touch Kafka and the worker --------------------------------------------


def bulk_load(d: Deployment, inventory: Inventory, sample: set[str], progress: Progress) -> dict[str, Any]:
    """Write every SKU record into the stock table's changelog; the on-hand units of the
    ``sample`` SKUs are returned to check against the worker later."""
    from confluent_kafka import Producer

    from streams.kafka_config import producer_config

    changelog = d.topics.changelog("stock-state")
    partitions = d.settings.partitions
    producer = Producer(
        producer_config(
            d.settings,
            **{
                "linger.ms": 50,
                "batch.num.messages": 10_000,
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 200_000,
                "queue.buffering.max.kbytes": 262_144,
            },
        )
    )
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    expected: dict[str, dict[str, int]] = {}
    per_partition = [0] * partitions
    sent_bytes = 0
    started = time.monotonic()
    total = len(inventory.skus)
    for n, (sku, on_hand) in enumerate(inventory.on_hand(), 1):
        value = encode(build_stock(sku, on_hand))
        partition = partition_for(sku.encode(), partitions)
        produce(producer, changelog, value, stock_key(sku), partition, on_delivery)
        per_partition[partition] += 1
        sent_bytes += len(value)
        if sku in sample:
            expected[sku] = dict(on_hand)
        if n % 10_000 == 0:
            producer.poll(0)
            rate = n / max(1e-3, time.monotonic() - started)
            progress.show(f"bulk load {n:,}/{total:,} SKU records ({rate:,.0f}/s)")
    remaining = producer.flush(300)
    if remaining or failures:
        raise RuntimeError(f"bulk load: {remaining} records unacknowledged, failures {failures[:3]}")
    elapsed = time.monotonic() - started
    progress.done(
        f"bulk load {total:,} SKU records ({inventory.positions:,} positions, "
        f"{sent_bytes / 2**20:.1f} MiB) in {elapsed:.1f}s"
    )
    return {
        "records": total,
        "value_mib": round(sent_bytes / 2**20, 1),
        "seconds": round(elapsed, 2),
        "per_partition": per_partition,
        "expected": expected,
    }


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, Any]:
    from streams.worker_process import http_json

    return http_json(url, timeout_s)


def wait_ready(worker: Any, timeout_s: float) -> float:
    """Poll /ready every 50 ms; the monotonic time it first said ready."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not worker.alive():
            raise RuntimeError(f"worker exited; log:\n{worker.log_tail()}")
        status, body = http_get(f"{worker.url}/ready", 2.0)
        if status == 200 and body and body.get("ready"):
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"worker not ready after {timeout_s}s; log:\n{worker.log_tail()}")


def table_keys(worker: Any) -> dict[str, float]:
    """The worker's RocksDB key estimates per table (inventory_table_keys in /metrics)."""
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("inventory_table_keys{"):
            name = line.split('table="', 1)[1].split('"', 1)[0]
            out[name] = float(line.rsplit(" ", 1)[1])
    return out


def check_positions(worker: Any, expected: dict[str, dict[str, int]]) -> int:
    """Every sampled position answers with the loaded on-hand units; the count checked."""
    wrong = []
    checked = 0
    for sku, by_warehouse in sorted(expected.items()):
        for wh, qty in by_warehouse.items():
            status, body = http_get(f"{worker.url}/inventory/{sku}/{wh}")
            checked += 1
            if status != 200 or body.get("onHandQty") != qty or body.get("version", 0) < 1:
                wrong.append((sku, wh, qty, status, body))
    if wrong:
        raise AssertionError(f"{len(wrong)} of {checked} sampled positions are not as loaded, e.g. {wrong[:3]}")
    return checked


def changelog_read_s(log_path: Path) -> float | None:
    """The part of recovery that reads the changelogs, from Faust's log lines (None when the
    log does not show both): the rest of start -> ready is imports, start-up, the rebalance."""
    stamps: dict[str, datetime] = {}
    marks = {
        "start": "Recovery]: Restoring state from changelog topics",
        "end": "Recovery]: Done reading from changelog",
    }
    for line in log_path.read_text(errors="replace").splitlines():
        for name, mark in marks.items():
            if mark in line and name not in stamps and line.startswith("["):
                stamps[name] = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
    if len(stamps) < 2:
        return None
    return (stamps["end"] - stamps["start"]).total_seconds()


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all the machine's CPUs so far (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_pct(since: tuple[int, int]) -> float:
    """How busy the whole machine was (all CPUs, every process) since ``since``, in %: on a
    shared machine this says how much of the wall time was the worker waiting for a core."""
    busy, total = machine_cpu()
    return round(100 * (busy - since[0]) / max(1, total - since[1]), 1)


def folder_mib(path: Path) -> float:
    """Disk space used by a folder (allocated blocks, as du counts them)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total / 2**20


def verify_placement(partitions: int, warehouses: int, seed: int, progress: Progress) -> dict[str, Any]:
    """Bulk-load a few SKUs, then receive units for one SKU of every partition through the
    pipeline: each must show loaded + received units at version 2 (see the module doc)."""
    from connectors.produce import EventPublisher
    from schemas.inputs import GoodsReceived, ReceivedLine

    inventory = Inventory(sku_codes(60), warehouse_codes(warehouses), seed)
    chosen: dict[int, str] = {}
    for sku in inventory.skus:
        chosen.setdefault(partition_for(sku.encode(), partitions), sku)
    received = 7
    wh = inventory.warehouses[0]
    d = Deployment("scv", partitions)
    try:
        loaded = bulk_load(d, inventory, set(chosen.values()), progress)
        t_start = time.monotonic()
        worker = d.start_worker()
        ready_s = wait_ready(worker, 180) - t_start
        publisher = EventPublisher(d.settings)
        publisher.publish(
            GoodsReceived(
                event_id="scale-verify-rc",
                occurred_at=ORDERS_AT,
                receipt_no="RC-SCALE-VERIFY",
                warehouse_code=wh,
                lines=[ReceivedLine(sku=sku, sellable_qty=received) for sku in chosen.values()],
            )
        )
        report = publisher.flush()
        if report.failed:
            raise RuntimeError(f"not published: {report.failed}")
        answers: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until every answer moved from the loaded record
            answers = {sku: http_get(f"{worker.url}/inventory/{sku}/{wh}")[1] for sku in chosen.values()}
            if all(
                a and (a.get("version") != 1 or a.get("onHandQty") != loaded["expected"][sku][wh])
                for sku, a in answers.items()
            ):
                break
            time.sleep(0.2)
        wrong = {
            sku: a
            for sku, a in answers.items()
            if not a or a.get("onHandQty") != loaded["expected"][sku][wh] + received or a.get("version") != 2
        }
        if wrong:
            raise AssertionError(f"bulk-loaded records not found where the stock agent reads them: {wrong}")
        progress.done(
            f"placement verified: a receipt for {len(chosen)} SKUs (one per partition) landed on "
            f"the bulk-loaded records; near-empty worker ready in {ready_s:.1f}s"
        )
        return {
            "skus_by_partition": {str(p): s for p, s in sorted(chosen.items())},
            "received_qty": received,
            "near_empty_ready_s": round(ready_s, 2),
            "near_empty_changelog_read_s": changelog_read_s(worker.log_path),
        }
    finally:
        d.close()


def run_size(positions: int, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    whs = warehouse_codes(args.warehouses)
    skus = sku_codes(-(-positions // len(whs)))
    inventory = Inventory(skus, whs, args.seed)
    rng = random.Random(args.seed + 1)
    sample = set(rng.sample(skus, min(args.sample, len(skus)))) | set(skus[:3])  # + the most popular
    # Validate the record shape against the pure core before loading it by the hundred thousand.
    first_sku, first_on_hand = next(iter(inventory.on_hand()))
    check_against_core(build_stock(first_sku, first_on_hand))
    orders = order_workload(args.seed, args.orders, skus)
    print(
        f"== {inventory.positions:,} positions ({len(skus):,} SKUs x {len(whs)} warehouses), {len(orders):,} orders",
        flush=True,
    )
    d = Deployment("scale", args.partitions)
    try:
        loaded = bulk_load(d, inventory, sample, progress)
        preload_s = publish(d.settings, orders, progress)

        t_start = time.monotonic()
        machine_at_start = machine_cpu()
        worker = d.start_worker()
        t_ready = wait_ready(worker, args.timeout)
        busy_recovery = busy_pct(machine_at_start)
        recovery_s = t_ready - t_start
        assert worker.proc is not None
        pid = worker.proc.pid
        recovery_cpu = cpu_seconds(pid)
        rss_recovered = peak_rss_mb(pid)
        read_s = changelog_read_s(worker.log_path)
        progress.done(
            f"worker recovered and ready in {recovery_s:.2f}s (changelog read {read_s}s, "
            f"CPU {recovery_cpu:.1f}s, peak RSS {rss_recovered:.0f} MiB)"
        )

        # The drain: from the first input event counted to everything processed. Events the
        # worker took before the first poll saw them are left out of both count and time.
        t0 = c0 = cpu0 = None
        machine_at_t0 = machine_cpu()
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            consumed, done = drained(d, len(orders))
            now = time.monotonic()
            if consumed and t0 is None:
                t0, c0, cpu0 = now, consumed, cpu_seconds(pid)
                machine_at_t0 = machine_cpu()
            if t0 is not None:
                progress.show(
                    f"drain {consumed:,.0f}/{len(orders):,} orders, {(consumed - c0) / max(1e-3, now - t0):,.0f}/s"
                )
            if done:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"not drained within {args.timeout}s; log:\n{worker.log_tail()}")
        assert t0 is not None and c0 is not None and cpu0 is not None
        drain_s = time.monotonic() - t0
        busy_drain = busy_pct(machine_at_t0)
        timed = len(orders) - c0
        cpu = cpu_seconds(pid) - cpu0
        progress.done(
            f"drained {len(orders):,} orders in {drain_s:.2f}s ({timed / drain_s:,.0f}/s, {timed:,.0f} timed)"
        )
        checked = check_positions(worker, loaded["expected"])
        keys = table_keys(worker)
        result = {
            "positions": inventory.positions,
            "skus": len(skus),
            "warehouses": len(whs),
            "partitions": args.partitions,
            "changelog_records": loaded["records"],
            "changelog_mib": loaded["value_mib"],
            "load_s": loaded["seconds"],
            "load_records_per_s": round(loaded["records"] / loaded["seconds"]),
            "orders": len(orders),
            "preload_s": round(preload_s, 2),
            "recovery_s": round(recovery_s, 2),
            "changelog_read_s": read_s,
            "changelog_records_per_s": round(loaded["records"] / read_s) if read_s else None,
            "recovery_cpu_s": round(recovery_cpu, 2),
            "machine_busy_recovery_pct": busy_recovery,
            "rss_after_recovery_mib": round(rss_recovered, 1),
            "drain_s": round(drain_s, 2),
            "timed_events": int(timed),
            "events_per_s": round(timed / drain_s, 1),
            "cpu_s_per_1000_events": round(1000 * cpu / max(1, timed), 3),
            "machine_busy_drain_pct": busy_drain,
            "peak_rss_mib": round(peak_rss_mb(pid), 1),
            "rocksdb_mib": round(folder_mib(d.root / "worker0"), 1),
            "stock_table_keys_estimate": keys.get("stock-state"),
            "sampled_positions_checked": checked,
        }
        worker.stop()  # a clean shutdown flushes RocksDB: measure the folder as it stays
        result["rocksdb_mib_after_stop"] = round(folder_mib(d.root / "worker0"), 1)
        print(json.dumps(result), flush=True)
        return result
    finally:
        d.close(keep_logs=args.keep_logs)


# --- reporting -----------------------------------------------------------------------------

COLUMNS = (
    ("positions", "positions", "{:,.0f}"),
    ("changelog_records", "SKU records", "{:,.0f}"),
    ("load_s", "bulk load s", "{:.1f}"),
    ("recovery_s", "start -> ready s", "{:.1f}"),
    ("changelog_read_s", "changelog read s", "{:.1f}"),
    ("recovery_cpu_s", "recovery CPU s", "{:.1f}"),
    ("events_per_s", "events/s", "{:,.0f}"),
    ("cpu_s_per_1000_events", "CPU s/1k events", "{:.2f}"),
    ("peak_rss_mib", "peak RSS MiB", "{:,.0f}"),
    ("rocksdb_mib", "RocksDB MiB after drain", "{:,.1f}"),
    ("rocksdb_mib_after_stop", "after stop", "{:,.1f}"),
    ("machine_busy_recovery_pct", "machine busy % (recovery)", "{:.0f}"),
    ("machine_busy_drain_pct", "(drain)", "{:.0f}"),
)


def markdown_table(runs: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---:|" * len(COLUMNS)]
    for r in runs:
        lines.append("| " + " | ".join(f.format(r[k]) for k, _, f in COLUMNS) + " |")
    return "\n".join(lines)


def summarise(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """One size's trials -> the median of every figure, with the range of the two that the
    chart shows (a shared machine makes single runs noisy)."""
    out: dict[str, Any] = {"trials": len(trials)}
    for name, first in trials[0].items():
        values = [t[name] for t in trials if t[name] is not None]
        if isinstance(first, (int, float)) and not isinstance(first, bool) and values:
            out[name] = round(statistics.median(values), 3)
        else:
            out[name] = first
    for name in ("recovery_s", "events_per_s"):
        out[f"{name}_range"] = [min(t[name] for t in trials), max(t[name] for t in trials)]
    return out


def chart(runs: list[dict[str, Any]], baseline_s: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def spread(name: str) -> list[list[float]]:
        return [[r[name] - r[f"{name}_range"][0] for r in runs], [r[f"{name}_range"][1] - r[name] for r in runs]]

    xs = [r["positions"] for r in runs]
    trials = runs[0]["trials"]
    fig, (rec, thr) = plt.subplots(1, 2, figsize=(11.5, 4.4))
    rec.errorbar(
        xs,
        [r["recovery_s"] for r in runs],
        yerr=spread("recovery_s"),
        fmt="o-",
        capsize=4,
        label="process start -> ready",
    )
    reads = [(x, r["changelog_read_s"]) for x, r in zip(xs, runs, strict=True) if r["changelog_read_s"]]
    if reads:
        rec.plot(*zip(*reads, strict=True), "s--", label="of which: reading the changelog")
    rec.plot(xs, [r["recovery_cpu_s"] for r in runs], "^:", label="worker CPU seconds to ready")
    if baseline_s is not None:
        rec.axhline(baseline_s, color="grey", linestyle=":", label=f"near-empty worker ({baseline_s:.1f} s)")
    rec.set(
        xscale="log",
        xlabel="positions (SKU x warehouse)",
        ylabel="seconds",
        title=f"State recovery (median of {trials}, bars: range)",
    )
    rec.set_ylim(bottom=0)
    rec.legend(loc="upper left", fontsize=8)
    thr.errorbar(
        xs,
        [r["events_per_s"] for r in runs],
        yerr=spread("events_per_s"),
        fmt="o-",
        capsize=4,
        color="tab:green",
        label="orders/s",
    )
    thr.set(
        xscale="log",
        xlabel="positions (SKU x warehouse)",
        ylabel="orders/s",
        title=f"Throughput: one worker drains {int(runs[0]['orders']):,} orders",
    )
    thr.set_ylim(0, 1.2 * max(r["events_per_s_range"][1] for r in runs))
    cpu = thr.twinx()
    cpu.plot(xs, [r["cpu_s_per_1000_events"] for r in runs], "d:", color="tab:red", label="CPU s per 1,000 orders")
    cpu.set_ylabel("CPU s per 1,000 orders", color="tab:red")
    cpu.set_ylim(0, 1.3 * max(r["cpu_s_per_1000_events"] for r in runs))
    handles = thr.get_legend_handles_labels()[0] + cpu.get_legend_handles_labels()[0]
    thr.legend(handles, [h.get_label() for h in handles], loc="lower left", fontsize=8)
    for ax in (rec, thr):
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--orders", type=int, default=5_000, help="orders drained at each size")
    parser.add_argument("--warehouses", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--sample", type=int, default=40, help="SKUs read back through the web view")
    parser.add_argument(
        "--repeat", type=int, default=3, help="trials per size (the sizes interleaved), summarised by their median"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for recovery, and for the drain")
    parser.add_argument("--skip-verify", action="store_true", help="skip the partition check on a small deployment")
    parser.add_argument("--keep-logs", action="store_true", help="keep the workers' logs")
    parser.add_argument("--no-save", action="store_true", help="print only: no results file, no chart")
    args = parser.parse_args(argv)
    progress = Progress()
    started = time.monotonic()
    verify = None if args.skip_verify else verify_placement(args.partitions, args.warehouses, args.seed, progress)
    sizes = sorted(args.positions)
    trials: dict[int, list[dict[str, Any]]] = {p: [] for p in sizes}
    for n in range(args.repeat):  # interleaved, so a busy spell of the machine is not one size's
        for p in sizes:
            print(f"-- trial {n + 1}/{args.repeat}", flush=True)
            trials[p].append(run_size(p, args, progress))
    runs = [summarise(trials[p]) for p in sizes]
    total_s = time.monotonic() - started
    print()
    print(markdown_table(runs))
    print(f"\nwhole run: {total_s / 60:.1f} min")
    if args.no_save:
        return 0
    out = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "note": "shared machine: other work was running",
        },
        "orders": args.orders,
        "seed": args.seed,
        "verify": verify,
        "runs": runs,
        "trials": {str(p): t for p, t in trials.items()},
        "total_s": round(total_s, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    chart(runs, verify["near_empty_ready_s"] if verify else None, DOCS / "scale.png")
    print(f"saved {RESULTS / 'scale.json'} and {DOCS / 'scale.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
