"""The TMS/WMS webhook: POST /webhooks/tms and /webhooks/wms (being written, issue 6).

This first version only declares the routes; until the webhook is complete every request is
answered 503, so nothing is accepted that is not durably written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.app import Pipeline

SOURCES = ("tms", "wms")


def register_webhook(pipeline: Pipeline) -> None:
    """Declare POST /webhooks/{source} on the worker's web server."""
    from faust.web import Request, Response, View

    app = pipeline.app

    for source in SOURCES:

        class Webhook(View):
            async def post(self, request: Request, **_: Any) -> Response:
                return self.json({"error": "the webhook is not available yet", "status": 503}, status=503)

        app.page(f"/webhooks/{source}", name=f"webhook-{source}")(Webhook)
