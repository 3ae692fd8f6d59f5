"""Issue 12 on the real broker: a SIGKILL restart reads the changelog from where the local
RocksDB stands, a local store ahead of Kafka is deleted, and a standby takes over a killed
worker's partitions within the bound.

The expected outcome comes from the reference model fed the same events (day_end.py's
``exact_workload``: ample stock, every order names its warehouse, so the outcome does
not depend on how the partitions interleave, position versions included).
"""

from __future__ import annotations

import time

import pytest

from schemas.codec import encode
from streams.keys import HEAD, STOCK, stock_key
from streams.local_state import partition_paths
from streams.worker_process import WorkerProcess, http_json
from tables.state import Transaction, Write
from tests.integration.conftest import Deployment, wait_until
from tests.integration.day_end import exact_model, exact_workload, owned, ready_positions, settle_exactly

pytestmark = pytest.mark.kafka

TAKEOVER_BOUND_S = 10.0  # issue 12: a killed worker's partitions are served again within this


def _decisions(worker: WorkerProcess) -> dict[str, str]:
    """'<table>[<partition>]' -> 'kept' | 'deleted' | 'empty' (deleted: it held nothing),
    from the worker's start."""
    found = {}
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if ": local state kept" in line or ": local state deleted" in line:
            verdict = "kept" if ": local state kept" in line else "empty" if ": empty:" in line else "deleted"
            found[line.split(":", 1)[0]] = verdict
    return found


def _idle(d: Deployment, worker: WorkerProcess) -> None:
    from tests.integration.day_end import wait_idle

    wait_idle(d, worker)


def test_a_sigkill_restart_keeps_the_local_store_and_ends_as_the_reference(fresh_deployment: Deployment) -> None:
    d = fresh_deployment
    receipts, flow = exact_workload(seed=31, skus=24, orders=400)
    half = len(flow) // 2
    data_dir = d.root / "kept"
    worker = d.start_worker("kept", data_dir=data_dir)
    d.publish(receipts)
    ready_positions(d, worker, receipts)
    d.publish(flow[:half])
    settle_exactly(d, worker, exact_model(receipts, flow[:half]))
    _idle(d, worker)
    worker.kill()  # SIGKILL: no clean-shutdown marker

    again = d.start_worker("kept-again", data_dir=data_dir)
    decisions = _decisions(again)
    assert sorted(decisions) == sorted(f"{t}[{p}]" for t in ("order-state", "stock-state") for p in range(4))
    assert set(decisions.values()) <= {"kept", "empty"} and "kept" in decisions.values(), decisions
    d.publish(flow[half:])
    settle_exactly(d, again, exact_model(receipts, flow))
    again.stop()


def test_a_local_store_ahead_of_its_changelog_is_deleted(fresh_deployment: Deployment) -> None:
    """A transaction the local store holds and Kafka never received (as after a SIGKILL
    between the local write and the broker's acknowledgement): that partition is deleted and
    restored from the changelog, the others are kept."""
    d = fresh_deployment
    receipts, _ = exact_workload(seed=32, skus=8, orders=0)
    data_dir = d.root / "ahead"
    worker = d.start_worker("ahead", data_dir=data_dir)
    d.publish(receipts)
    ready_positions(d, worker, receipts)
    _idle(d, worker)
    worker.kill()

    from rocksdict import Options, Rdict

    path = next(p for table, partition, p in partition_paths(data_dir) if table == "stock-state" and partition == 0)
    db = Rdict(str(path), Options(raw_mode=True))
    record = next(v for k, v in db.items(from_key=STOCK) if k.startswith(STOCK))
    ghost = Write(stock_key("GHOST-SKU"), record)
    db[HEAD] = encode(Transaction(message_id="never-sent", writes=(ghost,), outputs=()))
    db[ghost.key] = record
    db.close()

    again = d.start_worker("ahead-again", data_dir=data_dir)
    decisions = _decisions(again)
    assert decisions.pop("stock-state[0]") == "deleted"
    assert "the local store is ahead of Kafka" in again.log_tail(400)
    assert set(decisions.values()) <= {"kept", "empty"}, decisions
    warehouse = receipts[0]["warehouseCode"]
    assert d.position(again, "GHOST-SKU", warehouse) is None  # what Kafka never had is gone
    for line in receipts[0]["lines"]:  # and what it had is there
        assert (d.position(again, line["sku"], warehouse) or {}).get("onHandQty") == line["sellableQty"]
    again.stop()


