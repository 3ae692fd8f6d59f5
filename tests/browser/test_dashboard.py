"""The dashboard (streams/static/) in real headless Chromium against a real worker and broker.

One story, as an operator lives it: stock arrives, the operator looks the SKU up, an order
reserves part of it and the page follows by itself (Server-Sent Events, no reload, no
polling), the consumer lag and a dead letter show, the order is looked up, and when the worker
dies the page says so.

Screenshots go to tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from streams.worker_process import WorkerProcess, http_json
from tests.integration.conftest import Deployment, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

LIVE_TIMEOUT_S = 20.0  # how long the page may take to show a published change


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def receipt(wh: str, sku: str, qty: int) -> dict[str, Any]:
    return {
        "eventType": "GoodsReceived",
        "eventId": _id("rc"),
        "occurredAt": "2025-11-22T08:00:00+08:00",
        "receiptNo": _id("RC"),
        "warehouseCode": wh,
        "lines": [{"sku": sku, "sellableQty": qty}],
    }


def order(order_no: str, sku: str, qty: int) -> dict[str, Any]:
    return {
        "eventType": "OrderCreated",
        "eventId": _id("oc"),
        "occurredAt": "2025-11-22T09:00:00+08:00",
        "orderNo": order_no,
        "orderType": "NORMAL",
        "consignee": {"name": "张三", "phone": "13800138000", "address": "北京市朝阳区XX街道XX号"},
        "items": [{"sku": sku, "quantity": qty, "price": 99.0}],
        "totalAmount": round(99.0 * qty, 2),
        "timeRequirement": "STANDARD",
    }


def cancelled(order_no: str) -> dict[str, Any]:
    return {
        "eventType": "OrderCancelled",
        "eventId": _id("cx"),
        "occurredAt": "2025-11-22T09:30:00+08:00",
        "orderNo": order_no,
        "reason": "顾客取消",
    }


class Page:
    """The dashboard as the test sees it: stable element ids, data-* attributes for values."""

    def __init__(self, driver: Any) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.d = driver
        self.By = By
        self.Wait = WebDriverWait

    def wait(self, what: str, probe: Any, timeout_s: float = LIVE_TIMEOUT_S) -> Any:
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException

        def guarded(_: Any) -> Any:
            try:
                return probe()
            except StaleElementReferenceException:
                return None

        try:
            return self.Wait(self.d, timeout_s, poll_frequency=0.2).until(guarded)
        except TimeoutException:
            raise AssertionError(f"page: {what} not seen within {timeout_s}s") from None

    def find(self, css: str) -> Any:
        return self.d.find_element(self.By.CSS_SELECTOR, css)

    def finds(self, css: str) -> list[Any]:
        return self.d.find_elements(self.By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        found = self.finds(css)
        return found[0].text if found else ""

    def search(self, input_id: str, button_id: str, value: str) -> None:
        box = self.find(f"#{input_id}")
        box.clear()
        box.send_keys(value)
        self.find(f"#{button_id}").click()

    def cell(self, sku: str, wh: str, field: str) -> int | None:
        found = self.finds(f'#sku-table tr[data-sku="{sku}"][data-wh="{wh}"] td[data-field="{field}"]')
        value = found[0].get_attribute("data-value") if found else None
        return int(value) if value not in (None, "") else None

    def network(self, sku: str, field: str) -> int | None:
        found = self.finds(f'#sku-table tr.network[data-sku="{sku}"] td[data-field="{field}"]')
        value = found[0].get_attribute("data-value") if found else None
        return int(value) if value not in (None, "") else None

    def feed_items(self, kind: str, attr: str, value: str) -> list[Any]:
        return self.finds(f'#feed li[data-kind="{kind}"][data-{attr}="{value}"]')

    def js_errors(self) -> list[str]:
        """Console errors other than failed requests (a 404 for an unknown SKU is expected)."""
        return [
            entry["message"]
            for entry in self.d.get_log("browser")
            if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
        ]


def test_dashboard_follows_the_pipeline_live(browser: Any, screenshot: Any, deployment: Deployment) -> None:
    started = time.monotonic()
    page = Page(browser)
    worker = deployment.start_worker("browser")
    sku, probe_sku, order_no = _id("SKU"), _id("PROBE"), _id("OMS")

    # Stock arrives before the page opens: 100 in WH001, 20 in WH002.
    deployment.publish([receipt("WH001", sku, 100), receipt("WH002", sku, 20)])
    wait_until(lambda: (p := deployment.position(worker, sku, "WH002")) and p["availableQty"] == 20, timeout_s=30)
    wait_until(lambda: (p := deployment.position(worker, sku, "WH001")) and p["availableQty"] == 100, timeout_s=30)

    browser.get(f"{worker.url}/dashboard")
    assert "库存中心" in browser.title
    page.wait("the live stream connected", lambda: page.find("#conn-status").get_attribute("data-state") == "open")

    # An unknown SKU says so.
    missing = _id("NOSUCH")
    page.search("sku-input", "sku-search", missing)
    page.wait(
        "'not found' for an unknown SKU",
        lambda: "not found" in page.text("#sku-message") and missing in page.text("#sku-message"),
    )
    assert not page.find("#sku-table").is_displayed()

    # The SKU: its warehouses, their quantities and the network totals.
    page.search("sku-input", "sku-search", sku)
    page.wait("availableQty 100 in WH001", lambda: page.cell(sku, "WH001", "availableQty") == 100)
    assert page.cell(sku, "WH002", "availableQty") == 20
    assert page.network(sku, "availableQty") == 120
    assert page.network(sku, "onHandQty") == 120
    assert page.cell(sku, "WH001", "version") == deployment.position(worker, sku, "WH001")["version"]
    assert len(page.finds("#sku-chart path[data-series]")) == 2, "one availableQty line per warehouse"
    screenshot("dashboard-1-sku")

    # The stream tails the output topics from their end, starting when the page subscribes:
    # publish a probe until it shows in the feed, so the next events cannot be missed.
    def probe_seen() -> bool:
        deployment.publish([receipt("WH003", probe_sku, 5)])
        try:
            page.wait("the probe in the feed", lambda: page.feed_items("inventory", "sku", probe_sku), timeout_s=8)
            return True
        except AssertionError:
            return False

    wait_until(probe_seen, timeout_s=LIVE_TIMEOUT_S * 2, interval_s=0)

    # An order reserves 3 units: the page follows without a reload.
    t_publish = time.monotonic()
    deployment.publish([order(order_no, sku, 3)])
    page.wait("network availableQty 117 after the order", lambda: page.network(sku, "availableQty") == 117)
    live_latency_s = time.monotonic() - t_publish
    wh = "WH001" if page.cell(sku, "WH001", "availableQty") == 97 else "WH002"
    assert page.cell(sku, wh, "reservedQty") == 3
    assert page.network(sku, "reservedQty") == 3
    for w in ("WH001", "WH002"):  # the page agrees with the API
        api = deployment.position(worker, sku, w)
        assert api is not None and page.cell(sku, w, "availableQty") == api["availableQty"]
    expected_after = {"WH001": 97, "WH002": 17}[wh]
    page.wait(
        "the change in the feed",
        lambda: any(
            item.find_element(page.By.CSS_SELECTOR, '[data-field="availableQty"]').text == str(expected_after)
            for item in page.feed_items("inventory", "sku", sku)
        ),
    )
    page.wait("the order's status in the feed", lambda: page.feed_items("order", "order", order_no))
    newest = page.finds("#feed li")[0]
    assert newest.get_attribute("data-kind") in {"inventory", "order", "alert"}
    page.wait("throughput plotted", lambda: page.finds("#throughput-chart path[data-series]"))
    assert page.text("#stat-in") not in ("", "–")

    # Pipeline health: the consumer lag of every partition this worker reads, and a record no
    # agent can read listed as a dead letter with its reason, without a reload.
    page.wait("the lag table", lambda: page.finds(f'#lag-rows tr[data-topic="{deployment.topics.orders}"]'))
    page.wait("no lag once idle", lambda: page.find("#lag-total").text == "0", timeout_s=60)
    assert page.find("#dead-empty").is_displayed()
    deployment.produce_raw(deployment.topics.orders, b"OMS-POISON", b"not a record")
    poison = f'#dead-list li[data-topic="{deployment.topics.orders}"][data-error-type="DECODE"]'
    page.wait("the dead letter listed", lambda: page.finds(poison))
    assert "OMS-POISON" in page.text(poison) and not page.find("#dead-empty").is_displayed()
    assert page.find("#stat-dead").get_attribute("data-tone") == "bad"
    screenshot("dashboard-1b-health")

    # The order: status, lines and timeline, as the API has them.
    page.search("order-input", "order-search", order_no)
    page.wait("the order's status", lambda: page.find("#order-status").get_attribute("data-status"))
    api_status, api_order = http_json(f"{worker.url}/orders/{order_no}")
    assert api_status == 200
    page.wait(
        f"status {api_order['status']}",
        lambda: page.find("#order-status").get_attribute("data-status") == api_order["status"],
    )
    assert api_order["status"] in {"RESERVED", "OUTBOUND_REQUESTED"}
    assert api_order["status"] in page.text("#order-status")
    lines = page.finds("#order-line-rows tr")
    assert len(lines) == 1 and lines[0].get_attribute("data-sku") == sku
    assert lines[0].find_element(page.By.CSS_SELECTOR, 'td[data-field="reservedQty"]').text == "3"
    assert len(page.finds("#order-timeline li")) == len(api_order["timeline"]) > 0
    page.search("order-input", "order-search", "OMS-NO-SUCH-ORDER")
    page.wait("'not found' for an unknown order", lambda: "not found" in page.text("#order-message"))
    page.search("order-input", "order-search", order_no)
    page.wait("the order again", lambda: page.find("#order-detail").is_displayed())
    assert page.js_errors() == []
    shot = screenshot("dashboard-2-live")

    # Several SKUs at once (the batch view): a group of rows per SKU, the unknown one named.
    page.search("sku-input", "sku-search", f"{sku}, {probe_sku}, {missing}")
    page.wait(
        "two SKUs found and one missing",
        lambda: page.network(probe_sku, "availableQty") == 5 and missing in page.text("#sku-message"),
    )
    assert page.network(sku, "availableQty") == 117
    assert "not found" in page.text("#sku-message")
    assert len(page.finds("#sku-chart path[data-series]")) == 3
    screenshot("dashboard-3-batch")

    # The worker dies: the page raises its banner.
    worker.kill()
    page.wait(
        "the server-down banner", lambda: page.find("#banner").is_displayed() and "unreachable" in page.text("#banner")
    )
    screenshot("dashboard-4-server-down")

    # It comes back on the same address: the banner goes, the stream reconnects by itself and
    # the page follows the next change (the order is cancelled: its 3 units come back).
    page.search("sku-input", "sku-search", sku)  # fails while the server is down: still "unreachable"
    revived = WorkerProcess(
        {**deployment.env, "INVENTORY_DATA_DIR": str(deployment.root / "browser")},
        deployment.root / "browser-revived.log",
        worker.web_port,
    ).start()
    deployment.workers.append(revived)
    revived.wait_ready(timeout_s=120)
    page.wait("the banner gone", lambda: not page.find("#banner").is_displayed(), timeout_s=30)
    page.wait("the stream back", lambda: page.find("#conn-status").get_attribute("data-state") == "open", timeout_s=30)
    page.search("sku-input", "sku-search", sku)
    page.wait("the SKU again", lambda: page.network(sku, "availableQty") == 117)
    wait_until(probe_seen, timeout_s=LIVE_TIMEOUT_S * 2, interval_s=0)
    deployment.publish([cancelled(order_no)])
    page.wait("the cancellation on the page", lambda: page.network(sku, "availableQty") == 120)
    page.wait(
        "CANCELLED in the feed",
        lambda: any("CANCELLED" in item.text for item in page.feed_items("order", "order", order_no)),
    )

    elapsed = time.monotonic() - started
    print(
        f"\ndashboard test: {elapsed:.1f}s in all; a published order reached the page in {live_latency_s:.2f}s; "
        f"screenshot {shot}"
    )
