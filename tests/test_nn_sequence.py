"""Sequence layers (bpcli/nn/sequence.py, bpcli/nn/recurrent.py): gradients checked
against finite differences and against PyTorch, padding that never counts, token ids
repeated in a batch, and the other columns carried beside the text."""

from __future__ import annotations

import json
import re
import tracemalloc
from typing import Any

import numpy as np
import pytest

from bpcli.nn import (
    GRU,
    LSTM,
    Activation,
    Conv1D,
    Dense,
    Embedding,
    GlobalAvgPool1D,
    GlobalMaxPool1D,
    Layer,
    Network,
)
from bpcli.nn.gradcheck import check_gradients
from bpcli.nn.layers import layer_from_description
from bpcli.nn.losses import LOSSES
from bpcli.nn.reference import conv1d_backward, conv1d_forward

VOCAB = 11


def token_rows(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """Right-padded id rows with the cases that matter: some padding, a row of padding
    only, a row of one token, and a token repeated."""
    ids = rng.integers(1, VOCAB, (n, length)).astype(np.float64)
    ids[0, length // 2 :] = 0
    ids[1, :] = 0
    ids[2, 1:] = 0
    ids[3, :3] = 3
    return ids


def network(layers: list[Layer], width: int, seed: int = 1) -> Network:
    net = Network(layers, LOSSES["cross_entropy"](), (width,), np.random.default_rng(seed),
                  np.float64)
    # away from zero biases, whose all-padding windows sit on relu's kink
    net.flat_params[...] += np.random.default_rng(5).normal(0, 0.3, net.flat_params.size)
    return net


def head(*layers: Layer) -> list[Layer]:
    return [*layers, Dense(3), Activation("softmax")]


ARCHITECTURES: dict[str, Any] = {
    "text cnn (same)": lambda L: head(
        Embedding(VOCAB, 4, length=L), Conv1D(5, 3), Activation("relu"), Conv1D(4, 2),
        GlobalMaxPool1D()),
    "embedding bag (mean)": lambda L: head(Embedding(VOCAB, 4, length=L), GlobalAvgPool1D()),
    "embedding bag (max)": lambda L: head(Embedding(VOCAB, 4, length=L), GlobalMaxPool1D()),
    "text cnn (strided)": lambda L: head(
        Embedding(VOCAB, 4, length=L), Conv1D(5, 3), Activation("relu"),
        Conv1D(4, 2, stride=2, padding="valid"), Activation("tanh"), GlobalMaxPool1D()),
    "gru": lambda L: head(Embedding(VOCAB, 4, length=L), GRU(5)),
    "stacked gru": lambda L: head(Embedding(VOCAB, 4, length=L),
                                  GRU(5, return_sequences=True), GRU(3)),
    "lstm": lambda L: head(Embedding(VOCAB, 4, length=L), LSTM(5)),
    "lstm states pooled": lambda L: head(Embedding(VOCAB, 4, length=L),
                                         LSTM(5, return_sequences=True), GlobalAvgPool1D()),
}


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("side", [0, 2])
def test_gradients_match_finite_differences(name: str, side: int) -> None:
    rng = np.random.default_rng(0)
    length = 7
    X = np.hstack([token_rows(rng, 6, length), rng.normal(size=(6, side))])
    Y = rng.integers(0, 3, 6)
    net = network(ARCHITECTURES[name](length), length + side)
    results = check_gradients(net, X, Y)
    assert results and all(r.passed for r in results), [r for r in results if not r.passed]
    assert all(r.layer != "input" for r in results)  # token ids have no gradient


@pytest.mark.parametrize("name", ["gru", "stacked gru", "lstm", "lstm states pooled"])
def test_gradients_when_every_row_ends_before_the_last_position(name: str) -> None:
    # the recurrent loops stop after the batch's last word; the positions after it carry
    # the last state on (forward) and hand their gradients back to it (backward)
    rng = np.random.default_rng(2)
    length = 7
    X = token_rows(rng, 6, length)
    X[:, 4:] = 0
    net = network(ARCHITECTURES[name](length), length)
    results = check_gradients(net, X, rng.integers(0, 3, 6))
    assert results and all(r.passed for r in results), [r for r in results if not r.passed]


@pytest.mark.parametrize("layer", [GRU, LSTM])
def test_recurrent_gradients_over_long_sequences(layer: type[GRU] | type[LSTM]) -> None:
    rng = np.random.default_rng(1)
    length = 60
    X = token_rows(rng, 5, length)
    X[4, 45:] = 0
    net = network(head(Embedding(VOCAB, 3, length=length), layer(4)), length)
    results = check_gradients(net, X, rng.integers(0, 3, 5))
    assert all(r.passed for r in results), [r for r in results if not r.passed]


def outputs(layers: list[Layer], X: np.ndarray) -> np.ndarray:
    net = Network(layers, LOSSES["cross_entropy"](), (X.shape[1],),
                  np.random.default_rng(3), np.float64)
    return net.forward(X)


@pytest.mark.parametrize("name", [a for a in ARCHITECTURES if "strided" not in a])
def test_padding_never_counts(name: str) -> None:
    """The same rows padded to a longer length give the same outputs. (A strided "valid"
    convolution is left out: a longer input gives it windows a shorter one drops.)"""
    rng = np.random.default_rng(2)
    short = token_rows(rng, 6, 7)
    long = np.hstack([short, np.zeros((6, 9))])
    a = outputs(ARCHITECTURES[name](7), short)
    b = outputs(ARCHITECTURES[name](16), long)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_rows_of_padding_only_pool_to_zeros() -> None:
    X = np.zeros((2, 5))
    X[1, :2] = [4, 2]
    for pool in (GlobalMaxPool1D(), GlobalAvgPool1D()):
        out = Network([Embedding(VOCAB, 3), pool], LOSSES["mse"](), (5,),
                      np.random.default_rng(0), np.float64).forward(X)
        assert np.all(out[0] == 0) and np.any(out[1] != 0)


def test_padding_never_wins_a_max_pool_nor_counts_in_an_average() -> None:
    # every word's vector negative: a padding position (a zero vector) read by the pool
    # would give 0 for the max and pull the mean towards 0
    X = np.array([[3.0, 4.0, 0.0, 0.0], [3.0, 3.0, 3.0, 4.0], [4.0, 0.0, 0.0, 0.0]])
    for pool, expected in ((GlobalMaxPool1D(), np.maximum), (GlobalAvgPool1D(), None)):
        net = Network([Embedding(VOCAB, 2), pool], LOSSES["mse"](), (4,),
                      np.random.default_rng(0), np.float64)
        W = net.layers[0].params["W"]
        W[3], W[4] = [-1.0, -2.0], [-3.0, -0.5]
        out = net.forward(X)
        if expected is np.maximum:
            np.testing.assert_array_equal(out, [[-1.0, -0.5], [-1.0, -0.5], [-3.0, -0.5]])
        else:  # (a text of one word: its vector)
            np.testing.assert_allclose(out, [[-2.0, -1.25], [-1.5, -1.625], [-3.0, -0.5]])


def test_embedding_gradient_adds_up_repeated_tokens_and_skips_padding() -> None:
    layer = Embedding(VOCAB, 2)
    layer.build((4,), np.random.default_rng(0), np.float64)
    X = np.array([[5.0, 5.0, 2.0, 0.0], [5.0, 0.0, 0.0, 0.0]])
    layer.forward(X, True)
    dY = np.arange(16, dtype=np.float64).reshape(2, 4, 2)
    assert layer.backward(dY) is None
    dW = layer.grads["W"]
    np.testing.assert_array_equal(dW[5], dY[0, 0] + dY[0, 1] + dY[1, 0])
    np.testing.assert_array_equal(dW[2], dY[0, 2])
    np.testing.assert_array_equal(dW[0], 0)  # padding
    assert np.count_nonzero(np.abs(dW).sum(axis=1)) == 2
    layer.forward(np.array([[1.0, 0, 0, 0]]), True)  # the next batch clears the old rows
    layer.backward(np.ones((1, 4, 2)))
    assert np.count_nonzero(np.abs(layer.grads["W"]).sum(axis=1)) == 1


@pytest.mark.parametrize("bad", [-1.0, VOCAB, 2.5])
def test_embedding_refuses_ids_outside_the_vocabulary(bad: float) -> None:
    layer = Embedding(VOCAB, 2)
    layer.build((2,), np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match="token ids"):
        layer.forward(np.array([[1.0, bad]]), False)


def test_other_columns_join_after_the_pool() -> None:
    X = np.array([[3.0, 4.0, 0.0, 0.5, -2.0]])
    out = Network([Embedding(VOCAB, 2, length=3), GlobalAvgPool1D()], LOSSES["mse"](), (5,),
                  np.random.default_rng(0), np.float64).forward(X)
    assert out.shape == (1, 4)
    np.testing.assert_array_equal(out[0, 2:], [0.5, -2.0])


@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, "same"), (2, 2, "valid"),
                                                   (4, 3, 1), (5, 1, "same"), (1, 1, 0)])
