"""The run directory's files, read back: metrics.csv has one reader."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from bpcli.rundir import RunFiles, metrics_header, read_metrics
from tests.conftest import REPO

PACKAGE = REPO / "bpcli"
ROWS = [["1", "1.1", "1.0", "0.5", "0.05", "0", "0.1"],
        ["2", "0.9", "0.8", "0.6", "0.05", "0", "0.1"],
        ["3", "0.7", "0.9", "0.7", "0.05", "0", "0.1"]]


def write_metrics(run_dir: Path, lines: list[str]) -> None:
    RunFiles(run_dir).metrics.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_metrics_file_keeps_each_record_on_its_line_and_finds_the_epochs(
    tmp_path: Path,
) -> None:
    write_metrics(tmp_path, [",".join(metrics_header("accuracy")), ",".join(ROWS[0]), "",
                             ",".join(ROWS[1]), "not,an,epoch", ",".join(ROWS[2])])
    metrics = RunFiles(tmp_path).read_metrics()
    assert metrics.header == metrics_header("accuracy")
    assert metrics.metric_column == "val_accuracy"
    assert metrics.records[1] == [] and metrics.records[3][0] == "not"  # lines 3 and 5
    assert metrics.epochs() == ROWS


def test_a_resumed_run_carries_on_the_rows_up_to_its_checkpoint(tmp_path: Path) -> None:
    write_metrics(tmp_path, [",".join(metrics_header("rmse")), *map(",".join, ROWS)])
    assert read_metrics(tmp_path, 2) == ROWS[:2]  # epoch 3's row outran its checkpoint
    assert read_metrics(tmp_path, 3) == ROWS
    assert read_metrics(tmp_path / "elsewhere", 3) == []


def test_run_directory_names_are_written_only_by_run_files() -> None:
    """Code names a run's files through ``RunFiles`` (docstrings, comments and option help
    may speak of them), so that renaming one is one edit."""
    names = [value for key, value in vars(RunFiles).items()
             if key.isupper() and isinstance(value, str) and "." in value.strip(".")]
    assert "metrics.csv" in names and "model.npz" in names
    pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, names)) + r")\b")
    # commands/train.py: its literal goes when its session code moves (issue 21)
    exempt = {PACKAGE / "rundir.py"}
    found = []
    for path in sorted(set(PACKAGE.rglob("*.py")) - exempt):
        tree = ast.parse(path.read_text())
        prose = {id(node.body[0].value) for node in ast.walk(tree)
                 if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
                 and node.body and isinstance(node.body[0], ast.Expr)}
        prose |= {id(k.value) for k in ast.walk(tree)
                  if isinstance(k, ast.keyword) and k.arg in ("help", "description")}
        found += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}"
                  for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and id(node) not in prose and pattern.search(node.value)]
    assert not found, found
