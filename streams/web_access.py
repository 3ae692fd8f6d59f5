"""Who may read: the optional bearer token in front of the worker's web server.

``read_token`` unset: nothing is installed, every view is open (the local default, behind
``web_bind=127.0.0.1``). Set: deny by default, 401 (``WWW-Authenticate: Bearer``) unless the
request carries ``Authorization: Bearer <read_token>`` or a valid session cookie; exempt are
:data:`OPEN_ROUTES` (/health, /ready, POST /session) and the routes under ``/webhooks/`` (their
own ``webhook_token``), decided on the matched route, so an unknown path is a 401. GET /dashboard
without credentials: 401 with a login form; POST /session with the token sets an HttpOnly,
SameSite=Strict cookie holding an expiry and its HMAC keyed by the token (never the token), good
on any worker with that token for :data:`SESSION_TTL_S`. Comparisons are constant time; the token
is never logged or echoed. Why: docs/decisions.md ("Nothing answers the network unless asked").
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from aiohttp import web
from pydantic import SecretStr

COOKIE = "inventory_read_session"
SESSION_TTL_S = 12 * 3600  # a browser logs in again after this (or when the token changes)
SESSION_PATH = "/session"
DASHBOARD_PATH = "/dashboard"
OPEN_ROUTES = frozenset({"/health", "/ready", SESSION_PATH})
WEBHOOK_PREFIX = "/webhooks/"  # each webhook checks its own token (streams/webhook.py)
LOGIN_MAX_BYTES = 4096
_SESSION_CONTEXT = b"inventory-read-session|"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def authorized(header: str | None, token: SecretStr) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    if not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return _same(credentials.strip(), token)


def _same(given: str, token: SecretStr) -> bool:
    # Bytes, so that any input (non-ASCII, lone surrogates) compares instead of raising.
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), token.get_secret_value().encode("utf-8", "surrogatepass")
    )


def _session_mac(token: SecretStr, expires: int) -> str:
    key = token.get_secret_value().encode("utf-8", "surrogatepass")
    return hmac.new(key, _SESSION_CONTEXT + str(expires).encode(), hashlib.sha256).hexdigest()


def session_cookie(token: SecretStr, now: float) -> str:
    """The cookie value of a session opened at ``now`` (epoch seconds): ``<expires>.<mac>``."""
    expires = int(now) + SESSION_TTL_S
    return f"{expires}.{_session_mac(token, expires)}"


def valid_session(value: str | None, token: SecretStr, now: float) -> bool:
    """A cookie this token issued and that has not expired."""
    if not value:
        return False
    stamp, _, mac = value.partition(".")
    if not stamp.isdigit() or int(stamp) <= now:
        return False
    return hmac.compare_digest(mac.encode("ascii", "replace"), _session_mac(token, int(stamp)).encode())


def is_open(route: str | None) -> bool:
    """Whether a matched route (its template, e.g. ``/inventory/{sku}``) needs no read token;
    ``None`` (no route matched) does."""
    return route is not None and (route in OPEN_ROUTES or route.startswith(WEBHOOK_PREFIX))


def may_read(authorization: str | None, cookie: str | None, token: SecretStr, now: float) -> bool:
    return authorized(authorization, token) or valid_session(cookie, token, now)


_LOGIN_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>登录 · Inventory Center</title>
<style>body{{font:16px system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}}
input,button{{font:inherit;padding:.4rem;margin:.3rem 0}}input{{width:100%;box-sizing:border-box}}
.msg{{color:#b00020}}</style></head>
<body><h1>库存中心 <small>Inventory Center</small></h1>
<p>此页面需要读取令牌 · This dashboard needs the read token.</p>
<p id="login-message" class="msg" role="alert">{message}</p>
<form id="login-form" method="post" action="{action}">
<label for="login-token">令牌 Token</label>
<input id="login-token" name="token" type="password" autocomplete="current-password" required autofocus>
<button id="login-submit" type="submit">登录 Sign in</button>
</form></body></html>
"""


def login_page(message: str = "", status: int = 401) -> web.Response:
    body = _LOGIN_PAGE.format(message=html.escape(message), action=SESSION_PATH)
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store"},
    )


def denied(path: str) -> web.Response:
    """The 401 of a request without credentials: the login form for the dashboard, the
    views' JSON error shape for everything else."""
    if path == DASHBOARD_PATH:
        return login_page()
    return web.json_response(
        {"error": "missing or wrong bearer token", "status": 401}, status=401, headers={"WWW-Authenticate": "Bearer"}
    )


async def _form_token(request: web.Request) -> str | None:
    if request.content_length is not None and request.content_length > LOGIN_MAX_BYTES:
        return None
    body = await request.content.read(LOGIN_MAX_BYTES + 1)
    if len(body) > LOGIN_MAX_BYTES:
        return None
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=4)
    except (UnicodeDecodeError, ValueError):
        return None
    values = fields.get("token")
    return values[0] if values else None


def install_read_guard(web_app: web.Application, token: SecretStr, clock: Callable[[], float] = time.time) -> None:
    """Put the guard in front of every route of ``web_app`` (outermost middleware: call it
    before adding others) and add POST /session, the dashboard's login."""

    @web.middleware
    async def read_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else None
        if is_open(route) or may_read(
            request.headers.get("Authorization"), request.cookies.get(COOKIE), token, clock()
        ):
            return await handler(request)
        return denied(request.path)

    async def open_session(request: web.Request) -> web.StreamResponse:
        ok = authorized(request.headers.get("Authorization"), token)
        if not ok:
            given = await _form_token(request)
            ok = given is not None and _same(given, token)
        if not ok:
            return login_page("令牌不对 · Wrong token.")
        response = web.Response(status=303, headers={"Location": DASHBOARD_PATH, "Cache-Control": "no-store"})
        response.set_cookie(
            COOKIE,
            session_cookie(token, clock()),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure or None,
        )
        return response

    web_app.middlewares.insert(0, read_guard)
    web_app.router.add_post(SESSION_PATH, open_session)