def test_conv1d_equals_the_loop_reference(kernel: int, stride: int, padding: Any) -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3, 9, 2))
    layer = Conv1D(4, kernel, stride=stride, padding=padding)
    layer.build((9, 2), rng, np.float64)
    layer.needs_input_grad = True
    layer.params["b"][...] = rng.normal(size=4)
    Y = layer.forward(X, True)
    left = layer._pads[0]
    np.testing.assert_allclose(Y, conv1d_forward(X, layer.params["W"], layer.params["b"],
                                                 stride, layer._pads), atol=1e-12)
    dY = rng.normal(size=Y.shape)
    dX = layer.backward(dY)
    dX_ref, dW_ref, db_ref = conv1d_backward(X, layer.params["W"], dY, stride, layer._pads)
    np.testing.assert_allclose(dX, dX_ref, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], dW_ref, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], db_ref, atol=1e-12)
    assert left >= 0


@pytest.mark.parametrize(("length", "kernel", "stride", "pads", "out"), [
    (9, 3, 1, (1, 1), 9), (9, 4, 1, (1, 2), 9), (9, 3, 2, (1, 1), 5),
    (10, 4, 3, (1, 2), 4), (9, 2, 3, (0, 0), 3), (8, 1, 1, (0, 0), 8),
])
def test_conv1d_same_padding_follows_tensorflows_rule(
        length: int, kernel: int, stride: int, pads: tuple[int, int], out: int) -> None:
    # ceil(length / stride) outputs; (out - 1) * stride + kernel - length positions of
    # padding, the odd one on the right (worked out by hand, not by the layer's helper)
    layer = Conv1D(2, kernel, stride=stride, padding="same")
    assert layer.compute_output_shape((length, 3)) == (out, 2)
    layer.build((length, 3), np.random.default_rng(0), np.float64)
    assert tuple(layer._pads) == pads


