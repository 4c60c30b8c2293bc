"""The training loop of bpcli/trainer.py: batching (which rows each step sees, how many steps
an epoch has), clipping, health, early stopping, rollbacks and its state; and float32
training, which follows the learning curves of float64 (the precision gradcheck proves the
gradients in) on the example configs."""

from __future__ import annotations

import math
import types
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from bpcli.config import load_config
from bpcli.events import (
    BatchesDone,
    EpochEnded,
    RolledBack,
    Stopped,
    StoppedEarly,
    TrainingEnded,
    TrainingStarted,
)
from bpcli.experiment import prepare
from bpcli.nn import Dense, Network
from bpcli.nn.losses import MeanSquaredError
from bpcli.nn.optimizers import SGD
from bpcli.nn.schedules import Exponential, ReduceOnPlateau
from bpcli.trainer import (
    DivergencePolicy,
    EarlyStopping,
    StepResult,
    Trainer,
    TrainerState,
    TrainingDiverged,
    TrainingInterrupted,
    batch_bounds,
)
from tests.conftest import CONFIGS


class RecordingNetwork(Network):
    """A network that remembers the row ids (column 0) of every batch it trains on."""

    def __init__(self) -> None:
        super().__init__([Dense(1)], MeanSquaredError(), (2,), np.random.default_rng(0),
                         np.float64)
        self.batches: list[list[int]] = []
        self.losses: list[float] = []

    def compute_gradients(self, X: Any, Y: NDArray) -> float:
        # the trainer reuses its batch buffers: keep the ids, not the array
        self.batches.append([int(i) for i in X[:, 0]])
        assert np.array_equal(Y[:, 0], X[:, 0] * 2)  # targets travel with their rows
        loss = super().compute_gradients(X, Y)
        self.losses.append(loss)
        return loss


def rows(n: int) -> tuple[NDArray, NDArray]:
    ids = np.arange(n, dtype=np.float64)
    return np.column_stack([ids, np.zeros(n)]), (ids * 2)[:, None]


def make_trainer(network: Network, epochs: int, batch_size: int, events: list[Any],
                 should_stop: Any = lambda: False, learning_rate: float = 1e-3,
                 rng: np.random.Generator | None = None, **options: Any) -> Trainer:
    return Trainer(network, SGD(learning_rate=learning_rate), epochs=epochs,
                   batch_size=batch_size,
                   rng=np.random.default_rng(1) if rng is None else rng,
                   metric=lambda P, Y: 0.0, metric_name="m", listeners=[events.append],
                   should_stop=should_stop, **options)


def expected_sizes(n: int, batch_size: int) -> list[int]:
    """Full batches, then the rest; a rest of one row joins the batch before it."""
    full, rest = divmod(n, batch_size)
    sizes = [batch_size] * full + ([rest] if rest else [])
    if len(sizes) > 1 and sizes[-1] == 1:
        sizes[-2:] = [batch_size + 1]
    return sizes


@pytest.mark.parametrize(("n", "batch_size", "sizes"), [
    (10, 5, [5, 5]),        # divides evenly
    (10, 4, [4, 4, 2]),     # a tail batch of 2 is kept, not dropped
    (9, 4, [4, 5]),         # a tail of one row joins the batch before
    (5, 4, [5]),            # ... also when that leaves a single batch
    (3, 8, [3]),            # fewer rows than a batch: one batch
    (1, 4, [1]),            # a single row is still trained on
    (5, 1, [1, 1, 1, 2]),   # batches of one, the last row joining the one before
])
def test_batch_bounds(n: int, batch_size: int, sizes: list[int]) -> None:
    bounds = batch_bounds(n, batch_size)
    assert bounds[0] == 0 and bounds[-1] == n
    assert np.diff(bounds).tolist() == sizes == expected_sizes(n, batch_size)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(1, 70), epochs=st.integers(1, 3))
def test_every_row_once_per_epoch(n: int, batch_size: int, epochs: int) -> None:
    network = RecordingNetwork()
    events: list[Any] = []
    X, Y = rows(n)
    make_trainer(network, epochs, batch_size, events).fit(X, Y, X[:2], Y[:2])
    sizes = expected_sizes(n, batch_size)
    (started,) = [e for e in events if isinstance(e, TrainingStarted)]
    assert started.batches_per_epoch == len(sizes) and started.n_train == n
    assert len(network.batches) == epochs * len(sizes)
    orders = []
    for epoch in range(epochs):
        batches = network.batches[epoch * len(sizes) : (epoch + 1) * len(sizes)]
        assert [len(b) for b in batches] == sizes
        seen = [i for b in batches for i in b]
        assert sorted(seen) == list(range(n))  # each row exactly once
        orders.append(seen)
    if n >= 8 and epochs > 1:
        assert orders[0] != orders[1]  # a fresh order each epoch


