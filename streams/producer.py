"""Handing one record to a confluent-kafka producer whose local queue may be full.

``produce`` queues a record; while the producer's local queue is full (``BufferError``) it
serves delivery reports (``poll``: acknowledged records leave the queue) and tries again,
for up to ``wait_s`` (None: until there is room), after which the ``BufferError`` is the
caller's. A record the producer refuses outright (``KafkaException``: too large, unknown
topic, fatal state) is the caller's at once. Every producer of the project but the
transactions probe (bench/txn_probe.py) queues through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

POLL_S = 0.01  # longest wait for a delivery report while the queue is full (poll returns on one)


def produce(
    producer: Any,
    topic: str,
    value: bytes | None,
    key: bytes | None = None,
    partition: int | None = None,
    on_delivery: Callable[[Any, Any], None] | None = None,
    wait_s: float | None = None,
) -> None:
    """Queue one record (``partition`` None: the producer's partitioner chooses)."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while True:
        try:
            if partition is None:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            else:
                producer.produce(topic, value=value, key=key, partition=partition, on_delivery=on_delivery)
            return
        except BufferError:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            producer.poll(POLL_S)
