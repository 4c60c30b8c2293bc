"""One step of backpropagation, recorded for people to read (``bp explain``).

Runs a forward pass, the loss, a backward pass and one weight update on a few rows, in
float64, keeping every intermediate array in the order the algorithm computes them. The
display renders the trace; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from bpcli.data import Preprocessor
from bpcli.nn import Activation, Dense, Layer, Network, Optimizer
from bpcli.text import FIRST_WORD_ID, PADDING, UNKNOWN

Array = NDArray[np.float64]


@dataclass
class Stage:
    """One recorded array: which phase, which layer, what it is, and the values."""

    phase: str  # "forward", "loss", "backward", "update"
    layer: str  # e.g. "0 dense (4 -> 16)" or "" for the loss
    what: str  # e.g. "Z = X @ W + b", "dL/dW"
    values: Array
    note: str = ""


@dataclass
class Trace:
    rows: list[int]
    features: list[str]
    stages: list[Stage] = field(default_factory=list)
    loss_before: float = 0.0
    loss_after: float = 0.0
    tokens: list[TokenShares] = field(default_factory=list)  # text models

    def add(self, phase: str, layer: str, what: str, values: NDArray, note: str = "") -> None:
        self.stages.append(Stage(phase, layer, what, np.array(values, dtype=np.float64),
                                 note))


def label(index: int, network: Network) -> str:
    layer = network.layers[index]
    shape_in = "x".join(map(str, layer.input_shape))
    shape_out = "x".join(map(str, layer.output_shape))
    return f"{network.layer_name(index)} ({shape_in} -> {shape_out})"


def explain_step(network: Network, optimizer: Optimizer, X: Array, Y: NDArray,
                 rows: list[int], features: list[str]) -> Trace:
    """Forward, loss, backward and one update of ``network`` (float64) on ``X, Y``."""
    trace = Trace(rows, features)
    trace.add("forward", "input", "X (standardised features)", X)
    loss_layers = network.layers[: len(network._loss_layers)]
    with network.held_randomness():
        A: NDArray = network.shaped(X)
        for i, layer in enumerate(network.layers):
            A = layer.forward(A.copy(), True)
            what = "Z = X @ W + b (weighted sums)" if isinstance(layer, Dense) else "output"
            if isinstance(layer, Activation):
                what = f"A = {layer.name}(Z)"
            fused = i >= len(loss_layers)
            trace.add("forward", label(i, network), what, A,
                      "the prediction; the loss works on the logits before it" if fused
                      else "")
        loss = network.compute_gradients(X, Y)
        trace.loss_before = loss
        P: NDArray = network.shaped(X)
        for layer in loss_layers:
            P = layer.forward(P, True)
        _, dP = network.loss.value_and_grad(P.copy(), Y)
        trace.add("loss", network.loss.name, f"L = {loss:.6g}; dL/d(output) (the error)",
                  dP, "fused with the output activation: softmax(Z) - target, over the "
                  "batch size" if network.loss.fused_activation else "")
        # backward again, layer by layer, to record what flows between layers
        network.compute_gradients(X, Y)
        grad: NDArray | None = dP
        first = network.layers[0]
        first.needs_input_grad = True
        try:
            for index in reversed(range(len(loss_layers))):
                layer = loss_layers[index]
                assert grad is not None
                grad = layer.backward(grad.copy())
                for key, g in layer.grads.items():
                    trace.add("backward", label(index, network), f"dL/d{key}", g)
                if grad is not None:
                    trace.add("backward", label(index, network), "dL/dX (delta to the "
                              "layer below)" if index else "dL/dX (for the input)", grad)
        finally:
            first.needs_input_grad = False
        network.compute_gradients(X, Y)  # leave the grads as the whole backward pass set them
        before = {name: p.copy() for name, p, _ in network.parameters()}
        optimizer.step([network.flat_params], [network.flat_grads])
        for name, p, _ in network.parameters():
            position, key = name.split(".", 1)
            delta = p - before[name]
            size = float(np.linalg.norm(before[name]))
            note = (f"|change| / |{key}| = {float(np.linalg.norm(delta)) / size:.3g}" if size
                    else f"{key} was all zeros before")
            trace.add("update", label(int(position), network), f"change in {key}", delta, note)
        trace.loss_after = network.loss_value(X, Y, training=True)
    return trace


@dataclass
class TokenShares:
    """What each token of one row's text contributed to the output the model chose."""

    row: int  # data row, 1 = the first under the header
    column: str
    output: str  # e.g. "class 'spam' (logit)"
    shares: list[tuple[str, float]]  # (token, contribution), largest |contribution| first


