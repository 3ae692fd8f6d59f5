"""Every topic of the pipeline, declared once: name, key, records carried, partitions, config.

Read top to bottom this is the data flow:

    orders ─────────┐ (key orderNo)
    shipments ──────┼──► order agent ──► order-status, outbound-instructions, inventory-alerts
    order-inbox ────┘        │  ▲
                             ▼  │ ReservationUpdated (key orderNo)
    stock-movements ──► router ──► stock-commands (key sku) ──► stock agent
      (key warehouse)    │ ReturnInspected ──► order-inbox      │
                                                                ▼
                          inventory-changes (compacted), inventory-ledger, inventory-alerts

Topics are created explicitly (``create_topics``) before the worker starts; the broker's
auto-creation is off. Input and internal topics that feed one table share a partition
count, so that Faust co-partitions them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from config.settings import Settings
from tables.declarations import TABLES

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
WEEK_MS = str(7 * 24 * 3600 * 1000)
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


def _specs() -> tuple[TopicSpec, ...]:
    return (
        TopicSpec("orders", "orderNo", ("OrderCreated", "OrderPaid", "OrderCancelled", "ReturnRequested"),
                  "input", RETAINED),
        TopicSpec("shipments", "orderNo", ("OrderShipped", "PickedUp", "InTransit", "OutForDelivery",
                                           "Delivered", "DeliveryFailed", "ReturnPickedUp"), "input", RETAINED),
        TopicSpec("stock-movements", "warehouseCode", ("InboundAnnounced", "GoodsReceived", "ReturnInspected",
                                                    "StockAdjusted", "TransferDispatched", "TransferReceived",
                                                    "StockSnapshot", "DamagedDisposed", "ReorderPointSet"),
                  "input", RETAINED),
        TopicSpec("order-inbox", "orderNo", ("ReservationUpdated", "ReturnInspected", "ReservationExpiryDue"),
                  "internal", RETAINED),
        TopicSpec("stock-commands", "sku", ("ReserveStock", "ReleaseStock", "ShipStock", "DeliverStock",
                                            "ReturnUndelivered", "ExpectReturn", "InspectReturn",
                                            "AnnounceInbound", "ReceiveStock", "AdjustStock",
                                            "DispatchTransfer", "ReconcileStock", "DisposeDamaged",
                                            "SetReorderPoint"),
                  "internal", RETAINED),
        TopicSpec("inventory-changes", "sku|warehouseCode", ("InventoryChanged",), "output", COMPACTED),
        TopicSpec("order-status", "orderNo", ("OrderStatusChanged",), "output", RETAINED),
        TopicSpec("outbound-instructions", "orderNo", ("OutboundInstruction",), "output", RETAINED),
        TopicSpec("inventory-ledger", "sku|warehouseCode", ("InventoryLedgerEntry",), "output", LEDGER),
        TopicSpec("inventory-alerts", "sku or orderNo", ("InventoryAlert",), "output", RETAINED),
        TopicSpec("dead-letters", "original key", ("DeadLetter",), "output", RETAINED),
    )


class Topics:
    """Resolved topic names for one deployment (prefix applied)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.specs = _specs()
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

    def all(self) -> dict[str, tuple[int, dict[str, str]]]:
        """Every topic to create: name -> (partitions, config)."""
        out = {self.name(s): (s.partitions or self.settings.partitions, s.config) for s in self.specs}
        for table in TABLES:
            out[self.changelog(table)] = (self.settings.partitions, COMPACTED)
        # The OMS outbox topics Debezium writes: created here too, so that a worker started
        # before the connector does not wait on a topic that does not exist yet.
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


def create_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create every missing topic with its partitions and config; return those created."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from streams.kafka_config import admin_config

    topics = Topics(settings)
    admin = AdminClient(admin_config(settings))
    existing = set(admin.list_topics(timeout=timeout_s).topics)
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
