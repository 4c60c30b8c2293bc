"""``bp runs``: the run directories under a runs directory, newest first; and
``bp runs diff``: how two runs' configs and results differ."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from bpcli.display import Display
from bpcli.errors import UsageError
from bpcli.metrics import metric_text, value_text
from bpcli.rundir import RunFiles, run_is_live
from bpcli.sweep.record import is_sweep_dir
from bpcli.trainer import EarlyStopping

#: The timestamp ``create_run_dir`` puts in a run's name: ``<name>-YYYYmmdd-HHMMSS[-N]``.
STAMP = re.compile(r"-(\d{8}-\d{6})(?:-(\d+))?$")
ABSENT = "(absent)"


@dataclass
class RunInfo:
    """What a run directory says about its run; ``None`` where it does not say."""

    path: Path
    status: str  # from summary.json: running, finished, stopped early, interrupted, diverged
    started: datetime
    order: tuple[float, int, int]  # sorts runs oldest first
    epochs_done: int  # rows of metrics.csv
    epochs_planned: int | None  # training.epochs of config.yaml
    best_epoch: int | None
    val_loss: float | None
    metric_name: str | None  # e.g. "val_accuracy"
    metric: float | None
    wall_time: float | None  # seconds
    wall_time_estimated: bool  # summed from metrics.csv: the run has no final summary

    @property
    def name(self) -> str:
        return self.path.name

    def best_text(self) -> str:
        """The best epoch's validation metric, e.g. ``val_accuracy 0.9333``."""
        if self.metric_name is None or self.metric is None:
            return "-"
        return f"{self.metric_name} {metric_text(self.metric)}"

    def epochs_text(self) -> str:
        planned = f"/{self.epochs_planned}" if self.epochs_planned is not None else ""
        return f"{self.epochs_done}{planned}"

    def wall_time_text(self) -> str:
        if self.wall_time is None:
            return "-"
        return ("~" if self.wall_time_estimated else "") + _duration(self.wall_time)


def is_run_dir(path: Path) -> bool:
    """A directory ``bp train`` made: it holds the run's resolved config or its summary."""
    return path.is_dir() and (RunFiles(path).config.is_file()
                              or RunFiles(path).summary.is_file())


def find_runs(runs_dir: Path) -> list[RunInfo]:
    """The runs in ``runs_dir``, newest first; other directories and files are skipped."""
    if not runs_dir.exists():
        raise UsageError(f"{runs_dir}: no such runs directory; bp train writes runs to "
                         "output.runs_dir (default: runs) under the directory it runs in")
    if not runs_dir.is_dir():
        raise UsageError(f"{runs_dir}: not a directory; give the directory that holds the "
                         "run directories")
    runs = [read_run(p) for p in runs_dir.iterdir() if is_run_dir(p)]
    return sorted(runs, key=lambda run: run.order, reverse=True)


def read_run(run_dir: Path) -> RunInfo:
    """Read what a run directory records. Missing or damaged files leave gaps (``None``,
    status ``unknown``), never errors: a run killed at any moment is still listed."""
    summary = RunFiles(run_dir).read_summary()
    config = _read_config(run_dir)
    metric_column, rows = _read_metrics(run_dir)
    status = summary.get("status")
    if status == "running" and _process_gone(run_dir, summary):
        status = "crashed"
    started, order = _started(run_dir)
    info = RunInfo(path=run_dir, status=status if isinstance(status, str) else "unknown",
                   started=started, order=order, epochs_done=len(rows),
                   epochs_planned=_int(_get(config, "training", "epochs")),
                   best_epoch=None, val_loss=None, metric_name=metric_column, metric=None,
                   wall_time=_float(summary.get("wall_time_s")), wall_time_estimated=False)
    metrics = summary.get("metrics")
    if isinstance(metrics, dict) and metrics:
        info.best_epoch = _int(metrics.get("best_epoch"))
        info.val_loss = _float(metrics.get("val_loss"))
        name = next((k for k in metrics if k.startswith("val_") and k != "val_loss"), None)
        if name is not None:
            info.metric_name, info.metric = name, _float(metrics[name])
    elif rows:
        best = _best_row(rows, metric_column, config)
        info.best_epoch = _int(best.get("epoch"))
        info.val_loss = best.get("val_loss")
        info.metric = best.get(metric_column) if metric_column else None
    if info.wall_time is None and rows:
        seconds = [value for row in rows if (value := row.get("seconds")) is not None]
        if seconds:
            info.wall_time, info.wall_time_estimated = sum(seconds), True
    return info


def list_runs(runs_dir: Path, display: Display) -> None:
    """``bp runs``: a table of the runs in ``runs_dir``, newest first."""
    runs = find_runs(runs_dir)
    sweeps = sorted(p for p in runs_dir.iterdir() if is_sweep_dir(p))
    if not runs and not sweeps:
        display.info(f"no runs in {runs_dir} yet; bp train CONFIG.yaml writes one there")
        return
    for sweep in sweeps:  # their trials are runs one level down
        display.info(f"{sweep.name}: a sweep; list its trials with: bp runs {sweep}")
    if not runs:
        return
    rows = [(run.name, _when(run.started), run.epochs_text(), run.best_text(), run.status,
             run.wall_time_text()) for run in runs]
    display.runs_table(f"{len(runs)} run{'s' if len(runs) > 1 else ''} in {runs_dir}", rows)
    for run in runs:
        if run.status in ("crashed", "interrupted") and (RunFiles(run.path).last
                                                         ).is_file():
            display.info(f"{run.name} {run.status}; carry it on with: "
                         f"bp train --resume {run.path}")


