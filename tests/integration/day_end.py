"""A simulated day on the real broker, ended as the OMS and WMS would end it and compared with
the sequential model: shared by the backlog-drain and fault-injection tests.

The reservation decisions are the pipeline's: which order got the last unit, or was
rejected because its stock had not been read yet, depends on how the worker interleaved the
topics. So the day is ended as the OMS and WMS would (``connectors.traffic``): once the
pipeline is idle, the WMS ships what the model's partly shipped orders still hold, then every
order open in the model or in the pipeline (read through its view) is cancelled. Nothing is
left reserved on either side, and every position read through the worker's views must equal
the sequential model's (``connectors.traffic.replay`` of the same stream, plus the same end):
on hand, reserved, available, in transit, presold, outbound, damaged.

"Idle": every partition the worker reads (inputs and internal topics) has its consumer
group's committed offset at its high watermark, and stays there between two looks.

The last section (``exact_workload``) is a day whose outcome does not depend on the
interleaving, compared with the model exactly, versions included: shared by the crash,
takeover and envelope-fault tests.
"""

from __future__ import annotations

import os
import random
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

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
from schemas.events import parse_event
from streams.worker_process import WorkerProcess, http_json
from tables.center import InventoryCenter
from tests.integration.conftest import Deployment, wait_until

DAY = {"orders": 300, "skus": 40, "warehouses": 3}
QUANTITIES = {
    "onHandQty": "on_hand_qty",
    "reservedQty": "reserved_qty",
    "availableQty": "available_qty",
    "inTransitQty": "in_transit_qty",
    "presoldQty": "presold_qty",
    "outboundQty": "outbound_qty",
    "damagedQty": "damaged_qty",
}
OPEN_STATUSES = {s.value for s in OPEN}


def day(seed: int, **size: int) -> tuple[list[Event], InventoryCenter, list[str]]:
    simulation = DaySimulation(DayParams(seed=seed, mix=BACKLOG, **{**DAY, **size}))  # type: ignore[arg-type]
    events = list(simulation.events())
    kinds = {type(e).__name__ for e in events}
    assert {
        "GoodsReceived",
        "TransferDispatched",
        "TransferReceived",
        "DeliveryFailed",
        "ReturnInspected",
        "StockSnapshot",
        "StockAdjusted",
        "DamagedDisposed",
    } <= kinds, kinds
    assert any(n.endswith(" re-sent") for n in simulation.counts), simulation.counts
    return events, replay(events), simulation.skus


# --- the worker and the broker --------------------------------------------------------------


def read_topics(d: Deployment) -> list[str]:
    t = d.topics
    return [t.orders, t.shipments, t.stock_movements, t.order_inbox, t.stock_commands]


