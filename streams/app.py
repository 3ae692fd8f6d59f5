"""The Faust application: topics, tables, agents, the expiry timer and the web views.

Agents are thin: decode, call the core, write the tables, send what the core returned. The
two stateful agents take their messages in batches (``stream.take_events``); each partition's
run of a batch is one transaction (streams/stores.py): the core sees every message in order,
on the state the previous ones left, and the batch's writes and outputs go out together.
Anything that cannot be decoded, validated or applied goes to the dead-letter topic with its
reason and source coordinates, and the agent carries on.

Delivery: at least once. Faust flushes the producer before it commits input offsets, but a
table write reaches RocksDB and its changelog at once, so after a crash the state can be
ahead of the committed offset. Every message is therefore applied through the core's
receipts: a replayed message changes nothing and its recorded outputs are sent again
(consumers drop them by eventId/version).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from faust.types import EventT
from pydantic import ValidationError

from config.settings import Settings
from schemas.base import Event
from schemas.codec import CodecError
from schemas.internal import Envelope, ReservationExpiryDue, ReservationUpdated, StockCommand
from schemas.outputs import (
    InventoryAlert,
    InventoryChanged,
    InventoryLedgerEntry,
    OrderStatusChanged,
    OutboundCancellation,
    OutboundInstruction,
)
from streams import faust_private
from streams.dead_letters import dead_letter_key, dead_letter_of
from streams.envelopes import Outgoing
from streams.expiry_clock import ExpiryClock
from streams.health import BrokerWatch
from streams.kafka_config import faust_broker_credentials
from streams.metrics import Metrics
from streams.record_sink import RecordSink
from streams.stores import FamilyStore, OrderStore, StockStore, TooLarge, expiry_key, scan_prefix
from streams.topics import Topics
from streams.wire import RegistryUnavailable, Wire, wait_for_registry
from tables.declarations import InventoryTables, declare_tables
from tables.orders import ORDER_MESSAGES, apply_order
from tables.policy import CorePolicy
from tables.routing import is_order_scoped, stock_commands_for
from tables.stock import apply_stock

log = logging.getLogger(__name__)


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


def _faust_topic(app: faust.App, *names: str) -> faust.TopicT:
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


class ChangelogOffsets:
    """The last acknowledged offset of each changelog partition, written to Faust's store
    (what a restart resumes its restore after) once per commit of input offsets rather than
    once per record: one RocksDB put per partition and second instead of one per record. A
    recorded offset behind the local store only makes a restore re-read records it holds
    (idempotent), and streams/local_state.py searches forward from it."""

    def __init__(self) -> None:
        self._tables: dict[str, faust.Table] = {}
        self._pending: dict[tuple[str, int], int] = {}

    def through(self, sink: RecordSink, table: faust.Table) -> None:
        """Send ``table``'s changelog records through ``sink``, in the partition Faust chose."""
        name = table.changelog_topic.get_topic_name()
        self._tables[name] = table

        def send_changelog(partition: int, key: Any, value: Any) -> None:
            sink.send(name, key, value, partition=partition)

        faust_private.route_changelog(table, send_changelog)
        sink.watch(name, self.delivered)

    def delivered(self, topic: str, partition: int, offset: int) -> None:
        self._pending[(topic, partition)] = offset

    def write(self) -> None:
        """Record the offsets acknowledged since the last call."""
        from faust.types import TP

        pending, self._pending = self._pending, {}
        for (topic, partition), offset in pending.items():
            faust_private.set_persisted_offset(self._tables[topic], TP(topic, partition), offset)


