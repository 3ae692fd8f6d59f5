"""Simulate the source systems for a day: ``python -m connectors.simulate [--seed N] ...``.

Generates a reproducible day of OMS, WMS and TMS traffic (``connectors/traffic.py``) and
publishes it through the pipeline's own producer path (``EventPublisher``: validated, Avro,
keyed as the pipeline expects), paced at ``--rate`` events/s or as fast as the broker takes
them (``--max-rate``, the default). ``--out FILE`` also writes the events as JSON lines, which
``python -m connectors.produce FILE`` replays; with ``--dry-run`` nothing is published. A
progress bar (the simulated clock) and a summary go to stderr.

Each day assumes the pipeline has not seen its SKUs yet (its causality comes from a model
that starts empty): give a second day in the same pipeline other SKUs (``--sku-prefix``).
Ids carry ``--tag`` (default ``S<seed>``), so a re-published day is dropped as duplicates.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import IO, TYPE_CHECKING

from config.logs import configure_logging
from config.settings import get_settings
from connectors.traffic import CALM, DAY_S, DayParams, DaySimulation, Mix, is_opening_stock, to_json_line

if TYPE_CHECKING:
    from connectors.produce import EventPublisher
    from schemas.base import Event

FLUSH_TIMEOUT_S = 120.0


@dataclass
class RunReport:
    """What one run generated and what the broker acknowledged."""

    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    published: int = 0
    acknowledged: int = 0
    failures: list[str] = field(default_factory=list)
    interrupted: bool = False
    paused_s: float = 0.0  # after the opening stock; not counted in the rate
    generated_s: float = 0.0  # generating the whole day first (--pregenerate); not counted

    @property
    def events(self) -> int:
        return sum(self.counts.values())

    @property
    def rate(self) -> float:
        busy = self.seconds - self.paused_s
        return self.events / busy if busy > 0 else 0.0


class ProgressBar:
    """A one-line text bar on stderr, driven by the simulated clock (the number of events
    is not known before the day has run). Redrawn at most five times a second."""

    def __init__(self, stream: IO[str], label: str, width: int = 30) -> None:
        self.stream = stream
        self.label = label
        self.width = width
        self.started = time.monotonic()
        self.drawn_at = 0.0

    def update(self, simulated_s: int, events: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.drawn_at < 0.2:
            return
        self.drawn_at = now
        done = min(1.0, simulated_s / DAY_S)
        filled = int(done * self.width)
        elapsed = max(now - self.started, 1e-9)
        clock = f"{simulated_s // 3600:02d}:{simulated_s // 60 % 60:02d}"
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'-' * (self.width - filled)}] {done:4.0%} day {clock}"
            f"  {events:,} events  {events / elapsed:,.0f}/s "
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class Pacer:
    """Holds event n back until ``n / rate`` seconds after the start; ``rate`` None: never."""

    def __init__(self, rate: float | None, wait: Callable[[float], object]) -> None:
        self.rate = rate
        self.wait = wait
        self.started = time.monotonic()

    def pace(self, n: int) -> None:
        if self.rate is None:
            return
        while (ahead := self.started + n / self.rate - time.monotonic()) > 0:
            self.wait(min(ahead, 0.05))


def _waiter(publisher: EventPublisher | None) -> Callable[[float], object]:
    """Sleep, then serve delivery reports. (The producer's own poll timeout is whole
    milliseconds: a pacer's sub-millisecond waits would spin.)"""
    if publisher is None:
        return time.sleep

    def wait(seconds: float) -> None:
        time.sleep(seconds)
        publisher.producer.poll(0)

    return wait


def run(
    params: DayParams,
    publisher: EventPublisher | None,
    out: IO[str] | None,
    rate: float | None,
    progress_stream: IO[str] | None,
    opening_pause_s: float = 0.0,
    pregenerate: bool = False,
) -> tuple[RunReport, DaySimulation]:
    """Generate the day and hand each event to the publisher and/or the file, paced.

    ``opening_pause_s``: once the opening stock is published, flush and give the pipeline
    this long to shelve it before the first order arrives. ``pregenerate``: run the whole
    day first and publish from memory, so that the rate is the producer's, not the
    generator's (the shadow model costs more per event than publishing)."""
    simulation = DaySimulation(params)
    report = RunReport()
    events: Iterable[Event] = simulation.events()
    if pregenerate:
        events = _generate(simulation, progress_stream, report)
    label = "publishing" if publisher else "writing" if out else "generating"
    progress = ProgressBar(progress_stream, label) if progress_stream else None
    pacer = Pacer(rate, _waiter(publisher))
    started = time.monotonic()
    opening = True
    second = 0
    try:
        for n, event in enumerate(events, start=1):
            if opening and not is_opening_stock(event):
                opening = False
                if publisher is not None and opening_pause_s > 0:
                    report.paused_s = pause(publisher, opening_pause_s)
                    pacer.started += report.paused_s
            pacer.pace(n)
            if out is not None:
                out.write(to_json_line(event) + "\n")
            if publisher is not None:
                publisher.publish(event)
                report.published += 1
            report.counts[type(event).__name__] += 1
            if progress is not None:
                second = int((event.occurred_at - simulation.day_start).total_seconds())
                progress.update(second, n)
    except KeyboardInterrupt:
        report.interrupted = True
    if progress is not None:
        progress.update(second, report.events, force=True)
        progress.close()
    if publisher is not None:
        flushed = publisher.flush(FLUSH_TIMEOUT_S)
        report.acknowledged = flushed.sent
        report.failures = list(flushed.failed)
    report.seconds = time.monotonic() - started
    return report, simulation


def _generate(simulation: DaySimulation, progress_stream: IO[str] | None, report: RunReport) -> list[Event]:
    progress = ProgressBar(progress_stream, "generating") if progress_stream else None
    started = time.monotonic()
    events = []
    for event in simulation.events():
        events.append(event)
        if progress is not None:
            progress.update(simulation.now, len(events))
    if progress is not None:
        progress.update(DAY_S, len(events), force=True)
        progress.close()
    report.generated_s = time.monotonic() - started
    return events


def pause(publisher: EventPublisher, seconds: float) -> float:
    """Flush what was published and wait until ``seconds`` have passed."""
    started = time.monotonic()
    publisher.producer.flush(seconds)
    left = started + seconds - time.monotonic()
    if left > 0:
        time.sleep(left)
    publisher.producer.poll(0)
    return time.monotonic() - started


def missing_topics(publisher: EventPublisher) -> list[str]:
    """Input topics the broker does not have (auto-creation is off: the worker or
    ``make run`` creates them)."""
    topics = publisher.topics
    wanted = (topics.orders, topics.shipments, topics.stock_movements)
    present = publisher.producer.list_topics(timeout=10).topics
    return [name for name in wanted if name not in present]


def summary(params: DayParams, report: RunReport, simulation: DaySimulation, rate: float | None) -> str:
    lines = [
        f"simulated {params.day}, seed {params.seed}: {params.orders:,} orders, {params.skus:,} SKUs, "
        f"{params.warehouses} warehouses" + (" (interrupted)" if report.interrupted else "")
    ]
    width = max([len(name) for name in report.counts] + [5])
    lines += [f"  {name:<{width}} {count:>9,}" for name, count in sorted(report.counts.items())]
    lines.append(f"  {'total':<{width}} {report.events:>9,}")
    if report.generated_s:
        lines.append(f"generated first in {report.generated_s:.2f} s")
    pace = "max rate" if rate is None else f"paced at {rate:,.0f}/s"
    if report.paused_s:
        pace += f", {report.paused_s:.1f} s pause after the opening stock not counted"
    lines.append(f"{report.events:,} events in {report.seconds:.2f} s: {report.rate:,.0f} events/s ({pace})")
    if report.published:
        lines.append(
            f"published {report.published:,}, acknowledged {report.acknowledged:,}, {len(report.failures)} failures"
        )
    statuses = Counter(o.status.value for o in simulation.shadow.tables.orders_by_no.values())
    lines.append("orders in the shadow model: " + ", ".join(f"{s} {n:,}" for s, n in statuses.most_common()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = DayParams()
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--orders", type=int, default=defaults.orders)
    parser.add_argument("--skus", type=int, default=defaults.skus)
    parser.add_argument("--warehouses", type=int, default=defaults.warehouses)
    parser.add_argument("--day", type=date.fromisoformat, default=defaults.day, help="simulated day, YYYY-MM-DD")
    parser.add_argument("--tag", default=None, help="id namespace (default S<seed>)")
    parser.add_argument("--sku-prefix", default=defaults.sku_prefix)
    parser.add_argument(
        "--calm",
        action="store_true",
        help="a day whose outcome does not depend on how the pipeline interleaves its topics "
        "(ample stock, routed orders, no counts, no returns): the pipeline must end where the "
        "generator's model ends",
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=None, help="events per second")
    pace.add_argument("--max-rate", action="store_true", help="as fast as possible (the default)")
    parser.add_argument("--out", default=None, help="also write the events as JSON lines (- for stdout)")
    parser.add_argument("--dry-run", action="store_true", help="publish nothing")
    parser.add_argument(
        "--pregenerate",
        action="store_true",
        help="generate the whole day before publishing it (the rate is then the producer's; memory grows with the day)",
    )
    parser.add_argument(
        "--opening-pause",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after the opening stock, wait this long before the first order (a fresh pipeline "
        "must shelve it first: its topics are not ordered with each other)",
    )
    args = parser.parse_args(argv)
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be > 0")
    configure_logging(get_settings())
    params = DayParams(
        seed=args.seed,
        orders=args.orders,
        skus=args.skus,
        warehouses=args.warehouses,
        day=args.day,
        tag=args.tag,
        sku_prefix=args.sku_prefix,
        mix=CALM if args.calm else Mix(),
    )
    publisher = None
    if not args.dry_run:
        from confluent_kafka import KafkaException

        from connectors.produce import EventPublisher

        publisher = EventPublisher(get_settings())
        try:
            missing = missing_topics(publisher)
        except KafkaException as exc:
            print(f"cannot reach Kafka at {publisher.settings.bootstrap_servers}: {exc}", file=sys.stderr)
            return 2
        if missing:
            print(f"missing topics {', '.join(missing)}: start the pipeline first", file=sys.stderr)
            return 2
    out: IO[str] | None = None
    if args.out == "-":
        out = sys.stdout
    elif args.out:
        out = open(args.out, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        report, simulation = run(params, publisher, out, args.rate, sys.stderr, args.opening_pause, args.pregenerate)
    finally:
        if out is not None and out is not sys.stdout:
            out.close()
    print(summary(params, report, simulation, args.rate), file=sys.stderr)
    for failure in report.failures[:10]:
        print(f"failed: {failure}", file=sys.stderr)
    if report.interrupted:
        return 130
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
