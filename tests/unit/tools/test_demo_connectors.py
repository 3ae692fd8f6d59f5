"""The connectors demo's day (``streams/demo_connectors.py``), without any service: every event is
accepted on the path the demo sends it by (webhook route, OMS outbox row), the day ends where the
demo says it does, and its deployment stays apart from the plain demo's."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from pydantic import SecretStr

from config.settings import Settings
from connectors import apply, local_connect
from schemas.base import SourceSystem
from schemas.events import parse_event
from schemas.inputs import OrderCancelled, OrderCreated
from schemas.outputs import OrderStatus
from streams import demo_connectors as demo
from streams.outbox import event_from_outbox
from streams.webhook import parse_body
from tables.center import InventoryCenter


def _outbox(event_type: str, payload: dict[str, object]) -> object:
    """What the bridge makes of the row the demo inserts (Debezium's value and headers)."""
    return event_from_outbox(
        json.dumps(payload, ensure_ascii=False).encode(),
        [("eventType", event_type.encode()), ("id", b"5f0c6f4e-8a47-4a3c-9d1e-2b7c1e0a9f11")],
    )


def test_the_webhook_bodies_are_accepted_by_their_routes() -> None:
    assert len(parse_body(json.dumps(demo.RECEIPTS).encode(), SourceSystem.WMS)) == 2  # type: ignore[arg-type]
    assert len(parse_body(json.dumps([demo.DELIVERY]).encode(), SourceSystem.TMS)) == 1  # type: ignore[arg-type]


def test_the_outbox_rows_become_order_events_with_the_demos_ids() -> None:
    created = [_outbox("OrderCreated", payload) for payload in demo.ORDERS]
    assert all(isinstance(e, OrderCreated) for e in created), created
    assert [e.event_id for e in created] == [p["eventId"] for p in demo.ORDERS]  # type: ignore[attr-defined]
    cancelled = _outbox("OrderCancelled", demo.CANCELLATION)
    assert isinstance(cancelled, OrderCancelled) and cancelled.order_no == demo.CANCELLED


def test_the_day_ends_as_the_demo_tells_it() -> None:
    center = InventoryCenter()
    center.submit_all(parse_event(r) for r in demo.RECEIPTS)
    center.submit_all(_outbox("OrderCreated", payload) for payload in demo.ORDERS)  # type: ignore[misc]
    shipped = center.order(demo.SHIPPED)
    assert shipped is not None
    view = {
        "orderNo": shipped.order_no,
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "warehouseCode": line.warehouse_code} for line in shipped.lines
        ],
    }
    parcel = demo.shipment_of(view)
    assert len(parse_body(json.dumps([parcel]).encode(), SourceSystem.WMS)) == 1  # type: ignore[arg-type]
    center.submit(parse_event(parcel))
    center.submit(parse_event(demo.DELIVERY))
    center.submit(_outbox("OrderCancelled", demo.CANCELLATION))  # type: ignore[arg-type]

    statuses = {no: center.order(no).status for no in demo.ORDER_NOS}  # type: ignore[union-attr]
    assert list(statuses.values()) == [
        OrderStatus.DELIVERED,
        OrderStatus.OUTBOUND_REQUESTED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
    ]


def test_its_deployment_is_apart_from_the_plain_demo_and_matches_the_outbox_route(tmp_path: Path) -> None:
    base = Settings(local_dir=tmp_path, data_dir=tmp_path / "worker")
    settings = demo.deployment(base, "http://127.0.0.1:8081/apis/ccompat/v7", SecretStr("t"))
    assert settings.topic_prefix != base.topic_prefix and settings.app_id != base.app_id
    assert settings.web_port != base.web_port and settings.data_dir != base.data_dir
    assert settings.worker_url == f"http://127.0.0.1:{settings.web_port}"
    advertised = demo.deployment(base.model_copy(update={"advertised_url": "http://w3.internal:6066"}))
    assert advertised.worker_url == f"http://w3.internal:{advertised.web_port}"  # where its worker listens
    source = apply.render(
        apply.load(apply.CONNECTORS_DIR / f"{demo.SOURCE}.json"), local_connect.variables_for(settings)
    )
    route = source["config"]["transforms.outbox.route.topic.replacement"]
    assert route.replace("${routedByValue}", demo.OUTBOX_AGGREGATE) == settings.outbox_topics[0]
    sinks = [
        apply.render(apply.load(apply.CONNECTORS_DIR / f"{name}.json"), local_connect.variables_for(settings))
        for name in demo.SINKS
    ]
    assert all(s["config"]["topics"].startswith(settings.topic_prefix) for s in sinks)


def test_the_webhook_token_is_private_and_kept(tmp_path: Path) -> None:
    paths = demo.DemoPaths(tmp_path / "connectors-demo")
    token = demo.webhook_token(paths)
    assert len(token.get_secret_value()) >= 32
    assert stat.S_IMODE(paths.token.stat().st_mode) == 0o600
    assert demo.webhook_token(paths).get_secret_value() == token.get_secret_value()
