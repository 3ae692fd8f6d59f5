"""A reproducible day of source-system traffic: what the OMS, WMS and TMS would publish.

``generate_day(seed, orders, skus, warehouses)`` yields validated input events in publishing
order, ``occurredAt`` advancing through one simulated day: OMS orders (1-5 lines, Zipf-like SKU
popularity, presale, gift, pay-later ones paid or left to expire), cancellations and returns;
WMS opening stock, ASNs and receipts, shipments of what was instructed, adjustments, transfers,
counts, disposals, refused parcels and return inspections; TMS tracking and return pickups.
``BACKLOG`` adds retries and odd routes (re-sent documents, duplicate eventIds, returns inspected
elsewhere, short closing receipts). Causal: every event is fed to a shadow
``tables.center.InventoryCenter`` and the systems act only on what it shows (why:
docs/decisions.md, "The simulator's shadow"). Pure: no clock, no I/O, one seeded random stream,
no iteration over hashed sets, so the same arguments give the same events, byte for byte.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from functools import partial
from typing import TypeGuard

from schemas.base import Event
from schemas.inputs import (
    AdjustmentReason,
    Consignee,
    CountedLine,
    DamagedDisposed,
    Delivered,
    DeliveryFailed,
    Disposition,
    GoodsReceived,
    InboundAnnounced,
    InspectedLine,
    InTransit,
    OrderCancelled,
    OrderCreated,
    OrderItem,
    OrderPaid,
    OrderShipped,
    OrderType,
    OutForDelivery,
    PickedUp,
    ReceivedLine,
    ReturnInspected,
    ReturnPickedUp,
    ReturnRequested,
    StockAdjusted,
    StockLine,
    StockSnapshot,
    TimeRequirement,
    TransferDispatched,
    TransferReceived,
)
from schemas.outputs import OrderStatus, OutboundInstruction
from tables.center import InventoryCenter
from tables.state import Position, ShipmentState

CHINA = timezone(timedelta(hours=8))
DEFAULT_DAY = date(2025, 11, 22)  # the seed's day
DAY_S = 24 * 3600
CENT = Decimal("0.01")
OPENING_PREFIX = "OPEN"
MINUTE = 60
HOUR = 3600

# Orders per hour of the day, relative: a quiet night, a morning rise, the evening peak.
HOURLY_ORDERS = (
    1.0,
    0.6,
    0.4,
    0.3,
    0.3,
    0.4,
    0.8,
    1.5,
    2.5,
    3.5,
    4.5,
    4.5,
    4.0,
    3.5,
    3.5,
    3.5,
    3.5,
    3.5,
    4.0,
    5.0,
    6.0,
    6.5,
    5.0,
    2.5,
)
LINES_PER_ORDER = {1: 45, 2: 25, 3: 15, 4: 10, 5: 5}  # lines: relative frequency
UNITS_PER_LINE = {1: 60, 2: 25, 3: 10, 4: 3, 6: 2}
BULK_UNITS = (10, 40)  # a business customer's line
CITIES = (
    ("北京市朝阳区", "北京"),
    ("上海市浦东新区", "上海"),
    ("广州市天河区", "广州"),
    ("深圳市南山区", "深圳"),
    ("杭州市西湖区", "杭州"),
    ("成都市武侯区", "成都"),
    ("武汉市洪山区", "武汉"),
    ("西安市雁塔区", "西安"),
)
NAMES = ("张三", "李四", "王五", "赵六", "钱七", "孙八", "周九", "吴十", "郑一", "冯二", "陈晨", "林琳")
CARRIERS = ("SF", "ZTO", "YTO", "JD", "EMS")
# Minutes from an outbound instruction to the parcel leaving, by the order's time requirement.
PICK_MINUTES = {
    TimeRequirement.URGENT: (10, 40),
    TimeRequirement.EXPRESS: (20, 90),
    TimeRequirement.STANDARD: (40, 240),
}
S = OrderStatus
OPEN = (S.PENDING, S.RESERVED, S.OUTBOUND_REQUESTED)


def _draw(rng: random.Random, frequencies: dict[int, int]) -> int:
    return rng.choices(list(frequencies), weights=list(frequencies.values()))[0]


def _mean(frequencies: dict[int, int]) -> float:
    return sum(n * w for n, w in frequencies.items()) / sum(frequencies.values())


@dataclass(frozen=True)
class Mix:
    """How the day behaves. The defaults aim at a busy, healthy day: stock replenished ahead
    of demand, a few percent of orders rejected for stock."""

    zipf_exponent: float = 1.1  # SKU popularity: weight of rank r is 1 / r**s
    presale: float = 0.04  # orders of units still on an ASN
    gift: float = 0.03
    bulk_line: float = 0.01  # lines of 10-40 units
    named_warehouse: float = 0.25  # orders the OMS routes to the customer's regional warehouse
    pay_later: float = 0.15  # orders created unpaid, with a payment window
    never_paid: float = 0.35  # of the pay-later orders: left to expire
    payment_window_s: int = 30 * MINUTE
    cancelled: float = 0.04  # customers cancelling before shipment
    split_parcel: float = 0.05  # multi-line instructions shipped as two parcels
    delivery_failed: float = 0.03
    returned: float = 0.1  # delivered parcels the customer sends back
    damaged_unit: float = 0.2  # a returned unit found damaged
    opening_cover: float = 0.6  # opening stock, as a share of the day's expected demand
    assortment: float = 0.7  # share of positions of slow SKUs stocked at opening
    replenish_every_s: int = 2 * HOUR
    replenish_horizon: float = 1.0  # stock kept for this share of a day's demand
    safety_units: int = 3  # and at least this many units at every position
    asn_short: float = 0.08  # ASN lines received short
    asn_damaged: float = 0.05  # ASN lines with a damaged unit or two
    adjustments: float = 0.02  # per order
    transfers: float = 0.01  # per order
    snapshots_per_warehouse: int = 2
    snapshot_drift: float = 0.1  # counted lines that differ from the books
    disposals_per_warehouse: int = 2
    # What a day drained as a backlog must also survive; all off by default.
    resent_document: float = 0.0  # stock documents a WMS retry sends again under a new eventId
    redelivered: float = 0.0  # events a producer retry publishes twice under the same eventId
    return_elsewhere: float = 0.0  # returns inspected at another warehouse than the pickup named
    transfer_short: float = 0.0  # transfer lines received short (the receipt closes the transfer)
    parcel_back_short: float = 0.0  # failed parcels received back short (the receipt closes them)


# A day whose reservation decisions do not depend on how a pipeline interleaves its input
# topics, so that the pipeline must end exactly where the shadow ends (quantities; versions
# may not): ample stock at every position (no order competes for the last unit) and every
# order routed to a named warehouse (no source picked by whichever reservation came first).
CALM = Mix(
    named_warehouse=1.0,
    assortment=1.0,
    opening_cover=10.0,
    bulk_line=0.0,
    replenish_horizon=20.0,  # ASNs all day long, and presales against them
    snapshots_per_warehouse=0,
    returned=0.0,
    delivery_failed=0.1,
)


# A day as a pipeline drains it after a restart: the same events, plus what retries and odd
# routes add - stock documents re-sent under a new eventId, events published twice under the
# same one, returns inspected at another warehouse, transfers and refused parcels received
# short - with more of the flows that cross topics (transfers, failures, returns, counts
# with drift). No pay-later orders: a payment window is judged on the clock that reads it.
BACKLOG = Mix(
    pay_later=0.0,
    transfers=0.08,
    adjustments=0.05,
    delivery_failed=0.1,
    returned=0.3,
    damaged_unit=0.3,
    snapshots_per_warehouse=3,
    snapshot_drift=0.3,
    disposals_per_warehouse=3,
    resent_document=0.15,
    redelivered=0.03,
    return_elsewhere=0.3,
    transfer_short=0.3,
    parcel_back_short=0.5,
)

# The stock documents a WMS may send again under a new eventId: each is applied once per
# document number (receiptNo, asnNo, transferNo, adjustmentNo, snapshotId, disposalNo).
RESENDABLE = (
    GoodsReceived,
    InboundAnnounced,
    StockAdjusted,
    TransferDispatched,
    TransferReceived,
    StockSnapshot,
    DamagedDisposed,
)


@dataclass(frozen=True)
class DayParams:
    seed: int = 1
    orders: int = 2000
    skus: int = 300
    warehouses: int = 3
    day: date = DEFAULT_DAY
    tag: str | None = None  # in every id and document number; default S<seed>
    sku_prefix: str = "SKU"
    mix: Mix = field(default_factory=Mix)

    @property
    def id_tag(self) -> str:
        return self.tag if self.tag is not None else f"S{self.seed}"


@dataclass
class _Parcel:
    shipment_no: str
    order_no: str
    warehouse_code: str
    lines: list[tuple[str, int]]
    waybill_no: str
    city: int


class _Agenda:
    """What happens when: a heap of (second of the day, arrival, action)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[[], None]]] = []
        self._arrival = itertools.count()

    def at(self, second: int, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (second, next(self._arrival), action))

    def pop(self) -> tuple[int, Callable[[], None]] | None:
        if not self._heap:
            return None
        second, _, action = heapq.heappop(self._heap)
        return second, action


