"""The routing table (schemas/topics.py ``ROUTES``), derived from the topic declarations: every
record the pipeline sends has exactly one topic and a key read from the fields its topic
declares; the worker, the in-memory center and the Quix peer all route by it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from config.settings import Settings
from schemas.events import parse_event
from schemas.inputs import INPUT_EVENTS, ReturnInspected
from schemas.internal import INTERNAL_MESSAGES, STOCK_COMMANDS, ReservationExpiryDue, ReservationUpdated, StockCommand
from schemas.outputs import (
    OUTPUT_EVENTS,
    InventoryAlert,
    InventoryChanged,
    InventoryLedgerEntry,
    OrderStatusChanged,
    OutboundCancellation,
    OutboundInstruction,
)
from schemas.topics import ROUTES, SPECS, key_reader
from tables import center

SEED_DAY = Path(__file__).resolve().parents[3] / "connectors" / "samples" / "seed-day.jsonl"

SENT_BY_THE_CORE = {*OUTPUT_EVENTS, *(c.__name__ for c in STOCK_COMMANDS), "ReservationUpdated"}
SENT_BY_THE_SHELL = {"ReturnInspected", "ReservationExpiryDue"}  # the router's forward, the timer's tick
CONTRACTS = {**INPUT_EVENTS, **INTERNAL_MESSAGES, **OUTPUT_EVENTS}


def test_every_record_the_pipeline_sends_has_one_route() -> None:
    # A dead letter is keyed by the record it holds; an envelope by the messages it carries.
    assert set(ROUTES) == (SENT_BY_THE_CORE | SENT_BY_THE_SHELL) - {"DeadLetter"}
    for name, route in ROUTES.items():
        assert route.spec.role in ("internal", "output") and name in route.spec.records
        assert route.internal == (name in INTERNAL_MESSAGES or name == "ReturnInspected"), name


def test_every_route_reads_fields_its_record_has() -> None:
    for name, route in ROUTES.items():
        fields = CONTRACTS[name].model_fields
        declared = route.spec.key.replace(" or ", "|").split("|")
        assert all(f in {info.alias for info in fields.values()} for f in declared), (name, route.spec.key)
        record = SimpleNamespace(**{field: f"<{field}>" for field in fields})
        assert route.key(record).startswith("<"), name  # read by the fields' Python names


def test_a_declared_key_is_read_as_declared() -> None:
    joined, either, one = key_reader("sku|warehouseCode"), key_reader("sku or orderNo"), key_reader("orderNo")
    assert joined and either and one
    assert joined(SimpleNamespace(sku="A", warehouse_code="WH1")) == "A|WH1"
    assert either(SimpleNamespace(sku="A", order_no="O1")) == "A"
    assert either(SimpleNamespace(sku=None, order_no="O1")) == "O1"
    assert either(SimpleNamespace(sku=None, order_no=None)) == ""
    assert one(SimpleNamespace(order_no="O1")) == "O1"
    assert key_reader("original key") is None


def test_the_internal_topics_are_the_declared_ones() -> None:
    internal = {route.spec.name for route in ROUTES.values() if route.internal}
    assert internal == {s.name for s in SPECS if s.role == "internal"} == {"order-inbox", "stock-commands"}


def _legacy_destination(t: Any, event: object) -> tuple[str, str]:
    """The isinstance chain streams/agents.py routed by before the table (issue 15)."""
    if isinstance(event, StockCommand):
        return t.stock_commands, event.sku
    if isinstance(event, (ReservationUpdated, ReturnInspected, ReservationExpiryDue)):
        return t.order_inbox, event.order_no
    if isinstance(event, (InventoryChanged, InventoryLedgerEntry)):
        return (
            t.inventory_changes if isinstance(event, InventoryChanged) else t.inventory_ledger,
            f"{event.sku}|{event.warehouse_code}",
        )
    if isinstance(event, InventoryAlert):
        return t.inventory_alerts, event.sku or event.order_no or ""
    if isinstance(event, OrderStatusChanged):
        return t.order_status, event.order_no
    if isinstance(event, (OutboundInstruction, OutboundCancellation)):
        return t.outbound_instructions, event.order_no
    raise TypeError(type(event).__name__)


def test_the_worker_routes_a_day_as_the_isinstance_chain_did(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.agents import Outputs
    from streams.metrics import Metrics
    from streams.topics import Topics
    from streams.wire import Wire

    emitted: list[object] = []

    def recording(apply: Callable[..., Any]) -> Callable[..., Any]:
        def applied(*args: Any, **kwargs: Any) -> Any:
            outcome = apply(*args, **kwargs)
            emitted.extend(outcome.events)
            return outcome

        return applied

    monkeypatch.setattr(center, "apply_stock", recording(center.apply_stock))
    monkeypatch.setattr(center, "apply_order", recording(center.apply_order))
    events = [parse_event(json.loads(line)) for line in SEED_DAY.read_text().splitlines() if line.strip()]
    core = center.InventoryCenter()
    core.submit_all(events)
    core.expire_due(datetime(2030, 1, 1, tzinfo=UTC))
    emitted.extend(e for e in events if isinstance(e, ReturnInspected))
    assert {type(e).__name__ for e in emitted} >= {
        "ReserveStock",
        "ReservationUpdated",
        "InventoryChanged",
        "InventoryLedgerEntry",
        "OrderStatusChanged",
        "OutboundInstruction",
        "ReturnInspected",
    }
    settings = Settings(topic_prefix="p.")
    topics = Topics(settings)
    outputs = Outputs(topics, Wire(settings), Metrics())
    routed = outputs.route_all(emitted)
    for event, r in zip(emitted, routed, strict=True):
        topic, key = _legacy_destination(topics, event)
        assert (r.topic, r.key, r.internal) == (
            topic,
            key.encode(),
            topic in (topics.order_inbox, topics.stock_commands),
        )
        assert outputs.destination(event) == (topic, key)
