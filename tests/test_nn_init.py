"""The weight initialisers of bpcli/nn/init.py: their statistics, dtypes, options, the name
table and the default initialiser for each activation."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from bpcli.nn import ACTIVATIONS, INITIALIZERS, Conv2D, Dense
from bpcli.nn.init import PARAMETRIC_INITIALIZERS, default_initializer, make_initializer
from bpcli.nn.layers import Layer
from bpcli.nn.sequence import Conv1D

FAN_IN, FAN_OUT = 400, 300
# name -> (distribution, scale): the uniform limit l, the normal standard deviation s, or the
# value of a constant.
EXPECTED_INIT = {
    "glorot_uniform": ("uniform", np.sqrt(6.0 / (FAN_IN + FAN_OUT))),
    "glorot_normal": ("normal", np.sqrt(2.0 / (FAN_IN + FAN_OUT))),
    "he_uniform": ("uniform", np.sqrt(6.0 / FAN_IN)),
    "he_normal": ("normal", np.sqrt(2.0 / FAN_IN)),
    "lecun_uniform": ("uniform", np.sqrt(3.0 / FAN_IN)),
    "lecun_normal": ("normal", np.sqrt(1.0 / FAN_IN)),
    "pytorch_uniform": ("uniform", np.sqrt(1.0 / FAN_IN)),
    "zeros": ("constant", 0.0),
    "orthogonal": ("orthogonal", 1.0),
}


def test_every_initialiser_has_expectations() -> None:
    assert set(INITIALIZERS) == set(EXPECTED_INIT)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_initialiser_statistics(name: str, dtype: type[np.floating]) -> None:
    W = INITIALIZERS[name]((FAN_IN, FAN_OUT), np.random.default_rng(12), dtype)
    assert W.shape == (FAN_IN, FAN_OUT)
    assert W.dtype == dtype
    distribution, scale = EXPECTED_INIT[name]
    W64 = W.astype(np.float64)
    if distribution == "constant":
        assert np.all(W64 == scale)
        return
    if distribution == "orthogonal":  # (400, 300): orthonormal columns, no two alike
        tolerance = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(W64.T @ W64, np.eye(FAN_OUT), atol=tolerance)
        other = INITIALIZERS[name]((FAN_IN, FAN_OUT), np.random.default_rng(13), dtype)
        assert not np.allclose(W, other)
        return
    assert abs(W64.mean()) < 0.02 * scale
    if distribution == "uniform":
        # U(-l, l): within the limits, reaching close to them, std l / sqrt(3).
        assert np.abs(W64).max() <= scale
        assert np.abs(W64).max() > 0.99 * scale
        assert W64.std() == pytest.approx(scale / np.sqrt(3), rel=0.02)
    else:
        assert W64.std() == pytest.approx(scale, rel=0.02)
        assert np.abs(W64).max() > 3 * scale  # tails exist: not a uniform in disguise


@pytest.mark.parametrize("shape", [(4, 2, 3, 3), (30, 2, 3)])
def test_orthogonal_kernels_have_the_kernels_shape_and_orthonormal_rows(
        shape: tuple[int, ...]) -> None:
    """A conv2d's (filters, channels, kh, kw) kernel: orthonormal as filters x the rest."""
    W = INITIALIZERS["orthogonal"](shape, np.random.default_rng(14), np.float64)
    assert W.shape == shape
    rows = W.reshape(shape[0], -1)
    if rows.shape[0] <= rows.shape[1]:
        np.testing.assert_allclose(rows @ rows.T, np.eye(shape[0]), atol=1e-12)
    else:
        np.testing.assert_allclose(rows.T @ rows, np.eye(rows.shape[1]), atol=1e-12)


def test_uniform_initialiser_takes_its_limit() -> None:
    W = make_initializer("uniform", limit=0.05)((FAN_IN, FAN_OUT), np.random.default_rng(1),
                                                np.float64)
    assert np.abs(W).max() <= 0.05 and np.abs(W).max() > 0.0499
    with pytest.raises(ValueError, match="limit"):
        make_initializer("uniform", limit=0.0)


def test_dense_uses_its_initialiser() -> None:
    layer = Dense(FAN_OUT, init="he_normal")
    layer.build((FAN_IN,), np.random.default_rng(13), np.float64)
    assert layer.params["W"].std() == pytest.approx(np.sqrt(2.0 / FAN_IN), rel=0.02)


def test_default_initialiser() -> None:
    assert default_initializer("relu") == "pytorch_uniform"
    assert default_initializer("leaky_relu") == "pytorch_uniform"
    assert default_initializer("tanh") == "pytorch_uniform"
    assert default_initializer("softmax") == "pytorch_uniform"


