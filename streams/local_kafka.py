"""The local Kafka broker for development, tests, CI and the demo (no Docker).

One combined broker+controller KRaft node on 127.0.0.1, run from jars that Maven resolves
from Maven Central (``scripts/kafka/pom.xml``) into ``<local_dir>/kafka/libs``. Everything
it writes lives under ``<local_dir>/kafka`` (ignored by git)::

    libs/               jars + .complete marker (version, pom hash, jar list)
    server.properties   generated from Settings on every start
    log4j2.xml          broker logging -> logs/server.log
    data/               KRaft metadata log and topic data (formatted once)
    logs/server.log     the broker's log4j2 log
    logs/kafka.out      the JVM's stdout/stderr (crashes before logging starts)
    kafka.pid           pid of the broker this module started

Command line, from the repository root::

    python -m streams.local_kafka start|stop|status

From Python: ``start(settings) -> bool`` (True only when *this* call started the broker),
``stop(settings)``, ``is_running(settings)``, ``ensure_jars(settings)``.

When the settings point at an existing cluster (``settings.uses_local_broker`` is False),
start and stop do nothing and say so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from config.settings import REPO_ROOT, Settings, get_settings
from streams import local_process

POM = REPO_ROOT / "scripts" / "kafka" / "pom.xml"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
NODE_ID = 1
STOP_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 10.0

# Brokers started by this very process, so that stop() can reap them (a child that exits
# stays a zombie - and still "alive" to kill(pid, 0) - until its parent waits for it).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

# librdkafka logs every refused connection; the readiness probe expects those.
_RDKAFKA_LOG = logging.getLogger(__name__ + ".rdkafka")
_RDKAFKA_LOG.addHandler(logging.NullHandler())
_RDKAFKA_LOG.propagate = False


class LocalKafkaError(RuntimeError):
    """The local broker could not be resolved, formatted, started or stopped."""


@dataclass(frozen=True)
class KafkaPaths:
    """Where the local broker keeps its files."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> KafkaPaths:
        return cls(Path(settings.local_dir).resolve() / "kafka")

    @property
    def libs(self) -> Path:
        return self.root / "libs"

    @property
    def marker(self) -> Path:
        return self.libs / ".complete"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def server_log(self) -> Path:
        return self.logs / "server.log"

    @property
    def jvm_out(self) -> Path:
        return self.logs / "kafka.out"

    @property
    def properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.root / "log4j2.xml"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka.pid"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"


def _say(message: str) -> None:
    print(f"local-kafka: {message}", flush=True)


def bootstrap_address(settings: Settings) -> str:
    return f"127.0.0.1:{settings.local_kafka_port}"


# --- jars ------------------------------------------------------------------------------


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _jars_complete(paths: KafkaPaths, settings: Settings) -> bool:
    try:
        marker = json.loads(paths.marker.read_text())
    except (OSError, ValueError):
        return False
    if marker.get("kafka_version") != settings.kafka_version:
        return False
    if marker.get("pom_sha256") != _pom_digest():
        return False
    jars = marker.get("jars") or []
    if f"kafka_2.13-{settings.kafka_version}.jar" not in jars:
        return False
    return all((paths.libs / jar).is_file() for jar in jars)


