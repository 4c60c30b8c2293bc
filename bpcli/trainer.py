"""The training loop: mini-batches, validation each epoch, best-weights tracking,
interruption at batch boundaries and recovery from divergence.

The trainer never prints and never touches files; it tells its listeners what happened.
Its whole position (``TrainerState``), with the weights, the optimizer state and the two
random generators, is enough to carry on bit for bit after a stop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bpcli.errors import EXIT_INTERRUPTED, BpError, CheckFailed
from bpcli.events import (
    BatchesDone,
    EpochEnded,
    Event,
    Health,
    Listener,
    RolledBack,
    Stopped,
    StoppedEarly,
    TrainingEnded,
    TrainingStarted,
)
from bpcli.nn import Activation, Network, Optimizer
from bpcli.nn.regularization import clip_by_global_norm, clip_by_value
from bpcli.nn.schedules import Constant, Schedule

Metric = Callable[[NDArray, NDArray], float]


@dataclass
class StepResult:
    """What one batch's step did: its training loss, the squared norm of the gradients it
    computed, where a value went non-finite (then nothing was applied), and figures of
    its own to average over the epoch (e.g. a GAN's ``{"D loss": ..., "D(real)": ...}``;
    NaN where a figure was not measured on this batch)."""

    loss: float
    squared_norm: float
    failed: str | None = None
    stats: dict[str, float] = field(default_factory=dict)


#: A training step on one batch: ``step(X, Y, b)`` with ``b`` the batch's number in its
#: epoch (from 0) computes gradients and applies them (or reports what went non-finite).
#: The default is backpropagation of the network's loss and one optimizer step; a GAN
#: plugs in its alternating steps (``bpcli.nn.gan.GanStep``).
BatchStep = Callable[[NDArray, NDArray, int], StepResult]
PROGRESS_INTERVAL_S = 0.1


class TrainingDiverged(CheckFailed):
    """The loss or a gradient became NaN or infinite."""


class TrainingInterrupted(BpError):
    """Stopped on request (Ctrl-C, SIGTERM) at a batch boundary, after a checkpoint."""

    exit_code = EXIT_INTERRUPTED


@dataclass
class TrainerState:
    """Where training stands.

    ``batch`` counts the batches done in epoch ``epoch + 1`` (0 at an epoch boundary) and
    ``loss_sum`` their summed losses; ``epoch_rng`` is the shuffling generator's state at
    the start of that epoch, from which its batch order is drawn again on resume.
    """

    epoch: int = 0
    batch: int = 0
    loss_sum: float = 0.0
    #: a step's own figures (a GAN's D loss, G loss, ...), summed over the rows of the
    #: batches that reported them this epoch: name -> [sum, rows]
    stat_sums: dict[str, list[float]] = field(default_factory=dict)
    best_val_loss: float = math.inf
    best_val_metric: float = math.nan
    best_epoch: int = 0
    best_monitor: float | None = None  # the monitored value at the best epoch
    wait: int = 0  # epochs since the monitored value last improved
    stopped_early: bool = False
    rollbacks: int = 0
    lr_scale: float = 1.0  # product of the rollbacks' learning-rate factors
    schedule: dict[str, Any] = field(default_factory=dict)
    epoch_rng: dict[str, Any] | None = None
    seconds: float = 0.0  # time spent training, summed over every session of the run

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # a list keeps the figures' order (JSON writers may sort a mapping's keys)
        data["stat_sums"] = [[name, *sums] for name, sums in self.stat_sums.items()]
        # JSON has no infinity; an unset best is recorded as null
        data["best_val_loss"] = self.best_val_loss if math.isfinite(self.best_val_loss) else None
        data["best_val_metric"] = (self.best_val_metric if math.isfinite(self.best_val_metric)
                                   else None)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainerState:
        data = {**data, "stat_sums": {name: [total, rows] for name, total, rows
                                      in data.get("stat_sums", [])}}
        state = cls(**data)
        if data.get("best_val_loss") is None:
            state.best_val_loss = math.inf
        if data.get("best_val_metric") is None:
            state.best_val_metric = math.nan
        return state


@dataclass(frozen=True)
class EarlyStopping:
    """Which value picks the best epoch (``monitor``: "val_loss" or "val_<metric>",
    higher is better when ``maximize``), and when to stop: after ``patience`` epochs
    (``None``: never) without improving on the best by more than ``min_delta``."""

    monitor: str = "val_loss"
    maximize: bool = False
    patience: int | None = None
    min_delta: float = 0.0

    @classmethod
    def watching(cls, metric_name: str, on_metric: bool, patience: int | None = None,
                 min_delta: float = 0.0) -> EarlyStopping:
        """The rule that watches the validation loss, or with ``on_metric`` the validation
        metric ``metric_name`` (higher accuracy is better; lower RMSE)."""
        return cls(monitor=f"val_{metric_name}" if on_metric else "val_loss",
                   maximize=on_metric and metric_name == "accuracy", patience=patience,
                   min_delta=min_delta)

    def improved(self, value: float, best: float | None) -> bool:
        """Whether an epoch's monitored ``value`` makes it the best epoch so far."""
        if not math.isfinite(value):
            return False
        if best is None:
            return True
        return value > best + self.min_delta if self.maximize else value < best - self.min_delta

    def best(self, values: Iterable[float]) -> int | None:
        """Which of the epochs whose monitored values are ``values`` (in order) training
        keeps, as an index; ``None`` when no value is finite."""
        best, index = None, None
        for i, value in enumerate(values):
            if self.improved(value, best):
                best, index = value, i
        return index


