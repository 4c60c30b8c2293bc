"""``bp sweep``: plan the trials, run them on an executor with the live table, record
every trial's outcome as it comes, and name the winner with the commands to use it."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from bpcli.config.sweep import LoadedSweep, load_sweep, yaml_value
from bpcli.display import Display, SweepRow
from bpcli.errors import EXIT_INTERRUPTED, BpError, CheckFailed, UsageError
from bpcli.metrics import metric_text
from bpcli.runs import RunFiles
from bpcli.sweep.asha import Asha
from bpcli.sweep.plan import FINAL, Trial, plan
from bpcli.sweep.record import (
    SweepFiles,
    create_sweep_dir,
    ranked,
    read_state,
    trial_score,
    write_best,
    write_results,
    write_state,
)
from bpcli.sweep.trial import TrialTask
from bpcli.threads import usable_cores

STATE_VERSION = 1


class SweepInterrupted(BpError):
    exit_code = EXIT_INTERRUPTED


def sweep(path: Path, display: Display, workers: int | None = None,
          threads: int | None = None) -> Path:
    """Run the sweep ``path`` describes in a new sweep directory; returns it."""
    loaded = load_sweep(path)
    config = loaded.config
    trials = plan(config)
    root = create_sweep_dir(Path(loaded.base.config.output.runs_dir), loaded.name)
    state: dict[str, Any] = {
        "version": STATE_VERSION, "name": loaded.name, "sweep_file": str(path.resolve()),
        "base_file": None if loaded.base_path is None else str(loaded.base_path),
        "metric": config.metric,
        "maximize": config.maximize(), "search": config.search, "seed": config.seed,
        "executor": config.executor, "cv": config.cv,
        "scheduler": config.scheduler.model_dump() if config.scheduler else None,
        "epochs": loaded.base.config.training.epochs,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": "running", "rungs": {}}
    write_state(root, state, trials)
    display.info(f"sweep directory: {root} ({len(trials)} trial"
                 f"{'s' if len(trials) > 1 else ''}, {config.search} search)")
    return _execute(root, state, trials, display, workers or config.workers, threads,
                    loaded)


def resume(root: Path, display: Display, workers: int | None = None,
           threads: int | None = None) -> Path:
    """Carry on the sweep in ``root``: finished trials are kept, the others resumed from
    their last checkpoint or started again."""
    state = read_state(root)
    trials = [Trial.from_json(t) for t in state["trials"]]
    left = [t for t in trials if t.status not in FINAL]
    if not left:
        raise UsageError(f"{root}: every trial has ended; the results are in "
                         f"{SweepFiles(root).results}")
    display.info(f"resuming {root}: {len(trials) - len(left)} trial"
                 f"{'s' if len(trials) - len(left) != 1 else ''} kept, {len(left)} to run")
    state["status"] = "running"
    return _execute(root, state, trials, display, workers, threads, None)


def _execute(root: Path, state: dict[str, Any], trials: list[Trial], display: Display,
             workers: int | None, threads: int | None, loaded: LoadedSweep | None) -> Path:
    from bpcli.sweep.local import run_local

    files = SweepFiles(root)
    metric, maximize = state["metric"], bool(state["maximize"])
    for trial in trials:  # a trial that finished as the sweep was stopped: keep it
        if trial.status not in FINAL and _completed(files.trial(trial.id)):
            _take(trial, files.trial(trial.id), metric)
    todo = [t for t in trials if t.status not in FINAL]
    cores = usable_cores()
    if workers is None:
        workers = max(1, cores // (threads or 1))
    workers = max(1, min(workers, len(todo) or 1))
    threads = threads or max(1, cores // workers)
    scheduler = state.get("scheduler")
    asha = (Asha(scheduler["grace_period"], scheduler["reduction_factor"], state["epochs"],
                 maximize, state.get("rungs")) if scheduler else None)
    base = state.get("base_file")
    tasks = [TrialTask(t.id, t.params, files.trial(t.id), Path(state["sweep_file"]),
                       None if base is None else Path(base), metric, threads,
                       tuple(asha.milestones) if asha else ()) for t in todo]
    by_id = {t.id: t for t in trials}
    params = list(dict.fromkeys(k for t in trials for k in t.params))
    started: dict[str, float] = {}

    def row(trial: Trial) -> SweepRow:
        seconds = trial.seconds
        if seconds is None and trial.id in started:
            seconds = time.monotonic() - started[trial.id]
        planned = trial.params.get("training.epochs", state["epochs"])
        return SweepRow(trial.id, [_short(trial.params.get(k)) for k in params],
                        trial.status, f"{trial.epochs}/{planned}",
                        metric_text(trial.score) if trial.score is not None else "-",
                        "-" if seconds is None else f"{seconds:.{2 if seconds < 10 else 1}f}s")

    display.info(f"{len(todo)} trial{'s' if len(todo) != 1 else ''} on {workers} "
                 f"worker{'s' if workers > 1 else ''}, {threads} thread"
                 f"{'s' if threads > 1 else ''} each")
    with display.sweep(f"{state['name']}: {metric} ({'max' if maximize else 'min'})",
                       params, metric) as view:
        for trial in trials:
            view.update(row(trial))

        def decide(trial_id: str, epoch: int, score: float | None) -> bool:
            assert asha is not None
            carries_on = asha.carries_on(trial_id, epoch, score)
            state["rungs"] = asha.rungs
            return carries_on

        def on_event(kind: str, trial_id: str, payload: dict[str, Any]) -> None:
            trial = by_id[trial_id]
            if kind == "started":
                trial.status = "running"
                started[trial_id] = time.monotonic()
                view.update(row(trial), "started")
            elif kind == "epoch":
                trial.epochs = payload["epoch"]
                trial.reports[str(payload["epoch"])] = payload["value"]
                view.update(row(trial))
            elif kind == "done":
                for key in ("status", "score", "best_epoch", "epochs", "seconds", "error"):
                    setattr(trial, key, payload[key])
                view.update(row(trial), trial.status + (f" ({trial.error})" if trial.error
                                                        else ""))
                write_state(root, state, trials)
                write_results(root, trials, metric, bool(state.get("cv")))

        interrupted = run_local(tasks, workers, threads, on_event, decide)
        for trial in trials:
            if trial.status == "running":  # no word from its worker: it was stopped
                trial.status = "interrupted"
            view.update(row(trial))
    state["status"] = "interrupted" if interrupted else "finished"
    best = ranked(trials, maximize)
    state["best"] = best[0].id if best else None
    write_state(root, state, trials)
    write_results(root, trials, metric, bool(state.get("cv")))
    if best:
        write_best(root, best[0])
    if interrupted:
        raise SweepInterrupted(f"interrupted; the finished trials are recorded in "
                               f"{files.results}. Resume with:\n  bp sweep --resume {root}")
    _report(root, trials, best, metric, display)
    return root


def _completed(run_dir: Path) -> bool:
    files = RunFiles(run_dir)
    return (files.read_summary().get("status") in ("finished", "stopped early")
            and files.model.is_file())


def _take(trial: Trial, run_dir: Path, metric: str) -> None:
    """Record a trial from its finished run directory."""
    trial.score, trial.best_epoch, trial.epochs = trial_score(run_dir, metric)
    seconds = RunFiles(run_dir).read_summary().get("wall_time_s")
    trial.seconds = seconds if isinstance(seconds, float) else None
    trial.status = "finished"


def _report(root: Path, trials: list[Trial], best: list[Trial], metric: str,
            display: Display) -> None:
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    display.info(", ".join(f"{n} {status}" for status, n in counts.items())
                 + f"; results in {SweepFiles(root).results}")
    if not best:
        failed = next((t for t in trials if t.error), None)
        raise SweepFailed(f"{root}: no trial produced a score"
                          + (f"; the first error: {failed.id}: {failed.error}" if failed
                             else ""))
    winner = best[0]
    score = metric_text(winner.score) if winner.score is not None else "-"
    spread = (f" ± {metric_text(winner.spread)}" if winner.spread is not None
              and math.isfinite(winner.spread) else "")
    values = ", ".join(f"{k}={yaml_value(v)}" for k, v in winner.params.items())
    display.info(f"best: {winner.id} ({values}): {metric} {score}{spread} at epoch "
                 f"{winner.best_epoch}")
    model = RunFiles(SweepFiles(root).trial(winner.id)).model
    display.info("train it again (bit for bit) with:")
    display.info(f"  bp train {_shown(SweepFiles(root).best)}")
    display.info("or predict with its model:")
    display.info(f"  bp predict {_shown(model)} INPUT.csv")


class SweepFailed(CheckFailed):
    """Every trial failed: nothing to recommend."""


def _short(value: Any) -> str:
    """A value for the table: floats to 4 significant digits (results.csv has them all)."""
    return f"{value:.4g}" if isinstance(value, float) else yaml_value(value)


def _shown(path: Path) -> str:
    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)
