"""From a validated config and its data to everything training needs.

This is where the config meets the data, in four steps (``prepare``): read the training
file (its columns checked against the config by ``bpcli.columns``), split its rows, fit the
preprocessing on the training rows, and encode every part as arrays. The task, output
width, output activation and loss are inferred where the config leaves them out, and the
resolved config (every default filled in) is produced for the run directory. The network
itself is built from the resolved config by ``bpcli.building``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bpcli.building import LayerError, build_network, penalties, weight_mask
from bpcli.columns import (
    feature_columns,
    input_columns,
    leave_out_identifiers,
    note_variants,
    note_vocabularies,
    order_text_inputs,
    read_settings,
    rows_to_use,
)
from bpcli.config import (
    ActivationConfig,
    ColumnConfig,
    Config,
    Conv1DConfig,
    Conv2DConfig,
    CosineScheduleConfig,
    DenseConfig,
    EmbeddingConfig,
    InitConfig,
    LayerConfig,
    LoadedConfig,
    LossConfig,
    ModelConfig,
    PlateauScheduleConfig,
    did_you_mean,
)
from bpcli.csvfile import Kind, Table, read_csv, read_header, release_freed_memory
from bpcli.data import InputColumn, Preprocessor
from bpcli.errors import ConfigError, DataError, DataProblems
from bpcli.files import human_size
from bpcli.inference import predicted_classes
from bpcli.memory import INFERENCE_ROWS
from bpcli.nn import OPTIMIZERS, Network, Optimizer
from bpcli.nn.init import default_initializer
from bpcli.nn.schedules import SCHEDULES, Schedule
from bpcli.splits import fold_rows, split_rows
from bpcli.targets import as_numbers, infer_task
from bpcli.text import FIRST_WORD_ID, TextSpec
from bpcli.trainer import EarlyStopping, Metric

FUSED_LOSS = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}
REGRESSION_LOSSES = ("mse", "mae", "huber")


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
    loss_options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    X_test: NDArray | None = None
    Y_test: NDArray | None = None  # class indices, or targets in their own units

    def build_network(self, rng: np.random.Generator, dtype: Any = np.float32) -> Network:
        """The network, with the config's penalties attached to its loss."""
        if self.config.gan is not None:  # bpcli.ganbuild builds a GAN's two networks
            raise self.loaded.error(("gan",), "this command works on a model config, not "
                                    "a GAN's: train a GAN with bp train, check it with bp "
                                    "gradcheck, draw rows from it with bp generate")
        try:
            rows = max(len(self.X_train), len(self.X_val))
            network = build_network(self.config, self.X_train.shape[1], rng, dtype,
                                    self.loss_options,
                                    batch=min(self.config.training.batch_size, rows),
                                    inference_batch=min(INFERENCE_ROWS, rows))
        except LayerError as exc:
            raise self.loaded.error(("model", "layers", exc.index), str(exc)) from None
        except ValueError as exc:  # settings that only clash with each other or the data
            raise self.loaded.error(("model",), str(exc)) from None
        network.penalties = penalties(self.config, network)
        return network

    def build_optimizer(self, network: Network) -> Optimizer:
        options = self.config.optimizer.model_dump()
        try:
            optimizer = OPTIMIZERS[options.pop("name")](**options)
        except ValueError as exc:  # settings that only clash with each other
            raise self.loaded.error(("optimizer",), str(exc)) from None
        if hasattr(optimizer, "decay_mask"):  # decoupled weight decay: weights, not biases
            optimizer.decay_mask = weight_mask(network)
        return optimizer

    def build_schedule(self, optimizer: Optimizer) -> Schedule:
        spec = self.config.training.schedule
        options = spec.model_dump() if spec is not None else {"name": "constant"}
        try:
            return SCHEDULES[options.pop("name")](optimizer.learning_rate, **options)
        except ValueError as exc:  # settings that only clash with each other
            raise self.loaded.error(("training", "schedule"), str(exc)) from None

    def early_stopping(self) -> EarlyStopping:
        """The rule for the best epoch (and, when configured, for stopping early)."""
        spec = self.config.training.early_stopping
        if spec is None:
            return EarlyStopping.watching(self.metric_name, on_metric=False)
        return EarlyStopping.watching(self.metric_name, spec.monitor == "val_metric",
                                      spec.patience, spec.min_delta)


