"""The ``model`` section: the layers, input to output."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from bpcli.config.fields import (
    MAX_FILTERS,
    MAX_UNITS,
    ActivationSpec,
    InitConfig,
    InitSpec,
    PaddingSpec,
    Size,
    Strict,
)


class DenseConfig(Strict):
    """A fully connected layer, ``Z = X @ W + b``, followed by its activation."""

    type: Literal["dense"]
    units: int | None = Field(
        None, ge=1, le=MAX_UNITS, description="Output width; may be omitted on the last layer only."
    )
    activation: ActivationSpec | None = Field(
        None, description="Default: relu on hidden layers; on the last layer, softmax for "
        "classification and identity for regression.",
    )
    init: InitSpec = Field(
        default_factory=lambda: InitConfig(name="auto"),
        description="Weight initialiser. auto: LeCun normal for selu, otherwise "
        "pytorch_uniform, PyTorch's default: U(+-1/sqrt(fan_in)) for the weights and the "
        "biases (see docs/training-defaults.md). Under every other initialiser biases "
        "start at 0.")
    l1: float | None = Field(None, ge=0, description="L1 penalty on this layer's weights "
                             "(overrides regularization.l1).")
    l2: float | None = Field(None, ge=0, description="L2 penalty on this layer's weights "
                             "(overrides regularization.l2).")

    def activation_name(self) -> str | None:
        return self.activation.name if self.activation is not None else None


class DropoutConfig(Strict):
    """Zeroes each unit with probability ``rate`` in training (inverted dropout)."""

    type: Literal["dropout"]
    rate: float = Field(ge=0, lt=1, description="Probability of zeroing each unit.")


class BatchNormConfig(Strict):
    """Normalises each feature over the batch in training, with running statistics
    (kept in the model) at inference."""

    type: Literal["batch_norm"]
    momentum: float = Field(0.9, ge=0, lt=1, description="Weight of the old running "
                            "statistics in each update.")
    epsilon: float = Field(1e-5, gt=0, description="Added to the variance.")


class LayerNormConfig(Strict):
    """Normalises each sample over its features, the same in training and inference."""

    type: Literal["layer_norm"]
    epsilon: float = Field(1e-5, gt=0, description="Added to the variance.")


class Conv2DConfig(Strict):
    """2-D convolution over (channels, height, width) inputs, followed by its activation."""

    type: Literal["conv2d"]
    filters: int = Field(ge=1, le=MAX_FILTERS, description="Output channels.")
    kernel_size: Size = Field(description="Kernel height and width: 3 or [3, 5].")
    stride: Size = Field(1, description="Step between windows: 1 or [2, 1].")
    padding: PaddingSpec = Field(
        "valid", description="valid (none), same (output size = input size / stride, "
        "rounded up) or zeros on each side: 1 or [1, 2].")
    use_bias: bool = Field(True, description="Add a bias per filter.")
    activation: ActivationSpec | None = Field(None, description="Default: relu.")
    init: InitSpec = Field(
        default_factory=lambda: InitConfig(name="auto"),
        description="Kernel initialiser; auto: He uniform for the ReLU family, LeCun "
        "normal for selu, Glorot uniform otherwise. Biases start at 0, or under "
        "pytorch_uniform U(+-1/sqrt(fan_in)) like the kernel.")

    def activation_name(self) -> str | None:
        return self.activation.name if self.activation is not None else None


class _Pool2DConfig(Strict):
    type: str  # each pooling layer's own name (first in the docs, as on other layers)
    pool_size: Size = Field(2, description="Window height and width.")
    stride: Size | None = Field(None, description="Default: the pool size.")
    padding: PaddingSpec = Field("valid", description="As for conv2d; at most half the "
                                 "window.")


class MaxPool2DConfig(_Pool2DConfig):
    """The maximum of each window (ties: the first in row-major order gets the gradient)."""

    type: Literal["max_pool2d"]


class AvgPool2DConfig(_Pool2DConfig):
    """The mean of each window (padding left out of the count)."""

    type: Literal["avg_pool2d"]


class GlobalAvgPool2DConfig(Strict):
    """The mean of each channel: (C, H, W) -> (C,)."""

    type: Literal["global_avg_pool2d"]


class FlattenConfig(Strict):
    """(C, H, W) -> (C * H * W,), row-major, for the dense layers that follow."""

    type: Literal["flatten"]


class ReshapeConfig(Strict):
    """Rows of values to another shape with as many values, row-major: e.g. a generator's
    dense output to images, ``[16, 4, 4]``."""

    type: Literal["reshape"]
    shape: list[Annotated[int, Field(ge=1, le=MAX_UNITS)]] = Field(
        min_length=1, max_length=3, description="The new shape, e.g. [channels, height, "
        "width].")


class Upsample2DConfig(Strict):
    """Nearest-neighbour upsampling: each pixel becomes a size x size block (how a
    generator grows an image)."""

    type: Literal["upsample2d"]
    size: Size = Field(2, description="Block height and width: 2 or [2, 1].")


class EmbeddingConfig(Strict):
    """Word ids to vectors: first in model.layers, for a text column with encoding:
    sequence. Padding gives zero vectors; repeated words add up their gradients."""

    type: Literal["embedding"]
    dimension: int = Field(ge=1, le=MAX_UNITS, description="Numbers per word.")
    vocabulary: int | None = Field(None, ge=2, description="Set from the data: the text "
                                   "column's vocabulary, with padding and unknown words.")
    length: int | None = Field(None, ge=1, description="Set from the data: the text "
                               "column's max_length.")


class Conv1DConfig(Strict):
    """1-D convolution over the positions of a sequence (length, channels), followed by
    its activation; padding positions read as zeros."""

    type: Literal["conv1d"]
    filters: int = Field(ge=1, le=MAX_FILTERS, description="Output channels.")
    kernel_size: int = Field(ge=1, le=MAX_UNITS, description="Positions per window.")
    stride: int = Field(1, ge=1, le=MAX_UNITS, description="Step between windows.")
    padding: Literal["same", "valid"] | Annotated[int, Field(ge=0, le=MAX_UNITS)] = Field(
        "same", description="same (one output per position / stride), valid (none) or "
        "zeros at each end.")
    activation: ActivationSpec | None = Field(None, description="Default: relu.")
    init: InitSpec = Field(
        default_factory=lambda: InitConfig(name="auto"),
        description="Kernel initialiser; auto as for conv2d.")

    def activation_name(self) -> str | None:
        return self.activation.name if self.activation is not None else None


class GlobalMaxPool1DConfig(Strict):
    """The largest value of each channel over a text's words (padding left out):
    (length, channels) -> (channels,), followed by the file's other inputs."""

    type: Literal["global_max_pool1d"]


