"""Crashes and scaling: SIGKILL mid-stream, recovery from the changelog alone, two workers.

The expected outcome comes from the reference model (tables.center.InventoryCenter) fed the
same events. The workload is built so that the outcome does not depend on how partitions
interleave (ample stock, every order names its warehouse), so the pipeline must match the
model exactly, position versions included: a position's version counts the changes applied
to it, so equal versions mean no command was applied twice.
"""

from __future__ import annotations

import random
import shutil
import time
import uuid
from typing import Any

import pytest

from connectors.produce import parse_event
from tables.center import InventoryCenter
from tests.integration.conftest import Deployment, wait_until
from streams.worker_process import WorkerProcess, http_json

pytestmark = pytest.mark.kafka

WAREHOUSES = ("WH001", "WH002")


def _workload(seed: int, skus: int = 12, orders: int = 600) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:6]
    sku_codes = [f"R{tag}-{i:03d}" for i in range(skus)]
    receipts = [
        {"eventType": "GoodsReceived", "eventId": f"rc-{tag}-{wh}", "occurredAt": "2025-11-22T08:00:00+08:00",
         "receiptNo": f"RC-{tag}-{wh}", "warehouseCode": wh,
         "lines": [{"sku": s, "sellableQty": 100_000} for s in sku_codes]}
        for wh in WAREHOUSES
    ]
    flow: list[dict[str, Any]] = []
    for n in range(orders):
        no = f"O{tag}-{n:05d}"
        lines = rng.sample(sku_codes, rng.randint(1, 3))
        unpaid = n % 5 == 0
        flow.append({
            "eventType": "OrderCreated", "eventId": f"oc-{no}", "occurredAt": "2025-11-22T09:00:00+08:00",
            "orderNo": no, "orderType": "NORMAL", "warehouseCode": WAREHOUSES[n % 2],
            "consignee": {"name": "王五", "phone": "13700137000", "address": "广州市"},
            "items": [{"sku": s, "quantity": rng.randint(1, 5), "price": 1} for s in lines],
            "totalAmount": 10, "timeRequirement": "STANDARD",
            **({"reservationExpiresAt": "2099-01-01T00:00:00+00:00"} if unpaid else {}),
        })
        if n % 7 == 3:
            flow.append({"eventType": "OrderCancelled", "eventId": f"cx-{no}", "occurredAt": "2025-11-22T09:30:00+08:00",
                         "orderNo": no, "reason": "customer"})
        elif unpaid and n % 2 == 0:
            flow.append({"eventType": "OrderPaid", "eventId": f"pd-{no}", "occurredAt": "2025-11-22T09:40:00+08:00",
                         "orderNo": no})
    return receipts, flow


def _expected(receipts: list[dict[str, Any]], flow: list[dict[str, Any]]) -> InventoryCenter:
    center = InventoryCenter()
    center.submit_all(parse_event(e) for e in receipts + flow)
    return center


def _matches(d: Deployment, w: WorkerProcess, center: InventoryCenter) -> list[str]:
    """Differences between the pipeline's views and the model (empty when equal)."""
    diffs: list[str] = []
    for sku, stock in sorted(center.tables.stock_by_sku.items()):
        for p in stock.positions:
            got = d.position(w, sku, p.warehouse_code)
            want = {"onHandQty": p.on_hand_qty, "reservedQty": p.reserved_qty, "availableQty": p.available_qty,
                    "inTransitQty": p.in_transit_qty, "version": p.version}
            if not got or any(got[k] != v for k, v in want.items()):
                diffs.append(f"{sku}@{p.warehouse_code}: want {want}, got {got and {k: got[k] for k in want}}")
    # Order versions count record changes, which depend on how the three input topics
    # interleave (a cancel may overtake the reservation answers); statuses and per-line
    # reservations do not.
    for no, o in sorted(center.tables.orders_by_no.items()):
        got = d.order(w, no)
        want_lines = [(line.sku, line.warehouse_code, line.reserved_qty) for line in o.lines]
        got_lines = got and [(x["sku"], x["warehouseCode"], x["reservedQty"]) for x in got["lines"]]
        if not got or got["status"] != o.status.value or got_lines != want_lines:
            diffs.append(f"{no}: want {o.status.value} {want_lines}, got {got and (got['status'], got_lines)}")
    return diffs


def _settle(d: Deployment, w: WorkerProcess, center: InventoryCenter, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    diffs: list[str] = []
    while time.monotonic() < deadline:
        diffs = _matches(d, w, center)
        if not diffs:
            return
        time.sleep(2.0)
    orders = [x for x in diffs if "@" not in x.split(":")[0]]
    positions = [x for x in diffs if "@" in x.split(":")[0]]
    raise AssertionError(
        f"{len(positions)} positions and {len(orders)} orders differ after {timeout_s}s, e.g.:\n"
        + "\n".join(positions[:6] + orders[:12])
    )


def _ready_positions(d: Deployment, w: WorkerProcess, receipts: list[dict[str, Any]]) -> None:
    first = receipts[-1]["lines"][-1]["sku"]
    wait_until(lambda: d.position(w, first, receipts[-1]["warehouseCode"]), timeout_s=60)


def _processed_some_not_all(d: Deployment, w: WorkerProcess, flow: list[dict[str, Any]]) -> bool:
    """The worker has consumed part of the flow from the orders topic, not all of it."""
    import urllib.request

    try:
        text = urllib.request.urlopen(f"{w.url}/metrics", timeout=2).read().decode()  # noqa: S310
    except OSError:
        return False
    consumed = sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
        if line.startswith("inventory_events_in_total") and f'topic="{d.topics.orders}"' in line
    )
    return 0 < consumed < len(flow)


