"""What the trainer tells its listeners (display, run directory) while it works."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrainingStarted:
    epochs: int
    batches_per_epoch: int
    n_train: int
    n_val: int
    metric_name: str
    start_epoch: int = 0  # epochs already done (when resuming)
    start_batch: int = 0  # batches of the next epoch already done (resuming mid-epoch)


@dataclass(frozen=True)
class BatchesDone:
    """Progress within an epoch; sent at most a few times a second."""

    epoch: int
    batches_done: int
    batches: int


@dataclass(frozen=True)
class Health:
    """Signs of vanishing or exploding gradients, for one epoch (``bp train --health``)."""

    grad_norm: float  # root mean square of the per-batch global gradient norms
    update_ratios: dict[str, float]  # layer -> |change in W over the epoch| / |W|
    dead_relu: float | None  # share of ReLU units silent on every validation row checked


@dataclass(frozen=True)
class EpochEnded:
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    val_metric: float
    learning_rate: float
    seconds: float
    is_best: bool
    rollbacks: int = 0  # divergence rollbacks so far in the run
    health: Health | None = None
    #: a training step's own figures, epoch means (a GAN's D loss, G loss, D(real),
    #: D(fake)); shown as columns of their own
    stats: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Stopped:
    """Training stopped on request after ``batches_done`` batches of ``epoch``."""

    epoch: int
    batches_done: int
    batches: int


@dataclass(frozen=True)
class StoppedEarly:
    """No improvement of ``monitor`` for ``patience`` epochs: training ends after ``epoch``;
    or, when ``by`` says, another rule ended it (a sweep's scheduler stopping a trial that
    trails the others)."""

    epoch: int
    best_epoch: int
    monitor: str
    patience: int
    by: str | None = None


@dataclass(frozen=True)
class RolledBack:
    """Training diverged and went back to the end of ``to_epoch`` with a lower rate."""

    to_epoch: int
    reason: str
    learning_rate: float
    rollbacks: int


@dataclass(frozen=True)
class TrainingEnded:
    epochs_done: int
    best_epoch: int
    best_val_loss: float
    best_val_metric: float
    seconds: float


Event = (TrainingStarted | BatchesDone | EpochEnded | Stopped | StoppedEarly | RolledBack
         | TrainingEnded)
Listener = Callable[[Event], None]
# How a long step reports where it is: (done, total, what); total 0 when unknown. Commands
# pass one from the display to the core, which thus never needs to know about terminals.
Progress = Callable[[int, int, str], None]
