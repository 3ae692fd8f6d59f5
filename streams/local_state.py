"""After an unclean shutdown: keep each table partition's local RocksDB that provably is not
ahead of its changelog, delete the others.

``reconcile_after_crash(settings)`` runs before Faust opens the stores. For every local
partition database of a declared table it either keeps it, lowering Faust's recorded changelog
offset where needed so that the restore re-reads all the local copy may lack, or deletes it
(Faust restores it from the changelog alone), and logs one line with the decision and reason.
Kept iff the local redo record ``h|`` is among the changelog's heads, searched from the second
head at or before the recorded offset to the end. A kept partition, once restored and redone
(streams/app.py ``redo_once``), holds exactly what a restore from the changelog alone gives.
The proof and what it assumes: docs/decisions.md ("Restart bounded by state").
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from config.settings import Settings
from streams.faust_private import PERSISTED_OFFSET_KEY, local_partition_db_paths
from streams.keys import HEAD
from streams.topics import TABLES, Topics

CHUNK = 2_000  # records read per step back from the local offset
KAFKA_DELETE_RETENTION_MS = 86_400_000  # Kafka's default delete.retention.ms

# (start, end) -> the changelog records with start <= offset < end: (offset, key, value)
ReadRange = Callable[[int, int], Iterable[tuple[int, bytes | None, bytes | None]]]


@dataclass(frozen=True)
class LocalPartition:
    """One table partition's local database and what it recorded."""

    table: str
    partition: int
    path: Path
    head: bytes | None  # its h| record: the last transaction it holds
    offset: int | None  # Faust's recorded changelog offset (restore resumes after it)


@dataclass(frozen=True)
class Verdict:
    keep: bool
    reason: str
    restore_after: int | None = None  # the offset Faust must resume after (kept only)
    missing_from: int | None = None  # the first later transaction Kafka holds (kept only; None: none)


def partition_paths(data_dir: Path) -> Iterator[tuple[str, int, Path]]:
    """(table, partition, path) of every local partition database of a declared table."""
    for table, partition, path in local_partition_db_paths(data_dir):
        if table in TABLES:
            yield table, partition, path


def _open(path: Path, read_only: bool) -> Any:
    import rocksdict

    access = rocksdict.AccessType.read_only() if read_only else rocksdict.AccessType.read_write()
    return rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True), access_type=access)


def read_local(table: str, partition: int, path: Path) -> LocalPartition:
    """The partition's head and recorded offset (None where absent)."""
    db = _open(path, read_only=True)
    try:
        head, raw = db.get(HEAD), db.get(PERSISTED_OFFSET_KEY)
    finally:
        db.close()
    return LocalPartition(table, partition, path, head, None if raw is None else int(raw))


def set_local_offset(path: Path, offset: int) -> None:
    """Record ``offset`` as the changelog offset Faust resumes after."""
    db = _open(path, read_only=False)
    try:
        db[PERSISTED_OFFSET_KEY] = str(offset).encode()
    finally:
        db.close()


def judge(local: LocalPartition, low: int, high: int, read: ReadRange, chunk: int = CHUNK) -> Verdict:
    """Keep or delete one partition, given its changelog's log start ``low`` and end ``high``
    and a reader of its records (see the module docstring for the proof)."""
    head, offset = local.head, local.offset
    if head is None:  # every transaction writes one, and every restore reads one first
        return Verdict(False, "empty: no transaction recorded locally")
    if offset is None:
        return Verdict(False, "no changelog offset recorded locally (a restore reads it all anyway)")
    if offset >= high:
        return Verdict(False, f"its changelog offset {offset} is past the changelog's end {high} (recreated?)")
    if offset < low - 1:
        return Verdict(False, f"its changelog offset {offset} precedes the log start {low}")
    # Back from the recorded offset, up to the second head at or before it.
    found: int | None = None
    heads_seen = 0
    end = offset + 1
    while end > low and heads_seen < 2:
        start = max(low, end - chunk)
        heads = [(o, v) for o, k, v in read(start, end) if k == HEAD]
        for o, v in reversed(heads):
            heads_seen += 1
            if v == head:
                found = o  # the earliest match wins: restoring from earlier is always safe
            if heads_seen == 2:
                break
        end = start
    if found is None:  # then forward: this store's transactions acknowledged after the offset
        for o, k, v in read(offset + 1, high):
            if k == HEAD and v == head:
                found = o
                break
    if found is None:
        return Verdict(False, "its last transaction is not in the changelog: the local store is ahead of Kafka")
    restore_after = min(offset, found)
    missing_from = next((o for o, k, _ in read(found + 1, high) if k == HEAD), None)
    where = "the changelog's last" if missing_from is None else f"behind later ones from offset {missing_from}"
    return Verdict(
        True,
        f"its last transaction is in the changelog at offset {found}, {where}; the restore reads offsets "
        f"{restore_after + 1}..{high - 1}",
        restore_after,
        missing_from,
    )


