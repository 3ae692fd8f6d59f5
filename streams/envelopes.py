"""Envelopes: a transaction's internal messages, one record per destination partition.

A transaction of partition ``p`` of a table (``source`` = ``<table>|<p>``) takes the next number
of that partition's sequence (kept in its head record, streams/stores.py); the internal messages
it sends (stock commands, reservation answers) go into one ``Envelope`` per destination
partition (murmur2 of each message's key, where it would have landed alone), numbered with it;
outputs for the outside world stay one record each. A receiver applies an envelope once: it keeps
the highest number applied per source (``w|``, in the same transaction) and skips any at or below
it. That needs each source's envelopes in order with none missing: one idempotent producer, and
after a crash or rebalance the new owner re-sends every unacknowledged one, in order, before
anything new (the outbox, ``Outbox``). Why: docs/decisions.md ("Envelopes and an outbox").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from aiokafka.partitioner import murmur2 as _untyped_murmur2

from schemas.codec import encode
from schemas.internal import Envelope
from tables.state import OutRecord

_murmur2: Callable[[bytes], int] = _untyped_murmur2  # aiokafka is untyped


@lru_cache(maxsize=65_536)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives ``key``."""
    return (_murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass
class Outgoing:
    """What one transaction sends, in the order it was decided: outputs for the outside world
    one record each, internal messages gathered into envelopes (``records``)."""

    partitions: int
    # (Envelope, topic) -> bytes: the deployment's framing (streams/wire.py); single-object here
    encode_envelope: Callable[[Envelope, str], bytes] = lambda obj, topic: encode(obj, topic=topic)
    _outputs: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    _internal: dict[tuple[str, int], list[bytes]] = field(default_factory=dict)
    size: int = 0

    def output(self, topic: str, key: bytes, value: bytes) -> None:
        self._outputs.append((topic, key, value))
        self.size += len(value)

    def internal(self, topic: str, key: bytes, value: bytes) -> None:
        self._internal.setdefault((topic, partition_for(key, self.partitions)), []).append(value)
        self.size += len(value)

    def __bool__(self) -> bool:
        return bool(self._outputs or self._internal)

    def records(self, source: str, seq: int) -> list[OutRecord]:
        """The transaction's records: its envelopes first (numbered ``seq``), then its outputs."""
        out = []
        for (topic, partition), items in self._internal.items():
            envelope = Envelope.model_construct(source=source, seq=seq, items=items)
            out.append(OutRecord(topic, source.encode(), self.encode_envelope(envelope, topic), partition))
        out += [OutRecord(topic, key, value) for topic, key, value in self._outputs]
        return out

    def clear(self) -> None:
        self._outputs.clear()
        self._internal.clear()
        self.size = 0