@dataclass(frozen=True)
class DivergencePolicy:
    """What to do when the loss or a gradient goes non-finite: stop (``rollback=False``),
    or go back to the last epoch boundary, multiply the learning rate by ``lr_factor`` and
    carry on, at most ``max_rollbacks`` times."""

    rollback: bool = False
    lr_factor: float = 0.5
    max_rollbacks: int = 3


class _Batches:
    """The training rows cut into batches: where each batch starts, and buffers (allocated
    once) that each batch's rows are gathered into."""

    def __init__(self, X: NDArray, Y: NDArray, batch_size: int) -> None:
        self.X, self.Y, self.rows = X, Y, len(X)
        self.bounds = batch_bounds(self.rows, batch_size)
        self.count = len(self.bounds) - 1
        largest = int(np.max(np.diff(self.bounds)))
        self.X_buf = np.empty((largest, *X.shape[1:]), dtype=X.dtype)
        self.Y_buf = np.empty((largest, *Y.shape[1:]), dtype=Y.dtype)

    def gather(self, order: NDArray, b: int) -> tuple[NDArray, NDArray]:
        """Batch ``b`` of the rows in ``order``, copied into the buffers."""
        index = order[self.bounds[b] : self.bounds[b + 1]]
        # mode="clip" skips numpy's defensive copy when writing to `out` (3x faster); the
        # indices come from a permutation, so nothing is ever clipped.
        return (np.take(self.X, index, axis=0, out=self.X_buf[: len(index)], mode="clip"),
                np.take(self.Y, index, axis=0, out=self.Y_buf[: len(index)], mode="clip"))


@dataclass
class _Snapshot:
    """Everything needed to go back to an epoch boundary in memory (for rollbacks)."""

    params: NDArray
    optimizer: dict[str, NDArray]
    state: TrainerState
    shuffle_rng: dict[str, Any]
    network_rng: dict[str, Any]


