"""The durability order, in one place. A worker's writes become durable in these steps:

1. **Stage**: a partition's messages are applied in turn, their writes staged in its store.
2. **Commit**: numbered; outbox entry, redo record, writes -> changelog (the sink) -> RocksDB.
3. **Send**: its envelopes and outputs go to the sink, held until that changelog is acknowledged.
4. **Flush**: before Faust commits input offsets, every record handed to the sink is acknowledged.
5. **Release**: the outbox entries a flush covered go with a later transaction's writes; the
   acknowledged changelog offsets are recorded for Faust.
6. **Commit offsets**: Faust commits input offsets (streams/faust_private.py: never past a hole).
7. **Recover**: after an assignment, redo the last transaction, re-send kept outbox entries first.

A crash between two steps leaves a state a run without a crash also reaches (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faust.types import EventT

from streams import faults, faust_private
from streams.envelopes import Outgoing
from streams.record_sink import RecordSink
from streams.stores import FamilyStore
from tables.state import OutRecord

Destination = Callable[[bytes], tuple[str, str]]  # an encoded output -> (topic, key)


class ChangelogOffsets:
    """The last acknowledged offset of each changelog partition, written to Faust's store
    (what a restart resumes its restore after) once per flush rather than once per record. A
    recorded offset behind the local store only makes a restore re-read records it holds
    (idempotent), and streams/local_state.py searches forward from it."""

    def __init__(self) -> None:
        self._tables: dict[str, Any] = {}
        self._pending: dict[tuple[str, int], int] = {}

    def through(self, sink: RecordSink, table: Any) -> None:
        """Send ``table``'s changelog records through ``sink``, in the partition Faust chose."""
        name = table.changelog_topic.get_topic_name()
        self._tables[name] = table

        def send_changelog(partition: int, key: Any, value: Any) -> None:
            sink.send(name, key, value, partition=partition)

        faust_private.route_changelog(table, send_changelog)
        sink.watch(name, self.delivered)

    def delivered(self, topic: str, partition: int, offset: int) -> None:
        self._pending[(topic, partition)] = offset

    def write(self) -> None:
        """Record the offsets acknowledged since the last call."""
        from faust.types import TP

        pending, self._pending = self._pending, {}
        for (topic, partition), offset in pending.items():
            faust_private.set_persisted_offset(self._tables[topic], TP(topic, partition), offset)


def send_records(sink: RecordSink, records: Iterable[OutRecord], sent: Callable[[str], None] | None = None) -> None:
    for r in records:
        sink.send(r.topic, r.key, r.value, partition=None if r.partition < 0 else r.partition)
        if sent is not None:
            sent(r.topic)


def commit_then_send(
    store: FamilyStore, sink: RecordSink, changelog: str, outgoing: Outgoing, sent: Callable[[str], None] | None = None
) -> None:
    """Steps 2 and 3 for the open transaction of ``store``; ``outgoing`` is emptied; ``sent``
    counts each record by topic. Nothing here waits: the agent goes on with its next batch."""
    applied_envelope = store.applies_envelope
    records = store.commit(outgoing)
    faults.committed(store.name, records, sink, applied_envelope)  # test-only crash point (streams/faults.py)
    with sink.after_acknowledged(changelog, store.partition):
        send_records(sink, records, sent)
    outgoing.clear()


def by_partition(events: Iterable[EventT]) -> dict[int, list[EventT]]:
    """A batch's events grouped by partition, each group in arrival order."""
    groups: dict[int, list[EventT]] = {}
    for event in events:
        groups.setdefault(event.message.partition, []).append(event)
    return groups


class Checkpoint:
    """Steps 2-5 and 7 for the worker's stores (one per table), over one record sink."""

    def __init__(
        self,
        sink: RecordSink,
        stores: dict[str, FamilyStore],
        changelogs: dict[str, str],
        offsets: ChangelogOffsets,
        destination: Destination,
        sent: Callable[[str], None] | None = None,
    ) -> None:
        self.sink = sink
        self.stores = stores  # table name -> its store
        self.changelogs = changelogs  # table name -> its changelog topic
        self.offsets = offsets
        self.destination = destination
        self.sent = sent  # counts each record handed to the sink, by topic
        self._recovered: set[tuple[str, int]] = set()

    def commit(self, store: FamilyStore, outgoing: Outgoing) -> None:
        """Steps 2 and 3: the open transaction of ``store``."""
        commit_then_send(store, self.sink, self.changelogs[store.name], outgoing, self.sent)

    async def flush(self) -> None:
        """Steps 4 and 5 (Faust awaits this before it commits input offsets)."""
        marks = [(store, store.marks()) for store in self.stores.values()]
        await self.sink.flush()
        faults.flushed()  # test-only crash point (streams/faults.py)
        for store, mark in marks:
            store.flushed(mark)
        self.offsets.write()

    def assigned(self) -> None:
        """Partitions were assigned: every partition recovers again before its next batch,
        and what the stores knew of any partition is read again from its state."""
        self._recovered.clear()
        for store in self.stores.values():
            store.forget()

    def recover_once(self, store: FamilyStore) -> None:
        """Step 7 for the partition ``store`` has open, once per assignment."""
        marker = (store.name, store.partition)
        if marker in self._recovered:
            return
        self._recovered.add(marker)
        legacy, records = store.recover()
        with self.sink.after_acknowledged(self.changelogs[store.name], store.partition):
            for payload in legacy:  # a head written before outboxes: its outputs one by one
                name, key = self.destination(payload)
                self.sink.send(name, key.encode(), payload)
                if self.sent is not None:
                    self.sent(name)
            send_records(self.sink, records, self.sent)