@dataclass
class _TrainingFile:
    """What reading the training file settled, besides its table."""

    task: str
    inputs: list[InputColumn]  # the feature columns used, with their settings
    keep: NDArray[np.intp]  # the rows to use (data.missing_target: drop leaves some out)
    read_like: Callable[[Path, str], Table]  # reads a validation or test file alike


def prepare(loaded: LoadedConfig, dtype: Any = np.float32) -> Experiment:
    """Read the data named by the config and resolve the config against it, in four steps:
    read the training file (every problem in its data reported at once, ``DataProblems``),
    split its rows, fit the preprocessing on the training rows, and encode every part."""
    notes: list[str] = []
    table, training = _read(loaded, dtype, notes)
    rows = _split(loaded, table, training)
    preprocessor = _fit(loaded, table, training, rows["train"], notes)
    resolved = _resolve(loaded, preprocessor)
    one_column = resolved.loss is not None and resolved.loss.name == "binary_cross_entropy"
    n_rows = len(table)
    Xs, Ys = _encode_parts(table, rows, preprocessor, one_column, dtype, notes)
    del table  # its columns went as they were encoded; its row bookkeeping goes now
    _check_parts(loaded, rows, n_rows)  # checked after the data, whose errors come first
    data = loaded.config.data
    for part, path in (("validation", data.validation_path), ("test", data.test_path)):
        if path is not None:
            source = training.read_like(loaded.resolve_path(path), part)
            Xs[part], Ys[part] = _encode_file(loaded, source, part, preprocessor, one_column,
                                              dtype, notes)
    if "validation" not in Xs:  # validation_fraction: 0, every row trains
        Xs["validation"] = np.zeros((0, Xs["train"].shape[1]), dtype)
        Ys["validation"] = Ys["train"][:0]
    notes.append(_data_note(Xs, preprocessor))
    metric, metric_name = _metric(preprocessor, one_column)
    loss_options = (_loss_options(loaded, resolved, preprocessor, Ys["train"], one_column)
                    if resolved.loss is not None else {})
    n_train = len(Xs["train"])
    if resolved.optimizer.name == "rprop" and resolved.training.batch_size < n_train:
        raise loaded.error(("training", "batch_size"), "rprop is a full-batch method: set "
                           f"batch_size to at least {n_train} (the training rows)")
    return Experiment(loaded, resolved, preprocessor, Xs["train"], Ys["train"],
                      Xs["validation"], Ys["validation"], metric, metric_name, loss_options,
                      notes, Xs.get("test"), Ys.get("test"))


def _read(loaded: LoadedConfig, dtype: Any, notes: list[str]
          ) -> tuple[Table, _TrainingFile]:
    """Read step: the training file's feature and target columns, checked against the
    config; the task, the input columns and the rows to use. Every problem in its data is
    raised at once (``DataProblems``)."""
    data = loaded.config.data
    path = loaded.resolve_path(data.path)
    header, _ = read_header(path, data.delimiter)
    features = feature_columns(loaded, header)
    if data.validation_fraction == 0 and data.validation_path is None:
        _check_no_validation(loaded)
    targets = data.targets
    columns = [*features, *targets]
    kinds, na_values = read_settings(loaded, columns)

    def read(csv_path: Path, what: str) -> Table:
        # each file's own delimiter, unless the config sets one for all
        return read_csv(csv_path, columns, kinds=kinds, delimiter=data.delimiter,
                        float_dtype=dtype, float64=targets, na_values=na_values,
                        collect=True,
                        hint=f"The {what} file needs the columns of the training file.")

    table = read(path, "training")
    problems = table.problems()
    kinds.update({n: c.kind for n, c in table.columns.items()})  # the later files follow
    task = _task(loaded, table, kinds, problems, notes)
    inputs = order_text_inputs(loaded, leave_out_identifiers(
        loaded, table, input_columns(loaded, table, features, notes), notes))
    for name in set(features) - {spec.name for spec in inputs}:
        del table.columns[name]  # left out: an identifier
    keep = rows_to_use(loaded, table, inputs, problems, notes)
    note_variants(table, inputs, [n for n, c in data.columns.items() if c.type], notes)
    if problems:
        raise DataProblems(problems, str(path),
                           [n for n in notes if n.startswith("warning:")])
    return table, _TrainingFile(task, inputs, keep, read)


