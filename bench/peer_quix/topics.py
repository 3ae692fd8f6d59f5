"""The peer's topic names: our input topics, and its own order-inbox and output topics.

Imports neither Quix nor Faust, so that both environments can read it; the names come from
our topic declarations (schemas/topics.py), the routing table's too.

The peer writes under its own prefix (by default the input prefix + ``quix.``), so it can
read the very topics our pipeline reads without mixing its outputs with ours. Quix names
its internal topics itself, after the consumer group: ``repartition__<group>--...--sku``
(the group_by that plays our stock-commands) and ``changelog__<group>--...--default``.
The peer has no dead-letter topic (README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.topics import SPECS

INPUTS = tuple(s.name for s in SPECS if s.role == "input")
OWN = ("order-inbox", *(s.name for s in SPECS if s.role == "output" and s.name != "dead-letters"))


def default_output_prefix(topic_prefix: str) -> str:
    return f"{topic_prefix}quix."


@dataclass(frozen=True)
class TopicNames:
    orders: str
    shipments: str
    stock_movements: str
    order_inbox: str
    inventory_changes: str
    order_status: str
    outbound_instructions: str
    inventory_ledger: str
    inventory_alerts: str

    @classmethod
    def of(cls, topic_prefix: str, output_prefix: str | None = None) -> TopicNames:
        own = default_output_prefix(topic_prefix) if output_prefix is None else output_prefix
        return cls(
            **{name.replace("-", "_"): f"{topic_prefix}{name}" for name in INPUTS},
            **{name.replace("-", "_"): f"{own}{name}" for name in OWN},
        )

    def topic(self, declared: str) -> str:
        """The peer's name for a declared topic (schemas/topics.py), input or its own."""
        return str(getattr(self, declared.replace("-", "_")))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.orders, self.shipments, self.stock_movements)

    @property
    def own(self) -> tuple[str, ...]:
        return (
            self.order_inbox,
            self.inventory_changes,
            self.order_status,
            self.outbound_instructions,
            self.inventory_ledger,
            self.inventory_alerts,
        )
