"""The connectors end to end: OMS database -> Debezium -> the pipeline -> Kafka Connect -> ERP.

Real everything: the local PostgreSQL plays the OMS and ERP databases
(``connectors/local_postgres.py``), the local Kafka Connect worker runs Debezium's PostgreSQL
source with the outbox event router and the JDBC sink (``connectors/local_connect.py``), the
connector configurations are the files in ``connectors/`` as ``connectors.apply`` sends them
(with the per-deployment overrides of ``connector_docs``; the worker resolves their
``${file:...}`` and other ``${env:...}`` references), and a real worker runs with
``INVENTORY_OUTBOX_TOPICS`` set.

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
    oms_db: str = OMS_DB

    def insert_outbox(self, event_type: str, order_no: str, payload: str | None, aggregate_type: str = "order") -> str:
        """One OMS transaction's outbox row; returns its id. ``payload`` is JSON text. The
        transaction deletes the row it inserted (the outbox pattern's way to keep the table
        empty): Debezium reads the insert from the WAL, so the event still flows."""
        row_id = str(uuid.uuid4())
        value = "NULL" if payload is None else "'" + payload.replace("'", "''") + "'::jsonb"
        local_postgres.psql(
            get_settings(),
            self.oms_db,
            f"BEGIN; INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) "
            f"VALUES ('{row_id}', '{aggregate_type}', '{order_no}', '{event_type}', {value}); "
            f"DELETE FROM outbox WHERE id = '{row_id}'; COMMIT;",
        )
        return row_id

    def order(self, order_no: str) -> dict[str, Any] | None:
        return self.deployment.order(self.worker, order_no)


def connector_docs(
    settings: Settings, topic_prefix: str, suffix: str, oms_db: str = OMS_DB
) -> dict[str, dict[str, Any]]:
    """The files in connectors/ for one deployment of this module, which shares the local
    worker with others (a demo, the other tests): as ``connectors.apply`` sends them, with these
    overrides only - the worker resolves the rest (credentials, database host and port, the
    registry) from its own config providers:

    * ``${env:PIPELINE_TOPIC_PREFIX}``, ``${env:OMS_DB_NAME}``, ``${env:ERP_DB_NAME}`` replaced
      by this deployment's topic prefix and databases (``apply.render``, after what
      ``settings`` changes, ``apply.variables_for``);
    * literal values for what must not be shared on one worker and database server: the
      connector names (``-<suffix>``), the source's replication slot and Debezium topic prefix.
    """
    variables = {
        **local_connect.variables_for(settings),
        "PIPELINE_TOPIC_PREFIX": topic_prefix,
        "OMS_DB_NAME": oms_db,
        "ERP_DB_NAME": ERP_DB,
    }
    docs = {}
    for path in sorted(apply.CONNECTORS_DIR.glob("*.json")):
        doc = apply.render(apply.load(path), variables)
        config = dict(doc["config"])
        if "slot.name" in config:
            config |= {"slot.name": f"oms_outbox_{suffix}", "topic.prefix": f"oms_{suffix}"}
        docs[path.stem] = {"name": f"{doc['name']}-{suffix}", "config": config}
    return docs


@pytest.fixture(scope="module")
def outbox(
    kafka_bootstrap: str, connect: str, postgres: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OutboxDeployment]:
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
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=prefix,
        app_id=env["INVENTORY_APP_ID"],
        partitions=4,
        outbox_topics=(outbox_topic,),
    )
    create_topics(settings)
    deployment = Deployment(settings=settings, env=env, root=root)
    source = connector_docs(postgres, prefix, f"t{TAG}")["oms-outbox-source"]
    heartbeats = heartbeat_topic(source)
    try:
        states = apply.apply(connect, [source], timeout_s=90)
        assert all(s.running for s in states), [line for s in states for line in s.lines()]
        worker = deployment.start_worker("outbox")
        yield OutboxDeployment(deployment, outbox_topic, worker, connect)
    finally:
        apply.delete_connector(connect, source["name"])
        for w in deployment.workers:
            w.kill()
        _delete_topics(settings, [*Topics(settings).all(), outbox_topic, heartbeats])


def heartbeat_topic(source: dict[str, Any]) -> str:
    """Where the source's heartbeat records go (Debezium: <topic.heartbeat.prefix>.<topic.prefix>)."""
    config = source["config"]
    return f"{config['topic.heartbeat.prefix']}.{config['topic.prefix']}"


def _delete_topics(settings: Settings, names: list[str]) -> None:
    from confluent_kafka.admin import AdminClient

    from streams.kafka_config import admin_config

    admin = AdminClient(admin_config(settings))
    # Each name once: Topics.all() already lists the outbox topic, and confluent-kafka 2.16.1
    # crashed the process (SIGSEGV) resolving the futures of a request naming a topic twice
    # together with one that does not exist (seen here with the heartbeat topic added).
    for future in admin.delete_topics(sorted(set(names)), operation_timeout=30).values():
        try:
            future.result()
        except Exception:  # noqa: BLE001 - best-effort cleanup of a throwaway deployment
            pass


