"""Our Confluent framing against a real Confluent-compatible registry: Apicurio Registry 3.0.9.

The registry is the local one (``connectors/local_registry.py``: started here when none
answers, stopped at the end only if this module started it), or the one named by
``INVENTORY_SCHEMA_REGISTRY_URL`` (then the restart tests skip). The registry persists, so
every test works under subjects of its own (a random topic prefix) and the module deletes
them at the end.

What Apicurio's ccompat API (``/apis/ccompat/v7``) does differently from Confluent's, found
with these tests and by hand (the ones marked * are pinned by a test here):

* Subjects are artifacts: subject ``s`` is artifact ``s`` in group ``default`` of the native
  API (``/apis/registry/v3/groups/default/artifacts/s``), a subject version is an artifact
  version. Nothing else (no ``-value`` parsing, no record-name mapping).
* The id in the wire format is Apicurio's *contentId* (``apicurio.ccompat.legacy-id-mode``
  off, the default; on, it would be the per-version globalId). *So, as in Confluent, the
  same schema gets the same id under two subjects, and registering it again returns the
  same id without adding a version.
* *The same schema in other text (key order, spaces) is the same schema only with
  ``apicurio.ccompat.use-canonical-hash=true``, which the local registry sets; without it
  Apicurio adds a version with a new id for every textual variant, and a lookup
  (``POST /subjects/<s>``, ``lookup_schema``) finds only the exact text. Our codec always
  sends the same text (``json.dumps(..., sort_keys=True)``), so it is unaffected either
  way; producers written in other languages would not be.
* ``normalize=true`` (``register_schema(..., normalize_schemas=True)``) is accepted and
  answers the existing id of a canonically equal schema.
* Schemas come back as the stored text (not re-serialised, ``"references": []``), so what a
  reader fetches by id has the fingerprint of what the writer registered. References are
  never needed by us (nested records are inline).
* *``GET /config/<subject>`` answers ``NONE`` for a subject with no level of its own (not
  Confluent's 40408), although the global level is enforced on it; ``?defaultToGlobal=true``
  gives the effective one. ``confluent_kafka``'s ``get_compatibility(subject)`` therefore
  reads ``NONE``: ask for the global level, or pass ``defaultToGlobal``.
* *An incompatible schema: HTTP 409 with ``error_code`` 409 and the diff in the message
  (``"... list of diff types: [c at /fields/1]"``); ``test_compatibility`` answers False.
  A second record name under one subject is incompatible too (``expected: x.A at /name``).
* *An unknown id: HTTP 404, ``error_code`` 40403, as in Confluent.
* ``DELETE /subjects/<s>`` deletes at once (no soft-deleted phase: the subject leaves the list
  immediately, and ``permanent=true`` afterwards still answers 200), and the same schema
  registered again afterwards gets a *new* id, where Confluent would give the old one.
* ``/mode`` is 404 (no READONLY/IMPORT modes); ``/contexts`` and ``guid`` do not exist
  (``RegisteredSchema.guid`` is None).
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import parse_schema, schemaless_writer

from config.settings import REPO_ROOT, Settings, get_settings
from connectors import local_registry
from schemas.codec import (
    Codec,
    ConfluentFraming,
    RecordRegistry,
    UnknownSchemaError,
    default_registry,
)
from schemas.events import parse_event
from schemas.outputs import OUTPUT_EVENTS, DeadLetter, InventoryAlert
from streams.topics import Topics
from streams.wire import subject_strategy
from tables.center import InventoryCenter
from tests.unit.core.test_codec import ALL_CLASSES, assert_identical

pytestmark = pytest.mark.kafka

SEED_DAY = REPO_ROOT / "connectors" / "samples" / "seed-day.jsonl"


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry_url() -> Iterator[str]:
    """A running Confluent-compatible registry: the local one unless another is configured."""
    settings = get_settings()
    if not local_registry.uses_local_registry(settings):
        assert settings.schema_registry_url is not None
        yield settings.schema_registry_url
        return
    started = local_registry.start(settings)
    try:
        yield local_registry.registry_url(settings)
    finally:
        if started:
            local_registry.stop(settings)


@pytest.fixture(scope="module")
def prefix(registry_url: str) -> Iterator[str]:
    """A topic prefix of this module's own; every subject under it is deleted at the end."""
    tag = f"it-registry-{uuid.uuid4().hex[:8]}."
    yield tag
    client = new_client(registry_url)
    for subject in client.get_subjects():
        if subject.startswith(tag):
            client.delete_subject(subject)
            client.delete_subject(subject, permanent=True)