class Trainer:
    """Mini-batch training of ``network`` with ``optimizer``; each batch runs ``step``
    (default: backpropagation of the network's loss and one optimizer step; a GAN plugs
    in its alternating steps and names its joint parameter vector ``params``).

    Each epoch visits the training rows in a fresh order drawn from ``rng``; batches are
    gathered into buffers allocated once. After each epoch the validation loss and
    ``metric`` are computed; the weights with the lowest validation loss are kept
    (``best_params``) and put back into the network when training ends.
    """

    def __init__(
        self,
        network: Network,
        optimizer: Optimizer,
        *,
        epochs: int,
        batch_size: int,
        rng: np.random.Generator,
        metric: Metric,
        metric_name: str,
        listeners: list[Listener],
        should_stop: Callable[[], bool] = lambda: False,
        divergence: DivergencePolicy | None = None,
        schedule: Schedule | None = None,
        early_stopping: EarlyStopping | None = None,
        clip_norm: float | None = None,
        clip_value: float | None = None,
        health: bool = False,
        stop_after: Callable[[EpochEnded], bool] | None = None,
        step: BatchStep | None = None,
        params: NDArray | None = None,
        marks_best: bool = True,
        measure: Callable[[int], dict[str, float]] | None = None,
    ) -> None:
        self.network = network
        self.optimizer = optimizer
        self.epochs = epochs
        self.batch_size = batch_size
        self.rng = rng
        self.metric = metric
        self.metric_name = metric_name
        self.listeners = listeners
        self.should_stop = should_stop
        self.divergence = divergence or DivergencePolicy()
        self.schedule = schedule or Constant(optimizer.learning_rate)
        self.early_stopping = early_stopping or EarlyStopping()
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.health = health
        # a driver's rule (a sweep's scheduler) to end training after an epoch, as
        # early stopping does
        self.stop_after = stop_after
        self.state = TrainerState()
        self._clock = 0.0  # when state.seconds was last brought up to date
        #: how each batch trains, and the parameter vector it moves: what best weights,
        #: rollbacks and the weights put back at the end cover (a GAN's: both networks')
        self.step: BatchStep = step if step is not None else self._backprop_step
        self.params = params if params is not None else network.flat_params
        self.best_params = self.params.copy()
        #: False: no epoch is called best, the last is the model (a GAN's, whose losses
        #: do not rank its epochs); no best checkpoint is then written
        self.marks_best = marks_best
        #: figures measured at an epoch's end, added to its stats (a GAN's sample quality;
        #: NaN on epochs it does not measure); must not draw from the trainer's generators
        self.measure = measure

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)

    def fit(self, X: NDArray, Y: NDArray, X_val: NDArray, Y_val: NDArray) -> TrainingEnded:
        """Train from ``self.state`` (fresh, or restored from a checkpoint) to the last epoch."""
        # Overflow is caught as a non-finite loss or gradient, with a better message.
        with np.errstate(over="ignore", invalid="ignore"):
            return self._fit(X, Y, X_val, Y_val)

    def _fit(self, X: NDArray, Y: NDArray, X_val: NDArray, Y_val: NDArray) -> TrainingEnded:
        batches = _Batches(X, Y, self.batch_size)
        state = self.state
        if state.epoch_rng is not None:
            self.rng.bit_generator.state = state.epoch_rng
        if state.schedule:
            self.schedule.load_state(state.schedule)
        # copies of the weights and optimizer state at the last epoch's end, kept only
        # when a divergence may roll back to them
        snapshot = self._snapshot() if self.divergence.rollback else None
        self._clock = time.perf_counter()  # state.seconds counts up to here
        self.emit(TrainingStarted(self.epochs, batches.count, len(X), len(X_val),
                                  self.metric_name, state.epoch, state.batch))
        resumed_at = (state.epoch + 1, state.batch)  # the first epoch may start mid-way
        while self.state.epoch < self.epochs and not self.state.stopped_early:
            epoch = self.state.epoch + 1
            started = time.perf_counter()
            self.optimizer.learning_rate = self.schedule.rate(epoch) * self.state.lr_scale
            self.state.epoch_rng = dict(self.rng.bit_generator.state)
            start_params = self.params.copy() if self.health else None
            diverged, squared_norms = self._train_epoch(epoch, batches)
            if diverged is not None:
                snapshot = self._recover(diverged, snapshot)  # replaces self.state
                continue
            health = None
            if start_params is not None:
                done_before = resumed_at[1] if epoch == resumed_at[0] else 0
                steps = max(batches.count - done_before, 1)
                health = _health(self.network, start_params, squared_norms / steps,
                                 X_val if len(X_val) else X)
            self._end_epoch(epoch, len(X), X_val, Y_val, started, health)
            snapshot = self._snapshot() if self.divergence.rollback else None
        self.params[...] = self.best_params
        self._count_time()
        state = self.state
        ended = TrainingEnded(state.epoch, state.best_epoch, state.best_val_loss,
                              state.best_val_metric, state.seconds)
        self.emit(ended)
        return ended

    def _train_epoch(self, epoch: int, batches: _Batches) -> tuple[str | None, float]:
        """One pass over the training rows in a fresh order, from the batch the state is
        at: each batch's step (gradients, clipping and the update). Returns what went
        non-finite (or None) and the sum of the batches' squared gradient norms."""
        state = self.state
        order = self.rng.permutation(batches.rows)
        squared_norms, last_report = 0.0, time.perf_counter()
        for b in range(state.batch, batches.count):
            Xb, Yb = batches.gather(order, b)
            result = self.step(Xb, Yb, b)
            squared_norms += result.squared_norm
            if result.failed is not None:
                return self._diverged(result.failed, epoch, b + 1), squared_norms
            state.batch = b + 1
            state.loss_sum += result.loss * len(Xb)
            for name, value in result.stats.items():
                sums = state.stat_sums.setdefault(name, [0.0, 0.0])
                if not math.isnan(value):  # NaN: not measured on this batch
                    sums[0] += value * len(Xb)
                    sums[1] += len(Xb)
            if self.should_stop():
                self._count_time()
                self.emit(Stopped(epoch, b + 1, batches.count))
                raise TrainingInterrupted(f"stopped at epoch {epoch}, batch {b + 1} of "
                                          f"{batches.count}")
            now = time.perf_counter()
            if now - last_report >= PROGRESS_INTERVAL_S:
                last_report = now
                self.emit(BatchesDone(epoch, b + 1, batches.count))
        return None, squared_norms

    def _backprop_step(self, X: NDArray, Y: NDArray, b: int) -> StepResult:
        """The network's loss backpropagated, the gradients clipped, one optimizer step."""
        loss = self.network.compute_gradients(X, Y)
        # The squared gradient norm is NaN or infinite when any gradient is (or when
        # they are so large, above 1e19, that training has diverged anyway); BLAS's
        # dot product finds it 3x faster than a sum.
        g = self.network.flat_grads
        squared_norm = float(np.dot(g, g))
        if not (math.isfinite(loss) and math.isfinite(squared_norm)):
            where = _first_non_finite(self.network, X)
            return StepResult(loss, squared_norm, f"{where} (loss {loss})")
        if self.clip_norm is not None:
            clip_by_global_norm(g, self.clip_norm)
        if self.clip_value is not None:
            clip_by_value(g, self.clip_value)
        self.optimizer.step([self.network.flat_params], [g])
        return StepResult(loss, squared_norm)

    def _end_epoch(self, epoch: int, n: int, X_val: NDArray, Y_val: NDArray, started: float,
                   health: Health | None) -> None:
        """Validation, the best epoch so far, the schedule and early stopping; then the
        state moves to the epoch boundary and listeners hear of it."""
        state, rule = self.state, self.early_stopping
        if len(X_val):
            val_loss, outputs = self.network.evaluate(X_val, Y_val)
            val_metric = self.metric(outputs, Y_val)
            monitored = val_loss if rule.monitor == "val_loss" else val_metric
            is_best = rule.improved(monitored, state.best_monitor)
        else:  # no validation rows (every row trains): the last epoch is the model
            val_loss = val_metric = monitored = math.nan
            is_best = True
        if is_best:
            state.best_val_loss, state.best_val_metric = val_loss, val_metric
            state.best_epoch, state.best_monitor, state.wait = epoch, monitored, 0
            self.best_params[...] = self.params
        else:
            state.wait += 1
        self.schedule.observe(epoch, val_loss)
        train_loss = state.loss_sum / n
        stats = {name: total / rows if rows else math.nan
                 for name, (total, rows) in state.stat_sums.items()}
        if self.measure is not None:
            stats.update(self.measure(epoch))
        state.epoch, state.batch, state.loss_sum, state.stat_sums = epoch, 0, 0.0, {}
        state.epoch_rng = dict(self.rng.bit_generator.state)
        state.schedule = self.schedule.state()
        state.stopped_early = rule.patience is not None and state.wait >= rule.patience
        self._count_time()
        ended = EpochEnded(epoch, self.epochs, train_loss, val_loss, val_metric,
                           self.optimizer.learning_rate, time.perf_counter() - started,
                           is_best and self.marks_best, state.rollbacks, health, stats)
        # decided before the listeners hear of the epoch: its checkpoint records the stop
        stopped_by = None
        if (not state.stopped_early and epoch < self.epochs and self.stop_after is not None
                and self.stop_after(ended)):
            state.stopped_early, stopped_by = True, "scheduler"
        self.emit(ended)
        if state.stopped_early:
            self.emit(StoppedEarly(epoch, state.best_epoch, rule.monitor, state.wait,
                                   stopped_by))

    def _count_time(self) -> None:
        """Add the time since the last count to the run's training time."""
        now = time.perf_counter()
        self.state.seconds += now - self._clock
        self._clock = now

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(
            params=self.params.copy(),
            optimizer={k: np.array(v, copy=True) for k, v in self.optimizer.state().items()},
            state=TrainerState.from_json(self.state.to_json()),
            shuffle_rng=dict(self.rng.bit_generator.state),
            network_rng=dict(self.network.rng.bit_generator.state),
        )

    def _recover(self, message: str, snapshot: _Snapshot | None) -> _Snapshot:
        """Roll back to the last epoch boundary with a lower learning rate, or give up."""
        policy = self.divergence
        if snapshot is None or self.state.rollbacks >= policy.max_rollbacks:
            if policy.rollback:
                message += f" (after {self.state.rollbacks} rollbacks)"
            raise TrainingDiverged(message)
        self.params[...] = snapshot.params
        self.optimizer.load_state(snapshot.optimizer)
        rollbacks, seconds = self.state.rollbacks + 1, self.state.seconds
        self.state = TrainerState.from_json(snapshot.state.to_json())
        self.state.rollbacks, self.state.seconds = rollbacks, seconds
        self.state.lr_scale *= policy.lr_factor
        self.rng.bit_generator.state = snapshot.shuffle_rng
        self.network.rng.bit_generator.state = snapshot.network_rng
        if self.state.schedule:
            self.schedule.load_state(self.state.schedule)
        rate = self.schedule.rate(self.state.epoch + 1) * self.state.lr_scale
        self.emit(RolledBack(self.state.epoch, message, rate, rollbacks))
        return self._snapshot()

    def _describe_divergence(self, loss: float, epoch: int, batch: int, Xb: NDArray) -> str:
        """Say where the network's first non-finite values appeared, and what usually
        causes them."""
        return self._diverged(f"{_first_non_finite(self.network, Xb)} (loss {loss})", epoch,
                              batch)

    def _diverged(self, where: str, epoch: int, batch: int) -> str:
        """The message for a divergence found ``where``, with what usually causes it."""
        return (f"training diverged at epoch {epoch}, batch {batch}: {where}. "
                f"Likely causes: a learning rate too high (now "
                f"{self.optimizer.learning_rate:g}; try 10x smaller) or input columns with "
                "huge values")


