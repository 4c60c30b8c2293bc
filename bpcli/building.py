"""From a resolved config to a network: its layers, checked shape by shape and against
the memory they would need, its loss and its penalties.

The config describes layers as the user writes them (a dense layer with its activation);
the network holds them as the core runs them (``Dense`` then ``Activation``). Errors name
the config's layer (``LayerError.index``), so that they point at the YAML.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bpcli.config import (
    AvgPool2DConfig,
    BatchNormConfig,
    Config,
    Conv1DConfig,
    Conv2DConfig,
    DenseConfig,
    DropoutConfig,
    EmbeddingConfig,
    GlobalAvgPool1DConfig,
    GlobalAvgPool2DConfig,
    GlobalMaxPool1DConfig,
    GRUConfig,
    LayerConfig,
    LayerNormConfig,
    LSTMConfig,
    MaxPool2DConfig,
    ReshapeConfig,
    Upsample2DConfig,
)
from bpcli.memory import layer_needs, too_big
from bpcli.nn import (
    GRU,
    LOSSES,
    LSTM,
    Activation,
    AvgPool2D,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    Layer,
    Loss,
    MaxPool2D,
    Network,
    Reshape,
    Upsample2D,
)
from bpcli.nn.layers import BatchNorm, LayerNorm
from bpcli.nn.regularization import Penalties, Penalty


class LayerError(ValueError):
    """A layer that cannot be built (bad settings, or its input's shape); ``index`` is its
    place in the config."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def build_network(config: Config, n_features: int, rng: np.random.Generator,
                  dtype: Any = np.float32, loss_options: dict[str, Any] | None = None,
                  batch: int = 1, inference_batch: int = 1) -> Network:
    """The network a resolved config describes: each dense or conv2d layer is followed by
    its activation (none for identity). Inputs are ``data.input_shape`` when given.

    Refused (``LayerError`` at the layer needing most) when training it on ``batch`` rows
    and evaluating ``inference_batch`` rows at a time would not fit in memory."""
    assert config.model is not None and config.loss is not None  # a resolved model config
    loss = LOSSES[config.loss.name](**(loss_options or {}))
    shape = tuple(config.data.input_shape or (n_features,))
    return network_of(config.model.layers, shape, loss, rng, dtype, batch, inference_batch,
                      config.training.batch_size)


def network_of(specs: list[LayerConfig], shape: tuple[int, ...], loss: Loss,
               rng: np.random.Generator, dtype: Any, batch: int, inference_batch: int,
               batch_size: int, extra: Sequence[Layer] = ()) -> Network:
    """The network of layer configs ``specs`` on inputs of ``shape`` (then the layers
    ``extra``, which the config does not list), checked shape by shape and against
    memory; ``LayerError`` names the config's layer."""
    layers, owners = _layers_with_owners(specs)
    layers.extend(extra)
    owners.extend([len(specs) - 1] * len(extra))
    _check_shapes(layers, owners, shape)
    needs = layer_needs(layers, shape, np.dtype(dtype).itemsize, batch, inference_batch)
    problem = too_big(needs)
    if problem is not None:
        index, message = problem
        raise LayerError(owners[index], f"{message}; use fewer units or filters, or a "
                         f"smaller training.batch_size (now {batch_size})")
    return Network(layers, loss, shape, rng, dtype)


