"""The one typed settings object of the inventory center.

Every knob lives here; nothing else in the codebase reads ``os.environ``. Values come, first
found wins, from the constructor's arguments, the environment (prefix ``INVENTORY_``), a ``.env``
file in the working directory, then the secrets directory (``secrets_dir``: one file per
setting, named like its variable, ``inventory_read_token``), and are passed down explicitly.
Secrets are ``SecretStr`` and never logged. ``python -m config.settings_doc`` writes the table
of every field into README.md.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
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

    model_config = SettingsConfigDict(env_prefix="INVENTORY_", env_file=".env", extra="ignore", frozen=True)

    # --- Kafka connection -------------------------------------------------------------
    bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        description="Kafka bootstrap servers. When this is the local default, the local "
        "broker is started on demand; any other value means an existing cluster.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    schema_registry_url: str | None = Field(
        None,
        description="Confluent-compatible schema registry. Unset: Avro single-object encoding.",
    )

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
    replication_factor: int = Field(1, ge=1)

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

    @property
    def uses_local_broker(self) -> bool:
        """True when the settings point at the embedded local broker, not a real cluster."""
        return self.bootstrap_servers == f"127.0.0.1:{self.local_kafka_port}" and self.security_protocol == "PLAINTEXT"


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
