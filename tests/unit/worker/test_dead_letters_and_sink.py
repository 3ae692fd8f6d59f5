"""A dead letter always fits under the broker's record limit and points at its record; the
record sink never forgets a record it could not write (no commit may pass it again)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import decode, encode
from streams.dead_letters import KEY_LIMIT, dead_letter_key, dead_letter_of

AT = datetime(2026, 12, 7, tzinfo=UTC)


@given(
    key=st.one_of(st.none(), st.binary(max_size=3000)),
    value=st.one_of(st.none(), st.binary(max_size=5000)),
    excerpt=st.integers(0, 2048),
)
def test_a_dead_letter_is_bounded_and_points_at_its_record(
    key: bytes | None, value: bytes | None, excerpt: int
) -> None:
    letter = dead_letter_of("orders", 3, 42, key, value, "DECODE", "e" * 10_000, AT, excerpt)
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("orders", 3, 42)
    assert len(letter.error) <= 4096
    if value is None:
        assert (letter.payload, letter.payload_size, letter.payload_sha256) == (None, 0, None)
    else:
        assert letter.payload == value[:excerpt] and letter.payload_size == len(value)
        assert letter.payload_sha256 == hashlib.sha256(value).hexdigest()
    assert letter.key == (None if key is None else key[:excerpt])
    assert letter.truncated == (
        (key is not None and len(key) > excerpt) or (value is not None and len(value) > excerpt)
    )
    assert decode(encode(letter)) == letter  # it encodes under its contract
    k = dead_letter_key(key)
    assert k is None or len(k) <= KEY_LIMIT


def test_a_one_megabyte_record_makes_a_small_dead_letter() -> None:
    big = b"\x00" * 1_000_000
    letter = dead_letter_of("orders", 0, 7, b"k" * 100_000, big, "DECODE", "not avro", AT, 16_384)
    assert len(encode(letter)) < 40_000
    assert letter.truncated and letter.payload_size == 1_000_000


class _FakeProducer:
    def __init__(self) -> None:
        self.queued: list[tuple[object, ...]] = []

    def produce(self, topic: str, value: bytes | None, key: bytes | None, **kw: object) -> None:
        from confluent_kafka import KafkaError, KafkaException

        if value is not None and len(value) > 100:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.queued.append((topic, key, value, kw))

    def poll(self, _: float) -> int:
        return 0

    def __len__(self) -> int:
        return 0


def _sink() -> object:
    from streams.record_sink import RecordSink

    return RecordSink.over(_FakeProducer())


def test_a_record_the_broker_refuses_fails_every_later_flush_and_is_reported_once() -> None:
    import asyncio

    from faust.exceptions import ProducerSendError

    sink = _sink()
    told: list[str] = []
    sink.on_fatal = told.append
    sink.send("out", b"k", b"ok")
    asyncio.run(sink.flush())  # nothing failed yet
    sink.send("out", b"k", b"x" * 500)  # refused before queueing
    sink._on_delivery(SimpleNamespace(), SimpleNamespace(topic=lambda: "out", partition=lambda: 1))  # refused later
    for _ in range(3):  # sticky: no later commit may pass the records that were never written
        with pytest.raises(ProducerSendError, match="2 records not written"):
            asyncio.run(sink.flush())
    assert len(told) == 1 and "out" in told[0]
