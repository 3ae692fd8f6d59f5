"""The connector files (connectors/*.json) and the apply command, without a Connect cluster.

The files must be postable to Connect as they are: every deployment value is a reference to a
config provider of the worker (``${directory:...}`` for secrets, one file per secret as
platforms mount them, ``${env:...}`` for the rest), each naming a key the local stack provides
(connectors/local_connect.py's secrets folder and worker environment). And they must agree
with the contracts and tables they connect: the ERP tables have a column for every field of
the records the sinks write, the outbox table has the columns the event router reads.
Resolved here the way the worker resolves them (``resolve``).
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
from connectors import apply, local_connect, local_registry
from connectors.local_postgres import ERP_SCHEMA, OMS_SCHEMA, OUTBOX_PUBLICATION
from schemas.outputs import InventoryChanged, InventoryLedgerEntry
from streams.topics import Topics

FILES = sorted(apply.CONNECTORS_DIR.glob("*.json"))
SECRET_KEY = re.compile(r"(password|secret|credential|token|jaas|user(name)?$)", re.IGNORECASE)
SECRET_REFERENCE = re.compile(
    rf"^\$\{{directory:{re.escape(local_connect.SECRETS_REFERENCE_PATH)}:[a-z][a-z0-9_.-]*\}}$"
)
# ${...} that belong to a connector, not to Connect (no provider: Connect leaves them alone),
# and the only keys they may appear in.
CONNECTOR_PLACEHOLDERS = {"routedByValue": {"transforms.outbox.route.topic.replacement"}}


@pytest.fixture
def local_stack(tmp_path: Path) -> Settings:
    """The local stack's settings, its files (the secrets folder) under a temporary folder."""
    settings = Settings(local_dir=tmp_path / "local")
    local_connect.ConnectPaths.of(settings).root.mkdir(parents=True)
    return settings


def provided(settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """What the local worker's providers read: the secrets folder local_connect writes (its
    files' bytes as they are, as DirectoryConfigProvider reads them) and the environment it
    starts the worker with."""
    folder = local_connect.write_secrets(settings)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in folder.iterdir())
    secrets = {f.name: f.read_bytes().decode() for f in folder.iterdir()}
    return secrets, local_connect.worker_env(settings)


