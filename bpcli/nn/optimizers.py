"""Optimizers: update parameters in place from their gradients.

Each optimizer keeps its state (velocities, moments, step count) in arrays keyed so that
it can be saved to and restored from a checkpoint.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from bpcli.nn.blas import axpby, axpy

Array = NDArray[np.floating]
Mask = NDArray[np.bool_]


class Optimizer:
    """``step(params, grads)`` updates each ``params[i]`` in place from ``grads[i]``."""

    name: ClassVar[str]
    #: True when the update rule assumes the gradient of the whole training set (Rprop):
    #: such an optimizer should get one batch per epoch (batch size >= training rows).
    full_batch: ClassVar[bool] = False

    def __init__(self, learning_rate: float) -> None:
        if learning_rate <= 0:
            raise ValueError(f"learning rate must be positive, got {learning_rate}")
        self.learning_rate = learning_rate
        self.iterations = 0

    def step(self, params: list[Array], grads: list[Array]) -> None:
        raise NotImplementedError

    def _scratch(self, params: list[Array], kind: str = "work") -> list[Array]:
        """Reusable work arrays, one per parameter (one set per ``kind``), like the
        parameters in shape and dtype, so that a step allocates nothing. Not state: never
        saved (``state`` holds what a checkpoint needs)."""
        sets: dict[str, list[Array]] = self.__dict__.setdefault("_scratch_arrays", {})
        scratch = sets.get(kind)
        if scratch is None or [(a.shape, a.dtype) for a in scratch] != [
            (p.shape, p.dtype) for p in params
        ]:
            scratch = sets[kind] = [np.empty_like(p) for p in params]
        return scratch

    #: Per-parameter state: its name in checkpoints (``"<slot>/<i>"``) -> the attribute
    #: holding one array per parameter.
    slots: ClassVar[dict[str, str]] = {}

    def state(self) -> dict[str, NDArray]:
        """The optimizer's state as named arrays (for checkpoints)."""
        state: dict[str, NDArray] = {
            "iterations": np.array(self.iterations, dtype=np.int64),
            "learning_rate": np.array(self.learning_rate, dtype=np.float64)}
        for slot, attribute in self.slots.items():
            state.update({f"{slot}/{i}": a for i, a in enumerate(getattr(self, attribute))})
        return state

    def load_state(self, state: dict[str, NDArray]) -> None:
        self.iterations = int(state["iterations"])
        if "learning_rate" in state:  # lowered by a divergence rollback
            self.learning_rate = float(state["learning_rate"])
        for slot, attribute in self.slots.items():
            setattr(self, attribute, _indexed(state, slot))


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
    slots: ClassVar[dict[str, str]] = {"velocity": "velocities"}

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
                axpy(-lr, g, w, step)
            self.iterations += 1
            return
        if not self.velocities:
            self.velocities = [np.zeros_like(w) for w in params]
        for w, g, v, step in zip(params, grads, self.velocities, scratch, strict=True):
            axpby(-lr, g, mu, v, step)
            if self.nesterov:
                axpy(-lr, g, w, step)  # the -lr * g part of the Nesterov step
                axpy(mu, v, w, step)
            else:
                axpy(1.0, v, w, step)
        self.iterations += 1


