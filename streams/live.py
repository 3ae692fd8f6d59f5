"""Live feed for the dashboard: output topics -> Server-Sent Events subscribers.

A background thread tails inventory-changes, inventory-alerts and order-status from their
end (no consumer group, nothing committed), so every worker can show the whole network's
changes, whichever worker produced them. The thread starts with the first subscriber and
stops when the last one leaves.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from config.settings import Settings
from schemas.codec import CodecError
from streams.kafka_config import consumer_config
from streams.topics import Topics
from streams.wire import RegistryUnavailable, Wire

EVENT_NAMES = {"InventoryChanged": "inventory", "InventoryAlert": "alert", "OrderStatusChanged": "order"}
QUEUE_LIMIT = 1000  # a slow browser loses the oldest events, never stalls the feed


class LiveFeed:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics(settings)
        self.subscribers: set[asyncio.Queue[tuple[str, str]]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def subscribe(self) -> asyncio.Queue[tuple[str, str]]:
        self.loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self.subscribers.add(queue)
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._tail, name="live-feed", daemon=True)
            self._thread.start()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[tuple[str, str]]) -> None:
        self.subscribers.discard(queue)
        if not self.subscribers:
            self._stop.set()

    def publish(self, event: str, data: Any) -> None:
        """Hand an event to every subscriber (from any thread)."""
        if self.loop is None:
            return
        payload = json.dumps(data, ensure_ascii=False, default=str)
        self.loop.call_soon_threadsafe(self._fan_out, event, payload)

    def _fan_out(self, event: str, payload: str) -> None:
        for queue in list(self.subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait((event, payload))

    def _tail(self) -> None:
        from confluent_kafka import OFFSET_END, Consumer, TopicPartition

        consumer = Consumer(consumer_config(self.settings, group_id=f"{self.settings.app_id}-live"))
        names = [self.topics.inventory_changes, self.topics.inventory_alerts, self.topics.order_status]
        metadata = consumer.list_topics(timeout=10)
        consumer.assign(
            [
                TopicPartition(name, p, OFFSET_END)
                for name in names
                if name in metadata.topics
                for p in metadata.topics[name].partitions
            ]
        )
        wire = Wire(self.settings)
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.25)
                if msg is None or msg.error():
                    continue
                value = msg.value()
                if value is None:
                    continue  # a tombstone: nothing to show
                try:
                    record = wire.decode(value, validate=False)
                except (CodecError, RegistryUnavailable):
                    continue
                name = EVENT_NAMES.get(type(record).__name__)
                if name:
                    self.publish(name, record.model_dump(mode="json", by_alias=True))
        finally:
            consumer.close()


class ThroughputMeter:
    """Input events per second, from the worker's own counters, sampled on demand."""

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None

    def sample(self, total_in: int) -> float:
        now = time.monotonic()
        last, self._last = self._last, (now, total_in)
        if last is None or now <= last[0]:
            return 0.0
        return (total_in - last[1]) / (now - last[0])
