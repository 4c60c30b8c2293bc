"""Learning-rate schedules against rates worked out by hand from their docstrings' formulas.

Epochs count from 1; ``rate(e)`` is the rate epoch ``e`` trains with.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from bpcli.nn.optimizers import Adagrad, RMSprop
from bpcli.nn.schedules import (
    SCHEDULES,
    Constant,
    Cosine,
    Exponential,
    MultiStep,
    ReduceOnPlateau,
    Schedule,
    Step,
)


def rates(schedule: Schedule, epochs: int) -> list[float]:
    return [schedule.rate(e) for e in range(1, epochs + 1)]


def same(actual: list[float], expected: list[float], tol: float = 1e-12) -> None:
    """Equal to ``tol`` (relative): 1e-12 for exact numbers, 1e-9 for 10-digit ones."""
    assert actual == pytest.approx(expected, rel=tol, abs=1e-15)


def test_the_table() -> None:
    assert sorted(SCHEDULES) == ["constant", "cosine", "exponential", "multistep",
                                 "reduce_on_plateau", "step"]
    for name, cls in SCHEDULES.items():
        assert cls.name == name
        assert cls.__doc__


# -- stateless schedules ---------------------------------------------------------------
def test_constant() -> None:
    same(rates(Constant(0.01), 4), [0.01] * 4)


def test_step() -> None:
    # lr * gamma^floor((e - 1) / 2): exponents 0, 0, 1, 1, 2, 2
    same(rates(Step(0.1, step_size=2, gamma=0.5), 6), [0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    same(rates(Step(1.0, step_size=3), 4), [1.0, 1.0, 1.0, 0.1])  # default gamma 0.1


def test_multistep() -> None:
    # milestones [2, 4]: epochs 1-2 at lr, 3-4 at lr gamma, 5 on at lr gamma^2
    same(rates(MultiStep(1.0, milestones=[2, 4]), 6), [1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    same(rates(MultiStep(0.8, milestones=[1], gamma=0.5), 3), [0.8, 0.4, 0.4])


def test_exponential() -> None:
    # lr * gamma^(e - 1)
    same(rates(Exponential(0.8, gamma=0.5), 4), [0.8, 0.4, 0.2, 0.1])


def test_cosine_without_warmup() -> None:
    # T = 4, lr = 1, min_lr = 0: p = (e - 1) / 4, rate = (1 + cos(pi p)) / 2
    #   e=1: p=0     -> 1
    #   e=2: p=1/4   -> (1 + 0.7071067812) / 2 = 0.8535533906
    #   e=3: p=1/2   -> 0.5
    #   e=4: p=3/4   -> (1 - 0.7071067812) / 2 = 0.1464466094
    #   e=5 and on: p = 1 -> 0
    same(rates(Cosine(1.0, total_epochs=4), 6),
         [1.0, 0.8535533906, 0.5, 0.1464466094, 0.0, 0.0], tol=1e-9)


def test_cosine_with_warmup_and_floor() -> None:
    # T = 6, W = 2, lr = 0.3, min_lr = 0.1
    #   warm-up: e=1: 0.3 * 1/3 = 0.1; e=2: 0.3 * 2/3 = 0.2
    #   then p = (e - 3) / 4, rate = 0.1 + 0.2 (1 + cos(pi p)) / 2
    #   e=3: p=0   -> 0.3
    #   e=4: p=1/4 -> 0.1 + 0.2 * 0.8535533906 = 0.2707106781
    #   e=5: p=1/2 -> 0.2
    #   e=6: p=3/4 -> 0.1 + 0.2 * 0.1464466094 = 0.1292893219
    #   e=7: p=1   -> 0.1
    same(rates(Cosine(0.3, total_epochs=6, min_lr=0.1, warmup_epochs=2), 8),
         [0.1, 0.2, 0.3, 0.2707106781, 0.2, 0.1292893219, 0.1, 0.1], tol=1e-9)


def test_cosine_warmup_of_one_epoch() -> None:
    # W = 1, T = 3, lr = 1: e=1: 1/2; then p = (e - 2) / 2: e=2 -> 1, e=3 -> 0.5
    same(rates(Cosine(1.0, total_epochs=3, warmup_epochs=1), 3), [0.5, 1.0, 0.5])


@pytest.mark.parametrize("schedule", [
    Constant(0.1), Step(0.1, step_size=2), MultiStep(0.1, milestones=[3]),
    Exponential(0.1, gamma=0.9), Cosine(0.1, total_epochs=5, warmup_epochs=1),
])
def test_stateless_schedules_ignore_observations(schedule: Schedule) -> None:
    before = rates(schedule, 6)
    for epoch in range(1, 7):
        schedule.observe(epoch, 100.0 * epoch)  # getting worse every epoch
    assert rates(schedule, 6) == before
    assert schedule.state() == {}
    schedule.load_state({})
    assert rates(schedule, 6) == before


# -- reduce on plateau -------------------------------------------------------------------
def drive(schedule: Schedule, values: list[float]) -> list[float]:
    """The rate each epoch trains with while observing ``values`` after each epoch; one
    more rate than values (the epoch after the last one)."""
    out = []
    for epoch, value in enumerate(values, start=1):
        out.append(schedule.rate(epoch))
        schedule.observe(epoch, value)
    out.append(schedule.rate(len(values) + 1))
    return out


def test_plateau_defaults() -> None:
    s = ReduceOnPlateau(0.01)
    assert (s.factor, s.patience, s.min_delta, s.cooldown, s.min_lr) == (0.1, 10, 1e-4, 0, 0.0)


def test_plateau_patience_and_absolute_min_delta() -> None:
    s = ReduceOnPlateau(1.0, factor=0.5, patience=2, min_delta=0.1)
    got = drive(s, [1.0, 0.95, 0.85, 0.8, 0.8, 0.8, 0.8])
    # e1 1.0:  best inf -> 1.0 (improved), wait 0
    # e2 0.95: not below 1.0 - 0.1 = 0.9 (min_delta is absolute): wait 1
    # e3 0.85: below 0.9: best 0.85, wait 0
    # e4 0.8:  not below 0.75: wait 1
    # e5 0.8:  wait 2 = patience: rate 1.0 -> 0.5 from epoch 6, wait 0
    # e6 0.8:  wait 1
    # e7 0.8:  wait 2: rate 0.5 -> 0.25 from epoch 8
    same(got, [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25])
    assert s.best == 0.85


@pytest.mark.parametrize("min_delta", [0.0, 0.25])
def test_plateau_an_improvement_of_exactly_min_delta_is_not_one(min_delta: float) -> None:
    s = ReduceOnPlateau(1.0, factor=0.5, patience=1, min_delta=min_delta)
    # e2 is exactly min_delta below the best (the same value when min_delta is 0): not
    # below best - min_delta, so a bad epoch, and patience 1 drops the rate
    got = drive(s, [1.0, 1.0 - min_delta])
    same(got, [1.0, 1.0, 0.5])
    assert s.best == 1.0


def test_plateau_default_patience_is_ten_bad_epochs() -> None:
    s = ReduceOnPlateau(0.01)
    got = drive(s, [1.0] * 11)  # one improvement, then ten epochs without one
    same(got, [0.01] * 11 + [0.001])


def test_plateau_cooldown() -> None:
    s = ReduceOnPlateau(1.0, factor=0.1, patience=1, cooldown=2)
    got = drive(s, [1.0, 1.0, 1.0, 1.0, 1.0])
    # e1: improved; e2: bad, wait 1 = patience: 1 -> 0.1, cooldown 2
    # e3, e4: cooling down (not counted); e5: bad, wait 1: 0.1 -> 0.01
    same(got, [1.0, 1.0, 0.1, 0.1, 0.1, 0.01])


def test_plateau_improvement_during_cooldown_still_sets_the_best() -> None:
    s = ReduceOnPlateau(1.0, factor=0.1, patience=1, cooldown=2)
    got = drive(s, [1.0, 1.0, 0.5, 0.6, 0.6])
    # e3 0.5 during cooldown: best 0.5; e4 0.6: still cooling down; e5 0.6 > 0.5: drop
    same(got, [1.0, 1.0, 0.1, 0.1, 0.1, 0.01])
    assert s.best == 0.5


def test_plateau_min_lr_is_a_floor() -> None:
    s = ReduceOnPlateau(1.0, factor=0.1, patience=1, min_lr=0.05)
    got = drive(s, [1.0, 1.0, 1.0, 1.0])
    # 1 -> 0.1 after e2, -> max(0.01, 0.05) = 0.05 after e3, then stays at 0.05
    same(got, [1.0, 1.0, 0.1, 0.05, 0.05])


def test_plateau_rejects_observing_an_epoch_twice() -> None:
    s = ReduceOnPlateau(1.0)
    s.observe(1, 1.0)
    with pytest.raises(ValueError, match="epoch 1"):
        s.observe(1, 0.5)


@pytest.mark.parametrize("split", [0, 1, 2, 3, 5, 7])
def test_plateau_state_round_trip(split: int) -> None:
    """Save after ``split`` epochs (through JSON, as a checkpoint would), restore into a
    fresh schedule, and carry on: both give the same rates. Splits fall before any
    observation (best = inf), mid-patience and mid-cooldown."""
    values = [1.0, 0.9, 0.9, 0.9, 0.95, 0.8, 0.85, 0.9, 0.9, 0.9]

    def make() -> ReduceOnPlateau:
        return ReduceOnPlateau(1.0, factor=0.5, patience=2, cooldown=1, min_lr=0.2)

    whole = drive(make(), values)
    first = make()
    drive(first, values[:split])
    saved = json.loads(json.dumps(first.state(), allow_nan=False))
    restored = make()
    restored.load_state(saved)
    rest = []
    for epoch, value in enumerate(values[split:], start=split + 1):
        rest.append(restored.rate(epoch))
        restored.observe(epoch, value)
    rest.append(restored.rate(len(values) + 1))
    assert whole[split:] == rest
    assert restored.state() == make_state_after(make, values)


def make_state_after(make: Callable[[], ReduceOnPlateau], values: list[float]) -> dict[str, Any]:
    s = make()
    drive(s, values)
    return s.state()


def test_plateau_state_before_any_observation_is_json() -> None:
    state = ReduceOnPlateau(0.1).state()
    assert state == {"rate": 0.1, "best": None, "wait": 0, "cooldown_left": 0,
                     "last_epoch": 0}
    restored = ReduceOnPlateau(0.1)
    restored.load_state(state)
    assert math.isinf(restored.best)


# -- validation ------------------------------------------------------------------------
@pytest.mark.parametrize(("make", "match"), [
    (lambda: Constant(0.0), "learning rate"),
    (lambda: Step(0.1, step_size=0), "step_size"),
    (lambda: Step(0.1, step_size=1, gamma=0.0), "gamma"),
    (lambda: Exponential(0.1, gamma=1.5), "gamma"),
    (lambda: MultiStep(0.1, milestones=[]), "milestones"),
    (lambda: MultiStep(0.1, milestones=[0, 3]), "milestones"),
    (lambda: MultiStep(0.1, milestones=[3, 3]), "milestones"),
    (lambda: Cosine(0.1, total_epochs=3, warmup_epochs=3), "warmup"),
    (lambda: Cosine(0.1, total_epochs=3, min_lr=0.2), "min_lr"),
    (lambda: ReduceOnPlateau(0.1, factor=1.0), "factor"),
    (lambda: ReduceOnPlateau(0.1, patience=0), "patience"),
    (lambda: ReduceOnPlateau(0.1, min_delta=-1.0), "min_delta"),
    (lambda: ReduceOnPlateau(0.1, cooldown=-1), "cooldown"),
    (lambda: ReduceOnPlateau(0.1, min_lr=0.5), "min_lr"),
])
def test_bad_options_are_rejected(make: Callable[[], Schedule], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_epochs_count_from_one(name: str) -> None:
    options: dict[str, dict[str, object]] = {
        "step": {"step_size": 2}, "multistep": {"milestones": [2]},
        "exponential": {"gamma": 0.5}, "cosine": {"total_epochs": 3},
    }
    schedule = SCHEDULES[name](learning_rate=0.1, **options.get(name, {}))
    assert schedule.rate(1) == 0.1
    with pytest.raises(ValueError, match="from 1"):
        schedule.rate(0)


def test_boundaries_that_are_allowed() -> None:
    """Each documented closed end of a range is accepted (mutants turned them open)."""
    assert Exponential(0.1, gamma=1.0).rate(5) == 0.1  # gamma in (0, 1]
    assert Step(0.1, step_size=2, gamma=1.0).rate(5) == 0.1
    assert Cosine(0.1, total_epochs=4, min_lr=0.1).rate(3) == pytest.approx(0.1)
    assert Adagrad(initial_accumulator=0.0).initial_accumulator == 0.0
    assert RMSprop(rho=0.0).rho == 0.0
    for make in (lambda: Exponential(0.1, gamma=0.0), lambda: Step(0.1, 2, gamma=1.5)):
        with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\]"):
            make()