@pytest.fixture(scope="module")
def outputs() -> list[Any]:
    """One of every output event: the seed day through the in-memory core, plus a dead letter."""
    center = InventoryCenter()
    center.submit_all(parse_event(json.loads(line)) for line in SEED_DAY.read_text().splitlines())
    # The seed day ends with OMS202511220003 sent to the warehouse: cancelled, it is recalled.
    center.submit(
        parse_event(
            {
                "eventType": "OrderCancelled",
                "eventId": "oms-cancel-0003",
                "occurredAt": "2025-11-26T09:00:00+08:00",
                "orderNo": "OMS202511220003",
            }
        )
    )
    by_type: dict[str, Any] = {}
    for event in center.outputs:
        by_type.setdefault(type(event).__name__, event)
    by_type["DeadLetter"] = DeadLetter(
        source_topic="orders",
        source_partition=3,
        source_offset=42,
        key=b"OMS202511220001",
        payload=b"\x00\x00\x00\x00\x07garbage",
        error_type="DECODE",
        error="bad magic 07",
        failed_at=datetime(2025, 11, 22, 10, 0, tzinfo=UTC),
    )
    assert set(by_type) == set(OUTPUT_EVENTS), "the seed day no longer yields every output"
    return list(by_type.values())


def new_client(url: str) -> SchemaRegistryClient:
    """A registry client with empty caches: it knows no subject and no id."""
    return SchemaRegistryClient({"url": url})


def avro(schema: dict[str, Any]) -> Schema:
    return Schema(json.dumps(schema, sort_keys=True), "AVRO")


def topics(prefix: str) -> Topics:
    return Topics(Settings(topic_prefix=prefix))


def output_topic(prefix: str, record_name: str) -> str:
    t = topics(prefix)
    (name,) = [t.name(s) for s in t.specs if s.role == "output" and record_name in s.records]
    return name


def output_subject(prefix: str, record_name: str) -> str:
    """``<topic>-value``, or ``<topic>-<fullname>`` on a topic of several records (the WMS's)."""
    record = default_registry().record_type(OUTPUT_EVENTS[record_name])
    return str(
        subject_strategy(topics(prefix))(SimpleNamespace(topic=output_topic(prefix, record_name)), record.fullname)
    )


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def write_with(schema: dict[str, Any], schema_id: int, record: dict[str, Any]) -> bytes:
    """Confluent framing of ``record`` written with ``schema`` (another producer's version)."""
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(json.loads(json.dumps(schema))), record)
    return b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()


def with_fields(
    schema: dict[str, Any], *, drop: str = "", add: dict[str, Any] | None = None, retype: tuple[str, Any] | None = None
) -> dict[str, Any]:
    """A copy of a record schema with one field dropped, added or given another type."""
    changed = json.loads(json.dumps(schema))
    changed["fields"] = [f for f in changed["fields"] if f["name"] != drop]
    if add is not None:
        changed["fields"].append(add)
    if retype is not None:
        for f in changed["fields"]:
            if f["name"] == retype[0]:
                f["type"] = retype[1]
    return changed


# --- the wire format, subject naming and decode by id ---------------------------------------


