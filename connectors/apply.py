"""Apply connector configurations to a Kafka Connect cluster and report their state.

    python -m connectors.apply [--connect-url URL] [--timeout S] [--var NAME=VALUE] [FILE.json ...]
    python -m connectors.apply --delete NAME ...

Each file (``connectors/*.json`` by default) is ``{"name", "config"}``, sent as it is with
``PUT /connectors/<name>/config`` (applying twice changes nothing); then it waits until the
connector and its tasks are RUNNING or one FAILED, and prints each state. Exit 0 when every
connector runs; 1 when one FAILED, did not run in time, or was refused. Deployment values are
``${directory:...}`` (secrets mounted as files; ``--secrets-dir`` names the worker's folder) and
``${env:...}`` references (``--var`` overrides one) resolved by the worker: docs/connectors.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.logs import configure_logging
from config.settings import REPO_ROOT, Settings, get_settings

CONNECTORS_DIR = REPO_ROOT / "connectors"
# ${provider:[path:]key} - the syntax of Connect's ConfigTransformer, which resolves these.
PROVIDER_REFERENCE = re.compile(r"\$\{([^}]*?):(?:([^}]*?):)?([^}]*?)\}")
# Where connector files take secrets from: ${directory:SECRETS_DIRECTORY:<key>}, the file <key>
# of the folder secrets/ in the Connect worker's working directory (docs/connectors.md).
SECRETS_DIRECTORY = "/proc/self/cwd/secrets"
SECRETS_REFERENCE = re.compile(rf"\$\{{directory:{re.escape(SECRETS_DIRECTORY)}:")
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
TERMINAL = {"RUNNING", "FAILED"}


class ApplyError(RuntimeError):
    """A connector file is malformed, or the Connect cluster refused or could not be reached."""


# --- files -----------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    """A connector file, checked for the ``{name, config}`` shape with string values."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ApplyError(f"{path}: {exc}") from exc
    check_shape(doc, str(path))
    return doc  # type: ignore[no-any-return]  # check_shape checked it


