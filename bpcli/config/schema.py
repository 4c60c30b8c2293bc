"""The whole config: one section per capability (data, model, training, ...)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from bpcli.config.data import DataConfig
from bpcli.config.fields import Strict, name_or_mapping
from bpcli.config.model import ModelConfig
from bpcli.config.training import (
    AdamConfig,
    LossConfig,
    OptimizerConfig,
    OutputConfig,
    RegularizationConfig,
    TrainingConfig,
)


class Config(Strict):
    data: DataConfig
    model: ModelConfig
    loss: Annotated[LossConfig, BeforeValidator(name_or_mapping)] | None = Field(
        None, description="Inferred from the task "
                                               "and output activation when omitted.")
    optimizer: OptimizerConfig = Field(default_factory=lambda: AdamConfig(name="adam"))
    regularization: RegularizationConfig = Field(default_factory=RegularizationConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
