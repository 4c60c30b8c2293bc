"""Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten, Reshape and Upsample2D.

Forward passes are compared with the plain-loop references of ``bpcli/nn/reference.py``
(and with PyTorch when it is installed), backward passes with central differences in
float64, alone and inside networks; then ties, descriptions, errors, layouts, dtypes and
a small training run.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli.nn import (
    ACTIVATIONS,
    LAYERS,
    Activation,
    AvgPool2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    Network,
    Reshape,
    Upsample2D,
)
from bpcli.nn import conv as conv_module
from bpcli.nn.conv import geometry
from bpcli.nn.gradcheck import check_gradients
from bpcli.nn.init import INITIALIZERS, fans
from bpcli.nn.layers import BatchNorm, layer_from_description
from bpcli.nn.losses import MeanSquaredError, SoftmaxCrossEntropy
from bpcli.nn.optimizers import SGD
from bpcli.nn.reference import as_pair
from bpcli.nn.reference import conv2d_forward as reference_conv
from bpcli.nn.reference import max_pool2d_backward as reference_max_pool_backward
from bpcli.nn.reference import pads_for as reference_pads
from bpcli.nn.reference import pool2d_forward as reference_pool
from tests.numeric import numeric_grad

ATOL = 1e-7
RTOL = 1e-5
F64 = np.float64
Pads = tuple[tuple[int, int], tuple[int, int]]

KERNELS: list[Any] = [1, 2, 3, 5, (2, 3), (3, 1)]
STRIDES: list[Any] = [1, 2, 3, (1, 2)]
PADDINGS: list[Any] = ["valid", "same", 1, 2, (0, 1)]
INPUT = (2, 7, 6)  # (C, H, W): odd sizes, so most strides do not divide them


def fits(window: Any, stride: Any, padding: Any, size: tuple[int, int] = INPUT[1:]) -> bool:
    pads = reference_pads(padding, size, as_pair(window), as_pair(stride))
    return all(n + sum(p) >= k for n, p, k in zip(size, pads, as_pair(window), strict=True))


# -- helpers ---------------------------------------------------------------------------
def built(layer: Layer, input_shape: tuple[int, ...] = INPUT, seed: int = 0,
          dtype: type[np.floating] = F64) -> Layer:
    layer.build(input_shape, np.random.default_rng(seed), dtype)
    rng = np.random.default_rng(seed + 1)
    for param in layer.params.values():  # a zero bias would hide its mistakes
        param[...] = rng.normal(size=param.shape)
    return layer


def input_grad(layer: Layer, dY: NDArray) -> NDArray:
    """A copy of ``layer``'s dX for ``dY`` (backward may return a buffer it reuses)."""
    dX = layer.backward(dY)
    assert dX is not None
    return dX.copy()


def check_layer_gradients(layer: Layer, X: NDArray, seed: int = 0) -> None:
    """dX and every parameter gradient against central differences of sum(Y * G)."""
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(len(X), *layer.output_shape))

    def loss() -> float:
        return float(np.sum(layer.forward(X, True) * G))

    layer.forward(X, True)
    dX = input_grad(layer, G.copy())
    assert dX.shape == X.shape
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    np.testing.assert_allclose(dX, numeric_grad(loss, X), rtol=RTOL, atol=ATOL, err_msg="dX")
    for key, param in layer.params.items():
        np.testing.assert_allclose(analytic[key], numeric_grad(loss, param), rtol=RTOL,
                                   atol=ATOL, err_msg=key)
    # The first layer skips dX and gets the same parameter gradients.
    layer.needs_input_grad = False
    layer.forward(X, True)
    assert layer.backward(G.copy()) is None
    for key, grad in layer.grads.items():
        np.testing.assert_allclose(grad, analytic[key], rtol=1e-12, atol=1e-14, err_msg=key)
    layer.needs_input_grad = True


CONV_CASES = [case for case in itertools.product(KERNELS, STRIDES, PADDINGS) if fits(*case)]
POOLS = [1, 2, 3, (2, 3)]
POOL_STRIDES: list[Any] = [None, 1, 2, 3]
POOL_PADDINGS: list[Any] = ["valid", "same", 1]
POOL_CASES = [(k, s, p) for k, s, p in itertools.product(POOLS, POOL_STRIDES, POOL_PADDINGS)
              if not (isinstance(p, int) and 2 * p > min(as_pair(k)))]
