"""The training loop of bpcli/trainer.py: batching (which rows each step sees, how many steps
an epoch has), clipping, health, early stopping, rollbacks and its state; and float32
training, which follows the learning curves of float64 (the precision gradcheck proves the
gradients in) on the example configs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from bpcli.config import load_config
from bpcli.events import EpochEnded, RolledBack, TrainingStarted
from bpcli.experiment import prepare
from bpcli.nn import Dense, Network
from bpcli.nn.losses import MeanSquaredError
from bpcli.nn.optimizers import SGD
from bpcli.nn.schedules import Exponential, ReduceOnPlateau
from bpcli.trainer import (
    DivergencePolicy,
    EarlyStopping,
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
                 **options: Any) -> Trainer:
    return Trainer(network, SGD(learning_rate=learning_rate), epochs=epochs,
                   batch_size=batch_size, rng=np.random.default_rng(1),
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
    """Batches of unequal size weigh by their rows, not one each."""
    network = RecordingNetwork()
    events: list[Any] = []
    X, Y = rows(10)
    make_trainer(network, 1, 4, events).fit(X, Y, X[:2], Y[:2])
    (ended,) = [e for e in events if isinstance(e, EpochEnded)]
    sizes = [len(b) for b in network.batches]
    assert sizes == [4, 4, 2]
    expected = sum(loss * size for loss, size in zip(network.losses, sizes, strict=True)) / 10
    assert ended.train_loss == pytest.approx(expected, rel=1e-12)
    assert ended.train_loss != pytest.approx(float(np.mean(network.losses)), rel=1e-6)


def test_resume_mid_epoch_sees_the_rest_of_the_rows() -> None:
    """Stopped after 2 of 5 batches, the resumed epoch trains on the other rows only."""
    network = RecordingNetwork()
    events: list[Any] = []
    calls = iter([False, True])
    trainer = make_trainer(network, 2, 3, events, should_stop=lambda: next(calls, False))
    X, Y = rows(15)
    with pytest.raises(TrainingInterrupted):
        trainer.fit(X, Y, X[:2], Y[:2])
    assert trainer.state.batch == 2 and trainer.state.epoch == 0
    trainer.fit(X, Y, X[:2], Y[:2])
    first_epoch = [i for b in network.batches[:5] for i in b]
    second_epoch = [i for b in network.batches[5:] for i in b]
    assert len(network.batches) == 10
    assert sorted(first_epoch) == sorted(second_epoch) == list(range(15))
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
    trainer = make_trainer(network, 1, 3, events, should_stop=lambda: next(calls, False),
                           health=True)
    X, Y = rows(15)
    with pytest.raises(TrainingInterrupted):
        trainer.fit(X, Y, X, Y)
    trainer.fit(X, Y, X, Y)
    (ended,) = [e for e in events if isinstance(e, EpochEnded)]
    assert ended.health is not None and len(network.squared_norms) == 5
    # the resumed session ran batches 3 to 5: their mean, not the sum over 5 batches
    assert ended.health.grad_norm == pytest.approx(
        math.sqrt(np.mean(network.squared_norms[2:])))


def test_a_non_finite_monitored_value_is_never_the_best() -> None:
    rule = EarlyStopping()
    assert not rule.improved(math.nan, None) and not rule.improved(math.inf, 1.0)
    assert rule.improved(2.0, None) and rule.improved(0.5, 1.0) and not rule.improved(1.0, 1.0)
    assert EarlyStopping(maximize=True, min_delta=0.1).improved(1.2, 1.0)
    assert not EarlyStopping(maximize=True, min_delta=0.1).improved(1.05, 1.0)


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