# --- events --------------------------------------------------------------------------------


def receipt(wh: str, **skus: int) -> dict[str, Any]:
    return {
        "eventType": "GoodsReceived",
        "eventId": _id("rc"),
        "occurredAt": _at(),
        "receiptNo": _id("RC"),
        "warehouseCode": wh,
        "lines": [{"sku": s, "sellableQty": q} for s, q in skus.items()],
    }


def order_payload(order_no: str, lines: dict[str, int], **overrides: Any) -> dict[str, Any]:
    """What the OMS writes into the outbox's payload column (eventType comes from the row)."""
    body = {
        "eventId": _id("oc"),
        "occurredAt": _at(),
        "orderNo": order_no,
        "orderType": "NORMAL",
        "consignee": {"name": "张三", "phone": "13800138000", "address": "北京市朝阳区"},
        "items": [{"sku": s, "quantity": q, "price": 19.90} for s, q in lines.items()],
        "totalAmount": round(19.90 * sum(lines.values()), 2),
        "timeRequirement": "STANDARD",
    }
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
    instructions = wait_until(
        lambda: [r for r in o.deployment.read(o.deployment.topics.outbound_instructions) if r["orderNo"] == no]
    )
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
    cancels = [
        r
        for r in o.deployment.read(o.deployment.topics.orders)
        if r.get("orderNo") == no and r["eventType"] == "OrderCancelled"
    ]
    assert [r["eventId"] for r in cancels] == [row_id]
    wait_until(lambda: (p := o.deployment.position(o.worker, sku, "WH001")) and p["reservedQty"] == 0)


def test_the_outbox_stays_empty_and_the_heartbeat_moves_the_slot_while_it_is_quiet(outbox: OutboxDeployment) -> None:
    """The production defaults of oms-outbox-source.json: each OMS transaction deletes the row
    it inserted and the event still flows (Debezium reads the insert from the WAL); and while
    the outbox is quiet and the rest of the database writes, the heartbeat's logical message
    lets the connector confirm a newer position, so the slot releases that WAL."""
    o, sku, no = outbox, _id("SKU"), _id("OMS")
    _stock(o, sku, 2)
    o.insert_outbox("OrderCreated", no, json.dumps(order_payload(no, {sku: 1})))
    _status(o, no, "OUTBOUND_REQUESTED")
    settings = get_settings()
    assert local_postgres.psql(settings, o.oms_db, "SELECT count(*) FROM outbox").strip() == "0"

    # The OMS's other tables write; nothing reaches the outbox or its publication.
    written = local_postgres.psql(
        settings,
        o.oms_db,
        "CREATE TABLE IF NOT EXISTS order_notes (id serial PRIMARY KEY, note text); "
        "INSERT INTO order_notes (note) SELECT md5(g::text) FROM generate_series(1, 2000) g; "
        "SELECT pg_current_wal_lsn();",
    ).strip()
    slot = f"oms_outbox_t{TAG}"

    def confirmed_past_the_writes() -> bool:
        answer = local_postgres.psql(
            settings,
            o.oms_db,
            f"SELECT confirmed_flush_lsn >= '{written}'::pg_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'",
        )
        return answer.strip() == "t"

    # heartbeat.interval.ms (10 s), then Connect's offset flush (5 s) hands the position to Debezium.
    wait_until(confirmed_past_the_writes, timeout_s=60, interval_s=1.0)


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
    letters = wait_until(
        lambda: (
            (
                ls := [
                    r
                    for r in o.deployment.read(o.deployment.topics.dead_letters)
                    if r["sourceTopic"] == o.outbox_topic and r["key"] in wanted
                ]
            )
            and len(ls) == 3
            and ls
        ),
        timeout_s=30,
    )
    by_row = {wanted[r["key"]]: r for r in letters}
    assert by_row["bad_qty"]["errorType"] == "VALIDATION" and "items.0.quantity" in by_row["bad_qty"]["error"]
    assert by_row["bad_type"]["errorType"] == "VALIDATION" and "OrderTeleported" in by_row["bad_type"]["error"]
    assert by_row["no_payload"]["errorType"] == "DECODE"
    for letter in letters:
        assert 0 <= letter["sourcePartition"] < 4 and letter["sourceOffset"] >= 0
    # Nothing of the refused rows reached the orders topic.
    assert not [
        r for r in o.deployment.read(o.deployment.topics.orders) if r.get("orderNo") in {bad_qty, bad_type, no_payload}
    ]


