"""Run directories: creating them and recording a run's files as training goes."""

from __future__ import annotations

import csv
import io
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bpcli import __version__
from bpcli.atomic import json_text, write_text_atomic
from bpcli.errors import UsageError
from bpcli.events import EpochEnded, Event

CHECKPOINTS = "checkpoints"


def create_run_dir(runs_dir: Path, name: str) -> Path:
    """Make ``runs_dir/<name>-<timestamp>[-N]``, never reusing an existing directory."""
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{runs_dir}: cannot create the runs directory: {exc.strerror}") from None
    if not os.access(runs_dir, os.W_OK | os.X_OK):
        raise UsageError(f"{runs_dir}: the runs directory is not writable; choose another "
                         "with output.runs_dir")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        run_dir = runs_dir / (f"{name}-{stamp}" + (f"-{attempt}" if attempt > 1 else ""))
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        (run_dir / CHECKPOINTS).mkdir()
        return run_dir
    raise UsageError(f"{runs_dir}: too many runs named {name!r} this second")


def environment() -> dict[str, str]:
    """Versions that matter for reproducing a run."""
    return {"bp": __version__, "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform()}


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json_text(data, indent=2) + "\n")


class RunRecorder:
    """Listens to training and keeps the run directory current: ``metrics.csv`` and the
    ``last``/``best`` checkpoints after every epoch."""

    def __init__(self, run_dir: Path, metric_name: str,
                 save_checkpoint: Callable[[Path, EpochEnded], None]) -> None:
        self.run_dir = run_dir
        self.save_checkpoint = save_checkpoint
        self.header = ["epoch", "train_loss", "val_loss", f"val_{metric_name}",
                       "learning_rate", "seconds"]
        self.rows: list[list[object]] = []

    def __call__(self, event: Event) -> None:
        if not isinstance(event, EpochEnded):
            return
        self.rows.append([event.epoch, repr(event.train_loss), repr(event.val_loss),
                          repr(event.val_metric), repr(event.learning_rate),
                          f"{event.seconds:.4f}"])
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        write_text_atomic(self.run_dir / "metrics.csv", buffer.getvalue())
        self.save_checkpoint(self.run_dir / CHECKPOINTS / "last.npz", event)
        if event.is_best:
            self.save_checkpoint(self.run_dir / CHECKPOINTS / "best.npz", event)
