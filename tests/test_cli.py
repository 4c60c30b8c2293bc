"""The commands end to end, as a user runs them."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.nn import Dense
from tests.conftest import CONFIGS, DATASETS, iris_config

Writer = Callable[..., Path]


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "runs").glob("*") if p.is_dir())


def train(runner: CliRunner, config: Path) -> Path:
    result = runner.invoke(app, ["train", str(config)])
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(Path.cwd())
    return run_dir


def read_csv_text(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# -- train ---------------------------------------------------------------------------------


def test_shipped_iris_config_reaches_093(runner: CliRunner, in_tmp: Path) -> None:
    run_dir = train(runner, CONFIGS / "iris.yaml")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["metrics"]["val_accuracy"] >= 0.93


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
    assert "units: 3" in text and "init: glorot_uniform" in text
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


# -- bad input -----------------------------------------------------------------------------


def assert_clean_failure(result: object, code: int = 2) -> str:
    output = getattr(result, "output", "")
    assert getattr(result, "exit_code", None) == code, output
    assert "Traceback" not in output
    return str(output)


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


# -- predict ---------------------------------------------------------------------------------


@pytest.fixture
def iris_model(runner: CliRunner, in_tmp: Path, write_config: Writer) -> Path:
    return train(runner, write_config(iris_config())) / "model.npz"


def test_predict_matches_the_in_memory_network(iris_model: Path, runner: CliRunner) -> None:
    from bpcli.inference import read_inputs
    from bpcli.modelfile import load_model

    result = runner.invoke(app, ["predict", str(iris_model), str(DATASETS / "iris.csv")])
    assert result.exit_code == 0, result.output
    rows = read_csv_text(result.stdout)
    assert len(rows) == 150
    saved = load_model(iris_model)
    pre = saved.preprocessor
    X = pre.transform_features(read_inputs(pre, DATASETS / "iris.csv", with_targets=False))
    probs = saved.network.forward(X)
    got = np.array([[float(r[f"prob_{c}"]) for c in ("setosa", "versicolor", "virginica")]
                    for r in rows])
    np.testing.assert_allclose(got, probs, atol=1e-6)
    assert [r["species"] for r in rows] == [
        saved.preprocessor.classes[i] for i in np.argmax(probs, axis=1)]


def test_predict_any_column_order_without_target(
    iris_model: Path, runner: CliRunner, in_tmp: Path
) -> None:
    source = read_csv_text((DATASETS / "iris.csv").read_text())
    shuffled = in_tmp / "shuffled.csv"
    with shuffled.open("w", newline="") as f:
        order = ["petal_width", "sepal_length", "extra", "petal_length", "sepal_width"]
        writer = csv.DictWriter(f, order, extrasaction="ignore")
        writer.writeheader()
        for row in source:
            writer.writerow({**row, "extra": "ignored"})
    a = runner.invoke(app, ["predict", str(iris_model), str(DATASETS / "iris.csv")])
    b = runner.invoke(app, ["predict", str(iris_model), str(shuffled)])
    assert a.exit_code == b.exit_code == 0, b.output
    assert a.stdout == b.stdout


def test_predict_out_file(iris_model: Path, runner: CliRunner, in_tmp: Path) -> None:
    out = in_tmp / "pred.csv"
    result = runner.invoke(app, ["predict", str(iris_model), str(DATASETS / "iris.csv"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(read_csv_text(out.read_text())) == 150
    assert "150 predictions written" in result.output


def test_predict_names_missing_columns(iris_model: Path, runner: CliRunner, in_tmp: Path) -> None:
    partial = in_tmp / "partial.csv"
    partial.write_text("sepal_length,sepal_width\n5.1,3.5\n")
    output = assert_clean_failure(runner.invoke(app, ["predict", str(iris_model), str(partial)]))
    assert "'petal_length', 'petal_width'" in output


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04broken"])
def test_predict_rejects_broken_model_files(
    runner: CliRunner, in_tmp: Path, content: bytes
) -> None:
    model = in_tmp / "model.npz"
    model.write_bytes(content)
    output = assert_clean_failure(runner.invoke(app, ["predict", str(model),
                                                      str(DATASETS / "iris.csv")]))
    assert str(model) in output


def test_predict_rejects_pickled_arrays(runner: CliRunner, in_tmp: Path) -> None:
    model = in_tmp / "model.npz"
    np.savez(model, meta=np.array([{"format": "bp-model"}], dtype=object))
    output = assert_clean_failure(runner.invoke(app, ["predict", str(model),
                                                      str(DATASETS / "iris.csv")]))
    assert "holds pickled objects, which bp never loads" in output


def test_predict_missing_files(runner: CliRunner, in_tmp: Path, iris_model: Path) -> None:
    output = assert_clean_failure(runner.invoke(app, ["predict", "nope.npz", "x.csv"]))
    assert "nope.npz: model file not found" in output
    output = assert_clean_failure(runner.invoke(app, ["predict", str(iris_model), "x.csv"]))
    assert "x.csv: file not found" in output


# -- gradcheck -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["iris", "diabetes", "spirals"])
def test_gradcheck_passes_on_shipped_configs(runner: CliRunner, name: str) -> None:
    result = runner.invoke(app, ["gradcheck", str(CONFIGS / f"{name}.yaml")])
    assert result.exit_code == 0, result.output
    assert "pass" in result.output and "FAIL" not in result.output


def test_gradcheck_fails_loudly_on_a_wrong_backward(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Dense.backward

    def wrong(self: Dense, dY: np.ndarray) -> np.ndarray | None:
        dX = original(self, dY)
        self.grads["W"] *= 1.01  # a 1% error in one weight gradient
        return dX

    monkeypatch.setattr(Dense, "backward", wrong)
    result = runner.invoke(app, ["gradcheck", str(CONFIGS / "iris.yaml")])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output
    assert "gradient check FAILED for 2 of 5 tensors: 0 dense W, 1 dense W" in result.output


def test_gradcheck_bad_config_exits_2(runner: CliRunner, write_config: Writer) -> None:
    path = write_config(iris_config(loss="nope"))
    output = assert_clean_failure(runner.invoke(app, ["gradcheck", str(path)]))
    assert "unknown loss 'nope'" in output


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


def test_version_and_help(runner: CliRunner) -> None:
    assert runner.invoke(app, ["--version"]).output.startswith("bp ")
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "predict", "gradcheck"):
        assert command in result.output


@pytest.mark.parametrize("damage", [
    {"pre/classes": np.array(["a", "b"])},                       # 2 labels, 3 outputs
    {"pre/classes": np.array(["a", "b", "c", "d"])},             # 4 labels, 3 outputs
    {"pre/features": np.array(["sepal_length", "sepal_width"])},  # fewer names than inputs
    {"pre/mean": np.zeros(5)},
    {"param/0.W": np.zeros((4, 3), dtype=np.float32)},           # wrong shape
    {"param/0.W": np.zeros((4, 8), dtype=np.int64)},             # not floats
])
def test_predict_rejects_inconsistent_model_files(
    iris_model: Path, runner: CliRunner, in_tmp: Path, damage: dict[str, np.ndarray]
) -> None:
    with np.load(iris_model) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays.update(damage)
    broken = in_tmp / "broken.npz"
    np.savez(broken, **arrays)  # type: ignore[arg-type]
    output = assert_clean_failure(runner.invoke(app, ["predict", str(broken),
                                                      str(DATASETS / "iris.csv")]))
    assert "damaged or incompatible model file" in output


def test_gradcheck_fast_mode(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["gradcheck", str(CONFIGS / "diabetes.yaml"), "--fast"])
    assert result.exit_code == 0, result.output
    assert "3 directions" in result.output
    original = Dense.backward

    def wrong(self: Dense, dY: np.ndarray) -> np.ndarray | None:
        dX = original(self, dY)
        self.grads["b"] *= 1.01
        return dX

    monkeypatch.setattr(Dense, "backward", wrong)
    result = runner.invoke(app, ["gradcheck", str(CONFIGS / "diabetes.yaml"), "--fast"])
    assert result.exit_code == 1, result.output
    assert "0 dense b, 2 dense b" in result.output


def test_threads_option_reaches_the_run_summary(in_tmp: Path, write_config: Writer) -> None:
    config = write_config(iris_config())
    proc = subprocess.run([sys.executable, "-m", "bpcli", "train", "--threads", "1",
                           str(config)], capture_output=True, text=True, check=False,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = run_dirs(in_tmp)
    environment = json.loads((run_dir / "summary.json").read_text())["environment"]
    assert environment["blas_threads"] == "1"
    assert environment["blas"] != "unknown"


# -- one numbering of layers everywhere: the config's model.layers[i]. validate's and
# inspect's tables, inspect --json, --health's update/weight columns, gradcheck's tensors and
# errors all say 3 for config layer 3; an activation is part of its dense layer.
LAYERS = [{"type": "dense", "units": 8, "activation": "tanh"},
          {"type": "batch_norm"},
          {"type": "dropout", "rate": 0.1},
          {"type": "dense", "units": 6, "activation": "relu"},
          {"type": "dense", "activation": "softmax"}]


WITH_WEIGHTS = {0, 3, 4}


def _table_rows(output: str) -> list[tuple[int, str]]:
    """(number, kind) of each row of a layer table in plain output."""
    return [(int(m[1]), m[2]) for m in re.finditer(r"^\S\s+(\d+)\s+\S\s+(\w+)", output, re.M)]


def test_every_command_numbers_layers_as_the_config_does(
    runner: CliRunner, in_tmp: Path, write_config: Callable[..., Path],
) -> None:
    config = write_config(iris_config(model={"layers": LAYERS}))
    expected = [(i, layer["type"]) for i, layer in enumerate(LAYERS)]

    validated = runner.invoke(app, ["validate", str(config)])
    assert validated.exit_code == 0, validated.output
    assert _table_rows(validated.output) == expected
    assert "activation=tanh" in validated.output

    trained = runner.invoke(app, ["train", str(config), "--health"])
    assert trained.exit_code == 0, trained.output
    ratios = re.search(r"update/weight ((?:\d+:\S+ ?)+)", trained.output)
    assert ratios, trained.output
    assert {int(part.split(":")[0]) for part in ratios[1].split()} == WITH_WEIGHTS

    (model,) = Path("runs").glob("*/model.npz")
    shown = runner.invoke(app, ["inspect", str(model)])
    assert _table_rows(shown.output) == expected
    assert "tanh at layer 0, relu at layer 3, softmax at layer 4" in shown.output
    report = json.loads(runner.invoke(app, ["inspect", str(model), "--json"]).output)
    assert [(e["index"], e["type"]) for e in report["layers"]] == expected

    checked = runner.invoke(app, ["gradcheck", str(config)])
    assert checked.exit_code == 0, checked.output
    labels = {int(m[1]) for m in re.finditer(r"^\S\s+(\d+) \w+\s+\S\s+(W|b|gamma)\s",
                                             checked.output, re.M)}
    assert labels == WITH_WEIGHTS | {1}  # batch_norm's gamma and beta