def lag(d: Deployment) -> int | None:
    """Records not yet committed by the worker's consumer group, over every partition it
    reads; None while the group has committed nothing.

    Read with a consumer of the group that never joins it (``committed``), not with the
    AdminClient: librdkafka's ListConsumerGroupOffsets crashes the process (SIGSEGV in
    ``rd_kafka_cgrp_op``, an admin client has no group) when the coordinator answers
    "load in progress", as it does right after a broker restart."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from streams.kafka_config import consumer_config

    group = d.settings.app_id
    partitions = [TopicPartition(topic, p) for topic in read_topics(d) for p in range(d.settings.partitions)]
    probe = Consumer(consumer_config(d.settings, group))
    try:
        for attempt in range(30):  # the group coordinator may be loading (a broker just restarted)
            try:
                committed = probe.committed(partitions, timeout=10)
                break
            except KafkaException:
                if attempt == 29:
                    raise
                time.sleep(1)
        if all(tp.offset < 0 for tp in committed):
            return None
        at = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in committed}
        lag = 0
        for tp in partitions:
            _, high = probe.get_watermark_offsets(tp, timeout=10)
            lag += max(0, high - at[(tp.topic, tp.partition)])
        return lag
    finally:
        probe.close()


def wait_idle(d: Deployment, worker: WorkerProcess, timeout_s: float = 180.0) -> None:
    """Until nothing is left to read, twice in a row a few seconds apart."""
    quiet = 0

    def idle() -> bool:
        nonlocal quiet
        assert worker.alive(), worker.log_tail(40)
        quiet = quiet + 1 if lag(d) == 0 else 0
        return quiet >= 2

    wait_until(idle, timeout_s=timeout_s, interval_s=3.0)


def consumed(worker: WorkerProcess) -> float:
    """Messages this worker process has read so far, over every topic."""
    try:
        text = urllib.request.urlopen(f"{worker.url}/metrics", timeout=2).read().decode()  # noqa: S310
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("inventory_events_in_total")
    )


# --- the views ------------------------------------------------------------------------------


def positions_of(d: Deployment, worker: WorkerProcess, skus: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for start in range(0, len(skus), 100):
        batch = skus[start : start + 100]
        status, body = http_json(f"{worker.url}/inventory?skus={','.join(batch)}", timeout_s=10)
        assert status == 200, (status, body)
        for sku, item in body["items"].items():
            for p in item["warehouses"]:
                found[(sku, p["warehouseCode"])] = p
    return found


def open_in_pipeline(d: Deployment, worker: WorkerProcess, order_nos: list[str]) -> set[str]:
    still_open = set()
    for order_no in order_nos:
        order = d.order(worker, order_no)
        if order is not None and order["status"] in OPEN_STATUSES:
            still_open.add(order_no)
    return still_open


def holding(d: Deployment, worker: WorkerProcess, order_nos: list[str]) -> list[str]:
    """Orders whose lines still hold units in the pipeline."""
    held = []
    for order_no in order_nos:
        order = d.order(worker, order_no)
        if order and any(line["reservedQty"] or line["presoldQty"] for line in order["lines"]):
            held.append(f"{order_no} {order['status']}")
    return held


def differences(d: Deployment, worker: WorkerProcess, model: InventoryCenter, skus: list[str]) -> list[str]:
    got = positions_of(d, worker, skus)
    want = {
        (sku, p.warehouse_code): {name: getattr(p, attr) for name, attr in QUANTITIES.items()}
        for sku, stock in model.tables.stock_by_sku.items()
        for p in stock.positions
    }
    zero = dict.fromkeys(QUANTITIES, 0)
    diffs = []
    for key in sorted(want.keys() | got.keys()):
        w = want.get(key, zero)
        g = {name: got[key][name] for name in QUANTITIES} if key in got else zero
        if w != g:
            diffs.append(f"{key[0]}@{key[1]}: model {w}, pipeline {g}")
    return diffs


# --- the day's end and the comparison -------------------------------------------------------


def end_the_day_and_compare(
    d: Deployment,
    worker: WorkerProcess,
    events: list[Event],
    model: InventoryCenter,
    skus: list[str],
    poison: dict[bytes, bytes] | None = None,
    outputs: bool = False,
) -> None:
    """End the day on both sides and assert the pipeline's positions equal the model's.

    ``poison``: key -> value of every bad record mixed into the day; each must have exactly
    one dead letter (bounded, pointing at it) and nothing else may be dead-lettered.
    ``outputs``: also check the outputs' invariants: no (sku, warehouse, version) published
    with two payloads on inventory-changes, and the ledger (deduplicated by entry id) sums to
    every position's buckets.
    """
    wait_idle(d, worker)
    closing = ship_what_is_held(model)
    model.submit_all(closing)
    d.publish(list(closing))
    wait_idle(d, worker)
    order_nos = sorted(model.tables.orders_by_no)
    cancels = sorted(
        set(n for n, o in model.tables.orders_by_no.items() if o.status in OPEN)
        | open_in_pipeline(d, worker, order_nos)
    )
    model.submit_all(cancel_at_day_end(no) for no in cancels)  # finished in the model: no stock moves
    assert not model.tables.reservations_by_key
    d.publish([cancel_at_day_end(no) for no in cancels])
    wait_idle(d, worker)

    problems = []
    diffs = differences(d, worker, model, skus)
    if diffs:
        problems.append(f"{len(diffs)} positions differ from the model, e.g.:\n" + "\n".join(diffs[:10]))
    held = holding(d, worker, order_nos)
    if held:
        problems.append(f"{len(held)} orders still hold units after the day's end: {held[:5]}")
    problems += dead_letter_problems(d.read(d.topics.dead_letters, timeout_s=5), poison or {})
    if outputs:
        problems += output_problems(d, worker, skus)
    if os.environ.get("INVENTORY_DAY_END_DUMP"):
        dump(d, worker, events, Path(os.environ["INVENTORY_DAY_END_DUMP"]))
    assert not problems, "\n".join(problems)


def dump(d: Deployment, worker: WorkerProcess, events: list[Event], to: Path) -> None:
    """Debugging a day (``INVENTORY_DAY_END_DUMP=<dir>``, passed or failed): before the
    deployment's topics are deleted, write the internal and output topics (JSON lines, each
    record with its coordinates) and the returned orders as the order view shows them."""
    import json

    to.mkdir(parents=True, exist_ok=True)
    t = d.topics
    for name in (t.stock_commands, t.order_inbox, t.inventory_ledger, t.inventory_alerts, t.inventory_changes):
        with (to / f"{name}.jsonl").open("w") as out:
            for record in d.read(name, timeout_s=60):
                out.write(json.dumps(record, default=str) + "\n")
    returned = sorted({e.order_no for e in events if type(e).__name__.startswith("Return")})  # type: ignore[attr-defined]
    with (to / "orders.jsonl").open("w") as out:
        for order_no in returned:
            out.write(json.dumps(d.order(worker, order_no), default=str) + "\n")


def dead_letter_problems(dead: list[dict[str, Any]], poison: dict[bytes, bytes]) -> list[str]:
    """One bounded dead letter per poison record, pointing at it, and no other. A crash may
    send a dead letter again (at least once, like every output): its source coordinates
    identify it, so letters are counted once per (topic, partition, offset)."""
    import base64
    import hashlib

    problems = []
    by_key: dict[bytes, list[dict[str, Any]]] = {}
    unique = {(x["sourceTopic"], x["sourcePartition"], x["sourceOffset"]): x for x in dead}
    for letter in unique.values():
        by_key.setdefault(base64.urlsafe_b64decode(letter["key"]) if letter.get("key") else b"", []).append(letter)
    for k, value in poison.items():
        letters = by_key.pop(k, [])
        if len(letters) != 1:
            problems.append(f"poison {k!r}: {len(letters)} dead letters")
            continue
        letter = letters[0]
        payload = base64.urlsafe_b64decode(letter["payload"] or "")
        if (letter["payloadSize"], letter["payloadSha256"]) != (len(value), hashlib.sha256(value).hexdigest()):
            problems.append(f"poison {k!r}: dead letter does not point at it: {letter['payloadSize']}")
        if not value.startswith(payload) or len(payload) > 16_384 or letter["truncated"] != (len(value) > 16_384):
            problems.append(f"poison {k!r}: payload excerpt of {len(payload)} bytes")
    others = [letter for letters in by_key.values() for letter in letters]
    if others:
        problems.append(
            f"{len(others)} unexpected dead letters, e.g. {[(x['errorType'], x['error'][:200]) for x in others[:3]]}"
        )
    return problems


LEDGER_BUCKETS = {
    "ON_HAND": "onHandQty",
    "IN_TRANSIT": "inTransitQty",
    "OUTBOUND": "outboundQty",
    "DAMAGED": "damagedQty",
}


def output_problems(d: Deployment, worker: WorkerProcess, skus: list[str]) -> list[str]:
    """inventory-changes: one payload per (sku, warehouse, version); the ledger, deduplicated
    by entry id, sums to each position's buckets."""
    import json

    problems = []
    versions: dict[tuple[str, str, int], set[str]] = {}
    for change in d.read(d.topics.inventory_changes, timeout_s=30):
        body = {k: v for k, v in change.items() if k not in ("_coordinates", "eventId", "occurredAt")}
        versions.setdefault((change["sku"], change["warehouseCode"], change["version"]), set()).add(
            json.dumps(body, sort_keys=True)
        )
    conflicting = [k for k, payloads in versions.items() if len(payloads) > 1]
    if conflicting:
        problems.append(f"{len(conflicting)} (sku, warehouse, version) with two payloads, e.g. {conflicting[:3]}")
    entries = {e["entryId"]: e for e in d.read(d.topics.inventory_ledger, timeout_s=30)}
    sums: dict[tuple[str, str], dict[str, int]] = {}
    for e in entries.values():
        bucket = LEDGER_BUCKETS.get(e["bucket"])
        if bucket is not None:
            at = sums.setdefault((e["sku"], e["warehouseCode"]), dict.fromkeys(LEDGER_BUCKETS.values(), 0))
            at[bucket] += e["quantity"]
    positions = positions_of(d, worker, skus)
    for at in sorted(positions.keys() | sums.keys()):
        want = (
            {b: positions[at][b] for b in LEDGER_BUCKETS.values()}
            if at in positions
            else dict.fromkeys(LEDGER_BUCKETS.values(), 0)
        )
        got = sums.get(at, dict.fromkeys(LEDGER_BUCKETS.values(), 0))
        if want != got:
            problems.append(f"ledger of {at} sums to {got}, the position holds {want}")
            if len(problems) > 10:
                break
    return problems


