"""The local PostgreSQL playing the OMS and ERP databases (tests, CI, the connector demo).

Debian's server (installed with apt-get when missing, as root) runs a private cluster under
``<local_dir>/postgres``, never the system's: ``data/`` (initdb once; ``local.conf`` written on
every start: the port, 127.0.0.1 only, ``wal_level=logical``), ``run/`` (the superuser's
socket), ``credentials.properties`` (0600: the ``oms`` and ``erp`` roles' passwords),
``postgres.log``. Databases ``oms`` (the outbox Debezium reads, and its publication) and
``erp`` (what the JDBC sinks write). ``python -m connectors.local_postgres start|stop|status``;
from Python ``start``/``stop``/``status``/``is_running``, ``psql(settings, database, sql)``,
``ensure_databases(settings, oms=..., erp=...)`` and ``drop_database(settings, name)``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from config.settings import Settings
from streams.local_process import (
    LocalService,
    LocalServiceError,
    ServicePaths,
    Under,
    read_pid,
    write_private,
)

SUPERUSER = "postgres"
OMS_DATABASE = "oms"
ERP_DATABASE = "erp"
OMS_ROLE = "oms"
ERP_ROLE = "erp"
# Debezium reads the outbox through this publication (pgoutput); created here, as a DBA
# would, so the connector's role needs no rights to create publications.
OUTBOX_PUBLICATION = "oms_outbox"

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class LocalPostgresError(LocalServiceError):
    """PostgreSQL could not be installed, initialised, started or stopped."""


class PostgresPaths(ServicePaths):
    folder = "postgres"
    data = Under("data")
    local_conf = Under("data", "local.conf")
    socket_dir = Under("run")
    credentials = Under("credentials.properties")
    log = out = Under("postgres.log")  # pg_ctl -l: the server's output is its log
    pid_file = Under("data", "postmaster.pid")  # the server's own


def port_of(settings: Settings) -> int:
    return int(settings.postgres_port)


def _bin_dir() -> Path | None:
    """Debian keeps each major version's server binaries in /usr/lib/postgresql/<v>/bin."""
    found = [
        (int(path.parent.name), path)
        for path in Path("/usr/lib/postgresql").glob("*/bin")
        if (path / "initdb").is_file() and path.parent.name.isdigit()
    ]
    return max(found)[1] if found else None


