"""The TMS/WMS webhooks: carrier and warehouse events over HTTP, onto their input topics.

``POST /webhooks/tms`` and ``POST /webhooks/wms`` take our contract's JSON (one event or an
array, as a line of ``connectors.produce``), bearer-authenticated (``webhook_token``). Which
system may post which event comes from the contracts (an event's ``source``). All or nothing:
any invalid event refuses the request (422); 202 means every record is acknowledged by the
broker (acks=all), 503 means retry (the receipts make a re-sent event a no-op). The answers,
in the order they are checked, and the durability argument: docs/http.md. :func:`parse_body`
is the pure part; :class:`Webhook` the HTTP shell, :class:`AckedProducer` the Kafka one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import SecretStr, ValidationError

from schemas.base import Event, SourceSystem
from schemas.events import parse_event
from schemas.inputs import INPUT_EVENTS, MOVEMENT_EVENTS, SHIPMENT_EVENTS
from streams.metrics import Metrics
from streams.producer import produce
from streams.topics import Topics, input_key
from streams.web_access import authorized
from streams.wire import RegistryUnavailable

if TYPE_CHECKING:
    from aiohttp import web

    from config.settings import Settings
    from streams.app import Pipeline

log = logging.getLogger(__name__)

# The systems that may post, and the events each publishes (by the contract's default source).
# The ERP's inventory planner posts reorder points (ReorderPointSet).
SOURCES: dict[str, SourceSystem] = {"tms": SourceSystem.TMS, "wms": SourceSystem.WMS, "erp": SourceSystem.ERP}
EVENTS_BY_SOURCE: dict[SourceSystem, tuple[str, ...]] = {
    system: tuple(
        cls.__name__ for cls in SHIPMENT_EVENTS + MOVEMENT_EVENTS if cls.model_fields["source"].default == system
    )
    for system in SOURCES.values()
}

DELIVERY_TIMEOUT_MS = 10_000  # librdkafka reports a record it could not write by then
ACK_WAIT_S = DELIVERY_TIMEOUT_MS / 1000 + 5.0  # safety net: librdkafka answers first
BODY_READ_TIMEOUT_S = 30.0
READ_CHUNK = 64 * 1024


# --- the pure parts ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    """Why a request is refused: its status, message and, for 422, the invalid items."""

    status: int
    error: str
    invalid: tuple[dict[str, Any], ...] = ()
    reason: str = ""  # the metrics label: unauthorized, too_large, not_json, invalid, ...

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error, "status": self.status}
        if self.invalid:
            out["invalid"] = list(self.invalid)
        return out


def _field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "<event>", "message": err["msg"]}
        for err in exc.errors(include_url=False)
    ]


def _parse_item(obj: Any, system: SourceSystem) -> Event | list[dict[str, str]]:
    """One item of the body -> the validated event, or its field errors."""
    if not isinstance(obj, dict):
        return [{"field": "<event>", "message": f"expected a JSON object, got {_json_type(obj)}"}]
    event_type = obj.get("eventType")
    allowed = EVENTS_BY_SOURCE[system]
    if event_type not in allowed:
        owner = next((s for s, names in EVENTS_BY_SOURCE.items() if event_type in names), None)
        if owner is not None:
            message = f"{event_type} is a {owner} event: POST it to /webhooks/{owner.lower()}"
        elif isinstance(event_type, str) and event_type in INPUT_EVENTS:
            message = f"{event_type} is not a {system} event (the OMS publishes it)"
        else:
            message = f"eventType {_shortened(repr(event_type))} is not one of: {', '.join(allowed)}"
        return [{"field": "eventType", "message": message}]
    try:
        event = parse_event(obj)  # the validation every input goes through
    except ValidationError as exc:
        return _field_errors(exc)
    except ValueError as exc:
        return [{"field": "<event>", "message": str(exc)}]
    if event.source != system:
        message = f"{event.source} events are not accepted from the {system} webhook"
        return [{"field": "source", "message": message}]
    return event


def _shortened(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def parse_body(raw: bytes, system: SourceSystem) -> list[Event] | Rejection:
    """A request body -> every event it holds, validated, or why none is accepted.

    One object or an array of objects; all or nothing: one invalid item refuses them all.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(400, f"body is not UTF-8: {exc.reason} at byte {exc.start}", reason="not_json")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        return Rejection(400, f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", reason="not_json")
    except ValueError as exc:  # e.g. an integer beyond Python's 4300-digit limit
        return Rejection(400, f"body is not JSON we read: {exc}", reason="not_json")
    except RecursionError:
        return Rejection(400, "body is not JSON we read: nested too deeply", reason="not_json")
    if isinstance(body, dict):
        items = [body]
    elif isinstance(body, list):
        items = body
    else:
        return Rejection(422, f"expected an event object or an array of them, got {_json_type(body)}", reason="invalid")
    if not items:
        return Rejection(422, "the array holds no events", reason="invalid")
    events: list[Event] = []
    invalid: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        parsed = _parse_item(item, system)
        if isinstance(parsed, list):
            event_type = item.get("eventType") if isinstance(item, dict) else None
            invalid.append(
                {"index": index, "eventType": event_type if isinstance(event_type, str) else None, "errors": parsed}
            )
        else:
            events.append(parsed)
    if invalid:
        what = (
            "the event is invalid" if isinstance(body, dict) else f"{len(invalid)} of {len(items)} events are invalid"
        )
        return Rejection(422, f"{what}; nothing was published", tuple(invalid), reason="invalid")
    return events


# --- the Kafka shell --------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Delivery:
    topic: str
    partition: int
    offset: int


class NotDurable(Exception):
    """Some record was not acknowledged by the broker (refused, timed out, queue full)."""


class Publisher(Protocol):
    async def send(self, records: Sequence[Record]) -> list[Delivery]: ...

    def close(self, timeout_s: float) -> None: ...


def _settle(future: asyncio.Future[Delivery], outcome: Delivery | NotDurable) -> None:
    if future.done():  # the request gave up waiting (timeout, client gone)
        return
    if isinstance(outcome, NotDurable):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class AckedProducer:
    """A confluent-kafka producer whose sends complete when the broker acknowledged them.

    A daemon thread polls the producer; each delivery report settles the future of its
    record on the event loop that sent it (``call_soon_threadsafe``), so the loop never waits
    in librdkafka. Created on first use: a worker whose webhook is never called opens no
    connection for it.
    """

    def __init__(self, config: dict[str, Any], ack_wait_s: float = ACK_WAIT_S) -> None:
        self._config = config
        self._ack_wait_s = ack_wait_s
        self._producer: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._fatal: str | None = None
        self._closed = False

    def _on_error(self, err: Any) -> None:
        if err.fatal():  # e.g. the idempotent producer's sequence broke: start a new one
            self._fatal = str(err)
            log.error("webhook producer: fatal error, it will be replaced: %s", err)
        elif callable(summary := self._config.get("error_cb")):  # kafka_config's: repeated failures summarised
            summary(err)
        else:
            log.warning("webhook producer: %s", err)

    def _started(self) -> Any:
        with self._lock:
            if self._closed:
                raise NotDurable("the worker is shutting down")
            if self._producer is not None and self._fatal is None:
                return self._producer
            from confluent_kafka import Producer

            self._stopping.set()  # a producer that failed fatally: its thread ends on its own
            self._fatal = None
            self._stopping = threading.Event()
            producer = Producer({**self._config, "error_cb": self._on_error})
            self._thread = threading.Thread(
                target=self._poll, args=(producer, self._stopping), name="webhook-producer", daemon=True
            )
            self._producer = producer
            self._thread.start()
            return producer

    @staticmethod
    def _poll(producer: Any, stopping: threading.Event) -> None:
        while not stopping.is_set():
            producer.poll(0.1)  # returns at once when a delivery report arrives

    async def send(self, records: Sequence[Record]) -> list[Delivery]:
        """Produce every record; return their offsets once all are acknowledged, or raise
        NotDurable (some may have been written: the caller's retry is deduplicated by eventId)."""
        producer = self._started()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Delivery]] = []
        for record in records:
            future: asyncio.Future[Delivery] = loop.create_future()

            def delivered(err: Any, msg: Any, future: asyncio.Future[Delivery] = future) -> None:
                outcome: Delivery | NotDurable = (
                    NotDurable(f"{msg.topic()}: {err}")
                    if err is not None
                    else Delivery(msg.topic(), msg.partition(), msg.offset())
                )
                try:
                    loop.call_soon_threadsafe(_settle, future, outcome)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    pass

            try:  # never waiting for room: this runs on the event loop (its reports on a thread)
                produce(producer, record.topic, record.value, record.key, on_delivery=delivered, wait_s=0)
            except BufferError as exc:
                self._abandon(futures)
                raise NotDurable("the webhook's send queue is full") from exc
            except Exception as exc:  # KafkaException: e.g. the producer failed fatally
                self._abandon(futures)
                raise NotDurable(f"{record.topic}: {exc}") from exc
            futures.append(future)
        try:
            async with asyncio.timeout(self._ack_wait_s):
                outcomes = await asyncio.gather(*futures, return_exceptions=True)
        except TimeoutError:
            raise NotDurable(f"not acknowledged within {self._ack_wait_s:g}s") from None
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise NotDurable(f"{len(failures)} of {len(records)} records not written, e.g. {failures[0]}")
        return [o for o in outcomes if isinstance(o, Delivery)]

    @staticmethod
    def _abandon(futures: list[asyncio.Future[Delivery]]) -> None:
        for future in futures:
            future.cancel()  # their reports are ignored; the request answers 503

    def close(self, timeout_s: float) -> None:
        """Refuse new sends, wait for what is in flight, stop polling (blocking: call it off
        the event loop)."""
        with self._lock:
            self._closed = True
            producer, thread = self._producer, self._thread
        if producer is None:
            return
        remaining = producer.flush(timeout_s)
        if remaining:
            log.warning("webhook producer: %d records unacknowledged at shutdown", remaining)
        self._stopping.set()
        if thread is not None:
            thread.join(timeout=1.0)


