"""Is the worker able to do its job right now, and if not, why: the broker watch and the
readiness answer of ``/ready`` and ``/health``.

The broker watch asks for metadata every ``interval_s`` (through the record sink's producer,
off the event loop) and keeps one state (reachable or not, since when, why), logging one line
per change, never per retry; while the broker is away ``QuietWhileDown`` holds back and counts
the Kafka clients' own connection errors. ``/ready``: 200 once the broker answers, partitions
are assigned, no rebalance runs and the tables have recovered, else 503 with the reasons.
``/health`` (liveness): 200 while the process serves, with the same reasons, so that a
supervisor waits out an outage instead of restarting a worker that cannot help it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams import faust_private

log = logging.getLogger(__name__)

Probe = Callable[[float], None]  # raises when no broker answers within the timeout


@dataclass
class BrokerWatch:
    probe: Probe
    interval_s: float = 2.0
    timeout_s: float = 3.0
    reachable: bool = True
    since: float = field(default_factory=time.monotonic)
    reason: str = ""
    held_back: int = 0  # client log lines held back during the current outage
    # Called on the event loop every interval (the sink's poll: librdkafka queues its log
    # lines and delivery reports until polled, and an idle worker polls nothing else).
    tick: Callable[[], object] | None = None

    def status(self) -> dict[str, Any]:
        state = {
            "broker": "reachable" if self.reachable else "unreachable",
            "forSeconds": round(time.monotonic() - self.since, 1),
        }
        if not self.reachable:
            state["reason"] = self.reason
        return state

    def observe(self, error: str | None) -> None:
        """Record one probe's result; log a line only when the state changes."""
        now = time.monotonic()
        if error is None and not self.reachable:
            log.warning(
                "broker reachable again after %.0fs (%d client errors held back)", now - self.since, self.held_back
            )
            self.reachable, self.since, self.reason, self.held_back = True, now, "", 0
        elif error is not None and self.reachable:
            log.warning(
                "broker unreachable: %s; waiting for it (retrying every %.0fs, not ready until it answers)",
                error,
                self.interval_s,
            )
            self.reachable, self.since, self.reason = False, now, error

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        quiet_client_logs(self)
        while True:
            try:
                await loop.run_in_executor(None, self.probe, self.timeout_s)
            except Exception as exc:  # noqa: BLE001 - any failure to answer is "unreachable"
                self.observe(f"{type(exc).__name__}: {exc}"[:300])
            else:
                self.observe(None)
            if self.tick is not None:
                self.tick()
            await asyncio.sleep(self.interval_s)


# Messages the Kafka clients repeat for every connection attempt while a broker is away.
_CONNECTION_NOISE = (
    "Unable connect to node",
    "Unable to update metadata",
    "Failed fetch messages",
    "Group Coordinator Request failed",
    "Connect to ipv4",
    "Connection refused",
    "NodeNotReadyError",
    "Connection to node",
    "Failed to connect",
    "all brokers down",
    "Disconnected",
    "Coordinator dead",
    "Marking the coordinator dead",
    "Unable to request metadata",
    "Failed to send",
    "Connection reset",
    "brokers are down",
    "connection failed at",  # streams/client_errors.py's summaries: the watch speaks for the outage
)


class QuietWhileDown(logging.Filter):
    """Hold back the clients' connection errors while the watch says the broker is away."""

    CLIENTS = ("aiokafka", "librdkafka", "faust.transport", "kafka")

    def __init__(self, watch: BrokerWatch) -> None:
        super().__init__()
        self.watch = watch

    def filter(self, record: logging.LogRecord) -> bool:
        if self.watch.reachable or record.levelno >= logging.CRITICAL or not record.name.startswith(self.CLIENTS):
            return True
        message = record.getMessage()
        if any(noise in message for noise in _CONNECTION_NOISE):
            self.watch.held_back += 1
            return False
        return True


def quiet_client_logs(watch: BrokerWatch) -> None:
    """Install ``QuietWhileDown`` on every handler of the root logger (a filter on a logger
    does not see its children's records; a handler sees them all). Call it once logging is
    set up (Faust's worker configures it when it starts)."""
    quiet = QuietWhileDown(watch)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, QuietWhileDown) for f in handler.filters):
            handler.addFilter(quiet)


def readiness(app: Any, watch: BrokerWatch | None) -> list[str]:
    """Why this worker is not ready (empty: ready)."""
    reasons: list[str] = []
    if watch is not None and not watch.reachable:
        reasons.append(f"broker unreachable for {time.monotonic() - watch.since:.0f}s: {watch.reason}")
    if app.rebalancing:
        reasons.append("rebalancing")
    if not faust_private.recovery_completed(app):
        reasons.append("tables recovering")
    try:
        assigned = app.consumer.assignment()
    except Exception:  # noqa: BLE001 - no consumer yet
        assigned = set()
    if not assigned:
        reasons.append("no partitions assigned")
    return reasons