def ensure_installed() -> Path:
    """The server binaries' folder; installs Debian's ``postgresql`` when missing (root only)."""
    if (found := _bin_dir()) is not None:
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
    install = [
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "-o",
        "Dpkg::Options::=--force-confold",
        "postgresql",
    ]
    POSTGRES.say("installing Debian's postgresql (apt-get)")
    began = time.monotonic()
    if subprocess.run(install, env=env, capture_output=True, text=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise LocalPostgresError(f"apt-get install postgresql failed:\n{done.stdout}{done.stderr}")
    if (found := _bin_dir()) is None:
        raise LocalPostgresError("apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb")
    POSTGRES.say(f"installed in {time.monotonic() - began:.0f}s")
    return found


def server_version() -> str:
    out = subprocess.run([str(ensure_installed() / "postgres"), "--version"], capture_output=True, text=True)
    return (out.stdout.strip() or out.stderr.strip()).replace("postgres (PostgreSQL)", "PostgreSQL")


def _chown_to_owner(path: Path) -> None:
    """initdb and postgres refuse to run as root: as root the cluster is the ``postgres``
    user's (Debian's package creates it); as anyone else, ours."""
    if os.geteuid() == 0:
        shutil.chown(path, SUPERUSER, SUPERUSER)


def _run(
    cmd: list[str], *, as_owner: bool = False, input: str | None = None, check: bool = True, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    owner = {"user": SUPERUSER, "group": SUPERUSER} if as_owner and os.geteuid() == 0 else {}
    done = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, cwd="/", **owner)  # type: ignore[call-overload]  # user/group: str
    if check and done.returncode != 0:
        raise LocalPostgresError(f"{' '.join(cmd[:2])} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return done  # type: ignore[no-any-return]  # text=True: str output


def credentials(settings: Settings) -> dict[str, str]:
    """The roles' names and passwords (``oms.user``, ``oms.password``, ``erp.user``,
    ``erp.password``), generated on first use, then kept. Only the local stack reads them:
    Connect through its DirectoryConfigProvider (local_connect copies them), never a connector file."""
    path = PostgresPaths.of(settings).credentials
    if path.is_file():
        pairs = (line.strip().partition("=") for line in path.read_text().splitlines())
        values = {k.strip(): v.strip() for k, sep, v in pairs if sep and not k.startswith(("#", "!"))}
        if {"oms.password", "erp.password"} <= values.keys():
            return values
    values = {
        "oms.user": OMS_ROLE,
        "oms.password": secrets.token_urlsafe(24),
        "erp.user": ERP_ROLE,
        "erp.password": secrets.token_urlsafe(24),
    }
    write_private(
        path,
        "# Generated by connectors/local_postgres.py: passwords of the local OMS "
        "and ERP roles.\n" + "".join(f"{k}={v}\n" for k, v in values.items()),
    )
    return values


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
    shutil.rmtree(paths.data, ignore_errors=True)  # a half-finished initdb
    paths.data.mkdir(parents=True, mode=0o700)
    _chown_to_owner(paths.data)
    began = time.monotonic()
    _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(paths.data),
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-instructions",
        ],
        as_owner=True,
    )
    with (paths.data / "postgresql.conf").open("a") as handle:
        handle.write("\ninclude_if_exists = 'local.conf'  # connectors/local_postgres.py\n")
    POSTGRES.say(f"initialised {paths.data} in {time.monotonic() - began:.1f}s")


