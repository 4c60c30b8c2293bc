"""Run directories: their files by name (``RunFiles``), creating them, fingerprinting
their inputs, recording a run's files as training goes, and reading them back."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
import queue
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np

from bpcli import __version__
from bpcli.atomic import json_text, write_text_atomic
from bpcli.errors import UsageError
from bpcli.events import EpochEnded, Event, Stopped

MiB = 1 << 20


@dataclass(frozen=True)
class RunFiles:
    """The files of a run directory, by what they hold: every name in one place
    (README's "What a run leaves behind" describes them). The names alone, for messages,
    are the class's constants: ``RunFiles.METRICS``."""

    root: Path

    CONFIG: ClassVar[str] = "config.yaml"  # the resolved config
    METRICS: ClassVar[str] = "metrics.csv"  # a row per epoch
    SUMMARY: ClassVar[str] = "summary.json"  # status, best epoch, wall time, the process
    MODEL: ClassVar[str] = "model.npz"  # the best epoch's weights with their preprocessing
    TEST_SCORES: ClassVar[str] = "test.json"  # the model scored once on the test split
    CURVES: ClassVar[str] = "curves.png"  # the learning curves, with matplotlib
    SAMPLES: ClassVar[str] = "samples.png"  # an image GAN's generated images, at the end
    SAMPLE_GRIDS: ClassVar[str] = "samples"  # ... and every few epochs, epoch-<N>.png
    FIDELITY: ClassVar[str] = "fidelity.json"  # a tabular GAN's columns against the real ones
    FINGERPRINTS: ClassVar[str] = "fingerprints.json"  # SHA-256 of the config and data
    LOCK: ClassVar[str] = ".lock"  # held by the process training the run
    CHECKPOINTS: ClassVar[str] = "checkpoints"
    LAST: ClassVar[str] = "last.npz"  # the newest checkpoint, which --resume carries on from
    BEST: ClassVar[str] = "best.npz"  # the checkpoint of the best epoch so far

    @property
    def config(self) -> Path:
        return self.root / self.CONFIG

    @property
    def metrics(self) -> Path:
        return self.root / self.METRICS

    @property
    def summary(self) -> Path:
        return self.root / self.SUMMARY

    @property
    def model(self) -> Path:
        return self.root / self.MODEL

    @property
    def test_scores(self) -> Path:
        return self.root / self.TEST_SCORES

    @property
    def fidelity(self) -> Path:
        return self.root / self.FIDELITY

    @property
    def samples(self) -> Path:
        return self.root / self.SAMPLES

    def sample_grid(self, epoch: int) -> Path:
        return self.root / self.SAMPLE_GRIDS / f"epoch-{epoch:04d}.png"

    @property
    def curves(self) -> Path:
        return self.root / self.CURVES

    @property
    def fingerprints(self) -> Path:  # checked on resume
        return self.root / self.FINGERPRINTS

    @property
    def lock(self) -> Path:
        return self.root / self.LOCK

    @property
    def checkpoints(self) -> Path:
        return self.root / self.CHECKPOINTS

    @property
    def last(self) -> Path:
        return self.checkpoints / self.LAST

    @property
    def best(self) -> Path:
        return self.checkpoints / self.BEST

    def read_metrics(self) -> MetricsFile:
        """What metrics.csv holds; raises ``OSError``, ``UnicodeDecodeError`` or
        ``csv.Error`` when it cannot be read (each reader says what that means for it)."""
        return MetricsFile.read(self.metrics)

    def read_summary(self) -> dict[str, Any]:
        """What summary.json says; empty when it is missing or damaged (a run killed at any
        moment still has a directory to read)."""
        try:
            summary = json.loads(self.summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return summary if isinstance(summary, dict) else {}


try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked, and their state is as recorded
    fcntl = None  # type: ignore[assignment]


def create_run_dir(runs_dir: Path, name: str, bytes_needed: int) -> Path:
    """Make ``runs_dir/<name>-<timestamp>[-N]``, never reusing an existing directory, after
    checking that ``runs_dir`` is writable and has room for the run's files."""
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{runs_dir}: cannot create the runs directory: "
                         f"{exc.strerror or exc}; choose another with output.runs_dir") from None
    if not os.access(runs_dir, os.W_OK | os.X_OK):
        raise UsageError(f"{runs_dir}: the runs directory is not writable; choose another "
                         "with output.runs_dir")
    free = shutil.disk_usage(runs_dir).free
    if free < bytes_needed:
        raise UsageError(f"{runs_dir}: only {free / MiB:.1f} MiB free, and this run needs "
                         f"about {bytes_needed / MiB:.1f} MiB; free some space or choose "
                         "another output.runs_dir")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        run_dir = runs_dir / (f"{name}-{stamp}" + (f"-{attempt}" if attempt > 1 else ""))
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        RunFiles(run_dir).checkpoints.mkdir()
        return run_dir
    raise UsageError(f"{runs_dir}: too many runs named {name!r} this second")


class RunLock:
    """The lock that the process training a run holds on its directory. The kernel drops it
    when the process ends, however it ends (SIGKILL, a power cut of the process), which is
    how a crashed run is told from a running one, and how two processes are kept from
    training one run at once."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._file: IO[bytes] | None = None

    def __enter__(self) -> RunLock:
        if fcntl is None:
            return self
        self._file = RunFiles(self.run_dir).lock.open("ab")
        deadline = time.monotonic() + 1.0  # past a `bp runs` that is looking at it
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._file.close()
                    raise UsageError(f"{self.run_dir}: another bp process is training this "
                                     "run; wait for it to end, or stop it (Ctrl-C) "
                                     "first") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the lock


def run_is_live(run_dir: Path) -> bool | None:
    """Whether a process on this machine is training ``run_dir`` now; ``None`` when the
    run was never locked (made before locks, or not on a POSIX system)."""
    if fcntl is None:
        return None
    try:
        with RunFiles(run_dir).lock.open("rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False
    except OSError:
        return None


def process_record() -> dict[str, Any]:
    """Who is training the run: recorded in summary.json while it runs."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "process_started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def remove_stale_temporaries(run_dir: Path) -> int:
    """Delete the temporary files of writes that a dead process never finished (every
    bp write goes to ``.NAME.*.tmp`` before its rename); only call with the run's lock."""
    removed = 0
    for directory in (run_dir, RunFiles(run_dir).checkpoints):
        for tmp in directory.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def environment() -> dict[str, str]:
    """Versions and settings that matter for reproducing a run (and its speed)."""
    return {"bp": __version__, "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "blas": _blas(),
            "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")
            or os.environ.get("OMP_NUM_THREADS") or f"chosen by bp ({os.cpu_count()} cores)"}


