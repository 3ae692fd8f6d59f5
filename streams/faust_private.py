"""Every use of faust-streaming's private internals, for the one version this was written for.

``install()``: call once, before creating the ``faust.App``. It refuses (``UnsupportedFaust``:
the installed and supported versions, what to do) a faust-streaming not in
``SUPPORTED_VERSIONS``, or one whose private functions and attributes used here are missing or
take other parameters (``PRIVATE_CODE``); then installs the class-level patches (idempotent).
``flush_also``, ``resume_buffered_partitions``, ``reread_stalled_partitions``: the parts of the
fixes that need the worker's sink or app. The accessors here are the only way the rest of the
code touches Faust internals (tests/unit/worker/test_faust_private.py scans for
``PRIVATE_NAMES`` and ``PRIVATE_MODULES``). Why each patch: docs/decisions.md.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DISTRIBUTION = "faust-streaming"
SUPPORTED_VERSIONS = frozenset({"0.15.3"})  # requirements.lock pins it; a test keeps them equal

# The private code this module patches or calls: (module, class or None, name, parameters).
# Parameter names are compared, not annotations.
PRIVATE_CODE: tuple[tuple[str, str | None, str, tuple[str, ...]], ...] = (
    ("faust.transport.producer", "ProducerBuffer", "_send_pending", ("self", "fut")),
    ("faust.transport.producer", "ProducerBuffer", "flush", ("self",)),
    ("faust.transport.consumer", "Consumer", "getmany", ("self", "timeout")),
    ("faust.transport.consumer", "Consumer", "_wait_next_records", ("self", "timeout")),
    ("faust.transport.consumer", "Consumer", "_to_message", ("self", "tp", "record")),
    ("faust.transport.consumer", "Consumer", "_add_gap", ("self", "tp", "offset_from", "offset_to")),
    ("faust.transport.consumer", "Consumer", "_new_offset", ("self", "tp")),
    ("faust.transport.consumer", "Consumer", "on_buffer_drop", ("self", "tp")),
    ("faust.transport.consumer", "Consumer", "seek", ("self", "partition", "offset")),
    ("faust.transport.consumer", "Consumer", "perform_seek", ("self",)),
    ("faust.utils.functional", None, "consecutive_numbers", ("it",)),
    ("faust.stores.rocksdb", "Store", "_db_for_partition", ("self", "partition")),
    ("faust.stores.rocksdb", "Store", "set_persisted_offset", ("self", "tp", "offset")),
    ("faust.stores.rocksdb", "Store", "partition_path", ("self", "partition")),
    (
        "faust.tables.base",
        "Collection",
        "send_changelog",
        ("self", "partition", "key", "value", "key_serializer", "value_serializer"),
    ),
    ("faust.assignor.partition_assignor", "PartitionAssignor", "assigned_actives", ("self",)),
)
# Private attributes read here, by class annotation (module, class, names).
PRIVATE_ATTRIBUTES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "faust.transport.consumer",
        "Consumer",
        (
            "_gap",
            "_acked",
            "_acked_index",
            "_committed_offset",
            "_commit_fut",
            "_active_partitions",
            "_paused_partitions",
            "_buffered_partitions",
        ),
    ),
    ("faust.stores.rocksdb", "Store", ("_dbs",)),
    ("faust.types.app", "AppT", ("consumer_generation_id",)),
)
PERSISTED_OFFSET_KEY = b"__faust\0offset__"  # faust/stores/rocksdb.py Store.offset_key
PARTITION_DB_GLOB = "v*/tables/*-*.db"  # datadir/v<app version>/tables/<table>-<partition>.db

# What tests/unit/worker/test_faust_private.py refuses outside this module: attribute names (also as
# getattr strings) and module paths. ``self.<name>`` is not counted: our own classes may have
# a ``_thread`` or an ``_acked`` of their own.
PRIVATE_NAMES = frozenset(
    {
        "_db_for_partition",
        "_dbs",
        "set_persisted_offset",
        "send_changelog",
        "consumer_generation_id",
        "generation_id",
        "assigned_actives",
        "recovery",
        "_gap",
        "_acked",
        "_acked_index",
        "_committed_offset",
        "_commit_fut",
        "_active_partitions",
        "_paused_partitions",
        "_buffered_partitions",
        "_add_gap",
        "_new_offset",
        "_send_pending",
        "_wait_next_records",
        "_to_message",
        "_thread",
        "_ensure_consumer",
        "_subscription",
        "_position",
    }
)
PRIVATE_MODULES = ("faust.transport", "faust.tables", "faust.stores", "faust.assignor", "faust.utils", "mode")


class UnsupportedFaust(RuntimeError):
    """The installed faust-streaming is not the one this module was written for."""


# --- the version guard ------------------------------------------------------------------------


def installed_version() -> str | None:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return None


def check_supported(installed: str | None = None) -> None:
    """Raise ``UnsupportedFaust`` unless ``installed`` (default: the installed distribution's
    version) is supported and every entry of ``PRIVATE_CODE``/``PRIVATE_ATTRIBUTES`` holds."""
    installed = installed_version() if installed is None else installed
    supported = ", ".join(sorted(SUPPORTED_VERSIONS))
    if installed not in SUPPORTED_VERSIONS:
        raise UnsupportedFaust(
            f"{DISTRIBUTION} {installed or '(not installed)'} is installed, but streams/faust_private.py "
            f"patches and reads private code of {DISTRIBUTION} {supported} only. Install the supported "
            f"version (pip install -r requirements.lock), or review every patch and accessor in "
            f"streams/faust_private.py against {installed}'s source, then add it to SUPPORTED_VERSIONS."
        )
    problems = private_code_problems(PRIVATE_CODE, PRIVATE_ATTRIBUTES)
    if problems:
        raise UnsupportedFaust(
            f"{DISTRIBUTION} {installed} lacks the private code streams/faust_private.py was written "
            f"for ({'; '.join(problems)}): the installation differs from the {supported} release. "
            f"Reinstall it (pip install --force-reinstall -r requirements.lock)."
        )


def private_code_problems(
    code: Iterable[tuple[str, str | None, str, tuple[str, ...]]] = PRIVATE_CODE,
    attributes: Iterable[tuple[str, str, tuple[str, ...]]] = PRIVATE_ATTRIBUTES,
) -> list[str]:
    """What differs from ``code`` and ``attributes`` (empty: nothing). Patched functions are
    judged by the upstream original they replaced."""
    problems: list[str] = []
    for module_name, class_name, name, parameters in code:
        where = f"{module_name}.{class_name + '.' if class_name else ''}{name}"
        try:
            owner: Any = importlib.import_module(module_name)
            if class_name is not None:
                owner = getattr(owner, class_name)
            function = _ORIGINALS.get((owner, name)) or getattr(owner, name)
            found = tuple(inspect.signature(function).parameters)
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            problems.append(f"{where} is missing ({type(exc).__name__})")
            continue
        if found != parameters:
            problems.append(f"{where} takes ({', '.join(found)}), not ({', '.join(parameters)})")
    for module_name, class_name, names in attributes:
        try:
            annotated: set[str] = set()
            for klass in getattr(importlib.import_module(module_name), class_name).__mro__:
                annotated |= set(getattr(klass, "__annotations__", {}))
        except (ImportError, AttributeError) as exc:
            problems.append(f"{module_name}.{class_name} is missing ({type(exc).__name__})")
            continue
        problems.extend(f"{module_name}.{class_name} has no {n}" for n in names if n not in annotated)
    try:
        from faust.stores.rocksdb import Store

        if Store.offset_key != PERSISTED_OFFSET_KEY:
            problems.append(f"Store.offset_key is {Store.offset_key!r}, not {PERSISTED_OFFSET_KEY!r}")
    except (ImportError, AttributeError) as exc:
        problems.append(f"faust.stores.rocksdb.Store.offset_key is missing ({type(exc).__name__})")
    return problems


_ORIGINALS: dict[tuple[Any, str], Any] = {}  # (class, name) -> the upstream function we replaced


def _patch(owner: Any, name: str, replacement: Any) -> None:
    if owner.__dict__.get(name) is replacement:
        return
    _ORIGINALS.setdefault((owner, name), owner.__dict__[name])
    setattr(owner, name, replacement)


def upstream(owner: Any, name: str) -> Any:
    """The upstream function ``install`` replaced (or the current one): for tests that show
    the upstream defect."""
    return _ORIGINALS.get((owner, name)) or owner.__dict__[name]


def install() -> None:
    """Check the version (``check_supported``), then install the four class-level patches
    (idempotent)."""
    check_supported()
    from faust.transport.consumer import Consumer
    from faust.transport.producer import ProducerBuffer

    global _upstream_send_pending
    _upstream_send_pending = upstream(ProducerBuffer, "_send_pending")
    _patch(ProducerBuffer, "_send_pending", _send_pending_counted)
    _patch(ProducerBuffer, "flush", _flush_everything)
    _patch(Consumer, "getmany", _getmany_without_loss)
    _patch(Consumer, "_add_gap", _no_gap_acks)
    _patch(Consumer, "_new_offset", _new_offset_stopping_at_holes)


# --- patch 1: a producer flush waits for every message ---------------------------------------

_upstream_send_pending: Any = None  # set by install()


async def _send_pending_counted(self: Any, fut: Any) -> None:
    """``ProducerBuffer._send_pending`` counting the message in hand (see ``_flush_everything``).

    Runs synchronously up to its first await, right after the queue handed ``fut`` over, so
    no flush can observe the message as neither queued nor in hand."""
    self._in_hand = getattr(self, "_in_hand", 0) + 1
    try:
        await _upstream_send_pending(self, fut)
    finally:
        self._in_hand -= 1
        self.message_sent.set()


async def _flush_everything(self: Any) -> None:
    """``ProducerBuffer.flush`` that returns only once the queue is empty and no message is in
    hand, and after every ``flush_also`` flush: Faust commits input offsets after it.

    Upstream ``flush_atmost(None)`` returns when one 0.1 s wait for progress times out, and
    does not count the message being sent, so commits overtook changelog records. No upstream
    report found; related: faust-streaming PR #112 (flush waits for the buffer), PR #273 (flush
    before commit), issue #173 ("producer buffer full")."""
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


