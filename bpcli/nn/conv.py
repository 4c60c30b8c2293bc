"""Convolution and pooling layers for images: inputs of shape ``(batch, channels, height, width)``.

Every layer here follows the contract of ``bpcli.nn.layers``: training-mode scratch arrays
reused from step to step, ``dX`` skipped when ``needs_input_grad`` is false. Shapes without
the batch axis are ``(C, H, W)`` in and ``(F, H', W')`` (or ``(C, H', W')``) out.

Windows and padding
-------------------
A ``kh x kw`` window moves by ``stride = (sh, sw)`` over the input padded with
``(top, bottom)`` rows and ``(left, right)`` columns, giving
``H' = (H + top + bottom - kh) // sh + 1`` output rows (likewise ``W'``). ``padding`` is

- ``"valid"``: no padding; windows that would run past the edge are dropped;
- ``"same"``: ``H' = ceil(H / sh)``, with ``max((H' - 1) * sh + kh - H, 0)`` rows of padding
  in all, half on the top and the odd one on the bottom (right for columns), as TensorFlow
  does;
- an int ``p`` or a pair ``(ph, pw)``: that many rows on the top *and* the bottom (columns
  on the left *and* the right), as PyTorch does.

Convolution pads with zeros; max pooling with ``-inf`` (padding never wins); average pooling
leaves the padding out of the count.

Memory layout
-------------
The images these layers return (and their input gradients) have the contract's shape
``(N, C, H, W)`` but are views of arrays stored as ``(C, H, W, N)``: channels outermost, the
batch innermost (their ``frame``). In that layout every window view (one per kernel offset)
reads runs of at least ``N`` contiguous values instead of a few pixels of one image row, the
matrix products read and write it without transposing copies, and a stack of these layers
passes arrays along without reordering them. (On ``benchmarks/cnn_speed.py``'s second
convolution, the copies around the matrix products take about a third of the time they took
with im2col on ``(N, C, H, W)`` arrays.) Elementwise layers in between (activations,
dropout, batch norm) work on any strides. Every layer here accepts any strides too: a plain
``(N, C, H, W)`` array costs one reordering copy, or slower strided reads, where it enters.

How it is computed
------------------
Convolution is one matrix product over the whole batch (im2col). With ``Xp`` the padded
input frame ``(C, Hp, Wp, N)``, the window views at the ``kh * kw`` kernel offsets fill
``cols`` of shape ``(C, kh, kw, H', W', N)``, which is the matrix ``(K, H' W' N)`` with
``K = C kh kw``. Then forward is ``Z = W.reshape(F, K) @ cols`` (``Z`` is the output frame
``(F, H', W', N)``), and backward is ``dW = dZ @ cols.T`` and ``dcols = W.T @ dZ``, with
``dcols`` added back onto the input positions (col2im) one kernel offset at a time. Pooling
combines the same window views elementwise. The only Python loops run over kernel offsets,
never over samples or pixels.

``bpcli/nn/reference.py`` computes the same forward and backward passes as the textbook
loops over samples, channels and output positions: read it first, and the tests hold these
layers to it (``tests/test_nn_reference.py``).

In inference, batches are split into chunks of samples so that ``cols`` stays within
``INFERENCE_COLS_BYTES`` (a 4,096-image evaluation batch would otherwise need ``cols`` of
hundreds of megabytes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from bpcli.nn.init import Initializer, initial_bias, make_initializer
from bpcli.nn.layers import LAYERS, Array, Layer, Shape

#: A size per spatial axis, given as one int for both or as ``(rows, columns)``.
Size = int | Sequence[int]
#: ``"valid"``, ``"same"``, or rows/columns of zeros on each side.
Padding = str | int | Sequence[int]
Pair = tuple[int, int]
Allocator = Callable[[str, Shape, DTypeLike], NDArray[Any]]

#: The most memory ``cols`` may take in inference before a batch is split into chunks.
INFERENCE_COLS_BYTES = 32 * 2**20


def frame(X: NDArray[Any]) -> NDArray[Any]:
    """The ``(C, H, W, N)`` view of an ``(N, C, H, W)`` array (see "Memory layout")."""
    return X.transpose(1, 2, 3, 0)


def images(Xf: NDArray[Any]) -> NDArray[Any]:
    """The ``(N, C, H, W)`` view of a ``(C, H, W, N)`` frame."""
    return Xf.transpose(3, 0, 1, 2)


def _fresh(name: str, shape: Shape, dtype: DTypeLike) -> NDArray[Any]:
    """The inference-mode allocator: a new array every call."""
    return np.empty(shape, dtype=dtype)


# -- arguments and geometry ---------------------------------------------------------------
def _pair(value: Size, what: str, minimum: int = 1) -> Pair:
    """``value`` as ``(rows, columns)``, each an int of at least ``minimum``."""
    items: list[Any] = list(value) if isinstance(value, Sequence) else [value, value]
    if len(items) != 2 or not all(isinstance(v, Integral) and not isinstance(v, bool)
                                  for v in items):
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
    rows, columns = int(items[0]), int(items[1])
    if rows < minimum or columns < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value!r}")
    return rows, columns


def _padding(value: Padding, what: str) -> str | Pair:
    if isinstance(value, str):
        if value not in ("valid", "same"):
            raise ValueError(f"{what} must be 'valid', 'same', an int or a pair of ints, "
                             f"got {value!r}")
        return value
    return _pair(value, what, minimum=0)


def _describe_padding(padding: str | Pair) -> str | list[int]:
    return padding if isinstance(padding, str) else list(padding)


@dataclass(frozen=True)
class Geometry:
    """Where the windows of one layer fall on its ``(C, H, W)`` input."""

    channels: int
    size: Pair  # (H, W)
    window: Pair  # (kh, kw)
    stride: Pair  # (sh, sw)
    pads: tuple[Pair, Pair]  # ((top, bottom), (left, right))
    out: Pair  # (H', W')

    @property
    def padded(self) -> Pair:
        (top, bottom), (left, right) = self.pads
        return self.size[0] + top + bottom, self.size[1] + left + right

    @property
    def is_padded(self) -> bool:
        return any(p for pair in self.pads for p in pair)

    @property
    def tiled(self) -> bool:
        """True when the windows cover the padded input exactly once each."""
        return (self.stride == self.window
                and self.padded == (self.out[0] * self.stride[0], self.out[1] * self.stride[1]))

    def offsets(self) -> list[Pair]:
        """The kernel offsets ``(i, j)`` in row-major window order."""
        return [(i, j) for i in range(self.window[0]) for j in range(self.window[1])]

    def view(self, Xp: NDArray[Any], i: int, j: int) -> NDArray[Any]:
        """The ``(C, H', W', N)`` view of the padded frame ``Xp`` ``(C, Hp, Wp, N)`` holding
        every window's element at kernel offset ``(i, j)``."""
        (sh, sw), (oh, ow) = self.stride, self.out
        return Xp[:, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]

    def interior(self, Xp: NDArray[Any]) -> NDArray[Any]:
        """The unpadded part of the padded frame ``Xp``."""
        (top, _), (left, _) = self.pads
        return Xp[:, top : top + self.size[0], left : left + self.size[1]]

    def pad(self, Xf: Array, fill: float, alloc: Allocator) -> Array:
        """The frame ``Xf`` padded with ``fill`` (``Xf`` itself when there is no padding)."""
        if not self.is_padded:
            return Xf
        (top, bottom), (left, right) = self.pads
        Hp, Wp = self.padded
        Xp = alloc("Xp", (self.channels, Hp, Wp, Xf.shape[-1]), Xf.dtype)
        # Only the border: the interior is overwritten next.
        Xp[:, :top] = fill
        Xp[:, Hp - bottom :] = fill
        Xp[:, :, :left] = fill
        Xp[:, :, Wp - right :] = fill
        np.copyto(self.interior(Xp), Xf)
        return Xp


