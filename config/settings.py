"""The one typed settings object of the inventory center.

Every knob lives here; nothing else in the codebase reads ``os.environ``. Values come, first
found wins, from the constructor's arguments, the environment (prefix ``INVENTORY_``), a ``.env``
file in the working directory, then the secrets directory (``secrets_dir``: one file per
setting, named like its variable, ``inventory_read_token``), and are passed down explicitly.
Secrets are ``SecretStr`` and never logged. ``python -m config.settings_doc`` writes the table
of every field into README.md.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where container platforms mount secrets as files (Docker/Compose secrets, a Kubernetes
# Secret volume mounted there): read when it exists and secrets_dir is not set.
DEFAULT_SECRETS_DIR = Path("/run/secrets")


class Settings(BaseSettings):
    """Settings for the broker connection, the local stack, the worker and the core policy."""

    model_config = SettingsConfigDict(
        env_prefix="INVENTORY_", env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    # --- Kafka connection -------------------------------------------------------------
    bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        description="Kafka bootstrap servers. When this is the local default, the local "
        "broker is started on demand; any other value means an existing cluster.",
    )
    schema_registry_url: str | None = Field(
        None,
        description="Confluent-compatible schema registry. Unset: Avro single-object encoding. "
        "Credentials written in it (https://user:pass@host) are taken out, used as basic auth and never logged.",
    )

    # --- Security (client TLS/SASL; docs/security.md) ---------------------------------
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How every Kafka client (worker, sink, CLIs, admin, Connect) talks to the brokers: "
        "TLS (SSL, SASL_SSL) and/or SASL authentication (SASL_PLAINTEXT, SASL_SSL).",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = Field(
        None,
        description="SASL mechanism; required with SASL_PLAINTEXT/SASL_SSL. OAUTHBEARER fetches tokens from an "
        "OIDC token endpoint with the client-credentials grant (sasl_oauthbearer_*).",
    )
    sasl_username: str | None = Field(None, description="SASL user (PLAIN, SCRAM-SHA-256/512).")
    sasl_password: SecretStr | None = Field(None, description="SASL password (PLAIN, SCRAM-SHA-256/512).")
    sasl_oauthbearer_token_endpoint_url: str | None = Field(
        None, description="OAUTHBEARER: the OIDC token endpoint (client-credentials grant)."
    )
    sasl_oauthbearer_client_id: str | None = Field(None, description="OAUTHBEARER: the OIDC client id.")
    sasl_oauthbearer_client_secret: SecretStr | None = Field(None, description="OAUTHBEARER: the OIDC client secret.")
    sasl_oauthbearer_scope: str | None = Field(None, description="OAUTHBEARER: scope requested with the token.")
    ssl_ca_file: Path | None = Field(
        None,
        description="PEM file of the CA(s) that signed the brokers' certificates (SSL, SASL_SSL); "
        "unset: the system's trust store.",
    )
    ssl_cert_file: Path | None = Field(
        None, description="PEM client certificate for mutual TLS (with ssl_key_file; SSL, SASL_SSL)."
    )
    ssl_key_file: Path | None = Field(None, description="PEM private key of ssl_cert_file (mutual TLS).")
    ssl_key_password: SecretStr | None = Field(None, description="Password of an encrypted ssl_key_file.")
    ssl_check_hostname: bool = Field(
        True,
        description="Check that a broker's certificate names the host connected to. Turn off only for "
        "brokers whose certificates lack the right names (the chain is still verified).",
    )
    kafka_client_options: dict[str, str] = Field(
        {},
        description="Raw librdkafka properties applied last to every confluent-kafka client (sink, CLIs, "
        'admin), e.g. {"client.rack": "use1-az1"}. Overrides what the settings above derive: an escape hatch.',
    )
    aiokafka_client_options: dict[str, Any] = Field(
        {},
        description="Faust's client settings for the worker's aiokafka consumer and producer (the broker_*, "
        'consumer_* and producer_* settings of faust.App, e.g. {"producer_compression_type": "lz4"}); '
        "they override the worker's own. Another key is refused at start.",
    )
    schema_registry_username: str | None = Field(None, description="Schema registry basic-auth user.")
    schema_registry_password: SecretStr | None = Field(None, description="Schema registry basic-auth password.")
    schema_registry_ca_file: Path | None = Field(
        None, description="PEM CA file for an https schema registry; unset: the system's trust store."
    )
    schema_registry_cert_file: Path | None = Field(
        None, description="PEM client certificate for the schema registry (with schema_registry_key_file)."
    )
    schema_registry_key_file: Path | None = Field(None, description="PEM private key of schema_registry_cert_file.")

    # --- Source-system connectors (Kafka Connect, CDC, webhooks) -----------------------
    outbox_topics: tuple[str, ...] = Field(
        (),
        description="Topics carrying the OMS outbox as routed by Debezium's outbox event router; "
        "each record is turned into an input event (or a dead letter). Empty: no outbox bridge.",
    )

    webhook_token: SecretStr | None = Field(
        None,
        description="Bearer token the TMS/WMS webhook requires (POST /webhooks/...). Unset: the "
        "webhook answers 503 to everyone.",
    )
    webhook_max_bytes: int = Field(262_144, gt=0, description="Largest webhook body accepted (413 above).")
    produce_retry_for_s: float = Field(
        300.0,
        ge=1,
        description="How long `connectors.produce` keeps retrying a record the broker has not "
        "acknowledged (librdkafka message.timeout.ms) before it reports the line as not sent.",
    )

    # --- Operations: logging, secrets mounted as files ---------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO",
        description="Level of the root logger in every process (worker, read processes, CLIs); any case. "
        "A worker's `--loglevel` option overrides it for that worker.",
    )
    log_format: Literal["plain", "json"] = Field(
        "plain",
        description="`plain`: `[time] [pid] [LEVEL] logger: message` lines (Faust's layout). `json`: one JSON "
        "object per line with time (UTC, ISO 8601), level, logger, message and, for an exception, its traceback "
        "(config/logs.py); the worker then leaves out Faust's banner.",
    )
    secrets_dir: Path | None = Field(
        None,
        description="Folder of secrets mounted as files, one file per setting named like its variable in "
        "either case (`inventory_read_token` or `INVENTORY_READ_TOKEN`), its content the value (surrounding "
        "whitespace stripped). Read after the environment and `.env`. Unset: `/run/secrets` when that folder "
        "exists, otherwise none.",
    )

    # --- Local stack (development, tests, CI, demo) -----------------------------------
    local_dir: Path = Field(
        REPO_ROOT / ".local",
        description="Ignored folder for Maven-resolved jars, broker data and logs.",
    )
    kafka_version: str = Field(
        "4.1.2",
        description="org.apache.kafka:kafka_2.13 version resolved from Maven Central "
        "(4.1.2 is the newest 4.1.x there; 4.1.3 does not exist).",
    )
    kafka_heap: str = Field("-Xms256m -Xmx512m", description="Local broker JVM heap.")
    kafka_jvm_opts: str = Field(
        "-XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true",
        description="Extra JVM options of the local broker (see streams/local_kafka.py).",
    )
    local_kafka_port: int = Field(9092, description="Client port of the local broker (127.0.0.1).")
    local_controller_port: int = Field(9093, description="KRaft controller port of the local broker (127.0.0.1).")
    local_kafka_start_timeout_s: float = Field(
        60.0, gt=0, description="How long `start` waits for the local broker to answer."
    )
    java_bin: str = Field("java", description="Java 17+ executable for the local stack.")
    maven_bin: str = Field("mvn", description="Maven executable that resolves the jars.")
    registry_version: str = Field(
        "3.0.9",
        description="io.apicurio:apicurio-registry-app version of the local schema registry "
        "(3.0.9: the newest on Maven Central that runs on Java 17; 3.3.x needs Java 21).",
    )
    registry_port: int = Field(8081, description="Port of the local schema registry (127.0.0.1).")
    registry_heap: str = Field("-Xms64m -Xmx256m", description="Local schema registry JVM heap.")
    registry_jvm_opts: str = Field(
        "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true",
        description="Extra JVM options of the local schema registry (see connectors/local_registry.py).",
    )
    registry_start_timeout_s: float = Field(
        120.0, gt=0, description="How long `start` waits for the local registry to answer."
    )
    registry_compatibility: Literal[
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ] = Field("BACKWARD", description="Global compatibility level `start` sets on the local registry.")
    postgres_port: int = Field(
        55432, description="Port of the local PostgreSQL playing the OMS and ERP databases (127.0.0.1 only)."
    )
    postgres_start_timeout_s: float = Field(60.0, gt=0, description="How long `start` waits for the local PostgreSQL.")
    connect_rest_port: int = Field(8083, description="REST port of the local Kafka Connect worker (127.0.0.1 only).")
    connect_group_id: str = Field(
        "inventory-connect",
        description="Group id of the local Connect worker; also names its config/offset/status topics.",
    )
    connect_debezium_version: str = Field(
        "3.4.3.Final", description="io.debezium plugin archives from Maven Central (built against Kafka 4.1.1)."
    )
    connect_apicurio_converter_version: str = Field(
        "2.6.13.Final", description="io.apicurio:apicurio-registry-utils-converter for the ERP sinks."
    )
    connect_heap: str = Field("-Xms128m -Xmx768m", description="Local Connect worker JVM heap.")
    connect_start_timeout_s: float = Field(
        120.0, gt=0, description="How long `start` waits for Connect's REST API and plugins."
    )

    # --- Topics -----------------------------------------------------------------------
    topic_prefix: str = Field("", description="Prefix for every topic name (multi-tenant).")
    partitions: int = Field(4, ge=1, description="Partitions of input and internal topics.")
    replication_factor: int | None = Field(
        None,
        ge=1,
        description="Replicas of every topic the pipeline creates, the tables' changelogs included. Unset: 1 when "
        "every bootstrap server is on loopback (the local broker, a test's own), 3 otherwise (with "
        "min_insync_replicas 2, writes go on through the loss of one broker).",
    )

    # --- Worker -----------------------------------------------------------------------
    app_id: str = Field(
        "inventory-center",
        description="Faust application id: the consumer group of the workers and the prefix of their changelog "
        "topics. Workers of one deployment share it; two deployments on one cluster need different ones.",
    )
    web_host: str = Field("127.0.0.1", description="Host in the worker's canonical URL (what other workers call).")
    web_bind: str = Field(
        "127.0.0.1", description="Interface the worker's web server listens on (Faust's default is every interface)."
    )
    web_port: int = Field(6066, description="Port of the worker's web server (views, webhooks, /metrics, /ready).")
    read_token: SecretStr | None = Field(
        None,
        description="Bearer token every read view needs (inventory, orders, metrics, the live feed, the dashboard "
        "and its files, OpenAPI; not /health, /ready or the webhooks). Unset: the views are open, the local "
        "default behind web_bind=127.0.0.1; set it whenever the port is reachable beyond loopback.",
    )
    reader_port: int = Field(6070, description="Port of the read processes (python -m streams.reader).")
    reader_processes: int = Field(
        1, ge=1, description="Read processes started by python -m streams.reader, sharing reader_port (SO_REUSEPORT)."
    )
    debug_views: bool = Field(
        False, description="Serve /debug/consumer and Faust's /table views (raw table data); off: 404."
    )
    data_dir: Path = Field(REPO_ROOT / ".local" / "worker", description="Faust data directory.")
    rocksdb_block_cache_bytes: int = Field(
        8 * 1024 * 1024, description="Block cache per table partition (Faust default: 2 GiB)."
    )
    rocksdb_write_buffer_bytes: int = Field(
        4 * 1024 * 1024, description="Memtable size per table partition (Faust default: 64 MB)."
    )
    rocksdb_max_write_buffers: int = Field(
        2, description="Memtables per table partition (Faust default: 3); memory is about this times the size."
    )
    expiry_check_interval_s: float = Field(
        1.0, gt=0, description="How often the expiry timer looks for unpaid reservations that came due (wall seconds)."
    )
    expiry_grace_s: float = Field(
        300.0,
        ge=0,
        description="Event-time grace of reservation expiry: an order due at dueAt is ticked once its "
        "partition's watermark (the latest occurredAt its order agent read) reaches dueAt + this. How late a payment "
        "may be read behind later events of the other topics without its order expiring first (one read later still "
        "re-opens the order: docs/inventory-model.md).",
    )
    expiry_wall_clock_fallback_s: float = Field(
        900.0,
        gt=0,
        description="Wall-clock fallback of reservation expiry, for a quiet partition: an order due at "
        "dueAt is ticked once the wall clock reaches dueAt + this and the partition's watermark has not moved for "
        "this long (a replay or backlog read at full speed keeps it moving). At least expiry_grace_s.",
    )
    batch_max_events: int = Field(
        1000, ge=1, description="Most messages an agent applies as one transaction (one redo record, coalesced writes)."
    )
    batch_within_s: float = Field(
        0.01, gt=0, description="How long an agent waits for a batch to fill: the latency a quiet stream pays per hop."
    )
    batch_max_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description="A transaction is committed early once its writes and outputs reach this size "
        "(its redo record must stay under the broker's 1 MB record limit).",
    )
    record_max_bytes: int = Field(
        1_000_000,
        ge=65_536,
        description="Largest record the worker writes (its producer's message.max.bytes; "
        "the broker's own default limit is 1,048,588 per batch). A message whose writes and outputs would not fit in "
        "one transaction record under it (with batch_max_bytes already staged) is dead-lettered as TOO_LARGE.",
    )
    consumer_max_fetch_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1_048_588,
        description="Most bytes fetched per partition per request (at least the "
        "broker's largest record, so that the largest record a source system may write is always read).",
    )
    dead_letter_excerpt_bytes: int = Field(
        16_384,
        ge=0,
        le=262_144,
        description="How much of a bad record's key and value a dead letter copies (with "
        "the value's full size and SHA-256): a dead letter always fits under the broker's record limit.",
    )
    session_timeout_s: float = Field(
        6.0,
        gt=0,
        description="A worker silent this long is declared dead and its partitions move: the "
        "detection part of a takeover. 6 s is the broker's default group.min.session.timeout.ms (the least it "
        "accepts); the consumer heartbeats from its own thread, so a busy event loop does not stop it.",
    )
    heartbeat_interval_s: float = Field(
        2.0,
        gt=0,
        description="Heartbeat period; a third of the session timeout, as Kafka advises (three "
        "heartbeats may be lost before the worker is declared dead).",
    )
    standby_replicas: int = Field(
        1,
        ge=0,
        description="Standby copies of each table partition kept on other workers (Faust's "
        "table_standby_replicas): a standby follows the changelog, so a worker that takes a partition over "
        "resumes from it instead of reading the whole changelog. Needs as many more workers; 0: none.",
    )
    receipt_retention_days: int = Field(
        7,
        ge=1,
        description=(
            "Days of event time each partition remembers the messages it applied (receipts, document receipts, "
            "settled inbound documents), counted back from the newest occurredAt it applied; older ones are pruned "
            "in the same transactions. A message with no receipt that occurred before that horizon is refused "
            "(ANOMALY): it may have been applied already. Keep it longer than any backlog the worker may have to "
            "drain (tables/retention.py)."
        ),
    )

    # --- Advertised URL and production topic settings (issue 16) -----------------------
    advertised_url: str | None = Field(
        None,
        description="The URL other workers reach this worker at (e.g. http://worker-3.internal:6066): table "
        "routing forwards a request for a key this worker owns to it. Set it whenever web_bind is every interface "
        "(0.0.0.0 or ::): such a worker refuses to start without it. Unset: http://<web_host>:<web_port>.",
    )
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of every topic the pipeline creates (the producers write with acks=all, "
        "so a write needs this many replicas). At most replication_factor. Unset: 1 when every bootstrap server "
        "is on loopback, otherwise 2 (1 when the replication factor is below 3).",
    )
    align_topic_configs: bool = Field(
        True,
        description="At start, set the declared config keys (cleanup, retention, segments, min.insync.replicas) on "
        "existing topics the pipeline owns whose value differs, each change logged at WARNING; min.insync.replicas "
        "is never raised above a topic's replica count. Partitions and replication factor are only reported. "
        "false: every difference is only reported (topics managed elsewhere, e.g. by an operator or Terraform).",
    )

    # --- Metrics and dashboard --------------------------------------------------------
    dead_letters_shown: int = Field(
        50,
        ge=0,
        le=1000,
        description="Dead letters each worker keeps in memory, newest first, for the dashboard and "
        "GET /dead-letters/latest (those it wrote since it started; the dead-letter topic keeps them all).",
    )

    # --- Core policy ------------------------------------------------------------------
    warehouse_priority: tuple[str, ...] = Field(
        (), description="Tie-break order for source selection; unlisted warehouses come last."
    )
    split_lines: bool = Field(
        True,
        description=(
            "A NORMAL or GIFT line that names no warehouse and that no single warehouse can fill is reserved "
            "across several (fewest warehouses first: most available first, ties by warehouse_priority, then "
            "code); false: such a line is rejected."
        ),
    )
    default_reorder_point: int = Field(10, ge=0, description="LOW_STOCK fires when availableQty crosses below this.")
    count_history: int = Field(
        64,
        ge=1,
        description=(
            "On-hand movements each position remembers (12 bytes each, in every SKU record) to net a "
            "stock count read after movements that happened after it; an older count is reported, not applied."
        ),
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """pydantic-settings' order (arguments, environment, ``.env``, secrets files), with the
        secrets folder itself a setting: ``secrets_dir`` from the first three sources, else
        ``DEFAULT_SECRETS_DIR`` if it exists. The folder chosen is also the field's value."""
        chosen = _secrets_dir(init_settings, env_settings, dotenv_settings)
        secrets = SecretsSettingsSource(settings_cls, secrets_dir=chosen)
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            secrets,
            InitSettingsSource(settings_cls, init_kwargs={"secrets_dir": chosen}),
        )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _fallback_after_grace(self) -> Self:
        if self.expiry_wall_clock_fallback_s < self.expiry_grace_s:
            raise ValueError("expiry_wall_clock_fallback_s must be at least expiry_grace_s")
        return self

    @field_validator("advertised_url")
    @classmethod
    def _advertised_url_is_reachable(cls, url: str | None) -> str | None:
        if url is None:
            return None
        problem = url_problem(url)
        if problem:
            raise ValueError(problem)
        return url.rstrip("/")

    @model_validator(mode="after")
    def _min_insync_within_replication(self) -> Self:
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                f"min_insync_replicas ({self.topic_min_insync_replicas}) must be at most replication_factor "
                f"({self.topic_replication_factor}): no write could ever be acknowledged"
            )
        return self

    @property
    def bootstrap_on_loopback(self) -> bool:
        """Every bootstrap server is on this machine's loopback: a single local broker (the local
        stack's, or a test's private one on other ports, or a secured one), never a cluster that
        survives a broker loss."""
        hosts = [server.strip().rsplit(":", 1)[0].strip("[]") for server in self.bootstrap_servers.split(",")]
        return all(host == "localhost" or _is_loopback(host) for host in hosts)

    @property
    def topic_replication_factor(self) -> int:
        """``replication_factor``, or its default: 1 on a loopback broker, 3 otherwise."""
        if self.replication_factor is not None:
            return self.replication_factor
        return 1 if self.bootstrap_on_loopback else 3

    @property
    def topic_min_insync_replicas(self) -> int:
        """``min_insync_replicas``, or its default: 1 on a loopback broker, otherwise 2 (1 below 3 replicas)."""
        if self.min_insync_replicas is not None:
            return self.min_insync_replicas
        return 1 if self.bootstrap_on_loopback or self.topic_replication_factor < 3 else 2

    @property
    def worker_url(self) -> str:
        """The URL other workers reach this one at (Faust's canonical_url): ``advertised_url``, or
        ``http://<web_host>:<web_port>``."""
        if self.advertised_url is not None:
            return self.advertised_url
        host = f"[{self.web_host}]" if ":" in self.web_host else self.web_host
        return f"http://{host}:{self.web_port}"

    def worker_url_problem(self) -> str | None:
        """Why a worker with these settings must not start (one line naming the setting), or None:
        it listens on every interface and advertises nothing, or its derived URL has no reachable host."""
        if self.advertised_url is None and is_every_interface(self.web_bind):
            return (
                f"INVENTORY_ADVERTISED_URL is unset while INVENTORY_WEB_BIND={self.web_bind or '(empty)'} listens on "
                "every interface: set it to the URL other workers reach this one at "
                f"(e.g. http://worker-3.internal:{self.web_port})"
            )
        problem = url_problem(self.worker_url)
        if problem:
            return f"INVENTORY_ADVERTISED_URL is unset and the URL derived from INVENTORY_WEB_HOST {problem}"
        return None

    @model_validator(mode="after")
    def _client_security(self) -> Self:
        problems = security_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def uses_local_broker(self) -> bool:
        """True when the settings point at the embedded local broker, not a real cluster."""
        return self.bootstrap_servers == f"127.0.0.1:{self.local_kafka_port}" and self.security_protocol == "PLAINTEXT"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_every_interface(host: str) -> bool:
    """True for a bind address meaning every interface: empty, ``0.0.0.0``, ``::``."""
    if not host.strip("[]"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """What keeps ``url`` from being a worker's advertised URL (another worker calls it), or None.

    ``http://`` with a host that is not an every-interface address, an optional port, no path,
    query or fragment. Not https: the worker serves plain HTTP, and Faust's table routing forwards
    a request with the scheme it arrived with (faust/app/router.py ``_route_req``), so an https
    URL would not be called as written."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as exc:
        return f"{url!r} is not a URL ({exc})"
    if parts.scheme != "http":
        why = " (the worker serves plain HTTP; Faust's router forwards in the scheme a request came in)"
        return f"{url!r} must start with http://{why if parts.scheme == 'https' else ''}"
    if not parts.hostname:
        return f"{url!r} names no host"
    if is_every_interface(parts.hostname):
        return f"{url!r} names every interface ({parts.hostname}), which no other worker can call"
    if parts.path.strip("/") or parts.query or parts.fragment:
        return f"{url!r} must be scheme, host and port only (Faust's router keeps no path)"
    return None


def url_with_port(url: str, port: int) -> str:
    """``url`` (scheme and host only) with another port: a process beside the worker, on its host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def settings_errors(exc: ValidationError) -> list[str]:
    """One line per invalid setting, named as its environment variable (for an entry point that
    refuses to start)."""
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        field = "_".join(str(part) for part in error["loc"][:1]).upper()
        lines.append(f"INVENTORY_{field}: {message}" if field else message)
    return lines


def _secrets_dir(*sources: PydanticBaseSettingsSource) -> Path | None:
    """The secrets folder the first source naming ``secrets_dir`` gives, or the platform's
    default when it exists; a folder named but missing is an error, not a silent default."""
    for source in sources:
        value = source().get("secrets_dir")
        if value:
            path = Path(os.fspath(value)).expanduser()
            if not path.is_dir():
                raise SettingsError(f"secrets_dir {path} is not a directory")
            return path
    return DEFAULT_SECRETS_DIR if DEFAULT_SECRETS_DIR.is_dir() else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def security_problems(settings: Settings) -> list[str]:
    """What is inconsistent in the client security settings (empty when they hold together)."""
    s = settings
    problems: list[str] = []
    sasl = s.security_protocol.startswith("SASL_")
    tls = s.security_protocol.endswith("SSL")
    if sasl and s.sasl_mechanism is None:
        problems.append(f"security_protocol={s.security_protocol} needs sasl_mechanism")
    if not sasl and s.sasl_mechanism is not None:
        problems.append(f"sasl_mechanism is set but security_protocol={s.security_protocol} uses no SASL")
    if sasl and s.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        if not s.sasl_username or s.sasl_password is None:
            problems.append(f"sasl_mechanism={s.sasl_mechanism} needs sasl_username and sasl_password")
    if sasl and s.sasl_mechanism == "OAUTHBEARER":
        missing = [
            name
            for name in (
                "sasl_oauthbearer_token_endpoint_url",
                "sasl_oauthbearer_client_id",
                "sasl_oauthbearer_client_secret",
            )
            if getattr(s, name) is None
        ]
        if missing:
            problems.append(f"sasl_mechanism=OAUTHBEARER needs {', '.join(missing)} (OIDC client credentials)")
    tls_files = ("ssl_ca_file", "ssl_cert_file", "ssl_key_file", "ssl_key_password")
    if not tls and any(getattr(s, name) is not None for name in tls_files):
        problems.append(f"ssl_* files are set but security_protocol={s.security_protocol} uses no TLS")
    if (s.ssl_cert_file is None) != (s.ssl_key_file is None):
        problems.append("mutual TLS needs both ssl_cert_file and ssl_key_file")
    if s.ssl_key_password is not None and s.ssl_key_file is None:
        problems.append("ssl_key_password is set without ssl_key_file")
    if (s.schema_registry_cert_file is None) != (s.schema_registry_key_file is None):
        problems.append("the schema registry's client certificate needs both schema_registry_cert_file and _key_file")
    if (s.schema_registry_username is None) != (s.schema_registry_password is None):
        problems.append("schema registry basic auth needs both schema_registry_username and _password")
    for name in (*tls_files[:3], "schema_registry_ca_file", "schema_registry_cert_file", "schema_registry_key_file"):
        path = getattr(s, name)
        if path is not None and not Path(path).is_file():
            problems.append(f"{name}={path} is not a readable file")
    return problems
