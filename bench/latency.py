"""End-to-end latency at a fixed input rate: OrderCreated produced -> its OrderStatusChanged,
and the search for the highest rate whose p99 stays under a limit.

``measure``: a child process publishes orders at ``rate``/s (the pipeline's own producer path);
the parent pairs, by orderNo, each input record's timestamp (producing client) with its first
status record's (worker's producer), both this machine's clock: the order -> stock -> order
path. A step stops early once more than 1% of its planned orders are late (its p99 can then only
be over ``limit_ms``), and waits for its orders (at most ``settle_s``) so the next starts with no
backlog. ``search``: pure bracketing over ``measure_at(rate)``: up by ``up`` while steps pass,
down by ``down`` while they fail, then geometric bisection to within ``precision`` or until the
steps run out; returns the highest passing rate measured, or None.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import random
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import Deployment, Progress, percentile


def _publish_at_rate(
    settings: Any, rate: float, seconds: float, skus: int, seed: int, tag: str, sent: Any, stop: Any
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from connectors.produce import EventPublisher
    from schemas.inputs import Consignee, OrderCreated, OrderItem

    publisher = EventPublisher(settings)
    rng = random.Random(seed)
    codes = [f"SKU{i:06d}" for i in range(skus)]
    weights = [1 / (rank + 1) for rank in range(skus)]
    consignee = Consignee(name="张三", phone="13800138000", address="北京市朝阳区XX街道XX号")
    at = datetime(2025, 11, 22, 12, 0, tzinfo=UTC)
    started = time.monotonic()
    n = 0
    while not stop.is_set():
        due = started + n / rate
        now = time.monotonic()
        if now - started >= seconds:
            break
        if due > now:
            time.sleep(due - now)
        lines = sorted(set(rng.choices(codes, weights, k=rng.randint(1, 5))))
        publisher.publish(
            OrderCreated(
                event_id=f"lat-{tag}-{n}",
                occurred_at=at + timedelta(milliseconds=n),
                order_no=f"L{tag}{n:07d}",
                order_type="NORMAL",
                consignee=consignee,
                time_requirement="STANDARD",
                items=[OrderItem(sku=s, quantity=1, price=10) for s in lines],
                total_amount=10,
            )
        )
        n += 1
        sent.value = n
    publisher.flush()


def passes(result: dict[str, Any], limit_ms: float) -> bool:
    """A step passes when every order was answered, it ran its course, and p99 < limit."""
    return (
        not result["aborted"]
        and result["unanswered_after_settle"] == 0
        and result["answered"] > 0
        and result["p99_ms"] < limit_ms
    )


def measure(
    d: Deployment,
    rate: float,
    seconds: float,
    skus: int,
    progress: Progress,
    settle_s: float = 30.0,
    limit_ms: float = 100.0,
    early_stop: bool = True,
) -> dict[str, Any]:
    from confluent_kafka import Consumer

    from streams.kafka_config import consumer_config

    t = d.topics
    tag = f"{int(rate)}x{random.randrange(10**6):06d}"
    consumer = Consumer(
        consumer_config(d.settings, group_id=f"{d.settings.app_id}-lat-{tag}", **{"auto.offset.reset": "latest"})
    )
    consumer.subscribe([t.orders, t.order_status])
    while not consumer.assignment():  # subscribed before the first order is published
        consumer.poll(0.1)
    ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited Kafka clients or threads
    sent, stop = ctx.Value("l", 0), ctx.Event()
    child = ctx.Process(
        target=_publish_at_rate, args=(d.settings, rate, seconds, skus, 7, tag, sent, stop), daemon=True
    )
    child.start()
    pending: dict[bytes, float] = {}  # published, not answered yet (insertion order ~ time order)
    latencies: list[float] = []
    answered: set[bytes] = set()
    early: dict[bytes, float] = {}  # status read before its order
    prefix = f"L{tag}".encode()
    budget = int(0.01 * rate * seconds)  # more late orders than this: p99 >= limit
    late = 0
    aborted_at: float | None = None
    began = time.monotonic()
    end = began + seconds + settle_s
    try:
        while time.monotonic() < end:
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                key = msg.key() or b""
                if msg.error() or not key.startswith(prefix):
                    continue
                _, ts = msg.timestamp()
                if key in answered:
                    continue
                if msg.topic() == t.orders:
                    if key in early:  # its status was read first (another partition's fetch)
                        status_ts, published_ts = early.pop(key), ts
                    else:
                        pending[key] = ts
                        continue
                elif key in pending:
                    status_ts, published_ts = ts, pending.pop(key)
                else:
                    early.setdefault(key, ts)
                    continue
                answered.add(key)
                latency = status_ts - published_ts
                latencies.append(latency)
                late += latency >= limit_ms
            waiting_late = 0
            horizon = time.time() * 1000 - limit_ms
            for ts in pending.values():
                if ts >= horizon or late + waiting_late > budget:
                    break
                waiting_late += 1
            if early_stop and aborted_at is None and late + waiting_late > budget:
                aborted_at = time.monotonic() - began
                stop.set()
                progress.done(
                    f"latency at {rate:,.0f}/s: over {limit_ms:g} ms for more than 1% of the orders "
                    f"after {aborted_at:.1f}s; stopped, waiting for the backlog"
                )
            progress.show(f"latency at {rate:,.0f}/s: {sent.value:,} sent, {len(latencies):,} answered")
            if not child.is_alive() and len(answered) >= sent.value and not pending:
                break
    finally:
        stop.set()
        child.join(timeout=60)
        consumer.close()
    latencies.sort()
    unanswered = max(0, sent.value - len(latencies))
    ran = aborted_at if aborted_at is not None else seconds
    result = {
        "offered_per_s": rate,
        "seconds": seconds,
        "ran_s": round(ran, 1),
        "orders": sent.value,
        "published_per_s": round(sent.value / max(ran, 1e-3), 1),
        "answered": len(latencies),
        "unanswered_after_settle": unanswered,
        "aborted": aborted_at is not None,
        "late_over_limit": late,
        "limit_ms": limit_ms,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(latencies[-1], 1) if latencies else None,
    }
    result["passed"] = passes(result, limit_ms)
    progress.done(
        f"latency at {rate:,.0f}/s: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"{unanswered} unanswered{' (stopped early)' if result['aborted'] else ''}"
        f" -> {'under' if result['passed'] else 'NOT under'} {limit_ms:g} ms"
    )
    return result


def search(
    measure_at: Callable[[float], dict[str, Any]],
    start: float,
    steps: int,
    up: float = 1.5,
    down: float = 0.6,
    precision: float = 1.15,
    floor: float = 5.0,
) -> tuple[float | None, list[dict[str, Any]]]:
    """(highest passing rate, every step's result) - see the module docstring."""
    lo: float | None = None
    hi: float | None = None
    rate = max(floor, round(start))
    done: list[dict[str, Any]] = []
    for _ in range(steps):
        result = measure_at(rate)
        done.append(result)
        if result["passed"]:
            lo = rate if lo is None else max(lo, rate)
        else:
            hi = rate if hi is None else min(hi, rate)
        if lo is None:
            assert hi is not None
            rate = round(hi * down)
            if rate < floor:
                break
        elif hi is None:
            rate = round(lo * up)
        else:
            if hi / lo <= precision:
                break
            rate = round(math.sqrt(lo * hi))
            if rate in (lo, hi):
                break
    return lo, done
