"""The inventory laws, checked after every step of random event sequences.

A hypothesis ``RuleBasedStateMachine`` feeds the whole core (``InventoryCenter``) every kind
of input event the contract knows - orders of every type (some expiring), payments,
cancellations, full/partial/excess/unknown-order shipments, deliveries, failed deliveries and
their receipt back, returns, ASNs, receipts (short, damaged, blind, against any document),
adjustments of every reason, transfers, snapshots (current and stale), disposals, expiry
ticks - plus re-submissions of earlier events, over 3 SKUs x 3 warehouses so that orders
compete for the same positions. After every step the laws of docs/inventory-model.md must
hold. Run deeper with ``pytest tests/unit --hypothesis-profile=long``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import event as note_event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from schemas.base import Event
from schemas.inputs import OrderCreated, OrderShipped, TransferDispatched
from schemas.outputs import (
    AlertType,
    InventoryAlert,
    InventoryChanged,
    InventoryLedgerEntry,
    MovementType,
    OrderStatus,
    OrderStatusChanged,
    StockBucket,
)
from tables.center import InventoryCenter, MemoryTables
from tables.policy import CorePolicy
from tables.state import LineState, Reservation, ShipmentState
from tests.unit.event_factory import EventFactory

T = TypeVar("T")
SKUS = ("SKU1", "SKU2", "SKU3")
WAREHOUSES = ("WH1", "WH2", "WH3")
POLICY = CorePolicy(warehouse_priority=("WH2", "WH1"), reorder_point=5)  # WH3 unranked

qty = st.integers(1, 8)
sku = st.sampled_from(SKUS)
warehouse = st.sampled_from(WAREHOUSES)

# Only these events may push availableQty below 0 or further down: adjustments, snapshots and
# units physically leaving (shipments, transfers) beyond what the books hold. Everything else
# - reservations above all - never lowers an availableQty to below 0.
MAY_TURN_AVAILABLE_NEGATIVE = {"StockAdjusted", "StockSnapshot", "OrderShipped", "TransferDispatched"}

S = OrderStatus
OPEN = frozenset({S.PENDING, S.RESERVED, S.OUTBOUND_REQUESTED})
SHIPPABLE = frozenset({S.RESERVED, S.OUTBOUND_REQUESTED, S.PARTIALLY_SHIPPED})
RETURNABLE = frozenset({S.DELIVERED, S.RETURN_REQUESTED, S.PARTIALLY_RETURNED})

B = StockBucket
M = MovementType
BUCKET_OF_POSITION = {
    B.ON_HAND: "on_hand_qty",
    B.IN_TRANSIT: "in_transit_qty",
    B.OUTBOUND: "outbound_qty",
    B.DAMAGED: "damaged_qty",
    B.DELIVERED: "delivered_qty",
}
INSIDE = (B.ON_HAND, B.DAMAGED, B.OUTBOUND, B.DELIVERED)  # units we hold or handed over
ARRIVALS = {M.RECEIVED, M.TRANSFER_IN, M.RETURN_INSPECTED}
# Movements that only move units between buckets of one position: each nets to zero.
# (TRANSFER_OUT and DELIVERY_FAILED put units in transit, but only the part not already
# received - a receipt that came first leaves a credit - so they need not net to zero.)
PURE_MOVES = {M.SHIPPED, M.DELIVERED}

DocumentKey = tuple[str, str, str]  # (sku, warehouseCode, documentNo): an expectation's key


def held_by_reservations(reservations: Iterable[Reservation]) -> Counter[tuple[str, str]]:
    """Units the reservations hold on hand per (sku, warehouse): every part of a split line
    at its own warehouse. The law: a position's reservedQty equals this."""
    held: Counter[tuple[str, str]] = Counter()
    for r in reservations:
        for part in r.parts():
            held[(r.sku, part.warehouse_code)] += part.reserved_qty
    return held


def _table_records(tables: MemoryTables) -> dict[str, dict[Any, Any]]:
    return {
        "stock": dict(tables.stock_by_sku),
        "reservations": dict(tables.reservations_by_key),
        "expectations": dict(tables.expectations_by_key),
        "orders": dict(tables.orders_by_no),
        "receipts": dict(tables.receipts_by_id),
        "expiry_index": dict(tables.expiry_index),
    }


def _changed_tables(before: dict[str, dict[Any, Any]], after: dict[str, dict[Any, Any]]) -> dict[str, list[Any]]:
    changed: dict[str, list[Any]] = {}
    for name, records in before.items():
        keys = set(records) | set(after[name])
        diff = [k for k in keys if records.get(k) != after[name].get(k)]
        if diff:
            changed[name] = sorted(map(str, diff))[:5]
    return changed


