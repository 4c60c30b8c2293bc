"""Helpers for the tests of CSV data: files written by Python's csv module, tiny configs
around them, and a table's cells as text."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bpcli.config import load_config
from bpcli.csvfile import Table, as_text, read_csv
from bpcli.experiment import Experiment, prepare

Writer = Callable[..., Path]


def write_rows(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]],
               delimiter: str = ",", lineterminator: str = "\n") -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter, lineterminator=lineterminator)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def config(data: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A tiny, fast config around ``data``; ``sections`` replace whole sections."""
    result: dict[str, Any] = {
        "data": data,
        "model": {"layers": [{"type": "dense", "units": 4, "activation": "tanh"},
                             {"type": "dense"}]},
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "training": {"epochs": 3, "batch_size": 16, "seed": 0},
        "output": {"runs_dir": "runs", "name": "t"},
    }
    result.update(sections)
    return result


def experiment(write_config: Writer, data: dict[str, Any], **sections: Any) -> Experiment:
    return prepare(load_config(write_config(config(data, **sections))))


def texts(table: Table, name: str) -> list[str]:
    return [str(t) for t in as_text(table.columns[name])]


def mixed_table(path: Path, n: int) -> Table:
    """n rows of a number (some missing), a category and a label, read back."""
    rng = np.random.default_rng(n)
    rows = [["" if i % 17 == 0 else f"{v:.4f}", "rgb"[i % 3], "ab"[i % 2]]
            for i, v in enumerate(rng.normal(size=n))]
    return read_csv(write_rows(path, ["x", "colour", "y"], rows))
