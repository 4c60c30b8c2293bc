"""Corners of bpcli/nn that branch coverage found no test reaching."""

from __future__ import annotations

import numpy as np
import pytest

from bpcli.nn import Activation, Dense, Network
from bpcli.nn.activations import ACTIVATIONS
from bpcli.nn.conv import geometry
from bpcli.nn.layers import BatchNorm
from bpcli.nn.losses import MeanAbsoluteError, MeanSquaredError, SoftmaxCrossEntropy
from bpcli.nn.optimizers import Adagrad, Adam, Nadam, RMSprop, Rprop
from bpcli.nn.regularization import (
    Penalties,
    Penalty,
    clip_by_global_norm,
    clip_by_value,
)
from bpcli.nn.schedules import Cosine, Exponential, Step


def test_identity_copies_into_a_given_output_and_passes_its_input_through() -> None:
    identity = ACTIVATIONS["identity"]()
    Z = np.array([[1.0, -2.0]])
    assert identity.forward(Z) is Z and identity.forward(Z, Z) is Z
    out = np.zeros_like(Z)
    assert identity.forward(Z, out) is out and out.tolist() == [[1.0, -2.0]]


def test_leaky_relu_refuses_a_negative_slope() -> None:
    with pytest.raises(ValueError, match="leaky_relu slope must be >= 0, got -0.1"):
        ACTIVATIONS["leaky_relu"](slope=-0.1)
    assert ACTIVATIONS["leaky_relu"](slope=0.0).slope == 0.0


def test_image_layers_refuse_an_empty_input() -> None:
    with pytest.raises(ValueError, match=r"conv2d got an empty input shape \(1, 0, 4\)"):
        geometry("conv2d", (1, 0, 4), (1, 1), (1, 1), "valid")
    assert geometry("conv2d", (1, 1, 4), (1, 1), (1, 1), "valid") is not None


def test_saved_buffers_must_match_the_architecture() -> None:
    network = Network([Dense(3), BatchNorm(), Dense(1)], MeanSquaredError(), (2,),
                      np.random.default_rng(0))
    good = {"1.running_mean": np.full(3, 0.5), "1.running_var": np.full(3, 2.0)}
    network.load_buffers(good)
    assert network.buffers()["1.running_var"].tolist() == [2.0, 2.0, 2.0]
    for bad in ({"1.running_mean": np.zeros(3)}, {**good, "1.running_var": np.ones(4)}):
        with pytest.raises(ValueError, match="running statistics do not match"):
            network.load_buffers(bad)


def test_optimizer_state_without_a_learning_rate_keeps_the_configured_one() -> None:
    params = [np.zeros(2)]
    adam = Adam(learning_rate=0.01)
    adam.step(params, [np.ones(2)])
    state = adam.state()
    lowered = {**state, "learning_rate": np.array(0.001)}
    plain = {k: v for k, v in state.items() if k != "learning_rate"}
    restored = Adam(learning_rate=0.01)
    restored.load_state(lowered)
    assert restored.learning_rate == 0.001 and restored.iterations == 1
    restored = Adam(learning_rate=0.01)
    restored.load_state(plain)
    assert restored.learning_rate == 0.01 and restored.iterations == 1


def test_clipping_limits_are_named_when_refused() -> None:
    g = np.ones(3)
    with pytest.raises(ValueError, match=r"gradient clipping: max_norm must be a positive "
                       r"number, not -1\.0"):
        clip_by_global_norm(g, -1.0)
    with pytest.raises(ValueError, match=r"gradient clipping: limit must be a positive "
                       r"number, not 0\.0"):
        clip_by_value(g, 0.0)
    assert g.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("label", ["beta1", "beta2"])
def test_nadam_betas_take_zero_but_not_one(label: str) -> None:
    assert getattr(Nadam(**{label: 0.0}), label) == 0.0
    with pytest.raises(ValueError, match=rf"{label} must be in \[0, 1\), got 1\.0"):
        Nadam(**{label: 1.0})
    with pytest.raises(ValueError, match=rf"{label} must be in \[0, 1\), got -0\.1"):
        Nadam(**{label: -0.1})


def test_rprop_bounds_are_inclusive_where_documented() -> None:
    Rprop(delta_min=0.1, delta0=0.1, delta_max=0.1)  # all three equal is allowed
    for options in ({"eta_minus": 0.0}, {"eta_minus": 1.0}, {"eta_plus": 1.0}):
        with pytest.raises(ValueError, match="need 0 < eta_minus < 1 < eta_plus"):
            Rprop(**options)
    for options in ({"delta_min": 0.0}, {"delta0": 60.0}, {"delta_min": 0.2, "delta0": 0.1}):
        with pytest.raises(ValueError, match="need 0 < delta_min <= delta0 <= delta_max"):
            Rprop(**options)


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


def test_a_penalty_skips_keys_a_layer_lacks_and_goes_on() -> None:
    W = np.array([[1.0, -2.0]])
    penalty = Penalty(l1=0.5, l2=1.0, keys=("gamma", "W"))  # dense layers have no gamma
    assert penalty.value({"W": W}) == pytest.approx(0.5 * 3 + 1.0 * 5)
    grads = {"W": np.zeros_like(W)}
    penalty.add_gradient({"W": W}, grads)
    assert grads["W"].tolist() == [[0.5 + 2.0, -0.5 - 4.0]]


def test_a_penalty_override_must_name_a_layer_with_parameters() -> None:
    network = Network([Dense(2), Activation("tanh"), Dense(1)], MeanSquaredError(), (2,),
                      np.random.default_rng(0))
    Penalties(per_layer={0: Penalty(l2=1.0), 2: Penalty(l2=1.0)}).check(network)
    with pytest.raises(ValueError, match="penalty for layer 3, but the network has 3 layers"):
        Penalties(per_layer={3: Penalty(l2=1.0)}).check(network)
    with pytest.raises(ValueError, match=r"penalty for layer 1 \(activation\), which has no "
                       "parameters"):
        Penalties(per_layer={1: Penalty(l2=1.0)}).check(network)


def test_weighted_cross_entropy_shifts_each_row_by_its_own_maximum() -> None:
    """Rows of logits far apart: a shift by the largest logit overall would underflow."""
    P = np.array([[0.0, 1.0], [-1000.0, -999.0]])
    loss = SoftmaxCrossEntropy(class_weights=[1.0, 3.0])
    per_row = np.log(1 + np.exp(-1.0))  # both rows: the target logit is 1 above the other
    assert loss.value(P, np.array([1, 1])) == pytest.approx(per_row)


def test_mean_absolute_error_of_a_single_entry() -> None:
    assert MeanAbsoluteError().value(np.array([[3.0]]), np.array([[1.0]])) == 2.0