def _check_moments(beta1: float, beta2: float, epsilon: float) -> None:
    """Adam's and Nadam's settings: a beta of 1 would divide by zero in the bias
    correction, and epsilon keeps the denominator off zero."""
    for label, beta in (("beta1", beta1), ("beta2", beta2)):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"{label} must be in [0, 1), got {beta}")
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction.

    With ``t`` the step count (from 1), gradient ``g`` and moments ``m, v`` (initially 0)::

        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        w <- w - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + epsilon)
    """

    name = "adam"
    slots: ClassVar[dict[str, str]] = {"m": "m", "v": "v"}

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__(learning_rate)
        _check_moments(beta1, beta2, epsilon)
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
            _update_moments(g, m, v, b1, b2, work)
            _denominator(v, v_correction, self.epsilon, out=work)
            np.divide(m, work, out=work)
            work *= step_size
            w -= work



class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as PyTorch's ``AdamW``.

    With weight decay ``lambda``, each step first shrinks the weights, then takes the Adam
    step of :class:`Adam` (``t`` the step count from 1, moments ``m, v`` initially 0)::

        w <- w - lr * lambda * w        (computed as w <- w * (1 - lr * lambda))
        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        w <- w - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + epsilon)

    The decay uses the current ``learning_rate``, so a schedule scales it too. It applies to
    every entry of every parameter unless ``decay_mask`` says otherwise: a boolean array per
    parameter (one array for a single parameter, such as a network's flat vector), the
    parameter's shape, True where the weight decays. Networks usually decay weight
    matrices but not biases; with one flat vector only the caller knows which entries are
    which, so it sets the mask (in the constructor or as the attribute, before stepping).
    The mask is configuration, not state: it is not in :meth:`state` and must be set again
    on an optimizer rebuilt from a checkpoint.
    """

    name = "adamw"

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float = 0.01,
        decay_mask: Mask | list[Mask] | None = None,
    ) -> None:
        super().__init__(learning_rate, beta1, beta2, epsilon)
        if weight_decay < 0:
            raise ValueError(f"weight decay must be >= 0, got {weight_decay}")
        self.weight_decay = weight_decay
        self.decay_mask = decay_mask

    def step(self, params: list[Array], grads: list[Array]) -> None:
        if self.weight_decay:
            keep = 1 - self.learning_rate * self.weight_decay
            for w, mask in zip(params, self._masks(params), strict=True):
                if mask is None:
                    w *= keep
                else:
                    np.multiply(w, keep, out=w, where=mask)
        super().step(params, grads)

    def _masks(self, params: list[Array]) -> list[Mask | None]:
        masks = self.decay_mask
        if masks is None:
            return [None] * len(params)
        if isinstance(masks, np.ndarray):
            masks = [masks]
        if len(masks) != len(params):
            raise ValueError(f"decay_mask has {len(masks)} arrays for {len(params)} parameters")
        for mask, w in zip(masks, params, strict=True):
            if mask.dtype != np.bool_ or mask.shape != w.shape:
                raise ValueError(f"a decay mask must be a boolean array of its parameter's "
                                 f"shape {w.shape}, got {mask.dtype} {mask.shape}")
        return list(masks)


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer, 2011), with Keras' defaults.

    The accumulator ``a`` starts at ``initial_accumulator`` and sums squared gradients::

        a <- a + g^2
        w <- w - lr * g / (sqrt(a) + epsilon)

    This is PyTorch's ``Adagrad`` (without ``lr_decay``) and Keras 2's; Keras 3 puts
    epsilon inside the root, ``sqrt(a + epsilon)``.
    """

    name = "adagrad"
    slots: ClassVar[dict[str, str]] = {"accumulator": "accumulators"}

    def __init__(
        self,
        learning_rate: float = 0.01,
        epsilon: float = 1e-7,
        initial_accumulator: float = 0.1,
    ) -> None:
        super().__init__(learning_rate)
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon}")
        if initial_accumulator < 0:
            raise ValueError(f"initial accumulator must be >= 0, got {initial_accumulator}")
        self.epsilon = epsilon
        self.initial_accumulator = initial_accumulator
        self.accumulators: list[Array] = []

    def step(self, params: list[Array], grads: list[Array]) -> None:
        if not self.accumulators:
            self.accumulators = [np.full_like(w, self.initial_accumulator) for w in params]
        lr, eps = self.learning_rate, self.epsilon
        scratch = self._scratch(params)
        for w, g, a, work in zip(params, grads, self.accumulators, scratch, strict=True):
            a += np.multiply(g, g, out=work)
            np.sqrt(a, out=work)
            work += eps
            np.divide(g, work, out=work)
            work *= lr
            w -= work
        self.iterations += 1



class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012) in Keras' formulation, with its defaults.

    With decay ``rho``, mean square ``s`` and (centered only) mean gradient ``a``, both
    initially 0, and momentum ``mu`` with velocity ``u`` (initially 0)::

        s <- rho * s + (1 - rho) * g^2
        a <- rho * a + (1 - rho) * g                        (centered=True)
        d  = s + epsilon                                    (centered=False)
        d  = max(s - a^2, 0) + epsilon                      (centered=True)
        u <- mu * u + lr * g / sqrt(d);  w <- w - u         (mu > 0)
        w <- w - lr * g / sqrt(d)                           (mu = 0)

    As Keras' ``RMSprop`` (epsilon inside the root, unlike PyTorch's, which adds it to the
    root), except that the centered variance estimate ``s - a^2``, never negative in exact
    arithmetic, is clipped at 0 so that rounding cannot make its root NaN.
    """

    name = "rmsprop"
    slots: ClassVar[dict[str, str]] = {"mean_square": "mean_squares", "mean_grad": "mean_grads",
                                    "velocity": "velocities"}

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        epsilon: float = 1e-7,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(learning_rate)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.rho, self.epsilon, self.momentum, self.centered = rho, epsilon, momentum, centered
        self.mean_squares: list[Array] = []
        self.mean_grads: list[Array] = []
        self.velocities: list[Array] = []

    def step(self, params: list[Array], grads: list[Array]) -> None:
        if not self.mean_squares:
            self.mean_squares = [np.zeros_like(w) for w in params]
            if self.centered:
                self.mean_grads = [np.zeros_like(w) for w in params]
            if self.momentum:
                self.velocities = [np.zeros_like(w) for w in params]
        lr, rho, mu = self.learning_rate, self.rho, self.momentum
        scratch = self._scratch(params)
        for i, (w, g, s, work) in enumerate(
            zip(params, grads, self.mean_squares, scratch, strict=True)
        ):
            s *= rho
            np.multiply(g, g, out=work)
            work *= 1 - rho
            s += work
            if self.centered:
                a = self.mean_grads[i]
                a *= rho
                a += np.multiply(g, 1 - rho, out=work)
                np.multiply(a, a, out=work)
                np.subtract(s, work, out=work)
                np.maximum(work, 0.0, out=work)
                work += self.epsilon
            else:
                np.add(s, self.epsilon, out=work)
            np.sqrt(work, out=work)
            np.divide(g, work, out=work)
            work *= lr
            if mu:
                u = self.velocities[i]
                u *= mu
                u += work
                w -= u
            else:
                w -= work
        self.iterations += 1



