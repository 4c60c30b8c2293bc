"""Network assembly, layer numbering, state, inference, dtypes and training."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli.nn import (
    LOSSES,
    Activation,
    Dense,
    Dropout,
    Layer,
    Loss,
    Network,
)
from bpcli.nn.conv import Conv2D, Flatten
from bpcli.nn.layers import BatchNorm
from bpcli.nn.losses import MeanSquaredError, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from bpcli.nn.network import layer_numbers, share_storage
from bpcli.nn.optimizers import SGD, Adam


def classifier(seed: int = 0, dtype: type[np.floating] = np.float64) -> Network:
    """4 inputs -> dense 8 relu -> dropout -> dense 3 softmax, cross-entropy."""
    layers: list[Layer] = [
        Dense(8), Activation("relu"), Dropout(0.5), Dense(3), Activation("softmax"),
    ]
    return Network(layers, SoftmaxCrossEntropy(), (4,), np.random.default_rng(seed), dtype)


# -- structure -----------------------------------------------------------------------
def test_shapes_per_layer() -> None:
    network = classifier()
    shapes = [(layer.input_shape, layer.output_shape) for layer in network.layers]
    assert shapes == [((4,), (8,)), ((8,), (8,)), ((8,), (8,)), ((8,), (3,)), ((3,), (3,))]
    assert network.input_shape == (4,)
    assert network.output_shape == (3,)
    X: NDArray[np.floating] = np.random.default_rng(1).normal(size=(5, 4))
    for layer in network.layers:
        X = layer.forward(X, False)
        assert X.shape == (5, *layer.output_shape)


def test_parameters_and_count() -> None:
    network = classifier()
    # dense 4->8: 32 + 8; dense 8->3: 24 + 3
    assert network.n_params == 40 + 27 == 67
    names = [name for name, _, _ in network.parameters()]
    assert names == ["0.W", "0.b", "3.W", "3.b"]
    shapes = [p.shape for p in network.param_arrays()]
    assert shapes == [(4, 8), (8,), (8, 3), (3,)]
    assert [g.shape for g in network.grad_arrays()] == shapes
    assert sum(p.size for p in network.param_arrays()) == network.n_params
    # Biases start at zero, weights do not.
    assert not np.any(network.layers[0].params["b"])
    assert np.all(network.layers[0].params["W"] != 0)


def test_first_layer_skips_its_input_gradient() -> None:
    network = classifier()
    assert network.layers[0].needs_input_grad is False
    assert network.layers[3].needs_input_grad is True
    rng = np.random.default_rng(2)
    network.compute_gradients(rng.normal(size=(6, 4)), rng.integers(0, 3, size=6))
    assert network.input_grad is None
    # The gradients were filled in all the same.
    assert np.any(network.layers[0].grads["W"])


def test_layer_numbers_fold_activations_into_their_layer() -> None:
    layers = [Dense(8), Activation("tanh"), BatchNorm(), Dropout(0.1), Dense(6),
              Activation("relu"), Dense(3), Activation("softmax")]
    assert layer_numbers(layers) == [0, 0, 1, 2, 3, 3, 4, 4]
    network = Network(layers, SoftmaxCrossEntropy(), (4,), np.random.default_rng(0))
    assert network.layer_name(5) == "3 relu" and network.layer_name(4) == "3 dense"
    assert [e["index"] for e in network.summary()] == [0, 1, 2, 3, 4]
    # an activation that follows no dense or conv2d layer is a layer of its own
    assert layer_numbers([BatchNorm(), Activation("relu"), Dense(2)]) == [0, 1, 2]
    # nor does one that comes first, whatever the last layer is
    assert layer_numbers([Activation("tanh"), Dense(4), Dense(2)]) == [0, 1, 2]


def test_summary_has_one_entry_per_numbered_layer() -> None:
    """What ``bp inspect`` shows of a model: each dense layer with its activation, the
    parameters of both counted together."""
    layers: list[Layer] = [Dense(8), Activation("relu"), Dropout(0.5), Dense(3),
                           Activation("softmax")]
    network = Network(layers, SoftmaxCrossEntropy(), (4,), np.random.default_rng(0))
    assert network.summary() == [
        {"index": 0, "type": "dense", "options": {"units": 8, "init": "glorot_uniform"},
         "activation": {"name": "relu"}, "output_shape": [8], "parameters": 4 * 8 + 8},
        {"index": 1, "type": "dropout", "options": {"rate": 0.5}, "activation": None,
         "output_shape": [8], "parameters": 0},
        {"index": 2, "type": "dense", "options": {"units": 3, "init": "glorot_uniform"},
         "activation": {"name": "softmax"}, "output_shape": [3], "parameters": 8 * 3 + 3},
    ]


# -- state ---------------------------------------------------------------------------
def test_load_state_copies_matching_parameters() -> None:
    source, target = classifier(seed=1), classifier(seed=2)
    state = source.state()
    target.load_state(state)
    for (name, a, _), (_, b, _) in zip(source.parameters(), target.parameters(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert not np.shares_memory(a, b)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("drop", "; missing ['3.b']"),
        ("add", "; unexpected ['5.W']"),
        ("rename", "; missing ['3.W']; unexpected ['2.W']"),
        ("reshape", "; wrong shape ['0.b']"),
        ("transpose", "; wrong shape ['0.W']"),
    ],
)
def test_load_state_rejects_mismatch(change: str, message: str) -> None:
    network = classifier()
    before = {k: v.copy() for k, v in network.state().items()}
    state: dict[str, NDArray] = {k: v + 1.0 for k, v in network.state().items()}
    if change == "drop":
        del state["3.b"]
    elif change == "add":
        state["5.W"] = np.zeros((3, 3))
    elif change == "rename":
        state["2.W"] = state.pop("3.W")
    elif change == "reshape":
        state["0.b"] = np.zeros(9)
    else:
        state["0.W"] = state["0.W"].T.copy()
    with pytest.raises(ValueError) as refused:
        network.load_state(state)
    assert str(refused.value) == "parameters do not match the architecture" + message
    # Nothing was half-loaded.
    for name, value in network.state().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


# -- inference -----------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [3, 4096])
def test_evaluate_is_forward_and_loss_in_inference_mode(batch_size: int) -> None:
    network = classifier(seed=3)
    rng = np.random.default_rng(4)
    for layer in network.layers:  # non-zero biases so that every term matters
        if "b" in layer.params:
            layer.params["b"][...] = rng.normal(size=layer.params["b"].shape)
    X = rng.normal(size=(10, 4))
    y = rng.integers(0, 3, size=10)
    loss, outputs = network.evaluate(X, y, batch_size=batch_size)
    expected_outputs = network.forward(X, training=False)
    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-12)
    assert loss == pytest.approx(network.loss_value(X, y, training=False), rel=1e-12)
    # inference mode unless asked for training
    assert network.loss_value(X, y) == pytest.approx(loss, rel=1e-12)
    # Dropout is off: inference is repeatable and differs from a training pass.
    np.testing.assert_array_equal(network.forward(X), expected_outputs)
    assert not np.allclose(network.forward(X, training=True), expected_outputs)
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("training", [False, True])
def test_forward_logits_are_the_outputs_before_the_fused_activation(training: bool) -> None:
    """What a GAN's discriminator hands its loss: the logits, whose softmax is the output."""
    network = classifier(seed=6)
    X = np.random.default_rng(7).normal(size=(5, 4))
    with network.held_randomness():  # the same dropout draw in both training passes
        expected = network.forward(X, training).copy()
        logits = network.forward_logits(X, training)
    assert logits.shape == (5, 3)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-12)
    assert not np.allclose(logits, expected)
    if not training:  # no dropout in inference: the same logits again
        np.testing.assert_array_equal(network.forward_logits(X), logits)


