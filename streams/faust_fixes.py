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
from collections.abc import Awaitable, Callable
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


_also_flushed: list[Callable[[], Awaitable[None]]] = []


def flush_also(flush: Callable[[], Awaitable[None]]) -> None:
    """Make every producer flush (so every commit of input offsets) wait for ``flush`` too:
    records the worker writes outside Faust's producer (streams/record_sink.py)."""
    _also_flushed.append(flush)


async def _flush_everything(self: Any) -> None:
    for flush in _also_flushed:
        await flush()
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


async def _getmany_without_loss(self: Any, timeout: float) -> Any:
    """``Consumer.getmany`` that never drops fetched records.

    Third fix. Upstream, when flow control stops or the consumer generation changes in the
    middle of a fetched batch, the loop breaks and the rest of the batch is dropped; records
    of a partition no longer active are skipped too. The client's fetch position has already
    moved past them, so they are never read again while this worker lives: after a restart the
    whole backlog of a quiet topic arrives in one fetch, and its partitions went silent for
    good (the order agent stopped at offset 13 of 181 on every orders partition, reported
    "active"). Here each partition's records are delivered in order up to the first one that
    cannot be, and the partition is sought back to it, so the next fetch reads it again.
    """
    records, active_partitions = await self._wait_next_records(timeout)
    generation_id = self.app.consumer_generation_id
    if records is None or self.should_stop:
        return
    if not self.flow_active:
        await self.perform_seek()
        return
    undelivered: dict[Any, int] = {}  # tp -> offset of its first record not delivered
    to_message = self._to_message
    for tp, record in self.scheduler.iterate(records):
        if tp in undelivered:
            continue
        deliverable = (
            self.flow_active
            and self.app.consumer_generation_id == generation_id
            and (active_partitions is None or tp in active_partitions or tp in self._buffered_partitions)
        )
        if not deliverable:
            undelivered[tp] = record.offset
            continue
        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
        yield tp, to_message(tp, record)
    assigned = self.assignment()
    for tp, offset in undelivered.items():
        if tp in assigned:
            await self.seek(tp, offset)


def deliver_every_fetched_record() -> None:
    """Install the third fix (idempotent)."""
    from faust.transport.consumer import Consumer

    if getattr(Consumer, "_inventory_getmany_fix", False):
        return
    Consumer.getmany = _getmany_without_loss  # type: ignore[method-assign]
    Consumer._inventory_getmany_fix = True  # type: ignore[attr-defined]


def reread_stalled_partitions(
    app: Any, interval_s: float = 2.0, stall_s: float = 10.0, idle_stall_s: float = 60.0
) -> None:
    """Fourth fix, a watchdog: a partition whose commit is held by a lost record is read again.

    After a crash restart under backlog, faust-streaming 0.15.3 can lose records it fetched:
    ``_getmany_without_loss`` closes one path; another is the Fetcher's
    ``wait_first(callback(message), suspend_flow.wait())``, which abandons the hand-off to a
    full agent queue when flow is suspended and still marks the message read. Since gaps are
    not acknowledged (``never_ack_gaps``), a lost record holds the partition's commit.

    The watchdog seeks a partition back to its committed offset when

    * a hole holds its commit: offsets after the committed one were acknowledged but the
      committed one was not, and the commit has not moved for ``stall_s`` seconds; or
    * nothing at all was acknowledged past the committed offset for ``idle_stall_s`` while
      records are left to read (the lost record was the last one fetched).

    Holes are judged only while no commit is in flight (a commit takes the offsets it commits
    out of the acknowledged list before it has moved the committed offset). A commit that is
    merely slow (a backlog, a long producer flush) has no hole, so it does not trigger a re-read: rewinding there only multiplied the work (a drain benchmark read
    60% of its input twice). Records read again are applied once (the core keeps receipts),
    so a re-read can only cost duplicates, never state.
    """
    import logging
    import time

    log = logging.getLogger(__name__)
    last_seen: dict[Any, tuple[Any, float]] = {}  # tp -> (committed, since)

    @app.timer(interval=interval_s)
    async def _reread_stalled_partitions() -> None:
        consumer = app.consumer
        if not consumer.flow_active or app.rebalancing:
            last_seen.clear()
            return
        if consumer._commit_fut is not None:
            return  # a commit in flight has taken acknowledged offsets out of ``_acked``
        now = time.monotonic()
        for tp in list(consumer._active_partitions or ()):
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - not fetched yet
                continue
            committed = consumer._committed_offset.get(tp)
            if committed is None or highwater is None or committed >= highwater:
                last_seen.pop(tp, None)  # Faust commits past a hole before its first commit
                continue
            seen = last_seen.get(tp)
            if seen is None or seen[0] != committed:
                last_seen[tp] = (committed, now)
                continue
            acked = consumer._acked.get(tp)
            holed = bool(acked) and min(acked) > committed
            waited = now - seen[1]
            if (holed and waited >= stall_s) or (not acked and waited >= idle_stall_s):
                log.warning("partition %s: commit held at %s of %s (%s): reading again from there",
                            tp, committed, highwater, "a lost record" if holed else "nothing acknowledged")
                await consumer.seek(tp, committed)
                last_seen.pop(tp, None)