def test_train_loss_is_the_mean_over_rows() -> None:
    """Batches of unequal size weigh by their rows, not one each; each epoch its own."""
    network = RecordingNetwork()
    events: list[Any] = []
    X, Y = rows(10)
    make_trainer(network, 2, 4, events).fit(X, Y, X[:2], Y[:2])
    ended = [e for e in events if isinstance(e, EpochEnded)]
    sizes = [len(b) for b in network.batches]
    assert sizes == [4, 4, 2] * 2
    for epoch, losses in ((0, network.losses[:3]), (1, network.losses[3:])):
        expected = sum(loss * size for loss, size in zip(losses, sizes[:3], strict=True)) / 10
        assert ended[epoch].train_loss == pytest.approx(expected, rel=1e-12)
        assert ended[epoch].train_loss != pytest.approx(float(np.mean(losses)), rel=1e-6)


def test_resume_mid_epoch_sees_the_rest_of_the_rows() -> None:
    """Stopped after 2 of 5 batches, the resumed epoch trains on the other rows only."""
    network = RecordingNetwork()
    events: list[Any] = []
    calls = iter([False, True])
    trainer = make_trainer(network, 2, 3, events, should_stop=lambda: next(calls, False))
    X, Y = rows(15)
    with pytest.raises(TrainingInterrupted, match="^stopped at epoch 1, batch 2 of 5$"):
        trainer.fit(X, Y, X[:2], Y[:2])
    assert trainer.state.batch == 2 and trainer.state.epoch == 0
    assert [e for e in events if isinstance(e, Stopped)] == [Stopped(1, 2, 5)]
    trainer.fit(X, Y, X[:2], Y[:2])
    first_epoch = [i for b in network.batches[:5] for i in b]
    second_epoch = [i for b in network.batches[5:] for i in b]
    assert len(network.batches) == 10
    assert sorted(first_epoch) == sorted(second_epoch) == list(range(15))
    started = [e for e in events if isinstance(e, TrainingStarted)]
    # epochs, batches an epoch, training and validation rows, the metric, where it starts
    assert started == [TrainingStarted(2, 5, 15, 2, "m", 0, 0),
                       TrainingStarted(2, 5, 15, 2, "m", 0, 2)]
    assert math.isfinite(trainer.state.best_val_loss)


class GradientNormNetwork(RecordingNetwork):
    """Also records each batch's squared gradient norm, and can diverge once on demand."""

    def __init__(self, *diverge_at_calls: int) -> None:
        super().__init__()
        self.squared_norms: list[float] = []
        self.diverge_at_calls = diverge_at_calls

    def compute_gradients(self, X: Any, Y: NDArray) -> float:
        loss = super().compute_gradients(X, Y)
        if len(self.losses) in self.diverge_at_calls:
            return math.nan
        self.squared_norms.append(float(np.dot(self.flat_grads, self.flat_grads)))
        return loss


def test_clip_value_bounds_every_step() -> None:
    network = GradientNormNetwork()
    X, Y = rows(12)
    X[:, 1] = 1000.0  # a huge input, huge gradients
    before = network.flat_params.copy()
    make_trainer(network, 1, 12, [], learning_rate=1.0, clip_value=0.01).fit(X, Y, X, Y)
    change = np.abs(network.flat_params - before)
    assert max(network.squared_norms) > 1e6  # the raw gradient was far above the limit
    assert np.allclose(change, 0.01)  # one step of lr 1 on gradients clipped to 0.01


def test_health_reports_the_mean_gradient_norm_and_update_ratio() -> None:
    network = GradientNormNetwork()
    events: list[Any] = []
    X, Y = rows(12)
    before = network.flat_params.copy()
    make_trainer(network, 1, 4, events, health=True).fit(X, Y, X, Y)
    (ended,) = [e for e in events if isinstance(e, EpochEnded)]
    assert ended.health is not None
    assert ended.health.grad_norm == pytest.approx(math.sqrt(np.mean(network.squared_norms)))
    W = network.layers[0].params["W"].reshape(-1)
    W_before = before[: W.size]
    ratio = np.linalg.norm(W - W_before) / np.linalg.norm(W_before)
    assert ended.health.update_ratios == {"0": pytest.approx(ratio)}
    assert ended.health.dead_relu is None  # no relu layers to count


def test_health_after_a_resume_averages_over_the_batches_run() -> None:
    network = GradientNormNetwork()
    events: list[Any] = []
    calls = iter([False, True])
    trainer = make_trainer(network, 2, 3, events, should_stop=lambda: next(calls, False),
                           health=True)
    X, Y = rows(15)
    with pytest.raises(TrainingInterrupted):
        trainer.fit(X, Y, X, Y)
    trainer.fit(X, Y, X, Y)
    first, second = [e for e in events if isinstance(e, EpochEnded)]
    assert first.health is not None and second.health is not None
    assert len(network.squared_norms) == 10
    # the resumed session ran batches 3 to 5: their mean, not the sum over 5 batches
    assert first.health.grad_norm == pytest.approx(
        math.sqrt(np.mean(network.squared_norms[2:5])))
    # the next epoch ran whole
    assert second.health.grad_norm == pytest.approx(
        math.sqrt(np.mean(network.squared_norms[5:])))


def test_without_health_none_is_measured() -> None:
    events: list[Any] = []
    X, Y = rows(8)
    make_trainer(RecordingNetwork(), 2, 4, events).fit(X, Y, X, Y)
    assert [e.health for e in events if isinstance(e, EpochEnded)] == [None, None]


