"""Check analytic gradients against central finite differences, tensor by tensor.

Two modes: entry by entry (each checked entry costs two loss evaluations), and
directional (``directions=k``: for k random unit directions ``u`` per tensor, compare
``grad . u`` with ``(L(w + eps u) - L(w - eps u)) / (2 eps)``, as PyTorch's fast gradcheck
does), whose cost does not grow with the tensor's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bpcli.nn.gan import Gan
from bpcli.nn.network import Network

Array = NDArray[np.floating]


@dataclass(frozen=True)
class TensorCheck:
    """The comparison for one tensor: a parameter, or the network's input."""

    layer: str  # e.g. "0 dense", or "input"
    name: str  # parameter key, e.g. "W"; "X" for the input
    shape: tuple[int, ...]
    checked: int  # entries compared
    total: int  # entries in the tensor
    max_abs_error: float
    max_rel_error: float
    passed: bool
    directional: bool = False  # ``checked`` counts random directions, not entries


def check_gradients(
    network: Network,
    X: Array,
    Y: NDArray,
    *,
    eps: float = 1e-6,
    atol: float = 1e-8,
    rtol: float = 1e-5,
    max_entries: int | None = None,
    directions: int | None = None,
    rng: np.random.Generator | None = None,
    on_tensor: Callable[[int, int, str], None] | None = None,
) -> list[TensorCheck]:
    """Compare ``network``'s backward pass with ``(L(w + eps) - L(w - eps)) / (2 eps)``.

    An entry passes when ``|analytic - numeric| <= atol + rtol * |numeric|``. Tensors with
    more than ``max_entries`` entries are checked at that many entries drawn by ``rng``.
    With ``directions``, each tensor is checked along that many random directions instead.
    Stochastic layers hold their random draws fixed for the whole check. Use a float64
    network: float32 rounding swamps the differences. ``on_tensor(i, n, name)`` is told
    before the i-th of the n tensors is checked (e.g. ``3, 11, "2 conv2d W"``): a big
    network takes a while.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    X = np.array(X, dtype=network.dtype)
    first = network.layers[0]
    first.needs_input_grad = True
    try:
        with network.held_randomness():
            network.compute_gradients(X, Y)
            analytic = {name: g.copy() for name, _, g in network.parameters()}
            input_grad = network.input_grad.copy() if network.input_grad is not None else None

            def loss() -> float:
                return network.loss_value(X, Y, training=True)

            def check(layer: str, key: str, tensor: Array, grad: Array) -> TensorCheck:
                if directions is not None:
                    pair = _directional_derivatives(tensor, grad, loss, eps, directions, rng)
                else:
                    pair = _entry_derivatives(tensor, grad, loss, eps, max_entries, rng)
                return _verdict(layer, key, tensor, *pair, atol, rtol, directions is not None)

            tensors = []
            for name, param, _ in network.parameters():
                index, key = name.split(".", 1)
                layer = network.layer_name(int(index))
                tensors.append((layer, key, param, analytic[name]))
            if not first.takes_ids():  # token ids have no gradient
                tensors.append(("input", "X", X, input_grad))
            results = []
            for i, (layer, key, tensor, grad) in enumerate(tensors, 1):
                if on_tensor is not None:
                    on_tensor(i, len(tensors), f"{layer} {key}")
                results.append(check(layer, key, tensor, grad))
    finally:
        first.needs_input_grad = False
    return results


def check_generator_gradients(
    gan: Gan,
    noise: Array,
    *,
    eps: float = 1e-6,
    atol: float = 1e-8,
    rtol: float = 1e-5,
    max_entries: int | None = None,
    directions: int | None = None,
    rng: np.random.Generator | None = None,
    on_tensor: Callable[[int, int, str], None] | None = None,
) -> list[TensorCheck]:
    """Compare a GAN generator's gradients, which flow back through the discriminator
    (``Gan.generator_gradients_on``), with central differences of the generator's loss
    ``L_G(noise)``; as ``check_gradients`` otherwise. Layers are named
    ``"generator 0 dense"``."""
    rng = rng if rng is not None else np.random.default_rng(0)
    G, D = gan.generator, gan.discriminator
    noise = np.array(noise, dtype=G.dtype)
    with G.held_randomness(), D.held_randomness():
        gan.generator_gradients_on(noise)
        tensors = [(f"generator {G.layer_name(int(name.split('.')[0]))}",
                    name.split(".", 1)[1], param, grad.copy())
                   for name, param, grad in G.parameters()]

        def loss() -> float:
            return gan.generator_loss(noise)

        results = []
        for i, (layer, key, tensor, grad) in enumerate(tensors, 1):
            if on_tensor is not None:
                on_tensor(i, len(tensors), f"{layer} {key}")
            if directions is not None:
                pair = _directional_derivatives(tensor, grad, loss, eps, directions, rng)
            else:
                pair = _entry_derivatives(tensor, grad, loss, eps, max_entries, rng)
            results.append(_verdict(layer, key, tensor, *pair, atol, rtol,
                                    directions is not None))
    return results


def _entry_derivatives(
    tensor: Array,
    analytic: Array,
    loss: Callable[[], float],
    eps: float,
    max_entries: int | None,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Analytic and central-difference derivatives at (a sample of) the tensor's entries."""
    flat = tensor.reshape(-1)  # a view: perturbing it perturbs the tensor
    total = flat.size
    if max_entries is not None and total > max_entries:
        indices = np.sort(rng.choice(total, size=max_entries, replace=False))
    else:
        indices = np.arange(total)
    numeric = np.empty(len(indices))
    for j, i in enumerate(indices):
        original = flat[i]
        flat[i] = original + eps
        plus = loss()
        flat[i] = original - eps
        minus = loss()
        flat[i] = original
        numeric[j] = (plus - minus) / (2 * eps)
    return analytic.reshape(-1)[indices].astype(np.float64), numeric


def _directional_derivatives(
    tensor: Array,
    analytic: Array,
    loss: Callable[[], float],
    eps: float,
    directions: int,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``grad . u`` and its central difference along random unit directions ``u``."""
    original = tensor.copy()
    exact = np.empty(directions)
    numeric = np.empty(directions)
    for k in range(directions):
        u = rng.standard_normal(tensor.shape)
        u /= np.linalg.norm(u)
        np.add(original, eps * u, out=tensor)
        plus = loss()
        np.subtract(original, eps * u, out=tensor)
        minus = loss()
        tensor[...] = original
        numeric[k] = (plus - minus) / (2 * eps)
        exact[k] = float(np.vdot(analytic, u))
    return exact, numeric


def _verdict(layer: str, name: str, tensor: Array, exact: NDArray[np.float64],
             numeric: NDArray[np.float64], atol: float, rtol: float,
             directional: bool) -> TensorCheck:
    abs_err = np.abs(exact - numeric)
    scale = np.maximum(np.abs(exact), np.abs(numeric))
    rel_err = np.divide(abs_err, scale, out=np.zeros_like(abs_err), where=scale > 0)
    return TensorCheck(
        layer=layer,
        name=name,
        shape=tuple(tensor.shape),
        checked=len(exact),
        total=tensor.size,
        max_abs_error=float(abs_err.max(initial=0.0)),
        max_rel_error=float(rel_err.max(initial=0.0)),
        passed=bool(np.all(abs_err <= atol + rtol * np.abs(numeric))),
        directional=directional,
    )
