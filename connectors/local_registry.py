"""The local schema registry for development and tests: Apicurio Registry, only when asked for.

Apicurio Registry speaks the Confluent Schema Registry API under ``/apis/ccompat/v7``, which
is what ``confluent_kafka.schema_registry.SchemaRegistryClient`` and our
``schemas.codec.ConfluentFraming`` talk to. Confluent's own registry is not on Maven Central;
Apicurio is: ``io.apicurio:apicurio-registry-app:<version>:tar.gz:all``, a Quarkus
application. Nothing starts it implicitly: ``start`` (the CLI, a Make target, or a test
fixture) does, and the pipeline uses it only when ``schema_registry_url`` is set.

Version: **3.0.9**, the newest release on Maven Central that runs on Java 17. Central holds
the ``all`` archive of 3.x only for 3.0.9, 3.3.2 and 3.3.3 (3.1.x and 3.2.x were published
without it), and 3.3.x is compiled for Java 21 (class file major version 65, and
``maven.compiler.release`` 21 in its pom). 3.0.9 ships Quarkus's *legacy-jar* layout, so the
entry point is ``apicurio-registry-app-3.0.9-runner.jar`` + ``lib/``, not ``quarkus-run.jar``.

Resolution: the 3.0.9 app pom names a parent (``io.apicurio:apicurio-registry:3.0.9``) that
was never published to Central. maven-dependency-plugin 3.x reads the artifact descriptor and
fails ("Failed to read artifact descriptor"); the 2.8 plugin (Maven 3.8's default binding)
tolerates it, so we run ``maven-dependency-plugin:2.8:copy -Dartifact=...`` (no pom needed)
into a scratch folder and unpack the archive with Python's ``tarfile``, because the 2.8
plugin's own ``unpack`` truncates the PAX long file names of ``lib/`` (the runner's
Class-Path then points at jars that are not there). After the first run the archive is in
the local Maven repository and ``app/`` is complete: no Maven call, no network.

Storage: SQL on an **H2 file** (``data/registry.mv.db``), not KafkaSQL. The data survive a
restart either way, but with KafkaSQL the registry would need the broker up before it can
start, would die with ``make stop`` of the broker, would put its journal topic on the shared
broker (single replica, so no more durable than a local file) and replay it on every start.
An H2 file keeps the registry's life independent of the broker's, like Confluent's registry
pointed at a separate store. ``WRITE_DELAY=0`` makes every commit reach the file before the
HTTP answer: with H2's default 500 ms delay a schema registered just before a SIGKILL was
gone after the restart (tried), which would leave ids in Kafka that no registry knows.

Files, all under ``<local_dir>/registry`` (ignored by git)::

    app/                          the unpacked distribution + .complete marker
    config/application.properties generated on every start (Quarkus reads ./config/)
    data/registry.mv.db           the H2 database: schemas, ids, compatibility
    logs/registry.log             Quarkus's log (rotated)
    logs/registry.out             the JVM's stdout/stderr (crashes before logging starts)
    registry.pid                  pid of the registry this module started

Command line, from the repository root::

    python -m connectors.local_registry start|stop|status|url

From Python: ``start(settings) -> bool`` (True only when *this* call started it),
``stop(settings)``, ``is_running(settings)``, ``managed_pid(settings)``,
``registry_url(settings)``, ``ensure_app(settings)``.
``start`` also sets the global compatibility level (BACKWARD by default) through the
ccompat API, every time, so a running registry always has it.

When ``schema_registry_url`` points at another registry, start and stop do nothing and say
so. Its knobs are the ``registry_*`` settings (``INVENTORY_REGISTRY_*``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from config.settings import Settings, get_settings
from streams import local_process

GROUP_ID = "io.apicurio"
ARTIFACT_ID = "apicurio-registry-app"
# 2.8, not 3.x: see the module docstring (the 3.0.9 pom's parent is missing from Central).
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:2.8"
CCOMPAT_PATH = "/apis/ccompat/v7"
COMPATIBILITY_LEVELS = (
    "NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
    "FULL_TRANSITIVE",
)
STOP_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 10.0

# Registries started by this very process, so that stop() can reap them (a child that exits
# stays a zombie - and still "alive" to kill(pid, 0) - until its parent waits for it).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class LocalRegistryError(RuntimeError):
    """The local registry could not be resolved, started, configured or stopped."""


@dataclass(frozen=True)
class RegistryConfig:
    """The registry's knobs, from ``config.settings.Settings`` (``registry_*``)."""

    registry_version: str = "3.0.9"
    registry_port: int = 8081
    registry_heap: str = "-Xms64m -Xmx256m"
    registry_jvm_opts: str = (
        "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError "
        "-Djava.awt.headless=true"
    )
    registry_start_timeout_s: float = 120.0
    registry_compatibility: str = "BACKWARD"

    @classmethod
    def of(cls, settings: Settings) -> RegistryConfig:
        values: dict[str, Any] = {spec.name: getattr(settings, spec.name) for spec in fields(cls)}
        config = cls(**values)
        if config.registry_compatibility not in COMPATIBILITY_LEVELS:
            raise LocalRegistryError(
                f"registry_compatibility {config.registry_compatibility!r} is not one of "
                + ", ".join(COMPATIBILITY_LEVELS)
            )
        return config