# --- pipeline -> ERP ------------------------------------------------------------------------
#
# The ERP sinks read the pipeline's ledger and inventory-changes topics as the registry frames
# them (Confluent wire format, ids from the Confluent-compatible API of the local Apicurio
# Registry) with Apicurio's Avro converter; see connectors/apply.py for why.


@pytest.fixture(scope="module")
def registry(local_stack: Settings) -> Iterator[str]:
    local_registry = pytest.importorskip(
        "connectors.local_registry", reason="the ERP sinks need the local schema registry module"
    )
    started = local_registry.start(local_stack)
    try:
        yield local_registry.registry_url(local_stack)
    finally:
        if started:
            local_registry.stop(local_stack)


def erp_rows(table: str, where: str) -> list[dict[str, Any]]:
    out = local_postgres.psql(
        get_settings(), ERP_DB, f"SELECT row_to_json(t) FROM (SELECT * FROM {table} WHERE {where}) t"
    )
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _apply_sinks(connect_url: str, docs: dict[str, dict[str, Any]]) -> list[str]:
    sinks = [docs["erp-ledger-sink"], docs["erp-positions-sink"]]
    states = apply.apply(connect_url, sinks, timeout_s=90)
    assert all(s.running for s in states), [line for s in states for line in s.lines()]
    return [doc["name"] for doc in sinks]


def _delete_subjects(registry_url: str, prefix: str) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    client = SchemaRegistryClient({"url": registry_url})
    for subject in client.get_subjects():
        if subject.startswith(prefix):
            client.delete_subject(subject)


def _sink_failures(connect_url: str, names: list[str]) -> list[str]:
    states = [apply.wait_for(connect_url, name, timeout_s=0) for name in names]
    return [line for state in states if state.failed for line in state.lines()]


def _until_in_erp(probe: Any, connect_url: str, sinks: list[str], timeout_s: float = 60) -> Any:
    """Wait for rows in the ERP tables; fail at once, with the cause, if a sink failed."""

    def check() -> Any:
        found = probe()
        if not found and (failures := _sink_failures(connect_url, sinks)):
            pytest.fail("an ERP sink failed:\n" + "\n".join(failures))
        return found

    return wait_until(check, timeout_s=timeout_s)


def test_registry_framed_ledger_entries_and_positions_land_in_the_erp_tables(
    kafka_bootstrap: str, connect: str, postgres: Settings, registry: str
) -> None:
    """The Connect half on its own: records of our contracts, encoded by our codec in the
    registry's framing, written by the two sinks; a redelivered record changes nothing."""
    from datetime import UTC, datetime

    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from schemas.codec import Codec, ConfluentFraming
    from schemas.outputs import InventoryChanged, InventoryLedgerEntry, MovementType, StockBucket
    from streams.kafka_config import producer_config

    prefix = f"e{TAG}."
    settings = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, schema_registry_url=registry)
    topics = Topics(settings)
    create_topics(settings)
    names = _apply_sinks(connect, connector_docs(postgres, prefix, f"e{TAG}"))
    try:
        codec = Codec(ConfluentFraming(SchemaRegistryClient({"url": registry})))
        sku, at = _id("SKU"), datetime(2025, 11, 22, 2, 0, 0, 123456, tzinfo=UTC)
        entries = [
            InventoryLedgerEntry(
                entry_id=f"rc-1|{sku}|{i}|WH001|ON_HAND",
                sku=sku,
                warehouse_code="WH001",
                bucket=StockBucket.ON_HAND,
                movement_type=MovementType.RECEIVED,
                quantity=q,
                document_type="RECEIPT",
                document_no="RC1",
                cause_event_id="rc-1",
                occurred_at=at,
            )
            for i, q in enumerate((10, 5))
        ]
        changes = [
            InventoryChanged(
                sku=sku,
                warehouse_code="WH001",
                available_qty=avail,
                reserved_qty=0,
                in_transit_qty=0,
                total_qty=avail,
                event_id=f"{sku}|WH001|v{v}",
                on_hand_qty=avail,
                presold_qty=0,
                outbound_qty=0,
                damaged_qty=0,
                version=v,
                cause_event_type="GoodsReceived",
                cause_event_id="rc-1",
                occurred_at=at,
            )
            for v, avail in ((1, 10), (2, 15))
        ]
        producer = Producer(producer_config(settings))
        key = f"{sku}|WH001".encode()
        for entry in [*entries, entries[0]]:  # the first one redelivered
            producer.produce(topics.inventory_ledger, key=key, value=codec.encode(entry, topic=topics.inventory_ledger))
        for change in [*changes, changes[0], changes[1]]:  # a replayed suffix, in order
            producer.produce(
                topics.inventory_changes, key=key, value=codec.encode(change, topic=topics.inventory_changes)
            )
        assert producer.flush(30) == 0

        where = f"sku = '{sku}'"
        ledger = _until_in_erp(lambda: (r := erp_rows("inventory_ledger", where)) and len(r) == 2 and r, connect, names)
        assert sorted((r["quantity"], r["bucket"], r["movement_type"]) for r in ledger) == [
            (5, "ON_HAND", "RECEIVED"),
            (10, "ON_HAND", "RECEIVED"),
        ]
        assert {r["occurred_at"] for r in ledger} == {"2025-11-22T02:00:00.123+00:00"}  # to the millisecond
        position = _until_in_erp(
            lambda: (r := erp_rows("inventory_positions", where)) and r[0]["version"] == 2 and r, connect, names
        )
        assert len(position) == 1
        assert (position[0]["available_qty"], position[0]["on_hand_qty"], position[0]["warehouse_code"]) == (
            15,
            15,
            "WH001",
        )
        assert not _sink_failures(connect, names)
    finally:
        for name in names:
            apply.delete_connector(connect, name)
        _delete_topics(settings, list(topics.all()))
        _delete_subjects(registry, prefix)