def test_a_non_finite_monitored_value_is_never_the_best() -> None:
    rule = EarlyStopping()
    assert not rule.improved(math.nan, None) and not rule.improved(math.inf, 1.0)
    assert rule.improved(2.0, None) and rule.improved(0.5, 1.0) and not rule.improved(1.0, 1.0)
    assert EarlyStopping(maximize=True, min_delta=0.1).improved(1.2, 1.0)
    assert not EarlyStopping(maximize=True, min_delta=0.1).improved(1.05, 1.0)
    assert not EarlyStopping(maximize=True).improved(0.9, 0.9)  # a tie keeps the first


def test_a_rollback_goes_back_an_epoch_with_a_lower_rate() -> None:
    """Diverging in epoch 3 goes back to the end of epoch 2 and runs epoch 3 again."""
    network = GradientNormNetwork(9)  # 4 batches an epoch: the 9th is epoch 3, batch 1
    events: list[Any] = []
    X, Y = rows(16)
    schedule = ReduceOnPlateau(0.01, factor=0.5, patience=1)
    trainer = make_trainer(network, 3, 4, events, learning_rate=0.01, schedule=schedule,
                           divergence=DivergencePolicy(rollback=True, lr_factor=0.25))
    trainer.fit(X, Y, X, Y)
    (rolled,) = [e for e in events if isinstance(e, RolledBack)]
    assert rolled.to_epoch == 2 and rolled.rollbacks == 1
    rates = [e.learning_rate for e in events if isinstance(e, EpochEnded)]
    assert rates == [0.01, 0.01, pytest.approx(0.0025)]  # epochs 1, 2 and 3 (after it)
    assert rolled.learning_rate == pytest.approx(0.0025)
    assert trainer.state.epoch == 3 and trainer.state.rollbacks == 1
    assert len(network.batches) == 3 * 4 + 1  # epoch 3 ran again, whole
    assert schedule.last_epoch == 3


def test_health_counts_silent_relu_units_in_inference_mode() -> None:
    """Two ReLU layers with 2 of 4 and 2 of 3 units silent: 4 of 7. Only the first 1024
    validation rows count, and in inference mode (batch norm's running statistics)."""
    from bpcli.nn import Activation
    from bpcli.nn.layers import BatchNorm
    from bpcli.trainer import _health

    network = Network([Dense(4), Activation("relu"), Dense(3), BatchNorm(), Activation("relu"),
                       Dense(1)], MeanSquaredError(), (1,), np.random.default_rng(0),
                      np.float64)
    first, second = network.layers[0].params, network.layers[2].params
    # x is -1 or -2 on the first 1024 rows, 1 or 2 after them. First layer: unit 0 (= x)
    # fires only after row 1024, unit 1 never, unit 2 always at 0.5 (not above 1), unit 3
    # (= 3 + x) always, at 1 or 2.
    first["W"][...] = [[1.0, 0.0, 0.0, 0.0]]
    first["b"][...] = [0.0, -1.0, 0.5, 3.0]
    # Second layer: unit 0 at -4.5 on every row, unit 1 (-4 or -3) below zero with batch
    # norm's initial running statistics (mean 0, variance 1) but centred by the batch's
    # own in training mode, unit 2 (1 or 2) firing.
    second["W"][...] = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0],
                                 [0.0, 1.0, 1.0]])
    second["b"][...] = [-5.0, -5.0, 0.0]
    X_val = np.concatenate([np.full((1024, 1), -1.0), np.full((100, 1), 1.0)])
    X_val[::2] *= 2
    start = network.flat_params.copy()
    start[: first["W"].size] = 0.0  # the first weights started at zero: an infinite ratio
    health = _health(network, start, 4.0, X_val)
    assert health.dead_relu == pytest.approx(4 / 7)
    assert health.grad_norm == 2.0
    assert health.update_ratios["0"] == math.inf
    W2 = network.layers[2].params["W"]
    assert health.update_ratios["1"] == 0.0 and np.linalg.norm(W2) > 0  # layers as numbered


def test_rollbacks_compound_and_restart_the_schedule_where_they_go_back() -> None:
    """Two divergences in epoch 2: the rate is the schedule's for epoch 2 times 0.5, then
    times 0.5 again; each RolledBack says why."""
    network = GradientNormNetwork(5, 6)  # 4 batches an epoch: epoch 2 fails, then again
    events: list[Any] = []
    X, Y = rows(16)
    schedule = Exponential(0.01, gamma=0.5)  # 0.01, 0.005, 0.0025 in epochs 1, 2, 3
    trainer = make_trainer(network, 3, 4, events, learning_rate=0.01, schedule=schedule,
                           divergence=DivergencePolicy(rollback=True, lr_factor=0.5))
    trainer.fit(X, Y, X, Y)
    rolled = [e for e in events if isinstance(e, RolledBack)]
    assert [(e.to_epoch, e.rollbacks) for e in rolled] == [(1, 1), (1, 2)]
    assert [e.learning_rate for e in rolled] == [pytest.approx(0.005 * 0.5),
                                                 pytest.approx(0.005 * 0.25)]
    assert all(e.reason.startswith("training diverged at epoch 2, batch 1: ") for e in rolled)
    rates = [e.learning_rate for e in events if isinstance(e, EpochEnded)]
    assert rates == [0.01, pytest.approx(0.005 * 0.25), pytest.approx(0.0025 * 0.25)]


