"""The directional (fast) gradient check: cost independent of size, still catches errors."""

from __future__ import annotations

import numpy as np
import pytest

from bpcli.nn import Activation, Dense, Network
from bpcli.nn.gradcheck import check_gradients
from bpcli.nn.losses import SoftmaxCrossEntropy


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
