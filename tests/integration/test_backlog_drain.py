"""Issue 11 on the real broker: a day's backlog drained by one worker ends as the model.

A simulated day (``connectors.traffic.BACKLOG``: a few hundred orders, opening stock in the
same stream, transfers, failed parcels and returns received short or at another warehouse,
counts with drift, stock documents re-sent under a new eventId, events redelivered under
the same one) is published in one go while no worker runs - the backlog a restart finds.
One worker then drains it; in the second variant it is killed with SIGKILL several times
mid-drain (once losing its local state too) and restarted each time.

The reservation decisions are the pipeline's: which order got the last unit, or was
rejected because its stock had not been read yet, depends on how the worker interleaved the
topics. So the test ends the day as the OMS and WMS would (``connectors.traffic``): once the
pipeline is idle, the WMS ships what the model's partly shipped orders still hold, then every
order open in the model or in the pipeline (read through its view) is cancelled. Nothing is
left reserved on either side, and every position read through the worker's views must equal
the sequential model's (``connectors.traffic.replay`` of the same stream, plus the same end):
on hand, reserved, available, in transit, presold, outbound, damaged.

"Idle": every partition the worker reads (inputs and internal topics) has its consumer
group's committed offset at its high watermark, and stays there between two looks.
"""

from __future__ import annotations

import shutil
import time
import urllib.request
from typing import Any

import pytest

from connectors.traffic import (
    BACKLOG,
    OPEN,
    DayParams,
    DaySimulation,
    cancel_at_day_end,
    replay,
    ship_what_is_held,
)
from schemas.base import Event
from streams.worker_process import WorkerProcess, http_json
from tables.center import InventoryCenter
from tests.integration.conftest import Deployment, wait_until

pytestmark = pytest.mark.kafka

DAY = {"orders": 300, "skus": 40, "warehouses": 3}
QUANTITIES = {
    "onHandQty": "on_hand_qty", "reservedQty": "reserved_qty", "availableQty": "available_qty",
    "inTransitQty": "in_transit_qty", "presoldQty": "presold_qty", "outboundQty": "outbound_qty",
    "damagedQty": "damaged_qty",
}
OPEN_STATUSES = {s.value for s in OPEN}


def _day(seed: int) -> tuple[list[Event], InventoryCenter, list[str]]:
    simulation = DaySimulation(DayParams(seed=seed, mix=BACKLOG, **DAY))  # type: ignore[arg-type]
    events = list(simulation.events())
    kinds = {type(e).__name__ for e in events}
    assert {"GoodsReceived", "TransferDispatched", "TransferReceived", "DeliveryFailed", "ReturnInspected",
            "StockSnapshot", "StockAdjusted", "DamagedDisposed"} <= kinds, kinds
    assert any(n.endswith(" re-sent") for n in simulation.counts), simulation.counts
    return events, replay(events), simulation.skus


# --- the worker and the broker --------------------------------------------------------------


def _read_topics(d: Deployment) -> list[str]:
    t = d.topics
    return [t.orders, t.shipments, t.stock_movements, t.order_inbox, t.stock_commands]


def _lag(d: Deployment) -> int | None:
    """Records not yet committed by the worker's consumer group, over every partition it
    reads; None while the group has committed nothing."""
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    from streams.kafka_config import admin_config, consumer_config

    group = d.settings.app_id
    partitions = [TopicPartition(topic, p) for topic in _read_topics(d) for p in range(d.settings.partitions)]
    admin = AdminClient(admin_config(d.settings))
    request = ConsumerGroupTopicPartitions(group, partitions)
    committed = admin.list_consumer_group_offsets([request])[group].result().topic_partitions
    if all(tp.offset < 0 for tp in committed):
        return None
    at = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in committed}
    probe = Consumer(consumer_config(d.settings, f"{group}-lag-probe"))
    try:
        lag = 0
        for tp in partitions:
            _, high = probe.get_watermark_offsets(tp, timeout=10)
            lag += max(0, high - at[(tp.topic, tp.partition)])
        return lag
    finally:
        probe.close()


def _wait_idle(d: Deployment, worker: WorkerProcess, timeout_s: float = 180.0) -> None:
    """Until nothing is left to read, twice in a row a few seconds apart."""
    quiet = 0

    def idle() -> bool:
        nonlocal quiet
        assert worker.alive(), worker.log_tail(40)
        quiet = quiet + 1 if _lag(d) == 0 else 0
        return quiet >= 2

    wait_until(idle, timeout_s=timeout_s, interval_s=3.0)


def _consumed(worker: WorkerProcess) -> float:
    """Messages this worker process has read so far, over every topic."""
    try:
        text = urllib.request.urlopen(f"{worker.url}/metrics", timeout=2).read().decode()  # noqa: S310
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("inventory_events_in_total"))