def test_giving_up_says_where_why_and_after_how_many_rollbacks() -> None:
    network = GradientNormNetwork(5, 6)
    X, Y = rows(16)
    trainer = make_trainer(network, 3, 4, [], learning_rate=0.01,
                           divergence=DivergencePolicy(rollback=True, max_rollbacks=1))
    with pytest.raises(TrainingDiverged) as error:
        trainer.fit(X, Y, X, Y)
    message = str(error.value)
    assert message.startswith("training diverged at epoch 2, batch 1: ")
    assert "(loss nan). Likely causes: a learning rate too high (now 0.005; try 10x " \
           "smaller) or input columns with huge values (after 1 rollbacks)" in message


def test_where_divergence_is_found_when_every_output_is_finite() -> None:
    """The loss overflowed though no layer's output did: the message gives the largest
    output, computed in inference mode (dropout would zero some of it in training)."""
    from bpcli.nn import Dropout

    network = Network([Dense(1), Dropout(0.5)], MeanSquaredError(), (1,),
                      np.random.default_rng(0), np.float64)
    network.layers[0].params["W"][...] = 3.0
    network.layers[0].params["b"][...] = 0.0
    network.compute_gradients(np.array([[1.0], [2.0]]), np.zeros((2, 1)))
    trainer = make_trainer(network, 1, 2, [])
    message = trainer._describe_divergence(math.inf, 1, 1, np.array([[1.0], [-2.0]]))
    assert message.startswith("training diverged at epoch 1, batch 1: every layer's output "
                              "is finite (the largest is 6 in size) but the loss overflowed")
    empty = trainer._describe_divergence(math.inf, 1, 1, np.zeros((0, 1)))
    assert "(the largest is 0 in size)" in empty


def test_trainer_state_round_trips_through_json_with_no_best_yet() -> None:
    state = TrainerState()
    data = state.to_json()
    assert data["best_val_loss"] is None and data["best_val_metric"] is None
    again = TrainerState.from_json(data)
    assert again.best_val_loss == math.inf and math.isnan(again.best_val_metric)
    state.best_val_loss, state.best_val_metric = 0.5, 0.9
    assert TrainerState.from_json(state.to_json()) == state


# -- float32 follows float64 ----------------------------------------------------------
# (config, settings, epochs, the largest relative difference of a loss allowed). Dropout
# draws its masks in the network's dtype, a different random stream in float32 and float64,
# so the diabetes example is compared without it: what differs then is rounding alone.
# Spirals (Adam at 0.01 on a problem whose fit keeps changing) amplifies rounding most: from
# PyTorch's start (the dense default since the quality benchmark) the curves part by up to
# 6.4e-5 by epoch 40, against under 1e-5 from Glorot's.
CASES = [("iris.yaml", [], 40, 1e-5), ("spirals.yaml", [], 40, 1e-4),
         ("diabetes.yaml", ["model.layers.1.rate=0"], 30, 1e-5),
         ("diabetes-advanced.yaml", ["model.layers.2.rate=0"], 30, 1e-5)]


def curve(name: str, settings: list[str], epochs: int, dtype: Any) -> np.ndarray:
    """Training and validation loss per epoch of ``name`` trained in ``dtype``."""
    loaded = load_config(CONFIGS / name, [*settings, f"training.epochs={epochs}"])
    experiment = prepare(loaded, dtype)
    init_seed, shuffle_seed = np.random.SeedSequence(0).spawn(2)
    network = experiment.build_network(np.random.default_rng(init_seed), dtype)
    rows: list[tuple[float, float]] = []

    def listen(event: Any) -> None:
        if hasattr(event, "val_loss") and hasattr(event, "train_loss"):
            rows.append((event.train_loss, event.val_loss))

    optimizer = experiment.build_optimizer(network)
    trainer = Trainer(network, optimizer, epochs=epochs,
                      batch_size=experiment.config.training.batch_size,
                      rng=np.random.default_rng(shuffle_seed), metric=experiment.metric,
                      metric_name=experiment.metric_name, listeners=[listen],
                      schedule=experiment.build_schedule(optimizer))
    trainer.fit(experiment.X_train, experiment.Y_train, experiment.X_val, experiment.Y_val)
    return np.array(rows)


@pytest.mark.parametrize(("name", "settings", "epochs", "tolerance"), CASES)
def test_float32_follows_the_float64_curve(name: str, settings: list[str], epochs: int,
                                           tolerance: float) -> None:
    single = curve(name, settings, epochs, np.float32)
    double = curve(name, settings, epochs, np.float64)
    assert single.shape == double.shape == (epochs, 2)
    relative = np.abs(single - double) / np.abs(double)
    assert relative.max() < tolerance, (name, relative.max())
    # and float32 is not float64 in disguise: the numbers differ in the last places
    assert not np.array_equal(single, double)


