"""Convolution and pooling written as the textbook loops: to read, and to test the fast
layers of ``conv.py`` against (``tests/test_nn_reference.py``), never to train with.

Images are ``(N, C, H, W)``, kernels ``(F, C, kh, kw)``. Each function pads the input, then
visits every output position ``(y, x)`` and the input window under it, rows
``y*sh .. y*sh+kh-1`` and columns ``x*sw .. x*sw+kw-1`` of the padded input. Backward
passes follow the chain rule one output at a time: each output's gradient flows back to
the inputs (and weights) that made it, summed where windows overlap.

Padding: ``"valid"`` none; ``"same"`` TensorFlow's (output size ``ceil(H / sh)``, the odd
row at the bottom, the odd column at the right); an int or pair ``p`` that many rows at the
top and the bottom (columns left and right), as PyTorch does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

Pair = tuple[int, int]
Pads = tuple[Pair, Pair]  # ((top, bottom), (left, right))


def as_pair(value: int | Pair | Any) -> Pair:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def pads_for(padding: str | int | Pair, size: Pair, window: Pair, stride: Pair) -> Pads:
    """The rows and columns of padding on each side, from a layer's ``padding``."""
    pads = []
    for axis in (0, 1):
        n, k, s = size[axis], window[axis], stride[axis]
        if padding == "valid":
            pads.append((0, 0))
        elif padding == "same":
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        else:
            p = as_pair(padding)[axis]
            pads.append((p, p))
    return pads[0], pads[1]