def psql(settings: Settings, database: str, sql: str, *, check: bool = True) -> str:
    """Run SQL as the superuser over the private socket; returns unaligned, tuples-only output
    (``|`` between columns). Raises LocalPostgresError on the first error when ``check``."""
    done = _run(
        [
            str(ensure_installed() / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(PostgresPaths.of(settings).socket_dir),
            "-p",
            str(port_of(settings)),
            "-U",
            SUPERUSER,
            "-d",
            database,
        ],
        input=sql,
        check=False,
    )
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


def _ensure_database(settings: Settings, name: str, owner: str, schema: str) -> None:
    name = _ident(name)
    exists = psql(settings, "postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    if not exists.strip():
        psql(settings, "postgres", f"CREATE DATABASE {name} OWNER {owner}")
    # The owner runs the DDL, so it owns the tables (the connector roles need nothing more).
    psql(settings, name, f"SET ROLE {owner};\n{schema}")


def ensure_databases(settings: Settings, oms: str = OMS_DATABASE, erp: str = ERP_DATABASE) -> None:
    """Create the roles, the OMS and ERP databases and their tables when missing (idempotent)."""
    creds = credentials(settings)
    roles = "".join(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {role} {attributes}; END IF; END $$;\n"
        f"ALTER ROLE {role} {attributes} PASSWORD {_literal(creds[f'{role}.password'])};\n"
        for role, attributes in ((OMS_ROLE, "LOGIN REPLICATION"), (ERP_ROLE, "LOGIN"))
    )
    psql(settings, "postgres", "SET password_encryption = 'scram-sha-256';\n" + roles)
    _ensure_database(settings, oms, OMS_ROLE, OMS_SCHEMA)
    _ensure_database(settings, erp, ERP_ROLE, ERP_SCHEMA)


def drop_database(settings: Settings, name: str) -> None:
    """Drop a database (tests' own), with the replication slots that still hold it."""
    name = _ident(name)
    if name in (OMS_DATABASE, ERP_DATABASE, "postgres"):
        raise ValueError(f"refusing to drop {name}")
    psql(
        settings,
        "postgres",
        f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
        f"WHERE database = '{name}' AND NOT active;\n"
        f"DROP DATABASE IF EXISTS {name} WITH (FORCE);",
    )


class LocalPostgres(LocalService):
    """Started and stopped by pg_ctl (a fast shutdown), not by signals of ours."""

    name, module, title = "postgres", "connectors.local_postgres", "PostgreSQL"
    noun = "PostgreSQL server"
    description = "The local PostgreSQL playing the OMS and ERP databases."
    Paths, error = PostgresPaths, LocalPostgresError
    port_setting, timeout_setting = "postgres_port", "postgres_start_timeout_s"

    def address(self, settings: Settings) -> str:
        return f"127.0.0.1:{port_of(settings)}"

    def label(self, settings: Settings) -> str:
        return server_version()

    def owns(self, settings: Settings, argv: list[str]) -> bool:
        return str(PostgresPaths.of(settings).data) in argv

    def ready(self, settings: Settings, timeout: float = 3.0) -> bool:
        """Our cluster's server runs and accepts connections (admin access is over our socket,
        so another server on the port will not do)."""
        bindir = _bin_dir()
        if bindir is None or self.managed_pid(settings) is None:
            return False
        return (
            subprocess.run(
                [
                    str(bindir / "pg_isready"),
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port_of(settings)),
                    "-t",
                    str(max(1, int(timeout))),
                ],
                capture_output=True,
            ).returncode
            == 0
        )

    def prepare(self, settings: Settings) -> tuple[list[str], Mapping[str, str] | None]:
        bindir, paths = ensure_installed(), PostgresPaths.of(settings)
        _initdb(settings, bindir)
        paths.socket_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(paths.socket_dir, 0o700)
        paths.local_conf.write_text(local_conf(settings))
        (paths.data / "pg_hba.conf").write_text(HBA)
        paths.log.touch()
        for path in (paths.socket_dir, paths.local_conf, paths.data / "pg_hba.conf", paths.log):
            _chown_to_owner(path)
        timeout = int(settings.postgres_start_timeout_s)
        return [
            str(bindir / "pg_ctl"),
            "start",
            "-D",
            str(paths.data),
            "-l",
            str(paths.log),
            "-w",
            "-t",
            str(timeout),
            "-s",
        ], None

    def launch(self, settings: Settings, argv: list[str], env: Mapping[str, str] | None) -> int:
        """pg_ctl start -w: returns once the server accepts connections."""
        done = _run(argv, as_owner=True, check=False, timeout=settings.postgres_start_timeout_s + 10)
        pid = read_pid(PostgresPaths.of(settings).pid_file)
        if done.returncode != 0 or pid is None:
            raise self.failure(settings, f"pg_ctl start failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
        return pid

    def halt(self, settings: Settings, pid: int) -> None:
        pg_ctl, data = str(ensure_installed() / "pg_ctl"), str(PostgresPaths.of(settings).data)
        _run([pg_ctl, "stop", "-D", data, "-m", "fast", "-w", "-t", "60", "-s"], as_owner=True)

    def after_ready(self, settings: Settings) -> str:
        ensure_databases(settings)
        return ""

    def details(self, settings: Settings, running: bool, pid: int | None) -> list[tuple[str, str]]:
        return [
            ("address", f"{self.address(settings)} (databases {OMS_DATABASE}, {ERP_DATABASE})"),
            ("version", server_version() if _bin_dir() else "not installed"),
            ("data", str(PostgresPaths.of(settings).data)),
        ]


POSTGRES = LocalPostgres()
start, stop, status, is_running, main = (
    POSTGRES.start,
    POSTGRES.stop,
    POSTGRES.status,
    POSTGRES.is_running,
    POSTGRES.main,
)

if __name__ == "__main__":
    sys.exit(main())
