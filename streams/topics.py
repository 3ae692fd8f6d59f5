"""The pipeline's topics for one deployment: the declarations (schemas/topics.py) with the
deployment's prefix, the tables' changelogs, and their creation.

Topics are created explicitly (``create_topics``) before the worker starts; the broker's
auto-creation is off. Input and internal topics that feed one table share a partition
count, so that Faust co-partitions them. A topic that exists with another config than its
declaration gets the declared keys set (the same call, at every worker start).
"""

from __future__ import annotations

import logging
from typing import Any

from config.settings import Settings
from schemas.topics import COMPACTED, DAY_MS, HOUR_MS, RETAINED, SPECS, TopicSpec

log = logging.getLogger(__name__)

# The tables' changelogs: compaction never touches a partition's active segment, and the
# defaults roll it after 7 days or 1 GiB, so every write stayed that long and a restore
# re-read history. Rolled hourly, a segment is cleaned once 10% of the log is dirty (pruned
# receipts, overwritten records); a tombstone stays a day after its segment is cleaned, so a
# restoring reader (minutes) sees the deletes - a local store older than that cannot resume
# from its offset. min.compaction.lag.ms keeps the last minute's writes as written.
CHANGELOG = {
    **COMPACTED,
    "segment.ms": str(HOUR_MS),
    "segment.bytes": str(64 * 1024 * 1024),
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": str(DAY_MS),
}


# Table name -> the source topic whose partitions it follows. Each partition family keeps all
# its records in ONE table (key prefixes tell them apart), so that everything one message
# writes goes to one changelog partition, in order: a crash can cut a transaction short but
# never reorder it (see streams/stores.py). Changelogs are compacted, never time-retained:
# Faust's recovery stalls on deleted changelog segments.
TABLES: dict[str, str] = {
    "order-state": "orders",
    "stock-state": "stock-commands",
}


class Topics:
    """Resolved topic names for one deployment (prefix applied)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.specs = SPECS
        p = settings.topic_prefix
        self.orders = f"{p}orders"
        self.shipments = f"{p}shipments"
        self.stock_movements = f"{p}stock-movements"
        self.order_inbox = f"{p}order-inbox"
        self.stock_commands = f"{p}stock-commands"
        self.inventory_changes = f"{p}inventory-changes"
        self.order_status = f"{p}order-status"
        self.outbound_instructions = f"{p}outbound-instructions"
        self.inventory_ledger = f"{p}inventory-ledger"
        self.inventory_alerts = f"{p}inventory-alerts"
        self.dead_letters = f"{p}dead-letters"

    def name(self, spec: TopicSpec) -> str:
        return f"{self.settings.topic_prefix}{spec.name}"

    def changelog(self, table: str) -> str:
        return f"{self.settings.app_id}-{table}-changelog"

    def owned(self) -> dict[str, tuple[int, dict[str, str]]]:
        """The pipeline's own topics (declared in schemas/topics.py, and the changelogs): name ->
        (partitions, config). Their config is the declaration's, also when they exist."""
        out = {self.name(s): (s.partitions or self.settings.partitions, s.config) for s in self.specs}
        for table in TABLES:
            out[self.changelog(table)] = (self.settings.partitions, CHANGELOG)
        return out

    def all(self) -> dict[str, tuple[int, dict[str, str]]]:
        """Every topic to create: name -> (partitions, config)."""
        out = self.owned()
        # The OMS outbox topics Debezium writes: created here too, so that a worker started
        # before the connector does not wait on a topic that does not exist yet (their
        # config is not ours to change afterwards).
        for name in self.settings.outbox_topics:
            out.setdefault(name, (self.settings.partitions, RETAINED))
        return out

    def input_for(self, record_name: str) -> str:
        for spec in self.specs:
            if spec.role == "input" and record_name in spec.records:
                return self.name(spec)
        raise KeyError(f"{record_name} is not an input event")

    def outputs(self) -> list[str]:
        return [self.name(s) for s in self.specs if s.role == "output"]


# Orders and shipments are keyed by orderNo, so that the order agent's three input topics
# co-partition. Stock movements are keyed by warehouse: one warehouse's WMS events stay in the
# order the WMS published them (a count never overtakes the receipts it counted). A transfer's
# dispatch is keyed by the sending warehouse, its receipt by the receiving one.
# A SKU-wide planner setting (no warehouse) is keyed by its SKU.
MOVEMENT_KEY_FIELDS = ("warehouse_code", "from_warehouse_code", "to_warehouse_code", "sku")


def input_key(event: object) -> str:
    """The topic key of an input event."""
    from schemas.inputs import MOVEMENT_EVENTS

    fields = MOVEMENT_KEY_FIELDS if isinstance(event, MOVEMENT_EVENTS) else ("order_no",)
    for name in fields:
        value = getattr(event, name, None)
        if isinstance(value, str):
            return value
    raise ValueError(f"{type(event).__name__} has no key field")


def config_changes(current: dict[str, str | None], declared: dict[str, str]) -> dict[str, str]:
    """The declared keys whose value in ``current`` (a topic's effective config) differs."""
    return {k: v for k, v in declared.items() if current.get(k) != v}


def align_topic_configs(
    settings: Settings, admin: Any, names: set[str], timeout_s: float = 30.0
) -> dict[str, dict[str, str]]:
    """Set the declared config keys of those of ``names`` (existing topics the pipeline owns)
    whose config differs, with incremental alters (keys not declared are left alone); return
    what was set: name -> {key: value}. A topic the broker refuses to alter is logged and
    left as it is: its data is unharmed, only compaction lags."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    declared = {n: cfg for n, (_, cfg) in Topics(settings).owned().items() if n in names and cfg}
    if not declared:
        return {}
    described = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, n) for n in sorted(declared)], request_timeout=timeout_s
    )
    changes: dict[str, dict[str, str]] = {}
    for resource, future in described.items():
        current = {k: entry.value for k, entry in future.result().items()}
        diff = config_changes(current, declared[resource.name])
        if diff:
            changes[resource.name] = diff
    if not changes:
        return {}
    altered = admin.incremental_alter_configs(
        [
            ConfigResource(
                ConfigResource.Type.TOPIC,
                name,
                incremental_configs=[
                    ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in diff.items()
                ],
            )
            for name, diff in sorted(changes.items())
        ],
        request_timeout=timeout_s,
    )
    for resource, future in altered.items():
        try:
            future.result()
            log.warning("topic %s differed from its declaration: set %s", resource.name, changes[resource.name])
        except Exception as exc:  # noqa: BLE001 - e.g. no AlterConfigs permission: run as it is
            log.error("topic %s differs from its declaration and could not be altered: %s", resource.name, exc)
            changes.pop(resource.name)
    return changes


def create_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create every missing topic with its partitions and config, and give the existing ones
    the pipeline owns their declared config (``align_topic_configs``); return those created."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from streams.kafka_config import admin_config

    topics = Topics(settings)
    admin = AdminClient(admin_config(settings))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    align_topic_configs(settings, admin, existing, timeout_s)
    wanted = {n: v for n, v in topics.all().items() if n not in existing}
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=parts, replication_factor=settings.replication_factor, config=cfg)
            for name, (parts, cfg) in wanted.items()
        ],
        operation_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except Exception as exc:  # an existing topic is fine: another process won the race
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created
