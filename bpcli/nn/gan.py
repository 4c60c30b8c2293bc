"""Generative adversarial networks: a generator ``G`` that turns noise into rows, and a
discriminator ``D`` that tells real rows from generated ones, trained against each other
by backpropagation alone.

One training step, as Goodfellow et al. (2014) teach it, with the non-saturating loss:

1. Discriminator: on a batch of real rows ``x`` and as many generated ones ``G(z)``, with
   ``D`` ending in one sigmoid unit fused with binary cross-entropy on its logit ``a``::

       L_D = mean over the 2n rows of BCE(a, t),  t = 1 - s for real rows, 0 for fake

   (``s``: one-sided label smoothing). Only ``D``'s parameters move.
2. Generator: on fresh noise ``z``, ``L_G = mean BCE(D(G(z)), 1) = mean softplus(-a)``:
   maximise ``log D(G(z))`` rather than minimise ``log(1 - D(G(z)))``, whose gradient
   vanishes while ``D`` easily spots fakes. ``dL_G/dG(z)`` is ``D``'s input gradient;
   backpropagating it through ``G`` gives ``G``'s gradients. Only ``G``'s parameters move.

The discriminator takes ``d_steps`` steps per generator step. Both networks' parameters
live in one vector (``share_storage``), so that the training loop's snapshots, best
weights and checkpoints cover both; each has its own optimizer (``OptimizerPair``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from bpcli.nn.activations import sigmoid
from bpcli.nn.layers import LAYERS, Layer, Shape
from bpcli.nn.losses import Loss
from bpcli.nn.network import Network, share_storage
from bpcli.nn.optimizers import Optimizer

Array = NDArray[np.floating]
#: How noise is drawn: name -> (generator, n, width) -> array of float64
NOISES = {
    "normal": lambda rng, n, k: rng.standard_normal((n, k)),
    "uniform": lambda rng, n, k: rng.uniform(-1.0, 1.0, (n, k)),
}
DISCRIMINATOR_LOSS = "binary_cross_entropy"


class NoLoss(Loss):
    """The "loss" of a network that learns only through ``Network.backward`` (a GAN's
    generator, whose loss lives in the discriminator)."""

    name = "none"

    def value(self, P: Array, Y: NDArray) -> float:
        raise TypeError("this network has no loss of its own: backpropagate into it with "
                        "Network.backward")

    def value_and_grad(self, P: Array, Y: NDArray) -> tuple[float, Array]:
        return self.value(P, Y), P


class GroupSoftmax(Layer):
    """A softmax over each group of columns ``[start, stop)``, identity elsewhere: how a
    generator emits a categorical column's one-hot block as probabilities beside numeric
    columns. Shape ``(N, F) -> (N, F)``.

    Within a group, ``Y = softmax(X)`` and ``dX = Y * (dY - sum(dY * Y))``; elsewhere
    ``dX = dY``.
    """

    kind = "group_softmax"
    caches_output = True

    def __init__(self, groups: list[list[int]]) -> None:
        super().__init__()
        self.groups = [(int(a), int(b)) for a, b in groups]
        if any(b - a < 1 for a, b in self.groups):
            raise ValueError(f"group_softmax groups must be non-empty, got {groups!r}")
        self._Y: Array | None = None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1 or any(b > input_shape[0] for _, b in self.groups):
            raise ValueError(f"{self.kind} groups {self.groups} do not fit inputs of shape "
                             f"{tuple(input_shape)}")
        return input_shape

    def forward(self, X: Array, training: bool) -> Array:
        Y = X.copy()
        for a, b in self.groups:
            block = Y[:, a:b]
            block -= block.max(axis=1, keepdims=True)
            np.exp(block, out=block)
            block /= block.sum(axis=1, keepdims=True)
        if training:
            self._Y = Y
        return Y

    def backward(self, dY: Array) -> Array | None:
        assert self._Y is not None, "backward called before forward"
        if not self.needs_input_grad:
            return None
        dX = dY.copy()
        for a, b in self.groups:
            Y = self._Y[:, a:b]
            g = dY[:, a:b]
            dX[:, a:b] = Y * (g - np.sum(g * Y, axis=1, keepdims=True))
        return dX

    def settings(self) -> dict[str, Any]:
        return {"groups": [list(g) for g in self.groups]}


LAYERS[GroupSoftmax.kind] = GroupSoftmax


class OptimizerPair(Optimizer):
    """The generator's and the discriminator's optimizers as one, for the training loop:
    state is both (``generator/...``, ``discriminator/...``); the learning rate is the
    generator's, and setting it (a schedule, a rollback) scales the discriminator's by
    the same factor."""

    name: ClassVar[str] = "gan"

    def __init__(self, generator: Optimizer, discriminator: Optimizer) -> None:
        self.generator, self.discriminator = generator, discriminator
        self._ratio = discriminator.learning_rate / generator.learning_rate
        self.iterations = 0

    @property
    def learning_rate(self) -> float:
        return self.generator.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.generator.learning_rate = value
        self.discriminator.learning_rate = value * self._ratio

    def step(self, params: list[Array], grads: list[Array]) -> None:
        raise TypeError("a GAN steps each network with its own optimizer (GanStep)")

    def state(self) -> dict[str, NDArray]:
        return {**{f"generator/{k}": v for k, v in self.generator.state().items()},
                **{f"discriminator/{k}": v for k, v in self.discriminator.state().items()}}

    def load_state(self, state: dict[str, NDArray]) -> None:
        for prefix, optimizer in (("generator/", self.generator),
                                  ("discriminator/", self.discriminator)):
            optimizer.load_state({k[len(prefix):]: v for k, v in state.items()
                                  if k.startswith(prefix)})


@dataclass
class StepStats:
    """One batch of GAN training: the losses and the discriminator's mean outputs."""

    d_loss: float
    g_loss: float | None  # None when this batch took no generator step
    d_real: float  # mean D(x) on the real rows (probability of "real")
    d_fake: float  # mean D(G(z)) on the generated rows


