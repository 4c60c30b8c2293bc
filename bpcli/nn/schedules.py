"""Learning-rate schedules: the learning rate for each epoch.

Epochs count from 1. Every schedule is built with the base learning rate ``lr`` and
answers ``rate(epoch)``, the rate to train epoch ``epoch`` with; the caller sets the
optimizer's ``learning_rate`` from it before the epoch. After the epoch the caller reports
the monitored value (the validation loss) with ``observe(epoch, value)``, which only
``reduce_on_plateau`` uses. ``state()`` gives what a checkpoint must keep, as JSON-able
values, and ``load_state`` puts it back: empty for every schedule that is a function of
the epoch alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, ClassVar


class Schedule:
    """The learning rate for each epoch, from the base rate ``learning_rate``."""

    name: ClassVar[str]

    def __init__(self, learning_rate: float) -> None:
        if not learning_rate > 0:
            raise ValueError(f"learning rate must be positive, got {learning_rate}")
        self.learning_rate = learning_rate

    def rate(self, epoch: int) -> float:
        """The learning rate for epoch ``epoch`` (from 1)."""
        raise NotImplementedError

    def observe(self, epoch: int, value: float) -> None:
        """Take the monitored value at the end of ``epoch``; only stateful schedules care."""

    def state(self) -> dict[str, Any]:
        """What must be saved to carry on after a restart, as JSON-able values."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""


def _check_epoch(epoch: int) -> None:
    if epoch < 1:
        raise ValueError(f"epochs count from 1, got {epoch}")


def _check_gamma(gamma: float) -> None:
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")


class Constant(Schedule):
    """The same rate every epoch: ``rate(e) = lr``."""

    name = "constant"

    def rate(self, epoch: int) -> float:
        _check_epoch(epoch)
        return self.learning_rate


