"""Measure the Quix peer on a preloaded workload, the way the benchmark harness drives it.

    .venv/bin/python -m bench.peer_quix.measure [--events 50000] [-- PEER ARGS...]

Runs under the main venv: it creates a deployment of its own (topic prefix, partitions),
preloads receipts then orders of 1-3 lines over a few hundred Zipf-popular SKUs through our
``EventPublisher``, then starts ``.venv-quix/bin/python -m bench.peer_quix.app`` with the
harness's CLI and reads the stats file it writes. Appends the result to
bench/peer_quix/results.jsonl and deletes every topic it or the peer created.
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.peer_quix.topics import TopicNames
from config.settings import Settings
from schemas.base import Event
from streams.kafka_config import admin_config
from streams.topics import Topics, create_topics

ROOT = Path(__file__).resolve().parents[2]
PEER_PYTHON = ROOT / ".venv-quix" / "bin" / "python"
RESULTS = Path(__file__).resolve().parent / "results.jsonl"


def workload(seed: int, events: int, skus: int, warehouses: int) -> list[Event]:
    """One receipt per (SKU, warehouse), ample stock, then orders of 1-3 lines, 1-3 units each,
    no warehouse named (the stock step chooses), SKU popularity Zipf-like."""
    from schemas.inputs import Consignee, GoodsReceived, OrderCreated, OrderItem, ReceivedLine

    rng = random.Random(seed)
    codes = [f"SKU{i:05d}" for i in range(skus)]
    whs = [f"WH{i + 1:03d}" for i in range(warehouses)]
    weights = [1 / (rank + 1) for rank in range(skus)]
    at = datetime(2025, 11, 22, 8, 0, tzinfo=UTC)
    out: list[Event] = [
        GoodsReceived(
            event_id=f"rc-{wh}-{sku}",
            occurred_at=at,
            receipt_no=f"RC-{wh}-{sku}",
            warehouse_code=wh,
            lines=[ReceivedLine(sku=sku, sellable_qty=1_000_000)],
        )
        for wh in whs
        for sku in codes
    ]
    consignee = Consignee(name="张三", phone="13800138000", address="北京市朝阳区XX街道XX号")
    for n in range(events - len(out)):
        lines = sorted(set(rng.choices(codes, weights, k=rng.randint(1, 3))))
        out.append(
            OrderCreated(
                event_id=f"oc-{n}",
                occurred_at=at + timedelta(milliseconds=n),
                order_no=f"BO{n:08d}",
                order_type="NORMAL",
                consignee=consignee,
                time_requirement="STANDARD",
                items=[OrderItem(sku=s, quantity=rng.randint(1, 3), price=10) for s in lines],
                total_amount=10,
            )
        )
    return out


def publish(settings: Settings, events: list[Event]) -> float:
    from connectors.produce import EventPublisher

    started = time.monotonic()
    publisher = EventPublisher(settings)
    for event in events:
        publisher.publish(event)
    report = publisher.flush(120)
    if report.failed:
        raise RuntimeError(f"not published: {report.failed[:3]}")
    return time.monotonic() - started


def delete_topics(settings: Settings, group: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(admin_config(settings))
    own_prefix = TopicNames.of(settings.topic_prefix).order_inbox.removesuffix("order-inbox")
    existing = admin.list_topics(timeout=30).topics
    names = [t for t in existing if t in Topics(settings).all() or t.startswith(own_prefix) or f"__{group}--" in t]
    for future in admin.delete_topics(names, operation_timeout=60).values():
        try:
            future.result()
        except Exception:  # noqa: BLE001 - best effort on a shared broker
            pass


def measure(args: argparse.Namespace, peer_args: list[str]) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    settings = Settings(topic_prefix=f"pqbench{tag}.", app_id=f"pqbench-{tag}", partitions=args.partitions)
    group = f"pqbench-{tag}"
    events = workload(args.seed, args.events, args.skus, args.warehouses)
    create_topics(settings)
    try:
        preload_s = publish(settings, events)
        print(f"preloaded {len(events):,} events in {preload_s:.1f} s", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="peer-quix-") as tmp:
            stats_out = Path(tmp) / "stats.json"
            cmd = [
                str(PEER_PYTHON),
                "-m",
                "bench.peer_quix.app",
                "--bootstrap",
                settings.bootstrap_servers,
                "--topic-prefix",
                settings.topic_prefix,
                "--group",
                group,
                "--state-dir",
                str(Path(tmp) / "state"),
                "--expect",
                str(len(events)),
                "--stats-out",
                str(stats_out),
                *peer_args,
            ]
            started = time.monotonic()
            subprocess.run(cmd, cwd=ROOT, check=True, timeout=args.timeout)
            wall = time.monotonic() - started
            stats = json.loads(stats_out.read_text())
    finally:
        delete_topics(settings, group)
    seconds = stats["seconds"]
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "label": args.label,
        "peer_args": peer_args,
        "input_events": len(events),
        "skus": args.skus,
        "warehouses": args.warehouses,
        "partitions": args.partitions,
        "preload_s": round(preload_s, 2),
        "consumed": stats["consumed"],
        "produced": stats["produced"],
        "seconds": round(seconds, 2),
        "events_per_s": round(stats["events_per_s"], 1),
        "cpu_s": round(stats["cpu_s"], 2),
        "cpu_s_processing": round(stats["cpu_s_processing"], 2),
        "cpu_s_per_1000_events": round(1000 * stats["cpu_s_processing"] / stats["consumed"], 3),
        "peak_rss_mb": round(stats["peak_rss_mb"], 1),
        "process_wall_s": round(wall, 1),
        "orders_rejected": stats["orders_rejected"],
        "stop_reason": stats["stop_reason"],
        "errors": stats["errors"],
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="input events in all (receipts + orders)")
    parser.add_argument("--skus", type=int, default=300)
    parser.add_argument("--warehouses", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--label", default="")
    parser.add_argument("peer_args", nargs="*", help="after --: extra arguments for the peer")
    args = parser.parse_args(argv)
    result = measure(args, args.peer_args)
    print(json.dumps(result, indent=2))
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write(json.dumps(result, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
