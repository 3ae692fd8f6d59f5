"""The worker's expiry timer (streams/expiry_clock.py): event time first, the wall clock
only for a quiet partition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from config.settings import Settings
from streams.expiry_clock import ExpiryClock

T = datetime(2025, 11, 22, 2, 0, tzinfo=UTC)  # event time: a recorded day
GRACE = timedelta(minutes=5)
FALLBACK = timedelta(minutes=15)


class Wall:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def clock(wall: Wall) -> ExpiryClock:
    return ExpiryClock(GRACE, FALLBACK, wall)


def test_an_order_is_ticked_once_the_watermark_passes_its_due_time_and_the_grace() -> None:
    wall = Wall(datetime(2030, 1, 1, tzinfo=UTC))
    c = clock(wall)
    assert c.tick_by(0, wall.now) is None  # nothing read yet, not idle long enough
    c.saw(0, T)
    assert c.tick_by(0, wall.now) == T - GRACE
    c.saw(0, T - timedelta(hours=1))  # an older event does not move the watermark back
    assert c.tick_by(0, wall.now) == T - GRACE
    assert c.tick_by(1, wall.now) is None  # another partition has its own watermark


def test_a_replay_far_behind_the_wall_clock_expires_nothing_on_the_wall_clock() -> None:
    wall = Wall(datetime(2030, 1, 1, tzinfo=UTC))
    c = clock(wall)
    for minute in range(60):  # a recorded hour read in a minute of wall time
        wall.now += timedelta(seconds=1)
        c.saw(0, T + timedelta(minutes=minute))
        assert c.tick_by(0, wall.now) == T + timedelta(minutes=minute) - GRACE


def test_a_quiet_partition_falls_back_to_the_wall_clock() -> None:
    wall = Wall(T)
    c = clock(wall)
    c.saw(0, T)
    wall.now = T + FALLBACK - timedelta(seconds=1)
    assert c.tick_by(0, wall.now) == T - GRACE
    wall.now = T + FALLBACK + timedelta(minutes=1)  # the watermark has not moved for so long
    assert c.tick_by(0, wall.now) == wall.now - FALLBACK
    c.saw(0, T + timedelta(minutes=16))  # it moves again: event time rules
    assert c.tick_by(0, wall.now) == T + timedelta(minutes=16) - GRACE


def test_after_a_rebalance_the_watermark_is_unknown_and_the_idle_time_restarts() -> None:
    wall = Wall(T)
    c = clock(wall)
    c.saw(0, T)
    wall.now = T + timedelta(hours=1)
    c.forget()
    assert c.tick_by(0, wall.now) is None
    wall.now += FALLBACK
    assert c.tick_by(0, wall.now) == wall.now - FALLBACK


def test_the_settings_carry_both_graces_and_refuse_a_fallback_shorter_than_the_grace() -> None:
    settings = Settings()
    assert 0 < settings.expiry_grace_s <= settings.expiry_wall_clock_fallback_s
    with pytest.raises(ValueError):
        Settings(expiry_grace_s=600, expiry_wall_clock_fallback_s=60)
    with pytest.raises(ValueError):
        ExpiryClock(FALLBACK, GRACE, Wall(T))
