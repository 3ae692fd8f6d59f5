"""The local Kafka broker (no Docker): one combined broker+controller KRaft node on 127.0.0.1.

Its jars come from Maven Central (``scripts/kafka/pom.xml``) into ``<local_dir>/kafka/libs``;
``server.properties`` and ``log4j2.xml`` are written on every start, ``data/`` is formatted
once, the log is ``logs/server.log``. ``python -m streams.local_kafka start|stop|status``, or
from Python ``start(settings) -> bool`` (True only when this call started it), ``stop``,
``status``, ``is_running``, ``ensure_jars``, ``bootstrap_address``. With an existing cluster
configured (``settings.uses_local_broker`` False) start and stop do nothing and say so.

``LocalKafka(secure=SecureListener(...))`` adds a SASL_SSL listener to a broker of one's own
(tests/integration/test_secured_cluster.py): TLS from a PEM keystore, SCRAM users created
through the admin API on the plaintext listener. The default broker (``KAFKA``) has none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from config.settings import REPO_ROOT, Settings
from streams.local_process import (
    LocalService,
    LocalServiceError,
    ServicePaths,
    Under,
    port_open,
    read_json,
)

POM = REPO_ROOT / "scripts" / "kafka" / "pom.xml"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
NODE_ID = 1

# librdkafka logs every refused connection; the readiness probe expects those.
_RDKAFKA_LOG = logging.getLogger(__name__ + ".rdkafka")
_RDKAFKA_LOG.addHandler(logging.NullHandler())
_RDKAFKA_LOG.propagate = False


class LocalKafkaError(LocalServiceError):
    """The local broker could not be resolved, formatted, started or stopped."""


class KafkaPaths(ServicePaths):
    folder = "kafka"
    libs = Under("libs")  # the jars and their .complete marker (version, pom digest, jars)
    properties = Under("server.properties")
    log4j = Under("log4j2.xml")
    data = Under("data")  # the KRaft metadata log and the topics
    log = Under("logs", "server.log")
    out = Under("logs", "kafka.out")
    pid_file = Under("kafka.pid")


@dataclass(frozen=True)
class SecureListener:
    """An extra SASL_SSL listener on 127.0.0.1:``port``. ``keystore_pem``: one PEM file holding
    the broker's private key (PKCS#8, unencrypted) and then its certificate chain, whose
    names must include 127.0.0.1 for clients that check host names. ``mechanisms``: the SASL
    mechanisms it offers (SCRAM only: users are created with the admin API; no JAAS users).
    With ``mtls_port`` and ``client_ca``, also an SSL listener that requires a client
    certificate signed by ``client_ca`` (mutual TLS, no SASL)."""

    port: int
    keystore_pem: Path
    mechanisms: tuple[str, ...] = ("SCRAM-SHA-512",)
    mtls_port: int | None = None
    client_ca: Path | None = None

    def listeners(self) -> list[tuple[str, int]]:
        """(listener name = security protocol, port) of the extra listeners."""
        extra = [("SASL_SSL", self.port)]
        if self.mtls_port is not None:
            extra.append(("SSL", self.mtls_port))
        return extra

    def properties(self) -> str:
        jaas = "".join(
            f"listener.name.sasl_ssl.{m.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
            for m in self.mechanisms
        )
        return f"""\
# The extra SASL_SSL listener (SecureListener): TLS from a PEM keystore, SCRAM users.
sasl.enabled.mechanisms={",".join(self.mechanisms)}
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location={self.keystore_pem}
{jaas}{self._mtls()}"""

    def _mtls(self) -> str:
        if self.mtls_port is None or self.client_ca is None:
            return ""
        return f"""\
