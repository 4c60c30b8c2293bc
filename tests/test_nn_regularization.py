"""L1/L2 penalties and gradient clipping.

The regularised gradient (data loss plus penalty) is checked against our own central
differences of ``regularized_loss_value`` in float64, with weights kept clear of L1's kink
at zero; values and gradients are also checked against hand-computed numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli.nn import Activation, Dense, Dropout, Layer, Network
from bpcli.nn.losses import Loss, MeanSquaredError, SoftmaxCrossEntropy
from bpcli.nn.regularization import (
    Penalties,
    Penalty,
    add_penalty_gradients,
    clip_by_global_norm,
    clip_by_value,
    penalty_value,
    regularized_loss_and_grads,
    regularized_loss_value,
)
from tests.numeric import numeric_grad

EPS = 1e-6
ATOL = 1e-7
RTOL = 1e-5


def build(loss: Loss, seed: int, dtype: type = np.float64) -> Network:
    """Dense(5) - tanh - Dense(3) [- softmax], weights kept at least 0.05 from zero (L1's
    kink) and non-zero biases."""
    rng = np.random.default_rng(seed)
    layers: list[Layer] = [Dense(5), Activation("tanh"), Dense(3)]
    if loss.fused_activation is not None:
        layers.append(Activation(loss.fused_activation))
    network = Network(layers, loss, (4,), rng, dtype=dtype)
    for layer in network.layers:
        if "W" in layer.params:
            W = layer.params["W"]
            W[np.abs(W) < 0.05] = 0.1
            layer.params["b"][...] = rng.normal(0.0, 0.5, size=layer.params["b"].shape)
    return network


def data(loss: Loss, seed: int) -> tuple[NDArray, NDArray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(7, 4))
    if loss.target_kind == "i":
        return X, np.array([0, 1, 2, 0, 1, 2, 2])
    return X, rng.normal(size=(7, 3))


def by_hand(network: Network, penalties: dict[int, tuple[float, float]]) -> float:
    """The penalty from its definition, given (l1, l2) per dense layer index."""
    total = 0.0
    for index, (l1, l2) in penalties.items():
        W = network.layers[index].params["W"]
        total += l1 * np.abs(W).sum() + l2 * (W**2).sum()
    return total


PENALTY_CASES: dict[str, tuple[Penalties, dict[int, tuple[float, float]]]] = {
    "global_l2": (Penalties(Penalty(l2=0.05)), {0: (0.0, 0.05), 2: (0.0, 0.05)}),
    "global_l1": (Penalties(Penalty(l1=0.03)), {0: (0.03, 0.0), 2: (0.03, 0.0)}),
    "global_both": (Penalties(Penalty(l1=0.02, l2=0.1)), {0: (0.02, 0.1), 2: (0.02, 0.1)}),
    "override_one_layer": (
        Penalties(Penalty(l1=0.02, l2=0.1), {2: Penalty(l1=0.2, l2=0.5)}),
        {0: (0.02, 0.1), 2: (0.2, 0.5)},
    ),
    "exempt_one_layer": (
        Penalties(Penalty(l2=0.1), {0: Penalty()}),
        {0: (0.0, 0.0), 2: (0.0, 0.1)},
    ),
    "override_only": (Penalties(None, {0: Penalty(l1=0.05)}), {0: (0.05, 0.0)}),
}


# -- Penalty on its own ---------------------------------------------------------------
def test_a_penalty_keeps_its_own_copy_of_the_keys_it_was_given() -> None:
    """Frozen: changing the list it was made from afterwards changes nothing."""
    keys = ["W", "b"]
    penalty = Penalty(l2=1.0, keys=keys)  # type: ignore[arg-type]
    keys.append("gamma")
    params = {"W": np.array([1.0, 2.0]), "b": np.array([3.0]), "gamma": np.array([10.0])}
    assert penalty.value(params) == pytest.approx(1.0 + 4.0 + 9.0, rel=1e-15)
    assert penalty == Penalty(l2=1.0, keys=("W", "b")) and hash(penalty) is not None


def test_penalty_value_and_gradient_by_hand() -> None:
    W = np.array([[1.0, -2.0], [0.0, 3.0]])
    b = np.array([5.0, -1.0])
    params = {"W": W, "b": b}
    grads = {"W": np.ones_like(W), "b": np.ones_like(b)}
    penalty = Penalty(l1=0.1, l2=0.01)
    # 0.1 (1 + 2 + 0 + 3) + 0.01 (1 + 4 + 0 + 9); biases are not penalised by default
    assert penalty.value(params) == pytest.approx(0.6 + 0.14, rel=1e-15)
    penalty.add_gradient(params, grads)
    # 1 + 0.1 sign(W) + 0.02 W, with sign(0) = 0
    np.testing.assert_allclose(grads["W"], [[1.12, 0.86], [1.0, 1.16]], rtol=1e-15)
    np.testing.assert_array_equal(grads["b"], [1.0, 1.0])
    with_biases = Penalty(l1=0.1, l2=0.01, keys=("W", "b"))
    assert with_biases.value(params) == pytest.approx(0.74 + 0.1 * 6 + 0.01 * 26, rel=1e-15)


def test_zero_penalty_changes_nothing() -> None:
    W = np.array([[1.0, -2.0]])
    grads = {"W": np.array([[0.3, 0.4]])}
    before = grads["W"].copy()
    assert Penalty().is_zero
    assert Penalty().value({"W": W}) == 0.0
    Penalty().add_gradient({"W": W}, grads)
    np.testing.assert_array_equal(grads["W"], before)


@pytest.mark.parametrize(("l1", "l2"), [(-0.1, 0.0), (0.0, -1.0), (math.nan, 0.0),
                                        (0.0, math.inf)])
def test_penalty_rejects_bad_coefficients(l1: float, l2: float) -> None:
    with pytest.raises(ValueError, match="must be a number >= 0"):
        Penalty(l1=l1, l2=l2)


# -- penalties over a network ---------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PENALTY_CASES))
def test_penalty_values_and_gradients_over_a_network(name: str) -> None:
    penalties, coefficients = PENALTY_CASES[name]
    network = build(MeanSquaredError(), seed=50)
    X, Y = data(network.loss, seed=51)
    expected = by_hand(network, coefficients)
    assert penalty_value(network, penalties) == pytest.approx(expected, rel=1e-14)

    data_loss = network.compute_gradients(X, Y)
    plain = {name: g.copy() for name, _, g in network.parameters()}
    total = regularized_loss_and_grads(network, X, Y, penalties)
    assert total == pytest.approx(data_loss + expected, rel=1e-14)
    assert total == pytest.approx(regularized_loss_value(network, X, Y, penalties), rel=1e-14)
    for param_name, param, grad in network.parameters():
        index, key = param_name.split(".")
        l1, l2 = coefficients.get(int(index), (0.0, 0.0)) if key == "W" else (0.0, 0.0)
        np.testing.assert_allclose(grad - plain[param_name], l1 * np.sign(param) + 2 * l2 * param,
                                   rtol=1e-12, atol=1e-15, err_msg=param_name)
        if key == "b":
            np.testing.assert_array_equal(grad, plain[param_name])  # biases untouched


@pytest.mark.parametrize("loss", [MeanSquaredError(), SoftmaxCrossEntropy()],
                         ids=["mse", "cross_entropy"])
@pytest.mark.parametrize("name", sorted(PENALTY_CASES))
def test_regularized_gradients_against_central_differences(name: str, loss: Loss) -> None:
    penalties, _ = PENALTY_CASES[name]
    network = build(loss, seed=52)
    X, Y = data(loss, seed=53)
    regularized_loss_and_grads(network, X, Y, penalties)
    analytic = {param_name: g.copy() for param_name, _, g in network.parameters()}
    # No weight within eps of L1's kink.
    assert min(np.abs(p).min() for n, p, _ in network.parameters() if n.endswith("W")) > 10 * EPS

    def f() -> float:
        return regularized_loss_value(network, X, Y, penalties)

    for param_name, param, _ in network.parameters():
        np.testing.assert_allclose(analytic[param_name], numeric_grad(f, param), rtol=RTOL,
                                   atol=ATOL, err_msg=param_name)


def test_regularized_gradients_with_dropout_held() -> None:
    rng = np.random.default_rng(54)
    layers: list[Layer] = [Dense(6), Activation("relu"), Dropout(0.3), Dense(2)]
    network = Network(layers, MeanSquaredError(), (3,), rng, dtype=np.float64)
    for layer in network.layers:
        if "W" in layer.params:
            layer.params["W"][np.abs(layer.params["W"]) < 0.05] = -0.2
            layer.params["b"][...] = rng.normal(0.0, 0.5, size=layer.params["b"].shape)
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    penalties = Penalties(Penalty(l1=0.01, l2=0.02), {3: Penalty(l2=0.3)})
    with network.held_randomness():
        regularized_loss_and_grads(network, X, Y, penalties)
        analytic = [g.copy() for g in network.grad_arrays()]

        def f() -> float:
            return regularized_loss_value(network, X, Y, penalties, training=True)

        for param, grad in zip(network.param_arrays(), analytic, strict=True):
            np.testing.assert_allclose(grad, numeric_grad(f, param), rtol=RTOL, atol=ATOL)


def test_penalty_gradients_land_in_the_flat_vector_in_float32() -> None:
    network = build(MeanSquaredError(), seed=55, dtype=np.float32)
    X, Y = data(network.loss, seed=56)
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    network.compute_gradients(X, Y)
    before = network.flat_grads.copy()
    value = add_penalty_gradients(network, Penalties(Penalty(l1=0.01, l2=0.1)))
    assert isinstance(value, float) and value > 0
    assert network.flat_grads.dtype == np.float32
    assert all(g.dtype == np.float32 and np.shares_memory(g, network.flat_grads)
               for g in network.grad_arrays())
    assert not np.array_equal(network.flat_grads, before)
    W = network.layers[0].params["W"]
    np.testing.assert_allclose(network.layers[0].grads["W"],
                               before[: W.size].reshape(W.shape) + 0.01 * np.sign(W) + 0.2 * W,
                               rtol=1e-6, atol=1e-7)


def test_a_penalty_for_a_missing_or_parameterless_layer_is_refused() -> None:
    network = build(MeanSquaredError(), seed=57)
    with pytest.raises(ValueError, match="layer 1 \\(activation\\), which has no parameters"):
        penalty_value(network, Penalties(None, {1: Penalty(l2=0.1)}))
    with pytest.raises(ValueError, match="penalty for layer 7, but the network has 3 layers"):
        add_penalty_gradients(network, Penalties(None, {7: Penalty(l2=0.1)}))


def test_no_penalties_leave_the_data_loss_alone() -> None:
    network = build(SoftmaxCrossEntropy(), seed=58)
    X, Y = data(network.loss, seed=59)
    loss = network.compute_gradients(X, Y)
    plain = network.flat_grads.copy()
    assert regularized_loss_and_grads(network, X, Y, Penalties()) == loss
    np.testing.assert_array_equal(network.flat_grads, plain)
    assert regularized_loss_value(network, X, Y, Penalties()) == network.loss_value(X, Y, True)


# -- clipping -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_by_global_norm_below_the_limit_changes_nothing(dtype: type) -> None:
    g = np.array([3.0, -4.0, 0.0], dtype=dtype)  # norm 5
    before = g.copy()
    for max_norm in (5.0, 5.5, 1e9):
        assert clip_by_global_norm(g, max_norm) == pytest.approx(5.0, rel=1e-7)
        np.testing.assert_array_equal(g, before)
        assert g.dtype == dtype
    zeros = np.zeros(4, dtype=dtype)
    assert clip_by_global_norm(zeros, 1.0) == 0.0
    np.testing.assert_array_equal(zeros, 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_by_global_norm_above_the_limit(dtype: type) -> None:
    rng = np.random.default_rng(60)
    g = (rng.normal(size=1000) * 3).astype(dtype)
    before = g.astype(np.float64)
    norm = float(np.linalg.norm(before))
    assert norm > 10
    returned = clip_by_global_norm(g, 2.5)
    assert returned == pytest.approx(norm, rel=1e-6)
    assert g.dtype == dtype
    assert float(np.linalg.norm(g.astype(np.float64))) == pytest.approx(2.5, rel=1e-6)
    # same direction: a common scale
    np.testing.assert_allclose(g, before * (2.5 / norm), rtol=1e-6 if dtype == np.float32
                               else 1e-13)


def test_clip_by_global_norm_by_hand_and_through_the_layer_views() -> None:
    network = build(MeanSquaredError(), seed=61)
    X, Y = data(network.loss, seed=62)
    network.compute_gradients(X, Y)
    network.flat_grads[...] = 0.0
    network.layers[0].grads["W"][0, 0] = 3.0
    network.layers[2].grads["b"][1] = -4.0
    assert clip_by_global_norm(network.flat_grads, 1.0) == pytest.approx(5.0, rel=1e-15)
    assert network.layers[0].grads["W"][0, 0] == pytest.approx(0.6, rel=1e-15)
    assert network.layers[2].grads["b"][1] == pytest.approx(-0.8, rel=1e-15)
    assert np.count_nonzero(network.flat_grads) == 2


def test_clip_by_global_norm_survives_float32_overflow_and_keeps_nan() -> None:
    g = np.full(4, 1e30, dtype=np.float32)  # sum of squares overflows float32
    assert clip_by_global_norm(g, 1.0) == pytest.approx(2e30, rel=1e-6)
    assert float(np.linalg.norm(g.astype(np.float64))) == pytest.approx(1.0, rel=1e-6)
    bad = np.array([1.0, np.nan, 2.0])
    assert math.isnan(clip_by_global_norm(bad, 1.0))
    np.testing.assert_array_equal(bad, [1.0, np.nan, 2.0])  # left for divergence checks
    inf = np.array([np.inf, 1.0], dtype=np.float32)
    assert clip_by_global_norm(inf, 1.0) == math.inf
    np.testing.assert_array_equal(inf, np.array([np.inf, 1.0], dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_by_value(dtype: type) -> None:
    g = np.array([-3.0, -0.5, 0.0, 0.25, 7.0], dtype=dtype)
    view = g[1:]
    clip_by_value(g, 0.5)
    assert g.dtype == dtype
    np.testing.assert_array_equal(g, np.array([-0.5, -0.5, 0.0, 0.25, 0.5], dtype=dtype))
    np.testing.assert_array_equal(view, g[1:])  # in place
    untouched = np.array([0.1, -0.2], dtype=dtype)
    before = untouched.copy()
    clip_by_value(untouched, 1.0)
    np.testing.assert_array_equal(untouched, before)


@pytest.mark.parametrize("limit", [0.0, -1.0, math.nan, math.inf])
def test_clipping_rejects_bad_limits(limit: float) -> None:
    with pytest.raises(ValueError, match="positive number"):
        clip_by_global_norm(np.ones(3), limit)
    with pytest.raises(ValueError, match="positive number"):
        clip_by_value(np.ones(3), limit)


def test_clipping_wants_the_flat_vector() -> None:
    with pytest.raises(ValueError, match="1-D"):
        clip_by_global_norm(np.ones((2, 2)), 1.0)
    with pytest.raises(ValueError, match="1-D"):
        clip_by_value(np.ones((2, 2)), 1.0)


def test_clipping_limits_are_named_when_refused() -> None:
    g = np.ones(3)
    with pytest.raises(ValueError, match=r"gradient clipping: max_norm must be a positive "
                       r"number, not -1\.0"):
        clip_by_global_norm(g, -1.0)
    with pytest.raises(ValueError, match=r"gradient clipping: limit must be a positive "
                       r"number, not 0\.0"):
        clip_by_value(g, 0.0)
    assert g.tolist() == [1.0, 1.0, 1.0]


def test_a_penalty_skips_keys_a_layer_lacks_and_goes_on() -> None:
    W = np.array([[1.0, -2.0]])
    penalty = Penalty(l1=0.5, l2=1.0, keys=("gamma", "W"))  # dense layers have no gamma
    assert penalty.value({"W": W}) == pytest.approx(0.5 * 3 + 1.0 * 5)
    grads = {"W": np.zeros_like(W)}
    penalty.add_gradient({"W": W}, grads)
    assert grads["W"].tolist() == [[0.5 + 2.0, -0.5 - 4.0]]


def test_a_penalty_override_must_name_a_layer_with_parameters() -> None:
    network = Network([Dense(2), Activation("tanh"), Dense(1)], MeanSquaredError(), (2,),
                      np.random.default_rng(0))
    Penalties(per_layer={0: Penalty(l2=1.0), 2: Penalty(l2=1.0)}).check(network)
    with pytest.raises(ValueError, match="penalty for layer 3, but the network has 3 layers"):
        Penalties(per_layer={3: Penalty(l2=1.0)}).check(network)
    with pytest.raises(ValueError, match=r"penalty for layer 1 \(activation\), which has no "
                       "parameters"):
        Penalties(per_layer={1: Penalty(l2=1.0)}).check(network)