class Nadam(Optimizer):
    """Nadam: Adam with Nesterov momentum (Dozat, 2016), as PyTorch's ``NAdam``.

    The momentum coefficient follows Dozat's schedule; with ``t`` the step count (from 1)
    and ``psi`` the ``momentum_decay``::

        mu_t = beta1 * (1 - 0.5 * 0.96^(t * psi))
        P_t  = mu_1 * mu_2 * ... * mu_t                      (kept as state, P_0 = 1)
        m   <- beta1 * m + (1 - beta1) * g
        v   <- beta2 * v + (1 - beta2) * g^2
        d    = sqrt(v / (1 - beta2^t)) + epsilon
        w   <- w - lr * (1 - mu_t) / (1 - P_t) * g / d
                 - lr * mu_{t+1} / (1 - P_t * mu_{t+1}) * m / d

    ``psi = 0.004`` (PyTorch's default, Dozat's 0.96^(t/250)) makes ``mu_t`` rise from
    about ``beta1 / 2`` towards ``beta1`` over thousands of steps. Note that ``psi = 0``
    does not give a constant ``beta1``: it gives a constant ``mu_t = beta1 / 2``. Keras 2's
    ``Nadam`` is the same rule; Keras 3's uses ``0.96^t`` (no 1/250) and epsilon 1e-7.
    """

    name = "nadam"
    slots: ClassVar[dict[str, str]] = {"m": "m", "v": "v"}

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        momentum_decay: float = 0.004,
    ) -> None:
        super().__init__(learning_rate)
        _check_moments(beta1, beta2, epsilon)
        if momentum_decay < 0:
            raise ValueError(f"momentum decay must be >= 0, got {momentum_decay}")
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.momentum_decay = momentum_decay
        self.mu_product = 1.0
        self.m: list[Array] = []
        self.v: list[Array] = []

    def _mu(self, t: int) -> float:
        return self.beta1 * (1 - 0.5 * 0.96 ** (t * self.momentum_decay))

    def step(self, params: list[Array], grads: list[Array]) -> None:
        if not self.m:
            self.m = [np.zeros_like(w) for w in params]
            self.v = [np.zeros_like(w) for w in params]
        self.iterations += 1
        t = self.iterations
        b1, b2, lr = self.beta1, self.beta2, self.learning_rate
        mu, mu_next = self._mu(t), self._mu(t + 1)
        self.mu_product *= mu
        g_scale = lr * (1 - mu) / (1 - self.mu_product)
        m_scale = lr * mu_next / (1 - self.mu_product * mu_next)
        v_correction = 1 / (1 - b2**t)
        scratch, scratch2 = self._scratch(params), self._scratch(params, "work2")
        for w, g, m, v, d, work in zip(params, grads, self.m, self.v, scratch, scratch2,
                                       strict=True):
            _update_moments(g, m, v, b1, b2, work)
            _denominator(v, v_correction, self.epsilon, out=d)
            np.divide(g, d, out=work)
            work *= g_scale
            w -= work
            np.divide(m, d, out=work)
            work *= m_scale
            w -= work

    def state(self) -> dict[str, NDArray]:
        state = super().state()
        state["mu_product"] = np.array(self.mu_product, dtype=np.float64)
        return state

    def load_state(self, state: dict[str, NDArray]) -> None:
        super().load_state(state)
        self.mu_product = float(state["mu_product"]) if "mu_product" in state else 1.0