_also_flushed: list[Callable[[], Awaitable[None]]] = []


def flush_also(flush: Callable[[], Awaitable[None]]) -> None:
    """Make every producer flush (so every commit of input offsets) wait for ``flush`` too:
    records the worker writes outside Faust's producer (streams/record_sink.py)."""
    _also_flushed.append(flush)


# --- patch 2: partitions paused for buffer pressure come back --------------------------------


def resume_buffered_partitions(app: Any, interval_s: float = 1.0) -> None:
    """Every ``interval_s``, re-activate the partitions Faust took out of the fetcher for a full
    agent buffer (``Consumer.on_buffer_full``): the pressure-drop callback that should put them
    back can be lost, and the partition then never fetches again. A queue still under pressure
    pauses them again on its next message. Upstream: the pause came with faust-streaming #53;
    #88/PR #89 fixed a loss in it; consumers that stop fetching: #175, #629 (cause not named)."""

    @app.timer(interval=interval_s)
    async def _resume_buffered_partitions() -> None:
        consumer = app.consumer
        for tp in list(getattr(consumer, "_buffered_partitions", ())):
            consumer.on_buffer_drop(tp)


# --- patch 3: a fetched batch is never dropped -----------------------------------------------


async def _getmany_without_loss(self: Any, timeout: float) -> Any:
    """``Consumer.getmany`` that never drops fetched records.

    Upstream breaks out of a fetched batch when flow stops or the generation changes, and skips
    records of partitions no longer active; the fetch position has moved past them, so they are
    not read again while the worker lives. Here each partition's records are delivered in order
    up to the first one that cannot be, and the partition is sought back to it. Upstream: the
    break came with PR #234 (generation) and #253 (flow); #88/PR #89 (records of buffered
    partitions dropped) is the same loss for another cause."""
    records, active_partitions = await self._wait_next_records(timeout)
    generation_id = self.app.consumer_generation_id
    if records is None or self.should_stop:
        return
    if not self.flow_active:
        try:  # as upstream: a rebalance may have taken a partition the seek names
            await self.perform_seek()
        except Exception as exc:  # noqa: BLE001 - aiokafka's IllegalStateError; the new assignment seeks anew
            log.warning("seek to the committed offsets while flow is stopped failed: %r", exc)
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