# -- early stopping, a driver's stop, progress and a step's own figures ---------------
class ScriptedNetwork(RecordingNetwork):
    """Validation losses given in advance, one an epoch; the metric is minus the loss."""

    def __init__(self, val_losses: list[float]) -> None:
        super().__init__()
        self.val_losses = iter(val_losses)

    def evaluate(self, X: Any, Y: NDArray, batch_size: int = 1024) -> tuple[float, Any]:
        _, outputs = super().evaluate(X, Y, batch_size)
        return next(self.val_losses), outputs


def scripted_fit(val_losses: list[float], epochs: int, **options: Any
                 ) -> tuple[Trainer, list[Any], list[NDArray]]:
    """Train a scripted network; also return its weights at the end of each epoch."""
    network = ScriptedNetwork(val_losses)
    events: list[Any] = []
    weights: list[NDArray] = []

    def listen(event: Any) -> None:
        events.append(event)
        if isinstance(event, EpochEnded):
            weights.append(network.flat_params.copy())

    trainer = make_trainer(network, epochs, 4, [], **options)
    trainer.listeners = [listen]
    X, Y = rows(8)
    trainer.fit(X, Y, X[:2], Y[:2])
    return trainer, events, weights


def test_patience_stops_after_that_many_epochs_without_improvement() -> None:
    """Best at epoch 2 (0.5); 0.55 and 0.52 do not beat it by min_delta 0.05 nor does 0.46:
    patience 3 stops after epoch 5 and keeps epoch 2's weights."""
    rule = EarlyStopping(patience=3, min_delta=0.05)
    trainer, events, weights = scripted_fit([1.0, 0.5, 0.55, 0.52, 0.46, 0.1], 10,
                                            early_stopping=rule)
    ended = [e for e in events if isinstance(e, EpochEnded)]
    assert [e.epoch for e in ended] == [1, 2, 3, 4, 5]
    assert [e.is_best for e in ended] == [True, True, False, False, False]
    (stopped,) = [e for e in events if isinstance(e, StoppedEarly)]
    assert (stopped.epoch, stopped.best_epoch, stopped.monitor, stopped.patience,
            stopped.by) == (5, 2, "val_loss", 3, None)
    (done,) = [e for e in events if isinstance(e, TrainingEnded)]
    assert (done.epochs_done, done.best_epoch, done.best_val_loss) == (5, 2, 0.5)
    assert trainer.state.stopped_early and trainer.state.wait == 3
    assert np.array_equal(trainer.network.flat_params, weights[1])  # epoch 2's weights
    assert not np.array_equal(weights[1], weights[4])


def test_an_improvement_resets_the_wait() -> None:
    """Patience 2: epochs 3 and 5 improve, so no two epochs in a row fail to."""
    trainer, events, _ = scripted_fit([1.0, 1.1, 0.9, 1.0, 0.8, 0.85], 6,
                                      early_stopping=EarlyStopping(patience=2))
    assert not any(isinstance(e, StoppedEarly) for e in events)
    assert trainer.state.epoch == 6 and trainer.state.best_epoch == 5
    assert trainer.state.wait == 1 and not trainer.state.stopped_early


def test_monitoring_the_metric_picks_the_epoch_with_the_best_metric() -> None:
    """The metric (here the first output's mean) picks the epoch, not the loss."""
    rule = EarlyStopping.watching("accuracy", on_metric=True)
    assert (rule.monitor, rule.maximize) == ("val_accuracy", True)
    assert EarlyStopping.watching("rmse", on_metric=True).maximize is False
    assert EarlyStopping.watching("accuracy", on_metric=False).monitor == "val_loss"
    assert EarlyStopping.watching("rmse", True, patience=3, min_delta=0.1) == EarlyStopping(
        monitor="val_rmse", maximize=False, patience=3, min_delta=0.1)
    metrics = iter([0.2, 0.9, 0.5])
    network = ScriptedNetwork([0.3, 0.2, 0.1])  # the loss alone would pick epoch 3
    trainer = Trainer(network, SGD(learning_rate=1e-3), epochs=3, batch_size=4,
                      rng=np.random.default_rng(1), metric=lambda P, Y: next(metrics),
                      metric_name="accuracy", listeners=[], early_stopping=rule)
    X, Y = rows(8)
    ended = trainer.fit(X, Y, X[:2], Y[:2])
    assert (ended.best_epoch, ended.best_val_loss, ended.best_val_metric) == (2, 0.2, 0.9)


