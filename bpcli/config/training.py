"""The ``loss``, ``optimizer``, ``regularization``, ``training`` and ``output`` sections."""

from __future__ import annotations

import inspect
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from bpcli.config.fields import (
    MAX_COUNT,
    Count,
    Either,
    LossName,
    Named,
    Seed,
    Strict,
    name_or_mapping,
)
from bpcli.nn import LOSSES


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
    Field(discriminator="name"), BeforeValidator(name_or_mapping)
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
    Field(discriminator="name"), BeforeValidator(name_or_mapping)
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