@dataclass(frozen=True)
class RegistryPaths:
    """Where the local registry keeps its files."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> RegistryPaths:
        return cls(Path(settings.local_dir).resolve() / "registry")

    @property
    def app(self) -> Path:
        return self.root / "app"

    @property
    def marker(self) -> Path:
        return self.app / ".complete"

    @property
    def properties(self) -> Path:
        return self.root / "config" / "application.properties"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def database(self) -> Path:
        """H2's base name; the file on disk is ``registry.mv.db``."""
        return self.data / "registry"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def log(self) -> Path:
        return self.logs / "registry.log"

    @property
    def jvm_out(self) -> Path:
        return self.logs / "registry.out"

    @property
    def pid_file(self) -> Path:
        return self.root / "registry.pid"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def runner(self, version: str) -> Path:
        return self.app / f"{ARTIFACT_ID}-{version}-runner.jar"


def _say(message: str) -> None:
    print(f"local-registry: {message}", flush=True)


def registry_url(settings: Settings) -> str:
    """The Confluent-compatible base URL of the local registry (for ``schema_registry_url``
    and ``SchemaRegistryClient({"url": ...})``)."""
    return f"http://127.0.0.1:{RegistryConfig.of(settings).registry_port}{CCOMPAT_PATH}"


def apicurio_native_url(settings: Settings) -> str:
    """Apicurio's own v2 API (what its Kafka Connect converter talks to) next to the
    Confluent-compatible URL the pipeline uses (``Settings.schema_registry_url``, or the local
    registry's). The ids in the records are the same contentIds on both APIs."""
    base = (settings.schema_registry_url or registry_url(settings)).rstrip("/")
    if base.endswith(CCOMPAT_PATH):
        base = base[: -len(CCOMPAT_PATH)]
    return f"{base}/apis/registry/v2"


def uses_local_registry(settings: Settings) -> bool:
    """False when the settings point at some other registry (then we neither start nor stop)."""
    configured = settings.schema_registry_url
    return configured is None or configured.rstrip("/") == registry_url(settings)


# --- the distribution ------------------------------------------------------------------


def _app_complete(paths: RegistryPaths, version: str) -> bool:
    try:
        marker = json.loads(paths.marker.read_text())
    except (OSError, ValueError):
        return False
    if marker.get("version") != version or not paths.runner(version).is_file():
        return False
    lib = paths.app / "lib"
    return lib.is_dir() and sum(1 for _ in lib.iterdir()) == marker.get("lib_files")


