"""Publish source events given as JSON lines: ``python -m connectors.produce FILE|-``.

One event per line: ``{"eventType": "OrderCreated", "eventId": ..., "occurredAt": ...,
...the event's fields in camelCase}``. Each line is validated against its contract and
encoded as Avro; a line that does not validate is reported with its line number and not
sent, and the others still are. This is how a source system or an operator feeds the
pipeline; the simulator and the demo use the same path.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from pydantic import ValidationError

from config.settings import Settings, get_settings
from schemas.base import Event
from schemas.codec import Codec
from schemas.inputs import INPUT_EVENTS
from streams.kafka_config import producer_config
from streams.topics import Topics, input_key
from streams.wire import Wire


class InvalidLine(ValueError):
    def __init__(self, line_no: int, reason: str) -> None:
        super().__init__(f"line {line_no}: {reason}")
        self.line_no = line_no
        self.reason = reason


def parse_event(obj: Any) -> Event:
    """A JSON object with ``eventType`` -> the validated input event (or ValueError)."""
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    body = dict(obj)
    event_type = body.pop("eventType", None)
    if event_type not in INPUT_EVENTS:
        known = ", ".join(sorted(INPUT_EVENTS))
        raise ValueError(f"eventType {event_type!r} is not one of: {known}")
    return INPUT_EVENTS[event_type].model_validate(body)


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<event>'}: {err['msg']}" for err in exc.errors()
    )


def parse_lines(lines: Iterable[str]) -> Iterator[Event | InvalidLine]:
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield parse_event(json.loads(line))
        except json.JSONDecodeError as exc:
            yield InvalidLine(line_no, f"not JSON: {exc.msg} at column {exc.colno}")
        except ValidationError as exc:
            yield InvalidLine(line_no, _describe(exc))
        except ValueError as exc:
            yield InvalidLine(line_no, str(exc))


@dataclass
class PublishReport:
    sent: int = 0
    invalid: list[InvalidLine] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class EventPublisher:
    """Validated input events -> Avro -> their input topic, keyed as the pipeline expects."""

    def __init__(self, settings: Settings, codec: Codec | None = None, **producer_overrides: Any) -> None:
        from confluent_kafka import Producer

        self.settings = settings
        self.topics = Topics(settings)
        self.codec = codec
        self.wire = Wire(settings)  # the deployment's framing, unless a codec is given
        self.producer = Producer(producer_config(settings, **producer_overrides))
        self.report = PublishReport()

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.report.failed.append(str(err))
        else:
            self.report.sent += 1

    def publish(self, event: Event) -> None:
        topic = self.topics.input_for(type(event).__name__)
        value = self.codec.encode(event, topic=topic) if self.codec else self.wire.encode(event, topic)
        while True:
            try:
                self.producer.produce(topic, key=input_key(event).encode(), value=value, on_delivery=self._on_delivery)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> PublishReport:
        remaining = self.producer.flush(timeout_s)
        if remaining:
            self.report.failed.append(f"{remaining} messages not delivered within {timeout_s}s")
        return self.report


def publish_events(settings: Settings, events: Iterable[Event]) -> PublishReport:
    publisher = EventPublisher(settings)
    for event in events:
        publisher.publish(event)
    return publisher.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="JSON lines file, or - for standard input")
    parser.add_argument("--dry-run", action="store_true", help="validate only, send nothing")
    args = parser.parse_args(argv)
    settings = get_settings()
    stream: IO[str] = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    publisher = None if args.dry_run else EventPublisher(settings)
    invalid: list[InvalidLine] = []
    valid = 0
    with stream:
        for item in parse_lines(stream):
            if isinstance(item, InvalidLine):
                invalid.append(item)
                print(f"invalid {item}", file=sys.stderr)
                continue
            valid += 1
            if publisher is not None:
                publisher.publish(item)
    report = publisher.flush() if publisher else PublishReport()
    for failure in report.failed:
        print(f"failed: {failure}", file=sys.stderr)
    sent = report.sent if publisher else 0
    print(f"{valid} valid, {len(invalid)} invalid, {sent} sent", file=sys.stderr)
    return 1 if invalid or report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
