"""The dashboard behind a read token, in headless Chromium: the page answers 401 with a login
form, a wrong token is refused, the right one opens a session (a cookie: EventSource cannot
send an Authorization header) and the page then reads the views and follows the live stream."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.browser.test_dashboard import Page, receipt
from tests.integration.conftest import Deployment, wait_until
from tests.integration.test_read_token import BEARER, TOKEN, get

pytestmark = [pytest.mark.kafka, pytest.mark.browser]


def test_the_dashboard_asks_for_the_token_once_then_reads_and_streams(browser: Any, deployment: Deployment) -> None:
    deployment.env["INVENTORY_READ_TOKEN"] = TOKEN
    page = Page(browser)
    worker = deployment.start_worker("login")
    sku = f"LOGIN-{uuid.uuid4().hex[:8]}"
    deployment.publish([receipt("WH001", sku, 42)])
    wait_until(lambda: get(f"{worker.url}/inventory/{sku}/WH001", BEARER)[0] == 200, timeout_s=30)

    browser.get(f"{worker.url}/dashboard")
    page.wait("the login form", lambda: page.finds("#login-form"))
    assert not page.finds("#sku-table")

    page.find("#login-token").send_keys("not-the-token")
    page.find("#login-submit").click()
    page.wait("the wrong token refused", lambda: "Wrong token" in page.text("#login-message"))
    assert not browser.get_cookies()

    page.find("#login-token").send_keys(TOKEN)
    page.find("#login-submit").click()
    page.wait("the dashboard", lambda: page.finds("#sku-input"))
    cookies = browser.get_cookies()
    assert len(cookies) == 1 and cookies[0]["httpOnly"] and TOKEN not in cookies[0]["value"]
    page.wait("the live stream connected", lambda: page.find("#conn-status").get_attribute("data-state") == "open")
    page.search("sku-input", "sku-search", sku)
    page.wait("availableQty 42", lambda: page.cell(sku, "WH001", "availableQty") == 42)
    assert page.js_errors() == []
    worker.stop()
