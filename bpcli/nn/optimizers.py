"""Optimizers: update parameters in place from their gradients.

Each optimizer keeps its state (velocities, moments, step count) in arrays keyed so that
it can be saved to and restored from a checkpoint.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


class Optimizer:
    """``step(params, grads)`` updates each ``params[i]`` in place from ``grads[i]``."""

    name: ClassVar[str]

    def __init__(self, learning_rate: float) -> None:
        if learning_rate <= 0:
            raise ValueError(f"learning rate must be positive, got {learning_rate}")
        self.learning_rate = learning_rate
        self.iterations = 0

    def step(self, params: list[Array], grads: list[Array]) -> None:
        raise NotImplementedError

    def _scratch(self, params: list[Array]) -> list[Array]:
        """One reusable work array per parameter, so that a step allocates nothing."""
        scratch: list[Array] | None = getattr(self, "_work", None)
        if scratch is None or [a.shape for a in scratch] != [p.shape for p in params]:
            scratch = [np.empty_like(p) for p in params]
            self._work = scratch
        return scratch

    def state(self) -> dict[str, NDArray]:
        """The optimizer's state as named arrays (for checkpoints)."""
        return {"iterations": np.array(self.iterations, dtype=np.int64),
                "learning_rate": np.array(self.learning_rate, dtype=np.float64)}

    def load_state(self, state: dict[str, NDArray]) -> None:
        self.iterations = int(state["iterations"])
        if "learning_rate" in state:  # lowered by a divergence rollback
            self.learning_rate = float(state["learning_rate"])


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    With learning rate ``lr`` and momentum ``mu``, for each parameter ``w`` with gradient
    ``g`` and velocity ``v`` (initially 0)::

        v <- mu * v - lr * g
        w <- w + v                      (classical momentum; plain SGD when mu = 0)
        w <- w + mu * v - lr * g        (nesterov=True)

    This is the formulation of Keras' ``SGD`` and of Sutskever et al. (2013).
    """

    name = "sgd"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(learning_rate)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocities: list[Array] = []

    def step(self, params: list[Array], grads: list[Array]) -> None:
        lr, mu = self.learning_rate, self.momentum
        scratch = self._scratch(params)
        if mu == 0.0:
            for w, g, step in zip(params, grads, scratch, strict=True):
                w -= np.multiply(g, lr, out=step)
            self.iterations += 1
            return
        if not self.velocities:
            self.velocities = [np.zeros_like(w) for w in params]
        for w, g, v, step in zip(params, grads, self.velocities, scratch, strict=True):
            v *= mu
            v -= np.multiply(g, lr, out=step)
            if self.nesterov:
                w -= step  # the -lr * g part of the Nesterov step
                w += np.multiply(v, mu, out=step)
            else:
                w += v
        self.iterations += 1

    def state(self) -> dict[str, NDArray]:
        state = super().state()
        state.update({f"velocity/{i}": v for i, v in enumerate(self.velocities)})
        return state

    def load_state(self, state: dict[str, NDArray]) -> None:
        super().load_state(state)
        self.velocities = _indexed(state, "velocity")


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction.

    With ``t`` the step count (from 1), gradient ``g`` and moments ``m, v`` (initially 0)::

        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        w <- w - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + epsilon)
    """

    name = "adam"

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__(learning_rate)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.m: list[Array] = []
        self.v: list[Array] = []

    def step(self, params: list[Array], grads: list[Array]) -> None:
        if not self.m:
            self.m = [np.zeros_like(w) for w in params]
            self.v = [np.zeros_like(w) for w in params]
        self.iterations += 1
        t = self.iterations
        b1, b2 = self.beta1, self.beta2
        step_size = self.learning_rate / (1 - b1**t)
        v_correction = 1 / (1 - b2**t)
        scratch = self._scratch(params)
        for w, g, m, v, work in zip(params, grads, self.m, self.v, scratch, strict=True):
            m *= b1
            m += np.multiply(g, 1 - b1, out=work)
            v *= b2
            np.multiply(g, g, out=work)
            work *= 1 - b2
            v += work
            np.multiply(v, v_correction, out=work)
            np.sqrt(work, out=work)
            work += self.epsilon
            np.divide(m, work, out=work)
            work *= step_size
            w -= work

    def state(self) -> dict[str, NDArray]:
        state = super().state()
        state.update({f"m/{i}": m for i, m in enumerate(self.m)})
        state.update({f"v/{i}": v for i, v in enumerate(self.v)})
        return state

    def load_state(self, state: dict[str, NDArray]) -> None:
        super().load_state(state)
        self.m = _indexed(state, "m")
        self.v = _indexed(state, "v")


def _indexed(state: dict[str, NDArray], prefix: str) -> list[Array]:
    count = sum(1 for key in state if key.startswith(prefix + "/"))
    return [np.array(state[f"{prefix}/{i}"]) for i in range(count)]


OPTIMIZERS: dict[str, type[Optimizer]] = {cls.name: cls for cls in (SGD, Adam)}
