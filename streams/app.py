"""The worker's wiring: the Faust app, its topics and tables, the record sink, the stores, the
checkpoint, the agents (streams/agents.py) and the expiry timer. The edges (web views, the
webhook, the outbox bridge) are attached by the entry point, streams/worker.py.

Delivery: at least once into the tables, exactly once in effect. External inputs are applied
once by their receipts, internal messages once by their envelopes' numbers; the durability
order is streams/checkpoint.py's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import faust

from config.settings import Settings
from streams import faust_private
from streams.agents import (
    TRANSACTION_OVERHEAD,
    DeadLetters,
    OrderFamily,
    Outputs,
    Router,
    StockFamily,
    expire_due,
    movement_router,
    stateful_agent,
)
from streams.checkpoint import ChangelogOffsets, Checkpoint
from streams.client_errors import ConnectionFlood, RefusalWatch
from streams.expiry_clock import ExpiryClock
from streams.health import BrokerWatch
from streams.kafka_config import EXIT_REFUSED, faust_broker_credentials, faust_client_settings
from streams.metrics import Metrics
from streams.record_sink import RecordSink
from streams.stores import OrderStore, StockStore
from streams.tables import InventoryTables, declare_tables
from streams.topics import Topics
from streams.wire import RegistryUnavailable, Wire, wait_for_registry
from tables.policy import CorePolicy

log = logging.getLogger(__name__)

__all__ = ["EXIT_OUTPUT_FAILED", "TRANSACTION_OVERHEAD", "Pipeline", "create_app"]


@dataclass
class Pipeline:
    app: faust.App
    settings: Settings
    topics: Topics
    tables: InventoryTables
    metrics: Metrics
    sink: RecordSink
    wire: Wire
    broker_watch: BrokerWatch
    dead_letters: DeadLetters


def _faust_topic(app: faust.App, *names: str) -> faust.TopicT:
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def _register_schemas(wire: Wire, topics: Topics) -> None:
    """With a registry: every schema registered before the first record (retrying while the
    registry does not answer), so that encoding never waits on it."""
    attempt = 0
    while True:
        try:
            count = wire.register_all(topics)
        except RegistryUnavailable as exc:
            delay = wait_for_registry(attempt)
            log.warning("%s; retrying in %.1fs", exc, delay)
            time.sleep(delay)
            attempt += 1
            continue
        if count:
            log.info("%d topic schemas registered with %s", count, wire.registry_url)
        return


EXIT_OUTPUT_FAILED = 70  # EX_SOFTWARE: a record the worker must write can never be written


def _stop_loudly(failure: str) -> None:
    """A record the worker wrote can never be written. Stop now, committing nothing more:
    the next start reads again from the last committed offsets (skipping would lose the
    input that caused it, and everything after it that a later commit would cover)."""
    log.critical(
        "FATAL: a record could not be written (%s); stopping without committing further "
        "offsets, exit %d. Nothing was skipped: a restart reads again from the last commit. "
        "Fix the cause (topic, ACLs, the broker's max.message.bytes) before restarting.",
        failure,
        EXIT_OUTPUT_FAILED,
    )
    logging.shutdown()
    os._exit(EXIT_OUTPUT_FAILED)


class CommitTimer(faust.Sensor):
    """Times Faust's offset commits (its public sensor API) into ``inventory_offset_commit_seconds``.
    Faust starts a commit round every ``broker_commit_interval``; only a round that committed
    offsets is timed, and only such a round flushes first (``metrics.flushes`` moved)."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def on_commit_initiated(self, consumer: Any) -> Any:
        return time.perf_counter(), self.metrics.flushes

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        started, flushes = state
        if self.metrics.flushes != flushes:
            self.metrics.committed(time.perf_counter() - started)


def _stop_refused(line: str) -> None:
    """The brokers refused the worker's aiokafka client (credentials or TLS, e.g. rotated
    while it ran): retrying would not help. One line, exit 77, as at start (streams/worker.py)."""
    log.critical(
        "%s: check the INVENTORY_SASL_* / INVENTORY_SSL_* settings (docs/security.md); exit %d", line, EXIT_REFUSED
    )
    logging.shutdown()
    os._exit(EXIT_REFUSED)


