"""The floors: every first-party module imports only modules on its own floor or below, and no
two modules import each other, however indirectly (``TYPE_CHECKING`` and function-level
imports count: they are arrows a reader follows too). The pure core and the contracts import
no stream engine, Kafka client or store, and the CLIs do not load Faust.

The floors, bottom up (``FLOORS``): settings; contracts; the pure core; Kafka plumbing; the
worker; its edges; tools and entry points; the local stack and the demos; benchmarks; the
``inventory-center`` command line.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "schemas", "tables", "streams", "connectors", "bench")

# floor -> module name patterns (a package name covers its modules; the most specific wins)
FLOORS: dict[int, tuple[str, ...]] = {
    0: ("config",),
    1: ("schemas",),
    2: ("tables",),
    3: (
        "streams",
        "streams.kafka_config",
        "streams.topics",
        "streams.wire",
        "streams.envelopes",
        "streams.record_sink",
        "streams.answers",
        "streams.metrics",
        "streams.dead_letters",
        "streams.faults",
        "streams.expiry_clock",
        "streams.keys",
        "streams.producer",
    ),
    4: (
        "streams.faust_private",
        "streams.tables",
        "streams.stores",
        "streams.checkpoint",
        "streams.agents",
        "streams.health",
        "streams.app",
        "streams.local_state",
    ),
    5: (
        "streams.views",
        "streams.webhook",
        "streams.outbox",
        "streams.live",
        "streams.openapi",
        "streams.web_access",
        "streams.reader",
    ),
    6: ("streams.worker", "connectors", "schemas.avro_gen"),
    7: (
        "streams.local_process",
        "streams.local_kafka",
        "streams.worker_process",
        "streams.demo",
        "streams.demo_support",
        "streams.demo_connectors",
        "connectors.local_postgres",
        "connectors.local_registry",
        "connectors.local_connect",
    ),
    8: ("bench",),
    9: ("streams.cli",),
}
NAMES = {
    0: "settings",
    1: "contracts",
    2: "pure core",
    3: "Kafka plumbing",
    4: "worker",
    5: "edges",
    6: "tools and entry points",
    7: "local stack and demos",
    8: "benchmarks",
    9: "the command line",
}
# Third-party packages the contracts and the core must never import. The contracts' codec may
# take a schema registry client (confluent_kafka.schema_registry, passed in) for the Confluent
# wire format; the core takes nothing with I/O.
ENGINES = ("faust", "mode", "aiokafka", "aiohttp", "rocksdict", "quixstreams")
CORE_ALSO = ("confluent_kafka",)


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if "peer_quix" in parts or "results" in parts:
                continue  # the peer runs in its own venv and imports only downward by its own test
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(source: str) -> set[str]:
    """Every absolute module name ``source`` imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def graph(sources: Mapping[str, str]) -> dict[str, set[str]]:
    """module -> the first-party modules it imports (a name resolves to its longest known prefix)."""

    def resolve(name: str) -> str | None:
        while name and name not in sources:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {}
    for module, source in sources.items():
        targets = {resolve(name) for name in imports(source)}
        edges[module] = {t for t in targets if t and t != module and not module.startswith(f"{t}.")}
    return edges


def floor_of(module: str) -> int:
    best, floor = "", -1
    for level, patterns in FLOORS.items():
        for pattern in patterns:
            if (module == pattern or module.startswith(f"{pattern}.")) and len(pattern) > len(best):
                best, floor = pattern, level
    if floor < 0:
        raise KeyError(f"{module} is on no floor: add it to FLOORS")
    return floor


def upward(edges: Mapping[str, Iterable[str]]) -> list[str]:
    return sorted(
        f"{a} ({NAMES[floor_of(a)]}) -> {b} ({NAMES[floor_of(b)]})"
        for a, targets in edges.items()
        for b in targets
        if floor_of(b) > floor_of(a)
    )


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    return graph({name: path.read_text(encoding="utf-8") for name, path in modules().items()})


def test_every_module_is_on_a_floor(edges: dict[str, set[str]]) -> None:
    for module in edges:
        floor_of(module)


def test_no_module_imports_a_floor_above_its_own(edges: dict[str, set[str]]) -> None:
    assert upward(edges) == []


def test_no_import_cycles(edges: dict[str, set[str]]) -> None:
    assert cycles(edges) == []


def test_the_contracts_and_the_core_import_no_engine_client_or_store() -> None:
    for name, path in modules().items():
        if floor_of(name) <= 2:
            forbidden = set(ENGINES) | (set(CORE_ALSO) if floor_of(name) == 2 else set())
            engines = {i.split(".")[0] for i in imports(path.read_text(encoding="utf-8"))} & forbidden
            assert not engines, f"{name} imports {engines}"


def test_the_command_line_tools_do_not_load_the_stream_engine() -> None:
    code = (
        "import sys, connectors.produce, connectors.tail, connectors.simulate, streams.reader; "
        "assert 'faust' not in sys.modules, sorted(m for m in sys.modules if m.startswith('faust'))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# --- the checker itself sees what it must ---------------------------------------------------------


def test_a_cycle_is_found_however_long() -> None:
    sources = {
        "streams.a": "import streams.b",
        "streams.b": "from streams.c import x",
        "streams.c": "if TYPE_CHECKING:\n    from streams.a import A\n",
        "streams.d": "import streams.a",
    }
    assert cycles(graph(sources)) == [["streams.a", "streams.b", "streams.c"]]


def test_an_upward_arrow_is_named() -> None:
    sources = {
        "tables.core": "def f():\n    from streams.app import create_app\n",
        "streams.app": "import tables.core",
        "schemas.x": "from config.settings import Settings",
        "config.settings": "",
    }
    assert upward(graph(sources)) == ["tables.core (pure core) -> streams.app (worker)"]