def test_flat_rows_are_read_as_images_in_row_major_order() -> None:
    """What a CSV gives a conv network: rows of C*H*W pixels, channel, then row, then column."""
    rng = np.random.default_rng(8)
    network = Network([Conv2D(2, 2), Flatten(), Dense(3)], MeanSquaredError(), (2, 3, 4), rng,
                      np.float64)
    images = rng.normal(size=(5, 2, 3, 4))
    rows = images.reshape(5, 24)
    assert network.shaped(rows).shape == (5, 2, 3, 4)
    assert network.shaped(images) is images
    np.testing.assert_array_equal(network.forward(rows), network.forward(images))
    Y = rng.normal(size=(5, 3))
    assert network.loss_value(rows, Y) == network.loss_value(images, Y)
    loss, outputs = network.evaluate(rows, Y, batch_size=2)
    np.testing.assert_allclose(outputs, network.forward(images), rtol=1e-12)


def test_evaluate_without_fused_loss() -> None:
    rng = np.random.default_rng(5)
    network = Network([Dense(3), Activation("tanh"), Dropout(0.3), Dense(2)],
                      MeanSquaredError(), (2,), rng, np.float64)
    X = rng.normal(size=(7, 2))
    Y = rng.normal(size=(7, 2))
    loss, outputs = network.evaluate(X, Y, batch_size=2)
    P = network.forward(X)
    np.testing.assert_allclose(outputs, P, rtol=1e-12)
    assert loss == pytest.approx(float(np.mean((P - Y) ** 2)), rel=1e-12)


