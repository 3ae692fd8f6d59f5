"""Micro-benchmark of the pure core: commands per second on one core, no I/O.

Run: ``python bench/core_bench.py`` (``make bench-core``); ``--profile`` adds the cProfile
hotspots of the mixed stream. It prints and writes ``bench/results/core_bench.json`` and asserts
nothing. Target: >= 100,000 commands/s. Two paths, each with Python's cyclic garbage collector on
(the default; a long run's tables hold many objects and its full passes cost as much as the core)
and off (as ``timeit`` does): a *mixed stream*, a realistic day (~1000 SKUs x 3 warehouses)
submitted event by event to ``InventoryCenter.submit``, each internal message counted as one
command, its shipments following the allocations an untimed planning run made; and *raw
ReserveStock*, ``apply_stock(view, ReserveStock)`` plus the table write on pre-built commands.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import platform
import pstats
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schemas.base import Event  # noqa: E402
from schemas.inputs import (  # noqa: E402
    Consignee,
    Delivered,
    GoodsReceived,
    InboundAnnounced,
    OrderCreated,
    OrderItem,
    OrderShipped,
    OrderType,
    ReceivedLine,
    StockLine,
    TimeRequirement,
)
from schemas.internal import ReserveStock  # noqa: E402
from tables.center import InventoryCenter, MemoryTables  # noqa: E402
from tables.policy import CorePolicy  # noqa: E402
from tables.stock import apply_stock  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "core_bench.json"
T0 = datetime(2025, 11, 22, 8, 0, tzinfo=timezone(timedelta(hours=8)))
WAREHOUSES = ("WH001", "WH002", "WH003")
POLICY = CorePolicy(warehouse_priority=("WH002", "WH001", "WH003"), reorder_point=10)
CONSIGNEE = Consignee(name="张三", phone="13800138000", address="北京市朝阳区XX街道XX号")


class Stream:
    """Builds the input events, keeping a planning core in step to see allocations."""

    def __init__(self, skus: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.skus = [f"SKU{n:05d}" for n in range(skus)]
        self.core = InventoryCenter(POLICY)
        self.events: list[Event] = []
        self.now = T0
        self.n = 0
        self.to_ship: list[str] = []
        self.to_deliver: list[tuple[str, str]] = []

    def add(self, event: Event) -> None:
        self.core.submit(event)
        self.events.append(event)

    def next_id(self, prefix: str) -> str:
        self.n += 1
        self.now += timedelta(milliseconds=250)
        return f"{prefix}{self.n}"

    def receipt(self, warehouse: str, skus: list[str], qty: int) -> None:
        no = self.next_id("RCV")
        self.add(
            GoodsReceived(
                event_id=f"ev-{no}",
                occurred_at=self.now,
                receipt_no=no,
                warehouse_code=warehouse,
                lines=[ReceivedLine(sku=s, sellable_qty=qty) for s in skus],
            )
        )

    def asn(self) -> None:
        no = self.next_id("ASN")
        skus = self.rng.sample(self.skus, 5)
        self.add(
            InboundAnnounced(
                event_id=f"ev-{no}",
                occurred_at=self.now,
                asn_no=no,
                warehouse_code=self.rng.choice(WAREHOUSES),
                lines=[StockLine(sku=s, quantity=50) for s in skus],
            )
        )

    def order(self) -> None:
        no = self.next_id("OMS")
        lines = self.rng.sample(self.skus, self.rng.randint(1, 3))
        kind = self.rng.choices([OrderType.NORMAL, OrderType.GIFT, OrderType.PRESALE], [85, 5, 10])[0]
        self.add(
            OrderCreated(
                event_id=f"ev-{no}",
                occurred_at=self.now,
                order_no=no,
                order_type=kind,
                consignee=CONSIGNEE,
                items=[OrderItem(sku=s, quantity=self.rng.randint(1, 3), price=Decimal("9.90")) for s in lines],
                total_amount=Decimal("0"),
                time_requirement=TimeRequirement.STANDARD,
            )
        )
        order = self.core.order(no)
        if order is not None and order.outbound_issued:
            self.to_ship.append(no)

    def ship(self) -> None:
        order_no = self.to_ship.pop(self.rng.randrange(len(self.to_ship)))
        order = self.core.order(order_no)
        assert order is not None
        by_warehouse: dict[str, list[StockLine]] = {}
        for line in order.lines:
            assert line.warehouse_code is not None
            by_warehouse.setdefault(line.warehouse_code, []).append(StockLine(sku=line.sku, quantity=line.quantity))
        for warehouse, lines in sorted(by_warehouse.items()):
            no = self.next_id("SHP")
            self.add(
                OrderShipped(
                    event_id=f"ev-{no}",
                    occurred_at=self.now,
                    shipment_no=no,
                    order_no=order_no,
                    warehouse_code=warehouse,
                    lines=lines,
                    waybill_no=f"WB{no}",
                    carrier="SF",
                )
            )
            self.to_deliver.append((order_no, no))

    def deliver(self) -> None:
        order_no, shipment_no = self.to_deliver.pop(self.rng.randrange(len(self.to_deliver)))
        no = self.next_id("DLV")
        self.add(
            Delivered(
                event_id=f"ev-{no}",
                occurred_at=self.now,
                order_no=order_no,
                shipment_no=shipment_no,
                waybill_no=f"WB{shipment_no}",
            )
        )

    def build(self, events: int) -> list[Event]:
        for warehouse in WAREHOUSES:  # opening stock: every SKU in every warehouse
            for start in range(0, len(self.skus), 20):
                self.receipt(warehouse, self.skus[start : start + 20], self.rng.randint(20, 60))
        while len(self.events) < events:
            roll = self.rng.random()
            if roll < 0.45:
                self.order()
            elif roll < 0.72 and self.to_ship:
                self.ship()
            elif roll < 0.94 and self.to_deliver:
                self.deliver()
            elif roll < 0.97:
                self.asn()
            else:
                self.receipt(self.rng.choice(WAREHOUSES), self.rng.sample(self.skus, 10), 30)
        return self.events


def timed(fn: Callable[[], None], collector: bool) -> float:
    gc.collect()
    if not collector:
        gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def bench_stream(events: list[Event], repeat: int, collector: bool) -> dict[str, Any]:
    best = None
    for _ in range(repeat):
        core = InventoryCenter(POLICY)
        seconds = timed(lambda: [core.submit(e) for e in events], collector)
        if best is None or seconds < best[0]:
            best = (seconds, core.messages_processed, len(core.outputs))
    assert best is not None
    seconds, messages, outputs = best
    return {
        "input_events": len(events),
        "commands": messages,
        "outputs": outputs,
        "seconds": round(seconds, 4),
        "commands_per_s": round(messages / seconds),
        "events_per_s": round(len(events) / seconds),
        "us_per_command": round(seconds / messages * 1e6, 2),
    }


def reserve_commands(skus: int, n: int, seed: int) -> tuple[MemoryTables, list[ReserveStock]]:
    rng = random.Random(seed)
    tables = MemoryTables()
    stock = InventoryCenter(POLICY)
    names = [f"SKU{i:05d}" for i in range(skus)]
    for warehouse in WAREHOUSES:
        for start in range(0, skus, 50):
            stock.submit(
                GoodsReceived(
                    event_id=f"ev-{warehouse}-{start}",
                    occurred_at=T0,
                    receipt_no=f"R{start}",
                    warehouse_code=warehouse,
                    lines=[ReceivedLine(sku=s, sellable_qty=1_000_000) for s in names[start : start + 50]],
                )
            )
    tables.stock_by_sku = dict(stock.tables.stock_by_sku)
    commands = [
        ReserveStock.model_construct(
            command_id=f"ev-{i}|{sku}|reserve",
            sku=sku,
            occurred_at=T0,
            cause_event_type="OrderCreated",
            cause_event_id=f"ev-{i}",
            order_no=f"OMS{i}",
            order_type=OrderType.NORMAL,
            quantity=rng.randint(1, 3),
            warehouse_code=None,
        )
        for i, sku in enumerate(rng.choice(names) for _ in range(n))
    ]
    return tables, commands


def bench_reserve(skus: int, n: int, repeat: int, seed: int, collector: bool) -> dict[str, Any]:
    best = None
    for _ in range(repeat):
        tables, commands = reserve_commands(skus, n, seed)

        def run() -> None:
            for command in commands:
                tables.store_stock(apply_stock(tables, command, POLICY))

        seconds = timed(run, collector)
        best = seconds if best is None else min(best, seconds)
    assert best is not None
    return {
        "commands": n,
        "seconds": round(best, 4),
        "commands_per_s": round(n / best),
        "us_per_command": round(best / n * 1e6, 2),
    }


def profile(events: list[Event], top: int) -> str:
    core = InventoryCenter(POLICY)
    profiler = cProfile.Profile()
    profiler.enable()
    for event in events:
        core.submit(event)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000, help="input events in the mixed stream")
    parser.add_argument("--skus", type=int, default=1000)
    parser.add_argument("--reserves", type=int, default=100_000, help="ReserveStock commands, raw path")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts")
    parser.add_argument("--seed", type=int, default=20251122)
    parser.add_argument("--profile", action="store_true", help="print the cProfile hotspots of the stream")
    args = parser.parse_args()

    build_start = time.perf_counter()
    events = Stream(args.skus, args.seed).build(args.events)
    build_seconds = time.perf_counter() - build_start
    runs = {
        (path, collector): bench(collector)
        for collector in (True, False)
        for path, bench in (
            ("mixed_stream", lambda c: bench_stream(events, args.repeat, c)),
            ("raw_reserve_stock", lambda c: bench_reserve(args.skus, args.reserves, args.repeat, args.seed, c)),
        )
    }

    kinds: dict[str, int] = {}
    for e in events:
        kinds[e.event_type] = kinds.get(e.event_type, 0) + 1
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()} {platform.processor() or ''}".strip(),
        "skus": args.skus,
        "warehouses": len(WAREHOUSES),
        "stream_mix": dict(sorted(kinds.items())),
        "gc_default": {path: r for (path, collector), r in runs.items() if collector},
        "gc_off": {path: r for (path, collector), r in runs.items() if not collector},
        "target_commands_per_s": 100_000,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(
        f"core benchmark - Python {result['python']}, {args.skus} SKUs x {len(WAREHOUSES)} warehouses "
        f"(stream built in {build_seconds:.1f} s)"
    )
    print(
        f"{'path':<34}{'gc':>4}{'commands':>10}{'events':>9}{'seconds':>9}{'commands/s':>12}{'events/s':>10}"
        f"{'µs/cmd':>8}"
    )
    names = {"mixed_stream": "InventoryCenter.submit (mixed)", "raw_reserve_stock": "apply_stock(ReserveStock) + write"}
    for (path, collector), r in sorted(runs.items(), key=lambda kv: (kv[0][0], not kv[0][1])):
        events_n, events_s = r.get("input_events", "-"), r.get("events_per_s")
        print(
            f"{names[path]:<34}{'on' if collector else 'off':>4}{r['commands']:>10}{events_n:>9}"
            f"{r['seconds']:>9.3f}{r['commands_per_s']:>12,}{f'{events_s:,}' if events_s else '-':>10}"
            f"{r['us_per_command']:>8.2f}"
        )
    print(f"target >= 100,000 commands/s; mix: {result['stream_mix']}")
    print(f"written to {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    if args.profile:
        print(profile(events, 25))


if __name__ == "__main__":
    main()
