"""bp train (bpcli/commands/train.py) through the command line: a run and its directory,
same seed same numbers, plain output in a pipe; the training toolkit (every example config,
every optimizer, schedules, early stopping and the epoch kept, warm start, the losses and
batch-norm statistics a trained model keeps, --set); and bad input, refused in one line
with nothing written. (Resume, stops and kills: test_runs.py.)"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.modelfile import load_model
from tests.conftest import CONFIGS, DATASETS, assert_clean_failure, iris_config

Writer = Callable[..., Path]


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "runs").glob("*") if p.is_dir())


def train_ok(runner: CliRunner, config: Path, *args: str) -> Path:
    """The run directory a successful ``bp train config *args`` made."""
    before = set(run_dirs(Path.cwd()))
    result = runner.invoke(app, ["train", str(config), *args])
    assert result.exit_code == 0, result.output
    (run_dir,) = set(run_dirs(Path.cwd())) - before
    return run_dir


def metrics(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((run_dir / "metrics.csv").read_text())))


def train(runner: CliRunner, config: Path) -> Path:
    """The run directory of a successful ``bp train config``, the only run in ./runs."""
    result = runner.invoke(app, ["train", str(config)])
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(Path.cwd())
    return run_dir


def read_csv_text(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# -- a run and its directory ---------------------------------------------------------------
def test_shipped_iris_config_reaches_090(runner: CliRunner, in_tmp: Path) -> None:
    # 30 validation rows, one row 0.033: over training seeds 0-9 the example scores 0.90 to
    # 0.97 (mean 0.927), seed 0 0.90; with Glorot's start it was 0.87 to 0.93 over seeds 0-4.
    run_dir = train(runner, CONFIGS / "iris.yaml")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["metrics"]["val_accuracy"] >= 0.9


def test_run_directory_contents(runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    run_dir = train(runner, write_config(iris_config()))
    assert run_dir.name.startswith("t-")
    for name in ("config.yaml", "metrics.csv", "model.npz", "summary.json",
                 "checkpoints/last.npz", "checkpoints/best.npz"):
        assert (run_dir / name).is_file(), name
    rows = read_csv_text((run_dir / "metrics.csv").read_text())
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy",
                            "learning_rate", "rollbacks", "seconds"}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 5 and summary["seed"] == 0
    assert {"bp", "numpy", "python"} <= set(summary["environment"])
    # no temporary files left behind by the atomic writes
    assert not list(run_dir.rglob("*.tmp"))


def test_resolved_config_is_complete_and_trains_again(
    runner: CliRunner, in_tmp: Path, write_config: Writer
) -> None:
    first = train(runner, write_config(iris_config()))
    text = (first / "config.yaml").read_text()
    assert "task: classification" in text and "loss: cross_entropy" in text
    assert "units: 3" in text and "init: pytorch_uniform" in text
    result = runner.invoke(app, ["train", str(first / "config.yaml")])
    assert result.exit_code == 0, result.output


def test_runs_never_overwrite(runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    config = write_config(iris_config())
    for _ in range(2):
        assert runner.invoke(app, ["train", str(config)]).exit_code == 0
    assert len(run_dirs(in_tmp)) == 2


def test_same_seed_same_numbers(runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    config = iris_config(model={"layers": [{"type": "dense", "units": 8},
                                           {"type": "dropout", "rate": 0.2},
                                           {"type": "dense"}]})
    path = write_config(config)
    for _ in range(2):
        assert runner.invoke(app, ["train", str(path)]).exit_code == 0
    a, b = run_dirs(in_tmp)

    def metrics(run: Path) -> list[list[str]]:
        text = (run / "metrics.csv").read_text()
        return [row[:-1] for row in csv.reader(io.StringIO(text))]  # not seconds

    assert metrics(a) == metrics(b)
    for name in ("model.npz", "checkpoints/last.npz", "checkpoints/best.npz"):
        with np.load(a / name) as fa, np.load(b / name) as fb:
            assert fa.files == fb.files
            for key in fa.files:
                if key != "meta":  # holds the creation time
                    assert np.array_equal(fa[key], fb[key]), (name, key)
            meta_a, meta_b = json.loads(str(fa["meta"])), json.loads(str(fb["meta"]))
            assert meta_a.pop("created") and meta_b.pop("created")
            for meta in (meta_a, meta_b):  # checkpoints count the time spent training
                assert meta.get("trainer", {}).pop("seconds", 1.0) > 0
            assert meta_a == meta_b


def test_plain_output_through_a_pipe(in_tmp: Path, write_config: Writer) -> None:
    """The real entry point with stdout a pipe: one line per epoch, no escape codes."""
    config = write_config(iris_config())
    proc = subprocess.run([sys.executable, "-m", "bpcli", "train", str(config)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout
    epoch_lines = [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 5
    assert "val_accuracy" in epoch_lines[0]
    assert "bp predict runs/" in proc.stdout


def test_regression_reports_rmse_in_target_units(
    runner: CliRunner, in_tmp: Path, write_config: Writer
) -> None:
    config = {
        "data": {"path": str(DATASETS / "diabetes.csv"), "target": "progression"},
        "model": {"layers": [{"type": "dense", "units": 8}, {"type": "dense"}]},
        "training": {"epochs": 3, "batch_size": 32},
    }
    run_dir = train(runner, write_config(config))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["task"] == "regression"
    # progression spans about 25..346: an RMSE in those units, not standardised ones
    assert 20 < summary["metrics"]["val_rmse"] < 200


# -- the training toolkit ------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(set(CONFIGS.glob("*.yaml"))
                                         - set(CONFIGS.glob("*-sweep.yaml"))
                                         - set(CONFIGS.glob("*-gan.yaml"))),  # test_gan's
                         ids=lambda p: p.stem)
def test_every_example_config_validates_and_trains(
    runner: CliRunner, in_tmp: Path, path: Path
) -> None:
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid;" in result.output and "parameters" in result.output
    # a few epochs (the shipped iris config's quality is test_shipped_iris_config_...'s),
    # past a warm-up, which must end before training does
    schedule = yaml.safe_load(path.read_text())["training"].get("schedule") or {}
    epochs = max(3, schedule.get("warmup_epochs", 0) + 1)
    run_dir = train_ok(runner, path, "--set", f"training.epochs={epochs}", "--set",
                       "output.runs_dir=runs")
    rows = metrics(run_dir)
    assert [int(row["epoch"]) for row in rows] == list(range(1, epochs + 1))
    losses = np.array([[float(row["train_loss"]), float(row["val_loss"])] for row in rows])
    assert np.isfinite(losses).all()
    assert losses[-1, 0] < losses[0, 0]  # it learned something
    # the model file holds the epoch the summary calls the best, with that epoch's scores
    best = json.loads((run_dir / "summary.json").read_text())["metrics"]
    saved = load_model(run_dir / "model.npz")
    assert saved.meta["epoch"] == best["best_epoch"]
    assert float(rows[best["best_epoch"] - 1]["val_loss"]) == pytest.approx(best["val_loss"])


@pytest.mark.parametrize("optimizer", [
    {"name": "adagrad", "learning_rate": 0.1},
    {"name": "rmsprop", "learning_rate": 0.01, "momentum": 0.5},
    {"name": "adamw", "learning_rate": 0.01, "weight_decay": 0.1},
    {"name": "nadam", "learning_rate": 0.01},
    {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
], ids=lambda o: o["name"])
def test_every_optimizer_learns_iris(runner: CliRunner, in_tmp: Path, write_config: Writer,
                                     optimizer: dict[str, Any]) -> None:
    config = iris_config(optimizer=optimizer, training={"epochs": 15, "batch_size": 16})
    run_dir = train_ok(runner, write_config(config))
    assert json.loads((run_dir / "summary.json").read_text())["metrics"]["val_accuracy"] > 0.8


def test_rprop_trains_full_batch_and_refuses_mini_batches(
    runner: CliRunner, in_tmp: Path, write_config: Writer
) -> None:
    config = iris_config(optimizer={"name": "rprop"}, training={"epochs": 30,
                                                                "batch_size": 1000})
    run_dir = train_ok(runner, write_config(config))
    assert json.loads((run_dir / "summary.json").read_text())["metrics"]["val_accuracy"] > 0.8
    config["training"]["batch_size"] = 16
    result = runner.invoke(app, ["train", str(write_config(config))])
    assert result.exit_code == 2 and "full-batch" in result.output


@pytest.mark.parametrize("schedule, expected", [
    ({"name": "step", "step_size": 2, "gamma": 0.5}, [0.1, 0.1, 0.05, 0.05, 0.025]),
    ({"name": "exponential", "gamma": 0.5}, [0.1, 0.05, 0.025, 0.0125, 0.00625]),
    ({"name": "multistep", "milestones": [2, 4]}, [0.1, 0.1, 0.01, 0.01, 0.001]),
    ({"name": "cosine", "warmup_epochs": 1}, None),
], ids=lambda s: s["name"] if isinstance(s, dict) else "")
def test_schedules_drive_the_learning_rate(
    runner: CliRunner, in_tmp: Path, write_config: Writer, schedule: dict[str, Any],
    expected: list[float] | None,
) -> None:
    config = iris_config(optimizer={"name": "sgd", "learning_rate": 0.1},
                         training={"epochs": 5, "batch_size": 16, "schedule": schedule})
    rates = [float(r["learning_rate"]) for r in metrics(train_ok(runner, write_config(config)))]
    if expected is not None:
        assert rates == pytest.approx(expected)
    else:  # warm-up, then down to zero at the last epoch
        assert rates[0] < rates[1] and rates[1] > rates[2] > rates[3] > rates[4] >= 0


def test_early_stopping_keeps_the_best_epoch(
    runner: CliRunner, in_tmp: Path, write_config: Writer
) -> None:
    config = iris_config(optimizer={"name": "adam", "learning_rate": 0.05},
                         training={"epochs": 200, "batch_size": 16,
                                   "early_stopping": {"monitor": "val_loss", "patience": 5}})
    run_dir = train_ok(runner, write_config(config))
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = metrics(run_dir)
    assert summary["status"] == "stopped early" and len(rows) < 200
    best = min(rows, key=lambda r: float(r["val_loss"]))
    assert summary["metrics"]["best_epoch"] == int(best["epoch"]) == len(rows) - 5
    model, best_ck = load_model(run_dir / "model.npz"), load_model(run_dir / "checkpoints" /
                                                                   "best.npz")
    assert np.array_equal(model.network.flat_params, best_ck.network.flat_params)


def test_model_kept_is_the_best_epoch_when_training_runs_past_it(
    runner: CliRunner, in_tmp: Path
) -> None:
    run_dir = train_ok(runner, CONFIGS / "iris.yaml")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["best_epoch"] < summary["epochs"]
    model = load_model(run_dir / "model.npz").network.flat_params
    best = load_model(run_dir / "checkpoints" / "best.npz").network.flat_params
    last = load_model(run_dir / "checkpoints" / "last.npz").network.flat_params
    assert np.array_equal(model, best) and not np.array_equal(model, last)


def test_early_stopping_on_the_metric_maximises_accuracy(
    runner: CliRunner, in_tmp: Path, write_config: Writer
) -> None:
    config = iris_config(training={"epochs": 40, "batch_size": 16, "early_stopping": {
        "monitor": "val_metric", "patience": 3}})
    run_dir = train_ok(runner, write_config(config))
    rows = metrics(run_dir)
    best = json.loads((run_dir / "summary.json").read_text())["metrics"]
    assert best["val_accuracy"] == max(float(r["val_accuracy"]) for r in rows)


def test_warm_start_continues_from_a_model_and_refuses_another_shape(
    runner: CliRunner, in_tmp: Path, write_config: Writer
) -> None:
    first = train_ok(runner, write_config(iris_config()))
    config = iris_config(training={"epochs": 1, "batch_size": 16,
                                   "init_from": str(first / "model.npz")})
    second = train_ok(runner, write_config(config, "warm.yaml"))
    rows = metrics(second)
    assert float(rows[0]["val_loss"]) < float(metrics(first)[0]["val_loss"])
    third = train_ok(runner, write_config(iris_config(), "plain.yaml"), "--init-from",
                     str((first / "model.npz").relative_to(in_tmp)))
    assert metrics(third)[0]["val_loss"] != metrics(first)[0]["val_loss"]
    config["model"]["layers"][0]["units"] = 9
    result = runner.invoke(app, ["train", str(write_config(config, "warm.yaml"))])
    assert result.exit_code == 2
    assert "training.init_from: layer 0 differs" in result.output


def test_huber_and_mae_regression(runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    for loss in ({"name": "huber", "delta": 0.5}, "mae"):
        config = {"data": {"path": str(DATASETS / "diabetes.csv"), "target": "progression"},
                  "model": {"layers": [{"type": "dense", "units": 16}, {"type": "dense"}]},
                  "loss": loss, "training": {"epochs": 5}}
        run_dir = train_ok(runner, write_config(config))
        saved = load_model(run_dir / "model.npz")
        assert saved.network.loss.name == (loss if isinstance(loss, str) else loss["name"])
        # the saved loss is the one configured, delta and all: errors 0.25 and 2
        P, Y = np.array([[0.0], [2.0]]), np.array([[0.25], [0.0]])
        expected = ((0.25**2 / 2 + 0.5 * (2 - 0.5 / 2)) / 2 if loss != "mae"
                    else (0.25 + 2) / 2)
        assert saved.network.loss.value(P, Y) == pytest.approx(expected)
        # and training lowered it
        rows = metrics(run_dir)
        assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])


def test_batch_norm_statistics_are_saved_and_used(
    runner: CliRunner, in_tmp: Path, write_config: Writer
) -> None:
    config = iris_config(model={"layers": [{"type": "dense", "units": 8},
                                           {"type": "batch_norm"}, {"type": "dense"}]})
    run_dir = train_ok(runner, write_config(config))
    saved = load_model(run_dir / "model.npz")
    running_var = saved.network.buffers()["2.running_var"]  # dense, relu, batch_norm
    assert not np.allclose(running_var, 1.0)  # updated from the data, not the initial ones
    result = runner.invoke(app, ["predict", str(run_dir / "model.npz"),
                                 str(DATASETS / "iris.csv")])
    assert result.exit_code == 0, result.output
    predicted = np.array([[float(row[f"prob_{c}"]) for c in ("setosa", "versicolor",
                                                              "virginica")]
                          for row in csv.DictReader(io.StringIO(result.output))])
    # the same probabilities by hand from the file's arrays: predict normalises with the
    # saved running statistics, not with those of the rows it is given
    with np.load(run_dir / "model.npz") as raw:
        a = {key: raw[key].astype(np.float64) for key in raw.files
             if key.startswith(("param/", "buffer/", "pre/mean", "pre/scale"))}
    with (DATASETS / "iris.csv").open() as f:
        X = np.array([[float(v) for v in row[:4]] for row in list(csv.reader(f))[1:]])

    def by_hand(running_mean: np.ndarray, running_var: np.ndarray) -> np.ndarray:
        H = np.maximum((X - a["pre/mean"]) / a["pre/scale"] @ a["param/0.W"]
                       + a["param/0.b"], 0)
        H = (H - running_mean) / np.sqrt(running_var + 1e-5) * a["param/2.gamma"]
        Z = (H + a["param/2.beta"]) @ a["param/3.W"] + a["param/3.b"]
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True)

    assert np.allclose(predicted, by_hand(a["buffer/2.running_mean"],
                                          a["buffer/2.running_var"]), atol=2e-6)
    H = np.maximum((X - a["pre/mean"]) / a["pre/scale"] @ a["param/0.W"] + a["param/0.b"], 0)
    batch_stats = by_hand(H.mean(axis=0), H.var(axis=0))
    assert np.abs(predicted - batch_stats).max() > 1e-3  # the check tells the two apart


def test_set_reaches_train_and_gradcheck(runner: CliRunner, in_tmp: Path,
                                         write_config: Writer) -> None:
    path = write_config(iris_config())
    run_dir = train_ok(runner, path, "--set", "training.epochs=2")
    assert len(metrics(run_dir)) == 2
    assert "epochs: 2" in (run_dir / "config.yaml").read_text()
    result = runner.invoke(app, ["gradcheck", str(path), "--set", "model.layers.0.units=3"])
    assert result.exit_code == 0 and "4x3" in result.output


# -- bad input -----------------------------------------------------------------------------
def test_bad_config_exits_2_and_writes_nothing(
    runner: CliRunner, in_tmp: Path, write_config: Writer
) -> None:
    config = iris_config(training={"epochs": 0, "batchsize": 8})
    result = runner.invoke(app, ["train", str(write_config(config))])
    output = assert_clean_failure(result)
    assert "training.epochs" in output and "did you mean 'batch_size'?" in output
    assert "2 problems in" in output
    assert not (in_tmp / "runs").exists()


def test_unknown_target_column_points_at_the_config(
    runner: CliRunner, in_tmp: Path, write_config: Writer
) -> None:
    config = iris_config()
    config["data"]["target"] = "specie"
    path = write_config(config)
    output = assert_clean_failure(runner.invoke(app, ["train", str(path)]))
    assert f"{path}:3:" in output and "data.target" in output
    assert "did you mean 'species'?" in output
    assert not (in_tmp / "runs").exists()


def test_non_numeric_feature_names_row_and_column(
    runner: CliRunner, in_tmp: Path, write_config: Writer
) -> None:
    lines = (DATASETS / "iris.csv").read_text().splitlines()
    lines[6] = lines[6].replace("5.4", "five", 1)
    data = in_tmp / "broken.csv"
    data.write_text("\n".join(lines) + "\n")
    config = iris_config(data={"path": str(data), "target": "species"})
    output = assert_clean_failure(runner.invoke(app, ["train", str(write_config(config))]))
    assert f"{data}:7: column 'sepal_length': 'five' is not a number" in output


def test_missing_value_and_ragged_row(runner: CliRunner, in_tmp: Path,
                                      write_config: Writer) -> None:
    data = in_tmp / "d.csv"
    data.write_text("a,b,y\n1,2,x\n3,,y\n")
    config = iris_config(data={"path": str(data), "target": "y"})
    output = assert_clean_failure(runner.invoke(app, ["train", str(write_config(config))]))
    assert ":3: column 'b': missing value" in output
    data.write_text("a,b,y\n1,2,x\n3,4\n")
    output = assert_clean_failure(runner.invoke(app, ["train", str(write_config(config))]))
    assert ":3: 2 fields where the header has 3" in output


def test_output_units_that_do_not_match_the_classes(
    runner: CliRunner, in_tmp: Path, write_config: Writer
) -> None:
    config = iris_config(model={"layers": [{"type": "dense", "units": 4, "activation": "softmax"}]})
    output = assert_clean_failure(runner.invoke(app, ["train", str(write_config(config))]))
    assert "model.layers[0].units" in output and "needs 3 units" in output


def test_unwritable_runs_dir(runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    (in_tmp / "runs").write_text("a file where the runs directory should be")
    output = assert_clean_failure(runner.invoke(app, ["train", str(write_config(iris_config()))]))
    assert "runs" in output


def test_diverging_training_exits_1(runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    config = {"data": {"path": str(DATASETS / "diabetes.csv"), "target": "progression"},
              "model": {"layers": [{"type": "dense", "units": 16}, {"type": "dense"}]},
              "optimizer": {"name": "sgd", "learning_rate": 5.0},
              "training": {"epochs": 20}}
    result = runner.invoke(app, ["train", str(write_config(config))])
    output = assert_clean_failure(result, code=1)
    assert "diverged" in output and "epoch 1, batch" in output and "learning rate" in output
    (run_dir,) = run_dirs(in_tmp)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "diverged"