# The extra SSL listener: mutual TLS, a client certificate signed by client_ca required.
listener.name.ssl.ssl.keystore.type=PEM
listener.name.ssl.ssl.keystore.location={self.keystore_pem}
listener.name.ssl.ssl.truststore.type=PEM
listener.name.ssl.ssl.truststore.location={self.client_ca}
listener.name.ssl.ssl.client.auth=required
"""


def bootstrap_address(settings: Settings) -> str:
    return f"127.0.0.1:{settings.local_kafka_port}"


def ensure_jars(settings: Settings) -> Path:
    """Resolve the broker's jars with Maven unless ``libs`` holds this version; the libs folder.
    The marker is written last, so an interrupted run is redone from scratch next time."""
    libs = KafkaPaths.of(settings).libs
    marker, version = libs / ".complete", settings.kafka_version
    wanted = {"kafka_version": version, "pom_sha256": hashlib.sha256(POM.read_bytes()).hexdigest()}
    found, main_jar = read_json(marker), f"kafka_2.13-{version}.jar"
    jars = found.get("jars") or []
    if (
        all(found.get(k) == v for k, v in wanted.items())
        and main_jar in jars
        and all((libs / jar).is_file() for jar in jars)
    ):
        return libs
    shutil.rmtree(libs, ignore_errors=True)  # another version or a half-finished run
    libs.mkdir(parents=True)
    KAFKA.say(f"resolving Kafka {version} jars from Maven Central into {libs}")
    began = time.monotonic()
    downloads = KAFKA.maven(
        settings,
        ["-f", str(POM), "dependency:copy-dependencies", f"-Dkafka.version={version}", f"-DoutputDirectory={libs}"],
        POM.parent,
        f"Kafka {version}",
    )
    jars = sorted(p.name for p in libs.glob("*.jar"))
    if main_jar not in jars:
        raise LocalKafkaError(f"Maven finished but kafka_2.13 is missing from {libs}")
    marker.write_text(json.dumps({**wanted, "jars": jars}, indent=1))
    size_mb = sum((libs / j).stat().st_size for j in jars) / 1e6
    KAFKA.say(
        f"{len(jars)} jars ({size_mb:.0f} MB) ready in {time.monotonic() - began:.1f}s ({downloads} files downloaded)"
    )
    return libs


def server_properties(settings: Settings, secure: SecureListener | None = None) -> str:
    """The broker's configuration: one combined broker+controller KRaft node (with the extra
    SASL_SSL listener of ``secure``, if given)."""
    paths = KafkaPaths.of(settings)
    port, cport = settings.local_kafka_port, settings.local_controller_port
    listeners = f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}"
    advertised = f"PLAINTEXT://127.0.0.1:{port}"
    protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    for name, extra_port in secure.listeners() if secure is not None else []:
        listeners += f",{name}://127.0.0.1:{extra_port}"
        advertised += f",{name}://127.0.0.1:{extra_port}"
        protocols += f",{name}:{name}"
    return f"""\
# Generated by streams/local_kafka.py from config/settings.py on every start; edits are lost.
process.roles=broker,controller
node.id={NODE_ID}
# Static quorum (kraft.version 0): formatted WITHOUT --standalone. A dynamic quorum
# (controller.quorum.bootstrap.servers + format --standalone) would record the
# controller's endpoint in the metadata log at format time, so a later change of
# local_controller_port would need a re-format.
controller.quorum.voters={NODE_ID}@127.0.0.1:{cport}
listeners={listeners}
advertised.listeners={advertised}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map={protocols}
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
""" + (secure.properties() if secure is not None else "")


def log4j2_config(settings: Settings) -> str:
    paths = KafkaPaths.of(settings)
    return f"""\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by streams/local_kafka.py on every start; edits are lost. -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="{paths.log}"
                 filePattern="{paths.log.parent}/server.log.%i">
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


def _java(settings: Settings, main_class: str, *args: str, heap: str) -> list[str]:
    """A java command line (why these JVM options: docs/decisions.md, "the local stack")."""
    paths = KafkaPaths.of(settings)
    return [
        settings.java_bin,
        *shlex.split(heap),
        *shlex.split(settings.kafka_jvm_opts),
        f"-Dlog4j2.configurationFile={paths.log4j}",
        f"-Dkafka.logs.dir={paths.log.parent}",
        "-cp",
        f"{paths.libs}/*",
        main_class,
        *args,
    ]  # the * is java's, not a shell's


