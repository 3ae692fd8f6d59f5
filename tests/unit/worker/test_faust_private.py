"""streams/faust_private.py owns every private faust-streaming access, and refuses a version
it was not written for."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from streams import faust_private
from streams.faust_private import (
    PARTITION_DB_GLOB,
    PERSISTED_OFFSET_KEY,
    PRIVATE_MODULES,
    PRIVATE_NAMES,
    SUPPORTED_VERSIONS,
    UnsupportedFaust,
)

ROOT = Path(__file__).resolve().parents[3]
OWNER = ROOT / "streams" / "faust_private.py"
SCANNED = ("streams", "connectors", "bench")
NOT_SCANNED = (
    ROOT / "bench" / "peer_quix",  # the Quix Streams peer: no Faust in it
    ROOT / "bench" / "txn_probe.py",  # a research probe: reads Faust's source to report where it decides
)


def _is_private_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in PRIVATE_MODULES)


def private_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) for every private Faust access in ``source``: an attribute in
    ``PRIVATE_NAMES`` (not on ``self``, nor an accessor of the module), the same name as a string (``getattr``), Faust's
    on-disk offset key or table layout, or an import of a private module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "faust_private")):
                found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, str) and (value in PRIVATE_NAMES or PARTITION_DB_GLOB.split("*-")[0] in value):
                found.append((node.lineno, repr(value)))
            elif value == PERSISTED_OFFSET_KEY:
                found.append((node.lineno, "Faust's offset key"))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if _is_private_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and _is_private_module(node.module):
            found.append((node.lineno, f"from {node.module} import"))
    return found


def _scanned_files() -> list[Path]:
    files = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py"))]
    return [p for p in files if p != OWNER and not any(p.is_relative_to(n) for n in NOT_SCANNED)]


def test_no_module_but_faust_private_touches_faust_internals() -> None:
    files = _scanned_files()
    assert len(files) > 40  # the scan sees the code base
    uses = [
        f"{p.relative_to(ROOT)}:{line}: {what}"
        for p in files
        for line, what in private_uses(p.read_text(encoding="utf-8"))
    ]
    assert not uses, "use streams/faust_private.py (add an accessor there):\n" + "\n".join(uses)


@pytest.mark.parametrize(
    "snippet",
    [
        "table.data._db_for_partition(0)",
        "app.consumer._committed_offset.get(tp)",
        "getattr(consumer, '_buffered_partitions', ())",
        "app.consumer_generation_id",
        "event.message.generation_id",
        "app.assignor.assigned_actives()",
        "table.data.set_persisted_offset(tp, 1)",
        "table.send_changelog = send",
        "app.tables.recovery.completed.is_set()",
        "db.get(b'__faust\\x00offset__')",
        "data_dir.glob('v*/tables/*-*.db')",
        "from faust.transport.consumer import Consumer",
        "import faust.stores.rocksdb",
        "from mode.utils.locks import Event",
    ],
)
def test_the_scan_finds_each_kind_of_private_use(snippet: str) -> None:
    assert private_uses(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "self._thread = None",  # our own classes' attributes
        "self._acked[tp] = 1",
        "from faust.types import TP",
        "from faust.web import View",
        "import faust",
        "app.consumer.highwater(tp)",
        "'recovery took %s'",
        "faust_private.assigned_actives(app)",
    ],
)
def test_the_scan_lets_public_names_and_our_own_attributes_pass(snippet: str) -> None:
    assert private_uses(snippet) == []


def test_every_name_the_scan_refuses_is_used_by_the_owner() -> None:
    """The list names what the module really touches, no more."""
    source = OWNER.read_text(encoding="utf-8")
    unused = {n for n in PRIVATE_NAMES if not re.search(rf"[.\"']{re.escape(n)}\b", source)}
    assert not unused


# --- the version guard ---------------------------------------------------------------------------


def _pins() -> set[str]:
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    locked = re.findall(r"^faust-streaming==(\S+)$", lock, flags=re.M)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pinned = [
        re.sub(r"^faust-streaming(\[[^]]*\])?==", "", d)
        for d in project["dependencies"]
        if d.startswith("faust-streaming")
    ]
    return {*locked, *pinned}


def test_the_supported_version_is_the_pinned_one() -> None:
    assert _pins() == set(SUPPORTED_VERSIONS)


def test_the_pinned_version_is_accepted() -> None:
    assert faust_private.installed_version() in SUPPORTED_VERSIONS
    faust_private.check_supported()
    for supported in SUPPORTED_VERSIONS:
        faust_private.check_supported(supported)


@pytest.mark.parametrize("installed", ["0.15.4", "0.16.0", "0.11.3", "0.15.3rc1"])
def test_another_version_is_refused_with_what_to_do(installed: str) -> None:
    with pytest.raises(UnsupportedFaust) as refused:
        faust_private.check_supported(installed)
    message = str(refused.value)
    assert f"faust-streaming {installed} is installed" in message
    assert all(v in message for v in SUPPORTED_VERSIONS)
    assert "requirements.lock" in message and "SUPPORTED_VERSIONS" in message


def test_install_refuses_before_patching(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faust_private, "installed_version", lambda: "0.16.0")
    calls: list[object] = []
    monkeypatch.setattr(faust_private, "_patch", lambda *args: calls.append(args))
    with pytest.raises(UnsupportedFaust, match="0.16.0"):
        faust_private.install()
    assert not calls


def test_the_private_code_is_as_expected() -> None:
    assert faust_private.private_code_problems() == []


def test_a_changed_or_missing_private_function_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = ("faust.transport.consumer", "Consumer", "_new_offset", ("self", "tp", "extra"))
    missing = ("faust.transport.consumer", "Consumer", "_gone", ("self",))
    gone_module = ("faust.transport.gone", None, "f", ())
    problems = faust_private.private_code_problems(
        code=[changed, missing, gone_module], attributes=[("faust.transport.consumer", "Consumer", ("_gone_too",))]
    )
    assert problems == [
        "faust.transport.consumer.Consumer._new_offset takes (self, tp), not (self, tp, extra)",
        "faust.transport.consumer.Consumer._gone is missing (AttributeError)",
        "faust.transport.gone.f is missing (ModuleNotFoundError)",
        "faust.transport.consumer.Consumer has no _gone_too",
    ]
    monkeypatch.setattr(faust_private, "PRIVATE_CODE", (changed,))
    with pytest.raises(UnsupportedFaust, match=r"_new_offset takes \(self, tp\), not \(self, tp, extra\)"):
        faust_private.check_supported()


def test_patched_functions_are_judged_by_the_upstream_original() -> None:
    faust_private.install()
    faust_private.install()  # idempotent
    from faust.transport.consumer import Consumer

    assert Consumer._new_offset is faust_private._new_offset_stopping_at_holes
    assert faust_private.upstream(Consumer, "_new_offset") is not Consumer._new_offset
    assert faust_private.private_code_problems() == []


def test_a_failed_seek_while_flow_is_stopped_does_not_crash_the_fetcher() -> None:
    """A rebalance can take a partition between Faust's view and aiokafka's: the seek raises
    IllegalStateError. Upstream logs it; the patched getmany must too (a CI run saw the
    Fetcher crash on it and the worker stop consuming)."""
    import asyncio

    from aiokafka.errors import IllegalStateError

    from streams.faust_private import _getmany_without_loss

    class Consumer:
        flow_active = False
        should_stop = False
        app = type("App", (), {"consumer_generation_id": 1})()

        async def _wait_next_records(self, timeout: float) -> tuple[dict[object, list[object]], set[object]]:
            return {}, set()

        async def perform_seek(self) -> None:
            raise IllegalStateError("No current assignment for partition TopicPartition(topic='x', partition=0)")

    async def drain() -> list[object]:
        return [item async for item in _getmany_without_loss(Consumer(), 0.1)]

    assert asyncio.run(drain()) == []