# --- a day whose outcome does not depend on the interleaving ---------------------------------
# Ample stock, and every order names its warehouse: whatever the order in which partitions are
# read, the pipeline must match the model exactly, position versions included. A position's
# version counts the changes applied to it, so equal versions mean no command was applied twice.

WAREHOUSES = ("WH001", "WH002")


def exact_workload(seed: int, skus: int = 12, orders: int = 600) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(receipts, flow): ample stock of every SKU in two warehouses, then orders naming their
    warehouse, some cancelled, some unpaid and then paid (never expiring)."""
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:6]
    sku_codes = [f"R{tag}-{i:03d}" for i in range(skus)]
    receipts = [
        {
            "eventType": "GoodsReceived",
            "eventId": f"rc-{tag}-{wh}",
            "occurredAt": "2025-11-22T08:00:00+08:00",
            "receiptNo": f"RC-{tag}-{wh}",
            "warehouseCode": wh,
            "lines": [{"sku": s, "sellableQty": 100_000} for s in sku_codes],
        }
        for wh in WAREHOUSES
    ]
    flow: list[dict[str, Any]] = []
    for n in range(orders):
        no = f"O{tag}-{n:05d}"
        lines = rng.sample(sku_codes, rng.randint(1, 3))
        unpaid = n % 5 == 0
        flow.append(
            {
                "eventType": "OrderCreated",
                "eventId": f"oc-{no}",
                "occurredAt": "2025-11-22T09:00:00+08:00",
                "orderNo": no,
                "orderType": "NORMAL",
                "warehouseCode": WAREHOUSES[n % 2],
                "consignee": {"name": "王五", "phone": "13700137000", "address": "广州市"},
                "items": [{"sku": s, "quantity": rng.randint(1, 5), "price": 1} for s in lines],
                "totalAmount": 10,
                "timeRequirement": "STANDARD",
                **({"reservationExpiresAt": "2099-01-01T00:00:00+00:00"} if unpaid else {}),
            }
        )
        if n % 7 == 3:
            flow.append(
                {
                    "eventType": "OrderCancelled",
                    "eventId": f"cx-{no}",
                    "occurredAt": "2025-11-22T09:30:00+08:00",
                    "orderNo": no,
                    "reason": "customer",
                }
            )
        elif unpaid and n % 2 == 0:
            flow.append(
                {
                    "eventType": "OrderPaid",
                    "eventId": f"pd-{no}",
                    "occurredAt": "2025-11-22T09:40:00+08:00",
                    "orderNo": no,
                }
            )
    return receipts, flow


def exact_model(receipts: list[dict[str, Any]], flow: list[dict[str, Any]]) -> InventoryCenter:
    center = InventoryCenter()
    center.submit_all(parse_event(e) for e in receipts + flow)
    return center


def exact_differences(d: Deployment, w: WorkerProcess, center: InventoryCenter) -> list[str]:
    """Differences between the pipeline's views and the model (empty when equal)."""
    diffs: list[str] = []
    for sku, stock in sorted(center.tables.stock_by_sku.items()):
        for p in stock.positions:
            got = d.position(w, sku, p.warehouse_code)
            want = {
                "onHandQty": p.on_hand_qty,
                "reservedQty": p.reserved_qty,
                "availableQty": p.available_qty,
                "inTransitQty": p.in_transit_qty,
                "version": p.version,
            }
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


