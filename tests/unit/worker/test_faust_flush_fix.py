"""Faust's producer buffer must not report "flushed" while changelog records are pending."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer

from streams import faust_private

SLOW_SEND_S = 0.3  # longer than Faust's 0.1 s wait for progress


class _SlowChannel:
    def __init__(self, published: list[str]) -> None:
        self.published = published

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(SLOW_SEND_S)
        self.published.append(fut.name)


async def _flush_with_pending(buffer_flush: Any, count: int) -> tuple[int, int]:
    """Queue ``count`` slow messages, flush, and say how many were published by then."""
    published: list[str] = []
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
    await buffer.start()
    try:
        channel = _SlowChannel(published)
        for i in range(count):
            buffer.put(SimpleNamespace(name=f"m{i}", message=SimpleNamespace(channel=channel)))
        await asyncio.sleep(0)  # let the background task take the first one
        await buffer_flush(buffer)
        return len(published), count
    finally:
        while len(published) < count:  # let the buggy flush's leftovers drain before stopping
            await asyncio.sleep(0.05)
        await buffer.stop()


def test_unpatched_flush_returns_with_messages_still_pending() -> None:
    """The upstream bug this project works around (fails if upstream fixes it: drop the fix)."""
    original_flush = faust_private.upstream(ProducerBuffer, "flush")
    published, queued = asyncio.run(_flush_with_pending(original_flush, 3))
    assert published < queued


def test_patched_flush_waits_for_every_message() -> None:
    faust_private.install()
    published, queued = asyncio.run(_flush_with_pending(ProducerBuffer.flush, 3))
    assert published == queued
