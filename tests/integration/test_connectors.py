"""The connectors end to end: OMS database -> Debezium -> the pipeline -> Kafka Connect -> ERP.

Real everything: the local PostgreSQL plays the OMS and ERP databases
(``connectors/local_postgres.py``), the local Kafka Connect worker runs Debezium's PostgreSQL
source with the outbox event router and the JDBC sink (``connectors/local_connect.py``), the
connector configurations are the files in ``connectors/`` as ``connectors.apply`` sends them,
and a real worker runs with ``INVENTORY_OUTBOX_TOPICS`` set.

Each service is started when it does not run and stopped at the end only if this module
started it. The module works in databases, topics, connectors and a replication slot of its
own (one random tag), and removes them at the end: a demo's connectors on the same worker
and databases are left alone.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings, get_settings
from connectors import apply, local_connect, local_postgres
from streams.topics import Topics, create_topics
from streams.worker_process import WorkerProcess
from tests.integration.conftest import Deployment, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.connectors]

TAG = uuid.uuid4().hex[:8]
OMS_DB, ERP_DB = f"oms_t{TAG}", f"erp_t{TAG}"
T = "2025-11-22T10:{:02d}:{:02d}+08:00"
_seq = iter(range(1, 3600))


def _at() -> str:
    n = next(_seq)
    return T.format(n // 60 % 60, n % 60)


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- the services ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_stack() -> Settings:
    return get_settings()


@pytest.fixture(scope="module")
def postgres(local_stack: Settings) -> Iterator[Settings]:
    started = local_postgres.start(local_stack)
    local_postgres.ensure_databases(local_stack, oms=OMS_DB, erp=ERP_DB)
    try:
        yield local_stack
    finally:
        try:
            for name in (OMS_DB, ERP_DB):
                _drop_when_slot_released(local_stack, name)
        finally:
            if started:
                local_postgres.stop(local_stack)


def _drop_when_slot_released(settings: Settings, name: str) -> None:
    """The source's slot stays active for a moment after its connector is deleted."""
    deadline = time.monotonic() + 30
    while True:
        try:
            local_postgres.drop_database(settings, name)
            return
        except local_postgres.LocalPostgresError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.fixture(scope="module")
def connect(kafka_bootstrap: str, postgres: Settings) -> Iterator[str]:
    started = local_connect.start(postgres)
    try:
        yield local_connect.rest_url(postgres)
    finally:
        if started:
            local_connect.stop(postgres)


# --- a deployment of the pipeline that reads the OMS outbox --------------------------------


@dataclass
class OutboxDeployment:
    deployment: Deployment
    outbox_topic: str
    worker: WorkerProcess
    connect_url: str
    connectors: dict[str, dict[str, Any]]

    def insert_outbox(self, event_type: str, order_no: str, payload: str | None,
                      aggregate_type: str = "order") -> str:
        """One OMS transaction's outbox row; returns its id. ``payload`` is JSON text."""
        row_id = str(uuid.uuid4())
        value = "NULL" if payload is None else "'" + payload.replace("'", "''") + "'::jsonb"
        local_postgres.psql(get_settings(), OMS_DB,
                            f"INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) "
                            f"VALUES ('{row_id}', '{aggregate_type}', '{order_no}', '{event_type}', {value})")
        return row_id

    def order(self, order_no: str) -> dict[str, Any] | None:
        return self.deployment.order(self.worker, order_no)


def connector_docs(settings: Settings, topic_prefix: str) -> dict[str, dict[str, Any]]:
    """The files in connectors/, rendered for this module's deployment: its topics, its
    databases, its own connector names and replication slot."""
    variables = {**apply.variables_for(settings), "pipeline.topic.prefix": topic_prefix}
    docs = {}
    for path in sorted(apply.CONNECTORS_DIR.glob("*.json")):
        doc = apply.render(apply.load(path), variables)
        config = dict(doc["config"])
        if "database.dbname" in config:
            config |= {"database.dbname": OMS_DB, "slot.name": f"oms_outbox_t{TAG}",
                       "topic.prefix": f"oms_t{TAG}"}
        if "connection.url" in config:
            config["connection.url"] = config["connection.url"].replace("/erp", f"/{ERP_DB}")
        docs[path.stem] = {"name": f"{doc['name']}-t{TAG}", "config": config}
    return docs


