"""Optimizer updates against numbers worked out by hand from the docstrings' update rules.

Throughout: w = [1.0, -2.0], first gradient g1 = [0.5, 0.25], learning rate lr = 0.1.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli.nn import OPTIMIZERS, Optimizer
from bpcli.nn.optimizers import SGD, Adam

Floats = NDArray[np.floating]

W0 = [1.0, -2.0]
G1 = [0.5, 0.25]
G2 = [-1.0, 0.5]  # a second, different gradient, so that step two is not a repeat


def run(optimizer: Optimizer, gradients: list[list[float]]) -> list[Floats]:
    """The weights after each step, starting from W0."""
    w: Floats = np.array(W0)
    history = []
    for g in gradients:
        optimizer.step([w], [np.array(g)])
        history.append(w.copy())
    return history


# -- SGD -----------------------------------------------------------------------------
def test_plain_sgd() -> None:
    opt = SGD(learning_rate=0.1)
    w1, w2 = run(opt, [G1, G1])
    # w <- w - lr g:  1 - 0.05 = 0.95;  -2 - 0.025 = -2.025
    np.testing.assert_allclose(w1, [0.95, -2.025], rtol=0, atol=1e-12)
    # again:          0.95 - 0.05 = 0.9;  -2.025 - 0.025 = -2.05
    np.testing.assert_allclose(w2, [0.9, -2.05], rtol=0, atol=1e-12)
    assert opt.iterations == 2


def test_sgd_momentum() -> None:
    opt = SGD(learning_rate=0.1, momentum=0.9)
    w1, w2 = run(opt, [G1, G1])
    # v1 = 0.9*0 - 0.1*g = [-0.05, -0.025];  w1 = w + v1 = [0.95, -2.025]
    np.testing.assert_allclose(w1, [0.95, -2.025], rtol=0, atol=1e-12)
    # v2 = 0.9*v1 - 0.1*g = [-0.045 - 0.05, -0.0225 - 0.025] = [-0.095, -0.0475]
    # w2 = w1 + v2 = [0.95 - 0.095, -2.025 - 0.0475] = [0.855, -2.0725]
    np.testing.assert_allclose(w2, [0.855, -2.0725], rtol=0, atol=1e-12)
    np.testing.assert_allclose(opt.velocities[0], [-0.095, -0.0475], rtol=0, atol=1e-12)


def test_sgd_nesterov() -> None:
    opt = SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    w1, w2 = run(opt, [G1, G1])
    # v1 = [-0.05, -0.025]
    # w1 = w + 0.9*v1 - 0.1*g = [1 - 0.045 - 0.05, -2 - 0.0225 - 0.025] = [0.905, -2.0475]
    np.testing.assert_allclose(w1, [0.905, -2.0475], rtol=0, atol=1e-12)
    # v2 = [-0.095, -0.0475]
    # w2 = w1 + 0.9*v2 - 0.1*g = [0.905 - 0.0855 - 0.05, -2.0475 - 0.04275 - 0.025]
    #    = [0.7695, -2.11525]
    np.testing.assert_allclose(w2, [0.7695, -2.11525], rtol=0, atol=1e-12)


def test_sgd_with_different_gradients() -> None:
    opt = SGD(learning_rate=0.1, momentum=0.5)
    _, w2 = run(opt, [G1, G2])
    # v1 = [-0.05, -0.025], w1 = [0.95, -2.025]
    # v2 = 0.5*v1 - 0.1*G2 = [-0.025 + 0.1, -0.0125 - 0.05] = [0.075, -0.0625]
    # w2 = [0.95 + 0.075, -2.025 - 0.0625] = [1.025, -2.0875]
    np.testing.assert_allclose(w2, [1.025, -2.0875], rtol=0, atol=1e-12)


# -- Adam ----------------------------------------------------------------------------
def test_adam_first_step_moves_each_weight_by_about_lr() -> None:
    opt = Adam(learning_rate=0.1)  # beta1 0.9, beta2 0.999, epsilon 1e-8
    (w1,) = run(opt, [G1])
    # m = 0.1 g, v = 0.001 g^2; bias-corrected: m_hat = g, v_hat = g^2, sqrt(v_hat) = |g|
    # step = lr * g / (|g| + 1e-8) = 0.1 * sign(g) * (1 - 1e-8/|g|)
    #   w1[0] = 1 - 0.1 * 0.5 / (0.5 + 1e-8)    = 0.900000002
    #   w1[1] = -2 - 0.1 * 0.25 / (0.25 + 1e-8) = -2.099999996
    np.testing.assert_allclose(w1, [0.900000002, -2.099999996], rtol=0, atol=1e-12)
    np.testing.assert_allclose(opt.m[0], [0.05, 0.025], rtol=1e-12)
    np.testing.assert_allclose(opt.v[0], [0.00025, 0.0000625], rtol=1e-12)
    assert opt.iterations == 1


def test_adam_second_step_same_gradient() -> None:
    (_, w2) = run(Adam(learning_rate=0.1), [G1, G1])
    # With a constant gradient the bias-corrected moments stay m_hat = g, v_hat = g^2:
    #   m2 = 0.9*0.05 + 0.1*0.5 = 0.095, m2 / (1 - 0.81) = 0.5
    #   v2 = 0.999*0.00025 + 0.001*0.25 = 0.00049975, / (1 - 0.998001) = 0.25
    # so again each weight moves by ~0.1: [0.8, -2.2] (to within 1e-8 of epsilon effects)
    np.testing.assert_allclose(w2, [0.8, -2.2], rtol=0, atol=1e-7)


def test_adam_second_step_different_gradient() -> None:
    opt = Adam(learning_rate=0.1)
    (_, w2) = run(opt, [G1, G2])
    # entry 0: m2 = 0.9*0.05 + 0.1*(-1) = -0.055;        m_hat = -0.055 / 0.19 = -0.2894737
    #          v2 = 0.999*0.00025 + 0.001*1 = 0.00124975; v_hat = v2 / 0.001999 = 0.6251876
    #          sqrt(v_hat) = 0.7906881; step = 0.1 * -0.2894737 / 0.7906881 = -0.0366104
    #          w2 = 0.900000002 + 0.0366104 = 0.9366104
    # entry 1: m2 = 0.9*0.025 + 0.1*0.5 = 0.0725;        m_hat = 0.0725 / 0.19 = 0.3815789
    #          v2 = 0.999*0.0000625 + 0.001*0.25 = 0.0003124375; v_hat = 0.1562969
    #          sqrt(v_hat) = 0.3953440; step = 0.1 * 0.3815789 / 0.3953440 = 0.0965182
    #          w2 = -2.099999996 - 0.0965182 = -2.1965182
    np.testing.assert_allclose(w2, [0.9366104, -2.1965182], rtol=0, atol=2e-7)
    np.testing.assert_allclose(opt.m[0], [-0.055, 0.0725], rtol=1e-12)
    np.testing.assert_allclose(opt.v[0], [0.00124975, 0.0003124375], rtol=1e-12)


def test_updates_are_in_place_on_every_tensor() -> None:
    w: Floats = np.array(W0)
    b: Floats = np.array([0.0])
    w_id, b_id = id(w), id(b)
    opt = Adam(learning_rate=0.1)
    opt.step([w, b], [np.array(G1), np.array([-3.0])])
    assert (id(w), id(b)) == (w_id, b_id)
    np.testing.assert_allclose(w, [0.9, -2.1], atol=1e-7)
    np.testing.assert_allclose(b, [0.1], atol=1e-7)  # -3 < 0: b moves up by ~lr


# -- state round trip ----------------------------------------------------------------
OPTIMIZER_FACTORIES = {
    "sgd": lambda: SGD(learning_rate=0.1),
    "momentum": lambda: SGD(learning_rate=0.1, momentum=0.9),
    "nesterov": lambda: SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    "adam": lambda: Adam(learning_rate=0.1),
}


@pytest.mark.parametrize("kind", sorted(OPTIMIZER_FACTORIES))
def test_state_round_trip(kind: str) -> None:
    rng = np.random.default_rng(0)
    gradients: list[list[Floats]] = [
        [rng.normal(size=(3, 2)), rng.normal(size=2)] for _ in range(5)
    ]
    params: list[Floats] = [rng.normal(size=(3, 2)), rng.normal(size=2)]

    original = OPTIMIZER_FACTORIES[kind]()
    for g in gradients[:2]:
        original.step(params, g)
    # As a checkpoint would: copies of the arrays, not the live ones.
    saved = {key: np.array(value) for key, value in original.state().items()}
    assert int(saved["iterations"]) == 2

    restored = OPTIMIZER_FACTORIES[kind]()
    restored.load_state(saved)
    assert restored.iterations == 2
    restored_params: list[Floats] = [p.copy() for p in params]
    for g in gradients[2:]:
        original.step(params, g)
        restored.step(restored_params, g)
    for a, b in zip(params, restored_params, strict=True):
        np.testing.assert_array_equal(a, b)
    assert restored.iterations == original.iterations == 5


def test_state_contents() -> None:
    adam = Adam(learning_rate=0.1)
    run(adam, [G1])
    assert sorted(adam.state()) == ["iterations", "learning_rate", "m/0", "v/0"]
    momentum = SGD(learning_rate=0.1, momentum=0.9)
    run(momentum, [G1])
    assert sorted(momentum.state()) == ["iterations", "learning_rate", "velocity/0"]
    assert sorted(SGD(learning_rate=0.1).state()) == ["iterations", "learning_rate"]


def test_learning_rate_travels_with_the_state() -> None:
    """A rate lowered by a divergence rollback survives a checkpoint."""
    source = SGD(learning_rate=0.1)
    source.learning_rate = 0.025
    restored = SGD(learning_rate=0.1)
    restored.load_state(source.state())
    assert restored.learning_rate == 0.025


def test_loaded_state_is_not_shared_with_the_source() -> None:
    source = Adam(learning_rate=0.1)
    run(source, [G1])
    state = source.state()
    restored = Adam(learning_rate=0.1)
    restored.load_state(state)
    source.step([np.array(W0)], [np.array(G2)])  # mutates source's moments in place
    np.testing.assert_allclose(restored.m[0], [0.05, 0.025], rtol=1e-12)


# -- validation ----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("learning_rate", [0.0, -0.1])
def test_nonpositive_learning_rate_is_rejected(name: str, learning_rate: float) -> None:
    with pytest.raises(ValueError, match="learning rate"):
        OPTIMIZERS[name](learning_rate=learning_rate)


@pytest.mark.parametrize("momentum", [-0.1, 1.0])
def test_momentum_out_of_range_is_rejected(momentum: float) -> None:
    with pytest.raises(ValueError, match="momentum"):
        SGD(learning_rate=0.1, momentum=momentum)


@pytest.mark.parametrize("kind", ["adam", "adamw", "nadam"])
@pytest.mark.parametrize(("setting", "value"), [("beta1", 1.0), ("beta2", -0.1),
                                                ("epsilon", 0.0)])
def test_adam_family_refuses_settings_that_divide_by_zero(kind: str, setting: str,
                                                          value: float) -> None:
    with pytest.raises(ValueError, match=setting):
        OPTIMIZERS[kind](**{setting: value})
