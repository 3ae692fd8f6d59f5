"""Read-only web views served by the worker, straight from the tables.

With several workers, ``table_route`` proxies a request for a key owned by another worker
to that worker's canonical URL, its ``advertised_url`` (forwarding the request's headers), so
any worker answers for every key. With ``read_token`` set, every view but the probes (/health, /ready) and the
webhooks needs it (``streams/web_access.py``); a worker asking another for part of a batch
sends the token itself. ``/debug/consumer`` exists only with ``debug_views``. ``/metrics`` is
the worker's registry (streams/metrics.py) with its consumer lag and table sizes read when
scraped; ``/dead-letters/latest`` the newest dead letters this worker wrote.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from faust.web import Request, Response, View, Web

from schemas.base import CODE_PATTERN
from schemas.codec import decode
from streams import faust_private
from streams.answers import MAX_BATCH, error_json, order_json, position_json, sku_json
from streams.health import readiness
from streams.keys import order_key, stock_key
from streams.live import LiveFeed, ThroughputMeter
from streams.openapi import openapi_document
from streams.web_access import install_read_guard
from tables.state import SkuStock

if TYPE_CHECKING:
    from streams.app import Pipeline

_CODE = re.compile(CODE_PATTERN)


def _error(web: Web, status: int, message: str) -> Response:
    return web.json(error_json(status, message), status=status)


STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {
    ".html": "text/html",
    ".js": "application/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}


def stock_json(stock: SkuStock) -> dict[str, Any]:
    return sku_json(stock.sku, [position_json(stock.sku, p, p.updated_at) for p in stock.positions])


def register_views(pipeline: Pipeline) -> None:
    app, tables, metrics, settings = pipeline.app, pipeline.tables, pipeline.metrics, pipeline.settings
    live = LiveFeed(settings)
    if settings.read_token is not None:
        install_read_guard(app.web.web_app, settings.read_token)  # type: ignore[attr-defined]  # aiohttp's Web has it
    _install_json_errors(app)
    # A worker asking another for its part of a batch reads on the caller's behalf.
    peer_headers = (
        {"Authorization": f"Bearer {settings.read_token.get_secret_value()}"} if settings.read_token is not None else {}
    )
    meter = ThroughputMeter()
    stock_table_name = tables.stock.name
    metrics.read_on_scrape(lambda: consumer_lag(app, tables), lambda: table_keys(tables))

    def load_stock(sku: str) -> SkuStock | None:
        raw = tables.stock.get(stock_key(sku))
        return None if raw is None else decode(raw, validate=False)

    @app.page("/inventory/{sku}/{warehouse_code}")
    @app.table_route(table=tables.stock, match_info="sku")  # type: ignore[arg-type]  # Faust types it for View methods; app.page takes functions too
    async def inventory_position(web: Web, request: Request, sku: str, warehouse_code: str) -> Response:
        if not _CODE.match(sku) or not _CODE.match(warehouse_code):
            return _error(web, 400, "sku and warehouseCode must be codes")
        stock = load_stock(sku)
        position = stock.position(warehouse_code) if stock else None
        if position is None:
            return _error(web, 404, f"no position for sku {sku} in warehouse {warehouse_code}")
        return web.json(position_json(sku, position, position.updated_at))

    @app.page("/inventory/{sku}")
    @app.table_route(table=tables.stock, match_info="sku")  # type: ignore[arg-type]  # Faust types it for View methods; app.page takes functions too
    async def inventory_sku(web: Web, request: Request, sku: str) -> Response:
        if not _CODE.match(sku):
            return _error(web, 400, "sku must be a code")
        stock = load_stock(sku)
        if stock is None or not stock.positions:
            return _error(web, 404, f"unknown sku {sku}")
        return web.json(stock_json(stock))

    @app.page("/inventory")
    class InventoryBatch(View):
        """Many SKUs at once (an OMS cart): each SKU is read on the worker that owns it."""

        async def get(self, request: Request) -> Response:
            raw = request.query.get("skus", "")
            skus = list(dict.fromkeys(s for s in raw.split(",") if s))
            if not skus or len(skus) > MAX_BATCH or not all(_CODE.match(s) for s in skus):
                return _error(self.web, 400, f"skus: 1 to {MAX_BATCH} comma-separated codes")
            local_only = request.query.get("scope") == "local"
            by_owner: dict[str, list[str]] = {}
            for sku in skus:
                try:
                    owner = str(app.router.key_store(stock_table_name, sku))
                except KeyError:
                    return _error(self.web, 503, "partitions are being assigned; retry shortly")
                by_owner.setdefault(owner, []).append(sku)
            items: dict[str, Any] = {}
            me = str(app.conf.canonical_url).rstrip("/")
            for owner, group in by_owner.items():
                if local_only or owner.rstrip("/") == me:
                    for sku in group:
                        stock = load_stock(sku)
                        if stock is not None and stock.positions:
                            items[sku] = stock_json(stock)
                    continue
                skus_param = ",".join(quote(sku, safe="") for sku in group)  # a code may hold '#', '/', ':'
                url = f"{owner.rstrip('/')}/inventory?scope=local&skus={skus_param}"
                async with app.http_client.get(url, headers=peer_headers) as response:
                    if response.status != 200:
                        return _error(self.web, 502, f"owner {owner} answered {response.status}")
                    items.update((await response.json())["items"])
            return self.json({"items": items, "missing": [s for s in skus if s not in items]})

    @app.page("/orders/{order_no}")
    @app.table_route(table=tables.orders, match_info="order_no")  # type: ignore[arg-type]  # Faust types it for View methods; app.page takes functions too
    async def order_view(web: Web, request: Request, order_no: str) -> Response:
        if not _CODE.match(order_no):
            return _error(web, 400, "orderNo must be a code")
        raw = tables.orders.get(order_key(order_no))
        if raw is None:
            return _error(web, 404, f"unknown order {order_no}")
        return web.json(order_json(decode(raw, validate=False)))

    @app.page("/events/stream")
    class EventStream(View):
        """Server-Sent Events: inventory changes, alerts and order statuses as they are
        published, and a stats tick every second."""

        async def get(self, request: Request) -> Any:
            from aiohttp import web as aioweb

            response = aioweb.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await response.prepare(request)  # type: ignore[arg-type]  # Faust's Request is aiohttp's
            queue = live.subscribe()
            try:
                await response.write(b": connected\n\n")
                next_tick = time.monotonic()
                while True:
                    timeout = max(0.0, next_tick - time.monotonic())
                    try:
                        event, payload = await asyncio.wait_for(queue.get(), timeout=timeout)
                        await response.write(f"event: {event}\ndata: {payload}\n\n".encode())
                    except TimeoutError:
                        totals = metrics.totals()
                        lag = _lag_json(app, tables)
                        stats = {
                            "eventsPerSecond": round(meter.sample(sum(totals.events_in.values())), 1),
                            "eventsIn": totals.events_in,
                            "deadLetters": totals.dead_letters,
                            "lag": lag,
                            "lagTotal": sum(p["lag"] for p in lag),
                        }
                        await response.write(f"event: stats\ndata: {json.dumps(stats)}\n\n".encode())
                        next_tick = time.monotonic() + 1.0
            except (ConnectionResetError, asyncio.CancelledError):
                pass
            finally:
                live.unsubscribe(queue)
            return response

    @app.page("/dashboard")
    class Dashboard(View):
        async def get(self, request: Request) -> Response:
            index = STATIC_DIR / "index.html"
            if not index.exists():
                return _error(self.web, 404, "dashboard not installed")
            return self.html(index.read_text(encoding="utf-8"))

    @app.page("/static/{name}")
    class Static(View):
        async def get(self, request: Request, name: str) -> Response:
            path = STATIC_DIR / name
            if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
                return _error(self.web, 404, f"no static file {name}")
            return self.bytes(path.read_bytes(), content_type=STATIC_TYPES[path.suffix])

    @app.page("/openapi.json")
    class OpenApi(View):
        async def get(self, request: Request) -> Response:
            return self.json(openapi_document(str(app.conf.canonical_url)))

    class ConsumerState(View):
        """What the fetcher is doing: for finding a partition that stopped being read. It peeks
        at Faust's and aiokafka's internals: served only with ``debug_views``."""

        async def get(self, request: Request) -> Response:
            consumer = app.consumer

            def tps(items: Any) -> list[str]:
                return sorted(f"{tp.topic}[{tp.partition}]" for tp in (items or ()))

            positions: dict[str, dict[str, Any]] = {}
            for tp in sorted(consumer.assignment()):
                try:
                    positions[f"{tp.topic}[{tp.partition}]"] = {
                        "highwater": consumer.highwater(tp),
                        "committed": faust_private.committed_offset(app, tp),
                    }
                except Exception as exc:  # noqa: BLE001 - diagnostics only
                    positions[f"{tp.topic}[{tp.partition}]"] = {"error": repr(exc)}
            client: dict[str, Any] = {}
            try:  # the aiokafka consumer in Faust's consumer thread (read-only peek)
                for tp, position, paused in faust_private.fetch_positions(app):
                    client[f"{tp.topic}[{tp.partition}]"] = {"position": position, "paused": paused}
            except Exception as exc:  # noqa: BLE001 - diagnostics only
                client = {"error": repr(exc)}
            partitions = faust_private.consumer_partitions(app)
            return self.json(
                {
                    "client": client,
                    "active": tps(partitions["active"]),
                    "paused": tps(partitions["paused"]),
                    "buffered": tps(partitions["buffered"]),
                    "flowControlSuspended": not app.flow_control.is_active(),
                    "positions": positions,
                }
            )

    if settings.debug_views:
        app.page("/debug/consumer")(ConsumerState)

    @app.page("/health")
    class Health(View):
        """Liveness: 200 while the process serves; says why it is not ready, if it is not."""

        async def get(self, request: Request) -> Response:
            reasons = readiness(app, pipeline.broker_watch)
            return self.json(
                {"status": "ok", "ready": not reasons, "notReadyBecause": reasons, **pipeline.broker_watch.status()}
            )

    @app.page("/ready")
    class Ready(View):
        """Readiness (streams/health.py): 503 with the reasons while the broker is away, no
        partitions are assigned, a rebalance runs or the tables recover."""

        async def get(self, request: Request) -> Response:
            reasons = readiness(app, pipeline.broker_watch)
            return self.json({"ready": not reasons, "notReadyBecause": reasons}, status=503 if reasons else 200)

    @app.page("/metrics")
    class MetricsView(View):
        """Prometheus exposition, in the format the scraper's Accept header asks for."""

        async def get(self, request: Request) -> Response:
            body, content_type = metrics.render(request.headers.get("Accept"))
            # aiohttp refuses a charset inside content_type: give the whole header instead
            return self.bytes(body, headers={"Content-Type": content_type})

    @app.page("/dead-letters/latest")
    class LatestDeadLettersView(View):
        """The newest dead letters this worker wrote since it started (``dead_letters_shown``),
        newest first; ``?limit=`` shows fewer. The dead-letter topic holds them all."""

        async def get(self, request: Request) -> Response:
            latest = pipeline.dead_letters.latest
            raw = request.query.get("limit", "")
            if raw and not raw.isdigit():
                return _error(self.web, 400, "limit must be a whole number")
            items = latest.latest(int(raw) if raw else None)
            return self.json({"deadLetters": items, "writtenSinceStart": latest.written})