@pytest.fixture(scope="module")
def outbox(kafka_bootstrap: str, connect: str, postgres: Settings,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutboxDeployment]:
    root: Path = tmp_path_factory.mktemp(f"connectors-{TAG}")
    prefix = f"t{TAG}."
    outbox_topic = f"{prefix}oms.outbox.order"
    env = {
        "INVENTORY_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "INVENTORY_TOPIC_PREFIX": prefix,
        "INVENTORY_APP_ID": f"inventory-connectors-{TAG}",
        "INVENTORY_PARTITIONS": "4",
        "INVENTORY_OUTBOX_TOPICS": json.dumps([outbox_topic]),
    }
    settings = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, app_id=env["INVENTORY_APP_ID"],
                        partitions=4, outbox_topics=(outbox_topic,))
    create_topics(settings)
    _create_topic(settings, outbox_topic)
    deployment = Deployment(settings=settings, env=env, root=root)
    docs = connector_docs(postgres, prefix)
    source = docs["oms-outbox-source"]
    try:
        states = apply.apply(connect, [source], timeout_s=90)
        assert all(s.running for s in states), [line for s in states for line in s.lines()]
        worker = deployment.start_worker("outbox")
        yield OutboxDeployment(deployment, outbox_topic, worker, connect, docs)
    finally:
        for doc in docs.values():
            apply.delete_connector(connect, doc["name"])
        for w in deployment.workers:
            w.kill()
        _delete_topics(settings, [*Topics(settings).all(), outbox_topic])


def _create_topic(settings: Settings, name: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    from streams.kafka_config import admin_config

    admin = AdminClient(admin_config(settings))
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=30)


def _delete_topics(settings: Settings, names: list[str]) -> None:
    from confluent_kafka.admin import AdminClient

    from streams.kafka_config import admin_config

    admin = AdminClient(admin_config(settings))
    for future in admin.delete_topics(names, operation_timeout=30).values():
        try:
            future.result()
        except Exception:  # noqa: BLE001 - best-effort cleanup of a throwaway deployment
            pass


# --- events --------------------------------------------------------------------------------


def receipt(wh: str, **skus: int) -> dict[str, Any]:
    return {"eventType": "GoodsReceived", "eventId": _id("rc"), "occurredAt": _at(), "receiptNo": _id("RC"),
            "warehouseCode": wh, "lines": [{"sku": s, "sellableQty": q} for s, q in skus.items()]}


def order_payload(order_no: str, lines: dict[str, int], **overrides: Any) -> dict[str, Any]:
    """What the OMS writes into the outbox's payload column (eventType comes from the row)."""
    body = {"eventId": _id("oc"), "occurredAt": _at(), "orderNo": order_no, "orderType": "NORMAL",
            "consignee": {"name": "张三", "phone": "13800138000", "address": "北京市朝阳区"},
            "items": [{"sku": s, "quantity": q, "price": 19.90} for s, q in lines.items()],
            "totalAmount": round(19.90 * sum(lines.values()), 2), "timeRequirement": "STANDARD"}
    body.update(overrides)
    return body


def _status(o: OutboxDeployment, order_no: str, status: str, timeout_s: float = 60) -> dict[str, Any]:
    return wait_until(lambda: (x := o.order(order_no)) and x["status"] == status and x, timeout_s=timeout_s)


def _stock(o: OutboxDeployment, sku: str, qty: int) -> None:
    o.deployment.publish([receipt("WH001", **{sku: qty})])
    wait_until(lambda: (p := o.deployment.position(o.worker, sku, "WH001")) and p["onHandQty"] == qty)


# --- OMS -> orders ------------------------------------------------------------------------


