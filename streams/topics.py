"""The pipeline's topics for one deployment: the declarations (schemas/topics.py) with the
deployment's prefix, the tables' changelogs, and their creation.

Topics are created explicitly (``create_topics``) before the worker starts; the broker's
auto-creation is off. Input and internal topics that feed one table share a partition
count, so that Faust co-partitions them. Every topic gets the deployment's replication factor
and min.insync.replicas (config/settings.py). An existing topic the pipeline owns that differs
from its declaration (partitions, replication factor, a declared config key) is reported, one
WARNING line per difference, at every worker start and by ``python -m streams.topics``; only
config keys are ever set back to the declaration (``align_topic_configs``), each one logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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

    def durability(self) -> dict[str, str]:
        """The config every topic the pipeline creates carries beside its declaration."""
        return {"min.insync.replicas": str(self.settings.topic_min_insync_replicas)}

    def changelog_config(self) -> dict[str, str]:
        """A table changelog's config (also handed to Faust, which declares the changelogs too)."""
        return {**CHANGELOG, **self.durability()}

    def owned(self) -> dict[str, tuple[int, dict[str, str]]]:
        """The pipeline's own topics (declared in schemas/topics.py, and the changelogs): name ->
        (partitions, config). Their config is the declaration's, also when they exist."""
        out = {
            self.name(s): (s.partitions or self.settings.partitions, {**s.config, **self.durability()})
            for s in self.specs
        }
        for table in TABLES:
            out[self.changelog(table)] = (self.settings.partitions, self.changelog_config())
        return out

    def all(self) -> dict[str, tuple[int, dict[str, str]]]:
        """Every topic to create: name -> (partitions, config)."""
        out = self.owned()
        # The OMS outbox topics Debezium writes: created here too, so that a worker started
        # before the connector does not wait on a topic that does not exist yet (their
        # config is not ours to change afterwards, nor to report on).
        for name in self.settings.outbox_topics:
            out.setdefault(name, (self.settings.partitions, {**RETAINED, **self.durability()}))
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


@dataclass(frozen=True)
class TopicState:
    """An existing topic as the broker describes it."""

    partitions: int
    replication_factor: int  # the fewest replicas of any of its partitions
    config: Mapping[str, str | None]  # effective values, broker defaults included


@dataclass(frozen=True)
class TopicDrift:
    """One way an existing topic differs from its declaration. ``setting`` is ``partitions``,
    ``replication.factor`` or a declared config key; ``actual`` None: the broker reports no value."""

    topic: str
    setting: str
    declared: str
    actual: str | None

    @property
    def config_key(self) -> bool:
        """A config key (an alter can set it), not partitions or the replication factor."""
        return self.setting not in ("partitions", "replication.factor")

    def line(self, outcome: str) -> str:
        was = f"{self.setting} is {self.actual}, declared {self.declared}"
        return f"topic {self.topic} differs from its declaration: {was}; {outcome}"


def compare_topics(
    declared: Mapping[str, tuple[int, Mapping[str, str]]], replication_factor: int, existing: Mapping[str, TopicState]
) -> list[TopicDrift]:
    """Every difference between the declared topics (name -> (partitions, config)) that exist and
    their state: partitions, replication factor, then each declared config key, in name order.
    Keys the declaration does not name are not compared; topics that do not exist are not reported."""
    drifts = []
    for name in sorted(declared.keys() & existing.keys()):
        partitions, config = declared[name]
        state = existing[name]
        if state.partitions != partitions:
            drifts.append(TopicDrift(name, "partitions", str(partitions), str(state.partitions)))
        if state.replication_factor != replication_factor:
            replicas = str(state.replication_factor)
            drifts.append(TopicDrift(name, "replication.factor", str(replication_factor), replicas))
        drifts.extend(
            TopicDrift(name, key, value, state.config.get(key))
            for key, value in sorted(config.items())
            if state.config.get(key) != value
        )
    return drifts


def alignable(drift: TopicDrift, state: TopicState) -> str | None:
    """Why ``drift`` must be left as it is, or None when an alter may set the declared value:
    partitions and replication factor are never changed (more partitions move keys between
    partitions, fewer cannot be; replicas need a reassignment plan), and min.insync.replicas is
    never set above the topic's replicas (every write with acks=all would be refused)."""
    if not drift.config_key:
        return "left as is (change it with the cluster's own tools)"
    if drift.setting == "min.insync.replicas" and int(drift.declared) > state.replication_factor:
        return f"left as is (the topic has {state.replication_factor} replicas)"
    return None


def describe_topics(admin: Any, names: Iterable[str], timeout_s: float = 30.0) -> dict[str, TopicState]:
    """The state of those of ``names`` that exist: partitions, replicas and effective config."""
    from confluent_kafka.admin import ConfigResource

    metadata = admin.list_topics(timeout=timeout_s).topics
    present = sorted(n for n in set(names) if n in metadata and metadata[n].error is None)
    if not present:
        return {}
    described = admin.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, n) for n in present], request_timeout=timeout_s
    )
    configs = {resource.name: future.result() for resource, future in described.items()}
    return {
        name: TopicState(
            partitions=len(metadata[name].partitions),
            replication_factor=min((len(p.replicas) for p in metadata[name].partitions.values()), default=0),
            config={k: entry.value for k, entry in configs[name].items()},
        )
        for name in present
    }


