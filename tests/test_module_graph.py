"""scripts/module_graph.py: module sizes and bpcli imports read from the syntax tree, and
every command -> command import found, however it is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "module_graph.py"


def module_graph(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, check=False)


def test_imports_are_found_at_the_top_in_functions_relative_and_for_type_checking(
    tmp_path: Path,
) -> None:
    files = {
        "__init__.py": "",
        "util.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                   "    from bpcli.commands import a\nVALUE = 1\n",
        "commands/__init__.py": "",
        "commands/a.py": "import json\n\nfrom bpcli.util import VALUE\n\n\ndef run() -> None:\n"
                         "    from bpcli.commands import b\n",
        "commands/b.py": "from . import c\nfrom ..util import VALUE\n",
        # imported at the top and again in a function: the top-level import is the one shown
        "commands/c.py": "import bpcli.util\n\n\ndef f() -> None:\n    from bpcli import util\n",
    }
    for name, text in files.items():
        path = tmp_path / "bpcli" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    result = module_graph("--root", str(tmp_path))
    assert result.returncode == 1, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[4:]
            if line and not line.startswith(" ") and "->" not in line}
    assert rows == {"bpcli": ["0"], "commands": ["0"], "commands.a": ["7", "commands.b~", "util"],
                    "commands.b": ["2", "commands.c", "util"], "commands.c": ["5", "util"],
                    "util": ["5", "commands.a?"]}
    assert result.stdout.endswith("command -> command imports (2; there should be none):\n"
                                  "  commands.a -> commands.b~ (line 7)\n"
                                  "  commands.b -> commands.c (line 1)\n")
    as_json = json.loads(module_graph("--root", str(tmp_path), "--json").stdout)
    assert as_json["command_edges"] == [
        {"from": "bpcli.commands.a", "module": "bpcli.commands.b", "where": "function", "line": 7},
        {"from": "bpcli.commands.b", "module": "bpcli.commands.c", "where": "top", "line": 1}]


def test_bpcli_has_every_module_counted_and_no_command_edges() -> None:
    result = module_graph("--json")
    assert result.returncode == 0, result.stdout
    modules = json.loads(result.stdout)["modules"]
    sources = {p.relative_to(REPO).as_posix(): p.read_text().splitlines()
               for p in (REPO / "bpcli").rglob("*.py")}
    assert {m["path"]: m["lines"] for m in modules.values()} == {
        path: len(lines) for path, lines in sources.items()}
    # an import of a name inside a module counts as an import of that module
    assert {i["module"] for m in modules.values() for i in m["imports"]} <= set(modules)