class Ledger:
    """What ERP would rebuild from InventoryLedgerEntry: entries deduplicated by entryId
    (a replay re-emits the same entries) and totals per (sku, warehouse, bucket)."""

    def __init__(self) -> None:
        self.entries: dict[str, InventoryLedgerEntry] = {}
        self.totals: Counter[tuple[str, str, StockBucket]] = Counter()
        self.by_movement: Counter[MovementType] = Counter()

    def add(self, e: InventoryLedgerEntry) -> None:
        seen = self.entries.get(e.entry_id)
        if seen is not None:
            assert seen == e, f"entry {e.entry_id} re-emitted with different content"
            return
        self.entries[e.entry_id] = e
        self.totals[(e.sku, e.warehouse_code, e.bucket)] += e.quantity
        self.by_movement[e.movement_type] += e.quantity

    def flows(self, ours: set[DocumentKey]) -> Counter[str]:
        """The right-hand side of the conservation law, by what happened to the units.

        ``ours``: the documents under which our own units travel - a transfer at its
        destination, a failed delivery at its origin warehouse. Everything else that arrives
        (purchases, blind receipts, customer returns) enters the network.

        - ``received`` / ``returned``: RECEIVED, TRANSFER_IN and RETURN_INSPECTED entries
          into ON_HAND or DAMAGED under any other document (or blind).
        - ``found_or_lost``: ADJUSTED and RECONCILED entries in any bucket, including the
          units the core books as found when more leaves a bucket than it holds (a DAMAGE
          adjustment moves ON_HAND -> DAMAGED and nets to zero).
        - ``disposed``: DISPOSED entries.
        - ``lost_in_transit``: INBOUND_CANCELLED under one of ``ours``: our units that were
          travelling and will not arrive (the rest of a purchase ASN or of a customer return
          that does not come was never ours).
        Arrivals under ``ours`` only move units from transit to the shelf; SHIPPED,
        DELIVERED, TRANSFER_OUT and DELIVERY_FAILED only move units between buckets: none
        of them is a flow.
        """
        flows: Counter[str] = Counter()
        for e in self.entries.values():
            key = (e.sku, e.warehouse_code, e.document_no)
            m = e.movement_type
            if m in ARRIVALS and e.bucket in (B.ON_HAND, B.DAMAGED) and key not in ours:
                flows["returned" if m == M.RETURN_INSPECTED else "received"] += e.quantity
            elif m in (M.ADJUSTED, M.RECONCILED):
                flows["found_or_lost"] += e.quantity
            elif m == M.DISPOSED:
                flows["disposed"] += e.quantity
            elif m == M.INBOUND_CANCELLED and key in ours:
                flows["lost_in_transit"] += e.quantity
        return flows