def format_storage(settings: Settings) -> bool:
    """Format the KRaft log dir once (a random cluster id); True if it formatted."""
    paths = KafkaPaths.of(settings)
    if (paths.data / "meta.properties").is_file():
        return False
    uuid = subprocess.run(
        _java(settings, STORAGE_TOOL, "random-uuid", heap="-Xmx128m"), capture_output=True, text=True, check=False
    )
    cluster_id = uuid.stdout.strip().splitlines()[-1] if uuid.stdout.strip() else ""
    if uuid.returncode != 0 or not cluster_id:
        raise LocalKafkaError(f"StorageTool random-uuid failed:\n{uuid.stdout}{uuid.stderr}")
    # Static controller.quorum.voters: no --standalone (the tool rejects it with voters).
    fmt = subprocess.run(
        _java(settings, STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(paths.properties), heap="-Xmx128m"),
        capture_output=True,
        text=True,
        check=False,
    )
    if fmt.returncode != 0:
        raise LocalKafkaError(f"StorageTool format failed:\n{fmt.stdout}{fmt.stderr}")
    KAFKA.say(f"formatted {paths.data} (cluster id {cluster_id})")
    return True


class LocalKafka(LocalService):
    name, module, title, noun = "kafka", "streams.local_kafka", "Kafka", "broker"
    description = "The local Kafka broker."
    Paths, error = KafkaPaths, LocalKafkaError
    port_setting, timeout_setting = "local_kafka_port", "local_kafka_start_timeout_s"

    def __init__(self, secure: SecureListener | None = None) -> None:
        super().__init__()
        self.secure = secure

    def address(self, settings: Settings) -> str:
        return bootstrap_address(settings)

    def label(self, settings: Settings) -> str:
        return f"Kafka {settings.kafka_version}"

    def elsewhere(self, settings: Settings) -> str | None:
        configured = f"existing cluster configured ({settings.bootstrap_servers})"
        return None if settings.uses_local_broker else configured

    def owns(self, settings: Settings, argv: list[str]) -> bool:
        return MAIN_CLASS in argv and str(KafkaPaths.of(settings).properties) in argv

    def ready(self, settings: Settings, timeout: float = 3.0) -> bool:
        """A metadata request names a broker (after a cheap port check: no librdkafka noise)."""
        if not port_open("127.0.0.1", settings.local_kafka_port):
            return False
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(
            {
                "bootstrap.servers": bootstrap_address(settings),
                "socket.connection.setup.timeout.ms": int(timeout * 1000),
                "logger": _RDKAFKA_LOG,  # type: ignore[dict-item]  # librdkafka's config takes a Logger too
            }
        )
        try:
            return len(admin.list_topics(timeout=timeout).brokers) > 0
        except KafkaException:
            return False

    def prepare(self, settings: Settings) -> tuple[list[str], Mapping[str, str] | None]:
        ensure_jars(settings)
        paths = KafkaPaths.of(settings)
        for folder in (paths.data, paths.log.parent):
            folder.mkdir(parents=True, exist_ok=True)
        paths.properties.write_text(server_properties(settings, self.secure))
        paths.log4j.write_text(log4j2_config(settings))
        format_storage(settings)
        return _java(settings, MAIN_CLASS, str(paths.properties), heap=settings.kafka_heap), None

    def details(self, settings: Settings, running: bool, pid: int | None) -> list[tuple[str, str]]:
        return [("bootstrap", bootstrap_address(settings)), ("version", settings.kafka_version)]


KAFKA = LocalKafka()
start, stop, status, is_running, main = (KAFKA.start, KAFKA.stop, KAFKA.status, KAFKA.is_running, KAFKA.main)

if __name__ == "__main__":
    sys.exit(main())
