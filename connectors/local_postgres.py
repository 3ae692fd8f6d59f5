"""The local PostgreSQL that plays the OMS and ERP databases (tests, CI, the connector demo).

Debian's PostgreSQL (``apt-get install postgresql`` when it is missing, as root), run as a
private cluster under ``<local_dir>/postgres`` - never the system's ``main`` cluster::

    data/                    the cluster (initdb once; owned by the ``postgres`` OS user when
                             we run as root, because initdb refuses to run as root)
    data/local.conf          generated on every start: port, 127.0.0.1 only, wal_level=logical
    run/                     the unix socket (admin access: superuser over the socket, trust)
    credentials.properties   generated once (0600): the passwords of the ``oms`` and ``erp`` roles
    postgres.log             the server log

Two databases: ``oms`` (the OMS's own database: an ``outbox`` table in the shape Debezium's
outbox event router reads, and a publication for it) and ``erp`` (the ERP tables the JDBC
sink writes: the append-only ledger and the latest inventory positions). TCP clients
(Debezium, the JDBC sink) connect to 127.0.0.1 with SCRAM passwords; nothing listens
elsewhere.

PostgreSQL 15 (Debian 12's package), read by Debezium through the built-in pgoutput plugin.
Measured on the 2-core development machine: first start (initdb, roles, databases, tables)
about 1.3 s, a restart 0.6 s, about 60 MB of memory (PSS) with the connectors attached.

Command line, from the repository root::

    python -m connectors.local_postgres start|stop|status

From Python: ``start(settings) -> bool`` (True only when *this* call started the server),
``stop(settings)``, ``is_running(settings)``, ``psql(settings, database, sql)``,
``ensure_databases(settings, oms=..., erp=...)`` and ``drop_database(settings, name)`` for
tests that want databases of their own.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings, get_settings
from streams import local_process

SUPERUSER = "postgres"
OMS_DATABASE = "oms"
ERP_DATABASE = "erp"
OMS_ROLE = "oms"
ERP_ROLE = "erp"
# Debezium reads the outbox through this publication (pgoutput); created here, as a DBA
# would, so the connector's role needs no rights to create publications.
OUTBOX_PUBLICATION = "oms_outbox"

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class LocalPostgresError(RuntimeError):
    """PostgreSQL could not be installed, initialised, started or stopped."""


def _say(message: str) -> None:
    print(f"local-postgres: {message}", flush=True)


def port_of(settings: Settings) -> int:
    return int(settings.postgres_port)


def _start_timeout(settings: Settings) -> float:
    return float(settings.postgres_start_timeout_s)


@dataclass(frozen=True)
class PostgresPaths:
    root: Path

    @classmethod
    def of(cls, settings: Settings) -> PostgresPaths:
        return cls(Path(settings.local_dir).resolve() / "postgres")

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.properties"

    @property
    def local_conf(self) -> Path:
        return self.data / "local.conf"

    @property
    def pid_file(self) -> Path:
        return self.data / "postmaster.pid"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"


# --- the binaries ----------------------------------------------------------------------


def _bin_dir() -> Path | None:
    """Debian keeps each major version's server binaries in /usr/lib/postgresql/<v>/bin."""
    candidates = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if (path / "initdb").is_file() and path.parent.name.isdigit():
            candidates.append((int(path.parent.name), path))
    return max(candidates)[1] if candidates else None