def _task(loaded: LoadedConfig, table: Table, kinds: dict[str, Kind], problems: list[str],
          notes: list[str]) -> str:
    """The task, as the config says or as the first target's values suggest; a regression
    target's cells become numbers (in ``table``, and in ``kinds`` for the later files)."""
    data = loaded.config.data
    targets = data.targets
    task: str | None = data.task
    if task is None:
        try:
            task, reason = infer_task(table.columns[targets[0]], targets[0], table)
            notes.append(f"task: {task} ({reason})")
        except DataError as exc:  # a typo among numbers: report it with the others
            problems.append(str(exc))
            task = "unknown"  # until the typo is fixed
    if task == "regression":
        for target in targets:
            try:
                table.columns[target] = as_numbers(table.columns[target], table, target)
            except DataError as exc:
                problems.append(str(exc))
            kinds[target] = "numeric"
    elif task == "classification" and len(targets) > 1:
        raise loaded.error(("data", "target"), "several targets are for regression; a "
                           "classifier predicts one column")
    return task


def _split(loaded: LoadedConfig, table: Table, training: _TrainingFile
           ) -> dict[str, NDArray[np.intp]]:
    """Split step: the rows of each part of the training file ("train", and "validation"
    and "test" unless they have files of their own), stratified by class."""
    data = loaded.config.data
    keep = training.keep
    labels = (table.columns[data.targets[0]].values[keep]
              if training.task == "classification" else None)
    fractions = {}
    if data.validation_path is None and data.validation_fraction != 0 and data.cv is None:
        fractions["validation"] = data.validation_fraction or 0.2
    if data.test_fraction is not None:
        fractions["test"] = data.test_fraction
    parts_of_kept = split_rows(len(keep), list(fractions.values()), data.split_seed, labels)
    rows = dict(zip(["train", *fractions], [keep[p] for p in parts_of_kept], strict=True))
    if data.cv is not None:  # the fold validates, the other folds train
        rest = parts_of_kept[0]
        folds = fold_rows(len(rest), data.cv.folds, data.split_seed,
                          None if labels is None else labels[rest])
        rows = {"train": keep[rest[np.sort(np.concatenate(
                    [f for k, f in enumerate(folds) if k != data.cv.fold - 1]))]],
                "validation": keep[rest[folds[data.cv.fold - 1]]],
                **{k: v for k, v in rows.items() if k == "test"}}
    return rows


def _fit(loaded: LoadedConfig, table: Table, training: _TrainingFile,
         train_rows: NDArray[np.intp], notes: list[str]) -> Preprocessor:
    """Fit step: imputation, scaling and vocabularies learnt from the training rows."""
    data = loaded.config.data
    preprocessor = Preprocessor.fit(table, train_rows, training.inputs, data.targets,
                                    training.task, data.scale_target)
    preprocessor.delimiter = data.delimiter
    preprocessor.na_values = [t.strip(" \t") for t in data.na_values]
    note_vocabularies(preprocessor, notes)
    _check_input_shape(loaded, preprocessor)
    return preprocessor


def _encode_parts(table: Table, rows: dict[str, NDArray[np.intp]], pre: Preprocessor,
                  one_column: bool, dtype: Any, notes: list[str]
                  ) -> tuple[dict[str, NDArray], dict[str, NDArray]]:
    """Encode step for the training file: the inputs and targets of each part.

    The parts are encoded together in file order, and the columns' rows are released as
    they are encoded (the file's columns and the arrays are never both whole), after the
    targets and the memory reading left free. ``table`` is left without its columns."""
    parts = list(rows)
    Ys = {part: _targets(pre, part, table, rows[part], one_column, dtype) for part in parts}
    for target in pre.targets:
        del table.columns[target]
    release_freed_memory()
    Xs = dict(zip(parts, pre.transform_parts(table, [rows[p] for p in parts], dtype, notes,
                                             release=True), strict=True))
    return Xs, Ys


