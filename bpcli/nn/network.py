"""A feed-forward network: an ordered stack of layers with one loss."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from bpcli.nn.conv import Conv2D
from bpcli.nn.layers import KIND_KEY, Activation, Dense, Layer, Shape
from bpcli.nn.losses import Loss
from bpcli.nn.regularization import Penalties, add_penalty_gradients, penalty_value
from bpcli.nn.sequence import Conv1D

Array = NDArray[np.floating]
#: rows a network takes at once in inference (validation, predict, evaluate): bounds memory
INFERENCE_BATCH = 8192


class Network:
    """Layers applied in order, trained against ``loss``.

    When the loss fuses with the output activation (softmax + cross-entropy, sigmoid +
    binary cross-entropy), the last layer must be that activation; training then feeds the
    loss the logits and skips the activation's own backward pass.
    """

    def __init__(
        self,
        layers: list[Layer],
        loss: Loss,
        input_shape: Shape,
        rng: np.random.Generator,
        dtype: DTypeLike = np.float32,
    ) -> None:
        if loss.fused_activation is not None:
            last = layers[-1] if layers else None
            if not (isinstance(last, Activation) and last.name == loss.fused_activation):
                raise ValueError(
                    f"loss {loss.name!r} needs a {loss.fused_activation!r} output activation"
                )
        self.layers = layers
        self.loss = loss
        # L1/L2 penalties, part of the training loss (and of what gradcheck checks); the
        # validation loss is the data loss alone.
        self.penalties: Penalties | None = None
        self.rng = rng  # stochastic layers (dropout) draw from it during training
        self.dtype = np.dtype(dtype)
        self.input_shape = tuple(input_shape)
        shape = self.input_shape
        mask_source: Layer | None = None  # see bpcli.nn.sequence: padding of sequences
        for layer in layers:
            layer.mask_source = mask_source
            shape = layer.build(shape, rng, self.dtype)
            mask_source = layer.next_mask_source()
        self.output_shape = shape
        # The first layer's input gradient is never needed in training.
        if layers:
            layers[0].needs_input_grad = False
        # A layer may work in place on its input unless that is the caller's array or a
        # previous layer keeps it for its own backward pass.
        for previous, layer in pairwise(layers):
            layer.may_overwrite_input = not previous.caches_output
        self._loss_layers = layers[:-1] if loss.fused_activation else layers
        self.flat_params, self.flat_grads = self._flatten()
        self.layer_numbers = layer_numbers(layers)

    def _flatten(self, flat_params: Array | None = None, flat_grads: Array | None = None
                 ) -> tuple[Array, Array]:
        """Move all parameters (and gradients) into one contiguous vector each, leaving
        each layer's arrays as views into it: an optimizer then updates every parameter
        with a few vector operations instead of a few per tensor. The vectors are new, or
        the given ones (see ``share_storage``)."""
        total = sum(p.size for layer in self.layers for p in layer.params.values())
        if flat_params is None or flat_grads is None:
            flat_params = np.empty(total, dtype=self.dtype)
            flat_grads = np.zeros(total, dtype=self.dtype)
        offset = 0
        for layer in self.layers:
            for key, param in layer.params.items():
                view = flat_params[offset : offset + param.size].reshape(param.shape)
                view[...] = param
                layer.params[key] = view
                layer.grads[key] = flat_grads[offset : offset + param.size].reshape(param.shape)
                offset += param.size
        return flat_params, flat_grads

    # -- the layers as people count them -----------------------------------------------
    def layer_name(self, index: int) -> str:
        """Layer ``index`` of ``layers`` as people count them: ``"3 dense"``, and
        ``"3 relu"`` for its activation (see ``layer_numbers``)."""
        layer = self.layers[index]
        kind = layer.name if isinstance(layer, Activation) else layer.kind
        return f"{self.layer_numbers[index]} {kind}"

    def summary(self) -> list[dict[str, Any]]:
        """One entry per numbered layer: ``index`` (its number), ``type``, ``options``,
        ``activation`` (the activation that is part of it, as ``{"name": ..., options}``,
        or None), ``output_shape`` and ``parameters``."""
        entries: list[dict[str, Any]] = []
        for number, layer in zip(self.layer_numbers, self.layers, strict=True):
            described = layer.settings()
            if entries and entries[-1]["index"] == number:  # the activation of the last
                entries[-1]["activation"] = described
                entries[-1]["output_shape"] = list(layer.output_shape)
                entries[-1]["parameters"] += layer.n_params
                continue
            entries.append({"index": number, KIND_KEY: layer.kind, "options": described,
                            "activation": None, "output_shape": list(layer.output_shape),
                            "parameters": layer.n_params})
        return entries

    # -- forward and backward -------------------------------------------------------
    def shaped(self, X: Array) -> Array:
        """Rows of features as the inputs' shape: (n, C*H*W) -> (n, C, H, W), a view."""
        if X.shape[1:] == self.input_shape:
            return X
        return X.reshape(len(X), *self.input_shape)

    def forward(self, X: Array, training: bool = False) -> Array:
        """Outputs of the whole network (probabilities for classifiers), shape (n, *out)."""
        X = self.shaped(X)
        for layer in self.layers:
            X = layer.forward(X, training)
        return X

    def loss_value(self, X: Array, Y: NDArray, training: bool = False) -> float:
        """The training loss on a batch (data loss plus penalties), without gradients."""
        P = self.shaped(X)
        for layer in self._loss_layers:
            P = layer.forward(P, training)
        loss = self.loss.value(P, Y)
        return loss + penalty_value(self, self.penalties) if self.penalties else loss

    def evaluate(self, X: Array, Y: NDArray, batch_size: int = INFERENCE_BATCH
                 ) -> tuple[float, Array]:
        """Loss and outputs in inference mode, in batches; the loss is the batch mean."""
        total = 0.0
        outputs = []
        for start in range(0, len(X), batch_size):
            P = self.shaped(X[start : start + batch_size])
            for layer in self._loss_layers:
                P = layer.forward(P, False)
            total += self.loss.value(P, Y[start : start + batch_size]) * len(P)
            for layer in self.layers[len(self._loss_layers) :]:
                P = layer.forward(P, False)
            outputs.append(P)
        return total / max(len(X), 1), np.concatenate(outputs)

    def compute_gradients(self, X: Array, Y: NDArray) -> float:
        """Forward in training mode, loss, and backward: fills every layer's ``grads``.

        Returns the loss; the input gradient, when the first layer is asked for it, is
        kept in ``input_grad``.
        """
        P = self.shaped(X)
        for layer in self._loss_layers:
            P = layer.forward(P, True)
        loss, dP = self.loss.value_and_grad(P, Y)
        grad = _backward(self._loss_layers, dP)
        self.input_grad = grad.reshape(X.shape) if grad is not None else None
        if self.penalties:
            loss += add_penalty_gradients(self, self.penalties)
        return loss

    def forward_logits(self, X: Array, training: bool = False) -> Array:
        """What the loss takes: the outputs before a fused output activation (the
        logits), or the outputs when the loss fuses with none. Shape (n, *out)."""
        P = self.shaped(X)
        for layer in self._loss_layers:
            P = layer.forward(P, training)
        return P

    def backward(self, dY: Array, from_logits: bool = False) -> Array | None:
        """Backpropagate ``dY``, the gradient of a loss computed outside the network with
        respect to the outputs of the last training-mode ``forward`` (or, ``from_logits``,
        of ``forward_logits``), shape (n, *out): fills every layer's ``grads``
        (penalties not included) and returns ``dX`` of shape (n, *input_shape) when the
        first layer is asked for its input gradient, else None.

        This is how a GAN's generator learns: its loss lives in the discriminator, whose
        input gradient is the gradient with respect to the generated rows.
        """
        return _backward(self._loss_layers if from_logits else self.layers, dY)

    # -- parameters -----------------------------------------------------------------
    def parameters(self) -> list[tuple[str, Array, Array]]:
        """``(name, param, grad)`` for every parameter tensor, named ``"<index>.<key>"``."""
        return [
            (f"{i}.{key}", layer.params[key], layer.grads[key])
            for i, layer in enumerate(self.layers)
            for key in layer.params
        ]

    def param_arrays(self) -> list[Array]:
        return [p for _, p, _ in self.parameters()]

    def grad_arrays(self) -> list[Array]:
        return [g for _, _, g in self.parameters()]

    def state(self) -> dict[str, Array]:
        return {name: param for name, param, _ in self.parameters()}

    def load_state(self, state: dict[str, NDArray]) -> None:
        """Copy saved parameters in, checking that names and shapes match exactly."""
        expected = {name: p.shape for name, p, _ in self.parameters()}
        found = {name: np.shape(a) for name, a in state.items()}
        if expected != found:
            missing = sorted(set(expected) - set(found))
            extra = sorted(set(found) - set(expected))
            wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
            raise ValueError(
                "parameters do not match the architecture"
                + (f"; missing {missing}" if missing else "")
                + (f"; unexpected {extra}" if extra else "")
                + (f"; wrong shape {wrong}" if wrong else "")
            )
        for name, param, _ in self.parameters():
            param[...] = state[name]

    def buffers(self) -> dict[str, Array]:
        """Non-trainable state (running statistics), named ``"<index>.<key>"``."""
        return {f"{i}.{key}": value for i, layer in enumerate(self.layers)
                for key, value in layer.buffers.items()}

    def load_buffers(self, buffers: dict[str, NDArray]) -> None:
        """Copy saved buffers in, checking that names and shapes match exactly."""
        expected = {name: value.shape for name, value in self.buffers().items()}
        found = {name: np.shape(value) for name, value in buffers.items()}
        if expected != found:
            raise ValueError(f"running statistics do not match the architecture: expected "
                             f"{sorted(expected)}, found {sorted(found)}")
        for i, layer in enumerate(self.layers):
            for key in layer.buffers:
                layer.buffers[key][...] = buffers[f"{i}.{key}"]

    @property
    def n_params(self) -> int:
        return sum(layer.n_params for layer in self.layers)

    @contextmanager
    def held_randomness(self) -> Iterator[None]:
        """Within the block, stochastic layers repeat their last draw (dropout masks)."""
        for layer in self.layers:
            layer.hold_randomness(True)
        try:
            yield
        finally:
            for layer in self.layers:
                layer.hold_randomness(False)


