"""The whole config: one section per capability (data, model, training, ...)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, Field

from bpcli.config.data import DataConfig
from bpcli.config.fields import Strict, name_or_mapping
from bpcli.config.gan import GanConfig
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
    # a config has model or gan (checked with the other cross-field rules, where the
    # message can point into the file); editors learn it from the schema
    model_config = ConfigDict(**Strict.model_config, json_schema_extra={
        "oneOf": [{"required": ["model"]}, {"required": ["gan"]}]})

    data: DataConfig
    model: ModelConfig | None = Field(None, description="The network to train; a config "
                                      "has model or gan.")
    gan: GanConfig | None = Field(None, description="A generator and a discriminator "
                                  "trained against each other, in place of model.")
    loss: Annotated[LossConfig, BeforeValidator(name_or_mapping)] | None = Field(
        None, description="Inferred from the task "
                                               "and output activation when omitted.")
    optimizer: OptimizerConfig = Field(default_factory=lambda: AdamConfig(name="adam"))
    regularization: RegularizationConfig = Field(default_factory=RegularizationConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
