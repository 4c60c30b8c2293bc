"""The shape of the package, checked: commands do not import each other (what two share
lives below them, as bpcli/inference.py), and the backprop core imports only NumPy."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "bpcli"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_no_command_imports_another() -> None:
    commands = {p.stem for p in (PACKAGE / "commands").glob("*.py") if p.stem != "__init__"}
    assert len(commands) >= 8
    for path in (PACKAGE / "commands").glob("*.py"):
        others = {f"bpcli.commands.{c}" for c in commands - {path.stem}}
        assert not imported_modules(path) & others, path.name


#: the one exception (DESIGN.md): blas.py finds NumPy's own BLAS through threadpoolctl,
#: imported lazily and optional (NumPy's arithmetic is used without it)
CORE_EXCEPTIONS = {"blas.py": {"threadpoolctl"}}


def test_the_core_imports_numpy_only() -> None:
    for path in (PACKAGE / "nn").glob("*.py"):
        allowed = {"numpy", "bpcli", *sys.stdlib_module_names, *CORE_EXCEPTIONS.get(path.name, ())}
        outside = {m for m in imported_modules(path) if m.split(".")[0] not in allowed}
        assert not outside, (path.name, outside)
        assert not {m for m in imported_modules(path)
                    if m.startswith("bpcli.") and not m.startswith("bpcli.nn")}, path.name

