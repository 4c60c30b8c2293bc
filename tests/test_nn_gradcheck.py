"""The gradient checker of bpcli/nn/gradcheck.py itself: it catches a wrong backward pass,
samples at most max_entries of a tensor, and its directional (fast) mode costs the same at
any size and still catches errors. (Its use on every layer, activation and loss is in
test_nn_gradients.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli.nn import Activation, Dense, Network
from bpcli.nn.gradcheck import check_gradients
from bpcli.nn.losses import MeanSquaredError, SoftmaxCrossEntropy
from tests.test_nn_gradients import build


def wide_network() -> Network:
    layers = [Dense(300), Activation("tanh"), Dense(5), Activation("softmax")]
    return Network(layers, SoftmaxCrossEntropy(), (200,), np.random.default_rng(0), np.float64)


def test_directional_check_passes_and_counts_directions() -> None:
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(6, 200)), rng.integers(0, 5, 6)
    results = check_gradients(wide_network(), X, Y, directions=4, rng=rng)
    assert all(r.passed and r.directional for r in results)
    first = results[0]
    assert (first.checked, first.total, first.shape) == (4, 200 * 300, (200, 300))


def test_directional_check_catches_a_small_error(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Dense.backward

    def wrong(self: Dense, dY: np.ndarray) -> np.ndarray | None:
        dX = original(self, dY)
        self.grads["W"] *= 1.001  # a 0.1% error
        return dX

    monkeypatch.setattr(Dense, "backward", wrong)
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(6, 200)), rng.integers(0, 5, 6)
    results = check_gradients(wide_network(), X, Y, directions=2, rng=rng)
    assert [r.passed for r in results] == [False, True, False, True, True]


def test_checker_catches_a_wrong_dense_backward(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Dense.backward

    def slightly_wrong(self: Dense, dY: NDArray) -> NDArray | None:
        dX = original(self, dY)
        self.grads["W"] *= 1.01
        return dX

    monkeypatch.setattr(Dense, "backward", slightly_wrong)
    rng = np.random.default_rng(13)
    network = build([Dense(4), Activation("tanh"), Dense(2)], MeanSquaredError(), 3, seed=14)
    checks = check_gradients(network, rng.normal(size=(5, 3)), rng.normal(size=(5, 2)))
    by_name = {(c.layer, c.name): c for c in checks}
    assert not by_name[("0 dense", "W")].passed
    assert not by_name[("1 dense", "W")].passed
    assert by_name[("0 dense", "W")].max_rel_error == pytest.approx(0.01 / 1.01, rel=1e-3)
    # Only W was tampered with: biases and the input gradient are still right.
    assert by_name[("0 dense", "b")].passed
    assert by_name[("1 dense", "b")].passed
    assert by_name[("input", "X")].passed


def test_checker_samples_at_most_max_entries() -> None:
    rng = np.random.default_rng(15)
    network = build([Dense(7), Activation("tanh"), Dense(2)], MeanSquaredError(), 5, seed=16)
    X = rng.normal(size=(4, 5))
    Y = rng.normal(size=(4, 2))
    checks = check_gradients(network, X, Y, max_entries=6, rng=np.random.default_rng(0))
    sizes = {("0 dense", "W"): 35, ("0 dense", "b"): 7, ("1 dense", "W"): 14,
             ("1 dense", "b"): 2, ("input", "X"): 20}
    assert {(c.layer, c.name): c.total for c in checks} == sizes
    for c in checks:
        assert c.checked == min(6, c.total), c
        assert int(np.prod(c.shape)) == c.total
        assert c.passed, c
    # check_gradients restores the first layer's training setting and the parameters.
    assert network.layers[0].needs_input_grad is False
    again = check_gradients(network, X, Y, max_entries=6, rng=np.random.default_rng(0))
    assert again == checks