def commit_then_send(store: FamilyStore, sink: RecordSink, changelog: str, outgoing: Outgoing) -> None:
    """A transaction's durability, in this order:

    1. its outbox entry (what it sends), its redo record, then its writes go to the
       partition's ``changelog`` (``store.commit``, which numbers the transaction and its
       envelopes);
    2. its records are handed to the sink, which holds them until the broker has acknowledged
       those changelog records (``RecordSink.after_acknowledged``), then sends them;
    3. ``outgoing`` is emptied. Input offsets are committed after the sink's flush, which
       waits for held records too; after that flush the outbox entries it covered are deleted
       with a later transaction's writes (``FamilyStore.flushed``).

    Step 2 keeps an output from outliving the state that decided it: the sink's records of
    different partitions reach the broker independently, so a crash could land a
    transaction's outputs and lose its changelog records; the replay then decides again on
    older state, in another interleaving of the input topics, and may decide otherwise
    (docs/decisions.md). Nothing here waits: the agent goes on with its next batch."""
    records = store.commit(outgoing)
    with sink.after_acknowledged(changelog, store.partition):
        for r in records:
            sink.send(r.topic, r.key, r.value, partition=None if r.partition < 0 else r.partition)
    outgoing.clear()


def by_partition(events: Iterable[EventT]) -> dict[int, list[EventT]]:
    """A batch's events grouped by partition, each group in arrival order."""
    groups: dict[int, list[EventT]] = {}
    for event in events:
        groups.setdefault(event.message.partition, []).append(event)
    return groups


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
TRANSACTION_OVERHEAD = 16_384  # a transaction record's own fields, on top of its counted writes


def _stop_loudly(failure: str) -> None:
    """A record the worker wrote can never be written. Stop now, committing nothing more:
    the next start reads again from the last committed offsets (skipping would lose the
    input that caused it, and everything after it that a later commit would cover)."""
    log.critical("FATAL: a record could not be written (%s); stopping without committing further "
                 "offsets, exit %d. Nothing was skipped: a restart reads again from the last commit. "
                 "Fix the cause (topic, ACLs, the broker's max.message.bytes) before restarting.",
                 failure, EXIT_OUTPUT_FAILED)
    logging.shutdown()
    os._exit(EXIT_OUTPUT_FAILED)


