"""``inventory-center``: one command line for what the README shows.

Each subcommand hands the rest of the line to the module that owns it (its ``main(argv)``),
so ``inventory-center <command> --help`` prints that module's help and exits before anything
starts or touches the network (tests/unit/tools/test_cli.py checks it with an audit hook). The
``python -m <module>`` forms keep working.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Main = Callable[[list[str]], int | None]


def _demo(argv: list[str]) -> int | None:
    from streams import demo

    return demo.main(argv)


def _stop(argv: list[str]) -> int | None:
    from streams import demo

    return demo.main(["stop", *argv])


def _reset(argv: list[str]) -> int | None:
    from streams import demo

    return demo.main(["reset", *argv])


def _worker(argv: list[str]) -> int | None:
    from streams import worker

    worker.main(argv)
    return 0


def _topics(argv: list[str]) -> int | None:
    from streams import topics

    return topics.main(argv)


def _reader(argv: list[str]) -> int | None:
    from streams import reader

    return reader.main(argv)


def _produce(argv: list[str]) -> int | None:
    from connectors import produce

    return produce.main(argv)


def _tail(argv: list[str]) -> int | None:
    from connectors import tail

    return tail.main(argv)


def _simulate(argv: list[str]) -> int | None:
    from connectors import simulate

    return simulate.main(argv)


def _connectors(argv: list[str]) -> int | None:
    from connectors import apply

    return apply.main(argv)


def _bench(argv: list[str]) -> int | None:
    from config.settings import REPO_ROOT

    if not (REPO_ROOT / "bench" / "benchmark.py").exists():
        print("inventory-center bench: needs the source checkout (bench/ is not installed)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO_ROOT))
    from bench import benchmark

    return benchmark.main(argv)


def _local(argv: list[str]) -> int | None:
    parser = argparse.ArgumentParser(
        prog="inventory-center local",
        description="The local stack: the Kafka broker (from Maven Central), the schema registry, PostgreSQL "
        "(the OMS and ERP databases) and Kafka Connect, each on 127.0.0.1 only.",
    )
    parser.add_argument("service", choices=sorted(LOCAL))
    parser.add_argument("command", choices=("start", "stop", "status"))
    args = parser.parse_args(argv)
    return LOCAL[args.service]([args.command])


def _local_kafka(argv: list[str]) -> int | None:
    from streams import local_kafka

    return local_kafka.main(argv)


def _local_registry(argv: list[str]) -> int | None:
    from connectors import local_registry

    return local_registry.main(argv)


def _local_postgres(argv: list[str]) -> int | None:
    from connectors import local_postgres

    return local_postgres.main(argv)


def _local_connect(argv: list[str]) -> int | None:
    from connectors import local_connect

    return local_connect.main(argv)


LOCAL: dict[str, Main] = {
    "kafka": _local_kafka,
    "registry": _local_registry,
    "postgres": _local_postgres,
    "connect": _local_connect,
}
COMMANDS: dict[str, tuple[Main, str]] = {
    "run": (_demo, "the main job: local Kafka, a worker and a read process, a sample day, the inventory"),
    "stop": (_stop, "stop the demos' workers, read process, services and the local broker"),
    "reset": (_reset, "forget both demos' topics and worker state"),
    "worker": (_worker, "one pipeline worker (settings from INVENTORY_*)"),
    "topics": (_topics, "check the pipeline's topics against their declaration, or create them"),
    "reader": (_reader, "read processes answering stock queries from inventory-changes"),
    "produce": (_produce, "publish source events given as JSON lines"),
    "tail": (_tail, "print any topic as JSON lines"),
    "simulate": (_simulate, "a simulated day of OMS/WMS/TMS traffic"),
    "connectors": (_connectors, "send the Kafka Connect configs to a Connect worker"),
    "bench": (_bench, "the benchmark (source checkout only)"),
    "local": (_local, "start, stop or ask about a local service: kafka, registry, postgres, connect"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="inventory-center",
        description="The inventory center (库存中心): Faust agents on Kafka keeping available, reserved and in-transit "
        "stock per SKU and warehouse. `inventory-center <command> --help` for each command.",
    )
    parser.add_argument(
        "command",
        choices=COMMANDS,
        metavar="command",
        help="; ".join(f"{name}: {text}" for name, (_, text) in COMMANDS.items()),
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    run, _ = COMMANDS[args.command]
    code = run(list(args.args))
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