def _encode_file(loaded: LoadedConfig, source: Table, part: str, pre: Preprocessor,
                 one_column: bool, dtype: Any, notes: list[str]) -> tuple[NDArray, NDArray]:
    """Encode step for a validation or test file of its own, its rows checked as the
    training file's were."""
    problems = source.problems()
    kept = rows_to_use(loaded, source, pre.inputs, problems, notes)
    if problems:
        raise DataProblems(problems, str(source.path))
    some: NDArray[np.intp] | None = None if len(kept) == len(source) else kept
    return (pre.transform_features(source, some, dtype, notes),
            _targets(pre, part, source, some, one_column, dtype))


def _targets(pre: Preprocessor, part: str, source: Table, rows: NDArray[np.intp] | None,
             one_column: bool, dtype: Any) -> NDArray:
    """The targets of ``rows`` as the loss takes them; the test part's as it is scored:
    in the targets' own units, or as class indices."""
    if part != "test":
        return pre.transform_target(source, rows, one_column, dtype)
    return (pre.target_values(source, rows) if pre.task == "regression"
            else pre.class_indices(source, rows))


def _check_parts(loaded: LoadedConfig, rows: dict[str, NDArray[np.intp]], n_rows: int
                 ) -> None:
    """Every part of the training file has rows."""
    name = loaded.resolve_path(loaded.config.data.path).name
    for part, part_rows in rows.items():
        if not len(part_rows):
            field = "validation_fraction" if part in ("train", "validation") else \
                "test_fraction"
            raise loaded.error(("data", field), f"the {part} split of {name} gets no "
                               f"rows ({n_rows} rows in the file); use more rows, or "
                               "give the split a file of its own (data.validation_path, "
                               "data.test_path)")


def _data_note(Xs: dict[str, NDArray], pre: Preprocessor) -> str:
    """``data: 120 training rows, 30 validation rows; 4 inputs from 4 columns``."""
    X_train, X_val, X_test = Xs["train"], Xs["validation"], Xs.get("test")
    sizes = f"{len(X_train)} training rows, {len(X_val)} validation rows" + (
        f", {len(X_test)} test rows" if X_test is not None else "")
    n_categorical = sum(c.kind == "categorical" for c in pre.inputs)
    n_dates = sum(c.kind == "date" for c in pre.inputs)
    texts = [f"text {c.name!r}: {_text_inputs(c.text)}" for c in pre.inputs
             if c.text is not None]
    encoded = ", ".join(([f"{n_categorical} categorical, one-hot encoded"] if n_categorical
                         else []) + ([f"{n_dates} date{'s' if n_dates > 1 else ''}, 8 "
                                      "inputs each"] if n_dates else []) + texts)
    encoded = f" ({encoded})" if encoded else ""
    n_inputs, n_columns = X_train.shape[1], len(pre.inputs)
    # text makes wide inputs (a tfidf column, one per token): say what they cost
    size = (f"; the inputs take {human_size(sum(X.nbytes for X in Xs.values()))}"
            if texts else "")
    return (f"data: {sizes}; {n_inputs} input{'s' if n_inputs != 1 else ''} from "
            f"{n_columns} column{'s' if n_columns != 1 else ''}{encoded}{size}")


def _text_inputs(spec: TextSpec) -> str:
    if spec.encoding == "sequence":
        return (f"{spec.max_length} word ids from a vocabulary of {len(spec.vocabulary):,} "
                "words")
    return f"tfidf of {len(spec.vocabulary):,} tokens"


def _check_no_validation(loaded: LoadedConfig) -> None:
    """Training on every row leaves nothing to monitor: the settings that watch the
    validation rows are refused."""
    training = loaded.config.training
    why = ("watches the validation rows, and data.validation_fraction: 0 leaves none (every "
           "row trains, the last epoch is the model); remove it, or hold rows out: "
           "data.validation_fraction: 0.2 or data.validation_path")
    problems = []
    if training.early_stopping is not None:
        problems.append(loaded.problem(("training", "early_stopping"),
                                       f"early stopping {why}"))
    if isinstance(training.schedule, PlateauScheduleConfig):
        problems.append(loaded.problem(("training", "schedule"),
                                       f"the reduce_on_plateau schedule {why}"))
    if problems:
        raise ConfigError(problems, str(loaded.path))


