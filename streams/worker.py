"""Run one pipeline worker: ``python -m streams.worker``.

Starts the local broker when the settings point at it, creates the topics from their one
declaration, then hands over to Faust's worker (recovery, agents, timer, web views).
"""

from __future__ import annotations

import sys

from config.settings import get_settings
from streams import local_kafka
from streams.topics import create_topics


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    if settings.uses_local_broker:
        local_kafka.start(settings)
    created = create_topics(settings)
    if created:
        print(f"created {len(created)} topics", flush=True)
    from streams.app import create_app

    pipeline = create_app(settings)
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", *(argv or sys.argv[1:])]
    pipeline.app.main()


if __name__ == "__main__":
    main()