def test_every_output_event_round_trips_through_the_registry(
    registry_url: str, prefix: str, outputs: list[Any]
) -> None:
    subjects = subject_strategy(topics(prefix))
    producer = Codec(ConfluentFraming(new_client(registry_url), subjects))
    consumer = Codec(ConfluentFraming(new_client(registry_url)))  # knows no ids
    looker = Codec(ConfluentFraming(new_client(registry_url), subjects, auto_register=False))
    inspector = new_client(registry_url)
    for event in outputs:
        topic = output_topic(prefix, type(event).__name__)
        subject = output_subject(prefix, type(event).__name__)
        record = default_registry().record_type(type(event))
        wire = producer.encode(event, topic=topic)
        assert wire[:1] == b"\x00"
        schema_id = int.from_bytes(wire[1:5], "big")

        latest = inspector.get_latest_version(subject)
        assert latest.schema_id == schema_id
        assert latest.version == 1
        assert json.loads(inspector.get_schema(schema_id).schema_str) == record.schema

        for validate in (True, False):
            assert_identical(event, consumer.decode(wire, topic=topic, validate=validate))
        # A producer that may not register finds the same id by lookup.
        assert looker.encode(event, topic=topic) == wire
        # Registering again (a new client, no cache) is the same id and no new version.
        assert new_client(registry_url).register_schema(subject, avro(record.schema)) == schema_id
        assert inspector.get_versions(subject) == [1]

    expected = {output_subject(prefix, name) for name in OUTPUT_EVENTS}
    assert expected <= set(inspector.get_subjects())


def test_output_events_cross_a_real_kafka_topic_and_decode_by_id(
    kafka_bootstrap: str, registry_url: str, prefix: str, outputs: list[Any]
) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from streams.kafka_config import admin_config, consumer_config, producer_config

    settings = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"{prefix}kafka.")
    names = {type(e).__name__: output_topic(settings.topic_prefix, type(e).__name__) for e in outputs}
    admin = AdminClient(admin_config(settings))
    for future in admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=1) for name in sorted(set(names.values()))]
    ).values():
        future.result(timeout=30)
    try:
        codec = Codec(ConfluentFraming(new_client(registry_url), subject_strategy(topics(settings.topic_prefix))))
        producer = Producer(producer_config(settings))
        for event in outputs:
            topic = names[type(event).__name__]
            producer.produce(topic, value=codec.encode(event, topic=topic))
        assert producer.flush(30) == 0

        reader = Codec(ConfluentFraming(new_client(registry_url)))  # a consumer elsewhere
        consumer = Consumer(consumer_config(settings, f"{prefix}reader"))
        consumer.subscribe(sorted(set(names.values())))  # the WMS's topic carries two records
        received: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        try:
            while len(received) < len(names) and time.monotonic() < deadline:
                message = consumer.poll(1.0)
                if message is None or message.error():
                    continue
                decoded = reader.decode(message.value(), topic=message.topic())
                received[type(decoded).__name__] = decoded  # the WMS's topic carries two types
        finally:
            consumer.close()
        for event in outputs:
            assert_identical(event, received[type(event).__name__])
    finally:
        for future in admin.delete_topics(sorted(set(names.values())), operation_timeout=30).values():
            future.result(timeout=30)


def test_global_compatibility_is_backward_and_a_bare_subject_reads_none(
    registry_url: str, prefix: str, outputs: list[Any]
) -> None:
    client = new_client(registry_url)
    assert client.get_compatibility() == "BACKWARD"
    assert get_json(f"{registry_url}/config")["compatibilityLevel"] == "BACKWARD"

    subject = f"{prefix}bare-value"
    client.register_schema(subject, avro(default_registry().record_type(InventoryAlert).schema))
    # Apicurio quirk: a subject without a level of its own reads NONE, not "not found"...
    assert client.get_compatibility(subject) == "NONE"
    # ...although the global level applies to it, as ?defaultToGlobal=true tells.
    effective = get_json(f"{registry_url}/config/{subject}?defaultToGlobal=true")
    assert effective["compatibilityLevel"] == "BACKWARD"


