"""Issue 11 on the real broker: a day's backlog drained by one worker ends as the model.

A simulated day (``connectors.traffic.BACKLOG``: a few hundred orders, opening stock in the
same stream, transfers, failed parcels and returns received short or at another warehouse,
counts with drift, stock documents re-sent under a new eventId, events redelivered under
the same one) is published in one go while no worker runs - the backlog a restart finds.
One worker then drains it; in the second variant it is killed with SIGKILL several times
mid-drain (once losing its local state too) and restarted each time.

The day is ended and compared with the model by ``tests/integration/day_end.py``.
"""

from __future__ import annotations

import shutil
import time

import pytest

from tests.integration.conftest import Deployment, wait_until
from tests.integration.day_end import consumed, day, end_the_day_and_compare, lag

pytestmark = pytest.mark.kafka


def test_a_days_backlog_drained_by_one_worker_ends_as_the_model(fresh_deployment: Deployment) -> None:
    d = fresh_deployment
    events, model, skus = day(seed=21)
    d.publish(list(events))  # topics exist, no worker runs: the day waits as a backlog
    worker = d.start_worker("drain")
    end_the_day_and_compare(d, worker, events, model, skus)
    worker.stop()


def test_a_days_backlog_drained_through_sigkills_ends_as_the_model(fresh_deployment: Deployment) -> None:
    d = fresh_deployment
    events, model, skus = day(seed=22)
    d.publish(list(events))
    data_dir = d.root / "killed"
    for n in range(3):
        worker = d.start_worker(f"killed-{n}", data_dir=data_dir)
        # well into the drain, not past it: a few hundred messages read since this start
        wait_until(lambda w=worker: consumed(w) >= 400, timeout_s=120, interval_s=0.05)
        assert lag(d) != 0, "the backlog was drained before the kill"
        worker.kill()  # SIGKILL: no commit, no flush
        time.sleep(0.5)
        if n == 1:
            shutil.rmtree(data_dir)  # this time the local state is lost too: the changelogs rebuild it
    worker = d.start_worker("killed-last", data_dir=data_dir)
    end_the_day_and_compare(d, worker, events, model, skus)
    worker.stop()