@pytest.mark.parametrize("make", [
    lambda: Conv1D(3, 3), lambda: Conv1D(3, 2, stride=2, padding="valid"),
    lambda: GRU(3, return_sequences=True), lambda: GRU(3), lambda: LSTM(3),
    lambda: LSTM(3, return_sequences=True), lambda: GlobalMaxPool1D(),
    lambda: GlobalAvgPool1D(),
], ids=["conv1d", "conv1d strided", "gru sequence", "gru", "lstm", "lstm sequence",
        "max pool", "avg pool"])
def test_float32_layers_keep_float32_through_both_passes(make: Any) -> None:
    layer = make()
    layer.build((6, 4), np.random.default_rng(0), np.float32)
    layer.needs_input_grad = True
    X = np.random.default_rng(1).normal(size=(2, 6, 4)).astype(np.float32)
    Y = layer.forward(X, True)
    dX = layer.backward(np.ones_like(Y))
    assert Y.dtype == np.float32 and dX is not None and dX.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer.grads.values())


def test_conv1d_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3, 10, 4))
    layer = Conv1D(6, 3, stride=2, padding=1)
    layer.build((10, 4), rng, np.float64)
    layer.needs_input_grad = True
    Y = layer.forward(X, True)
    dY = rng.normal(size=Y.shape)
    dX = layer.backward(dY)
    X_t = torch.tensor(X.transpose(0, 2, 1), requires_grad=True)
    W_t = torch.tensor(layer.params["W"], requires_grad=True)
    b_t = torch.tensor(layer.params["b"], requires_grad=True)
    Y_t = torch.nn.functional.conv1d(X_t, W_t, b_t, stride=2, padding=1)
    Y_t.backward(torch.tensor(dY.transpose(0, 2, 1)))
    np.testing.assert_allclose(Y, Y_t.detach().numpy().transpose(0, 2, 1), atol=1e-13)
    np.testing.assert_allclose(dX, X_t.grad.numpy().transpose(0, 2, 1), atol=1e-13)
    np.testing.assert_allclose(layer.grads["W"], W_t.grad.numpy(), atol=1e-13)
    np.testing.assert_allclose(layer.grads["b"], b_t.grad.numpy(), atol=1e-13)


