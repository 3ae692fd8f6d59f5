"""The consumer-lag gauge of /metrics reaches 0 on an idle worker, so that a lag alert can
clear: the tables' changelog partitions (assigned for recovery, never committed by the
group) are not counted as lag."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import Deployment, wait_until

pytestmark = pytest.mark.kafka

SEED_DAY = Path(__file__).resolve().parents[2] / "connectors" / "samples" / "seed-day.jsonl"
LAG = re.compile(r'^inventory_consumer_lag\{topic="([^"]+)",partition="(\d+)"\} (\S+)$', re.M)


def lags(url: str) -> dict[tuple[str, int], float]:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()  # noqa: S310
    return {(topic, int(p)): float(v) for topic, p, v in LAG.findall(text)}


def test_the_lag_gauge_reaches_zero_when_the_worker_is_idle(deployment: Deployment) -> None:
    worker = deployment.start_worker("lag")
    try:
        deployment.publish([json.loads(line) for line in SEED_DAY.read_text().splitlines() if line.strip()])
        wait_until(lambda: deployment.order(worker, "OMS202511220003"))
        idle = wait_until(
            lambda: (lambda gauge: gauge if gauge and not any(gauge.values()) else None)(lags(worker.url)),
            timeout_s=60,
            interval_s=1.0,
        )
        assert not any("changelog" in topic for topic, _ in idle), sorted(idle)
    finally:
        worker.stop()