@pytest.mark.parametrize(
    ("loss", "last"),
    [
        (SoftmaxCrossEntropy(), None),
        (SoftmaxCrossEntropy(), "sigmoid"),
        (SoftmaxCrossEntropy(), "identity"),
        (SigmoidBinaryCrossEntropy(), None),
        (SigmoidBinaryCrossEntropy(), "softmax"),
    ],
)
def test_fused_loss_needs_its_output_activation(loss: Loss, last: str | None) -> None:
    layers: list[Layer] = [Dense(3)]
    if last is not None:
        layers.append(Activation(last))
    with pytest.raises(ValueError, match="output activation"):
        Network(layers, loss, (2,), np.random.default_rng(0))


def test_empty_network_with_fused_loss_is_rejected() -> None:
    with pytest.raises(ValueError):
        Network([], SoftmaxCrossEntropy(), (2,), np.random.default_rng(0))


def test_shared_storage_holds_every_networks_parameters_and_gradients_in_order() -> None:
    """Networks trained together (a GAN's two) in one vector: copying or restoring it
    covers them all."""
    f32 = np.float32
    small = Network([Dense(2)], MeanSquaredError(), (3,), np.random.default_rng(4), f32)
    networks = [classifier(seed=1, dtype=f32), small, classifier(seed=2, dtype=f32)]
    before = [p.copy() for net in networks for p in net.param_arrays()]
    flat_params, flat_grads = share_storage(networks)
    assert flat_params.dtype == flat_grads.dtype == f32
    assert flat_params.shape == flat_grads.shape == (sum(n.n_params for n in networks),)
    np.testing.assert_array_equal(flat_params, np.concatenate([p.ravel() for p in before]))
    after = [p for net in networks for p in net.param_arrays()]
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(new, old)
    # each network's own vectors are its stretch of the joint ones
    ends = np.cumsum([0] + [net.n_params for net in networks])
    for net, start, end in zip(networks, ends, ends[1:], strict=False):
        assert np.shares_memory(net.flat_params, flat_params[start:end])
        assert not np.shares_memory(net.flat_params, flat_params[:start])
        assert not np.shares_memory(net.flat_params, flat_params[end:])
    # the last network's gradients land in its stretch only
    rng = np.random.default_rng(3)
    networks[2].compute_gradients(rng.normal(size=(6, 4)).astype(f32),
                                  rng.integers(0, 3, size=6))
    assert not np.any(flat_grads[: ends[2]])
    np.testing.assert_array_equal(
        flat_grads[ends[2] :], np.concatenate([g.ravel() for g in networks[2].grad_arrays()]))
    assert np.any(flat_grads[ends[2] :])
    # restoring the joint vector restores every network
    flat_params[...] = 0.0
    assert not any(np.any(p) for p in after)


# -- determinism and dtypes ----------------------------------------------------------
def test_same_seed_same_parameters_bit_for_bit() -> None:
    a, b, c = classifier(seed=7), classifier(seed=7), classifier(seed=8)
    for (_, p, _), (_, q, _) in zip(a.parameters(), b.parameters(), strict=True):
        assert p.dtype == q.dtype
        assert p.tobytes() == q.tobytes()
    assert a.layers[0].params["W"].tobytes() != c.layers[0].params["W"].tobytes()
    # Same seed, same training draws (dropout masks) too.
    X = np.random.default_rng(9).normal(size=(6, 4))
    assert a.forward(X, training=True).tobytes() == b.forward(X, training=True).tobytes()


OPTIMIZER_FACTORIES = {
    "nesterov": lambda: SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    "adam": lambda: Adam(learning_rate=0.01),
    "sgd": lambda: SGD(learning_rate=0.1),
}