def test_a_standby_takes_over_a_killed_workers_partitions_within_the_bound(fresh_deployment: Deployment) -> None:
    d = fresh_deployment
    receipts, flow = exact_workload(seed=33, skus=16, orders=200)
    center = exact_model(receipts, flow)
    old = d.start_worker("old")
    d.publish(receipts)
    ready_positions(d, old, receipts)
    d.publish(flow)
    settle_exactly(d, old, center)
    survivor = d.start_worker("survivor")  # standby_replicas defaults to 1
    changelog = d.topics.changelog("stock-state")
    wait_until(
        lambda: (
            owned(old, changelog)
            and owned(survivor, changelog)
            and len(owned(old, changelog) + owned(survivor, changelog)) == 4
        ),
        timeout_s=120,
    )
    wait_until(lambda: "Starting standby partitions" in survivor.log_tail(400), timeout_s=60)
    killed_partitions = owned(old, changelog)
    time.sleep(3.0)  # the standbys read to the end of these small changelogs

    skus = sorted(center.tables.stock_by_sku)
    probe = {
        "eventType": "GoodsReceived",
        "eventId": "probe-takeover",
        "occurredAt": "2025-11-22T10:00:00+08:00",
        "receiptNo": "RC-PROBE",
        "warehouseCode": "WH001",
        "lines": [{"sku": s, "sellableQty": 1} for s in skus],
    }
    center.submit_all([_parse(probe)])
    old.kill()
    killed = time.monotonic()
    d.publish([probe])

    def served() -> bool:
        status, body = http_json(f"{survivor.url}/inventory?skus={','.join(skus)}")
        if status != 200 or body["missing"]:
            return False
        want = {
            s: next(p.on_hand_qty for p in center.tables.stock_by_sku[s].positions if p.warehouse_code == "WH001")
            for s in skus
        }
        got = {
            s: next((p["onHandQty"] for p in body["items"][s]["warehouses"] if p["warehouseCode"] == "WH001"), None)
            for s in skus
        }
        return got == want

    wait_until(served, timeout_s=120, interval_s=0.1)
    took = time.monotonic() - killed
    print(f"partitions {killed_partitions} served again {took:.1f}s after the kill")
    assert took <= TAKEOVER_BOUND_S, f"partitions {killed_partitions} served again after {took:.1f}s"
    starts = _restore_starts(survivor.log_path.read_text(errors="replace"), changelog)
    assert all(starts[p] >= 0 for p in killed_partitions), starts  # from its standby copy, not from 0
    settle_exactly(d, survivor, center, timeout_s=60)  # every position and order as the reference
    survivor.stop()


def _restore_starts(log_text: str, changelog: str) -> dict[int, int]:
    """Where the last recovery began reading each active partition of ``changelog`` (-1: from
    the start), from Faust's "Reading Starts At - Active" table."""
    starts: dict[int, int] = {}
    topic = None
    for line in log_text.rsplit("Reading Starts At - Active", 1)[1].splitlines()[1:]:
        if line.startswith("["):
            break  # the next log line: the table has ended
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[1].isdigit():
            continue
        topic = topic if cells[0] == "\u3003" else cells[0]
        if topic == changelog:
            starts[int(cells[1])] = int(cells[2])
    return starts


def _parse(event: dict[str, object]) -> object:
    from schemas.events import parse_event

    return parse_event(event)