async def _no_gap_acks(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    """Offsets skipped by the fetcher are not acknowledged (fifth fix)."""
    return None


def never_ack_gaps() -> None:
    """Fifth fix: a jump in offsets is loss, not a gap to acknowledge.

    Faust acknowledges offsets the fetcher did not see (``Consumer._add_gap``), so commits can
    pass them: right for compacted or transactional topics, whose offsets have holes. The
    pipeline's input and internal topics are neither, so a jump there means records were
    lost inside Faust (an abandoned hand-off, see above), and acknowledging them made the loss
    permanent: the committed offset moved past them and no re-read could bring them back.
    Without it the commit stops at the first lost record, and ``reread_stalled_partitions``
    reads again from there. (Changelog reading during recovery does not commit offsets.)
    """
    from faust.transport.consumer import Consumer

    Consumer._add_gap = _no_gap_acks  # type: ignore[method-assign]


def _new_offset_stopping_at_holes(self: Any, tp: Any) -> int | None:
    """``Consumer._new_offset`` with its hole check corrected (sixth fix).

    The committed offset is the next offset to read. 0.15.3 refuses to commit only when
    ``min(acked) - committed > 1``, so a single missing record right at the committed offset
    (31 committed, 32.. acknowledged, 31 lost in the fetcher) was committed past and lost for
    good, and the check was skipped entirely while the committed offset was 0. Found by the
    SIGKILL test: one ReserveStock command never applied, its order PENDING forever. Within a
    partition an agent acknowledges in order, so any hole there is a lost record: stop the
    commit there and let ``reread_stalled_partitions`` read it again.
    """
    from faust.utils.functional import consecutive_numbers

    acked = self._acked[tp]
    if not acked:
        return None
    gap_for_tp = self._gap[tp]
    if gap_for_tp:  # empty while never_ack_gaps is installed; kept as upstream does it
        max_offset = max(acked)
        candidates = sorted(gap_for_tp.overlap(0, max_offset), key=lambda x: x.begin)
        if candidates:
            stuff_to_add: list[int] = []
            for entry in candidates:
                stuff_to_add.extend(range(entry.begin, entry.end))
            acked.extend(stuff_to_add)
            gap_for_tp.chop(0, max(stuff_to_add[-1], max_offset + 1))
    acked.sort()
    committed = self._committed_offset[tp]
    if committed is not None and acked[0] > committed:
        return None  # the record at the committed offset was never acknowledged
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    return batch[-1] + 1


def commit_never_passes_a_hole() -> None:
    """Install the sixth fix (idempotent)."""
    from faust.transport.consumer import Consumer

    Consumer._new_offset = _new_offset_stopping_at_holes  # type: ignore[method-assign]
