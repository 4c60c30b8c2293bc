"""Sequence layers (bpcli/nn/sequence.py, bpcli/nn/recurrent.py): gradients checked
against finite differences and against PyTorch, padding that never counts, token ids
repeated in a batch, and the other columns carried beside the text."""

from __future__ import annotations

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
    X = np.array([[3.0, 4.0, 0.0, 0.0], [3.0, 3.0, 3.0, 4.0]])
    for pool, expected in ((GlobalMaxPool1D(), np.maximum), (GlobalAvgPool1D(), None)):
        net = Network([Embedding(VOCAB, 2), pool], LOSSES["mse"](), (4,),
                      np.random.default_rng(0), np.float64)
        W = net.layers[0].params["W"]
        W[3], W[4] = [-1.0, -2.0], [-3.0, -0.5]
        out = net.forward(X)
        if expected is np.maximum:
            np.testing.assert_array_equal(out, [[-1.0, -0.5], [-1.0, -0.5]])
        else:
            np.testing.assert_allclose(out, [[-2.0, -1.25], [-1.5, -1.625]])


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