def resolve(config: dict[str, str], secrets: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """The config as the worker's ConfigTransformer resolves it (an unknown key: left as is)."""

    def value(m: re.Match[str]) -> str:
        provider, path, key = m.group(1), m.group(2) or "", m.group(3)
        if provider == "directory" and path == local_connect.SECRETS_REFERENCE_PATH:
            return secrets.get(key, m.group(0))
        if provider == "env" and not path:
            return env.get(key, m.group(0))
        return m.group(0)

    return {k: apply.PROVIDER_REFERENCE.sub(value, v) for k, v in config.items()}


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
def test_no_literal_secrets_only_directory_provider_references(path: Path) -> None:
    config = apply.load(path)["config"]
    sensitive = {k: v for k, v in config.items() if SECRET_KEY.search(k)}
    assert sensitive, "a database connector has credentials"
    for key, value in sensitive.items():
        assert SECRET_REFERENCE.match(value), (
            f"{key} must be ${{directory:{local_connect.SECRETS_REFERENCE_PATH}:<key>}}, is {value!r}"
        )
    for key, value in config.items():  # and the secrets folder is for secrets only
        if not SECRET_KEY.search(key):
            assert "${directory:" not in value, key


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_only_provider_references_remain_and_the_local_stack_provides_each(path: Path, local_stack: Settings) -> None:
    """What Connect would not resolve reaches the connector literally: every ``${...}`` is a
    ``${directory:...}`` or ``${env:...}`` reference to a key the local worker has, or a
    placeholder of the connector itself where that connector reads it."""
    secrets, env = provided(local_stack)
    for key, value in apply.load(path)["config"].items():
        refs = apply.references(value)
        for provider, ref_path, name in refs:
            assert provider in {"directory", "env"}, f"{key}: no config provider {provider!r}"
            if provider == "directory":
                assert ref_path == local_connect.SECRETS_REFERENCE_PATH, f"{key}: {ref_path}"
                assert name in secrets, f"{key}: the secrets folder has no {name}"
            else:
                assert ref_path == "", f"{key}: the env provider takes no path"
                assert name in env, f"{key}: local_connect does not set {name}"
        rest = apply.PROVIDER_REFERENCE.sub("", value)
        for other in re.findall(r"\$\{([^}]*)\}", rest):
            assert key in CONNECTOR_PLACEHOLDERS.get(other, set()), (
                f"{key}: ${{{other}}} would reach the connector unresolved"
            )
        assert "${" not in re.sub(r"\$\{[^}]*\}", "", rest), f"{key}: unbalanced ${{ in {value!r}"
    resolved = resolve(apply.load(path)["config"], secrets, env)
    for key, value in resolved.items():
        assert not apply.references(value), f"{key} left unresolved: {value!r}"


def test_the_local_worker_enables_both_providers_on_what_the_files_read(local_stack: Settings) -> None:
    props = dict(
        line.split("=", 1)
        for line in local_connect.worker_properties(local_stack).splitlines()
        if line and not line.startswith("#")
    )
    assert props["config.providers"] == "directory,env"
    assert (
        props["config.providers.directory.class"] == "org.apache.kafka.common.config.provider.DirectoryConfigProvider"
    )
    assert props["config.providers.env.class"] == "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
    # allowed.paths: absolute entries, the secrets folder under both its names (the worker's
    # working directory is the local stack's connect/ folder); nothing else of that folder.
    allowed = props["config.providers.directory.param.allowed.paths"].split(",")
    root = local_connect.ConnectPaths.of(local_stack).root
    assert allowed == ["/proc/self/cwd/secrets", str(root / "secrets")]
    assert local_connect.SECRETS_REFERENCE_PATH == "/proc/self/cwd/secrets"
    assert local_connect.secrets_dir(local_stack) == root / "secrets"
    # The env provider may read exactly the variables the worker is given (full match, as Java).
    allowlist = re.compile(props["config.providers.env.param.allowlist.pattern"])
    env = local_connect.worker_env(local_stack)
    assert all(allowlist.fullmatch(name) for name in env)
    assert not any(allowlist.fullmatch(name) for name in ("PATH", "HOME", "OMS_DB_PASSWORD", "PIPELINE"))


def test_the_local_stack_resolves_the_files_to_its_databases_topics_and_registry(local_stack: Settings) -> None:
    secrets, env = provided(local_stack)
    port = local_stack.postgres_port
    source = resolve(docs()["oms-outbox-source"]["config"], secrets, env)
    assert (source["database.hostname"], source["database.port"], source["database.dbname"]) == (
        "127.0.0.1",
        str(port),
        "oms",
    )
    assert (source["database.user"], source["database.password"]) == (secrets["oms.user"], secrets["oms.password"])
    for name in ("erp-ledger-sink", "erp-positions-sink"):
        sink = resolve(docs()[name]["config"], secrets, env)
        assert sink["connection.url"] == f"jdbc:postgresql://127.0.0.1:{port}/erp"
        assert sink["connection.password"] == secrets["erp.password"]
        assert sink["value.converter.apicurio.registry.url"] == local_registry.apicurio_native_url(local_stack)


def test_render_overrides_only_the_env_references_it_is_given() -> None:
    doc = {
        "name": "x",
        "config": {
            "connector.class": "C",
            "p": "${directory:/proc/self/cwd/secrets:oms.password}",
            "t": "${env:PIPELINE_TOPIC_PREFIX}oms.outbox.${routedByValue}",
            "u": "jdbc:postgresql://${env:ERP_DB_HOST}:${env:ERP_DB_PORT}/${env:ERP_DB_NAME}",
        },
    }
    out = apply.render(doc, {"PIPELINE_TOPIC_PREFIX": "t1.", "ERP_DB_NAME": "erp_t1"})
    assert out["config"] == {
        "connector.class": "C",
        "p": doc["config"]["p"],
        "t": "t1.oms.outbox.${routedByValue}",
        "u": "jdbc:postgresql://${env:ERP_DB_HOST}:${env:ERP_DB_PORT}/erp_t1",
    }
    assert doc["config"]["t"] == "${env:PIPELINE_TOPIC_PREFIX}oms.outbox.${routedByValue}"  # input untouched
    assert apply.render(doc, {}) == doc  # no overrides: the file as it is


def test_variables_for_is_what_a_deployment_changes_on_the_local_worker(local_stack: Settings) -> None:
    assert local_connect.variables_for(local_stack, worker=local_stack) == {}
    other = local_stack.model_copy(update={"topic_prefix": "connectors-demo."})
    assert local_connect.variables_for(other, worker=local_stack) == {"PIPELINE_TOPIC_PREFIX": "connectors-demo."}


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "x"},
        {"name": "x", "config": {"connector.class": "C"}, "extra": 1},
        {"name": "x", "config": {"connector.class": "C", "tasks.max": 1}},
        {"name": "x", "config": {"tasks.max": "1"}},
        {"name": "x y", "config": {"connector.class": "C"}},
        {"name": "x", "config": {"connector.class": "C", "name": "y"}},
    ],
)
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


