"""Documentation that is generated from the code stays in step with it."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_config_reference_is_current() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "config_reference.py"),
                           "--check"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_readme_config_error_sample_is_what_bp_prints(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    found = re.search(r"For this `(?P<file>[^`]+)`:\n\n```yaml\n(?P<config>.*?)```\n\n"
                      r"`bp (?P<args>[^`]+)` prints[^\n]*\n[^\n]*\n\n```\n(?P<output>.*?)```",
                      readme, re.DOTALL)
    assert found, "the README's sample config error is gone or reworded"
    config = tmp_path / found["file"]
    config.parent.mkdir(parents=True)
    config.write_text(found["config"])
    proc = subprocess.run([sys.executable, "-m", "bpcli", *shlex.split(found["args"])],
                          capture_output=True, text=True, check=False, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2
    assert proc.stderr == found["output"]


def test_config_reference_tables_keep_their_columns() -> None:
    text = (REPO / "docs" / "config-reference.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert rows
    for row in rows:  # an unescaped | in a cell would add a column
        assert len(re.split(r"(?<!\\)\|", row)) == 7, row
    assert "| `kernel_size` | positive integer or [height, width], each at most 1024 |" in text
    assert "list of any" not in text


def test_readme_usage_mistake_sample_is_what_bp_prints() -> None:
    readme = " ".join((REPO / "README.md").read_text().split())
    found = re.search(r"e\.g\. `bp (?P<args>[^`]+)` prints `(?P<line>bp: [^`]+)`", readme)
    assert found, "the README's sample usage mistake is gone or reworded"
    proc = subprocess.run([sys.executable, "-m", "bpcli", *shlex.split(found["args"])],
                          capture_output=True, text=True, check=False, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr == found["line"] + "\n"


#: numpydoc's section names (numpydoc's format guide); DESIGN.md promises its style
NUMPYDOC_SECTIONS = {"Parameters", "Returns", "Yields", "Receives", "Other Parameters",
                     "Raises", "Warns", "Warnings", "See Also", "Notes", "References",
                     "Examples", "Attributes", "Methods"}


def test_the_core_docstrings_use_numpydoc_sections() -> None:
    """A class's or function's docstring sections in bpcli/nn are numpydoc's (a module's
    docstring may head its own chapters), each underlined to its length."""
    found = []
    for path in sorted((REPO / "bpcli" / "nn").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef | ast.FunctionDef):
                continue
            lines = (ast.get_docstring(node) or "").splitlines()
            for heading, underline in zip(lines, lines[1:], strict=False):
                if re.fullmatch(r"\s*-{3,}\s*", underline) and (
                        heading.strip() not in NUMPYDOC_SECTIONS
                        or len(underline.strip()) != len(heading.strip())):
                    found.append(f"{path.name}:{node.lineno} {node.name}: {heading.strip()}")
    assert not found, found
