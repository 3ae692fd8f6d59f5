"""Every topic of the pipeline, declared once: name, key, records carried, role, config. Read top
to bottom, the declarations are the data flow (pictured in README.md, "Data flow").

``ROUTES`` is the routing table derived from them: a record the pipeline sends (internal or
output) -> its one topic and how its key is read (``sku|warehouseCode``: fields joined;
``sku or orderNo``: the first set). The worker, the in-memory center (tables/center.py) and
the Quix peer route by it. Topic names get the deployment's prefix in streams/topics.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
WEEK_MS = str(7 * DAY_MS)
RETAINED = {"cleanup.policy": "delete", "retention.ms": WEEK_MS}
LEDGER = {"cleanup.policy": "delete", "retention.ms": "-1"}  # ERP rebuilds from it: keep all


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    records: tuple[str, ...]
    role: str  # input | internal | output | changelog
    config: dict[str, str] = field(default_factory=dict)
    partitions: int | None = None  # None: settings.partitions


SPECS: tuple[TopicSpec, ...] = (
    TopicSpec(
        "orders", "orderNo", ("OrderCreated", "OrderPaid", "OrderCancelled", "ReturnRequested"), "input", RETAINED
    ),
    TopicSpec(
        "shipments",
        "orderNo",
        ("OrderShipped", "PickedUp", "InTransit", "OutForDelivery", "Delivered", "DeliveryFailed", "ReturnPickedUp"),
        "input",
        RETAINED,
    ),
    TopicSpec(
        "stock-movements",
        "warehouseCode",
        (
            "InboundAnnounced",
            "GoodsReceived",
            "ReturnInspected",
            "StockAdjusted",
            "TransferDispatched",
            "TransferReceived",
            "StockSnapshot",
            "DamagedDisposed",
            "ReorderPointSet",
        ),
        "input",
        RETAINED,
    ),
    TopicSpec(
        "order-inbox",
        "orderNo",
        ("ReservationUpdated", "ReturnInspected", "ReservationExpiryDue", "Envelope"),
        "internal",
        RETAINED,
    ),
    TopicSpec(
        "stock-commands",
        "sku",
        (
            "ReserveStock",
            "ReleaseStock",
            "ShipStock",
            "DeliverStock",
            "ReturnUndelivered",
            "ExpectReturn",
            "InspectReturn",
            "AnnounceInbound",
            "ReceiveStock",
            "AdjustStock",
            "DispatchTransfer",
            "ReconcileStock",
            "DisposeDamaged",
            "SetReorderPoint",
            "Envelope",
        ),
        "internal",
        RETAINED,
    ),
    TopicSpec("inventory-changes", "sku|warehouseCode", ("InventoryChanged",), "output", COMPACTED),
    TopicSpec("order-status", "orderNo", ("OrderStatusChanged",), "output", RETAINED),
    # The WMS's topic: a recall follows its instruction (same key, same partition).
    TopicSpec("outbound-instructions", "orderNo", ("OutboundInstruction", "OutboundCancellation"), "output", RETAINED),
    TopicSpec("inventory-ledger", "sku|warehouseCode", ("InventoryLedgerEntry",), "output", LEDGER),
    TopicSpec("inventory-alerts", "sku or orderNo", ("InventoryAlert",), "output", RETAINED),
    TopicSpec("dead-letters", "original key", ("DeadLetter",), "output", RETAINED),  # keyed where it is made
)


@dataclass(frozen=True)
class Route:
    """Where a record the pipeline sends goes: its topic (unprefixed) and its key."""

    spec: TopicSpec
    key: Callable[[Any], str]  # the record -> its topic key

    @property
    def internal(self) -> bool:
        return self.spec.role == "internal"


_FIELD = re.compile(r"[a-z][A-Za-z]*")


def _attribute(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()  # orderNo -> order_no


def key_reader(key: str) -> Callable[[Any], str] | None:
    """How a declared key is read from a record (None: the key names no fields)."""
    if " or " in key:
        names = key.split(" or ")
        if all(_FIELD.fullmatch(n) for n in names):
            first = attrgetter(*map(_attribute, names))
            return lambda record: next(filter(None, first(record)), "")
        return None
    names = key.split("|")
    if not all(_FIELD.fullmatch(n) for n in names):
        return None
    if len(names) == 1:
        return attrgetter(_attribute(names[0]))
    fields = attrgetter(*map(_attribute, names))
    return lambda record: "|".join(fields(record))


def _routes(specs: tuple[TopicSpec, ...]) -> dict[str, Route]:
    """Each record carried by exactly one internal or output topic, keyed by named fields
    (an Envelope rides both internal topics: it is routed by what it carries)."""
    sent = [s for s in specs if s.role in ("internal", "output")]
    routes = {}
    for spec in sent:
        reader = key_reader(spec.key)
        for record in spec.records:
            if reader is not None and sum(record in s.records for s in sent) == 1:
                routes[record] = Route(spec, reader)
    return routes


ROUTES: dict[str, Route] = _routes(SPECS)  # record class name -> its route
