"""Recurrent layers, trained by backpropagation through time: ``GRU`` and ``LSTM``.

Inputs are sequences ``(batch, length, features)``; the output is the last state
``(batch, units)`` or, with ``return_sequences``, every state ``(batch, length, units)``.
Both follow PyTorch's equations and gate order, so their weights map one to one onto
``torch.nn.GRU``/``torch.nn.LSTM`` (transposed: here ``W`` is ``(features, gates * units)``
and ``U`` is ``(units, gates * units)``, so that a step is ``X_t @ W + h @ U``).

Padding (see ``bpcli.nn.sequence``): at a padding position the state is carried over
unchanged, so the last state is the state after the last real token, and a row with no
real token ends in the zero initial state. The input products ``X @ W`` of every position
are one matrix product before the loop, and the products of the states with ``dU`` one
after it; only the step-to-step recursion is a loop over positions, vectorised over the
batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from bpcli.nn.init import make_initializer
from bpcli.nn.layers import LAYERS, Array, Layer, Shape
from bpcli.nn.sequence import sequence_mask, side_features, side_width


def _sigmoid(x: Array) -> Array:
    out: Array = 0.5 * (np.tanh(0.5 * x) + 1.0)  # stable for any x
    return out


class _Recurrent(Layer):
    """What GRU and LSTM share: shapes, parameters, masks and the output's form."""

    gates: int

    def __init__(self, units: int, return_sequences: bool = False,
                 init: str = "glorot_uniform", recurrent_init: str = "orthogonal") -> None:
        super().__init__()
        if not isinstance(units, int | np.integer) or isinstance(units, bool) or units < 1:
            raise ValueError(f"{self.kind} units must be a positive int, got {units!r}")
        self.units = int(units)
        self.return_sequences = bool(return_sequences)
        self.init = init
        self.recurrent_init = recurrent_init
        self._initializer = make_initializer(init)
        self._recurrent_initializer = make_initializer(recurrent_init)
        self._mask: Array | None = None  # (batch, length, 1), 1.0 at real positions

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(f"{self.kind} expects sequences (length, features), got shape "
                             f"{input_shape}")
        if self.return_sequences:
            return (int(input_shape[0]), self.units)
        return (self.units + side_width(self),)

    def count_params(self, input_shape: Shape) -> int:
        width = self.gates * self.units
        return (int(input_shape[-1]) + self.units) * width + self._bias_count() * width

    def _bias_count(self) -> int:
        return 1

    def _build_weights(self, features: int, rng: np.random.Generator,
                       dtype: DTypeLike) -> dict[str, Array]:
        width = self.gates * self.units
        return {"W": self._initializer((features, width), rng, dtype),
                "U": self._recurrent_initializer((self.units, width), rng, dtype)}

    def next_mask_source(self) -> Layer | None:
        return self.mask_source if self.return_sequences else None

    def _real(self, X: Array) -> Array:
        """1.0 at real positions, 0.0 at padding: (batch, length, 1)."""
        mask = sequence_mask(self)
        if mask is None:
            return np.ones((*X.shape[:2], 1), dtype=X.dtype)
        return mask[..., None].astype(X.dtype)

    def _output(self, states: Array) -> Array:
        """``states`` (batch, length + 1, units), the initial state first."""
        if self.return_sequences:
            return states[:, 1:].copy()
        last = states[:, -1]
        side = side_features(self)
        return last.copy() if side is None else np.concatenate([last, side], axis=1)

    def _state_gradients(self, dY: Array) -> Array:
        """The output's gradient per position's state: (batch, length, units)."""
        n, length = len(dY), self.input_shape[0]
        if self.return_sequences:
            return dY
        dH = np.zeros((n, length, self.units), dtype=dY.dtype)
        dH[:, -1] = dY[:, : self.units]
        return dH

    def _weight_gradients(self, X: Array, states: Array, dXW: Array, dHU: Array,
                          bias_of_hU: str | None) -> Array | None:
        width = dXW.shape[-1]
        features = X.shape[-1]
        self.grads["W"][...] = X.reshape(-1, features).T @ dXW.reshape(-1, width)
        self.grads["U"][...] = states[:, :-1].reshape(-1, self.units).T @ dHU.reshape(-1, width)
        self.grads["b"][...] = dXW.sum(axis=(0, 1))
        if bias_of_hU is not None:
            self.grads[bias_of_hU][...] = dHU.sum(axis=(0, 1))
        if not self.needs_input_grad:
            return None
        dX: Array = dXW @ self.params["W"].T
        return dX

    def settings(self) -> dict[str, Any]:
        return {"units": self.units,
                "return_sequences": self.return_sequences, "init": self.init,
                "recurrent_init": self.recurrent_init}


