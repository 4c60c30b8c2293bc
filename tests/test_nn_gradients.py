"""Backward passes against finite differences, with the package's checker and our own.

The package's ``check_gradients`` is exercised, but every analytic gradient is also
compared with a small central-difference helper written here, so that a bug in the
checker cannot hide a bug in a backward pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli.nn import ACTIVATIONS, LOSSES, Activation, Dense, Dropout, Layer, Network
from bpcli.nn.activations import LeakyReLU, ReLU
from bpcli.nn.gradcheck import TensorCheck, check_gradients
from bpcli.nn.losses import Loss, MeanSquaredError, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from tests.numeric import numeric_grad

EPS = 1e-6
# Central differences on O(1) float64 losses are good to ~1e-9; analytic bugs are far larger.
ATOL = 1e-7
RTOL = 1e-5


# -- helpers -------------------------------------------------------------------------
def assert_close_to_numeric(analytic: NDArray, numeric: NDArray, what: str) -> None:
    assert analytic.shape == numeric.shape, what
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL, err_msg=what)


def make_targets(loss: Loss, shape: tuple[int, ...], rng: np.random.Generator) -> NDArray:
    """Targets suited to ``loss`` for predictions / logits of ``shape`` (n, k)."""
    if loss.target_kind == "i":
        return rng.integers(0, shape[-1], size=shape[0])
    if loss.fused_activation == "sigmoid":
        return rng.integers(0, 2, size=shape).astype(np.float64)
    return rng.normal(size=shape)


def perturb_biases(network: Network, rng: np.random.Generator) -> None:
    """Zero biases put many pre-activations on the same footing; move them off zero."""
    for layer in network.layers:
        if "b" in layer.params:
            layer.params["b"][...] = rng.normal(0.0, 0.5, size=layer.params["b"].shape)


def assert_all_passed(checks: list[TensorCheck]) -> None:
    failed = [c for c in checks if not c.passed]
    assert not failed, failed
    # Every parameter tensor plus the input was checked, each in full.
    assert all(c.checked == c.total > 0 for c in checks)


def assert_matches_own_differences(network: Network, X: NDArray, Y: NDArray) -> None:
    """Our own finite differences agree with compute_gradients for every tensor and X."""
    X = np.array(X, dtype=network.dtype)
    network.layers[0].needs_input_grad = True
    try:
        with network.held_randomness():
            network.compute_gradients(X, Y)
            analytic = {name: g.copy() for name, _, g in network.parameters()}
            assert network.input_grad is not None
            analytic["X"] = np.array(network.input_grad)

            def loss() -> float:
                return network.loss_value(X, Y, training=True)

            for name, param, _ in network.parameters():
                assert_close_to_numeric(analytic[name], numeric_grad(loss, param), name)
            assert_close_to_numeric(analytic["X"], numeric_grad(loss, X), "input")
    finally:
        network.layers[0].needs_input_grad = False


def build(layers: list[Layer], loss: Loss, n_in: int, seed: int) -> Network:
    rng = np.random.default_rng(seed)
    network = Network(layers, loss, (n_in,), rng, dtype=np.float64)
    perturb_biases(network, rng)
    return network


# -- activations ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_inside_network(name: str) -> None:
    rng = np.random.default_rng(1)
    network = build([Dense(5), Activation(name), Dense(3)], MeanSquaredError(), 4, seed=2)
    X = rng.normal(size=(6, 4))
    Y = rng.normal(size=(6, 3))
    checks = check_gradients(network, X, Y, eps=EPS, atol=ATOL, rtol=RTOL)
    # numbered as a config numbers layers: the activation is part of layer 0
    assert [(c.layer, c.name) for c in checks] == [
        ("0 dense", "W"), ("0 dense", "b"), ("1 dense", "W"), ("1 dense", "b"), ("input", "X"),
    ]
    assert_all_passed(checks)
    assert_matches_own_differences(network, X, Y)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_backward_is_vector_jacobian_product(name: str) -> None:
    rng = np.random.default_rng(3)
    fn = ACTIVATIONS[name]()
    Z = rng.normal(size=(5, 4))
    Z[np.abs(Z) < 1e-3] = 0.5  # keep clear of the ReLU kinks
    dA = rng.normal(size=Z.shape)
    A = np.array(fn.forward(Z.copy()))
    assert A.shape == Z.shape
    # backward may overwrite its dA argument, and gets Z only when it says it needs it.
    Z_arg = Z.copy() if getattr(fn, "needs_input", True) else None
    dZ = np.array(fn.backward(dA.copy(), Z_arg, A.copy()))

    def projected() -> float:
        return float(np.sum(dA * fn.forward(Z.copy())))

    assert_close_to_numeric(dZ, numeric_grad(projected, Z), name)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_inference_forward_leaves_its_input_alone(name: str) -> None:
    fn = ACTIVATIONS[name]()
    Z = np.random.default_rng(17).normal(size=(4, 3))
    Z_before = Z.copy()
    A = fn.forward(Z)
    np.testing.assert_array_equal(Z, Z_before)
    if name != "identity":
        assert not np.shares_memory(A, Z)


def test_derivative_conventions_at_zero() -> None:
    """At the kink: ReLU's derivative is 0 there, leaky ReLU's is its slope (Z > 0 only
    takes the identity branch)."""
    Z = np.array([[0.0, 2.0, -2.0]])
    relu, leaky = ReLU(), LeakyReLU(slope=0.1)
    for fn, expected in ((relu, [[0.0, 1.0, 0.0]]), (leaky, [[0.1, 1.0, 0.1]])):
        A = fn.forward(Z.copy())
        Z_arg = Z.copy() if getattr(fn, "needs_input", True) else None
        np.testing.assert_allclose(fn.backward(np.ones_like(Z), Z_arg, A), expected)


# -- losses --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_gradient(name: str) -> None:
    rng = np.random.default_rng(4)
    loss = LOSSES[name]()
    P = rng.normal(size=(5, 4)) * 2
    Y = make_targets(loss, P.shape, rng)
    P_before, Y_before = P.copy(), Y.copy()
    value, grad = loss.value_and_grad(P, Y)
    np.testing.assert_array_equal(P, P_before, err_msg="value_and_grad changed its input")
    np.testing.assert_array_equal(Y, Y_before, err_msg="value_and_grad changed the targets")
    assert grad.shape == P.shape
    assert value == pytest.approx(loss.value(P, Y), rel=1e-12, abs=1e-15)
    assert value > 0

    def f() -> float:
        return loss.value(P, Y)

    assert_close_to_numeric(np.asarray(grad), numeric_grad(f, P), name)


def test_loss_values_against_definitions() -> None:
    """Spot values of each loss from its textbook formula (not the package's rewriting)."""
    P = np.array([[0.5, -1.0], [2.0, 0.0]])
    Y = np.array([[1.0, 0.0], [1.0, 1.0]])
    # MSE: mean of (0.25, 1, 1, 1) = 0.8125
    assert MeanSquaredError().value(P, Y) == pytest.approx(0.8125)
    s = 1 / (1 + np.exp(-P))
    bce = -np.mean(Y * np.log(s) + (1 - Y) * np.log(1 - s))
    assert SigmoidBinaryCrossEntropy().value(P, Y) == pytest.approx(bce, rel=1e-12)
    labels = np.array([0, 1])
    probs = np.exp(P) / np.exp(P).sum(axis=1, keepdims=True)
    ce = -np.mean(np.log(probs[[0, 1], labels]))
    assert SoftmaxCrossEntropy().value(P, labels) == pytest.approx(ce, rel=1e-12)


# -- layers and fused outputs inside networks -----------------------------------------
def test_dense_parameters_and_input() -> None:
    rng = np.random.default_rng(5)
    network = build([Dense(4), Dense(3)], MeanSquaredError(), 3, seed=6)
    X = rng.normal(size=(7, 3))
    Y = rng.normal(size=(7, 3))
    assert_all_passed(check_gradients(network, X, Y, atol=ATOL, rtol=RTOL))
    assert_matches_own_differences(network, X, Y)
    # Dense's documented formulas, directly: dW = X.T @ dZ, db = sum(dZ), dX = dZ @ W.T.
    layer = network.layers[0]
    assert isinstance(layer, Dense)
    dZ = rng.normal(size=(7, 4))
    layer.needs_input_grad = True
    layer.forward(X, True)
    dX = layer.backward(dZ)
    np.testing.assert_allclose(layer.grads["W"], X.T @ dZ, rtol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], dZ.sum(axis=0), rtol=1e-12)
    assert dX is not None
    np.testing.assert_allclose(dX, dZ @ layer.params["W"].T, rtol=1e-12)