def geometry(kind: str, input_shape: Shape, window: Pair, stride: Pair,
             padding: str | Pair, what: str = "kernel") -> Geometry:
    """Resolve ``padding`` and the output size for ``(C, H, W)`` inputs, or raise
    ``ValueError`` naming the sizes."""
    if len(input_shape) != 3:
        raise ValueError(f"{kind} expects (channels, height, width) inputs, got shape "
                         f"{tuple(input_shape)}")
    channels, height, width = (int(n) for n in input_shape)
    if min(channels, height, width) < 1:
        raise ValueError(f"{kind} got an empty input shape {tuple(input_shape)}")
    size = (height, width)
    pads: list[Pair] = []
    for n, k, s, axis in zip(size, window, stride, (0, 1), strict=True):
        if padding == "valid":
            pads.append((0, 0))
        elif padding == "same":
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        else:
            assert isinstance(padding, tuple)
            pads.append((padding[axis], padding[axis]))
    padded = [n + before + after for n, (before, after) in zip(size, pads, strict=True)]
    if window[0] > padded[0] or window[1] > padded[1]:
        detail = "" if padding == "valid" else f" (padded from {height}x{width})"
        raise ValueError(
            f"{kind}: the {window[0]}x{window[1]} {what} is larger than its "
            f"{padded[0]}x{padded[1]} input{detail}; use a smaller {what}, more padding or a "
            "larger input"
        )
    out = [(p - k) // s + 1 for p, k, s in zip(padded, window, stride, strict=True)]
    return Geometry(channels, size, window, stride, (pads[0], pads[1]), (out[0], out[1]))


# -- convolution ---------------------------------------------------------------------------
class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in every deep learning library).

    Input ``X`` of shape ``(N, C, H, W)``, kernel ``W`` of shape ``(F, C, kh, kw)``, bias ``b``
    of shape ``(F,)``; output ``Y`` of shape ``(N, F, H', W')`` (``H'``, ``W'`` and the padding
    as in the module docstring). With ``Xp`` the zero-padded input::

        Y[n, f, y, x] = b[f] + sum_{c, i, j} W[f, c, i, j] Xp[n, c, y sh + i, x sw + j]

    Backward, summing over every index that is not on the left::

        db[f]          = sum dY[n, f, y, x]
        dW[f, c, i, j] = sum dY[n, f, y, x] Xp[n, c, y sh + i, x sw + j]
        dXp[n, c, y sh + i, x sw + j] += sum_f W[f, c, i, j] dY[n, f, y, x]

    and ``dX`` is ``dXp`` without its padding. The kernel is drawn by ``init`` with fans
    ``C kh kw`` (in) and ``F kh kw`` (out).

    Parameters
    ----------
    filters : int
        Output channels ``F``.
    kernel_size : int or (int, int)
        ``kh, kw``.
    stride : int or (int, int)
        ``sh, sw``.
    padding : {"valid", "same"}, int or (int, int)
        See the module docstring.
    use_bias : bool
        Without a bias there is no ``b`` parameter (e.g. before ``BatchNorm``).
    init : str
        The kernel's initialiser, as for ``Dense``; He's suits the ReLU family.
    init_options : dict of str to float, optional
        The initialiser's options, as for ``Dense``.
    """

    kind = "conv2d"

    def __init__(self, filters: int, kernel_size: Size, stride: Size = 1,
                 padding: Padding = "valid", use_bias: bool = True, init: str = "he_uniform",
                 init_options: dict[str, float] | None = None) -> None:
        super().__init__()
        if not isinstance(filters, Integral) or isinstance(filters, bool) or filters < 1:
            raise ValueError(f"conv2d filters must be a positive int, got {filters!r}")
        self.filters: int = int(filters)
        self.kernel_size: Pair = _pair(kernel_size, "conv2d kernel_size")
        self.stride: Pair = _pair(stride, "conv2d stride")
        self.padding: str | Pair = _padding(padding, "conv2d padding")
        self.use_bias: bool = bool(use_bias)
        self.init: str = init
        self.init_options: dict[str, float] = dict(init_options or {})
        self._initializer: Initializer = make_initializer(init, **self.init_options)
        self._geometry: Geometry | None = None
        self._cols: Array | None = None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        g = geometry(self.kind, input_shape, self.kernel_size, self.stride, self.padding)
        return (self.filters, *g.out)

    def count_params(self, input_shape: Shape) -> int:
        return self.filters * (int(input_shape[0]) * math.prod(self.kernel_size)
                               + self.use_bias)

    def workspace(self, input_shape: Shape) -> int:
        # the unrolled windows (cols) and their gradient (dcols)
        g = geometry(self.kind, input_shape, self.kernel_size, self.stride, self.padding)
        return 2 * g.channels * math.prod(g.window) * math.prod(g.out)

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        self._geometry = geometry(self.kind, self.input_shape, self.kernel_size, self.stride,
                                  self.padding)
        kernel = (self.filters, self.input_shape[0], *self.kernel_size)
        self.params = {"W": self._initializer(kernel, rng, dtype)}
        if self.use_bias:
            self.params["b"] = initial_bias(self.init, math.prod(kernel[1:]), self.filters, rng,
                                            dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return shape

    def _forward_frame(self, Xf: Array, Yf: Array, alloc: Allocator) -> Array:
        """Write the output frame ``Yf`` ``(F, H', W', n)`` of the input frame ``Xf``
        ``(C, H, W, n)``; return ``cols``."""
        g = self._geometry
        assert g is not None, "conv2d used before build"
        Xp = g.pad(Xf, 0.0, alloc)
        cols = alloc("cols", (g.channels, *g.window, *g.out, Xf.shape[-1]), Xf.dtype)
        for i, j in g.offsets():
            np.copyto(cols[:, i, j], g.view(Xp, i, j))
        W = self.params["W"]
        F, K = self.filters, W[0].size
        cols2 = cols.reshape(K, -1)
        if Yf.flags.c_contiguous:
            np.matmul(W.reshape(F, K), cols2, out=Yf.reshape(F, -1))
        else:  # an inference chunk: a strided slice of the whole output
            np.copyto(Yf, (W.reshape(F, K) @ cols2).reshape(Yf.shape))
        if self.use_bias:
            Yf += self.params["b"][:, None, None, None]
        return cols

    def forward(self, X: Array, training: bool) -> Array:
        N = len(X)
        Xf = frame(X)
        if training:
            Yf = self._scratch("Y", (*self.output_shape, N), X.dtype)
            self._cols = self._forward_frame(Xf, Yf, self._scratch)
            return images(Yf)
        self._cols = None  # a backward pass now would use a stale cache: refuse it
        Yf = np.empty((*self.output_shape, N), dtype=X.dtype)
        per_sample = self.params["W"][0].size * Yf[0, ..., 0].size * X.dtype.itemsize
        chunk = max(1, INFERENCE_COLS_BYTES // per_sample)
        for start in range(0, N, chunk):  # chunks of many samples, to bound memory
            part = slice(start, start + chunk)
            self._forward_frame(Xf[..., part], Yf[..., part], _fresh)
        return images(Yf)

    def backward(self, dY: Array) -> Array | None:
        cols, g = self._cols, self._geometry
        assert cols is not None and g is not None, "backward called before a training forward"
        W = self.params["W"]
        F, K = self.filters, W[0].size
        dZ = frame(dY)
        if not dZ.flags.c_contiguous:  # the products want the contiguous (F, H' W' N) matrix
            contiguous = self._scratch("dZ", dZ.shape, dY.dtype)
            np.copyto(contiguous, dZ)
            dZ = contiguous
        dZ2 = dZ.reshape(F, -1)
        np.matmul(dZ2, cols.reshape(K, -1).T, out=self.grads["W"].reshape(F, K))
        if self.use_bias:  # a matrix-vector product sums the rows faster than np.sum
            ones = self._scratch("ones", (dZ2.shape[1],), dY.dtype)
            ones.fill(1)
            np.matmul(dZ2, ones, out=self.grads["b"])
        if not self.needs_input_grad:
            return None
        dcols = self._scratch("dcols", cols.shape, dY.dtype)
        np.matmul(W.reshape(F, K).T, dZ2, out=dcols.reshape(K, -1))
        dXp = self._scratch("dXp", (g.channels, *g.padded, len(dY)), dY.dtype)
        _add_windows(dXp, g, lambda i, j: dcols[:, i, j])
        return images(g.interior(dXp))

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "filters": self.filters, "kernel_size": list(self.kernel_size),
            "stride": list(self.stride), "padding": _describe_padding(self.padding),
            "use_bias": self.use_bias, "init": self.init,
        }
        if self.init_options:
            settings["init_options"] = self.init_options
        return settings


def _add_windows(dXp: Array, g: Geometry, part: Callable[[int, int], Array]) -> None:
    """``dXp`` (the padded input frame) = the sum of each kernel offset's ``part(i, j)``
    ``(C, H', W', N)`` at the positions that offset's window view reads.

    One slicing add per kernel offset: several times faster than ``np.add.at`` with index
    arrays. When the windows tile the input, each position is written once, by a copy, and
    the zeroing is skipped.
    """
    if g.tiled:
        for i, j in g.offsets():
            np.copyto(g.view(dXp, i, j), part(i, j))
        return
    dXp.fill(0)
    for i, j in g.offsets():
        view = g.view(dXp, i, j)
        view += part(i, j)


def _combine_windows(combine: np.ufunc, Xp: Array, g: Geometry, out: Array) -> None:
    """``out = combine(view_1, combine(view_2, ...))`` over the window views of every
    kernel offset: the max or the sum of each window."""
    views = [g.view(Xp, i, j) for i, j in g.offsets()]
    if len(views) == 1:
        np.copyto(out, views[0])
        return
    combine(views[0], views[1], out=out)
    for view in views[2:]:
        combine(out, view, out=out)


# -- pooling --------------------------------------------------------------------------------
class _Pool2D(Layer):
    """Arguments and geometry shared by the pooling layers."""

    def __init__(self, pool_size: Size = 2, stride: Size | None = None,
                 padding: Padding = "valid") -> None:
        super().__init__()
        self.pool_size: Pair = _pair(pool_size, f"{self.kind} pool_size")
        self.stride: Pair = (self.pool_size if stride is None
                             else _pair(stride, f"{self.kind} stride"))
        self.padding: str | Pair = _padding(padding, f"{self.kind} padding")
        if isinstance(self.padding, tuple) and any(
            2 * p > k for p, k in zip(self.padding, self.pool_size, strict=True)
        ):
            # Wider padding would make windows of padding alone (PyTorch's rule too).
            raise ValueError(f"{self.kind} padding must be at most half the pool size, got "
                             f"padding {self.padding} for pool size {self.pool_size}")
        self._geometry: Geometry | None = None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        g = geometry(self.kind, input_shape, self.pool_size, self.stride, self.padding,
                     what="pool window")
        return (g.channels, *g.out)

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        self._geometry = geometry(self.kind, self.input_shape, self.pool_size, self.stride,
                                  self.padding, what="pool window")
        return shape

    def _built(self) -> Geometry:
        assert self._geometry is not None, f"{self.kind} used before build"
        return self._geometry

    def settings(self) -> dict[str, Any]:
        return {"pool_size": list(self.pool_size), "stride": list(self.stride),
                "padding": _describe_padding(self.padding)}


class MaxPool2D(_Pool2D):
    """Max pooling: ``Y[n, c, y, x] = max_{i, j} Xp[n, c, y sh + i, x sw + j]``.

    ``X`` is ``(N, C, H, W)`` and ``Y`` is ``(N, C, H', W')``; ``Xp`` is ``X`` padded with
    ``-inf``. Backward sends each ``dY[n, c, y, x]`` to the one input position of its window
    that holds the maximum (adding up where windows overlap). On ties the gradient goes to
    exactly one position, the first in row-major window order (smallest ``i``, then smallest
    ``j``), so it is deterministic and sums to ``sum(dY)``; PyTorch picks the same one.

    Parameters
    ----------
    pool_size : int or (int, int)
        ``kh, kw``.
    stride : int, (int, int) or None
        ``sh, sw``; ``None`` for the pool size (windows side by side).
    padding : {"valid", "same"}, int or (int, int)
        See the module docstring; an int may be at most half the pool size.
    """

    kind = "max_pool2d"

    def __init__(self, pool_size: Size = 2, stride: Size | None = None,
                 padding: Padding = "valid") -> None:
        super().__init__(pool_size, stride, padding)
        #: (kh kw, C, H', W', N): True where the window's first maximum is at that offset
        self._first_max: NDArray[np.bool_] | None = None

    def forward(self, X: Array, training: bool) -> Array:
        g = self._built()
        alloc: Allocator = self._scratch if training else _fresh
        Xp = g.pad(frame(X), -np.inf, alloc)
        offsets = g.offsets()
        Yf = alloc("Y", (*self.output_shape, len(X)), X.dtype)
        _combine_windows(np.maximum, Xp, g, Yf)
        if not training:
            self._first_max = None
            return images(Yf)
        # One mask per offset, each ``(equal to the maximum) and not (taken by an earlier
        # offset)``: elementwise passes over the whole batch, unlike an argmax along a short
        # window axis (slow in NumPy) or a masked copy (slower still).
        first_max = alloc("first_max", (len(offsets), *Yf.shape), np.bool_)
        taken = alloc("taken", Yf.shape, np.bool_)
        for k, (i, j) in enumerate(offsets):
            mask = first_max[k]
            np.equal(g.view(Xp, i, j), Yf, out=mask)
            if k:
                np.greater(mask, taken, out=mask)  # for booleans, a > b is a and not b
            if k == 0:
                np.copyto(taken, mask)
            elif k < len(offsets) - 1:
                np.logical_or(taken, mask, out=taken)
        self._first_max = first_max
        return images(Yf)

    def backward(self, dY: Array) -> Array | None:
        first_max, g = self._first_max, self._geometry
        assert first_max is not None and g is not None, \
            "backward called before a training forward"
        if not self.needs_input_grad:
            return None
        dYf = frame(dY)
        dXp = self._scratch("dXp", (g.channels, *g.padded, len(dY)), dY.dtype)
        if g.tiled:  # the common case, written straight into place
            for k, (i, j) in enumerate(g.offsets()):
                np.multiply(dYf, first_max[k], out=g.view(dXp, i, j))
            return images(g.interior(dXp))
        picked = self._scratch("picked", dYf.shape, dY.dtype)
        kw = g.window[1]
        _add_windows(dXp, g,
                     lambda i, j: np.multiply(dYf, first_max[i * kw + j], out=picked))
        return images(g.interior(dXp))


class AvgPool2D(_Pool2D):
    """Average pooling: ``Y[n, c, y, x] = sum_{i, j} Xp[n, c, y sh + i, x sw + j] / m[y, x]``.

    ``X`` is ``(N, C, H, W)`` and ``Y`` is ``(N, C, H', W')``; ``m[y, x]`` counts the
    window's positions inside the input: padding is left out of the average, as in
    TensorFlow's ``"SAME"`` pooling and PyTorch's ``count_include_pad=False``. Backward:
    ``dXp[n, c, y sh + i, x sw + j] += dY[n, c, y, x] / m[y, x]``.

    Parameters are those of ``MaxPool2D``.
    """

    kind = "avg_pool2d"

    def __init__(self, pool_size: Size = 2, stride: Size | None = None,
                 padding: Padding = "valid") -> None:
        super().__init__(pool_size, stride, padding)
        self._inv_count: Array | None = None  # (H', W', 1): 1 / m, to broadcast on frames

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        g = self._built()
        inside = []  # per axis: how many positions of each window are not padding
        for n, s, (before, _), k, size in zip(g.out, g.stride, g.pads, g.window, g.size,
                                             strict=True):
            starts = np.arange(n) * s - before
            inside.append(np.minimum(starts + k, size) - np.maximum(starts, 0))
        self._inv_count = (1.0 / np.outer(*inside))[:, :, None].astype(dtype)
        return shape

    def forward(self, X: Array, training: bool) -> Array:
        g, inv_count = self._built(), self._inv_count
        assert inv_count is not None
        alloc: Allocator = self._scratch if training else _fresh
        Xp = g.pad(frame(X), 0.0, alloc)
        Yf = alloc("Y", (*self.output_shape, len(X)), X.dtype)
        _combine_windows(np.add, Xp, g, Yf)
        Yf *= inv_count.astype(X.dtype, copy=False)
        return images(Yf)

    def backward(self, dY: Array) -> Array | None:
        g, inv_count = self._built(), self._inv_count
        assert inv_count is not None
        if not self.needs_input_grad:
            return None
        dYf = frame(dY)
        share = np.multiply(dYf, inv_count, out=self._scratch("share", dYf.shape, dY.dtype))
        dXp = self._scratch("dXp", (g.channels, *g.padded, len(dY)), dY.dtype)
        _add_windows(dXp, g, lambda i, j: share)
        return images(g.interior(dXp))


class GlobalAvgPool2D(Layer):
    """The mean of each channel over the whole image: ``(N, C, H, W) -> (N, C)``.

    ``Y[n, c] = sum_{y, x} X[n, c, y, x] / (H W)``; backward ``dX[n, c, y, x] = dY[n, c] / (H W)``.
    """

    kind = "global_avg_pool2d"

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(f"{self.kind} expects (channels, height, width) inputs, got "
                             f"shape {tuple(input_shape)}")
        return (input_shape[0],)

    def forward(self, X: Array, training: bool) -> Array:
        Y = (self._scratch("Y", X.shape[:2], X.dtype) if training
             else np.empty(X.shape[:2], dtype=X.dtype))
        np.mean(frame(X), axis=(1, 2), out=Y.T)
        return Y

    def backward(self, dY: Array) -> Array | None:
        if not self.needs_input_grad:
            return None
        C, H, W = self.input_shape
        dXf = self._scratch("dX", (C, H, W, len(dY)), dY.dtype)
        np.multiply(dY.T[:, None, None, :], dY.dtype.type(1.0 / (H * W)), out=dXf)
        return images(dXf)


class Flatten(Layer):
    """``(N, *shape) -> (N, prod(shape))`` in row-major order (for ``(C, H, W)``: channel,
    then row, then column); backward reshapes ``dY`` back. No copy when NumPy can reshape
    without one, as it can for the frames these layers return.
    """

    kind = "flatten"
    # The output may be a view of the input, which the layer before can keep for its own
    # backward pass (an activation keeps its output): declaring a cached output stops the
    # next layer from overwriting it in place.
    caches_output = True

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def forward(self, X: Array, training: bool) -> Array:
        return X.reshape(len(X), -1)

    def backward(self, dY: Array) -> Array | None:
        if not self.needs_input_grad:
            return None
        return dY.reshape(len(dY), *self.input_shape)


class Reshape(Layer):
    """``(N, *shape) -> (N, *target)`` with the same entries in row-major order, e.g. a
    generator's dense output ``(N, C*H*W)`` into images ``(N, C, H, W)``; backward reshapes
    ``dY`` back. A view, like ``Flatten``'s."""

    kind = "reshape"
    caches_output = True  # the output is a view of the input (see Flatten)

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        if not shape or not all(isinstance(v, Integral) and not isinstance(v, bool) and v >= 1
                                for v in shape):
            raise ValueError(f"reshape shape must be a list of positive ints, got {shape!r}")
        self.shape = tuple(int(v) for v in shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if math.prod(input_shape) != math.prod(self.shape):
            raise ValueError(f"cannot reshape inputs of shape {tuple(input_shape)} "
                             f"({math.prod(input_shape)} values) to {self.shape} "
                             f"({math.prod(self.shape)} values)")
        return self.shape

    def forward(self, X: Array, training: bool) -> Array:
        return X.reshape(len(X), *self.shape)

    def backward(self, dY: Array) -> Array | None:
        if not self.needs_input_grad:
            return None
        return dY.reshape(len(dY), *self.input_shape)

    def settings(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}


class Upsample2D(Layer):
    """Nearest-neighbour upsampling: each pixel becomes a ``size`` block,
    ``(N, C, H, W) -> (N, C, sh H, sw W)`` with ``Y[n, c, y, x] = X[n, c, y // sh, x // sw]``.

    Backward sums each block: ``dX[n, c, i, j] = sum_{a < sh, b < sw} dY[n, c, i sh + a,
    j sw + b]``. How a generator grows small feature maps into an image.
    """

    kind = "upsample2d"

    def __init__(self, size: Size = 2) -> None:
        super().__init__()
        self.size = _pair(size, "upsample2d size")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(f"{self.kind} expects (channels, height, width) inputs, got "
                             f"shape {tuple(input_shape)}")
        C, H, W = input_shape
        return (C, H * self.size[0], W * self.size[1])

    def forward(self, X: Array, training: bool) -> Array:
        N, C, H, W = X.shape
        sh, sw = self.size
        shape = (N, C, H * sh, W * sw)
        Y = self._scratch("Y", shape, X.dtype) if training else np.empty(shape, X.dtype)
        # a view of Y with each block's rows and columns as axes of their own
        np.copyto(Y.reshape(N, C, H, sh, W, sw), X[:, :, :, None, :, None])
        return Y

    def backward(self, dY: Array) -> Array | None:
        if not self.needs_input_grad:
            return None
        N, C, H, W = (len(dY), *self.input_shape)
        sh, sw = self.size
        dX = self._scratch("dX", (N, C, H, W), dY.dtype)
        np.add.reduce(dY.reshape(N, C, H, sh, W, sw), axis=(3, 5), out=dX)
        return dX

    def settings(self) -> dict[str, Any]:
        return {"size": list(self.size)}


# layers.py cannot import this module (these classes derive from its Layer), so the table
# is completed here; bpcli.nn imports this module, so any import of bpcli.nn.layers sees the
# whole table.
LAYERS.update({cls.kind: cls for cls in (Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D,
                                         Flatten, Reshape, Upsample2D)})
