"""The benchmark's Quix Streams peer (bench/peer_quix) computes what our core computes.

The peer runs as the benchmark harness runs it: ``.venv-quix/bin/python -m
bench.peer_quix.app`` against a deployment of its own on the real broker. Events go in
through our ``EventPublisher``; the peer's last InventoryChanged per (sku, warehouse) and
last OrderStatusChanged per order must equal those of ``InventoryCenter`` fed the same
events (expiry ticks excepted: neither side gets any, the peer has no timer).

Two parts. The seed's sample day goes in one event at a time, each awaited (as in
test_pipeline_flows: time separates them in real life), which covers presale, returns,
transfers and counts. Then a bulk of concurrent orders goes in at once, built so that its
result does not depend on how the partitions interleave (every line names its warehouse or
its SKU is stocked in one warehouse, a short line is short whatever the order): it checks
the concurrent topology - repartition, reservation answers, all-or-nothing release.

Skipped when .venv-quix is missing, unless CI=true: then bench/peer_quix/setup_venv.sh makes it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.peer_quix.topics import TopicNames, default_output_prefix
from schemas.base import Event
from schemas.codec import decode
from schemas.events import parse_event
from schemas.outputs import InventoryChanged, OrderStatusChanged
from streams.kafka_config import admin_config, consumer_config
from streams.topics import Topics
from tables.center import InventoryCenter
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
PEER_PYTHON = ROOT / ".venv-quix" / "bin" / "python"
SETUP = ROOT / "bench" / "peer_quix" / "setup_venv.sh"
SEED_DAY = ROOT / "connectors" / "samples" / "seed-day.jsonl"

QUANTITIES = (
    "available_qty",
    "reserved_qty",
    "in_transit_qty",
    "total_qty",
    "on_hand_qty",
    "presold_qty",
    "outbound_qty",
    "damaged_qty",
    "version",
)


@pytest.fixture(scope="module")
def peer_python() -> Path:
    if os.environ.get("CI") == "true":
        subprocess.run([str(SETUP)], check=True, timeout=1200)
    elif not PEER_PYTHON.exists():
        pytest.skip(
            f"{PEER_PYTHON.parent.parent.name} is missing: run {SETUP.relative_to(ROOT)} "
            "(with CI=true this test makes it)"
        )
    return PEER_PYTHON


@dataclass
class Peer:
    proc: subprocess.Popen[bytes]
    names: TopicNames
    stats_out: Path
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@pytest.fixture
def start_peer(peer_python: Path, fresh_deployment: Deployment, tmp_path: Path) -> Iterator[Any]:
    """Start the peer on the deployment's topics, as the harness does; clean up its topics."""
    settings = fresh_deployment.settings
    group = f"peer-quix-{uuid.uuid4().hex[:8]}"
    peers: list[Peer] = []

    def start(expect: int) -> Peer:
        stats_out, log = tmp_path / "stats.json", tmp_path / "peer.log"
        cmd = [
            str(peer_python),
            "-m",
            "bench.peer_quix.app",
            "--bootstrap",
            settings.bootstrap_servers,
            "--topic-prefix",
            settings.topic_prefix,
            "--group",
            group,
            "--state-dir",
            str(tmp_path / "state"),
            "--expect",
            str(expect),
            "--stats-out",
            str(stats_out),
            "--idle-exit-s",
            "120",
            "--loglevel",
            "INFO",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        peer = Peer(proc, TopicNames.of(settings.topic_prefix), stats_out, log)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        if peer.proc.poll() is None:
            peer.proc.kill()
            peer.proc.wait(timeout=30)
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(admin_config(settings))
    own_prefix = default_output_prefix(settings.topic_prefix)
    own = [t for t in admin.list_topics(timeout=30).topics if t.startswith(own_prefix) or f"__{group}--" in t]
    if own:
        for future in admin.delete_topics(own, operation_timeout=30).values():
            try:
                future.result()
            except Exception:  # noqa: BLE001 - best-effort cleanup on a shared broker
                pass


class PeerOutputs:
    """The peer's last InventoryChanged per (sku, warehouse) and status per order, kept
    current by one consumer that reads its two output topics from the beginning.

    The peer creates these topics when it starts; they are assigned explicitly once they
    exist (a subscription made before would only notice them at a metadata refresh)."""

    def __init__(self, deployment: Deployment, names: TopicNames, timeout_s: float = 120) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.consumer = Consumer(consumer_config(deployment.settings, group_id=f"peer-check-{uuid.uuid4().hex[:8]}"))
        wanted = (names.inventory_changes, names.order_status)
        deadline = time.monotonic() + timeout_s
        while True:
            topics = self.consumer.list_topics(timeout=10).topics
            if all(t in topics and topics[t].partitions for t in wanted):
                break
            assert time.monotonic() < deadline, f"the peer did not create {wanted} within {timeout_s}s"
            time.sleep(0.5)
        self.consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in wanted for p in topics[t].partitions])
        self.positions: dict[tuple[str, str], tuple[int, ...]] = {}
        self.statuses: dict[str, tuple[int, str]] = {}

    def refresh(self) -> None:
        for msg in self.consumer.consume(num_messages=10_000, timeout=0.3):
            if msg.error():
                continue
            take(decode(msg.value(), validate=False), self.positions, self.statuses)

    def close(self) -> None:
        self.consumer.close()