def _check_input_shape(loaded: LoadedConfig, pre: Preprocessor) -> None:
    shape = loaded.config.data.input_shape
    if shape is not None and int(np.prod(shape)) != len(pre.features):
        raise loaded.error(("data", "input_shape"), f"{'x'.join(map(str, shape))} needs "
                           f"{int(np.prod(shape))} input columns, but the data gives "
                           f"{len(pre.features)}; list the pixel columns in data.features "
                           "or fix the shape")


def _resolve_model(loaded: LoadedConfig, pre: Preprocessor) -> tuple[ModelConfig, LossConfig]:
    """The model's layers with output width, activations and initialisers filled in, and
    its loss."""
    config = loaded.config
    assert config.model is not None
    layers = config.model.layers
    last = len(layers) - 1
    out = layers[last]
    assert isinstance(out, DenseConfig)  # checked when the config was loaded
    n_classes = len(pre.classes)
    if pre.task == "classification":
        if n_classes < 2:
            raise loaded.error(("data", "target"), f"only one class ({pre.classes[0]!r}) in "
                               "the training data; classification needs at least two")
        activation = out.activation_name() or "softmax"
        if activation == "sigmoid" and n_classes == 2:
            units = 1
        elif activation == "softmax":
            units = n_classes
        else:
            raise loaded.error(("model", "layers", last, "activation"),
                               f"a classifier's output activation must be softmax (or sigmoid "
                               f"for two classes), not {activation!r}")
        allowed: tuple[str, ...] = (FUSED_LOSS[activation],)
    else:
        activation = out.activation_name() or "identity"
        units = len(pre.targets)
        if activation in FUSED_LOSS:
            raise loaded.error(("model", "layers", last, "activation"),
                               f"{activation!r} output suits classification; this is "
                               "regression, where identity is usual")
        allowed = REGRESSION_LOSSES
    if out.units is not None and out.units != units:
        raise loaded.error(("model", "layers", last, "units"),
                           f"the output layer needs {units} unit{'s' if units > 1 else ''} "
                           f"for this {pre.task} target, not {out.units}; or omit units")
    loss = config.loss if config.loss is not None else LossConfig(name=allowed[0])
    loss_name = loss.name
    if loss_name not in allowed:
        raise loaded.error(("loss",), f"{loss_name!r} does not fit a {activation!r} output "
                           f"for {pre.task}; use {' or '.join(map(repr, allowed))}")

    resolved_layers: list[LayerConfig] = []
    for i, layer in enumerate(layers):
        if isinstance(layer, EmbeddingConfig):
            layer = _resolve_embedding(loaded, i, layer, pre)
        layer = with_defaults(layer, activation if i == last else "relu",
                              units if i == last else None)
        resolved_layers.append(layer)
    return config.model.model_copy(update={"layers": resolved_layers}), loss


def with_defaults(layer: LayerConfig, activation: str, units: int | None = None
                  ) -> LayerConfig:
    """A layer with its inferred settings filled in: a dense layer's activation
    (``activation`` when not given) and its ``units`` when given; a convolution's
    activation (relu when not given); their initialisers (auto: by activation)."""
    if isinstance(layer, Conv1DConfig | Conv2DConfig):
        act = layer.activation or ActivationConfig(name="relu")
        init = layer.init
        if init.name == "auto":
            init = InitConfig(name=default_initializer(act.name, convolution=True))
        return layer.model_copy(update={"activation": act, "init": init})
    if isinstance(layer, DenseConfig):
        act = layer.activation or ActivationConfig(name=activation)
        init = layer.init
        if init.name == "auto":
            init = InitConfig(name=default_initializer(act.name))
        return layer.model_copy(update={"units": units if units is not None else layer.units,
                                        "activation": act, "init": init})
    return layer


