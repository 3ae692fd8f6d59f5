"""The limit: a plain confluent-kafka consume -> produce loop, no processing.

Over the same preloaded input topics (the same records, so the same message sizes) it
reads every record and writes its bytes to an output topic, committing as it goes, in one
process: the most this machine's Kafka path carries for one Python worker.
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import Deployment, Progress, cpu_seconds, peak_rss_mb


def consume_produce(d: Deployment, inputs: int, progress: Progress, timeout_s: float = 300) -> dict[str, Any]:
    import os

    from confluent_kafka import Consumer, Producer

    from streams.kafka_config import consumer_config, producer_config

    t = d.topics
    out_topic = t.inventory_changes
    consumer = Consumer(consumer_config(d.settings, group_id=f"{d.settings.app_id}-limit",
                                        **{"fetch.min.bytes": 1, "enable.auto.commit": True,
                                           "auto.commit.interval.ms": 1000}))
    producer = Producer(producer_config(d.settings, **{"linger.ms": 5, "batch.num.messages": 10_000}))
    consumer.subscribe([t.orders, t.shipments, t.stock_movements])
    pid = os.getpid()
    cpu0 = cpu_seconds(pid)
    seen = 0
    first = None
    deadline = time.monotonic() + timeout_s
    try:
        while seen < inputs and time.monotonic() < deadline:
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            for msg in batch:
                if msg.error():
                    continue
                if first is None:
                    first = time.monotonic()
                while True:
                    try:
                        producer.produce(out_topic, msg.value(), msg.key())
                        break
                    except BufferError:
                        producer.poll(0.01)
                seen += 1
            producer.poll(0)
            if first is not None:
                progress.show(f"limit {seen:,}/{inputs:,}")
        producer.flush(30)
        elapsed = time.monotonic() - (first or time.monotonic())
    finally:
        consumer.close()
    progress.done(f"limit: {seen:,} records consumed and produced in {elapsed:.2f}s")
    return {
        "input_events": seen, "seconds": round(elapsed, 3), "events_per_s": round(seen / max(elapsed, 1e-9), 1),
        "cpu_s_per_1000_events": round(1000 * (cpu_seconds(pid) - cpu0) / max(seen, 1), 3),
        "peak_rss_mb": round(peak_rss_mb(pid), 1),
    }