def test_a_drivers_stop_ends_training_after_that_epoch() -> None:
    """stop_after is asked after each epoch but the last; its stop is reported as the
    scheduler's."""
    asked: list[int] = []

    def stop_after(ended: EpochEnded) -> bool:
        asked.append(ended.epoch)
        return ended.epoch == 2

    trainer, events, _ = scripted_fit([1.0, 0.9, 0.8], 3, stop_after=stop_after)
    (stopped,) = [e for e in events if isinstance(e, StoppedEarly)]
    assert (stopped.epoch, stopped.by) == (2, "scheduler")
    assert asked == [1, 2] and trainer.state.epoch == 2 and trainer.state.stopped_early
    # the epoch's event comes first, and already carries the stop in the state
    kinds = [type(e).__name__ for e in events]
    assert kinds[-3:] == ["EpochEnded", "StoppedEarly", "TrainingEnded"]
    _, events, _ = scripted_fit([1.0, 0.9], 2, stop_after=lambda e: True)
    (stopped,) = [e for e in events if isinstance(e, StoppedEarly)]
    assert stopped.epoch == 1
    _, events, _ = scripted_fit([1.0], 1, stop_after=lambda e: True)  # the last epoch
    assert not any(isinstance(e, StoppedEarly) for e in events)


def test_progress_is_reported_per_batch_when_the_interval_has_passed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import bpcli.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "PROGRESS_INTERVAL_S", 0.0)
    events: list[Any] = []
    X, Y = rows(12)
    make_trainer(RecordingNetwork(), 2, 4, events).fit(X, Y, X[:2], Y[:2])
    done = [(e.epoch, e.batches_done, e.batches) for e in events if isinstance(e, BatchesDone)]
    assert done == [(1, 1, 3), (1, 2, 3), (1, 3, 3), (2, 1, 3), (2, 2, 3), (2, 3, 3)]
    monkeypatch.setattr(trainer_module, "PROGRESS_INTERVAL_S", 3600.0)
    events.clear()
    make_trainer(RecordingNetwork(), 2, 4, events).fit(X, Y, X[:2], Y[:2])
    assert not any(isinstance(e, BatchesDone) for e in events)


def test_a_steps_figures_are_averaged_over_the_rows_that_measured_them() -> None:
    """Batches of 4, 4 and 2 rows; "a" measured on all, "b" only on the first and last
    (NaN on the second), "c" on none."""
    figures = iter([{"a": 1.0, "b": 10.0, "c": math.nan}, {"a": 2.0, "b": math.nan,
                                                           "c": math.nan},
                    {"a": 4.0, "b": 40.0, "c": math.nan}])
    sizes: list[int] = []

    def step(X: NDArray, Y: NDArray, b: int) -> StepResult:
        sizes.append(len(X))
        return StepResult(float(b), 0.0, stats=next(figures))

    events: list[Any] = []
    network = RecordingNetwork()
    trainer = make_trainer(network, 1, 4, events, step=step)
    X, Y = rows(10)
    trainer.fit(X, Y, X[:2], Y[:2])
    (ended,) = [e for e in events if isinstance(e, EpochEnded)]
    assert sizes == [4, 4, 2]
    assert ended.stats["a"] == pytest.approx((4 * 1 + 4 * 2 + 2 * 4) / 10)
    assert ended.stats["b"] == pytest.approx((4 * 10 + 2 * 40) / 6)
    assert math.isnan(ended.stats["c"])
    assert ended.train_loss == pytest.approx((0 * 4 + 1 * 4 + 2 * 2) / 10)
    assert trainer.state.stat_sums == {}  # cleared at the epoch boundary


def test_the_state_keeps_a_steps_figures_in_order_through_json() -> None:
    state = TrainerState(stat_sums={"z": [1.5, 4.0], "a": [2.0, 2.0]}, epoch=3, batch=2)
    data = state.to_json()
    assert data["stat_sums"] == [["z", 1.5, 4.0], ["a", 2.0, 2.0]]
    again = TrainerState.from_json(data)
    assert again == state and list(again.stat_sums) == ["z", "a"]
    assert TrainerState.from_json({k: v for k, v in data.items() if k != "stat_sums"}
                                  ).stat_sums == {}


def test_clip_norm_bounds_the_global_gradient_norm_of_every_step() -> None:
    network = GradientNormNetwork()
    X, Y = rows(12)
    X[:, 1] = 1000.0
    before = network.flat_params.copy()
    make_trainer(network, 1, 12, [], learning_rate=1.0, clip_norm=0.5).fit(X, Y, X, Y)
    assert max(network.squared_norms) > 1e6
    # one step of lr 1 along the gradient, scaled to norm 0.5
    assert np.linalg.norm(network.flat_params - before) == pytest.approx(0.5)


def test_without_validation_rows_the_last_epoch_is_the_model() -> None:
    network = RecordingNetwork()
    events: list[Any] = []
    X, Y = rows(8)
    ended = make_trainer(network, 3, 4, events, learning_rate=0.01,
                         early_stopping=EarlyStopping(patience=1)).fit(X, Y, X[:0], Y[:0])
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert [e.is_best for e in epochs] == [True, True, True]
    assert all(math.isnan(e.val_loss) and math.isnan(e.val_metric) for e in epochs)
    assert ended.best_epoch == 3 and ended.epochs_done == 3


