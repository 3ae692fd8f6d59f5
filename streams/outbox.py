"""The OMS outbox bridge: records relayed by Debezium's outbox event router -> input events.

A record (key: the orderNo; value: the ``payload`` column, the event as JSON; headers ``id``
and ``eventType``) becomes our input event through the same validation as every other input
(``schemas.events.parse_event``) and is sent, Avro-encoded, to its input topic under the usual
input key. The row's ``type`` and ``id`` supply ``eventType`` and ``eventId`` when the payload
leaves them out; a payload naming another type than its row, or an event of a system other than
the OMS, is refused. Anything unreadable or invalid is dead-lettered and the agent carries on.
At least once and stateless: a redelivery is the same eventId, which the receipts drop. Pure
part: :func:`event_from_outbox`; the agent: :func:`register_outbox_agent`. See docs/connectors.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from schemas.base import Event
from schemas.events import parse_event
from schemas.inputs import ORDER_EVENTS
from streams.topics import input_key

if TYPE_CHECKING:
    import faust
    from faust.types import EventT

    from streams.app import Pipeline

EVENT_TYPE_HEADER = "eventType"  # the row's ``type`` column (table.fields.additional.placement)
EVENT_ID_HEADER = "id"  # the row's ``id``, placed by the event router itself

Headers = Mapping[str, bytes | None] | Iterable[tuple[str, bytes | None]] | None
DeadLetterFn = Callable[["EventT", str, str], Awaitable[None]]


@dataclass(frozen=True)
class Refused:
    """Why an outbox record is not an input event: DECODE (not readable) or VALIDATION."""

    error_type: Literal["DECODE", "VALIDATION"]
    reason: str


def _header_text(headers: Headers, name: str) -> str | None:
    if headers is None:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    value = None
    for key, raw in pairs:
        if key == name:
            value = raw  # the last one wins, as with Kafka's lastHeader
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<event>'}: {err['msg']}" for err in exc.errors())


def event_from_outbox(value: bytes | None, headers: Headers = None) -> Event | Refused:
    """One relayed outbox record -> the validated OMS input event, or why not.

    Numbers are read as decimals, so money keeps the digits the OMS wrote. A payload that
    arrives as a JSON string holding the JSON (what JsonConverter makes of Debezium's ``Json``
    type) is read through once.
    """
    if not value:
        return Refused("DECODE", "empty outbox record (no payload)")
    try:
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        return Refused("DECODE", f"payload is not UTF-8: {exc}")
    try:
        body: Any = json.loads(text, parse_float=Decimal)
        if isinstance(body, str):
            body = json.loads(body, parse_float=Decimal)
    except ValueError as exc:
        return Refused("DECODE", f"payload is not JSON: {exc}")
    if not isinstance(body, dict):
        return Refused("VALIDATION", f"payload is a JSON {type(body).__name__}, not an object")

    row_type = _header_text(headers, EVENT_TYPE_HEADER)
    if row_type is not None:
        named = body.setdefault("eventType", row_type)
        if named != row_type:
            return Refused("VALIDATION", f"payload eventType {named!r} differs from the outbox row's type {row_type!r}")
    row_id = _header_text(headers, EVENT_ID_HEADER)
    if row_id is not None:
        body.setdefault("eventId", row_id)

    try:
        event = parse_event(body)
    except ValidationError as exc:
        return Refused("VALIDATION", f"{body.get('eventType')}: {_describe(exc)}")
    except ValueError as exc:
        return Refused("VALIDATION", str(exc))
    if not isinstance(event, ORDER_EVENTS):
        return Refused(
            "VALIDATION", f"{event.event_type} is not an OMS event; the OMS outbox carries order events only"
        )
    return event


def register_outbox_agent(pipeline: Pipeline, dead_letter: DeadLetterFn) -> faust.types.AgentT:
    """Declare the bridge agent on ``settings.outbox_topics`` (raw bytes in, Avro out)."""
    app, topics, metrics = pipeline.app, pipeline.topics, pipeline.metrics

    def raw(*names: str) -> faust.TopicT:
        return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    source = raw(*pipeline.settings.outbox_topics)

    @app.agent(source, name="outbox-bridge")
    async def outbox_bridge(stream: faust.StreamT) -> None:
        """OMS outbox records (Debezium) -> validated order events on their input topic."""
        async for event in stream.events():
            started = time.perf_counter()
            metrics.received(event.message.topic)
            result = event_from_outbox(event.value, event.headers)
            if isinstance(result, Refused):
                await dead_letter(event, result.error_type, result.reason)
                continue
            name = topics.input_for(result.event_type)
            try:
                key, value = input_key(result).encode(), pipeline.wire.encode(result, name)
            except Exception as exc:  # noqa: BLE001 - a record must never stop the agent
                await dead_letter(event, "PROCESSING", f"{type(exc).__name__}: {exc}")
                continue
            if len(value) > pipeline.settings.record_max_bytes:
                await dead_letter(event, "TOO_LARGE", f"as an input event it would take {len(value)} bytes")
                continue
            # Through the worker's sink: flushed before the outbox offset is committed.
            pipeline.sink.send(name, key, value)
            metrics.sent(name)
            metrics.processed("outbox-bridge", time.perf_counter() - started, False)

    return outbox_bridge
