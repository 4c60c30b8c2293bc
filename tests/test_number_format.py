"""One number format for a loss or metric across train, evaluate, runs and inspect."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.metrics import metric_text, value_text
from tests.conftest import DATASETS, iris_config


@pytest.mark.parametrize(("value", "text"), [
    (0.93333333, "0.9333"), (61.684321, "61.6843"), (9999.99994, "9999.9999"),
    (156729.8996, "156729.9"), (-2.5, "-2.5000"), (0.0, "0.0000"), (0.00012345, "0.0001"),
    (3.0123e-05, "3.012e-05"), (1.23456e15, "1.2346e+15"), (math.inf, "inf"),
    (math.nan, "nan"),
])
def test_metric_text(value: float, text: str) -> None:
    assert metric_text(value) == text


def test_value_text_shows_recorded_values_as_metrics_and_gaps_as_asked() -> None:
    assert value_text(61.684321) == "61.6843"
    assert value_text(12) == "12" and value_text("3.2.1") == "3.2.1"
    assert value_text(None) == "-" and value_text(None, "unknown") == "unknown"


def test_train_evaluate_runs_and_inspect_print_a_metric_alike(
    runner: CliRunner, in_tmp: Path, write_config: Callable[..., Path],
) -> None:
    # targets in the hundreds of thousands: where 4 decimals and %.4g used to disagree
    with (DATASETS / "diabetes.csv").open() as source:
        rows = list(csv.DictReader(source))
    for row in rows:
        row["progression"] = str(float(row["progression"]) * 1000)
    data = in_tmp / "big.csv"
    with data.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    config = write_config(iris_config(
        data={"path": str(data), "target": "progression"},
        model={"layers": [{"type": "dense", "units": 4}, {"type": "dense"}]},
        training={"epochs": 2, "batch_size": 64}))

    trained = runner.invoke(app, ["train", str(config)])
    assert trained.exit_code == 0, trained.output
    (run_dir,) = Path("runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    best = metric_text(summary["metrics"]["val_rmse"])
    assert "e" not in best  # no exponent for a six-digit RMSE
    assert f"val_rmse {best}" in trained.output

    listed = runner.invoke(app, ["runs", "runs"])
    assert f"val_rmse {best}" in listed.output
    inspected = runner.invoke(app, ["inspect", str(run_dir / "model.npz")])
    assert f"val_rmse {best}" in inspected.output

    scores = json.loads(runner.invoke(app, ["evaluate", str(run_dir / "model.npz"), str(data),
                                            "--json"]).output)
    evaluated = runner.invoke(app, ["evaluate", str(run_dir / "model.npz"), str(data)])
    (target,) = scores["targets"]
    for key in ("rmse", "mae", "r2"):
        assert metric_text(target[key]) in evaluated.output
    assert "e+" not in evaluated.output


def test_evaluate_plot_says_where_it_wrote(runner: CliRunner, in_tmp: Path,
                                           write_config: Callable[..., Path]) -> None:
    pytest.importorskip("matplotlib")
    trained = runner.invoke(app, ["train", str(write_config(iris_config()))])
    assert trained.exit_code == 0, trained.output
    (model,) = Path("runs").glob("*/model.npz")
    result = runner.invoke(app, ["evaluate", str(model), str(DATASETS / "iris.csv"),
                                 "--plot", "confusion.png"])
    assert result.exit_code == 0, result.output
    assert Path("confusion.png").is_file()
    assert result.stderr == "confusion matrix written to confusion.png\n"