def test_training_time_is_counted_and_carried_over_sessions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import bpcli.trainer as trainer_module

    ticks = iter(range(10**6, 10**6 + 10_000, 10))  # 10 s on each time it is read
    clock = types.SimpleNamespace(perf_counter=lambda: float(next(ticks)))
    monkeypatch.setattr(trainer_module, "time", clock)  # the trainer's clock only
    events: list[Any] = []
    trainer = make_trainer(RecordingNetwork(), 1, 4, events)
    trainer.state.seconds = 1000.0  # from an earlier session
    X, Y = rows(8)
    ended = trainer.fit(X, Y, X[:2], Y[:2])
    elapsed = next(ticks) - 10**6  # how far the clock moved during the session
    monkeypatch.undo()
    (epoch,) = [e for e in events if isinstance(e, EpochEnded)]
    assert ended.seconds == trainer.state.seconds > 1000.0
    assert ended.seconds - 1000.0 < elapsed
    assert 0 < epoch.seconds <= ended.seconds - 1000.0  # the epoch within the session


def test_where_divergence_is_found_first_parameters_then_outputs_then_gradients() -> None:
    """The first non-finite place in the order backpropagation meets it, with the layer
    numbered as the config numbers it (from 0; a dense layer and its activation share
    one)."""
    from bpcli.nn import Activation
    from bpcli.trainer import _first_non_finite

    def network() -> Network:
        net = Network([Dense(2), Activation("relu"), Dense(1)], MeanSquaredError(), (1,),
                      np.random.default_rng(0), np.float64)
        net.compute_gradients(np.array([[1.0], [2.0]]), np.zeros((2, 1)))
        return net

    X = np.array([[1.0], [2.0]])
    net = network()
    net.layers[2].params["b"][...] = math.nan
    net.layers[0].grads["W"][...] = math.nan  # a parameter comes before any gradient
    assert _first_non_finite(net, X) == "parameter b of layer 1 (dense) is not finite"
    net = network()
    assert _first_non_finite(net, np.array([[1.0], [math.inf]])) == (
        "the output of layer 0 (dense) is not finite")
    net = network()
    net.layers[2].grads["b"][...] = math.nan
    net.layers[0].grads["W"][...] = math.inf
    # the output layer's gradients are computed first
    assert _first_non_finite(net, X) == "the gradient of b in layer 1 (dense) is not finite"
    net.layers[2].grads["b"][...] = 0.0
    assert _first_non_finite(net, X) == "the gradient of W in layer 0 (dense) is not finite"


def test_a_diverging_step_stops_training_with_where_and_what_to_try() -> None:
    """Without rollbacks the first non-finite loss ends training; the weights are those of
    the best epoch, and the message names epoch, batch and the learning rate."""
    network = GradientNormNetwork(6)  # 3 batches an epoch: epoch 2, batch 3
    X, Y = rows(12)
    trainer = make_trainer(network, 3, 4, [], learning_rate=0.02)
    with pytest.raises(TrainingDiverged) as error:
        trainer.fit(X, Y, X, Y)
    message = str(error.value)
    assert message.startswith("training diverged at epoch 2, batch 3: ")
    assert message.endswith("(loss nan). Likely causes: a learning rate too high (now 0.02; "
                            "try 10x smaller) or input columns with huge values")
    assert "rollbacks" not in message
    assert error.value.exit_code == 1
    events: list[Any] = []
    trainer = make_trainer(GradientNormNetwork(2), 3, 4, events)  # in the first epoch too
    with pytest.raises(TrainingDiverged, match="at epoch 1, batch 2: "):
        trainer.fit(X, Y, X, Y)
    assert not any(isinstance(e, RolledBack) for e in events)


def test_health_of_a_one_batch_epoch_without_validation_rows() -> None:
    """One batch an epoch: the gradient norm is that batch's. Without validation rows the
    silent ReLU units are counted on the training rows."""
    from bpcli.nn import Activation

    class Net(GradientNormNetwork):
        def __init__(self) -> None:
            Network.__init__(self, [Dense(2), Activation("relu"), Dense(1)],
                             MeanSquaredError(), (2,), np.random.default_rng(0), np.float64)
            self.batches, self.losses, self.squared_norms = [], [], []
            self.diverge_at_calls = ()

    network = Net()
    events: list[Any] = []
    X, Y = rows(6)
    make_trainer(network, 1, 8, events, health=True).fit(X, Y, X[:0], Y[:0])
    (ended,) = [e for e in events if isinstance(e, EpochEnded)]
    assert ended.health is not None and len(network.squared_norms) == 1
    assert ended.health.grad_norm == pytest.approx(math.sqrt(network.squared_norms[0]))
    assert ended.health.dead_relu is not None
    assert set(ended.health.update_ratios) == {"0", "1"}