def topic_drift(settings: Settings, admin: Any | None = None, timeout_s: float = 30.0) -> list[TopicDrift]:
    """The existing topics the pipeline owns that differ from their declaration (nothing is changed)."""
    declared = Topics(settings).owned()
    admin = admin or _admin(settings)
    return compare_topics(declared, settings.topic_replication_factor, describe_topics(admin, declared, timeout_s))


def align_topic_configs(
    settings: Settings, admin: Any, drifts: list[TopicDrift], states: Mapping[str, TopicState], timeout_s: float = 30.0
) -> dict[TopicDrift, str]:
    """Report each of ``drifts``, one WARNING line each, and with ``align_topic_configs`` set the
    declared value of those an alter may set (``alignable``), key by key (other keys are left
    alone): drift -> its outcome, as logged. A topic the broker refuses to alter is left as it
    is (e.g. no AlterConfigs permission): its data is unharmed."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    outcomes: dict[TopicDrift, str] = {}
    to_set: dict[str, list[TopicDrift]] = {}
    for drift in drifts:
        refusal = alignable(drift, states[drift.topic])
        if refusal is not None:
            outcomes[drift] = refusal
        elif not settings.align_topic_configs:
            outcomes[drift] = "left as is (align_topic_configs is off)"
        else:
            to_set.setdefault(drift.topic, []).append(drift)
    if to_set:
        altered = admin.incremental_alter_configs(
            [
                ConfigResource(
                    ConfigResource.Type.TOPIC,
                    name,
                    incremental_configs=[
                        ConfigEntry(d.setting, d.declared, incremental_operation=AlterConfigOpType.SET) for d in diffs
                    ],
                )
                for name, diffs in sorted(to_set.items())
            ],
            request_timeout=timeout_s,
        )
        for resource, future in altered.items():
            try:
                future.result()
                outcome = "set to the declared value"
            except Exception as exc:  # noqa: BLE001 - e.g. no AlterConfigs permission: run as it is
                outcome = f"left as is (the broker refused the change: {exc})"
            for drift in to_set[resource.name]:
                outcomes[drift] = outcome
    for drift in drifts:
        log.warning("%s", drift.line(outcomes[drift]))
    return outcomes


def _admin(settings: Settings) -> Any:
    from confluent_kafka.admin import AdminClient

    from streams.kafka_config import admin_config

    return AdminClient(admin_config(settings))


def create_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create every missing topic with its partitions, replication factor and config; report
    each way an existing topic the pipeline owns differs from its declaration (one WARNING line
    each, ``align_topic_configs``); return the topics created."""
    from confluent_kafka.admin import NewTopic

    topics = Topics(settings)
    admin = _admin(settings)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    declared = topics.owned()
    states = describe_topics(admin, existing & declared.keys(), timeout_s)
    drifts = compare_topics(declared, settings.topic_replication_factor, states)
    align_topic_configs(settings, admin, drifts, states, timeout_s)
    wanted = {n: v for n, v in topics.all().items() if n not in existing}
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=parts, replication_factor=settings.topic_replication_factor, config=cfg)
            for name, (parts, cfg) in wanted.items()
        ],
        operation_timeout=timeout_s,
    )
    created: list[str] = []
    failed: list[tuple[str, Exception]] = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except Exception as exc:  # an existing topic is fine: another process won the race
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                failed.append((name, exc))
    if failed:
        first, error = failed[0]
        hint = (
            ": set INVENTORY_REPLICATION_FACTOR to at most the cluster's brokers"
            if "INVALID_REPLICATION_FACTOR" in str(error)
            else ""
        )
        raise TopicsNotCreated(
            f"{len(failed)} topics could not be created (replication factor {settings.topic_replication_factor}), "
            f"e.g. {first}: {_reason(error).rstrip('.')}{hint}"
        )
    return created


def _reason(exc: Exception) -> str:
    error = exc.args[0] if exc.args else None  # a KafkaException carries a KafkaError
    return str(error.str()) if error is not None and hasattr(error, "str") else str(exc)


class TopicsNotCreated(RuntimeError):
    """Topics the pipeline needs could not be created (one line saying why)."""


EXIT_DRIFT = 1  # `check` found a topic that differs from its declaration


def main(argv: list[str] | None = None) -> int:
    """``python -m streams.topics [check|create]``: report (and with ``create`` also create and
    align, as a worker's start does) the pipeline's topics."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m streams.topics",
        description="The pipeline's topics against their declaration (schemas/topics.py, config/settings.py). "
        "check (the default): print one WARNING line per way an existing topic differs (partitions, replication "
        f"factor, a declared config key), change nothing, exit {EXIT_DRIFT} if any does. create: what a worker "
        "does at start - create the missing topics, report every difference and set the declared config keys "
        "(align_topic_configs). Settings come from INVENTORY_* variables.",
    )
    parser.add_argument("command", nargs="?", choices=("check", "create"), default="check")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from config.settings import get_settings

    settings = get_settings()
    if args.command == "create":
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        try:
            created = create_topics(settings)
        except TopicsNotCreated as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"{len(created)} topics created{': ' if created else ''}{', '.join(sorted(created))}")
        return 0
    drifts = topic_drift(settings)
    for drift in drifts:
        print(f"WARNING {drift.line('not changed (check)')}")
    print(f"{len(Topics(settings).owned())} topics declared, {len(drifts)} differences")
    return EXIT_DRIFT if drifts else 0


if __name__ == "__main__":
    raise SystemExit(main())
