"""The limit: a plain confluent-kafka consume -> produce loop, no processing.

Over the same preloaded input topics it reads every record and writes its bytes to an output
topic, committing as it goes: the most this machine's Kafka path carries for one Python process.
It runs in a process of its own for at least ``min_seconds``; ``amplify`` first copies the
preloaded records (raw bytes, same partition) up to ``min_records``, and a partition read to its
end early is read again from its start (the copies keep those seeks, a fetch round trip each,
rare). Returns the figures and the wall-clock window (``t0``/``t1``, ``time.time()``), so that
the broker's CPU is measured over the same window.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import signal
import time
from typing import Any

from bench.harness import Deployment, Progress
from streams.producer import produce


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _loop(
    settings: Any, inputs: list[str], output: str, min_seconds: float, timeout_s: float, out: Any, counter: Any
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from confluent_kafka import Consumer, Producer, TopicPartition

    from streams.kafka_config import consumer_config, producer_config

    consumer = Consumer(
        consumer_config(
            settings,
            group_id=f"{settings.app_id}-limit",
            **{"fetch.min.bytes": 1, "enable.auto.commit": True, "auto.commit.interval.ms": 1000},
        )
    )
    producer = Producer(producer_config(settings, **{"linger.ms": 5, "batch.num.messages": 10_000}))
    meta = consumer.list_topics(timeout=30).topics
    # Each partition's offsets, so that reaching its end is seen on its last record (no wait
    # for an end-of-partition fetch) and it is sought back to its start at once: the input is
    # written once, by a plain producer, so its offsets are contiguous.
    marks = {
        (t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)
        for t in inputs
        for p in meta[t].partitions
    }
    records = sum(high - low for low, high in marks.values())
    consumer.assign([TopicPartition(t, p, low) for (t, p), (low, high) in marks.items() if high > low])
    seen = 0
    first: float | None = None
    first_wall = cpu0 = 0.0
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and (first is None or time.monotonic() - first < min_seconds):
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is not None:
                    continue
                if first is None:
                    first, first_wall, cpu0 = time.monotonic(), time.time(), _cpu()
                produce(producer, output, msg.value(), msg.key())
                seen += 1
                tp = (msg.topic(), msg.partition())
                low, high = marks[tp]  # type: ignore[index]
                if (msg.offset() or 0) + 1 >= high:
                    consumer.seek(TopicPartition(tp[0], tp[1], low))
            producer.poll(0)
            counter.value = seen
        left = producer.flush(30)
        elapsed = time.monotonic() - (first or time.monotonic())
        out.put(
            {
                "consumed": seen,
                "passes": round(seen / max(records, 1), 2),
                "seconds": elapsed,
                "cpu_s": _cpu() - cpu0,
                "t0": first_wall,
                "t1": first_wall + elapsed,
                "unflushed": left,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    finally:
        consumer.close()


def amplify(settings: Any, topics: list[str], min_records: int) -> int:
    """Append copies of the topics' records (same partition, key and value) until they hold at
    least ``min_records`` in all. Returns how many records they hold."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

    from streams.kafka_config import consumer_config, producer_config

    consumer = Consumer(
        consumer_config(
            settings,
            group_id=f"{settings.app_id}-amplify",
            **{"enable.partition.eof": True, "enable.auto.commit": False},
        )
    )
    meta = consumer.list_topics(timeout=30).topics
    parts = [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in meta[t].partitions]
    pending = {(tp.topic, tp.partition) for tp in parts}
    records: list[tuple[str, int, bytes | None, bytes | None]] = []
    consumer.assign(parts)
    try:
        while pending:
            for msg in consumer.consume(num_messages=10_000, timeout=1.0):
                err = msg.error()
                if err is None:
                    records.append((msg.topic(), msg.partition(), msg.key(), msg.value()))  # type: ignore[arg-type]
                elif err.code() == KafkaError._PARTITION_EOF:
                    pending.discard((msg.topic(), msg.partition()))
    finally:
        consumer.close()
    if not records:
        return 0
    producer = Producer(producer_config(settings, **{"linger.ms": 20, "batch.num.messages": 10_000}))
    total = len(records)
    while total < min_records:
        for topic, partition, key, value in records:
            produce(producer, topic, value, key, partition)
        total += len(records)
    if producer.flush(120):
        raise RuntimeError("the limit's input copies were not all acknowledged")
    return total


def consume_produce(
    d: Deployment, progress: Progress, min_seconds: float = 10.0, timeout_s: float = 300, on_start: Any = None
) -> dict[str, Any]:
    """Run the loop in a fresh process over ``d``'s input topics into its inventory-changes."""
    t = d.topics
    ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited Kafka clients or threads
    out, seen = ctx.Queue(), ctx.Value("q", 0)
    child = ctx.Process(
        target=_loop,
        args=(
            d.settings,
            [t.orders, t.shipments, t.stock_movements],
            t.inventory_changes,
            min_seconds,
            timeout_s,
            out,
            seen,
        ),
        daemon=True,
    )
    child.start()
    if on_start is not None and child.pid is not None:
        on_start(child.pid)
    try:
        while child.is_alive() and out.empty():
            progress.show(f"limit: {seen.value:,} records consumed and produced")
            time.sleep(0.2)
        result: dict[str, Any] = out.get(timeout=60)
    finally:
        child.join(timeout=30)
        if child.is_alive():
            os.kill(child.pid or 0, signal.SIGKILL)
    progress.done(
        f"limit: {result['consumed']:,} records consumed and produced in {result['seconds']:.1f}s "
        f"({result['passes']} passes over the input)"
    )
    return result