def _install_json_errors(app: Any) -> None:
    """Errors raised by aiohttp itself (no such route, wrong method) get the JSON error body
    too, and an unexpected exception is a logged 500 with a JSON body, never a stack trace."""
    import logging

    import aiohttp
    from aiohttp import web as aioweb

    @aioweb.middleware
    async def json_errors(request: Any, handler: Any) -> Any:
        try:
            return await handler(request)
        except aioweb.HTTPException as exc:
            if exc.status < 400:
                raise
            return aioweb.json_response({"error": exc.reason, "status": exc.status}, status=exc.status)
        except aiohttp.ClientError as exc:  # the key's owner did not answer (partitions moving, a worker gone)
            logging.getLogger(__name__).warning("view %s: the owner of the key did not answer: %r", request.path, exc)
            return aioweb.json_response(
                error_json(503, "the worker owning this key did not answer; retry shortly"),
                status=503,
                headers={"Retry-After": "1"},
            )
        except Exception:
            logging.getLogger(__name__).exception("view failed: %s", request.path)
            return aioweb.json_response({"error": "internal error", "status": 500}, status=500)

    app.web.web_app.middlewares.append(json_errors)


def consumer_lag(app: Any, tables: Any) -> dict[tuple[str, int], float]:
    """(topic, partition) -> records not yet committed (high watermark - committed offset), for
    every partition assigned to this worker whose high watermark is known. The tables'
    changelog partitions are assigned to the consumer too (recovery reads them), but the group
    never commits them: their "lag" would never reach 0, so they are left out."""
    lag: dict[tuple[str, int], float] = {}
    consumer = app.consumer
    changelogs = {table.changelog_topic.get_topic_name() for table in (tables.orders, tables.stock)}
    for tp in sorted(consumer.assignment()):
        if tp.topic in changelogs:
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - not fetched yet
            continue
        committed = faust_private.committed_offset(app, tp) or 0
        if highwater is not None:
            lag[(tp.topic, tp.partition)] = max(0, highwater - committed)
    return lag


def _lag_json(app: Any, tables: Any) -> list[dict[str, Any]]:
    try:
        lag = consumer_lag(app, tables)
    except Exception:  # noqa: BLE001 - no consumer yet (starting): no lag shown
        return []
    return [{"topic": t, "partition": p, "lag": n} for (t, p), n in sorted(lag.items())]


def table_keys(tables: Any) -> dict[str, float]:
    """Table name -> RocksDB's estimate of the keys in this worker's partitions of it."""
    sizes: dict[str, float] = {}
    for table in (tables.orders, tables.stock):
        total = 0
        for db in faust_private.open_partition_dbs(table):
            try:
                total += db.property_int_value("rocksdb.estimate-num-keys") or 0
            except Exception:  # noqa: BLE001 - a closed partition
                continue
        sizes[table.name] = total
    return sizes