def _resolve(loaded: LoadedConfig, pre: Preprocessor) -> Config:
    """Fill in task, output width, activations, initialisers, loss and paths."""
    config = loaded.config
    # a GAN's networks are resolved against the data where they are built (bpcli.ganbuild)
    model, loss = (_resolve_model(loaded, pre) if config.model is not None
                   else (None, config.loss))
    given = config.data

    def resolved_path(path: str | None) -> str | None:
        return str(loaded.resolve_path(path)) if path is not None else None

    data = given.model_copy(update={
        "task": pre.task,
        "path": resolved_path(given.path),
        "validation_path": resolved_path(given.validation_path),
        "validation_fraction": (None if given.validation_path or given.cv
                                else 0.2 if given.validation_fraction is None
                                else given.validation_fraction),
        "test_path": resolved_path(given.test_path),
        "features": pre.columns,
        "drop": [],
        # what each column was given, with the data-wide defaults as they applied to it
        "columns": {c.name: ColumnConfig(type=c.kind, missing=c.missing, **given.column(
            c.name).model_dump(exclude={"type", "missing"})) for c in pre.inputs},
    })
    training = config.training
    if isinstance(training.schedule, CosineScheduleConfig):
        total = training.schedule.total_epochs or training.epochs
        if training.schedule.warmup_epochs >= total:
            raise loaded.error(("training", "schedule", "warmup_epochs"),
                               f"the warm-up ({training.schedule.warmup_epochs} epochs) must "
                               f"end before the schedule does ({total} epochs)")
        schedule = training.schedule.model_copy(update={"total_epochs": total})
        training = training.model_copy(update={"schedule": schedule})
    if training.init_from is not None:
        training = training.model_copy(update={
            "init_from": str(loaded.resolve_path(training.init_from))})
    output = config.output.model_copy(update={"name": config.output.name or _run_name(loaded)})
    return config.model_copy(update={"data": data, "model": model, "loss": loss,
                                     "output": output, "training": training})


def _resolve_embedding(loaded: LoadedConfig, index: int, layer: EmbeddingConfig,
                       pre: Preprocessor) -> EmbeddingConfig:
    """The embedding's vocabulary and length, from the sequence text column (first in the
    inputs): its vocabulary with padding and unknown words, its max_length."""
    if index != 0:
        raise loaded.error(("model", "layers", index), "an embedding must be the first "
                           "layer: it reads the text column's word ids")
    text = pre.inputs[0].text
    assert text is not None and text.encoding == "sequence"  # order_text_inputs
    found = {"vocabulary": len(text.vocabulary) + FIRST_WORD_ID, "length": text.max_length}
    for key, value in found.items():
        given = getattr(layer, key)
        if given is not None and given != value:
            raise loaded.error(("model", "layers", index, key), f"the data sets the "
                               f"embedding's {key} ({value} for column "
                               f"{pre.inputs[0].name!r}); leave it out")
    return layer.model_copy(update=found)


def _loss_options(loaded: LoadedConfig, config: Config, pre: Preprocessor, Y_train: NDArray,
                  one_column: bool) -> dict[str, Any]:
    """The loss's constructor options, with class weights as one number per class."""
    assert config.loss is not None  # resolved
    options = config.loss.options()
    weights = options.get("class_weights")
    if weights is None:
        return options
    labels = (Y_train[:, 0] if one_column else Y_train).astype(np.int64)
    counts = np.bincount(labels, minlength=len(pre.classes))
    if weights == "balanced":
        if np.any(counts == 0):
            raise loaded.error(("loss", "class_weights"), "balanced weights need every class "
                               "in the training data")
        options["class_weights"] = [float(len(labels) / (len(pre.classes) * c))
                                    for c in counts]
        return options
    unknown = [label for label in weights if label not in pre.classes]
    if unknown:
        raise loaded.error(("loss", "class_weights"), f"no class {unknown[0]!r}"
                           f"{did_you_mean(unknown[0], pre.classes)}; the classes are "
                           f"{', '.join(pre.classes)}")
    # classes not named keep weight 1
    options["class_weights"] = [float(weights.get(c, 1.0)) for c in pre.classes]
    return options


def _run_name(loaded: LoadedConfig) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in loaded.path.stem)
    return stem.lstrip("._-") or "run"


def _metric(pre: Preprocessor, one_column: bool) -> tuple[Metric, str]:
    if pre.task == "classification":
        def accuracy(outputs: NDArray, Y: NDArray) -> float:
            predicted = predicted_classes(outputs)
            truth = Y[:, 0] if one_column else Y
            return float(np.mean(predicted == truth))
        return accuracy, "accuracy"

    def rmse(outputs: NDArray, Y: NDArray) -> float:
        # in the target's own units, not the standardised ones the network sees
        error = (outputs - Y) * pre.target_scale
        return float(np.sqrt(np.mean(error * error)))
    return rmse, "rmse"
