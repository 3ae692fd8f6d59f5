"""librdkafka's connection errors, summarised: one line per kind of failure, not one per retry.

librdkafka retries a broker it cannot reach (or that refuses its credentials) every second or
so, reporting each try to ``error_cb`` and to its log. ``ErrorSummary`` (installed on every
confluent-kafka client by streams/kafka_config.py) logs the first failure of each kind at
once, then, while the failures go on, one line per ``window_s``:
``kafka producer: connection failed at host:9092, 37 retries in 30 s: <last reason>``.

Kinds (``classify``): ``authentication`` (SASL refused), ``tls`` (handshake or certificate
verification failed), ``unreachable`` (refused, resolve failure, timeout, all brokers down),
``other``. Authentication and TLS failures do not heal by retrying: the start-up check
(``kafka_config.check_connection``) turns them into one line and a non-zero exit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("librdkafka")

# librdkafka error codes (confluent_kafka.KafkaError), by kind.
_AUTHENTICATION_CODES = {-169, 58}  # _AUTHENTICATION, SASL_AUTHENTICATION_FAILED
_TLS_CODES = {-181}  # _SSL
_UNREACHABLE_CODES = {-195, -187, -193, -185}  # _TRANSPORT, _ALL_BROKERS_DOWN, _RESOLVE, _TIMED_OUT
# What the texts of librdkafka's log lines and of errors without a telling code say.
_AUTHENTICATION_WORDS = ("authentication failed", "sasl authentication", "invalid credentials", "invalid username")
_TLS_WORDS = ("ssl handshake", "certificate verify", "ssl routines", "certificate", "tls ")
_UNREACHABLE_WORDS = ("connection refused", "connect to", "failed to resolve", "timed out", "brokers are down")

KIND_TEXT = {
    "authentication": "authentication refused",
    "tls": "TLS handshake failed",
    "unreachable": "broker unreachable",
    "other": "client error",
}
# A running client's lines: "broker unreachable" is the worker's outage line, said once per
# outage by its broker watch (streams/health.py), which holds these back while it lasts.
RUNNING_TEXT = {**KIND_TEXT, "unreachable": "connection failed"}


def _text(error: Any) -> str:
    if hasattr(error, "str") and callable(error.str):  # confluent_kafka.KafkaError
        return str(error.str())
    return str(error)


def classify(error: Any) -> str:
    """``authentication``, ``tls``, ``unreachable`` or ``other`` for a KafkaError, an
    exception or a log line."""
    code = error.code() if hasattr(error, "code") and callable(error.code) else None
    if code in _AUTHENTICATION_CODES:
        return "authentication"
    if code in _TLS_CODES:
        return "tls"
    text = _text(error).lower()
    if any(w in text for w in _AUTHENTICATION_WORDS):
        return "authentication"
    if any(w in text for w in _TLS_WORDS):
        return "tls"
    if code in _UNREACHABLE_CODES or any(w in text for w in _UNREACHABLE_WORDS):
        return "unreachable"
    return "other"


class _Logger:
    """What confluent-kafka's ``logger`` setting calls: ``log(level, fmt, *args)``."""

    def __init__(self, summary: ErrorSummary) -> None:
        self._summary = summary

    def log(self, level: int, fmt: str, *args: Any) -> None:
        line = fmt % args if args else fmt
        if level >= logging.WARNING and classify(line) != "other":
            self._summary.report(line)
        else:
            log.log(level, "%s: %s", self._summary.client, line)


