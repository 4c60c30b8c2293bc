"""bpcli/metrics.py: classification and regression scores by hand, and one number format
for a loss or metric across train, evaluate, runs and inspect."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.metrics import classification_report, metric_text, regression_report, value_text
from tests.conftest import DATASETS, iris_config


@pytest.mark.parametrize(("value", "text"), [
    (0.93333333, "0.9333"), (61.684321, "61.6843"), (9999.99994, "9999.9999"),
    (156729.8996, "156729.9"), (-2.5, "-2.5000"), (0.0, "0.0000"), (0.00012345, "0.0001"),
    (3.0123e-05, "3.012e-05"), (1.23456e15, "1.2346e+15"), (math.inf, "inf"),
    (math.nan, "nan"),
])
def test_metric_text(value: float, text: str) -> None:
    assert metric_text(value) == text


def test_classification_scores_by_hand() -> None:
    truth = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    report = classification_report(truth, predicted, ["a", "b", "c"])
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.confusion.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    a, b, c = report.classes
    assert (a.precision, a.recall, a.support) == (1.0, pytest.approx(2 / 3), 3)
    assert (b.precision, b.recall) == (0.5, 0.5)
    assert (c.precision, c.recall, c.f1) == (0.5, 1.0, pytest.approx(2 / 3))
    assert report.macro.recall == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert report.weighted.recall == pytest.approx(report.accuracy)


def test_a_class_never_predicted_scores_zero_precision() -> None:
    report = classification_report(np.array([0, 1]), np.array([0, 0]), ["a", "b"])
    assert report.classes[1].precision == 0.0 and report.classes[1].f1 == 0.0


def test_regression_scores_by_hand() -> None:
    truth = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    predicted = np.array([[1.0, 10.0], [2.0, 20.0], [5.0, 31.0]])
    report = regression_report(["y", "z"], truth, predicted)
    y, z = report.targets
    assert (y.target, z.target, report.n) == ("y", "z", 3)
    assert y.rmse == pytest.approx(np.sqrt(4 / 3))
    assert y.mae == pytest.approx(2 / 3)
    assert y.r2 == pytest.approx(1 - 4 / 2)
    assert z.rmse == pytest.approx(np.sqrt(1 / 3)) and z.r2 == pytest.approx(1 - 1 / 200)


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