def settle_exactly(d: Deployment, w: WorkerProcess, center: InventoryCenter, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    diffs: list[str] = []
    while time.monotonic() < deadline:
        diffs = exact_differences(d, w, center)
        if not diffs:
            return
        time.sleep(2.0)
    orders = [x for x in diffs if "@" not in x.split(":")[0]]
    positions = [x for x in diffs if "@" in x.split(":")[0]]
    raise AssertionError(
        f"{len(positions)} positions and {len(orders)} orders differ after {timeout_s}s, e.g.:\n"
        + "\n".join(positions[:6] + orders[:12])
    )


def ready_positions(d: Deployment, w: WorkerProcess, receipts: list[dict[str, Any]]) -> None:
    first = receipts[-1]["lines"][-1]["sku"]
    wait_until(lambda: d.position(w, first, receipts[-1]["warehouseCode"]), timeout_s=60)


def assignments_split(a: WorkerProcess, b: WorkerProcess) -> bool:
    """Both workers see the same routing ({host: {changelog: [partitions]}}), and each host
    owns partitions of the stock table."""
    seen = []
    for w in (a, b):
        status, body = http_json(f"{w.url}/router/")
        if status != 200 or not isinstance(body, dict):
            return False
        seen.append(body)
    hosts = seen[0]
    stock_owners = [h for h, tables in hosts.items() if any("stock-state" in t and p for t, p in tables.items())]
    return seen[0] == seen[1] and len(stock_owners) == 2


def owned(w: WorkerProcess, changelog: str) -> list[int]:
    """The partitions of ``changelog`` that ``w`` owns, as its router view says ([] if none)."""
    status, body = http_json(f"{w.url}/router/")
    if status != 200 or not isinstance(body, dict):
        return []
    return sorted(
        next(
            (
                tables.get(changelog, [])
                for host, tables in body.items()
                if host.rstrip("/").endswith(w.url.split("//", 1)[1])
            ),
            [],
        )
    )
