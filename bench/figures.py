"""The benchmark's arithmetic: which role a topic plays, and the figures a stage yields. Pure (no
Kafka, clock or files), tested as plain functions; the I/O that feeds it is bench/broker.py.

* ``TopicRoles.role(name)``: ``input`` | ``internal`` | ``output`` | ``changelog`` | ``other``
  (declared names first, then prefix/suffix patterns, else ``other``).
* ``Stage``: records per role counted on the broker, messages consumed, a window, CPU seconds of
  the processing processes and of the broker. *Produced* = internal + output + changelog + other
  records; *consumed* = input + internal records, except for the limit, which says what it read.
* ``derive(stage)``: rates, per-order figures, CPU in µs; ``None`` for a missing or zero
  denominator. ``record_ops_per_s`` = (consumed + produced) / seconds, the unit of the
  pipeline/limit ratio. ``verdict(value, goal, higher_is_better)``: met, or missed by how much.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ROLES = ("input", "internal", "output", "changelog")
PRODUCED_ROLES = ("internal", "output", "changelog", "other")


@dataclass(frozen=True)
class TopicRoles:
    """Topic name -> role, for one deployment: exact names, then (prefix, suffix) patterns."""

    declared: Mapping[str, str]
    patterns: tuple[tuple[str, str, str], ...] = ()  # (prefix, suffix, role)

    def role(self, topic: str) -> str:
        if topic in self.declared:
            return self.declared[topic]
        for prefix, suffix, role in self.patterns:
            if topic.startswith(prefix) and topic.endswith(suffix):
                return role
        return "other"

    def by_role(self, counts: Mapping[str, int]) -> dict[str, int]:
        """Per-topic counts summed per role (every role present, zero when none)."""
        out = dict.fromkeys((*ROLES, "other"), 0)
        for topic, n in counts.items():
            role = self.role(topic)
            out[role] += n
        return out


def pipeline_roles(declared: Mapping[str, str], app_id: str) -> TopicRoles:
    """Our pipeline: the roles of schemas/topics.py's declarations (prefix applied), and
    every ``<app_id>-<table>-changelog`` a changelog."""
    return TopicRoles(dict(declared), ((f"{app_id}-", "-changelog", "changelog"),))


def peer_roles(inputs: Iterable[str], order_inbox: str, outputs: Iterable[str], group: str) -> TopicRoles:
    """The Quix peer: our input topics, its order-inbox loop and Quix's repartition topic
    (``repartition__<group>--...``, our stock-commands) internal, its outputs, and Quix's
    ``changelog__<group>--...`` changelogs."""
    declared = {name: "input" for name in inputs}
    declared[order_inbox] = "internal"
    declared.update({name: "output" for name in outputs})
    return TopicRoles(
        declared, ((f"repartition__{group}--", "", "internal"), (f"changelog__{group}--", "", "changelog"))
    )


@dataclass(frozen=True)
class Stage:
    """One measured stage (limit, pipeline drain, peer)."""

    name: str
    label: str
    records: Mapping[str, int]  # role -> records on the broker at the end of the stage
    seconds: float
    worker_cpu_s: float | None
    broker_cpu_s: float | None = None
    consumed: int | None = None  # None: input + internal records (read once each when drained)
    input_events: int | None = None  # None: the input records
    orders: int | None = None
    order_lines: int | None = None
    peak_rss_mb: float | None = None
    workers: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def consumed_messages(self) -> int:
        if self.consumed is not None:
            return self.consumed
        return self.records.get("input", 0) + self.records.get("internal", 0)

    @property
    def produced_records(self) -> int:
        return sum(self.records.get(role, 0) for role in PRODUCED_ROLES)


def _div(a: float | None, b: float | None, scale: float = 1.0, digits: int = 2) -> float | None:
    if a is None or not b:
        return None
    return round(scale * a / b, digits)


def derive(stage: Stage) -> dict[str, Any]:
    """The figures of one stage, as a flat dict (see the module docstring)."""
    s, consumed, produced = stage.seconds, stage.consumed_messages, stage.produced_records
    inputs = stage.input_events if stage.input_events is not None else stage.records.get("input", 0)
    cpu, broker = stage.worker_cpu_s, stage.broker_cpu_s
    out: dict[str, Any] = {
        "seconds": round(s, 3),
        "input_events": inputs,
        "orders": stage.orders,
        "order_lines": stage.order_lines,
        "consumed": consumed,
        "produced": produced,
        "produced_by_role": {role: stage.records.get(role, 0) for role in PRODUCED_ROLES},
        "input_events_per_s": _div(inputs, s, digits=1),
        "orders_per_s": _div(stage.orders, s, digits=1),
        "order_lines_per_s": _div(stage.order_lines, s, digits=1),
        "consumed_per_s": _div(consumed, s, digits=1),
        "produced_per_s": _div(produced, s, digits=1),
        "produced_per_s_by_role": {role: _div(stage.records.get(role, 0), s, digits=1) for role in PRODUCED_ROLES},
        "record_ops_per_s": _div(consumed + produced, s, digits=1),
        "consumed_per_order": _div(consumed, stage.orders, digits=3),
        "produced_per_order": _div(produced, stage.orders, digits=3),
        "produced_per_order_by_role": {
            role: _div(stage.records.get(role, 0), stage.orders, digits=3) for role in PRODUCED_ROLES
        },
        "worker_cpu_s": None if cpu is None else round(cpu, 3),
        "broker_cpu_s": None if broker is None else round(broker, 3),
        "worker_cpu_us_per_order": _div(cpu, stage.orders, 1e6, 1),
        "worker_cpu_us_per_consumed": _div(cpu, consumed, 1e6, 1),
        "worker_cpu_us_per_produced": _div(cpu, produced, 1e6, 1),
        "worker_cpu_us_per_record_op": _div(cpu, consumed + produced, 1e6, 2),
        "broker_cpu_us_per_order": _div(broker, stage.orders, 1e6, 1),
        "broker_cpu_us_per_record_op": _div(broker, consumed + produced, 1e6, 2),
        "worker_cores": _div(cpu, s, digits=2),
        "broker_cores": _div(broker, s, digits=2),
        "peak_rss_mb": None if stage.peak_rss_mb is None else round(stage.peak_rss_mb, 1),
    }
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def meets(value: float | None, goal: float, higher_is_better: bool, strict: bool = False) -> bool:
    if value is None:
        return False
    if higher_is_better:
        return value > goal if strict else value >= goal
    return value < goal if strict else value <= goal


def verdict(value: float | None, goal: float, higher_is_better: bool, strict: bool = False) -> str:
    """'met' (with the margin) or 'missed by ...' in the target's own direction."""
    if value is None:
        return "not measured"
    met = meets(value, goal, higher_is_better, strict)
    if higher_is_better:
        if met:
            return f"met ({value / goal:.2f}x the target)" if goal else "met"
        if value <= 0:
            return "missed (nothing measured)"
        return f"missed by {goal / value:.2f}x (needs +{100 * (goal / value - 1):.0f}%)"
    if met:
        return f"met ({100 * (1 - value / goal):.0f}% below the limit)" if goal else "met"
    return f"missed by {value / goal:.2f}x (needs -{100 * (1 - goal / value):.0f}%)"


@dataclass(frozen=True)
class Target:
    name: str
    goal: float
    higher_is_better: bool
    unit: str = ""
    strict: bool = False

    def judge(self, value: float | None) -> dict[str, Any]:
        sign = ">" if self.higher_is_better else "<"
        return {
            "target": self.name,
            "goal": f"{sign}{'' if self.strict else '='} {self.goal:,g}{self.unit}",
            "value": value,
            "met": meets(value, self.goal, self.higher_is_better, self.strict),
            "verdict": verdict(value, self.goal, self.higher_is_better, self.strict),
        }


# Issue 13's targets (one worker, the reservation workload, one run side by side).
TARGETS = {
    "orders_per_s": Target("orders/s, one worker", 1500, True),
    "pipeline_over_peer": Target("pipeline / peer (orders/s, peer in its default mode)", 2.0, True),
    "consumed_per_order": Target("messages consumed per order", 1.5, False),
    "produced_per_order": Target("records produced per order", 12, False),
    "cpu_us_per_order": Target("worker CPU per order", 650, False, " µs"),
    "p99_ms_at_80": Target(
        "OrderCreated->OrderStatusChanged p99 at 80% of the highest sustained rate", 100, False, " ms", strict=True
    ),
}
