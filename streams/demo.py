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

from config.settings import REPO_ROOT, Settings, get_settings, url_with_port
from connectors.produce import EventPublisher
from schemas.events import InvalidLine, parse_lines
from streams import demo_connectors, local_kafka
from streams.demo_support import (
    delete_topics,
    kill_worker,
    print_inventory,
    stop_worker,
    wait_until_read_process_agrees,
    wait_until_settled,
)
from streams.topics import create_topics
from streams.worker_process import WorkerProcess, http_json, spawn

SAMPLE = REPO_ROOT / "connectors" / "samples" / "seed-day.jsonl"
PACING_S = 0.3


def _pidfile() -> Path:
    return get_settings().local_dir / "worker.pid"


def _reader_pidfile() -> Path:
    return get_settings().local_dir / "reader.pid"


def start_reader(settings: Settings) -> str:
    """A read process (streams/reader.py) left running beside the worker; its URL."""
    import os

    url = url_with_port(settings.worker_url, settings.reader_port)  # it routes nothing: no URL of its own
    if http_json(f"{url}/health")[0] == 200:
        print(f"a read process already serves {url}", flush=True)
        return url
    proc = spawn(["-m", "streams.reader"], dict(os.environ), settings.local_dir / "reader.log")
    _reader_pidfile().write_text(str(proc.pid))
    print(f"read process starting (pid {proc.pid}, log {settings.local_dir / 'reader.log'})", flush=True)
    return url


def run() -> int:
    settings = get_settings()
    started = time.monotonic()
    if settings.uses_local_broker:
        local_kafka.start(settings)
    created = create_topics(settings)
    print(f"topics ready ({len(created)} created)", flush=True)

    url = settings.worker_url
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
    print(
        f"\nread process at {reader_url}: {'answers the same' if same else 'did NOT catch up in 30 s'}"
        f" (python -m streams.reader: stock queries apart from the worker)",
        flush=True,
    )
    print(
        f"\ndone in {time.monotonic() - started:.1f}s. The worker and the read process keep running: try "
        f"{url}/inventory/SKU001  {url}/orders/{orders[0]}  {url}/metrics  {reader_url}/inventory/SKU001",
        flush=True,
    )
    print("stop everything with: make stop", flush=True)
    return 0


def stop() -> int:
    """Stop the demo workers, the connectors demo's services if they run (Kafka Connect,
    PostgreSQL, the schema registry) and the local broker (``make stop``)."""
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


def main(argv: list[str] | None = None) -> int:
    """``python -m streams.demo [run|stop|reset] [--connectors]``; ``--help`` starts nothing."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m streams.demo",
        description="The main job on the embedded default: local Kafka, topics, a worker and a read process left "
        "running, a sample day, the inventory. `stop` stops the demos' processes, services and the local "
        "broker; `reset` forgets both demos' topics and state.",
    )
    parser.add_argument("command", nargs="?", choices=("run", "stop", "reset"), default="run")
    parser.add_argument(
        "--connectors",
        action="store_true",
        help="run: play the day through the webhooks, Debezium and the JDBC sinks instead",
    )
    args = parser.parse_args(argv)
    if args.command == "stop":
        return stop()
    if args.command == "reset":
        return reset()
    return demo_connectors.main() if args.connectors else run()


if __name__ == "__main__":
    sys.exit(main())