def test_the_outbox_topic_is_the_one_the_pipeline_is_told_to_read(local_stack: Settings) -> None:
    secrets, env = provided(local_stack)
    config = resolve(docs()["oms-outbox-source"]["config"], secrets, {**env, "PIPELINE_TOPIC_PREFIX": "t9."})
    routed = config["transforms.outbox.route.topic.replacement"].replace("${routedByValue}", "order")
    assert routed == "t9.oms.outbox.order"


@pytest.mark.parametrize(
    ("name", "record", "table", "key"),
    [
        ("erp-ledger-sink", InventoryLedgerEntry, "inventory_ledger", ["entry_id"]),
        ("erp-positions-sink", InventoryChanged, "inventory_positions", ["sku", "warehouse_code"]),
    ],
)
def test_each_sink_writes_every_field_of_its_record_into_a_column_of_its_table(
    name: str, record: type, table: str, key: list[str], local_stack: Settings
) -> None:
    secrets, env = provided(local_stack)
    config = resolve(docs()[name]["config"], secrets, {**env, "PIPELINE_TOPIC_PREFIX": "p."})
    topics = Topics(Settings(topic_prefix="p."))
    assert config["topics"] == (topics.inventory_ledger if record is InventoryLedgerEntry else topics.inventory_changes)
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
        self._send(200, {"name": name, "connector": {"state": "RUNNING", "worker_id": "w:8083"}, "tasks": [task]})


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
    assert apply.main(["--connect-url", connect_url, str(tmp_path / "ok.json"), str(tmp_path / "ko.json")]) == 1


# --- secrets mounted as files, and the outbox source's production defaults --------------------


def test_each_secret_is_a_file_with_the_bare_value(local_stack: Settings) -> None:
    """DirectoryConfigProvider reads a file's bytes as they are: a trailing newline would be part
    of the password. The file provider's old secrets.properties does not linger."""
    old = local_connect.ConnectPaths.of(local_stack).root / "secrets.properties"
    old.write_text("oms.password=stale\n")
    secrets, _ = provided(local_stack)
    assert set(secrets) == {"oms.user", "oms.password", "erp.user", "erp.password"}
    assert all(value and value == value.strip() for value in secrets.values())
    assert not old.exists()


def test_render_can_point_the_secrets_at_another_mounted_folder() -> None:
    doc = {
        "name": "x",
        "config": {
            "connector.class": "C",
            "database.password": "${directory:/proc/self/cwd/secrets:oms.password}",
            "other": "${directory:/elsewhere:k} ${env:OMS_DB_HOST}",
        },
    }
    out = apply.render(doc, {}, secrets_dir="/opt/kafka/external-configuration/oms/")
    assert out["config"]["database.password"] == "${directory:/opt/kafka/external-configuration/oms:oms.password}"
    assert out["config"]["other"] == doc["config"]["other"]  # only the files' own secrets folder moves
    assert apply.render(doc, {}) == doc


def test_the_command_refuses_a_relative_secrets_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert apply.main(["--connect-url", "http://127.0.0.1:9", "--secrets-dir", "secrets"]) == 1
    assert "an absolute path" in capsys.readouterr().err


def test_the_outbox_source_heartbeats_so_a_quiet_outbox_does_not_hold_the_wal() -> None:
    """Debezium 3.4's PostgreSQL connector confirms an LSN to the slot only when it has something
    to commit (lsn.flush.mode=connector, the default): while the outbox is quiet the slot would
    keep every WAL segment the rest of the database writes. The heartbeat commits the position
    every interval, and its action query writes a logical decoding message, which reaches the
    slot whatever the publication holds, so there is always a newer position to confirm. The
    message itself is excluded (no record per heartbeat), and heartbeats go to a topic of this
    deployment."""
    config = docs()["oms-outbox-source"]["config"]
    assert 1_000 <= int(config["heartbeat.interval.ms"]) <= 60_000
    query = config["heartbeat.action.query"]
    emitted = re.fullmatch(r"SELECT pg_logical_emit_message\(false, '([a-z-]+)', now\(\)::text\)", query)
    assert emitted, query  # non-transactional: decoded at once, no transaction around it
    assert re.fullmatch(config["message.prefix.exclude.list"], emitted.group(1))
    assert "message.prefix.include.list" not in config
    assert config["topic.heartbeat.prefix"] == "${env:PIPELINE_TOPIC_PREFIX}__debezium-heartbeat"
    assert config.get("lsn.flush.mode", "connector") != "manual"


def test_the_outbox_can_be_emptied_in_the_writing_transaction() -> None:
    """The outbox pattern's way to keep the table small: the OMS deletes its row in the same
    transaction that inserted it. Debezium reads the insert from the WAL, the publication
    publishes inserts only (so the delete is not even decoded), and the event router would
    skip a delete anyway."""
    assert "CREATE PUBLICATION oms_outbox FOR TABLE public.outbox WITH (publish = 'insert')" in OMS_SCHEMA