class ChangelogReader:
    """Reads ranges of changelog partitions with one confluent-kafka consumer (no group
    membership: partitions are assigned, nothing is committed)."""

    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        from confluent_kafka import Consumer

        from streams.kafka_config import consumer_config

        self._consumer = Consumer(
            consumer_config(
                settings,
                group_id=f"{settings.app_id}-state-check",
                # Only records already written are read: a fetch left waiting at the end of a
                # partition for new ones (500 ms by default) would delay every next request.
                **{"enable.partition.eof": True, "fetch.wait.max.ms": 10},
            )
        )
        self._settings = settings
        self._retention: dict[str, int] = {}
        self.timeout_s = timeout_s
        self.records_read = 0

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        from confluent_kafka import TopicPartition

        low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
        return int(low), int(high)

    def read(
        self, topic: str, partition: int, start: int, end: int
    ) -> Iterator[tuple[int, bytes | None, bytes | None]]:
        """Records with ``start <= offset < end`` (a compacted topic has holes)."""
        for msg in self._messages(topic, partition, start, end):
            yield msg.offset(), msg.key(), msg.value()

    def timestamp_ms(self, topic: str, partition: int, offset: int) -> int | None:
        """The timestamp of the record at ``offset`` (None if there is none)."""
        for msg in self._messages(topic, partition, offset, offset + 1):
            return int(msg.timestamp()[1])
        return None

    def delete_retention_ms(self, topic: str) -> int:
        """How long the topic keeps a tombstone once its segment is cleanable."""
        from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

        from streams.kafka_config import admin_config

        if topic not in self._retention:
            admin = AdminClient(admin_config(self._settings))  # held until the answer is in
            resource = ConfigResource(ResourceType.TOPIC, topic)
            try:
                config = admin.describe_configs([resource])[resource].result(timeout=10)
                self._retention[topic] = int(config["delete.retention.ms"].value)
            except Exception:  # noqa: BLE001 - unreadable: Kafka's default
                self._retention[topic] = KAFKA_DELETE_RETENTION_MS
        return self._retention[topic]

    def _messages(self, topic: str, partition: int, start: int, end: int) -> Iterator[Any]:
        import time

        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        if start >= end:
            return
        consumer = self._consumer
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + self.timeout_s
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.2)  # returns as soon as a record is there (consume() waits out its timeout)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return
                    raise KafkaException(error)
                offset = msg.offset()
                if offset is None:  # typed optional by the client; a fetched record has one
                    continue
                if offset < start:
                    continue  # fetched for an earlier assignment
                if offset >= end:
                    return
                self.records_read += 1
                yield msg
                if offset >= end - 1:
                    return
                deadline = time.monotonic() + self.timeout_s
            raise TimeoutError(f"{topic}[{partition}]: nothing read from offset {start} for {self.timeout_s}s")
        finally:
            consumer.unassign()

    def close(self) -> None:
        self._consumer.close()


def reconcile_after_crash(
    settings: Settings,
    say: Callable[[str], None] = print,
    reader: Any = None,
    now_ms: int | None = None,
) -> list[tuple[LocalPartition, Verdict]]:
    """Keep or delete every local table partition after an unclean shutdown (see above).

    One more reason to delete: a kept store behind later transactions whose first one is
    older than the changelog's ``delete.retention.ms``. Compaction may have removed the
    tombstones among them, and a restore from the local offset would then keep keys that
    were deleted (a full restore never sees those keys at all)."""
    found = list(partition_paths(settings.data_dir))
    if not found:
        return []
    import time

    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    topics = Topics(settings)
    reader = reader or ChangelogReader(settings)
    decisions = []
    try:
        for table, partition, path in found:
            try:
                local = read_local(table, partition, path)
            except Exception as exc:  # noqa: BLE001 - unreadable: nothing can be proven of it
                local, verdict = (
                    LocalPartition(table, partition, path, None, None),
                    Verdict(False, f"unreadable: {exc}"),
                )
            else:
                topic = topics.changelog(table)
                try:
                    low, high = reader.watermarks(topic, partition)
                    verdict = judge(local, low, high, partial(reader.read, topic, partition))
                    if verdict.keep and verdict.missing_from is not None:
                        written = reader.timestamp_ms(topic, partition, verdict.missing_from)
                        retention = reader.delete_retention_ms(topic)
                        if written is not None and now_ms - written > retention:
                            verdict = Verdict(
                                False,
                                f"it is behind transactions from {(now_ms - written) / 3.6e6:.1f} h "
                                f"ago, more than the changelog's delete.retention.ms ({retention} ms): "
                                "deletes it missed may have been compacted away",
                            )
                except Exception as exc:  # noqa: BLE001 - an unreadable changelog proves nothing
                    verdict = Verdict(False, f"its changelog could not be read: {type(exc).__name__}: {exc}")
            if verdict.keep:
                assert verdict.restore_after is not None
                if verdict.restore_after != local.offset:
                    set_local_offset(path, verdict.restore_after)
                say(f"{table}[{partition}]: local state kept: {verdict.reason}")
            else:
                shutil.rmtree(path)
                say(f"{table}[{partition}]: local state deleted, restored from the changelog alone: {verdict.reason}")
            decisions.append((local, verdict))
    finally:
        reader.close()
    return decisions