class GRU(_Recurrent):
    """Gated recurrent unit, as PyTorch's (reset gate applied after ``U``):

    ``r = σ(x W_r + b_r + h U_r + c_r)``, ``z = σ(x W_z + b_z + h U_z + c_z)``,
    ``n = tanh(x W_n + b_n + r ⊙ (h U_n + c_n))``, ``h' = (1 − z) ⊙ n + z ⊙ h``,

    with ``b`` the input bias and ``c`` the recurrent bias, each ``(3 * units,)`` in the
    order r, z, n.
    """

    kind = "gru"
    gates = 3

    def _bias_count(self) -> int:
        return 2

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        width = self.gates * self.units
        self.params = {**self._build_weights(int(input_shape[1]), rng, dtype),
                       "b": np.zeros(width, dtype=dtype), "c": np.zeros(width, dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return shape

    def forward(self, X: Array, training: bool) -> Array:
        n, length, _ = X.shape
        H = self.units
        W, U, b, c = (self.params[k] for k in ("W", "U", "b", "c"))
        XW = X @ W + b  # every position's input part at once: (n, length, 3H)
        m = self._real(X)
        states = np.zeros((n, length + 1, H), dtype=X.dtype)
        gates = np.empty((n, length, 3, H), dtype=X.dtype)  # r, z, n
        hn = np.empty((n, length, H), dtype=X.dtype)  # h U_n + c_n, before the reset
        for t in range(length):
            h = states[:, t]
            hU = h @ U + c
            rz = _sigmoid(XW[:, t, : 2 * H] + hU[:, : 2 * H])
            r, z = rz[:, :H], rz[:, H:]
            cand = np.tanh(XW[:, t, 2 * H :] + r * hU[:, 2 * H :])
            new = (1 - z) * cand + z * h
            states[:, t + 1] = m[:, t] * new + (1 - m[:, t]) * h
            if training:
                gates[:, t, 0], gates[:, t, 1], gates[:, t, 2] = r, z, cand
                hn[:, t] = hU[:, 2 * H :]
        if training:
            self._cache = (X, m, states, gates, hn)
        return self._output(states)

    def backward(self, dY: Array) -> Array | None:
        X, m, states, gates, hn = self._cache
        n, length, _ = X.shape
        H = self.units
        U = self.params["U"]
        dH = self._state_gradients(dY)
        dXW = np.empty((n, length, 3 * H), dtype=dY.dtype)  # gradients of the input part
        dHU = np.empty((n, length, 3 * H), dtype=dY.dtype)  # ... and of h U + c
        dh = np.zeros((n, H), dtype=dY.dtype)
        for t in reversed(range(length)):
            dh = dh + dH[:, t]
            h = states[:, t]
            r, z, cand = gates[:, t, 0], gates[:, t, 1], gates[:, t, 2]
            dnew = m[:, t] * dh
            dcand_pre = dnew * (1 - z) * (1 - cand * cand)
            dz_pre = dnew * (h - cand) * z * (1 - z)
            dr_pre = dcand_pre * hn[:, t] * r * (1 - r)
            dXW[:, t, :H], dXW[:, t, H : 2 * H], dXW[:, t, 2 * H :] = dr_pre, dz_pre, dcand_pre
            dHU[:, t, :H], dHU[:, t, H : 2 * H] = dr_pre, dz_pre
            dHU[:, t, 2 * H :] = dcand_pre * r
            dh = (1 - m[:, t]) * dh + dnew * z + dHU[:, t] @ U.T
        return self._weight_gradients(X, states, dXW, dHU, bias_of_hU="c")

class LSTM(_Recurrent):
    """Long short-term memory, as PyTorch's (gates i, f, g, o):

    ``i = σ(x W_i + h U_i + b_i)``, ``f = σ(…_f)``, ``g = tanh(…_g)``, ``o = σ(…_o)``,
    ``c' = f ⊙ c + i ⊙ g``, ``h' = o ⊙ tanh(c')``,

    with one bias ``b`` of ``(4 * units,)`` (PyTorch's two biases add up to it), its forget
    part starting at 1 so that early training keeps the cell's memory (Jozefowicz et al.,
    2015; Keras' ``unit_forget_bias``).
    """

    kind = "lstm"
    gates = 4

    def _bias_count(self) -> int:
        return 1

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        b = np.zeros(4 * self.units, dtype=dtype)
        b[self.units : 2 * self.units] = 1.0
        self.params = {**self._build_weights(int(input_shape[1]), rng, dtype), "b": b}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return shape

    def forward(self, X: Array, training: bool) -> Array:
        n, length, _ = X.shape
        H = self.units
        XW = X @ self.params["W"] + self.params["b"]
        U = self.params["U"]
        m = self._real(X)
        states = np.zeros((n, length + 1, H), dtype=X.dtype)
        cells = np.zeros((n, length + 1, H), dtype=X.dtype)
        acts = np.empty((n, length, 4, H), dtype=X.dtype)  # i, f, g, o after σ/tanh
        for t in range(length):
            h, cell = states[:, t], cells[:, t]
            pre = XW[:, t] + h @ U
            ifo = _sigmoid(pre)  # the g quarter is unused: one call beats three slices
            i, f, o = ifo[:, :H], ifo[:, H : 2 * H], ifo[:, 3 * H :]
            g = np.tanh(pre[:, 2 * H : 3 * H])
            new_cell = f * cell + i * g
            new = o * np.tanh(new_cell)
            cells[:, t + 1] = m[:, t] * new_cell + (1 - m[:, t]) * cell
            states[:, t + 1] = m[:, t] * new + (1 - m[:, t]) * h
            if training:
                acts[:, t, 0], acts[:, t, 1], acts[:, t, 2], acts[:, t, 3] = i, f, g, o
        if training:
            self._lstm_cache = (X, m, states, cells, acts)
        return self._output(states)

    def backward(self, dY: Array) -> Array | None:
        X, m, states, cells, acts = self._lstm_cache
        n, length, _ = X.shape
        H = self.units
        U = self.params["U"]
        dH = self._state_gradients(dY)
        dG = np.empty((n, length, 4 * H), dtype=dY.dtype)  # gradients of the gates' inputs
        dh = np.zeros((n, H), dtype=dY.dtype)
        dc = np.zeros((n, H), dtype=dY.dtype)
        for t in reversed(range(length)):
            dh = dh + dH[:, t]
            i, f, g, o = acts[:, t, 0], acts[:, t, 1], acts[:, t, 2], acts[:, t, 3]
            real = m[:, t]
            tanh_cell = np.tanh(f * cells[:, t] + i * g)
            dnew = real * dh
            dcell = real * dc + dnew * o * (1 - tanh_cell * tanh_cell)
            dG[:, t, :H] = dcell * g * i * (1 - i)
            dG[:, t, H : 2 * H] = dcell * cells[:, t] * f * (1 - f)
            dG[:, t, 2 * H : 3 * H] = dcell * i * (1 - g * g)
            dG[:, t, 3 * H :] = dnew * tanh_cell * o * (1 - o)
            dc = (1 - real) * dc + dcell * f
            dh = (1 - real) * dh + dG[:, t] @ U.T
        return self._weight_gradients(X, states, dG, dG, bias_of_hU=None)


LAYERS.update({cls.kind: cls for cls in (GRU, LSTM)})
