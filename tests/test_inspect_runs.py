"""bp inspect, bp runs and bp runs diff, on real small runs."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from bpcli import session as train_command
from bpcli.cli import app
from bpcli.commands.runs import config_differences, flatten, read_run
from bpcli.modelfile import load_model
from bpcli.rundir import RunLock
from tests.conftest import DATASETS, iris_config
from tests.test_runs import StopAfter

Writer = Callable[..., Path]


def train(runner: CliRunner, config: Path, exit_code: int = 0) -> Path:
    """Train ``config`` in the current directory; return the new run directory."""
    before = set(Path("runs").glob("*")) if Path("runs").is_dir() else set()
    result = runner.invoke(app, ["train", str(config)])
    assert result.exit_code == exit_code, result.output
    (run_dir,) = set(Path("runs").glob("*")) - before
    return run_dir


def table_rows(output: str) -> dict[str, list[str]]:
    """The body rows of the tables in ``output``, by their first cell."""
    rows = [[cell.strip() for cell in line.strip("│").split("│")]
            for line in output.splitlines() if line.startswith("│")]
    return {row[0]: row[1:] for row in rows}


def clean_error(result: Result) -> None:
    """Exit 2 with one ``bp:`` line, not a traceback."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bp: "), result.output


@pytest.fixture
def iris_run(runner: CliRunner, in_tmp: Path, write_config: Writer) -> Path:
    return train(runner, write_config(iris_config()))


# bp inspect


