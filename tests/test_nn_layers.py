"""The layers of bpcli/nn/layers.py: BatchNorm and LayerNorm (gradients, statistics, running
state, modes and descriptions), Dropout's masks, and every layer's validation and rebuilding
from its description. (Dense's and Dropout's gradients are checked in test_nn_gradients.py,
the image layers of conv.py in test_nn_conv.py.)"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli.memory import ACTIVATION_COPIES, TRAINING_COPIES, layer_needs
from bpcli.nn import LAYERS, Activation, Dense, Dropout, Layer, Network
from bpcli.nn.gradcheck import check_gradients
from bpcli.nn.layers import BatchNorm, LayerNorm, layer_from_description
from bpcli.nn.losses import Loss, MeanSquaredError, SoftmaxCrossEntropy
from bpcli.nn.sequence import Conv1D, Embedding, GlobalMaxPool1D
from tests.numeric import numeric_grad

EPS = 1e-6
ATOL = 1e-7
RTOL = 1e-5
L = TypeVar("L", bound=Layer)
NORMS: dict[str, Callable[[], Layer]] = {
    "batch_norm": lambda: BatchNorm(),
    "layer_norm": lambda: LayerNorm(),
}


# -- helpers -------------------------------------------------------------------------
def randomise_params(layer: Layer, rng: np.random.Generator) -> None:
    """gamma = 1 and beta = 0 hide mistakes in their roles; move them off their init."""
    for key, param in layer.params.items():
        param[...] = rng.normal(1.0 if key == "gamma" else 0.0, 0.5, size=param.shape)


def built(layer: L, input_shape: tuple[int, ...], dtype: type[np.floating] = np.float64,
          seed: int = 0) -> L:
    layer.build(input_shape, np.random.default_rng(seed), dtype)
    return layer


def running_stats(layer: Layer) -> dict[str, NDArray]:
    return {k: v.copy() for k, v in layer.buffers.items()}


def assert_stats_equal(layer: Layer, expected: dict[str, NDArray]) -> None:
    assert set(layer.buffers) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(layer.buffers[key], value, err_msg=key)


# -- gradients inside networks (2-D) ----------------------------------------------------
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
@pytest.mark.parametrize("norm", sorted(NORMS))
def test_gradients_inside_network(norm: str, loss_name: str, activation: str) -> None:
    rng = np.random.default_rng(1)
    layers: list[Layer] = [Dense(6), NORMS[norm](), Activation(activation), Dense(3)]
    loss: Loss
    Y: NDArray
    if loss_name == "mse":
        loss = MeanSquaredError()
        Y = rng.normal(size=(8, 3))
    else:
        loss = SoftmaxCrossEntropy()
        layers.append(Activation("softmax"))
        Y = rng.integers(0, 3, size=8)
    network = Network(layers, loss, (4,), np.random.default_rng(2), dtype=np.float64)
    randomise_params(network.layers[1], rng)
    # The activation after the norm works in place on the norm's output: the norm's cached
    # Xhat must survive that.
    assert network.layers[2].may_overwrite_input
    X = rng.normal(1.0, 2.0, size=(8, 4))
    before = running_stats(network.layers[1])

    checks = check_gradients(network, X, Y, eps=EPS, atol=ATOL, rtol=RTOL)

    assert [(c.layer, c.name) for c in checks] == [
        ("0 dense", "W"), ("0 dense", "b"), (f"1 {norm}", "gamma"), (f"1 {norm}", "beta"),
        ("3 dense", "W"), ("3 dense", "b"), ("input", "X"),
    ]
    failed = [c for c in checks if not c.passed]
    assert not failed, failed
    assert all(c.checked == c.total > 0 for c in checks)
    # Dozens of training-mode passes, and the running statistics never moved.
    assert_stats_equal(network.layers[1], before)


@pytest.mark.parametrize("norm", sorted(NORMS))
def test_gradients_land_in_the_flat_vector(norm: str) -> None:
    rng = np.random.default_rng(3)
    network = Network([Dense(5), NORMS[norm](), Activation("tanh"), Dense(2)],
                      MeanSquaredError(), (3,), rng, np.float64)
    layer = network.layers[1]
    for key in ("gamma", "beta"):
        assert np.shares_memory(layer.params[key], network.flat_params)
        assert np.shares_memory(layer.grads[key], network.flat_grads)
    network.compute_gradients(rng.normal(size=(6, 3)), rng.normal(size=(6, 2)))
    names = [name for name, _, _ in network.parameters()]
    offsets = np.cumsum([0] + [p.size for p in network.param_arrays()])
    for key in ("gamma", "beta"):
        i = names.index(f"1.{key}")
        flat_part = network.flat_grads[offsets[i] : offsets[i + 1]]
        assert np.any(flat_part)
        np.testing.assert_array_equal(flat_part, layer.grads[key].reshape(-1))
        assert np.shares_memory(layer.grads[key], network.flat_grads)  # not rebound


@pytest.mark.parametrize("norm", sorted(NORMS))
def test_batch_size_changes_give_fresh_gradients(norm: str) -> None:
    rng = np.random.default_rng(4)
    X_big, Y_big = rng.normal(size=(9, 3)), rng.normal(size=(9, 2))
    X, Y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))

    def fresh() -> Network:
        return Network([Dense(5), NORMS[norm](), Activation("relu"), Dense(2)],
                       MeanSquaredError(), (3,), np.random.default_rng(5), np.float64)

    reference = fresh()
    loss = reference.compute_gradients(X, Y)
    expected = [g.copy() for g in reference.grad_arrays()]
    network = fresh()
    network.compute_gradients(X_big, Y_big)
    assert network.compute_gradients(X, Y) == pytest.approx(loss, rel=1e-13)
    for g, e in zip(network.grad_arrays(), expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)


# -- each layer's backward on 4-D inputs -------------------------------------------------
@pytest.mark.parametrize("norm", sorted(NORMS))
def test_backward_on_4d_inputs_against_finite_differences(norm: str) -> None:
    rng = np.random.default_rng(6)
    layer = built(NORMS[norm](), (3, 5, 5))
    randomise_params(layer, rng)
    expected_shape = (3,) if norm == "batch_norm" else (3, 5, 5)
    assert layer.params["gamma"].shape == layer.params["beta"].shape == expected_shape
    X = rng.normal(2.0, 3.0, size=(4, 3, 5, 5))
    G = rng.normal(size=X.shape)

    def loss() -> float:  # sum(Y * G): its gradient with respect to Y is G
        return float(np.sum(layer.forward(X, True) * G))

    layer.hold_randomness(True)
    Y = layer.forward(X, True)
    assert Y.shape == X.shape
    dX = layer.backward(G.copy())
    assert dX is not None and dX.shape == X.shape
    dX = dX.copy()
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    np.testing.assert_allclose(dX, numeric_grad(loss, X), rtol=RTOL, atol=ATOL)
    for key, param in layer.params.items():
        np.testing.assert_allclose(analytic[key], numeric_grad(loss, param), rtol=RTOL,
                                   atol=ATOL, err_msg=key)
    # Without the input gradient, the parameter gradients are the same and dX is skipped.
    layer.needs_input_grad = False
    layer.forward(X, True)
    assert layer.backward(G.copy()) is None
    for key, grad in layer.grads.items():
        np.testing.assert_allclose(grad, analytic[key], rtol=1e-13, err_msg=key)


def test_batch_norm_backward_matches_the_long_formula() -> None:
    """The compact dX against the textbook chain rule through mean and variance."""
    rng = np.random.default_rng(7)
    layer = built(BatchNorm(), (4,))
    randomise_params(layer, rng)
    X = rng.normal(size=(6, 4))
    dY = rng.normal(size=X.shape)
    layer.forward(X, True)
    dX = layer.backward(dY.copy())
    assert dX is not None
    gamma, eps, n = layer.params["gamma"], layer.epsilon, len(X)
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    dXhat = dY * gamma
    dvar = np.sum(dXhat * (X - mu) * -0.5 * (var + eps) ** -1.5, axis=0)
    dmu = np.sum(-dXhat / np.sqrt(var + eps), axis=0) + dvar * np.mean(-2 * (X - mu), axis=0)
    expected = dXhat / np.sqrt(var + eps) + dvar * 2 * (X - mu) / n + dmu / n
    np.testing.assert_allclose(dX, expected, rtol=1e-10, atol=1e-12)


# -- normalised outputs ----------------------------------------------------------------
@pytest.mark.parametrize("input_shape", [(5,), (3, 4, 4)])
def test_batch_norm_training_output_is_standardised_per_feature(
    input_shape: tuple[int, ...],
) -> None:
    rng = np.random.default_rng(8)
    layer = built(BatchNorm(), input_shape)
    shift = rng.normal(0, 5, size=(input_shape[0],) + (1,) * (len(input_shape) - 1))
    X = shift + rng.uniform(0.5, 3.0, size=shift.shape) * rng.normal(size=(32, *input_shape))
    axes = (0, *range(2, X.ndim))
    Y = layer.forward(X, True)
    np.testing.assert_allclose(Y.mean(axis=axes), 0.0, atol=1e-12)
    # var(Xhat) = var / (var + epsilon), within epsilon of 1.
    np.testing.assert_allclose(Y.var(axis=axes), 1.0, rtol=1e-4)
    # gamma and beta then scale and shift each feature.
    layer.params["gamma"][...] = [2.0, 0.5, 3.0, 1.0, 1.0][: input_shape[0]]
    layer.params["beta"][...] = [1.0, -1.0, 0.0, 4.0, 2.0][: input_shape[0]]
    Y = layer.forward(X, True)
    np.testing.assert_allclose(Y.mean(axis=axes), layer.params["beta"], atol=1e-12)
    np.testing.assert_allclose(Y.std(axis=axes), layer.params["gamma"], rtol=1e-4)


@pytest.mark.parametrize("input_shape", [(6,), (3, 4, 4)])
def test_layer_norm_output_is_standardised_per_sample(input_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(9)
    layer = built(LayerNorm(), input_shape)
    offsets = 10 * rng.normal(size=(5,) + (1,) * len(input_shape))  # one per sample
    X = offsets + rng.uniform(0.5, 3.0, size=offsets.shape) * rng.normal(size=(5, *input_shape))
    axes = tuple(range(1, X.ndim))
    X_before = X.copy()
    Y = layer.forward(X, True).copy()
    np.testing.assert_allclose(Y.mean(axis=axes), 0.0, atol=1e-12)
    np.testing.assert_allclose(Y.var(axis=axes), 1.0, rtol=1e-4)
    # Inference computes exactly the same, in a fresh array; the input is left alone.
    randomise_params(layer, rng)
    Y_train = layer.forward(X, True).copy()
    Y_infer = layer.forward(X, False)
    np.testing.assert_allclose(Y_infer, Y_train, rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(X, X_before)
    kept = Y_infer.copy()
    layer.forward(rng.normal(size=X.shape), True)
    layer.forward(rng.normal(size=X.shape), False)
    np.testing.assert_array_equal(Y_infer, kept)


# -- running statistics -----------------------------------------------------------------
@pytest.mark.parametrize("input_shape", [(4,), (2, 3, 3)])
def test_running_statistics_one_step_convention(input_shape: tuple[int, ...]) -> None:
    """momentum weighs the old value; the variance kept is the unbiased one (n / (n - 1))."""
    rng = np.random.default_rng(10)
    layer = built(BatchNorm(momentum=0.8), input_shape)
    assert_stats_equal(layer, {"running_mean": np.zeros(input_shape[0]),
                               "running_var": np.ones(input_shape[0])})
    X = rng.normal(3.0, 2.0, size=(5, *input_shape))
    layer.forward(X, True)
    per_feature = np.moveaxis(X, 1, 0).reshape(input_shape[0], -1)  # (features, n)
    np.testing.assert_allclose(layer.buffers["running_mean"],
                               0.2 * per_feature.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(layer.buffers["running_var"],
                               0.8 + 0.2 * per_feature.var(axis=1, ddof=1), rtol=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_momentum_at_either_end_of_its_range(momentum: float) -> None:
    """0 keeps only the last batch's statistics; 1 keeps the running ones as they were."""
    layer = built(BatchNorm(momentum=momentum), (2,))
    X = np.random.default_rng(12).normal(3.0, 2.0, size=(6, 2))
    layer.forward(X, True)
    if momentum == 1.0:
        assert_stats_equal(layer, {"running_mean": np.zeros(2), "running_var": np.ones(2)})
    else:
        np.testing.assert_allclose(layer.buffers["running_mean"], X.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(layer.buffers["running_var"], X.var(axis=0, ddof=1),
                                   rtol=1e-12)


def test_running_statistics_approach_the_data_statistics() -> None:
    rng = np.random.default_rng(11)
    mean = np.array([-3.0, 0.0, 5.0])
    std = np.array([0.5, 1.0, 4.0])
    # With momentum 0.99 the running values average ~200 batches of 64: standard errors
    # about 0.01 std for the mean and 1.3% for the variance; the tolerances are 5 of them.
    layer = built(BatchNorm(momentum=0.99), (3,))
    for _ in range(1000):
        layer.forward(mean + std * rng.normal(size=(64, 3)), True)
    assert np.all(np.abs(layer.buffers["running_mean"] - mean) < 0.05 * std)
    np.testing.assert_allclose(layer.buffers["running_var"], std**2, rtol=0.07)


def test_inference_uses_and_keeps_the_running_statistics() -> None:
    rng = np.random.default_rng(12)
    layer = built(BatchNorm(), (2, 3, 3))
    randomise_params(layer, rng)
    for _ in range(5):
        layer.forward(rng.normal(1.0, 2.0, size=(8, 2, 3, 3)), True)
    stats = running_stats(layer)
    X = rng.normal(1.0, 2.0, size=(8, 2, 3, 3))
    X_before = X.copy()
    Y = layer.forward(X, False)
    assert_stats_equal(layer, stats)
    np.testing.assert_array_equal(X, X_before)

    def per_feature(v: NDArray) -> NDArray:
        return v.reshape(-1, 1, 1)

    expected = (per_feature(layer.params["gamma"])
                * (X - per_feature(stats["running_mean"]))
                / np.sqrt(per_feature(stats["running_var"]) + layer.epsilon)
                + per_feature(layer.params["beta"]))
    np.testing.assert_allclose(Y, expected, rtol=1e-12, atol=1e-12)
    # Batches of one are fine in inference.
    np.testing.assert_allclose(layer.forward(X[:1], False), expected[:1], rtol=1e-12)
    # Training normalises with the batch's own statistics: a different output.
    kept = Y.copy()
    assert not np.allclose(layer.forward(X, True), Y)
    np.testing.assert_array_equal(Y, kept)  # the inference output was not a reused buffer


@pytest.mark.parametrize("norm", sorted(NORMS))
def test_inference_forward_then_backward_is_refused(norm: str) -> None:
    """Backward after an inference pass would use a stale training cache: refuse it."""
    layer = built(NORMS[norm](), (3,))
    X = np.random.default_rng(0).normal(size=(4, 3))
    layer.forward(X, True)
    layer.forward(X, False)
    with pytest.raises(AssertionError, match="^backward called before a training forward$"):
        layer.backward(np.ones((4, 3)))


def test_held_randomness_freezes_the_running_statistics() -> None:
    rng = np.random.default_rng(13)
    layer = built(BatchNorm(), (3,))
    layer.forward(rng.normal(size=(6, 3)), True)
    stats = running_stats(layer)
    X = rng.normal(2.0, 3.0, size=(6, 3))
    layer.hold_randomness(True)
    Y_held = layer.forward(X, True).copy()
    layer.forward(X, True)
    assert_stats_equal(layer, stats)
    layer.hold_randomness(False)
    # Held or not, training normalises with the batch statistics; only the update differs.
    np.testing.assert_array_equal(layer.forward(X, True), Y_held)
    assert not np.array_equal(layer.buffers["running_mean"], stats["running_mean"])
    assert not np.array_equal(layer.buffers["running_var"], stats["running_var"])

    # Through the network's context manager too.
    network = Network([Dense(3), BatchNorm(), Dense(2)], MeanSquaredError(), (3,),
                      np.random.default_rng(14), np.float64)
    norm = network.layers[1]
    stats = running_stats(norm)
    with network.held_randomness():
        network.compute_gradients(X, rng.normal(size=(6, 2)))
        network.loss_value(X, rng.normal(size=(6, 2)), training=True)
    assert_stats_equal(norm, stats)
    network.compute_gradients(X, rng.normal(size=(6, 2)))
    assert not np.array_equal(norm.buffers["running_mean"], stats["running_mean"])


def test_only_batch_norm_has_buffers() -> None:
    assert built(LayerNorm(), (3,)).buffers == {}
    assert built(Dense(3), (2,)).buffers == {}
    assert set(built(BatchNorm(), (3,)).buffers) == {"running_mean", "running_var"}
    # Buffers are not parameters: not counted, not in the network's flat vector.
    network = Network([Dense(3), BatchNorm()], MeanSquaredError(), (2,),
                      np.random.default_rng(0), np.float64)
    assert network.n_params == 2 * 3 + 3 + 3 + 3
    assert [name for name, _, _ in network.parameters()] == ["0.W", "0.b", "1.gamma", "1.beta"]
    for value in network.layers[1].buffers.values():
        assert not np.shares_memory(value, network.flat_params)


# -- errors ---------------------------------------------------------------------------
def test_batch_norm_rejects_a_training_batch_of_one() -> None:
    layer = built(BatchNorm(), (3,))
    stats = running_stats(layer)
    with pytest.raises(ValueError, match=re.escape(
            "batch_norm needs at least 2 values per feature in training mode, got a batch of "
            "shape (1, 3): the batch variance is undefined for a single sample; use batches "
            "of 2 or more samples")):
        layer.forward(np.ones((1, 3)), True)
    assert_stats_equal(layer, stats)
    # A single image still has many values per channel.
    image_layer = built(BatchNorm(), (2, 3, 3))
    Y = image_layer.forward(np.random.default_rng(0).normal(size=(1, 2, 3, 3)), True)
    np.testing.assert_allclose(Y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    # LayerNorm normalises within a sample: a batch of one is fine.
    assert built(LayerNorm(), (3,)).forward(np.array([[1.0, 2.0, 4.0]]), True).shape == (1, 3)


def test_validation() -> None:
    for momentum in (-0.1, 1.5):
        with pytest.raises(ValueError, match="momentum"):
            BatchNorm(momentum=momentum)
    for epsilon in (0.0, -1e-5):
        with pytest.raises(ValueError, match="epsilon"):
            BatchNorm(epsilon=epsilon)
        with pytest.raises(ValueError, match="epsilon"):
            LayerNorm(epsilon=epsilon)
    with pytest.raises(ValueError, match="batch_norm expects"):
        BatchNorm().build((3, 4), np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match="layer_norm"):
        LayerNorm().build((), np.random.default_rng(0), np.float64)


# -- description, shapes, dtypes ----------------------------------------------------------
@pytest.mark.parametrize(
    "layer",
    [BatchNorm(), BatchNorm(momentum=0.99, epsilon=1e-3), LayerNorm(), LayerNorm(epsilon=1e-6)],
    ids=["bn-default", "bn-options", "ln-default", "ln-options"],
)
def test_rebuild_from_description(layer: Layer) -> None:
    description = layer.describe()
    assert json.loads(json.dumps(description)) == description
    rebuilt = layer_from_description(description)
    assert type(rebuilt) is type(layer)
    assert rebuilt.describe() == description
    assert LAYERS[description["type"]] is type(layer)


def test_descriptions_name_every_option() -> None:
    assert BatchNorm().describe() == {"type": "batch_norm", "momentum": 0.9, "epsilon": 1e-5}
    assert LayerNorm().describe() == {"type": "layer_norm", "epsilon": 1e-5}


@pytest.mark.parametrize("norm", sorted(NORMS))
@pytest.mark.parametrize("input_shape", [(5,), (3, 4, 4)])
def test_output_shape_is_the_input_shape(norm: str, input_shape: tuple[int, ...]) -> None:
    layer = NORMS[norm]()
    assert layer.build(input_shape, np.random.default_rng(0), np.float64) == input_shape
    assert layer.compute_output_shape(input_shape) == input_shape
    assert layer.output_shape == input_shape


@pytest.mark.parametrize("norm", sorted(NORMS))
@pytest.mark.parametrize("input_shape", [(5,), (3, 4, 4)])
def test_float32_is_preserved(norm: str, input_shape: tuple[int, ...]) -> None:
    f32 = np.float32
    rng = np.random.default_rng(15)
    layer = built(NORMS[norm](), input_shape, dtype=f32)
    assert all(v.dtype == f32 for v in (*layer.params.values(), *layer.grads.values(),
                                        *layer.buffers.values()))
    X = rng.normal(size=(6, *input_shape)).astype(f32)
    Y = layer.forward(X, True)
    assert Y.dtype == f32
    dX = layer.backward(rng.normal(size=X.shape).astype(f32))
    assert dX is not None and dX.dtype == f32
    assert all(v.dtype == f32 for v in (*layer.grads.values(), *layer.buffers.values()))
    assert layer.forward(X, False).dtype == f32


def test_float32_network_trains_without_upcasting() -> None:
    f32 = np.float32
    rng = np.random.default_rng(16)
    layers: list[Layer] = [Dense(8), BatchNorm(), Activation("relu"), Dense(6), LayerNorm(),
                           Activation("tanh"), Dense(3), Activation("softmax")]
    network = Network(layers, SoftmaxCrossEntropy(), (4,), rng, dtype=f32)
    X = rng.normal(size=(16, 4)).astype(f32)
    y = rng.integers(0, 3, size=16)
    network.layers[0].needs_input_grad = True
    value = network.compute_gradients(X, y)
    assert np.isfinite(value)
    assert network.input_grad is not None and network.input_grad.dtype == f32
    assert all(g.dtype == f32 for g in network.grad_arrays())
    assert all(v.dtype == f32 for v in network.layers[1].buffers.values())
    loss, outputs = network.evaluate(X, y)
    assert outputs.dtype == f32 and np.isfinite(loss)
    # A few plain gradient steps lower the loss.
    for _ in range(30):
        network.compute_gradients(X, y)
        network.flat_params -= f32(0.1) * network.flat_grads
    assert network.loss_value(X, y, training=True) < value


# -- dense, activation and dropout ----------------------------------------------------
def test_dropout_statistics() -> None:
    layer = Dropout(0.25)
    layer.build((1000,), np.random.default_rng(11), np.float64)
    X = np.ones((50, 1000))
    out = layer.forward(X, training=True)
    dropped = np.mean(out == 0)
    assert dropped == pytest.approx(0.25, abs=0.01)
    np.testing.assert_allclose(out[out != 0], 1 / 0.75)
    assert out.mean() == pytest.approx(1.0, abs=0.02)  # inverted dropout keeps the mean
    np.testing.assert_array_equal(layer.backward(X.copy()), out)  # same mask on the way back
    np.testing.assert_array_equal(layer.forward(X, training=False), X)


def test_a_layer_between_an_embedding_and_the_pooling_passes_the_side_features_on() -> None:
    """The columns after the token ids reach the pooling layer through a conv1d, which
    asks the embedding for them (Layer.side_features)."""
    layers: list[Layer] = [Embedding(9, 3, length=4), Conv1D(2, 2), GlobalMaxPool1D()]
    network = Network(layers, MeanSquaredError(), (6,), np.random.default_rng(15))
    assert network.output_shape == (2 + 2,)
    X = np.array([[1, 2, 3, 4, 0.5, -7.0], [5, 6, 0, 0, 2.5, 1.0]])
    np.testing.assert_array_equal(network.forward(X)[:, 2:], X[:, 4:])
    assert layers[1].side_features() is not None and layers[1].side_width() == 2


def test_plain_layers_add_no_workspace_to_the_memory_estimate() -> None:
    """Only layers with work arrays beyond their output (a conv's unrolled windows) ask
    for more than parameters and activations when bp checks a network fits in memory."""
    layers: list[Layer] = [Dense(5), Activation("relu"), Dropout(0.5), LayerNorm()]
    needs = layer_needs(layers, (3,), 4, batch=8, inference_batch=16)
    per_activation = 8 * ACTIVATION_COPIES * 5 + 16 * (5 + 5)
    dense = (3 * 5 + 5) * TRAINING_COPIES + 8 * ACTIVATION_COPIES * 5 + 16 * (3 + 5)
    norm = 2 * 5 * TRAINING_COPIES + per_activation
    assert needs == [4 * dense, 4 * per_activation, 4 * per_activation, 4 * norm]


def test_layer_validation() -> None:
    for units in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match=re.escape(
                f"dense units must be a positive int, got {units!r}")):
            Dense(units)  # type: ignore[arg-type]
    assert Dense(np.int64(3)).units == 3
    assert Dense(1).units == 1
    with pytest.raises(ValueError, match="initialiser"):
        Dense(3, init="he_normal_but_misspelt")
    with pytest.raises(ValueError, match="activation"):
        Activation("gelu_but_misspelt")
    for rate in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout rate"):
            Dropout(rate)
    with pytest.raises(ValueError, match="flat"):
        Network([Dense(3)], MeanSquaredError(), (2, 2), np.random.default_rng(0))


def test_layers_rebuild_from_description() -> None:
    layers: list[Layer] = [Dense(4, init="he_normal"), Activation("leaky_relu", slope=0.2),
                           Dropout(0.1), Dense(2, init="constant", init_options={"value": 0.5})]
    for layer in layers:
        rebuilt = layer_from_description(layer.describe())
        assert type(rebuilt) is type(layer)
        assert rebuilt.describe() == layer.describe()
    assert set(LAYERS) == {"dense", "activation", "dropout", "batch_norm", "layer_norm",
                           "conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d",
                           "flatten", "embedding", "conv1d", "global_max_pool1d",
                           "global_avg_pool1d", "gru", "lstm", "reshape", "upsample2d",
                           "group_softmax"}
    with pytest.raises(ValueError, match="unknown layer type"):
        layer_from_description({"type": "conv"})