def output_size(padded: Pair, window: Pair, stride: Pair) -> Pair:
    return ((padded[0] - window[0]) // stride[0] + 1, (padded[1] - window[1]) // stride[1] + 1)


def conv2d_forward(X: NDArray, W: NDArray, b: NDArray | None, stride: Pair,
                   pads: Pads) -> NDArray:
    """``Y[n, f, y, x] = sum over c, i, j of W[f, c, i, j] * Xp[n, c, y*sh+i, x*sw+j]
    + b[f]``, with ``Xp`` the zero-padded input."""
    Xp = np.pad(X, ((0, 0), (0, 0), *pads))
    F, _, kh, kw = W.shape
    (sh, sw) = stride
    out_h, out_w = output_size(Xp.shape[2:], (kh, kw), stride)
    Y = np.zeros((len(X), F, out_h, out_w), dtype=np.result_type(X, W))
    for n in range(len(X)):
        for f in range(F):
            for y in range(out_h):
                for x in range(out_w):
                    window = Xp[n, :, y * sh : y * sh + kh, x * sw : x * sw + kw]
                    Y[n, f, y, x] = np.sum(W[f] * window) + (b[f] if b is not None else 0)
    return Y


def conv2d_backward(X: NDArray, W: NDArray, dY: NDArray, stride: Pair, pads: Pads
                    ) -> tuple[NDArray, NDArray, NDArray]:
    """``(dX, dW, db)`` for ``conv2d_forward``'s output gradient ``dY``: each output
    ``Y[n, f, y, x]`` passes ``dY[n, f, y, x]`` to ``b[f]``, ``dY * Xp[window]`` to
    ``W[f]`` and ``dY * W[f]`` to the window of the input; the padding's share is dropped."""
    Xp = np.pad(X, ((0, 0), (0, 0), *pads))
    dXp = np.zeros_like(Xp, dtype=np.result_type(X, dY))
    dW = np.zeros_like(W, dtype=np.result_type(W, dY))
    F, _, kh, kw = W.shape
    (sh, sw) = stride
    _, _, out_h, out_w = dY.shape
    for n in range(len(X)):
        for f in range(F):
            for y in range(out_h):
                for x in range(out_w):
                    g = dY[n, f, y, x]
                    rows, cols = slice(y * sh, y * sh + kh), slice(x * sw, x * sw + kw)
                    dW[f] += g * Xp[n, :, rows, cols]
                    dXp[n, :, rows, cols] += g * W[f]
    db = dY.sum(axis=(0, 2, 3))
    return _unpad(dXp, pads, X.shape), dW, db


def pool2d_forward(X: NDArray, window: Pair, stride: Pair, pads: Pads, mode: str) -> NDArray:
    """The maximum (``mode="max"``) or the mean (``"avg"``) of each window's input values;
    padding is never the maximum and does not count in the mean."""
    Xp = np.pad(X.astype(np.float64), ((0, 0), (0, 0), *pads), constant_values=np.nan)
    (kh, kw), (sh, sw) = window, stride
    out_h, out_w = output_size(Xp.shape[2:], window, stride)
    Y = np.zeros((*X.shape[:2], out_h, out_w))
    for n in range(X.shape[0]):
        for c in range(X.shape[1]):
            for y in range(out_h):
                for x in range(out_w):
                    values = Xp[n, c, y * sh : y * sh + kh, x * sw : x * sw + kw]
                    Y[n, c, y, x] = np.nanmax(values) if mode == "max" else np.nanmean(values)
    return Y


def max_pool2d_backward(X: NDArray, dY: NDArray, window: Pair, stride: Pair, pads: Pads
                        ) -> NDArray:
    """Each output's gradient goes to the input that was its window's maximum (the first
    in row-major order when several tie, as ``np.argmax`` picks)."""
    Xp = np.pad(X.astype(np.float64), ((0, 0), (0, 0), *pads), constant_values=-np.inf)
    dXp = np.zeros_like(Xp)
    (kh, kw), (sh, sw) = window, stride
    _, _, out_h, out_w = dY.shape
    for n in range(X.shape[0]):
        for c in range(X.shape[1]):
            for y in range(out_h):
                for x in range(out_w):
                    values = Xp[n, c, y * sh : y * sh + kh, x * sw : x * sw + kw]
                    i, j = divmod(int(np.argmax(values)), kw)
                    dXp[n, c, y * sh + i, x * sw + j] += dY[n, c, y, x]
    return _unpad(dXp, pads, X.shape)


def avg_pool2d_backward(X: NDArray, dY: NDArray, window: Pair, stride: Pair, pads: Pads
                        ) -> NDArray:
    """Each output's gradient is shared equally by the inputs (padding aside) it averaged."""
    inside = np.pad(np.ones(X.shape), ((0, 0), (0, 0), *pads))
    dXp = np.zeros_like(inside)
    (kh, kw), (sh, sw) = window, stride
    _, _, out_h, out_w = dY.shape
    for y in range(out_h):
        for x in range(out_w):
            rows, cols = slice(y * sh, y * sh + kh), slice(x * sw, x * sw + kw)
            counted = inside[:, :, rows, cols]
            share = dY[:, :, y, x] / counted.sum(axis=(2, 3))
            dXp[:, :, rows, cols] += counted * share[:, :, None, None]
    return _unpad(dXp, pads, X.shape)


def _unpad(dXp: NDArray, pads: Pads, shape: tuple[int, ...]) -> NDArray:
    (top, _), (left, _) = pads
    return dXp[:, :, top : top + shape[2], left : left + shape[3]]


def conv1d_forward(X: NDArray[Any], W: NDArray[Any], b: NDArray[Any], stride: int,
                   pads: tuple[int, int]) -> NDArray[Any]:
    """``Conv1D``'s forward pass as loops. ``X`` is ``(N, L, C)`` (positions, then channels,
    as sequence layers hold them), ``W`` is ``(F, C, k)``; returns ``(N, L', F)``."""
    N, L, C = X.shape
    F, _, k = W.shape
    Xp = np.pad(X, ((0, 0), pads, (0, 0)))
    out = (Xp.shape[1] - k) // stride + 1
    Y = np.zeros((N, out, F), dtype=X.dtype)
    for n in range(N):
        for t in range(out):
            window = Xp[n, t * stride : t * stride + k]  # (k, C)
            for f in range(F):
                Y[n, t, f] = b[f] + np.sum(window * W[f].T)
    return Y


def conv1d_backward(X: NDArray[Any], W: NDArray[Any], dY: NDArray[Any], stride: int,
                    pads: tuple[int, int]) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """``(dX, dW, db)`` of ``conv1d_forward``: each output's gradient flows back to the
    window and the kernel that made it."""
    N, L, C = X.shape
    F, _, k = W.shape
    Xp = np.pad(X, ((0, 0), pads, (0, 0)))
    dXp = np.zeros_like(Xp)
    dW = np.zeros_like(W)
    db = np.zeros(F, dtype=X.dtype)
    for n in range(N):
        for t in range(dY.shape[1]):
            start = t * stride
            for f in range(F):
                g = dY[n, t, f]
                db[f] += g
                dW[f] += g * Xp[n, start : start + k].T
                dXp[n, start : start + k] += g * W[f].T
    return dXp[:, pads[0] : pads[0] + L], dW, db