def _blas() -> str:
    """The BLAS library NumPy was built with, as NumPy reports it."""
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{info['name']} {info.get('version', '')}".strip()
    except (KeyError, TypeError, ValueError):
        return "unknown"


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json_text(data, indent=2) + "\n")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprints(run_dir: Path, data_files: list[Path]) -> dict[str, Any]:
    """SHA-256 of the run's resolved config and of each data file it reads."""
    return {"config": file_digest(RunFiles(run_dir).config),
            "data": {str(p): file_digest(p) for p in data_files}}


def changed_inputs(run_dir: Path, data_files: list[Path]) -> list[str]:
    """What differs from the fingerprints recorded when the run started."""
    try:
        recorded = json.loads(RunFiles(run_dir).fingerprints.read_text())
    except (OSError, ValueError):
        return [f"{RunFiles(run_dir).fingerprints} is missing or unreadable"]
    changes = []
    if recorded.get("config") != file_digest(RunFiles(run_dir).config):
        changes.append(f"{RunFiles(run_dir).config} was edited")
    for path in data_files:
        old = recorded.get("data", {}).get(str(path))
        if not path.exists():
            changes.append(f"data file {path} is gone")
        elif old != file_digest(path):
            changes.append(f"data file {path} changed")
    return changes


class BackgroundWriter:
    """Writes files in order on one background thread, so that training does not wait for
    the disk. ``flush`` waits for everything submitted and re-raises the first error."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="bp-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._raise()
        self._jobs.put(job)

    def flush(self) -> None:
        self._jobs.join()
        self._raise()

    def close(self) -> None:
        self.flush()
        self._jobs.put(None)
        self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None:  # after a failure, later writes are skipped
                    job()
            except BaseException as exc:  # handed to the training thread by flush()
                self._error = exc
            finally:
                self._jobs.task_done()


class RunRecorder:
    """Listens to training and keeps the run directory current: ``metrics.csv`` and the
    ``best``/``last`` checkpoints after every epoch, and ``last`` when training stops
    mid-epoch. ``best`` is written before ``last``, so that a checkpoint never claims a
    best epoch whose weights are not on disk."""

    def __init__(self, run_dir: Path, metric_name: str,
                 save_checkpoint: Callable[[Path], Callable[[], None]],
                 rows: list[list[str]] | None = None) -> None:
        """``save_checkpoint(path)`` takes a snapshot now and returns the job that writes
        it; the jobs run in order on a background writer (``flush`` waits for them)."""
        self.run_dir = run_dir
        self.save_checkpoint = save_checkpoint
        self.writer = BackgroundWriter()
        self.header = metrics_header(metric_name)
        self.rows: list[list[str]] = rows or []

    def __call__(self, event: Event) -> None:
        if isinstance(event, EpochEnded):
            # a step's own figures (a GAN's D loss, G loss, ...) in columns after the
            # usual ones, which readers of metrics.csv take by position
            self.header = [*self.header[:len(BASE_METRICS)], *event.stats]
            self.rows.append([str(event.epoch), repr(event.train_loss), repr(event.val_loss),
                              repr(event.val_metric), repr(event.learning_rate),
                              str(event.rollbacks), f"{event.seconds:.4f}",
                              # empty: not measured this epoch (a GAN's quality)
                              *("" if math.isnan(v) else repr(v)
                                for v in event.stats.values())])
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(self.header)
            writer.writerows(self.rows)
            text = buffer.getvalue()
            self.writer.submit(lambda: write_text_atomic(RunFiles(self.run_dir).metrics, text))
            if event.is_best:
                self.writer.submit(self.save_checkpoint(RunFiles(self.run_dir).best))
            self.writer.submit(self.save_checkpoint(RunFiles(self.run_dir).last))
        elif isinstance(event, Stopped):
            self.writer.submit(self.save_checkpoint(RunFiles(self.run_dir).last))

    def close(self) -> None:
        """Wait until every file is written (re-raising a write error)."""
        self.writer.close()


BASE_METRICS = ("epoch", "train_loss", "val_loss", "val_<metric>", "learning_rate",
                "rollbacks", "seconds")


def metrics_header(metric_name: str) -> list[str]:
    """The columns every ``metrics.csv`` starts with (a GAN's figures follow them)."""
    return [f"val_{metric_name}" if name == "val_<metric>" else name
            for name in BASE_METRICS]


@dataclass(frozen=True)
class MetricsFile:
    """A ``metrics.csv`` as written: its header and the records after it, cells as text.
    A blank line is an empty record, so that record ``i`` is on line ``i + 2``."""

    path: Path
    header: list[str]
    records: list[list[str]]

    @classmethod
    def read(cls, path: Path) -> MetricsFile:
        lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
        return cls(path, lines[0] if lines else [], lines[1:])

    def epochs(self) -> list[list[str]]:
        """The records of epochs: those that start with an epoch number."""
        return [row for row in self.records if row and row[0].isdigit()]

    @property
    def metric_column(self) -> str | None:
        """The validation metric's column, such as ``val_accuracy``."""
        return next((name for name in self.header[1:]
                     if name.startswith("val_") and name != "val_loss"), None)


def read_metrics(run_dir: Path, up_to_epoch: int) -> list[list[str]]:
    """The rows of ``metrics.csv`` for epochs up to ``up_to_epoch`` (a run killed between
    writing a row and its checkpoint has a row more than its checkpoint)."""
    try:
        rows = RunFiles(run_dir).read_metrics().epochs()
    except FileNotFoundError:
        return []
    return [row for row in rows if int(row[0]) <= up_to_epoch]