def ensure_app(settings: Settings) -> Path:
    """Resolve and unpack Apicurio Registry unless ``app/`` already holds this version.

    Returns the runner jar. The marker is written last and ``app/`` appears by a rename, so
    an interrupted run is redone from scratch next time.
    """
    config = RegistryConfig.of(settings)
    version = config.registry_version
    paths = RegistryPaths.of(settings)
    if _app_complete(paths, version):
        return paths.runner(version)
    if shutil.which(settings.maven_bin) is None:
        raise LocalRegistryError(f"Maven ({settings.maven_bin!r}) is not on PATH")
    paths.root.mkdir(parents=True, exist_ok=True)
    coordinates = f"{GROUP_ID}:{ARTIFACT_ID}:{version}:tar.gz:all"
    _say(f"resolving {coordinates} from Maven Central")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="app-", dir=paths.root) as scratch:
        download = Path(scratch) / "download"
        cmd = [
            settings.maven_bin,
            "-B",
            f"{DEPENDENCY_PLUGIN}:copy",
            f"-Dartifact={coordinates}",
            f"-DoutputDirectory={download}",
        ]
        # cwd=scratch: a folder without a pom.xml, so Maven runs its stub project.
        run = subprocess.run(
            cmd, cwd=scratch, stdin=subprocess.DEVNULL, capture_output=True, text=True
        )
        lines = run.stdout.splitlines()
        for line in lines:
            # "[INFO] Downloaded from central: https://.../x-all.tar.gz (109 MB at 69 MB/s)"
            words = line.split("Downloaded from", 1)[-1].split()
            if "Downloaded from" in line and len(words) >= 4 and words[1].endswith(".tar.gz"):
                size = " ".join(words[2:]).strip("()")
                _say(f"  downloaded {words[1].rsplit('/', 1)[-1]} ({size})")
        archives = list(download.glob("*.tar.gz"))
        if run.returncode != 0 or len(archives) != 1:
            raise LocalRegistryError(
                f"Maven failed (exit {run.returncode}) resolving {coordinates}:\n"
                + "\n".join(lines[-30:] + run.stderr.splitlines()[-10:])
            )
        unpacked = Path(scratch) / "app"
        with tarfile.open(archives[0]) as archive:
            archive.extractall(unpacked, filter="data")  # PAX long names intact
        lib_files = sum(1 for _ in (unpacked / "lib").iterdir())
        if not (unpacked / paths.runner(version).name).is_file():
            raise LocalRegistryError(f"{archives[0].name} holds no {paths.runner(version).name}")
        (unpacked / ".complete").write_text(
            json.dumps({"version": version, "lib_files": lib_files}, indent=1)
        )
        if paths.app.exists():
            shutil.rmtree(paths.app)  # another version or a half-finished run
        unpacked.rename(paths.app)
    _say(
        f"Apicurio Registry {version} unpacked into {paths.app} ({lib_files} jars) "
        f"in {time.monotonic() - began:.1f}s"
    )
    return paths.runner(version)


# --- configuration ---------------------------------------------------------------------


def application_properties(settings: Settings) -> str:
    """Quarkus/Apicurio configuration; overrides the defaults inside the runner jar."""
    config = RegistryConfig.of(settings)
    paths = RegistryPaths.of(settings)
    return f"""\
# Generated by connectors/local_registry.py on every start; edits are lost.
quarkus.http.host=127.0.0.1
quarkus.http.port={config.registry_port}

# Persistent storage: SQL on an H2 file (see the module docstring for why not KafkaSQL).
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


def write_config(settings: Settings) -> RegistryPaths:
    paths = RegistryPaths.of(settings)
    for folder in (paths.root, paths.properties.parent, paths.data, paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    paths.properties.write_text(application_properties(settings))
    return paths


def _java(settings: Settings, runner: Path) -> list[str]:
    """The java command line. JVM options, for a registry on a 2-core development box:

    * -XX:+UseSerialGC: a few ms of pause over a <=256 MB heap and no concurrent GC threads
      competing with the pipeline.
    * -XX:TieredStopAtLevel=1 (C1 only): unlike the broker, the registry does little work
      once clients have cached their ids, so peak JIT code buys nothing; C1 alone starts
      about 25% faster and the process is ~40 MB smaller (measured: 2.9 s / 166 MB RSS
      against 3.9 s / 202 MB).
    * -XX:+ExitOnOutOfMemoryError: a dead registry is noticed by start/status.
    """
    config = RegistryConfig.of(settings)
    return [
        settings.java_bin,
        *shlex.split(config.registry_heap),
        *shlex.split(config.registry_jvm_opts),
        "-jar",
        str(runner),
    ]


# --- the ccompat API -------------------------------------------------------------------


def _request(
    settings: Settings, method: str, path: str, body: Any = None, timeout: float = 5.0
) -> Any:
    """One call to the local registry's ccompat API; the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        registry_url(settings) + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read() or b"null")