#: central differences of the output along one input (or one word's vector), in float64
_STEP = 1e-6


def token_shares(network: Network, pre: Preprocessor, X: Array, rows: list[int],
                 ) -> list[TokenShares]:
    """Each text column's tokens, by how much they moved the chosen output (the logit of
    the predicted class, or the predicted value) for each row of ``X``: gradient × input.
    For tfidf that is a token's input times the output's slope along it (its weight, for a
    linear model); for a sequence, the slope along each word's embedding vector times that
    vector. Slopes are central differences of inference passes, so dropout and batch norm
    act as they do in prediction."""
    found: list[TokenShares] = []
    start = 0
    for column in pre.inputs:
        spec = column.text
        if spec is not None:
            for k, row in enumerate(rows):
                x = X[k : k + 1].astype(np.float64)
                unit, what = _chosen_output(network, pre, x)
                if spec.encoding == "tfidf":
                    shares = _tfidf_shares(network, x, start, spec.vocabulary, unit)
                else:
                    shares = _sequence_shares(network, x, spec.vocabulary, unit)
                shares.sort(key=lambda item: -abs(item[1]))
                found.append(TokenShares(row, column.name, what, shares))
        start += column.width
    return found


def _logits(network: Network, layers: list[Layer], A: NDArray) -> NDArray:
    for layer in layers:
        A = layer.forward(A, False)
    return A


def _chosen_output(network: Network, pre: Preprocessor, x: Array) -> tuple[int, str]:
    outputs = _logits(network, network._loss_layers, network.shaped(x))[0]
    if pre.task == "regression":
        return 0, f"the predicted {pre.targets[0]!r} (scaled)"
    if len(outputs) == 1:  # one sigmoid unit: the logit of the second class
        return 0, f"the logit of class {pre.classes[1]!r} (against {pre.classes[0]!r})"
    unit = int(np.argmax(outputs))
    return unit, f"the logit of the predicted class {pre.classes[unit]!r}"


def _tfidf_shares(network: Network, x: Array, start: int, vocabulary: list[str],
                  unit: int) -> list[tuple[str, float]]:
    shares = []
    for j in np.flatnonzero(x[0, start : start + len(vocabulary)]):
        column = start + int(j)
        up, down = x.copy(), x.copy()
        up[0, column] += _STEP
        down[0, column] -= _STEP
        slope = (_logits(network, network._loss_layers, network.shaped(up))[0, unit]
                 - _logits(network, network._loss_layers, network.shaped(down))[0, unit]
                 ) / (2 * _STEP)
        shares.append((vocabulary[int(j)], float(x[0, column] * slope)))
    return shares


def _sequence_shares(network: Network, x: Array, vocabulary: list[str],
                     unit: int) -> list[tuple[str, float]]:
    embedding, rest = network.layers[0], network._loss_layers[1:]
    # float64 whatever the network's precision, for the differences; the embedding also
    # keeps the mask and the other columns aside for the layers after it
    vectors = embedding.forward(x, False).astype(np.float64)
    ids = x[0, : vectors.shape[1]].astype(np.intp)
    shares = []
    for t in np.flatnonzero(ids != PADDING):
        up, down = vectors.copy(), vectors.copy()
        up[0, t] *= 1 + _STEP
        down[0, t] *= 1 - _STEP
        change = _logits(network, rest, up)[0, unit] - _logits(network, rest, down)[0, unit]
        word = "<unknown>" if ids[t] == UNKNOWN else vocabulary[ids[t] - FIRST_WORD_ID]
        shares.append((word, float(change / (2 * _STEP))))
    return shares