def test_a_textual_variant_of_a_schema_is_the_same_schema(registry_url: str, prefix: str) -> None:
    client = new_client(registry_url)
    schema = default_registry().record_type(InventoryAlert).schema
    subject = f"{prefix}variant-value"
    first = client.register_schema(subject, avro(schema))
    variant = Schema(json.dumps(schema, indent=2), "AVRO")  # other key order and spacing
    assert new_client(registry_url).register_schema(subject, variant) == first
    assert client.get_versions(subject) == [1]
    assert new_client(registry_url).lookup_schema(subject, variant).schema_id == first
    # The same schema under another subject: the same id (ids name content, not versions).
    assert client.register_schema(f"{prefix}variant-copy-value", avro(schema)) == first


# --- evolution --------------------------------------------------------------------------------


def test_an_accepted_evolution_is_read_by_our_codec(registry_url: str, prefix: str) -> None:
    """Older (no orderNo) -> current -> newer (+ an optional note): all accepted under
    BACKWARD, and data written with any of them decodes into today's InventoryAlert."""
    client = new_client(registry_url)
    subject = f"{prefix}evolution-value"
    record = default_registry().record_type(InventoryAlert)
    current = record.schema
    older = with_fields(current, drop="orderNo")
    note = {"name": "note", "type": ["null", "string"], "default": None, "doc": "Added later."}
    newer = with_fields(current, add=note)

    older_id = client.register_schema(subject, avro(older))
    assert client.test_compatibility(subject, avro(current))
    current_id = client.register_schema(subject, avro(current))
    newer_id = client.register_schema(subject, avro(newer))
    assert len({older_id, current_id, newer_id}) == 3
    assert client.get_versions(subject) == [1, 2, 3]

    alert = InventoryAlert.model_validate(
        {
            "alertId": "ev-1|LOW_STOCK|0",
            "alertType": "LOW_STOCK",
            "sku": "SKU001",
            "warehouseCode": "WH001",
            "orderNo": "OMS202511220001",
            "quantity": 3,
            "ordersAtRisk": [],
            "message": "低库存",
            "causeEventType": "OrderCreated",
            "causeEventId": "ev-1",
            "occurredAt": "2025-11-22T10:00:00+08:00",
        }
    )
    wire_dict = record.to_wire(alert)
    older_dict = {k: v for k, v in wire_dict.items() if k != "orderNo"}
    from_older = write_with(older, older_id, older_dict)
    from_newer = write_with(newer, newer_id, {**wire_dict, "note": "from a newer producer"})
    ours = Codec(ConfluentFraming(client)).encode(alert, topic=f"{prefix}evolution")
    assert int.from_bytes(ours[1:5], "big") == current_id  # already registered: no new version

    # A reader of its own (add_writer_schema must not touch the default registry).
    reader = Codec(ConfluentFraming(new_client(registry_url)), registry=RecordRegistry(ALL_CLASSES))
    assert_identical(alert.model_copy(update={"order_no": None}), reader.decode(from_older))
    assert_identical(alert, reader.decode(from_newer))
    assert_identical(alert, reader.decode(ours))
    assert client.get_versions(subject) == [1, 2, 3]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            {"add": {"name": "priority", "type": "int", "doc": "No default."}}, id="new-field-without-default"
        ),
        pytest.param({"retype": ("quantity", "string")}, id="long-becomes-string"),
        pytest.param(
            {"retype": ("alertType", {"type": "enum", "name": "AlertType", "symbols": ["LOW_STOCK"]})},
            id="enum-loses-symbols",
        ),
    ],
)
def test_an_incompatible_evolution_is_rejected_with_409(registry_url: str, prefix: str, change: dict[str, Any]) -> None:
    client = new_client(registry_url)
    subject = f"{prefix}rejected-{uuid.uuid4().hex[:6]}-value"
    current = default_registry().record_type(InventoryAlert).schema
    first = client.register_schema(subject, avro(current))
    changed = with_fields(current, **change)

    assert client.test_compatibility(subject, avro(changed)) is False
    with pytest.raises(SchemaRegistryError) as rejected:
        client.register_schema(subject, avro(changed))
    assert rejected.value.http_status_code == 409
    assert rejected.value.error_code == 409
    assert "Incompatible" in rejected.value.error_message
    assert client.get_versions(subject) == [1]
    assert client.get_latest_version(subject).schema_id == first


