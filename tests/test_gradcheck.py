"""bp gradcheck (bpcli/commands/gradcheck.py) on configs: it passes on the shipped ones and on
every layer with penalties, fails loudly on a wrong backward pass, in full and in --fast
mode, and refuses a bad config in one line. (The checker itself: test_nn_gradcheck.py.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.nn import Dense
from tests.conftest import CONFIGS, assert_clean_failure, iris_config

Writer = Callable[..., Path]


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