class CoreLaws(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.center = InventoryCenter(POLICY)
        self.f = EventFactory()
        self.submitted: list[Event] = []
        self.created: dict[str, OrderCreated] = {}
        self.unknown_orders: list[str] = []
        self.shipments: list[OrderShipped] = []
        self.failed_shipments: list[OrderShipped] = []
        self.returns: list[tuple[str, str, tuple[tuple[str, int], ...]]] = []  # orderNo, returnNo, items
        self.asns: list[str] = []
        self.transfers: list[tuple[str, str, tuple[tuple[str, int], ...]]] = []  # no, to, lines
        # Documents whose receipt came first (the topics interleave): announced later.
        self.unannounced: list[tuple[str, str]] = []  # asnNo, warehouse
        self.undispatched: list[tuple[str, tuple[str, str]]] = []  # transferNo, (from, to)
        self.unrequested: list[str] = []  # returnNo picked up before it was requested
        self.seq = 0
        self.outputs_seen = 0
        self.ledger = Ledger()
        self.last_changed: dict[tuple[str, str], InventoryChanged] = {}
        self.announced_status: dict[str, Any] = {}

    # --- plumbing -----------------------------------------------------------------------

    def next_no(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}{self.seq}"

    def availability(self) -> dict[tuple[str, str], int]:
        return {
            (s, p.warehouse_code): p.available_qty
            for s, stock in self.center.tables.stock_by_sku.items()
            for p in stock.positions
        }

    def submit(self, event: Event) -> None:
        before = self.availability()
        self.center.submit(event)
        self.submitted.append(event)
        self.fold_outputs()
        if event.event_type in MAY_TURN_AVAILABLE_NEGATIVE:
            return
        for key, now in self.availability().items():
            was = before.get(key, 0)
            assert not (now < 0 and now < was), f"{event.event_type} lowered availableQty of {key} from {was} to {now}"

    def fold_outputs(self) -> None:
        for out in self.center.outputs[self.outputs_seen :]:
            # Shown by --hypothesis-show-statistics: evidence that the runs reach deep states.
            if isinstance(out, InventoryAlert):
                note_event(f"alert {out.alert_type}")
            elif isinstance(out, OrderStatusChanged):
                note_event(f"order {out.status}")
            if isinstance(out, InventoryLedgerEntry):
                self.ledger.add(out)
            elif isinstance(out, InventoryChanged):
                key = (out.sku, out.warehouse_code)
                last = self.last_changed.get(key)
                if last is None or out.version >= last.version:
                    self.last_changed[key] = out
            elif isinstance(out, OrderStatusChanged):
                if out.version > self.announced_version(out.order_no):
                    assert out.previous_status == self.announced_status.get(out.order_no, (None, 0))[0], (
                        f"{out.order_no}: {out.previous_status} -> {out.status}, but the OMS last "
                        f"heard {self.announced_status.get(out.order_no)}"
                    )
                    self.announced_status[out.order_no] = (out.status, out.version)
        self.outputs_seen = len(self.center.outputs)

    def announced_version(self, order_no: str) -> int:
        return self.announced_status.get(order_no, (None, 0))[1]

    def order_lines(self, order_no: str) -> list[tuple[str, int, str | None]]:
        order = self.center.order(order_no)
        assert order is not None
        return [(x.sku, x.quantity, x.warehouse_code) for x in order.lines]

    def shipping_shares(self, order_no: str) -> list[tuple[str, int, str | None]]:
        """The order's lines as its warehouses would ship them: a split line once per part."""
        order = self.center.order(order_no)
        assert order is not None
        return [
            (x.sku, share.reserved_qty, share.warehouse_code)
            for x in order.lines
            for share in (x.shares() if x.warehouse_code is not None else ())
            if share.reserved_qty > 0
        ] + [(x.sku, x.quantity, None) for x in order.lines if x.warehouse_code is None]

    def prefer(self, data: st.DataObject, items: Sequence[T], fits: Callable[[T], bool]) -> T:
        """Mostly an item that ``fits`` (where the interesting rules act), sometimes any item
        (where the lifecycle must refuse or the core must cope)."""
        fitting = [x for x in items if fits(x)]
        if fitting and data.draw(st.integers(0, 3), label="prefer fitting"):
            return data.draw(st.sampled_from(fitting))
        return data.draw(st.sampled_from(items))

    def pick_order(self, data: st.DataObject, statuses: frozenset[OrderStatus]) -> str:
        return self.prefer(data, sorted(self.created), lambda n: self.status(n) in statuses)

    def status(self, order_no: str) -> OrderStatus | None:
        order = self.center.order(order_no)
        return order.status if order else None

    def pick_shipment(self, data: st.DataObject) -> OrderShipped:
        def on_its_way(s: OrderShipped) -> bool:
            order = self.center.order(s.order_no)
            shipment = order.shipment(s.shipment_no) if order else None
            return shipment is not None and shipment.state == ShipmentState.SHIPPED

        return self.prefer(data, self.shipments, on_its_way)

    def pick_return(self, data: st.DataObject, picked_up: bool) -> tuple[str, str, tuple[tuple[str, int], ...]]:
        def at_stage(r: tuple[str, str, tuple[tuple[str, int], ...]]) -> bool:
            order = self.center.order(r[0])
            opened = order.customer_return(r[1]) if order else None
            return opened is not None and opened.picked_up == picked_up and not opened.inspected

        return self.prefer(data, self.returns, at_stage)

    # --- orders -------------------------------------------------------------------------

    @initialize(
        stock=st.lists(st.tuples(warehouse, sku, st.integers(1, 15)), max_size=6),
        inbound=st.lists(st.tuples(warehouse, sku, st.integers(1, 10)), max_size=3),
    )
    def opening_stock(self, stock: list[tuple[str, str, int]], inbound: list[tuple[str, str, int]]) -> None:
        for wh, s, q in stock:
            self.submit(self.f.goods_received(self.next_no("RCV"), wh, [(s, q, 0)]))
        for wh, s, q in inbound:
            self.announce_inbound(wh, [(s, q)], "PURCHASE")

    order_items = st.lists(
        st.tuples(sku, st.integers(1, 6), st.none() | st.none() | warehouse),
        min_size=1,
        max_size=3,
        unique_by=lambda item: item[0],
    )

    @rule(
        order_type=st.sampled_from(["NORMAL", "GIFT", "PRESALE"]),
        items=order_items,
        order_warehouse=st.none() | st.none() | warehouse,
    )
    def create_order(
        self, order_type: str, items: list[tuple[str, int, str | None]], order_warehouse: str | None
    ) -> None:
        self.place_order(order_type, items, order_warehouse, None)

    @rule(s=sku, order_type=st.sampled_from(["NORMAL", "GIFT"]), over=st.integers(1, 4), other=order_items)
    def create_order_to_split(
        self, s: str, order_type: str, over: int, other: list[tuple[str, int, str | None]]
    ) -> None:
        """A line just above what the best single warehouse has available: split across
        warehouses when together they can cover it (with other lines, some rejected)."""
        best = max((max(0, a) for (k, _), a in self.availability().items() if k == s), default=0)
        items = [(s, best + over, None), *(item for item in other if item[0] != s)]
        self.place_order(order_type, items, None, None)

    @rule(items=order_items, order_warehouse=st.none() | warehouse)
    def create_presale_order(self, items: list[tuple[str, int, str | None]], order_warehouse: str | None) -> None:
        self.place_order("PRESALE", items, order_warehouse, None)

    @rule(
        order_type=st.sampled_from(["NORMAL", "PRESALE"]),
        items=order_items,
        expires_in=st.integers(1, 90).map(lambda m: timedelta(minutes=m)),
    )
    def create_unpaid_order(
        self, order_type: str, items: list[tuple[str, int, str | None]], expires_in: timedelta
    ) -> None:
        self.place_order(order_type, items, None, expires_in)

    def place_order(
        self,
        order_type: str,
        items: list[tuple[str, int, str | None]],
        order_warehouse: str | None,
        expires_in: timedelta | None,
    ) -> None:
        order_no = self.next_no("O")
        event = self.f.order_created(order_no, items, order_type, order_warehouse, expires_in)
        assert isinstance(event, OrderCreated)
        self.created[order_no] = event
        self.submit(event)

    @precondition(lambda self: self.created)
    @rule(data=st.data())
    def pay(self, data: st.DataObject) -> None:
        self.submit(self.f.order_paid(self.pick_order(data, OPEN)))

    @precondition(lambda self: self.created)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.submit(self.f.order_cancelled(self.pick_order(data, OPEN)))

    @precondition(lambda self: self.created)
    @rule(data=st.data())
    def create_known_order_again(self, data: st.DataObject) -> None:
        """A second OrderCreated (new eventId) for a known orderNo: ANOMALY, nothing else."""
        original = self.created[data.draw(st.sampled_from(sorted(self.created)))]
        again = original.model_copy(update={"event_id": self.next_no("again-")})
        before = _table_records(self.center.tables)
        n_outputs = len(self.center.outputs)
        self.submit(again)
        after = _table_records(self.center.tables)
        del before["receipts"], after["receipts"]  # the new event id is remembered, nothing else
        assert _changed_tables(before, after) == {}
        new = self.center.outputs[n_outputs:]
        assert [type(x).__name__ for x in new] == ["InventoryAlert"], new
        assert new[0].alert_type == AlertType.ANOMALY and new[0].order_no == original.order_no

    @precondition(lambda self: any(n not in self.created for n in self.unknown_orders))
    @rule(data=st.data(), extra=st.none() | st.tuples(sku, qty))
    def create_order_after_its_shipment(self, data: st.DataObject, extra: tuple[str, int] | None) -> None:
        """The topics interleave: the order arrives after a shipment made it a placeholder.
        It adopts the order's data; what shipped needs no reservation, the units still to
        ship (the extra line) are reserved as for any order, or not at all."""
        order_no = data.draw(st.sampled_from([n for n in self.unknown_orders if n not in self.created]))
        shipped = {line.sku: line.quantity for s in self.shipments if s.order_no == order_no for line in s.lines}
        items = [(s, q, None) for s, q in shipped.items()]
        if extra is not None and extra[0] not in shipped:
            items.append((*extra, None))
        event = self.f.order_created(order_no, items)
        assert isinstance(event, OrderCreated)
        self.created[order_no] = event
        self.submit(event)
        held = {
            k[0]: r.total_reserved_qty + r.presold_qty
            for k, r in self.center.tables.reservations_by_key.items()
            if k[1] == order_no
        }
        assert all(sku not in shipped for sku in held), held
        assert held in ({}, {extra[0]: extra[1]} if extra is not None else {}), (held, extra)

    @rule(minutes=st.integers(1, 120))
    def expiry_timer(self, minutes: int) -> None:
        now = self.f.advance(timedelta(minutes=minutes))
        before = self.availability()
        self.center.expire_due(now)
        self.fold_outputs()
        for key, available in self.availability().items():
            assert available >= before.get(key, 0), f"an expiry lowered availableQty of {key}"

    # --- shipments ----------------------------------------------------------------------

    @precondition(lambda self: self.created)
    @rule(data=st.data(), how=st.sampled_from(["as instructed", "partial", "excess", "anywhere"]))
    def ship(self, data: st.DataObject, how: str) -> None:
        order_no = self.pick_order(data, SHIPPABLE)
        lines = self.shipping_shares(order_no)
        allocated = sorted({wh for _, _, wh in lines if wh is not None})
        if how == "anywhere" or not allocated:
            wh = data.draw(warehouse)
        else:
            wh = data.draw(st.sampled_from(allocated))
        here = [line for line in lines if line[2] in (wh, None)] or lines
        chosen = data.draw(st.lists(st.sampled_from(here), min_size=1, unique_by=lambda x: x[0]))
        parcel = []
        for s, q, _ in chosen:
            if how == "partial":
                q = data.draw(st.integers(1, q))
            elif how == "excess":
                q += data.draw(qty)
            elif how == "anywhere":
                q = data.draw(qty)
            parcel.append((s, q))
        event = self.f.order_shipped(order_no, self.next_no("SHP"), wh, parcel)
        assert isinstance(event, OrderShipped)
        self.shipments.append(event)
        self.submit(event)

    @rule(wh=warehouse, parcel=st.lists(st.tuples(sku, qty), min_size=1, max_size=2, unique_by=lambda x: x[0]))
    def ship_unknown_order(self, wh: str, parcel: list[tuple[str, int]]) -> None:
        order_no = self.next_no("X")
        event = self.f.order_shipped(order_no, self.next_no("SHP"), wh, parcel)
        assert isinstance(event, OrderShipped)
        self.unknown_orders.append(order_no)
        self.shipments.append(event)
        n_outputs = len(self.center.outputs)
        self.submit(event)
        alerts = [x for x in self.center.outputs[n_outputs:] if isinstance(x, InventoryAlert)]
        assert any(a.alert_type == AlertType.ANOMALY and a.order_no == order_no for a in alerts)

    @precondition(lambda self: self.shipments)
    @rule(data=st.data(), what=st.sampled_from(["PickedUp", "InTransit", "OutForDelivery"]))
    def track(self, data: st.DataObject, what: str) -> None:
        s = data.draw(st.sampled_from(self.shipments))
        self.submit(self.f.tracking(what, s.order_no, s.shipment_no))

    @precondition(lambda self: self.shipments)
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        s = self.pick_shipment(data)
        self.submit(self.f.tracking("Delivered", s.order_no, s.shipment_no))

    @precondition(lambda self: self.shipments)
    @rule(data=st.data())
    def delivery_failed(self, data: st.DataObject) -> None:
        s = self.pick_shipment(data)
        self.failed_shipments.append(s)
        self.submit(self.f.tracking("DeliveryFailed", s.order_no, s.shipment_no))

    @precondition(lambda self: self.failed_shipments)
    @rule(data=st.data(), closes=st.booleans())
    def receive_failed_delivery_back(self, data: st.DataObject, closes: bool) -> None:
        s = data.draw(st.sampled_from(self.failed_shipments))
        lines = []
        for line in s.lines:
            ok = data.draw(st.integers(0, line.quantity + 1))
            bad = data.draw(st.integers(0 if ok else 1, 2))
            lines.append((line.sku, ok, bad))
        self.submit(self.f.goods_received(self.next_no("RCV"), s.warehouse_code, lines, s.shipment_no, closes))

    # --- returns ------------------------------------------------------------------------

    @precondition(lambda self: self.created)
    @rule(data=st.data())
    def return_requested(self, data: st.DataObject) -> None:
        order_no = self.pick_order(data, RETURNABLE)
        lines = self.order_lines(order_no)
        chosen = data.draw(st.lists(st.sampled_from(lines), min_size=1, unique_by=lambda x: x[0]))
        items = tuple((s, data.draw(st.integers(1, q))) for s, q, _ in chosen)
        return_no = self.next_no("RET")
        self.returns.append((order_no, return_no, items))
        self.submit(self.f.return_requested(order_no, return_no, items))

    @precondition(lambda self: self.returns)
    @rule(data=st.data())
    def return_picked_up(self, data: st.DataObject) -> None:
        order_no, return_no, _ = self.pick_return(data, picked_up=False)
        self.submit(self.f.return_picked_up(order_no, return_no, data.draw(warehouse)))

    @precondition(lambda self: self.returns)
    @rule(data=st.data())
    def return_inspected(self, data: st.DataObject) -> None:
        order_no, return_no, items = self.pick_return(data, picked_up=True)
        items = items or ((self.order_lines(order_no)[0][0], 1),)  # inspected before requested
        order = self.center.order(order_no)
        picked = order.customer_return(return_no) if order else None
        wh = picked.warehouse_code if picked and picked.warehouse_code else data.draw(warehouse)
        lines = []
        for s, q in items:
            q = data.draw(st.integers(1, q + 1))
            damaged = data.draw(st.integers(0, q))
            if q - damaged:
                lines.append((s, q - damaged, "SELLABLE"))
            if damaged:
                lines.append((s, damaged, "DAMAGED"))
        self.submit(self.f.return_inspected(order_no, return_no, wh, lines))

    # --- stock movements ----------------------------------------------------------------

    @rule(
        wh=warehouse,
        lines=st.lists(st.tuples(sku, qty), min_size=1, max_size=3, unique_by=lambda x: x[0]),
        inbound_type=st.sampled_from(["PURCHASE", "PURCHASE", "TRANSFER", "RETURN"]),
    )
    def announce_inbound(self, wh: str, lines: list[tuple[str, int]], inbound_type: str) -> None:
        asn_no = self.next_no("ASN")
        self.asns.append(asn_no)
        self.submit(self.f.inbound_announced(asn_no, wh, lines, inbound_type))

    @rule(
        data=st.data(),
        wh=warehouse,
        lines=st.lists(
            st.tuples(sku, st.integers(0, 10), st.integers(0, 3)).filter(lambda x: x[1] + x[2] > 0),
            min_size=1,
            max_size=3,
            unique_by=lambda x: x[0],
        ),
        closes=st.booleans(),
    )
    def receive_goods(self, data: st.DataObject, wh: str, lines: list[tuple[str, int, int]], closes: bool) -> None:
        """Against an ASN, a transfer, a failed shipment, or blind; short, over or damaged."""
        documents = [None, *self.asns, *(t[0] for t in self.transfers)]
        document = data.draw(st.sampled_from(documents))
        self.submit(self.f.goods_received(self.next_no("RCV"), wh, lines, document, closes))

    @rule(
        wh=warehouse,
        s=sku,
        delta=st.integers(-10, 10).filter(bool),
        reason=st.sampled_from(["CYCLE_COUNT", "DAMAGE", "LOSS", "FOUND"]),
    )
    def adjust(self, wh: str, s: str, delta: int, reason: str) -> None:
        self.submit(self.f.stock_adjusted(self.next_no("ADJ"), wh, s, delta, reason))

    @rule(
        route=st.permutations(WAREHOUSES).map(lambda p: p[:2]),
        lines=st.lists(st.tuples(sku, qty), min_size=1, max_size=2, unique_by=lambda x: x[0]),
    )
    def dispatch_transfer(self, route: tuple[str, str], lines: list[tuple[str, int]]) -> None:
        transfer_no = self.next_no("TR")
        self.transfers.append((transfer_no, route[1], tuple(lines)))
        self.submit(self.f.transfer_dispatched(transfer_no, route[0], route[1], lines))

    @precondition(lambda self: self.transfers)
    @rule(data=st.data())
    def receive_transfer(self, data: st.DataObject) -> None:
        transfer_no, to, sent = data.draw(st.sampled_from(self.transfers))
        lines = []
        for s, q in sent:
            ok = data.draw(st.integers(0, q + 1))
            bad = data.draw(st.integers(0 if ok else 1, 2))
            lines.append((s, ok, bad))
        self.submit(self.f.transfer_received(transfer_no, to, lines))

    @rule(
        wh=warehouse,
        lines=st.lists(st.tuples(sku, st.integers(0, 15)), min_size=1, max_size=3, unique_by=lambda x: x[0]),
        age=st.sampled_from([0, 0, 1, 5, 30]),
    )
    def snapshot(self, wh: str, lines: list[tuple[str, int]], age: int) -> None:
        """``age`` minutes old: often older than the last change, so ignored."""
        counted_at = self.f.now - timedelta(minutes=age)
        self.submit(self.f.stock_snapshot(self.next_no("SNAP"), wh, lines, counted_at))

    @rule(wh=warehouse, s=sku, quantity=qty)
    def dispose(self, wh: str, s: str, quantity: int) -> None:
        self.submit(self.f.damaged_disposed(self.next_no("DSP"), wh, s, quantity))

    # --- the topics interleave: a receipt before its announcement -----------------------

    received_lines = st.lists(
        st.tuples(sku, st.integers(0, 6), st.integers(0, 2)).filter(lambda x: x[1] + x[2] > 0),
        min_size=1,
        max_size=2,
        unique_by=lambda x: x[0],
    )
    announced_lines = st.lists(st.tuples(sku, qty), min_size=1, max_size=2, unique_by=lambda x: x[0])

    @rule(wh=warehouse, lines=received_lines, closes=st.booleans())
    def receive_before_announcement(self, wh: str, lines: list[tuple[str, int, int]], closes: bool) -> None:
        asn_no = self.next_no("ASN")
        self.unannounced.append((asn_no, wh))
        self.submit(self.f.goods_received(self.next_no("RCV"), wh, lines, asn_no, closes))

    @precondition(lambda self: self.unannounced)
    @rule(data=st.data(), lines=announced_lines)
    def announce_after_receipt(self, data: st.DataObject, lines: list[tuple[str, int]]) -> None:
        asn_no, wh = self.unannounced.pop(data.draw(st.integers(0, len(self.unannounced) - 1)))
        self.asns.append(asn_no)
        self.submit(self.f.inbound_announced(asn_no, wh, lines))

    @rule(route=st.permutations(WAREHOUSES).map(lambda p: (p[0], p[1])), lines=received_lines)
    def transfer_received_before_dispatch(self, route: tuple[str, str], lines: list[tuple[str, int, int]]) -> None:
        transfer_no = self.next_no("TR")
        self.undispatched.append((transfer_no, route))
        self.submit(self.f.transfer_received(transfer_no, route[1], lines))

    @precondition(lambda self: self.undispatched)
    @rule(data=st.data(), lines=announced_lines)
    def dispatch_after_receipt(self, data: st.DataObject, lines: list[tuple[str, int]]) -> None:
        transfer_no, (source, destination) = self.undispatched.pop(
            data.draw(st.integers(0, len(self.undispatched) - 1))
        )
        self.transfers.append((transfer_no, destination, tuple(lines)))
        self.submit(self.f.transfer_dispatched(transfer_no, source, destination, lines))

    @precondition(lambda self: self.shipments)
    @rule(data=st.data())
    def parcel_back_before_its_failure(self, data: st.DataObject) -> None:
        """The WMS books the refused parcel in before the TMS reports the failure."""
        s = self.pick_shipment(data)
        lines = [(line.sku, data.draw(st.integers(0, line.quantity)), 0) for line in s.lines]
        lines = [x for x in lines if x[1]] or [(s.lines[0].sku, 1, 0)]
        self.submit(self.f.goods_received(self.next_no("RCV"), s.warehouse_code, lines, s.shipment_no, False))

    @precondition(lambda self: self.created)
    @rule(data=st.data())
    def return_picked_up_before_request(self, data: st.DataObject) -> None:
        order_no = self.pick_order(data, RETURNABLE)
        return_no = self.next_no("RET")
        self.unrequested.append(return_no)
        self.returns.append((order_no, return_no, ()))
        self.submit(self.f.return_picked_up(order_no, return_no, data.draw(warehouse)))

    @precondition(lambda self: self.unrequested)
    @rule(data=st.data())
    def request_after_pickup(self, data: st.DataObject) -> None:
        return_no = self.unrequested.pop(data.draw(st.integers(0, len(self.unrequested) - 1)))
        index = next(i for i, r in enumerate(self.returns) if r[1] == return_no)
        order_no = self.returns[index][0]
        lines = self.order_lines(order_no)
        chosen = data.draw(st.lists(st.sampled_from(lines), min_size=1, unique_by=lambda x: x[0]))
        items = tuple((s, data.draw(st.integers(1, q))) for s, q, _ in chosen)
        self.returns[index] = (order_no, return_no, items)
        self.submit(self.f.return_requested(order_no, return_no, items))

    @precondition(lambda self: self.submitted)
    @rule(data=st.data())
    def resubmit(self, data: st.DataObject) -> None:
        """At-least-once delivery: an event seen before changes nothing."""
        event = data.draw(st.sampled_from(self.submitted))
        before = _table_records(self.center.tables)
        self.submit(event)
        changed = _changed_tables(before, _table_records(self.center.tables))
        assert changed == {}, f"re-submitting {event.event_type} {event.event_id} changed {changed}"

    # --- the laws -----------------------------------------------------------------------

    @invariant()
    def quantities_are_consistent(self) -> None:
        t = self.center.tables
        reserved = held_by_reservations(t.reservations_by_key.values())
        presold: Counter[tuple[str, str]] = Counter()
        short: Counter[tuple[str, str]] = Counter()
        for r in t.reservations_by_key.values():
            presold[(r.sku, r.warehouse_code)] += r.presold_qty
            short[(r.sku, r.warehouse_code)] += r.short_qty
            assert min(r.reserved_qty, r.presold_qty, r.short_qty) >= 0, r
            if r.splits:
                note_event("split reservation")
                # Only a NORMAL or GIFT line no single warehouse could fill is split: across
                # distinct warehouses, none of them its primary, each part holding units.
                assert r.order_type != "PRESALE" and (r.presold_qty, r.short_qty) == (0, 0), r
                codes = [part.warehouse_code for part in r.parts()]
                assert len(set(codes)) == len(codes) and min(x.reserved_qty for x in r.splits) > 0, r
        in_transit: Counter[tuple[str, str]] = Counter()
        for e in t.expectations_by_key.values():
            assert e.outstanding_qty != 0 or e.closed, f"a settled open document is kept: {e}"
            # A negative outstanding is a credit (received before announced): not in transit.
            in_transit[(e.sku, e.warehouse_code)] += max(0, e.outstanding_qty)
        for s, stock in t.stock_by_sku.items():
            for p in stock.positions:
                key = (s, p.warehouse_code)
                # onHandQty may be negative: units that left before their receipt was read.
                for name in (
                    "reserved_qty",
                    "in_transit_qty",
                    "presold_qty",
                    "outbound_qty",
                    "damaged_qty",
                    "delivered_qty",
                ):
                    assert getattr(p, name) >= 0, f"{key} {name} = {getattr(p, name)}: {p}"
                assert p.total_qty == p.available_qty + p.reserved_qty + p.in_transit_qty
                assert p.total_qty == p.on_hand_qty + p.in_transit_qty
                assert p.presold_qty <= p.in_transit_qty, f"{key} presold > inTransit: {p}"
                assert p.reserved_qty == reserved[key], (
                    f"{key} reservedQty {p.reserved_qty} != open lines {reserved[key]}"
                )
                assert p.presold_qty == presold[key], f"{key} presoldQty {p.presold_qty} != open lines {presold[key]}"
                assert p.short_qty == short[key], f"{key} short {p.short_qty} != open lines {short[key]}"
                # Units a short line waits for are never left available.
                assert p.short_qty == 0 or p.available_qty <= 0, f"{key} short lines wait beside available units: {p}"
                assert p.in_transit_qty == in_transit[key], (
                    f"{key} inTransitQty {p.in_transit_qty} != outstanding documents {in_transit[key]}"
                )
                reserved.pop(key, None), presold.pop(key, None), in_transit.pop(key, None)
        assert +reserved == Counter() and +presold == Counter() and +in_transit == Counter(), (
            "reservations or expectations at a position that does not exist"
        )

    @invariant()
    def inventory_changed_reports_the_position(self) -> None:
        for s, stock in self.center.tables.stock_by_sku.items():
            for p in stock.positions:
                last = self.last_changed.get((s, p.warehouse_code))
                assert last is not None and last.version == p.version, (s, p, last)
                assert (
                    last.on_hand_qty,
                    last.reserved_qty,
                    last.available_qty,
                    last.in_transit_qty,
                    last.presold_qty,
                    last.outbound_qty,
                    last.damaged_qty,
                    last.total_qty,
                ) == (
                    p.on_hand_qty,
                    p.reserved_qty,
                    p.available_qty,
                    p.in_transit_qty,
                    p.presold_qty,
                    p.outbound_qty,
                    p.damaged_qty,
                    p.total_qty,
                ), (last, p)

    @invariant()
    def ledger_is_complete(self) -> None:
        """(a) ERP can rebuild every bucket of every position from the ledger alone."""
        seen = set()
        for s, stock in self.center.tables.stock_by_sku.items():
            for p in stock.positions:
                for bucket, name in BUCKET_OF_POSITION.items():
                    seen.add((s, p.warehouse_code, bucket))
                    assert self.ledger.totals[(s, p.warehouse_code, bucket)] == getattr(p, name), (
                        f"ledger {bucket} of {s}@{p.warehouse_code} sums to "
                        f"{self.ledger.totals[(s, p.warehouse_code, bucket)]}, position says {getattr(p, name)}"
                    )
        stray = {k: v for k, v in self.ledger.totals.items() if k not in seen and v}
        assert not stray, f"ledger totals for positions that do not exist: {stray}"
        for movement in PURE_MOVES:
            assert self.ledger.by_movement[movement] == 0, f"{movement} entries do not net to zero"

    @invariant()
    def units_are_conserved(self) -> None:
        """(b) on hand + damaged + outbound + delivered + our units in transit
        == received + returned + found - lost - disposed, over the whole network.

        Our units in transit are the outstanding quantities of the documents they travel
        under, signed: a receipt that arrives before its dispatch or failure is recorded
        leaves a credit (negative outstanding) - the units are on the destination shelf
        and still on the books of the source until the dispatch arrives.
        """
        t = self.center.tables
        ours = self.our_documents()
        inside = sum(
            getattr(p, BUCKET_OF_POSITION[bucket])
            for stock in t.stock_by_sku.values()
            for p in stock.positions
            for bucket in INSIDE
        )
        travelling = sum(e.outstanding_qty for key, e in t.expectations_by_key.items() if key in ours)
        flows = self.ledger.flows(ours)
        assert inside + travelling == sum(flows.values()), (
            f"units held {inside} + ours in transit {travelling} != flows {dict(flows)}"
        )

    def our_documents(self) -> set[DocumentKey]:
        """Transfers at their destination (the WMS told us: TransferDispatched is always
        applied) and failed deliveries at their origin (only those the core accepted, which
        its DELIVERY_FAILED ledger entries show)."""
        ours: set[DocumentKey] = {
            (line.sku, event.to_warehouse_code, event.transfer_no)
            for event in self.submitted
            if isinstance(event, TransferDispatched)
            for line in event.lines
        }
        ours.update(
            (e.sku, e.warehouse_code, e.document_no)
            for e in self.ledger.entries.values()
            if e.movement_type == M.DELIVERY_FAILED and e.bucket == B.OUTBOUND
        )
        return ours

    @invariant()
    def orders_mirror_their_reservations(self) -> None:
        t = self.center.tables
        holders: dict[tuple[str, str], str] = {}
        for order in t.orders_by_no.values():
            for line in order.lines:
                r = t.reservation(line.sku, order.order_no)
                if line.state != LineState.RESERVED:
                    assert r is None, f"{order.order_no} line {line.sku} is {line.state} but holds {r}"
                    continue
                holders[(line.sku, order.order_no)] = order.order_no
                if r is None:
                    assert (line.reserved_qty, line.presold_qty) == (0, 0), (order.order_no, line)
                else:
                    assert (r.warehouse_code, r.total_reserved_qty, r.presold_qty, r.short_qty, r.splits) == (
                        line.warehouse_code,
                        line.reserved_qty,
                        line.presold_qty,
                        line.short_qty,
                        line.splits,
                    ), f"order {order.order_no} line {line} disagrees with reservation {r}"
        orphans = [k for k in t.reservations_by_key if k not in holders]
        assert not orphans, f"reservations no order line holds: {orphans}"

    @invariant()
    def orders_were_announced(self) -> None:
        for order in self.center.tables.orders_by_no.values():
            status, version = self.announced_status.get(order.order_no, (None, 0))
            assert status == order.status, f"{order.order_no} is {order.status}, the OMS heard {status}"


# No explicit settings: the active hypothesis profile (tests/unit/conftest.py) sizes the run.
TestCoreLaws = CoreLaws.TestCase