class DaySimulation:
    """The OMS, WMS and TMS of one day, acting on the shadow's state. ``events()`` runs the
    day; ``shadow`` is the reference model fed every event, readable afterwards."""

    def __init__(self, params: DayParams, keep_outputs: bool = False) -> None:
        if params.orders < 0 or params.skus < 1 or params.warehouses < 1:
            raise ValueError("orders >= 0, skus >= 1 and warehouses >= 1")
        self.params = params
        self.mix = params.mix
        self.rng = random.Random(params.seed)
        self.shadow = InventoryCenter()
        self.keep_outputs = keep_outputs  # False: forget the shadow's outputs once read (memory)
        self.counts: Counter[str] = Counter()
        self.now = 0
        self.day_start = datetime.combine(params.day, time(0), tzinfo=CHINA)
        self._agenda = _Agenda()
        self._pending: list[Event] = []
        self._outputs_read = 0
        self._serial = itertools.count(1)
        self._documents: Counter[str] = Counter()
        self._open_asns: dict[str, tuple[str, list[tuple[str, int]]]] = {}
        self._order_city: dict[str, int] = {}
        self._catalog()

    # --- the catalog ---------------------------------------------------------------------

    def _catalog(self) -> None:
        p, rng = self.params, self.rng
        self.warehouses = [f"WH{n:03d}" for n in range(1, p.warehouses + 1)]
        self.skus = [f"{p.sku_prefix}{n:05d}" for n in range(1, p.skus + 1)]
        # Popularity by rank; which SKU holds which rank is shuffled, as in a real catalog.
        ranked = list(self.skus)
        rng.shuffle(ranked)
        self.by_popularity = ranked
        weights: list[float] = [1.0 / (rank**self.mix.zipf_exponent) for rank in range(1, len(ranked) + 1)]
        total = sum(weights)
        self.popularity = {sku: w / total for sku, w in zip(ranked, weights, strict=True)}
        self._cumulative = list(itertools.accumulate(w / total for w in weights))
        self.prices = {sku: (Decimal(rng.randint(190, 99_900)) / 100).quantize(CENT) for sku in self.skus}
        shares = [1.0 / (1 + 0.3 * n) for n in range(p.warehouses)]
        self.warehouse_share = {wh: s / sum(shares) for wh, s in zip(self.warehouses, shares, strict=True)}
        self.units_per_day = p.orders * _mean(LINES_PER_ORDER) * _mean(UNITS_PER_LINE)

    def demand(self, sku: str, warehouse_code: str) -> float:
        """Expected units of a day at one position."""
        return self.units_per_day * self.popularity[sku] * self.warehouse_share[warehouse_code]

    # --- plumbing ------------------------------------------------------------------------

    def at(self, second: int) -> datetime:
        return self.day_start + timedelta(seconds=second)

    def later(self, low_minutes: float, high_minutes: float, action: Callable[[], None]) -> None:
        self._agenda.at(self.now + int(self.rng.uniform(low_minutes, high_minutes) * MINUTE), action)

    def document_no(self, prefix: str) -> str:
        self._documents[prefix] += 1
        return f"{prefix}-{self.params.id_tag}-{self._documents[prefix]:06d}"

    def emit(self, cls: type[Event], **fields: object) -> Event:
        """Validate, feed the shadow, queue for the caller, and react to what the inventory
        center answered (the WMS picks what it was instructed to ship)."""
        serial = next(self._serial)
        event = cls(event_id=f"{self.params.id_tag}-{serial:08d}", occurred_at=self.at(self.now), **fields)
        self.shadow.submit(event)
        self._pending.append(event)
        self.counts[cls.__name__] += 1
        self._read_outputs()
        self._retry(event)
        return event

    def _retry(self, event: Event) -> None:
        """Maybe publish ``event`` again later: a WMS retry under a new eventId (same
        document, same occurredAt), or a producer retry under the same eventId."""
        mix, rng = self.mix, self.rng
        if mix.resent_document and isinstance(event, RESENDABLE) and rng.random() < mix.resent_document:
            self.later(1, 30, lambda: self.resend(event))
        if mix.redelivered and rng.random() < mix.redelivered:
            self.later(0, 5, lambda: self.redeliver(event))

    def resend(self, event: Event) -> None:
        """The same document under a new eventId: the shadow reads it as the pipeline will."""
        serial = next(self._serial)
        again = event.model_copy(update={"event_id": f"{self.params.id_tag}-{serial:08d}"})
        self.shadow.submit(again)
        self._pending.append(again)
        self.counts[f"{type(event).__name__} re-sent"] += 1
        self._read_outputs()

    def redeliver(self, event: Event) -> None:
        """The same message again, eventId included. The pipeline's receipts drop it; the
        shadow, which keeps no receipts (memory), is not fed it: it would change nothing."""
        self._pending.append(event)
        self.counts[f"{type(event).__name__} redelivered"] += 1

    def _read_outputs(self) -> None:
        outputs = self.shadow.outputs
        for output in outputs[self._outputs_read :]:
            if isinstance(output, OutboundInstruction):
                low, high = PICK_MINUTES[output.time_requirement]
                self.later(low, high, partial(self.pick_and_ship, output))
        if self.keep_outputs:
            self._outputs_read = len(outputs)
        else:
            outputs.clear()

    def position(self, sku: str, warehouse_code: str) -> Position:
        return self.shadow.position(sku, warehouse_code) or Position(warehouse_code=warehouse_code)

    def popular_sku(self) -> str:
        rank = bisect.bisect_left(self._cumulative, self.rng.random())
        return self.by_popularity[min(rank, len(self.by_popularity) - 1)]

    # --- the day -------------------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        """Run the day; yields each event as the source systems publish it."""
        self._plan()
        while (item := self._agenda.pop()) is not None:
            second, action = item
            if second >= DAY_S:
                break
            self.now = second
            self.shadow.expire_due(self.at(second))  # the shadow's timer, on simulated time
            action()
            # The shadow never sees a message twice, so it needs no message receipts (they
            # hold every output: a day's worth would take gigabytes). Receipts that hold no
            # output stay: among them the one per stock document a re-sent copy is checked
            # against.
            receipts = self.shadow.tables.receipts_by_id
            for message_id in [k for k, r in receipts.items() if r.events]:
                del receipts[message_id]
            yield from self._pending
            self._pending.clear()
        self.shadow.expire_due(self.at(DAY_S))

    def _plan(self) -> None:
        p, mix, rng = self.params, self.mix, self.rng
        for n, warehouse_code in enumerate(self.warehouses):
            self._agenda.at(60 + n * 60, partial(self.opening_stock, warehouse_code))
            first = HOUR + n * 20 * MINUTE
            for second in range(first, DAY_S - 3 * HOUR, mix.replenish_every_s):
                self._agenda.at(second, partial(self.replenish, warehouse_code))
            for k in range(mix.snapshots_per_warehouse):
                second = 2 * HOUR + n * 10 * MINUTE + k * (20 * HOUR // max(1, mix.snapshots_per_warehouse))
                self._agenda.at(second, partial(self.count_zone, warehouse_code, k))
            for k in range(mix.disposals_per_warehouse):
                second = 12 * HOUR + n * 15 * MINUTE + k * (10 * HOUR // max(1, mix.disposals_per_warehouse))
                self._agenda.at(second, partial(self.dispose, warehouse_code))
        arrivals = sorted(
            max(15 * MINUTE, rng.choices(range(24), weights=HOURLY_ORDERS)[0] * HOUR + rng.randrange(HOUR))
            for _ in range(p.orders)
        )
        for n, second in enumerate(arrivals, start=1):
            self._agenda.at(second, partial(self.create_order, n))
        for action, share in ((self.adjust, mix.adjustments), (self.transfer, mix.transfers)):
            for _ in range(round(p.orders * share)):
                self._agenda.at(rng.randrange(6 * HOUR, 23 * HOUR), action)

    # --- OMS -----------------------------------------------------------------------------

    def create_order(self, n: int) -> None:
        mix, rng = self.mix, self.rng
        order_no = f"OMS{self.params.day:%Y%m%d}-{self.params.id_tag}-{n:06d}"
        roll = rng.random()
        presale_lines = self._presale_lines() if roll < mix.presale else None
        if presale_lines:
            order_type, lines = OrderType.PRESALE, presale_lines
        else:
            order_type = OrderType.GIFT if roll > 1 - mix.gift else OrderType.NORMAL
            lines = [(sku, qty, None) for sku, qty in self._order_lines()]
        city = rng.randrange(len(CITIES))
        self._order_city[order_no] = city
        # A routed order names the customer's regional warehouse; a routed presale names,
        # per line, the warehouse its supply is announced to.
        routed = rng.random() < mix.named_warehouse
        regional = self.warehouses[city % len(self.warehouses)] if routed and not presale_lines else None
        items = [
            OrderItem(
                sku=sku,
                quantity=qty,
                warehouse_code=inbound_to if routed else None,
                price=Decimal("0.00") if order_type == OrderType.GIFT else self.prices[sku],
            )
            for sku, qty, inbound_to in lines
        ]
        pay_later = order_type == OrderType.NORMAL and rng.random() < mix.pay_later
        expires = self.at(self.now + mix.payment_window_s) if pay_later else None
        self.emit(
            OrderCreated,
            order_no=order_no,
            order_type=order_type,
            consignee=self._consignee(city),
            items=items,
            total_amount=sum((item.price * item.quantity for item in items), Decimal("0.00")),
            time_requirement=rng.choices(list(TimeRequirement), weights=(70, 25, 5))[0],
            warehouse_code=regional,
            reservation_expires_at=expires,
        )
        if pay_later and rng.random() >= mix.never_paid:
            self.later(1, mix.payment_window_s * 0.8 / MINUTE, lambda: self.pay(order_no))
        if rng.random() < mix.cancelled:
            self.later(2, 90, lambda: self.cancel(order_no))

    def _order_lines(self) -> list[tuple[str, int]]:
        rng = self.rng
        wanted = min(len(self.skus), _draw(rng, LINES_PER_ORDER))
        chosen: dict[str, None] = {}
        while len(chosen) < wanted:
            chosen[self.popular_sku()] = None
        return [(sku, self._units()) for sku in chosen]

    def _units(self) -> int:
        if self.rng.random() < self.mix.bulk_line:
            return self.rng.randint(*BULK_UNITS)
        return _draw(self.rng, UNITS_PER_LINE)

    def _presale_lines(self) -> list[tuple[str, int, str | None]]:
        """Units announced and not yet received: what a presale sells (sku, units, the
        warehouse they are announced to)."""
        inbound = [
            (sku, qty, warehouse_code) for warehouse_code, lines in self._open_asns.values() for sku, qty in lines
        ]
        if not inbound:
            return []
        chosen: dict[str, tuple[str, int, str | None]] = {}
        for sku, qty, warehouse_code in self.rng.sample(inbound, min(len(inbound), self.rng.randint(1, 2))):
            chosen.setdefault(sku, (sku, min(qty, self.rng.randint(1, 3)), warehouse_code))
        return list(chosen.values())

    def _consignee(self, city: int) -> Consignee:
        rng = self.rng
        district, _ = CITIES[city]
        return Consignee(
            name=rng.choice(NAMES),
            phone=f"1{rng.choice('3578')}{rng.randrange(10**9):09d}",
            address=f"{district}{rng.randint(1, 300)}号",
        )

    def _status(self, order_no: str) -> OrderStatus | None:
        order = self.shadow.order(order_no)
        return order.status if order is not None else None

    def pay(self, order_no: str) -> None:
        if self._status(order_no) in (S.PENDING, S.RESERVED):
            self.emit(OrderPaid, order_no=order_no)

    def cancel(self, order_no: str) -> None:
        if self._status(order_no) in OPEN:  # once shipped, the OMS no longer offers a cancel
            self.emit(OrderCancelled, order_no=order_no, reason="customer cancelled")

    # --- WMS: outbound -------------------------------------------------------------------

    def pick_and_ship(self, instruction: OutboundInstruction) -> None:
        """Ship what the instruction asked for, if the order still holds it here (a cancel
        may have come in between)."""
        order = self.shadow.order(instruction.order_no)
        if order is None or order.status not in (S.OUTBOUND_REQUESTED, S.PARTIALLY_SHIPPED):
            return
        lines = []
        for wanted in instruction.lines:
            line = order.line(wanted.sku)
            # A line split across warehouses holds a part at each: this warehouse ships its own.
            if line is None or line.held_at(instruction.warehouse_code) < wanted.quantity:
                return
            lines.append((wanted.sku, wanted.quantity))
        if len(lines) > 1 and self.rng.random() < self.mix.split_parcel:
            first = self.rng.randint(1, len(lines) - 1)
            self.ship(instruction.order_no, instruction.warehouse_code, lines[:first])
            self.later(10, 60, lambda: self.ship(instruction.order_no, instruction.warehouse_code, lines[first:]))
        else:
            self.ship(instruction.order_no, instruction.warehouse_code, lines)

    def ship(self, order_no: str, warehouse_code: str, lines: list[tuple[str, int]]) -> None:
        carrier = self.rng.choice(CARRIERS)
        parcel = _Parcel(
            shipment_no=self.document_no("SH"),
            order_no=order_no,
            warehouse_code=warehouse_code,
            lines=lines,
            waybill_no=self.document_no(carrier),
            city=self._order_city.get(order_no, 0),
        )
        self.emit(
            OrderShipped,
            shipment_no=parcel.shipment_no,
            order_no=order_no,
            warehouse_code=warehouse_code,
            lines=[StockLine(sku=sku, quantity=qty) for sku, qty in lines],
            waybill_no=parcel.waybill_no,
            carrier=carrier,
        )
        self.later(20, 90, lambda: self.track(parcel, PickedUp))

    # --- TMS -----------------------------------------------------------------------------

    def _on_its_way(self, parcel: _Parcel) -> bool:
        order = self.shadow.order(parcel.order_no)
        shipment = order.shipment(parcel.shipment_no) if order else None
        return shipment is not None and shipment.state == ShipmentState.SHIPPED

    def track(self, parcel: _Parcel, step: type[Event]) -> None:
        if not self._on_its_way(parcel):
            return
        _, city = CITIES[parcel.city]
        locations: dict[type[Event], str] = {PickedUp: f"{parcel.warehouse_code}仓", InTransit: f"{city}分拨中心"}
        location = locations.get(step, f"{city}")
        self.emit(
            step,
            order_no=parcel.order_no,
            shipment_no=parcel.shipment_no,
            waybill_no=parcel.waybill_no,
            location=location,
        )
        if step is PickedUp:
            self.later(60, 180, lambda: self.track(parcel, InTransit))
        elif step is InTransit:
            self.later(60, 180, lambda: self.track(parcel, OutForDelivery))
        else:
            self.later(20, 120, lambda: self.hand_over(parcel))

    def hand_over(self, parcel: _Parcel) -> None:
        if not self._on_its_way(parcel):
            return
        common = {"order_no": parcel.order_no, "shipment_no": parcel.shipment_no, "waybill_no": parcel.waybill_no}
        if self.rng.random() < self.mix.delivery_failed:
            self.emit(DeliveryFailed, **common, reason="收件人拒收")
            self.later(60, 240, lambda: self.parcel_back(parcel))
            return
        self.emit(Delivered, **common, signed_by="本人")
        if self.rng.random() < self.mix.returned:
            self.later(30, 240, lambda: self.request_return(parcel))

    # --- returns and failed parcels ------------------------------------------------------

    def parcel_back(self, parcel: _Parcel) -> None:
        """The WMS receives a refused parcel against its shipment number; sometimes short
        (the receipt closes the shipment: what is missing will not come)."""
        lines = parcel.lines
        if self.mix.parcel_back_short and self.rng.random() < self.mix.parcel_back_short:
            lines = self._short(lines)
        self.emit(
            GoodsReceived,
            receipt_no=self.document_no("RB"),
            asn_no=parcel.shipment_no,
            warehouse_code=parcel.warehouse_code,
            lines=[ReceivedLine(sku=sku, sellable_qty=qty) for sku, qty in lines],
        )

    def _short(self, lines: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """``lines`` with up to half of one line's units missing. A line arrives with one
        unit at least: the receipt closes the document per SKU it names."""
        rng = self.rng
        several = [n for n, (_, qty) in enumerate(lines) if qty > 1]
        if not several:
            return lines
        n = rng.choice(several)
        sku, qty = lines[n]
        return lines[:n] + [(sku, qty - rng.randint(1, qty // 2))] + lines[n + 1 :]

    def request_return(self, parcel: _Parcel) -> None:
        rng = self.rng
        picked = rng.sample(parcel.lines, rng.randint(1, len(parcel.lines)))
        items = [(sku, rng.randint(1, qty)) for sku, qty in picked]
        return_no = self.document_no("RT")
        self.emit(
            ReturnRequested,
            order_no=parcel.order_no,
            return_no=return_no,
            items=[StockLine(sku=sku, quantity=qty) for sku, qty in items],
            reason="不想要了",
        )
        self.later(30, 180, lambda: self.pick_up_return(parcel, return_no, items))

    def pick_up_return(self, parcel: _Parcel, return_no: str, items: list[tuple[str, int]]) -> None:
        self.emit(
            ReturnPickedUp,
            order_no=parcel.order_no,
            return_no=return_no,
            waybill_no=self.document_no("RW"),
            warehouse_code=parcel.warehouse_code,
        )
        self.later(60, 180, lambda: self.inspect_return(parcel, return_no, items))

    def inspect_return(self, parcel: _Parcel, return_no: str, items: list[tuple[str, int]]) -> None:
        lines = []
        for sku, qty in items:
            damaged = sum(self.rng.random() < self.mix.damaged_unit for _ in range(qty))
            if qty - damaged:
                lines.append(InspectedLine(sku=sku, quantity=qty - damaged, disposition=Disposition.SELLABLE))
            if damaged:
                lines.append(InspectedLine(sku=sku, quantity=damaged, disposition=Disposition.DAMAGED))
        warehouse_code = parcel.warehouse_code
        if self.mix.return_elsewhere and len(self.warehouses) > 1 and self.rng.random() < self.mix.return_elsewhere:
            warehouse_code = self.rng.choice([wh for wh in self.warehouses if wh != parcel.warehouse_code])
        self.emit(
            ReturnInspected,
            return_no=return_no,
            order_no=parcel.order_no,
            warehouse_code=warehouse_code,
            lines=lines,
        )

    # --- WMS: inbound --------------------------------------------------------------------

    def opening_stock(self, warehouse_code: str) -> None:
        """The shelves as the day starts, as blind receipts (the pipeline may be empty)."""
        rng, mix = self.rng, self.mix
        lines = []
        for sku in self.skus:
            carried = self.popularity[sku] * len(self.skus) > 0.2 or rng.random() < mix.assortment
            units = round(self.demand(sku, warehouse_code) * mix.opening_cover * rng.uniform(0.5, 1.5))
            if carried and units > 0:
                lines.append(ReceivedLine(sku=sku, sellable_qty=min(units, 1_000_000)))
        for start in range(0, len(lines), 100):
            self.emit(
                GoodsReceived,
                receipt_no=self.document_no(OPENING_PREFIX),
                warehouse_code=warehouse_code,
                lines=lines[start : start + 100],
            )

    def replenish(self, warehouse_code: str) -> None:
        """The buyer's run: announce supply for positions below their reorder point."""
        mix = self.mix
        wanted = []
        for sku in self.by_popularity:
            p = self.position(sku, warehouse_code)
            cover = max(0, p.available_qty) + p.in_transit_qty - p.presold_qty
            target = self.demand(sku, warehouse_code) * mix.replenish_horizon
            if cover < max(0.6 * target, mix.safety_units):
                units = max(6, math.ceil(1.2 * target + mix.safety_units - cover))
                wanted.append((sku, min(units, 1_000_000)))
        for start in range(0, len(wanted), 100):
            asn_no = self.document_no("ASN")
            lines = wanted[start : start + 100]
            self.emit(
                InboundAnnounced,
                asn_no=asn_no,
                warehouse_code=warehouse_code,
                lines=[StockLine(sku=sku, quantity=qty) for sku, qty in lines],
            )
            self._open_asns[asn_no] = (warehouse_code, lines)
            self.later(60, 180, partial(self.receive_asn, asn_no))

    def receive_asn(self, asn_no: str) -> None:
        rng, mix = self.rng, self.mix
        warehouse_code, announced = self._open_asns.pop(asn_no)
        lines = []
        for sku, qty in announced:
            sellable, damaged = qty, 0
            if rng.random() < mix.asn_short:
                sellable -= rng.randint(1, max(1, qty // 10))
            if rng.random() < mix.asn_damaged:
                damaged = min(sellable, rng.randint(1, 2))
                sellable -= damaged
            if sellable or damaged:
                lines.append(ReceivedLine(sku=sku, sellable_qty=sellable, damaged_qty=damaged))
        if lines:
            self.emit(
                GoodsReceived,
                receipt_no=self.document_no("RC"),
                asn_no=asn_no,
                warehouse_code=warehouse_code,
                lines=lines,
            )

    # --- WMS: stock care -----------------------------------------------------------------

    def adjust(self) -> None:
        rng = self.rng
        warehouse_code = rng.choice(self.warehouses)
        sku = self.popular_sku()
        available = self.position(sku, warehouse_code).available_qty
        reason = rng.choices(list(AdjustmentReason), weights=(30, 35, 15, 20))[0]
        units = rng.randint(1, 3)
        taking = reason in (AdjustmentReason.DAMAGE, AdjustmentReason.LOSS) or (
            reason == AdjustmentReason.CYCLE_COUNT and rng.random() < 0.5
        )
        if taking and available < units:  # nothing unreserved to take: the count found some
            reason, taking = AdjustmentReason.FOUND, False
        self.emit(
            StockAdjusted,
            adjustment_no=self.document_no("ADJ"),
            warehouse_code=warehouse_code,
            sku=sku,
            delta=-units if taking else units,
            reason=reason,
        )

    def transfer(self) -> None:
        """Rebalance: move unreserved units from the fullest warehouse to the emptiest."""
        if len(self.warehouses) < 2:
            return
        rng = self.rng
        route: tuple[str, str] | None = None
        lines: list[tuple[str, int]] = []
        for _ in range(8):
            sku = self.popular_sku()
            if any(sku == s for s, _ in lines):
                continue
            available = {wh: self.position(sku, wh).available_qty for wh in self.warehouses}
            source = max(self.warehouses, key=lambda wh: (available[wh], wh))
            target = min(self.warehouses, key=lambda wh: (available[wh], wh))
            if route is not None and (source, target) != route:
                continue
            gap = available[source] - available[target]
            if gap >= 6:
                route = (source, target)
                lines.append((sku, min(200, gap // 2)))
            if len(lines) >= rng.randint(1, 4):
                break
        if route is None:
            return
        transfer_no = self.document_no("TRF")
        self.emit(
            TransferDispatched,
            transfer_no=transfer_no,
            from_warehouse_code=route[0],
            to_warehouse_code=route[1],
            lines=[StockLine(sku=sku, quantity=qty) for sku, qty in lines],
        )
        self.later(120, 300, lambda: self.receive_transfer(transfer_no, route[1], lines))

    def receive_transfer(self, transfer_no: str, warehouse_code: str, lines: list[tuple[str, int]]) -> None:
        if self.mix.transfer_short and self.rng.random() < self.mix.transfer_short:
            lines = self._short(lines)
        received = []
        for sku, qty in lines:
            damaged = 1 if qty > 1 and self.rng.random() < 0.05 else 0
            received.append(ReceivedLine(sku=sku, sellable_qty=qty - damaged, damaged_qty=damaged))
        self.emit(TransferReceived, transfer_no=transfer_no, to_warehouse_code=warehouse_code, lines=received)

    def count_zone(self, warehouse_code: str, zone: int) -> None:
        """A cycle count of one zone (a quarter of the catalog): the count is the truth,
        sometimes off the books by a unit or two (never below what is reserved)."""
        rng, mix = self.rng, self.mix
        lines = []
        for sku in self.skus[zone % 4 :: 4]:
            p = self.shadow.position(sku, warehouse_code)
            if p is None:
                continue
            counted = p.on_hand_qty
            if rng.random() < mix.snapshot_drift:
                drift = rng.choice((-2, -1, 1, 2))
                if drift > 0 or p.available_qty >= -drift:
                    counted += drift
            lines.append(CountedLine(sku=sku, counted_qty=counted))
        if lines:
            self.emit(
                StockSnapshot,
                snapshot_id=self.document_no("CNT"),
                warehouse_code=warehouse_code,
                counted_at=self.at(self.now),
                lines=lines[:2000],
            )

    def dispose(self, warehouse_code: str) -> None:
        disposed = 0
        for sku in self.skus:
            p = self.shadow.position(sku, warehouse_code)
            if p is not None and p.damaged_qty > 0:
                self.emit(
                    DamagedDisposed,
                    disposal_no=self.document_no("DSP"),
                    warehouse_code=warehouse_code,
                    sku=sku,
                    quantity=p.damaged_qty,
                )
                disposed += 1
                if disposed == 3:
                    return


# --- the library interface ---------------------------------------------------------------


def generate_day(
    seed: int = 1,
    orders: int = 2000,
    skus: int = 300,
    warehouses: int = 3,
    **options: object,
) -> Iterator[Event]:
    """One simulated day of validated input events, in causal order. ``options``: the other
    fields of ``DayParams`` (``day``, ``tag``, ``sku_prefix``, ``mix``)."""
    params = DayParams(
        seed=seed,
        orders=orders,
        skus=skus,
        warehouses=warehouses,
        **options,  # type: ignore[arg-type]  # DayParams checks the names
    )
    return DaySimulation(params).events()


def is_opening_stock(event: Event) -> TypeGuard[GoodsReceived]:
    """The day's first events: the shelves as it starts. A pipeline must have applied them
    before the first order, or it rejects what the day meant to sell (the stock-movements
    topic is not ordered with the orders topic)."""
    return isinstance(event, GoodsReceived) and event.receipt_no.startswith(f"{OPENING_PREFIX}-")


def replay(events: Iterable[Event], center: InventoryCenter | None = None) -> InventoryCenter:
    """Feed a day to a reference model the way the shadow saw it: the expiry timer ticks on
    the simulated clock before each event. Quantities, versions and statuses come out as
    the shadow's (an expiry may be stamped with a later time: the shadow ticks before every
    action, even one that publishes nothing)."""
    center = center if center is not None else InventoryCenter()
    for event in events:
        center.expire_due(event.occurred_at)
        center.submit(event)
    return center


# --- the day's end ------------------------------------------------------------------------
# A pipeline that reads the day in another order than the model may take other reservation
# decisions (which order gets the last unit, from which warehouse; an order read before the
# stock it wanted is rejected). Ending the day as the OMS and WMS would - the WMS ships what
# partly shipped orders still hold, the OMS cancels every order still open - leaves no
# reservation on either side, so every position of the two can be compared.


def day_end(day: date = DEFAULT_DAY) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=CHINA)


def ship_what_is_held(center: InventoryCenter, day: date = DEFAULT_DAY) -> list[OrderShipped]:
    """A parcel per warehouse for what each partly shipped order of ``center`` still holds
    (its next parcel was due after midnight); a shipped order can no longer be cancelled."""
    parcels = []
    for order in sorted(center.tables.orders_by_no.values(), key=lambda o: o.order_no):
        if order.status != S.PARTIALLY_SHIPPED:
            continue
        held: dict[str, list[StockLine]] = {}
        for line in order.lines:
            if line.reserved_qty and line.warehouse_code:
                for part in (line.warehouse_code, *(x.warehouse_code for x in line.splits)):
                    if units := line.held_at(part):
                        held.setdefault(part, []).append(StockLine(sku=line.sku, quantity=units))
        for n, (warehouse_code, lines) in enumerate(sorted(held.items()), start=1):
            shipment_no = f"EOD-{order.order_no}-{n}"
            parcels.append(
                OrderShipped(
                    event_id=f"EOD-ship-{shipment_no}",
                    occurred_at=day_end(day),
                    shipment_no=shipment_no,
                    order_no=order.order_no,
                    warehouse_code=warehouse_code,
                    lines=lines,
                    waybill_no=f"WB-{shipment_no}",
                    carrier=CARRIERS[0],
                )
            )
    return parcels


def cancel_at_day_end(order_no: str, day: date = DEFAULT_DAY) -> OrderCancelled:
    """The OMS closes an order still open at midnight. The same id for the same order: the
    model and a pipeline may both be sent it."""
    return OrderCancelled(
        event_id=f"EOD-cancel-{order_no}",
        occurred_at=day_end(day),
        order_no=order_no,
        reason="end of day",
    )


def to_json_line(event: Event) -> str:
    """One event as a JSON line ``connectors.produce`` reads back (no newline); fields at
    their default are left out, as in ``connectors/samples/seed-day.jsonl``."""
    body = event.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return json.dumps({"eventType": type(event).__name__, **body}, ensure_ascii=False)


def iter_json_lines(events: Iterable[Event]) -> Iterator[str]:
    for event in events:
        yield to_json_line(event)


def with_mix(params: DayParams, **changes: object) -> DayParams:
    """``params`` with some knobs of its mix changed."""
    return replace(params, mix=replace(params.mix, **changes))  # type: ignore[arg-type]  # replace checks the names
