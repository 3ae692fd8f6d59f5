"""Safe by default: the worker's web server listens on 127.0.0.1 only, unless configured.

Faust's ``web_bind`` defaults to every interface (``web_host`` only feeds the canonical URL),
so the worker used to answer on 0.0.0.0:6066. The kernel's socket table says what listens.

Bound to every interface, a worker is reached at its advertised URL (issue 16): two workers
bound to 0.0.0.0 advertising two other loopback addresses (127.0.0.2, 127.0.0.3: neither the
bind address nor the derived http://127.0.0.1:port) answer each other's keys, which only works
if each forwards to the other's advertised URL.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from streams.worker_process import WorkerProcess, http_json
from tests.integration.conftest import Deployment, free_port, wait_until
from tests.integration.day_end import exact_workload

pytestmark = pytest.mark.kafka

LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def listening_addresses(port: int) -> set[str]:
    """The local IPv4/IPv6 addresses (hex, as the kernel writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == LISTEN:
                found.add(address)
    return found


def test_the_worker_listens_on_the_loopback_interface_only(deployment: Deployment) -> None:
    worker = deployment.start_worker("bind")
    try:
        addresses = listening_addresses(worker.web_port)
        assert addresses, f"nothing listens on {worker.web_port}"
        assert addresses <= {"0100007F", "0000000000000000FFFF00000100007F"}, addresses  # 127.0.0.1
    finally:
        worker.stop()


def _worker_bound_everywhere(d: Deployment, name: str, host: str) -> tuple[WorkerProcess, str]:
    port = free_port()
    advertised = f"http://{host}:{port}"
    env = {
        **d.env,
        "INVENTORY_DATA_DIR": str(d.root / name),
        "INVENTORY_WEB_BIND": "0.0.0.0",
        "INVENTORY_ADVERTISED_URL": advertised,
    }
    worker = WorkerProcess(env, d.root / f"{name}.log", port).start()
    d.workers.append(worker)  # killed by the fixture whatever happens
    return worker, advertised


def test_two_workers_bound_to_every_interface_answer_each_others_keys_at_their_advertised_urls(
    fresh_deployment: Deployment,
) -> None:
    d = fresh_deployment
    a, url_a = _worker_bound_everywhere(d, "adv-a", "127.0.0.2")
    b, url_b = _worker_bound_everywhere(d, "adv-b", "127.0.0.3")
    a.wait_ready(timeout_s=120)
    b.wait_ready(timeout_s=120)
    assert listening_addresses(a.web_port) == {"00000000"}  # 0.0.0.0

    def routing_split() -> bool:  # both see the same two advertised URLs, each owning stock partitions
        views = [http_json(f"{url}/router/")[1] for url in (url_a, url_b)]
        if not all(isinstance(v, dict) for v in views) or views[0] != views[1]:
            return False
        owners = {
            h.rstrip("/") for h, tables in views[0].items() if any("stock-state" in t and p for t, p in tables.items())
        }
        return owners == {url_a, url_b}

    wait_until(routing_split, timeout_s=120)
    receipts, _ = exact_workload(seed=16, skus=16, orders=0)
    d.publish(receipts)
    warehouse = receipts[0]["warehouseCode"]
    skus = [line["sku"] for line in receipts[0]["lines"]]
    owner = {sku: str(http_json(f"{url_a}/router/stock-state/{quote(sku, safe='')}/")[1]).rstrip("/") for sku in skus}
    assert set(owner.values()) == {url_a, url_b}, owner

    def answered(url: str, sku: str) -> bool:
        status, body = http_json(f"{url}/inventory/{quote(sku, safe='')}/{quote(warehouse, safe='')}")
        return status == 200 and body["onHandQty"] == 100_000

    for sku in skus:  # a key owned by A asked from B is forwarded to A's advertised URL, and the reverse
        other = url_b if owner[sku] == url_a else url_a
        wait_until(lambda: answered(other, sku), timeout_s=60, interval_s=0.2)
    for url in (url_a, url_b):  # the batch view fans out to the owners' advertised URLs too
        status, batch = http_json(f"{url}/inventory?skus={','.join(skus)}")
        assert status == 200 and batch["missing"] == [] and sorted(batch["items"]) == sorted(skus), batch
    a.stop()
    b.stop()
