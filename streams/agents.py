"""The agents, as plain functions over explicit dependencies (wired in streams/app.py).

Contract: an agent decodes, calls the core, stages the core's writes and hands what the core
emitted to its transaction; the two stateful agents take their messages in batches, each
partition's run of a batch one transaction (streams/checkpoint.py owns what happens then).
Internal messages travel in envelopes and are applied once by their envelope's number;
external inputs are applied once by their receipts. Anything that cannot be decoded,
validated or applied goes to the dead-letter topic with its reason and source coordinates
(an envelope's message: with its index), and the agent carries on.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

from faust.streams import Stream
from faust.types import EventT, StreamT
from pydantic import BaseModel, ValidationError

from config.settings import Settings
from schemas.base import Event
from schemas.codec import CodecError
from schemas.internal import Envelope, ReservationExpiryDue, StockCommand
from schemas.topics import ROUTES
from streams import faust_private
from streams.checkpoint import Checkpoint, by_partition
from streams.dead_letters import LatestDeadLetters, dead_letter_key, dead_letter_of
from streams.envelopes import Outgoing
from streams.expiry_clock import ExpiryClock
from streams.keys import EXPIRY, expiry_bound, expiry_entry
from streams.metrics import Metrics
from streams.record_sink import RecordSink
from streams.stores import OrderStore, StockStore, TooLarge, scan_prefix
from streams.topics import Topics
from streams.wire import RegistryUnavailable, Wire, wait_for_registry
from tables.orders import ORDER_MESSAGES, apply_order
from tables.policy import CorePolicy
from tables.routing import is_order_scoped, stock_commands_for
from tables.stock import apply_stock

log = logging.getLogger(__name__)

TRANSACTION_OVERHEAD = 16_384  # a transaction record's own fields, on top of its counted writes
Item = tuple[int, bytes]  # an envelope's message: its index, its bytes


class Routed(NamedTuple):
    """An emitted event, routed (schemas/topics.py ``ROUTES``) and encoded for its topic."""

    topic: str
    key: bytes
    payload: bytes
    internal: bool  # on an internal topic: travels in an envelope, not kept by a receipt


class Outputs:
    """Where each emitted event goes (topic and key: the routing table), and its encoding
    for that topic: decided once per event (``route_all``)."""

    def __init__(self, topics: Topics, wire: Wire, metrics: Metrics) -> None:
        self.topics, self.wire, self.metrics = topics, wire, metrics
        self.internal = frozenset(topics.name(s) for s in topics.specs if s.role == "internal")
        self.routes = {name: (topics.name(r.spec), r.key, r.internal) for name, r in ROUTES.items()}

    def _route(self, event: object) -> tuple[str, Callable[[Any], str], bool]:
        route = self.routes.get(type(event).__name__)
        if route is None:
            raise TypeError(f"no destination for {type(event).__name__}")
        return route

    def destination(self, event: object) -> tuple[str, str]:
        topic, key, _ = self._route(event)
        return topic, key(event)

    def destination_of(self, payload: bytes) -> tuple[str, str]:
        return self.destination(self.wire.decode(payload, validate=False))

    def route_all(self, events: Iterable[object]) -> tuple[Routed, ...]:
        routed = []
        for event in events:
            topic, key, internal = self._route(event)
            routed.append(Routed(topic, key(event).encode(), self.wire.encode(event, topic), internal))
        return tuple(routed)

    @staticmethod
    def emit(outgoing: Outgoing, routed: tuple[Routed, ...], duplicate: bool) -> None:
        """A message's outputs into its transaction: internal messages into envelopes, the
        rest one record each (counted as sent when handed to the sink: streams/checkpoint.py).
        A duplicate's internal messages are not sent again: the transaction that first sent
        them keeps them in its outbox until acknowledged."""
        for r in routed:
            if r.internal:
                if not duplicate:
                    outgoing.internal(r.topic, r.key, r.payload)
            else:
                outgoing.output(r.topic, r.key, r.payload)

    @staticmethod
    def receipt_part(routed: tuple[Routed, ...]) -> tuple[tuple[bytes, ...], int]:
        """What a receipt keeps of a message's outputs (those for the outside world), and
        the bytes of its internal messages."""
        kept = tuple(r.payload for r in routed if not r.internal)
        return kept, sum(len(r.payload) for r in routed if r.internal)

    def send_now(self, sink: RecordSink, routed: Iterable[Routed]) -> None:
        """Outside any transaction (the stateless router): one record per event."""
        for r in routed:
            sink.send(r.topic, r.key, r.payload)
            self.metrics.sent(r.topic)


class DeadLetters:
    """A record (or an envelope's message) that cannot be used: to the dead-letter topic, with
    its reason and coordinates, bounded (streams/dead_letters.py)."""

    def __init__(self, settings: Settings, topics: Topics, wire: Wire, sink: RecordSink, metrics: Metrics) -> None:
        self.excerpt_bytes = settings.dead_letter_excerpt_bytes
        self.topic, self.wire, self.sink, self.metrics = topics.dead_letters, wire, sink, metrics
        self.latest = LatestDeadLetters(settings.dead_letters_shown)  # for the dashboard

    async def __call__(self, event: EventT, error_type: str, error: str, item: Item | None = None) -> None:
        msg = event.message
        raw_key = msg.key if isinstance(msg.key, bytes) else None
        value = msg.value if isinstance(msg.value, bytes) else None
        if item is not None:
            error, value = f"item {item[0]} of the envelope: {error}", item[1]
        letter = dead_letter_of(
            msg.topic,
            msg.partition,
            msg.offset,
            raw_key,
            value,
            error_type,
            error,
            datetime.now(UTC),
            self.excerpt_bytes,
        )
        self.sink.send(self.topic, dead_letter_key(raw_key), self.wire.encode(letter, self.topic))
        self.metrics.sent(self.topic)
        self.metrics.dead_letter(msg.topic, error_type)
        self.latest.add(letter)
        log.warning(
            "dead letter %s[%s]@%s: %s: %s",
            msg.topic,
            msg.partition,
            msg.offset,
            error_type,
            error[-800:] if error_type == "PROCESSING" else error[:300],
        )

    async def decode(self, event: EventT, validate: bool, item: Item | None = None) -> Any:
        """The record (or ``item``) decoded, or None once dead-lettered. A registry that does
        not answer is not the record's fault: it is waited for."""
        attempt = 0
        data = event.value if item is None else item[1]
        while True:
            try:
                return self.wire.decode(data, validate=validate)
            except RegistryUnavailable as exc:
                delay = wait_for_registry(attempt)
                log.warning(
                    "%s; %s[%s]@%s waits %.1fs",
                    exc,
                    event.message.topic,
                    event.message.partition,
                    event.message.offset,
                    delay,
                )
                await asyncio.sleep(delay)
                attempt += 1
            except ValidationError as exc:
                await self(event, "VALIDATION", str(exc), item)
                return None
            except (CodecError, Exception) as exc:  # noqa: BLE001 - a record must never stop the agent
                await self(event, "DECODE", f"{type(exc).__name__}: {exc}", item)
                return None


@dataclass
class Family:
    """One table's agent: its store, and how one of its messages is applied."""

    name: str  # the agent's name, in metrics
    store: StockStore | OrderStore
    policy: CorePolicy
    outputs: Outputs
    dead_letters: DeadLetters
    metrics: Metrics
    checkpoint: Checkpoint
    app: Any  # the Faust app: the consumer's generation
    settings: Settings
    expiry_clock: ExpiryClock | None = None  # the order agent's: input event time moves it

    async def run(self, batch: Iterable[EventT]) -> None:
        """A batch, partition by partition, each partition's run one transaction (committed
        early when it grows past ``batch_max_bytes``)."""
        generation = faust_private.consumer_generation(self.app)
        outgoing = Outgoing(self.settings.partitions, self.outputs.wire.encode)
        store, limit = self.store, self.settings.batch_max_bytes
        for partition, events in by_partition(batch).items():
            # Events taken before a rebalance belong to partitions we may no longer own: Faust's
            # own stream skips (and acks) them, and so do we (their next owner reads them).
            events = [e for e in events if faust_private.event_generation(e) == generation]
            if not events:
                continue
            store.open(partition)
            self.checkpoint.recover_once(store)
            for event in events:
                await self.apply_record(event, outgoing)
                if store.staged_bytes + outgoing.size >= limit:
                    self.checkpoint.commit(store, outgoing)
            self.checkpoint.commit(store, outgoing)

    async def apply_record(self, event: EventT, outgoing: Outgoing) -> None:
        self.metrics.received(event.message.topic)
        internal = event.message.topic in self.outputs.internal
        message = await self.dead_letters.decode(event, validate=not internal)
        if message is None:
            return
        if isinstance(message, Envelope) and internal:
            await self.apply_envelope(event, message, outgoing)
        else:
            await self.apply_message(event, message, outgoing, None)

    async def apply_envelope(self, event: EventT, envelope: Envelope, outgoing: Outgoing) -> None:
        """Each message of an envelope not applied before, in order, without receipts; then
        the envelope's number as the highest applied from its source."""
        store = self.store
        if envelope.seq <= store.received(envelope.source):
            self.metrics.processed(f"{self.name}-envelope", 0.0, True)
            return
        for index, payload in enumerate(envelope.items):
            message = await self.dead_letters.decode(event, False, (index, payload))
            if message is not None:
                await self.apply_message(event, message, outgoing, (index, payload))
        store.stage_received(envelope.source, envelope.seq)

    def accepts(self, message: BaseModel) -> bool:
        raise NotImplementedError

    def apply_core(self, message: Any, by_receipt: bool) -> Any:
        raise NotImplementedError

    async def apply_message(self, event: EventT, message: Any, outgoing: Outgoing, item: Item | None) -> None:
        """One message (``item`` set: an envelope's, applied once by the envelope)."""
        started = time.perf_counter()
        if not self.accepts(message):
            await self.dead_letters(
                event, "UNEXPECTED_RECORD", f"{type(message).__name__} is not a {self.name} message", item
            )
            return
        if self.expiry_clock is not None and isinstance(message, Event):
            self.expiry_clock.saw(event.message.partition, message.occurred_at)  # input event time moves
        try:
            outcome = self.apply_core(message, by_receipt=item is None)
            routed = self.outputs.route_all(outcome.events)
            if not outcome.duplicate:
                self.store.stage_outcome(outcome, *self.outputs.receipt_part(routed))
        except TooLarge as exc:
            await self.dead_letters(event, "TOO_LARGE", str(exc), item)
            return
        except Exception as exc:  # noqa: BLE001 - a record must never stop the agent
            await self.dead_letters(event, "PROCESSING", "".join(traceback.format_exception(exc))[-4000:], item)
            return
        self.outputs.emit(outgoing, routed, outcome.duplicate)
        self.metrics.processed(self.name, time.perf_counter() - started, outcome.duplicate)


class OrderFamily(Family):
    store: OrderStore

    def accepts(self, message: BaseModel) -> bool:
        return type(message) in ORDER_MESSAGES

    def apply_core(self, message: Any, by_receipt: bool) -> Any:
        return apply_order(self.store, message, self.policy, by_receipt=by_receipt)


class StockFamily(Family):
    store: StockStore

    def accepts(self, message: BaseModel) -> bool:
        return isinstance(message, StockCommand)

    def apply_core(self, message: Any, by_receipt: bool) -> Any:
        return apply_stock(self.store, message, self.policy, by_receipt=by_receipt)


async def stateful_agent(stream: StreamT, family: Family, settings: Settings) -> None:
    """The order agent (orders, shipments, the order inbox) and the stock agent (stock
    commands): batches of messages, each partition's run one transaction."""
    # An agent's stream is a faust Stream; take_events is on the class, not on StreamT.
    async for batch in cast(Stream, stream).take_events(settings.batch_max_events, settings.batch_within_s):
        await family.run(batch)


@dataclass
class Router:
    """Stock-movement documents -> per-SKU commands (or to the order, for returns)."""

    outputs: Outputs
    dead_letters: DeadLetters
    sink: RecordSink
    metrics: Metrics
    record_max_bytes: int

    async def route(self, event: EventT) -> None:
        self.metrics.received(event.message.topic)
        message = await self.dead_letters.decode(event, validate=True)
        if message is None:
            return
        limit = self.record_max_bytes - TRANSACTION_OVERHEAD
        if is_order_scoped(message):  # ReturnInspected: forwarded to its order (order-inbox)
            [forwarded] = self.outputs.route_all((message,))
            if len(forwarded.payload) > limit:
                await self.dead_letters(event, "TOO_LARGE", f"forwarded, it would take {len(forwarded.payload)} bytes")
                return
            self.outputs.send_now(self.sink, (forwarded,))
            return
        try:
            commands = stock_commands_for(message)
        except KeyError:
            await self.dead_letters(event, "UNEXPECTED_RECORD", f"{type(message).__name__} is not a stock movement")
            return
        routed = self.outputs.route_all(commands)
        largest = max((len(r.payload) for r in routed), default=0)
        if largest > limit:
            await self.dead_letters(event, "TOO_LARGE", f"one of its stock commands would take {largest} bytes")
            return
        self.outputs.send_now(self.sink, routed)


async def movement_router(stream: StreamT, router: Router) -> None:
    """Stock-movement documents, one at a time (stateless: no transaction)."""
    async for event in stream.events():
        await router.route(event)


def expire_due(
    app: Any, orders_table: Any, expiry_clock: ExpiryClock, sink: RecordSink, wire: Wire, topics: Topics
) -> None:
    """Tick every unpaid reservation that came due on its partition's event time (or on the
    wall-clock fallback: streams/expiry_clock.py), walking the sorted expiry index of this
    worker's active partitions only up to then (no scan of all orders). A tick is stamped
    with its due time: the wall clock decides when to look, never what is written."""
    now = datetime.now(UTC)  # the clock lives in the shell, never in the core
    changelog = orders_table.changelog_topic.get_topic_name()
    actives = {tp.partition for tp in faust_private.assigned_actives(app) if tp.topic == changelog}
    for partition in sorted(actives):
        tick_by = expiry_clock.tick_by(partition, now)
        if tick_by is None:
            continue
        limit = expiry_bound(tick_by)
        for k, _ in scan_prefix(orders_table, partition, EXPIRY):
            if k > limit:
                break
            due_at, order_no, stamp = expiry_entry(k)
            tick = ReservationExpiryDue.model_construct(
                event_id=f"{order_no}|expiry|{stamp}", order_no=order_no, due_at=due_at, occurred_at=due_at
            )
            sink.send(topics.order_inbox, order_no.encode(), wire.encode(tick, topics.order_inbox))
