"""The sweep directory: a run directory per trial, and the sweep's own files, all written
atomically: ``sweep.json`` (the plan and every trial's state, from which ``--resume``
carries on), ``results.csv`` (a row per trial) and ``best.yaml`` (the winner's config)."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bpcli.atomic import write_text_atomic
from bpcli.config.sweep import yaml_value
from bpcli.errors import UsageError
from bpcli.rundir import RunFiles, read_metrics, write_json
from bpcli.sweep.plan import Trial


@dataclass(frozen=True)
class SweepFiles:
    """The files of a sweep directory, by what they hold."""

    root: Path

    @property
    def state(self) -> Path:  # the sweep's settings and every trial's state
        return self.root / "sweep.json"

    @property
    def results(self) -> Path:  # a row per trial: parameters, status, score
        return self.root / "results.csv"

    @property
    def best(self) -> Path:  # the best trial's config, runnable with bp train
        return self.root / "best.yaml"

    @property
    def plot(self) -> Path:  # the metric against each parameter (bp plot)
        return self.root / "sweep.png"

    def trial(self, trial_id: str) -> Path:  # the trial's run directory
        return self.root / trial_id

    def log(self, trial_id: str) -> Path:  # what bp train would have printed
        return self.trial(trial_id) / "train.log"


def is_sweep_dir(path: Path) -> bool:
    return SweepFiles(path).state.is_file()


def create_sweep_dir(runs_dir: Path, name: str) -> Path:
    """``runs_dir/<name>-<timestamp>[-N]``, never an existing directory."""
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{runs_dir}: cannot create the runs directory: "
                         f"{exc.strerror or exc}; choose another with output.runs_dir") from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        root = runs_dir / (f"{name}-{stamp}" + (f"-{attempt}" if attempt > 1 else ""))
        try:
            root.mkdir()
        except FileExistsError:
            continue
        return root
    raise UsageError(f"{runs_dir}: too many sweeps named {name!r} this second")


def read_state(root: Path) -> dict[str, Any]:
    files = SweepFiles(root)
    if not root.is_dir():
        raise UsageError(f"{root}: no such sweep directory")
    try:
        state = json.loads(files.state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{root}: not a sweep directory (no sweep.json); give the "
                         "directory bp sweep printed") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{files.state}: unreadable ({exc}); the sweep cannot be "
                         "resumed") from None
    if not isinstance(state, dict) or not isinstance(state.get("trials"), list):
        raise UsageError(f"{files.state}: not a bp sweep state (no trials)")
    return state


def write_state(root: Path, state: dict[str, Any], trials: list[Trial]) -> None:
    write_json(SweepFiles(root).state, {**state, "trials": [t.to_json() for t in trials]})


def ranked(trials: list[Trial], maximize: bool) -> list[Trial]:
    """The trials with a score, best first."""
    scored = [t for t in trials if t.score is not None and math.isfinite(t.score)
              and t.status in ("finished", "stopped")]
    # a trial the scheduler stopped trained less: on a tie, one that finished wins
    return sorted(scored, key=lambda t: ((-1 if maximize else 1) * (t.score or 0.0),
                                         t.status != "finished"))


def write_results(root: Path, trials: list[Trial], metric: str, cv: bool) -> None:
    keys = list(dict.fromkeys(k for t in trials for k in t.params))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    spread = [f"{metric}_std"] if cv else []
    writer.writerow(["trial", "status", *keys, metric, *spread, "best_epoch", "epochs",
                     "seconds", "error"])
    for t in trials:
        writer.writerow([t.id, t.status, *(yaml_value(t.params.get(k)) for k in keys),
                         _number(t.score), *([_number(t.spread)] if cv else []),
                         t.best_epoch or "", t.epochs,
                         "" if t.seconds is None else f"{t.seconds:.3f}", t.error or ""])
    write_text_atomic(SweepFiles(root).results, buffer.getvalue())


def write_best(root: Path, trial: Trial, run_name: str, cv: bool) -> Path:
    """The winner's resolved config, as its run directory has it: ``bp train best.yaml``
    trains the same network again, bit for bit. Cross-validated, the first fold's
    config without ``data.cv``: the winner trained on the config's own split."""
    source = RunFiles(SweepFiles(root).trial(run_name)).config
    target = SweepFiles(root).best
    text = source.read_text(encoding="utf-8")
    if cv:
        config = yaml.safe_load(text)
        config.get("data", {}).pop("cv", None)
        text = yaml.safe_dump(config, sort_keys=False)
    write_text_atomic(target, f"# the best trial of the sweep: {trial.id}\n" + text)
    return target


def trial_score(run_dir: Path, metric: str) -> tuple[float | None, int | None, int]:
    """The metric at the epoch a finished run's model keeps, that epoch, and the epochs
    trained, from the run's summary.json and metrics.csv."""
    summary = RunFiles(run_dir).read_summary()
    metrics = summary.get("metrics")
    best = metrics.get("best_epoch") if isinstance(metrics, dict) else None
    rows = read_metrics(run_dir, 10**12)
    header = header_of(run_dir)
    epochs = len(rows)
    if metric == "val_metric" and len(header) > 3:  # the task's, whichever it is
        metric = header[3]
    if not isinstance(best, int) or metric not in header:
        return None, best if isinstance(best, int) else None, epochs
    column = header.index(metric)
    for row in rows:
        if int(row[0]) == best and column < len(row):
            return _float(row[column]), best, epochs
    return None, best, epochs


def fresh_trial_dir(run_dir: Path) -> None:
    """Empty a trial's directory for a new start (it stopped before its first checkpoint)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)


def header_of(run_dir: Path) -> list[str]:
    try:
        with RunFiles(run_dir).metrics.open(encoding="utf-8") as f:
            return next(csv.reader(f), [])
    except OSError:
        return []


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)
