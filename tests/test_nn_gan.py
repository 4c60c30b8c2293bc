"""The GAN core: backpropagating an outside gradient through a network, upsample2d,
group_softmax, the discriminator's and the generator's gradients (the generator's flowing
through the discriminator) against central differences in float64, one parameter vector
for both networks, and the optimizer pair's state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from bpcli.nn import (
    LAYERS,
    Activation,
    Conv2D,
    Dense,
    Flatten,
    Gan,
    GanStep,
    GroupSoftmax,
    Network,
    NoLoss,
    OptimizerPair,
    Reshape,
    Upsample2D,
)
from bpcli.nn.gradcheck import check_gradients
from bpcli.nn.layers import BatchNorm, Dropout, Layer, layer_from_description
from bpcli.nn.losses import MeanSquaredError, SigmoidBinaryCrossEntropy
from bpcli.nn.optimizers import Adam
from tests.numeric import numeric_grad

F64 = np.float64


def _layer_grad_check(layer: Dense | Upsample2D | GroupSoftmax, shape: tuple[int, ...]
                      ) -> None:
    """dX of ``layer`` against central differences of ``sum(Y * R)``."""
    rng = np.random.default_rng(1)
    layer.build(shape, rng, F64)
    X = rng.normal(size=(3, *shape))
    R = rng.normal(size=(3, *layer.output_shape))

    def loss() -> float:
        return float(np.sum(layer.forward(X, True) * R))

    layer.forward(X, True)
    dX = layer.backward(R.copy())
    assert dX is not None
    np.testing.assert_allclose(dX, numeric_grad(loss, X), rtol=1e-6, atol=1e-8)


def test_upsample2d_forward_repeats_each_pixel_as_a_block() -> None:
    layer = Upsample2D((2, 3))
    layer.build((1, 2, 2), np.random.default_rng(0), F64)
    X = np.arange(4.0).reshape(1, 1, 2, 2)
    Y = layer.forward(X, False)
    assert Y.shape == (1, 1, 4, 6)
    np.testing.assert_array_equal(Y[0, 0], np.kron(X[0, 0], np.ones((2, 3))))
    np.testing.assert_array_equal(layer.forward(X, True), Y)


@pytest.mark.parametrize("size", [2, (1, 2), (3, 2)])
def test_upsample2d_backward_matches_finite_differences(size: int | tuple[int, int]) -> None:
    _layer_grad_check(Upsample2D(size), (2, 3, 2))


def test_upsample2d_checks_its_input_and_rebuilds_from_its_description() -> None:
    with pytest.raises(ValueError, match="channels, height, width"):
        Upsample2D().compute_output_shape((4,))
    with pytest.raises(ValueError, match="at least 1"):
        Upsample2D(0)
    rebuilt = layer_from_description(Upsample2D((2, 1)).describe())
    assert isinstance(rebuilt, Upsample2D) and rebuilt.size == (2, 1)
    assert LAYERS["upsample2d"] is Upsample2D


def test_group_softmax_normalises_each_group_and_leaves_the_rest() -> None:
    layer = GroupSoftmax([[1, 3], [4, 7]])
    layer.build((8,), np.random.default_rng(0), F64)
    X = np.random.default_rng(2).normal(size=(5, 8))
    Y = layer.forward(X, False)
    np.testing.assert_allclose(Y[:, 1:3].sum(axis=1), 1.0)
    np.testing.assert_allclose(Y[:, 4:7].sum(axis=1), 1.0)
    np.testing.assert_array_equal(Y[:, [0, 3, 7]], X[:, [0, 3, 7]])
    assert isinstance(layer_from_description(layer.describe()), GroupSoftmax)


def test_group_softmax_backward_matches_finite_differences() -> None:
    _layer_grad_check(GroupSoftmax([[0, 2], [3, 6]]), (7,))


def test_group_softmax_refuses_groups_outside_its_input() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        GroupSoftmax([[2, 9]]).compute_output_shape((8,))


def test_image_network_with_upsample2d_passes_the_whole_network_gradcheck() -> None:
    rng = np.random.default_rng(0)
    layers = [Conv2D(2, 2, padding="same"), Activation("tanh"), Upsample2D(2),
              Conv2D(1, 3, padding="same"), Flatten(), Dense(2)]
    net = Network(layers, MeanSquaredError(), (1, 3, 3), rng, F64)
    X = rng.normal(size=(4, 9))
    results = check_gradients(net, X, rng.normal(size=(4, 2)))
    assert results and all(r.passed for r in results), [r for r in results if not r.passed]


def test_backward_of_an_outside_gradient_equals_compute_gradients() -> None:
    rng = np.random.default_rng(3)
    net = Network([Dense(4), Activation("tanh"), Dense(2)], MeanSquaredError(), (3,), rng, F64)
    net.layers[0].needs_input_grad = True
    X, Y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    net.compute_gradients(X, Y)
    assert net.input_grad is not None
    expected, expected_dX = net.flat_grads.copy(), net.input_grad.copy()
    P = net.forward(X, training=True)
    _, dP = net.loss.value_and_grad(P, Y)
    net.flat_grads[...] = 0
    dX = net.backward(dP)
    assert dX is not None
    np.testing.assert_allclose(net.flat_grads, expected)
    np.testing.assert_allclose(dX, expected_dX)


def _gan(noise: str = "normal", smoothing: float = 0.0, dtype: type = F64,
         generator: list[Layer] | None = None) -> Gan:
    rng = np.random.default_rng(4)
    layers = generator or [Dense(6), Activation("tanh"), Dense(5), GroupSoftmax([[2, 5]])]
    g = Network(layers, MeanSquaredError(), (3,), rng, dtype)
    d = Network([Dense(6), Activation("tanh"), Dense(1), Activation("sigmoid")],
                SigmoidBinaryCrossEntropy(), (5,), rng, dtype)
    return Gan(g, d, noise_size=3, noise=noise, label_smoothing=smoothing)


def test_generator_gradient_through_the_discriminator_matches_finite_differences() -> None:
    gan = _gan()
    noise = gan.draw_noise(6)
    gan.generator_gradients_on(noise)
    G = gan.generator
    analytic = G.flat_grads.copy()
    numeric = numeric_grad(lambda: gan.generator_loss(noise), G.flat_params)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)
    assert np.abs(analytic).max() > 1e-3  # a gradient that is there, not zeros everywhere


def test_generator_gradient_with_batch_norm_is_the_training_loss_gradient() -> None:
    # batch norm normalises by the batch in training and by running statistics otherwise:
    # the loss gradcheck differentiates must be the training one that backward follows
    rng = np.random.default_rng(5)
    g = Network([Dense(6), BatchNorm(), Activation("tanh"), Dense(5)], MeanSquaredError(),
                (3,), rng, F64)
    d = Network([Dense(6), Activation("tanh"), Dense(1), Activation("sigmoid")],
                SigmoidBinaryCrossEntropy(), (5,), rng, F64)
    gan = Gan(g, d, noise_size=3)
    noise = gan.draw_noise(6)
    gan.generator_gradients_on(noise)
    analytic = g.flat_grads.copy()
    numeric = numeric_grad(lambda: gan.generator_loss(noise), g.flat_params)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_discriminator_gradient_matches_finite_differences_with_smoothing(
        batch_norm: bool) -> None:
    # with batch norm in the generator, the fakes the discriminator learns from are made
    # in training mode (normalised by their own batch), as in the generator's step
    layers = [Dense(6), BatchNorm(), Activation("tanh"), Dense(5)] if batch_norm else None
    gan = _gan(smoothing=0.1, generator=layers)
    real = np.random.default_rng(5).normal(size=(4, 5))
    state = dict(gan.rng.bit_generator.state)
    loss, d_real, d_fake = gan.discriminator_gradients(real)
    D = gan.discriminator
    analytic = D.flat_grads.copy()

    def d_loss() -> float:
        gan.rng.bit_generator.state = state  # the same fakes every time
        fake = gan.generator.forward(gan.draw_noise(4), training=True)
        X = np.concatenate([real, fake])
        Y = np.array([[0.9]] * 4 + [[0.0]] * 4)
        return D.loss_value(X, Y, training=True)

    np.testing.assert_allclose(analytic, numeric_grad(d_loss, D.flat_params), rtol=1e-5,
                               atol=1e-8)
    assert loss == pytest.approx(d_loss())
    assert 0 < d_fake < 1 and 0 < d_real < 1


def test_both_networks_live_in_one_parameter_vector() -> None:
    gan = _gan()
    G, D = gan.generator, gan.discriminator
    assert gan.flat_params.size == G.n_params + D.n_params
    assert np.shares_memory(gan.flat_params, G.layers[0].params["W"])
    assert np.shares_memory(gan.flat_params, D.layers[-2].params["b"])
    gan.flat_params[...] = 0.5
    assert np.all(D.layers[0].params["W"] == 0.5) and np.all(G.flat_params == 0.5)


def test_gan_refuses_mismatched_networks() -> None:
    rng = np.random.default_rng(0)
    g = Network([Dense(4)], MeanSquaredError(), (3,), rng, F64)
    d = Network([Dense(1), Activation("sigmoid")], SigmoidBinaryCrossEntropy(), (5,), rng, F64)
    with pytest.raises(ValueError, match="generator makes rows of shape"):
        Gan(g, d, noise_size=3)
    d2 = Network([Dense(2)], MeanSquaredError(), (4,), rng, F64)
    with pytest.raises(ValueError, match="one sigmoid unit"):
        Gan(g, d2, noise_size=3)


def test_uniform_noise_stays_in_its_interval() -> None:
    noise = _gan(noise="uniform").draw_noise(500)
    assert noise.shape == (500, 3) and noise.min() >= -1 and noise.max() <= 1


def test_step_moves_the_discriminator_each_batch_and_the_generator_every_d_steps() -> None:
    gan = _gan()
    pair = OptimizerPair(Adam(0.01, beta1=0.5), Adam(0.02, beta1=0.5))
    step = GanStep(gan, pair, d_steps=2)
    real = np.random.default_rng(6).normal(size=(8, 5))
    g_before, d_before = gan.generator.flat_params.copy(), gan.discriminator.flat_params.copy()
    stats, squared, failed = step(real, batch=0)
    assert failed is None and stats.g_loss is None and squared > 0
    np.testing.assert_array_equal(gan.generator.flat_params, g_before)
    assert not np.array_equal(gan.discriminator.flat_params, d_before)
    stats, _, _ = step(real, batch=1)
    assert stats.g_loss is not None
    assert not np.array_equal(gan.generator.flat_params, g_before)


def test_a_step_reports_its_figures_and_both_networks_gradient_norms() -> None:
    gan = _gan()
    step = GanStep(gan, OptimizerPair(Adam(0.01, beta1=0.5), Adam(0.01, beta1=0.5)))
    real = np.random.default_rng(6).normal(size=(8, 5))
    stats, squared, failed = step(real, batch=0)
    assert failed is None
    assert all(np.isfinite(v) for v in (stats.d_loss, stats.g_loss))
    assert 0 < stats.d_real < 1 and 0 < stats.d_fake < 1
    # the squared norm of both gradients applied (the divergence check's figure): the
    # discriminator's, as a twin GAN computes it on the same draws, and the generator's
    twin = _gan()
    twin.discriminator_gradients(real)
    D, G = twin.discriminator, gan.generator
    assert squared == pytest.approx(float(D.flat_grads @ D.flat_grads)
                                    + float(G.flat_grads @ G.flat_grads), rel=1e-9)


def test_a_non_finite_discriminator_loss_applies_nothing_and_names_it() -> None:
    gan = _gan()
    step = GanStep(gan, OptimizerPair(Adam(0.01, beta1=0.5), Adam(0.01, beta1=0.5)))
    real = np.random.default_rng(6).normal(size=(8, 5))
    real[2, 1] = np.nan
    g_before, d_before = gan.generator.flat_params.copy(), gan.discriminator.flat_params.copy()
    stats, _, failed = step(real, batch=0)
    assert failed == "discriminator" and np.isnan(stats.d_loss) and stats.g_loss is None
    assert 0 < stats.d_fake < 1  # the fakes' figure is still reported
    np.testing.assert_array_equal(gan.discriminator.flat_params, d_before)
    np.testing.assert_array_equal(gan.generator.flat_params, g_before)


def test_a_non_finite_generator_loss_keeps_the_generator_and_names_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    gan = _gan()
    step = GanStep(gan, OptimizerPair(Adam(0.01, beta1=0.5), Adam(0.01, beta1=0.5)))
    real = np.random.default_rng(6).normal(size=(8, 5))
    g_before, d_before = gan.generator.flat_params.copy(), gan.discriminator.flat_params.copy()
    monkeypatch.setattr(gan, "generator_gradients", lambda n: (float("inf"), None))
    stats, _, failed = step(real, batch=0)
    assert failed == "generator" and stats.g_loss == float("inf")
    assert np.isfinite(stats.d_loss) and 0 < stats.d_real < 1
    assert not np.array_equal(gan.discriminator.flat_params, d_before)  # its step was fine
    np.testing.assert_array_equal(gan.generator.flat_params, g_before)


def test_optimizer_pair_scales_both_rates_and_round_trips_its_state() -> None:
    pair = OptimizerPair(Adam(0.001, beta1=0.5), Adam(0.004, beta1=0.5))
    pair.learning_rate = 0.0005
    assert pair.generator.learning_rate == 0.0005
    assert pair.discriminator.learning_rate == pytest.approx(0.002)
    w: list[np.ndarray] = [np.ones(3)]
    pair.generator.step(w, [np.ones(3)])
    state = pair.state()
    assert "generator/m/0" in state and "discriminator/iterations" in state
    other = OptimizerPair(Adam(0.001, beta1=0.5), Adam(0.004, beta1=0.5))
    other.load_state(state)
    assert other.generator.iterations == 1 and other.discriminator.iterations == 0
    np.testing.assert_array_equal(other.generator.state()["m/0"], state["generator/m/0"])


def test_reshape_keeps_values_in_order_and_reshapes_the_gradient_back() -> None:
    layer = Reshape([2, 2, 3])
    layer.build((12,), np.random.default_rng(0), F64)
    X = np.arange(24.0).reshape(2, 12)
    Y = layer.forward(X, True)
    assert Y.shape == (2, 2, 2, 3)
    np.testing.assert_array_equal(Y.reshape(2, -1), X)
    dY = np.random.default_rng(1).normal(size=Y.shape)
    dX = layer.backward(dY)
    assert dX is not None
    np.testing.assert_array_equal(dX, dY.reshape(2, 12))
    with pytest.raises(ValueError, match="cannot reshape inputs of shape"):
        Reshape([5]).compute_output_shape((12,))
    rebuilt = layer_from_description(layer.describe())
    assert isinstance(rebuilt, Reshape) and rebuilt.shape == (2, 2, 3)


def test_group_softmax_is_exact_for_logits_far_from_zero() -> None:
    # softmax is unchanged by a shift of each row: the layer subtracts each row's own
    # maximum, so large logits neither overflow nor leave another row's underflowing
    layer = GroupSoftmax([[0, 3]])
    layer.build((3,), np.random.default_rng(0), F64)
    shifts = np.array([[1000.0], [-1000.0], [0.0]])
    base = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [-1.0, 0.5, 0.0]])
    expected = np.exp(base) / np.exp(base).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(layer.forward(base + shifts, False), expected, rtol=1e-12)


def test_group_softmax_takes_one_column_groups_and_refuses_empty_ones() -> None:
    # a categorical column seen with one category only is a one-column group: always 1
    layer = GroupSoftmax([[0, 1], [1, 3]])
    layer.build((3,), np.random.default_rng(0), F64)
    Y = layer.forward(np.random.default_rng(1).normal(size=(4, 3)), False)
    np.testing.assert_array_equal(Y[:, 0], 1.0)
    for groups in ([[3, 3]], [[0, 2], [4, 2]]):
        with pytest.raises(ValueError) as refused:
            GroupSoftmax(groups)
        assert str(refused.value) == f"group_softmax groups must be non-empty, got {groups!r}"


def test_group_softmax_backward_before_forward_is_refused() -> None:
    layer = GroupSoftmax([[0, 2]])
    layer.build((3,), np.random.default_rng(0), F64)
    with pytest.raises(AssertionError, match="^backward called before forward$"):
        layer.backward(np.ones((2, 3)))


def test_the_generators_own_loss_is_refused_with_the_way_it_learns() -> None:
    g = Network([Dense(4)], NoLoss(), (3,), np.random.default_rng(0), F64)
    X, Y = np.ones((2, 3)), np.ones((2, 4))
    message = ("^this network has no loss of its own: backpropagate into it with "
               r"Network\.backward$")
    with pytest.raises(TypeError, match=message):
        g.compute_gradients(X, Y)
    with pytest.raises(TypeError, match=message):
        g.loss_value(X, Y)


def test_the_optimizer_pair_refuses_to_step_both_networks_as_one() -> None:
    pair = OptimizerPair(Adam(0.01), Adam(0.01))
    w = np.ones(3)
    with pytest.raises(TypeError, match=r"^a GAN steps each network with its own optimizer "
                                        r"\(GanStep\)$"):
        pair.step([w], [np.ones(3)])
    np.testing.assert_array_equal(w, 1.0)


def _networks(d_layers: list[Layer], d_loss: SigmoidBinaryCrossEntropy | MeanSquaredError,
              g_out: int = 5) -> tuple[Network, Network]:
    rng = np.random.default_rng(0)
    return (Network([Dense(g_out)], MeanSquaredError(), (3,), rng, F64),
            Network(d_layers, d_loss, (5,), rng, F64))


SIGMOID = "the discriminator must end in one sigmoid unit with binary cross-entropy"


@pytest.mark.parametrize(("make", "kwargs", "message"), [
    # each check alone: the discriminator's loss or its width wrong, not both
    (lambda: _networks([Dense(1)], MeanSquaredError()), {}, SIGMOID),
    (lambda: _networks([Dense(2), Activation("sigmoid")], SigmoidBinaryCrossEntropy()), {},
     SIGMOID),
    (lambda: _networks([Dense(1), Activation("sigmoid")], SigmoidBinaryCrossEntropy(), 4), {},
     "the generator makes rows of shape (4,); the discriminator takes (5,)"),
    (lambda: _networks([Dense(1), Activation("sigmoid")], SigmoidBinaryCrossEntropy()),
     {"noise_size": 2}, "the generator takes inputs of shape (3,), not noise of width 2"),
    (lambda: _networks([Dense(1), Activation("sigmoid")], SigmoidBinaryCrossEntropy()),
     {"noise": "gaussian"}, "unknown noise 'gaussian'; one of ['normal', 'uniform']"),
    (lambda: _networks([Dense(1), Activation("sigmoid")], SigmoidBinaryCrossEntropy()),
     {"label_smoothing": 0.5}, "label smoothing must be in [0, 0.5), got 0.5"),
    (lambda: _networks([Dense(1), Activation("sigmoid")], SigmoidBinaryCrossEntropy()),
     {"label_smoothing": -0.1}, "label smoothing must be in [0, 0.5), got -0.1"),
])
def test_gan_refuses_what_cannot_train_saying_what(
        make: Callable[[], tuple[Network, Network]], kwargs: dict[str, Any], message: str
) -> None:
    g, d = make()
    with pytest.raises(ValueError) as refused:
        Gan(g, d, **{"noise_size": 3, **kwargs})
    assert str(refused.value) == message


def test_label_smoothing_just_under_a_half_is_taken() -> None:
    assert _gan(smoothing=0.49).label_smoothing == 0.49


def test_d_steps_below_one_is_refused_saying_what() -> None:
    pair = OptimizerPair(Adam(0.01), Adam(0.01))
    with pytest.raises(ValueError) as refused:
        GanStep(_gan(), pair, d_steps=0)
    assert str(refused.value) == "d_steps must be at least 1, got 0"


def test_noise_and_samples_from_a_given_generator_leave_the_gans_own_alone() -> None:
    # bp generate draws from the seed it is given, and the GAN's generator (training's
    # noise and dropout) stays where it was
    gan = _gan(generator=[Dense(6), BatchNorm(), Activation("tanh"), Dropout(0.5), Dense(5)])
    state = dict(gan.rng.bit_generator.state)
    running = {k: v.copy() for k, v in gan.generator.buffers().items()}
    noise = gan.draw_noise(4, np.random.default_rng(9))
    np.testing.assert_array_equal(noise, np.random.default_rng(9).standard_normal((4, 3)))
    rows = gan.sample(4, np.random.default_rng(9))
    assert gan.rng.bit_generator.state == state
    # inference mode: no dropout, the running statistics, which do not move
    np.testing.assert_array_equal(rows, gan.generator.forward(noise, training=False))
    for key, value in gan.generator.buffers().items():
        np.testing.assert_array_equal(value, running[key])


def test_a_float32_gan_computes_in_float32_throughout(monkeypatch: pytest.MonkeyPatch) -> None:
    gan = _gan(dtype=np.float32)
    seen: list[str] = []

    def recording(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(X: np.ndarray, *args: Any) -> Any:
            seen.append(f"{name} {X.dtype}")
            return method(X, *args)
        return wrapped

    for net in ("generator", "discriminator"):
        for i, layer in enumerate(getattr(gan, net).layers):
            for method in ("forward", "backward"):
                monkeypatch.setattr(layer, method,
                                    recording(f"{net} {i} {method}", getattr(layer, method)))
    real = np.random.default_rng(6).normal(size=(8, 5)).astype(np.float32)
    assert gan.draw_noise(3).dtype == np.float32
    gan.discriminator_gradients(real)
    gan.generator_gradients(8)
    gan.sample(3)
    assert seen and all(s.endswith("float32") for s in seen), seen


@pytest.mark.parametrize("dtype", [np.float32, F64])
@pytest.mark.parametrize("n", [6, 37])
def test_the_generator_loss_is_the_one_its_gradients_follow(dtype: type, n: int) -> None:
    # what gradcheck differentiates is exactly the loss the generator's step reports
    gan = _gan(dtype=dtype)
    noise = gan.draw_noise(n)
    loss, d_fake = gan.generator_gradients_on(noise)
    assert gan.generator_loss(noise) == loss
    Z = gan.discriminator.forward_logits(gan.generator.forward(noise, training=True))
    assert d_fake == pytest.approx(float(np.mean(1 / (1 + np.exp(-Z.astype(F64))))),
                                   rel=1e-6)


@pytest.mark.parametrize("network", ["discriminator", "generator"])
@pytest.mark.parametrize("bad", ["loss", "gradient"])
def test_either_figure_non_finite_applies_nothing_to_that_network(
        monkeypatch: pytest.MonkeyPatch, network: str, bad: str) -> None:
    # the loss and the gradient are checked each on its own: one finite does not let the
    # other through; the batch's figures are still the discriminator step's
    gan = _gan()
    step = GanStep(gan, OptimizerPair(Adam(0.01, beta1=0.5), Adam(0.01, beta1=0.5)))
    real = np.random.default_rng(6).normal(size=(8, 5))
    net = getattr(gan, network)
    d_figures: list[float] = []

    def wrap(name: str) -> Callable[..., Any]:
        method = getattr(gan, name)

        def corrupted(*args: Any) -> Any:
            out = method(*args)
            if name == "discriminator_gradients":
                d_figures.extend(out)
            if name != f"{network}_gradients":
                return out
            if bad == "gradient":
                net.flat_grads[3] = np.inf
                return out
            return (np.inf, *out[1:])
        return corrupted

    for name in ("discriminator_gradients", "generator_gradients"):
        monkeypatch.setattr(gan, name, wrap(name))
    before = net.flat_params.copy()
    stats, _, failed = step(real, batch=0)
    assert failed == network
    np.testing.assert_array_equal(net.flat_params, before)
    assert (stats.d_real, stats.d_fake) == tuple(d_figures[1:])
    assert 0 < stats.d_real < 1 and 0 < stats.d_fake < 1
    if network == "generator":
        assert stats.d_loss == d_figures[0]