def test_dropout_with_held_masks() -> None:
    rng = np.random.default_rng(7)
    layers: list[Layer] = [Dense(8), Activation("tanh"), Dropout(0.4), Dense(2)]
    network = build(layers, MeanSquaredError(), 3, seed=8)
    X = rng.normal(size=(6, 3))
    Y = rng.normal(size=(6, 2))
    assert_all_passed(check_gradients(network, X, Y, atol=ATOL, rtol=RTOL))
    dropout = layers[2]
    assert isinstance(dropout, Dropout)
    with network.held_randomness():
        network.compute_gradients(X, Y)
        mask = dropout._mask
        assert mask is not None
        # The check is only meaningful if some units were dropped and some kept.
        assert 0 < np.count_nonzero(mask) < mask.size
        first = network.loss_value(X, Y, training=True)
        assert network.loss_value(X, Y, training=True) == first
        np.testing.assert_array_equal(dropout._mask, mask)
    assert_matches_own_differences(network, X, Y)


def test_fused_softmax_cross_entropy() -> None:
    rng = np.random.default_rng(9)
    layers: list[Layer] = [Dense(5), Activation("tanh"), Dense(4), Activation("softmax")]
    network = build(layers, SoftmaxCrossEntropy(), 3, seed=10)
    X = rng.normal(size=(8, 3))
    y = rng.integers(0, 4, size=8)
    assert_all_passed(check_gradients(network, X, y, atol=ATOL, rtol=RTOL))
    assert_matches_own_differences(network, X, y)
    # The loss on logits is the cross-entropy of the probabilities the network outputs.
    probs = network.forward(X)
    expected = -np.mean(np.log(probs[np.arange(8), y]))
    assert network.loss_value(X, y) == pytest.approx(expected, rel=1e-12)


