"""The local schema registry, only when asked for: Apicurio Registry (Maven Central), whose
Confluent-compatible API under ``/apis/ccompat/v7`` our ``ConfluentFraming`` talks to.

Under ``<local_dir>/registry``: ``app/`` (the unpacked distribution), ``config/`` (written on
every start), ``data/registry.mv.db`` (H2 file storage: schemas survive restarts and SIGKILLs),
``logs/``. ``python -m connectors.local_registry start|stop|status|url``, or from Python
``start``/``stop``/``status``/``is_running``/``managed_pid``/``registry_url``. ``start`` also
sets the global compatibility level (``registry_compatibility``) every time. When
``schema_registry_url`` names another registry, start and stop do nothing and say so.
Why this version, this resolution and this storage: docs/decisions.md, "the local stack".
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config.settings import Settings
from streams.kafka_config import redacted_url, split_url_credentials
from streams.local_process import (
    LocalService,
    LocalServiceError,
    ServicePaths,
    Under,
    port_open,
    read_json,
)

ARTIFACT_ID = "apicurio-registry-app"
# 2.8, not 3.x: the 3.0.9 pom's parent is missing from Central (docs/decisions.md).
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:2.8"
CCOMPAT_PATH = "/apis/ccompat/v7"


class LocalRegistryError(LocalServiceError):
    """The local registry could not be resolved, started, configured or stopped."""


class RegistryPaths(ServicePaths):
    folder = "registry"
    app = Under("app")  # the unpacked distribution and its .complete marker
    properties = Under("config", "application.properties")  # Quarkus reads ./config/
    database = Under("data", "registry")  # H2's base name: the file is registry.mv.db
    log = Under("logs", "registry.log")
    out = Under("logs", "registry.out")
    pid_file = Under("registry.pid")

    def runner(self, version: str) -> Path:
        return self.app / f"{ARTIFACT_ID}-{version}-runner.jar"


def registry_url(settings: Settings) -> str:
    """The local registry's Confluent-compatible base URL."""
    return f"http://127.0.0.1:{settings.registry_port}{CCOMPAT_PATH}"


def apicurio_native_url(settings: Settings) -> str:
    """Apicurio's own v2 API (what its Kafka Connect converter talks to) next to the
    Confluent-compatible URL the pipeline uses; the ids are the same contentIds on both."""
    configured = settings.schema_registry_url and split_url_credentials(settings.schema_registry_url)[0]
    base = (configured or registry_url(settings)).rstrip("/")
    return f"{base.removesuffix(CCOMPAT_PATH)}/apis/registry/v2"


def uses_local_registry(settings: Settings) -> bool:
    """False when the settings name some other registry (then we neither start nor stop)."""
    configured = settings.schema_registry_url
    return configured is None or split_url_credentials(configured)[0].rstrip("/") == registry_url(settings)


