"""A fix for faust-streaming 0.15.3 that at-least-once delivery depends on.

Before committing input offsets, Faust flushes the producer: ``Producer.flush()`` calls
``ProducerBuffer.flush()``, which must not return while table changelog records are still
buffered. In 0.15.3 it can:

* ``flush_atmost(None)`` returns as soon as one 0.1 s wait for progress times out, with
  messages still in the buffer (under load the buffer holds hundreds: "producer buffer full");
* a message the background task has popped from the queue but not yet handed to the driver
  is not counted at all.

Either way the consumer commits offsets of events whose changelog records are not in Kafka
yet, and a crash at that moment loses state for good (found by
tests/integration/test_pipeline_recovery.py). The fix: count the message in hand, and flush
until the queue is empty and nothing is in hand, however long that takes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.producer import ProducerBuffer

_PATCHED = "_inventory_flush_fix"


async def _send_pending_counted(self: Any, fut: Any) -> None:
    # Runs synchronously up to its first await, right after the queue handed ``fut`` over,
    # so no flush can observe the message as neither queued nor in hand.
    self._in_hand = getattr(self, "_in_hand", 0) + 1
    try:
        await _original_send_pending(self, fut)
    finally:
        self._in_hand -= 1
        self.message_sent.set()


async def _flush_everything(self: Any) -> None:
    while self.size or getattr(self, "_in_hand", 0):
        if self.state != "running" and self.size:
            raise RuntimeError("Cannot flush: Producer not Running")
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=0.1)
        except TimeoutError:
            continue  # keep waiting: a commit must never overtake the changelog


_original_send_pending = ProducerBuffer._send_pending


def apply() -> None:
    """Install the fix (idempotent)."""
    if getattr(ProducerBuffer, _PATCHED, False):
        return
    ProducerBuffer._send_pending = _send_pending_counted  # type: ignore[method-assign]
    ProducerBuffer.flush = _flush_everything  # type: ignore[method-assign]
    setattr(ProducerBuffer, _PATCHED, True)


def resume_buffered_partitions(app: Any, interval_s: float = 1.0) -> None:
    """Second fix: partitions paused for buffer pressure must come back.

    When an agent's channel buffer is under pressure, Faust takes the partitions that feed it
    out of the fetcher (``Consumer.on_buffer_full``) and puts them back from a pressure-drop
    callback on the queue (``on_buffer_drop``). With an agent fed by several topics under a
    backlog (a restart after a crash), that callback can be lost and a partition then never
    fetches again (tests/integration/test_pipeline_recovery.py stalled on the orders topic
    with offsets 22 of 228 committed, forever). Every ``interval_s`` the timer re-activates
    the paused ones: a queue still under pressure pauses them again on its next message, and
    the conductor blocks rather than drops, so nothing is lost.
    """

    @app.timer(interval=interval_s)
    async def _resume_buffered_partitions() -> None:
        consumer = app.consumer
        for tp in list(getattr(consumer, "_buffered_partitions", ())):
            consumer.on_buffer_drop(tp)