def test_fused_sigmoid_binary_cross_entropy() -> None:
    rng = np.random.default_rng(11)
    layers: list[Layer] = [Dense(5), Activation("relu"), Dense(2), Activation("sigmoid")]
    network = build(layers, SigmoidBinaryCrossEntropy(), 3, seed=12)
    X = rng.normal(size=(8, 3))
    Y = rng.integers(0, 2, size=(8, 2)).astype(np.float64)
    assert_all_passed(check_gradients(network, X, Y, atol=ATOL, rtol=RTOL))
    assert_matches_own_differences(network, X, Y)
    S = network.forward(X)
    expected = -np.mean(Y * np.log(S) + (1 - Y) * np.log(1 - S))
    assert network.loss_value(X, Y) == pytest.approx(expected, rel=1e-12)


def test_deep_mixed_stack() -> None:
    """Every layer kind next to every other, so that in-place shortcuts meet each neighbour."""
    rng = np.random.default_rng(18)
    layers: list[Layer] = [
        Dense(6), Activation("relu"), Dropout(0.3), Dense(5), Dropout(0.2),
        Activation("tanh"), Activation("leaky_relu", slope=0.1), Dense(5), Dense(4),
        Activation("sigmoid"), Dense(3), Activation("softmax"),
    ]
    network = build(layers, SoftmaxCrossEntropy(), 4, seed=19)
    X = rng.normal(size=(6, 4))
    y = rng.integers(0, 3, size=6)
    assert_all_passed(check_gradients(network, X, y, atol=ATOL, rtol=RTOL))
    assert_matches_own_differences(network, X, y)