def ensure_app(settings: Settings) -> Path:
    """Resolve and unpack Apicurio Registry unless ``app/`` holds this version; the runner jar.
    ``app/`` appears by a rename, its marker written before: a half-done run is redone."""
    version, paths = settings.registry_version, RegistryPaths.of(settings)
    runner, marker = paths.runner(version), read_json(paths.app / ".complete")
    lib = paths.app / "lib"
    if (
        marker.get("version") == version
        and runner.is_file()
        and lib.is_dir()
        and sum(1 for _ in lib.iterdir()) == marker.get("lib_files")
    ):
        return runner
    paths.root.mkdir(parents=True, exist_ok=True)
    coordinates = f"io.apicurio:{ARTIFACT_ID}:{version}:tar.gz:all"
    REGISTRY.say(f"resolving {coordinates} from Maven Central")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="app-", dir=paths.root) as scratch:
        download = Path(scratch) / "download"
        # cwd=scratch: a folder without a pom.xml, so Maven runs its stub project.
        REGISTRY.maven(
            settings,
            [f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={coordinates}", f"-DoutputDirectory={download}"],
            Path(scratch),
            coordinates,
        )
        archives = list(download.glob("*.tar.gz"))
        if len(archives) != 1:
            raise LocalRegistryError(f"Maven left {len(archives)} archives in {download}")
        unpacked = Path(scratch) / "app"
        with tarfile.open(archives[0]) as archive:  # not the 2.8 plugin's unpack: it
            archive.extractall(unpacked, filter="data")  # truncates PAX long names
        lib_files = sum(1 for _ in (unpacked / "lib").iterdir())
        if not (unpacked / runner.name).is_file():
            raise LocalRegistryError(f"{archives[0].name} holds no {runner.name}")
        (unpacked / ".complete").write_text(json.dumps({"version": version, "lib_files": lib_files}, indent=1))
        shutil.rmtree(paths.app, ignore_errors=True)  # another version or a half-finished run
        unpacked.rename(paths.app)
    REGISTRY.say(
        f"Apicurio Registry {version} unpacked into {paths.app} ({lib_files} jars) in {time.monotonic() - began:.1f}s"
    )
    return runner


def application_properties(settings: Settings) -> str:
    """Quarkus/Apicurio configuration; overrides the defaults inside the runner jar."""
    paths = RegistryPaths.of(settings)
    return f"""\
# Generated by connectors/local_registry.py on every start; edits are lost.
quarkus.http.host=127.0.0.1
quarkus.http.port={settings.registry_port}

# Persistent storage: SQL on an H2 file (docs/decisions.md says why not KafkaSQL).
# WRITE_DELAY=0: a commit is in the file before the answer, so a SIGKILL loses nothing.
apicurio.storage.kind=sql
apicurio.storage.sql.kind=h2
apicurio.datasource.url=jdbc:h2:file:{paths.database};WRITE_DELAY=0
# The default pool opens 20 connections at start; one registry on a laptop needs a few.
apicurio.datasource.jdbc.initial-size=1
apicurio.datasource.jdbc.min-size=1
apicurio.datasource.jdbc.max-size=8

# Confluent's behaviour: the same schema written differently (key order, spaces) is the
# same schema. Without this Apicurio adds a new version for every textual variant and
# POST /subjects/<s> (lookup) finds only the exact text.
apicurio.ccompat.use-canonical-hash=true

# Logs: a rotated file (the console is the JVM's .out file, for crashes). The default
# console pattern prints dates as "2026-11+00-25".
quarkus.log.console.enable=false
quarkus.log.file.enable=true
quarkus.log.file.json=false
quarkus.log.file.path={paths.log}
quarkus.log.file.format=%d{{yyyy-MM-dd HH:mm:ss,SSS}} %-5p [%c{{3.}}] (%t) %s%e%n
quarkus.log.file.rotation.max-file-size=20M
quarkus.log.file.rotation.max-backup-index=3
quarkus.http.access-log.enabled=false
"""


def _request(settings: Settings, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Any:
    """One call to the local registry's ccompat API; the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    request = urllib.request.Request(registry_url(settings) + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - loopback
        return json.loads(answer.read() or b"null")


def compatibility(settings: Settings) -> str:
    """The registry's global compatibility level."""
    return str(_request(settings, "GET", "/config")["compatibilityLevel"])


def ensure_compatibility(settings: Settings) -> str:
    """Set the global compatibility level to ``registry_compatibility`` (idempotent)."""
    wanted = settings.registry_compatibility
    try:
        if compatibility(settings) != wanted:
            _request(settings, "PUT", "/config", {"compatibility": wanted})
            REGISTRY.say(f"global compatibility set to {wanted}")
        level = compatibility(settings)
    except (OSError, ValueError, KeyError) as exc:  # URLError, HTTPError, timeouts: OSErrors
        raise LocalRegistryError(f"could not set the compatibility level: {exc!r}") from exc
    if level != wanted:
        raise LocalRegistryError(f"compatibility is {level} after setting {wanted}")
    return level


class LocalRegistry(LocalService):
    name, module, title, noun = ("registry", "connectors.local_registry", "schema registry", "schema registry")
    description = "The local schema registry (Apicurio Registry, Confluent-compatible API)."
    Paths, error, poll_s = RegistryPaths, LocalRegistryError, 0.1
    port_setting, timeout_setting = "registry_port", "registry_start_timeout_s"
    commands = {"url": lambda settings: print(registry_url(settings))}

    def address(self, settings: Settings) -> str:
        return registry_url(settings)

    def label(self, settings: Settings) -> str:
        return f"Apicurio Registry {settings.registry_version}"

    def elsewhere(self, settings: Settings) -> str | None:
        configured = f"another registry is configured ({redacted_url(settings.schema_registry_url)})"
        return None if uses_local_registry(settings) else configured

    def owns(self, settings: Settings, argv: list[str]) -> bool:
        app = str(RegistryPaths.of(settings).app) + os.sep
        return any(arg.startswith(app) and arg.endswith("-runner.jar") for arg in argv)

    def ready(self, settings: Settings, timeout: float = 3.0) -> bool:
        """A Confluent-compatible registry answers GET /config."""
        if not port_open("127.0.0.1", settings.registry_port):
            return False
        try:
            answer = _request(settings, "GET", "/config", timeout=timeout)
        except (OSError, ValueError):
            return False
        return isinstance(answer, dict) and "compatibilityLevel" in answer

    def prepare(self, settings: Settings) -> tuple[list[str], Mapping[str, str] | None]:
        runner, paths = ensure_app(settings), RegistryPaths.of(settings)
        for folder in (paths.properties.parent, paths.database.parent, paths.log.parent):
            folder.mkdir(parents=True, exist_ok=True)
        paths.properties.write_text(application_properties(settings))
        return [
            settings.java_bin,
            *shlex.split(settings.registry_heap),
            *shlex.split(settings.registry_jvm_opts),
            "-jar",
            str(runner),
        ], None

    def after_ready(self, settings: Settings) -> str:
        return f", compatibility {ensure_compatibility(settings)}"

    def details(self, settings: Settings, running: bool, pid: int | None) -> list[tuple[str, str]]:
        rows = [("url", registry_url(settings)), ("version", f"Apicurio Registry {settings.registry_version}")]
        if running:
            try:
                rows += [
                    ("compatibility", compatibility(settings)),
                    ("subjects", str(len(_request(settings, "GET", "/subjects")))),
                ]
            except (OSError, ValueError, KeyError) as exc:
                rows.append(("api", repr(exc)))
        return [*rows, ("storage", f"{RegistryPaths.of(settings).database}.mv.db")]


REGISTRY = LocalRegistry()
start, stop, status, is_running, main = (
    REGISTRY.start,
    REGISTRY.stop,
    REGISTRY.status,
    REGISTRY.is_running,
    REGISTRY.main,
)
managed_pid = REGISTRY.managed_pid

if __name__ == "__main__":
    sys.exit(main())
