"""Publish source events given as JSON lines: ``python -m connectors.produce FILE|-``.

One event per line (``{"eventType": ..., "eventId": ..., "occurredAt": ..., ...camelCase}``),
validated against its contract and Avro-encoded; an invalid line is reported with its line
number and not sent, the others still are. Source systems, the simulator and the demo all use
this path (:class:`EventPublisher`). Each record is retried for ``--retry-for`` seconds
(``produce_retry_for_s``); after the first failure no further line is sent, and the lines not
acknowledged go, in input order, to an "unsent" file that resumes the run (a line may then be
sent twice: the pipeline applies each eventId once). Exit status: 0 all sent; 1 some lines
invalid (every valid one sent); 75 (EX_TEMPFAIL) valid lines not sent: resume with the file.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

from config.logs import configure_logging
from config.settings import Settings, get_settings
from schemas.base import Event
from schemas.codec import Codec
from schemas.events import InvalidLine, parse_line
from streams.kafka_config import EXIT_REFUSED, producer_config, refusal
from streams.producer import produce as produce_record
from streams.topics import Topics, input_key
from streams.wire import Wire

FLUSH_MARGIN_S = 10.0  # librdkafka reports every record by its message timeout; this covers the report


@dataclass
class PublishReport:
    sent: int = 0
    invalid: list[InvalidLine] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unsent: dict[int, str] = field(default_factory=dict)  # line number -> why, for numbered records


class EventPublisher:
    """Validated input events -> Avro -> their input topic, keyed as the pipeline expects.

    Each record is retried for ``retry_for_s`` (default: the setting ``produce_retry_for_s``;
    librdkafka's ``message.timeout.ms``) and then reported failed. A record published with a
    line number is tracked: :attr:`unacknowledged` until its report, then acknowledged or in
    ``report.unsent`` with the reason. With ``status``, librdkafka's per-retry log lines are
    replaced by one line there per change of the broker's state."""

    def __init__(
        self,
        settings: Settings,
        codec: Codec | None = None,
        *,
        retry_for_s: float | None = None,
        status: IO[str] | None = None,
        **producer_overrides: Any,
    ) -> None:
        from confluent_kafka import Producer

        self.settings = settings
        self.topics = Topics(settings)
        self.codec = codec
        self.wire = Wire(settings)  # the deployment's framing, unless a codec is given
        self.retry_for_s = settings.produce_retry_for_s if retry_for_s is None else retry_for_s
        extra: dict[str, Any] = {"message.timeout.ms": max(1, round(self.retry_for_s * 1000))}
        if status is not None:
            # librdkafka logs every reconnect attempt (about 20 a second while the broker is
            # down); its error callback gets the same errors, told once per state here.
            extra.update({"log_level": 2, "error_cb": partial(self._on_client_error, status)})
        self.producer = Producer(producer_config(settings, **{**extra, **producer_overrides}))
        self.report = PublishReport()
        self.unacknowledged: set[int] = set()
        self._told: tuple[int, set[Any]] = (0, set())  # (records sent then, error codes told since)

    def _on_client_error(self, status: IO[str], error: Any) -> None:
        sent, told = self._told
        if sent != self.report.sent:  # records went through since: this is a new outage
            self._told = sent, told = self.report.sent, set()
        if error.code() not in told:
            told.add(error.code())
            print(f"kafka: {error.str()} - retrying each record for up to {self.retry_for_s:g}s", file=status)

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.report.failed.append(str(err))
        else:
            self.report.sent += 1

    def _on_line_delivery(self, line_no: int, err: Any, _msg: Any) -> None:
        self.unacknowledged.discard(line_no)
        if err is not None:
            reason = err.str() if hasattr(err, "str") else str(err)
            self.report.failed.append(f"line {line_no}: {reason}")
            self.report.unsent[line_no] = reason
        else:
            self.report.sent += 1

    def publish(self, event: Event, line_no: int | None = None) -> None:
        """Hand the event's record to the producer. A numbered record the producer refuses at
        once (a fatal client error) is reported unsent instead of raising."""
        from confluent_kafka import KafkaException

        topic = self.topics.input_for(type(event).__name__)
        value = self.codec.encode(event, topic=topic) if self.codec else self.wire.encode(event, topic)
        report = self._on_delivery if line_no is None else partial(self._on_line_delivery, line_no)
        if line_no is not None:
            self.unacknowledged.add(line_no)  # before the hand-over: an interrupted one counts as in flight
        try:
            produce_record(self.producer, topic, value, input_key(event).encode(), on_delivery=report)
        except KafkaException as exc:
            if line_no is None:
                raise
            self._on_line_delivery(line_no, exc.args[0] if exc.args else exc, None)
            return
        self.producer.poll(0)

    def flush(self, timeout_s: float | None = None) -> PublishReport:
        """Wait for every record's report (by default as long as a record is retried); the
        numbered records still unanswered after ``timeout_s`` count as unsent."""
        wait = self.retry_for_s + FLUSH_MARGIN_S if timeout_s is None else timeout_s
        remaining = self.producer.flush(wait)
        if remaining:
            self.report.failed.append(f"{remaining} messages not delivered within {wait:g}s")
            for line_no in sorted(self.unacknowledged):
                self.report.unsent.setdefault(line_no, f"not acknowledged within {wait:g}s")
        return self.report

    def abandon(self) -> PublishReport:
        """Stop now: the records not yet sent to the broker are dropped and reported unsent;
        those in flight stay :attr:`unacknowledged` (they may still be written)."""
        self.producer.purge(in_queue=True, in_flight=False)
        self.producer.poll(0)  # serves the purged records' reports
        return self.report


def publish_events(settings: Settings, events: Iterable[Event]) -> PublishReport:
    publisher = EventPublisher(settings)
    for event in events:
        publisher.publish(event)
    return publisher.flush()


# --- the command --------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one run of the command did with its input."""

    valid: int = 0
    invalid: list[InvalidLine] = field(default_factory=list)
    sent: int = 0
    unsent: dict[int, str] = field(default_factory=dict)  # line number -> why (failed, unanswered, not tried)
    unsent_path: Path | None = None
    interrupted: bool = False


def default_unsent_path(source: str, now: datetime) -> Path:
    """Where a run's unsent lines go: beside the input (``FILE.unsent``; an input that is
    already an unsent file is rewritten in place), or for standard input a new file in the
    working directory."""
    if source == "-":
        return Path(f"produce-{now:%Y%m%dT%H%M%SZ}.unsent")
    return Path(source if source.endswith(".unsent") else f"{source}.unsent")


def produce(
    lines: Iterable[str],
    publisher: EventPublisher | None,
    unsent_path: Path,
    first_line: int = 1,
    err: IO[str] | None = None,
) -> Outcome:
    """Validate and publish every line from ``first_line`` (numbers count every line of the
    input); stop sending at the first record that failed (or on Ctrl-C), wait for the reports
    of those in flight, and write every valid line not acknowledged to ``unsent_path``, in
    input order (nothing is written when all were sent)."""
    err = err or sys.stderr
    outcome = Outcome()
    numbered = enumerate(lines, start=1)  # a plain iterator: what a stop leaves of it is resumable
    kept: dict[int, str] = {}  # texts of the lines handed to the producer and not known delivered
    prune_at = 10_000
    current: tuple[int, str] | None = None  # the line being read, until it is accounted for
    try:
        for line_no, text in numbered:
            if line_no < first_line or not text.strip():
                continue
            current = (line_no, text)
            item = parse_line(line_no, text)
            if isinstance(item, InvalidLine):
                current = None
                outcome.invalid.append(item)
                print(f"invalid {item}", file=err)
                continue
            if publisher is not None:
                publisher.publish(item, line_no)
                kept[line_no] = text
            current = None
            outcome.valid += 1
            if publisher is None:
                continue
            if publisher.report.unsent:
                first = min(publisher.report.unsent)
                print(
                    f"line {first} was not sent ({publisher.report.unsent[first]}): sending stops; "
                    f"waiting for the lines in flight",
                    file=err,
                )
                break
            if len(kept) >= prune_at:  # keep only what may still have to be resumed
                kept = {n: t for n, t in kept.items() if n in publisher.unacknowledged}
                prune_at = 2 * len(kept) + 10_000
        if publisher is not None:
            publisher.flush()
    except KeyboardInterrupt:
        outcome.interrupted = True
        print("interrupted: sending stops; the lines not acknowledged are written to resume", file=err)
    if publisher is None:
        return outcome
    rest: Iterator[tuple[int, str]] = ((n, t) for n, t in numbered if n >= first_line and t.strip())
    if current is not None:  # interrupted while reading or handing over this line
        line_no, text = current
        if line_no in publisher.unacknowledged or line_no in publisher.report.unsent:
            kept[line_no] = text
            outcome.valid += 1
        else:
            rest = itertools.chain([current], rest)
    report = publisher.abandon() if outcome.interrupted else publisher.report
    outcome.sent = report.sent
    outcome.unsent = dict(report.unsent)
    for line_no in publisher.unacknowledged:
        outcome.unsent.setdefault(line_no, "in flight when interrupted: may have been written")
    resume = [(n, kept[n]) for n in sorted(outcome.unsent)]
    _write_unsent(resume, rest, outcome, unsent_path, err)
    return outcome


def _write_unsent(
    resume: list[tuple[int, str]], rest: Iterator[tuple[int, str]], outcome: Outcome, path: Path, err: IO[str]
) -> None:
    """The unsent lines, then every valid line never read, into ``path`` - atomically, as the
    input may be that very file; nothing is created when there is nothing to write."""
    tmp = path.with_name(path.name + ".tmp")
    out: IO[str] | None = None

    def write(text: str) -> None:
        nonlocal out
        if out is None:
            out = tmp.open("w", encoding="utf-8")
        out.write(text if text.endswith("\n") else text + "\n")

    try:
        for _, text in resume:
            write(text)
        for line_no, text in rest:
            item = parse_line(line_no, text)
            if isinstance(item, InvalidLine):
                outcome.invalid.append(item)
                print(f"invalid {item}", file=err)
                continue
            outcome.valid += 1
            outcome.unsent[line_no] = "not tried"
            write(text)
    finally:
        if out is not None:
            out.close()
    if out is not None:
        os.replace(tmp, path)
        outcome.unsent_path = path


def line_ranges(numbers: Iterable[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    spans: list[list[int]] = []
    for n in sorted(numbers):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Exit status: 0 all sent; 1 some lines invalid (every valid one sent); 77 the brokers refused the "
        "credentials or the TLS handshake (nothing sent); 75 some valid lines not "
        "sent: they are listed and written to the unsent file, and producing that file resumes the run.",
    )
    parser.add_argument("file", help="JSON lines file, or - for standard input")
    parser.add_argument("--dry-run", action="store_true", help="validate only, send nothing")
    parser.add_argument(
        "--retry-for",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long each record is retried while the broker does not acknowledge it "
        "(default: the setting produce_retry_for_s, 300)",
    )
    parser.add_argument(
        "--from-line",
        type=int,
        default=1,
        metavar="N",
        help="skip the lines before line N (numbers still count from the file's first line)",
    )
    parser.add_argument(
        "--unsent",
        default=None,
        metavar="PATH",
        help="where the lines not sent are written (default: FILE.unsent, an input named "
        "*.unsent is rewritten in place; for standard input produce-<time>.unsent)",
    )
    args = parser.parse_args(argv)
    if args.retry_for is not None and args.retry_for < 1:
        parser.error("--retry-for must be at least 1 (second)")
    if args.from_line < 1:
        parser.error("--from-line must be >= 1")
    settings = get_settings()
    configure_logging(settings)
    # An outage is waited out (--retry-for); refused credentials or a failed TLS handshake are not.
    secured = settings.security_protocol != "PLAINTEXT" and not args.dry_run
    refused = refusal(settings, timeout_s=10.0) if secured else None
    if refused is not None and refused[0] == EXIT_REFUSED:
        print(refused[1], file=sys.stderr)
        return refused[0]
    unsent_path = Path(args.unsent) if args.unsent else default_unsent_path(args.file, datetime.now(UTC))
    stream: IO[str] = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    publisher = None if args.dry_run else EventPublisher(settings, retry_for_s=args.retry_for, status=sys.stderr)
    with stream:
        outcome = produce(stream, publisher, unsent_path, args.from_line)
    resumed = args.file != "-" and Path(args.file).resolve() == unsent_path.resolve()
    if resumed and publisher is not None and not outcome.unsent and args.from_line == 1:
        unsent_path.unlink()  # every line of the unsent file is sent: nothing is left to resume
        print(f"{unsent_path}: every line sent; removed", file=sys.stderr)
    if outcome.unsent:
        reasons = sorted(set(outcome.unsent.values()))
        print(
            f"not sent: line{'s' if len(outcome.unsent) > 1 else ''} {line_ranges(outcome.unsent)} "
            f"({'; '.join(reasons[:3])}{'; ...' if len(reasons) > 3 else ''})",
            file=sys.stderr,
        )
        print(
            f"they are in {outcome.unsent_path}, in input order; resume with: "
            f"python -m connectors.produce {outcome.unsent_path}",
            file=sys.stderr,
        )
        print(
            "(a line that was in flight when it failed may have been written all the same; the pipeline "
            "applies each eventId once, so resuming cannot apply it twice)",
            file=sys.stderr,
        )
    print(
        f"{outcome.valid} valid, {len(outcome.invalid)} invalid, {outcome.sent} sent, {len(outcome.unsent)} not sent",
        file=sys.stderr,
    )
    if outcome.unsent:
        return 75
    if outcome.interrupted:
        return 130
    return 1 if outcome.invalid else 0


if __name__ == "__main__":
    raise SystemExit(main())