# --- topics that carry several record types ------------------------------------------------


def test_a_second_record_type_under_one_topic_subject_is_refused(registry_url: str, prefix: str) -> None:
    """Why streams/wire.py names the subjects of multi-record topics by record: under
    ``<topic>-value`` and BACKWARD the registry refuses the second record type (409)."""
    from schemas.codec import WireEncodeError

    codec = Codec(ConfluentFraming(new_client(registry_url)))
    t = topics(f"{prefix}inputs.")
    with pytest.raises(WireEncodeError, match="409|ncompatible"):
        for line in SEED_DAY.read_text().splitlines():
            event = parse_event(json.loads(line))
            codec.encode(event, topic=t.input_for(type(event).__name__))


def test_the_deployment_wire_registers_every_topic_and_round_trips_a_day(registry_url: str, prefix: str) -> None:
    """streams.wire.Wire: ``<topic>-value`` for one-record topics, ``<topic>-<record>`` for the
    others; every schema registered up front; a seed day round-trips by schema id, and a
    record in single-object encoding still decodes."""
    from schemas.codec import encode
    from streams.wire import Wire

    settings = get_settings().model_copy(update={"schema_registry_url": registry_url, "topic_prefix": f"{prefix}w."})
    wire, t = Wire(settings), Topics(settings)
    assert wire.register_all(t) == sum(len(spec.records) for spec in t.specs)
    subjects = set(new_client(registry_url).get_subjects())
    assert f"{t.inventory_changes}-value" in subjects
    assert f"{t.orders}-inventory.center.v1.OrderCreated" in subjects
    assert f"{t.orders}-value" not in subjects
    for line in SEED_DAY.read_text().splitlines():
        event = parse_event(json.loads(line))
        data = wire.encode(event, t.input_for(type(event).__name__))
        assert data[:1] == b"\x00"
        assert_identical(event, Wire(settings).decode(data))
        assert_identical(event, wire.decode(encode(event)))


def test_every_input_event_type_round_trips_with_topic_record_subjects(registry_url: str, prefix: str) -> None:
    from confluent_kafka.schema_registry import topic_record_subject_name_strategy

    producer = Codec(ConfluentFraming(new_client(registry_url), topic_record_subject_name_strategy))
    consumer = Codec(ConfluentFraming(new_client(registry_url)))
    t = topics(f"{prefix}inputs-tr.")
    seen = set()
    for line in SEED_DAY.read_text().splitlines():
        event = parse_event(json.loads(line))
        topic = t.input_for(type(event).__name__)
        assert_identical(event, consumer.decode(producer.encode(event, topic=topic), topic=topic))
        seen.add(f"{topic}-{default_registry().record_type(type(event)).fullname}")
    subjects = set(new_client(registry_url).get_subjects())
    assert seen <= subjects
    assert len({s.rsplit("-", 1)[0] for s in seen}) < len(seen)  # some topic holds several


