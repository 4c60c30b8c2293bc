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
from numpy.typing import DTypeLike, NDArray

from bpcli.nn.init import make_initializer
from bpcli.nn.layers import LAYERS, Array, Layer, Shape
from bpcli.nn.sequence import sequence_mask


def _sigmoid_in_place(x: Array) -> None:
    """σ(x) = (tanh(x / 2) + 1) / 2: stable for any x, and no new arrays."""
    x *= 0.5
    np.tanh(x, out=x)
    x += 1.0
    x *= 0.5


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

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(f"{self.kind} expects sequences (length, features), got shape "
                             f"{input_shape}")
        if self.return_sequences:
            return (int(input_shape[0]), self.units)
        return (self.units + self.side_width(),)

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

    def _positions(self, X: Array) -> tuple[Array, NDArray[np.bool_], int]:
        """``(m, every, steps)``: ``m`` 1.0 at real positions and 0.0 at padding, time
        first (length, batch, 1); ``every[t]`` whether position t is real in every row (no
        blending needed); and how many positions hold a real word in some row: after them
        every state is carried over, so the loops stop there."""
        mask = sequence_mask(self)
        if mask is None:
            length = X.shape[1]
            return (np.ones((length, len(X), 1), dtype=X.dtype),
                    np.ones(length, dtype=np.bool_), length)
        anywhere = np.flatnonzero(mask.any(axis=0))
        steps = int(anywhere[-1]) + 1 if len(anywhere) else 0
        return mask.T[..., None].astype(X.dtype), np.asarray(mask.all(axis=0)), steps

    def _output(self, states: Array) -> Array:
        """``states`` time first (length + 1, batch, units), the initial state first."""
        if self.return_sequences:
            return states[1:].transpose(1, 0, 2).copy()
        last = states[-1]
        side = self.side_features()
        return last.copy() if side is None else np.concatenate([last, side], axis=1)

    def _state_gradients(self, dY: Array) -> Array:
        """The output's gradient per position's state, time first: (length, batch,
        units)."""
        n, length = len(dY), self.input_shape[0]
        if self.return_sequences:
            return np.ascontiguousarray(dY.transpose(1, 0, 2))
        dH = np.zeros((length, n, self.units), dtype=dY.dtype)
        dH[-1] = dY[:, : self.units]
        return dH

    def _weight_gradients(self, Xt: Array, states: Array, dXW: Array, dHU: Array,
                          bias_of_hU: str | None) -> Array | None:
        """From the gradients of each step's input part ``dXW`` and recurrent part
        ``dHU`` (time first), the weights' gradients and the input's (batch first)."""
        width = dXW.shape[-1]
        features = Xt.shape[-1]
        self.grads["W"][...] = Xt.reshape(-1, features).T @ dXW.reshape(-1, width)
        self.grads["U"][...] = states[:-1].reshape(-1, self.units).T @ dHU.reshape(-1, width)
        self.grads["b"][...] = dXW.sum(axis=(0, 1))
        if bias_of_hU is not None:
            self.grads[bias_of_hU][...] = dHU.sum(axis=(0, 1))
        if not self.needs_input_grad:
            return None
        dX: Array = (dXW @ self.params["W"].T).transpose(1, 0, 2)
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
        # time first inside: each step then reads and writes contiguous (batch, units) rows
        n, length, _ = X.shape
        H = self.units
        W, U, b, c = (self.params[k] for k in ("W", "U", "b", "c"))
        Xt = np.ascontiguousarray(X.transpose(1, 0, 2))
        XW = Xt @ W + b  # every position's input part at once: (length, n, 3H)
        m, every, steps = self._positions(X)
        states = np.zeros((length + 1, n, H), dtype=X.dtype)
        rz = np.empty((length, n, 2 * H), dtype=X.dtype)  # the r and z gates
        cands = np.empty((length, n, H), dtype=X.dtype)  # n, the candidate state
        hn = np.empty((length, n, H), dtype=X.dtype)  # h U_n + c_n, before the reset
        hU = np.empty((n, 3 * H), dtype=X.dtype)
        for t in range(steps):
            h = states[t]
            np.matmul(h, U, out=hU)
            hU += c
            gate = rz[t]
            np.add(XW[t, :, : 2 * H], hU[:, : 2 * H], out=gate)
            _sigmoid_in_place(gate)
            r, z = gate[:, :H], gate[:, H:]
            hn[t] = hU[:, 2 * H :]
            cand = cands[t]
            np.multiply(r, hn[t], out=cand)
            cand += XW[t, :, 2 * H :]
            np.tanh(cand, out=cand)
            new = states[t + 1]  # (1 - z) * cand + z * h
            np.subtract(h, cand, out=new)
            new *= z
            new += cand
            if not every[t]:  # padding carries the state over
                np.copyto(new, h, where=m[t] == 0)
        states[steps + 1 :] = states[steps]
        if training:
            self._cache = (Xt, m, every, steps, states, rz, cands, hn)
        return self._output(states)

    def backward(self, dY: Array) -> Array | None:
        Xt, m, every, steps, states, rz, cands, hn = self._cache
        length, n, _ = Xt.shape
        H = self.units
        UT = np.ascontiguousarray(self.params["U"].T)
        dH = self._state_gradients(dY)
        # what each step's gradients are multiplied by, for every step at once
        R, Z, C = rz[:steps, :, :H], rz[:steps, :, H:], cands[:steps]
        to_cand = (1 - Z) * (1 - C * C)
        to_z = (states[:steps] - C) * Z * (1 - Z)
        to_r = hn[:steps] * R * (1 - R)
        dXW = np.zeros((length, n, 3 * H), dtype=dY.dtype)  # gradients of the input part
        dHU = np.zeros((length, n, 3 * H), dtype=dY.dtype)  # ... and of h U + c
        dh = dH[steps:].sum(axis=0)  # positions after the last word carry the state
        for t in reversed(range(steps)):
            dh += dH[t]
            dnew = dh if every[t] else m[t] * dh
            d, e = dXW[t], dHU[t]
            np.multiply(dnew, to_cand[t], out=d[:, 2 * H :])
            np.multiply(dnew, to_z[t], out=d[:, H : 2 * H])
            np.multiply(d[:, 2 * H :], to_r[t], out=d[:, :H])
            e[:, : 2 * H] = d[:, : 2 * H]
            np.multiply(d[:, 2 * H :], R[t], out=e[:, 2 * H :])
            carried = dh if not every[t] else None
            dh = dnew * Z[t]
            dh += e @ UT
            if carried is not None:
                dh += (1 - m[t]) * carried
        return self._weight_gradients(Xt, states, dXW, dHU, bias_of_hU="c")


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

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        b = np.zeros(4 * self.units, dtype=dtype)
        b[self.units : 2 * self.units] = 1.0
        self.params = {**self._build_weights(int(input_shape[1]), rng, dtype), "b": b}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return shape

    def _order(self) -> NDArray[np.intp]:
        """Inside a step the gates are in the order o, i, f, g (the parameters keep
        PyTorch's i, f, g, o): the three σ gates are then one block, and the three the
        cell's gradient multiplies (i, f, g) another."""
        H = self.units
        return np.r_[3 * H : 4 * H, 0 : 3 * H]

    def forward(self, X: Array, training: bool) -> Array:
        # Units first inside a step, (units, batch): every gate is a contiguous block of
        # rows, and each step's dozen NumPy calls read and write whole blocks.
        n, length, _ = X.shape
        H = self.units
        order = self._order()
        Xt = np.ascontiguousarray(X.transpose(1, 0, 2))  # (length, n, features)
        # σ(x) = (1 + tanh(x / 2)) / 2: with the σ gates' inputs halved ahead, each step
        # takes one tanh over all four gates
        half = np.ones(4 * H, dtype=X.dtype)
        half[: 3 * H] = 0.5
        W, U, b = (self.params[k][..., order] * half for k in ("W", "U", "b"))
        # training reuses its big arrays from step to step (fresh ones cost page faults
        # that rival the products); inference allocates
        new = self._scratch if training else (lambda _, shape, dtype: np.empty(shape, dtype))
        XW = new("XW", (length, 4 * H, n), X.dtype)
        np.matmul(np.ascontiguousarray(W.T), Xt.transpose(0, 2, 1), out=XW)
        XW += b[:, None]
        UT = np.ascontiguousarray(U.T)  # (4H, H)
        m, every, steps = self._positions(X)
        real = m.transpose(0, 2, 1)  # (length, 1, n)
        states = new("states", (length + 1, H, n), X.dtype)
        cells = new("cells", (length + 1, H, n), X.dtype)
        states[0] = 0
        cells[0] = 0
        acts = new("acts", (length, 4 * H, n), X.dtype)  # o, i, f, g after σ/tanh
        tanh_cells = new("tanh_cells", (length, H, n), X.dtype)
        ig = np.empty((H, n), dtype=X.dtype)
        for t in range(steps):
            h, cell = states[t], cells[t]
            a = acts[t]
            np.matmul(UT, h, out=a)
            a += XW[t]
            np.tanh(a, out=a)
            sigmoids = a[: 3 * H]
            sigmoids *= 0.5
            sigmoids += 0.5
            o, i, f, g = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
            new_cell = cells[t + 1]
            np.multiply(f, cell, out=new_cell)
            np.multiply(i, g, out=ig)
            new_cell += ig
            np.tanh(new_cell, out=tanh_cells[t])
            np.multiply(o, tanh_cells[t], out=states[t + 1])
            if not every[t]:  # padding carries the state over
                padding = np.broadcast_to(real[t] == 0, cell.shape)
                np.copyto(new_cell, cell, where=padding)
                np.copyto(states[t + 1], h, where=padding)
        states[steps + 1 :] = states[steps]  # (cells after the last word are never read)
        time_first = states.transpose(0, 2, 1)  # (length + 1, n, H)
        if training:
            self._lstm_cache = (Xt, real, every, steps, states, cells, acts, tanh_cells)
        return self._output(time_first)

    def backward(self, dY: Array) -> Array | None:
        Xt, real, every, steps, states, cells, acts, tanh_cells = self._lstm_cache
        length, n, _ = Xt.shape
        H = self.units
        order = self._order()
        U = np.ascontiguousarray(self.params["U"][:, order])  # (H, 4H), gates o, i, f, g
        if self.return_sequences:
            dH = np.ascontiguousarray(dY.transpose(1, 2, 0))  # (length, H, n)
        else:
            dH = np.zeros((length, H, n), dtype=dY.dtype)
            dH[-1] = dY[:, :H].T
        # what each step's gradients are multiplied by, for every step at once
        gates = acts[:steps]
        go, gi = gates[:, :H], gates[:, H : 2 * H]
        gf, gg = gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
        TC = tanh_cells[:steps]
        to_cell = go * (1 - TC * TC)
        to_o = TC * go * (1 - go)
        # the cell's gradient times these gives the i, f and g gates' (one product a step)
        to_ifg = np.concatenate([gg * gi * (1 - gi), cells[:steps] * gf * (1 - gf),
                                 gi * (1 - gg * gg)], axis=1)  # (steps, 3H, n)
        dG = self._scratch("dG", (steps, 4 * H, n), dY.dtype)  # the gates' inputs' gradients
        dh = dH[steps:].sum(axis=0)  # positions after the last word carry the state
        dc = np.zeros((H, n), dtype=dY.dtype)
        for t in reversed(range(steps)):
            dh += dH[t]
            if every[t]:
                dnew = dh
                dcell = dh * to_cell[t]
                dcell += dc
            else:  # at padding the gradients pass to the carried state untouched
                dnew = real[t] * dh
                dcell = real[t] * dc + dnew * to_cell[t]
            d = dG[t]
            np.multiply(dnew, to_o[t], out=d[:H])
            np.multiply(dcell, to_ifg[t].reshape(3, H, n), out=d[H:].reshape(3, H, n))
            if every[t]:
                dc = dcell * gf[t]
                dh = U @ d
            else:
                dc = (1 - real[t]) * dc + dcell * gf[t]
                dh = (1 - real[t]) * dh + U @ d
        # the weights' gradients, summed over the steps' products, in PyTorch's gate order
        back = np.argsort(order)
        G = dG.transpose(1, 0, 2).reshape(4 * H, steps * n)  # one product over the steps
        X_rows = Xt[:steps].reshape(steps * n, Xt.shape[-1])  # (no -1: steps may be 0)
        self.grads["W"][...] = (G @ X_rows)[back].T  # (features, 4H)
        H_rows = np.ascontiguousarray(states[:steps].transpose(1, 0, 2)).reshape(H, -1)
        self.grads["U"][...] = (H_rows @ G.T)[:, back]
        self.grads["b"][...] = G.sum(axis=1)[back]
        if not self.needs_input_grad:
            return None
        W = self.params["W"][:, order]  # (features, 4H)
        dX = np.zeros((n, length, W.shape[0]), dtype=dY.dtype)
        dX[:, :steps] = (W @ G).reshape(W.shape[0], steps, n).transpose(2, 1, 0)
        return dX


LAYERS.update({cls.kind: cls for cls in (GRU, LSTM)})
