"""The one builder of dead letters: a bounded record that points at the one it replaces.

A dead letter must always be writable, whatever the record it stands for: it carries at most
``excerpt_bytes`` of the record's key and value, with the value's full size and SHA-256 and
the record's topic, partition and offset, so that an operator can find the original (it is
still in its topic until retention) without the dead letter ever reaching the broker's record
limit. Its Kafka key is the original key when that is short, else the key's SHA-256.

:class:`LatestDeadLetters` keeps the newest few a worker wrote, for its dashboard.
"""

from __future__ import annotations

import hashlib
from collections import deque
from datetime import datetime
from typing import Any

from schemas.outputs import DeadLetter

KEY_LIMIT = 1024  # a dead letter's own Kafka key


def dead_letter_of(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error_type: str,
    error: str,
    failed_at: datetime,
    excerpt_bytes: int,
) -> DeadLetter:
    truncated = (key is not None and len(key) > excerpt_bytes) or (value is not None and len(value) > excerpt_bytes)
    return DeadLetter.model_construct(
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key=None if key is None else key[:excerpt_bytes],
        payload=None if value is None else value[:excerpt_bytes],
        error_type=error_type,
        error=error[:4096],
        failed_at=failed_at,
        payload_size=0 if value is None else len(value),
        payload_sha256=None if value is None else hashlib.sha256(value).hexdigest(),
        truncated=truncated,
    )


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The dead letter's Kafka key: the original's, or its SHA-256 when that is long."""
    if key is None or len(key) <= KEY_LIMIT:
        return key
    return hashlib.sha256(key).hexdigest().encode()


ERROR_SHOWN = 1000  # characters of a dead letter's error shown on the dashboard


def dead_letter_json(letter: DeadLetter) -> dict[str, Any]:
    """What the dashboard shows of a dead letter: where the record was, why it failed, and how
    to find it (its key as text, its size and SHA-256); not its payload."""
    return {
        "sourceTopic": letter.source_topic,
        "sourcePartition": letter.source_partition,
        "sourceOffset": letter.source_offset,
        "errorType": letter.error_type,
        "error": letter.error[:ERROR_SHOWN],
        "failedAt": letter.failed_at.isoformat(),
        "key": None if letter.key is None else letter.key[:200].decode("utf-8", "replace"),
        "payloadSize": letter.payload_size,
        "payloadSha256": letter.payload_sha256,
    }


class LatestDeadLetters:
    """The ``capacity`` newest dead letters written (their JSON), newest first."""

    def __init__(self, capacity: int) -> None:
        self._kept: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.written = 0  # since start, kept or not

    def add(self, letter: DeadLetter) -> None:
        self.written += 1
        if self._kept.maxlen:
            self._kept.appendleft(dead_letter_json(letter))

    def latest(self, limit: int | None = None) -> list[dict[str, Any]]:
        kept = list(self._kept)
        return kept if limit is None else kept[:limit]
