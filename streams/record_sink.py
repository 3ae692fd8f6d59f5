"""Where the worker's records go: one librdkafka producer for outputs and table changelogs
(instead of Faust's aiokafka path: docs/performance.md, "Steps on the hot path").

Guarantees. *Order*: one idempotent producer, so records land per partition in the order sent;
outputs sent ``after_acknowledged`` a changelog partition are held until the broker has
acknowledged every record queued to it before them, then released in order. *Commit after
durability*: ``streams.faust_private.flush_also`` makes Faust's pre-commit flush wait for the
sink, and a record the broker refused fails it (``ProducerSendError``). *Placement*: keys are
partitioned with ``murmur2_random``, as Java and aiokafka do. *Nothing skipped*: records wait
out any outage (``message.timeout.ms=0``); one that can never be written is fatal: every later
flush raises and ``on_fatal`` is told once (the worker stops on it). A failure is never cleared.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from config.settings import Settings
from streams.kafka_config import producer_config
from streams.producer import produce

OnDelivered = Callable[[str, int, int], None]  # topic, partition, offset
Record = tuple[str, bytes | None, bytes | None, int | None]  # topic, key, value, partition
TopicPartition = tuple[str, int]


class RecordSink:
    def __init__(self, settings: Settings, **overrides: Any) -> None:
        from confluent_kafka import Producer

        self._start(
            Producer(
                producer_config(
                    settings,
                    **{
                        "linger.ms": 5,
                        "batch.num.messages": 10_000,
                        "queue.buffering.max.messages": 500_000,
                        "message.max.bytes": settings.record_max_bytes,
                        "message.timeout.ms": 0,  # wait out any outage; only a permanent error fails a record
                        **overrides,
                    },
                )
            )
        )

    @classmethod
    def over(cls, producer: Any) -> RecordSink:
        """A sink over a given producer (tests: a stand-in for librdkafka's)."""
        sink = cls.__new__(cls)
        sink._start(producer)
        return sink

    def _start(self, producer: Any) -> None:
        self._producer = producer
        self.failures: list[str] = []  # every record that could not be written, kept
        self.on_fatal: Callable[[str], None] | None = None
        self._watchers: dict[str, OnDelivered] = {}
        self.sent = 0
        # Per partition of a watched topic (the changelogs): records queued, records acknowledged.
        self._queued: dict[TopicPartition, int] = {}
        self._acked: dict[TopicPartition, int] = {}
        # Records held until a partition's acknowledged count reaches a target, in send order.
        self._held: deque[tuple[TopicPartition, int, list[Record]]] = deque()
        self._holding: list[Record] | None = None

    def watch(self, topic: str, on_delivered: OnDelivered) -> None:
        """Call ``on_delivered(topic, partition, offset)`` for each record of ``topic`` the
        broker acknowledged (tables keep their changelog offsets this way)."""
        self._watchers[topic] = on_delivered

    def _fail(self, failure: str) -> None:
        first = not self.failures
        self.failures.append(failure)
        if first and self.on_fatal is not None:
            self.on_fatal(failure)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._fail(f"{msg.topic()}[{msg.partition()}]: {err}")
            return
        watcher = self._watchers.get(msg.topic())
        if watcher is not None:
            tp = (msg.topic(), msg.partition())
            self._acked[tp] = self._acked.get(tp, 0) + 1
            watcher(msg.topic(), msg.partition(), msg.offset())

    @property
    def holding(self) -> bool:
        """Whether records wait for an acknowledgement (someone should ``poll``)."""
        return bool(self._held)

    @contextmanager
    def after_acknowledged(self, topic: str, partition: int) -> Iterator[None]:
        """Within this block, ``send`` holds its records until every record queued so far to
        ``partition`` of ``topic`` (a watched topic: a changelog) is acknowledged, and until
        the records held before them are released. They are released by ``poll``,
        ``flush`` and the next ``after_acknowledged``; nothing blocks."""
        tp = (topic, partition)
        target = self._queued.get(tp, 0)
        self._serve()
        if self._held or self._acked.get(tp, 0) < target:
            group: list[Record] = []
            self._held.append((tp, target, group))
            self._holding = group
        try:
            yield
        finally:
            self._holding = None

    def _release(self) -> None:
        """Send the held records whose acknowledgement came, in the order they were held."""
        held = self._held
        while held and not self.failures:
            tp, target, group = held[0]
            if self._acked.get(tp, 0) < target:
                return
            held.popleft()
            for topic, key, value, partition in group:
                self._produce(topic, key, value, partition)

    def _serve(self) -> None:
        self._producer.poll(0)
        self._release()

    def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        """Queue a record (or hold it: ``after_acknowledged``). One that can never be written
        (e.g. larger than ``record_max_bytes``) does not raise here: it is a failure (see the
        module), and the caller carries on."""
        if self._holding is not None:
            self._holding.append((topic, key, value, partition))
            return
        self._produce(topic, key, value, partition)

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None) -> None:
        from confluent_kafka import KafkaException

        try:
            produce(self._producer, topic, value, key, partition, self._on_delivery)
        except KafkaException as exc:  # refused before queueing: size, unknown topic, fatal state
            self._fail(f"{topic}[{partition if partition is not None else '?'}]: {exc.args[0]}")
            return
        self.sent += 1
        if partition is not None and topic in self._watchers:
            tp = (topic, partition)
            self._queued[tp] = self._queued.get(tp, 0) + 1
        if self.sent % 1000 == 0:
            self._producer.poll(0)

    def _raise_failures(self) -> None:
        if self.failures:
            from faust.exceptions import ProducerSendError

            raise ProducerSendError(f"{len(self.failures)} records not written, e.g. {self.failures[:3]}")

    def poll(self) -> None:
        """Serve queued delivery reports and log lines (on the event loop's thread), and send
        the held records whose acknowledgement came."""
        self._serve()

    def broker_metadata(self, topic: str, timeout_s: float) -> None:
        """Ask a broker for ``topic``'s metadata (a reachability probe; blocking: run it in
        an executor). Raises KafkaException when no broker answers within ``timeout_s``."""
        self._producer.list_topics(topic, timeout=timeout_s)

    async def flush(self) -> None:
        """Wait until every record sent so far, held ones included, is acknowledged (or raise)."""
        producer = self._producer
        self._serve()
        pause = 0.001
        while (len(producer) or self._held) and not self.failures:
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.05)  # 1 ms while records flow, 50 ms while the broker is away
            self._serve()
        self._raise_failures()

    def flush_blocking(self, timeout_s: float) -> bool:
        """At shutdown, outside the event loop: True when nothing is left unacknowledged."""
        deadline = time.monotonic() + timeout_s
        self._serve()
        while self._held and not self.failures and time.monotonic() < deadline:
            self._producer.poll(0.01)
            self._release()
        remaining = self._producer.flush(max(0.0, deadline - time.monotonic()))
        return remaining == 0 and not self._held and not self.failures
