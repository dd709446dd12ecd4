"""formats/ is pure: no I/O, no Twisted, no clock; the architecture stays visible."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import formats

FORMATS_DIR = Path(formats.__file__).parent
ALLOWED = {
    "__future__", "bisect", "collections", "dataclasses", "datetime", "enum", "itertools", "json", "operator",
    "re", "struct", "types", "typing", "pyparsing", "formats",
    "pyarrow",  # columns of many lines computed at once (formats/streamlog_columns.py); no I/O used
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(FORMATS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_only_pure_imports(path: Path) -> None:
    """If a module in formats/ imports anything beyond pure computation, then this fails and names it."""
    assert imported_modules(path) <= ALLOWED, path.name