def take(
    event: object, positions: dict[tuple[str, str], tuple[int, ...]], statuses: dict[str, tuple[int, str]]
) -> None:
    """Keep the latest (highest version) of each position and order status."""
    if isinstance(event, InventoryChanged):
        key = (event.sku, event.warehouse_code)
        values = tuple(getattr(event, f) for f in QUANTITIES)
        if key not in positions or positions[key][-1] < event.version:
            positions[key] = values
    elif isinstance(event, OrderStatusChanged):
        if event.order_no not in statuses or statuses[event.order_no][0] < event.version:
            statuses[event.order_no] = (event.version, str(event.status))


def reference_state(center: InventoryCenter) -> tuple[dict[tuple[str, str], tuple[int, ...]], dict[str, str]]:
    positions: dict[tuple[str, str], tuple[int, ...]] = {}
    statuses: dict[str, tuple[int, str]] = {}
    for event in center.outputs:
        take(event, positions, statuses)
    return positions, {k: v for k, (_, v) in statuses.items()}


def differences(outputs: PeerOutputs, center: InventoryCenter) -> list[str]:
    positions, statuses = reference_state(center)
    peer_statuses = {k: v for k, (_, v) in outputs.statuses.items()}
    diffs = [
        f"{key}: peer {outputs.positions.get(key)} reference {want}"
        for key, want in sorted(positions.items())
        if outputs.positions.get(key) != want
    ]
    diffs += [f"{key}: peer has it, reference not" for key in sorted(set(outputs.positions) - set(positions))]
    diffs += [
        f"order {no}: peer {peer_statuses.get(no)} reference {want}"
        for no, want in sorted(statuses.items())
        if peer_statuses.get(no) != want
    ]
    return diffs