class Rprop(Optimizer):
    """iRprop- (Igel & Hüsken, 2000): resilient backpropagation without weight-backtracking.

    Each weight has its own step size ``delta`` (initially ``delta0``) and remembers its
    previous gradient ``g_prev`` (initially 0); only the sign of the gradient is used::

        if g * g_prev > 0:  delta <- min(delta * eta_plus, delta_max)
        if g * g_prev < 0:  delta <- max(delta * eta_minus, delta_min);  g <- 0
        w <- w - sign(g) * delta
        g_prev <- g

    A sign change shrinks the step and skips that weight's update for this step (``g <- 0``
    also makes the next step neither grow nor shrink). Rprop needs the gradient of the
    whole training set, so ``full_batch`` is True: give it one batch per epoch. It ignores
    ``learning_rate``, which it keeps only for the common interface (so neither a schedule
    nor a divergence rollback's lower rate changes its steps).

    The rule is the paper's and, apart from its edge cases, FANN's
    ``FANN_TRAIN_RPROP``. FANN also grows the step when ``g * g_prev = 0``, moves
    weights whose gradient is exactly 0, and defaults to ``delta_min = 0``.
    """

    name = "rprop"
    slots: ClassVar[dict[str, str]] = {"delta": "deltas", "previous_grad": "previous_grads"}
    full_batch = True

    def __init__(
        self,
        learning_rate: float = 1.0,
        delta0: float = 0.1,
        eta_plus: float = 1.2,
        eta_minus: float = 0.5,
        delta_min: float = 1e-6,
        delta_max: float = 50.0,
    ) -> None:
        super().__init__(learning_rate)
        if not 0.0 < eta_minus < 1.0 < eta_plus:
            raise ValueError(f"need 0 < eta_minus < 1 < eta_plus, got eta_minus={eta_minus} "
                             f"and eta_plus={eta_plus}")
        if not 0.0 < delta_min <= delta0 <= delta_max:
            raise ValueError(f"need 0 < delta_min <= delta0 <= delta_max, got {delta_min}, "
                             f"{delta0} and {delta_max}")
        self.delta0, self.eta_plus, self.eta_minus = delta0, eta_plus, eta_minus
        self.delta_min, self.delta_max = delta_min, delta_max
        self.deltas: list[Array] = []
        self.previous_grads: list[Array] = []
        self._flags: list[Mask] = []

    def step(self, params: list[Array], grads: list[Array]) -> None:
        if not self.deltas:
            self.deltas = [np.full_like(w, self.delta0) for w in params]
            self.previous_grads = [np.zeros_like(w) for w in params]
        if [f.shape for f in self._flags] != [w.shape for w in params]:
            self._flags = [np.empty(w.shape, dtype=np.bool_) for w in params]
        scratch = self._scratch(params)
        for w, g, delta, g_prev, work, flag in zip(
            params, grads, self.deltas, self.previous_grads, scratch, self._flags, strict=True
        ):
            # sign(g) * g_prev has the sign of g * g_prev and cannot underflow to 0
            np.sign(g, out=work)
            work *= g_prev
            np.greater(work, 0.0, out=flag)
            np.multiply(delta, self.eta_plus, out=delta, where=flag)
            np.minimum(delta, self.delta_max, out=delta, where=flag)
            np.less(work, 0.0, out=flag)
            np.multiply(delta, self.eta_minus, out=delta, where=flag)
            np.maximum(delta, self.delta_min, out=delta, where=flag)
            np.copyto(g_prev, g)
            np.copyto(g_prev, 0.0, where=flag)  # g <- 0 where the sign changed
            np.sign(g_prev, out=work)
            work *= delta
            w -= work
        self.iterations += 1



def _update_moments(g: Array, m: Array, v: Array, beta1: float, beta2: float,
                    work: Array) -> None:
    """Adam's moments in place: ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``."""
    m *= beta1
    m += np.multiply(g, 1 - beta1, out=work)
    v *= beta2
    np.multiply(g, g, out=work)
    work *= 1 - beta2
    v += work


def _denominator(v: Array, v_correction: float, epsilon: float, out: Array) -> Array:
    """``sqrt(v * v_correction) + epsilon``, written into ``out``."""
    np.multiply(v, v_correction, out=out)
    np.sqrt(out, out=out)
    out += epsilon
    return out


def _indexed(state: dict[str, NDArray], prefix: str) -> list[Array]:
    count = sum(1 for key in state if key.startswith(prefix + "/"))
    return [np.array(state[f"{prefix}/{i}"]) for i in range(count)]


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Adam, AdamW, Adagrad, RMSprop, Nadam, Rprop)
}
