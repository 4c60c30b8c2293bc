"""The losses of bpcli/nn/losses.py: their options, values and numerical corners. (Every
loss's gradient against central differences, and the plain three's values against their
definitions, are checked with every layer's in test_nn_gradients.py.)

Mean absolute error, Huber, cross-entropy with label smoothing and class weights, and
binary cross-entropy with class weights: gradients against central differences (float64)
on the loss alone and end to end through a small network, values against hand-computed
numbers and against references written straight from the formulas, and the defaults
against the original implementation, bit for bit; rows of logits far apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli.nn import LOSSES, Activation, Dense, Layer, Network
from bpcli.nn.activations import sigmoid
from bpcli.nn.gradcheck import check_gradients
from bpcli.nn.losses import (
    Huber,
    Loss,
    MeanAbsoluteError,
    SigmoidBinaryCrossEntropy,
    SoftmaxCrossEntropy,
)
from tests.numeric import numeric_grad

EPS = 1e-6
ATOL = 1e-7
RTOL = 1e-5


# -- helpers -------------------------------------------------------------------------
def log_softmax(Z: NDArray) -> NDArray:
    """Reference log-softmax in float64, written plainly."""
    Z = np.asarray(Z, dtype=np.float64)
    m = Z.max(axis=1, keepdims=True)
    return Z - m - np.log(np.exp(Z - m).sum(axis=1, keepdims=True))


def reference_cross_entropy(
    Z: NDArray, y: NDArray, smoothing: float = 0.0, weights: list[float] | None = None
) -> tuple[float, NDArray]:
    """Straight from the docstring: t = (1-s) onehot + s/k, l_i = -sum_j t_ij log p_ij,
    L = sum w[y_i] l_i / sum w[y_i], dZ_i = w[y_i] (p_i - t_i) / sum w[y_i]."""
    n, k = Z.shape
    t = np.full((n, k), smoothing / k)
    t[np.arange(n), y] += 1 - smoothing
    log_p = log_softmax(Z)
    per_sample = -(t * log_p).sum(axis=1)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)[y]
    loss = float((w * per_sample).sum() / w.sum())
    grad = w[:, None] * (np.exp(log_p) - t) / w.sum()
    return loss, grad


def reference_bce(Z: NDArray, Y: NDArray, weights: list[float]) -> tuple[float, NDArray]:
    """Weighted binary cross-entropy from probabilities (fine for moderate logits)."""
    Z = np.asarray(Z, dtype=np.float64)
    s = 1 / (1 + np.exp(-Z))
    per_entry = -(Y * np.log(s) + (1 - Y) * np.log(1 - s))
    w = np.where(Y == 1, weights[1], weights[0])
    return float((w * per_entry).sum() / w.sum()), w * (s - Y) / w.sum()


# The original implementations (before options existed), frozen here so that the defaults
# can be compared with them bit for bit.
def original_ce_value(P: NDArray, Y: NDArray) -> float:
    shifted = P - np.max(P, axis=1, keepdims=True)
    log_norm = np.log(np.sum(np.exp(shifted), axis=1))
    return float(np.mean(log_norm - shifted[np.arange(len(Y)), Y]))


def original_ce_value_and_grad(P: NDArray, Y: NDArray) -> tuple[float, NDArray]:
    n, k = P.shape
    flat_index = np.arange(0, n * k, k) + Y
    S = P - np.max(P, axis=1, keepdims=True)
    flat = S.reshape(-1)
    picked_sum = float(np.add.reduce(flat[flat_index]))
    np.exp(S, out=S)
    norm = np.add.reduce(S, axis=1, keepdims=True)
    loss = (float(np.add.reduce(np.log(norm), axis=None)) - picked_sum) / n
    S /= norm
    flat[flat_index] -= 1
    S *= P.dtype.type(1.0 / n)
    return loss, S


def original_bce_value_and_grad(P: NDArray, Y: NDArray) -> tuple[float, NDArray]:
    loss = float(np.mean(np.maximum(P, 0) - P * Y + np.log1p(np.exp(-np.abs(P)))))
    G = sigmoid(P) - Y
    G *= P.dtype.type(1.0 / G.size)
    return loss, G


CONFIGURED: dict[str, Callable[[], Loss]] = {
    "mae": MeanAbsoluteError,
    "huber": Huber,
    "huber_delta_0.5": lambda: Huber(delta=0.5),
    "huber_delta_3": lambda: Huber(delta=3.0),
    "ce_smoothing_0.1": lambda: SoftmaxCrossEntropy(label_smoothing=0.1),
    "ce_smoothing_0.4": lambda: SoftmaxCrossEntropy(label_smoothing=0.4),
    "ce_weights": lambda: SoftmaxCrossEntropy(class_weights=[0.5, 2.0, 1.0, 3.0]),
    "ce_smoothing_and_weights": lambda: SoftmaxCrossEntropy(
        label_smoothing=0.2, class_weights=[0.5, 2.0, 1.0, 3.0]
    ),
    "bce_weights": lambda: SigmoidBinaryCrossEntropy(class_weights=[0.3, 2.5]),
}


def inputs_for(loss: Loss, rng: np.random.Generator, dtype: type = np.float64,
               shape: tuple[int, int] = (6, 4)) -> tuple[NDArray, NDArray]:
    """Predictions / logits and suitable targets; regression inputs keep |P - Y| away
    from 0 (MAE's kink)."""
    P = (rng.normal(size=shape) * 2).astype(dtype)
    if loss.target_kind == "i":
        y = rng.integers(0, shape[1], size=shape[0])
        y[: shape[1]] = np.arange(shape[1])  # every class present
        return P, y
    if loss.fused_activation == "sigmoid":
        return P, rng.integers(0, 2, size=shape).astype(dtype)
    D = rng.uniform(0.05, 3.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return P, (P - D).astype(dtype)


def build(layers: list[Layer], loss: Loss, n_in: int, seed: int) -> Network:
    rng = np.random.default_rng(seed)
    network = Network(layers, loss, (n_in,), rng, dtype=np.float64)
    for layer in network.layers:
        if "b" in layer.params:
            layer.params["b"][...] = rng.normal(0.0, 0.5, size=layer.params["b"].shape)
    return network


def own_network_check(network: Network, X: NDArray, Y: NDArray) -> None:
    """Our own central differences agree with compute_gradients for every tensor and X."""
    X = np.array(X, dtype=np.float64)
    network.layers[0].needs_input_grad = True
    try:
        network.compute_gradients(X, Y)
        analytic = {name: g.copy() for name, _, g in network.parameters()}
        assert network.input_grad is not None
        analytic["X"] = np.array(network.input_grad)

        def f() -> float:
            return network.loss_value(X, Y, training=True)

        for name, param, _ in network.parameters():
            np.testing.assert_allclose(analytic[name], numeric_grad(f, param), rtol=RTOL,
                                       atol=ATOL, err_msg=name)
        np.testing.assert_allclose(analytic["X"], numeric_grad(f, X), rtol=RTOL, atol=ATOL)
    finally:
        network.layers[0].needs_input_grad = False


# -- the table -----------------------------------------------------------------------
def test_new_losses_are_in_the_table() -> None:
    assert LOSSES["mae"] is MeanAbsoluteError
    assert LOSSES["huber"] is Huber
    for name in ("mae", "huber"):
        assert LOSSES[name].fused_activation is None
        assert LOSSES[name].target_kind == "f"


@pytest.mark.parametrize("name", sorted(CONFIGURED))
def test_describe_rebuilds_the_loss(name: str) -> None:
    loss = CONFIGURED[name]()
    described = loss.describe()
    options = dict(described)
    rebuilt = LOSSES[options.pop("name")](**options)
    assert type(rebuilt) is type(loss)
    assert rebuilt.describe() == described
    rng = np.random.default_rng(0)
    P, Y = inputs_for(loss, rng)
    assert rebuilt.value(P, Y) == loss.value(P, Y)


# -- gradients of the losses alone ------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CONFIGURED))
def test_configured_loss_gradient(name: str) -> None:
    rng = np.random.default_rng(30)
    loss = CONFIGURED[name]()
    P, Y = inputs_for(loss, rng)
    P_before, Y_before = P.copy(), Y.copy()
    value, grad = loss.value_and_grad(P, Y)
    np.testing.assert_array_equal(P, P_before, err_msg="value_and_grad changed its input")
    np.testing.assert_array_equal(Y, Y_before, err_msg="value_and_grad changed the targets")
    assert isinstance(value, float) and value > 0
    assert value == loss.value(P, Y)  # the same computation, bit for bit
    assert grad.shape == P.shape and grad.dtype == np.float64

    def f() -> float:
        return loss.value(P, Y)

    np.testing.assert_allclose(grad, numeric_grad(f, P), rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("delta", [0.5, 1.0, 2.0])
def test_huber_gradient_in_both_regions(delta: float) -> None:
    rng = np.random.default_rng(31)
    P = rng.normal(size=(8, 3)) * 2
    D = rng.uniform(0.0, 3 * delta, size=P.shape) * rng.choice([-1.0, 1.0], size=P.shape)
    D[np.abs(np.abs(D) - delta) < 1e-3] += 0.01  # off the seam (C1 there, but not C2)
    Y = P - D
    inside = np.abs(D) <= delta
    assert 0 < np.count_nonzero(inside) < D.size, "both regions must be exercised"
    loss = Huber(delta=delta)
    value, grad = loss.value_and_grad(P, Y)
    # D was rounded on the way through Y = P - D, hence not bit for bit
    np.testing.assert_allclose(grad, np.clip(D, -delta, delta) / D.size, rtol=1e-12)

    def f() -> float:
        return loss.value(P, Y)

    np.testing.assert_allclose(grad, numeric_grad(f, P), rtol=RTOL, atol=ATOL)
    expected = np.where(inside, 0.5 * D**2, delta * (np.abs(D) - 0.5 * delta)).mean()
    assert value == pytest.approx(expected, rel=1e-13)


# -- gradients end to end through a network --------------------------------------------
NETWORK_CASES: dict[str, tuple[Callable[[], Loss], str | None]] = {
    "mae": (MeanAbsoluteError, None),
    "huber": (lambda: Huber(delta=0.7), None),
    "ce_smoothing": (lambda: SoftmaxCrossEntropy(label_smoothing=0.15), "softmax"),
    "ce_weights": (lambda: SoftmaxCrossEntropy(class_weights=[1.0, 4.0, 0.5]), "softmax"),
    "ce_both": (lambda: SoftmaxCrossEntropy(label_smoothing=0.3, class_weights=[2.0, 1.0, 0.25]),
                "softmax"),
    "bce_weights": (lambda: SigmoidBinaryCrossEntropy(class_weights=[0.2, 3.0]), "sigmoid"),
}


@pytest.mark.parametrize("name", sorted(NETWORK_CASES))
def test_configured_loss_through_a_network(name: str) -> None:
    factory, activation = NETWORK_CASES[name]
    loss = factory()
    rng = np.random.default_rng(32)
    layers: list[Layer] = [Dense(5), Activation("tanh"), Dense(3)]
    if activation is not None:
        layers.append(Activation(activation))
    network = build(layers, loss, 4, seed=33)
    X = rng.normal(size=(9, 4))
    Y: NDArray
    if loss.target_kind == "i":
        Y = np.array([0, 1, 2, 0, 1, 2, 1, 1, 0])
    elif activation == "sigmoid":
        Y = rng.integers(0, 2, size=(9, 3)).astype(np.float64)
    else:
        Y = rng.normal(size=(9, 3))
        # stay clear of MAE's kink, even with perturbed parameters
        assert np.min(np.abs(network.forward(X) - Y)) > 1e-3
        if isinstance(loss, Huber):
            D = np.abs(network.forward(X) - Y)
            assert np.any(D < 0.7) and np.any(D > 0.7)
    checks = check_gradients(network, X, Y, eps=EPS, atol=ATOL, rtol=RTOL)
    failed = [c for c in checks if not c.passed]
    assert not failed, failed
    assert all(c.checked == c.total > 0 for c in checks)
    own_network_check(network, X, Y)


def test_weighted_cross_entropy_network_loss_is_the_weighted_mean_of_probabilities() -> None:
    rng = np.random.default_rng(34)
    weights = [1.0, 4.0, 0.5]
    layers: list[Layer] = [Dense(4), Activation("tanh"), Dense(3), Activation("softmax")]
    network = build(layers, SoftmaxCrossEntropy(class_weights=weights), 3, seed=35)
    X = rng.normal(size=(7, 3))
    y = np.array([0, 1, 2, 2, 1, 0, 1])
    probs = network.forward(X)
    w = np.asarray(weights)[y]
    expected = -(w * np.log(probs[np.arange(7), y])).sum() / w.sum()
    assert network.loss_value(X, y) == pytest.approx(expected, rel=1e-12)


# -- hand-computed values ---------------------------------------------------------------
def test_mae_by_hand() -> None:
    P = np.array([[1.0, -2.0], [0.5, 3.0]])
    Y = np.array([[0.0, 0.0], [0.5, 1.0]])
    # |d| = 1, 2, 0, 2; mean 1.25; subgradient 0 where d = 0
    value, grad = MeanAbsoluteError().value_and_grad(P, Y)
    assert value == 1.25 == MeanAbsoluteError().value(P, Y)
    np.testing.assert_array_equal(grad, [[0.25, -0.25], [0.0, 0.25]])


@pytest.mark.parametrize(
    ("delta", "expected_value", "expected_grad"),
    [
        # d = 0.5, -2, 3, 0: 0.125 + 1 (2 - 0.5) + 1 (3 - 0.5) + 0 = 4.125
        (1.0, 4.125 / 4, [[0.125, -0.25], [0.25, 0.0]]),
        # delta 2: 0.125 + 2 (on the seam: 0.5 * 4 = 2 (2 - 1)) + 2 (3 - 1) + 0 = 6.125
        (2.0, 6.125 / 4, [[0.125, -0.5], [0.5, 0.0]]),
        # delta 0.25: 0.25 (0.375) + 0.25 (1.875) + 0.25 (2.875) + 0 = 1.28125
        (0.25, 1.28125 / 4, [[0.0625, -0.0625], [0.0625, 0.0]]),
    ],
)
def test_huber_by_hand(delta: float, expected_value: float, expected_grad: list) -> None:
    P = np.array([[0.5, -2.0], [3.0, 1.0]])
    Y = np.array([[0.0, 0.0], [0.0, 1.0]])
    value, grad = Huber(delta=delta).value_and_grad(P, Y)
    assert value == pytest.approx(expected_value, rel=1e-15)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-15)


@pytest.mark.parametrize(("p", "expected"), [(0.5, 0.125), (-3.0, 2.5)])
def test_huber_of_a_single_value(p: float, expected: float) -> None:
    """One row with one output: the mean over one entry is that entry's cost."""
    loss = Huber()
    assert loss.value(np.array([[p]]), np.zeros((1, 1))) == pytest.approx(expected, rel=1e-15)
    value, grad = loss.value_and_grad(np.array([[p]]), np.zeros((1, 1)))
    assert value == pytest.approx(expected, rel=1e-15)
    np.testing.assert_allclose(grad, [[max(-1.0, min(1.0, p))]], rtol=1e-15)


def test_cross_entropy_label_smoothing_by_hand() -> None:
    # softmax([ln 3, 0]) = [0.75, 0.25]; s = 0.2, k = 2: t = [0.9, 0.1]
    Z = np.array([[math.log(3.0), 0.0]])
    value, grad = SoftmaxCrossEntropy(label_smoothing=0.2).value_and_grad(Z, np.array([0]))
    assert value == pytest.approx(-(0.9 * math.log(0.75) + 0.1 * math.log(0.25)), rel=1e-14)
    np.testing.assert_allclose(grad, [[-0.15, 0.15]], rtol=1e-13)


def test_cross_entropy_class_weights_by_hand() -> None:
    # rows: softmax [0.75, 0.25] with label 0 (w 1), softmax [0.5, 0.5] with label 1 (w 3)
    Z = np.array([[math.log(3.0), 0.0], [0.0, 0.0]])
    y = np.array([0, 1])
    loss = SoftmaxCrossEntropy(class_weights=[1.0, 3.0])
    value, grad = loss.value_and_grad(Z, y)
    assert value == pytest.approx((-math.log(0.75) + 3 * math.log(2.0)) / 4, rel=1e-14)
    # dZ_i = w_i (p_i - onehot_i) / 4
    np.testing.assert_allclose(grad, [[-1 / 16, 1 / 16], [3 / 8, -3 / 8]], rtol=1e-13)


def test_binary_cross_entropy_class_weights_by_hand() -> None:
    # s(0) = 0.5 with Y = 1 (w_pos 2): ln 2; s(ln 3) = 0.75 with Y = 0 (w_neg 1): ln 4
    Z = np.array([[0.0], [math.log(3.0)]])
    Y = np.array([[1.0], [0.0]])
    value, grad = SigmoidBinaryCrossEntropy(class_weights=[1.0, 2.0]).value_and_grad(Z, Y)
    assert value == pytest.approx((2 * math.log(2.0) + math.log(4.0)) / 3, rel=1e-14)
    np.testing.assert_allclose(grad, [[2 * (0.5 - 1) / 3], [0.75 / 3]], rtol=1e-13)


# -- the defaults are the original losses, bit for bit -------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_defaults_are_unchanged_bit_for_bit(dtype: type) -> None:
    rng = np.random.default_rng(36)
    Z = (rng.normal(size=(32, 5)) * 3).astype(dtype)
    y = rng.integers(0, 5, size=32)
    for loss in (SoftmaxCrossEntropy(),
                 SoftmaxCrossEntropy(label_smoothing=0.0, class_weights=None)):
        value, grad = loss.value_and_grad(Z, y)
        ref_value, ref_grad = original_ce_value_and_grad(Z, y)
        assert value == ref_value
        assert grad.dtype == ref_grad.dtype == dtype
        np.testing.assert_array_equal(grad, ref_grad)
        assert loss.value(Z, y) == original_ce_value(Z, y)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy_defaults_are_unchanged_bit_for_bit(dtype: type) -> None:
    rng = np.random.default_rng(37)
    Z = (rng.normal(size=(16, 3)) * 3).astype(dtype)
    Y = rng.integers(0, 2, size=(16, 3)).astype(dtype)
    for loss in (SigmoidBinaryCrossEntropy(), SigmoidBinaryCrossEntropy(class_weights=None)):
        value, grad = loss.value_and_grad(Z, Y)
        ref_value, ref_grad = original_bce_value_and_grad(Z, Y)
        assert value == ref_value == loss.value(Z, Y)
        assert grad.dtype == dtype
        np.testing.assert_array_equal(grad, ref_grad)


# -- weighted and smoothed losses against references --------------------------------------
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("weights", [None, [0.2, 1.0, 5.0], [1.0, 0.0, 2.0]])
def test_cross_entropy_against_the_formula(smoothing: float, weights: list[float] | None) -> None:
    rng = np.random.default_rng(38)
    Z = rng.normal(size=(12, 3)) * 2
    y = rng.integers(0, 3, size=12)
    y[:3] = [0, 1, 2]
    loss = SoftmaxCrossEntropy(label_smoothing=smoothing, class_weights=weights)
    value, grad = loss.value_and_grad(Z, y)
    ref_value, ref_grad = reference_cross_entropy(Z, y, smoothing, weights)
    assert value == pytest.approx(ref_value, rel=1e-13)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-12, atol=1e-16)


def test_weights_count_like_repeated_samples() -> None:
    """Integer class weights give the plain loss on the data with each sample repeated
    that many times: the normalised weighted mean."""
    rng = np.random.default_rng(39)
    Z = rng.normal(size=(10, 3))
    y = rng.integers(0, 3, size=10)
    y[:3] = [0, 1, 2]
    weights = [1, 3, 2]
    repeats = np.asarray(weights)[y]
    weighted = SoftmaxCrossEntropy(class_weights=[float(w) for w in weights]).value(Z, y)
    plain = SoftmaxCrossEntropy().value(np.repeat(Z, repeats, axis=0), np.repeat(y, repeats))
    assert weighted == pytest.approx(plain, rel=1e-13)

    S = rng.normal(size=(10, 1))
    Y = rng.integers(0, 2, size=(10, 1)).astype(np.float64)
    repeats = np.where(Y[:, 0] == 1, 3, 2)
    weighted = SigmoidBinaryCrossEntropy(class_weights=[2.0, 3.0]).value(S, Y)
    plain = SigmoidBinaryCrossEntropy().value(np.repeat(S, repeats, axis=0),
                                              np.repeat(Y, repeats, axis=0))
    assert weighted == pytest.approx(plain, rel=1e-13)


def test_equal_weights_and_scaled_weights_change_nothing() -> None:
    rng = np.random.default_rng(40)
    Z = rng.normal(size=(8, 4))
    y = rng.integers(0, 4, size=8)
    plain_value, plain_grad = SoftmaxCrossEntropy(label_smoothing=0.1).value_and_grad(Z, y)
    for weights in ([1.0] * 4, [7.5] * 4):
        loss = SoftmaxCrossEntropy(label_smoothing=0.1, class_weights=weights)
        value, grad = loss.value_and_grad(Z, y)
        assert value == pytest.approx(plain_value, rel=1e-14)
        np.testing.assert_allclose(grad, plain_grad, rtol=1e-13)
    a = SoftmaxCrossEntropy(class_weights=[1.0, 2.0, 3.0, 4.0]).value_and_grad(Z, y)
    b = SoftmaxCrossEntropy(class_weights=[10.0, 20.0, 30.0, 40.0]).value_and_grad(Z, y)
    assert a[0] == pytest.approx(b[0], rel=1e-14)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-13)


