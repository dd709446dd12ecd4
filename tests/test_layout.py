"""The layout's rules, read from the code's own imports (docs/architecture.md says why each holds).

Every ``import`` counts, wherever it is written: at module level, inside a
function (where a heavy library is loaded only when needed) or under
``TYPE_CHECKING``. A function-level import that closes a circle is still a
circle: it only moves the failure from start-up to the first call.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("formats", "receiver")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imports_of(path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The modules of ours that ``path`` imports."""
    return imports_in(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py", modules)


def imports_in(source: str, this: str, is_package: bool, modules: Mapping[str, Path]) -> set[str]:
    """The modules of ours that module ``this`` imports (``from a import b`` is ``a.b`` where that is a module)."""
    found: set[str] = set()
    package = this if is_package else this.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in found if name in modules and name != this}


def import_graph() -> dict[str, set[str]]:
    modules = our_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def circles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of ``graph`` with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = itertools.count()

    def visit(node: str) -> None:
        index[node] = low[node] = next(counter)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            part = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                part.append(member)
                if member == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def edges(graph: Mapping[str, set[str]]) -> Iterator[tuple[str, str]]:
    for source, targets in sorted(graph.items()):
        for target in sorted(targets):
            yield source, target


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_no_module_imports_itself_round_a_circle(graph: dict[str, set[str]]) -> None:
    """If modules import each other round a circle (at any level), then this names the circle."""
    assert circles(graph) == []


def test_nothing_imports_the_command_line(graph: dict[str, set[str]]) -> None:
    """If a module outside receiver/cli imports receiver.cli, then this names it: the processes' set-up
    lives in receiver/runtime, and the command line is the top of the house."""
    wrong = [(a, b) for a, b in edges(graph) if inside(b, "receiver.cli") and not inside(a, "receiver.cli")]
    assert wrong == []


def test_ingest_and_delivery_meet_only_at_the_spool(graph: dict[str, set[str]]) -> None:
    """If ingest imports delivery, or delivery ingest, then this names the import."""
    wrong = [
        (a, b) for a, b in edges(graph)
        if (inside(a, "receiver.ingest") and inside(b, "receiver.deliver"))
        or (inside(a, "receiver.deliver") and inside(b, "receiver.ingest"))
    ]
    assert wrong == []


def test_formats_import_nothing_of_the_appliance(graph: dict[str, set[str]]) -> None:
    """If formats/ imports receiver/, then this names the import: formats/ is pure and stands alone."""
    assert [(a, b) for a, b in edges(graph) if inside(a, "formats") and inside(b, "receiver")] == []


@pytest.mark.parametrize(
    ("leaf", "allowed"),
    [
        ("receiver.filters", ("formats", "receiver.filters")),
        ("receiver.config", ("formats", "receiver.filters", "receiver.config")),
        ("receiver.runtime", ("formats", "receiver.config", "receiver.runtime")),
        ("receiver.telemetry", ("receiver.telemetry",)),
        ("receiver.spool", ("formats", "receiver.config", "receiver.spool", "receiver.telemetry")),
        ("receiver.deliver.outcomes", ("receiver.deliver.batches",)),
    ],
)
def test_lower_rooms_import_only_lower_rooms(graph: dict[str, set[str]], leaf: str, allowed: tuple[str, ...]) -> None:
    """If a room near the bottom of the house imports a room above it, then this names the import."""
    wrong = [
        (a, b) for a, b in edges(graph)
        if inside(a, leaf) and not any(inside(b, room) for room in allowed)
    ]
    assert wrong == []


def test_no_loose_modules_at_the_top_of_receiver() -> None:
    """If a module is added at the top of receiver/ instead of in the room of its stage or concern,
    then this names it."""
    assert sorted(p.name for p in (ROOT / "receiver").glob("*.py")) == ["__init__.py"]


class TestTheRulesCanFail:
    def test_a_circle_is_found(self) -> None:
        assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

    def test_a_function_level_and_a_relative_import_count(self) -> None:
        source = "def f():\n    from receiver.cli import ctl\n    from . import worker\n    from .batches import Group\n"
        found = imports_in(source, "receiver.deliver.probe", False, our_modules())
        assert found == {"receiver.cli.ctl", "receiver.deliver.worker", "receiver.deliver.batches"}

    def test_the_rules_see_a_wrong_import(self) -> None:
        graph = {"receiver.ingest.tcp": {"receiver.deliver.worker"}, "receiver.spool.store": {"receiver.cli.ctl"}}
        assert circles(graph) == []
        with pytest.raises(AssertionError):
            test_ingest_and_delivery_meet_only_at_the_spool(graph)
        with pytest.raises(AssertionError):
            test_nothing_imports_the_command_line(graph)
