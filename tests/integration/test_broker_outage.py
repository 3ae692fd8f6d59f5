"""A broker outage longer than any client timeout is waited out: the worker stays up, says
it is not ready while the broker is gone (and why), and catches up once it is back.

The outage lasts longer than the worker's old give-up time: librdkafka's default
``message.timeout.ms`` (300 s) failed the records the sink still held, and the worker exited
about five minutes into an outage (issue 12)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streams.worker_process import http_json
from tests.integration.conftest import PrivateBroker, wait_until

pytestmark = pytest.mark.kafka

SEED_DAY = Path(__file__).resolve().parents[2] / "connectors" / "samples" / "seed-day.jsonl"
OUTAGE_S = float(os.environ.get("INVENTORY_TEST_OUTAGE_S", "330"))  # > the old 300 s give-up


def unpaid_order(expires_in_s: float) -> dict[str, object]:
    """An order whose reservation comes due while the broker is away: its expiry tick is a
    record the worker must write during the outage."""
    now = datetime.now(UTC)
    return {
        "eventType": "OrderCreated",
        "eventId": "outage-unpaid",
        "occurredAt": now.isoformat(),
        "orderNo": "OUTAGE-UNPAID",
        "orderType": "NORMAL",
        "consignee": {"name": "Wang", "phone": "13800138000", "address": "Beijing"},
        "items": [{"sku": "SKU001", "quantity": 1, "price": 1.0}],
        "totalAmount": 1.0,
        "timeRequirement": "STANDARD",
        "reservationExpiresAt": (now + timedelta(seconds=expires_in_s)).isoformat(),
    }


def test_a_long_broker_outage_is_waited_out(
    private_broker: PrivateBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    events = [json.loads(line) for line in SEED_DAY.read_text().splitlines() if line.strip()]
    first, rest = events[:10], events[10:]
    with private_broker.deployment(tmp_path_factory) as deployment:
        worker = deployment.start_worker("outage")
        deployment.publish([*first, unpaid_order(expires_in_s=15)])
        wait_until(lambda: deployment.order(worker, "OMS202511220001"))
        wait_until(lambda: (deployment.order(worker, "OUTAGE-UNPAID") or {}).get("status") == "RESERVED")
        private_broker.stop()
        began = time.monotonic()
        not_ready = wait_until(
            lambda: (lambda s, b: (s, b) if s == 503 else None)(*http_json(f"{worker.url}/ready")),
            timeout_s=60,
            interval_s=1.0,
        )
        assert "broker" in json.dumps(not_ready[1]).lower(), not_ready
        status, health = http_json(f"{worker.url}/health")
        assert "broker" in json.dumps(health).lower(), (status, health)
        while time.monotonic() - began < OUTAGE_S:
            assert worker.alive(), f"worker exited during the outage:\n{worker.log_tail()}"
            time.sleep(5)
        private_broker.start()
        worker.wait_ready(timeout_s=120)
        deployment.publish(rest)
        wait_until(lambda: deployment.order(worker, "OMS202511220003"), timeout_s=90)
        # The tick written during the outage reached Kafka and was applied.
        wait_until(lambda: (deployment.order(worker, "OUTAGE-UNPAID") or {}).get("status") == "EXPIRED", timeout_s=60)
        assert worker.alive()
        log = worker.log_path.read_text(errors="replace")
        # One line per state change, not one per retry (the clients retry every few ms).
        assert log.count("broker unreachable") == 1 and log.count("broker reachable again") == 1
        outage = log[log.index("broker unreachable") : log.index("broker reachable again")]
        assert outage.count("\n") < 100, outage[-3000:]
