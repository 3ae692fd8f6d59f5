"""Logging from the settings (config/logs.py): the plain and JSON formats, the level, and the
hand-over to Faust's worker (mode's ``setup_logging``, which the worker calls with
``app.conf.logging_config``)."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from config.logs import JsonFormatter, configure_logging, logging_config
from config.settings import Settings


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level restored after the test."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def captured(settings: Settings, level: str | None = None) -> io.StringIO:
    """Configure the root logger from the settings and point its one handler at a buffer."""
    configure_logging(settings, level)
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    return stream


def test_the_plain_format_is_time_level_logger_message(root: logging.Logger) -> None:
    out = captured(Settings(log_format="plain"))
    logging.getLogger("streams.app").warning("partition %d: %s", 3, "late")
    line = out.getvalue().rstrip("\n")
    pattern = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] \[\d+\] \[WARNING\] streams\.app: partition 3: late"
    assert re.fullmatch(pattern, line), line


def test_the_json_format_is_one_object_per_line(root: logging.Logger) -> None:
    out = captured(Settings(log_format="json"))
    logging.getLogger("streams.reader").info('two\nlines and a quote " and 库存')
    logging.getLogger("connectors.produce").error("sent %d of %d", 1, 2)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert (first["level"], first["logger"], first["message"]) == (
        "INFO",
        "streams.reader",
        'two\nlines and a quote " and 库存',
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"]), first["time"]
    assert (second["level"], second["message"]) == ("ERROR", "sent 1 of 2")


def test_an_exception_travels_in_the_same_json_line(root: logging.Logger) -> None:
    out = captured(Settings(log_format="json"))
    try:
        raise ValueError("bad offset")
    except ValueError:
        logging.getLogger("streams.app").exception("commit failed")
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "commit failed"
    assert record["exception"].startswith("Traceback (most recent call last):")
    assert record["exception"].endswith("ValueError: bad offset")


def test_the_level_comes_from_the_settings_in_any_case_or_from_the_caller(root: logging.Logger) -> None:
    settings = Settings(log_level="warning")  # type: ignore[arg-type]  # normalised by the validator
    assert settings.log_level == "WARNING"
    out = captured(settings)
    logging.getLogger("a").info("hidden")
    logging.getLogger("a").warning("shown")
    (line,) = out.getvalue().splitlines()
    assert line.endswith(" [WARNING] a: shown")
    out = captured(settings, "debug")
    logging.getLogger("a").debug("now shown")
    assert "a: now shown" in out.getvalue()


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="log_format"):
        Settings(log_format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log_level"):
        Settings(log_level="loud")  # type: ignore[arg-type]


def test_loggers_created_before_the_setup_keep_logging(root: logging.Logger) -> None:
    early = logging.getLogger("aiokafka.consumer.fetcher.test")  # Faust and the clients create theirs at import
    out = captured(Settings(log_format="json"))
    early.warning("still here")
    assert json.loads(out.getvalue())["logger"] == "aiokafka.consumer.fetcher.test"


def test_faust_s_worker_applies_the_config_in_place_of_its_own(root: logging.Logger) -> None:
    """What faust.Worker does with ``app.conf.logging_config`` (streams/worker.py sets it)."""
    from mode.utils.logging import setup_logging

    config = logging_config(Settings(log_format="json"), "INFO")
    setup_logging(loglevel="info", logfile=None, logging_config=dict(config))
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler.formatter, JsonFormatter)
    assert logging.getLogger().level == logging.INFO
    stream = io.StringIO()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    logging.getLogger("faust.worker").info("ready")
    assert json.loads(stream.getvalue())["message"] == "ready"


def test_the_worker_hands_the_config_to_faust() -> None:
    """streams/worker.py gives Faust's worker the config (not only a level)."""
    import faust

    app = faust.App("logs-test", broker="kafka://127.0.0.1:1")
    app.conf.logging_config = logging_config(Settings(log_format="json"), "DEBUG")
    worker = faust.Worker(app, loglevel="debug")
    assert worker.logging_config is not None
    assert worker.logging_config["root"] == {"level": "DEBUG", "handlers": ["default"]}
    assert worker.logging_config["formatters"]["default"] == {"()": "config.logs.JsonFormatter"}
