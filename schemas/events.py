"""Source events as JSON: ``{"eventType": ..., ...camelCase fields}`` -> validated input events.

The one parser of the edges that take JSON (the produce CLI, the webhooks, the OMS outbox
bridge): ``parse_event`` raises ``ValueError`` (pydantic's ``ValidationError`` is one);
``parse_lines`` reads JSON lines and yields each event or an ``InvalidLine`` naming its
line number and the field at fault.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import ValidationError

from schemas.base import Event
from schemas.inputs import INPUT_EVENTS


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
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<event>'}: {err['msg']}" for err in exc.errors())


def parse_line(line_no: int, line: str) -> Event | InvalidLine:
    """One line of input -> its validated event, or why it is invalid."""
    try:
        return parse_event(json.loads(line))
    except json.JSONDecodeError as exc:
        return InvalidLine(line_no, f"not JSON: {exc.msg} at column {exc.colno}")
    except ValidationError as exc:
        return InvalidLine(line_no, _describe(exc))
    except ValueError as exc:
        return InvalidLine(line_no, str(exc))


def parse_lines(lines: Iterable[str]) -> Iterator[Event | InvalidLine]:
    for line_no, line in enumerate(lines, start=1):
        if line.strip():
            yield parse_line(line_no, line)
