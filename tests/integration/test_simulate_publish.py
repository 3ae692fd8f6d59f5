"""A simulated day through a real worker ends where the reference model ends.

The day is published through the simulator's path (``EventPublisher``) and compared, for a
sample of SKUs, with the generator's shadow model. The three input topics are not ordered
with respect to each other, so a realistic day's outcome depends on how the partitions
interleave (which of two orders gets the last unit, which warehouse a reservation picks, a
count that overtakes a shipment it counted). The day is therefore ``traffic.CALM``: ample
stock, every order routed to a named warehouse, no cycle counts and no customer returns.
Everything else of the day stays: pay-later, expiring, presale, gift and cancelled orders,
split parcels, tracking, failed deliveries received back, ASNs, adjustments, transfers,
disposals.

The opening stock is published first and shelved before the rest of the day, as it is in a
warehouse: read after the first orders, it would leave them rejected and their shipments
booked as found.

The worker's expiry timer runs on event time, with a wall-clock fallback for a quiet
partition (2 s in tests/integration/conftest.py): once the day is read, every unpaid order
is due there, so the model is ticked to now before comparing. A payment that happened in
time, read after a fallback tick, re-opens its order, which changes the position versions (a
release and a reservation more) but not the quantities, so quantities are compared, not
versions.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.traffic import CALM, DayParams, DaySimulation, is_opening_stock
from streams.worker_process import WorkerProcess, http_json
from tables.center import InventoryCenter
from tests.integration.conftest import Deployment, wait_until

pytestmark = pytest.mark.kafka

QUANTITIES = {
    "onHandQty": "on_hand_qty",
    "reservedQty": "reserved_qty",
    "inTransitQty": "in_transit_qty",
    "presoldQty": "presold_qty",
    "outboundQty": "outbound_qty",
    "damagedQty": "damaged_qty",
}


def _sample(simulation: DaySimulation, size: int = 20) -> list[str]:
    """The most popular SKUs (the contended ones) and a seeded draw from the rest."""
    ranked = simulation.by_popularity
    rest = random.Random(7).sample(ranked[size // 2 :], min(size // 2, len(ranked) - size // 2))
    return sorted(ranked[: size // 2] + rest)


def _positions(worker: WorkerProcess, skus: list[str]) -> dict[str, dict[str, dict[str, Any]]] | str:
    """sku -> warehouseCode -> the worker's position, in batches the view accepts; or why not."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for start in range(0, len(skus), 100):
        batch = skus[start : start + 100]
        status, body = http_json(f"{worker.url}/inventory?skus={','.join(batch)}", timeout_s=5)
        if status != 200:
            return f"HTTP {status}: {body}"
        for sku, item in body["items"].items():
            found[sku] = {p["warehouseCode"]: p for p in item["warehouses"]}
    return found


def _differences(worker: WorkerProcess, model: InventoryCenter, skus: list[str]) -> list[str]:
    positions = _positions(worker, skus)
    if isinstance(positions, str):
        return [positions]
    diffs = [f"{sku}: not in the worker" for sku in skus if sku not in positions]
    for sku in skus:
        stock = model.tables.stock(sku)
        got = positions.get(sku, {})
        for p in stock.positions if stock else ():
            want = {name: getattr(p, attr) for name, attr in QUANTITIES.items()}
            have = got.get(p.warehouse_code)
            if have is None or any(have[name] != value for name, value in want.items()):
                diffs.append(f"{sku}@{p.warehouse_code}: want {want}, got {have and {k: have[k] for k in want}}")
    return diffs


def _shelved(worker: WorkerProcess, units: dict[tuple[str, str], int]) -> bool:
    positions = _positions(worker, sorted({sku for sku, _ in units}))
    if isinstance(positions, str):
        return False
    return all(
        positions.get(sku, {}).get(warehouse_code, {}).get("onHandQty") == qty
        for (sku, warehouse_code), qty in units.items()
    )


def test_a_simulated_day_through_a_worker_ends_where_the_model_ends(deployment: Deployment) -> None:
    simulation = DaySimulation(DayParams(seed=3, orders=200, skus=40, warehouses=2, mix=CALM))
    events = list(simulation.events())
    kinds = {type(e).__name__ for e in events}
    assert {
        "OrderShipped",
        "Delivered",
        "DeliveryFailed",
        "OrderPaid",
        "OrderCancelled",
        "InboundAnnounced",
        "TransferReceived",
        "StockAdjusted",
        "DamagedDisposed",
    } <= kinds
    model = simulation.shadow
    model.expire_due(datetime.now(UTC))
    skus = _sample(simulation)

    opening = [e for e in events if is_opening_stock(e)]
    assert events[: len(opening)] == opening
    worker = deployment.start_worker("simulate")
    deployment.publish(opening)  # type: ignore[arg-type]
    shelved = {(line.sku, e.warehouse_code): line.sellable_qty for e in opening for line in e.lines}
    wait_until(lambda: _shelved(worker, shelved), timeout_s=60)
    deployment.publish(events[len(opening) :])  # type: ignore[arg-type]

    last: list[str] = []

    def settled() -> bool:
        nonlocal last
        last = _differences(worker, model, skus)
        return not last

    try:
        wait_until(settled, timeout_s=180, interval_s=2.0)
    except AssertionError:
        examples = "\n".join(last[:8])
        raise AssertionError(
            f"{len(last)} positions differ, e.g.:\n{examples}\nworker log:\n{worker.log_tail(30)}"
        ) from None
    dead = deployment.read(deployment.topics.dead_letters, timeout_s=5)
    assert dead == [], dead[:3]
    worker.stop()