def test_an_inventory_change_of_the_pipeline_lands_in_the_erp_tables(
    kafka_bootstrap: str,
    connect: str,
    postgres: Settings,
    registry: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """End to end: an outbox row reserves stock; the worker's ledger entry and position reach
    the ERP tables through the sinks. Needs the worker in registry mode (its outputs framed by
    the registry when ``schema_registry_url`` is set)."""
    from confluent_kafka import Consumer

    from streams.kafka_config import consumer_config

    prefix = f"r{TAG}."
    outbox_topic = f"{prefix}oms.outbox.order"
    env = {
        "INVENTORY_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "INVENTORY_TOPIC_PREFIX": prefix,
        "INVENTORY_APP_ID": f"inventory-erp-{TAG}",
        "INVENTORY_PARTITIONS": "4",
        "INVENTORY_OUTBOX_TOPICS": json.dumps([outbox_topic]),
        "INVENTORY_SCHEMA_REGISTRY_URL": registry,
    }
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=prefix,
        app_id=env["INVENTORY_APP_ID"],
        partitions=4,
        outbox_topics=(outbox_topic,),
        schema_registry_url=registry,
    )
    create_topics(settings)
    deployment = Deployment(settings=settings, env=env, root=tmp_path_factory.mktemp(f"erp-{TAG}"))
    oms_db = f"oms_r{TAG}"  # its own outbox: the module's source connector does not see these rows
    local_postgres.ensure_databases(postgres, oms=oms_db, erp=ERP_DB)
    docs = connector_docs(postgres, prefix, f"r{TAG}", oms_db=oms_db)
    names: list[str] = []
    try:
        worker = deployment.start_worker("erp")
        o = OutboxDeployment(deployment, outbox_topic, worker, connect, oms_db)
        sku, no = _id("SKU"), _id("OMS")
        _stock(o, sku, 10)

        consumer = Consumer(consumer_config(settings, group_id=f"framing-{TAG}"))
        consumer.subscribe([deployment.topics.inventory_changes])
        first = None
        deadline = time.monotonic() + 30
        while first is None and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            first = msg.value() if msg is not None and not msg.error() else None
        consumer.close()
        assert first is not None, "the worker wrote no inventory change"
        assert first[:1] == b"\x00", "with a registry configured the worker frames its outputs by schema id"

        names = [docs["oms-outbox-source"]["name"]]
        states = apply.apply(connect, [docs["oms-outbox-source"]], timeout_s=90)
        assert all(s.running for s in states), [line for s in states for line in s.lines()]
        names += _apply_sinks(connect, docs)

        o.insert_outbox("OrderCreated", no, json.dumps(order_payload(no, {sku: 3})))
        _status(o, no, "OUTBOUND_REQUESTED")
        where = f"sku = '{sku}' AND warehouse_code = 'WH001'"
        sinks = names[1:]
        position = _until_in_erp(
            lambda: (r := erp_rows("inventory_positions", where)) and r[0]["reserved_qty"] == 3 and r, connect, sinks
        )
        assert (position[0]["available_qty"], position[0]["on_hand_qty"]) == (7, 10)
        ledger = _until_in_erp(lambda: erp_rows("inventory_ledger", where), connect, sinks)
        assert sum(r["quantity"] for r in ledger if r["bucket"] == "ON_HAND") == 10
        assert not _sink_failures(connect, sinks)
    finally:
        for name in names:
            apply.delete_connector(connect, name)
        for w in deployment.workers:
            w.kill()
        _delete_topics(settings, [*Topics(settings).all(), outbox_topic, heartbeat_topic(docs["oms-outbox-source"])])
        _delete_subjects(registry, prefix)
        _drop_when_slot_released(postgres, oms_db)
