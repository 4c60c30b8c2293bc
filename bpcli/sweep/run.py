"""``bp sweep``: plan the trials, run them on an executor with the live table, record
every trial's outcome as it comes, and name the winner with the commands to use it."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bpcli.config import load_config
from bpcli.config.sweep import load_sweep, yaml_value
from bpcli.display import Display, SweepRow
from bpcli.errors import EXIT_INTERRUPTED, BpError, CheckFailed, UsageError
from bpcli.metrics import metric_text
from bpcli.rundir import RunFiles, file_digest
from bpcli.sweep.asha import Asha
from bpcli.sweep.plan import FINAL, Trial, plan
from bpcli.sweep.record import (
    SweepFiles,
    create_sweep_dir,
    header_of,
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
          threads: int | None = None, executor: str | None = None,
          address: str | None = None) -> Path:
    """Run the sweep ``path`` describes in a new sweep directory; returns it.
    ``executor`` and ``address`` override the sweep file's."""
    loaded = load_sweep(path)
    config = loaded.config
    if loaded.base.config.gan is not None:
        raise UsageError(f"{path}: base: a GAN's config; a sweep compares runs by their "
                         "validation scores, and a GAN has none")
    if executor is not None:
        config.executor = executor  # type: ignore[assignment]
    if address is not None:
        if config.executor != "ray":
            raise UsageError("--address is a Ray cluster's: give --executor ray with it")
        config.address = address
    if config.executor == "ray" and config.search == "optuna" and config.cv is not None:
        raise UsageError(f"{path}: cv: on Ray, Optuna's trials are single runs; leave out "
                         "cv, or use search random or the local executor")
    # Optuna proposes each trial when a worker is free, from the scores so far
    trials = plan(config) if config.search != "optuna" else []
    root = create_sweep_dir(Path(loaded.base.config.output.runs_dir), loaded.name)
    state: dict[str, Any] = {
        "version": STATE_VERSION, "name": loaded.name, "sweep_file": str(path.resolve()),
        "base_file": None if loaded.base_path is None else str(loaded.base_path),
        "metric": config.metric,
        "maximize": config.maximize(), "search": config.search, "seed": config.seed,
        "executor": config.executor, "address": config.address, "cv": config.cv,
        "scheduler": config.scheduler.model_dump() if config.scheduler else None,
        "epochs": loaded.base.config.training.epochs, "samples": config.samples,
        "parameters": {k: v.model_dump(exclude_none=True)
                       for k, v in config.parameters.items()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": "running", "rungs": {},
        "inputs": _digests(path, loaded.base_path)}
    write_state(root, state, trials)
    count = len(trials) or config.samples
    display.info(f"sweep directory: {root} ({count} trial{'s' if count > 1 else ''}, "
                 f"{config.search} search)")
    return _execute(root, state, trials, display, workers or config.workers, threads)


def cross_validate(config_path: Path, folds: int, display: Display,
                   overrides: Sequence[str] = (), workers: int | None = None,
                   threads: int | None = None) -> Path:
    """``bp train --cv K``: train the config on each of ``folds`` folds (a run directory
    each, in a directory like a sweep's with one trial) and score it by the folds' mean
    and spread."""
    sets = [*overrides, *_fold_sets(folds, 1)]
    loaded = load_config(config_path, sets)  # refused here, before any fold starts
    config = loaded.config
    # the task's metric (accuracy or rmse), named once the data has told the task
    metric = "val_metric"
    name = f"{config.output.name or config_path.stem}-cv"
    root = create_sweep_dir(Path(config.output.runs_dir), name)
    state: dict[str, Any] = {
        "version": STATE_VERSION, "name": name, "sweep_file": str(config_path.resolve()),
        "base_file": str(config_path.resolve()), "sets": list(overrides), "metric": metric,
        "maximize": True, "search": "grid", "seed": 0,
        "executor": "local", "cv": folds, "scheduler": None,
        "epochs": config.training.epochs, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "status": "running", "rungs": {}, "inputs": _digests(config_path)}
    trials = [Trial("t001", {})]
    write_state(root, state, trials)
    display.info(f"cross-validation directory: {root} ({folds} folds)")
    return _execute(root, state, trials, display, workers, threads)


def resume(root: Path, display: Display, workers: int | None = None,
           threads: int | None = None, address: str | None = None,
           force: bool = False) -> Path:
    """Carry on the sweep in ``root``: finished trials are kept, the others resumed from
    their last checkpoint or started again (refused when the sweep file or the base
    config changed since, unless ``force``)."""
    state = read_state(root)
    recorded = state.get("inputs") or {}
    changed = [name for name, digest in recorded.items()
               if not Path(name).is_file() or file_digest(Path(name)) != digest]
    if changed and not force:
        raise UsageError(f"{root}: cannot resume: {', '.join(changed)} changed since the "
                         "sweep started, and the trials still to run would not be the "
                         "sweep's; pass --force to resume anyway")
    if state.get("executor") == "ray" and state.get("search") == "optuna":
        raise UsageError(f"{root}: a Ray sweep whose trials Optuna proposed cannot be "
                         "resumed (Tune's searcher starts afresh); its ended trials are in "
                         f"{SweepFiles(root).results}")
    trials = [Trial.from_json(t) for t in state["trials"]]
    left = [t for t in trials if t.status not in FINAL]
    if not left and (state.get("search") != "optuna" or len(trials) >= state["samples"]):
        raise UsageError(f"{root}: every trial has ended; the results are in "
                         f"{SweepFiles(root).results}")
    display.info(f"resuming {root}: {len(trials) - len(left)} trial"
                 f"{'s' if len(trials) - len(left) != 1 else ''} kept, {len(left)} to run")
    state["status"] = "running"
    if address is not None:
        state["address"] = address
    return _execute(root, state, trials, display, workers, threads)


def _execute(root: Path, state: dict[str, Any], trials: list[Trial], display: Display,
             workers: int | None, threads: int | None) -> Path:
    from bpcli.sweep.local import run_local

    files = SweepFiles(root)
    metric, maximize = state["metric"], bool(state["maximize"])
    folds = state.get("cv")
    units: dict[str, tuple[Trial, int | None]] = {}  # run directory -> trial, fold
    for trial in trials:
        if trial.status in FINAL:
            continue
        if folds:
            trial.folds = trial.folds or [None] * folds
            trial.fold_status = trial.fold_status or ["pending"] * folds
        for name, fold in _units(trial, folds):
            if _completed(files.trial(name)):  # it finished as the sweep was stopped
                _record(trial, fold, _outcome(files.trial(name), metric), folds)
            else:
                units[name] = (trial, fold)
    on_ray = state.get("executor") == "ray"
    # on Ray, Tune's own Optuna searcher proposes the trials (below)
    search = None if on_ray else _optuna_search(state, trials, maximize)
    cores = usable_cores()
    if workers is None:
        workers = max(1, cores // (threads or 1))
    proposed = state["samples"] - len(trials) if state.get("search") == "optuna" else 0
    to_run = len(units) + proposed * (folds or 1)
    workers = max(1, min(workers, to_run or 1))
    threads = threads or max(1, cores // workers)
    scheduler = state.get("scheduler")
    asha = (Asha(scheduler["grace_period"], scheduler["reduction_factor"], state["epochs"],
                 maximize, state.get("rungs")) if scheduler else None)
    base = state.get("base_file")

    def task_of(name: str, trial: Trial, fold: int | None) -> TrialTask:
        # absolute paths: a Ray worker runs in a directory of its own, maybe elsewhere
        return TrialTask(name, trial.params, files.trial(name).resolve(),
                         Path(state["sweep_file"]), None if base is None else Path(base),
                         metric, threads or 1, tuple(asha.milestones) if asha else (),
                         tuple(state.get("sets", [])) + _fold_sets(folds, fold))

    tasks = [task_of(name, trial, fold) for name, (trial, fold) in units.items()]

    def more() -> list[TrialTask]:
        """Optuna's next trial, while the sweep has fewer than its samples."""
        if search is None or len(trials) >= state["samples"]:
            return []
        trial_id = f"t{len(trials) + 1:03d}"
        trial = Trial(trial_id, search.ask(trial_id))
        trials.append(trial)
        if folds:
            trial.folds, trial.fold_status = [None] * folds, ["pending"] * folds
        new = []
        for name, fold in _units(trial, folds):
            units[name] = (trial, fold)
            new.append(task_of(name, trial, fold))
        return new

    while search is not None and len(tasks) < workers and (added := more()):
        tasks += added
    params = list(state.get("parameters") or
                  dict.fromkeys(k for t in trials for k in t.params))
    started: dict[str, float] = {}

    def row(trial: Trial) -> SweepRow:
        seconds = trial.seconds
        if seconds is None and trial.id in started:
            seconds = time.monotonic() - started[trial.id]
        planned = trial.params.get("training.epochs", state["epochs"]) * (folds or 1)
        return SweepRow(trial.id, [_short(trial.params.get(k)) for k in params],
                        trial.status, f"{trial.epochs}/{planned}",
                        metric_text(trial.score) if trial.score is not None else "-",
                        "-" if seconds is None else f"{seconds:.{2 if seconds < 10 else 1}f}s")

    what = "fold" if folds else "trial"
    display.info(f"{len(units)} {what}{'s' if len(units) != 1 else ''} on {workers} "
                 f"worker{'s' if workers > 1 else ''}, {threads} thread"
                 f"{'s' if threads > 1 else ''} each")
    with display.sweep(f"{state['name']}: {metric} ({'max' if maximize else 'min'})",
                       params, metric) as view:
        for trial in trials:
            view.update(row(trial))

        def decide(name: str, epoch: int, score: float | None) -> bool:
            assert asha is not None
            carries_on = asha.carries_on(name, epoch, score)
            state["rungs"] = asha.rungs
            return carries_on

        def on_event(kind: str, name: str, payload: dict[str, Any]) -> None:
            trial, fold = units[name]
            if kind == "started":
                if trial.status != "running":
                    trial.status = "running"
                    started.setdefault(trial.id, time.monotonic())
                    view.update(row(trial), "started")
            elif kind == "epoch":
                if fold is None:
                    trial.epochs = payload["epoch"]
                    trial.reports[str(payload["epoch"])] = payload["value"]
                else:
                    trial.epochs += 1
                view.update(row(trial))
            elif kind == "done":
                _record(trial, fold, payload, folds)
                if search is not None and trial.status in FINAL:
                    search.tell(trial.id, trial.score)
                if trial.status in FINAL or trial.status == "interrupted":
                    say = trial.status + (f" ({trial.error})" if trial.error else "")
                    view.update(row(trial), say)
                write_state(root, state, trials)
                write_results(root, trials, metric, bool(folds))

        if on_ray:
            from bpcli.sweep.ray_executor import OptunaPlan, run_ray

            # Ray asks every epoch: its scheduler decides where the rungs are
            every = tuple(range(1, state["epochs"])) if asha else ()
            rays = [replace(task, rungs=every) for task in tasks]
            plan = None
            if state.get("search") == "optuna":  # Tune's Optuna searcher proposes them
                template = replace(task_of("", Trial("", {}), None), rungs=every,
                                   run_dir=root.resolve())
                plan = OptunaPlan(state["parameters"], state["seed"], state["samples"],
                                  template)

            def register(task: TrialTask) -> None:
                trial = Trial(task.trial_id, task.params)
                trials.append(trial)
                units[task.trial_id] = (trial, None)

            interrupted = run_ray(rays, workers, threads, state.get("address"), scheduler,
                                  maximize, state["epochs"], root, on_event, plan,
                                  register)
        else:
            interrupted = run_local(tasks, workers, threads, on_event, decide, more)
        for trial in trials:
            if trial.status in ("running", "pending") and interrupted:
                trial.status = "interrupted" if trial.status == "running" else "pending"
            view.update(row(trial))
    state["status"] = "interrupted" if interrupted else "finished"
    if metric == "val_metric":  # bp train --cv: now the task is known
        headers = [header_of(files.trial(name)) for name in units]
        metric = next((header[3] for header in headers if len(header) > 3), metric)
        maximize = state["maximize"] = metric != "val_rmse"
        state["metric"] = metric
    best = ranked(trials, maximize)
    state["best"] = best[0].id if best else None
    write_state(root, state, trials)
    write_results(root, trials, metric, bool(folds))
    if best:
        write_best(root, best[0], _units(best[0], folds)[0][0], bool(folds))
    if interrupted:
        raise SweepInterrupted(f"interrupted; the finished trials are recorded in "
                               f"{files.results}. Resume with:\n  bp sweep --resume {root}")
    _report(root, trials, best, metric, display, bool(folds))
    return root


def _digests(*paths: Path | None) -> dict[str, str]:
    """SHA-256 of the sweep's own inputs (the sweep file, the base config), by path."""
    return {str(p.resolve()): file_digest(p) for p in paths if p is not None}


def _optuna_search(state: dict[str, Any], trials: list[Trial], maximize: bool) -> Any:
    """The Optuna study of a ``search: optuna`` sweep, told of the trials that ended."""
    if state.get("search") != "optuna":
        return None
    from bpcli.config.sweep import ParameterConfig
    from bpcli.sweep.optuna_search import OptunaSearch

    specs = {k: ParameterConfig.model_validate(v) for k, v in state["parameters"].items()}
    search = OptunaSearch(specs, maximize, state["seed"])
    for trial in trials:
        if trial.status in FINAL and trial.score is not None:
            search.add(trial.params, trial.score)
    return search


def _units(trial: Trial, folds: int | None) -> list[tuple[str, int | None]]:
    """The run directories of a trial: itself, or one per fold (``t001-f2``)."""
    if not folds:
        return [(trial.id, None)]
    return [(f"{trial.id}-f{k}", k) for k in range(1, folds + 1)]


def _fold_sets(folds: int | None, fold: int | None) -> tuple[str, ...]:
    if not folds or fold is None:
        return ()
    # the fold validates: no validation_fraction besides
    return (f"data.cv={{folds: {folds}, fold: {fold}}}", "data.validation_fraction=null")


def _record(trial: Trial, fold: int | None, outcome: dict[str, Any],
            folds: int | None) -> None:
    """A run's outcome into its trial: the trial's own, or once every fold has ended, the
    folds' mean score and spread."""
    if fold is None or not folds:
        for key in ("status", "score", "best_epoch", "epochs", "seconds", "error"):
            setattr(trial, key, outcome[key])
        return
    assert trial.folds is not None and trial.fold_status is not None
    trial.folds[fold - 1] = outcome["score"]
    trial.fold_status[fold - 1] = outcome["status"]
    trial.seconds = (trial.seconds or 0.0) + (outcome["seconds"] or 0.0)
    if outcome["error"] and not trial.error:
        trial.error = f"fold {fold}: {outcome['error']}"
    statuses = set(trial.fold_status)
    if statuses & {"pending", "running"}:
        return
    if "failed" in statuses:
        trial.status = "failed"
    elif "interrupted" in statuses:
        trial.status = "interrupted"
    else:
        trial.status = "stopped" if "stopped" in statuses else "finished"
        scores = [s for s in trial.folds if s is not None]
        if len(scores) == folds:
            trial.score = float(np.mean(scores))
            trial.spread = float(np.std(scores))


def _outcome(run_dir: Path, metric: str) -> dict[str, Any]:
    """The outcome of a run that ended (as a worker reports it), from its files."""
    score, best_epoch, epochs = trial_score(run_dir, metric)
    seconds = RunFiles(run_dir).read_summary().get("wall_time_s")
    # a run that stopped early (by its patience, or the scheduler) and wrote its model
    # has finished: the rungs in sweep.json say which trials the scheduler stopped
    return {"status": "finished", "score": score, "best_epoch": best_epoch,
            "epochs": epochs, "seconds": seconds if isinstance(seconds, float) else None,
            "error": None}


def _completed(run_dir: Path) -> bool:
    files = RunFiles(run_dir)
    return (files.read_summary().get("status") in ("finished", "stopped early")
            and files.model.is_file())


def _report(root: Path, trials: list[Trial], best: list[Trial], metric: str,
            display: Display, cv: bool) -> None:
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
    if cv and winner.folds is not None:
        folds = ", ".join(metric_text(s) if s is not None else "-" for s in winner.folds)
        spread = f" ± {metric_text(winner.spread or 0.0)} over {len(winner.folds)} folds ({folds})"
        where = ""
    else:
        spread, where = "", f" at epoch {winner.best_epoch}"
    values = ", ".join(f"{k}={yaml_value(v)}" for k, v in winner.params.items())
    display.info(f"best: {winner.id}" + (f" ({values})" if values else "")
                 + f": {metric} {score}{spread}{where}")
    name = winner.id if not cv else f"{winner.id}-f1"
    model = RunFiles(SweepFiles(root).trial(name)).model
    if cv:
        display.info("train it on the config's own split (data.cv left out) with:")
    else:
        display.info("train it again (bit for bit) with:")
    display.info(f"  bp train {_shown(SweepFiles(root).best)}")
    display.info("or predict with " + ("a fold's model:" if cv else "its model:"))
    display.info(f"  bp predict {_shown(model)} INPUT.csv")


class SweepFailed(CheckFailed):
    """Every trial failed: nothing to recommend."""


def _short(value: Any) -> str:
    """A value for the table: floats to 4 significant digits (results.csv has them all)."""
    return f"{value:.4g}" if isinstance(value, float) else yaml_value(value)


def _shown(path: Path) -> str:
    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)