def ensure_jars(settings: Settings) -> Path:
    """Resolve the broker's jars with Maven unless ``libs`` already holds this version.

    Returns the libs folder. The marker file is written last, so an interrupted run is
    redone from scratch next time.
    """
    paths = KafkaPaths.of(settings)
    if _jars_complete(paths, settings):
        return paths.libs
    if shutil.which(settings.maven_bin) is None:
        raise LocalKafkaError(f"Maven ({settings.maven_bin!r}) is not on PATH")
    if paths.libs.exists():
        shutil.rmtree(paths.libs)  # another version or a half-finished run
    paths.libs.mkdir(parents=True)
    _say(f"resolving Kafka {settings.kafka_version} jars from Maven Central into {paths.libs}")
    # Not -q: the download lines are the progress report. -B: no colours, plain lines.
    cmd = [
        settings.maven_bin,
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-Dkafka.version={settings.kafka_version}",
        f"-DoutputDirectory={paths.libs}",
    ]
    began = time.monotonic()
    tail: list[str] = []
    downloads = 0
    with subprocess.Popen(
        cmd,
        cwd=POM.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-40:]
            # "[INFO] Downloaded from central: https://.../x-1.0.jar (12 kB at 3.4 MB/s)"
            if "Downloaded from" in line:
                downloads += 1
                words = line.split("Downloaded from", 1)[1].split()
                if len(words) >= 2 and words[1].endswith(".jar"):
                    size = " ".join(words[2:4]).lstrip("(")
                    _say(f"  [{downloads:3d} files] {words[1].rsplit('/', 1)[-1]} ({size})")
        rc = proc.wait()
    if rc != 0:
        raise LocalKafkaError(
            f"Maven failed (exit {rc}) resolving Kafka {settings.kafka_version}:\n"
            + "\n".join(tail)
        )
    jars = sorted(p.name for p in paths.libs.glob("*.jar"))
    if f"kafka_2.13-{settings.kafka_version}.jar" not in jars:
        raise LocalKafkaError(f"Maven finished but kafka_2.13 is missing from {paths.libs}")
    paths.marker.write_text(
        json.dumps(
            {"kafka_version": settings.kafka_version, "pom_sha256": _pom_digest(), "jars": jars},
            indent=1,
        )
    )
    size_mb = sum((paths.libs / j).stat().st_size for j in jars) / 1e6
    _say(
        f"{len(jars)} jars ({size_mb:.0f} MB) ready in {time.monotonic() - began:.1f}s "
        f"({downloads} files downloaded)"
    )
    return paths.libs


# --- configuration ---------------------------------------------------------------------


def server_properties(settings: Settings) -> str:
    """The broker's configuration: one combined broker+controller KRaft node."""
    paths = KafkaPaths.of(settings)
    port, cport = settings.local_kafka_port, settings.local_controller_port
    return f"""\
# Generated by streams/local_kafka.py from config/settings.py on every start; edits are lost.
process.roles=broker,controller
node.id={NODE_ID}
# Static quorum (kraft.version 0): formatted WITHOUT --standalone. A dynamic quorum
# (controller.quorum.bootstrap.servers + format --standalone) would record the
# controller's endpoint in the metadata log at format time, so a later change of
# local_controller_port would need a re-format.
controller.quorum.voters={NODE_ID}@127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={paths.data}

# Topics are created explicitly (by the app and the tests), never by a typo.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
# Internal topics on a single node: replication factor 1, min ISR 1. Fewer partitions
# than the defaults (50) so the first consumer group / transaction starts quickly.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests and the demo should not wait 3 s for every first rebalance.
group.initial.rebalance.delay.ms=0

# Lean thread pools for a 2-core development machine shared with the pipeline.
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
"""


def log4j2_config(settings: Settings) -> str:
    paths = KafkaPaths.of(settings)
    return f"""\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by streams/local_kafka.py on every start; edits are lost. -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="{paths.server_log}"
                 filePattern="{paths.logs}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="20 MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="kafka.network.RequestChannel$" level="WARN"/>
  </Loggers>
</Configuration>
"""


