"""Would a transactional record sink pay? A probe on the real broker (issue 13, item 3).

Run: ``python bench/txn_probe.py [--rate 10000] [--seconds 6] [--commit-ms 10,100,1000]``
(``--help`` for the rest; it starts nothing). A measurement, not a test. *Feasibility*: an
aiokafka consumer (Faust's client) joins a group, and a confluent-kafka transactional producer
commits that group's offsets with group metadata built from the aiokafka membership
(``group_metadata``: librdkafka's serialisation, pinned by tests/unit/tools/test_txn_probe.py);
what stale, unknown and group-id-only metadata get. *Cost*: transactional commits every T ms
against the idempotent producer's flush + aiokafka commit: records/s, client and broker CPU per
record, commit latency, visibility. Results: bench/results/issue13/txn_probe.json (or ``--out``)
and a table; its topics are deleted; a broker is started if none answers, never stopped.
Figures and the decision: docs/decisions.md ("Kafka transactions in the record sink: not now").
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import importlib
import inspect
import json
import math
import os
import platform
import struct
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import RESULTS, Progress, cpu_seconds  # noqa: E402
from config.settings import Settings, get_settings  # noqa: E402
from streams import local_kafka, local_process  # noqa: E402
from streams.kafka_config import admin_config, aiokafka_security, producer_config  # noqa: E402

OUT = RESULTS / "issue13" / "txn_probe.json"
PARTITIONS = 8
VALUE_BYTES = 300
KEY_BYTES = 16
# The record sink's producer settings (streams/record_sink.py), but for message.timeout.ms.
SINK = {"linger.ms": 5, "batch.num.messages": 10_000, "queue.buffering.max.messages": 500_000}

# ---------------------------------------------------------------------------------------------
# Pure helpers (tests/unit/tools/test_txn_probe.py)

CGMD_MAGIC = b"CGMDv2:"  # librdkafka's rd_kafka_consumer_group_metadata_write, format v2


def group_metadata(group_id: str, generation_id: int, member_id: str, group_instance_id: str | None = None) -> bytes:
    """The bytes confluent-kafka's ``send_offsets_to_transaction`` takes as group metadata
    (it hands them to ``rd_kafka_consumer_group_metadata_read``): ``CGMDv2:``, the generation
    as a native int32, group id and member id NUL-terminated, a null flag byte, then the
    instance id NUL-terminated when there is one. librdkafka calls the format private ("not
    compatible across versions or builds"): the unit test pins it to the bundled library.
    ``generation_id`` -1 with ``member_id`` "" is group-id-only metadata (the broker then
    fences nothing). Strings must be printable ASCII (the reader refuses anything else)."""
    for name, text in (("group_id", group_id), ("member_id", member_id), ("group_instance_id", group_instance_id)):
        if text is not None and not all(0x20 <= ord(c) <= 0x7E for c in text):
            raise ValueError(f"{name} must be printable ASCII for librdkafka: {text!r}")
    out = CGMD_MAGIC + struct.pack("=i", generation_id) + group_id.encode() + b"\0" + member_id.encode() + b"\0"
    if group_instance_id is None:
        return out + b"\x01"
    return out + b"\x00" + group_instance_id.encode() + b"\0"


def weighted_percentile(pairs: Iterable[tuple[float, int]], q: float) -> float:
    """Nearest-rank percentile (q in 0..100: the smallest value with at least q% of the count at
    or below it) of values each counted ``n`` times ((value, n) pairs); NaN when nothing is counted."""
    items = sorted((v, n) for v, n in pairs if n > 0)
    total = sum(n for _, n in items)
    if not total:
        return float("nan")
    rank = max(1, min(total, math.ceil(q / 100 * total)))
    seen = 0
    for value, n in items:
        seen += n
        if seen >= rank:
            return value
    return items[-1][0]


def relate_to_worker(
    cases: list[dict[str, Any]],
    *,
    batch_window_ms: float,
    stateful_agents: int,
    partitions: int,
    hops: int,
    records_per_order: float,
    redo_per_order: tuple[float, float],
    internal_receipts_per_order: float,
) -> dict[str, Any]:
    """What the measured cases mean for the worker (the decision is in docs/decisions.md).

    ``cases``: the cost cases (``mode``, ``commit_every_ms`` (0: back to back),
    ``offered_per_s`` (None: unpaced), ``commits_per_s``, ``visible_ms`` p50/p99). Returns:

    * the most transactions/s one transactional producer committed (one open at a time), against
      the partition transactions/s the worker runs when its batches fill (each stateful agent's
      window of ``batch_window_ms`` is one transaction per partition it holds): what a Kafka
      transaction per redo record would need;
    * per paced transactional cadence, how long a record waits before a read_committed reader
      sees it (produce to commit end), per hop and over ``hops`` hops;
    * per mode, the CPU one more commit costs (broker and client), from the paced cases with
      the fewest and the most commits per second (same records/s; noisy on a shared machine);
    * the records per order a Kafka transaction would save: the redo records (``redo_per_order``
      from a loaded worker to a quiet one, where each message is its own batch) and the receipts
      of internal messages, against ``records_per_order``."""
    txn = [c for c in cases if c["mode"] == "transactional"]
    most = max((c["commits_per_s"] for c in txn), default=0.0)
    needed = stateful_agents * partitions * 1000 / batch_window_ms
    cadences = []
    for c in sorted(txn, key=lambda c: (c["commit_every_ms"], c.get("retry_backoff_ms", 100))):
        if not c["offered_per_s"]:
            continue
        cadences.append(
            {
                "commit_every_ms": c["commit_every_ms"],
                "retry_backoff_ms": c.get("retry_backoff_ms", 100),
                "commits_per_s": c["commits_per_s"],
                "visible_per_hop_ms": {"p50": c["visible_ms"]["p50"], "p99": c["visible_ms"]["p99"]},
                f"over_{hops}_hops_ms": {
                    "p50": round(hops * c["visible_ms"]["p50"], 1),
                    "p99_bound": round(hops * c["visible_ms"]["p99"], 1),
                },
            }
        )
    per_commit = {}
    for mode in ("idempotent", "transactional"):
        paced = [
            c
            for c in cases
            if c["mode"] == mode
            and c["offered_per_s"]
            and c.get("retry_backoff_ms", 100) == 100
            and c.get("broker_cpu_share") is not None
        ]
        if len(paced) >= 2:
            few, many = min(paced, key=lambda c: c["commits_per_s"]), max(paced, key=lambda c: c["commits_per_s"])
            extra = many["commits_per_s"] - few["commits_per_s"]
            if extra > 0:
                per_commit[mode] = {
                    "broker_cpu_ms": round(1000 * (many["broker_cpu_share"] - few["broker_cpu_share"]) / extra, 2),
                    "client_cpu_ms": round(1000 * (many["client_cpu_share"] - few["client_cpu_share"]) / extra, 2),
                    "from_cases_ms": [few["commit_every_ms"], many["commit_every_ms"]],
                }
    low, high = redo_per_order
    return {
        "cpu_per_commit_estimate": per_commit,
        "most_transactions_per_s_one_producer": round(most, 1),
        "partition_transactions_per_s_when_batches_fill": round(needed, 1),
        "one_kafka_transaction_per_redo_record_fits": most >= needed,
        "today_wait_per_hop_ms": f"up to the batch window ({batch_window_ms:g} ms) + the changelog acknowledgement",
        "cadences": cadences,
        "records_per_order_today": records_per_order,
        "saved_per_order": {
            "redo": [low, high],
            "internal_receipts": internal_receipts_per_order,
            "total": [low + internal_receipts_per_order, high + internal_receipts_per_order],
        },
    }


# ---------------------------------------------------------------------------------------------
# librdkafka's own writer, through ctypes (the same library confluent-kafka loaded)


def bundled_librdkafka() -> ctypes.CDLL:
    """The librdkafka that confluent-kafka loaded (its wheel's copy, else the system's),
    checked to be the same version."""
    import ctypes.util

    import confluent_kafka

    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka*.so*")) or [Path(p) for p in [ctypes.util.find_library("rdkafka")] if p]
    if not found:
        raise RuntimeError("librdkafka not found next to confluent_kafka")
    lib = ctypes.CDLL(str(found[0]))
    lib.rd_kafka_version.restype = ctypes.c_int
    if lib.rd_kafka_version() != confluent_kafka.libversion()[1]:
        raise RuntimeError(f"{found[0]} is not the librdkafka confluent-kafka runs")
    lib.rd_kafka_consumer_group_metadata_new_with_genid.restype = ctypes.c_void_p
    lib.rd_kafka_consumer_group_metadata_new_with_genid.argtypes = [
        ctypes.c_char_p,
        ctypes.c_int32,
        ctypes.c_char_p,
        ctypes.c_char_p,
    ]
    lib.rd_kafka_consumer_group_metadata_write.restype = ctypes.c_void_p
    lib.rd_kafka_consumer_group_metadata_write.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    lib.rd_kafka_consumer_group_metadata_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mem_free.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    return lib


def librdkafka_group_metadata(
    group_id: str, generation_id: int, member_id: str, group_instance_id: str | None = None
) -> bytes:
    """``group_metadata`` as librdkafka itself writes it
    (``rd_kafka_consumer_group_metadata_new_with_genid`` then ``_write``)."""
    lib = bundled_librdkafka()
    cgmd = lib.rd_kafka_consumer_group_metadata_new_with_genid(
        group_id.encode(),
        generation_id,
        member_id.encode(),
        group_instance_id.encode() if group_instance_id is not None else None,
    )
    buffer, size = ctypes.c_void_p(), ctypes.c_size_t()
    try:
        if lib.rd_kafka_consumer_group_metadata_write(cgmd, ctypes.byref(buffer), ctypes.byref(size)):
            raise RuntimeError("rd_kafka_consumer_group_metadata_write failed")
        try:
            return ctypes.string_at(buffer, size.value)
        finally:
            lib.rd_kafka_mem_free(None, buffer)
    finally:
        lib.rd_kafka_consumer_group_metadata_destroy(cgmd)


# ---------------------------------------------------------------------------------------------
# An aiokafka group member in a thread of its own (Faust's client holds the membership)


class Member:
    """An ``AIOKafkaConsumer`` in group ``group`` subscribed to ``topic``, running on its own
    event loop thread; it keeps fetching (so it stays in the group) until ``close``."""

    def __init__(self, settings: Settings, group: str, topic: str, client_id: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=client_id, daemon=True)
        self.thread.start()
        self._fetching: Any = None
        self.consumer: Any = self.call(self._start(settings, group, topic, client_id))

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self, settings: Settings, group: str, topic: str, client_id: str) -> Any:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.bootstrap_servers,
            **aiokafka_security(settings),
            group_id=group,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,
            heartbeat_interval_ms=300,
        )
        await consumer.start()
        self._fetching = asyncio.ensure_future(self._fetch(consumer))
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return consumer

    async def _fetch(self, consumer: Any) -> None:
        while True:
            await consumer.getmany(timeout_ms=200)

    def membership(self) -> tuple[int, str]:
        """(generation, member id): aiokafka's private ``_coordinator``, the same attribute
        faust-streaming's driver reads the generation from."""
        coordinator = self.consumer._coordinator
        return int(coordinator.generation), str(coordinator.member_id)

    def assignment(self) -> set[Any]:
        return set(self.consumer.assignment())

    def committed(self, topic: str, partition: int) -> int | None:
        from aiokafka import TopicPartition

        return self.call(self.consumer.committed(TopicPartition(topic, partition)))  # type: ignore[no-any-return]

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        from aiokafka import TopicPartition

        self.call(self.consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()}))

    def wait_rebalanced(self, old_generation: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            generation, _ = self.membership()
            if generation > old_generation and self.consumer.assignment():
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        async def stop() -> None:
            if self._fetching is not None:
                self._fetching.cancel()
            await self.consumer.stop()

        try:
            self.call(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


# ---------------------------------------------------------------------------------------------
# The probe


def _error(exc: BaseException) -> dict[str, Any]:
    """A KafkaException as data: its code name, text and librdkafka's classification."""
    err = exc.args[0] if exc.args else None
    if hasattr(err, "name"):
        return {
            "error": err.name(),
            "text": err.str(),
            "retriable": err.retriable(),
            "fatal": err.fatal(),
            "txn_requires_abort": err.txn_requires_abort(),
        }
    return {"error": type(exc).__name__, "text": str(exc)}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _summary(values_s: list[float]) -> dict[str, float]:
    if not values_s:
        return {}
    pairs = [(v, 1) for v in values_s]
    return {
        "p50": _ms(weighted_percentile(pairs, 50)),
        "p99": _ms(weighted_percentile(pairs, 99)),
        "max": _ms(max(values_s)),
    }


class Probe:
    def __init__(self, settings: Settings, args: argparse.Namespace, progress: Progress) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        self.settings = settings
        self.args = args
        self.progress = progress
        self.tag = uuid.uuid4().hex[:8]
        prefix = f"txnprobe{self.tag}."
        self.t_in, self.t_out, self.t_feas = prefix + "in", prefix + "out", prefix + "feasibility"
        self.group = f"txnprobe-{self.tag}"
        self.admin = AdminClient(admin_config(settings))
        futures = self.admin.create_topics(
            [NewTopic(self.t_in, PARTITIONS, 1), NewTopic(self.t_out, PARTITIONS, 1), NewTopic(self.t_feas, 1, 1)],
            operation_timeout=30,
        )
        for future in futures.values():
            future.result()
        self.members: list[Member] = []
        self.broker_pid = self._broker_pid()
        self.cgmd_source = "python"

    def _broker_pid(self) -> int | None:
        if not self.settings.uses_local_broker:
            return None
        pid = local_process.read_pid(local_kafka.KafkaPaths.of(self.settings).pid_file)
        return pid if pid is not None and local_process.cmdline(pid) else None

    def close(self) -> None:
        for member in self.members:
            try:
                member.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
        for future in self.admin.delete_topics([self.t_in, self.t_out, self.t_feas], operation_timeout=30).values():
            try:
                future.result()
            except Exception:  # noqa: BLE001
                pass
        for group in (self.group,):
            try:
                self.admin.delete_consumer_groups([group])[group].result()
            except Exception:  # noqa: BLE001
                pass

    def member(self, name: str) -> Member:
        member = Member(self.settings, self.group, self.t_in, f"{self.group}-{name}")
        self.members.append(member)
        return member

    def transactional_producer(self, name: str, **extra: Any) -> Any:
        from confluent_kafka import Producer

        return Producer(producer_config(self.settings, **{**SINK, "transactional.id": f"{self.group}-{name}", **extra}))

    # ---- 1. feasibility -----------------------------------------------------------------------

    def feasibility(self) -> dict[str, Any]:
        from confluent_kafka import TopicPartition

        say = self.progress.done
        out: dict[str, Any] = {}
        m1 = self.member("m1")
        generation, member_id = m1.membership()
        say(
            f"feasibility: aiokafka member joined {self.group}: generation {generation}, "
            f"{len(m1.assignment())} partitions"
        )
        python_bytes = group_metadata(self.group, generation, member_id)
        try:
            same = librdkafka_group_metadata(self.group, generation, member_id) == python_bytes
        except Exception as exc:  # noqa: BLE001 - a system without the bundled library
            same = None
            out["librdkafka_writer"] = repr(exc)
        out["group_metadata_bytes_equal_librdkafka_writer"] = same
        out["membership_from"] = "aiokafka AIOKafkaConsumer._coordinator.generation / .member_id (private)"

        producer = self.transactional_producer("feasibility")
        t = time.perf_counter()
        producer.init_transactions(30)
        out["init_transactions_ms"] = _ms(time.perf_counter() - t)

        def attempt(label: str, offset: int, metadata: bytes, partition: int = 0) -> dict[str, Any]:
            result: dict[str, Any] = {
                "offset_sent": offset,
                **self._commit_with_offset(producer, label, metadata, partition, offset),
            }
            result.update(self._offset_seen(m1, partition, offset if result["committed"] else None))
            say(f"feasibility: {label}: {result}")
            return result

        out["membership_metadata"] = attempt("membership_metadata", 5, python_bytes)
        out["group_id_only_metadata_while_member_active"] = attempt(
            "group_id_only", 6, group_metadata(self.group, -1, "")
        )
        out["unknown_member_id"] = attempt("unknown_member", 7, group_metadata(self.group, generation, "zombie-1"))
        out["generation_ahead"] = attempt("generation_ahead", 8, group_metadata(self.group, generation + 1, member_id))

        # A transaction holding offsets, not yet committed: what does a (new) owner read?
        producer.begin_transaction()
        producer.produce(self.t_feas, b"v" * VALUE_BYTES, b"pending", partition=0)
        before = m1.committed(self.t_in, 0)
        producer.send_offsets_to_transaction([TopicPartition(self.t_in, 0, 50)], python_bytes, 30)
        pending: dict[str, Any] = {
            "committed_before": before,
            "offset_pending": 50,
            "aiokafka_reads_while_pending": m1.committed(self.t_in, 0),
        }
        try:
            from confluent_kafka import ConsumerGroupTopicPartitions

            future = self.admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(self.group, [TopicPartition(self.t_in, 0)])],
                require_stable=True,
                request_timeout=5,
            )[self.group]
            tps = future.result().topic_partitions
            pending["admin_require_stable_reads"] = [
                {"offset": tp.offset, "error": tp.error.name() if tp.error else None} for tp in tps
            ]
        except Exception as exc:  # noqa: BLE001
            pending["admin_require_stable_reads"] = _error(exc)
        producer.abort_transaction(30)
        pending["after_abort"] = m1.committed(self.t_in, 0)
        out["offsets_pending_in_a_transaction"] = pending
        say(f"feasibility: pending offsets: {pending}")

        producer.flush(10)
        self._feas_producer = producer
        self.m1 = m1
        return out

    def _commit_with_offset(
        self, producer: Any, label: str, metadata: bytes, partition: int, offset: int
    ) -> dict[str, Any]:
        """One transaction: a record, and ``offset`` of the input's ``partition`` committed in it
        under ``metadata``; whether it committed, else the error (aborted when it must be)."""
        from confluent_kafka import KafkaException, TopicPartition

        producer.begin_transaction()
        producer.produce(self.t_feas, b"v" * VALUE_BYTES, label.encode(), partition=0)
        try:
            producer.send_offsets_to_transaction([TopicPartition(self.t_in, partition, offset)], metadata, 30)
            producer.commit_transaction(30)
            return {"committed": True}
        except KafkaException as exc:
            result: dict[str, Any] = {"committed": False, **_error(exc)}
            if result.get("txn_requires_abort"):
                producer.abort_transaction(30)
                result["aborted"] = True
            return result

    def _offset_seen(self, member: Member, partition: int, expected: int | None) -> dict[str, Any]:
        """What aiokafka reads as committed right after the commit returned and, when an offset
        was committed, how long until aiokafka reads it (the broker writes the transaction's
        markers, the offsets' included, after ``commit_transaction`` has returned)."""
        started = time.perf_counter()
        first = seen = member.committed(self.t_in, partition)
        while expected is not None and seen != expected and time.perf_counter() - started < 5:
            time.sleep(0.002)
            seen = member.committed(self.t_in, partition)
        out: dict[str, Any] = {"aiokafka_reads_right_after": first, "aiokafka_reads": seen}
        if expected is not None:
            out["ms_until_aiokafka_reads_it"] = _ms(time.perf_counter() - started)
        return out

    def visibility(self, rounds: int) -> dict[str, Any]:
        """One record per round to the feasibility topic, read by an aiokafka consumer (Faust's
        client): transactional (read_committed: from ``commit_transaction``'s return to the
        record's arrival) and idempotent (read_uncommitted: from the acknowledgement to the
        arrival). What a hop waits on top of the commit or the acknowledgement."""
        from confluent_kafka import Producer

        txn = self._feas_producer
        plain = Producer(producer_config(self.settings, **{**SINK, "linger.ms": 0}))

        async def measure(isolation: str, write: Any) -> dict[str, Any]:
            from aiokafka import AIOKafkaConsumer, TopicPartition

            tp = TopicPartition(self.t_feas, 0)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.bootstrap_servers,
                **aiokafka_security(self.settings),
                isolation_level=isolation,
                enable_auto_commit=False,
                fetch_max_wait_ms=500,
            )
            await consumer.start()
            loop = asyncio.get_running_loop()
            lags: list[float] = []
            try:
                consumer.assign([tp])
                await consumer.seek_to_end(tp)
                await consumer.position(tp)
                for i in range(rounds):
                    key = f"{isolation}-{i}".encode()
                    fetch = asyncio.ensure_future(consumer.getmany(tp, timeout_ms=2000))
                    written = await loop.run_in_executor(None, write, key)
                    arrived = None
                    while arrived is None:
                        batch = await fetch
                        if any(r.key == key for r in batch.get(tp, [])):
                            arrived = time.perf_counter()
                        else:
                            fetch = asyncio.ensure_future(consumer.getmany(tp, timeout_ms=2000))
                    lags.append(arrived - written)
            finally:
                await consumer.stop()
            return _summary(lags)

        def write_txn(key: bytes) -> float:
            txn.begin_transaction()
            txn.produce(self.t_feas, b"v" * VALUE_BYTES, key, partition=0)
            txn.commit_transaction(30)
            return time.perf_counter()

        def write_plain(key: bytes) -> float:
            plain.produce(self.t_feas, b"v" * VALUE_BYTES, key, partition=0)
            plain.flush(30)
            return time.perf_counter()

        loop = asyncio.new_event_loop()
        try:
            out = {
                "transactional_read_committed_after_commit_ms": loop.run_until_complete(
                    measure("read_committed", write_txn)
                ),
                "idempotent_read_uncommitted_after_ack_ms": loop.run_until_complete(
                    measure("read_uncommitted", write_plain)
                ),
                "rounds": rounds,
            }
        finally:
            loop.close()
        self.progress.done(f"feasibility: visibility: {out}")
        return out

    def rebalance_fencing(self) -> dict[str, Any]:
        """A second member joins: the first member's old generation is fenced."""

        producer, m1 = self._feas_producer, self.m1
        old_generation, old_member = m1.membership()
        m2 = self.member("m2")
        rebalanced = m1.wait_rebalanced(old_generation)
        generation, member_id = m1.membership()
        mine = sorted(tp.partition for tp in m1.assignment())
        theirs = sorted(tp.partition for tp in m2.assignment())
        out: dict[str, Any] = {
            "rebalanced": rebalanced,
            "generation_before": old_generation,
            "generation_after": generation,
            "member_id_kept": member_id == old_member,
            "m1_partitions": mine,
            "m2_partitions": theirs,
        }

        def attempt(label: str, metadata: bytes, partition: int, offset: int) -> dict[str, Any]:
            result: dict[str, Any] = {
                "partition": partition,
                **self._commit_with_offset(producer, label, metadata, partition, offset),
            }
            self.progress.done(f"feasibility: {label}: {result}")
            return result

        out["old_generation"] = attempt(
            "old_generation_after_rebalance", group_metadata(self.group, old_generation, old_member), mine[0], 60
        )
        out["new_generation_own_partition"] = attempt(
            "new_generation_own_partition", group_metadata(self.group, generation, member_id), mine[0], 61
        )
        if theirs:
            out["new_generation_other_members_partition"] = attempt(
                "new_generation_other_members_partition",
                group_metadata(self.group, generation, member_id),
                theirs[0],
                62,
            )
        m2.close()
        self.members.remove(m2)
        producer.flush(10)
        return out

    def read_committed(self) -> dict[str, Any]:
        """The feasibility topic (committed and aborted transactions) read by aiokafka both ways."""

        async def read(isolation: str) -> dict[str, Any]:
            from aiokafka import AIOKafkaConsumer, TopicPartition

            tp = TopicPartition(self.t_feas, 0)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.bootstrap_servers,
                **aiokafka_security(self.settings),
                isolation_level=isolation,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await consumer.start()
            try:
                consumer.assign([tp])
                await consumer.seek_to_beginning(tp)
                end = (await consumer.end_offsets([tp]))[tp]
                offsets: list[int] = []
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    batch = await consumer.getmany(tp, timeout_ms=300)
                    offsets.extend(r.offset for r in batch.get(tp, []))
                    if await consumer.position(tp) >= end:
                        break
                missing = sorted(set(range(end)) - set(offsets))
                return {
                    "end_offset": end,
                    "records": len(offsets),
                    "offsets_not_delivered": len(missing),
                    "first_jumps": [(a, b) for a, b in zip(offsets, offsets[1:], strict=False) if b != a + 1][:5],
                }
            finally:
                await consumer.stop()

        loop = asyncio.new_event_loop()
        try:
            result = {level: loop.run_until_complete(read(level)) for level in ("read_committed", "read_uncommitted")}
        finally:
            loop.close()
        self.progress.done(f"feasibility: read back: {result}")
        return result

    @staticmethod
    def faust_isolation_level() -> dict[str, Any]:
        """Where faust-streaming chooses the consumer's isolation level (read from its source)."""
        import faust
        from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

        fn = AIOKafkaConsumerThread._create_worker_consumer
        lines, first = inspect.getsourcelines(fn)
        chosen = [first + i for i, line in enumerate(lines) if 'isolation_level = "read_committed"' in line]
        app_source = inspect.getsource(importlib.import_module("faust.app.base"))
        app_source = app_source[app_source.index("def in_transaction") :][:400]
        return {
            "faust_version": faust.__version__,
            "where": f"faust/transport/drivers/aiokafka.py:{chosen[0] if chosen else '?'} "
            "(AIOKafkaConsumerThread._create_worker_consumer)",
            "read_committed_only_when": "consumer.in_transaction, i.e. App.in_transaction: "
            "processing_guarantee == EXACTLY_ONCE"
            if "EXACTLY_ONCE" in app_source and chosen
            else "not found: read the source again",
            "setting": None,
        }

    # ---- 2. cost ----------------------------------------------------------------------------

    def broker_idle_rate(self, seconds: float) -> float | None:
        """The broker's CPU seconds per second while this probe sends nothing (others' load)."""
        if self.broker_pid is None:
            return None
        c0, t0 = cpu_seconds(self.broker_pid), time.monotonic()
        time.sleep(seconds)
        return (cpu_seconds(self.broker_pid) - c0) / (time.monotonic() - t0)

    def cost_case(
        self, mode: str, commit_ms: float, rate: float, seconds: float, retry_backoff_ms: int | None = None
    ) -> dict[str, Any]:
        """One case: ``mode`` "idempotent" or "transactional", a commit every ``commit_ms`` (0:
        back to back, as soon as records were sent), ``rate`` records/s (0: unpaced);
        ``retry_backoff_ms`` sets librdkafka's ``retry.backoff.ms`` (default 100), the wait
        before a transaction request the coordinator answered CONCURRENT_TRANSACTIONS (the
        previous transaction's markers not all written yet) is sent again."""
        from confluent_kafka import Producer, TopicPartition

        transactional = mode == "transactional"
        tuned = {"retry.backoff.ms": retry_backoff_ms} if retry_backoff_ms else {}
        label = (
            f"{mode}{f' (retry.backoff.ms {retry_backoff_ms})' if tuned else ''} "
            f"{f'every {commit_ms:g} ms' if commit_ms else 'back to back'} "
            f"at {'max' if not rate else f'{rate:,.0f}/s'}"
        )
        idle = self.broker_idle_rate(self.args.idle_s)
        if transactional:
            producer = self.transactional_producer(f"cost-{commit_ms:g}-{rate:g}-{retry_backoff_ms}", **tuned)
        else:
            producer = Producer(producer_config(self.settings, **{**SINK, "message.timeout.ms": 0}))
        generation, member_id = self.m1.membership()
        metadata = group_metadata(self.group, generation, member_id)
        delivered, errors = [0], []
        ack_latency: list[float] = []

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
                return
            delivered[0] += 1
            ack_latency.append(msg.latency())

        value = os.urandom(VALUE_BYTES)
        keys = [os.urandom(KEY_BYTES) for _ in range(64)]
        init_ms = None
        if transactional:
            t = time.perf_counter()
            producer.init_transactions(30)
            init_ms = _ms(time.perf_counter() - t)
            producer.begin_transaction()
        for p in range(PARTITIONS):  # warm-up, not measured: connections, metadata, first batches
            producer.produce(self.t_out, value, keys[0], partition=p)
        if transactional:
            producer.commit_transaction(30)
            producer.begin_transaction()
        producer.flush(30)
        produced = [0] * PARTITIONS
        chunks: list[tuple[float, int]] = []  # (produce time, records) since the last commit
        visible: list[tuple[float, int]] = []  # (seconds from produce to commit end, records)
        commit_lat: list[float] = []
        offsets_lat: list[float] = []
        flush_lat: list[float] = []
        commit_s = commit_ms / 1000
        chunk_max = 1000
        pid = os.getpid()
        cpu0 = cpu_seconds(pid)
        bcpu0 = cpu_seconds(self.broker_pid) if self.broker_pid else 0.0
        t0 = time.perf_counter()
        end = t0 + seconds
        next_commit = t0 + commit_s
        sent = 0
        produce = producer.produce
        topic = self.t_out
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            n = min(int((now - t0) * rate) - sent, chunk_max) if rate else chunk_max
            if n > 0:
                for _ in range(n):
                    p = sent % PARTITIONS
                    while True:
                        try:
                            produce(topic, value, keys[sent & 63], partition=p, on_delivery=on_delivery)
                            break
                        except BufferError:
                            producer.poll(0.01)
                    produced[p] += 1
                    sent += 1
                chunks.append((now, n))
                producer.poll(0)
            commit_due = bool(chunks) if commit_s == 0 else time.perf_counter() >= next_commit
            if not commit_due:
                if n <= 0:
                    time.sleep(0.0005)
                    producer.poll(0)
            else:
                started = time.perf_counter()
                offsets = [TopicPartition(self.t_in, p, produced[p]) for p in range(PARTITIONS)]
                if transactional:
                    producer.send_offsets_to_transaction(offsets, metadata, 30)
                    sent_offsets = time.perf_counter()
                    producer.commit_transaction(30)
                    done = time.perf_counter()
                    offsets_lat.append(sent_offsets - started)
                    producer.begin_transaction()
                else:
                    producer.flush(30)
                    flushed = time.perf_counter()
                    self.m1.commit({(self.t_in, p): produced[p] for p in range(PARTITIONS)})
                    done = time.perf_counter()
                    flush_lat.append(flushed - started)
                    offsets_lat.append(done - flushed)
                commit_lat.append(done - started)
                visible.extend((done - t, k) for t, k in chunks)
                chunks = []
                next_commit = started + commit_s
            self.progress.show(f"{label}: {sent:,} records, {len(commit_lat)} commits")
        if transactional:
            producer.commit_transaction(30)
        producer.flush(30)  # serves the last delivery reports
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(pid) - cpu0
        bcpu = (cpu_seconds(self.broker_pid) - bcpu0) if self.broker_pid else None
        per_record = 1e6 / max(delivered[0], 1)
        result: dict[str, Any] = {
            "mode": mode,
            "commit_every_ms": commit_ms,
            "offered_per_s": rate or None,
            "retry_backoff_ms": retry_backoff_ms or 100,
            "seconds": round(elapsed, 2),
            "records": delivered[0],
            "errors": len(errors),
            "records_per_s": round(delivered[0] / elapsed, 1),
            "commits": len(commit_lat),
            "commits_per_s": round(len(commit_lat) / elapsed, 1),
            "client_cpu_us_per_record": round(cpu * per_record, 2),
            "client_cpu_share": round(cpu / elapsed, 3),
            "broker_cpu_us_per_record": round(bcpu * per_record, 2) if bcpu is not None else None,
            "broker_cpu_share": round(bcpu / elapsed, 3) if bcpu is not None else None,
            "broker_idle_cpu_share_before": round(idle, 3) if idle is not None else None,
            "broker_cpu_us_per_record_net_of_idle": round((bcpu - (idle or 0) * elapsed) * per_record, 2)
            if bcpu is not None
            else None,
            "commit_ms": _summary(commit_lat),
            ("send_offsets_ms" if transactional else "offset_commit_aiokafka_ms"): _summary(offsets_lat),
            "ack_ms": _summary(ack_latency),
        }
        if transactional:
            result["init_transactions_ms"] = init_ms
            result["visible_ms"] = {
                "p50": _ms(weighted_percentile(visible, 50)),
                "p99": _ms(weighted_percentile(visible, 99)),
            }
            result["visible_means"] = "produce to commit_transaction's return (a read_committed reader sees it then)"
        else:
            result["flush_ms"] = _summary(flush_lat)
            result["visible_ms"] = {"p50": result["ack_ms"].get("p50"), "p99": result["ack_ms"].get("p99")}
            result["visible_means"] = "produce to the broker's acknowledgement"
        self.progress.done(
            f"{label}: {result['records_per_s']:,.0f} records/s, {result['commits_per_s']} commits/s, client "
            f"{result['client_cpu_us_per_record']} µs/record, broker {result['broker_cpu_us_per_record']} µs/record "
            f"(idle before {result['broker_idle_cpu_share_before']}), commit p50/p99 "
            f"{result['commit_ms'].get('p50')}/{result['commit_ms'].get('p99')} ms"
        )
        return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rate", type=float, default=10_000, help="offered records/s of the paced cases (default 10000)")
    p.add_argument(
        "--commit-ms", default="10,100,1000", help="commit cadences of the paced cases, ms (default 10,100,1000)"
    )
    p.add_argument("--seconds", type=float, default=6.0, help="length of each paced case (default 6)")
    p.add_argument(
        "--max-commit-ms",
        default="10,100",
        help="cadences of the unpaced cases, as fast as the producer goes ('' for none; default 10,100)",
    )
    p.add_argument("--max-seconds", type=float, default=4.0, help="length of each unpaced case (default 4)")
    p.add_argument(
        "--back-to-back",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also a transactional case committing back to back at --rate (default on)",
    )
    p.add_argument(
        "--tuned-backoff-ms",
        type=int,
        default=5,
        help="also the transactional 10 ms and back-to-back cases with this retry.backoff.ms (0: not; default 5)",
    )
    p.add_argument(
        "--idle-s",
        type=float,
        default=1.0,
        help="seconds the broker's idle CPU is sampled before each case (default 1)",
    )
    p.add_argument(
        "--visibility-rounds",
        type=int,
        default=30,
        help="single-record rounds timing when a reader sees a record (default 30)",
    )
    p.add_argument("--skip-feasibility", action="store_true", help="only the cost cases")
    p.add_argument("--out", type=Path, default=OUT, help=f"results file (default {OUT})")
    return p.parse_args(argv)


