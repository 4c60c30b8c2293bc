"""The training loop: mini-batches, validation each epoch, best-weights tracking.

The trainer never prints and never touches files; it tells its listeners what happened.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bpcli.errors import CheckFailed
from bpcli.events import BatchesDone, EpochEnded, Event, Listener, TrainingEnded, TrainingStarted
from bpcli.nn import Network, Optimizer

Metric = Callable[[NDArray, NDArray], float]
PROGRESS_INTERVAL_S = 0.1


class TrainingDiverged(CheckFailed):
    """The loss became NaN or infinite."""


@dataclass
class TrainingResult:
    epochs_done: int
    best_epoch: int
    best_val_loss: float
    best_val_metric: float
    seconds: float


class Trainer:
    """Mini-batch training of ``network`` with ``optimizer``.

    Each epoch visits the training rows in a fresh order drawn from ``rng``; batches are
    gathered into buffers allocated once. After each epoch the validation loss and
    ``metric`` are computed; the weights with the lowest validation loss are kept and put
    back into the network when training ends.
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
    ) -> None:
        self.network = network
        self.optimizer = optimizer
        self.epochs = epochs
        self.batch_size = batch_size
        self.rng = rng
        self.metric = metric
        self.metric_name = metric_name
        self.listeners = listeners

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)

    def fit(self, X: NDArray, Y: NDArray, X_val: NDArray, Y_val: NDArray) -> TrainingResult:
        # Overflow is caught as a non-finite loss below, with a better message than numpy's.
        with np.errstate(over="ignore", invalid="ignore"):
            return self._fit(X, Y, X_val, Y_val)

    def _fit(self, X: NDArray, Y: NDArray, X_val: NDArray, Y_val: NDArray) -> TrainingResult:
        n = len(X)
        batch = min(self.batch_size, n)
        batches = math.ceil(n / batch)
        X_buf = np.empty((batch, *X.shape[1:]), dtype=X.dtype)
        Y_buf = np.empty((batch, *Y.shape[1:]), dtype=Y.dtype)
        params = [self.network.flat_params]
        grads = [self.network.flat_grads]
        best = (math.inf, math.nan, 0)  # (val loss, val metric, epoch)
        best_params = [p.copy() for p in params]
        started = time.perf_counter()
        self.emit(TrainingStarted(self.epochs, batches, n, len(X_val), self.metric_name))
        epoch = 0
        for epoch in range(1, self.epochs + 1):
            epoch_start = last_report = time.perf_counter()
            order = self.rng.permutation(n)
            loss_sum = 0.0
            for b in range(batches):
                index = order[b * batch : (b + 1) * batch]
                # mode="clip" skips numpy's defensive copy when writing to `out` (3x faster);
                # the indices come from a permutation, so nothing is ever clipped.
                Xb = np.take(X, index, axis=0, out=X_buf[: len(index)], mode="clip")
                Yb = np.take(Y, index, axis=0, out=Y_buf[: len(index)], mode="clip")
                loss = self.network.compute_gradients(Xb, Yb)
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"training diverged: the loss became {loss} at epoch {epoch}, batch "
                        f"{b + 1}; try a smaller learning rate, and check that no input "
                        "column holds huge values"
                    )
                self.optimizer.step(params, grads)
                loss_sum += loss * len(index)
                now = time.perf_counter()
                if now - last_report >= PROGRESS_INTERVAL_S:
                    last_report = now
                    self.emit(BatchesDone(epoch, b + 1, batches))
            val_loss, outputs = self.network.evaluate(X_val, Y_val)
            val_metric = self.metric(outputs, Y_val)
            is_best = val_loss < best[0]
            if is_best:
                best = (val_loss, val_metric, epoch)
                for saved, current in zip(best_params, params, strict=True):
                    saved[...] = current
            self.emit(EpochEnded(epoch, self.epochs, loss_sum / n, val_loss, val_metric,
                                 self.optimizer.learning_rate,
                                 time.perf_counter() - epoch_start, is_best))
        for current, saved in zip(params, best_params, strict=True):
            current[...] = saved
        result = TrainingResult(epoch, best[2], best[0], best[1], time.perf_counter() - started)
        self.emit(TrainingEnded(result.epochs_done, result.best_epoch, result.best_val_loss,
                                result.best_val_metric, result.seconds))
        return result