def _layers_of(spec: LayerConfig) -> list[Layer]:
    if isinstance(spec, EmbeddingConfig):
        assert spec.vocabulary is not None and spec.length is not None  # resolved
        return [Embedding(spec.vocabulary, spec.dimension, length=spec.length)]
    if isinstance(spec, Conv1DConfig):
        assert spec.activation is not None
        options = {"value": spec.init.value} if spec.init.value is not None else None
        conv = Conv1D(spec.filters, spec.kernel_size, spec.stride, spec.padding,
                      spec.init.name, options)
        act = spec.activation
        return [conv] if act.name == "identity" else [conv, Activation(act.name,
                                                                       **act.options())]
    if isinstance(spec, GlobalMaxPool1DConfig):
        return [GlobalMaxPool1D()]
    if isinstance(spec, GlobalAvgPool1DConfig):
        return [GlobalAvgPool1D()]
    if isinstance(spec, GRUConfig | LSTMConfig):
        return [(GRU if isinstance(spec, GRUConfig) else LSTM)(spec.units,
                                                             spec.return_sequences)]
    if isinstance(spec, DenseConfig | Conv2DConfig):
        assert spec.activation is not None
        init = spec.init
        options = {"value": init.value} if init.value is not None else None
        if isinstance(spec, DenseConfig):
            assert spec.units is not None
            main: Layer = Dense(spec.units, init.name, options)
        else:
            main = Conv2D(spec.filters, spec.kernel_size, spec.stride, spec.padding,
                          spec.use_bias, init.name, options)
        act = spec.activation
        return [main] if act.name == "identity" else [main, Activation(act.name,
                                                                       **act.options())]
    if isinstance(spec, DropoutConfig):
        return [Dropout(spec.rate)]
    if isinstance(spec, BatchNormConfig):
        return [BatchNorm(momentum=spec.momentum, epsilon=spec.epsilon)]
    if isinstance(spec, LayerNormConfig):
        return [LayerNorm(epsilon=spec.epsilon)]
    if isinstance(spec, MaxPool2DConfig):
        return [MaxPool2D(spec.pool_size, spec.stride, spec.padding)]
    if isinstance(spec, AvgPool2DConfig):
        return [AvgPool2D(spec.pool_size, spec.stride, spec.padding)]
    if isinstance(spec, GlobalAvgPool2DConfig):
        return [GlobalAvgPool2D()]
    if isinstance(spec, ReshapeConfig):
        return [Reshape(spec.shape)]
    if isinstance(spec, Upsample2DConfig):
        return [Upsample2D(spec.size)]
    return [Flatten()]


def output_shape(specs: list[LayerConfig], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape the layer configs ``specs`` make of inputs of ``shape``, without building
    them (``LayerError`` at the first layer that cannot take its input)."""
    return _check_shapes(*_layers_with_owners(specs), shape)


def _layers_with_owners(specs: list[LayerConfig]) -> tuple[list[Layer], list[int]]:
    """The network layers of layer configs ``specs``, and for each the config layer it
    comes from (an activation belongs to its dense or convolution layer)."""
    layers: list[Layer] = []
    owners: list[int] = []
    for index, spec in enumerate(specs):
        try:
            made = _layers_of(spec)
        except ValueError as exc:
            raise LayerError(index, str(exc)) from None
        layers.extend(made)
        owners.extend([index] * len(made))
    return layers, owners


def _check_shapes(layers: list[Layer], owners: list[int], shape: tuple[int, ...]
                  ) -> tuple[int, ...]:
    """Each layer's output shape from its input's, or the first layer that cannot; the
    last output shape."""
    for layer, index in zip(layers, owners, strict=True):
        try:
            shape = layer.compute_output_shape(shape)
        except ValueError as exc:
            hint = ""
            if isinstance(layer, Dense) and len(shape) == 2:
                hint = ("; a sequence needs {type: global_max_pool1d} (or an average "
                        "pool, or a gru or lstm) before it")
            elif isinstance(layer, Dense) and len(shape) > 1:
                hint = "; add {type: flatten} (or global_avg_pool2d) before it"
            elif len(shape) == 1 and isinstance(layer, Conv2D | MaxPool2D | AvgPool2D |
                                                GlobalAvgPool2D | Flatten):
                hint = ("; image layers need data.input_shape: [channels, height, width], "
                        "and come before any flatten or dense layer")
            raise LayerError(index, f"{exc}{hint}") from None
    return shape


def penalties(config: Config, network: Network) -> Penalties | None:
    """L1/L2 penalties: the global ones, and a dense layer's own where it sets them."""
    reg = config.regularization
    assert config.model is not None
    dense_specs = [s for s in config.model.layers if isinstance(s, DenseConfig)]
    dense_layers = [i for i, layer in enumerate(network.layers) if isinstance(layer, Dense)]
    per_layer = {
        index: Penalty(l1=spec.l1 if spec.l1 is not None else reg.l1,
                       l2=spec.l2 if spec.l2 is not None else reg.l2)
        for spec, index in zip(dense_specs, dense_layers, strict=True)
        if spec.l1 is not None or spec.l2 is not None
    }
    default = Penalty(l1=reg.l1, l2=reg.l2) if reg.l1 or reg.l2 else None
    if default is None and not any(not p.is_zero for p in per_layer.values()):
        return None
    return Penalties(default=default, per_layer=per_layer)


def weight_mask(network: Network) -> NDArray[np.bool_]:
    """True at the entries of the flat parameter vector that are weight matrices."""
    return np.concatenate([np.full(param.size, name.endswith(".W"))
                           for name, param, _ in network.parameters()])