# --- the HTTP shell ---------------------------------------------------------------------


@dataclass
class Webhook:
    """POST /webhooks/{tms,wms}: authenticate, bound, parse, validate, publish, answer. Every
    answer is counted in ``metrics`` by source, status and reason (``accepted`` for a 202)."""

    token: SecretStr | None
    max_bytes: int
    topics: Topics
    publisher: Publisher
    encode: Callable[[Event, str], bytes]  # the deployment's framing: Wire.encode(event, topic)
    metrics: Metrics = field(default_factory=Metrics)

    def record(self, event: Event) -> Record:
        """The one place an event becomes a Kafka record: its input topic, key and bytes."""
        topic = self.topics.input_for(event.event_type)
        return Record(topic, input_key(event).encode(), self.encode(event, topic))

    def _refuse(self, source: str, rejection: Rejection) -> web.Response:
        from aiohttp import web

        self.metrics.webhook_answered(source, rejection.status, rejection.reason)
        log.info("webhook %s: %d %s", source, rejection.status, rejection.error)
        headers = {"WWW-Authenticate": "Bearer"} if rejection.status == 401 else None
        response = web.json_response(rejection.body(), status=rejection.status, headers=headers)
        if rejection.status in (408, 413):
            response.force_close()  # the rest of the body is not wanted on this connection
        return response

    async def _read(self, request: web.Request) -> bytes | Rejection:
        """The body, streamed, never more than max_bytes + one chunk in memory."""
        too_large = Rejection(413, f"body larger than {self.max_bytes} bytes", reason="too_large")
        if request.content_length is not None and request.content_length > self.max_bytes:
            return too_large
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT_S):
                while chunk := await request.content.read(READ_CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        return too_large
                    chunks.append(chunk)
        except TimeoutError:
            return Rejection(408, f"body not received within {BODY_READ_TIMEOUT_S:g}s", reason="timeout")
        return b"".join(chunks)

    async def handle(self, request: web.Request, source: str) -> web.Response:
        from aiohttp import web

        system = SOURCES[source]
        if self.token is None:
            return self._refuse(
                source,
                Rejection(
                    503,
                    "the webhook is off: no webhook token is configured (INVENTORY_WEBHOOK_TOKEN)",
                    reason="disabled",
                ),
            )
        if not authorized(request.headers.get("Authorization"), self.token):
            return self._refuse(source, Rejection(401, "missing or wrong bearer token", reason="unauthorized"))
        charset = (request.charset or "utf-8").lower()
        if request.content_type != "application/json" or charset not in ("utf-8", "utf8"):
            given = _shortened(repr(request.headers.get("Content-Type")))
            return self._refuse(
                source,
                Rejection(415, f"Content-Type must be application/json (UTF-8), not {given}", reason="media_type"),
            )
        raw = await self._read(request)
        if isinstance(raw, Rejection):
            return self._refuse(source, raw)
        events = parse_body(raw, system)
        if isinstance(events, Rejection):
            return self._refuse(source, events)
        try:
            records = [self.record(event) for event in events]
        except RegistryUnavailable as exc:  # anything else the codec raises is a 500, logged
            return self._refuse(
                source,
                Rejection(503, f"nothing was published, retry the request: {exc}", reason="registry_unavailable"),
            )
        try:
            deliveries = await self.publisher.send(records)
        except NotDurable as exc:
            return self._refuse(
                source,
                Rejection(
                    503,
                    f"not durably written, retry the request (events are deduplicated by eventId): {exc}",
                    reason="not_written",
                ),
            )
        self.metrics.webhook_answered(source, 202, "accepted", len(events))
        for record in records:
            self.metrics.sent(record.topic)
        return web.json_response(
            {
                "accepted": len(events),
                "events": [
                    {"eventId": event.event_id, "topic": d.topic, "partition": d.partition, "offset": d.offset}
                    for event, d in zip(events, deliveries, strict=True)
                ],
            },
            status=202,
        )


def webhook_producer_config(settings: Settings) -> dict[str, Any]:
    from streams.kafka_config import producer_config

    # A request waits for its own records: lingering for company would only add latency.
    return producer_config(settings, **{"linger.ms": 0, "delivery.timeout.ms": DELIVERY_TIMEOUT_MS})


def register_webhook(pipeline: Pipeline) -> None:
    """Declare POST /webhooks/tms and /webhooks/wms on the worker's web server."""
    from faust.web import Request, Response, View

    app, settings = pipeline.app, pipeline.settings
    webhook = Webhook(
        token=settings.webhook_token,
        max_bytes=settings.webhook_max_bytes,
        topics=pipeline.topics,
        publisher=AckedProducer(webhook_producer_config(settings)),
        encode=pipeline.wire.encode,  # framed like every other record (schema registry or not)
        metrics=pipeline.metrics,
    )

    for source in SOURCES:

        class WebhookView(View):
            source_name = source

            async def post(self, request: Request, **_: Any) -> Response:
                return await webhook.handle(request, self.source_name)  # type: ignore[arg-type, return-value]  # Faust's Request/Response are aiohttp's

        app.page(f"/webhooks/{source}", name=f"webhook-{source}")(WebhookView)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # Faust types receivers as (sender, *args)
    async def _close_webhook_producer(sender: object, **kwargs: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, webhook.publisher.close, 5.0)
