"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.settings import Settings, get_settings
from streams import local_kafka


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real broker, for tests marked ``@pytest.mark.kafka``.

    With the local default settings, starts the local broker when none answers and stops
    it at the end of the session - but only if this session started it (a broker started
    by ``make``/``python -m streams.local_kafka start`` or by another session is left
    alone). With an existing cluster configured, just yields its address.
    """
    settings: Settings = get_settings()
    if not settings.uses_local_broker:
        yield settings.bootstrap_servers
        return
    started = local_kafka.start(settings)
    try:
        yield local_kafka.bootstrap_address(settings)
    finally:
        if started:
            local_kafka.stop(settings)