def test_a_rollback_restores_the_optimizer_state_of_the_epoch_boundary() -> None:
    """Momentum's velocity moves in place each step: the rollback's copy must not move
    with it."""
    network = GradientNormNetwork(6)  # 4 batches an epoch: epoch 2, batch 2 diverges
    X, Y = rows(16)
    optimizer = SGD(learning_rate=0.001, momentum=0.9)
    at_boundary: list[NDArray] = []
    after_rollback: list[NDArray] = []

    def listen(event: Any) -> None:
        if isinstance(event, EpochEnded) and event.epoch == 1:
            at_boundary.append(optimizer.velocities[0].copy())
        if isinstance(event, RolledBack):
            after_rollback.append(optimizer.velocities[0].copy())

    trainer = Trainer(network, optimizer, epochs=2, batch_size=4,
                      rng=np.random.default_rng(1), metric=lambda P, Y: 0.0,
                      metric_name="m", listeners=[listen],
                      divergence=DivergencePolicy(rollback=True))
    trainer.fit(X, Y, X, Y)
    assert len(after_rollback) == 1 and np.any(at_boundary[0] != 0)
    assert np.array_equal(after_rollback[0], at_boundary[0])
    assert optimizer.iterations == 8  # the failed epoch's step was undone


def test_the_best_epoch_of_a_run_is_the_first_to_reach_the_best_value() -> None:
    """EarlyStopping.best picks, from a run's history, the epoch training kept."""
    assert EarlyStopping().best([1.0, 0.5, 0.7, 0.5, 0.6]) == 1
    assert EarlyStopping().best([math.nan, 2.0, math.inf, 1.0]) == 3
    assert EarlyStopping().best([math.nan, math.nan]) is None
    assert EarlyStopping().best([]) is None
    assert EarlyStopping(maximize=True).best([0.2, 0.9, 0.4]) == 1
    assert EarlyStopping(min_delta=0.1).best([1.0, 0.95, 0.85]) == 2


def test_resuming_from_an_epochs_checkpoint_continues_as_if_never_stopped() -> None:
    """The state an epoch's listeners see (what a checkpoint saves) carries the shuffling
    generator and the schedule: a trainer built afresh from it, with another generator
    and a new schedule, visits the same batches at the same rates. The plateau schedule
    halves the rate after epoch 2 only if it remembers epoch 1's loss."""
    X, Y = rows(10)

    def trainer(network: Network, epochs: int, seed: int) -> Trainer:
        return make_trainer(network, epochs, 4, [], learning_rate=0.01,
                            rng=np.random.default_rng(seed),
                            schedule=ReduceOnPlateau(0.01, factor=0.5, patience=1))

    whole = ScriptedNetwork([1.0, 1.1, 1.2, 1.3])
    rates: list[float] = []
    straight = trainer(whole, 4, 1)
    straight.listeners = [lambda e: rates.append(e.learning_rate)
                          if isinstance(e, EpochEnded) else None]
    straight.fit(X, Y, X[:2], Y[:2])

    first = ScriptedNetwork([1.0])
    saved: list[dict[str, Any]] = []
    part = trainer(first, 1, 1)
    part.listeners = [lambda e: saved.append(part.state.to_json())
                      if isinstance(e, EpochEnded) else None]
    part.fit(X, Y, X[:2], Y[:2])
    second = ScriptedNetwork([1.1, 1.2, 1.3])
    second.flat_params[...] = first.flat_params
    resumed = trainer(second, 4, 999)
    resumed.state = TrainerState.from_json(saved[0])
    resumed_rates: list[float] = []
    resumed.listeners = [lambda e: resumed_rates.append(e.learning_rate)
                         if isinstance(e, EpochEnded) else None]
    resumed.fit(X, Y, X[:2], Y[:2])
    assert second.batches == whole.batches[3:]  # 3 batches an epoch
    assert resumed_rates == rates[1:] == [0.01, 0.005, 0.0025]
    assert np.array_equal(second.flat_params, whole.flat_params)


def test_health_counts_silent_units_on_the_validation_rows() -> None:
    """A unit that fires on every training row but on no validation row is silent."""
    from bpcli.nn import Activation

    network = Network([Dense(1), Activation("relu"), Dense(1)], MeanSquaredError(), (1,),
                      np.random.default_rng(0), np.float64)
    network.layers[0].params["W"][...] = 1.0
    network.layers[0].params["b"][...] = 0.0
    X, Y = np.array([[1.0], [2.0], [3.0], [4.0]]), np.zeros((4, 1))
    events: list[Any] = []
    make_trainer(network, 1, 4, events, learning_rate=1e-9, health=True).fit(
        X, Y, -X[:2], Y[:2])
    (ended,) = [e for e in events if isinstance(e, EpochEnded)]
    assert ended.health is not None and ended.health.dead_relu == 1.0


def test_a_custom_step_moves_its_own_parameter_vector_which_best_weights_cover() -> None:
    """A GAN-like step names its own vector (``params``): the best epoch's values of that
    vector are the ones put back at the end."""
    vector = np.zeros(3)

    def step(X: NDArray, Y: NDArray, b: int) -> StepResult:
        vector[...] += 1.0
        return StepResult(0.0, 0.0)

    network = ScriptedNetwork([1.0, 0.5, 0.9])  # epoch 2 is the best
    trainer = make_trainer(network, 3, 4, [], step=step, params=vector)
    X, Y = rows(8)  # 2 batches an epoch
    before = network.flat_params.copy()
    trainer.fit(X, Y, X[:2], Y[:2])
    assert np.array_equal(vector, [4.0, 4.0, 4.0])  # after epoch 2, not 6 after epoch 3
    assert np.array_equal(network.flat_params, before)  # the step never touched it
