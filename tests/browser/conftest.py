"""Fixtures for the browser tests: Debian's headless Chromium driven by Selenium, plus the
isolated deployments of the integration tests (shared from tests/integration/conftest.py).

Chromium and chromedriver come from the system packages (``make browser-deps`` installs
``chromium`` and ``chromium-driver`` when running as root). Without them the browser tests
are skipped with the reason - except under CI (``CI=true``), where a missing browser is a
failure: CI must not turn green by testing nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from config.settings import REPO_ROOT
from tests.integration.conftest import deployment  # noqa: F401 - re-exported fixture

CHROMIUM = Path(os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or "/usr/bin/chromium")
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER_BIN") or shutil.which("chromedriver") or "/usr/bin/chromedriver")
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1440,1000",
    "--lang=zh-CN",
)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip locally, fail under CI."""
    message = f"{reason}; install with `make browser-deps` (as root) or `apt-get install chromium chromium-driver`"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[Path, Path]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not (p.is_file() and os.access(p, os.X_OK))]
    if missing:
        unavailable(f"headless Chromium is not installed ({', '.join(missing)} missing)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        unavailable("the selenium package is not installed (pip install -e '.[dev]')")
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture(scope="module")
def browser(chromium_paths: tuple[Path, Path]) -> Iterator[Any]:
    """One headless Chromium per test module, with its own throwaway profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = chromium_paths
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    service = Service(executable_path=str(chromedriver), log_output=str(ARTIFACTS / "chromedriver.log"))
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except Exception as exc:  # noqa: BLE001 - a browser that does not start is "unavailable"
        shutil.rmtree(profile, ignore_errors=True)
        unavailable(f"headless Chromium did not start: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def screenshot(browser: Any) -> Any:
    """``screenshot("name")`` saves the whole page (not just the viewport) as
    tests/artifacts/<name>.png and returns its path."""
    import base64

    def save(name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        width, height = browser.execute_script(
            "const e = document.documentElement; return [e.scrollWidth, e.scrollHeight];"
        )
        shot = browser.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    return save
