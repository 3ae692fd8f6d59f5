"""The local Kafka Connect worker (distributed mode) with Debezium's plugins, no Docker.

Kafka's own Connect runtime (the broker's version), Debezium's plugin archives and Apicurio's
Avro converter, resolved from Maven Central by generated poms into ``<local_dir>/connect``,
which is also the worker's working directory: ``connect-distributed.properties`` and
``log4j2.xml`` (written on every start), ``secrets/`` (0700, one 0600 file per credential of
the databases, as a platform mounts secrets), ``logs/connect.log``. REST on 127.0.0.1 only.
Connector files take deployment values from the worker's config providers:
``${directory:/proc/self/cwd/secrets:<key>}`` (the file ``<key>`` in that folder) and
``${env:NAME}`` for the names in ``WORKER_ENV_NAMES`` (``worker_env``). ``start`` restarts a
worker it started whose properties or environment are outdated (``drift``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config.settings import Settings, get_settings
from connectors import local_postgres
from connectors.apply import SECRETS_DIRECTORY, rest_url
from connectors.local_registry import apicurio_native_url
from streams import local_kafka
from streams.kafka_config import JAVA_SECRET_PROPERTIES, java_client_properties, java_keystore_pem
from streams.local_process import (
    LocalService,
    LocalServiceError,
    ServicePaths,
    Under,
    read_json,
    write_private,
)

MAIN_CLASS = "org.apache.kafka.connect.cli.ConnectDistributed"
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
# How connector files name the secrets folder: an absolute path under the worker's working
# directory, so that ``allowed.paths`` can still restrict the provider (it refuses relative
# references). ``connectors.apply --secrets-dir`` points the references elsewhere.
SECRETS_REFERENCE_PATH = SECRETS_DIRECTORY
# The worker's environment variables connector files may read with ${env:NAME} (worker_env).
WORKER_ENV_NAMES = (
    "OMS_DB_HOST",
    "OMS_DB_PORT",
    "OMS_DB_NAME",
    "ERP_DB_HOST",
    "ERP_DB_PORT",
    "ERP_DB_NAME",
    "PIPELINE_TOPIC_PREFIX",
    "PIPELINE_REGISTRY_URL",
)


class LocalConnectError(LocalServiceError):
    """The Connect worker could not be resolved, started or stopped."""


class ConnectPaths(ServicePaths):
    folder = "connect"
    pom = Under("pom.xml")  # generated: what Maven resolves
    converter_pom = Under("converter-pom.xml")
    libs = Under("libs")  # the runtime's jars (+ log4j2, the backend Kafka's poms lack)
    plugins = Under("plugins")  # plugin.path: one folder per plugin
    marker = Under(".complete")  # versions and pom digests of what is there
    properties = Under("connect-distributed.properties")
    log4j = Under("log4j2.xml")
    secrets = Under("secrets")
    keystore = Under("kafka-client-keystore.pem")  # mutual TLS: the client key and its chain (0600)
    log = Under("logs", "connect.log")
    out = Under("logs", "connect.out")
    pid_file = Under("connect.pid")


def secrets_dir(settings: Settings) -> Path:
    """Where the secrets folder is (connector files name it ``SECRETS_REFERENCE_PATH``)."""
    return ConnectPaths.of(settings).secrets


def variables_for(settings: Settings, worker: Settings | None = None) -> dict[str, str]:
    """Overrides of ``${env:NAME}`` references for a deployment that shares the local worker:
    the variables whose value for ``settings`` differs from the worker's own (``worker_env`` of
    ``worker``, by default the process's settings). Empty for the worker's own deployment."""
    own = worker_env(worker or get_settings())
    return {name: value for name, value in worker_env(settings).items() if own.get(name) != value}


def worker_env(settings: Settings) -> dict[str, str]:
    """What the worker's ``${env:NAME}`` references resolve to, added to its environment."""
    host, port = "127.0.0.1", str(local_postgres.port_of(settings))
    env = {
        "OMS_DB_HOST": host,
        "OMS_DB_PORT": port,
        "OMS_DB_NAME": local_postgres.OMS_DATABASE,
        "ERP_DB_HOST": host,
        "ERP_DB_PORT": port,
        "ERP_DB_NAME": local_postgres.ERP_DATABASE,
        "PIPELINE_TOPIC_PREFIX": settings.topic_prefix,  # the pipeline's topics
        "PIPELINE_REGISTRY_URL": apicurio_native_url(settings),  # Apicurio's native v2 API
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


def ensure_jars(settings: Settings) -> ConnectPaths:
    """Resolve the runtime and plugins with Maven unless this exact set is there already.
    The marker is written last, so an interrupted run is redone from scratch next time."""
    paths = ConnectPaths.of(settings)
    folders = [artifact for artifact, _ in PLUGINS] + [CONVERTER_DIR]
    found, wanted = read_json(paths.marker), _wanted_marker(settings)
    jars = found.get("jars") or []
    if (
        all(found.get(k) == v for k, v in wanted.items())
        and jars
        and all((paths.libs / jar).is_file() for jar in jars)
        and all((paths.plugins / folder).is_dir() for folder in folders)
    ):
        return paths
    for folder in (paths.libs, paths.plugins):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    paths.marker.unlink(missing_ok=True)
    paths.pom.write_text(pom_xml(settings))
    paths.converter_pom.write_text(converter_pom_xml(settings))
    CONNECT.say(
        f"resolving Connect {settings.kafka_version}, Debezium "
        f"{settings.connect_debezium_version} plugins and Apicurio's converter "
        f"{settings.connect_apicurio_converter_version} from Maven Central"
    )
    began = time.monotonic()
    downloads = sum(
        CONNECT.maven(settings, ["-f", str(pom), *goals], paths.root, pom.name)
        for pom, goals in (
            (paths.pom, ["dependency:copy-dependencies@runtime", "dependency:unpack@plugins"]),
            (paths.converter_pom, ["dependency:copy-dependencies"]),
        )
    )
    # The converter declared the way KIP-898 wants (a ServiceLoader manifest, what Kafka's
    # connect-plugin-path sync-manifests would add): plugin.discovery=service_load finds it.
    with zipfile.ZipFile(paths.plugins / CONVERTER_DIR / "inventory-center-service-manifest.jar", "w") as jar:
        jar.writestr("META-INF/services/org.apache.kafka.connect.storage.Converter", f"{CONVERTER_CLASS}\n")
    jars = sorted(p.name for p in paths.libs.glob("*.jar"))
    if f"connect-runtime-{settings.kafka_version}.jar" not in jars:
        raise LocalConnectError(f"Maven finished but connect-runtime is missing from {paths.libs}")
    if missing := [f for f in folders if not (paths.plugins / f).is_dir()]:
        raise LocalConnectError(f"Maven finished but {paths.plugins / missing[0]} is missing")
    paths.marker.write_text(json.dumps({**wanted, "jars": jars}, indent=1))
    size_mb = sum(f.stat().st_size for f in paths.root.rglob("*.jar")) / 1e6
    CONNECT.say(
        f"{len(jars)} runtime jars and {len(folders)} plugins ({size_mb:.0f} MB of jars) "
        f"ready in {time.monotonic() - began:.1f}s ({downloads} files downloaded)"
    )
    return paths


# --- configuration ---------------------------------------------------------------------

# The files of the Kafka client secrets in the secrets folder: kafka.<Java property name>.
KAFKA_SECRET_PREFIX = "kafka."
CLIENT_PREFIXES = ("", "producer.", "consumer.", "admin.")  # the worker's own clients, then its tasks'


def _property_value(value: str) -> str:
    """A value as a .properties file reads it back (backslashes and line breaks escaped)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def client_security(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The worker's Kafka client security (streams/kafka_config.py ``java_client_properties``,
    from the same settings as every other client) for the worker itself and the producers,
    consumers and admin clients of its connectors: the property lines and the secrets they
    reference (``${directory:<secrets>:kafka.<name>}``; never written in the properties file).
    Nothing with PLAINTEXT: the local worker's properties stay as they were."""
    if settings.security_protocol == "PLAINTEXT":
        return [], {}
    keystore = ConnectPaths.of(settings).keystore if java_keystore_pem(settings) is not None else None
    properties = java_client_properties(settings, keystore)
    secrets = {f"{KAFKA_SECRET_PREFIX}{k}": v for k, v in properties.items() if k in JAVA_SECRET_PROPERTIES}
    lines = []
    for prefix in CLIENT_PREFIXES:
        for name, value in properties.items():
            shown = (
                f"${{directory:{SECRETS_REFERENCE_PATH}:{KAFKA_SECRET_PREFIX}{name}}}"
                if name in JAVA_SECRET_PROPERTIES
                else _property_value(value)
            )
            lines.append(f"{prefix}{name}={shown}")
    return lines, secrets


def worker_properties(settings: Settings) -> str:
    paths = ConnectPaths.of(settings)
    group = settings.connect_group_id
    port = settings.connect_rest_port
    security, _ = client_security(settings)
    secured = (
        "\n# Kafka client security (INVENTORY_SECURITY_*, SASL_*, SSL_*): the worker's clients and its tasks'.\n"
        + "\n".join(security)
        + "\n"
        if security
        else ""
    )
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
# ${{directory:{SECRETS_REFERENCE_PATH}:<key>}} is the content of the file <key> in the
# folder secrets/ of the worker's working directory (this folder), one file per secret, the
# way Kubernetes and Docker mount secrets. Only that folder may be read (a connector cannot ask
# for /etc/shadow), under either of its names: /proc/self/cwd/secrets, what connector files
# use, and its absolute path.
config.providers=directory,env
config.providers.directory.class=org.apache.kafka.common.config.provider.DirectoryConfigProvider
config.providers.directory.param.allowed.paths={SECRETS_REFERENCE_PATH},{paths.secrets}
# ${{env:<NAME>}} reads the worker's environment variable NAME (the non-secret deployment
# values local_connect.py sets); only these variables, not the rest of the environment.
config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider
config.providers.env.param.allowlist.pattern={"|".join(WORKER_ENV_NAMES)}

# Source offsets reach Kafka within 5 s (the default is 60 s: a restart would replay more).
offset.flush.interval.ms=5000
# One worker: do not hold a departed worker's connectors for 5 minutes before reassigning.
scheduled.rebalance.max.delay.ms=0
{secured}"""


def log4j2_config(settings: Settings) -> str:
    paths = ConnectPaths.of(settings)
    return f"""\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by connectors/local_connect.py on every start; edits are lost. -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="connect" fileName="{paths.log}" filePattern="{paths.log.parent}/connect.log.%i">
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
    """What ``${directory:<secrets>:<key>}`` resolves to: a folder (0700) with one file (0600)
    per secret, named by its key, holding the bare value (no newline: DirectoryConfigProvider
    reads a file's bytes as they are): the local databases' credentials and the Kafka client
    secrets (``kafka.<property>``). With mutual TLS, also the client keystore (0600). Never
    printed; connector files and the worker's properties name the keys, not the values.
    Returns the folder."""
    folder = secrets_dir(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    _, kafka_secrets = client_security(settings)
    for key, value in sorted({**local_postgres.credentials(settings), **kafka_secrets}.items()):
        write_private(folder / key, value)
    keystore = java_keystore_pem(settings) if settings.security_protocol != "PLAINTEXT" else None
    if keystore is not None:
        write_private(ConnectPaths.of(settings).keystore, keystore)
    (folder.parent / "secrets.properties").unlink(missing_ok=True)  # the file provider's, before
    return folder


def _get(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError):  # URLError, refused, timeouts; a body that is not JSON
        return 0, None


def plugins_listed(settings: Settings, connectors_only: bool = True) -> list[str]:
    """Plugin classes the worker offers (connectors, or every kind); empty when it does not
    answer."""
    query = "" if connectors_only else "?connectorsOnly=false"
    status, body = _get(f"{rest_url(settings)}/connector-plugins{query}")
    return [p.get("class", "") for p in body] if status == 200 and isinstance(body, list) else []


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
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        raw = b""
    pairs = (part.decode(errors="replace").partition("=") for part in raw.split(b"\0") if part)
    env = {key: value for key, _, value in pairs}
    differ = [name for name, value in worker_env(settings).items() if env.get(name) != value]
    return f"its environment differs in {', '.join(differ)}" if differ else None


class LocalConnect(LocalService):
    name, module, title = "connect", "connectors.local_connect", "Kafka Connect"
    noun = "Connect worker"
    description = "The local Kafka Connect worker."
    Paths, error, poll_s = ConnectPaths, LocalConnectError, 0.25
    port_setting, timeout_setting = "connect_rest_port", "connect_start_timeout_s"

    def address(self, settings: Settings) -> str:
        return rest_url(settings)

    def label(self, settings: Settings) -> str:
        return f"Kafka Connect {settings.kafka_version}"

    def owns(self, settings: Settings, argv: list[str]) -> bool:
        return MAIN_CLASS in argv and str(ConnectPaths.of(settings).properties) in argv

    def ready(self, settings: Settings, timeout: float = 3.0) -> bool:
        """REST answers, the worker joined its group (``/connectors`` is 200, not 503/409), and
        every plugin we ship is listed."""
        if _get(f"{rest_url(settings)}/connectors", timeout)[0] != 200:
            return False
        listed = set(plugins_listed(settings, connectors_only=False))
        return all(cls in listed for _, cls in PLUGINS) and CONVERTER_CLASS in listed

    def prepare(self, settings: Settings) -> tuple[list[str], Mapping[str, str] | None]:
        if settings.uses_local_broker and not local_kafka.is_running(settings):
            raise LocalConnectError(
                f"Kafka does not answer on {settings.bootstrap_servers}: "
                "start it first (python -m streams.local_kafka start)"
            )
        paths = ensure_jars(settings)
        paths.log.parent.mkdir(parents=True, exist_ok=True)
        paths.properties.write_text(worker_properties(settings))
        paths.log4j.write_text(log4j2_config(settings))
        write_secrets(settings)
        # Same JVM options as the broker's, its own heap. cwd (launch): the secrets file is read
        # from the worker's working directory (/proc/self/cwd).
        return [
            settings.java_bin,
            *shlex.split(settings.connect_heap),
            *shlex.split(settings.kafka_jvm_opts),
            f"-Dlog4j2.configurationFile={paths.log4j}",
            f"-Dkafka.logs.dir={paths.log.parent}",
            "-cp",
            f"{paths.libs}/*",
            MAIN_CLASS,
            str(paths.properties),
        ], {**os.environ, **worker_env(settings)}

    def after_ready(self, settings: Settings) -> str:
        write_secrets(settings)  # the credentials may have been regenerated
        return ""

    def outdated(self, settings: Settings, pid: int) -> str | None:
        return drift(settings, pid)

    def details(self, settings: Settings, running: bool, pid: int | None) -> list[tuple[str, str]]:
        rows = [
            ("rest", rest_url(settings)),
            (
                "versions",
                f"Kafka {settings.kafka_version}, Debezium "
                f"{settings.connect_debezium_version}, Apicurio converter "
                f"{settings.connect_apicurio_converter_version}",
            ),
        ]
        if running:
            code, names = _get(f"{rest_url(settings)}/connectors")
            plugins = ", ".join(c.rsplit(".", 1)[-1] for c in plugins_listed(settings))
            rows += [
                (
                    "plugins",
                    f"{plugins}, {CONVERTER_CLASS.rsplit('.', 1)[-1]} (Apicurio "
                    f"{settings.connect_apicurio_converter_version})",
                ),
                ("connectors", ", ".join(names) if code == 200 and names else "-"),
            ]
            if pid is not None and (why := drift(settings, pid)):
                rows.append(("outdated", f"{why} (start restarts it)"))
        return rows


CONNECT = LocalConnect()
start, stop, status, is_running, main = (CONNECT.start, CONNECT.stop, CONNECT.status, CONNECT.is_running, CONNECT.main)

if __name__ == "__main__":
    sys.exit(main())