class Gan:
    """A generator and a discriminator sharing one parameter vector and one random
    generator (``rng``: dropout in either network, and the noise).

    ``generator`` maps noise of width ``noise_size`` to rows shaped like the data;
    ``discriminator`` maps such rows to one logit, its last layer the sigmoid fused with
    binary cross-entropy.
    """

    def __init__(self, generator: Network, discriminator: Network, noise_size: int,
                 noise: str = "normal", label_smoothing: float = 0.0) -> None:
        if discriminator.loss.name != DISCRIMINATOR_LOSS or discriminator.output_shape != (1,):
            raise ValueError("the discriminator must end in one sigmoid unit with binary "
                             "cross-entropy")
        if generator.output_shape != discriminator.input_shape:
            raise ValueError(f"the generator makes rows of shape {generator.output_shape}; "
                             f"the discriminator takes {discriminator.input_shape}")
        if generator.input_shape != (noise_size,):
            raise ValueError(f"the generator takes inputs of shape {generator.input_shape}, "
                             f"not noise of width {noise_size}")
        if noise not in NOISES:
            raise ValueError(f"unknown noise {noise!r}; one of {sorted(NOISES)}")
        if not 0 <= label_smoothing < 0.5:
            raise ValueError(f"label smoothing must be in [0, 0.5), got {label_smoothing}")
        self.generator, self.discriminator = generator, discriminator
        self.noise_size, self.noise, self.label_smoothing = noise_size, noise, label_smoothing
        self.rng = generator.rng
        discriminator.rng = generator.rng
        self.dtype = generator.dtype
        self.flat_params, self.flat_grads = share_storage([generator, discriminator])
        # the generator learns through the discriminator's input gradient
        discriminator.layers[0].needs_input_grad = True

    def draw_noise(self, n: int, rng: np.random.Generator | None = None) -> Array:
        """``n`` rows of noise, shape (n, noise_size), from ``rng`` (default: the GAN's)."""
        rows = NOISES[self.noise](rng if rng is not None else self.rng, n, self.noise_size)
        return rows.astype(self.dtype, copy=False)

    def sample(self, n: int, rng: np.random.Generator | None = None) -> Array:
        """``n`` generated rows in inference mode, shape (n, *data shape)."""
        return self.generator.forward(self.draw_noise(n, rng), training=False)

    def discriminator_gradients(self, X_real: Array) -> tuple[float, float, float]:
        """Fill ``D``'s gradients of ``L_D`` on ``X_real`` and as many fakes; returns
        ``(L_D, mean D(real), mean D(fake))``."""
        n = len(X_real)
        fake = self.generator.forward(self.draw_noise(n), training=True)
        D = self.discriminator
        X = np.concatenate([D.shaped(X_real), fake])
        Y = np.zeros((2 * n, 1), dtype=self.dtype)
        Y[:n] = 1.0 - self.label_smoothing
        Z = D.forward_logits(X, training=True)
        probabilities = sigmoid(Z)
        loss, dZ = D.loss.value_and_grad(Z, Y)
        D.backward(dZ, from_logits=True)
        return loss, float(np.mean(probabilities[:n])), float(np.mean(probabilities[n:]))

    def generator_gradients(self, n: int) -> tuple[float, float]:
        """Fill ``G``'s gradients of ``L_G`` on ``n`` fresh fakes (``D``'s gradients are
        overwritten on the way and must not be applied); returns ``(L_G, mean D(fake))``."""
        return self.generator_gradients_on(self.draw_noise(n))

    def generator_gradients_on(self, noise: Array) -> tuple[float, float]:
        """As ``generator_gradients``, for given noise."""
        G, D = self.generator, self.discriminator
        fake = G.forward(noise, training=True)
        Z = D.forward_logits(fake, training=True)
        d_fake = float(np.mean(sigmoid(Z)))
        loss, dZ = D.loss.value_and_grad(Z, np.ones((len(noise), 1), dtype=self.dtype))
        d_input = D.backward(dZ, from_logits=True)
        assert d_input is not None  # D's first layer is asked for it
        G.backward(d_input.reshape(fake.shape))
        return loss, d_fake

    def generator_loss(self, noise: Array) -> float:
        """``L_G`` for given noise, without gradients (for checking them)."""
        fake = self.generator.forward(noise, training=True)
        return self.discriminator.loss_value(fake, np.ones((len(noise), 1), self.dtype),
                                             training=True)