def check_shape(doc: Any, where: str = "connector") -> None:
    if not isinstance(doc, dict) or set(doc) != {"name", "config"}:
        raise ApplyError(f"{where}: expected exactly the keys name and config")
    name, config = doc["name"], doc["config"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ApplyError(f"{where}: bad connector name {name!r}")
    if not isinstance(config, dict) or "connector.class" not in config:
        raise ApplyError(f"{where}: config must be an object with connector.class")
    bad = [k for k, v in config.items() if not isinstance(v, str)]
    if bad:
        raise ApplyError(f"{where}: Connect configs are strings; not strings: {', '.join(bad)}")
    if config.get("name", name) != name:
        raise ApplyError(f"{where}: config.name differs from name")


def rest_url(settings: Settings) -> str:
    """The local Kafka Connect worker's REST API (connectors/local_connect.py starts it)."""
    return f"http://127.0.0.1:{settings.connect_rest_port}"


def references(value: str) -> list[tuple[str, str, str]]:
    """The config provider references in a value, as ``(provider, path, key)``."""
    return [(m.group(1), m.group(2) or "", m.group(3)) for m in PROVIDER_REFERENCE.finditer(value)]


def render(doc: Mapping[str, Any], variables: Mapping[str, str], secrets_dir: str | None = None) -> dict[str, Any]:
    """The document with the ``${env:NAME}`` references named in ``variables`` replaced by
    their values: a per-deployment override (see the module docstring); with ``secrets_dir``,
    the secrets references read the same keys from that folder of the worker instead
    (``${directory:<secrets_dir>:<key>}``: where the platform mounts them). Every other
    reference and ``${...}`` stays for the worker; with neither the document is unchanged."""

    def fill(text: str) -> str:
        text = ENV_REFERENCE.sub(lambda m: variables.get(m.group(1), m.group(0)), text)
        if secrets_dir is not None:
            text = SECRETS_REFERENCE.sub(lambda m: "${directory:" + secrets_dir.rstrip("/") + ":", text)
        return text

    return {"name": doc["name"], "config": {k: fill(v) for k, v in doc["config"].items()}}


# --- the Connect REST API --------------------------------------------------------------


def _request(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw else None
        except ValueError:
            return exc.code, raw.decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        raise ApplyError(f"{method} {url}: {exc}") from exc


def _quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def put_config(connect_url: str, doc: Mapping[str, Any]) -> bool:
    """Create or update one connector. True if created, False if updated."""
    name = doc["name"]
    # Connect may answer 409 while its group rebalances (e.g. right after another PUT).
    for _ in range(30):
        code, body = _request(
            "PUT", f"{connect_url}/connectors/{_quoted(name)}/config", {**doc["config"], "name": name}
        )
        if code != 409:
            break
        time.sleep(1.0)
    if code not in (200, 201):
        message = body.get("message") if isinstance(body, dict) else body
        raise ApplyError(f"{name}: Connect refused the config (HTTP {code}): {message}")
    return code == 201


def connector_status(connect_url: str, name: str) -> dict[str, Any] | None:
    code, body = _request("GET", f"{connect_url}/connectors/{_quoted(name)}/status")
    return body if code == 200 and isinstance(body, dict) else None


def delete_connector(connect_url: str, name: str) -> bool:
    """Delete a connector (its offsets stay in Connect's offsets topic). True if it existed."""
    for _ in range(30):
        code, _body = _request("DELETE", f"{connect_url}/connectors/{_quoted(name)}")
        if code != 409:
            return code in (200, 204)
        time.sleep(1.0)
    return False


@dataclass
class ConnectorState:
    name: str
    state: str  # RUNNING, FAILED, PAUSED, UNASSIGNED, STOPPED, or MISSING/TIMEOUT/REFUSED
    tasks: list[tuple[int, str, str]] = field(default_factory=list)  # (id, state, worker)
    trace: str = ""

    @property
    def running(self) -> bool:
        return self.state == "RUNNING" and bool(self.tasks) and all(s == "RUNNING" for _, s, _ in self.tasks)

    @property
    def failed(self) -> bool:
        return self.state == "FAILED" or any(s == "FAILED" for _, s, _ in self.tasks)

    def lines(self) -> list[str]:
        out = [f"{self.name}: connector {self.state}"]
        out += [f"  task {tid}: {state} on {worker}" for tid, state, worker in self.tasks]
        if self.trace:
            cause = [line for line in self.trace.splitlines() if not line.startswith("\t")]
            out += [f"  | {line}" for line in cause[:8]]
        return out


def _state_of(name: str, status: Mapping[str, Any] | None) -> ConnectorState:
    if status is None:
        return ConnectorState(name, "MISSING")
    connector = status.get("connector") or {}
    tasks = [
        (int(t.get("id", -1)), str(t.get("state")), str(t.get("worker_id", "?"))) for t in status.get("tasks") or []
    ]
    traces = [connector.get("trace") or ""] + [t.get("trace") or "" for t in status.get("tasks") or []]
    return ConnectorState(
        name, str(connector.get("state", "UNKNOWN")), sorted(tasks), next((t for t in traces if t), "")
    )


def wait_for(connect_url: str, name: str, timeout_s: float = 60.0) -> ConnectorState:
    """Poll a connector's status until it and its tasks run, one fails, or time runs out."""
    deadline = time.monotonic() + timeout_s
    state = _state_of(name, connector_status(connect_url, name))
    while time.monotonic() < deadline:
        if state.running or state.failed:
            return state
        time.sleep(0.5)
        state = _state_of(name, connector_status(connect_url, name))
    if not (state.running or state.failed):
        state.trace = state.trace or f"not RUNNING after {timeout_s:.0f}s (state {state.state})"
    return state


def apply(
    connect_url: str, docs: Iterable[Mapping[str, Any]], timeout_s: float = 60.0, out: Any = None
) -> list[ConnectorState]:
    """PUT each config, then wait for each; print the states. Returns them in order."""
    out = out or sys.stdout
    pending = []
    states: list[ConnectorState] = []
    for doc in docs:
        check_shape(doc)
        try:
            created = put_config(connect_url, doc)
        except ApplyError as exc:
            states.append(ConnectorState(doc["name"], "REFUSED", trace=str(exc)))
            continue
        print(f"{doc['name']}: {'created' if created else 'updated'}", file=out, flush=True)
        pending.append(doc["name"])
    for name in pending:
        states.append(wait_for(connect_url, name, timeout_s))
    for state in states:
        for line in state.lines():
            print(line, file=out, flush=True)
    return states


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.apply", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="connector JSON files (default: connectors/*.json)")
    parser.add_argument("--connect-url", help="Connect REST URL (default: the local worker)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each connector to run (default 60)"
    )
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="replace the ${env:NAME} references by VALUE before sending, e.g. "
        "PIPELINE_TOPIC_PREFIX=t1. for a second deployment on the same worker "
        "(default: the files go as they are)",
    )
    parser.add_argument(
        "--secrets-dir",
        metavar="DIR",
        help=f"absolute folder on the Connect worker where the secrets are mounted, one file per key "
        f"(default: the files' {SECRETS_DIRECTORY}, the worker's working directory's secrets/)",
    )
    parser.add_argument("--delete", nargs="+", metavar="NAME", help="delete these connectors")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    url = (args.connect_url or rest_url(settings)).rstrip("/")
    try:
        if args.delete:
            for name in args.delete:
                print(f"{name}: {'deleted' if delete_connector(url, name) else 'not found'}")
            return 0
        files = args.files or sorted(CONNECTORS_DIR.glob("*.json"))
        variables: dict[str, str] = {}
        for item in args.var:
            key, sep, value = item.partition("=")
            if not sep:
                raise ApplyError(f"--var {item!r}: expected NAME=VALUE")
            variables[key] = value
        if args.secrets_dir is not None and not args.secrets_dir.startswith("/"):
            raise ApplyError(f"--secrets-dir {args.secrets_dir!r}: an absolute path (allowed.paths needs one)")
        docs = [render(load(path), variables, args.secrets_dir) for path in files]
        states = apply(url, docs, args.timeout)
    except ApplyError as exc:
        print(f"apply: error: {exc}", file=sys.stderr)
        return 1
    return 0 if all(s.running for s in states) else 1


if __name__ == "__main__":
    sys.exit(main())
