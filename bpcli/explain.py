"""One step of backpropagation, recorded for people to read (``bp explain``).

Runs a forward pass, the loss, a backward pass and one weight update on a few rows, in
float64, keeping every intermediate array in the order the algorithm computes them. The
display renders the trace; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from bpcli.nn import Activation, Dense, Network, Optimizer

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
