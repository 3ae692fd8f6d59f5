"""Where the worker's records go: one librdkafka producer for outputs and table changelogs.

Faust sends through aiokafka, one Python-level request per message behind its own buffer; a
drain profile showed that path (Topic.publish_message, the producer buffer, aiokafka's
accumulator and sender, socket writes) taking about a third of a worker's time while the core
took 5%. The sink hands the same records to confluent-kafka (librdkafka, in C): one call per
record, batching and retries off the event loop's thread.

Guarantees kept:

* Order. Everything a message writes (its table changelog records, then its outputs) goes
  through this one idempotent producer, so per partition the records land in the order sent.
* Commit after durability. Faust flushes its producer before it commits input offsets;
  ``streams.faust_fixes.flush_also`` makes that flush wait for the sink too, and a record the
  broker refused fails the flush (``ProducerSendError``), so the commit never passes it.
* Keys land where Faust would put them: the producer partitions with ``murmur2_random``,
  the Java and aiokafka partitioner (streams/kafka_config.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from config.settings import Settings
from streams.kafka_config import producer_config

OnDelivered = Callable[[str, int, int], None]  # topic, partition, offset


class RecordSink:
    def __init__(self, settings: Settings, **overrides: Any) -> None:
        from confluent_kafka import Producer

        self._producer = Producer(producer_config(settings, **{
            "linger.ms": 5,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 500_000,
            **overrides,
        }))
        self.failures: list[str] = []
        self._watchers: dict[str, OnDelivered] = {}
        self.sent = 0

    def watch(self, topic: str, on_delivered: OnDelivered) -> None:
        """Call ``on_delivered(topic, partition, offset)`` for each record of ``topic`` the
        broker acknowledged (tables keep their changelog offsets this way)."""
        self._watchers[topic] = on_delivered

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failures.append(f"{msg.topic()}[{msg.partition()}]: {err}")
            return
        watcher = self._watchers.get(msg.topic())
        if watcher is not None:
            watcher(msg.topic(), msg.partition(), msg.offset())

    def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        produce = self._producer.produce
        while True:
            try:
                if partition is None:
                    produce(topic, value, key, on_delivery=self._on_delivery)
                else:
                    produce(topic, value, key, partition=partition, on_delivery=self._on_delivery)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.01)
        self.sent += 1
        if self.sent % 1000 == 0:
            self._producer.poll(0)

    def _raise_failures(self) -> None:
        if self.failures:
            from faust.exceptions import ProducerSendError

            failures, self.failures = self.failures, []
            raise ProducerSendError(f"{len(failures)} records not written, e.g. {failures[:3]}")

    async def flush(self) -> None:
        """Wait until every record sent so far is acknowledged (or raise)."""
        producer = self._producer
        producer.poll(0)
        while len(producer):
            await asyncio.sleep(0.001)
            producer.poll(0)
        self._raise_failures()

    def flush_blocking(self, timeout_s: float) -> bool:
        """At shutdown, outside the event loop: True when nothing is left unacknowledged."""
        remaining = self._producer.flush(timeout_s)
        return remaining == 0 and not self.failures
