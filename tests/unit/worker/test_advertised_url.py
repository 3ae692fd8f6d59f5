"""The worker's advertised URL (config/settings.py ``advertised_url``): what other workers call
for the keys it owns, apart from the interface it listens on. A worker that listens on every
interface and advertises nothing, or advertises an address nobody can call, refuses to start
with one line naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from config.settings import REPO_ROOT, Settings, url_problem, url_with_port


def test_unset_it_is_derived_from_web_host_and_web_port_as_before() -> None:
    assert Settings().worker_url == "http://127.0.0.1:6066"
    assert Settings(web_host="worker-3.internal", web_port=7000).worker_url == "http://worker-3.internal:7000"
    assert Settings(web_host="::1").worker_url == "http://[::1]:6066"


def test_set_it_is_the_url_other_workers_call_whatever_the_bind_address() -> None:
    settings = Settings(web_bind="0.0.0.0", advertised_url="http://worker-3.internal:6066/")
    assert settings.worker_url == "http://worker-3.internal:6066"  # no trailing slash: compared as a string
    assert settings.worker_url_problem() is None


@pytest.mark.parametrize(
    "url",
    [
        "http://0.0.0.0:6066",
        "http://[::]:6066",
        "https://worker-3.internal:6066",  # the worker serves plain HTTP; Faust forwards in the request's scheme
        "worker-3.internal:6066",
        "http://:6066",
        "http://worker-3.internal:6066/api",  # Faust's router keeps no path
        "http://worker-3.internal:99999",
    ],
)
def test_an_advertised_url_nobody_can_call_is_refused(url: str) -> None:
    assert url_problem(url)
    with pytest.raises(ValidationError, match="advertised_url"):
        Settings(advertised_url=url)


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "[::]", ""])
def test_listening_on_every_interface_needs_an_advertised_url(bind: str) -> None:
    problem = Settings(web_bind=bind).worker_url_problem()
    assert problem and "INVENTORY_ADVERTISED_URL" in problem and "\n" not in problem
    assert Settings(web_bind=bind, advertised_url="http://10.0.0.7:6066").worker_url_problem() is None


def test_a_derived_url_on_every_interface_is_refused_too() -> None:
    problem = Settings(web_host="0.0.0.0").worker_url_problem()
    assert problem and "INVENTORY_ADVERTISED_URL" in problem and "INVENTORY_WEB_HOST" in problem


def test_a_process_beside_the_worker_is_on_its_host() -> None:
    assert url_with_port("http://worker-3.internal:6066", 6070) == "http://worker-3.internal:6070"
    assert url_with_port("http://[fd00::7]:6066", 6070) == "http://[fd00::7]:6070"


def _worker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
    # A bootstrap nothing answers: the worker must stop before it ever asks.
    clean |= {"INVENTORY_BOOTSTRAP_SERVERS": "127.0.0.1:1", **env}
    return subprocess.run(
        [sys.executable, "-m", "streams.worker", *args],
        cwd=REPO_ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_worker_bound_to_every_interface_without_an_advertised_url_refuses_to_start() -> None:
    done = _worker({"INVENTORY_WEB_BIND": "0.0.0.0"})
    assert done.returncode == 78, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "INVENTORY_ADVERTISED_URL" in lines[0], done.stderr


def test_a_worker_advertising_every_interface_refuses_to_start_in_one_line() -> None:
    done = _worker({"INVENTORY_WEB_BIND": "0.0.0.0", "INVENTORY_ADVERTISED_URL": "http://0.0.0.0:6066"})
    assert done.returncode == 78, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("INVENTORY_ADVERTISED_URL: "), done.stderr


def test_fausts_own_web_options_are_refused_they_would_rebuild_the_url() -> None:
    done = _worker({}, "--web-host", "somewhere")
    assert done.returncode == 2 and "INVENTORY_ADVERTISED_URL" in done.stderr, done.stderr
