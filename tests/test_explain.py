"""bp explain: one backpropagation step, shown in the order it is computed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.explain import explain_step
from bpcli.nn import Activation, Dense, Network
from bpcli.nn.losses import SoftmaxCrossEntropy
from bpcli.nn.optimizers import SGD
from tests.conftest import CONFIGS, iris_config

Writer = Callable[..., Path]


def network() -> Network:
    layers = [Dense(5), Activation("tanh"), Dense(3), Activation("softmax")]
    return Network(layers, SoftmaxCrossEntropy(), (4,), np.random.default_rng(0), np.float64)


def test_trace_follows_the_algorithm_and_the_update_lowers_the_loss() -> None:
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(3, 4)), np.array([0, 2, 1])
    net = network()
    reference = network()
    reference.compute_gradients(X, Y)
    trace = explain_step(net, SGD(learning_rate=0.01), X, Y, [1, 2, 3], list("abcd"))
    phases = [s.phase for s in trace.stages]
    assert phases == sorted(phases, key=["forward", "loss", "backward", "update"].index)
    grads = {s.layer.split(" ")[0] + s.what: s.values for s in trace.stages
             if s.phase == "backward" and s.what.startswith("dL/dW")}
    assert np.allclose(grads["0dL/dW"], reference.layers[0].grads["W"])
    # numbered as the config numbers layers: tanh is part of layer 0
    assert np.allclose(grads["1dL/dW"], reference.layers[2].grads["W"])
    updates = [s for s in trace.stages if s.phase == "update"]
    assert np.allclose(updates[0].values, -0.01 * reference.layers[0].grads["W"])
    assert trace.loss_after < trace.loss_before


def test_trace_numbers_match_a_worked_example() -> None:
    """Two rows through dense(2) - tanh - dense(2) - softmax, derived by hand: the chain
    rule written out here, not bp's backward, is the oracle."""
    net = Network([Dense(2), Activation("tanh"), Dense(2), Activation("softmax")],
                  SoftmaxCrossEntropy(), (2,), np.random.default_rng(0), np.float64)
    W1, b1 = np.array([[0.5, -1.0], [2.0, 0.25]]), np.array([0.1, -0.2])
    W2, b2 = np.array([[1.0, -0.5], [-2.0, 0.75]]), np.array([0.0, 0.3])
    for layer, (W, b) in ((net.layers[0], (W1, b1)), (net.layers[2], (W2, b2))):
        layer.params["W"][...], layer.params["b"][...] = W, b
    X, Y = np.array([[1.0, -1.0], [0.5, 2.0]]), np.array([1, 0])
    trace = explain_step(net, SGD(learning_rate=0.1), X, Y, [1, 2], ["a", "b"])
    # layers as the config numbers them: an activation is part of the layer before it
    stages = {(s.phase, " ".join(s.layer.split(" ")[:2]), s.what.split(" ")[0]): s.values
              for s in trace.stages}

    # forward: row 1 is [0.5 - 2 + 0.1, -1 - 0.25 - 0.2], row 2 [0.25 + 4 + 0.1, -0.5 + 0.5 - 0.2]
    Z1 = np.array([[-1.4, -1.45], [4.35, -0.2]])
    assert np.allclose(stages["forward", "0 dense", "Z"], Z1)
    H = np.tanh(Z1)
    assert np.allclose(stages["forward", "0 tanh", "A"], H)
    Z2 = H @ W2 + b2
    P = np.exp(Z2) / np.exp(Z2).sum(axis=1, keepdims=True)
    assert np.allclose(stages["forward", "1 softmax", "A"], P)
    T = np.array([[0.0, 1.0], [1.0, 0.0]])  # one-hot targets
    assert trace.loss_before == pytest.approx(-np.mean(np.log(P[T == 1])))

    # backward: softmax + cross-entropy gives (P - T) / n, then the chain rule
    dZ2 = (P - T) / 2
    assert np.allclose(stages["loss", "cross_entropy", "L"], dZ2)
    assert np.allclose(stages["backward", "1 dense", "dL/dW"], H.T @ dZ2)
    assert np.allclose(stages["backward", "1 dense", "dL/db"], dZ2.sum(axis=0))
    dZ1 = dZ2 @ W2.T * (1 - H**2)
    assert np.allclose(stages["backward", "0 tanh", "dL/dX"], dZ1)
    assert np.allclose(stages["backward", "0 dense", "dL/dW"], X.T @ dZ1)
    assert np.allclose(stages["backward", "0 dense", "dL/db"], dZ1.sum(axis=0))
    # the update: plain SGD, -0.1 times the gradient
    updates = {s.layer.split(" ")[0] + s.what: s.values for s in trace.stages
               if s.phase == "update"}
    assert np.allclose(updates["0change in W"], -0.1 * X.T @ dZ1)
    assert np.allclose(updates["1change in b"], -0.1 * dZ2.sum(axis=0))


