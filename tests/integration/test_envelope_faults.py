"""Issue 13's acceptance on the real broker: envelopes survive kills on each side, an external
event re-sent an hour later reserves once, and a rebalance leaves no stale state behind.

The day is day_end.py's ``exact_workload`` (ample stock, every order names its warehouse), so
the pipeline must end exactly as the model: positions with their versions (a version counts the
changes applied: equal versions mean no reservation applied twice) and order states.

* Kills (streams/faults.py, ``INVENTORY_KILL_AT``) while the day is published in bursts:
  ``commit:orders`` / ``commit:stock`` leave a committed transaction (its changelog
  acknowledged) whose envelopes and outputs were never sent: after the restart they must be on
  their topics, sent by the outbox; ``flushed`` (a flush after both tables applied envelopes)
  leaves every record acknowledged and no input offset committed: the restarted worker reads
  it all again and must skip the envelopes it applied (its duplicate-envelope counters). On
  every internal topic, one envelope number never carries two contents.
* An OrderCreated published again after the day settled and an hour of later traffic: nothing
  moves, and what it sends again is what it sent, versions included.
* Two workers: partitions move to a second worker and back; the first must not answer from
  state it held before they left.
"""

from __future__ import annotations

import hashlib
import re
import signal
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas.codec import decode
from schemas.internal import Envelope
from streams import faults
from streams.envelopes import partition_for
from streams.kafka_config import consumer_config
from streams.worker_process import WorkerProcess
from tests.integration.conftest import Deployment, wait_until
from tests.integration.day_end import (
    assignments_split,
    exact_differences,
    exact_model,
    exact_workload,
    owned,
    ready_positions,
    settle_exactly,
    wait_idle,
)

pytestmark = pytest.mark.kafka

ORDERS = 240  # a few hundred order events; each crash test takes ~30 s on the shared 2-core machine
BURSTS, PAUSE_S = 8, 0.4  # the day arrives over ~4 s: Faust commits (every 1 s) fall mid-day
Raw = tuple[int, bytes | None, bytes]  # partition, key, value


# --- reading the topics and the worker --------------------------------------------------------


