"""The YAML config, a package with one module per job: the pieces fields are made of
(``fields``), a module per section (``data``, ``model``, ``training``) joined by
``schema``, reading a file (``loading``) and pointing at a field in it (``locating``).
What the rest of bp uses is named here."""

from bpcli.config.data import ColumnConfig, DataConfig
from bpcli.config.fields import (
    MAX_COUNT,
    MAX_FILTERS,
    MAX_SEED,
    MAX_UNITS,
    MAX_WINDOW,
    ActivationConfig,
    InitConfig,
    Loc,
    Named,
    Strict,
)
from bpcli.config.gan import GanConfig, GanNetworkConfig
from bpcli.config.loading import (
    MAX_CONFIG_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    LoadedConfig,
    Override,
    load_config,
)
from bpcli.config.locating import MAX_PROBLEMS, dotted, locate
from bpcli.config.model import (
    AvgPool2DConfig,
    BatchNormConfig,
    Conv1DConfig,
    Conv2DConfig,
    DenseConfig,
    DropoutConfig,
    EmbeddingConfig,
    FlattenConfig,
    GlobalAvgPool1DConfig,
    GlobalAvgPool2DConfig,
    GlobalMaxPool1DConfig,
    GRUConfig,
    LayerConfig,
    LayerNormConfig,
    LSTMConfig,
    MaxPool2DConfig,
    ModelConfig,
    ReshapeConfig,
    Upsample2DConfig,
)
from bpcli.config.names import did_you_mean
from bpcli.config.schema import Config
from bpcli.config.training import (
    AdagradConfig,
    AdamConfig,
    AdamWConfig,
    ConstantScheduleConfig,
    CosineScheduleConfig,
    EarlyStoppingConfig,
    ExponentialScheduleConfig,
    LossConfig,
    MultiStepScheduleConfig,
    NadamConfig,
    OptimizerConfig,
    OutputConfig,
    PlateauScheduleConfig,
    RegularizationConfig,
    RMSpropConfig,
    RpropConfig,
    ScheduleConfig,
    SGDConfig,
    StepScheduleConfig,
    TrainingConfig,
)

__all__ = [
    "MAX_CONFIG_BYTES", "MAX_COUNT", "MAX_FILTERS", "MAX_PROBLEMS", "MAX_SEED", "MAX_UNITS",
    "MAX_WINDOW", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "ActivationConfig", "AdagradConfig",
    "AdamConfig", "AdamWConfig", "AvgPool2DConfig", "BatchNormConfig", "ColumnConfig",
    "Config", "ConstantScheduleConfig", "Conv2DConfig", "CosineScheduleConfig", "DataConfig",
    "DenseConfig", "DropoutConfig", "EarlyStoppingConfig", "ExponentialScheduleConfig",
    "FlattenConfig", "GlobalAvgPool2DConfig", "InitConfig", "LayerConfig", "LayerNormConfig",
    "LoadedConfig", "Loc", "LossConfig", "MaxPool2DConfig", "ModelConfig",
    "MultiStepScheduleConfig", "NadamConfig", "Named", "OptimizerConfig", "OutputConfig",
    "Override", "PlateauScheduleConfig", "RMSpropConfig", "RegularizationConfig",
    "RpropConfig", "SGDConfig", "ScheduleConfig", "StepScheduleConfig", "Strict",
    "TrainingConfig", "did_you_mean", "dotted", "load_config", "locate",
    "Conv1DConfig", "EmbeddingConfig", "GlobalAvgPool1DConfig", "GlobalMaxPool1DConfig",
    "GRUConfig", "LSTMConfig", "GanConfig", "GanNetworkConfig", "ReshapeConfig",
    "Upsample2DConfig",
]
