"""The activations of bpcli/nn/activations.py: ELU, SELU, GELU, SiLU/swish and softplus, the
erf behind exact GELU, identity's output buffer and leaky ReLU's slope. (Every activation's
backward pass against central differences is checked in test_nn_gradients.py too.)

Forward passes are compared with the textbook formulas evaluated element-wise with the
``math`` module, backward passes with central differences (alone and inside a network).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli.nn import ACTIVATIONS, Activation, Dense, Layer, Network
from bpcli.nn.activations import ELU, GELU, SELU, ActivationFn, erf
from bpcli.nn.gradcheck import check_gradients
from bpcli.nn.layers import layer_from_description
from bpcli.nn.losses import MeanSquaredError
from tests.numeric import numeric_grad

EPS = 1e-6
ATOL = 1e-7
RTOL = 1e-5

SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def _elu(alpha: float) -> Callable[[float], float]:
    return lambda z: z if z > 0 else alpha * (math.exp(z) - 1)


def _gelu_tanh(z: float) -> float:
    return 0.5 * z * (1 + math.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))


# (name, options, reference formula for one float)
CASES: list[tuple[str, dict[str, Any], Callable[[float], float]]] = [
    ("elu", {}, _elu(1.0)),
    ("elu", {"alpha": 0.5}, _elu(0.5)),
    ("selu", {}, lambda z: SELU_LAMBDA * _elu(SELU_ALPHA)(z)),
    ("gelu", {}, lambda z: z * 0.5 * (1 + math.erf(z / math.sqrt(2)))),
    ("gelu", {"approximate": False}, lambda z: z * 0.5 * (1 + math.erf(z / math.sqrt(2)))),
    ("gelu", {"approximate": True}, _gelu_tanh),
    ("silu", {}, lambda z: z / (1 + math.exp(-z))),
    ("swish", {}, lambda z: z / (1 + math.exp(-z))),
    ("softplus", {}, lambda z: math.log1p(math.exp(z))),
]
CASE_IDS = [name + "".join(f"-{k}={v}" for k, v in opts.items()) for name, opts, _ in CASES]
NEW = ["elu", "selu", "gelu", "silu", "swish", "softplus"]


def make(name: str, options: dict[str, Any]) -> ActivationFn:
    return ACTIVATIONS[name](**options)


def away_from_kink(Z: NDArray) -> NDArray:
    """ELU with alpha != 1 has a kink in its derivative at 0: keep differences off it."""
    Z[np.abs(Z) < 1e-3] = 0.5
    return Z


def backward_of(fn: ActivationFn, dA: NDArray, Z: NDArray, A: NDArray) -> NDArray:
    """``fn.backward`` on copies, given Z only when it asks for it."""
    return np.array(fn.backward(dA.copy(), Z.copy() if fn.needs_input else None, A.copy()))


# -- erf ---------------------------------------------------------------------------------
def test_erf_matches_math_erf_on_a_dense_grid() -> None:
    x = np.linspace(-10.0, 10.0, 200_001)  # steps of 1e-4: every branch and both seams
    expected = np.array([math.erf(v) for v in x])
    result = erf(x)
    assert result.dtype == np.float64
    assert np.max(np.abs(result - expected)) < 1e-14
    # Relative accuracy too, including tiny arguments where erf(x) ~ 2x / sqrt(pi).
    x = np.concatenate([x, np.geomspace(1e-300, 0.5, 500), -np.geomspace(1e-300, 0.5, 500)])
    expected = np.array([math.erf(v) for v in x])
    nonzero = expected != 0
    rel = np.abs(erf(x)[nonzero] - expected[nonzero]) / np.abs(expected[nonzero])
    assert rel.max() < 1e-15


def test_erf_edges_and_dtypes() -> None:
    x = np.array([0.0, -0.0, 0.46875, 4.0, 6.0, 27.0, 1e300, np.inf, -np.inf])
    np.testing.assert_allclose(erf(x), [math.erf(v) for v in x], rtol=3e-16, atol=0)
    assert np.signbit(erf(np.array([-0.0]))[0])
    assert np.isnan(erf(np.array([np.nan]))[0])
    x32 = np.linspace(-10, 10, 2001, dtype=np.float32)
    result = erf(x32)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, [math.erf(v) for v in x32.astype(float)], atol=3e-7)
    assert erf(np.arange(-3, 4)).dtype == np.float64  # integers are computed in float64
    assert float(erf(1.0)) == pytest.approx(math.erf(1.0), rel=1e-15)  # scalars work


# -- forward against the formulas ---------------------------------------------------------
@pytest.mark.parametrize(("name", "options", "reference"), CASES, ids=CASE_IDS)
def test_forward_matches_formula(
    name: str, options: dict[str, Any], reference: Callable[[float], float]
) -> None:
    Z = np.linspace(-8.0, 8.0, 65).reshape(5, 13)
    expected = np.array([reference(z) for z in Z.ravel()]).reshape(Z.shape)
    np.testing.assert_allclose(make(name, options).forward(Z.copy()), expected,
                               rtol=1e-13, atol=1e-15)


def test_known_values() -> None:
    """A few values worked out by hand, as a check on the reference formulas themselves."""
    Z = np.array([[-1.0, 0.0, 1.0]])
    np.testing.assert_allclose(ELU().forward(Z), [[math.exp(-1) - 1, 0.0, 1.0]])
    # Phi(1) = 0.8413447460685429, Phi(-1) = 1 - Phi(1)
    np.testing.assert_allclose(GELU().forward(Z), [[-0.15865525393145707, 0.0,
                                                    0.8413447460685429]], rtol=1e-15)
    np.testing.assert_allclose(ACTIVATIONS["softplus"]().forward(Z)[0, 1], math.log(2))
    assert ACTIVATIONS["swish"] is ACTIVATIONS["silu"]


# -- backward -----------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "options", "reference"), CASES, ids=CASE_IDS)
def test_backward_matches_finite_differences(
    name: str, options: dict[str, Any], reference: Callable[[float], float]
) -> None:
    rng = np.random.default_rng(31)
    fn = make(name, options)
    Z = away_from_kink(rng.normal(0.0, 2.0, size=(6, 5)))
    dA = rng.normal(size=Z.shape)
    dZ = backward_of(fn, dA, Z, np.array(fn.forward(Z.copy())))

    def projected() -> float:
        return float(np.sum(dA * fn.forward(Z.copy())))

    np.testing.assert_allclose(dZ, numeric_grad(projected, Z), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("name", "options", "reference"), CASES, ids=CASE_IDS)
def test_gradients_inside_a_network(
    name: str, options: dict[str, Any], reference: Callable[[float], float]
) -> None:
    rng = np.random.default_rng(32)
    layers: list[Layer] = [Dense(6), Activation(name, **options), Dense(3)]
    network = Network(layers, MeanSquaredError(), (4,), rng, dtype=np.float64)
    for layer in network.layers:  # zero biases would leave pre-activations too alike
        if "b" in layer.params:
            layer.params["b"][...] = rng.normal(0.0, 0.5, size=layer.params["b"].shape)
    X = rng.normal(size=(7, 4))
    Y = rng.normal(size=(7, 3))
    checks = check_gradients(network, X, Y, eps=EPS, atol=ATOL, rtol=RTOL)
    assert len(checks) == 5
    assert all(c.passed and c.checked == c.total for c in checks), checks


def test_which_activations_need_their_input() -> None:
    """Those that can be inverted work from A alone; GELU and SiLU are not monotonic."""
    needs = {name: ACTIVATIONS[name].needs_input for name in NEW}
    assert needs == {"elu": False, "selu": False, "softplus": False,
                     "gelu": True, "silu": True, "swish": True}


@pytest.mark.parametrize(("name", "options", "reference"), CASES, ids=CASE_IDS)
def test_in_place_path_matches_out_of_place(
    name: str, options: dict[str, Any], reference: Callable[[float], float]
) -> None:
    rng = np.random.default_rng(33)
    fn = make(name, options)
    Z = rng.normal(0.0, 3.0, size=(5, 4))
    dA = rng.normal(size=Z.shape)
    A_expected = np.array(fn.forward(Z))
    dZ_expected = np.array(fn.backward(dA.copy(), Z, A_expected))

    Z_work, dA_work = Z.copy(), dA.copy()
    A = fn.forward(Z_work, out=Z_work)
    assert A is Z_work
    np.testing.assert_array_equal(A, A_expected)
    # As the Activation layer does: Z is gone (overwritten) unless the function needs it.
    dZ = fn.backward(dA_work, Z if fn.needs_input else None, A)
    np.testing.assert_array_equal(dZ, dZ_expected)


# -- numerical range and dtypes ----------------------------------------------------------
# name -> (A, dA/dZ) at Z = +1e4 and at Z = -1e4, for default options
LIMITS = {
    "elu": ((1e4, 1.0), (-1.0, 0.0)),
    "selu": ((SELU_LAMBDA * 1e4, SELU_LAMBDA), (-SELU_LAMBDA * SELU_ALPHA, 0.0)),
    "gelu": ((1e4, 1.0), (0.0, 0.0)),
    "silu": ((1e4, 1.0), (0.0, 0.0)),
    "swish": ((1e4, 1.0), (0.0, 0.0)),
    "softplus": ((1e4, 1.0), (0.0, 0.0)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("name", "options", "reference"), CASES, ids=CASE_IDS)
def test_huge_inputs_stay_finite(
    name: str, options: dict[str, Any], reference: Callable[[float], float],
    dtype: type[np.floating],
) -> None:
    fn = make(name, options)
    Z = np.array([[1e4, -1e4, 0.0, 60.0, -60.0]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is fine
        A = fn.forward(Z.copy())
        dZ = backward_of(fn, np.ones_like(Z), Z, A)
    assert A.dtype == dZ.dtype == dtype
    assert np.all(np.isfinite(A)) and np.all(np.isfinite(dZ))
    (a_pos, d_pos), (a_neg, d_neg) = LIMITS[name]
    if name == "elu" and "alpha" in options:
        a_neg = -options["alpha"]
    np.testing.assert_allclose(A[0, :2], [a_pos, a_neg], rtol=1e-6)
    np.testing.assert_allclose(dZ[0, :2], [d_pos, d_neg], rtol=1e-6)


@pytest.mark.parametrize(("name", "options", "reference"), CASES, ids=CASE_IDS)
def test_float32_in_float32_out(
    name: str, options: dict[str, Any], reference: Callable[[float], float]
) -> None:
    rng = np.random.default_rng(34)
    fn = make(name, options)
    Z = rng.normal(0.0, 3.0, size=(6, 5))
    dA = rng.normal(size=Z.shape)
    A64 = fn.forward(Z)
    dZ64 = backward_of(fn, dA, Z, A64)
    Z32, dA32 = Z.astype(np.float32), dA.astype(np.float32)
    A32 = fn.forward(Z32)
    dZ32 = backward_of(fn, dA32, Z32, A32)
    assert A32.dtype == dZ32.dtype == np.float32
    np.testing.assert_allclose(A32, A64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dZ32, dZ64, rtol=1e-5, atol=1e-6)


# -- options --------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, -1.0, math.nan, math.inf])
def test_elu_rejects_bad_alpha(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        ELU(alpha=alpha)


def test_gelu_rejects_non_boolean_approximate() -> None:
    with pytest.raises(ValueError, match="approximate"):
        GELU(approximate=1)  # type: ignore[arg-type]


def test_selu_constants_are_fixed() -> None:
    fn = SELU()
    assert (fn.scale, fn.alpha) == (SELU_LAMBDA, SELU_ALPHA)
    with pytest.raises(TypeError):
        SELU(alpha=2.0)  # type: ignore[call-arg]


@pytest.mark.parametrize(("name", "options"), [("elu", {"alpha": 0.5}),
                                               ("gelu", {"approximate": True}),
                                               ("swish", {})])
def test_options_survive_describe(name: str, options: dict[str, Any]) -> None:
    layer = Activation(name, **options)
    description = json.loads(json.dumps(layer.describe()))
    assert description == {"type": "activation", "name": name, **options}
    rebuilt = layer_from_description(description)
    Z = np.linspace(-3, 3, 12).reshape(3, 4)
    np.testing.assert_array_equal(rebuilt.forward(Z, False), layer.forward(Z, False))


def test_identity_copies_into_a_given_output_and_passes_its_input_through() -> None:
    identity = ACTIVATIONS["identity"]()
    Z = np.array([[1.0, -2.0]])
    assert identity.forward(Z) is Z and identity.forward(Z, Z) is Z
    out = np.zeros_like(Z)
    assert identity.forward(Z, out) is out and out.tolist() == [[1.0, -2.0]]


def test_leaky_relu_slope_defaults_to_a_hundredth() -> None:
    fn = ACTIVATIONS["leaky_relu"]()
    Z = np.array([[-3.0, 2.0]])
    np.testing.assert_allclose(fn.forward(Z), [[-0.03, 2.0]], rtol=1e-15)
    np.testing.assert_allclose(fn.backward(np.ones_like(Z), None, fn.forward(Z)), [[0.01, 1.0]],
                               rtol=1e-15)


def test_softmax_normalises_and_differentiates_along_the_last_axis_of_any_rank() -> None:
    """A softmax after a layer of 3-D outputs (a conv's channels, rows, columns)."""
    fn = ACTIVATIONS["softmax"]()
    rng = np.random.default_rng(40)
    Z, G = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    A = np.array(fn.forward(Z))
    np.testing.assert_allclose(A.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(A, np.exp(Z) / np.exp(Z).sum(axis=-1, keepdims=True),
                               rtol=1e-12)
    dZ = backward_of(fn, G, Z, A)
    np.testing.assert_allclose(dZ, numeric_grad(lambda: float(np.sum(fn.forward(Z) * G)), Z),
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["gelu", "silu", "swish"])
def test_activations_that_need_their_input_say_so_when_it_is_missing(name: str) -> None:
    fn = ACTIVATIONS[name]()
    A = np.array(fn.forward(np.ones((1, 2))))
    with pytest.raises(AssertionError, match=f"^{fn.name} needs its input for backward$"):
        fn.backward(np.ones_like(A), None, A)


def test_leaky_relu_refuses_a_negative_slope() -> None:
    with pytest.raises(ValueError, match="leaky_relu slope must be >= 0, got -0.1"):
        ACTIVATIONS["leaky_relu"](slope=-0.1)
    assert ACTIVATIONS["leaky_relu"](slope=0.0).slope == 0.0