def create_app(settings: Settings) -> Pipeline:
    faust_private.install()  # refuses an unsupported faust-streaming; patches its defects (see the module)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        broker_credentials=faust_broker_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.data_dir),
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        web_host=settings.web_host,
        web_bind=settings.web_bind,  # Faust binds every interface unless told
        web_port=settings.web_port,
        web_tables_enabled=settings.debug_views,  # Faust's /table/...: raw table data, off unless asked
        canonical_url=f"http://{settings.web_host}:{settings.web_port}",
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=settings.consumer_max_fetch_bytes,
        producer_acks=-1,
        producer_linger_ms=5,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        table_standby_replicas=settings.standby_replicas,
    )
    faust_private.resume_buffered_partitions(app)
    faust_private.reread_stalled_partitions(app)
    topics = Topics(settings)
    tables = declare_tables(app, settings)
    metrics = Metrics()
    sink = RecordSink(settings)
    sink.on_fatal = _stop_loudly
    changelog_offsets = ChangelogOffsets()
    for table in (tables.orders, tables.stock):
        changelog_offsets.through(sink, table)
    wire = Wire(settings)
    _register_schemas(wire, topics)
    broker_watch = BrokerWatch(lambda timeout_s: sink.broker_metadata(topics.dead_letters, timeout_s), tick=sink.poll)
    pipeline = Pipeline(app, settings, topics, tables, metrics, sink, wire, broker_watch)

    @app.task
    async def _watch_the_broker() -> None:
        await broker_watch.run()
    policy = CorePolicy(
        warehouse_priority=settings.warehouse_priority,
        reorder_point=settings.default_reorder_point,
        count_history=settings.count_history,
        split_lines=settings.split_lines,
        receipt_retention_days=settings.receipt_retention_days,
    )

    t_orders_in = _faust_topic(app, topics.orders, topics.shipments, topics.order_inbox)
    t_movements = _faust_topic(app, topics.stock_movements)
    t_commands = _faust_topic(app, topics.stock_commands)

    def destination(event: object) -> tuple[str, str]:
        """Which topic an emitted event goes to, and its key."""
        if isinstance(event, StockCommand):
            return topics.stock_commands, event.sku
        if isinstance(event, ReservationUpdated):
            return topics.order_inbox, event.order_no
        if isinstance(event, InventoryChanged):
            return topics.inventory_changes, f"{event.sku}|{event.warehouse_code}"
        if isinstance(event, InventoryLedgerEntry):
            return topics.inventory_ledger, f"{event.sku}|{event.warehouse_code}"
        if isinstance(event, InventoryAlert):
            return topics.inventory_alerts, event.sku or event.order_no or ""
        if isinstance(event, OrderStatusChanged):
            return topics.order_status, event.order_no
        if isinstance(event, (OutboundInstruction, OutboundCancellation)):
            return topics.outbound_instructions, event.order_no
        raise TypeError(f"no destination for {type(event).__name__}")

    internal_topics = frozenset((topics.stock_commands, topics.order_inbox))

    def encode_all(events: Iterable[object]) -> tuple[bytes, ...]:
        return tuple(wire.encode(e, destination(e)[0]) for e in events)

    def emit(outgoing: Outgoing, events: tuple[object, ...], encoded: tuple[bytes, ...], duplicate: bool) -> None:
        """A message's outputs into its transaction: internal messages into envelopes, the
        rest one record each. A duplicate's internal messages are not sent again: the
        transaction that first sent them keeps them in its outbox until acknowledged."""
        for event, payload in zip(events, encoded, strict=True):
            name, k = destination(event)
            if name in internal_topics:
                if not duplicate:
                    outgoing.internal(name, k.encode(), payload)
            else:
                outgoing.output(name, k.encode(), payload)
            metrics.sent(name)

    def split(events: tuple[object, ...], encoded: tuple[bytes, ...]) -> tuple[tuple[bytes, ...], int]:
        """The outputs a receipt keeps (for the outside world), and the internal bytes."""
        kept, internal = [], 0
        for event, payload in zip(events, encoded, strict=True):
            if isinstance(event, (StockCommand, ReservationUpdated)):
                internal += len(payload)
            else:
                kept.append(payload)
        return tuple(kept), internal

    def send_all(events: tuple[object, ...], encoded: tuple[bytes, ...]) -> None:
        for event, payload in zip(events, encoded, strict=True):
            name, k = destination(event)
            sink.send(name, k.encode(), payload)
            metrics.sent(name)

    async def dead_letter(event: EventT, error_type: str, error: str, item: tuple[int, bytes] | None = None) -> None:
        """``item``: an envelope's message (its index and bytes) rather than the whole record."""
        msg = event.message
        raw_key = msg.key if isinstance(msg.key, bytes) else None
        value = msg.value if isinstance(msg.value, bytes) else None
        if item is not None:
            error = f"item {item[0]} of the envelope: {error}"
            value = item[1]
        letter = dead_letter_of(
            msg.topic, msg.partition, msg.offset, raw_key, value,
            error_type, error, datetime.now(UTC), settings.dead_letter_excerpt_bytes,
        )
        sink.send(topics.dead_letters, dead_letter_key(raw_key), wire.encode(letter, topics.dead_letters))
        metrics.sent(topics.dead_letters)
        metrics.dead_letter(msg.topic, error_type)
        log.warning("dead letter %s[%s]@%s: %s: %s", msg.topic, msg.partition, msg.offset, error_type, error[-800:] if error_type == "PROCESSING" else error[:300])

    async def decode_or_dead_letter(event: EventT, validate: bool, item: tuple[int, bytes] | None = None) -> Any:
        attempt = 0
        data = event.value if item is None else item[1]
        while True:  # a registry that does not answer is not the record's fault: wait for it
            try:
                return wire.decode(data, validate=validate)
            except RegistryUnavailable as exc:
                delay = wait_for_registry(attempt)
                log.warning("%s; %s[%s]@%s waits %.1fs", exc, event.message.topic, event.message.partition,
                            event.message.offset, delay)
                await asyncio.sleep(delay)
                attempt += 1
            except ValidationError as exc:
                await dead_letter(event, "VALIDATION", str(exc), item)
                return None
            except CodecError as exc:
                await dead_letter(event, "DECODE", f"{type(exc).__name__}: {exc}", item)
                return None
            except Exception as exc:  # noqa: BLE001 - a record must never stop the agent
                await dead_letter(event, "DECODE", f"{type(exc).__name__}: {exc}", item)
                return None

    def changelog_sender(table: faust.Table) -> Any:
        name = table.changelog_topic.get_topic_name()

        def send(partition: int, k: bytes, value: bytes | None) -> None:
            sink.send(name, k, value, partition=partition)

        return send

    # One message's writes and outputs must fit in one transaction record together with what
    # the batch may already hold (committed early at batch_max_bytes).
    message_budget = settings.record_max_bytes - settings.batch_max_bytes - TRANSACTION_OVERHEAD
    order_store = OrderStore(tables.orders, changelog_sender(tables.orders), wire.decode, message_budget, "orders")
    expiry_clock = ExpiryClock(
        timedelta(seconds=settings.expiry_grace_s), timedelta(seconds=settings.expiry_wall_clock_fallback_s),
        wall=lambda: datetime.now(UTC),
    )
    stock_store = StockStore(tables.stock, changelog_sender(tables.stock), wire.decode, message_budget, "stock")

    async def flush_then_release_outboxes() -> None:
        """Faust's commit waits for this before it commits input offsets: every record handed
        to the sink so far is acknowledged, so the outbox entries of the transactions it
        covered may go."""
        marks = [(store, store.marks()) for store in (order_store, stock_store)]
        await sink.flush()
        for store, mark in marks:
            store.flushed(mark)
        changelog_offsets.write()

    faust_private.flush_also(flush_then_release_outboxes)  # no commit of input offsets before the sink's records are in
    changelogs = {family: table.changelog_topic.get_topic_name()
                  for family, table in (("orders", tables.orders), ("stock", tables.stock))}
    redone: set[tuple[str, int]] = set()  # (family, partition) whose head was re-applied

    @app.on_partitions_assigned.connect
    async def _forget_redone(sender: object, assigned: object, **kwargs: object) -> None:
        redone.clear()  # after any rebalance, each partition's head is applied once more
        expiry_clock.forget()  # and what was read of a partition is unknown here
        order_store.forget()
        stock_store.forget()

    def redo_once(family: str, store: FamilyStore) -> None:
        """The first batch of a partition since assignment completes its last transaction
        (cut short if the previous owner crashed) and re-sends its outputs, once its records
        are acknowledged (after a rebalance without a crash the head may still be in flight)."""
        marker = (family, store.partition)
        if marker in redone:
            return
        redone.add(marker)
        legacy, records = store.recover()
        with sink.after_acknowledged(changelogs[family], store.partition):
            for payload in legacy:  # a head written before outboxes: its outputs one by one
                name, k = destination(wire.decode(payload, validate=False))
                sink.send(name, k.encode(), payload)
            for r in records:
                sink.send(r.topic, r.key, r.value, partition=None if r.partition < 0 else r.partition)

    async def run_transactions(family: str, store: FamilyStore, batch: Iterable[EventT],
                               apply_one: Callable[[EventT, Outgoing], Awaitable[None]]) -> None:
        """A batch of messages, partition by partition, each partition's run as one
        transaction: applied one message after the other on the staged state, committed
        (outbox, redo record, then the writes), then its records sent."""
        generation = faust_private.consumer_generation(app)
        outgoing = Outgoing(settings.partitions, wire.encode)
        for partition, events in by_partition(batch).items():
            # Events taken before a rebalance belong to partitions we may no longer own: Faust's
            # own stream skips (and acks) them, and so do we (their next owner reads them).
            events = [e for e in events if faust_private.event_generation(e) == generation]
            if not events:
                continue
            store.open(partition)
            redo_once(family, store)
            for event in events:
                await apply_one(event, outgoing)
                if store.staged_bytes + outgoing.size >= settings.batch_max_bytes:
                    commit_then_send(store, sink, changelogs[family], outgoing)
            commit_then_send(store, sink, changelogs[family], outgoing)

    async def apply_envelope(event: EventT, envelope: Envelope, store: FamilyStore, outgoing: Outgoing,
                             apply_item: Callable[[EventT, Any, Outgoing, tuple[int, bytes] | None],
                                                  Awaitable[None]]) -> None:
        """Each message of an envelope not applied before, in order, without receipts; then
        the envelope's number as the highest applied from its source."""
        if envelope.seq <= store.received(envelope.source):
            metrics.processed(f"{store.name}-envelope", 0.0, True)
            return
        for index, payload in enumerate(envelope.items):
            message = await decode_or_dead_letter(event, False, (index, payload))
            if message is not None:
                await apply_item(event, message, outgoing, (index, payload))
        store.stage_received(envelope.source, envelope.seq)

    @app.task
    async def _release_held_outputs() -> None:
        """Outputs wait in the sink for their transaction's changelog acknowledgement
        (``commit_then_send``): serve the acknowledgements often while any wait."""
        while True:
            await asyncio.sleep(0.002 if sink.holding else 0.02)
            sink.poll()

    async def apply_order_message(event: EventT, outgoing: Outgoing) -> None:
        metrics.received(event.message.topic)
        internal = event.message.topic == topics.order_inbox
        message = await decode_or_dead_letter(event, validate=not internal)
        if message is None:
            return
        if isinstance(message, Envelope) and internal:
            await apply_envelope(event, message, order_store, outgoing, apply_order_item)
            return
        await apply_order_item(event, message, outgoing, None)

    async def apply_order_item(event: EventT, message: Any, outgoing: Outgoing, item: tuple[int, bytes] | None) -> None:
        """One order message: ``item`` set, an envelope's (applied once by the envelope)."""
        started = time.perf_counter()
        if type(message) not in ORDER_MESSAGES:
            await dead_letter(event, "UNEXPECTED_RECORD", f"{type(message).__name__} is not an order message", item)
            return
        if isinstance(message, Event):  # an input event (not an answer or a tick): event time moves
            expiry_clock.saw(event.message.partition, message.occurred_at)
        try:
            outcome = apply_order(order_store, message, policy, by_receipt=item is None)
            encoded = encode_all(outcome.events)
            if not outcome.duplicate:
                order_store.stage_outcome(outcome, *split(outcome.events, encoded))
        except TooLarge as exc:
            await dead_letter(event, "TOO_LARGE", str(exc), item)
            return
        except Exception as exc:  # noqa: BLE001
            await dead_letter(event, "PROCESSING", "".join(traceback.format_exception(exc))[-4000:], item)
            return
        emit(outgoing, outcome.events, encoded, outcome.duplicate)
        metrics.processed("order-agent", time.perf_counter() - started, outcome.duplicate)

    async def apply_stock_message(event: EventT, outgoing: Outgoing) -> None:
        metrics.received(event.message.topic)
        message = await decode_or_dead_letter(event, validate=False)
        if message is None:
            return
        if isinstance(message, Envelope):
            await apply_envelope(event, message, stock_store, outgoing, apply_stock_item)
            return
        await apply_stock_item(event, message, outgoing, None)

    async def apply_stock_item(event: EventT, command: Any, outgoing: Outgoing, item: tuple[int, bytes] | None) -> None:
        """One stock command: ``item`` set, an envelope's (applied once by the envelope)."""
        started = time.perf_counter()
        if not isinstance(command, StockCommand):
            await dead_letter(event, "UNEXPECTED_RECORD", f"{type(command).__name__} is not a stock command", item)
            return
        try:
            outcome = apply_stock(stock_store, command, policy, by_receipt=item is None)
            encoded = encode_all(outcome.events)
            if not outcome.duplicate:
                stock_store.stage_outcome(outcome, *split(outcome.events, encoded))
        except TooLarge as exc:
            await dead_letter(event, "TOO_LARGE", str(exc), item)
            return
        except Exception as exc:  # noqa: BLE001
            await dead_letter(event, "PROCESSING", "".join(traceback.format_exception(exc))[-4000:], item)
            return
        emit(outgoing, outcome.events, encoded, outcome.duplicate)
        metrics.processed("stock-agent", time.perf_counter() - started, outcome.duplicate)

    @app.agent(t_orders_in, name="order-agent")
    async def order_agent(stream: faust.StreamT) -> None:
        """Orders, shipments and reservation answers -> the order lifecycle."""
        async for batch in stream.take_events(settings.batch_max_events, settings.batch_within_s):
            await run_transactions("orders", order_store, batch, apply_order_message)

    @app.agent(t_movements, name="movement-router")
    async def movement_router(stream: faust.StreamT) -> None:
        """Stock-movement documents -> per-SKU commands (or to the order, for returns)."""
        async for event in stream.events():
            metrics.received(event.message.topic)
            message = await decode_or_dead_letter(event, validate=True)
            if message is None:
                continue
            if is_order_scoped(message):
                forwarded = wire.encode(message, topics.order_inbox)
                if len(forwarded) > settings.record_max_bytes - TRANSACTION_OVERHEAD:
                    await dead_letter(event, "TOO_LARGE", f"forwarded, it would take {len(forwarded)} bytes")
                    continue
                sink.send(topics.order_inbox, message.order_no.encode(), forwarded)
                metrics.sent(topics.order_inbox)
                continue
            try:
                commands = stock_commands_for(message)
            except KeyError:
                await dead_letter(event, "UNEXPECTED_RECORD", f"{type(message).__name__} is not a stock movement")
                continue
            encoded = encode_all(commands)
            largest = max(map(len, encoded), default=0)
            if largest > settings.record_max_bytes - TRANSACTION_OVERHEAD:
                await dead_letter(event, "TOO_LARGE", f"one of its stock commands would take {largest} bytes")
                continue
            send_all(tuple(commands), encoded)

    @app.agent(t_commands, name="stock-agent")
    async def stock_agent(stream: faust.StreamT) -> None:
        """Per-SKU commands -> positions, ledger, alerts, reservation answers."""
        async for batch in stream.take_events(settings.batch_max_events, settings.batch_within_s):
            await run_transactions("stock", stock_store, batch, apply_stock_message)

    @app.timer(interval=settings.expiry_check_interval_s, on_leader=False)
    async def expire_due() -> None:
        """Tick every unpaid reservation that came due on its partition's event time (or on
        the wall-clock fallback: streams/expiry_clock.py), walking the sorted expiry index of
        this worker's active partitions only up to then (no scan of all orders). A tick is
        stamped with its due time: the wall clock decides when to look, never what is written."""
        now = datetime.now(UTC)  # the clock lives in the shell, never in the core
        changelog = tables.orders.changelog_topic.get_topic_name()
        actives = {tp.partition for tp in faust_private.assigned_actives(app) if tp.topic == changelog}
        for partition in sorted(actives):
            tick_by = expiry_clock.tick_by(partition, now)
            if tick_by is None:
                continue
            limit = expiry_key(tick_by, "\xff")
            for k, _ in scan_prefix(tables.orders, partition, b"x|"):
                if k > limit:
                    break
                _, stamp, order_no = k.decode().split("|", 2)
                due_at = datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
                tick = ReservationExpiryDue.model_construct(
                    event_id=f"{order_no}|expiry|{stamp}", order_no=order_no, due_at=due_at, occurred_at=due_at
                )
                sink.send(topics.order_inbox, order_no.encode(), wire.encode(tick, topics.order_inbox))

    if settings.outbox_topics:
        from streams.outbox import register_outbox_agent

        register_outbox_agent(pipeline, dead_letter)

    from streams.webhook import register_webhook

    register_webhook(pipeline)

    from streams.views import register_views

    register_views(pipeline)
    return pipeline