def create_app(settings: Settings) -> Pipeline:
    faust_private.install()  # refuses an unsupported faust-streaming; patches its defects (see the module)
    ConnectionFlood().install()  # aiokafka's reconnect failures: one line per 30 s, not 25 a second
    if settings.security_protocol != "PLAINTEXT":
        logging.getLogger("aiokafka").addHandler(RefusalWatch(settings.bootstrap_servers, _stop_refused))
    client_settings: dict[str, Any] = dict(
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=settings.consumer_max_fetch_bytes,
        producer_acks=-1,
        producer_linger_ms=5,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
    )
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        broker_credentials=faust_broker_credentials(settings),
        **{**client_settings, **faust_client_settings(settings)},  # the pass-through wins (docs/security.md)
        store="rocksdb://",
        datadir=str(settings.data_dir),
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_disable_leader=True,
        web_host=settings.web_host,
        web_bind=settings.web_bind,  # Faust binds every interface unless told
        web_port=settings.web_port,
        web_tables_enabled=settings.debug_views,  # Faust's /table/...: raw table data, off unless asked
        # What the other workers call (table routing, batch fan-out): the advertised URL, not the bind address.
        canonical_url=settings.worker_url,
        table_standby_replicas=settings.standby_replicas,
    )
    faust_private.resume_buffered_partitions(app)
    faust_private.reread_stalled_partitions(app)
    topics = Topics(settings)
    tables = declare_tables(app, settings)
    metrics = Metrics()
    sink = RecordSink(settings)
    sink.on_fatal = _stop_loudly
    offsets = ChangelogOffsets()
    for table in (tables.orders, tables.stock):
        offsets.through(sink, table)
    wire = Wire(settings)
    _register_schemas(wire, topics)
    broker_watch = BrokerWatch(lambda timeout_s: sink.broker_metadata(topics.dead_letters, timeout_s), tick=sink.poll)
    policy = CorePolicy(
        warehouse_priority=settings.warehouse_priority,
        reorder_point=settings.default_reorder_point,
        count_history=settings.count_history,
        split_lines=settings.split_lines,
        receipt_retention_days=settings.receipt_retention_days,
    )
    outputs = Outputs(topics, wire, metrics)
    dead_letters = DeadLetters(settings, topics, wire, sink, metrics)
    pipeline = Pipeline(app, settings, topics, tables, metrics, sink, wire, broker_watch, dead_letters)

    def changelog_sender(table: faust.Table) -> Any:
        name = table.changelog_topic.get_topic_name()
        return lambda partition, k, value: sink.send(name, k, value, partition=partition)

    # One message's writes and outputs must fit in one transaction record together with what
    # the batch may already hold (committed early at batch_max_bytes).
    budget = settings.record_max_bytes - settings.batch_max_bytes - TRANSACTION_OVERHEAD
    order_store = OrderStore(tables.orders, changelog_sender(tables.orders), wire.decode, budget, "orders")
    stock_store = StockStore(tables.stock, changelog_sender(tables.stock), wire.decode, budget, "stock")
    checkpoint = Checkpoint(
        sink,
        {"orders": order_store, "stock": stock_store},
        {
            name: table.changelog_topic.get_topic_name()
            for name, table in (("orders", tables.orders), ("stock", tables.stock))
        },
        offsets,
        outputs.destination_of,
        metrics.sent,
    )

    async def timed_flush() -> None:
        started = time.perf_counter()
        await checkpoint.flush()
        metrics.flushed(time.perf_counter() - started)

    faust_private.flush_also(timed_flush)  # no commit of input offsets before the sink's records are in
    app.sensors.add(CommitTimer(metrics))
    expiry_clock = ExpiryClock(
        timedelta(seconds=settings.expiry_grace_s),
        timedelta(seconds=settings.expiry_wall_clock_fallback_s),
        wall=lambda: datetime.now(UTC),
    )
    orders = OrderFamily(
        "order-agent", order_store, policy, outputs, dead_letters, metrics, checkpoint, app, settings, expiry_clock
    )
    stock = StockFamily("stock-agent", stock_store, policy, outputs, dead_letters, metrics, checkpoint, app, settings)
    router = Router(outputs, dead_letters, sink, metrics, settings.record_max_bytes)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # Faust types receivers as (sender, *args)
    async def _assigned(sender: object, assigned: object, **kwargs: object) -> None:
        checkpoint.assigned()  # every partition recovers again; the stores' caches are dropped
        expiry_clock.forget()  # and what was read of a partition is unknown here

    @app.agent(_faust_topic(app, topics.orders, topics.shipments, topics.order_inbox), name="order-agent")
    async def order_agent(stream: faust.StreamT) -> None:
        """Orders, shipments and reservation answers -> the order lifecycle."""
        await stateful_agent(stream, orders, settings)

    @app.agent(_faust_topic(app, topics.stock_movements), name="movement-router")
    async def movement_router_agent(stream: faust.StreamT) -> None:
        """Stock-movement documents -> per-SKU commands (or to the order, for returns)."""
        await movement_router(stream, router)

    @app.agent(_faust_topic(app, topics.stock_commands), name="stock-agent")
    async def stock_agent(stream: faust.StreamT) -> None:
        """Per-SKU commands -> positions, ledger, alerts, reservation answers."""
        await stateful_agent(stream, stock, settings)

    @app.timer(interval=settings.expiry_check_interval_s, on_leader=False)
    async def expiry_timer() -> None:
        expire_due(app, tables.orders, expiry_clock, sink, wire, topics)

    @app.task
    async def _watch_the_broker() -> None:
        await broker_watch.run()

    @app.task
    async def _release_held_outputs() -> None:
        """Records wait in the sink for their transaction's changelog acknowledgement
        (streams/checkpoint.py): serve the acknowledgements often while any wait."""
        while True:
            await asyncio.sleep(0.002 if sink.holding else 0.02)
            sink.poll()

    return pipeline