def _health(network: Network, start: NDArray, mean_squared_norm: float,
            X_val: NDArray) -> Health:
    """Gradient norm, update-to-weight ratio per weight matrix, and dead ReLU units."""
    ratios = {}
    offset = 0
    for name, param, _ in network.parameters():
        before = start[offset : offset + param.size]
        offset += param.size
        if name.endswith(".W"):
            size = float(np.linalg.norm(before))
            change = float(np.linalg.norm(param.reshape(-1) - before))
            number = network.layer_numbers[int(name.split(".")[0])]  # as validate shows
            ratios[str(number)] = change / size if size else math.inf
    dead = silent = 0
    A = network.shaped(X_val[:1024])
    for layer in network.layers:
        A = layer.forward(A, False)
        if isinstance(layer, Activation) and layer.name == "relu" and len(A):
            units = A.reshape(len(A), -1)  # a unit: one position of one channel
            silent += int(np.sum(~np.any(units > 0, axis=0)))
            dead += units.shape[1]
    return Health(math.sqrt(mean_squared_norm), ratios, silent / dead if dead else None)


def batch_bounds(n: int, batch_size: int) -> list[int]:
    """Start of each batch, then ``n``. A last batch of a single row joins the one before:
    batch statistics (batch_norm) are undefined for one row."""
    bounds = list(range(0, n, batch_size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return bounds


def _layer(network: Network, index: int) -> str:
    """``layer 1 (dense)``, numbered as the config numbers its layers."""
    number, kind = network.layer_name(index).split(" ", 1)
    return f"layer {number} ({kind})"


def _first_non_finite(network: Network, X: NDArray) -> str:
    """The first place, in the order backpropagation computes them, with NaN or inf."""
    for i, layer in enumerate(network.layers):
        for key, param in layer.params.items():
            if not np.isfinite(param).all():
                return f"parameter {key} of {_layer(network, i)} is not finite"
    A = network.shaped(X)
    for i, layer in enumerate(network.layers):
        A = layer.forward(A, False)
        if not np.isfinite(A).all():
            return f"the output of {_layer(network, i)} is not finite"
    for i in reversed(range(len(network.layers))):  # backward order: output layer first
        layer = network.layers[i]
        for key, grad in layer.grads.items():
            if not np.isfinite(grad).all():
                return f"the gradient of {key} in {_layer(network, i)} is not finite"
    largest = float(np.max(np.abs(A))) if A.size else 0.0
    return (f"every layer's output is finite (the largest is {largest:.3g} in size) but the "
            "loss overflowed")


__all__ = [
    "BatchStep",
    "StepResult",
    "DivergencePolicy",
    "Trainer",
    "TrainerState",
    "TrainingDiverged",
    "TrainingInterrupted",
]
