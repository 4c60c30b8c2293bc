"""The YAML config: pydantic models, loading, and errors located at ``file:line:column``."""

from __future__ import annotations

import difflib
import inspect
import itertools
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    ValidationError,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from bpcli.errors import MAX_LISTED, ConfigError
from bpcli.files import read_limited
from bpcli.nn import ACTIVATIONS, INITIALIZERS, LOSSES
from bpcli.nn.init import PARAMETRIC_INITIALIZERS

Loc = tuple[str | int, ...]

#: Limits on a config file, far beyond any real config, so that a hostile or mistaken
#: file is refused quickly instead of exhausting memory or time (see docs).
MAX_CONFIG_BYTES = 256 << 10
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 200_000
MAX_PROBLEMS = MAX_LISTED
#: Did-you-mean hints: words and choices beyond these get no hint.
MAX_HINT_LENGTH = 100
MAX_HINT_CHOICES = 10_000


def _one_of(allowed: list[str], what: str) -> AfterValidator:
    """The check of a string field whose allowed values are the keys of a name ->
    implementation table."""

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}{did_you_mean(value, allowed)}; "
                             f"allowed: {', '.join(allowed)}")
        return value

    return AfterValidator(check)


def _enum(allowed: list[str]) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": allowed})


_ACTIVATIONS = list(ACTIVATIONS)
_INITIALIZERS = ["auto", *INITIALIZERS, *PARAMETRIC_INITIALIZERS]
_LOSSES = list(LOSSES)
ActivationName = Annotated[str, _one_of(_ACTIVATIONS, "activation"), _enum(_ACTIVATIONS)]
InitName = Annotated[str, _one_of(_INITIALIZERS, "initialiser"), _enum(_INITIALIZERS)]
LossName = Annotated[str, _one_of(_LOSSES, "loss"), _enum(_LOSSES)]