def _registry_answers(settings: Settings, timeout: float = 3.0) -> bool:
    """True if a Confluent-compatible registry answers GET /config on the local port."""
    if not local_process.port_open("127.0.0.1", RegistryConfig.of(settings).registry_port):
        return False
    try:
        answer = _request(settings, "GET", "/config", timeout=timeout)
    except (OSError, ValueError):  # URLError, HTTPError, timeouts are OSErrors
        return False
    return isinstance(answer, dict) and "compatibilityLevel" in answer


def compatibility(settings: Settings) -> str:
    """The registry's global compatibility level."""
    return str(_request(settings, "GET", "/config")["compatibilityLevel"])


def ensure_compatibility(settings: Settings) -> str:
    """Set the global compatibility level to ``registry_compatibility`` (idempotent)."""
    wanted = RegistryConfig.of(settings).registry_compatibility
    try:
        if compatibility(settings) != wanted:
            _request(settings, "PUT", "/config", {"compatibility": wanted})
            _say(f"global compatibility set to {wanted}")
        level = compatibility(settings)
    except (OSError, ValueError, KeyError) as exc:
        raise LocalRegistryError(f"could not set the compatibility level: {exc!r}") from exc
    if level != wanted:
        raise LocalRegistryError(f"compatibility is {level} after setting {wanted}")
    return level


def is_running(settings: Settings | None = None) -> bool:
    """True if a registry (started by us or not) answers on the local registry port."""
    return _registry_answers(settings or get_settings())


# --- process handling ------------------------------------------------------------------


def _is_our_registry(pid: int, paths: RegistryPaths) -> bool:
    """True if pid is a live java running a runner jar from our app/ (not a reused pid)."""
    argv = local_process.cmdline(pid) or []
    return any(arg.startswith(str(paths.app) + os.sep) and arg.endswith("-runner.jar")
               for arg in argv)


def _managed_pid(paths: RegistryPaths) -> int | None:
    pid = local_process.read_pid(paths.pid_file)
    return pid if pid is not None and _is_our_registry(pid, paths) else None


def managed_pid(settings: Settings | None = None) -> int | None:
    """The pid of the registry this tool started, if that process is still alive."""
    return _managed_pid(RegistryPaths.of(settings or get_settings()))


def _signal_and_wait(pid: int) -> None:
    local_process.terminate(pid, _CHILDREN, stop_timeout=STOP_TIMEOUT_S,
                            kill_timeout=KILL_TIMEOUT_S, say=_say, error=LocalRegistryError)


def _failure(settings: Settings, what: str) -> LocalRegistryError:
    paths = RegistryPaths.of(settings)
    return LocalRegistryError(local_process.failure_report(what, paths.jvm_out, paths.log))


def _wait_ready(settings: Settings, pid: int) -> None:
    timeout = RegistryConfig.of(settings).registry_start_timeout_s
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not local_process.alive(pid, _CHILDREN):
            raise _failure(settings, f"the registry (pid {pid}) exited during startup")
        if _registry_answers(settings, timeout=2.0):
            return
        time.sleep(0.1)
    raise _failure(
        settings,
        f"the registry (pid {pid}) did not answer on {registry_url(settings)} "
        f"within {timeout:.0f}s",
    )


# --- public API ------------------------------------------------------------------------


