"""The one producer wrapper (streams/producer.py): a full local queue is waited out by serving
delivery reports, for as long as the caller allows; a refusal is the caller's at once."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from streams.producer import produce


class FullFor:
    """A producer whose queue is full for its first ``full`` attempts."""

    def __init__(self, full: int) -> None:
        self.full, self.polls, self.queued = full, 0, []

    def produce(self, topic: str, **kw: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("Local: Queue full")
        self.queued.append((topic, kw))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0


def test_a_full_queue_is_waited_out_by_serving_reports() -> None:
    producer = FullFor(3)
    produce(producer, "t", b"v", b"k")
    assert producer.polls == 3
    assert producer.queued == [("t", {"value": b"v", "key": b"k", "on_delivery": None})]


def test_a_partition_is_passed_only_when_chosen() -> None:
    producer = FullFor(0)
    report = print
    produce(producer, "t", b"v", b"k", 2, report)
    assert producer.queued == [("t", {"value": b"v", "key": b"k", "partition": 2, "on_delivery": report})]


def test_without_room_within_wait_s_the_buffer_error_is_the_callers() -> None:
    producer = FullFor(10**9)
    with pytest.raises(BufferError):
        produce(producer, "t", b"v", wait_s=0)
    assert producer.polls == 0  # never waits: the webhook's case (it runs on the event loop)
    real = Producer({"bootstrap.servers": "127.0.0.1:1", "queue.buffering.max.messages": 1})
    produce(real, "t", b"v")
    with pytest.raises(BufferError):
        produce(real, "t", b"v", wait_s=0.05)  # nothing is ever delivered: no broker there
    real.purge()


def test_a_refused_record_raises_at_once() -> None:
    class Refusing(FullFor):
        def produce(self, topic: str, **kw: Any) -> None:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))

    producer = Refusing(0)
    with pytest.raises(KafkaException):
        produce(producer, "t", b"v" * 10)
    assert producer.polls == 0
