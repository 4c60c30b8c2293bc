"""bp predict (bpcli/commands/predict.py): predictions that match the network in memory,
columns in any order, --out, and one-line refusals of missing columns and of broken,
pickled or inconsistent model files."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from tests.conftest import DATASETS, assert_clean_failure, iris_config
from tests.test_train import read_csv_text, train

Writer = Callable[..., Path]


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