def test_inspect_model(runner: CliRunner, iris_run: Path) -> None:
    result = runner.invoke(app, ["inspect", str(iris_run / "model.npz")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "\x1b" not in out  # plain text through a pipe
    for text in ("dense (units=8, init=", "activation=tanh)",
                 "activation=softmax)", "cross_entropy", "setosa, versicolor, virginica",
                 "sepal_length", "petal_width", "tanh at layer 0",
                 "val_accuracy", f"run directory  {iris_run}", "/iris.csv"):
        assert text in out, text
    # the model holds the epoch with the lowest validation loss, as the run's history says
    with (iris_run / "metrics.csv").open() as f:
        history = list(csv.DictReader(f))
    best = min(history, key=lambda row: float(row["val_loss"]))["epoch"]
    assert re.search(rf"\bepoch +{best}, the best", out), out
    fingerprints = json.loads((iris_run / "fingerprints.json").read_text())
    assert f"{fingerprints['config']}  config.yaml" in out
    saved = load_model(iris_run / "model.npz")
    assert f"{saved.network.n_params:,}" in out


def test_inspect_checkpoint(runner: CliRunner, iris_run: Path) -> None:
    result = runner.invoke(app, ["inspect", str(iris_run / "checkpoints" / "last.npz")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "a checkpoint" in out and "5 completed" in out and "best so far  epoch" in out
    assert "cross_entropy" in out and "virginica" in out and "sepal_width" in out
    assert f"run directory  {iris_run}" in out  # checkpoints/ sits in the run directory


def test_inspect_json_matches_the_model_file(runner: CliRunner, iris_run: Path) -> None:
    path = iris_run / "model.npz"
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    saved = load_model(path)
    meta, pre = saved.meta, saved.preprocessor
    assert set(report) == {"file", "kind", "task", "input_shape", "output_shape", "layers",
                           "parameters", "activations", "loss", "preprocessing", "training",
                           "origin"}
    assert report["kind"] == "model" and report["task"] == "classification"
    assert report["input_shape"] == [4] and report["output_shape"] == [3]
    # numbered as the config numbers them: each activation is part of its dense layer
    assert [layer["index"] for layer in report["layers"]] == [0, 1]
    assert [layer["type"] for layer in report["layers"]] == ["dense", "dense"]
    assert [layer["activation"] for layer in report["layers"]] == [{"name": "tanh"},
                                                                   {"name": "softmax"}]
    assert [layer["parameters"] for layer in report["layers"]] == [
        layer.n_params for layer in saved.network.layers if layer.kind == "dense"]
    assert report["parameters"] == saved.network.n_params
    assert report["layers"][0]["options"]["units"] == 8
    assert [a["name"] for a in report["activations"]] == ["tanh", "softmax"]
    assert report["loss"] == {"name": "cross_entropy", "options": meta["loss_options"]}
    features = report["preprocessing"]["features"]
    with np.load(path) as raw:  # the arrays as stored, not through bp's own loader
        stored = {key: raw[key] for key in ("pre/features", "pre/mean", "pre/scale",
                                            "pre/classes")}
    assert [f["name"] for f in features] == stored["pre/features"].tolist()
    assert [f["mean"] for f in features] == stored["pre/mean"].tolist()
    assert [f["scale"] for f in features] == stored["pre/scale"].tolist()
    assert report["preprocessing"]["classes"] == stored["pre/classes"].tolist()
    assert report["preprocessing"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert report["preprocessing"]["targets"] == [{"name": "species", "mean": None,
                                                   "scale": None}]
    assert [c["name"] for c in report["preprocessing"]["columns"]] == pre.columns
    assert report["training"] == {"epoch": meta["epoch"], "batch": None,
                                  "metrics": meta["metrics"]}
    origin = report["origin"]
    assert origin["created"] == meta["created"]
    assert origin["bp_version"] == meta["environment"]["bp"]
    assert origin["environment"] == meta["environment"]
    assert origin["data_paths"] == [str(DATASETS / "iris.csv")]
    assert origin["run_dir"] == str(iris_run)
    assert origin["fingerprints"] == json.loads((iris_run / "fingerprints.json").read_text())


def test_inspect_json_of_a_checkpoint(runner: CliRunner, iris_run: Path) -> None:
    path = iris_run / "checkpoints" / "best.npz"
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    trainer = load_model(path).meta["trainer"]
    assert report["kind"] == "checkpoint"
    assert report["training"] == {
        "epoch": trainer["epoch"], "batch": trainer["batch"],
        "metrics": {"best_epoch": trainer["best_epoch"], "val_loss": trainer["best_val_loss"],
                    "val_accuracy": trainer["best_val_metric"]}}
    assert report["origin"]["run_dir"] == str(iris_run)


def test_inspect_regression_model_outside_a_run(
    runner: CliRunner, in_tmp: Path, write_config: Writer,
) -> None:
    config = iris_config(
        data={"path": str(DATASETS / "diabetes.csv"), "target": "progression"},
        model={"layers": [{"type": "dense", "units": 4, "activation": {"name": "elu",
                                                                        "alpha": 0.5}},
                          {"type": "dense"}]},
        loss={"name": "huber", "delta": 2.0}, training={"epochs": 2, "batch_size": 64})
    run_dir = train(runner, write_config(config))
    elsewhere = in_tmp / "model-copy.npz"
    shutil.copy(run_dir / "model.npz", elsewhere)
    pre = load_model(elsewhere).preprocessor

    result = runner.invoke(app, ["inspect", str(elsewhere)])
    assert result.exit_code == 0, result.output
    assert "regression of 'progression'" in result.output
    assert "huber (delta=2.0)" in result.output and "elu (alpha=0.5) at layer 0" in result.output
    assert "run directory  unknown" in result.output and "sha256" not in result.output

    report = json.loads(runner.invoke(app, ["inspect", str(elsewhere), "--json"]).output)
    assert report["task"] == "regression" and report["preprocessing"]["classes"] == []
    assert report["preprocessing"]["targets"] == [{"name": "progression",
                                                   "mean": float(pre.target_mean[0]),
                                                   "scale": float(pre.target_scale[0])}]
    assert report["loss"] == {"name": "huber", "options": {"delta": 2.0}}
    assert report["origin"]["run_dir"] is None and report["origin"]["fingerprints"] is None
    assert set(report["training"]["metrics"]) == {"best_epoch", "val_loss", "val_rmse"}


def test_inspect_errors(runner: CliRunner, in_tmp: Path) -> None:
    clean_error(runner.invoke(app, ["inspect", "missing.npz"]))
    (in_tmp / "garbage.npz").write_bytes(b"not a zip file at all")
    clean_error(runner.invoke(app, ["inspect", "garbage.npz"]))
    clean_error(runner.invoke(app, ["inspect", "garbage.npz", "--json"]))
    (in_tmp / "a-directory").mkdir()
    clean_error(runner.invoke(app, ["inspect", "a-directory"]))


# bp runs


def test_runs_lists_newest_first_with_status_and_epochs(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = train(runner, write_config(iris_config()))
    second = train(runner, write_config(iris_config(
        training={"epochs": 3, "batch_size": 16, "seed": 1})))
    monkeypatch.setattr(train_command, "StopOnSignal", lambda: StopAfter(12))
    interrupted = train(runner, write_config(iris_config()), exit_code=130)
    (in_tmp / "runs" / "notes").mkdir()  # neither is a run: skipped
    (in_tmp / "runs" / "README.txt").write_text("my runs\n")

    result = runner.invoke(app, ["runs"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "\x1b" not in out and "…" not in out  # plain, and nothing cut short
    assert "3 runs in runs" in out and "notes" not in out and "README" not in out
    rows = table_rows(out)  # name: started, epochs, best, status, wall time
    assert list(rows) == [interrupted.name, second.name, first.name]  # newest first
    assert rows[first.name][1:4:2] == ["5/5", "finished"]
    assert rows[second.name][1:4:2] == ["3/3", "finished"]
    assert rows[interrupted.name][1:4:2] == ["1/5", "interrupted"]
    summary = json.loads((second / "summary.json").read_text())
    assert rows[second.name][2] == f"val_accuracy {summary['metrics']['val_accuracy']:.4f}"
    assert rows[interrupted.name][2].startswith("val_accuracy 0.")  # best row of metrics.csv
    assert rows[interrupted.name][4].startswith("~")  # summed epoch times: no final summary


def test_runs_tells_a_running_run_from_a_crashed_one(runner: CliRunner, iris_run: Path
                                                     ) -> None:
    summary = json.loads((iris_run / "summary.json").read_text())
    (iris_run / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    with RunLock(iris_run):  # as the process training it holds it
        result = runner.invoke(app, ["runs", "runs"])
    assert result.exit_code == 0, result.output
    assert table_rows(result.output)[iris_run.name][3] == "running"
    assert "--resume" not in result.output

    result = runner.invoke(app, ["runs", "runs"])  # no process holds it: it died
    assert table_rows(result.output)[iris_run.name][3] == "crashed"
    assert f"carry it on with: bp train --resume {Path('runs') / iris_run.name}" in (
        result.output)


def test_runs_empty_and_missing(runner: CliRunner, in_tmp: Path) -> None:
    (in_tmp / "runs").mkdir()
    result = runner.invoke(app, ["runs"])
    assert result.exit_code == 0 and "no runs in runs" in result.output
    missing = runner.invoke(app, ["runs", "elsewhere"])
    clean_error(missing)
    assert "elsewhere: no such runs directory" in missing.output


# bp runs diff


def test_runs_diff(runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    a = train(runner, write_config(iris_config()))
    b = train(runner, write_config(iris_config(
        model={"layers": [{"type": "dense", "units": 4, "activation": "tanh"},
                          {"type": "dense", "activation": "softmax"}]},
        optimizer={"name": "adam", "learning_rate": 0.01},
        training={"epochs": 3, "batch_size": 16, "seed": 0,
                  "early_stopping": {"patience": 2}})))
    result = runner.invoke(app, ["runs", "diff", str(a), str(b)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "\x1b" not in out
    rows = table_rows(out)
    assert rows["optimizer.learning_rate"] == ["0.05", "0.01"]
    assert rows["model.layers[0].units"] == ["8", "4"]
    assert rows["training.epochs"] == ["5", "3"]
    assert rows["training.early_stopping.patience"] == ["(absent)", "2"]
    assert "training.seed" not in rows and "data.path" not in rows  # the same in both
    summaries = [json.loads((run / "summary.json").read_text()) for run in (a, b)]
    assert rows["val_loss"] == [f"{s['metrics']['val_loss']:.4f}" for s in summaries]
    assert rows["val_accuracy"] == [f"{s['metrics']['val_accuracy']:.4f}" for s in summaries]
    assert rows["best epoch"] == [str(s["metrics"]["best_epoch"]) for s in summaries]
    assert rows["epochs"] == ["5/5", "3/3"]
    assert rows["status"] == ["finished", summaries[1]["status"]]
    assert "best epoch" in out and "wall time" in out


def test_runs_diff_of_identical_configs(runner: CliRunner, in_tmp: Path,
                                        write_config: Writer) -> None:
    config = write_config(iris_config(training={"epochs": 2, "batch_size": 16, "seed": 0}))
    a, b = train(runner, config), train(runner, config)
    result = runner.invoke(app, ["runs", "diff", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "config: the same in both runs" in result.output and "results" in result.output


def test_runs_diff_errors(runner: CliRunner, iris_run: Path, in_tmp: Path) -> None:
    clean_error(runner.invoke(app, ["runs", "diff", str(iris_run), "nowhere"]))
    (in_tmp / "plain").mkdir()
    not_a_run = runner.invoke(app, ["runs", "diff", "plain", str(iris_run)])
    clean_error(not_a_run)
    assert "not a bp run directory" in not_a_run.output
    (in_tmp / "broken").mkdir()
    (in_tmp / "broken" / "config.yaml").write_text("data: [unclosed\n")
    clean_error(runner.invoke(app, ["runs", "diff", str(iris_run), "broken"]))
    assert runner.invoke(app, ["runs", "diff", str(iris_run)]).exit_code == 2  # usage


def test_flatten_and_differences() -> None:
    config = {"model": {"layers": [{"units": 8}, {"type": "dense"}]}, "loss": "mse",
              "regularization": {}, "features": []}
    assert flatten(config) == {"model.layers[0].units": 8, "model.layers[1].type": "dense",
                               "loss": "mse", "regularization": {}, "features": []}
    other = {"model": {"layers": [{"units": 8}]}, "loss": {"name": "huber", "delta": 1.0},
             "regularization": {}, "features": ["a"]}
    assert config_differences(config, other) == [
        ("model.layers[1].type", "dense", "(absent)"),
        ("loss", "mse", "(absent)"),
        ("features", "[]", "(absent)"),
        ("loss.name", "(absent)", "huber"),
        ("loss.delta", "(absent)", "1.0"),
        ("features[0]", "(absent)", "a"),
    ]


# each min_delta skips an improvement smaller than itself on this run's curve (seed 0)
@pytest.mark.parametrize(("early_stopping", "min_delta_matters"), [
    (None, False),
    ({"monitor": "val_loss", "patience": 50, "min_delta": 0.05}, True),
    ({"monitor": "val_metric", "patience": 50, "min_delta": 0.07}, True),
])
def test_runs_picks_a_best_epoch_as_training_picked_it(
    runner: CliRunner, in_tmp: Path, write_config: Writer,
    early_stopping: dict[str, object] | None, min_delta_matters: bool,
) -> None:
    training = {"epochs": 12, "batch_size": 16, "seed": 0,
                **({"early_stopping": early_stopping} if early_stopping else {})}
    run = train(runner, write_config(iris_config(training=training)))
    summary = json.loads((run / "summary.json").read_text())
    trained = summary.pop("metrics")["best_epoch"]
    # as a run still training (or killed) records it: the listing reads metrics.csv
    (run / "summary.json").write_text(json.dumps(summary))
    assert read_run(run).best_epoch == trained
    # the case tells the trainer's rule from "the lowest loss" or "the highest accuracy"
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    column = "val_accuracy" if early_stopping and early_stopping["monitor"] == "val_metric" \
        else "val_loss"
    sign = -1 if column == "val_accuracy" else 1
    plain_best = min(range(len(rows)), key=lambda i: (sign * float(rows[i][column]), i)) + 1
    assert (plain_best != trained) == min_delta_matters
