"""From a validated config and its data to everything training needs.

This is where the config meets the data: columns are checked, the task, output width,
output activation and loss are inferred where the config leaves them out, and the
resolved config (every default filled in) is produced for the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bpcli.config import Config, DenseConfig, DropoutConfig, LoadedConfig, did_you_mean
from bpcli.data import Preprocessor, Table, infer_task, read_csv, split_indices
from bpcli.errors import ConfigError
from bpcli.nn import LOSSES, OPTIMIZERS, Activation, Dense, Dropout, Layer, Network, Optimizer
from bpcli.nn.init import default_initializer
from bpcli.trainer import Metric

FUSED_LOSS = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}


@dataclass
class Experiment:
    """A config resolved against its data, with arrays ready for training."""

    loaded: LoadedConfig
    config: Config  # resolved: every inferred value filled in
    preprocessor: Preprocessor
    X_train: NDArray
    Y_train: NDArray
    X_val: NDArray
    Y_val: NDArray
    metric: Metric
    metric_name: str
    notes: list[str] = field(default_factory=list)

    def build_network(self, rng: np.random.Generator, dtype: Any = np.float32) -> Network:
        return build_network(self.config, self.X_train.shape[1], rng, dtype)

    def build_optimizer(self) -> Optimizer:
        options = self.config.optimizer.model_dump()
        return OPTIMIZERS[options.pop("name")](**options)


def prepare(loaded: LoadedConfig, dtype: Any = np.float32) -> Experiment:
    """Read the data named by the config and resolve the config against it."""
    config = loaded.config
    data = config.data
    table = read_csv(loaded.resolve_path(data.path))
    _check_columns(loaded, table)
    features = data.features or [c for c in table.columns if c != data.target]
    notes = []
    if data.task is not None:
        task: str = data.task
    else:
        task, reason = infer_task(table, data.target)
        notes.append(f"task: {task} ({reason})")

    if data.validation_path is not None:
        val_table = read_csv(loaded.resolve_path(data.validation_path))
        val_table.require([*features, data.target], "The validation file needs the columns "
                          "of the training file.")
        train_table = table
    else:
        fraction = data.validation_fraction if data.validation_fraction is not None else 0.2
        labels = table.cells[data.target] if task == "classification" else None
        train_idx, val_idx = split_indices(len(table), fraction, data.split_seed, labels)
        train_table, val_table = table.take(train_idx), table.take(val_idx)
    preprocessor = Preprocessor.fit(train_table, features, data.target, task)

    resolved = _resolve(loaded, preprocessor)
    one_column = resolved.loss == "binary_cross_entropy"
    X_train = preprocessor.transform_features(train_table, dtype)
    X_val = preprocessor.transform_features(val_table, dtype)
    Y_train = preprocessor.transform_target(train_table, one_column, dtype)
    Y_val = preprocessor.transform_target(val_table, one_column, dtype)
    notes.append(f"data: {len(X_train)} training rows, {len(X_val)} validation rows, "
                 f"{len(features)} features")
    metric, metric_name = _metric(preprocessor, one_column)
    return Experiment(loaded, resolved, preprocessor, X_train, Y_train, X_val, Y_val,
                      metric, metric_name, notes)


def _check_columns(loaded: LoadedConfig, table: Table) -> None:
    data = loaded.config.data
    where = f"in {table.path.name}"
    if data.target not in table.cells:
        raise loaded.error(("data", "target"), f"no column {data.target!r} {where}"
                           f"{did_you_mean(data.target, table.columns)}; columns: "
                           f"{', '.join(table.columns)}")
    problems = []
    for i, name in enumerate(data.features or []):
        if name not in table.cells:
            problems.append(loaded.problem(("data", "features", i), f"no column {name!r} "
                                           f"{where}{did_you_mean(name, table.columns)}"))
        elif name == data.target:
            problems.append(loaded.problem(("data", "features", i),
                                           f"{name!r} is the target; it cannot be a feature"))
    if problems:
        raise ConfigError(problems, str(loaded.path))


def _resolve(loaded: LoadedConfig, pre: Preprocessor) -> Config:
    """Fill in task, output width, activations, initialisers, loss and paths."""
    config = loaded.config
    layers = config.model.layers
    last = len(layers) - 1
    out = layers[last]
    assert isinstance(out, DenseConfig)  # checked when the config was loaded
    n_classes = len(pre.classes)
    if pre.task == "classification":
        if n_classes < 2:
            raise loaded.error(("data", "target"), f"only one class ({pre.classes[0]!r}) in "
                               "the training data; classification needs at least two")
        activation = out.activation or "softmax"
        if activation == "sigmoid" and n_classes == 2:
            units = 1
        elif activation == "softmax":
            units = n_classes
        else:
            raise loaded.error(("model", "layers", last, "activation"),
                               f"a classifier's output activation must be softmax (or sigmoid "
                               f"for two classes), not {activation!r}")
    else:
        activation = out.activation or "identity"
        units = 1
        if activation in FUSED_LOSS:
            raise loaded.error(("model", "layers", last, "activation"),
                               f"{activation!r} output suits classification; this is "
                               "regression, where identity is usual")
    if out.units is not None and out.units != units:
        raise loaded.error(("model", "layers", last, "units"),
                           f"the output layer needs {units} unit{'s' if units > 1 else ''} "
                           f"for this {pre.task} target, not {out.units}; or omit units")
    loss = FUSED_LOSS.get(activation, "mse")
    if config.loss is not None and config.loss != loss:
        raise loaded.error(("loss",), f"{config.loss!r} does not fit a {activation!r} output "
                           f"for {pre.task}; use {loss!r} (or omit loss)")

    resolved_layers: list[DenseConfig | DropoutConfig] = []
    for i, layer in enumerate(layers):
        if isinstance(layer, DenseConfig):
            act = activation if i == last else (layer.activation or "relu")
            init = layer.init if layer.init != "auto" else default_initializer(act)
            layer = layer.model_copy(update={
                "units": units if i == last else layer.units, "activation": act, "init": init,
            })
        resolved_layers.append(layer)
    data = config.data.model_copy(update={
        "task": pre.task,
        "path": str(loaded.resolve_path(config.data.path)),
        "validation_path": (str(loaded.resolve_path(config.data.validation_path))
                            if config.data.validation_path else None),
        "validation_fraction": (None if config.data.validation_path
                                else config.data.validation_fraction or 0.2),
        "features": pre.features,
    })
    output = config.output.model_copy(update={"name": config.output.name or _run_name(loaded)})
    model = config.model.model_copy(update={"layers": resolved_layers})
    return config.model_copy(update={"data": data, "model": model, "loss": loss,
                                     "output": output})


def _run_name(loaded: LoadedConfig) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in loaded.path.stem)
    return stem.lstrip("._-") or "run"


def build_network(config: Config, n_features: int, rng: np.random.Generator,
                  dtype: Any = np.float32) -> Network:
    """The network a resolved config describes: each dense layer is followed by its
    activation (none for identity)."""
    layers: list[Layer] = []
    for spec in config.model.layers:
        if isinstance(spec, DenseConfig):
            assert spec.units is not None and spec.activation is not None
            layers.append(Dense(spec.units, spec.init))
            if spec.activation != "identity":
                layers.append(Activation(spec.activation))
        else:
            layers.append(Dropout(spec.rate))
    assert config.loss is not None
    return Network(layers, LOSSES[config.loss](), (n_features,), rng, dtype)


def _metric(pre: Preprocessor, one_column: bool) -> tuple[Metric, str]:
    if pre.task == "classification":
        def accuracy(outputs: NDArray, Y: NDArray) -> float:
            predicted = (outputs[:, 0] > 0.5) if one_column else np.argmax(outputs, axis=1)
            truth = Y[:, 0] if one_column else Y
            return float(np.mean(predicted == truth))
        return accuracy, "accuracy"

    def rmse(outputs: NDArray, Y: NDArray) -> float:
        # in the target's own units, not the standardised ones the network sees
        error = (outputs - Y) * pre.target_scale
        return float(np.sqrt(np.mean(error * error)))
    return rmse, "rmse"
