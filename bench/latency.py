"""End-to-end latency at a fixed input rate: OrderCreated produced -> its OrderStatusChanged.

A child process publishes orders at ``rate`` per second (through the pipeline's own
producer path); the parent reads the orders topic and the order-status topic and pairs, by
orderNo, the input record's timestamp (set by the producing client) with the first status
record's timestamp (set by the worker's producer). Both clocks are this machine's.
This is the seed's "order push" path: order agent -> stock agent -> order agent.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import Deployment, Progress, percentile


def _publish_at_rate(settings: Any, rate: float, seconds: float, skus: int, seed: int, tag: str, sent: Any) -> None:
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
    while True:
        due = started + n / rate
        now = time.monotonic()
        if now - started >= seconds:
            break
        if due > now:
            time.sleep(due - now)
        lines = sorted(set(rng.choices(codes, weights, k=rng.randint(1, 5))))
        publisher.publish(OrderCreated(
            event_id=f"lat-{tag}-{n}", occurred_at=at + timedelta(milliseconds=n), order_no=f"L{tag}{n:07d}",
            order_type="NORMAL", consignee=consignee, time_requirement="STANDARD",
            items=[OrderItem(sku=s, quantity=1, price=10) for s in lines], total_amount=10))
        n += 1
        sent.value = n
    publisher.flush()


def measure(d: Deployment, rate: float, seconds: float, skus: int, progress: Progress,
            settle_s: float = 30.0) -> dict[str, Any]:
    from confluent_kafka import Consumer

    from streams.kafka_config import consumer_config

    t = d.topics
    tag = f"{int(rate)}x{random.randrange(10**6):06d}"
    consumer = Consumer(consumer_config(d.settings, group_id=f"{d.settings.app_id}-lat-{tag}",
                                        **{"auto.offset.reset": "latest"}))
    consumer.subscribe([t.orders, t.order_status])
    while not consumer.assignment():  # subscribed before the first order is published
        consumer.poll(0.1)
    ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited Kafka clients or threads
    sent = ctx.Value("l", 0)
    child = ctx.Process(
        target=_publish_at_rate, args=(d.settings, rate, seconds, skus, 7, tag, sent), daemon=True)
    child.start()
    produced_at: dict[bytes, float] = {}
    latencies: list[float] = []
    answered: set[bytes] = set()
    prefix = f"L{tag}".encode()
    end = time.monotonic() + seconds + settle_s
    try:
        while time.monotonic() < end:
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                if msg.error() or not (msg.key() or b"").startswith(prefix):
                    continue
                _, ts = msg.timestamp()
                if msg.topic() == t.orders:
                    produced_at[msg.key()] = ts
                elif msg.key() not in answered and msg.key() in produced_at:
                    answered.add(msg.key())
                    latencies.append(ts - produced_at[msg.key()])
            progress.show(f"latency at {rate:,.0f}/s: {sent.value:,} sent, {len(latencies):,} answered")
            if not child.is_alive() and produced_at and len(answered) >= len(produced_at) >= sent.value:
                break
    finally:
        child.join(timeout=60)
        consumer.close()
    latencies.sort()
    unanswered = max(0, sent.value - len(latencies))
    result = {
        "offered_per_s": rate, "seconds": seconds, "orders": sent.value,
        "published_per_s": round(sent.value / seconds, 1), "answered": len(latencies),
        "unanswered_after_settle": unanswered,
        "p50_ms": round(percentile(latencies, 50), 1), "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(latencies[-1], 1) if latencies else None,
    }
    progress.done(f"latency at {rate:,.0f}/s: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                  f"{unanswered} unanswered")
    return result