def test_binary_cross_entropy_weights_against_the_formula() -> None:
    rng = np.random.default_rng(41)
    Z = rng.normal(size=(9, 3)) * 2
    Y = rng.integers(0, 2, size=(9, 3)).astype(np.float64)
    value, grad = SigmoidBinaryCrossEntropy(class_weights=[0.4, 2.5]).value_and_grad(Z, Y)
    ref_value, ref_grad = reference_bce(Z, Y, [0.4, 2.5])
    assert value == pytest.approx(ref_value, rel=1e-13)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-12)


def test_a_batch_of_zero_weight_classes_costs_nothing() -> None:
    Z = np.array([[1.0, -1.0], [0.5, 2.0]])
    loss = SoftmaxCrossEntropy(class_weights=[0.0, 1.0])
    value, grad = loss.value_and_grad(Z, np.array([0, 0]))
    assert value == 0.0 == loss.value(Z, np.array([0, 0]))
    np.testing.assert_array_equal(grad, np.zeros_like(Z))
    # a zero-weight sample next to a weighted one contributes nothing
    value, grad = loss.value_and_grad(Z, np.array([0, 1]))
    assert value == pytest.approx(-log_softmax(Z)[1, 1], rel=1e-14)
    np.testing.assert_array_equal(grad[0], [0.0, 0.0])


