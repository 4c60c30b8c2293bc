"""``bp plot``: the learning curves of several runs on one picture, to compare them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bpcli.errors import UsageError
from bpcli.files import output_path
from bpcli.plots import Curves, learning_curves, read_curves
from bpcli.rundir import RunFiles

DEFAULT_OUT = Path("compare.png")


def plot(run_dirs: Sequence[Path], out: Path = DEFAULT_OUT) -> Path:
    """Draw the runs' curves (from each ``metrics.csv``) to ``out``; returns ``out``."""
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: bp draws PNG pictures; give a file name ending "
                         "in .png")
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