def test_explain_a_config_and_a_model(runner: CliRunner, in_tmp: Path,
                                      write_config: Writer) -> None:
    result = runner.invoke(app, ["explain", str(CONFIGS / "iris.yaml"), "--row", "51"])
    assert result.exit_code == 0, result.output
    for text in ("1. Forward pass", "2. The loss", "3. Backward pass", "4. The weight update",
                 "dL/dW", "softmax", "data row(s) 51", "before the update"):
        assert text in result.output
    assert runner.invoke(app, ["train", str(write_config(iris_config()))]).exit_code == 0
    (model,) = in_tmp.glob("runs/*/model.npz")
    result = runner.invoke(app, ["explain", str(model), "--rows", "3"])
    assert result.exit_code == 0, result.output
    assert "data row(s) 1, 2, 3" in result.output


def test_large_arrays_are_summarised(runner: CliRunner, write_config: Writer) -> None:
    config = iris_config(model={"layers": [{"type": "dense", "units": 100},
                                           {"type": "dense"}]})
    result = runner.invoke(app, ["explain", str(write_config(config))])
    assert result.exit_code == 0, result.output
    assert "shape 4x100" in result.output and "first entries" in result.output


def test_rows_outside_the_data(runner: CliRunner) -> None:
    result = runner.invoke(app, ["explain", str(CONFIGS / "iris.yaml"), "--row", "150",
                                 "--rows", "2"])
    assert result.exit_code == 2 and "has 150 data rows" in result.output


def test_health_columns_do_not_change_training(in_tmp: Path, write_config: Writer) -> None:
    import subprocess
    import sys

    config = write_config(iris_config())
    outputs = []
    for extra in ([], ["--health"]):
        proc = subprocess.run([sys.executable, "-m", "bpcli", "train", str(config), *extra],
                              capture_output=True, text=True, check=False, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outputs.append([line for line in proc.stdout.splitlines() if line.startswith("epoch")])
    plain, health = outputs
    assert all("grad_norm" in line and "update/weight 0:" in line and "dead_relu" in line
               for line in health)
    # the same numbers, with the health columns added (seconds differ)
    assert [line.split()[:8] for line in plain] == [line.split()[:8] for line in health]


def test_dead_relu_units_are_counted() -> None:
    from bpcli.trainer import _health

    net = Network([Dense(6), Activation("relu"), Dense(3), Activation("softmax")],
                  SoftmaxCrossEntropy(), (4,), np.random.default_rng(0))
    net.layers[0].params["b"][:3] = -100.0  # half the units can never fire
    start = net.flat_params.copy()
    net.flat_params *= 1.1
    X = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    health = _health(net, start, 4.0, X)
    assert health.dead_relu == 0.5
    assert health.grad_norm == 2.0
    assert set(health.update_ratios) == {"0", "1"}  # the dense layers, as numbered in a config
    assert np.isclose(health.update_ratios["1"], 0.1, rtol=1e-5)
