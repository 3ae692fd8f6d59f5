"""The connector files (connectors/*.json) and the apply command, without a Connect cluster.

The files must be postable as they are once the deployment placeholders are filled in, carry
no secret (only ``${file:...}`` references), and agree with the contracts and tables they
connect: the ERP tables have a column for every field of the records the sinks write, the
outbox table has the columns the event router reads.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from connectors import apply
from connectors.local_postgres import ERP_SCHEMA, OMS_SCHEMA, OUTBOX_PUBLICATION
from schemas.outputs import InventoryChanged, InventoryLedgerEntry
from streams.topics import Topics

FILES = sorted(apply.CONNECTORS_DIR.glob("*.json"))
SECRET_KEY = re.compile(r"(password|secret|credential|token|jaas|user(name)?$)", re.IGNORECASE)
FILE_REFERENCE = re.compile(r"^\$\{file:\$\{secrets\}:[a-z][a-z0-9_.-]*\}$")
RENDERED_REFERENCE = re.compile(r"^\$\{file:/[^:{}]+:[a-z][a-z0-9_.-]*\}$")
# ${...} that belong to the connectors themselves, not to apply: left as they are.
CONNECTOR_PLACEHOLDERS = {"routedByValue", "topic"}
VARIABLES = {"secrets": "/srv/connect/secrets.properties", "postgres.port": "5432",
             "pipeline.topic.prefix": "", "registry.url": "http://registry:8080/apis/registry/v2"}


def docs() -> dict[str, dict[str, Any]]:
    return {path.stem: apply.load(path) for path in FILES}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def table_columns(ddl: str, table: str) -> set[str]:
    body = re.search(rf"CREATE TABLE IF NOT EXISTS public\.{table} \((.*?)\n\);", ddl, re.S)
    assert body, f"no CREATE TABLE {table}"
    columns = set()
    for line in body.group(1).splitlines():
        word = line.strip().split(" ", 1)[0]
        if word and word.upper() != "PRIMARY" and not word.startswith("--"):
            columns.add(word)
    return columns


def test_the_three_connectors_are_there() -> None:
    assert set(docs()) == {"oms-outbox-source", "erp-ledger-sink", "erp-positions-sink"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_file_is_name_and_config_with_string_values_named_after_the_file(path: Path) -> None:
    doc = apply.load(path)  # raises on a bad shape
    assert doc["name"] == path.stem
    assert all(isinstance(v, str) for v in doc["config"].values())


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_literal_secrets_only_file_provider_references(path: Path) -> None:
    config = apply.load(path)["config"]
    sensitive = {k: v for k, v in config.items() if SECRET_KEY.search(k)}
    assert sensitive, "a database connector has credentials"
    for key, value in sensitive.items():
        assert FILE_REFERENCE.match(value), f"{key} must be ${{file:${{secrets}}:<key>}}, is {value!r}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_placeholder_is_filled_by_apply_or_belongs_to_the_connector(path: Path) -> None:
    rendered = apply.render(apply.load(path), VARIABLES)["config"]
    for key, value in rendered.items():
        inner = re.sub(r"\$\{file:[^{}]+\}", "", value)  # resolved on the worker
        for name in re.findall(r"\$\{([^}]*)\}", inner):
            assert name in CONNECTOR_PLACEHOLDERS, f"{key}: ${{{name}}} would reach Connect unfilled"
        if SECRET_KEY.search(key):
            assert RENDERED_REFERENCE.match(value), value
            assert "/srv/connect/secrets.properties" in value


def test_render_fills_the_path_and_never_a_secret() -> None:
    doc = {"name": "x", "config": {"connector.class": "C", "p": "${file:${secrets}:oms.password}",
                                   "t": "${pipeline.topic.prefix}oms.outbox.${routedByValue}"}}
    out = apply.render(doc, {"secrets": "/s.properties", "pipeline.topic.prefix": "t1."})
    assert out["config"]["p"] == "${file:/s.properties:oms.password}"
    assert out["config"]["t"] == "t1.oms.outbox.${routedByValue}"
    assert doc["config"]["p"] == "${file:${secrets}:oms.password}"  # the input is untouched


@pytest.mark.parametrize("bad", [
    {"name": "x"},
    {"name": "x", "config": {"connector.class": "C"}, "extra": 1},
    {"name": "x", "config": {"connector.class": "C", "tasks.max": 1}},
    {"name": "x", "config": {"tasks.max": "1"}},
    {"name": "x y", "config": {"connector.class": "C"}},
    {"name": "x", "config": {"connector.class": "C", "name": "y"}},
])
def test_shapes_connect_would_not_take_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(apply.ApplyError):
        apply.check_shape(bad)


def test_the_outbox_source_reads_the_outbox_table_the_way_the_table_is_shaped() -> None:
    config = docs()["oms-outbox-source"]["config"]
    columns = table_columns(OMS_SCHEMA, "outbox")
    assert {"id", "aggregatetype", "aggregateid", "type", "payload"} <= columns
    assert config["table.include.list"] == "public.outbox"
    assert config["publication.name"] == OUTBOX_PUBLICATION
    assert config["transforms.outbox.type"] == "io.debezium.transforms.outbox.EventRouter"
    assert config["transforms.outbox.table.field.event.key"] in columns
    assert config["transforms.outbox.route.by.field"] in columns
    assert config["transforms.outbox.table.fields.additional.placement"] == "type:header:eventType"
    # The payload goes on as the OMS wrote it: the bridge parses it (streams/outbox.py).
    assert config["value.converter"] == "org.apache.kafka.connect.storage.StringConverter"


def test_the_outbox_topic_is_the_one_the_pipeline_is_told_to_read() -> None:
    config = apply.render(docs()["oms-outbox-source"], {**VARIABLES, "pipeline.topic.prefix": "t9."})["config"]
    routed = config["transforms.outbox.route.topic.replacement"].replace("${routedByValue}", "order")
    assert routed == "t9.oms.outbox.order"


@pytest.mark.parametrize(("name", "record", "table", "key"), [
    ("erp-ledger-sink", InventoryLedgerEntry, "inventory_ledger", ["entry_id"]),
    ("erp-positions-sink", InventoryChanged, "inventory_positions", ["sku", "warehouse_code"]),
])
def test_each_sink_writes_every_field_of_its_record_into_a_column_of_its_table(
    name: str, record: type, table: str, key: list[str]
) -> None:
    config = apply.render(docs()[name], {**VARIABLES, "pipeline.topic.prefix": "p."})["config"]
    topics = Topics(Settings(topic_prefix="p."))
    assert config["topics"] == (topics.inventory_ledger if record is InventoryLedgerEntry
                                else topics.inventory_changes)
    assert config["collection.name.format"] == table
    fields = {snake(info.alias or n) for n, info in record.model_fields.items()}
    assert fields == table_columns(ERP_SCHEMA, table)
    assert config["primary.key.mode"] == "record_value"
    assert config["primary.key.fields"].split(",") == key
    assert config["insert.mode"] == "upsert"
    assert config["transforms.columns.column.naming.style"] == "snake_case"
    assert config["schema.evolution"] == "none"  # the ERP owns its tables


def test_the_erp_key_columns_are_the_tables_primary_keys() -> None:
    assert "entry_id        varchar(512) PRIMARY KEY" in ERP_SCHEMA
    assert "PRIMARY KEY (sku, warehouse_code)" in ERP_SCHEMA


# --- the apply command against a stand-in for Connect's REST API ---------------------------


class FakeConnect(BaseHTTPRequestHandler):
    """PUT /connectors/<n>/config -> 201; GET .../status -> the state the test set."""

    states: dict[str, str] = {}
    received: dict[str, dict[str, str]] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        name = self.path.split("/")[2]
        length = int(self.headers["Content-Length"])
        self.received[name] = json.loads(self.rfile.read(length))
        if "bad" in name:
            self._send(400, {"error_code": 400, "message": "Connector configuration is invalid"})
        else:
            self._send(201, {"name": name})

    def do_GET(self) -> None:  # noqa: N802
        name = self.path.split("/")[2]
        state = self.states.get(name, "RUNNING")
        task = {"id": 0, "state": state, "worker_id": "w:8083"}
        if state == "FAILED":
            task["trace"] = "org.apache.kafka.connect.errors.ConnectException: boom\n\tat x.y(Z.java:1)"
        self._send(200, {"name": name, "connector": {"state": "RUNNING", "worker_id": "w:8083"},
                         "tasks": [task]})


@pytest.fixture
def connect_url() -> Iterator[str]:
    FakeConnect.states, FakeConnect.received = {}, {}
    server = HTTPServer(("127.0.0.1", 0), FakeConnect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _doc(name: str) -> dict[str, Any]:
    return {"name": name, "config": {"connector.class": "C", "p": "${file:/s:k}"}}


def test_apply_puts_the_config_with_its_name_and_reports_running(connect_url: str) -> None:
    out = io.StringIO()
    states = apply.apply(connect_url, [_doc("a")], timeout_s=5, out=out)
    assert [s.running for s in states] == [True]
    assert FakeConnect.received["a"] == {"connector.class": "C", "p": "${file:/s:k}", "name": "a"}
    assert "a: connector RUNNING" in out.getvalue() and "task 0: RUNNING" in out.getvalue()


def test_a_failed_task_is_reported_with_its_cause(connect_url: str) -> None:
    FakeConnect.states["b"] = "FAILED"
    out = io.StringIO()
    states = apply.apply(connect_url, [_doc("a"), _doc("b")], timeout_s=5, out=out)
    assert [(s.name, s.running, s.failed) for s in states] == [("a", True, False), ("b", False, True)]
    assert "ConnectException: boom" in out.getvalue()
    assert "Z.java" not in out.getvalue()  # stack frames left out


def test_a_refused_config_is_reported_and_the_others_still_applied(connect_url: str) -> None:
    out = io.StringIO()
    states = apply.apply(connect_url, [_doc("bad-one"), _doc("c")], timeout_s=5, out=out)
    assert [(s.name, s.state) for s in states] == [("bad-one", "REFUSED"), ("c", "RUNNING")]
    assert "configuration is invalid" in out.getvalue()


def test_the_command_exits_non_zero_when_one_failed(connect_url: str, tmp_path: Path) -> None:
    for name in ("ok", "ko"):
        (tmp_path / f"{name}.json").write_text(json.dumps(_doc(name)))
    FakeConnect.states["ko"] = "FAILED"
    assert apply.main(["--connect-url", connect_url, str(tmp_path / "ok.json")]) == 0
    assert apply.main(["--connect-url", connect_url, str(tmp_path / "ok.json"),
                       str(tmp_path / "ko.json")]) == 1
