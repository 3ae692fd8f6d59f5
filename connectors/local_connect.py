"""The local Kafka Connect worker (distributed mode) with its connector plugins, no Docker.

Apache Kafka's own Connect runtime (``org.apache.kafka:connect-runtime``, the broker's
version), Debezium's plugin archives (classifier ``plugin``, ``tar.gz``) and Apicurio
Registry's Avro converter, all resolved from Maven Central by generated poms into
``<local_dir>/connect``::

    pom.xml, converter-pom.xml     generated: what Maven resolves (versions below)
    libs/                          the runtime's jars (+ log4j2, the backend Kafka's poms lack)
    plugins/                       plugin.path: debezium-connector-postgres/ and
                                   debezium-connector-jdbc/ (unpacked archives),
                                   apicurio-registry-converter/ (jars + a service manifest)
    .complete                      marker: versions and pom digests of what is there
    connect-distributed.properties generated on every start
    log4j2.xml                     generated on every start -> logs/connect.log
    secrets.properties             generated (0600): what ${file:...} references read
    logs/connect.out               the JVM's stdout/stderr
    connect.pid                    pid of the worker this module started

Versions, checked against the broker's Kafka 4.1.2:

* Connect runs the broker's version (``Settings.kafka_version``): one Kafka on the machine.
* Debezium 3.4.3.Final: built against Kafka 4.1.1 (``version.kafka`` in
  ``io.debezium:debezium-build-parent:3.4.3.Final``), connectors compiled for Java 17. Maven
  Central has the JDBC sink's plugin archive for 3.4.0, 3.4.3, 3.5.0 and 3.6.0 only; 3.6 is
  built against Kafka 4.3, and 3.5.0 (also 4.1.1) is a first release whose patches lack that
  archive, so 3.4.3, the most patched release built against 4.1.
* Apicurio's converter 2.6.13.Final: see ``converter_pom_xml``.

The worker listens on 127.0.0.1 only and keeps its configs, offsets and statuses in its own
topics (replication factor 1 on the single local broker). It runs in ``<local_dir>/connect``
(its working directory) and is where the connector files' deployment values come from, through
Kafka's own config providers (why these and not placeholders filled by a tool: see
``connectors/apply.py``):

* ``${file:/proc/self/cwd/secrets.properties:<key>}`` - FileConfigProvider; the credentials
  in ``secrets.properties`` (this folder, the worker's working directory; 0600, written from
  ``local_postgres.credentials`` on every start). ``allowed.paths`` limits it to this folder.
* ``${env:<NAME>}`` - EnvVarConfigProvider (Kafka 3.5+, KIP-887); the non-secret values, in
  the worker's environment as ``start`` sets it (``worker_env``; ``allowlist.pattern`` limits
  the provider to exactly these variables):

  ========================  ==========================================================
  OMS_DB_HOST, OMS_DB_PORT  the OMS database's server (local: 127.0.0.1, postgres_port)
  OMS_DB_NAME               the OMS database (local: ``oms``)
  ERP_DB_HOST, ERP_DB_PORT  the ERP database's server (local: the same server)
  ERP_DB_NAME               the ERP database (local: ``erp``)
  PIPELINE_TOPIC_PREFIX     ``Settings.topic_prefix``: the pipeline's topics
  PIPELINE_REGISTRY_URL     Apicurio Registry's native v2 API (``local_registry.apicurio_native_url``)
  ========================  ==========================================================

``start`` restarts a worker it started earlier when that worker's properties or environment
are not what ``start`` would give it now (an upgrade of this module, another topic prefix or
port): the connectors' configurations live in Kafka and resume after the restart.

Measured on the 2-core development machine: a cold start (empty Maven repository: 492 files,
124 MB downloaded) takes about 16 s, 12.6 s of it Maven; a warm start about 3.5 s until REST
answers and every plugin is listed (``plugin.discovery=service_load``: no class scanning).
Memory: about 200 MB resident idle, about 300 MB with the three connectors running.

Command line, from the repository root::

    python -m connectors.local_connect start|stop|status

From Python: ``start(settings) -> bool`` (True only when *this* call started the worker),
``stop(settings)``, ``is_running(settings)``, ``rest_url(settings)``, ``secrets_file(settings)``,
``worker_env(settings)``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import Settings, get_settings
from connectors.apply import rest_url
from connectors.local_registry import apicurio_native_url
from streams import local_process

MAIN_CLASS = "org.apache.kafka.connect.cli.ConnectDistributed"
STOP_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 10.0

LOG4J2_VERSION = "2.24.3"  # as the broker's pom (scripts/kafka/pom.xml)

# Plugin archives: (artifactId, the connector class its folder must provide).
PLUGINS = (
    ("debezium-connector-postgres", "io.debezium.connector.postgresql.PostgresConnector"),
    ("debezium-connector-jdbc", "io.debezium.connector.jdbc.JdbcSinkConnector"),
)
# Apicurio Registry's Avro converter (a plugin folder of jars, not an archive): the ERP sinks
# read the pipeline's registry-framed Avro with it.
CONVERTER_DIR = "apicurio-registry-converter"
CONVERTER_CLASS = "io.apicurio.registry.utils.converter.AvroConverter"

# How connector files name the secrets file: an absolute path to the worker's working directory
# (the JVM runs in ConnectPaths.root), so that ``allowed.paths`` can still restrict the provider
# (it refuses every relative reference). See connectors/apply.py.
SECRETS_REFERENCE_PATH = "/proc/self/cwd/secrets.properties"
# The worker's environment variables connector files may read with ${env:NAME} (worker_env).
WORKER_ENV_NAMES = ("OMS_DB_HOST", "OMS_DB_PORT", "OMS_DB_NAME", "ERP_DB_HOST", "ERP_DB_PORT",
                    "ERP_DB_NAME", "PIPELINE_TOPIC_PREFIX", "PIPELINE_REGISTRY_URL")

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class LocalConnectError(RuntimeError):
    """The Connect worker could not be resolved, started or stopped."""


def _say(message: str) -> None:
    print(f"local-connect: {message}", flush=True)


@dataclass(frozen=True)
class ConnectPaths:
    root: Path

    @classmethod
    def of(cls, settings: Settings) -> ConnectPaths:
        return cls(Path(settings.local_dir).resolve() / "connect")

    @property
    def pom(self) -> Path:
        return self.root / "pom.xml"

    @property
    def converter_pom(self) -> Path:
        return self.root / "converter-pom.xml"

    @property
    def libs(self) -> Path:
        return self.root / "libs"

    @property
    def plugins(self) -> Path:
        return self.root / "plugins"

    @property
    def marker(self) -> Path:
        return self.root / ".complete"

    @property
    def properties(self) -> Path:
        return self.root / "connect-distributed.properties"

    @property
    def log4j(self) -> Path:
        return self.root / "log4j2.xml"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets.properties"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def connect_log(self) -> Path:
        return self.logs / "connect.log"

    @property
    def jvm_out(self) -> Path:
        return self.logs / "connect.out"

    @property
    def pid_file(self) -> Path:
        return self.root / "connect.pid"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"


def secrets_file(settings: Settings) -> Path:
    """Where the secrets file is (connector files name it ``SECRETS_REFERENCE_PATH``)."""
    return ConnectPaths.of(settings).secrets


def variables_for(settings: Settings, worker: Settings | None = None) -> dict[str, str]:
    """Overrides of ``${env:NAME}`` references for a deployment that shares the local worker:
    the variables whose value for ``settings`` differs from the worker's own (the worker's
    environment as ``worker_env`` sets it from ``worker``, by default the
    process's settings). Empty for the worker's own deployment."""
    own = worker_env(worker or get_settings())
    return {name: value for name, value in worker_env(settings).items()
            if own.get(name) != value}


def worker_env(settings: Settings) -> dict[str, str]:
    """The deployment values the worker's ``${env:NAME}`` references resolve to (the module
    docstring lists them), added to the environment ``start`` runs the JVM in."""
    from connectors import local_postgres

    host, port = "127.0.0.1", str(local_postgres.port_of(settings))
    env = {
        "OMS_DB_HOST": host,
        "OMS_DB_PORT": port,
        "OMS_DB_NAME": local_postgres.OMS_DATABASE,
        "ERP_DB_HOST": host,
        "ERP_DB_PORT": port,
        "ERP_DB_NAME": local_postgres.ERP_DATABASE,
        "PIPELINE_TOPIC_PREFIX": settings.topic_prefix,
        "PIPELINE_REGISTRY_URL": apicurio_native_url(settings),
    }
    assert tuple(env) == WORKER_ENV_NAMES
    return env


# --- jars and plugins ------------------------------------------------------------------


def pom_xml(settings: Settings) -> str:
    """What Maven resolves: the runtime (with a log4j2 backend) and the plugin archives."""
    debezium = settings.connect_debezium_version
    items = "\n".join(
        f"""            <artifactItem>
              <groupId>io.debezium</groupId><artifactId>{artifact}</artifactId>
              <version>{debezium}</version><classifier>plugin</classifier><type>tar.gz</type>
            </artifactItem>"""
        for artifact, _ in PLUGINS
    )
    return f"""\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by connectors/local_connect.py; edits are lost. Nothing is built: Maven copies
     the Connect runtime's jars into libs/ and unpacks the plugin archives into plugins/. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>inventory-center.local</groupId>
  <artifactId>local-connect</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- The worker (ConnectDistributed); connect-json and connect-transforms come with it. -->
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId>
      <version>{settings.kafka_version}</version>
    </dependency>
    <!-- Kafka 4.1 logs through slf4j 1.7 and its poms bring no backend: the slf4j 1.7
         binding is log4j-slf4j-impl (not log4j-slf4j2-impl). Without it Connect is mute. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J2_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{LOG4J2_VERSION}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.8.1</version>
        <executions>
          <execution>
            <id>runtime</id>
            <goals><goal>copy-dependencies</goal></goals>
            <configuration>
              <outputDirectory>{ConnectPaths.of(settings).libs}</outputDirectory>
              <includeScope>runtime</includeScope>
            </configuration>
          </execution>
          <execution>
            <id>plugins</id>
            <goals><goal>unpack</goal></goals>
            <configuration>
              <outputDirectory>{ConnectPaths.of(settings).plugins}</outputDirectory>
              <artifactItems>
{items}
              </artifactItems>
            </configuration>
          </execution>
        </executions>
      </plugin>
    </plugins>
  </build>
