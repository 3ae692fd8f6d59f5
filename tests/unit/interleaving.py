"""The pipeline's delivery order, in memory: ``InterleavingCenter``.

``tables.center.InventoryCenter`` drains every event to quiescence before the next, so it
never sees what Kafka allows: records are ordered only within one topic-partition, and the
order agent reads three topics (``orders``, ``shipments``, ``order-inbox``) while the stock
agent reads ``stock-commands``, fed both by the order agent and by the movement router. A
``ReturnRequested`` can be read before its order's ``OrderShipped``, a reservation answer
after the order shipped, a count routed from ``stock-movements`` before a shipment's
``ShipStock``.

This center applies the same pure functions to the same tables as ``InventoryCenter``, but
keeps one FIFO per (topic, key) - the finest partitioning Kafka could give, as in
``schemas/topics.py`` - and delivers the heads of those queues in a seeded random
interleaving. Order within each queue is kept, as Kafka keeps it within a partition.

``envelopes=True`` applies the core's own messages (stock commands from the order side,
reservation answers) as the worker does now: once, by their envelope, without receipts
(streams/envelopes.py); input events and the router's commands keep their receipts.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable

from pydantic import BaseModel

from schemas.topics import ROUTES, SPECS
from streams.topics import input_key
from tables.center import MemoryTables
from tables.orders import apply_order
from tables.policy import CorePolicy
from tables.routing import is_order_scoped, stock_commands_for
from tables.state import Order, Position
from tables.stock import apply_stock

Queue = tuple[str, str]  # (topic, key)

# Which input topic carries which event (schemas/topics.py).
INPUT_TOPIC = {record: spec.name for spec in SPECS if spec.role == "input" for record in spec.records}


def input_queue(event: BaseModel) -> Queue:
    """The input topic and key an event is published under."""
    return INPUT_TOPIC[type(event).__name__], input_key(event)


def routed_queue(message: object) -> Queue:
    """The internal topic and key a message is sent under (the routing table)."""
    route = ROUTES[type(message).__name__]
    return route.spec.name, route.key(message)


class InterleavingCenter:
    """Publish input events, then deliver queued messages in a seeded random order."""

    def __init__(self, seed: int, policy: CorePolicy | None = None, envelopes: bool = False) -> None:
        self.rng = random.Random(seed)
        self.envelopes = envelopes
        # Per queue, in step with it: whether each queued message travels in an envelope.
        self._by_envelope: dict[Queue, deque[bool]] = {}
        self.policy = policy or CorePolicy()
        self.tables = MemoryTables()
        self.queues: dict[Queue, deque[BaseModel]] = {}
        self.outputs: list[object] = []
        self.delivered: list[tuple[Queue, str]] = []  # (queue, message type), for a failure's story

    # --- publishing and delivering ------------------------------------------------------

    def publish(self, event: BaseModel) -> None:
        self._enqueue(input_queue(event), event)

    def _enqueue(self, queue: Queue, message: BaseModel, by_envelope: bool = False) -> None:
        self.queues.setdefault(queue, deque()).append(message)
        self._by_envelope.setdefault(queue, deque()).append(by_envelope)

    def pending(self) -> list[Queue]:
        return sorted(q for q, messages in self.queues.items() if messages)

    def deliver(self, queue: Queue) -> BaseModel:
        """Hand the head of one queue to the agent reading that topic."""
        message = self.queues[queue].popleft()
        self.delivered.append((queue, type(message).__name__))
        topic = queue[0]
        flags = self._by_envelope.get(queue)
        by_receipt = not (flags.popleft() if flags else False)
        if topic == "stock-movements":
            self._route(message)
        elif topic == "stock-commands":
            outcome = apply_stock(self.tables, message, self.policy, by_receipt=by_receipt)  # type: ignore[arg-type]
            self.tables.store_stock(outcome)
            self._emit(outcome.events, outcome.duplicate)
        else:
            order_outcome = apply_order(self.tables, message, self.policy, by_receipt=by_receipt)
            self.tables.store_order(order_outcome)
            self._emit(order_outcome.events, order_outcome.duplicate)
        return message

    def deliver_next(self, topic: str) -> BaseModel:
        """Deliver the head of the first non-empty queue of ``topic`` (scripted tests)."""
        queue = next(q for q in self.pending() if q[0] == topic)
        return self.deliver(queue)

    def step(self) -> None:
        """Deliver the head of one non-empty queue, chosen at random."""
        self.deliver(self.rng.choice(self.pending()))

    def drain(self) -> None:
        while self.pending():
            self.step()

    def run(self, events: Iterable[BaseModel], publish_chance: float = 0.3, ship_on_instruction: bool = False) -> None:
        """Publish ``events`` in order while delivering: each turn either publishes the
        next event (with ``publish_chance``, or when nothing is queued) or delivers one
        queued message. Then drain.

        ``ship_on_instruction``: an ``OrderShipped`` is published only once its order's
        ``OrderCreated`` was read, as when the WMS ships on the pipeline's own
        ``OutboundInstruction``. Without it a day generated ahead (as the simulator does)
        can ship an order the pipeline has not read yet."""
        upcoming = deque(events)
        while upcoming:
            waits = ship_on_instruction and self._ships_unread_order(upcoming[0])
            if not self.pending() or (not waits and self.rng.random() < publish_chance):
                self.publish(upcoming.popleft())
            else:
                self.step()
        self.drain()

    def _ships_unread_order(self, event: BaseModel) -> bool:
        if type(event).__name__ != "OrderShipped":
            return False
        order = self.tables.order(event.order_no)  # type: ignore[attr-defined]
        return order is None or not order.known

    def _route(self, event: BaseModel) -> None:
        """The movement router: returns to their order, the rest split per SKU."""
        if is_order_scoped(event):
            self._enqueue(routed_queue(event), event)
        else:
            for command in stock_commands_for(event):  # type: ignore[arg-type]
                self._enqueue(routed_queue(command), command)  # external: by receipt

    def _emit(self, events: Iterable[object], duplicate: bool = False) -> None:
        """``duplicate``: a message applied before re-emits what it emitted; by envelope, its
        internal messages are not sent again (the worker's outbox already sent them)."""
        internal = self.envelopes
        for event in events:
            if not ROUTES[type(event).__name__].internal:
                self.outputs.append(event)
            elif not (internal and duplicate):
                self._enqueue(routed_queue(event), event, internal)  # type: ignore[arg-type]

    # --- reads --------------------------------------------------------------------------

    def position(self, sku: str, warehouse_code: str) -> Position | None:
        stock = self.tables.stock(sku)
        return stock.position(warehouse_code) if stock else None

    def order(self, order_no: str) -> Order | None:
        return self.tables.order(order_no)
