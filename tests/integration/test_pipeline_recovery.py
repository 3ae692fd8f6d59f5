"""Crashes and scaling: SIGKILL mid-stream, recovery from the changelog alone, two workers.

The expected outcome comes from the reference model (tables.center.InventoryCenter) fed the
same events. The workload (tests/integration/day_end.py ``exact_workload``) is built so that
the outcome does not depend on how partitions interleave (ample stock, every order names its
warehouse), so the pipeline must match the model exactly, position versions included: a
position's version counts the changes applied to it, so equal versions mean no command was
applied twice.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from streams.worker_process import WorkerProcess, http_json
from tests.integration.conftest import Deployment, wait_until
from tests.integration.day_end import (
    assignments_split,
    exact_model,
    exact_workload,
    ready_positions,
    settle_exactly,
)

pytestmark = pytest.mark.kafka


def _processed_some_not_all(d: Deployment, w: WorkerProcess, flow: list[dict[str, Any]]) -> bool:
    """The worker has consumed part of the flow from the orders topic, not all of it."""
    import urllib.request

    try:
        text = urllib.request.urlopen(f"{w.url}/metrics", timeout=2).read().decode()  # noqa: S310
    except OSError:
        return False
    consumed = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
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
    receipts, flow = exact_workload(seed=7 if lose_local_state else 3)
    center = exact_model(receipts, flow)
    data_dir = d.root / f"crash-{lose_local_state}"
    worker = d.start_worker(f"crash-{int(lose_local_state)}", data_dir=data_dir)
    d.publish(receipts)
    ready_positions(d, worker, receipts)

    d.publish(flow)
    wait_until(lambda: _processed_some_not_all(d, worker, flow), timeout_s=60, interval_s=0.05)
    worker.kill()  # SIGKILL: no commit, no flush, mid-stream
    if lose_local_state:
        shutil.rmtree(data_dir)

    restarted = d.start_worker(f"crash-{int(lose_local_state)}-again", data_dir=data_dir)
    settle_exactly(d, restarted, center)
    restarted.stop()


def test_two_workers_share_the_partitions_and_one_takes_over_when_the_other_dies(
    fresh_deployment: Deployment,
) -> None:
    d = fresh_deployment
    receipts, flow = exact_workload(seed=11)
    center = exact_model(receipts, flow)
    first = d.start_worker("pair-a")
    second = d.start_worker("pair-b")
    # both are members of the group: each owns some partitions of the stock table
    wait_until(lambda: assignments_split(first, second), timeout_s=60)

    d.publish(receipts)
    ready_positions(d, second, receipts)
    d.publish(flow)
    # any worker answers for any key (table_route proxies to the owner), one at a time or
    # in a batch fanned out to the owners
    settle_exactly(d, first, center)
    settle_exactly(d, second, center)
    skus = sorted(center.tables.stock_by_sku)
    for w in (first, second):
        _, batch = http_json(f"{w.url}/inventory?skus={','.join(skus)}")
        assert batch["missing"] == []
        for sku in skus:
            want = {p.warehouse_code: p.reserved_qty for p in center.tables.stock_by_sku[sku].positions}
            got = {p["warehouseCode"]: p["reservedQty"] for p in batch["items"][sku]["warehouses"]}
            assert got == want, (w.url, sku)

    first.kill()
    settle_exactly(d, second, center, timeout_s=120)
    second.stop()


def test_a_worker_whose_changelogs_were_recreated_recovers_from_them(fresh_deployment: Deployment) -> None:
    """Local state ahead of its changelog (the topics were deleted and recreated, the folder
    stayed): Faust would refuse to start on every restart (ConsistencyError). The worker
    discards the local state and recovers from what Kafka holds."""
    from confluent_kafka.admin import AdminClient

    from streams.kafka_config import admin_config
    from streams.topics import TABLES, create_topics

    d = fresh_deployment
    receipts, _ = exact_workload(seed=5, skus=3, orders=0)
    data_dir = d.root / "recreated"
    worker = d.start_worker("recreated", data_dir=data_dir)
    d.publish(receipts)
    ready_positions(d, worker, receipts)
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