def share_storage(networks: list[Network]) -> tuple[Array, Array]:
    """One parameter vector and one gradient vector for networks trained together (a
    GAN's generator and discriminator), in order: each network's ``flat_params`` and
    ``flat_grads`` become views into them, so that whatever copies, snapshots or restores
    the joint vector (best weights, rollbacks, checkpoints) covers every network."""
    dtype = networks[0].dtype
    total = sum(net.flat_params.size for net in networks)
    flat_params = np.empty(total, dtype=dtype)
    flat_grads = np.zeros(total, dtype=dtype)
    offset = 0
    for net in networks:
        size = net.flat_params.size
        net.flat_params, net.flat_grads = net._flatten(flat_params[offset : offset + size],
                                                       flat_grads[offset : offset + size])
        offset += size
    return flat_params, flat_grads


def _backward(layers: list[Layer], grad: Array) -> Array | None:
    """``grad`` through ``layers`` in reverse; the input gradient, or None when the first
    layer is not asked for it."""
    result: Array | None = grad
    for layer in reversed(layers):
        assert result is not None, "only the first layer may skip its input gradient"
        result = layer.backward(result)
    return result


def layer_numbers(layers: list[Layer]) -> list[int]:
    """The number of each layer as people count them, and as a config numbers its
    ``model.layers``: an activation right after a dense, conv2d or conv1d layer is part of that
    layer (its ``activation``), not a layer of its own. Parameter names in model files
    keep the plain positions in ``layers``."""
    numbers: list[int] = []
    for i, layer in enumerate(layers):
        fused = (isinstance(layer, Activation) and i > 0
                 and isinstance(layers[i - 1], Dense | Conv2D | Conv1D))
        numbers.append(numbers[-1] if fused else (numbers[-1] + 1 if numbers else 0))
    return numbers