@pytest.mark.parametrize(
    ("loss_name", "optimizer_name"),
    [("cross_entropy", "nesterov"), ("binary_cross_entropy", "adam"), ("mse", "sgd")],
)
def test_float32_is_preserved(loss_name: str, optimizer_name: str) -> None:
    """With float32 inputs and targets (as the data pipeline supplies them) nothing upcasts."""
    f32 = np.float32
    rng = np.random.default_rng(10)
    layers: list[Layer] = [Dense(6), Activation("tanh"), Dropout(0.2), Dense(3)]
    loss = LOSSES[loss_name]()
    if loss.fused_activation is not None:
        layers.append(Activation(loss.fused_activation))
    Y: NDArray
    if loss.target_kind == "i":
        Y = rng.integers(0, 3, size=8)
    elif loss_name == "binary_cross_entropy":
        Y = rng.integers(0, 2, size=(8, 3)).astype(f32)
    else:
        Y = rng.normal(size=(8, 3)).astype(f32)
    network = Network(layers, loss, (4,), rng, dtype=f32)
    assert network.dtype == np.dtype(f32)
    assert all(p.dtype == f32 for p in network.param_arrays())
    X = rng.normal(size=(8, 4)).astype(f32)

    network.layers[0].needs_input_grad = True  # so that the whole backward pass is seen
    A = X
    for layer in network.layers:
        A = layer.forward(A, True)
        assert A.dtype == f32, layer.kind
    value = network.compute_gradients(X, Y)
    assert isinstance(value, float) and np.isfinite(value)
    assert network.input_grad is not None and network.input_grad.dtype == f32
    network.layers[0].needs_input_grad = False

    optimizer = OPTIMIZER_FACTORIES[optimizer_name]()
    for _ in range(2):
        value = network.compute_gradients(X, Y)
        assert np.isfinite(value)
        assert all(g.dtype == f32 for g in network.grad_arrays())
        before = [p.copy() for p in network.param_arrays()]
        optimizer.step(network.param_arrays(), network.grad_arrays())
        assert all(p.dtype == f32 for p in network.param_arrays())
        assert any(not np.array_equal(p, q)
                   for p, q in zip(before, network.param_arrays(), strict=True))
    state = optimizer.state()
    counters = ("iterations", "learning_rate")
    assert all(v.dtype == f32 for k, v in state.items() if k not in counters), {
        k: v.dtype for k, v in state.items()
    }
    loss_value, outputs = network.evaluate(X, Y)
    assert outputs.dtype == f32
    assert np.isfinite(loss_value)


def test_training_mode_matches_inference_and_leaves_inputs_alone() -> None:
    """Without dropout, a training pass computes what an inference pass does, and neither
    writes into the caller's arrays."""
    rng = np.random.default_rng(14)
    layers: list[Layer] = [
        Dense(6), Activation("relu"), Dropout(0.0), Dense(5), Activation("tanh"),
        Activation("sigmoid"), Dense(4), Dropout(0.0), Activation("leaky_relu"), Dense(3),
        Activation("softmax"),
    ]
    network = Network(layers, SoftmaxCrossEntropy(), (4,), rng, np.float64)
    X = rng.normal(size=(7, 4))
    y = rng.integers(0, 3, size=7)
    X_before, y_before = X.copy(), y.copy()
    inference = network.forward(X)
    np.testing.assert_allclose(network.forward(X, training=True), inference, rtol=1e-12)
    assert network.loss_value(X, y, training=True) == pytest.approx(
        network.loss_value(X, y), rel=1e-12)
    loss = network.compute_gradients(X, y)
    assert loss == pytest.approx(network.evaluate(X, y)[0], rel=1e-12)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    # An inference output is the caller's to keep: later passes do not change it.
    kept = network.forward(X)
    network.compute_gradients(rng.normal(size=(7, 4)), y)
    network.forward(rng.normal(size=(7, 4)))
    np.testing.assert_array_equal(kept, inference)


# -- training ------------------------------------------------------------------------
def test_xor_is_learned() -> None:
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Y = np.array([[0.0], [1.0], [1.0], [0.0]])
    layers: list[Layer] = [Dense(8), Activation("tanh"), Dense(1), Activation("sigmoid")]
    network = Network(layers, SigmoidBinaryCrossEntropy(), (2,), np.random.default_rng(0),
                      np.float64)
    optimizer = SGD(learning_rate=1.0)
    first = network.compute_gradients(X, Y)
    assert first > 0.5  # about log 2 before training
    for _ in range(1000):
        network.compute_gradients(X, Y)
        optimizer.step(network.param_arrays(), network.grad_arrays())
    assert network.loss_value(X, Y) < 0.05
    np.testing.assert_array_equal(network.forward(X) > 0.5, Y > 0.5)


# -- running statistics ---------------------------------------------------------------


def test_saved_buffers_must_match_the_architecture() -> None:
    network = Network([Dense(3), BatchNorm(), Dense(1)], MeanSquaredError(), (2,),
                      np.random.default_rng(0))
    good = {"1.running_mean": np.full(3, 0.5), "1.running_var": np.full(3, 2.0)}
    network.load_buffers(good)
    assert network.buffers()["1.running_var"].tolist() == [2.0, 2.0, 2.0]
    for bad in ({"1.running_mean": np.zeros(3)}, {**good, "1.running_var": np.ones(4)}):
        with pytest.raises(ValueError, match="running statistics do not match"):
            network.load_buffers(bad)
