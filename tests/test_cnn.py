"""Image models from the config: input shapes, shape checks that name the layer, pixel
scaling, and predict / evaluate / gradcheck / resume working unchanged on a CNN."""

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
from bpcli.config import load_config
from bpcli.experiment import prepare
from bpcli.inference import read_inputs
from bpcli.modelfile import load_model
from tests.conftest import CONFIGS, DATASETS

Writer = Callable[..., Path]
PIXELS = [f"px_{r}_{c}" for r in range(8) for c in range(8)]


def small_cnn(**data: Any) -> dict[str, Any]:
    """A fast CNN on the shipped digits, 300 rows a split at most."""
    return {
        "data": {"path": str(DATASETS / "digits.csv"), "target": "digit",
                 "task": "classification", "input_shape": [1, 8, 8], "pixel_scale": 16,
                 "validation_fraction": 0.2, **data},
        "model": {"layers": [
            {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
            {"type": "max_pool2d", "pool_size": 2},
            {"type": "conv2d", "filters": 6, "kernel_size": [3, 2], "stride": [1, 2]},
            {"type": "flatten"},
            {"type": "dense"}]},
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "training": {"epochs": 3, "batch_size": 64, "seed": 0},
        "output": {"runs_dir": "runs", "name": "cnn"},
    }


def test_validate_shows_each_layers_output_shape(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", str(CONFIGS / "digits-cnn.yaml")])
    assert result.exit_code == 0, result.output
    assert "input 1x8x8" in result.output
    for shape in ("16x8x8", "32x8x8", "32x4x4", "64x4x4", "1024"):
        assert shape in result.output
    assert "valid; 89546 parameters" in result.output


@pytest.mark.parametrize(("change", "where", "text"), [
    ({3: {"type": "dense", "units": 8}}, "model.layers[3]",
     "dense expects flat inputs, got shape (6, 2, 2); add {type: flatten}"),
    ({0: {"type": "conv2d", "filters": 2, "kernel_size": 9}}, "model.layers[0]",
     "larger than"),
    ({1: {"type": "max_pool2d", "pool_size": 2, "padding": 2}}, "model.layers[1]",
     "at most half"),
], ids=["dense-after-conv", "kernel-too-big", "pool-padding"])
def test_shape_problems_name_the_layer(runner: CliRunner, write_config: Writer,
                                       change: dict[int, Any], where: str, text: str) -> None:
    config = small_cnn()
    for index, layer in change.items():
        config["model"]["layers"][index] = layer
    result = runner.invoke(app, ["validate", str(write_config(config))])
    assert result.exit_code == 2, result.output
    assert f": {where}" in result.output and text in result.output, result.output
    assert "Traceback" not in result.output


def test_input_shape_must_match_the_columns(runner: CliRunner, write_config: Writer) -> None:
    result = runner.invoke(app, ["validate", str(write_config(small_cnn(
        input_shape=[1, 8, 9])))])
    assert result.exit_code == 2
    assert "data.input_shape: 1x8x9 needs 72 input columns, but the data gives 64" in \
        result.output


def test_image_layers_need_an_input_shape(runner: CliRunner, write_config: Writer) -> None:
    config = small_cnn()
    del config["data"]["input_shape"]
    result = runner.invoke(app, ["validate", str(write_config(config))])
    assert result.exit_code == 2
    assert "model.layers[0]" in result.output and "data.input_shape" in result.output


def test_pixels_are_divided_and_reshaped_in_row_major_order(write_config: Writer) -> None:
    experiment = prepare(load_config(write_config(small_cnn())))
    rows = list(csv.DictReader(io.StringIO((DATASETS / "digits.csv").read_text())))
    # the experiment's rows are the training split, in file order
    from bpcli.splits import split_rows

    labels = np.array([r["digit"] for r in rows])
    train, _ = split_rows(len(rows), [0.2], 0, np.unique(labels, return_inverse=True)[1])
    expected = np.array([[float(rows[i][p]) / 16 for p in PIXELS] for i in train[:5]])
    np.testing.assert_allclose(experiment.X_train[:5], expected, rtol=1e-6)
    network = experiment.build_network(np.random.default_rng(0))
    image = network.shaped(experiment.X_train[:1])
    assert image.shape == (1, 1, 8, 8)
    assert image[0, 0, 2, 5] == experiment.X_train[0, PIXELS.index("px_2_5")]


def test_train_predict_evaluate_a_cnn(runner: CliRunner, in_tmp: Path,
                                      write_config: Writer) -> None:
    config = write_config(small_cnn(test_fraction=0.2))
    result = runner.invoke(app, ["train", str(config)])
    assert result.exit_code == 0, result.output
    (run_dir,) = (in_tmp / "runs").iterdir()
    test = json.loads((run_dir / "test.json").read_text())
    assert test["task"] == "classification" and test["accuracy"] > 0.5
    model = run_dir / "model.npz"

    predicted = runner.invoke(app, ["predict", str(model), str(DATASETS / "digits.csv")])
    assert predicted.exit_code == 0, predicted.output
    rows = list(csv.DictReader(io.StringIO(predicted.stdout)))
    saved = load_model(model)
    assert saved.network.input_shape == (1, 8, 8)
    pre = saved.preprocessor
    X = pre.transform_features(read_inputs(pre, DATASETS / "digits.csv", with_targets=False))
    probs = saved.network.forward(X)
    assert [r["digit"] for r in rows] == [pre.classes[i] for i in probs.argmax(axis=1)]

    scored = runner.invoke(app, ["evaluate", str(model), str(DATASETS / "digits.csv"),
                                 "--json"])
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.output)
    assert report["macro"]["support"] == 1797
    assert report["accuracy"] == pytest.approx(
        np.mean([r["digit"] == d["digit"] for r, d in
                 zip(rows, csv.DictReader(io.StringIO((DATASETS / "digits.csv").read_text())),
                     strict=True)]))


def test_gradcheck_passes_on_a_cnn(runner: CliRunner, write_config: Writer) -> None:
    config = small_cnn()
    config["model"]["layers"][1] = {"type": "avg_pool2d", "pool_size": 2}
    config["model"]["layers"].insert(2, {"type": "batch_norm"})
    result = runner.invoke(app, ["gradcheck", str(write_config(config)), "--rows", "4"])
    assert result.exit_code == 0, result.output
    for layer in ("conv2d", "batch_norm", "dense", "input"):
        assert layer in result.output


def test_gradcheck_passes_with_dead_channels_normalised_and_max_pooled(
        runner: CliRunner, write_config: Writer) -> None:
    """Blank pixels make equal values in max pooling windows (and channels that come out
    of batch_norm as exactly its shift, tied with dropped-out zeros): points without a
    derivative, which the check steps around (noise on the rows, shifts off zero)."""
    config = small_cnn()
    config["model"]["layers"][0]["filters"] = 32  # some channels die for the batch
    config["model"]["layers"][1:1] = [{"type": "batch_norm"}, {"type": "dropout",
                                                               "rate": 0.3}]
    result = runner.invoke(app, ["gradcheck", str(write_config(config)), "--rows", "8"])
    assert result.exit_code == 0, result.output
    assert "all 9 tensors pass" in result.output
    assert "noise of 1% of their spread" in result.output
