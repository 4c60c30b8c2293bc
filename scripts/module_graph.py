"""The shape of the bpcli package: each module's size and what it imports from bpcli.

    python scripts/module_graph.py               # this checkout, as a table
    python scripts/module_graph.py --rev main    # the package as a git revision holds it
    python scripts/module_graph.py --json        # the same as JSON

Imports are read from the syntax tree, at the top of a module and inside functions alike
(bp imports optional extras and some of its own modules lazily, and a lazy import couples
modules as much as any). Marks: ``~`` an import inside a function, ``?`` one only for type
checking. Commands must not import each other (what two share lives below them, as
tests/test_layering.py checks); any such edge is listed and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

PACKAGE = "bpcli"
COMMANDS = f"{PACKAGE}.commands"
# how an import is reached, in the order that wins when a module imports another twice
WHERE = ("top", "function", "type-checking")
MARK = {"top": "", "function": "~", "type-checking": "?"}


@dataclass(frozen=True)
class Import:
    module: str  # dotted, e.g. bpcli.nn.layers
    where: str  # one of WHERE
    line: int


def package_files(root: Path, rev: str | None) -> dict[str, str]:
    """Path (``bpcli/nn/layers.py``) -> source of every module of the package."""
    if rev is None:
        return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
                for p in sorted((root / PACKAGE).rglob("*.py"))}
    listed = subprocess.run(["git", "-C", str(root), "ls-tree", "-r", "--name-only", rev,
                             PACKAGE], capture_output=True, text=True, check=True).stdout
    return {path: subprocess.run(["git", "-C", str(root), "show", f"{rev}:{path}"],
                                 capture_output=True, text=True, check=True).stdout
            for path in sorted(listed.split()) if path.endswith(".py")}


def module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(source: str, name: str, is_package: bool, modules: set[str]) -> list[Import]:
    """The bpcli modules that ``name`` imports. ``from bpcli.x import y`` counts as an import
    of ``bpcli.x.y`` when that is a module, else of ``bpcli.x``."""
    found: list[Import] = []

    def add(target: str, where: str, line: int) -> None:
        if target == PACKAGE or target.startswith(PACKAGE + "."):
            while target not in modules and "." in target:  # a name inside a module
                target = target.rsplit(".", 1)[0]
            if target != name:
                found.append(Import(target, where, line))

    def visit(node: ast.AST, where: str) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, where, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                package = name if is_package else name.rpartition(".")[0]
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                add(f"{base}.{alias.name}", where, node.lineno)
        for child in ast.iter_child_nodes(node):
            inner = where
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                inner = "function"
            elif isinstance(node, ast.If) and is_type_checking(node) and child in node.body:
                inner = "type-checking" if where == "top" else where
            visit(child, inner)

    visit(ast.parse(source), "top")
    return found


@dataclass(frozen=True)
class Module:
    path: str
    lines: int
    imports: list[Import]  # each target once, where it is reached earliest in WHERE's order


def graph(files: dict[str, str]) -> dict[str, Module]:
    """Module name -> its path, line count and bpcli imports, in name order."""
    paths = {module_name(path): path for path in files}
    result: dict[str, Module] = {}
    for name in sorted(paths):
        path = paths[name]
        best: dict[str, Import] = {}
        for imp in imports_of(files[path], name, path.endswith("__init__.py"), set(paths)):
            known = best.get(imp.module)
            if known is None or WHERE.index(imp.where) < WHERE.index(known.where):
                best[imp.module] = imp
        result[name] = Module(path, len(files[path].splitlines()),
                              [best[m] for m in sorted(best)])
    return result


def command_edges(modules: dict[str, Module]) -> list[tuple[str, Import]]:
    """(command, import) for every command module importing another command."""
    return [(name, imp) for name, module in modules.items() if name.startswith(COMMANDS + ".")
            for imp in module.imports if imp.module.startswith(COMMANDS + ".")]


def short(module: str) -> str:
    return module.removeprefix(PACKAGE + ".")


def as_text(modules: dict[str, Module], edges: list[tuple[str, Import]]) -> str:
    width = max(len(short(m)) for m in modules)
    total = sum(module.lines for module in modules.values())
    out = [f"{PACKAGE}: {len(modules)} modules, {total} lines",
           "imports of bpcli modules; ~ inside a function, ? only for type checking", "",
           f"{'module':<{width}}  {'lines':>5}  imports"]
    for name, module in modules.items():
        imported = " ".join(short(i.module) + MARK[i.where] for i in module.imports)
        out.append(f"{short(name):<{width}}  {module.lines:>5}  {imported}".rstrip())
    out.append("")
    if edges:
        out.append(f"command -> command imports ({len(edges)}; there should be none):")
        out += [f"  {short(name)} -> {short(imp.module)}{MARK[imp.where]} (line {imp.line})"
                for name, imp in edges]
    else:
        out.append("command -> command imports: none")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the repository (default: the one holding this script)")
    parser.add_argument("--rev", help="read the package at this git revision, not on disk")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    files = package_files(args.root, args.rev)
    if not files:
        print(f"module_graph: no {PACKAGE}/*.py under {args.root}", file=sys.stderr)
        return 2
    modules = graph(files)
    edges = command_edges(modules)
    if args.json:
        print(json.dumps({"package": PACKAGE,
                          "modules": {name: asdict(m) for name, m in modules.items()},
                          "command_edges": [{"from": name, **asdict(imp)} for name, imp in edges]},
                         indent=2))
    else:
        print(as_text(modules, edges), end="")
    return 1 if edges else 0


if __name__ == "__main__":
    sys.exit(main())