class GlobalAvgPool1DConfig(Strict):
    """The mean of each channel over a text's words (padding left out):
    (length, channels) -> (channels,), followed by the file's other inputs."""

    type: Literal["global_avg_pool1d"]


class _RecurrentConfig(Strict):
    type: str
    units: int = Field(ge=1, le=MAX_UNITS, description="Size of the state.")
    return_sequences: bool = Field(False, description="Every position's state (for "
                                   "another recurrent layer or a pool) instead of the "
                                   "last one (followed by the file's other inputs).")


class GRUConfig(_RecurrentConfig):
    """Gated recurrent unit over a sequence, as PyTorch's; padding carries the state."""

    type: Literal["gru"]


class LSTMConfig(_RecurrentConfig):
    """Long short-term memory over a sequence, as PyTorch's; padding carries the state."""

    type: Literal["lstm"]


LayerConfig = Annotated[DenseConfig | DropoutConfig | BatchNormConfig | LayerNormConfig
                        | Conv2DConfig | MaxPool2DConfig | AvgPool2DConfig
                        | GlobalAvgPool2DConfig | FlattenConfig | EmbeddingConfig
                        | Conv1DConfig | GlobalMaxPool1DConfig | GlobalAvgPool1DConfig
                        | GRUConfig | LSTMConfig | ReshapeConfig | Upsample2DConfig,
                        Field(discriminator="type")]


class ModelConfig(Strict):
    layers: list[LayerConfig] = Field(min_length=1)