def test_a_registry_rejection_on_encode_is_a_codec_error(registry_url: str, prefix: str) -> None:
    from schemas.codec import CodecError

    topic = f"{prefix}taken"
    other = with_fields(default_registry().record_type(InventoryAlert).schema)
    other["name"] = "SomethingElse"
    new_client(registry_url).register_schema(f"{topic}-value", avro(other))
    event = DeadLetter(
        source_topic="x",
        source_partition=0,
        source_offset=0,
        key=None,
        payload=None,
        error_type="DECODE",
        error="-",
        failed_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(CodecError):
        Codec(ConfluentFraming(new_client(registry_url))).encode(event, topic=topic)


# --- unknown ids --------------------------------------------------------------------------------


def test_an_unknown_schema_id_is_an_unknown_schema_error(registry_url: str, prefix: str, outputs: list[Any]) -> None:
    codec = Codec(ConfluentFraming(new_client(registry_url)))
    event = outputs[0]
    wire = codec.encode(event, topic=output_topic(prefix, type(event).__name__))
    reader = Codec(ConfluentFraming(new_client(registry_url)))
    with pytest.raises(UnknownSchemaError, match="40403|not found|No content"):
        reader.decode(b"\x00" + (2**31 - 1).to_bytes(4, "big") + wire[5:])
    # An id the registry knows, for a record this reader does not.
    foreign = {
        "type": "record",
        "name": "Foreign",
        "namespace": "elsewhere.v1",
        "fields": [{"name": "a", "type": "string"}],
    }
    foreign_id = new_client(registry_url).register_schema(f"{prefix}foreign-value", avro(foreign))
    with pytest.raises(UnknownSchemaError, match="names no registered record"):
        reader.decode(write_with(foreign, foreign_id, {"a": "x"}))


# --- persistence ------------------------------------------------------------------------------


def _restartable(registry_url: str) -> Settings:
    settings = get_settings()
    if not local_registry.uses_local_registry(settings):
        pytest.skip(f"registry {registry_url} is not the local one: not restarting it")
    if local_registry.managed_pid(settings) is None:
        pytest.skip("the registry that answers was not started by connectors.local_registry")
    return settings


def _snapshot(url: str, prefix: str) -> dict[str, list[tuple[int, int, str]]]:
    """Every subject under prefix: (version, id, schema text) of each version."""
    client = new_client(url)
    return {
        subject: [
            (v, (r := client.get_version(subject, v)).schema_id, r.schema.schema_str)
            for v in client.get_versions(subject)
        ]
        for subject in sorted(client.get_subjects())
        if subject.startswith(prefix)
    }


def test_schemas_ids_and_levels_survive_a_restart(registry_url: str, prefix: str, outputs: list[Any]) -> None:
    settings = _restartable(registry_url)
    codec = Codec(ConfluentFraming(new_client(registry_url), subject_strategy(topics(prefix))))
    wires = {type(e).__name__: codec.encode(e, topic=output_topic(prefix, type(e).__name__)) for e in outputs}
    level_subject = f"{prefix}level-value"
    client = new_client(registry_url)
    alert_schema = default_registry().record_type(InventoryAlert).schema
    client.register_schema(level_subject, avro(alert_schema))
    client.set_compatibility(level_subject, "FULL")
    before = _snapshot(registry_url, prefix)
    assert len(before) >= len(OUTPUT_EVENTS) + 1

    assert local_registry.stop(settings)
    assert not local_registry.is_running(settings)
    began = time.monotonic()
    assert local_registry.start(settings)
    restart_s = time.monotonic() - began

    assert _snapshot(registry_url, prefix) == before
    assert new_client(registry_url).get_compatibility(level_subject) == "FULL"
    reader = Codec(ConfluentFraming(new_client(registry_url)))  # fetches every id anew
    for event in outputs:
        assert_identical(event, reader.decode(wires[type(event).__name__]))
    print(f"registry restart: {restart_s:.1f}s")


def test_a_schema_registered_just_before_a_sigkill_survives(registry_url: str, prefix: str) -> None:
    settings = _restartable(registry_url)
    subject = f"{prefix}killed-value"
    schema_id = new_client(registry_url).register_schema(
        subject, avro(default_registry().record_type(InventoryAlert).schema)
    )
    pid = local_registry.managed_pid(settings)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # no shutdown hook: only what is in the file survives
    deadline = time.monotonic() + 10
    while local_registry.managed_pid(settings) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not local_registry.is_running(settings)
    assert local_registry.start(settings)
    assert new_client(registry_url).get_latest_version(subject).schema_id == schema_id