# -- dtypes and stability -------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CONFIGURED))
def test_float32_is_preserved(name: str) -> None:
    loss = CONFIGURED[name]()
    P, Y = inputs_for(loss, np.random.default_rng(42), dtype=np.float32)
    value, grad = loss.value_and_grad(P, Y)
    assert grad.dtype == np.float32
    assert isinstance(value, float) and np.isfinite(value)
    assert value == loss.value(P, Y)
    P64 = P.astype(np.float64)
    Y64 = Y.astype(np.float64) if Y.dtype.kind == "f" else Y
    value64, grad64 = loss.value_and_grad(P64, Y64)
    assert value == pytest.approx(value64, rel=1e-5)
    np.testing.assert_allclose(grad, grad64, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_smoothed_weighted_cross_entropy_on_huge_logits(dtype: type) -> None:
    # S = Z - max = [0, -2e4, -1e4]; logsumexp(S) ~ 0; t = [0.9 + 0.1/3, 0.1/3, 0.1/3]:
    # loss = -t.S = (0.1/3)(3e4) = 1000; grad = [1, 0, 0] - t
    Z = np.array([[1e4, -1e4, 0.0]], dtype=dtype)
    y = np.array([0])
    loss = SoftmaxCrossEntropy(label_smoothing=0.1, class_weights=[2.0, 1.0, 1.0])
    value, grad = loss.value_and_grad(Z, y)
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and grad.dtype == dtype
    assert value == pytest.approx(1000.0, rel=1e-6)
    assert loss.value(Z, y) == value
    np.testing.assert_allclose(grad, [[0.1 - 0.1 / 3, -0.1 / 3, -0.1 / 3]], atol=1e-6)
    # the wrong class: 2e4 (1 - s) + 1000
    value = loss.value(Z, np.array([1]))
    assert value == pytest.approx(2e4 * 0.9 + 1000.0, rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weighted_binary_cross_entropy_on_huge_logits(dtype: type) -> None:
    Z = np.array([[1e4, -1e4]], dtype=dtype)
    wrong = np.array([[0.0, 1.0]], dtype=dtype)
    loss = SigmoidBinaryCrossEntropy(class_weights=[1.0, 3.0])
    value, grad = loss.value_and_grad(Z, wrong)
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and grad.dtype == dtype
    # each entry costs 1e4; dZ = w (s(Z) - Y) / 4 = (1/4, -3/4)
    assert value == pytest.approx(1e4, rel=1e-6)
    np.testing.assert_allclose(grad, [[0.25, -0.75]], atol=1e-6)
    value, grad = loss.value_and_grad(Z, 1 - wrong)
    assert value == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(grad, [[0.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_regression_losses_on_huge_errors(dtype: type) -> None:
    P = np.array([[1e4, -1e4]], dtype=dtype)
    Y = np.zeros_like(P)
    value, grad = MeanAbsoluteError().value_and_grad(P, Y)
    assert value == 1e4
    np.testing.assert_array_equal(grad, np.array([[0.5, -0.5]], dtype=dtype))
    value, grad = Huber().value_and_grad(P, Y)
    assert value == pytest.approx(1e4 - 0.5, rel=1e-7)
    np.testing.assert_array_equal(grad, np.array([[0.5, -0.5]], dtype=dtype))
    assert grad.dtype == dtype


# -- validation -----------------------------------------------------------------------
@pytest.mark.parametrize("delta", [0.0, -1.0, math.nan, math.inf])
def test_huber_rejects_a_bad_delta(delta: float) -> None:
    with pytest.raises(ValueError, match="delta"):
        Huber(delta=delta)


@pytest.mark.parametrize("smoothing", [-0.1, 1.0, 1.5, math.nan])
def test_cross_entropy_rejects_bad_smoothing(smoothing: float) -> None:
    with pytest.raises(ValueError, match="label_smoothing"):
        SoftmaxCrossEntropy(label_smoothing=smoothing)


@pytest.mark.parametrize("weights", [[1.0, -1.0], [0.0, 0.0], [1.0, math.nan], [1.0], []])
def test_cross_entropy_rejects_bad_weights(weights: list[float]) -> None:
    with pytest.raises(ValueError, match="weight"):
        SoftmaxCrossEntropy(class_weights=weights)


def test_cross_entropy_weights_must_match_the_classes() -> None:
    loss = SoftmaxCrossEntropy(class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="2 class weights for 3 classes"):
        loss.value_and_grad(np.zeros((2, 3)), np.array([0, 1]))


@pytest.mark.parametrize("weights", [[1.0], [1.0, 2.0, 3.0], [-1.0, 1.0], [0.0, 0.0]])
def test_binary_cross_entropy_rejects_bad_weights(weights: list[float]) -> None:
    with pytest.raises(ValueError, match="weight"):
        SigmoidBinaryCrossEntropy(class_weights=weights)


def test_weighted_cross_entropy_shifts_each_row_by_its_own_maximum() -> None:
    """Rows of logits far apart: a shift by the largest logit overall would underflow."""
    P = np.array([[0.0, 1.0], [-1000.0, -999.0]])
    loss = SoftmaxCrossEntropy(class_weights=[1.0, 3.0])
    per_row = np.log(1 + np.exp(-1.0))  # both rows: the target logit is 1 above the other
    assert loss.value(P, np.array([1, 1])) == pytest.approx(per_row)


def test_mean_absolute_error_of_a_single_entry() -> None:
    assert MeanAbsoluteError().value(np.array([[3.0]]), np.array([[1.0]])) == 2.0