class ErrorSummary:
    """The ``error_cb`` and ``logger`` of one confluent-kafka client. Thread-safe (librdkafka
    calls them from the polling thread). Contract: per kind, the first failure is logged at
    once; later ones are counted and logged as one summary line when ``window_s`` has passed
    since the last line of that kind; nothing else is swallowed (other errors and log lines
    reach the ``librdkafka`` logger as they come)."""

    def __init__(
        self,
        client: str,
        bootstrap: str,
        window_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        emit: Callable[[int, str], None] | None = None,
    ) -> None:
        self.client, self.bootstrap, self.window_s = client, bootstrap, window_s
        self._clock = clock
        self._emit = emit or (lambda level, line: log.log(level, "%s", line))
        self._lock = threading.Lock()
        self._since: dict[str, float] = {}  # kind -> when its last line was written
        self._count: dict[str, int] = {}  # kind -> failures not yet reported
        self.logger = _Logger(self)

    def on_error(self, error: Any) -> None:
        """confluent-kafka's ``error_cb``."""
        if classify(error) == "other":
            fatal = getattr(error, "fatal", lambda: False)()
            self._emit(logging.ERROR if fatal else logging.WARNING, self._line(error))
            return
        self.report(error)

    def report(self, error: Any) -> None:
        kind, now = classify(error), self._clock()
        with self._lock:
            last = self._since.get(kind)
            if last is None:
                self._since[kind], self._count[kind] = now, 0
                line = f"{self.client}: {RUNNING_TEXT[kind]} at {self.bootstrap}: {_text(error)}"
            elif now - last >= self.window_s:
                count = self._count[kind] + 1
                self._since[kind], self._count[kind] = now, 0
                line = (
                    f"{self.client}: {RUNNING_TEXT[kind]} at {self.bootstrap}, {count} retries in "
                    f"{now - last:.0f} s: {_text(error)}"
                )
            else:
                self._count[kind] += 1
                return
        self._emit(logging.ERROR if kind in ("authentication", "tls") else logging.WARNING, line)

    def _line(self, error: Any) -> str:
        return f"{self.client}: {_text(error)}"

    @staticmethod
    def one_line(bootstrap: str, errors: Iterable[Any], waited_s: float) -> str:
        """The start-up verdict: the most telling failure among ``errors`` as one line."""
        found = list(errors)
        for kind in ("authentication", "tls", "unreachable", "other"):
            of_kind = [e for e in found if classify(e) == kind]
            if of_kind:
                reason = _text(of_kind[-1]).replace("\n", " ")
                if kind == "unreachable":
                    tries = f"{len(of_kind)} failed attempts in {waited_s:.0f} s"
                    return f"{KIND_TEXT[kind]} at {bootstrap}, {tries}: {reason}"
                return f"{KIND_TEXT[kind]} at {bootstrap}: {reason}"
        return f"{KIND_TEXT['unreachable']} at {bootstrap}: no answer in {waited_s:.0f} s"


class RefusalWatch(logging.Handler):
    """A logging handler for aiokafka's logger: aiokafka logs a refused SASL authentication
    or a failed certificate verification ("Unable connect to ...") and retries for ever.
    The first such record calls ``on_refused`` with one line (the worker stops, exit 77:
    streams/app.py); other records pass untouched."""

    _SIGNS = ("SaslAuthenticationFailed", "CERTIFICATE_VERIFY_FAILED", "SSLCertVerificationError")

    def __init__(self, bootstrap: str, on_refused: Callable[[str], None]) -> None:
        super().__init__(level=logging.WARNING)
        self.bootstrap, self.on_refused, self.fired = bootstrap, on_refused, False

    def emit(self, record: logging.LogRecord) -> None:
        if self.fired:
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge
            return
        if any(sign in message for sign in self._SIGNS):
            self.fired = True
            kind = "authentication" if "Sasl" in message else "tls"
            self.on_refused(f"{KIND_TEXT[kind]} at {self.bootstrap} (worker's aiokafka client): {message}")


class ConnectionFlood(logging.Filter):
    """A logging filter for aiokafka's loggers: while brokers are unreachable aiokafka logs
    every reconnect, metadata and fetch failure (about 25 lines a second). The first such
    record passes; the next ones are counted and dropped until ``window_s`` has passed, when
    one passes with the count appended. Authentication and TLS failures always pass (the
    worker's ``RefusalWatch`` must see them); so does everything else."""

    AIOKAFKA_LOGGERS = ("aiokafka", "aiokafka.consumer.fetcher", "aiokafka.consumer.group_coordinator")
    _SIGNS = ("Unable connect to", "Unable to update metadata", "NodeNotReadyError", "KafkaConnectionError")

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s, self._clock = window_s, clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - not ours to judge
            return True
        if not any(sign in message for sign in self._SIGNS) or classify(message) in ("authentication", "tls"):
            return True
        now = self._clock()
        with self._lock:
            if self._since is not None and now - self._since < self.window_s:
                self._count += 1
                return False
            count, since, self._since, self._count = self._count, self._since, now, 0
        if count and since is not None:
            record.msg, record.args = f"{message} ({count} more connection errors in {now - since:.0f} s)", ()
        return True

    def install(self) -> None:
        """Attach to aiokafka's loggers (once per logger)."""
        for name in self.AIOKAFKA_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, ConnectionFlood) for f in logger.filters):
                logger.addFilter(self)
