"""Keep ``schemas/avro/*.avsc`` in step with the models: ``python -m schemas.avro_gen``.

A tool above the core (it reads the contracts and the core's state records, ``tables.state``);
the derivation itself is ``schemas/avro_model.py``. The ``.avsc`` files are the published
contract, one top-level record per file; ``--check`` fails (exit 1) when a committed file
differs from what the models say, so a model change cannot ship without its schema
(``tests/unit/core/test_avro_schemas.py`` runs the same comparison and the compatibility check
against the previous committed version).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from schemas.avro_model import AVRO_DIR, NAMESPACE, avro_schema, contract_classes, render
from tables.state import STATE_RECORDS

__all__ = ["AVRO_DIR", "NAMESPACE", "all_classes", "differences", "expected_files", "main"]


def all_classes() -> dict[str, type]:
    """Every top-level record with its own .avsc: the messages and the state records."""
    return contract_classes(STATE_RECORDS)


def expected_files(classes: Mapping[str, type] | None = None) -> dict[str, str]:
    """File name -> content that the models say ``schemas/avro/`` should hold."""
    classes = all_classes() if classes is None else classes
    return {f"{name}.avsc": render(avro_schema(cls)) for name, cls in sorted(classes.items())}


def differences(directory: Path, expected: Mapping[str, str]) -> list[str]:
    """Human-readable list of what differs between ``directory`` and ``expected``."""
    problems = []
    for name, text in expected.items():
        path = directory / name
        if not path.exists():
            problems.append(f"missing: {path}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"differs: {path}")
    for path in sorted(directory.glob("*.avsc")):
        if path.name not in expected:
            problems.append(f"stale (no model): {path}")
    return problems


def main(argv: list[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.avro_gen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 listing files that differ")
    parser.add_argument("--dir", type=Path, default=AVRO_DIR, help="default: schemas/avro")
    args = parser.parse_args(argv)
    expected = expected_files()
    if args.check:
        problems = differences(args.dir, expected)
        for problem in problems:
            out(problem)
        if problems:
            out("run: python -m schemas.avro_gen")
        return 1 if problems else 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, text in expected.items():
        path = args.dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            out(f"wrote {path}")
    for problem in differences(args.dir, expected):
        out(problem)  # stale files are reported, not deleted: removing a schema is a decision
    return 0


if __name__ == "__main__":
    sys.exit(main())