def _process_gone(run_dir: Path, summary: dict[str, Any]) -> bool:
    """Whether the process that says it is training ``run_dir`` has ended without saying
    so (SIGKILL, a crash, a power cut). Only a process on this machine can be asked."""
    if summary.get("host") not in (None, socket.gethostname()):
        return False
    live = run_is_live(run_dir)
    if live is not None:
        return not live
    pid = summary.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # someone else's process: it exists
        return False
    return False


def diff_runs(run_a: Path, run_b: Path, display: Display) -> None:
    """``bp runs diff``: the config keys that differ, then the two runs' results."""
    for run in (run_a, run_b):
        _check_run_dir(run)
    configs = [_config_or_error(run) for run in (run_a, run_b)]
    names = (str(run_a), str(run_b))
    differences = config_differences(configs[0], configs[1])
    if differences:
        count = len(differences)
        display.comparison(f"config: {count} key{'s' if count > 1 else ''} differ"
                           f"{'s' if count == 1 else ''}", names, differences)
    else:
        display.info("config: the same in both runs")
    a, b = read_run(run_a), read_run(run_b)
    display.comparison("results", names, result_rows(a, b))


def result_rows(a: RunInfo, b: RunInfo) -> list[tuple[str, str, str]]:
    """The two runs' outcomes side by side, one row per quantity."""
    rows = [("status", a.status, b.status),
            ("started", _when(a.started), _when(b.started)),
            ("epochs", a.epochs_text(), b.epochs_text()),
            ("best epoch", value_text(a.best_epoch), value_text(b.best_epoch)),
            ("val_loss", value_text(a.val_loss), value_text(b.val_loss))]
    for name in dict.fromkeys(n for n in (a.metric_name, b.metric_name) if n is not None):
        rows.append((name, value_text(a.metric if a.metric_name == name else None),
                     value_text(b.metric if b.metric_name == name else None)))
    rows.append(("wall time", a.wall_time_text(), b.wall_time_text()))
    return rows


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists as dotted paths: ``{"model.layers[0].units": 16, ...}``.
    An empty mapping or list is a value of its own."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and value:
        flat = {}
        for i, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}[{i}]"))
        return flat
    return {prefix: value}


def config_differences(a: Any, b: Any) -> list[tuple[str, str, str]]:
    """Each dotted key whose value differs, or that only one config has, in file order."""
    flat_a, flat_b = flatten(a), flatten(b)
    keys = list(dict.fromkeys([*flat_a, *flat_b]))
    return [(key, _config_text(flat_a, key), _config_text(flat_b, key)) for key in keys
            if key not in flat_a or key not in flat_b or flat_a[key] != flat_b[key]]


def _check_run_dir(path: Path) -> None:
    if not path.exists():
        raise UsageError(f"{path}: no such run directory")
    if not path.is_dir():
        raise UsageError(f"{path}: not a run directory; give a directory under runs/")
    if not RunFiles(path).config.is_file():
        raise UsageError(f"{path}: not a bp run directory (no {RunFiles.CONFIG})")


def _config_or_error(run_dir: Path) -> Any:
    path = RunFiles(run_dir).config
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not readable YAML ({type(exc).__name__}); the run's "
                         "config is damaged") from None


def _read_config(run_dir: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(RunFiles(run_dir).config.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return config if isinstance(config, dict) else {}


def _read_metrics(run_dir: Path) -> tuple[str | None, list[dict[str, float | None]]]:
    """The metric's column of ``metrics.csv`` and its epoch rows, as numbers by column
    name; nothing when the file is missing or unreadable."""
    try:
        metrics = RunFiles(run_dir).read_metrics()
    except (OSError, UnicodeDecodeError, csv.Error):
        return None, []
    rows = [{name: _float(_parse(cell)) for name, cell in zip(metrics.header, row,
                                                               strict=False)}
            for row in metrics.epochs()]
    return metrics.metric_column, rows


def _best_row(rows: list[dict[str, float | None]], metric_column: str | None,
              config: dict[str, Any]) -> dict[str, float | None]:
    """The best epoch's row, by the rule that picks it in training (the last row when
    no epoch has a validation score)."""
    spec = _get(config, "training", "early_stopping")
    on_metric = _get(spec, "monitor") == "val_metric" and metric_column is not None
    rule = EarlyStopping.watching((metric_column or "").removeprefix("val_"), on_metric,
                                  min_delta=_float(_get(spec, "min_delta")) or 0.0)
    monitored = [row.get(rule.monitor) for row in rows]
    best = rule.best(math.nan if value is None else value for value in monitored)
    return rows[-1] if best is None else rows[best]


def _started(run_dir: Path) -> tuple[datetime, tuple[float, int, int]]:
    """When the run started: the timestamp in its name, else when its config was written.
    Also a sort key, with the ``-N`` suffix and the config's mtime to order runs started in
    the same second."""
    config = RunFiles(run_dir).config
    try:
        mtime_ns = (config if config.exists() else run_dir).stat().st_mtime_ns
    except OSError:
        mtime_ns = 0
    match = STAMP.search(run_dir.name)
    started = None
    if match:
        try:
            started = datetime.strptime(match.group(1), "%Y%m%d-%H%M%S")
        except ValueError:
            started = None
    if started is None:
        started = datetime.fromtimestamp(mtime_ns / 1e9).replace(microsecond=0)
    suffix = int(match.group(2)) if match and match.group(2) else 1
    return started, (started.timestamp(), suffix, mtime_ns)


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _parse(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None and math.isfinite(number) else None


def _when(started: datetime) -> str:
    return started.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _config_text(flat: dict[str, Any], key: str) -> str:
    """A config value as the YAML would hold it (JSON for all but text), or ``ABSENT``."""
    if key not in flat:
        return ABSENT
    value = flat[key]
    return value if isinstance(value, str) else json.dumps(value, default=str)