# --- the views ------------------------------------------------------------------------------


def _positions(d: Deployment, worker: WorkerProcess, skus: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for start in range(0, len(skus), 100):
        batch = skus[start:start + 100]
        status, body = http_json(f"{worker.url}/inventory?skus={','.join(batch)}", timeout_s=10)
        assert status == 200, (status, body)
        for sku, item in body["items"].items():
            for p in item["warehouses"]:
                found[(sku, p["warehouseCode"])] = p
    return found


def _open_in_pipeline(d: Deployment, worker: WorkerProcess, order_nos: list[str]) -> set[str]:
    still_open = set()
    for order_no in order_nos:
        order = d.order(worker, order_no)
        if order is not None and order["status"] in OPEN_STATUSES:
            still_open.add(order_no)
    return still_open


def _holding(d: Deployment, worker: WorkerProcess, order_nos: list[str]) -> list[str]:
    """Orders whose lines still hold units in the pipeline."""
    held = []
    for order_no in order_nos:
        order = d.order(worker, order_no)
        if order and any(line["reservedQty"] or line["presoldQty"] for line in order["lines"]):
            held.append(f"{order_no} {order['status']}")
    return held


def _differences(d: Deployment, worker: WorkerProcess, model: InventoryCenter, skus: list[str]) -> list[str]:
    got = _positions(d, worker, skus)
    want = {(sku, p.warehouse_code): {name: getattr(p, attr) for name, attr in QUANTITIES.items()}
            for sku, stock in model.tables.stock_by_sku.items() for p in stock.positions}
    zero = dict.fromkeys(QUANTITIES, 0)
    diffs = []
    for key in sorted(want.keys() | got.keys()):
        w = want.get(key, zero)
        g = {name: got[key][name] for name in QUANTITIES} if key in got else zero
        if w != g:
            diffs.append(f"{key[0]}@{key[1]}: model {w}, pipeline {g}")
    return diffs


# --- the day's end and the comparison -------------------------------------------------------


def _end_the_day_and_compare(
    d: Deployment, worker: WorkerProcess, events: list[Event], model: InventoryCenter, skus: list[str]
) -> None:
    _wait_idle(d, worker)
    closing = ship_what_is_held(model)
    model.submit_all(closing)
    d.publish(list(closing))
    _wait_idle(d, worker)
    order_nos = sorted(model.tables.orders_by_no)
    cancels = sorted(set(n for n, o in model.tables.orders_by_no.items() if o.status in OPEN)
                     | _open_in_pipeline(d, worker, order_nos))
    model.submit_all(cancel_at_day_end(no) for no in cancels)  # finished in the model: no stock moves
    assert not model.tables.reservations_by_key
    d.publish([cancel_at_day_end(no) for no in cancels])
    _wait_idle(d, worker)

    diffs = _differences(d, worker, model, skus)
    held = _holding(d, worker, order_nos)
    dead = d.read(d.topics.dead_letters, timeout_s=5)
    problems = []
    if diffs:
        problems.append(f"{len(diffs)} positions differ from the model, e.g.:\n" + "\n".join(diffs[:10]))
    if held:
        problems.append(f"{len(held)} orders still hold units after the day's end: {held[:5]}")
    if dead:
        problems.append(f"{len(dead)} dead letters, e.g. {dead[:2]}")
    assert not problems, "\n".join(problems)


def test_a_days_backlog_drained_by_one_worker_ends_as_the_model(fresh_deployment: Deployment) -> None:
    d = fresh_deployment
    events, model, skus = _day(seed=21)
    d.publish(list(events))  # topics exist, no worker runs: the day waits as a backlog
    worker = d.start_worker("drain")
    _end_the_day_and_compare(d, worker, events, model, skus)
    worker.stop()


def test_a_days_backlog_drained_through_sigkills_ends_as_the_model(fresh_deployment: Deployment) -> None:
    d = fresh_deployment
    events, model, skus = _day(seed=22)
    d.publish(list(events))
    data_dir = d.root / "killed"
    for n in range(3):
        worker = d.start_worker(f"killed-{n}", data_dir=data_dir)
        # well into the drain, not past it: a few hundred messages read since this start
        wait_until(lambda w=worker: _consumed(w) >= 400, timeout_s=120, interval_s=0.05)
        assert _lag(d) != 0, "the backlog was drained before the kill"
        worker.kill()  # SIGKILL: no commit, no flush
        time.sleep(0.5)
        if n == 1:
            shutil.rmtree(data_dir)  # this time the local state is lost too: the changelogs rebuild it
    worker = d.start_worker("killed-last", data_dir=data_dir)
    _end_the_day_and_compare(d, worker, events, model, skus)
    worker.stop()
