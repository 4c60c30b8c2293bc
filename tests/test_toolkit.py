"""The training toolkit through the command line: every example config, the new layers,
losses, optimizers, schedules, penalties, early stopping, warm start, validate, schema."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.modelfile import load_model
from tests.conftest import CONFIGS, DATASETS, iris_config

Writer = Callable[..., Path]


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "runs").glob("*") if p.is_dir())


def train_ok(runner: CliRunner, config: Path, *args: str) -> Path:
    before = set(run_dirs(Path.cwd()))
    result = runner.invoke(app, ["train", str(config), *args])
    assert result.exit_code == 0, result.output
    (run_dir,) = set(run_dirs(Path.cwd())) - before
    return run_dir


def metrics(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((run_dir / "metrics.csv").read_text())))


@pytest.mark.parametrize("path", sorted(set(CONFIGS.glob("*.yaml"))
                                         - set(CONFIGS.glob("*-sweep.yaml"))),
                         ids=lambda p: p.stem)
def test_every_example_config_validates_and_trains(
    runner: CliRunner, in_tmp: Path, path: Path
) -> None:
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid;" in result.output and "parameters" in result.output
    run_dir = train_ok(runner, path, "--set", "training.epochs=6", "--set",
                       "output.runs_dir=runs")
    rows = metrics(run_dir)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4, 5, 6]
    losses = np.array([[float(row["train_loss"]), float(row["val_loss"])] for row in rows])
    assert np.isfinite(losses).all()
    assert losses[-1, 0] < losses[0, 0]  # it learned something
    # the model file holds the epoch the summary calls the best, with that epoch's scores
    best = json.loads((run_dir / "summary.json").read_text())["metrics"]
    saved = load_model(run_dir / "model.npz")
    assert saved.meta["epoch"] == best["best_epoch"]
    assert float(rows[best["best_epoch"] - 1]["val_loss"]) == pytest.approx(best["val_loss"])


EVERYTHING = {
    "model": {"layers": [
        {"type": "dense", "units": 8, "activation": {"name": "elu", "alpha": 0.7},
         "init": "lecun_normal", "l2": 0.01},
        {"type": "batch_norm"},
        {"type": "dense", "units": 6, "activation": {"name": "gelu", "approximate": True}},
        {"type": "layer_norm"},
        {"type": "dropout", "rate": 0.2},
        {"type": "dense", "units": 6, "activation": "selu", "l1": 0.001},
        # A constant start makes a layer's units equal: after layer_norm that would put
        # selu exactly at its kink, where finite differences cannot follow it.
        {"type": "dense", "activation": "softmax", "init": {"name": "constant", "value": 0.05}}]},
    "loss": {"name": "cross_entropy", "label_smoothing": 0.1,
             "class_weights": {"setosa": 2.0}},
    "regularization": {"l2": 0.001, "clip_norm": 5.0},
}


def test_gradcheck_covers_every_layer_with_penalties(
    runner: CliRunner, write_config: Writer
) -> None:
    path = write_config(iris_config(**EVERYTHING))
    result = runner.invoke(app, ["gradcheck", str(path)])
    assert result.exit_code == 0, result.output
    for tensor in ("gamma", "beta", " W ", " b "):
        assert tensor in result.output
    assert "FAIL" not in result.output


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


def test_settings_that_clash_are_config_errors(runner: CliRunner, write_config: Writer) -> None:
    config = iris_config(training={"epochs": 3, "schedule": {"name": "cosine",
                                                             "warmup_epochs": 5}})
    result = runner.invoke(app, ["validate", str(write_config(config))])
    assert result.exit_code == 2, result.output
    assert "training.schedule.warmup_epochs: the warm-up (5 epochs) must end" in result.output


def test_wrong_loss_for_the_task(runner: CliRunner, write_config: Writer) -> None:
    result = runner.invoke(app, ["validate", str(write_config(iris_config(loss="huber")))])
    assert result.exit_code == 2 and "'huber' does not fit a 'softmax' output" in result.output


def test_unknown_class_in_class_weights(runner: CliRunner, write_config: Writer) -> None:
    config = iris_config(loss={"name": "cross_entropy", "class_weights": {"setosaa": 2}})
    result = runner.invoke(app, ["validate", str(write_config(config))])
    assert result.exit_code == 2 and "did you mean 'setosa'?" in result.output


def test_schema_describes_the_config(runner: CliRunner) -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"data", "model"}
    # key fields against what the README and configs/ say, written out by hand
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "bp config" and schema["type"] == "object"
    assert set(schema["properties"]) == {"data", "model", "loss", "optimizer",
                                         "regularization", "training", "output"}
    defs = schema["$defs"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref") or next(a["$ref"] for a in node["anyOf"] if "$ref" in a)
        return defs[ref.removeprefix("#/$defs/")]

    training = resolve(schema["properties"]["training"])["properties"]
    assert training["epochs"].items() >= {"type": "integer", "minimum": 1,
                                          "default": 100}.items()
    assert training["batch_size"].items() >= {"type": "integer", "minimum": 1,
                                              "default": 32}.items()
    data = resolve(schema["properties"]["data"])
    assert set(data["required"]) == {"path", "target"}
    assert data["properties"]["path"]["type"] == "string"
    assert data["properties"]["scaling"]["enum"] == ["standard", "minmax", "none"]
    layers = resolve(schema["properties"]["model"])["properties"]["layers"]
    assert layers["type"] == "array" and layers["minItems"] == 1
    assert layers["items"]["discriminator"]["propertyName"] == "type"
    assert set(layers["items"]["discriminator"]["mapping"]) == {
        "dense", "dropout", "batch_norm", "layer_norm", "conv2d", "max_pool2d",
        "avg_pool2d", "global_avg_pool2d", "flatten"}
    optimizer = schema["properties"]["optimizer"]
    assert set(optimizer["discriminator"]["mapping"]) == {
        "sgd", "adam", "adamw", "nadam", "adagrad", "rmsprop", "rprop"}
    # a typo in any section is an error, not silently ignored
    objects = [d for d in defs.values() if d.get("type") == "object"]
    assert len(objects) > 20 and all(d["additionalProperties"] is False for d in objects)


def test_set_reaches_train_and_gradcheck(runner: CliRunner, in_tmp: Path,
                                         write_config: Writer) -> None:
    path = write_config(iris_config())
    run_dir = train_ok(runner, path, "--set", "training.epochs=2")
    assert len(metrics(run_dir)) == 2
    assert "epochs: 2" in (run_dir / "config.yaml").read_text()
    result = runner.invoke(app, ["gradcheck", str(path), "--set", "model.layers.0.units=3"])
    assert result.exit_code == 0 and "4x3" in result.output