# --- patch 4: a partition whose commit a lost record holds is read again ---------------------


def reread_stalled_partitions(
    app: Any, interval_s: float = 2.0, stall_s: float = 10.0, idle_stall_s: float = 60.0
) -> None:
    """A watchdog: seek a partition back to its committed offset when a hole holds its commit
    (offsets after the committed one acknowledged, the committed one not, for ``stall_s``), or
    when nothing past it was acknowledged for ``idle_stall_s`` while records are left to read.

    The Fetcher's ``wait_first(callback(message), suspend_flow.wait())`` abandons the hand-off
    to a full agent queue when flow is suspended, yet marks the message read; with
    ``_no_gap_acks`` and ``_new_offset_stopping_at_holes`` that loss holds the commit instead of
    passing it, and this reads it again. Holes are judged only while no commit is in flight,
    so a merely slow commit is not re-read. Records read again are applied once (receipts).
    No upstream report of the abandoned hand-off found; the ``wait_first`` came with PR #253."""
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
                log.warning(
                    "partition %s: commit held at %s of %s (%s): reading again from there",
                    tp,
                    committed,
                    highwater,
                    "a lost record" if holed else "nothing acknowledged",
                )
                await consumer.seek(tp, committed)
                last_seen.pop(tp, None)


# --- patch 5: offsets the fetcher skipped are not acknowledged -------------------------------