</project>
"""


def converter_pom_xml(settings: Settings) -> str:
    """Apicurio's Avro converter and what it needs, minus what the runtime provides.

    2.6.13.Final: the Apicurio version Debezium 3.4.3 is built with (``version.apicurio``).
    Its 3.0.9 converter cannot be resolved from Maven Central (its parent pom
    ``io.apicurio:apicurio-registry:3.0.9`` is not published there) and 3.3.x is compiled for
    Java 21. The 2.6 client speaks the registry's v2 REST API, which Apicurio 3.0.9 serves.
    """
    version = settings.connect_apicurio_converter_version
    folder = ConnectPaths.of(settings).plugins / CONVERTER_DIR
    return f"""\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by connectors/local_connect.py; edits are lost. Copies Apicurio's Avro converter
     and its dependencies (not Kafka's own jars: the worker provides those) into a plugin folder. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>inventory-center.local</groupId>
  <artifactId>local-connect-converter</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.apicurio</groupId><artifactId>apicurio-registry-utils-converter</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.8.1</version>
        <configuration>
          <outputDirectory>{folder}</outputDirectory>
          <includeScope>runtime</includeScope>
          <excludeGroupIds>org.apache.kafka</excludeGroupIds>
        </configuration>
      </plugin>
    </plugins>
  </build>
</project>
"""


def _wanted_marker(settings: Settings) -> dict[str, Any]:
    return {
        "kafka_version": settings.kafka_version,
        "debezium_version": settings.connect_debezium_version,
        "apicurio_converter_version": settings.connect_apicurio_converter_version,
        "pom_sha256": hashlib.sha256(pom_xml(settings).encode()).hexdigest(),
        "converter_pom_sha256": hashlib.sha256(converter_pom_xml(settings).encode()).hexdigest(),
    }


def _resolved(paths: ConnectPaths, settings: Settings) -> bool:
    try:
        marker = json.loads(paths.marker.read_text())
    except (OSError, ValueError):
        return False
    if any(marker.get(k) != v for k, v in _wanted_marker(settings).items()):
        return False
    jars = marker.get("jars") or []
    return bool(jars) and all((paths.libs / jar).is_file() for jar in jars) and all(
        (paths.plugins / folder).is_dir() for folder in _plugin_dirs()
    )


def _plugin_dirs() -> list[str]:
    return [artifact for artifact, _ in PLUGINS] + [CONVERTER_DIR]


def _write_service_manifest(folder: Path) -> None:
    """Declare the converter the way KIP-898 wants plugins declared (a ServiceLoader manifest),
    so the worker finds it with ``plugin.discovery=service_load`` instead of scanning every
    class of every plugin at each start. Apicurio 2.6's jar has no manifest; this little jar
    is what Kafka's ``connect-plugin-path sync-manifests`` would add."""
    import zipfile

    with zipfile.ZipFile(folder / "inventory-center-service-manifest.jar", "w") as jar:
        jar.writestr("META-INF/services/org.apache.kafka.connect.storage.Converter",
                     f"{CONVERTER_CLASS}\n")


def _maven(maven: str, pom: Path, goals: list[str]) -> int:
    """Run Maven on a generated pom; returns the number of files it downloaded."""
    tail: list[str] = []
    downloads = 0
    cmd = [maven, "-B", "-f", str(pom), *goals]
    with subprocess.Popen(cmd, cwd=pom.parent, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-40:]
            if "Downloaded from" in line:
                downloads += 1
                words = line.split("Downloaded from", 1)[1].split()
                if len(words) >= 2 and words[1].endswith((".jar", ".tar.gz")):
                    size = " ".join(words[2:4]).lstrip("(")
                    _say(f"  [{downloads:3d} files] {words[1].rsplit('/', 1)[-1]} ({size})")
        rc = proc.wait()
    if rc != 0:
        raise LocalConnectError(f"Maven failed on {pom.name} (exit {rc}):\n" + "\n".join(tail))
    return downloads


def ensure_jars(settings: Settings) -> ConnectPaths:
    """Resolve the runtime and plugins with Maven unless this exact set is there already.
    The marker is written last, so an interrupted run is redone from scratch next time."""
    paths = ConnectPaths.of(settings)
    if _resolved(paths, settings):
        return paths
    maven = settings.maven_bin
    if shutil.which(maven) is None:
        raise LocalConnectError(f"Maven ({maven!r}) is not on PATH")
    for folder in (paths.libs, paths.plugins):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    paths.marker.unlink(missing_ok=True)
    paths.pom.write_text(pom_xml(settings))
    paths.converter_pom.write_text(converter_pom_xml(settings))
    _say(f"resolving Connect {settings.kafka_version}, Debezium "
         f"{settings.connect_debezium_version} plugins and Apicurio's converter "
         f"{settings.connect_apicurio_converter_version} from Maven Central")
    began = time.monotonic()
    downloads = _maven(maven, paths.pom, ["dependency:copy-dependencies@runtime",
                                         "dependency:unpack@plugins"])
    downloads += _maven(maven, paths.converter_pom, ["dependency:copy-dependencies"])
    _write_service_manifest(paths.plugins / CONVERTER_DIR)
    jars = sorted(p.name for p in paths.libs.glob("*.jar"))
    if f"connect-runtime-{settings.kafka_version}.jar" not in jars:
        raise LocalConnectError(f"Maven finished but connect-runtime is missing from {paths.libs}")
    for folder in _plugin_dirs():
        if not (paths.plugins / folder).is_dir():
            raise LocalConnectError(f"Maven finished but {paths.plugins / folder} is missing")
    paths.marker.write_text(json.dumps({**_wanted_marker(settings), "jars": jars}, indent=1))
    size_mb = sum(f.stat().st_size for f in paths.root.rglob("*.jar")) / 1e6
    _say(f"{len(jars)} runtime jars and {len(_plugin_dirs())} plugins ({size_mb:.0f} MB of jars) ready "
         f"in {time.monotonic() - began:.1f}s ({downloads} files downloaded)")
    return paths


# --- configuration ---------------------------------------------------------------------


def worker_properties(settings: Settings) -> str:
    paths = ConnectPaths.of(settings)
    group = settings.connect_group_id
    port = settings.connect_rest_port
    return f"""\
# Generated by connectors/local_connect.py on every start; edits are lost.
bootstrap.servers={settings.bootstrap_servers}
group.id={group}
config.storage.topic={group}-configs
offset.storage.topic={group}-offsets
status.storage.topic={group}-status
# A single local broker: replication factor 1, and fewer partitions than the defaults.
config.storage.replication.factor=1
offset.storage.replication.factor=1
offset.storage.partitions=5
status.storage.replication.factor=1
status.storage.partitions=1

# Connectors name their converters; these are the defaults for those that do not.
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=true

# REST on the loopback interface only.
listeners=http://127.0.0.1:{port}
rest.advertised.host.name=127.0.0.1
rest.advertised.port={port}

plugin.path={paths.plugins}
# Debezium's archives declare their plugins (META-INF/services): no classpath scanning.
plugin.discovery=service_load

# Connector configs take what differs between deployments from this worker, at runtime:
# ${{file:{SECRETS_REFERENCE_PATH}:<key>}} reads <key> from the secrets file in the worker's
# working directory (this folder). Only files in this folder may be read (a connector cannot
# ask for /etc/shadow), under either of its names: /proc/self/cwd, what connector files use,
# and its absolute path.
config.providers=file,env
config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
config.providers.file.param.allowed.paths=/proc/self/cwd,{paths.root}
# ${{env:<NAME>}} reads the worker's environment variable NAME (the non-secret deployment
# values local_connect.py sets); only these variables, not the rest of the environment.
config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider
config.providers.env.param.allowlist.pattern={"|".join(WORKER_ENV_NAMES)}

# Source offsets reach Kafka within 5 s (the default is 60 s: a restart would replay more).
offset.flush.interval.ms=5000
# One worker: do not hold a departed worker's connectors for 5 minutes before reassigning.
scheduled.rebalance.max.delay.ms=0
"""


def log4j2_config(settings: Settings) -> str:
    paths = ConnectPaths.of(settings)
    return f"""\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by connectors/local_connect.py on every start; edits are lost. -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="connect" fileName="{paths.connect_log}" filePattern="{paths.logs}/connect.log.%i">
      <PatternLayout pattern="[%d] %p %X{{connector.context}}%m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="20 MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="connect"/></Root>
    <!-- Every client prints its whole configuration at INFO: a page per task. -->
    <Logger name="org.apache.kafka.common.config.AbstractConfig" level="WARN"/>
    <Logger name="org.apache.kafka.clients.consumer.ConsumerConfig" level="WARN"/>
    <Logger name="org.apache.kafka.clients.producer.ProducerConfig" level="WARN"/>
    <Logger name="org.apache.kafka.clients.admin.AdminClientConfig" level="WARN"/>
    <Logger name="org.hibernate" level="WARN"/>
  </Loggers>
</Configuration>
"""


def write_secrets(settings: Settings) -> Path:
    """The values ``${file:<secrets>:<key>}`` resolves to: the local databases' credentials.

    Written with mode 0600 and never printed; connector JSON names the keys, not the values.
    """
    from connectors import local_postgres

    paths = ConnectPaths.of(settings)
    values = local_postgres.credentials(settings)
    text = "# Generated by connectors/local_connect.py from the local databases' credentials.\n"
    text += "".join(f"{k}={v}\n" for k, v in sorted(values.items()))
    tmp = paths.secrets.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.replace(paths.secrets)
    return paths.secrets


def write_config(settings: Settings) -> ConnectPaths:
    paths = ConnectPaths.of(settings)
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.properties.write_text(worker_properties(settings))
    paths.log4j.write_text(log4j2_config(settings))
    write_secrets(settings)
    return paths


def _java(settings: Settings) -> list[str]:
    """The worker's command line. Same JVM choices as the broker (streams/local_kafka.py:
    serial GC on a 2-core machine, exit on OOM) with its own heap."""
    paths = ConnectPaths.of(settings)
    return [
        settings.java_bin,
        *shlex.split(settings.connect_heap),
        *shlex.split(settings.kafka_jvm_opts),
        f"-Dlog4j2.configurationFile={paths.log4j}",
        f"-Dkafka.logs.dir={paths.logs}",
        "-cp",
        f"{paths.libs}/*",
        MAIN_CLASS,
        str(paths.properties),
    ]


# --- REST ------------------------------------------------------------------------------


def _get(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, OSError):
        return 0, None


def plugins_listed(settings: Settings, connectors_only: bool = True) -> list[str]:
    """Plugin classes the worker offers (connectors, or every kind); empty when it does not
    answer."""
    query = "" if connectors_only else "?connectorsOnly=false"
    status, body = _get(f"{rest_url(settings)}/connector-plugins{query}")
    return [p.get("class", "") for p in body] if status == 200 and isinstance(body, list) else []


def _ready(settings: Settings) -> bool:
    """REST answers, the worker joined its group (``/connectors`` is 200, not 503/409), and
    every plugin we ship is listed."""
    if _get(f"{rest_url(settings)}/connectors")[0] != 200:
        return False
    listed = set(plugins_listed(settings, connectors_only=False))
    return all(cls in listed for _, cls in PLUGINS) and CONVERTER_CLASS in listed


def is_running(settings: Settings | None = None) -> bool:
    """True if a Connect worker (ours or not) answers on the REST port and is ready."""
    return _ready(settings or get_settings())


# --- process handling ------------------------------------------------------------------


def _managed_pid(paths: ConnectPaths) -> int | None:
    """The pid in the pid file if that process is still our worker (not a reused pid)."""
    pid = local_process.read_pid(paths.pid_file)
    if pid is None:
        return None
    argv = local_process.cmdline(pid) or []
    return pid if MAIN_CLASS in argv and str(paths.properties) in argv else None


def _failure(settings: Settings, what: str) -> LocalConnectError:
    paths = ConnectPaths.of(settings)
    return LocalConnectError(local_process.failure_report(what, paths.jvm_out, paths.connect_log))


def _wait_ready(settings: Settings, pid: int) -> None:
    timeout = float(settings.connect_start_timeout_s)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not local_process.alive(pid, _CHILDREN):
            raise _failure(settings, f"the Connect worker (pid {pid}) exited during startup")
        if _ready(settings):
            return
        time.sleep(0.25)
    raise _failure(settings, f"the Connect worker (pid {pid}) was not ready on "
                             f"{rest_url(settings)} within {timeout:.0f}s")


def _signal_and_wait(pid: int) -> None:
    local_process.terminate(pid, _CHILDREN, stop_timeout=STOP_TIMEOUT_S,
                            kill_timeout=KILL_TIMEOUT_S, say=_say, error=LocalConnectError)


def _environ(pid: int) -> dict[str, str]:
    """The environment a process was started with (empty if it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (part.decode(errors="replace").partition("=") for part in raw.split(b"\0") if part)
    return {key: value for key, _, value in pairs}


def drift(settings: Settings, pid: int) -> str | None:
    """Why the worker ``pid`` (one this module started) does not run the way ``start`` would
    start it now - its properties file or its deployment variables differ - or None."""
    paths = ConnectPaths.of(settings)
    try:
        properties = paths.properties.read_text()  # written just before that worker started
    except OSError:
        properties = ""
    if properties != worker_properties(settings):
        return f"{paths.properties.name} is not what this version writes"
    env = _environ(pid)
    differ = [name for name, value in worker_env(settings).items() if env.get(name) != value]
    return f"its environment differs in {', '.join(differ)}" if differ else None


def _kafka_answers(settings: Settings) -> bool:
    from streams import local_kafka

    if settings.uses_local_broker:
        return local_kafka.is_running(settings)
    return True  # an existing cluster: Connect will say if it cannot reach it


# --- public API ------------------------------------------------------------------------


def start(settings: Settings | None = None) -> bool:
    """Start the local Connect worker unless one is ready already. True if THIS call started
    it. Blocks until REST answers, the worker joined its group and our plugins are listed.

    A ready worker this module started is restarted when it ``drift``s (its properties or
    environment are not what this call would give it); that returns False all the same: the
    caller found a worker running and leaves it running."""
    settings = settings or get_settings()
    paths = ConnectPaths.of(settings)
    restarted = False
    with local_process.locked(paths.lock_file):
        managed = _managed_pid(paths)
        if _ready(settings):
            why = drift(settings, managed) if managed is not None else None
            if why is None:
                owner = f"pid {managed}" if managed else "not started by this tool"
                _say(f"a worker is already ready on {rest_url(settings)} ({owner})")
                write_secrets(settings)  # the credentials may have been regenerated
                return False
            assert managed is not None
            _say(f"restarting worker pid {managed}: {why}")
            _signal_and_wait(managed)
            paths.pid_file.unlink(missing_ok=True)
            managed, restarted = None, True
        if managed is not None:
            _say(f"worker pid {managed} is alive but not ready yet; waiting for it")
            _wait_ready(settings, managed)
            return False
        if not _kafka_answers(settings):
            raise LocalConnectError(
                f"Kafka does not answer on {settings.bootstrap_servers}: start it first "
                "(python -m streams.local_kafka start)"
            )
        paths.pid_file.unlink(missing_ok=True)
        began = time.monotonic()
        ensure_jars(settings)
        write_config(settings)
        # cwd: the secrets file is read from the worker's working directory (/proc/self/cwd).
        proc = local_process.spawn(_java(settings), cwd=paths.root, output=paths.jvm_out,
                                   pid_file=paths.pid_file, children=_CHILDREN,
                                   env={**os.environ, **worker_env(settings)})
        _say(f"started Kafka Connect {settings.kafka_version} (pid {proc.pid}); waiting for it")
        try:
            _wait_ready(settings, proc.pid)
        except BaseException:
            _signal_and_wait(proc.pid)
            paths.pid_file.unlink(missing_ok=True)
            raise
    _say(f"Kafka Connect ready on {rest_url(settings)} (pid {proc.pid}, "
         f"{time.monotonic() - began:.1f}s; log {paths.connect_log})")
    return not restarted


def stop(settings: Settings | None = None) -> bool:
    """Stop the worker this tool started (pid file). True if one was stopped."""
    settings = settings or get_settings()
    paths = ConnectPaths.of(settings)
    with local_process.locked(paths.lock_file):
        pid = _managed_pid(paths)
        if pid is None:
            _say("not running (no live worker in the pid file)")
            paths.pid_file.unlink(missing_ok=True)
            return False
        began = time.monotonic()
        _signal_and_wait(pid)
        paths.pid_file.unlink(missing_ok=True)
    _say(f"stopped pid {pid} in {time.monotonic() - began:.1f}s")
    return True


def status(settings: Settings | None = None) -> bool:
    settings = settings or get_settings()
    paths = ConnectPaths.of(settings)
    ready = _ready(settings)
    pid = _managed_pid(paths)
    state = "running" if ready else ("starting" if pid is not None else "not running")
    print(f"local Kafka Connect: {state}")
    print(f"  pid:       {pid if pid is not None else '-'}")
    print(f"  rest:      {rest_url(settings)}")
    print(f"  versions:  Kafka {settings.kafka_version}, Debezium "
          f"{settings.connect_debezium_version}, Apicurio converter "
          f"{settings.connect_apicurio_converter_version}")
    if ready:
        code, names = _get(f"{rest_url(settings)}/connectors")
        print(f"  plugins:   {', '.join(c.rsplit('.', 1)[-1] for c in plugins_listed(settings))}, "
              f"{CONVERTER_CLASS.rsplit('.', 1)[-1]} (Apicurio "
              f"{settings.connect_apicurio_converter_version})")
        print(f"  connectors: {', '.join(names) if code == 200 and names else '-'}")
        if pid is not None and (why := drift(settings, pid)):
            print(f"  outdated:  {why} (start restarts it)")
    print(f"  log:       {paths.connect_log}")
    return ready


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.local_connect",
                                     description="The local Kafka Connect worker.")
    parser.add_argument("command", choices=["start", "stop", "status"])
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        if args.command == "start":
            start(settings)
        elif args.command == "stop":
            stop(settings)
        else:
            return 0 if status(settings) else 3
    except LocalConnectError as exc:
        print(f"local-connect: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