def test_repeated_and_resized_batches_give_fresh_gradients() -> None:
    """Gradients depend only on the current batch, whatever came before it."""
    rng = np.random.default_rng(20)
    X_big, Y_big = rng.normal(size=(9, 3)), rng.normal(size=(9, 2))
    X, Y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))

    def fresh() -> Network:
        layers: list[Layer] = [Dense(5), Activation("tanh"), Dense(4), Activation("relu"),
                               Dense(2)]
        return build(layers, MeanSquaredError(), 3, seed=21)

    reference = fresh()
    loss = reference.compute_gradients(X, Y)
    expected = [g.copy() for g in reference.grad_arrays()]
    assert reference.compute_gradients(X, Y) == loss
    for g, e in zip(reference.grad_arrays(), expected, strict=True):
        np.testing.assert_array_equal(g, e)

    network = fresh()
    network.compute_gradients(X_big, Y_big)
    assert network.compute_gradients(X, Y) == pytest.approx(loss, rel=1e-14)
    for g, e in zip(network.grad_arrays(), expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-13, atol=1e-15)


# -- numerical stability --------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("label", "expected_loss", "expected_grad"),
    [(0, 0.0, [0.0, 0.0]), (1, 1e4, [1.0, -1.0])],
)
def test_cross_entropy_on_huge_logits(
    dtype: type[np.floating], label: int, expected_loss: float, expected_grad: list[float]
) -> None:
    loss = SoftmaxCrossEntropy()
    Z = np.array([[1e4, 0.0]], dtype=dtype)
    y = np.array([label])
    value, grad = loss.value_and_grad(Z, y)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert grad.dtype == dtype
    # label 0: log(1 + e^-1e4) ~ 0; label 1: 1e4 + log(1 + e^-1e4) ~ 1e4
    assert value == pytest.approx(expected_loss, abs=1e-6)
    assert loss.value(Z, y) == pytest.approx(expected_loss, abs=1e-6)
    np.testing.assert_allclose(grad, [expected_grad], atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy_on_huge_logits(dtype: type[np.floating]) -> None:
    loss = SigmoidBinaryCrossEntropy()
    Z = np.array([[1e4, -1e4]], dtype=dtype)
    right = np.array([[1.0, 0.0]], dtype=dtype)
    wrong = np.array([[0.0, 1.0]], dtype=dtype)
    value, grad = loss.value_and_grad(Z, right)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(grad, [[0.0, 0.0]], atol=1e-6)
    value, grad = loss.value_and_grad(Z, wrong)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    # Each entry costs |Z| = 1e4; the mean is 1e4. dZ = (s(Z) - Y) / 2 = (+0.5, -0.5).
    assert value == pytest.approx(1e4, rel=1e-6)
    assert loss.value(Z, wrong) == pytest.approx(1e4, rel=1e-6)
    np.testing.assert_allclose(grad, [[0.5, -0.5]], atol=1e-6)
    assert grad.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["sigmoid", "softmax", "tanh"])
def test_saturating_activations_stay_finite(name: str, dtype: type[np.floating]) -> None:
    fn = ACTIVATIONS[name]()
    Z = np.array([[1e4, -1e4, 0.0]], dtype=dtype)
    A = fn.forward(Z)  # an overflow warning would be an error here
    assert A.dtype == dtype
    assert np.all(np.isfinite(A))
    assert np.all(np.isfinite(fn.backward(np.ones_like(Z), Z, A)))
