"""The read token in front of the worker's web server, without Faust or Kafka: an aiohttp app
with stand-ins for the worker's routes behind ``install_read_guard`` (deny by default, the
probes and webhooks open, the dashboard's login and session cookie)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from streams.web_access import (
    COOKIE,
    SESSION_TTL_S,
    install_read_guard,
    is_open,
    session_cookie,
    valid_session,
)

TOKEN = SecretStr("read-s3cret-token")
BEARER = {"Authorization": "Bearer read-s3cret-token"}
NOW = 1_800_000_000.0

# The worker's routes (streams/views.py, streams/webhook.py, Faust's own), as templates.
READ_ROUTES = [
    "/inventory",
    "/inventory/SKU1",
    "/inventory/SKU1/WH1",
    "/orders/OMS1",
    "/metrics",
    "/events/stream",
    "/dashboard",
    "/static/app.js",
    "/openapi.json",
    "/debug/consumer",
    "/router/",
    "/",
]
PROBES = ["/health", "/ready"]


def worker_like_app(clock: Callable[[], float] = lambda: NOW) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"route": request.match_info.route.resource.canonical})  # type: ignore[union-attr]

    async def webhook(request: web.Request) -> web.Response:  # checks its own token (not this one)
        return web.json_response({"error": "webhook's own check", "status": 401}, status=401)

    app = web.Application()
    install_read_guard(app, TOKEN, clock=clock)
    for path in (
        "/inventory",
        "/inventory/{sku}",
        "/inventory/{sku}/{warehouse_code}",
        "/orders/{order_no}",
        "/metrics",
        "/events/stream",
        "/dashboard",
        "/static/{name}",
        "/openapi.json",
        "/debug/consumer",
        "/router/",
        "/",
        *PROBES,
    ):
        app.router.add_get(path, ok)
    app.router.add_post("/webhooks/{source}", webhook)
    return app


def exchange(
    scenario: Callable[[TestClient[Any, Any]], Awaitable[Any]], clock: Callable[[], float] = lambda: NOW
) -> Any:
    async def main() -> Any:
        async with TestClient(TestServer(worker_like_app(clock))) as client:
            return await scenario(client)

    return asyncio.run(main())


def statuses(
    paths: list[str], headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None
) -> dict[str, int]:
    async def scenario(client: TestClient[Any, Any]) -> dict[str, int]:
        if cookies:
            client.session.cookie_jar.update_cookies(cookies)
        out = {}
        for path in paths:
            async with client.get(path, headers=headers or {}) as response:
                out[path] = response.status
        return out

    return exchange(scenario)


def test_every_read_route_and_unknown_paths_answer_401_without_the_token() -> None:
    got = statuses([*READ_ROUTES, "/no/such/path", "/inventory/SKU1/WH1/extra"])
    assert set(got.values()) == {401}, got


def test_with_the_bearer_token_every_read_route_answers() -> None:
    assert set(statuses(READ_ROUTES, headers=BEARER).values()) == {200}


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong",
        "Basic cmVhZC1zM2NyZXQtdG9rZW4=",
        "read-s3cret-token",
        "Bearer read-s3cret-token2",
        "Bearer READ-S3CRET-TOKEN",
    ],
)
def test_a_wrong_or_malformed_authorization_is_401(header: str) -> None:
    assert set(statuses(["/inventory/SKU1", "/events/stream"], headers={"Authorization": header}).values()) == {401}


def test_the_probes_stay_open_and_the_webhooks_keep_their_own_check() -> None:
    assert statuses(PROBES) == {"/health": 200, "/ready": 200}

    async def post_webhook(client: TestClient[Any, Any]) -> tuple[int, Any]:
        async with client.post("/webhooks/wms", data=b"{}") as response:
            return response.status, await response.json()

    status, body = exchange(post_webhook)
    assert status == 401 and body["error"] == "webhook's own check"  # reached the webhook's handler


def test_a_401_says_bearer_and_never_echoes_the_token() -> None:
    async def scenario(client: TestClient[Any, Any]) -> tuple[int, str, Any]:
        async with client.get("/metrics", headers={"Authorization": "Bearer read-s3cret-toke"}) as response:
            return response.status, response.headers["WWW-Authenticate"], await response.text()

    status, challenge, body = exchange(scenario)
    assert (status, challenge) == (401, "Bearer")
    assert "s3cret" not in body and '"status": 401' in body


def test_the_dashboard_without_credentials_is_a_401_login_form() -> None:
    async def scenario(client: TestClient[Any, Any]) -> tuple[int, str, str]:
        async with client.get("/dashboard") as response:
            return response.status, response.content_type, await response.text()

    status, content_type, page = exchange(scenario)
    assert (status, content_type) == (401, "text/html")
    assert 'action="/session"' in page and 'name="token"' in page and 'type="password"' in page


def test_logging_in_with_the_form_sets_a_session_cookie_that_opens_the_views_and_the_stream() -> None:
    async def scenario(client: TestClient[Any, Any]) -> tuple[int, str, str, dict[str, int]]:
        async with client.post("/session", data={"token": "read-s3cret-token"}, allow_redirects=False) as response:
            status, location = response.status, response.headers["Location"]
            set_cookie = response.headers["Set-Cookie"]
        after = {}
        for path in ("/dashboard", "/static/app.js", "/inventory/SKU1", "/events/stream", "/metrics"):
            async with client.get(path) as response:  # the client's jar sends the cookie
                after[path] = response.status
        return status, location, set_cookie, after

    status, location, set_cookie, after = exchange(scenario)
    assert (status, location) == (303, "/dashboard")
    assert f"{COOKIE}=" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert "s3cret" not in set_cookie
    assert set(after.values()) == {200}, after


def test_the_bearer_header_opens_a_session_too() -> None:
    async def scenario(client: TestClient[Any, Any]) -> int:
        async with client.post("/session", headers=BEARER, allow_redirects=False) as response:
            return response.status

    assert exchange(scenario) == 303


@pytest.mark.parametrize("form", [{"token": "wrong"}, {"token": ""}, {}, {"token": "x" * 5000}])
def test_a_wrong_login_is_401_and_sets_no_cookie(form: dict[str, str]) -> None:
    async def scenario(client: TestClient[Any, Any]) -> tuple[int, str | None, int]:
        async with client.post("/session", data=form, allow_redirects=False) as response:
            status, set_cookie = response.status, response.headers.get("Set-Cookie")
        async with client.get("/inventory/SKU1") as response:
            return status, set_cookie, response.status

    assert exchange(scenario) == (401, None, 401)


def test_a_session_cookie_expires_and_is_bound_to_the_token() -> None:
    value = session_cookie(TOKEN, NOW)
    assert valid_session(value, TOKEN, NOW)
    assert valid_session(value, TOKEN, NOW + SESSION_TTL_S - 1)
    assert not valid_session(value, TOKEN, NOW + SESSION_TTL_S)
    assert not valid_session(value, SecretStr("another-token"), NOW)  # rotating the token ends sessions
    stamp, mac = value.split(".")
    assert not valid_session(f"{int(stamp) + 3600}.{mac}", TOKEN, NOW)  # a longer life is not forgeable
    for forged in ("", ".", "abc", f"{stamp}.", f"{stamp}.{'0' * 64}", f"{stamp}.ü", "-1.x"):
        assert not valid_session(forged, TOKEN, NOW)
    assert "s3cret" not in value


def test_an_expired_cookie_is_401_again() -> None:
    now = [NOW]

    async def scenario(client: TestClient[Any, Any]) -> tuple[int, int]:
        async with client.post("/session", headers=BEARER, allow_redirects=False):
            pass
        async with client.get("/inventory/SKU1") as response:
            fresh = response.status
        now[0] += SESSION_TTL_S
        async with client.get("/inventory/SKU1") as response:
            return fresh, response.status

    assert exchange(scenario, clock=lambda: now[0]) == (200, 401)


def test_the_open_routes_are_the_probes_the_login_and_the_webhooks_only() -> None:
    assert all(is_open(r) for r in ("/health", "/ready", "/session", "/webhooks/tms", "/webhooks/{source}"))
    assert not any(
        is_open(r)
        for r in (
            None,
            "/",
            "/healthz",
            "/inventory/{sku}",
            "/dashboard",
            "/static/{name}",
            "/metrics",
            "/events/stream",
        )
    )


def test_the_token_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario(client: TestClient[Any, Any]) -> None:
        for headers in (BEARER, {"Authorization": "Bearer read-s3cret-tokeX"}, {}):
            async with client.get("/inventory/SKU1", headers=headers):
                pass
        async with client.post("/session", data={"token": "read-s3cret-token"}, allow_redirects=False):
            pass

    exchange(scenario)
    assert "s3cret" not in caplog.text