class Step(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs::

        rate(e) = lr * gamma ^ floor((e - 1) / step_size)

    so epochs 1 to ``step_size`` train at ``lr``, the next ``step_size`` at
    ``lr * gamma``, and so on (PyTorch's ``StepLR``, whose epochs count from 0).
    """

    name = "step"

    def __init__(self, learning_rate: float, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(learning_rate)
        if step_size < 1:
            raise ValueError(f"step_size must be at least 1, got {step_size}")
        _check_gamma(gamma)
        self.step_size, self.gamma = step_size, gamma

    def rate(self, epoch: int) -> float:
        _check_epoch(epoch)
        return self.learning_rate * self.gamma ** ((epoch - 1) // self.step_size)


class MultiStep(Schedule):
    """Multiply the rate by ``gamma`` after each milestone epoch::

        rate(e) = lr * gamma ^ (number of milestones m with m < e)

    so with ``milestones=[30, 80]`` epochs 1-30 train at ``lr``, 31-80 at ``lr * gamma``
    and from 81 at ``lr * gamma^2`` (PyTorch's ``MultiStepLR``, whose epochs count from 0).
    """

    name = "multistep"

    def __init__(self, learning_rate: float, milestones: Sequence[int],
                 gamma: float = 0.1) -> None:
        super().__init__(learning_rate)
        milestones = list(milestones)
        if not milestones or milestones[0] < 1 or any(a >= b for a, b in pairwise(milestones)):
            raise ValueError(f"milestones must be increasing epochs from 1, got {milestones}")
        _check_gamma(gamma)
        self.milestones, self.gamma = milestones, gamma

    def rate(self, epoch: int) -> float:
        _check_epoch(epoch)
        passed = sum(1 for m in self.milestones if m < epoch)
        return self.learning_rate * self.gamma**passed


class Exponential(Schedule):
    """Multiply the rate by ``gamma`` every epoch: ``rate(e) = lr * gamma ^ (e - 1)``."""

    name = "exponential"

    def __init__(self, learning_rate: float, gamma: float) -> None:
        super().__init__(learning_rate)
        _check_gamma(gamma)
        self.gamma = gamma

    def rate(self, epoch: int) -> float:
        _check_epoch(epoch)
        return self.learning_rate * self.gamma ** (epoch - 1)


class Cosine(Schedule):
    """Optional linear warm-up, then cosine annealing from ``lr`` towards ``min_lr``.

    With ``T = total_epochs`` and ``W = warmup_epochs`` (``0 <= W < T``)::

        rate(e) = lr * e / (W + 1)                                     for e <= W
        rate(e) = min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2       for e > W
                  where p = min(e - W - 1, T - W) / (T - W)

    The warm-up climbs in equal steps, ``lr / (W + 1)``, ``2 lr / (W + 1)``, ... to ``lr``
    at epoch ``W + 1``, where annealing starts; the last epoch, ``T``, trains at
    ``min_lr + (lr - min_lr) * (1 + cos(pi * (T - W - 1) / (T - W))) / 2``, just above
    ``min_lr``, and any epoch after ``T`` at ``min_lr``. Without warm-up this is PyTorch's
    ``CosineAnnealingLR`` with ``T_max = T`` (epochs counted from 0 there).
    """

    name = "cosine"

    def __init__(self, learning_rate: float, total_epochs: int, min_lr: float = 0.0,
                 warmup_epochs: int = 0) -> None:
        super().__init__(learning_rate)
        if not 0 <= warmup_epochs < total_epochs:
            raise ValueError(f"need 0 <= warmup_epochs < total_epochs, got {warmup_epochs} "
                             f"and {total_epochs}")
        if not 0.0 <= min_lr <= learning_rate:
            raise ValueError(f"min_lr must be in [0, learning rate {learning_rate}], got "
                             f"{min_lr}")
        self.total_epochs, self.min_lr, self.warmup_epochs = total_epochs, min_lr, warmup_epochs

    def rate(self, epoch: int) -> float:
        _check_epoch(epoch)
        lr, warmup, span = self.learning_rate, self.warmup_epochs, self.total_epochs
        if epoch <= warmup:
            return lr * epoch / (warmup + 1)
        span -= warmup
        p = min(epoch - warmup - 1, span) / span
        return self.min_lr + (lr - self.min_lr) * (1 + math.cos(math.pi * p)) / 2


class ReduceOnPlateau(Schedule):
    """Divide the rate when the monitored value (mode min) stops improving.

    Starts at ``lr`` with ``best = inf``. After each epoch, ``observe(e, value)`` does::

        improved = value < best - min_delta             (min_delta is absolute)
        if improved: best = value
        if cooldown_left > 0:  cooldown_left -= 1; wait = 0
        elif improved:         wait = 0
        else:
            wait += 1
            if wait >= patience and rate > min_lr:
                rate = max(rate * factor, min_lr); wait = 0; cooldown_left = cooldown

    so the rate drops at the end of the ``patience``-th epoch in a row without improvement
    and holds from the next epoch on; the ``cooldown`` epochs after a drop are not counted
    and ``min_lr`` is a floor. ``rate(e)`` is the current rate, whatever ``e``.

    This is Keras' ``ReduceLROnPlateau`` (``min_delta`` absolute, a drop after
    ``patience`` bad epochs) except for the cooldown, which here skips exactly
    ``cooldown`` epochs, as in PyTorch (Keras counts the last of them). PyTorch's
    ``threshold`` is relative by default and it drops after ``patience + 1`` bad epochs.
    """

    name = "reduce_on_plateau"

    def __init__(
        self,
        learning_rate: float,
        factor: float = 0.1,
        patience: int = 10,
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(learning_rate)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        if patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        if cooldown < 0:
            raise ValueError(f"cooldown must be >= 0, got {cooldown}")
        if not 0.0 <= min_lr <= learning_rate:
            raise ValueError(f"min_lr must be in [0, learning rate {learning_rate}], got "
                             f"{min_lr}")
        self.factor, self.patience, self.min_delta = factor, patience, min_delta
        self.cooldown, self.min_lr = cooldown, min_lr
        self.current = learning_rate
        self.best = math.inf
        self.wait = 0
        self.cooldown_left = 0
        self.last_epoch = 0

    def rate(self, epoch: int) -> float:
        _check_epoch(epoch)
        return self.current

    def observe(self, epoch: int, value: float) -> None:
        if epoch <= self.last_epoch:
            raise ValueError(f"epoch {epoch} observed after epoch {self.last_epoch}")
        self.last_epoch = epoch
        improved = value < self.best - self.min_delta
        if improved:
            self.best = value
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        elif improved:
            self.wait = 0
        else:
            self.wait += 1
            if self.wait >= self.patience and self.current > self.min_lr:
                self.current = max(self.current * self.factor, self.min_lr)
                self.wait = 0
                self.cooldown_left = self.cooldown

    def state(self) -> dict[str, Any]:
        return {
            "rate": self.current,
            "best": None if self.best == math.inf else self.best,  # JSON has no inf
            "wait": self.wait,
            "cooldown_left": self.cooldown_left,
            "last_epoch": self.last_epoch,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.current = float(state["rate"])
        self.best = math.inf if state["best"] is None else float(state["best"])
        self.wait = int(state["wait"])
        self.cooldown_left = int(state["cooldown_left"])
        self.last_epoch = int(state["last_epoch"])


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls
    for cls in (Constant, Step, MultiStep, Exponential, Cosine, ReduceOnPlateau)
}