def _cadences(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


# Per 3-line order, counted on the agent code path (issue 13): 27 records produced, 13 of them
# changelog (state, receipts, redo); 7 messages consumed, 6 of them internal (3 ReserveStock,
# 3 ReservationUpdated), each with a receipt. One redo record per partition transaction: one
# per consumed message on a quiet stream (7); about 0.5 at the 1,500 orders/s target, where the
# batches fill (2 agents x 4 partitions x 100 windows/s = 800 partition transactions/s).
RECORDS_PER_ORDER = 27
REDO_PER_ORDER = (0.5, 7.0)
STATEFUL_AGENTS = 2  # order-agent and stock-agent run transactions (streams/app.py)
INTERNAL_RECEIPTS_PER_ORDER = 6
HOPS_PER_ORDER = 3


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    progress = Progress()
    if settings.uses_local_broker:
        local_kafka.start(settings)  # idempotent; never stopped here
        settings = settings.model_copy(update={"bootstrap_servers": local_kafka.bootstrap_address(settings)})
    import confluent_kafka

    began = time.time()
    result: dict[str, Any] = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        "shared with other engineers' work while measured",
        "loadavg_start": os.getloadavg(),
        "clients": {
            "confluent_kafka": confluent_kafka.version()[0],
            "librdkafka": confluent_kafka.libversion()[0],
            "aiokafka": __import__("aiokafka").__version__,
        },
        "record": {
            "value_bytes": VALUE_BYTES,
            "key_bytes": KEY_BYTES,
            "partitions": PARTITIONS,
            "producer": {**SINK, "acks": "all", "enable.idempotence": True},
        },
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    probe = Probe(settings, args, progress)
    result["broker_pid_measured"] = probe.broker_pid is not None
    try:
        if not args.skip_feasibility:
            result["feasibility"] = probe.feasibility()
        else:
            probe.m1 = probe.member("m1")
        cases = []
        for commit_ms in _cadences(args.commit_ms):
            for mode in ("idempotent", "transactional"):
                cases.append(probe.cost_case(mode, commit_ms, args.rate, args.seconds))
        if args.back_to_back:
            cases.append(probe.cost_case("transactional", 0, args.rate, args.seconds))
        if args.tuned_backoff_ms:
            for commit_ms in (10.0, 0.0):
                cases.append(
                    probe.cost_case(
                        "transactional", commit_ms, args.rate, args.seconds, retry_backoff_ms=args.tuned_backoff_ms
                    )
                )
        for commit_ms in _cadences(args.max_commit_ms):
            for mode in ("idempotent", "transactional"):
                cases.append(probe.cost_case(mode, commit_ms, 0, args.max_seconds))
        result["cases"] = cases
        if not args.skip_feasibility:
            result["feasibility"]["rebalance"] = probe.rebalance_fencing()
            result["feasibility"]["visibility"] = probe.visibility(args.visibility_rounds)
            result["feasibility"]["read_back"] = probe.read_committed()
            result["feasibility"]["faust_isolation_level"] = probe.faust_isolation_level()
        result["worker"] = relate_to_worker(
            cases,
            batch_window_ms=settings.batch_within_s * 1000,
            stateful_agents=STATEFUL_AGENTS,
            partitions=settings.partitions,
            hops=HOPS_PER_ORDER,
            records_per_order=RECORDS_PER_ORDER,
            redo_per_order=REDO_PER_ORDER,
            internal_receipts_per_order=INTERNAL_RECEIPTS_PER_ORDER,
        )
    finally:
        probe.close()
    result["loadavg_end"] = os.getloadavg()
    result["seconds"] = round(time.time() - began, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(
        f"\n{'mode (retry.backoff.ms)':<24}{'T ms':>6}{'offered/s':>10}{'records/s':>11}{'commits/s':>10}"
        f"{'client µs/rec':>14}{'broker µs/rec':>14}{'commit p50/p99 ms':>19}{'visible p50/p99 ms':>20}"
    )
    for c in result["cases"]:
        print(
            f"{c['mode'] + ' (' + str(c['retry_backoff_ms']) + ')':<24}{c['commit_every_ms']:>6g}"
            f"{(c['offered_per_s'] or 0):>10,.0f}{c['records_per_s']:>11,.0f}"
            f"{c['commits_per_s']:>10}{c['client_cpu_us_per_record']:>14}{str(c['broker_cpu_us_per_record']):>14}"
            f"{str(c['commit_ms'].get('p50')) + '/' + str(c['commit_ms'].get('p99')):>19}"
            f"{str(c['visible_ms'].get('p50')) + '/' + str(c['visible_ms'].get('p99')):>20}"
        )
    print(f"results: {args.out} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
