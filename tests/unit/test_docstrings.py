"""Module docstrings state a contract, not a history: every first-party module's docstring
(``config``, ``schemas``, ``tables``, ``streams``, ``connectors``, ``bench``, the quix peer
included) is at most ``MAX_LINES`` lines. Debugging stories, measurements and the reasons behind
past choices belong in ``docs/decisions.md``; user-facing explanations in ``docs/`` or the
README. The modules are read with ``ast``, never imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "schemas", "tables", "streams", "connectors", "bench")
MAX_LINES = 12


def docstring_lines(path: Path) -> int:
    """How many lines ``path``'s module docstring spans (0 without one)."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False)
    return len(doc.strip().splitlines()) if doc else 0


def first_party_modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_modules_are_found() -> None:
    assert len(first_party_modules()) > 50


def test_module_docstrings_are_short() -> None:
    long = {
        str(path.relative_to(ROOT)): n for path in first_party_modules() if (n := docstring_lines(path)) > MAX_LINES
    }
    assert not long, f"module docstrings over {MAX_LINES} lines (move history to docs/decisions.md): {long}"
