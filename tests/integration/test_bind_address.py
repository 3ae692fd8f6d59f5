"""Safe by default: the worker's web server listens on 127.0.0.1 only, unless configured.

Faust's ``web_bind`` defaults to every interface (``web_host`` only feeds the canonical URL),
so the worker used to answer on 0.0.0.0:6066. The kernel's socket table says what listens.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Deployment

pytestmark = pytest.mark.kafka

LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def listening_addresses(port: int) -> set[str]:
    """The local IPv4/IPv6 addresses (hex, as the kernel writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == LISTEN:
                found.add(address)
    return found


def test_the_worker_listens_on_the_loopback_interface_only(deployment: Deployment) -> None:
    worker = deployment.start_worker("bind")
    try:
        addresses = listening_addresses(worker.web_port)
        assert addresses, f"nothing listens on {worker.web_port}"
        assert addresses <= {"0100007F", "0000000000000000FFFF00000100007F"}, addresses  # 127.0.0.1
    finally:
        worker.stop()
