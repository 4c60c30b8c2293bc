"""The fast convolution and pooling layers against the textbook loops of
``bpcli/nn/reference.py``, forward and backward; and the loops' own backward passes
against central differences of their forward passes, so that the reference is checked
without the code it checks."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli.nn import AvgPool2D, Conv2D, Layer, MaxPool2D
from bpcli.nn.reference import (
    as_pair,
    avg_pool2d_backward,
    conv1d_backward,
    conv1d_forward,
    conv2d_backward,
    conv2d_forward,
    max_pool2d_backward,
    pads_for,
    pool2d_forward,
)
from tests.numeric import numeric_grad

INPUT = (2, 7, 6)  # (C, H, W): odd sizes, so most strides leave a remainder
CONV_CASES = [(k, s, p) for k, s, p in itertools.product([1, 3, (2, 3)], [1, 2, (1, 2)],
                                                        ["valid", "same", 1, (0, 1)])]
POOL_CASES = [(k, s, p) for k, s, p in itertools.product([2, 3, (2, 3)], [None, 1, 2],
                                                        ["valid", "same", 1])
              if not (isinstance(p, int) and 2 * p > min(as_pair(k)))]  # windows of padding
POOLS: dict[str, Callable[..., Layer]] = {"max": MaxPool2D, "avg": AvgPool2D}
BACKWARD: dict[str, Callable[..., NDArray]] = {"max": max_pool2d_backward,
                                              "avg": avg_pool2d_backward}


def built(layer: Layer) -> Layer:
    layer.build(INPUT, np.random.default_rng(0), np.float64)
    rng = np.random.default_rng(1)
    for param in layer.params.values():  # a zero bias would hide its mistakes
        param[...] = rng.normal(size=param.shape)
    return layer


@pytest.mark.parametrize(("kernel", "stride", "padding"), CONV_CASES)
def test_conv2d_matches_the_loops_forward_and_backward(kernel: Any, stride: Any,
                                                       padding: Any) -> None:
    layer = built(Conv2D(3, kernel, stride=stride, padding=padding))
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2, *INPUT))
    pads = pads_for(padding, INPUT[1:], as_pair(kernel), as_pair(stride))
    W, b = layer.params["W"], layer.params["b"]
    Y = layer.forward(X, True)
    np.testing.assert_allclose(Y, conv2d_forward(X, W, b, as_pair(stride), pads),
                               rtol=1e-12, atol=1e-12)
    dY = rng.normal(size=Y.shape)
    dX = layer.backward(dY.copy())
    assert dX is not None
    ref_dX, ref_dW, ref_db = conv2d_backward(X, W, dY, as_pair(stride), pads)
    np.testing.assert_allclose(dX, ref_dX, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], ref_dW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], ref_db, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", list(POOLS))
@pytest.mark.parametrize(("window", "stride", "padding"), POOL_CASES)
def test_pooling_matches_the_loops_forward_and_backward(mode: str, window: Any, stride: Any,
                                                        padding: Any) -> None:
    layer = built(POOLS[mode](window, stride=stride, padding=padding))
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2, *INPUT))  # continuous values: no ties for the maximum
    step = as_pair(stride if stride is not None else window)
    pads = pads_for(padding, INPUT[1:], as_pair(window), step)
    Y = layer.forward(X, True)
    np.testing.assert_allclose(Y, pool2d_forward(X, as_pair(window), step, pads, mode),
                               rtol=1e-12, atol=1e-12)
    dY = rng.normal(size=Y.shape)
    dX = layer.backward(dY.copy())
    assert dX is not None
    np.testing.assert_allclose(dX, BACKWARD[mode](X, dY, as_pair(window), step, pads),
                               rtol=1e-12, atol=1e-12)


def test_the_loops_backward_passes_are_their_forward_passes_derivatives() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(2, 2, 5, 4))
    W, b = rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3)
    stride, pads = (2, 1), ((1, 1), (0, 1))
    G = rng.normal(size=conv2d_forward(X, W, b, stride, pads).shape)

    def conv_loss() -> float:
        return float(np.sum(conv2d_forward(X, W, b, stride, pads) * G))

    dX, dW, db = conv2d_backward(X, W, G, stride, pads)
    np.testing.assert_allclose(dX, numeric_grad(conv_loss, X), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dW, numeric_grad(conv_loss, W), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, numeric_grad(conv_loss, b), rtol=1e-6, atol=1e-8)
    window, pool_stride, pool_pads = (2, 3), (1, 2), ((1, 0), (1, 1))
    for mode, backward in BACKWARD.items():
        H = rng.normal(size=pool2d_forward(X, window, pool_stride, pool_pads, mode).shape)

        def pool_loss(mode: str = mode, H: NDArray = H) -> float:
            return float(np.sum(pool2d_forward(X, window, pool_stride, pool_pads, mode) * H))

        np.testing.assert_allclose(backward(X, H, window, pool_stride, pool_pads),
                                   numeric_grad(pool_loss, X), rtol=1e-6, atol=1e-8,
                                   err_msg=mode)


def test_max_pool_loops_visit_every_sample_and_channel() -> None:
    """Three samples of two channels (a loop over the wrong axis would miss one)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3, 2, 4, 4))
    window, stride, pads = (2, 2), (2, 2), ((0, 0), (0, 0))
    dY = rng.normal(size=(3, 2, 2, 2))
    dX = max_pool2d_backward(X, dY, window, stride, pads)
    blocks = X.reshape(3, 2, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(3, 2, 2, 2, 4)
    np.testing.assert_array_equal(pool2d_forward(X, window, stride, pads, "max"),
                                  blocks.max(axis=-1))
    # each window's gradient lands on its maximum, and nowhere else
    picked = blocks.argmax(axis=-1)
    expected = np.zeros((3, 2, 2, 2, 4))
    np.put_along_axis(expected, picked[..., None], dY[..., None], axis=-1)
    expected = expected.reshape(3, 2, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(X.shape)
    np.testing.assert_array_equal(dX, expected)


def test_conv2d_loops_compute_in_the_wider_dtype() -> None:
    """float32 inputs and weights with a float64 gradient: gradients in float64."""
    rng = np.random.default_rng(6)
    X, W = rng.normal(size=(2, 2, 4, 4)).astype(np.float32), rng.normal(size=(3, 2, 2, 2))
    W32 = W.astype(np.float32)
    dY = rng.normal(size=(2, 3, 3, 3))
    stride, pads = (1, 1), ((0, 0), (0, 0))
    dX, dW, db = conv2d_backward(X, W32, dY, stride, pads)
    ex_dX, ex_dW, ex_db = conv2d_backward(X.astype(np.float64), W32.astype(np.float64), dY,
                                          stride, pads)
    assert dX.dtype == dW.dtype == db.dtype == np.float64
    np.testing.assert_allclose(dX, ex_dX, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(dW, ex_dW, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(db, ex_db, rtol=1e-14)


@pytest.mark.parametrize(("stride", "pads"), [(1, (0, 0)), (2, (1, 2)), (3, (2, 0))])
def test_conv1d_loops_are_the_2d_loops_on_a_single_row(stride: int, pads: tuple[int, int]
                                                       ) -> None:
    """(N, L, C) sequences as (N, C, 1, L) images and (F, C, k) kernels as (F, C, 1, k):
    the same sums, so the 2-D loops (checked above) check the 1-D ones."""
    rng = np.random.default_rng(7)
    X, W, b = rng.normal(size=(2, 7, 3)), rng.normal(size=(4, 3, 3)), rng.normal(size=4)
    as_image = X.transpose(0, 2, 1)[:, :, None, :]
    kernel = W[:, :, None, :]
    Y = conv1d_forward(X, W, b, stride, pads)
    Y2 = conv2d_forward(as_image, kernel, b, (1, stride), ((0, 0), pads))
    assert Y.shape == (2, Y2.shape[3], 4)
    np.testing.assert_allclose(Y, Y2[:, :, 0, :].transpose(0, 2, 1), rtol=1e-12, atol=1e-12)
    dY = rng.normal(size=Y.shape)
    dX, dW, db = conv1d_backward(X, W, dY, stride, pads)
    dX2, dW2, db2 = conv2d_backward(as_image, kernel, dY.transpose(0, 2, 1)[:, :, None, :],
                                    (1, stride), ((0, 0), pads))
    np.testing.assert_allclose(dX, dX2[:, :, 0, :].transpose(0, 2, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dW, dW2[:, :, 0, :], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, db2, rtol=1e-12, atol=1e-12)


def test_conv1d_loops_keep_float32() -> None:
    rng = np.random.default_rng(8)
    X, W = rng.normal(size=(2, 5, 2)).astype(np.float32), rng.normal(size=(3, 2, 2))
    Y = conv1d_forward(X, W.astype(np.float32), np.zeros(3, np.float32), 1, (0, 0))
    dX, dW, db = conv1d_backward(X, W.astype(np.float32), np.ones_like(Y), 1, (0, 0))
    assert Y.dtype == dX.dtype == dW.dtype == db.dtype == np.float32
    np.testing.assert_allclose(db, [8.0, 8.0, 8.0])  # 2 samples x 4 positions