def test_an_outbox_row_becomes_a_reserved_order_and_an_outbound_instruction(outbox: OutboxDeployment) -> None:
    o, sku, no = outbox, _id("SKU"), _id("OMS")
    _stock(o, sku, 10)

    o.insert_outbox("OrderCreated", no, json.dumps(order_payload(no, {sku: 3}), ensure_ascii=False))

    placed = _status(o, no, "OUTBOUND_REQUESTED")
    assert [e["what"] for e in placed["timeline"]][:3] == ["PENDING", "RESERVED", "OUTBOUND_REQUESTED"]
    assert placed["lines"][0]["reservedQty"] == 3
    position = o.deployment.position(o.worker, sku, "WH001")
    assert position and (position["availableQty"], position["reservedQty"]) == (7, 3)
    instructions = wait_until(lambda: [r for r in o.deployment.read(o.deployment.topics.outbound_instructions)
                                       if r["orderNo"] == no])
    assert [(i["warehouseCode"], i["lines"]) for i in instructions] == [("WH001", [{"sku": sku, "quantity": 3}])]
    # The order entered through the same input topic and key as a JSON line would have.
    created = [r for r in o.deployment.read(o.deployment.topics.orders) if r.get("orderNo") == no]
    assert [(r["eventType"], r["totalAmount"]) for r in created] == [("OrderCreated", "59.70")]


def test_the_row_type_and_id_stand_in_for_what_the_payload_leaves_out(outbox: OutboxDeployment) -> None:
    o, sku, no = outbox, _id("SKU"), _id("OMS")
    _stock(o, sku, 5)
    o.insert_outbox("OrderCreated", no, json.dumps(order_payload(no, {sku: 1})))
    _status(o, no, "OUTBOUND_REQUESTED")

    body = {"occurredAt": _at(), "orderNo": no, "reason": "customer changed mind"}  # no eventId, no eventType
    row_id = o.insert_outbox("OrderCancelled", no, json.dumps(body))
    cancelled = _status(o, no, "CANCELLED")
    assert cancelled["timeline"][-1]["what"] == "CANCELLED"
    cancels = [r for r in o.deployment.read(o.deployment.topics.orders)
               if r.get("orderNo") == no and r["eventType"] == "OrderCancelled"]
    assert [r["eventId"] for r in cancels] == [row_id]
    wait_until(lambda: (p := o.deployment.position(o.worker, sku, "WH001")) and p["reservedQty"] == 0)


def test_malformed_outbox_rows_go_to_dead_letters_and_the_next_row_still_flows(outbox: OutboxDeployment) -> None:
    o, sku = outbox, _id("SKU")
    bad_qty, bad_type, no_payload, good = _id("BAD"), _id("BAD"), _id("BAD"), _id("OMS")
    _stock(o, sku, 4)

    o.insert_outbox("OrderCreated", bad_qty, json.dumps(order_payload(bad_qty, {sku: 0})))
    o.insert_outbox("OrderTeleported", bad_type, json.dumps(order_payload(bad_type, {sku: 1})))
    o.insert_outbox("OrderCreated", no_payload, None)
    o.insert_outbox("OrderCreated", good, json.dumps(order_payload(good, {sku: 2})))

    _status(o, good, "OUTBOUND_REQUESTED")
    wanted = {_b64(bad_qty): "bad_qty", _b64(bad_type): "bad_type", _b64(no_payload): "no_payload"}
    letters = wait_until(lambda: (ls := [r for r in o.deployment.read(o.deployment.topics.dead_letters)
                                         if r["sourceTopic"] == o.outbox_topic and r["key"] in wanted])
                         and len(ls) == 3 and ls, timeout_s=30)
    by_row = {wanted[r["key"]]: r for r in letters}
    assert by_row["bad_qty"]["errorType"] == "VALIDATION" and "items.0.quantity" in by_row["bad_qty"]["error"]
    assert by_row["bad_type"]["errorType"] == "VALIDATION" and "OrderTeleported" in by_row["bad_type"]["error"]
    assert by_row["no_payload"]["errorType"] == "DECODE"
    for letter in letters:
        assert letter["sourcePartition"] == 0 and letter["sourceOffset"] >= 0
    # Nothing of the refused rows reached the orders topic.
    assert not [r for r in o.deployment.read(o.deployment.topics.orders) if r.get("orderNo") in
                {bad_qty, bad_type, no_payload}]
