"""``bp plot``: the learning curves of several runs on one picture, to compare them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bpcli.config.sweep import yaml_value
from bpcli.errors import UsageError
from bpcli.files import output_path
from bpcli.plots import Curves, SweepPoint, learning_curves, read_curves, sweep_picture
from bpcli.rundir import RunFiles
from bpcli.sweep.record import SweepFiles, is_sweep_dir, read_state

DEFAULT_OUT = Path("compare.png")


def plot(run_dirs: Sequence[Path], out: Path = DEFAULT_OUT) -> Path:
    """Draw the runs' curves (from each ``metrics.csv``) to ``out``; returns ``out``. A
    sweep directory alone: its metric against each searched parameter."""
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: bp draws PNG pictures; give a file name ending "
                         "in .png")
    if len(run_dirs) == 1 and is_sweep_dir(run_dirs[0]):
        return _sweep(run_dirs[0], out)
    output_path(out, *(RunFiles(p).metrics if p.is_dir() else p for p in run_dirs))
    names = [p.resolve().name if p.is_dir() else p.resolve().parent.name for p in run_dirs]
    runs: list[Curves] = []
    for path, name in zip(run_dirs, names, strict=True):
        # two runs with the same directory name are told apart by the path given
        curves = read_curves(path, str(path) if names.count(name) > 1 else name)
        if not curves.epoch:
            raise UsageError(f"{path}: {RunFiles.METRICS} has no epochs yet")
        if runs and curves.metric_name != runs[0].metric_name:
            raise UsageError(f"{path} measures val_{curves.metric_name} but {run_dirs[0]} "
                             f"measures val_{runs[0].metric_name}: compare runs of the same "
                             "task")
        runs.append(curves)
    learning_curves(runs, out)
    return out


def _sweep(root: Path, out: Path) -> Path:
    output_path(out, SweepFiles(root).state)
    state = read_state(root)
    trials = [t for t in state["trials"] if t.get("status") in ("finished", "stopped")
              and isinstance(t.get("score"), (int, float))]
    if not trials:
        raise UsageError(f"{root}: no trial has a score yet")
    names = list(dict.fromkeys(k for t in trials for k in t["params"]))
    points = {name: [SweepPoint(_axis_value(t["params"].get(name)), float(t["score"]),
                                t["status"] == "stopped") for t in trials]
              for name in names}
    title = f"{state.get('name', root.name)}: {len(trials)} trials"
    sweep_picture(points, str(state.get("metric", "score")), title, out)
    return out


def _axis_value(value: Any) -> float | str:
    """A number as is; a block by its settings (``units=8, activation=relu``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return ", ".join(f"{k}={yaml_value(v)}" for k, v in value.items() if k != "type")
    return yaml_value(value)