def _torch_recurrent(torch: Any, layer: GRU | LSTM) -> Any:
    """A torch module holding ``layer``'s weights (torch stores them transposed)."""
    H = layer.units
    module = (torch.nn.GRU if isinstance(layer, GRU) else torch.nn.LSTM)(
        layer.input_shape[1], H, batch_first=True).double()
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.tensor(layer.params["W"].T))
        module.weight_hh_l0.copy_(torch.tensor(layer.params["U"].T))
        module.bias_ih_l0.copy_(torch.tensor(layer.params["b"]))
        hidden_bias = layer.params["c"] if isinstance(layer, GRU) else np.zeros(4 * H)
        module.bias_hh_l0.copy_(torch.tensor(hidden_bias))
    return module


@pytest.mark.parametrize("kind", [GRU, LSTM])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_recurrent_layers_match_torch(kind: type[GRU] | type[LSTM],
                                      return_sequences: bool) -> None:
    """Without padding, every state and every gradient equals PyTorch's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    X = rng.normal(size=(4, 12, 3))
    layer = kind(5, return_sequences=return_sequences)
    layer.build((12, 3), rng, np.float64)
    layer.needs_input_grad = True
    for value in layer.params.values():
        value[...] = rng.normal(0, 0.5, value.shape)
    Y = layer.forward(X, True)
    dY = rng.normal(size=Y.shape)
    dX = layer.backward(dY)
    module = _torch_recurrent(torch, layer)
    X_t = torch.tensor(X, requires_grad=True)
    states, _ = module(X_t)
    Y_t = states if return_sequences else states[:, -1]
    Y_t.backward(torch.tensor(dY))
    np.testing.assert_allclose(Y, Y_t.detach().numpy(), atol=1e-13)
    np.testing.assert_allclose(dX, X_t.grad.numpy(), atol=1e-13)
    np.testing.assert_allclose(layer.grads["W"], module.weight_ih_l0.grad.numpy().T, atol=1e-12)
    np.testing.assert_allclose(layer.grads["U"], module.weight_hh_l0.grad.numpy().T, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], module.bias_ih_l0.grad.numpy(), atol=1e-12)
    if kind is GRU:
        np.testing.assert_allclose(layer.grads["c"], module.bias_hh_l0.grad.numpy(),
                                   atol=1e-12)


@pytest.mark.parametrize("kind", [GRU, LSTM])
def test_last_state_after_padding_matches_torch_packed(kind: type[GRU] | type[LSTM]) -> None:
    """With padding, the last state is the one after each row's last token: PyTorch's
    packed sequences give the same, and the same gradients."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    lengths = [9, 4, 1, 6]
    ids = np.zeros((4, 9))
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(1, VOCAB, n)
    embedding, layer = Embedding(VOCAB, 3), kind(4)
    net = Network([embedding, layer], LOSSES["mse"](), (9,), rng, np.float64)
    Y = net.forward(ids)
    vectors = embedding.forward(ids, True)
    layer.needs_input_grad = True
    layer.forward(vectors, True)
    dY = rng.normal(size=Y.shape)
    dX = layer.backward(dY)
    module = _torch_recurrent(torch, layer)
    X_t = torch.tensor(vectors, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(X_t, lengths, batch_first=True,
                                                     enforce_sorted=False)
    _, hidden = module(packed)
    last = hidden[0][0] if kind is LSTM else hidden[0]
    last.backward(torch.tensor(dY))
    np.testing.assert_allclose(Y, last.detach().numpy(), atol=1e-13)
    np.testing.assert_allclose(dX, X_t.grad.numpy(), atol=1e-13)
    np.testing.assert_allclose(layer.grads["U"], module.weight_hh_l0.grad.numpy().T, atol=1e-12)


def test_layers_describe_themselves_for_the_model_file() -> None:
    from bpcli.nn.layers import layer_from_description

    for layer in (Embedding(VOCAB, 4, length=3), Conv1D(3, 2, stride=2, padding="valid"),
                  GlobalMaxPool1D(), GlobalAvgPool1D(), GRU(3, return_sequences=True),
                  LSTM(2)):
        rebuilt = layer_from_description(layer.describe())
        assert type(rebuilt) is type(layer) and rebuilt.describe() == layer.describe()


def test_lstm_forget_gate_starts_open_and_recurrent_weights_orthogonal() -> None:
    layer = LSTM(4)
    layer.build((5, 3), np.random.default_rng(0), np.float64)
    b = layer.params["b"]
    assert np.all(b[4:8] == 1) and np.all(b[:4] == 0) and np.all(b[8:] == 0)
    U = layer.params["U"]  # (4, 16): orthonormal rows
    np.testing.assert_allclose(U @ U.T, np.eye(4), atol=1e-12)


def test_a_batch_of_padding_only_trains_nothing_and_breaks_nothing() -> None:
    net = network(head(Embedding(VOCAB, 3, length=4), GlobalMaxPool1D()), 4)
    loss = net.compute_gradients(np.zeros((3, 4)), np.array([0, 1, 2]))
    assert np.isfinite(loss)
    assert not net.layers[0].grads["W"].any()


@pytest.mark.parametrize(("make", "shape"), [
    (lambda: Conv1D(4, 3), (7, 5)),
    (lambda: Conv1D(2, 2, stride=2, padding="valid"), (9, 3)),
    (lambda: GRU(3), (6, 4)),
    (lambda: LSTM(3, return_sequences=True), (6, 4)),
    (lambda: Embedding(11, 5, length=7), (7,)),
], ids=["conv1d", "conv1d strided", "gru", "lstm", "embedding"])
def test_count_params_is_what_build_makes(make: Any, shape: tuple[int, ...]) -> None:
    # bp inspect, bp build and the memory estimate count parameters before building
    layer = make()
    counted = layer.count_params(shape)
    layer.build(shape, np.random.default_rng(0), np.float64)
    assert counted == sum(p.size for p in layer.params.values()) > 0
    assert isinstance(counted, int)


# --- settings refused or accepted, and what the refusals say (a model file's layer
# settings reach these constructors without the config's checks in front of them)

HALF: Any = 2.5  # (a float where an int belongs)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Embedding(0, 4), "embedding vocabulary must be a positive int, got 0"),
    (lambda: Embedding(11, 0), "embedding dimension must be a positive int, got 0"),
    (lambda: Embedding(11, True), "embedding dimension must be a positive int, got True"),
    (lambda: Embedding(11, HALF), "embedding dimension must be a positive int, got 2.5"),
    (lambda: Embedding(1, 4), "embedding vocabulary must hold padding and at least one token"),
    (lambda: Embedding(11, 4, length=0), "embedding length must be a positive int, got 0"),
    (lambda: Embedding(11, 4, length=HALF), "embedding length must be a positive int, got 2.5"),
    (lambda: Conv1D(0, 3), "conv1d filters must be a positive int, got 0"),
    (lambda: Conv1D(2, True), "conv1d kernel_size must be a positive int, got True"),
    (lambda: Conv1D(2, 3, stride=HALF), "conv1d stride must be a positive int, got 2.5"),
    *[(lambda p=p: Conv1D(2, 3, padding=p),
       f"conv1d padding must be 'same', 'valid' or an int >= 0, got {p!r}")
      for p in (True, 2.5, -1, "full")],
    (lambda: GRU(0), "gru units must be a positive int, got 0"),
    (lambda: LSTM(True), "lstm units must be a positive int, got True"),
    (lambda: GRU(HALF), "gru units must be a positive int, got 2.5"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_settings_are_refused_naming_the_setting(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make()


@pytest.mark.parametrize(("layer", "shape", "message"), [
    (Embedding(11, 2), (3, 4), "embedding expects rows of token ids, got shape (3, 4)"),
    (Embedding(11, 2, length=5), (3,), "embedding length 5 is more than the 3 input columns"),
    (Conv1D(2, 3), (5,), "conv1d expects sequences (length, channels), got shape (5,)"),
    # 2 positions and 1 of padding on each end
    (Conv1D(2, 5, padding=1), (2, 3),
     "conv1d kernel 5 is longer than the padded sequence (4 positions)"),
    (GlobalMaxPool1D(), (5,),
     "global_max_pool1d expects sequences (length, channels), got shape (5,)"),
    (GRU(2), (5,), "gru expects sequences (length, features), got shape (5,)"),
], ids=["embedding rows", "embedding length", "conv1d rows", "conv1d kernel", "pool", "gru"])
def test_shapes_that_do_not_fit_are_refused_saying_why(layer: Layer, shape: tuple[int, ...],
                                                       message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        layer.compute_output_shape(shape)


def test_the_smallest_settings_work() -> None:
    # one unit, a dimension of one, a vocabulary of padding and one word, one id column
    X = np.array([[1.0], [0.0]])
    for layers in ([Embedding(2, 1, length=1), GRU(1)], [Embedding(2, 1), LSTM(1)],
                   [Embedding(2, 1), Conv1D(1, 1), GlobalAvgPool1D()]):
        net = Network(layers, LOSSES["mse"](), (1,), np.random.default_rng(0), np.float64)
        assert net.forward(X).shape == (2, 1)
    # a kernel exactly as long as the padded sequence: one output
    assert Conv1D(1, 4, padding="valid").compute_output_shape((4, 2)) == (1, 1)
    assert Conv1D(1, 4, padding=1).compute_output_shape((2, 2)) == (1, 1)


@pytest.mark.parametrize("make", [
    lambda: Embedding(VOCAB, 2), lambda: Conv1D(2, 3), lambda: GlobalMaxPool1D(),
    lambda: GlobalAvgPool1D()], ids=["embedding", "conv1d", "max pool", "avg pool"])
def test_backward_before_forward_says_so(make: Any) -> None:
    layer = make()
    layer.build((4,) if isinstance(layer, Embedding) else (4, 2),
                np.random.default_rng(0), np.float64)
    layer.needs_input_grad = True
    with pytest.raises(AssertionError, match=r"^backward (called )?before (a training )?forward$"):
        layer.backward(np.ones((1, *layer.output_shape)))
    if isinstance(layer, Conv1D):  # an inference pass keeps nothing to go back through
        layer.forward(np.ones((1, 4, 2)), False)
        with pytest.raises(AssertionError, match="^backward called before a training forward$"):
            layer.backward(np.ones((1, *layer.output_shape)))


# --- initial weights and the settings the model file keeps

def test_embedding_weights_start_as_documented() -> None:
    rng = np.random.default_rng(0)
    default = Embedding(200, 8)
    default.build((3,), rng, np.float64)
    W = default.params["W"]
    assert not W[0].any()  # padding's row: never read, and no weight for a penalty
    assert 0.04 < np.abs(W).max() <= 0.05  # Keras' U(-0.05, 0.05)
    wide = Embedding(200, 8, init_options={"limit": 0.5})
    wide.build((3,), rng, np.float64)
    assert 0.4 < np.abs(wide.params["W"]).max() <= 0.5
    other = Embedding(200, 8, init="glorot_uniform")  # takes no limit
    other.build((3,), rng, np.float64)
    assert other.describe()["init_options"] == {}


def test_conv1d_init_options_and_pytorch_biases() -> None:
    rng = np.random.default_rng(0)
    wide = Conv1D(50, 8, init="uniform", init_options={"limit": 0.5})
    wide.build((10, 2), rng, np.float64)
    assert 0.4 < np.abs(wide.params["W"]).max() <= 0.5
    rebuilt = layer_from_description(wide.describe())
    assert rebuilt.describe() == wide.describe()
    assert rebuilt.describe()["init_options"] == {"limit": 0.5}
    # PyTorch's default draws the biases too, U(+-1/sqrt(channels * kernel)) = +-0.25 here
    torchlike = Conv1D(500, 8, init="pytorch_uniform")
    torchlike.build((10, 2), rng, np.float32)
    b = torchlike.params["b"]
    assert b.dtype == np.float32 and 0.2 < np.abs(b).max() <= 0.25


def test_layer_settings_given_as_numpy_ints_describe_as_plain_ints() -> None:
    # the description goes into the model file as JSON
    layer = Conv1D(np.int64(2), np.int64(3), stride=np.int64(2), padding=np.int64(1))
    described = json.loads(json.dumps(layer.describe()))
    assert described["padding"] == 1 and type(layer.describe()["padding"]) is int


# --- worked examples, independent of the layers' helpers

@pytest.mark.parametrize(("stride", "expected"), [(1, [21.0, 32.0, 43.0]), (2, [21.0, 43.0])])
def test_conv1d_valid_padding_pads_nothing(stride: int, expected: list[float]) -> None:
    # Y[t] = X[t * stride] * 1 + X[t * stride + 1] * 10 over X = 1, 2, 3, 4
    layer = Conv1D(1, 2, stride=stride, padding="valid")
    layer.build((4, 1), np.random.default_rng(0), np.float64)
    layer.params["W"][...] = [[[1.0, 10.0]]]
    layer.params["b"][...] = 0.0
    Y = layer.forward(np.arange(1.0, 5.0).reshape(1, 4, 1), False)
    np.testing.assert_array_equal(Y[0, :, 0], expected)


@pytest.mark.parametrize(("kernel", "padding", "expected"), [
    (3, "valid", [True, True, False]),  # centres at positions 1, 2, 3
    (2, "same", [True, True, True, False, False]),  # left of centre: the position itself
    (3, "same", [True, True, True, False, False]),
])
def test_a_conv1d_output_is_real_where_its_window_centre_is(kernel: int, padding: str,
                                                            expected: list[bool]) -> None:
    net = Network([Embedding(VOCAB, 2), Conv1D(2, kernel, padding=padding), GlobalMaxPool1D()],
                  LOSSES["mse"](), (5,), np.random.default_rng(0), np.float64)
    net.forward(np.array([[5.0, 6.0, 7.0, 0.0, 0.0]]))
    np.testing.assert_array_equal(net.layers[1].output_mask(), [expected])


def test_conv1d_workspace_counts_the_unrolled_windows() -> None:
    # the memory estimate: 3 windows of 4 positions by 3 channels per sample
    assert Conv1D(4, 4, stride=3, padding="valid").workspace((10, 3)) == 3 * 4 * 3


def test_a_plain_sequence_pools_over_every_position() -> None:
    # no embedding in front: every position is real
    X = np.array([[[1.0, 2.0], [3.0, -4.0], [5.0, 0.5]]])
    for pool, expected in ((GlobalAvgPool1D(), [3.0, -0.5]), (GlobalMaxPool1D(), [5.0, 2.0])):
        pool.build((3, 2), np.random.default_rng(0), np.float64)
        np.testing.assert_allclose(pool.forward(X, False), [expected], rtol=1e-15)


# --- precision and memory

def test_a_float32_text_network_stays_float32_in_training_and_inference() -> None:
    layers = [Embedding(VOCAB, 4), Conv1D(3, 2), GRU(3, return_sequences=True),
              LSTM(3, return_sequences=True), GlobalAvgPool1D(), Dense(2)]
    net = Network(layers, LOSSES["mse"](), (7,), np.random.default_rng(0), np.float32)
    X = token_rows(np.random.default_rng(1), 6, 7)
    assert all(p.dtype == np.float32 for layer in layers for p in layer.params.values())
    assert net.forward(X).dtype == np.float32
    net.compute_gradients(X, np.zeros((6, 2), dtype=np.float32))
    assert all(g.dtype == np.float32 for layer in layers for g in layer.grads.values())
    for make in (lambda: LSTM(3), lambda: GRU(3)):  # inference without an embedding in front
        layer = make()
        layer.build((5, 2), np.random.default_rng(0), np.float32)
        assert layer.forward(np.ones((2, 5, 2), dtype=np.float32), False).dtype == np.float32


def _pass_bytes(make: Any, dtype: Any, masked: bool) -> tuple[int, int]:
    """Peak bytes a fresh layer allocates in a training forward pass, and in backward."""
    rng = np.random.default_rng(0)
    n, length = 4096, 4
    layer = make()
    X = rng.normal(size=(n, length, 3)).astype(dtype)
    if masked:  # rows of 1 to 3 words, padding after
        embedding = Embedding(VOCAB, 3)
        embedding.build((length,), rng, dtype)
        ids = rng.integers(1, VOCAB, (n, length)).astype(dtype)
        ids[np.arange(length) >= rng.integers(1, length, (n, 1))] = 0
        X = embedding.forward(ids, True)
        layer.mask_source = embedding
    layer.build((length, 3), rng, dtype)
    layer.needs_input_grad = True
    tracemalloc.start()
    try:
        Y = layer.forward(X, True)
        forward = tracemalloc.get_traced_memory()[1]
        dY = np.ones_like(Y)
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        layer.backward(dY)
        backward = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    return forward, backward


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
@pytest.mark.parametrize("make", [
    lambda: GRU(8), lambda: GRU(8, return_sequences=True), lambda: LSTM(8),
    lambda: LSTM(8, return_sequences=True), lambda: Conv1D(8, 3)],
    ids=["gru", "gru sequence", "lstm", "lstm sequence", "conv1d"])
def test_float32_passes_take_half_the_memory_of_float64(make: Any, masked: bool) -> None:
    # bp trains in float32 for the memory: an array left at NumPy's float64 default inside
    # a pass (its values cast back when written into the float32 ones) would cost twice
    # its size. (Each pass here holds MBs; a (units, batch) array is 128 KiB, the masks
    # and indices that do not scale with the precision a few KiB.)
    single, double = _pass_bytes(make, np.float32, masked), _pass_bytes(make, np.float64, masked)
    for name, a, b in zip(("forward", "backward"), single, double, strict=True):
        assert abs(2 * a - b) <= 32 * 1024, (name, a, b)


@pytest.mark.parametrize("make", [
    lambda: Conv1D(8, 3), lambda: Conv1D(8, 3, stride=2), lambda: GRU(8), lambda: LSTM(8)],
    ids=["conv1d", "conv1d strided", "gru", "lstm"])
def test_inference_keeps_nothing_of_the_batch(make: Any) -> None:
    # bp predict and bp serve run batch after batch: nothing of one may stay behind
    layer = make()
    layer.build((4, 3), np.random.default_rng(0), np.float64)
    X = np.random.default_rng(1).normal(size=(4096, 4, 3))  # 384 KiB
    tracemalloc.start()
    try:
        Y = layer.forward(X, False)
        del Y
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept < 32 * 1024


# --- the recurrent layers over padding

def _text_net(layers: list[Layer], length: int) -> Network:
    return Network(layers, LOSSES["mse"](), (length,), np.random.default_rng(8), np.float64)


@pytest.mark.parametrize("kind", [GRU, LSTM])
def test_the_state_is_carried_over_padding_wherever_it_is(kind: type[GRU] | type[LSTM]) -> None:
    # the batch's longest row ends one position before the last
    ids = np.array([[5, 6, 0, 0, 0, 0], [7, 0, 0, 0, 0, 0], [2, 3, 4, 5, 9, 0]], float)
    ends = [2, 1, 5]
    sequences = _text_net([Embedding(VOCAB, 3), kind(4, return_sequences=True)], 6)
    states = sequences.forward(ids)
    for row, end in enumerate(ends):
        for t in range(end, 6):
            np.testing.assert_array_equal(states[row, t], states[row, end - 1])
    last = _text_net([Embedding(VOCAB, 3), kind(4)], 6)
    last.flat_params[...] = sequences.flat_params
    np.testing.assert_array_equal(last.forward(ids), states[:, -1])
    np.testing.assert_array_equal(last.forward(ids)[:, 0], states[np.arange(3), [1, 0, 4], 0])
    # padding between words (not what bp's encoder makes, but what the mask says) is skipped
    gap = np.array([[5, 0, 7, 0, 0, 6], [5, 7, 6, 0, 0, 0]], float)
    out = last.forward(gap)
    np.testing.assert_allclose(out[0], out[1], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("kind", [GRU, LSTM])
def test_a_batch_of_padding_only_through_a_recurrent_layer(kind: type[GRU] | type[LSTM]) -> None:
    net = _text_net([Embedding(VOCAB, 3), kind(4), Dense(2)], 5)
    out = net.forward(np.zeros((2, 5)))
    np.testing.assert_array_equal(out, np.broadcast_to(net.layers[2].params["b"], (2, 2)))
    loss = net.compute_gradients(np.zeros((2, 5)), np.ones((2, 2)))
    assert np.isfinite(loss)
    assert not any(net.layers[1].grads[k].any() for k in net.layers[1].grads)
