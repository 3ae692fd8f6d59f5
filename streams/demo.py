"""The main job on the embedded default: ``python -m streams.demo`` (``make run``).

Starts the local Kafka broker if needed, creates the topics, starts a worker (left running
with its web port), publishes a small realistic day (connectors/samples/seed-day.jsonl:
receipts, an ASN, a normal order, a multi-line order rejected for short stock, a presale
order served by the ASN's arrival, shipment, delivery, a transfer, a return, a stock count),
waits until the pipeline has applied it, and prints the resulting inventory and orders.
Running it again publishes the same events again: they are applied once.

``python -m streams.demo --connectors`` (``make run-connectors``) plays a day through the real
source and sink paths instead - webhooks, the OMS outbox through Debezium, the ERP tables through
the JDBC sinks - in a deployment of its own (``streams/demo_connectors.py``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from config.settings import REPO_ROOT, Settings, get_settings
from connectors.produce import EventPublisher
from schemas.events import InvalidLine, parse_lines
from streams import local_kafka
from streams.topics import create_topics
from streams.worker_process import WorkerProcess, http_json

SAMPLE = REPO_ROOT / "connectors" / "samples" / "seed-day.jsonl"
PACING_S = 0.3


def _pidfile() -> Path:
    return get_settings().local_dir / "worker.pid"


def _reader_pidfile() -> Path:
    return get_settings().local_dir / "reader.pid"


def start_reader(settings: Settings) -> str:
    """A read process (streams/reader.py) left running beside the worker; its URL."""
    import subprocess

    url = f"http://{settings.web_host}:{settings.reader_port}"
    if http_json(f"{url}/health")[0] == 200:
        print(f"a read process already serves {url}", flush=True)
        return url
    log = (settings.local_dir / "reader.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "streams.reader"], stdout=log, stderr=subprocess.STDOUT,
                            cwd=REPO_ROOT, start_new_session=True)
    _reader_pidfile().write_text(str(proc.pid))
    print(f"read process starting (pid {proc.pid}, log {settings.local_dir / 'reader.log'})", flush=True)
    return url


def main() -> int:
    settings = get_settings()
    started = time.monotonic()
    if settings.uses_local_broker:
        local_kafka.start(settings)
    created = create_topics(settings)
    print(f"topics ready ({len(created)} created)", flush=True)

    url = f"http://{settings.web_host}:{settings.web_port}"
    if http_json(f"{url}/health")[0] == 200:
        print(f"a worker already serves {url}", flush=True)
    else:
        worker = WorkerProcess({}, settings.local_dir / "worker.log", settings.web_port).start()
        assert worker.proc is not None
        _pidfile().write_text(str(worker.proc.pid))
        print(f"worker starting (pid {worker.proc.pid}, log {worker.log_path})", flush=True)
        worker.wait_ready(timeout_s=120)
    print(f"worker ready at {url}", flush=True)
    reader_url = start_reader(settings)

    events = []
    with SAMPLE.open(encoding="utf-8") as lines:
        for item in parse_lines(lines):
            if isinstance(item, InvalidLine):
                print(f"sample {item}", file=sys.stderr)
                return 1
            events.append(item)
    # A day has time between its events: publish them in causal order, one at a time, so
    # that an order placed after a receipt is applied after it (the three input topics are
    # not ordered with respect to each other).
    publisher = EventPublisher(settings)
    for event in events:
        publisher.publish(event)
        publisher.flush()
        time.sleep(PACING_S)
    print(f"published {publisher.report.sent} events from {SAMPLE.relative_to(REPO_ROOT)}", flush=True)

    skus = sorted({line["sku"] for e in map(lambda x: x.wire(), events) for line in e.get("lines", e.get("items", []))})
    orders = sorted({e.order_no for e in events if hasattr(e, "order_no")})
    snapshot = wait_until_settled(url, skus, orders)
    print_inventory(snapshot)
    same = wait_until_read_process_agrees(reader_url, snapshot["inventory"])
    print(f"\nread process at {reader_url}: {'answers the same' if same else 'did NOT catch up in 30 s'}"
          f" (python -m streams.reader: stock queries apart from the worker)", flush=True)
    print(f"\ndone in {time.monotonic() - started:.1f}s. The worker and the read process keep running: try "
          f"{url}/inventory/SKU001  {url}/orders/{orders[0]}  {url}/metrics  {reader_url}/inventory/SKU001",
          flush=True)
    print("stop everything with: make stop", flush=True)
    return 0


def _read(url: str, skus: list[str], orders: list[str]) -> dict[str, object]:
    return {
        "inventory": {sku: http_json(f"{url}/inventory/{sku}")[1] for sku in skus},
        "orders": {no: http_json(f"{url}/orders/{no}")[1] for no in orders},
    }


def wait_until_settled(url: str, skus: list[str], orders: list[str], timeout_s: float = 60.0) -> dict:  # type: ignore[type-arg]
    """Poll the views until two reads a second apart agree (the pipeline is quiet)."""
    deadline = time.monotonic() + timeout_s
    previous = None
    while time.monotonic() < deadline:
        current = _read(url, skus, orders)
        complete = all(isinstance(v, dict) and "error" not in v for v in current["orders"].values())  # type: ignore[union-attr]
        if complete and current == previous:
            return current
        previous = current
        time.sleep(1.0)
    return previous or {}


def wait_until_read_process_agrees(url: str, inventory: dict, timeout_s: float = 30.0) -> bool:  # type: ignore[type-arg]
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


def print_inventory(snapshot: dict) -> None:  # type: ignore[type-arg]
    print("\nInventory (per SKU and warehouse)")
    header = f"{'sku':8} {'warehouse':9} {'available':>9} {'reserved':>8} {'inTransit':>9} {'total':>6} " \
             f"{'onHand':>6} {'presold':>7} {'outbound':>8} {'damaged':>7} {'version':>7}"
    print(header)
    print("-" * len(header))
    for sku, body in snapshot.get("inventory", {}).items():
        for p in (body or {}).get("warehouses", []):
            print(f"{sku:8} {p['warehouseCode']:9} {p['availableQty']:>9} {p['reservedQty']:>8} "
                  f"{p['inTransitQty']:>9} {p['totalQty']:>6} {p['onHandQty']:>6} {p['presoldQty']:>7} "
                  f"{p['outboundQty']:>8} {p['damagedQty']:>7} {p['version']:>7}")
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


def stop() -> int:
    """Stop the demo workers, the connectors demo's services if they run (Kafka Connect,
    PostgreSQL, the schema registry) and the local broker (``make stop``)."""
    from streams import demo_connectors

    settings = get_settings()
    stop_worker(_pidfile())
    stop_worker(_reader_pidfile(), "read process")
    failed = demo_connectors.stop(settings)  # before the broker: Connect is a Kafka client
    if settings.uses_local_broker:
        local_kafka.stop(settings)
    return 1 if failed else 0


def reset() -> int:
    """Stop the demo worker, delete every declared topic and the worker's local state
    (``make reset``): the next run starts from nothing. The broker keeps running. The
    connectors demo's pipeline is forgotten the same way (``demo_connectors.reset``)."""
    import shutil

    from streams import demo_connectors
    from streams.topics import Topics

    settings = get_settings()
    kill_worker(_pidfile())
    kill_worker(_reader_pidfile())
    if settings.uses_local_broker and not local_kafka.is_running(settings):
        local_kafka.start(settings)
    doomed = delete_topics(settings, list(Topics(settings).all()))
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    print(f"deleted {len(doomed)} topics and {settings.data_dir}")
    return demo_connectors.reset(settings)


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


if __name__ == "__main__":
    commands = {"stop": stop, "reset": reset}
    if sys.argv[1:2] and sys.argv[1] in commands:
        sys.exit(commands[sys.argv[1]]())
    if sys.argv[1:2] == ["--connectors"]:
        from streams import demo_connectors

        sys.exit(demo_connectors.main())
    sys.exit(main())