# After a SIGKILL restart under backlog, faust-streaming 0.15.3 loses records it fetched;
# streams/faust_private.py works around every path found (the last: its commit passed a single
# missing record). A plain test since then: any loss fails CI.
@pytest.mark.parametrize("lose_local_state", [False, True], ids=["rocksdb-kept", "rocksdb-deleted"])
def test_sigkill_mid_stream_then_restart_equals_an_uninterrupted_run(
    fresh_deployment: Deployment, lose_local_state: bool
) -> None:
    d = fresh_deployment
    receipts, flow = _workload(seed=7 if lose_local_state else 3)
    center = _expected(receipts, flow)
    data_dir = d.root / f"crash-{lose_local_state}"
    worker = d.start_worker(f"crash-{int(lose_local_state)}", data_dir=data_dir)
    d.publish(receipts)
    _ready_positions(d, worker, receipts)

    d.publish(flow)
    wait_until(lambda: _processed_some_not_all(d, worker, flow), timeout_s=60, interval_s=0.05)
    worker.kill()  # SIGKILL: no commit, no flush, mid-stream
    if lose_local_state:
        shutil.rmtree(data_dir)

    restarted = d.start_worker(f"crash-{int(lose_local_state)}-again", data_dir=data_dir)
    _settle(d, restarted, center)
    restarted.stop()


def test_two_workers_share_the_partitions_and_one_takes_over_when_the_other_dies(
    fresh_deployment: Deployment,
) -> None:
    d = fresh_deployment
    receipts, flow = _workload(seed=11)
    center = _expected(receipts, flow)
    first = d.start_worker("pair-a")
    second = d.start_worker("pair-b")
    # both are members of the group: each owns some partitions of the stock table
    wait_until(lambda: _assignments_split(first, second), timeout_s=60)

    d.publish(receipts)
    _ready_positions(d, second, receipts)
    d.publish(flow)
    # any worker answers for any key (table_route proxies to the owner), one at a time or
    # in a batch fanned out to the owners
    _settle(d, first, center)
    _settle(d, second, center)
    skus = sorted(center.tables.stock_by_sku)
    for w in (first, second):
        _, batch = http_json(f"{w.url}/inventory?skus={','.join(skus)}")
        assert batch["missing"] == []
        for sku in skus:
            want = {p.warehouse_code: p.reserved_qty for p in center.tables.stock_by_sku[sku].positions}
            got = {p["warehouseCode"]: p["reservedQty"] for p in batch["items"][sku]["warehouses"]}
            assert got == want, (w.url, sku)

    first.kill()
    _settle(d, second, center, timeout_s=120)
    second.stop()


def _assignments_split(a: WorkerProcess, b: WorkerProcess) -> bool:
    """Both workers see the same routing ({host: {changelog: [partitions]}}), and each host
    owns partitions of the stock table."""
    from streams.worker_process import http_json

    seen = []
    for w in (a, b):
        status, body = http_json(f"{w.url}/router/")
        if status != 200 or not isinstance(body, dict):
            return False
        seen.append(body)
    hosts = seen[0]
    stock_owners = [h for h, tables in hosts.items() if any("stock-state" in t and p for t, p in tables.items())]
    return seen[0] == seen[1] and len(stock_owners) == 2


def test_a_worker_whose_changelogs_were_recreated_recovers_from_them(fresh_deployment: Deployment) -> None:
    """Local state ahead of its changelog (the topics were deleted and recreated, the folder
    stayed): Faust would refuse to start on every restart (ConsistencyError). The worker
    discards the local state and recovers from what Kafka holds."""
    from confluent_kafka.admin import AdminClient

    from streams.kafka_config import admin_config
    from streams.topics import create_topics
    from tables.declarations import TABLES

    d = fresh_deployment
    receipts, _ = _workload(seed=5, skus=3, orders=0)
    data_dir = d.root / "recreated"
    worker = d.start_worker("recreated", data_dir=data_dir)
    d.publish(receipts)
    _ready_positions(d, worker, receipts)
    worker.stop()  # a clean shutdown: the local state is kept

    changelogs = [d.topics.changelog(table) for table in TABLES]
    admin = AdminClient(admin_config(d.settings))
    for future in admin.delete_topics(changelogs, operation_timeout=30).values():
        future.result()
    wait_until(lambda: not set(changelogs) & set(admin.list_topics(timeout=10).topics), timeout_s=60)
    create_topics(d.settings)

    again = d.start_worker("recreated-again", data_dir=data_dir)  # waits until it is ready
    assert "changelog was recreated" in again.log_tail(200)
    sku, warehouse = receipts[0]["lines"][0]["sku"], receipts[0]["warehouseCode"]
    assert d.position(again, sku, warehouse) is None  # the state is what Kafka holds: nothing
    d.publish([{**receipts[0], "eventId": f"{receipts[0]['eventId']}-again", "receiptNo": "RC-AGAIN"}])
    wait_until(lambda: d.position(again, sku, warehouse), timeout_s=60)