POOL_LAYERS: dict[str, Callable[..., Layer]] = {"max": MaxPool2D, "avg": AvgPool2D}


# -- convolution --------------------------------------------------------------------------
@pytest.mark.parametrize(("kernel", "stride", "padding"), CONV_CASES)
def test_conv_forward_matches_the_loops(kernel: Any, stride: Any, padding: Any) -> None:
    layer = built(Conv2D(3, kernel, stride=stride, padding=padding))
    X = np.random.default_rng(1).normal(size=(2, *INPUT))
    pads = reference_pads(padding, INPUT[1:], as_pair(kernel), as_pair(stride))
    expected = reference_conv(X, layer.params["W"], layer.params["b"], as_pair(stride), pads)
    assert layer.output_shape == expected.shape[1:]
    if padding == "same":
        assert layer.output_shape[1:] == tuple(math.ceil(n / s)
                                               for n, s in zip(INPUT[1:], as_pair(stride),
                                                               strict=True))
    X_before = X.copy()
    np.testing.assert_allclose(layer.forward(X, True), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.forward(X, False), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(X, X_before)


@pytest.mark.parametrize(("kernel", "stride", "padding"), CONV_CASES)
def test_conv_gradients(kernel: Any, stride: Any, padding: Any) -> None:
    layer = built(Conv2D(3, kernel, stride=stride, padding=padding))
    check_layer_gradients(layer, np.random.default_rng(2).normal(size=(2, *INPUT)))


def test_conv_without_bias() -> None:
    layer = built(Conv2D(2, (2, 3), stride=(2, 1), padding="same", use_bias=False))
    assert set(layer.params) == {"W"}
    X = np.random.default_rng(3).normal(size=(3, *INPUT))
    pads = reference_pads("same", INPUT[1:], (2, 3), (2, 1))
    np.testing.assert_allclose(layer.forward(X, False),
                               reference_conv(X, layer.params["W"], None, (2, 1), pads),
                               rtol=1e-12, atol=1e-12)
    check_layer_gradients(layer, X)


def test_conv_accepts_any_strides() -> None:
    """A plain (N, C, H, W) array, a frame and a strided slice give the same output."""
    layer = built(Conv2D(4, 3, padding=1), (3, 5, 5))
    rng = np.random.default_rng(4)
    X = rng.normal(size=(6, 3, 5, 5))
    expected = layer.forward(X, False).copy()
    framed = np.ascontiguousarray(X.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    np.testing.assert_allclose(layer.forward(framed, True), expected, rtol=1e-13)
    doubled = np.repeat(X, 2, axis=0)[::2]
    np.testing.assert_allclose(layer.forward(doubled, True), expected, rtol=1e-13)
    dY = rng.normal(size=expected.shape)
    dX = input_grad(layer, dY.copy())
    dX_framed = input_grad(layer, np.ascontiguousarray(dY.transpose(1, 2, 3, 0))
                           .transpose(3, 0, 1, 2))
    np.testing.assert_allclose(dX_framed, dX, rtol=1e-13)


def test_conv_inference_splits_large_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = built(Conv2D(3, 3, stride=2, padding="same"), (2, 9, 9))
    X = np.random.default_rng(5).normal(size=(11, 2, 9, 9))
    expected = layer.forward(X, True).copy()
    # Room for the cols of 2 samples only: six chunks, the last of one sample.
    per_sample = 2 * 9 * 5 * 5 * 8
    monkeypatch.setattr(conv_module, "INFERENCE_COLS_BYTES", 2 * per_sample + 1)
    np.testing.assert_allclose(layer.forward(X, False), expected, rtol=1e-13)


def test_conv_inference_takes_one_sample_at_a_time_when_one_barely_fits(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory bound holds down to single samples, and a batch of one is a batch."""
    layer = built(Conv2D(3, 3, stride=2, padding="same"), (2, 9, 9))
    X = np.random.default_rng(6).normal(size=(3, 2, 9, 9))
    expected = layer.forward(X, True).copy()
    widths: list[int] = []
    original = Conv2D._forward_frame

    def recording(self: Conv2D, Xf: NDArray, Yf: NDArray, alloc: Any) -> NDArray:
        widths.append(Xf.shape[-1])
        return original(self, Xf, Yf, alloc)

    monkeypatch.setattr(Conv2D, "_forward_frame", recording)
    monkeypatch.setattr(conv_module, "INFERENCE_COLS_BYTES", 100)  # not one sample's windows
    np.testing.assert_allclose(layer.forward(X, False), expected, rtol=1e-13)
    assert widths == [1, 1, 1]
    np.testing.assert_allclose(layer.forward(X[:1], False), expected[:1], rtol=1e-13)


@pytest.mark.parametrize("layer", [
    Conv2D(3, 3), Conv2D(4, (2, 3), stride=2, padding="same", use_bias=False),
    Conv2D(1, 1, padding=1)], ids=["bias", "no bias", "1x1"])
def test_conv_counts_before_building_what_building_makes(layer: Conv2D) -> None:
    """What bp's memory estimate takes before building a network too big to build."""
    params, workspace = layer.count_params(INPUT), layer.workspace(INPUT)
    built(layer)
    assert params == layer.n_params
    layer.forward(np.random.default_rng(2).normal(size=(3, *INPUT)), True)
    assert layer._cols is not None  # the unrolled windows, and their gradient as big
    assert workspace == 2 * layer._cols.size // 3


def test_conv_initialiser_fans() -> None:
    assert fans((400, 300)) == (400, 300)
    assert fans((32, 16, 3, 5)) == (16 * 15, 32 * 15)
    with pytest.raises(ValueError, match="at least 2 axes"):
        fans((7,))
    layer = Conv2D(64, (3, 5), init="he_uniform")
    layer.build((40, 9, 9), np.random.default_rng(6), F64)
    W = layer.params["W"]
    assert W.shape == (64, 40, 3, 5)
    limit = math.sqrt(6 / (40 * 15))
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.99 * limit
    assert W.std() == pytest.approx(limit / math.sqrt(3), rel=0.03)
    assert not np.any(layer.params["b"])
    glorot = INITIALIZERS["glorot_normal"]((64, 40, 3, 5), np.random.default_rng(7), F64)
    assert glorot.std() == pytest.approx(math.sqrt(2 / ((40 + 64) * 15)), rel=0.03)
    constant = Conv2D(2, 2, init="constant", init_options={"value": 0.25})
    constant.build((1, 3, 3), np.random.default_rng(8), F64)
    assert np.all(constant.params["W"] == 0.25)


# -- pooling ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", sorted(POOL_LAYERS))
@pytest.mark.parametrize(("pool", "stride", "padding"), POOL_CASES)
def test_pool_forward_matches_the_loops(mode: str, pool: Any, stride: Any,
                                        padding: Any) -> None:
    layer = built(POOL_LAYERS[mode](pool, stride, padding))
    X = np.random.default_rng(9).normal(size=(2, *INPUT))
    s = as_pair(pool if stride is None else stride)
    pads = reference_pads(padding, INPUT[1:], as_pair(pool), s)
    expected = reference_pool(X, as_pair(pool), s, pads, mode)
    assert layer.output_shape == expected.shape[1:]
    X_before = X.copy()
    np.testing.assert_allclose(layer.forward(X, True), expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(layer.forward(X, False), expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(X, X_before)


@pytest.mark.parametrize("mode", sorted(POOL_LAYERS))
@pytest.mark.parametrize(("pool", "stride", "padding"), POOL_CASES)
def test_pool_gradients(mode: str, pool: Any, stride: Any, padding: Any) -> None:
    layer = built(POOL_LAYERS[mode](pool, stride, padding))
    check_layer_gradients(layer, np.random.default_rng(10).normal(size=(2, *INPUT)))


@pytest.mark.parametrize(("pool", "stride", "padding"),
                         [(2, None, "valid"), (3, 1, "same"), ((2, 3), 2, "valid"),
                          (3, 2, 1), (2, 3, "valid")])
def test_max_pool_ties_go_to_the_first_position(pool: Any, stride: Any, padding: Any) -> None:
    layer = built(MaxPool2D(pool, stride, padding))
    s = as_pair(pool if stride is None else stride)
    pads = reference_pads(padding, INPUT[1:], as_pair(pool), s)
    rng = np.random.default_rng(11)
    for X in (np.full((2, *INPUT), 0.5),  # every window one big tie
              rng.integers(0, 2, size=(2, *INPUT)).astype(F64)):  # ties among the maxima
        layer.forward(X, True)
        dY = rng.normal(size=(2, *layer.output_shape))
        dX = input_grad(layer, dY.copy())
        np.testing.assert_allclose(dX, reference_max_pool_backward(X, dY, as_pair(pool), s,
                                                                   pads), rtol=1e-13)
        assert np.sum(dX) == pytest.approx(np.sum(dY))  # each dY lands exactly once
    # Constant input, windows side by side: the top-left element of every window.
    layer = built(MaxPool2D(2), (1, 4, 6))
    layer.forward(np.ones((1, 1, 4, 6)), True)
    dX = input_grad(layer, np.arange(1.0, 7.0).reshape(1, 1, 2, 3))
    np.testing.assert_array_equal(dX[0, 0], [[1, 0, 2, 0, 3, 0], [0, 0, 0, 0, 0, 0],
                                             [4, 0, 5, 0, 6, 0], [0, 0, 0, 0, 0, 0]])


def test_average_pooling_leaves_padding_out() -> None:
    layer = built(AvgPool2D(3, 1, "same"), (1, 3, 3))
    Y = layer.forward(np.arange(9.0).reshape(1, 1, 3, 3), False)
    # Corner windows hold 4 input values, edges 6, the centre all 9.
    assert Y[0, 0, 0, 0] == pytest.approx((0 + 1 + 3 + 4) / 4)
    assert Y[0, 0, 0, 1] == pytest.approx((0 + 1 + 2 + 3 + 4 + 5) / 6)
    assert Y[0, 0, 1, 1] == pytest.approx(4.0)


def test_max_pool_ignores_padding() -> None:
    layer = built(MaxPool2D(2, padding="same"), (1, 3, 3))
    X = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # all negative: zero padding would win
    np.testing.assert_array_equal(layer.forward(X, False)[0, 0], [[-1, -3], [-7, -9]])


def test_global_average_pooling() -> None:
    layer = built(GlobalAvgPool2D(), (3, 4, 5))
    assert layer.output_shape == (3,)
    X = np.random.default_rng(12).normal(size=(2, 3, 4, 5))
    np.testing.assert_allclose(layer.forward(X, True), X.mean(axis=(2, 3)), rtol=1e-13)
    np.testing.assert_allclose(layer.forward(X, False), X.mean(axis=(2, 3)), rtol=1e-13)
    check_layer_gradients(layer, X)


def test_flatten_is_row_major() -> None:
    layer = built(Flatten(), (2, 3, 4))
    assert layer.output_shape == (24,)
    X = np.random.default_rng(13).normal(size=(5, 2, 3, 4))
    np.testing.assert_array_equal(layer.forward(X, True), X.reshape(5, 24))
    framed = np.ascontiguousarray(X.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    np.testing.assert_array_equal(layer.forward(framed, True), X.reshape(5, 24))
    np.testing.assert_array_equal(layer.backward(X.reshape(5, 24)), X)
    check_layer_gradients(layer, X)


# -- reshape and upsampling ---------------------------------------------------------------
def test_reshape_is_a_row_major_view_and_its_gradient_is_reshaped_back() -> None:
    layer = built(Reshape([3, 4]), (12,))
    X = np.random.default_rng(30).normal(size=(5, 12))
    for training in (True, False):
        Y = layer.forward(X, training)
        assert Y.shape == (5, 3, 4)
        np.testing.assert_array_equal(Y[:, 1, 2], X[:, 1 * 4 + 2])
        assert np.shares_memory(Y, X)
    check_layer_gradients(layer, X)


def test_reshape_needs_as_many_values_as_it_has_inputs() -> None:
    assert Reshape([1, 6]).compute_output_shape((2, 3)) == (1, 6)
    with pytest.raises(ValueError, match=re.escape(
            "cannot reshape inputs of shape (2, 3) (6 values) to (4, 2) (8 values)")):
        Reshape([4, 2]).compute_output_shape((2, 3))


@pytest.mark.parametrize("size", [2, (1, 3), (3, 2)])
def test_upsample2d_repeats_each_pixel_as_a_block(size: Any) -> None:
    layer = built(Upsample2D(size))
    sh, sw = as_pair(size)
    assert layer.output_shape == (INPUT[0], INPUT[1] * sh, INPUT[2] * sw)
    X = np.random.default_rng(31).normal(size=(3, *INPUT))
    expected = np.repeat(np.repeat(X, sh, axis=2), sw, axis=3)
    np.testing.assert_array_equal(layer.forward(X, False), expected)
    np.testing.assert_array_equal(layer.forward(X, True), expected)
    check_layer_gradients(layer, X)


# -- PyTorch ------------------------------------------------------------------------------
TORCH_CASES = [(3, 1, 1), (3, 2, 1), (5, 3, 2), ((2, 3), (1, 2), (1, 0)), (1, 2, 0), (2, 3, 0)]


@pytest.mark.parametrize(("kernel", "stride", "padding"), TORCH_CASES)
def test_against_torch(kernel: Any, stride: Any, padding: Any) -> None:
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(14)
    X = rng.normal(size=(3, 4, 9, 8))

    def run(layer: Layer, reference: Callable[..., Any], *params: Any) -> None:
        X_t = torch.tensor(X, requires_grad=True)
        params_t = [torch.tensor(p, requires_grad=True) for p in params]
        Y_t = reference(X_t, *params_t)
        np.testing.assert_allclose(layer.forward(X, True), Y_t.detach().numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=layer.kind)
        dY = rng.normal(size=tuple(Y_t.shape))
        Y_t.backward(torch.tensor(dY))
        dX = input_grad(layer, dY.copy())
        np.testing.assert_allclose(dX, X_t.grad.numpy(), rtol=1e-10, atol=1e-12)
        for grad, p_t in zip(layer.grads.values(), params_t, strict=True):
            np.testing.assert_allclose(grad, p_t.grad.numpy(), rtol=1e-10, atol=1e-12)

    conv = built(Conv2D(5, kernel, stride, padding), (4, 9, 8))
    run(conv, lambda x, w, b: functional.conv2d(x, w, b, stride=stride, padding=padding),
        conv.params["W"], conv.params["b"])
    if 2 * max(as_pair(padding)) <= min(as_pair(kernel)):
        run(built(MaxPool2D(kernel, stride, padding), (4, 9, 8)),
            lambda x: functional.max_pool2d(x, kernel, stride, padding))
        run(built(AvgPool2D(kernel, stride, padding), (4, 9, 8)),
            lambda x: functional.avg_pool2d(x, kernel, stride, padding,
                                            count_include_pad=False))
    # "same" is TensorFlow's: asymmetric padding, given to PyTorch explicitly.
    same = built(Conv2D(5, kernel, stride, "same"), (4, 9, 8))
    (top, bottom), (left, right) = reference_pads("same", (9, 8), as_pair(kernel),
                                                  as_pair(stride))
    run(same, lambda x, w, b: functional.conv2d(
        functional.pad(x, (left, right, top, bottom)), w, b, stride=stride),
        same.params["W"], same.params["b"])


def test_max_pool_ties_match_torch() -> None:
    torch = pytest.importorskip("torch")
    X = np.random.default_rng(15).integers(0, 2, size=(2, 3, 7, 7)).astype(F64)
    layer = built(MaxPool2D(3, 2), (3, 7, 7))
    X_t = torch.tensor(X, requires_grad=True)
    Y_t = torch.nn.functional.max_pool2d(X_t, 3, 2)
    dY = np.random.default_rng(16).normal(size=tuple(Y_t.shape))
    Y_t.backward(torch.tensor(dY))
    layer.forward(X, True)
    np.testing.assert_allclose(input_grad(layer, dY.copy()), X_t.grad.numpy(), rtol=1e-13)


# -- inside networks -----------------------------------------------------------------------
def small_cnn(head: str, dtype: type[np.floating] = F64, seed: int = 0,
              extra: list[Layer] | None = None) -> Network:
    layers: list[Layer] = [Conv2D(4, 3, padding="same"), *(extra or []), Activation("relu"),
                           MaxPool2D(2), Conv2D(6, (2, 3), stride=(1, 2), padding=1),
                           Activation("relu")]
    if head == "global":
        layers += [GlobalAvgPool2D(), Dense(3)]
    else:
        layers += [AvgPool2D(2, 1), Flatten(), Dense(3)]
    layers.append(Activation("softmax"))
    return Network(layers, SoftmaxCrossEntropy(), (2, 8, 7), np.random.default_rng(seed), dtype)


@pytest.mark.parametrize("head", ["global", "flatten"])
def test_gradcheck_through_a_network(head: str) -> None:
    network = small_cnn(head)
    rng = np.random.default_rng(17)
    for _, param, _ in network.parameters():  # biases off zero
        param[...] = rng.normal(0, 0.5, size=param.shape)
    X, y = rng.normal(size=(3, 2, 8, 7)), rng.integers(0, 3, size=3)
    checks = check_gradients(network, X, y, atol=ATOL, rtol=RTOL)
    kinds = [c.layer for c in checks]
    # numbered as a config numbers layers: each relu is part of its conv2d
    assert kinds[:4] == ["0 conv2d", "0 conv2d", "2 conv2d", "2 conv2d"]
    assert kinds[-1] == "input"
    failed = [c for c in checks if not c.passed]
    assert not failed, failed


def test_an_activation_after_flatten_leaves_the_cached_output_alone() -> None:
    """Flatten's output is a view of tanh's output, which tanh keeps for its backward pass:
    the relu after Flatten must not work in place on it."""
    layers: list[Layer] = [Conv2D(2, 3), Activation("tanh"), Flatten(), Activation("relu"),
                           Dense(2)]
    network = Network(layers, MeanSquaredError(), (1, 4, 4), np.random.default_rng(25), F64)
    assert not network.layers[3].may_overwrite_input
    rng = np.random.default_rng(26)
    checks = check_gradients(network, rng.normal(size=(3, 1, 4, 4)), rng.normal(size=(3, 2)),
                             atol=ATOL, rtol=RTOL)
    failed = [c for c in checks if not c.passed]
    assert not failed, failed


@pytest.mark.parametrize("name", sorted(set(ACTIVATIONS) - {"softmax"}))
def test_activations_norms_and_dropout_on_images(name: str) -> None:
    """Each activation (softmax is for flat outputs), BatchNorm and Dropout on 4-D frames."""
    layers: list[Layer] = [Conv2D(3, 2, padding="same"), BatchNorm(), Activation(name),
                           Dropout(0.3), Conv2D(2, 2, stride=2), Flatten(), Dense(2)]
    network = Network(layers, MeanSquaredError(), (2, 5, 5), np.random.default_rng(18), F64)
    rng = np.random.default_rng(19)
    X, Y = rng.normal(size=(4, 2, 5, 5)), rng.normal(size=(4, 2))
    checks = check_gradients(network, X, Y, atol=ATOL, rtol=RTOL)
    failed = [c for c in checks if not c.passed]
    assert not failed, failed


@pytest.mark.parametrize("head", ["global", "flatten"])
def test_small_cnn_trains(head: str) -> None:
    """Which quadrant of the image is bright, learnt with float32 SGD as the trainer steps."""
    f32 = np.float32
    rng = np.random.default_rng(20)
    y = rng.integers(0, 3, size=96)
    X = rng.normal(0, 0.3, size=(96, 2, 8, 7)).astype(f32)
    for label, (rows, cols) in enumerate([(slice(0, 4), slice(0, 4)),
                                          (slice(4, 8), slice(3, 7)), (slice(0, 4), slice(3, 7))]):
        X[y == label, :, rows, cols] += 1.0
    network = small_cnn(head, f32, seed=21)
    optimizer = SGD(0.1, momentum=0.9)
    first, _ = network.evaluate(X, y)
    for _ in range(30):
        for start in range(0, 96, 16):
            loss = network.compute_gradients(X[start : start + 16], y[start : start + 16])
            assert np.isfinite(loss)
            optimizer.step([network.flat_params], [network.flat_grads])
    last, outputs = network.evaluate(X, y)
    assert outputs.dtype == f32 and outputs.shape == (96, 3)
    assert last < 0.5 * first
    assert np.mean(np.argmax(outputs, axis=1) == y) > 0.9


def test_float32_stays_float32() -> None:
    f32 = np.float32
    rng = np.random.default_rng(22)
    for layer in (Conv2D(3, 3, padding="same"), MaxPool2D(3, 2, "same"), AvgPool2D(2),
                  GlobalAvgPool2D(), Flatten(), Reshape([6, 7, 2]), Upsample2D((2, 3))):
        built(layer, INPUT, dtype=f32)
        assert all(v.dtype == f32 for v in (*layer.params.values(), *layer.grads.values()))
        X = rng.normal(size=(3, *INPUT)).astype(f32)
        Y = layer.forward(X, True)
        assert Y.dtype == f32 and Y.shape == (3, *layer.output_shape)
        dX = layer.backward(rng.normal(size=Y.shape).astype(f32))
        assert dX is not None and dX.dtype == f32
        assert all(g.dtype == f32 for g in layer.grads.values())
        # no float work array of twice the size hides in the layer (masks are bool)
        assert all(a.dtype == f32 for a in layer._scratch_arrays.values()
                   if a.dtype.kind == "f"), layer.kind
        assert layer.forward(X, False).dtype == f32


@pytest.mark.parametrize("layer", [Conv2D(2, 3), MaxPool2D()], ids=lambda layer: layer.kind)
def test_backward_after_an_inference_forward_is_refused(layer: Layer) -> None:
    built(layer, (1, 5, 5))
    X = np.random.default_rng(24).normal(size=(2, 1, 5, 5))
    layer.forward(X, True)
    Y = layer.forward(X, False)
    with pytest.raises(AssertionError, match="training forward"):
        layer.backward(np.ones_like(Y))


def test_a_conv_used_before_it_is_built_says_so() -> None:
    with pytest.raises(AssertionError, match="^conv2d used before build$"):
        Conv2D(2, 3).forward(np.zeros((2, 1, 5, 5)), True)


@pytest.mark.parametrize("layer", [Conv2D(2, 3), MaxPool2D(), AvgPool2D(2, 1),
                                   GlobalAvgPool2D(), Upsample2D(2)],
                         ids=lambda layer: layer.kind)
def test_training_buffers_are_reused_and_inference_outputs_are_fresh(layer: Layer) -> None:
    """Inference outputs are kept (evaluate joins its batches' outputs): a reused buffer
    would overwrite them with the next batch's."""
    built(layer, (1, 5, 5))
    rng = np.random.default_rng(23)
    X1, X2 = rng.normal(size=(2, 1, 5, 5)), rng.normal(size=(2, 1, 5, 5))
    Y1 = layer.forward(X1, True)
    assert np.shares_memory(layer.forward(X2, True), Y1)
    kept = layer.forward(X1, False)
    copy = kept.copy()
    layer.forward(X2, False)
    layer.forward(X2, True)
    np.testing.assert_array_equal(kept, copy)


# -- descriptions and errors ---------------------------------------------------------------
@pytest.mark.parametrize("layer", [
    Conv2D(8, 3), Conv2D(4, (3, 5), stride=(2, 1), padding=(1, 2), use_bias=False,
                         init="glorot_normal"),
    Conv2D(2, 1, padding="same", init="constant", init_options={"value": 0.5}),
    MaxPool2D(), MaxPool2D((3, 2), 1, "same"), AvgPool2D(3, 2, 1), GlobalAvgPool2D(), Flatten(),
    Reshape([3, 1, 4]), Upsample2D((2, 1)),
], ids=lambda layer: layer.kind)
def test_rebuild_from_description(layer: Layer) -> None:
    description = layer.describe()
    assert json.loads(json.dumps(description)) == description
    rebuilt = layer_from_description(description)
    assert type(rebuilt) is type(layer)
    assert rebuilt.describe() == description
    assert LAYERS[description["type"]] is type(layer)


def test_descriptions_name_every_option() -> None:
    assert Conv2D(16, 3).describe() == {
        "type": "conv2d", "filters": 16, "kernel_size": [3, 3], "stride": [1, 1],
        "padding": "valid", "use_bias": True, "init": "he_uniform"}
    assert MaxPool2D().describe() == {"type": "max_pool2d", "pool_size": [2, 2],
                                      "stride": [2, 2], "padding": "valid"}
    assert AvgPool2D(3, padding=1).describe() == {"type": "avg_pool2d", "pool_size": [3, 3],
                                                  "stride": [3, 3], "padding": [1, 1]}
    assert GlobalAvgPool2D().describe() == {"type": "global_avg_pool2d"}
    assert Flatten().describe() == {"type": "flatten"}


@pytest.mark.parametrize("layer", [Conv2D(2, 3), MaxPool2D(), AvgPool2D(), GlobalAvgPool2D()],
                         ids=lambda layer: layer.kind)
def test_image_layers_need_3d_inputs(layer: Layer) -> None:
    for shape in [(5,), (4, 4), (1, 2, 4, 4)]:
        with pytest.raises(ValueError, match=r"expects \(channels, height, width\) inputs"):
            layer.compute_output_shape(shape)


def test_windows_larger_than_the_input_are_refused() -> None:
    with pytest.raises(ValueError, match=re.escape(
            "conv2d: the 5x5 kernel is larger than its 4x6 input; use a smaller kernel, more "
            "padding or a larger input")):
        Conv2D(2, 5).compute_output_shape((1, 4, 6))
    with pytest.raises(ValueError, match=r"the 5x1 kernel is larger than its 4x6 input;"):
        Conv2D(2, (5, 1)).compute_output_shape((1, 4, 6))  # too tall, narrow enough
    with pytest.raises(ValueError, match=r"3x7 kernel is larger than its 6x6 input "
                                         r"\(padded from 4x4\)"):
        Conv2D(2, (3, 7), padding=1).compute_output_shape((1, 4, 4))
    with pytest.raises(ValueError, match=r"max_pool2d: the 3x3 pool window is larger"):
        MaxPool2D(3).compute_output_shape((1, 2, 9))
    with pytest.raises(ValueError, match="flat"):  # a dense layer straight after a conv
        Network([Conv2D(2, 3), Dense(3)], MeanSquaredError(), (1, 5, 5),
                np.random.default_rng(0))
    # "same" always fits.
    assert Conv2D(2, 5, padding="same").compute_output_shape((1, 2, 3)) == (2, 2, 3)


@pytest.mark.parametrize(("make", "match"), [
    (lambda: Conv2D(0, 3), "filters must be a positive int"),
    (lambda: Conv2D(2.5, 3), "filters must be a positive int"),  # type: ignore[arg-type]
    (lambda: Conv2D(2, 0), "kernel_size must be at least 1"),
    (lambda: Conv2D(2, (3, 3, 3)), "kernel_size must be an int or a pair"),
    (lambda: Conv2D(2, True), "kernel_size must be an int or a pair"),
    (lambda: Conv2D(2, 3, stride=0), "stride must be at least 1"),
    (lambda: Conv2D(2, 3, padding="full"), "padding must be 'valid', 'same'"),
    (lambda: Conv2D(2, 3, padding=-1), "padding must be at least 0"),
    (lambda: Conv2D(2, 3, init="nope"), "unknown initialiser"),
    (lambda: MaxPool2D(2, padding=2), "at most half the pool size"),
    (lambda: AvgPool2D((4, 2), padding=(1, 2)), "at most half the pool size"),
    (lambda: MaxPool2D(2, stride=(1, 0)), "stride must be at least 1"),
    (lambda: Upsample2D(0), "upsample2d size must be at least 1"),
    (lambda: Upsample2D((2, 2, 2)), "upsample2d size must be an int or a pair"),
    (lambda: Reshape([]), "reshape shape must be a list of positive ints"),
    (lambda: Reshape([2, 0]), "reshape shape must be a list of positive ints"),
    (lambda: Reshape([2, True]), "reshape shape must be a list of positive ints"),
    (lambda: Reshape([2, 1.5]), "reshape shape must be a list of positive ints"),  # type: ignore[list-item]
], ids=lambda value: value if isinstance(value, str) else "")
def test_bad_arguments(make: Callable[[], Layer], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_image_layers_refuse_an_empty_input() -> None:
    with pytest.raises(ValueError, match=r"conv2d got an empty input shape \(1, 0, 4\)"):
        geometry("conv2d", (1, 0, 4), (1, 1), (1, 1), "valid")
    assert geometry("conv2d", (1, 1, 4), (1, 1), (1, 1), "valid") is not None