def await_same(outputs: PeerOutputs, center: InventoryCenter, peer: Peer, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    diffs: list[str] = []
    while time.monotonic() < deadline:
        outputs.refresh()
        diffs = differences(outputs, center)
        if not diffs:
            return
        if peer.proc.poll() is not None:
            break
        time.sleep(0.1)
    listed = "\n  ".join(diffs[:20])
    raise AssertionError(
        f"after {what}, the peer differs from InventoryCenter ({len(diffs)}):\n  {listed}\n"
        f"peer exit code {peer.proc.poll()}; its log ends:\n{peer.log_tail()}"
    )


def seed_day() -> list[Event]:
    lines = SEED_DAY.read_text(encoding="utf-8").splitlines()
    return [parse_event(json.loads(line)) for line in lines if line.strip()]


def bulk(seed: int = 7) -> tuple[list[Event], list[Event]]:
    """(receipts, orders): concurrent orders whose outcome does not depend on interleaving."""
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:6].upper()
    at = datetime(2025, 11, 26, 8, 0, tzinfo=UTC)
    both = [f"BK{tag}-{i}" for i in range(6)]  # stocked in WH001 and WH002: lines name the warehouse
    single = [f"BS{tag}-{i}" for i in range(3)]  # WH001 only: the center chooses, trivially
    rare = [f"BR{tag}-{i}" for i in range(8)]  # 2 units, one order each asking 5: rejected
    n = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> Event:
        i = next(n)
        return parse_event(
            {
                "eventType": kind,
                "eventId": f"bk-{tag}-{i}",
                "occurredAt": (at + timedelta(seconds=i)).isoformat(),
                **fields,
            }
        )

    receipts = [
        event(
            "GoodsReceived",
            receiptNo=f"RC{tag}-1",
            warehouseCode="WH001",
            lines=[{"sku": s, "sellableQty": 500} for s in both + single]
            + [{"sku": s, "sellableQty": 2} for s in rare],
        ),
        event(
            "GoodsReceived",
            receiptNo=f"RC{tag}-2",
            warehouseCode="WH002",
            lines=[{"sku": s, "sellableQty": 400} for s in both],
        ),
    ]
    consignee = {"name": "张三", "phone": "13800138000", "address": "北京市朝阳区XX街道XX号"}
    orders: list[Event] = []
    for i in range(240):
        order_no = f"BO{tag}{i:04d}"
        items = [
            {"sku": s, "quantity": rng.randint(1, 3), "price": 10, "warehouseCode": rng.choice(["WH001", "WH002"])}
            for s in rng.sample(both, rng.randint(1, 3))
        ]
        if i % 5 == 0:
            items.append({"sku": rng.choice(single), "quantity": rng.randint(1, 3), "price": 10})
        if i < len(rare):
            items.append({"sku": rare[i], "quantity": 5, "price": 10})  # short: all-or-nothing release
        unpaid = 200 <= i < 230
        orders.append(
            event(
                "OrderCreated",
                orderNo=order_no,
                orderType="NORMAL",
                consignee=consignee,
                items=items,
                totalAmount=10 * sum(x["quantity"] for x in items),
                timeRequirement="STANDARD",
                **({"reservationExpiresAt": (at + timedelta(days=1)).isoformat()} if unpaid else {}),
            )
        )
        if 200 <= i < 215:
            orders.append(event("OrderPaid", orderNo=order_no))
        if 230 <= i < 240 or 215 <= i < 220:
            orders.append(event("OrderCancelled", orderNo=order_no, reason="changed mind"))
    return receipts, orders


def test_peer_topic_names_are_ours(fresh_deployment: Deployment) -> None:
    ours, peer = Topics(fresh_deployment.settings), TopicNames.of(fresh_deployment.settings.topic_prefix)
    assert peer.inputs == (ours.orders, ours.shipments, ours.stock_movements)
    assert not set(peer.own) & set(ours.all()), "the peer must not write to our topics"


def test_peer_matches_the_reference_core(start_peer: Any, fresh_deployment: Deployment) -> None:
    d = fresh_deployment
    day = seed_day()
    receipts, orders = bulk()
    peer: Peer = start_peer(expect=len(day) + len(receipts) + len(orders))
    outputs = PeerOutputs(d, peer.names)
    center = InventoryCenter()
    try:
        for i, event in enumerate(day, 1):
            d.publish([event])
            center.submit(event)
            await_same(
                outputs, center, peer, f"seed event {i} ({type(event).__name__})", timeout_s=120 if i == 1 else 60
            )
        assert any(status == "PARTIALLY_RETURNED" for _, status in outputs.statuses.values())

        for phase in (receipts, orders):
            d.publish(list(phase))
            center.submit_all(phase)
            await_same(outputs, center, peer, f"{len(phase)} bulk events", timeout_s=120)
        _, statuses = reference_state(center)
        bulk_statuses = [s for no, s in statuses.items() if no.startswith("BO")]
        assert bulk_statuses.count("REJECTED") == 8
        assert bulk_statuses.count("CANCELLED") == 15
        assert bulk_statuses.count("RESERVED") == 10  # created unpaid, never paid
        assert bulk_statuses.count("OUTBOUND_REQUESTED") == 240 - 8 - 15 - 10

        assert peer.proc.wait(timeout=60) == 0, peer.log_tail()
    finally:
        outputs.close()
    stats = json.loads(peer.stats_out.read_text())
    assert stats["consumed"] == len(day) + len(receipts) + len(orders)
    assert stats["errors"] == 0
    assert stats["stop_reason"].startswith("expected inputs consumed")
    assert stats["produced"] == sum(stats["produced_by_topic"].values()) > 0
    for field in ("seconds", "events_per_s", "cpu_s", "peak_rss_mb", "first_input_ts", "last_output_ts"):
        assert isinstance(stats[field], float) and stats[field] > 0, field
