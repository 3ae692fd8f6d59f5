"""How every process logs: the root logger's level and format, from the settings.

The worker hands ``logging_config`` to Faust (applied with ``dictConfig`` instead of its own
handler); the read processes and the CLIs call ``configure_logging`` first thing. Records go
to standard error (standard output carries the tools' data). ``plain``: Faust's layout,
``[time] [pid] [LEVEL] logger: message``. ``json``: one object per line with ``time`` (UTC),
``level``, ``logger``, ``message`` and, when the record carries one, ``exception``; a line
never spans two. Standard library only (this is the settings floor).
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any, Literal

from config.settings import Settings

PLAIN_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line: time, level, logger, message[, exception]."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "time": when.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def logging_config(settings: Settings, level: str | None = None) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of the settings' format, at ``level`` (default the
    settings' ``log_level``): one handler on standard error at the root, the loggers already
    created left enabled (Faust and the clients create theirs at import)."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if settings.log_format == "json" else {"format": PLAIN_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "default"}
        },
        "root": {"level": (level or settings.log_level).upper(), "handlers": ["default"]},
    }


def configure_logging(settings: Settings, level: str | None = None) -> None:
    """Set up the root logger of this process from the settings (replacing its handlers)."""
    logging.config.dictConfig(logging_config(settings, level))