def ensure_installed() -> Path:
    """The server binaries' folder; installs Debian's ``postgresql`` when missing (root only)."""
    found = _bin_dir()
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise LocalPostgresError(
            "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin; as root run: "
            "apt-get update && apt-get install -y postgresql"
        )
    # Debian's postinst would create and start a system-wide 'main' cluster on 5432 that
    # nobody uses; on a fresh machine (no postgresql-common yet) tell it not to.
    createcluster = Path("/etc/postgresql-common/createcluster.conf")
    if not createcluster.exists():
        createcluster.parent.mkdir(parents=True, exist_ok=True)
        createcluster.write_text("create_main_cluster = false\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
               "-o", "Dpkg::Options::=--force-confold", "postgresql"]
    _say("installing Debian's postgresql (apt-get)")
    began = time.monotonic()
    if subprocess.run(install, env=env, capture_output=True, text=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise LocalPostgresError(f"apt-get install postgresql failed:\n{done.stdout}{done.stderr}")
    found = _bin_dir()
    if found is None:
        raise LocalPostgresError("apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb")
    _say(f"installed in {time.monotonic() - began:.0f}s")
    return found


def server_version() -> str:
    bindir = ensure_installed()
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()


# --- running as the cluster's owner ----------------------------------------------------


def _as_owner() -> dict[str, str]:
    """subprocess keyword arguments that run a command as the cluster's OS user.

    initdb and postgres refuse to run as root: as root we run them as ``postgres`` (the user
    Debian's package creates); as anyone else, as ourselves.
    """
    if os.geteuid() != 0:
        return {}
    return {"user": SUPERUSER, "group": SUPERUSER}


def _chown_to_owner(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, SUPERUSER, SUPERUSER)


def _run(cmd: list[str], *, as_owner: bool = False, input: str | None = None,
         check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    kwargs = _as_owner() if as_owner else {}
    done = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout,
                          cwd="/", **kwargs)  # type: ignore[call-overload]
    if check and done.returncode != 0:
        raise LocalPostgresError(f"{' '.join(cmd[:2])} failed (exit {done.returncode}):\n"
                                 f"{done.stdout}{done.stderr}")
    return done  # type: ignore[no-any-return]


# --- credentials -----------------------------------------------------------------------


def _read_properties(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def credentials(settings: Settings) -> dict[str, str]:
    """The roles' names and passwords: ``oms.user``, ``oms.password``, ``erp.user``,
    ``erp.password``. Generated on first use, then kept (mode 0600).

    Only the local stack reads this file: Kafka Connect gets the passwords through its
    FileConfigProvider (``connectors/local_connect.py`` copies them into its secrets file),
    never in a connector's JSON.
    """
    paths = PostgresPaths.of(settings)
    if paths.credentials.is_file():
        values = _read_properties(paths.credentials)
        if {"oms.password", "erp.password"} <= values.keys():
            return values
    paths.root.mkdir(parents=True, exist_ok=True)
    values = {
        "oms.user": OMS_ROLE,
        "oms.password": secrets.token_urlsafe(24),
        "erp.user": ERP_ROLE,
        "erp.password": secrets.token_urlsafe(24),
    }
    tmp = paths.credentials.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("# Generated by connectors/local_postgres.py: passwords of the local OMS and ERP roles.\n")
        handle.writelines(f"{k}={v}\n" for k, v in values.items())
    tmp.replace(paths.credentials)
    return values


# --- configuration ---------------------------------------------------------------------


def local_conf(settings: Settings) -> str:
    paths = PostgresPaths.of(settings)
    return f"""\
# Generated by connectors/local_postgres.py on every start; edits are lost.
port = {port_of(settings)}
listen_addresses = '127.0.0.1'
unix_socket_directories = '{paths.socket_dir}'
# Debezium reads the OMS outbox by logical decoding (pgoutput).
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
# A development server on a 2-core machine shared with Kafka, Connect and the workers.
max_connections = 60
shared_buffers = 32MB
work_mem = 4MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
"""


HBA = """\
# Generated by connectors/local_postgres.py. The superuser over the private socket only
# (its folder is readable by the cluster's owner alone); every TCP client from 127.0.0.1
# with a SCRAM password, and nothing from anywhere else.
local   all           postgres                     trust
host    all           all          127.0.0.1/32    scram-sha-256
host    replication   all          127.0.0.1/32    scram-sha-256
"""


def _initdb(settings: Settings, bindir: Path) -> None:
    paths = PostgresPaths.of(settings)
    if (paths.data / "PG_VERSION").is_file():
        return
    if paths.data.exists():
        shutil.rmtree(paths.data)  # a half-finished initdb
    paths.data.mkdir(parents=True, mode=0o700)
    _chown_to_owner(paths.data)
    began = time.monotonic()
    _run([str(bindir / "initdb"), "-D", str(paths.data), "-U", SUPERUSER, "-E", "UTF8",
          "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
          "--no-instructions"], as_owner=True)
    conf = paths.data / "postgresql.conf"
    with conf.open("a") as handle:
        handle.write("\ninclude_if_exists = 'local.conf'  # connectors/local_postgres.py\n")
    (paths.data / "pg_hba.conf").write_text(HBA)
    _say(f"initialised {paths.data} in {time.monotonic() - began:.1f}s")


def _write_config(settings: Settings) -> PostgresPaths:
    paths = PostgresPaths.of(settings)
    paths.socket_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.socket_dir, 0o700)
    _chown_to_owner(paths.socket_dir)
    paths.local_conf.write_text(local_conf(settings))
    (paths.data / "pg_hba.conf").write_text(HBA)
    for path in (paths.local_conf, paths.data / "pg_hba.conf"):
        _chown_to_owner(path)
    if not paths.log.exists():
        paths.log.touch()
    _chown_to_owner(paths.log)
    return paths


# --- SQL -------------------------------------------------------------------------------


def psql(settings: Settings, database: str, sql: str, *, check: bool = True) -> str:
    """Run SQL as the superuser over the private socket; returns unaligned, tuples-only output
    (``|`` between columns). Raises LocalPostgresError on the first error when ``check``."""
    bindir = ensure_installed()
    paths = PostgresPaths.of(settings)
    done = _run([str(bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                 "-h", str(paths.socket_dir), "-p", str(port_of(settings)), "-U", SUPERUSER,
                 "-d", database], input=sql, check=False)
    if check and done.returncode != 0:
        raise LocalPostgresError(f"psql -d {database} failed:\n{done.stderr.strip()}")
    return done.stdout


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a plain lower-case SQL identifier: {name!r}")
    return name


OMS_SCHEMA = f"""\
-- The OMS's transactional outbox, in the shape Debezium's outbox event router reads: the OMS
-- writes its order and this row in one transaction; the connector turns each inserted row
-- into one Kafka record (key aggregateid, value payload, the type as a header).
CREATE TABLE IF NOT EXISTS public.outbox (
    id            uuid         PRIMARY KEY,
    aggregatetype varchar(255) NOT NULL,
    aggregateid   varchar(255) NOT NULL,
    type          varchar(255) NOT NULL,
    payload       jsonb,
    created_at    timestamptz  NOT NULL DEFAULT now()
);
COMMENT ON TABLE public.outbox IS
    'Transactional outbox read by Debezium (connectors/oms-outbox-source.json)';
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = '{OUTBOX_PUBLICATION}') THEN
        CREATE PUBLICATION {OUTBOX_PUBLICATION} FOR TABLE public.outbox WITH (publish = 'insert');
    END IF;
END $$;
"""

ERP_SCHEMA = """\
-- What the ERP receives from the inventory center (connectors/erp-*-sink.json). The ledger is
-- append-only: one row per entry, never changed (a redelivered entry rewrites itself, same
-- values, by entryId); positions hold the latest state of each (sku, warehouse).
CREATE TABLE IF NOT EXISTS public.inventory_ledger (
    entry_id        varchar(512) PRIMARY KEY,
    sku             varchar(64)  NOT NULL,
    warehouse_code  varchar(32)  NOT NULL,
    bucket          varchar(16)  NOT NULL,
    movement_type   varchar(32)  NOT NULL,
    quantity        integer      NOT NULL,
    document_type   text         NOT NULL,
    document_no     text         NOT NULL,
    cause_event_id  text         NOT NULL,
    occurred_at     timestamptz  NOT NULL
);
CREATE INDEX IF NOT EXISTS inventory_ledger_position ON public.inventory_ledger (sku, warehouse_code);
CREATE TABLE IF NOT EXISTS public.inventory_positions (
    sku               varchar(64)  NOT NULL,
    warehouse_code    varchar(32)  NOT NULL,
    available_qty     integer      NOT NULL,
    reserved_qty      integer      NOT NULL,
    in_transit_qty    integer      NOT NULL,
    total_qty         integer      NOT NULL,
    on_hand_qty       integer      NOT NULL,
    presold_qty       integer      NOT NULL,
    outbound_qty      integer      NOT NULL,
    damaged_qty       integer      NOT NULL,
    version           bigint       NOT NULL,
    event_id          varchar(512) NOT NULL,
    cause_event_type  text         NOT NULL,
    cause_event_id    text         NOT NULL,
    occurred_at       timestamptz  NOT NULL,
    updated_at        timestamptz,
    PRIMARY KEY (sku, warehouse_code)
);
-- updatedAt came after the table (issue 14): a database made before it gains the column.
ALTER TABLE public.inventory_positions ADD COLUMN IF NOT EXISTS updated_at timestamptz;
"""


def _ensure_roles(settings: Settings) -> None:
    creds = credentials(settings)
    statements = []
    for role, attributes in ((OMS_ROLE, "LOGIN REPLICATION"), (ERP_ROLE, "LOGIN")):
        password = _literal(creds[f"{role}.password"])
        statements.append(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
            f"CREATE ROLE {role} {attributes}; END IF; END $$;\n"
            f"ALTER ROLE {role} {attributes} PASSWORD {password};\n"
        )
    psql(settings, "postgres", "SET password_encryption = 'scram-sha-256';\n" + "".join(statements))


def _ensure_database(settings: Settings, name: str, owner: str, schema: str) -> None:
    name = _ident(name)
    exists = psql(settings, "postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    if not exists.strip():
        psql(settings, "postgres", f"CREATE DATABASE {name} OWNER {owner}")
    # The owner runs the DDL, so it owns the tables (the connector roles need nothing more).
    psql(settings, name, f"SET ROLE {owner};\n{schema}")


def ensure_databases(settings: Settings, oms: str = OMS_DATABASE, erp: str = ERP_DATABASE) -> None:
    """Create the roles, the OMS and ERP databases and their tables when missing (idempotent)."""
    _ensure_roles(settings)
    _ensure_database(settings, oms, OMS_ROLE, OMS_SCHEMA)
    _ensure_database(settings, erp, ERP_ROLE, ERP_SCHEMA)


def drop_database(settings: Settings, name: str) -> None:
    """Drop a database (tests' own), with the replication slots that still hold it."""
    name = _ident(name)
    if name in (OMS_DATABASE, ERP_DATABASE, "postgres"):
        raise ValueError(f"refusing to drop {name}")
    psql(settings, "postgres",
         f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
         f"WHERE database = '{name}' AND NOT active;\n"
         f"DROP DATABASE IF EXISTS {name} WITH (FORCE);")


# --- process handling ------------------------------------------------------------------


def _answers(settings: Settings) -> bool:
    """True if a server accepts connections on 127.0.0.1:<port> (ours or not)."""
    bindir = _bin_dir()
    if bindir is None:
        return False
    done = subprocess.run([str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                           str(port_of(settings)), "-t", "2"], capture_output=True)
    return done.returncode == 0


def _our_pid(paths: PostgresPaths) -> int | None:
    """The postmaster's pid if our data folder's server is alive."""
    try:
        pid = int(paths.pid_file.read_text().splitlines()[0])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    return pid if any(str(paths.data).encode() == arg for arg in argv) else None


def is_running(settings: Settings | None = None) -> bool:
    """True if our cluster's server is alive and accepts connections."""
    settings = settings or get_settings()
    return _our_pid(PostgresPaths.of(settings)) is not None and _answers(settings)


def start(settings: Settings | None = None) -> bool:
    """Start the local cluster unless it runs already; create the roles, databases and
    tables when missing. True if THIS call started the server."""
    settings = settings or get_settings()
    paths = PostgresPaths.of(settings)
    port = port_of(settings)
    with local_process.locked(paths.lock_file):
        bindir = ensure_installed()
        if _our_pid(paths) is not None:
            started = False
            _say(f"already running on 127.0.0.1:{port} (pid {_our_pid(paths)})")
        elif _answers(settings):
            raise LocalPostgresError(
                f"another PostgreSQL server answers on 127.0.0.1:{port}; stop it or set "
                "another port (proposed setting postgres_port)"
            )
        else:
            began = time.monotonic()
            _initdb(settings, bindir)
            _write_config(settings)
            done = _run([str(bindir / "pg_ctl"), "start", "-D", str(paths.data), "-l",
                         str(paths.log), "-w", "-t", str(int(_start_timeout(settings))),
                         "-s"], as_owner=True, check=False, timeout=_start_timeout(settings) + 10)
            if done.returncode != 0:
                raise LocalPostgresError(
                    f"pg_ctl start failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
                    f"\n--- {paths.log} ---\n{local_process.tail(paths.log, 30, raw=True)}"
                )
            started = True
            _say(f"{server_version()} started on 127.0.0.1:{port} in "
                 f"{time.monotonic() - began:.1f}s (log {paths.log})")
        ensure_databases(settings)
    return started


def stop(settings: Settings | None = None) -> bool:
    """Stop our cluster's server (fast shutdown). True if one was stopped."""
    settings = settings or get_settings()
    paths = PostgresPaths.of(settings)
    with local_process.locked(paths.lock_file):
        pid = _our_pid(paths)
        if pid is None:
            _say("not running")
            return False
        bindir = ensure_installed()
        began = time.monotonic()
        _run([str(bindir / "pg_ctl"), "stop", "-D", str(paths.data), "-m", "fast", "-w",
              "-t", "60", "-s"], as_owner=True)
    _say(f"stopped pid {pid} in {time.monotonic() - began:.1f}s")
    return True


def status(settings: Settings | None = None) -> bool:
    settings = settings or get_settings()
    paths = PostgresPaths.of(settings)
    running = is_running(settings)
    pid = _our_pid(paths)
    print(f"local PostgreSQL: {'running' if running else 'not running'}")
    print(f"  pid:       {pid if pid is not None else '-'}")
    print(f"  address:   127.0.0.1:{port_of(settings)} (databases {OMS_DATABASE}, {ERP_DATABASE})")
    print(f"  version:   {server_version() if _bin_dir() else 'not installed'}")
    print(f"  data:      {paths.data}")
    print(f"  log:       {paths.log}")
    return running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.local_postgres",
        description="The local PostgreSQL playing the OMS and ERP databases.",
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
    except LocalPostgresError as exc:
        print(f"local-postgres: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