class Strict(BaseModel):
    # inf and nan are no setting's meaningful value: refused here rather than crashing later
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True)
class Either:
    """A field that takes one of several forms (``3`` or ``[3, 5]``) says so in one
    sentence when its value fits none of them, instead of one error per form; the config
    reference shows the same words (``x-bp-type`` in the JSON Schema)."""

    forms: str  # e.g. "a positive integer or [height, width]"

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler
                                     ) -> core_schema.CoreSchema:
        def validate(value: Any, inner: core_schema.ValidatorFunctionWrapHandler) -> Any:
            try:
                return inner(value)
            except ValidationError:
                raise PydanticCustomError("bp_either", "must be {forms}",
                                          {"forms": self.forms}) from None

        return core_schema.no_info_wrap_validator_function(validate, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["x-bp-type"] = self.forms
        return json_schema


# Upper limits of the numbers in a config, documented in docs/config-reference.md. They
# are far beyond useful values; they keep a typo (an extra 000) from reaching NumPy as an
# allocation or an overflow. What fits in memory is checked again once the data is known.
MAX_SEED = 2**32 - 1
MAX_COUNT = 10**9  # epochs, batch sizes, patience and other counts
MAX_UNITS = 1_000_000  # dense units, input dimensions
MAX_FILTERS = 65_536
MAX_WINDOW = 1024  # kernel, pool, stride and padding sizes

PositiveInt = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Dimension = Annotated[int, Field(ge=1, le=MAX_UNITS)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Window = Annotated[int, Field(ge=1, le=MAX_WINDOW)]
Pad = Annotated[int, Field(ge=0, le=MAX_WINDOW)]
Size = Annotated[Window | tuple[Window, Window],
                 Either(f"a positive integer or [height, width], each at most {MAX_WINDOW}")]
PaddingSpec = Annotated[Literal["valid", "same"] | Pad | tuple[Pad, Pad], Either(
    f"valid, same, a whole number >= 0 or [height, width], each at most {MAX_WINDOW}")]

FillValue = Annotated[float | str, Either("a number or text")]

Scaling = Literal["standard", "minmax", "none"]
Missing = Literal["error", "mean", "median", "most_frequent", "constant"]
Unseen = Literal["other", "error", "zeros"]
NaValues = list[Annotated[str, Field(min_length=1)]]


class ColumnConfig(Strict):
    """How one CSV column becomes network inputs; unset fields take the data-wide default."""

    type: Literal["numeric", "boolean", "categorical", "date"] | None = Field(
        None, description="Inferred from the first rows when omitted: numbers are numeric, "
        "true/false boolean, dates date, anything else categorical (one-hot encoded).")
    scaling: Scaling | None = Field(None, description="For numeric columns.")
    missing: Missing | None = Field(None, description="What to do with missing cells.")
    fill_value: FillValue | None = Field(None, description="The value for missing: constant.")
    unseen: Unseen | None = Field(None, description="Categorical: a category not seen in "
                                  "training goes to the 'other' input, is an error, or is "
                                  "encoded as all zeros.")
    na_values: NaValues | None = Field(None, description="Texts that mark a missing cell in "
                                       "this column, besides data.na_values.")
    max_categories: Count | None = Field(None, description="Categorical: keep the most "
                                       "frequent values; the rest share the 'other' input.")
    min_frequency: Count | None = Field(None, description="Categorical: values in fewer "
                                      "training rows share the 'other' input.")
    fold_case: bool | None = Field(None, description="Categorical: Berlin, berlin and "
                                   "BERLIN (and runs of spaces) are one value.")
    date_format: str | None = Field(None, min_length=2, description="Date: the cells' "
                                    "format in strftime codes, e.g. '%d.%m.%Y' (default: "
                                    "ISO 8601 and the common orders, detected).")


class DataConfig(Strict):
    path: str = Field(description="CSV file of training data, relative to the config file.")
    target: Annotated[str | list[str], Either("a column name or a list of column names")
                      ] = Field(
        description="Name of the column to predict (a list for several regression targets).")
    features: list[str] | None = Field(
        None, min_length=1, description="Feature columns; default: every column but the "
        "targets and those in drop.")
    drop: list[str] = Field(default_factory=list,
                            description="Columns to leave out when features is not given.")
    task: Literal["classification", "regression"] | None = Field(
        None, description="Inferred from the target column when omitted."
    )
    delimiter: Literal[",", ";", "\t", "|"] | None = Field(
        None, description="Detected from the file when omitted.")
    scaling: Scaling = Field("standard", description="Numeric features: standard (mean 0, "
                             "standard deviation 1), minmax (0 to 1) or none; fitted on the "
                             "training split.")
    missing: Missing = Field(
        "error", description="Missing cells (empty, NA, NaN, null, None): an error naming the "
        "row, or imputed per column from the training split.")
    fill_value: FillValue | None = Field(None, description="The value for missing: constant.")
    unseen: Unseen = Field("other", description="A category not seen in training: counted "
                           "and encoded as the column's 'other' input (all zeros when no "
                           "training value was rare), an error, or all zeros.")
    na_values: NaValues = Field(default_factory=list, description="Texts that mark a "
                                "missing cell (such as ?, unknown, -), besides empty, NA, "
                                "NaN, null and None.")
    max_categories: Count | None = Field(None, description="Categorical columns: keep "
                                       "the most frequent values; the rest share one 'other' "
                                       "input.")
    min_frequency: Count = Field(1, description="Categorical columns: values in fewer "
                               "training rows than this share one 'other' input.")
    fold_case: bool = Field(False, description="Categorical columns: values that differ only "
                            "in case or spaces are one value.")
    missing_target: Literal["error", "drop"] = Field(
        "error", description="Rows whose target is missing: an error, or left out (counted).")
    columns: dict[str, ColumnConfig] = Field(
        default_factory=dict, description="Per-column settings, by column name.")
    input_shape: Annotated[tuple[Dimension, Dimension, Dimension], Either(
        f"[channels, height, width] of positive integers, each at most {MAX_UNITS:,}"
    )] | None = Field(
        None, description="Image data: [channels, height, width]. The feature columns, in "
        "order, are the pixels channel by channel, each channel row by row.")
    pixel_scale: float | None = Field(
        None, gt=0, description="Divide every numeric feature by this (e.g. 255) instead "
        "of the fitted scaling.")
    scale_target: bool = Field(True, description="Regression: standardise the targets for "
                               "training (predictions are always in the original units).")
    validation_path: str | None = Field(
        None, description="CSV file of validation data, relative to the config file."
    )
    validation_fraction: float | None = Field(
        None, ge=0, lt=1,
        description="Share of the training file held out for validation (default 0.2); 0 "
        "trains on every row and keeps the last epoch's model.",
    )
    test_path: str | None = Field(
        None, description="CSV file of test data, evaluated once after training.")
    test_fraction: float | None = Field(
        None, gt=0, lt=1, description="Share of the training file held out for testing.")
    split_seed: Seed = Field(0, description="Seed of the train/validation/test split.")

    @model_validator(mode="after")
    def _one_source_each(self) -> DataConfig:
        if self.validation_path is not None and self.validation_fraction is not None:
            raise ValueError("give validation_path or validation_fraction, not both")
        if self.test_path is not None and self.test_fraction is not None:
            raise ValueError("give test_path or test_fraction, not both")
        held_out = (self.validation_fraction or 0) + (self.test_fraction or 0)
        if held_out >= 1:
            raise ValueError(f"validation_fraction and test_fraction add up to {held_out}; "
                             "leave some rows for training")
        return self

    @property
    def targets(self) -> list[str]:
        return [self.target] if isinstance(self.target, str) else list(self.target)

    def column(self, name: str) -> ColumnConfig:
        """A column's settings with the data-wide defaults filled in (type may stay None)."""
        own = self.columns.get(name, ColumnConfig())
        return ColumnConfig(
            type=own.type, scaling=own.scaling or self.scaling,
            missing=own.missing or self.missing,
            fill_value=own.fill_value if own.fill_value is not None else self.fill_value,
            unseen=own.unseen or self.unseen,
            na_values=[*self.na_values, *(own.na_values or [])],
            max_categories=own.max_categories or self.max_categories,
            min_frequency=own.min_frequency or self.min_frequency,
            fold_case=own.fold_case if own.fold_case is not None else self.fold_case,
            date_format=own.date_format,
        )


def _name_only(value: Any) -> Any:
    """Accept ``optimizer: adam`` as shorthand for ``optimizer: {name: adam}`` (likewise
    activations, initialisers, losses and schedules)."""
    return {"name": value} if isinstance(value, str) else value


class Named(Strict):
    """A choice by ``name`` with optional settings; written back as the bare name when no
    setting is given (``activation: relu`` rather than ``activation: {name: relu}``)."""

    name: str

    @model_serializer(mode="wrap")
    def _bare_name(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not isinstance(data, dict) or "name" not in data:  # a partial dump (exclude=...)
            return data
        settings = {k: v for k, v in data.items() if k != "name" and v is not None}
        return data["name"] if not settings else {"name": data["name"], **settings}

    def __str__(self) -> str:
        options = self.options()
        details = ", ".join(f"{k}={v}" for k, v in options.items())
        return f"{self.name} ({details})" if options else str(self.name)

    def options(self) -> dict[str, Any]:
        """The settings that were given, by name."""
        return {k: getattr(self, k) for k in type(self).model_fields
                if k != "name" and getattr(self, k) is not None}


class ActivationConfig(Named):
    """An activation with options, e.g. ``{name: elu, alpha: 0.5}``."""

    name: ActivationName
    slope: float | None = Field(None, ge=0, description="leaky_relu: slope below 0 (0.01).")
    alpha: float | None = Field(None, gt=0, description="elu: the value it saturates to "
                                "below 0 is -alpha (1.0).")
    approximate: bool | None = Field(None, description="gelu: the tanh approximation "
                                     "instead of the exact erf form (false).")

    @model_validator(mode="after")
    def _options_fit_the_activation(self) -> ActivationConfig:
        accepted = inspect.signature(ACTIVATIONS[self.name].__init__).parameters
        for option in self.options():
            if option not in accepted:
                raise ValueError(f"{self.name} takes no option {option!r}"
                                 + (f"; it takes {', '.join(k for k in accepted if k != 'self')}"
                                    if len(accepted) > 1 else ""))
        return self


class InitConfig(Named):
    """An initialiser, by name; ``constant`` takes a ``value``: ``{name: constant, value: 0.1}``."""

    name: InitName
    value: float | None = Field(None, description="constant: every weight starts at this.")

    @model_validator(mode="after")
    def _value_only_for_constant(self) -> InitConfig:
        if self.name == "constant" and self.value is None:
            raise ValueError("constant needs a value, e.g. {name: constant, value: 0.1}")
        if self.name != "constant" and self.value is not None:
            raise ValueError(f"{self.name} takes no value; only constant does")
        return self


ActivationSpec = Annotated[ActivationConfig, BeforeValidator(_name_only)]
InitSpec = Annotated[InitConfig, BeforeValidator(_name_only)]


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
        description="Weight initialiser. auto: LeCun normal for selu, Glorot uniform "
        "otherwise (as Keras and scikit-learn). Biases start at 0.")
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
        "normal for selu, Glorot uniform otherwise.")

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


LayerConfig = Annotated[DenseConfig | DropoutConfig | BatchNormConfig | LayerNormConfig
                        | Conv2DConfig | MaxPool2DConfig | AvgPool2DConfig
                        | GlobalAvgPool2DConfig | FlattenConfig,
                        Field(discriminator="type")]


class ModelConfig(Strict):
    layers: list[LayerConfig] = Field(min_length=1)


class LossConfig(Named):
    """A loss with options, e.g. ``{name: huber, delta: 2}``."""

    name: LossName
    delta: float | None = Field(None, gt=0, description="huber: where the loss turns from "
                                "quadratic to linear (1.0).")
    label_smoothing: float | None = Field(None, ge=0, lt=1, description="cross_entropy: "
                                          "share of each target spread over all classes.")
    class_weights: Annotated[dict[str, float] | Literal["balanced"], Either(
        "balanced or a mapping from class label to a number")] | None = Field(
        None, description="cross_entropy, binary_cross_entropy: weight of each class label "
        "in the loss, or balanced (n_samples / (n_classes * class count)).")

    @model_validator(mode="after")
    def _options_fit_the_loss(self) -> LossConfig:
        accepted = inspect.signature(LOSSES[self.name].__init__).parameters
        for option in self.options():
            if option not in accepted:
                raise ValueError(f"{self.name} takes no option {option!r}")
        return self


class SGDConfig(Strict):
    """``v = momentum * v - lr * g; w += v`` (Nesterov: ``w += momentum * v - lr * g``)."""

    name: Literal["sgd"]
    learning_rate: float = Field(0.01, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False


class AdamConfig(Strict):
    """Adam (Kingma & Ba, 2015) with bias correction."""

    name: Literal["adam"]
    learning_rate: float = Field(0.001, gt=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    epsilon: float = Field(1e-8, gt=0)


class AdamWConfig(AdamConfig):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019) on the weight
    matrices: ``w *= 1 - lr * weight_decay`` before each Adam step."""

    name: Literal["adamw"]  # type: ignore[assignment]
    weight_decay: float = Field(0.01, ge=0)


class NadamConfig(AdamConfig):
    """Adam with Nesterov momentum (Dozat, 2016), as PyTorch's NAdam."""

    name: Literal["nadam"]  # type: ignore[assignment]
    momentum_decay: float = Field(0.004, ge=0)


class AdagradConfig(Strict):
    """``a += g^2; w -= lr * g / (sqrt(a) + epsilon)``."""

    name: Literal["adagrad"]
    learning_rate: float = Field(0.01, gt=0)
    epsilon: float = Field(1e-7, gt=0)
    initial_accumulator: float = Field(0.1, ge=0)


class RMSpropConfig(Strict):
    """``s = rho * s + (1 - rho) * g^2; w -= lr * g / sqrt(s + epsilon)`` (Keras')."""

    name: Literal["rmsprop"]
    learning_rate: float = Field(0.001, gt=0)
    rho: float = Field(0.9, ge=0, lt=1)
    epsilon: float = Field(1e-7, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    centered: bool = False


class RpropConfig(Strict):
    """iRprop- (Igel & Huesken, 2000), as in FANN: a step size per weight, grown while the
    gradient keeps its sign and shrunk when it flips. Full-batch: batch_size must cover
    the training data. Ignores learning rates and schedules."""

    name: Literal["rprop"]
    delta0: float = Field(0.1, gt=0)
    eta_plus: float = Field(1.2, gt=1)
    eta_minus: float = Field(0.5, gt=0, lt=1)
    delta_min: float = Field(1e-6, gt=0)
    delta_max: float = Field(50.0, gt=0)


OptimizerConfig = Annotated[
    SGDConfig | AdamConfig | AdamWConfig | NadamConfig | AdagradConfig | RMSpropConfig
    | RpropConfig,
    Field(discriminator="name"), BeforeValidator(_name_only)
]


class ConstantScheduleConfig(Strict):
    """The optimizer's learning rate throughout."""

    name: Literal["constant"]


class StepScheduleConfig(Strict):
    """``lr * gamma ^ floor((epoch - 1) / step_size)``."""

    name: Literal["step"]
    step_size: Count
    gamma: float = Field(0.1, gt=0, le=1)


class MultiStepScheduleConfig(Strict):
    """``lr * gamma ^ (number of milestones before the epoch)``."""

    name: Literal["multistep"]
    milestones: list[Count] = Field(min_length=1)
    gamma: float = Field(0.1, gt=0, le=1)


class ExponentialScheduleConfig(Strict):
    """``lr * gamma ^ (epoch - 1)``."""

    name: Literal["exponential"]
    gamma: float = Field(gt=0, le=1)


class CosineScheduleConfig(Strict):
    """Linear warm-up over ``warmup_epochs``, then cosine annealing to ``min_lr`` at
    ``total_epochs`` (default: training.epochs)."""

    name: Literal["cosine"]
    total_epochs: Count | None = None
    min_lr: float = Field(0.0, ge=0)
    warmup_epochs: int = Field(0, ge=0, le=MAX_COUNT)


class PlateauScheduleConfig(Strict):
    """Multiply the rate by ``factor`` after ``patience`` epochs without the validation
    loss improving by more than ``min_delta``."""

    name: Literal["reduce_on_plateau"]
    factor: float = Field(0.1, gt=0, lt=1)
    patience: Count = 10
    min_delta: float = Field(1e-4, ge=0)
    cooldown: int = Field(0, ge=0, le=MAX_COUNT)
    min_lr: float = Field(0.0, ge=0)


ScheduleConfig = Annotated[
    ConstantScheduleConfig | StepScheduleConfig | MultiStepScheduleConfig
    | ExponentialScheduleConfig | CosineScheduleConfig | PlateauScheduleConfig,
    Field(discriminator="name"), BeforeValidator(_name_only)
]


class EarlyStoppingConfig(Strict):
    """Stop when the monitored value has not improved by more than ``min_delta`` for
    ``patience`` epochs. The model kept is the best epoch's either way."""

    monitor: Literal["val_loss", "val_metric"] = Field(
        "val_loss", description="val_metric: accuracy (higher is better) or RMSE (lower).")
    patience: Count = 10
    min_delta: float = Field(0.0, ge=0)


class RegularizationConfig(Strict):
    """Penalties on the weight matrices (part of the training loss) and gradient
    clipping."""

    l1: float = Field(0.0, ge=0, description="Adds l1 * sum|W| to the loss.")
    l2: float = Field(0.0, ge=0, description="Adds l2 * sum W^2 to the loss.")
    clip_norm: float | None = Field(None, gt=0, description="Scale the gradients down when "
                                    "their global norm exceeds this.")
    clip_value: float | None = Field(None, gt=0, description="Clip each gradient to "
                                     "[-clip_value, clip_value].")


class TrainingConfig(Strict):
    epochs: Count = 100
    batch_size: Count = 32
    seed: Seed = Field(0, description="Seeds initialisation, shuffling and dropout.")
    schedule: ScheduleConfig | None = Field(None, description="Learning-rate schedule; "
                                            "default constant.")
    early_stopping: EarlyStoppingConfig | None = None
    init_from: str | None = Field(None, description="Start from the weights of this "
                                  "model.npz (warm start), relative to the config file.")
    on_divergence: Literal["stop", "rollback"] = Field(
        "stop", description="When the loss or a gradient goes non-finite: stop (exit 1), or "
        "go back to the last epoch's end with a lower learning rate.")
    rollback_lr_factor: float = Field(0.5, gt=0, lt=1,
                                      description="Learning rate multiplier per rollback.")
    max_rollbacks: int = Field(3, ge=1, le=MAX_COUNT, description="Stop after this many rollbacks.")


class OutputConfig(Strict):
    runs_dir: str = Field("runs", description="Where run directories go, relative to the "
                          "current directory.")
    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Run name; default: the config file's name.",
    )


class Config(Strict):
    data: DataConfig
    model: ModelConfig
    loss: Annotated[LossConfig, BeforeValidator(_name_only)] | None = Field(
        None, description="Inferred from the task "
                                               "and output activation when omitted.")
    optimizer: OptimizerConfig = Field(default_factory=lambda: AdamConfig(name="adam"))
    regularization: RegularizationConfig = Field(default_factory=RegularizationConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)


# ---------------------------------------------------------------------------------------
# Loading


@dataclass
class LoadedConfig:
    """A validated config with the means to point at any of its fields in the file."""

    config: Config
    path: Path
    root: yaml.Node
    overridden: dict[str, str] = field(default_factory=dict)  # dotted path -> the flag

    def base_dir(self) -> Path:
        return self.path.parent

    def resolve_path(self, relative: str) -> Path:
        return (self.base_dir() / relative).resolve()

    def problem(self, loc: Loc, message: str) -> str:
        line, col = locate(self.root, loc)
        return _place(self.path, line, col, f"{dotted(loc)}: {message}", self.overridden)

    def error(self, loc: Loc, message: str) -> ConfigError:
        return ConfigError([self.problem(loc, message)], str(self.path))


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> LoadedConfig:
    """Read, parse (safe loader) and validate a config; raise ``ConfigError`` listing every
    problem found, each located at ``file:line:column`` (or at the ``--set`` it came from).

    ``overrides`` are ``dotted.key=value`` strings applied before validation; values are
    read as YAML (``0.1`` is a number, ``[a, b]`` a list, ``true`` a boolean).
    """
    path = Path(path)
    raw = read_limited(path, MAX_CONFIG_BYTES, lambda m: ConfigError([m], str(path)),
                       "config file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: cannot read config: {exc}"], str(path)) from None
    try:
        root, data = _parse_yaml(text)
    except YAMLLimitError as exc:
        mark = exc.mark
        raise ConfigError([f"{path}:{mark.line + 1}:{mark.column + 1}: {exc}"],
                          str(path)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError([f"{where}: invalid YAML: {exc.problem}"], str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"], str(path)) from None
    if root is None or not isinstance(data, dict):
        raise ConfigError(
            [f"{path}:1:1: the config must be a mapping with sections data, model, ..."],
            str(path),
        )
    problems = _duplicate_keys(root)
    overridden = _apply_overrides(data, overrides, path)
    found = len(problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors = _one_per_typo(exc.errors(), data)
        found += len(errors)
        # describing a problem searches the file for it: describe only those reported
        problems += [_describe(root, data, err)
                     for err in errors[: max(0, MAX_PROBLEMS - len(problems))]]
    if problems:
        shown = sorted(problems)[:MAX_PROBLEMS]
        raise ConfigError([_place(path, line, col, message, overridden)
                           for line, col, message in shown], str(path),
                          omitted=found - len(shown))
    loaded = LoadedConfig(config, path, root, overridden)
    structural = _structure_problems(loaded)
    if structural:
        raise ConfigError(structural, str(path))
    return loaded


class YAMLLimitError(yaml.YAMLError):
    """YAML beyond bp's limits on nesting, size or aliases; ``mark`` is where."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.mark = mark


# libyaml's parser when PyYAML has it: several times faster on a large file
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for locating problems) and the data of one YAML document (safe
    loader), after checking its shape is within bp's limits."""
    _check_yaml_limits(text)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        return root, loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()


def _check_yaml_limits(text: str) -> None:
    """Walk the parser's events (no tree is built) and refuse YAML nested more than
    ``MAX_YAML_DEPTH`` deep, holding more than ``MAX_YAML_NODES`` values once every alias
    is expanded (a "billion laughs" file expands a few lines into 10^9 values), or with an
    alias inside the node it names (an endless structure)."""
    depth = nodes = 0
    sizes: dict[str, int] = {}  # anchor -> values in the node it names, aliases expanded
    open_nodes: list[tuple[str | None, int]] = []  # anchor, values counted before it
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            anchor = event.anchor
            if any(anchor == name for name, _ in open_nodes):
                raise YAMLLimitError(f"the alias *{anchor} is inside the node &{anchor} "
                                     "names, which would make it endless; copy the values "
                                     "instead", event.start_mark)
            # an unknown anchor is the composer's error
            nodes += sizes.get(anchor, 1) if anchor is not None else 1
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            nodes += 1
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise YAMLLimitError(f"nested more than {MAX_YAML_DEPTH} levels deep; a "
                                     "bp config needs a few", event.start_mark)
            open_nodes.append((event.anchor, nodes))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, before = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = nodes - before + 1
        if nodes > MAX_YAML_NODES:
            raise YAMLLimitError(f"more than {MAX_YAML_NODES} values (aliases counted as "
                                 "the values they repeat); a bp config needs far fewer",
                                 event.start_mark)


class Override(str):
    """A ``key.path=value`` setting that came from another flag than ``--set``, e.g.
    ``--init-from``: problems with its value are blamed on that flag, as the user wrote
    it. (A ``str``, so that it travels wherever ``--set`` texts go.)"""

    given_as: str

    def __new__(cls, text: str, given_as: str) -> Override:
        override = super().__new__(cls, text)
        override.given_as = given_as
        return override


def _apply_overrides(data: dict[str, Any], overrides: Sequence[str],
                     path: Path) -> dict[str, str]:
    """Set each ``key.path=value`` in the raw config; return {dotted path: the flag that
    set it, as given (``--set key.path=value``)}."""
    applied: dict[str, str] = {}
    for text in overrides:
        flag = text.given_as if isinstance(text, Override) else f"--set {text}"
        key, sep, raw = text.partition("=")
        parts: list[str | int] = [int(p) if p.isdigit() else p
                                  for p in key.replace("[", ".").replace("]", "").split(".")]
        if not sep or not key or any(p == "" for p in parts):
            raise ConfigError([f"{flag}: write it as key.path=value, e.g. "
                               "--set training.epochs=20"], str(path))
        try:
            _, value = _parse_yaml(raw)
        except YAMLLimitError as exc:
            raise ConfigError([f"--set {text}: {exc}"], str(path)) from None
        except yaml.YAMLError:
            value = raw
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, dict):
                node = node.setdefault(part, {})
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                where = dotted(tuple(parts[: i + 1]))
                raise ConfigError([f"{flag}: there is no {where} in {path} to set"],
                                  str(path))
        last = parts[-1]
        if isinstance(node, dict):
            node[last] = value
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = value
        else:
            raise ConfigError([f"{flag}: there is no {dotted(tuple(parts))} in {path} "
                               "to set"], str(path))
        applied[dotted(tuple(parts))] = flag
    return applied


def _place(path: Path, line: int, col: int, message: str, overridden: dict[str, str]) -> str:
    """Prefix a problem with where it came from: the file, or the flag that set the value
    it is about. A problem with a whole layer or section (``model.layers[2]: the pool
    window is larger than its input``) is blamed on a flag that set a key within it."""
    field_path = message.split(": ", 1)[0]
    for key, flag in overridden.items():
        if _within(field_path, key) or (field_path != "(top level)" and _within(key, field_path)):
            return f"{flag}: {message}"
    return f"{path}:{line}:{col}: {message}"


def _within(inner: str, outer: str) -> bool:
    """Whether dotted path ``inner`` is ``outer`` or a key or item under it."""
    return inner == outer or inner.startswith((outer + ".", outer + "["))


def _structure_problems(loaded: LoadedConfig) -> list[str]:
    """Checks across fields that the field types cannot express."""
    layers = loaded.config.model.layers
    problems = []
    if not isinstance(layers[-1], DenseConfig):
        problems.append(loaded.problem(("model", "layers", len(layers) - 1),
                                       "the last layer must be dense (the output layer)"))
    for i, layer in enumerate(layers[:-1]):
        if isinstance(layer, DenseConfig) and layer.units is None:
            problems.append(loaded.problem(("model", "layers", i),
                                           "units is required on every dense layer but the "
                                           "last (whose width bp infers from the data)"))
    return problems


TYPO_SEARCH_LIMIT = 100


def _one_per_typo(errors: list[Any], data: Any) -> list[Any]:
    """A misspelt key (``targt``) makes two errors, the unknown key and the missing one it
    was meant to be; keep the first, which says both (``did you mean 'target'?``)."""
    meant = set()
    for err in errors[:TYPO_SEARCH_LIMIT]:  # past that many, they are not typos
        if err["type"] == "extra_forbidden":
            loc = _strip_tags(tuple(err["loc"]), data)
            close = difflib.get_close_matches(str(loc[-1]), _allowed_keys(loc[:-1], data),
                                              n=1, cutoff=0.6)
            meant |= {(*loc[:-1], key) for key in close}
    return [err for err in errors if not (
        err["type"] == "missing" and _strip_tags(tuple(err["loc"]), data) in meant)]


def _describe(root: yaml.Node, data: Any, err: Mapping[str, Any]) -> tuple[int, int, str]:
    """Turn one pydantic error into ``(line, column, "field.path: message")``."""
    loc = _strip_tags(tuple(err["loc"]), data)
    line, col = locate(root, loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1], data)
        hint = did_you_mean(key, allowed)
        message = f"unknown key {key!r}{hint}; allowed here: {', '.join(allowed)}"
    elif kind == "missing":
        message = "required key is missing"
        line, col = locate(root, loc[:-1])
    elif kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag", ""))
        message = (f"unknown {ctx.get('discriminator', 'type').strip(chr(39))} {tag!r}"
                   f"{did_you_mean(tag, tags)}; allowed: {', '.join(tags)}")
        loc = (*loc, str(ctx.get("discriminator", "type")).strip("'"))
        line, col = locate(root, loc)
    elif kind == "string_pattern_mismatch":
        message = (f"use letters, digits, '.', '_' and '-' only, starting with a letter or "
                   f"digit (got {err.get('input')!r})")
    elif kind == "union_tag_not_found":
        key = str(err.get("ctx", {}).get("discriminator", "type")).strip("'")
        message = f"missing {key!r}; say which kind this is"
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
        value = err.get("input")
        if kind != "value_error" and (isinstance(value, (str, int, float, bool)) or (
                isinstance(value, list) and len(repr(value)) <= 40)):
            message += f" (got {value!r})"
    return line, col, f"{dotted(loc) or '(top level)'}: {message}"


def _strip_tags(loc: Loc, data: Any) -> Loc:
    """Drop the discriminator tags pydantic puts in error locations of tagged unions."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and isinstance(part, str) and (
            node.get("type") == part or node.get("name") == part
        ):
            continue
        out.append(part)
        node = _child(node, part)
    return tuple(out)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _allowed_keys(loc: Loc, data: Any) -> list[str]:
    """Field names of the model found at ``loc`` (walking from ``Config``)."""
    annotation: Any = Config
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            annotation = _list_item(annotation)
        else:
            model = _model_in(annotation, node)
            if model is None or part not in model.model_fields:
                return []
            annotation = model.model_fields[part].annotation
        node = _child(node, part)
    if isinstance(node, str):  # a shorthand like `optimizer: adam`
        node = {"name": node}
    model = _model_in(annotation, node)
    return list(model.model_fields) if model is not None else []


def _list_item(annotation: Any) -> Any:
    """``X`` from ``list[X]``, looking through Annotated and Optional."""
    origin = get_origin(annotation)
    if origin is list:
        return get_args(annotation)[0]
    if origin is Annotated:
        return _list_item(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        for member in get_args(annotation):
            if get_origin(member) is list:
                return get_args(member)[0]
    return None


def _model_in(annotation: Any, node: Any) -> Any:
    """The pydantic model inside an annotation, choosing a union member by its tag."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _model_in(get_args(annotation)[0], node)
    if origin is Union or origin is types.UnionType:
        members = [m for m in map(_bare, get_args(annotation))
                   if isinstance(m, type) and issubclass(m, BaseModel)]
        for member in members:
            for tag_field in ("type", "name"):
                field = member.model_fields.get(tag_field)
                if (field is not None and isinstance(node, dict)
                        and node.get(tag_field) in get_args(field.annotation)):
                    return member
        return members[0] if len(members) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _bare(annotation: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` (``activation: ActivationSpec | None``)."""
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """A suggestion among ``choices`` for a misspelt ``word``, or "". Kept cheap for
    long words and many choices (a hint is not worth seconds)."""
    if len(word) > MAX_HINT_LENGTH:
        return ""
    # difflib's ratio 2 * matches / (len(a) + len(b)) reaches the cutoff 0.6 only when
    # the shorter is at least 3/7 of the longer
    plausible = [c for c in itertools.islice(choices, MAX_HINT_CHOICES)
                 if 3 * max(len(c), len(word)) <= 7 * min(len(c), len(word))]
    close = difflib.get_close_matches(word, plausible, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _duplicate_keys(node: yaml.Node) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    mark = key.start_mark
                    found.append((mark.line + 1, mark.column + 1,
                                  f"duplicate key {key.value!r}; keep one of them"))
                seen.add(key.value)
            found += _duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found += _duplicate_keys(item)
    return found


def locate(root: yaml.Node, loc: Loc) -> tuple[int, int]:
    """1-based line and column of the deepest node along ``loc`` that exists in the file.

    For a mapping key, points at the key itself (where a reader looks for it).
    """
    node = root
    mark = root.start_mark
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    mark, node = key.start_mark, value
                    break
            else:
                break
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and part < len(node.value)):
            node = node.value[part]
            mark = node.start_mark
        else:
            break
    return mark.line + 1, mark.column + 1


def dotted(loc: Loc) -> str:
    """``("model", "layers", 2, "units")`` -> ``model.layers[2].units``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