async def _no_gap_acks(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    """``Consumer._add_gap`` that acknowledges nothing.

    Upstream acknowledges offsets the fetcher did not see, so commits can pass them: right for
    compacted or transactional topics, wrong for ours, where a jump means records lost inside
    Faust. The commit then stops at the first lost record and ``reread_stalled_partitions``
    reads it again. (Changelog reading during recovery commits no offsets.) Upstream: gaps
    acknowledged since robinhood/faust #401/PR #403; faust-streaming #312, #378, #606."""
    return None


# --- patch 6: a commit never passes a hole ----------------------------------------------------


def _new_offset_stopping_at_holes(self: Any, tp: Any) -> int | None:
    """``Consumer._new_offset`` that refuses to commit while the record at the committed offset
    (the next to read) is not acknowledged.

    Upstream refuses only when ``min(acked) - committed > 1``, so a single missing record right
    at the committed offset was committed past, and the check was skipped while the committed
    offset was 0. Upstream: faust-streaming #606 (the off-by-one), fix proposed in PR #707."""
    from faust.utils.functional import consecutive_numbers

    acked = self._acked[tp]
    if not acked:
        return None
    gap_for_tp = self._gap[tp]
    if gap_for_tp:  # empty while _no_gap_acks is installed; kept as upstream does it
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


# --- accessors ---------------------------------------------------------------------------------


class _SentChangelog:
    """What ``Table.on_key_set`` reads from ``send_changelog``'s result: ``.message.partition``."""

    __slots__ = ("message", "partition")

    def __init__(self, partition: int) -> None:
        self.message = self
        self.partition = partition


def route_changelog(table: Any, send: Callable[[int, Any, Any], object]) -> None:
    """Replace ``table``'s changelog send: ``send(partition, key, value)`` gets every record,
    in the partition Faust chose (the current event's: ``Table.partition_for_key``)."""

    def send_changelog(partition: int | None, key: Any, value: Any, *_: Any, **__: Any) -> Any:
        assert partition is not None
        send(partition, key, value)
        return _SentChangelog(partition)

    table.send_changelog = send_changelog


def set_persisted_offset(table: Any, tp: Any, offset: int) -> None:
    """Record ``offset`` as the last changelog record of ``tp`` in the table's partition store
    (what a clean restart resumes recovery after): one RocksDB put."""
    table.data.set_persisted_offset(tp, offset)


def db_for_partition(table: Any, partition: int) -> Any:
    """The table partition's own RocksDB database (a rocksdict ``Rdict``; opened if needed)."""
    return table.data._db_for_partition(partition)


def local_partition_db_paths(data_dir: Path) -> Iterator[tuple[str, int, Path]]:
    """(table name, partition, path) of every table partition database under Faust's
    ``datadir`` (``Store.partition_path``), in path order; read with rocksdict in raw mode."""
    for path in sorted(data_dir.glob(PARTITION_DB_GLOB)):
        table, _, partition = path.name[: -len(".db")].rpartition("-")
        if partition.isdigit():
            yield table, int(partition), path


def open_partition_dbs(table: Any) -> list[Any]:
    """The table's partition databases open in this worker right now."""
    return list(getattr(table.data, "_dbs", {}).values())


def consumer_generation(app: Any) -> int:
    """The consumer group generation this worker is in now."""
    return int(app.consumer_generation_id)


def event_generation(event: Any) -> int | None:
    """The generation in which ``event``'s message was fetched (None: unknown)."""
    generation: int | None = event.message.generation_id
    return generation


def assigned_actives(app: Any) -> set[Any]:
    """The TPs this worker is active for (its tables' changelog TPs among them)."""
    return set(app.assignor.assigned_actives())


def recovery_completed(app: Any) -> bool:
    """Have the tables finished recovering since the last rebalance?"""
    return bool(app.tables.recovery.completed.is_set())


def committed_offset(app: Any, tp: Any) -> int | None:
    """The offset this worker last committed for ``tp`` (None: none yet)."""
    offset: int | None = app.consumer._committed_offset.get(tp)
    return offset


def consumer_partitions(app: Any) -> dict[str, set[Any]]:
    """The consumer's active, paused and buffered (paused for buffer pressure) TPs."""
    consumer = app.consumer
    return {
        "active": set(consumer._active_partitions or ()),
        "paused": set(consumer._paused_partitions or ()),
        "buffered": set(getattr(consumer, "_buffered_partitions", ())),
    }


def fetch_positions(app: Any) -> Iterator[tuple[Any, int | None, bool]]:
    """(tp, fetch position or None, paused) per partition of the aiokafka client inside Faust's
    consumer thread: aiokafka's internals (0.14.0, pinned with Faust), for diagnostics only."""
    aio = app.consumer._thread._ensure_consumer()
    assignment = aio._subscription.subscription.assignment
    for tp in assignment.tps:
        state = assignment.state_value(tp)
        yield tp, state._position if state.has_valid_position else None, state.paused
