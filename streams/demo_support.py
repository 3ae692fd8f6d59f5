"""What both demos share (streams/demo.py, streams/demo_connectors.py): reading the views until
the pipeline is quiet, printing the inventory, stopping or killing a demo process by its pid
file, deleting a deployment's topics.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from config.settings import Settings
from streams.worker_process import http_json


def _read(url: str, skus: list[str], orders: list[str]) -> dict[str, dict[str, Any]]:
    return {
        "inventory": {sku: http_json(f"{url}/inventory/{sku}")[1] for sku in skus},
        "orders": {no: http_json(f"{url}/orders/{no}")[1] for no in orders},
    }


def wait_until_settled(
    url: str, skus: list[str], orders: list[str], timeout_s: float = 60.0
) -> dict[str, dict[str, Any]]:
    """Poll the views until two reads a second apart agree (the pipeline is quiet)."""
    deadline = time.monotonic() + timeout_s
    previous = None
    while time.monotonic() < deadline:
        current = _read(url, skus, orders)
        complete = all(isinstance(v, dict) and "error" not in v for v in current["orders"].values())
        if complete and current == previous:
            return current
        previous = current
        time.sleep(1.0)
    return previous or {}


def wait_until_read_process_agrees(url: str, inventory: dict[str, Any], timeout_s: float = 30.0) -> bool:
    """Poll the read process until its SKU answers equal the worker's (warehouses by code)."""

    def by_code(body: object) -> object:
        if not isinstance(body, dict) or "warehouses" not in body:
            return body
        return {**body, "warehouses": sorted(body["warehouses"], key=lambda p: p["warehouseCode"])}

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(by_code(http_json(f"{url}/inventory/{sku}")[1]) == by_code(body) for sku, body in inventory.items()):
            return True
        time.sleep(0.5)
    return False


def print_inventory(snapshot: dict[str, Any]) -> None:
    print("\nInventory (per SKU and warehouse)")
    header = (
        f"{'sku':8} {'warehouse':9} {'available':>9} {'reserved':>8} {'inTransit':>9} {'total':>6} "
        f"{'onHand':>6} {'presold':>7} {'outbound':>8} {'damaged':>7} {'version':>7}"
    )
    print(header)
    print("-" * len(header))
    for sku, body in snapshot.get("inventory", {}).items():
        for p in (body or {}).get("warehouses", []):
            print(
                f"{sku:8} {p['warehouseCode']:9} {p['availableQty']:>9} {p['reservedQty']:>8} "
                f"{p['inTransitQty']:>9} {p['totalQty']:>6} {p['onHandQty']:>6} {p['presoldQty']:>7} "
                f"{p['outboundQty']:>8} {p['damagedQty']:>7} {p['version']:>7}"
            )
    print("\nOrders")
    for no, body in snapshot.get("orders", {}).items():
        timeline = " -> ".join(entry["what"] for entry in (body or {}).get("timeline", []))
        print(f"{no}  {(body or {}).get('status', '?'):20} {timeline}")
    sys.stdout.flush()


def stop_worker(pidfile: Path, what: str = "worker") -> None:
    """SIGTERM the process group whose leader's pid the file holds, wait up to 30 s, forget the file."""
    import os
    import signal

    if pidfile.exists():
        pid = int(pidfile.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(60):
                os.kill(pid, 0)
                time.sleep(0.5)
        except ProcessLookupError:
            pass
        pidfile.unlink(missing_ok=True)
        print(f"{what} {pid} stopped")


def kill_worker(pidfile: Path) -> None:
    """SIGKILL the worker whose pid the file holds (its state is about to be deleted)."""
    import os
    import signal

    if pidfile.exists():
        try:
            os.killpg(int(pidfile.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass
        pidfile.unlink(missing_ok=True)


def delete_topics(settings: Settings, names: list[str]) -> list[str]:
    """Delete those of the topics that exist and wait until they are gone; returns them."""
    from confluent_kafka.admin import AdminClient

    from streams.kafka_config import admin_config

    admin = AdminClient(admin_config(settings))
    existing = set(admin.list_topics(timeout=30).topics)
    doomed = [name for name in names if name in existing]
    for future in admin.delete_topics(doomed, operation_timeout=30).values() if doomed else ():
        future.result()
    # Deletion completes asynchronously: wait until the topics are gone, or the next run would
    # see them, create nothing, and then lose them.
    deadline = time.monotonic() + 60
    while doomed and time.monotonic() < deadline:
        if not set(doomed) & set(admin.list_topics(timeout=30).topics):
            break
        time.sleep(0.5)
    return doomed