def start(settings: Settings | None = None) -> bool:
    """Start the local registry unless one answers already. True if THIS call started it.

    Blocks until the ccompat API answers, then sets the global compatibility level (also
    when the registry was already running). Raises LocalRegistryError with the tail of the
    logs if it exits or does not answer within ``registry_start_timeout_s``.
    """
    settings = settings or get_settings()
    if not uses_local_registry(settings):
        _say(f"another registry is configured ({settings.schema_registry_url}); not starting one")
        return False
    config = RegistryConfig.of(settings)
    paths = RegistryPaths.of(settings)
    with local_process.locked(paths.lock_file):
        managed = _managed_pid(paths)
        if _registry_answers(settings):
            owner = f"pid {managed}" if managed else "not started by this tool"
            _say(f"a registry already answers on {registry_url(settings)} ({owner})")
            ensure_compatibility(settings)
            return False
        if managed is not None:
            _say(f"registry pid {managed} is alive but not answering yet; waiting for it")
            _wait_ready(settings, managed)
            ensure_compatibility(settings)
            return False
        paths.pid_file.unlink(missing_ok=True)  # stale
        if local_process.port_open("127.0.0.1", config.registry_port):
            raise LocalRegistryError(
                f"port {config.registry_port} is taken by something that is not a schema "
                "registry; set INVENTORY_REGISTRY_PORT"
            )

        began = time.monotonic()
        runner = ensure_app(settings)
        write_config(settings)
        proc = local_process.spawn(
            _java(settings, runner),
            cwd=paths.root,  # Quarkus reads ./config/application.properties
            output=paths.jvm_out,
            pid_file=paths.pid_file,
            children=_CHILDREN,
        )
        _say(f"started Apicurio Registry {config.registry_version} (pid {proc.pid}); waiting")
        try:
            _wait_ready(settings, proc.pid)
            level = ensure_compatibility(settings)
        except BaseException:
            _signal_and_wait(proc.pid)
            paths.pid_file.unlink(missing_ok=True)
            raise
    _say(
        f"Apicurio Registry {config.registry_version} ready on {registry_url(settings)} "
        f"(pid {proc.pid}, {time.monotonic() - began:.1f}s, compatibility {level}; "
        f"log {paths.log})"
    )
    return True


def stop(settings: Settings | None = None) -> bool:
    """Stop the registry this tool started (pid file). True if a registry was stopped."""
    settings = settings or get_settings()
    if not uses_local_registry(settings):
        _say(f"another registry is configured ({settings.schema_registry_url}); nothing to stop")
        return False
    paths = RegistryPaths.of(settings)
    with local_process.locked(paths.lock_file):
        pid = local_process.read_pid(paths.pid_file)
        if pid is None:
            foreign = is_running(settings)
            extra = " (but a registry not started by this tool answers)" if foreign else ""
            _say(f"not running: no pid file{extra}")
            return False
        if not _is_our_registry(pid, paths):
            _say(f"not running: removing stale pid file (pid {pid})")
            paths.pid_file.unlink(missing_ok=True)
            return False
        began = time.monotonic()
        _signal_and_wait(pid)
        paths.pid_file.unlink(missing_ok=True)
    _say(f"stopped pid {pid} in {time.monotonic() - began:.1f}s")
    return True


def _rss_mb(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return f"{int(line.split()[1]) / 1024:.0f} MB"
    except (OSError, ValueError, IndexError):
        pass
    return "?"


def status(settings: Settings | None = None) -> bool:
    """Print the state of the local registry. True if a registry answers."""
    settings = settings or get_settings()
    if not uses_local_registry(settings):
        _say(f"another registry is configured ({settings.schema_registry_url}); local one unused")
        return False
    config = RegistryConfig.of(settings)
    paths = RegistryPaths.of(settings)
    running = is_running(settings)
    pid = _managed_pid(paths)
    if running:
        state = "running"
    elif pid is not None:
        state = "starting (process alive, not answering yet)"
    else:
        state = "not running"
    print(f"local schema registry: {state}")
    if pid is not None:
        print(f"  pid:           {pid} (RSS {_rss_mb(pid)})")
    else:
        print("  pid:           -" + ("  (not started by this tool)" if running else ""))
    print(f"  url:           {registry_url(settings)}")
    print(f"  version:       Apicurio Registry {config.registry_version}")
    if running:
        try:
            print(f"  compatibility: {compatibility(settings)}")
            print(f"  subjects:      {len(_request(settings, 'GET', '/subjects'))}")
        except (OSError, ValueError, KeyError) as exc:
            print(f"  api:           {exc!r}")
    print(f"  storage:       {paths.database}.mv.db")
    print(f"  log:           {paths.log}")
    return running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.local_registry",
        description="The local schema registry (Apicurio Registry, Confluent-compatible API).",
    )
    parser.add_argument("command", choices=["start", "stop", "status", "url"])
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        if args.command == "start":
            start(settings)
        elif args.command == "stop":
            stop(settings)
        elif args.command == "url":
            print(registry_url(settings))
        else:
            return 0 if status(settings) else 3  # LSB: 3 = not running
    except LocalRegistryError as exc:
        print(f"local-registry: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