def raw_records(d: Deployment, topic: str) -> list[Raw]:
    """Every record of ``topic`` up to its end, per partition in offset order."""
    consumer = Consumer(consumer_config(d.settings, group_id=f"check-{uuid.uuid4().hex[:8]}"))
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(d.settings.partitions)
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        read = {p: 0 for p in ends}
        found: list[Raw] = []
        deadline = time.monotonic() + 30
        while any(read[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() or msg.offset() >= ends[msg.partition()]:
                continue
            found.append((msg.partition(), msg.key(), msg.value()))
            read[msg.partition()] = msg.offset() + 1
        assert all(read[p] >= ends[p] for p in ends), f"{topic}: read {read} of {ends}"
        return found
    finally:
        consumer.close()


def digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()[:16]  # as streams/faults.py names a record


@dataclass
class Envelopes:
    """The envelopes of an internal topic, by (partition, source, seq)."""

    copies: Counter[tuple[int, str, int]]
    contents: dict[tuple[int, str, int], set[bytes]]

    @classmethod
    def of(cls, records: list[Raw]) -> Envelopes:
        copies: Counter[tuple[int, str, int]] = Counter()
        contents: dict[tuple[int, str, int], set[bytes]] = {}
        for partition, _, value in records:
            envelope = decode(value, validate=False)
            if isinstance(envelope, Envelope):
                number = (partition, envelope.source, envelope.seq)
                copies[number] += 1
                contents.setdefault(number, set()).add(value)
        return cls(copies, contents)

    @property
    def resent(self) -> int:
        """Envelopes found more than once (sent again by an outbox)."""
        return sum(1 for n in self.copies.values() if n > 1)

    @property
    def conflicting(self) -> list[tuple[int, str, int]]:
        """Envelope numbers under which two different contents were sent (must be none)."""
        return [number for number, values in self.contents.items() if len(values) > 1]


def metric(worker: WorkerProcess, name: str) -> dict[str, float]:
    """label value -> value of the worker's Prometheus series ``name`` (one label)."""
    text = urllib.request.urlopen(f"{worker.url}/metrics", timeout=5).read().decode()  # noqa: S310
    pattern = re.compile(re.escape(name) + r'\{\w+="([^"]*)"\} (\S+)')
    found = {}
    for line in text.splitlines():
        hit = pattern.fullmatch(line)
        if hit:
            found[hit.group(1)] = float(hit.group(2))
    return found


def publish_in_bursts(d: Deployment, events: list[dict[str, Any]]) -> None:
    size = -(-len(events) // BURSTS)
    for start in range(0, len(events), size):
        d.publish(events[start : start + size])
        time.sleep(PAUSE_S)


# --- kills on each side of an envelope ----------------------------------------------------------


@dataclass
class Crash:
    restarted: WorkerProcess
    killed_at: str  # the kill line's point and count
    unsent: list[tuple[str, int, str]]  # the killed transaction's records: topic, partition, digest
    took_s: float


def crash_then_restart(d: Deployment, point: str, n: int, seed: int) -> Crash:
    """A worker armed to die at ``point``'s n-th arrival drains the day published in bursts,
    dies there; a worker on the same state folder finishes it and must equal the model."""
    began = time.monotonic()
    receipts, flow = exact_workload(seed=seed, skus=12, orders=ORDERS)
    model = exact_model(receipts, flow)
    data_dir = d.root / "state"
    d.env[faults.ENV] = f"{point}@{n}"
    try:
        armed = d.start_worker("armed", data_dir=data_dir)
    finally:
        del d.env[faults.ENV]
    d.publish(receipts)
    ready_positions(d, armed, receipts)
    publish_in_bursts(d, flow)
    wait_until(lambda: not armed.alive(), timeout_s=60)
    assert armed.proc is not None and armed.proc.returncode == -signal.SIGKILL, armed.log_tail(30)
    # Faust logs what the process writes to stderr: the kill line carries a log prefix
    line = next(x for x in armed.log_path.read_text(errors="replace").splitlines() if f"{faults.ENV}: killed at" in x)
    killed_at, _, detail = line.split(f"{faults.ENV}: killed at ", 1)[1].strip().partition(": ")
    unsent = [(m[1], int(m[2]), m[3]) for m in re.finditer(r"(\S+)\[(-?\d+)\]=([0-9a-f]{16})", detail)]
    assert killed_at == f"{point} #{n}" and (unsent or point == "flushed"), line

    restarted = d.start_worker("restarted", data_dir=data_dir)
    settle_exactly(d, restarted, model, timeout_s=120)
    return Crash(restarted, killed_at, unsent, time.monotonic() - began)


def envelopes_on(d: Deployment) -> dict[str, Envelopes]:
    t = d.topics
    return {name: Envelopes.of(raw_records(d, name)) for name in (t.stock_commands, t.order_inbox)}


def assert_one_content_per_envelope_number(d: Deployment) -> dict[str, Envelopes]:
    found = envelopes_on(d)
    for name, envelopes in found.items():
        assert envelopes.copies, f"no envelope on {name}"
        assert not envelopes.conflicting, f"{name}: numbers sent with two contents: {envelopes.conflicting[:5]}"
    return found


def assert_sent_by_the_outbox(d: Deployment, crash: Crash) -> Counter[str]:
    """Every record of the killed transaction is on its topic (in its envelope's partition):
    the killed worker never sent them, so the restarted one's outbox did."""

    def found() -> Counter[str]:
        copies: Counter[str] = Counter()
        missing = set(crash.unsent)
        for topic in {topic for topic, _, _ in crash.unsent}:
            for partition, _, value in raw_records(d, topic):
                h = digest(value)
                for record in ((topic, partition, h), (topic, -1, h)):  # -1: partitioned by its key
                    if record in set(crash.unsent):
                        copies[topic] += 1
                        missing.discard(record)
        return copies if not missing else Counter()

    return wait_until(found, timeout_s=30, interval_s=1.0)


def test_a_kill_after_the_orders_commit_before_its_envelopes_are_sent(fresh_deployment: Deployment) -> None:
    d = fresh_deployment
    crash = crash_then_restart(d, "commit:orders", n=6, seed=41)
    sent = assert_sent_by_the_outbox(d, crash)
    envelopes = assert_one_content_per_envelope_number(d)
    assert any(t == d.topics.stock_commands for t, _, _ in crash.unsent)
    print(
        f"\ncommit:orders: killed at {crash.killed_at} with {len(crash.unsent)} records unsent; found after the "
        f"restart {dict(sent)}; envelopes re-sent {[e.resent for e in envelopes.values()]}; duplicates skipped "
        f"{metric(crash.restarted, 'inventory_duplicates_total')}; {crash.took_s:.1f}s"
    )
    crash.restarted.stop()


def test_a_kill_after_the_stock_commit_before_its_answers_are_sent(fresh_deployment: Deployment) -> None:
    d = fresh_deployment
    crash = crash_then_restart(d, "commit:stock", n=6, seed=42)
    sent = assert_sent_by_the_outbox(d, crash)
    envelopes = assert_one_content_per_envelope_number(d)
    assert any(t == d.topics.order_inbox for t, _, _ in crash.unsent)
    duplicates = metric(crash.restarted, "inventory_duplicates_total")
    # the commands the killed transaction applied are read again (their offsets were never
    # committed) and skipped by their envelope numbers
    assert duplicates.get("stock-agent-envelope", 0) > 0, duplicates
    print(
        f"\ncommit:stock: killed at {crash.killed_at} with {len(crash.unsent)} records unsent; found after the "
        f"restart {dict(sent)}; envelopes re-sent {[e.resent for e in envelopes.values()]}; duplicates skipped "
        f"{duplicates}; {crash.took_s:.1f}s"
    )
    crash.restarted.stop()


def test_a_kill_after_the_flush_before_the_offsets_are_committed(fresh_deployment: Deployment) -> None:
    d = fresh_deployment
    crash = crash_then_restart(d, "flushed", n=2, seed=43)
    envelopes = assert_one_content_per_envelope_number(d)
    duplicates = metric(crash.restarted, "inventory_duplicates_total")
    # everything since the last commit is read again: envelopes on both sides are skipped
    assert duplicates.get("stock-agent-envelope", 0) > 0 and duplicates.get("order-agent-envelope", 0) > 0, duplicates
    print(
        f"\nflushed: killed at {crash.killed_at}; envelopes re-sent {[e.resent for e in envelopes.values()]}; "
        f"duplicates skipped {duplicates}; {crash.took_s:.1f}s"
    )
    crash.restarted.stop()


# --- an external event re-sent an hour later ------------------------------------------------------


def an_hour_later(flow: list[dict[str, Any]], partitions: int) -> list[dict[str, Any]]:
    """New orders on the same SKUs, an hour after the day's, on every order partition."""
    created = [e for e in flow if e["eventType"] == "OrderCreated"]
    later = []
    for n, e in enumerate(created[:40]):
        no = f"{e['orderNo']}-later{n}"
        later.append({**e, "orderNo": no, "eventId": f"oc-{no}", "occurredAt": "2025-11-22T10:00:00+08:00"})
    assert {partition_for(e["orderNo"].encode(), partitions) for e in later} == set(range(partitions))
    return later


def order_status_records(d: Deployment, order_nos: set[str]) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = {no: [] for no in order_nos}
    for _, k, value in raw_records(d, d.topics.order_status):
        if k is not None and k.decode() in found:
            found[k.decode()].append(value)
    return found


def test_an_order_created_again_an_hour_later_does_not_reserve_twice(fresh_deployment: Deployment) -> None:
    began = time.monotonic()
    d = fresh_deployment
    receipts, flow = exact_workload(seed=44, skus=12, orders=120)
    later = an_hour_later(flow, d.settings.partitions)
    model = exact_model(receipts, flow + later)
    worker = d.start_worker("resend")
    d.publish(receipts)
    ready_positions(d, worker, receipts)
    d.publish(flow)
    d.publish(later)  # the partitions' event time (and receipt retention clocks) move an hour on
    settle_exactly(d, worker, model)
    wait_idle(d, worker)

    cancelled = {e["orderNo"] for e in flow if e["eventType"] == "OrderCancelled"}
    created = {e["orderNo"]: e for e in flow if e["eventType"] == "OrderCreated"}
    reserved = next(
        no
        for no in created
        if no not in cancelled and any(line.reserved_qty for line in model.tables.orders_by_no[no].lines)
    )
    again = [created[reserved], created[min(cancelled)]]  # the same records: same eventId, same content
    orders_before = {e["orderNo"]: d.order(worker, e["orderNo"]) for e in again}
    status_before = order_status_records(d, set(orders_before))
    duplicates_before = metric(worker, "inventory_duplicates_total").get("order-agent", 0)

    d.publish(again)
    wait_until(
        lambda: metric(worker, "inventory_duplicates_total").get("order-agent", 0) >= duplicates_before + len(again),
        timeout_s=30,
    )
    wait_idle(d, worker)
    assert exact_differences(d, worker, model) == []  # every position (with its version) and order unchanged
    for no, before in orders_before.items():
        assert d.order(worker, no) == before
    resent = {}
    for no, values in order_status_records(d, set(orders_before)).items():
        old = status_before[no]
        assert values[: len(old)] == old
        new = values[len(old) :]
        assert set(new) <= set(old), f"{no}: sent again, but not as first sent"
        versions = sorted(decode(v, validate=False).version for v in new)
        resent[no] = versions
    print(
        f"\nre-sent an hour later: {len(again)} OrderCreated recognised as duplicates; order-status records "
        f"sent again (versions) {resent}; {time.monotonic() - began:.1f}s"
    )
    worker.stop()


# --- a rebalance and the state cache ------------------------------------------------------------


def test_partitions_that_move_away_and_back_are_not_served_from_stale_state(fresh_deployment: Deployment) -> None:
    began = time.monotonic()
    d = fresh_deployment
    receipts, flow = exact_workload(seed=45, skus=12, orders=180)
    third = len(flow) // 3
    stock_changelog = d.topics.changelog("stock-state")
    order_changelog = d.topics.changelog("order-state")
    first = d.start_worker("first")
    d.publish(receipts)
    ready_positions(d, first, receipts)
    d.publish(flow[:third])
    settle_exactly(d, first, exact_model(receipts, flow[:third]))  # every key read (and cached) by first

    second = d.start_worker("second")
    wait_until(lambda: assignments_split(first, second), timeout_s=90)
    moved = {"stock": owned(second, stock_changelog), "orders": owned(second, order_changelog)}
    d.publish(flow[third : 2 * third])  # the second worker changes the keys of the partitions it took
    settle_exactly(d, first, exact_model(receipts, flow[: 2 * third]))

    second.stop()  # its partitions come back to the first worker
    wait_until(
        lambda: owned(first, stock_changelog) == list(range(4)) and owned(first, order_changelog) == list(range(4)),
        timeout_s=90,
    )
    d.publish(flow[2 * third :])  # applied on what the second worker left, not on what first cached
    settle_exactly(d, first, exact_model(receipts, flow))
    print(
        f"\nrebalance: partitions moved to the second worker and back {moved}; every position and order "
        f"exact after the last third; {time.monotonic() - began:.1f}s"
    )
    first.stop()