def write_config(settings: Settings) -> KafkaPaths:
    paths = KafkaPaths.of(settings)
    for folder in (paths.root, paths.data, paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    paths.properties.write_text(server_properties(settings))
    paths.log4j.write_text(log4j2_config(settings))
    return paths


def _java(settings: Settings, main_class: str, *args: str, heap: str) -> list[str]:
    """A java command line. JVM options, chosen for a small development broker:

    * -XX:+UseSerialGC (settings.kafka_jvm_opts): on a 2-core box shared with the Python
      pipeline, a single-threaded collector over a <=512 MB heap pauses for a few ms and
      runs no concurrent GC threads that compete with the workers; G1 (Kafka's default,
      tuned for multi-GB production heaps) costs more background CPU and memory.
    * No -XX:TieredStopAtLevel=1: it shortens JIT warm-up but caps a long-running broker
      at C1-compiled code, so throughput (and the benchmarks) would suffer.
    * -XX:+ExitOnOutOfMemoryError: a dead broker is noticed by start/status; a
      half-dead one is not.
    """
    paths = KafkaPaths.of(settings)
    return [
        settings.java_bin,
        *shlex.split(heap),
        *shlex.split(settings.kafka_jvm_opts),
        f"-Dlog4j2.configurationFile={paths.log4j}",
        f"-Dkafka.logs.dir={paths.logs}",
        "-cp",
        f"{paths.libs}/*",  # expanded by java itself, not by a shell
        main_class,
        *args,
    ]


def _is_formatted(paths: KafkaPaths) -> bool:
    return (paths.data / "meta.properties").is_file()


def format_storage(settings: Settings) -> bool:
    """Format the KRaft log dir once (random cluster id). Returns True if it formatted."""
    paths = KafkaPaths.of(settings)
    if _is_formatted(paths):
        return False
    tool_heap = "-Xmx128m"
    uuid = subprocess.run(
        _java(settings, STORAGE_TOOL, "random-uuid", heap=tool_heap),
        capture_output=True,
        text=True,
        check=False,
    )
    cluster_id = uuid.stdout.strip().splitlines()[-1] if uuid.stdout.strip() else ""
    if uuid.returncode != 0 or not cluster_id:
        raise LocalKafkaError(f"StorageTool random-uuid failed:\n{uuid.stdout}{uuid.stderr}")
    # Static controller.quorum.voters: no --standalone (the tool rejects it with voters).
    fmt = subprocess.run(
        _java(
            settings,
            STORAGE_TOOL,
            "format",
            "-t",
            cluster_id,
            "-c",
            str(paths.properties),
            heap=tool_heap,
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if fmt.returncode != 0:
        raise LocalKafkaError(f"StorageTool format failed:\n{fmt.stdout}{fmt.stderr}")
    _say(f"formatted {paths.data} (cluster id {cluster_id})")
    return True


# --- process handling ------------------------------------------------------------------


def _is_our_broker(pid: int, paths: KafkaPaths) -> bool:
    """True if pid is a live kafka.Kafka running our server.properties (not a reused pid)."""
    argv = local_process.cmdline(pid) or []
    return MAIN_CLASS in argv and str(paths.properties) in argv


def _managed_pid(paths: KafkaPaths) -> int | None:
    """The pid from the pid file if that process is still our broker."""
    pid = local_process.read_pid(paths.pid_file)
    return pid if pid is not None and _is_our_broker(pid, paths) else None


def _broker_answers(settings: Settings, timeout: float = 3.0) -> bool:
    """True if a broker on the local port answers a metadata request with >= 1 broker."""
    if not local_process.port_open("127.0.0.1", settings.local_kafka_port):
        return False  # cheap check first: no AdminClient, no librdkafka noise
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap_address(settings),
            "socket.connection.setup.timeout.ms": int(timeout * 1000),
            "logger": _RDKAFKA_LOG,
        }
    )
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return len(metadata.brokers) > 0


def is_running(settings: Settings | None = None) -> bool:
    """True if a broker (started by us or not) answers on the local Kafka port."""
    return _broker_answers(settings or get_settings())


def _failure(settings: Settings, what: str) -> LocalKafkaError:
    paths = KafkaPaths.of(settings)
    return LocalKafkaError(local_process.failure_report(what, paths.jvm_out, paths.server_log))


def _wait_ready(settings: Settings, pid: int) -> None:
    deadline = time.monotonic() + settings.local_kafka_start_timeout_s
    while time.monotonic() < deadline:
        if not local_process.alive(pid, _CHILDREN):
            raise _failure(settings, f"the broker (pid {pid}) exited during startup")
        if _broker_answers(settings, timeout=2.0):
            return
        time.sleep(0.2)
    raise _failure(
        settings,
        f"the broker (pid {pid}) did not answer on {bootstrap_address(settings)} "
        f"within {settings.local_kafka_start_timeout_s:.0f}s",
    )


def _signal_and_wait(pid: int) -> None:
    local_process.terminate(pid, _CHILDREN, stop_timeout=STOP_TIMEOUT_S,
                            kill_timeout=KILL_TIMEOUT_S, say=_say, error=LocalKafkaError)


# --- public API ------------------------------------------------------------------------


def start(settings: Settings | None = None) -> bool:
    """Start the local broker unless one answers already. True if THIS call started it.

    Blocks until the broker answers a metadata request; raises LocalKafkaError (with the
    tail of the logs) if it exits or does not answer within local_kafka_start_timeout_s.
    """
    settings = settings or get_settings()
    if not settings.uses_local_broker:
        _say(f"existing cluster configured ({settings.bootstrap_servers}); not starting one")
        return False
    paths = KafkaPaths.of(settings)
    with local_process.locked(paths.lock_file):
        managed = _managed_pid(paths)
        if _broker_answers(settings):
            owner = f"pid {managed}" if managed else "not started by this tool"
            _say(f"a broker already answers on {bootstrap_address(settings)} ({owner})")
            return False
        if managed is not None:
            _say(f"broker pid {managed} is alive but not answering yet; waiting for it")
            _wait_ready(settings, managed)
            return False
        paths.pid_file.unlink(missing_ok=True)  # stale

        began = time.monotonic()
        ensure_jars(settings)
        write_config(settings)
        format_storage(settings)
        proc = local_process.spawn(
            _java(settings, MAIN_CLASS, str(paths.properties), heap=settings.kafka_heap),
            cwd=paths.root,
            output=paths.jvm_out,
            pid_file=paths.pid_file,
            children=_CHILDREN,
        )
        _say(f"started Kafka {settings.kafka_version} (pid {proc.pid}); waiting for it")
        try:
            _wait_ready(settings, proc.pid)
        except BaseException:
            _signal_and_wait(proc.pid)
            paths.pid_file.unlink(missing_ok=True)
            raise
    _say(
        f"Kafka {settings.kafka_version} ready on {bootstrap_address(settings)} "
        f"(pid {proc.pid}, {time.monotonic() - began:.1f}s; log {paths.server_log})"
    )
    return True


def stop(settings: Settings | None = None) -> bool:
    """Stop the broker this tool started (pid file). True if a broker was stopped."""
    settings = settings or get_settings()
    if not settings.uses_local_broker:
        _say(f"existing cluster configured ({settings.bootstrap_servers}); nothing to stop")
        return False
    paths = KafkaPaths.of(settings)
    with local_process.locked(paths.lock_file):
        pid = local_process.read_pid(paths.pid_file)
        if pid is None:
            foreign = is_running(settings)
            extra = " (but a broker not started by this tool answers)" if foreign else ""
            _say(f"not running: no pid file{extra}")
            return False
        if not _is_our_broker(pid, paths):
            _say(f"not running: removing stale pid file (pid {pid})")
            paths.pid_file.unlink(missing_ok=True)
            return False
        began = time.monotonic()
        _signal_and_wait(pid)
        paths.pid_file.unlink(missing_ok=True)
    _say(f"stopped pid {pid} in {time.monotonic() - began:.1f}s")
    return True


def status(settings: Settings | None = None) -> bool:
    """Print the state of the local broker. True if a broker answers."""
    settings = settings or get_settings()
    if not settings.uses_local_broker:
        _say(f"existing cluster configured ({settings.bootstrap_servers}); local broker unused")
        return False
    paths = KafkaPaths.of(settings)
    running = is_running(settings)
    pid = _managed_pid(paths)
    if running:
        state = "running"
    elif pid is not None:
        state = "starting (process alive, not answering yet)"
    else:
        state = "not running"
    print(f"local Kafka: {state}")
    print(f"  pid:       {pid if pid is not None else '-'}"
          + ("" if pid is not None or not running else "  (not started by this tool)"))
    print(f"  bootstrap: {bootstrap_address(settings)}")
    print(f"  version:   {settings.kafka_version}")
    print(f"  log:       {paths.server_log}")
    return running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.local_kafka", description="The local Kafka broker."
    )
    parser.add_argument("command", choices=["start", "stop", "status"])
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        if args.command == "start":
            start(settings)
        elif args.command == "stop":
            stop(settings)
        else:
            return 0 if status(settings) else 3  # LSB: 3 = not running
    except LocalKafkaError as exc:
        print(f"local-kafka: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
