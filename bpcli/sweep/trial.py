"""A trial: one point of the search space trained through the ordinary session, so that
its run directory is what ``bp train`` of its config.yaml writes, bit for bit. A listener
reports each epoch's score; at the scheduler's rungs the trial asks whether to carry on,
and stops, when told, the way early stopping stops (its best epoch kept, its model
written)."""

from __future__ import annotations

import math
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bpcli import session
from bpcli.config.sweep import trial_config
from bpcli.display import Display
from bpcli.errors import BpError, UsageError
from bpcli.events import EpochEnded, Event, TrainingStarted
from bpcli.rundir import RunFiles
from bpcli.sweep.record import fresh_trial_dir, trial_score
from bpcli.threads import set_threads
from bpcli.trainer import TrainingInterrupted

#: (kind, trial id, payload): "epoch" {epoch, value}, "rung" {epoch, score}
Report = Callable[[str, str, dict[str, Any]], None]
#: answers a rung report: whether the trial carries on
Ask = Callable[[str, int, float | None], bool]


@dataclass(frozen=True)
class TrialTask:
    """What a worker needs to train one trial (plain values: it crosses processes)."""

    trial_id: str
    params: dict[str, Any]
    run_dir: Path
    sweep_path: Path
    base_path: Path | None  # None: written inline in the sweep file
    metric: str
    threads: int
    rungs: tuple[int, ...]  # epochs at which to ask whether to carry on
    sets: tuple[str, ...] = ()  # --set texts applied after the parameters (a cv fold)


@dataclass
class TrialOutcome:
    status: str  # finished, stopped, failed, interrupted
    score: float | None
    best_epoch: int | None
    epochs: int
    seconds: float | None
    error: str | None = None


class Reporter:
    """Listens to the trial's training: each epoch's value of the sweep's metric, and the
    score so far (the metric at the best epoch by the run's own rule, which is the epoch
    its model keeps)."""

    def __init__(self, task: TrialTask, report: Report, ask: Ask | None) -> None:
        self.task, self.report, self.ask = task, report, ask
        self.field: str | None = None
        self.score: float | None = None
        self.stopped = False

    def value(self, event: EpochEnded) -> float | None:
        value = {"train_loss": event.train_loss, "val_loss": event.val_loss,
                 "val_metric": event.val_metric}[self.field or "val_loss"]
        return value if math.isfinite(value) else None

    def __call__(self, event: Event) -> None:
        if isinstance(event, TrainingStarted):
            metric = self.task.metric
            if metric in ("train_loss", "val_loss"):
                self.field = metric
            elif metric in (f"val_{event.metric_name}", "val_metric"):
                self.field = "val_metric"
            else:
                raise UsageError(f"metric: {metric} is not measured for this task (its "
                                 f"{RunFiles.METRICS} has val_{event.metric_name}); set the "
                                 f"sweep's metric to val_{event.metric_name} or val_loss")
        elif isinstance(event, EpochEnded):
            if event.is_best:
                self.score = self.value(event)
            self.report("epoch", self.task.trial_id, {"epoch": event.epoch,
                                                       "value": self.value(event)})

    def stop_after(self, event: EpochEnded) -> bool:
        """The scheduler's word at a rung (called before the listeners hear of the epoch)."""
        if self.ask is None or event.epoch not in self.task.rungs:
            return False
        score = self.value(event) if event.is_best else self.score
        if self.ask(self.task.trial_id, event.epoch, score):
            return False
        self.stopped = True
        return True


def run_trial(task: TrialTask, report: Report, ask: Ask | None) -> TrialOutcome:
    """Train the trial (or carry it on from its last checkpoint) and say how it ended. A
    failure is the trial's outcome, never the sweep's: it is recorded with its message."""
    set_threads(task.threads)
    files = RunFiles(task.run_dir)
    reporter = Reporter(task, report, ask)
    hooks = session.Hooks(listeners=[reporter], stop_after=reporter.stop_after,
                          threads_by="sweep")
    resuming = files.last.is_file() and files.config.is_file()
    if not resuming:
        fresh_trial_dir(task.run_dir)
    task.run_dir.mkdir(parents=True, exist_ok=True)
    status, error = "finished", None
    with open(task.run_dir / "train.log", "a", encoding="utf-8") as log:
        display = Display(log, interactive=False)
        try:
            if resuming:
                session.resume(task.run_dir, display, force=False, threads=task.threads,
                               hooks=hooks)
            else:
                loaded = trial_config(task.sweep_path, task.base_path, task.params,
                                      sets=task.sets)
                session.train_loaded(loaded, display, threads=task.threads,
                                     run_dir=task.run_dir, hooks=hooks)
            if reporter.stopped:
                status = "stopped"
        except (TrainingInterrupted, KeyboardInterrupt):
            status = "interrupted"
        except BpError as exc:
            status, error = "failed", " ".join(exc.lines())
            log.write(f"bp: {error}\n")
        except Exception as exc:  # a bug, but one trial's: the sweep goes on
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            log.write(traceback.format_exc())
    if status == "interrupted" and files.model.is_file() and \
            files.read_summary().get("status") in ("finished", "stopped early"):
        # the signal came as the run wrote its last files: it is complete
        status = "stopped" if reporter.stopped else "finished"
    score, best_epoch, epochs = trial_score(task.run_dir, task.metric)
    seconds = files.read_summary().get("wall_time_s")
    if status == "failed" and error is not None:
        error = error.replace("\n", " ")
    return TrialOutcome(status, score if status in ("finished", "stopped") else None,
                        best_epoch, epochs, seconds if isinstance(seconds, float) else None,
                        error)


def worker_main(index: int, tasks: Any, events: Any, replies: Any, parent: int) -> None:
    """A worker process: trains the trials it is handed until told to end (``None``) or
    until the sweep's process is gone. Ctrl-C reaches the sweep's process only (the
    worker has a process group of its own), which passes it on to each worker once."""
    import queue

    os.setpgrp()

    def report(kind: str, trial_id: str, payload: dict[str, Any]) -> None:
        events.put((kind, index, trial_id, payload))

    def ask(trial_id: str, epoch: int, score: float | None) -> bool:
        events.put(("rung", index, trial_id, {"epoch": epoch, "score": score}))
        return bool(replies.get())

    while True:
        try:
            try:
                task = tasks.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:
                    return
                continue
            if task is None:
                return
            events.put(("started", index, task.trial_id, {"pid": os.getpid()}))
            outcome = run_trial(task, report, ask if task.rungs else None)
            events.put(("done", index, task.trial_id, outcome.__dict__))
        except KeyboardInterrupt:  # between trials: nothing to save
            continue