# (layer, its input shape, its fan-in): every layer with biases
BIASED = [(lambda init: Dense(300, init=init), (400,), 400),
          (lambda init: Conv2D(300, (3, 2), init=init), (5, 8, 8), 5 * 3 * 2),
          (lambda init: Conv1D(300, 3, init=init), (10, 7), 7 * 3)]


@pytest.mark.parametrize(("make", "shape", "fan_in"), BIASED)
def test_pytorch_uniform_draws_the_biases_too(make: Callable[[str], Layer], shape: tuple[int, ...],
                                              fan_in: int) -> None:
    layer = make("pytorch_uniform")
    layer.build(shape, np.random.default_rng(5), np.float32)
    b, limit = layer.params["b"].astype(np.float64), 1 / math.sqrt(fan_in)
    assert layer.params["b"].dtype == np.float32
    assert np.abs(b).max() <= limit and np.abs(b).max() > 0.95 * limit
    assert b.std() == pytest.approx(limit / math.sqrt(3), rel=0.15)
    assert not np.array_equal(b, layer.params["W"].ravel()[: len(b)])  # a draw of its own
    other = make("glorot_uniform")
    other.build(shape, np.random.default_rng(5), np.float32)
    assert not np.any(other.params["b"])  # every other initialiser starts biases at 0


# the LeCun, zeros and constant initialisers, on a layer of another size
WIDE_FAN_IN, WIDE_FAN_OUT = 500, 400


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["lecun_normal", "lecun_uniform", "zeros"])
def test_new_initialisers_shape_and_dtype(name: str, dtype: type[np.floating]) -> None:
    W = INITIALIZERS[name]((WIDE_FAN_IN, WIDE_FAN_OUT), np.random.default_rng(40), dtype)
    assert W.shape == (WIDE_FAN_IN, WIDE_FAN_OUT)
    assert W.dtype == dtype


def test_lecun_statistics() -> None:
    rng = np.random.default_rng(41)
    W = INITIALIZERS["lecun_normal"]((WIDE_FAN_IN, WIDE_FAN_OUT), rng, np.float64)
    assert W.std() == pytest.approx(math.sqrt(1 / WIDE_FAN_IN), rel=0.02)
    assert abs(W.mean()) < 0.02 * math.sqrt(1 / WIDE_FAN_IN)
    assert np.abs(W).max() > 3 * math.sqrt(1 / WIDE_FAN_IN)  # a normal, not a uniform
    W = INITIALIZERS["lecun_uniform"]((WIDE_FAN_IN, WIDE_FAN_OUT), rng, np.float64)
    limit = math.sqrt(3 / WIDE_FAN_IN)
    assert limit * 0.99 < np.abs(W).max() <= limit
    assert W.std() == pytest.approx(math.sqrt(1 / WIDE_FAN_IN), rel=0.02)  # same variance


def test_zeros_and_constant() -> None:
    rng = np.random.default_rng(42)
    assert not np.any(INITIALIZERS["zeros"]((3, 4), rng, np.float32))
    W = make_initializer("constant", value=0.25)((3, 4), rng, np.float32)
    assert W.shape == (3, 4) and W.dtype == np.float32
    assert np.all(W == np.float32(0.25))
    assert "constant" in PARAMETRIC_INITIALIZERS and "constant" not in INITIALIZERS


def test_make_initializer_by_name() -> None:
    for name, init in INITIALIZERS.items():
        assert make_initializer(name) is init


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("nope", {}, "unknown initialiser 'nope'; known: glorot_uniform"),
        ("he_normal", {"value": 1.0}, "takes no options"),
        ("constant", {}, "missing a required argument: 'value'"),
        ("constant", {"value": 1.0, "scale": 2.0}, "unexpected keyword argument 'scale'"),
        ("constant", {"value": math.nan}, "must be finite"),
    ],
)
def test_make_initializer_rejects(name: str, options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_initializer(name, **options)


def test_default_initialisers_for_new_activations() -> None:
    assert default_initializer("selu") == "lecun_normal"
    assert default_initializer("elu") == "pytorch_uniform"
    assert default_initializer("elu", convolution=True) == "he_uniform"
    assert default_initializer("selu", convolution=True) == "lecun_normal"
    assert default_initializer("tanh", convolution=True) == "glorot_uniform"
    for name in ("gelu", "silu", "swish", "softplus"):
        assert default_initializer(name) == "pytorch_uniform"
    assert all(default_initializer(name) in INITIALIZERS for name in ACTIVATIONS)
