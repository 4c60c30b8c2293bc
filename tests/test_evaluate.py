"""bp evaluate (bpcli/commands/evaluate.py); the metrics behind it are in test_metrics.py."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.metrics import metric_text
from tests.conftest import DATASETS, iris_config

Writer = Callable[..., Path]


def test_evaluate_command(runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    assert runner.invoke(app, ["train", str(write_config(iris_config()))]).exit_code == 0
    (model,) = in_tmp.glob("runs/*/model.npz")
    result = runner.invoke(app, ["evaluate", str(model), str(DATASETS / "iris.csv")])
    assert result.exit_code == 0, result.output
    for text in ("accuracy", "setosa", "macro avg", "weighted avg", "confusion matrix"):
        assert text in result.output
    result = runner.invoke(app, ["evaluate", str(model), str(DATASETS / "iris.csv"), "--json"])
    scores = json.loads(result.output)
    assert scores["task"] == "classification"
    assert np.array(scores["confusion"]).sum() == 150
    no_target = in_tmp / "features.csv"
    no_target.write_text("sepal_length,sepal_width,petal_length,petal_width\n5,3,1,0.2\n")
    result = runner.invoke(app, ["evaluate", str(model), str(no_target)])
    assert result.exit_code == 2 and "'species'" in result.output


def test_evaluate_regression(runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    config = {"data": {"path": str(DATASETS / "diabetes.csv"), "target": "progression"},
              "model": {"layers": [{"type": "dense", "units": 8}, {"type": "dense"}]},
              "training": {"epochs": 3}}
    assert runner.invoke(app, ["train", str(write_config(config))]).exit_code == 0
    (model,) = in_tmp.glob("runs/*/model.npz")
    result = runner.invoke(app, ["evaluate", str(model), str(DATASETS / "diabetes.csv"),
                                 "--json"])
    scores = json.loads(result.output)
    assert scores["task"] == "regression" and scores["n"] == 442
    (target,) = scores["targets"]
    assert target["target"] == "progression"
    assert 20 < target["rmse"] < 200 and target["mae"] <= target["rmse"]
    # the same scores from bp predict's CSV and the file's own target column, in its units
    out = in_tmp / "predictions.csv"
    assert runner.invoke(app, ["predict", str(model), str(DATASETS / "diabetes.csv"),
                               "-o", str(out)]).exit_code == 0
    with out.open() as f:
        predicted = np.array([float(row["progression"]) for row in csv.DictReader(f)])
    with (DATASETS / "diabetes.csv").open() as f:
        truth = np.array([float(row["progression"]) for row in csv.DictReader(f)])
    errors = predicted - truth
    assert target["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-6)
    assert target["mae"] == pytest.approx(np.mean(np.abs(errors)), rel=1e-6)


def test_evaluate_plot_writes_a_confusion_matrix_png(runner: CliRunner, in_tmp: Path,
                                                     write_config: Writer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import struct

    from bpcli import plots

    figures: list[tuple[Any, Path]] = []
    write = plots._write_png

    def record(figure: Any, path: Path) -> None:
        figures.append((figure, path))
        write(figure, path)

    monkeypatch.setattr(plots, "_write_png", record)

    assert runner.invoke(app, ["train", str(write_config(iris_config()))]).exit_code == 0
    (model,) = in_tmp.glob("runs/*/model.npz")
    picture = in_tmp / "cm.png"
    result = runner.invoke(app, ["evaluate", str(model), str(DATASETS / "iris.csv"),
                                 "--plot", str(picture)])
    assert result.exit_code == 0, result.output
    data = picture.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > height > 300
    # what it draws: each cell's count and share of its true class, the classes on the axes
    figure, path = figures[-1]  # after training's curves.png
    assert path == picture
    axes = figure.axes[0]
    scores = json.loads(runner.invoke(app, ["evaluate", str(model), str(DATASETS / "iris.csv"),
                                            "--json"]).output)
    counts = np.array(scores["confusion"])
    shares = counts / counts.sum(axis=1, keepdims=True)
    assert [t.get_text() for t in axes.texts] == [
        f"{counts[i, j]}\n{shares[i, j]:.0%}" for i in range(3) for j in range(3)]
    assert np.allclose(axes.get_images()[0].get_array(), shares)
    classes = ["setosa", "versicolor", "virginica"]
    assert [t.get_text() for t in axes.get_xticklabels()] == classes
    assert [t.get_text() for t in axes.get_yticklabels()] == classes
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("predicted class", "true class")
    assert axes.get_title() == f"iris.csv: accuracy {metric_text(scores['accuracy'])}"
    result = runner.invoke(app, ["evaluate", str(model), str(DATASETS / "iris.csv"),
                                 "--plot", str(in_tmp / "cm.jpg")])
    assert result.exit_code == 2 and "PNG" in result.output


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
