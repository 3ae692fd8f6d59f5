"""The committed Avro contract (``schemas/avro/*.avsc``): it parses, it is what the models
generate, and every change to it stays backward compatible with its previous committed
version (a reader on the new schema can read what the old one wrote)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastavro import parse_schema

from schemas.avro_gen import AVRO_DIR, NAMESPACE, differences, expected_files, main

REPO = Path(__file__).resolve().parents[3]
AVSC_FILES = sorted(AVRO_DIR.glob("*.avsc"))


# --- backward compatibility: the avro package's checker, plus logical types ----------------


def compatibility_problems(new_text: str, old_text: str) -> list[str]:
    """Why a reader on ``new_text`` could not read data written with ``old_text`` ([] if it
    can). The avro checker compares physical types only, so a decimal whose scale changes
    (99.00 read back as 9.900) or a timestamp turning millis would pass it; those are
    checked on the side."""
    reader = avro.schema.parse(new_text)
    writer = avro.schema.parse(old_text)
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    problems = []
    if result.compatibility is not SchemaCompatibilityType.compatible:
        kinds = ", ".join(sorted(kind.value for kind in result.incompatibilities))
        problems.append(f"{kinds}: {sorted(result.messages)} at {sorted(result.locations)}")
    problems += _logical_type_changes(json.loads(new_text), json.loads(old_text))
    return problems


def _named(schema: Any, names: dict[str, Any], namespace: str = "") -> Any:
    """Resolve a reference to a named type; record definitions as they are met."""
    if isinstance(schema, str):
        return names.get(schema, names.get(f"{namespace}.{schema}", schema))
    if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed"):
        ns = schema.get("namespace", namespace)
        full = schema["name"] if "." in schema["name"] else f"{ns}.{schema['name']}"
        names[full] = schema
    return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, dict):
        return (
            str(schema.get("name") or schema["type"])
            if schema.get("type") in ("record", "enum", "fixed")
            else str(schema["type"])
        )
    return str(schema).rsplit(".", 1)[-1]


def _logical_type_changes(
    reader: Any,
    writer: Any,
    path: str = "",
    names: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> list[str]:
    rnames, wnames = names if names is not None else ({}, {})
    reader, writer = _named(reader, rnames), _named(writer, wnames)
    if isinstance(reader, list) or isinstance(writer, list):
        rbranches = reader if isinstance(reader, list) else [reader]
        wbranches = writer if isinstance(writer, list) else [writer]
        found = []
        for wbranch in wbranches:
            for rbranch in rbranches:
                if _kind(_named(rbranch, rnames)) == _kind(_named(wbranch, wnames)):
                    found += _logical_type_changes(rbranch, wbranch, path, (rnames, wnames))
        return found
    if not (isinstance(reader, dict) and isinstance(writer, dict)):
        shape_r = (reader.get("logicalType"),) if isinstance(reader, dict) else (None,)
        shape_w = (writer.get("logicalType"),) if isinstance(writer, dict) else (None,)
        return [] if shape_r == shape_w else [f"{path or '/'}: logical type {shape_w} -> {shape_r}"]
    if reader.get("type") == "record" and writer.get("type") == "record":
        wfields = {f["name"]: f for f in writer["fields"]}
        found = []
        for rfield in reader["fields"]:
            candidates = [rfield["name"], *rfield.get("aliases", [])]
            wfield = next((wfields[n] for n in candidates if n in wfields), None)
            if wfield is not None:
                found += _logical_type_changes(
                    rfield["type"], wfield["type"], f"{path}/{rfield['name']}", (rnames, wnames)
                )
        return found
    if reader.get("type") == "array" and writer.get("type") == "array":
        return _logical_type_changes(reader["items"], writer["items"], f"{path}[]", (rnames, wnames))
    keys = ("logicalType", "precision", "scale")
    shape_r = tuple(reader.get(k) for k in keys)
    shape_w = tuple(writer.get(k) for k in keys)
    if shape_r != shape_w:
        return [f"{path or '/'}: (logicalType, precision, scale) {shape_w} -> {shape_r}"]
    return []


# --- git history -------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        check=True,
        text=True,
        encoding="utf-8",
    ).stdout


def history_unavailable(repo: Path = REPO) -> str | None:
    """Why previous versions cannot be read here, or None when they can."""
    if shutil.which("git") is None:
        return "git is not installed: previous schema versions cannot be read"
    try:
        if _git(repo, "rev-parse", "--is-inside-work-tree").strip() != "true":
            return "not a git work tree: previous schema versions cannot be read"
        if _git(repo, "rev-parse", "--is-shallow-repository").strip() == "true":
            return "shallow clone: the previous schema versions may be missing (fetch --unshallow)"
    except subprocess.CalledProcessError as exc:
        return f"not a usable git checkout ({exc.stderr.strip() or exc})"
    return None


def previous_version(path: Path, repo: Path = REPO) -> tuple[str, str] | None:
    """(commit, text) of the newest committed version of ``path`` that differs from the
    working copy; None when there is none (a new file, or one never changed)."""
    relative = path.resolve().relative_to(repo.resolve()).as_posix()
    current = path.read_text(encoding="utf-8")
    for commit in _git(repo, "log", "--format=%H", "--", relative).split():
        try:
            text = _git(repo, "show", f"{commit}:{relative}")
        except subprocess.CalledProcessError:
            continue  # that commit deleted the file
        if text != current:
            return commit, text
    return None


# --- the committed files -------------------------------------------------------------------


def test_there_is_a_contract() -> None:
    names = {path.stem for path in AVSC_FILES}
    assert {"OrderCreated", "InventoryChanged", "ReserveStock", "DeadLetter"} <= names


@pytest.mark.parametrize("path", AVSC_FILES, ids=lambda p: p.stem)
def test_committed_schema_parses_and_documents_every_field(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    parse_schema(schema)
    avro.schema.parse(json.dumps(schema))
    assert schema["name"] == path.stem
    assert schema["namespace"] == NAMESPACE

    def walk(node: Any, where: str) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch, where)
        elif isinstance(node, dict):
            if node.get("type") == "record":
                for field in node["fields"]:
                    assert field.get("doc"), f"{where}.{field['name']} has no doc"
                    walk(field["type"], f"{where}.{field['name']}")
            elif node.get("type") == "array":
                walk(node["items"], f"{where}[]")

    walk(schema, path.stem)


def test_committed_files_are_what_the_models_generate() -> None:
    problems = differences(AVRO_DIR, expected_files())
    assert not problems, "\n".join([*problems, "regenerate: python -m schemas.avro_gen"])


@pytest.mark.parametrize("path", AVSC_FILES, ids=lambda p: p.stem)
def test_backward_compatible_with_previous_committed_version(path: Path) -> None:
    reason = history_unavailable()
    if reason:
        pytest.skip(reason)
    previous = previous_version(path)
    if previous is None:
        return  # no earlier version: nothing to be compatible with
    commit, old_text = previous
    problems = compatibility_problems(path.read_text(encoding="utf-8"), old_text)
    assert not problems, (
        f"{path.name} cannot read data written with its version at {commit[:12]}:\n"
        + "\n".join(problems)
        + "\nGive new fields a default, keep enum symbols, keep types - or publish a new record."
    )


# --- the checks can fail -------------------------------------------------------------------


def _base() -> dict[str, Any]:
    return json.loads((AVRO_DIR / "OrderCreated.avsc").read_text(encoding="utf-8"))


def _with_field(schema: dict[str, Any], field: dict[str, Any]) -> str:
    return json.dumps({**schema, "fields": [*schema["fields"], field]})


def test_checker_rejects_a_new_required_field() -> None:
    old = _base()
    new = _with_field(old, {"name": "priority", "type": "long", "doc": "Priority."})
    problems = compatibility_problems(new, json.dumps(old))
    assert problems and "reader_field_missing_default_value" in problems[0]


def test_checker_accepts_a_new_optional_field_with_default() -> None:
    old = _base()
    new = _with_field(old, {"name": "channel", "type": ["null", "string"], "default": None, "doc": "Channel."})
    assert compatibility_problems(new, json.dumps(old)) == []
    new = _with_field(old, {"name": "priority", "type": "long", "default": 0, "doc": "P."})
    assert compatibility_problems(new, json.dumps(old)) == []


def test_checker_accepts_a_removed_field() -> None:
    old = _base()
    new = {**old, "fields": [f for f in old["fields"] if f["name"] != "warehouseCode"]}
    assert compatibility_problems(json.dumps(new), json.dumps(old)) == []


def test_checker_rejects_a_removed_enum_symbol_and_a_changed_type() -> None:
    old = _base()
    new = json.loads(json.dumps(old))
    order_type = next(f for f in new["fields"] if f["name"] == "orderType")
    order_type["type"]["symbols"].remove("GIFT")
    assert "missing_enum_symbols" in compatibility_problems(json.dumps(new), json.dumps(old))[0]

    new = json.loads(json.dumps(old))
    next(f for f in new["fields"] if f["name"] == "orderNo")["type"] = "long"
    assert "type_mismatch" in compatibility_problems(json.dumps(new), json.dumps(old))[0]


def test_checker_rejects_a_changed_decimal_scale_and_timestamp_unit() -> None:
    old = _base()
    new = json.loads(json.dumps(old))
    next(f for f in new["fields"] if f["name"] == "totalAmount")["type"]["scale"] = 3
    problems = compatibility_problems(json.dumps(new), json.dumps(old))
    assert problems == ["/totalAmount: (logicalType, precision, scale) ('decimal', 14, 2) -> ('decimal', 14, 3)"]

    new = json.loads(json.dumps(old))
    items = next(f for f in new["fields"] if f["name"] == "items")
    price = next(f for f in items["type"]["items"]["fields"] if f["name"] == "price")
    price["type"]["precision"] = 10
    assert compatibility_problems(json.dumps(new), json.dumps(old)) == [
        "/items[]/price: (logicalType, precision, scale) ('decimal', 14, 2) -> ('decimal', 10, 2)"
    ]

    new = json.loads(json.dumps(old))
    expires = next(f for f in new["fields"] if f["name"] == "reservationExpiresAt")
    expires["type"][1]["logicalType"] = "timestamp-millis"
    assert compatibility_problems(json.dumps(new), json.dumps(old))


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_history_finds_the_previous_version_and_a_break(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args)

    git("init", "-q")
    path = tmp_path / "OrderCreated.avsc"
    old = _base()
    path.write_text(json.dumps(old), encoding="utf-8")
    git("add", path.name)
    git("commit", "-q", "-m", "v1")
    assert previous_version(path, tmp_path) is None  # unchanged: nothing earlier differs

    breaking = _with_field(old, {"name": "priority", "type": "long", "doc": "Priority."})
    path.write_text(breaking, encoding="utf-8")  # uncommitted change: compared with HEAD
    commit, text = previous_version(path, tmp_path) or ("", "")
    assert text == json.dumps(old)
    assert compatibility_problems(breaking, text)

    git("commit", "-q", "-am", "v2")  # committed: compared with the version before it
    commit2, text2 = previous_version(path, tmp_path) or ("", "")
    assert (commit2, text2) == (commit, text)
    assert history_unavailable(tmp_path) is None


def test_generator_check_mode_lists_what_differs(tmp_path: Path) -> None:
    lines: list[str] = []
    assert main(["--dir", str(tmp_path)], out=lines.append) == 0
    assert main(["--check", "--dir", str(tmp_path)], out=lines.append) == 0

    (tmp_path / "OrderCreated.avsc").write_text("{}", encoding="utf-8")
    (tmp_path / "OrderPaid.avsc").unlink()
    (tmp_path / "Retired.avsc").write_text("{}", encoding="utf-8")
    lines.clear()
    assert main(["--check", "--dir", str(tmp_path)], out=lines.append) == 1
    assert any(line.startswith("differs:") and "OrderCreated.avsc" in line for line in lines)
    assert any(line.startswith("missing:") and "OrderPaid.avsc" in line for line in lines)
    assert any(line.startswith("stale") and "Retired.avsc" in line for line in lines)