class GanStep:
    """One batch of GAN training for the training loop: a discriminator step on the real
    batch, and every ``d_steps``-th batch a generator step on as many fresh fakes. Each
    step is applied only when its loss and gradients are finite."""

    def __init__(self, gan: Gan, optimizers: OptimizerPair, d_steps: int = 1) -> None:
        if d_steps < 1:
            raise ValueError(f"d_steps must be at least 1, got {d_steps}")
        self.gan, self.optimizers, self.d_steps = gan, optimizers, d_steps

    def __call__(self, X: Array, batch: int) -> tuple[StepStats, float, str | None]:
        """Train on real rows ``X`` (batch number ``batch`` of the epoch, from 0).
        Returns the statistics, the squared norm of the gradients applied, and the name
        of the network whose loss or gradient went non-finite (nothing applied then)."""
        gan = self.gan
        D, G = gan.discriminator, gan.generator
        d_loss, d_real, d_fake = gan.discriminator_gradients(X)
        squared = float(np.dot(D.flat_grads, D.flat_grads))
        if not (np.isfinite(d_loss) and np.isfinite(squared)):
            return StepStats(d_loss, None, d_real, d_fake), squared, "discriminator"
        self.optimizers.discriminator.step([D.flat_params], [D.flat_grads])
        g_loss = None
        if batch % self.d_steps == self.d_steps - 1:
            g_loss, _ = gan.generator_gradients(len(X))
            g_squared = float(np.dot(G.flat_grads, G.flat_grads))
            squared += g_squared
            if not (np.isfinite(g_loss) and np.isfinite(g_squared)):
                return StepStats(d_loss, g_loss, d_real, d_fake), squared, "generator"
            self.optimizers.generator.step([G.flat_params], [G.flat_grads])
        return StepStats(d_loss, g_loss, d_real, d_fake), squared, None
