"""From a validated config and its data to everything training needs.

This is where the config meets the data: columns are checked, the task, output width,
output activation and loss are inferred where the config leaves them out, and the
resolved config (every default filled in) is produced for the run directory.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bpcli.config import (
    MAX_PROBLEMS,
    ActivationConfig,
    AvgPool2DConfig,
    BatchNormConfig,
    ColumnConfig,
    Config,
    Conv2DConfig,
    CosineScheduleConfig,
    DenseConfig,
    DropoutConfig,
    GlobalAvgPool2DConfig,
    InitConfig,
    LayerConfig,
    LayerNormConfig,
    LoadedConfig,
    LossConfig,
    MaxPool2DConfig,
    PlateauScheduleConfig,
    did_you_mean,
)
from bpcli.csvfile import Kind, Table, listed, read_csv, read_header, release_freed_memory
from bpcli.data import (
    ID_MIN_VALUES,
    ID_SHARE,
    MANY_CATEGORIES,
    OTHER,
    InputColumn,
    Preprocessor,
    as_numbers,
    cell_problems,
    fold_rows,
    infer_task,
    is_number,
    split_rows,
)
from bpcli.dates import day_first_order, looks_like_dates, parse_date
from bpcli.errors import ConfigError, DataError, DataProblems
from bpcli.inference import predicted_classes
from bpcli.memory import INFERENCE_ROWS, layer_needs, too_big
from bpcli.nn import (
    LOSSES,
    OPTIMIZERS,
    Activation,
    AvgPool2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    Network,
    Optimizer,
)
from bpcli.nn.init import default_initializer
from bpcli.nn.layers import BatchNorm, LayerNorm
from bpcli.nn.regularization import Penalties, Penalty
from bpcli.nn.schedules import SCHEDULES, Schedule
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
            return EarlyStopping(monitor="val_loss", maximize=False, patience=None,
                                 min_delta=0.0)
        on_metric = spec.monitor == "val_metric"
        return EarlyStopping(monitor=f"val_{self.metric_name}" if on_metric else "val_loss",
                             maximize=on_metric and self.metric_name == "accuracy",
                             patience=spec.patience, min_delta=spec.min_delta)


def prepare(loaded: LoadedConfig, dtype: Any = np.float32) -> Experiment:
    """Read the data named by the config and resolve the config against it. Every problem
    in the data of the training file is reported at once (``DataProblems``)."""
    data = loaded.config.data
    path = loaded.resolve_path(data.path)
    header, _ = read_header(path, data.delimiter)
    features = _check_columns(loaded, header)
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
    notes = []
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
    inputs = _leave_out_identifiers(loaded, table,
                                    _input_columns(loaded, table, features, notes), notes)
    for name in set(features) - {spec.name for spec in inputs}:
        del table.columns[name]  # left out: an identifier
    keep = _check_rows(loaded, table, inputs, problems, notes)
    _check_variants(table, inputs, [n for n, c in data.columns.items() if c.type], notes)
    if problems:
        raise DataProblems(problems, str(path),
                           [n for n in notes if n.startswith("warning:")])
    labels = table.columns[targets[0]].values[keep] if task == "classification" else None

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
    preprocessor = Preprocessor.fit(table, rows["train"], inputs, targets, task,
                                    data.scale_target)
    preprocessor.delimiter = data.delimiter
    preprocessor.na_values = [t.strip(" \t") for t in data.na_values]
    _check_many_categories(preprocessor, notes)
    _check_input_shape(loaded, preprocessor)
    resolved = _resolve(loaded, preprocessor)
    one_column = _loss_name(resolved) == "binary_cross_entropy"

    def targets_of(source: Table, part: NDArray[np.intp] | None) -> NDArray:
        return preprocessor.transform_target(source, part, one_column, dtype)

    def test_targets_of(source: Table, part: NDArray[np.intp] | None) -> NDArray:
        # scored in the targets' own units, or as class indices
        return (preprocessor.target_values(source, part) if task == "regression"
                else preprocessor.class_indices(source, part))

    # The parts of the training file, encoded together in file order; the columns' rows
    # are released as they are encoded (the file's columns and the arrays are never both
    # whole), after the targets and the memory reading left free.
    parts = list(rows)
    n_rows = len(table)
    Ys = {part: (test_targets_of if part == "test" else targets_of)(table, rows[part])
          for part in parts}
    for target in set(targets) - set(features):
        del table.columns[target]
    release_freed_memory()
    Xs = dict(zip(parts, preprocessor.transform_parts(table, [rows[p] for p in parts],
                                                      dtype, notes, release=True),
                  strict=True))
    del table
    for part, part_rows in rows.items():
        if not len(part_rows):  # checked after the data, whose errors come first
            field = "validation_fraction" if part in ("train", "validation") else \
                "test_fraction"
            raise loaded.error(("data", field), f"the {part} split of {path.name} gets no "
                               f"rows ({n_rows} rows in the file); use more rows, or "
                               "give the split a file of its own (data.validation_path, "
                               "data.test_path)")
    for part, path_ in (("validation", data.validation_path), ("test", data.test_path)):
        if path_ is not None:
            source = read(loaded.resolve_path(path_), part)
            problems = source.problems()
            kept = _check_rows(loaded, source, preprocessor.inputs, problems, notes)
            if problems:
                raise DataProblems(problems, str(source.path))
            some: NDArray[np.intp] | None = None if len(kept) == len(source) else kept
            Xs[part] = preprocessor.transform_features(source, some, dtype, notes)
            Ys[part] = (test_targets_of if part == "test" else targets_of)(source, some)
    if "validation" not in Xs:  # validation_fraction: 0, every row trains
        Xs["validation"] = np.zeros((0, Xs["train"].shape[1]), dtype)
        Ys["validation"] = Ys["train"][:0]
    X_train, Y_train, X_val, Y_val = Xs["train"], Ys["train"], Xs["validation"], Ys[
        "validation"]
    X_test, Y_test = Xs.get("test"), Ys.get("test")
    sizes = f"{len(X_train)} training rows, {len(X_val)} validation rows" + (
        f", {len(X_test)} test rows" if X_test is not None else "")
    n_categorical = sum(c.kind == "categorical" for c in preprocessor.inputs)
    n_dates = sum(c.kind == "date" for c in preprocessor.inputs)
    encoded = ", ".join(([f"{n_categorical} categorical, one-hot encoded"] if n_categorical
                         else []) + ([f"{n_dates} date{'s' if n_dates > 1 else ''}, 8 "
                                      "inputs each"] if n_dates else []))
    encoded = f" ({encoded})" if encoded else ""
    n_inputs, n_columns = X_train.shape[1], len(preprocessor.inputs)
    notes.append(f"data: {sizes}; {n_inputs} input{'s' if n_inputs != 1 else ''} from "
                 f"{n_columns} column{'s' if n_columns != 1 else ''}{encoded}")
    metric, metric_name = _metric(preprocessor, one_column)
    loss_options = _loss_options(loaded, resolved, preprocessor, Y_train, one_column)
    if resolved.optimizer.name == "rprop" and resolved.training.batch_size < len(X_train):
        raise loaded.error(("training", "batch_size"), "rprop is a full-batch method: set "
                           f"batch_size to at least {len(X_train)} (the training rows)")
    return Experiment(loaded, resolved, preprocessor, X_train, Y_train, X_val, Y_val,
                      metric, metric_name, loss_options, notes, X_test, Y_test)


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


def _check_rows(loaded: LoadedConfig, table: Table, inputs: list[InputColumn],
                problems: list[str], notes: list[str]) -> NDArray[np.intp]:
    """The rows of ``table`` to use. A missing target is a problem, or with
    ``data.missing_target: drop`` leaves its row out (noted); so is a missing input cell
    that is not imputed. Cells that did not read are reported already, not again."""
    data = loaded.config.data
    dropped = np.zeros(len(table), dtype=np.bool_)
    for target in data.targets:
        missing = table.columns[target].missing() & ~table.unreadable(target)
        if not missing.any():
            continue
        if data.missing_target == "drop":
            dropped |= missing
        else:
            problems.append(table.cells(np.flatnonzero(missing), target, "the target is "
                                        "missing", "fill it in, or leave such rows out: "
                                        "data.missing_target: drop"))
    if dropped.any():
        count = int(dropped.sum())
        notes.append(f"{table.path}: {count} row{'s' if count > 1 else ''} without a target "
                     "left out (data.missing_target: drop)")
    kept = np.flatnonzero(~dropped)
    for spec in inputs:
        problems += cell_problems(table, spec, kept)
    return kept


def read_settings(loaded: LoadedConfig, columns: Sequence[str]
                  ) -> tuple[dict[str, Kind], dict[str, list[str]]]:
    """How the config asks for ``columns`` to be read: the kinds it declares (targets by
    the task; dates as text, each distinct text converted once) and each column's texts
    for a missing cell."""
    data = loaded.config.data
    kinds: dict[str, Kind] = {n: "categorical" if c.type == "date" else c.type
                              for n, c in data.columns.items() if c.type}
    for target in data.targets:
        kinds[target] = "numeric" if data.task == "regression" else "categorical"
    na_values = {n: [t.strip(" \t") for t in data.column(n).na_values or []]
                 for n in columns}
    return kinds, na_values


def _check_columns(loaded: LoadedConfig, header: list[str]) -> list[str]:
    """The feature columns; every column the config names must be in the file."""
    data = loaded.config.data
    where = f"in {Path(data.path).name}"
    problems: list[str] = []
    omitted = 0

    def absent(loc: tuple[str | int, ...], name: str) -> None:
        nonlocal omitted
        if len(problems) >= MAX_PROBLEMS:  # only counted: a hint searches the header
            omitted += 1
            return
        problems.append(loaded.problem(loc, f"no column {name!r} {where}"
                                            f"{did_you_mean(name, header)}; columns: "
                                            f"{', '.join(header)}"))

    targets = data.targets
    if not targets:
        problems.append(loaded.problem(("data", "target"), "name at least one target column"))
    for i, name in enumerate(targets):
        loc: tuple[str | int, ...] = ("data", "target") if isinstance(data.target, str) \
            else ("data", "target", i)
        if name not in header:
            absent(loc, name)
        elif targets.index(name) != i:
            problems.append(loaded.problem(loc, f"{name!r} is named twice"))
    for i, name in enumerate(data.features or []):
        if name not in header:
            absent(("data", "features", i), name)
        elif name in targets:
            problems.append(loaded.problem(("data", "features", i),
                                           f"{name!r} is a target; it cannot be a feature"))
    for i, name in enumerate(data.drop):
        if name not in header:
            absent(("data", "drop", i), name)
        elif data.features is not None:
            problems.append(loaded.problem(("data", "drop", i), "drop is for leaving columns "
                                           "out of the default features; with features "
                                           "given, simply do not list it"))
    for name in data.columns:
        if name not in header:
            absent(("data", "columns", name), name)
        elif name in targets:
            problems.append(loaded.problem(("data", "columns", name), f"{name!r} is a target; "
                                           "its encoding follows data.task"))
        settings = data.column(name)
        if settings.missing == "constant" and settings.fill_value is None:
            problems.append(loaded.problem(("data", "columns", name, "missing"), "constant "
                                           "needs a fill_value (here or under data)"))
    if data.missing == "constant" and data.fill_value is None:
        problems.append(loaded.problem(("data", "missing"), "constant needs data.fill_value"))
    if problems:
        raise ConfigError(problems, str(loaded.path), omitted)
    features = data.features or [c for c in header if c not in targets and c not in data.drop]
    if not features:
        raise loaded.error(("data",), "no feature columns are left; the file has only "
                           f"{', '.join(header)}")
    return features


def _input_columns(loaded: LoadedConfig, table: Table, features: list[str],
                   notes: list[str]) -> list[InputColumn]:
    """Each feature column's settings, checked against its type. A text column of dates
    (or one declared a date) is a date column."""
    data = loaded.config.data
    inputs = []
    for name in features:
        kind: str = table.columns[name].kind
        settings = data.column(name)
        loc = ("data", "columns", name) if name in data.columns else ("data",)
        fill = settings.fill_value
        missing = settings.missing or "error"
        day_first = True
        texts = table.columns[name].categories
        if settings.type == "date" or (settings.type is None and kind == "categorical"
                                       and looks_like_dates(texts)):
            kind = "date"
            day_first, certain = day_first_order(texts)
            if not certain and settings.date_format is None:
                notes.append(f"column {name!r}: dates such as {texts[0]!r} read day first "
                             f"(day/month/year); if the month comes first: "
                             f"data.columns.{name}.date_format: '%m/%d/%Y'")
            if settings.missing == "constant" and parse_date(str(fill)) is None:
                raise loaded.error((*loc, "fill_value"), f"column {name!r} holds dates; its "
                                   f"fill_value must be a date such as 2012-01-31, not "
                                   f"{fill!r}")
        elif settings.type is None and kind == "categorical" and settings.date_format:
            raise loaded.error(("data", "columns", name, "date_format"), f"column {name!r} "
                               "does not hold dates; declare it: type: date")
        if kind == "categorical" and missing in ("mean", "median"):
            if name in data.columns and data.columns[name].missing is not None:
                raise loaded.error((*loc, "missing"), f"column {name!r} holds text; impute "
                                   f"it with most_frequent or constant, not {missing}")
            missing = "most_frequent"  # the data-wide mean/median, for a text column
        if kind in ("numeric", "boolean") and settings.missing == "constant" and \
                not isinstance(fill, int | float):
            raise loaded.error((*loc, "fill_value"), f"column {name!r} is {kind}; its "
                               f"fill_value must be a number, not {fill!r}")
        scaling: str = settings.scaling or "standard"
        if data.pixel_scale is not None and kind == "numeric":
            scaling = "fixed"  # x / pixel_scale
        inputs.append(InputColumn(name, kind, scaling=scaling,
                                  scale_by=data.pixel_scale if scaling == "fixed" else None,
                                  missing=missing, fill=fill,
                                  unseen=settings.unseen or "other",
                                  na_values=[t.strip(" \t") for t in settings.na_values or []],
                                  fold_case=bool(settings.fold_case),
                                  max_categories=settings.max_categories,
                                  date_format=settings.date_format, day_first=day_first,
                                  min_frequency=settings.min_frequency or 1))
    return inputs


def _leave_out_identifiers(loaded: LoadedConfig, table: Table, inputs: list[InputColumn],
                           notes: list[str]) -> list[InputColumn]:
    """The inputs without the text columns whose values are nearly all distinct (ids,
    free text): one-hot inputs that each match one row teach nothing and match no new
    row. A column declared categorical stays."""
    data = loaded.config.data
    kept = []
    for spec in inputs:
        column = table.columns[spec.name]
        declared = spec.name in data.columns and data.columns[spec.name].type is not None
        if spec.kind == "categorical" and not declared:
            present = int(np.count_nonzero(column.values >= 0))
            distinct = len(column.categories)  # the texts present, missing ones aside
            if distinct > ID_MIN_VALUES and distinct >= ID_SHARE * present:
                notes.append(f"warning: column {spec.name!r} left out: {distinct} distinct "
                             f"values in {present} cells, like an identifier; to use it "
                             f"anyway: data.columns.{spec.name}.type: categorical (and "
                             "max_categories), or drop it yourself: data.drop: "
                             f"[{spec.name}]")
                continue
        kept.append(spec)
    if not kept:
        raise loaded.error(("data",), "no feature columns are left once identifiers are left "
                           "out; declare the ones to use: data.columns.<name>.type")
    return kept


def _check_input_shape(loaded: LoadedConfig, pre: Preprocessor) -> None:
    shape = loaded.config.data.input_shape
    if shape is not None and int(np.prod(shape)) != len(pre.features):
        raise loaded.error(("data", "input_shape"), f"{'x'.join(map(str, shape))} needs "
                           f"{int(np.prod(shape))} input columns, but the data gives "
                           f"{len(pre.features)}; list the pixel columns in data.features "
                           "or fix the shape")


def _check_many_categories(pre: Preprocessor, notes: list[str]) -> None:
    """Notes on the vocabularies: very large ones, values grouped into "other", and values
    that differ only in case or spaces."""
    for column in pre.inputs:
        if column.kind != "categorical":
            continue
        name = column.name
        if len(column.categories) > MANY_CATEGORIES:
            notes.append(f"warning: column {name!r} has {len(column.categories)} distinct "
                         "values, one network input each; keep the most frequent: "
                         f"data.columns.{name}.max_categories: 100, or leave it out: "
                         f"data.drop: [{name}]")
        if column.grouped:
            notes.append(f"column {name!r}: {len(column.grouped)} rare value"
                         f"{'s' if len(column.grouped) > 1 else ''} (such as "
                         f"{sorted(column.grouped)[0]!r}) share the input "
                         f"{name}={OTHER}")


def _check_variants(table: Table, inputs: list[InputColumn], declared: Collection[str],
                    notes: list[str]) -> None:
    """A warning for each text column with values that differ only in case or spaces
    (Berlin, berlin, BERLIN), which are separate values unless folded; and for each that
    holds mostly numbers, made text by a few words (markers of missing cells, likely)."""
    for spec in inputs:
        if spec.kind != "categorical":
            continue
        column = table.columns[spec.name]
        numbers = np.array([is_number(c) for c in column.categories] + [False])
        counts = np.bincount(column.values[column.values >= 0],
                             minlength=len(column.categories))
        share = counts[numbers[:-1]].sum() / max(1, counts.sum())
        if 0.5 <= share < 1 and spec.name not in declared:
            words = [c for c, n in zip(column.categories, numbers, strict=False) if not n]
            notes.append(f"warning: column {spec.name!r} is read as text, but "
                         f"{share:.0%} of its cells are numbers; if its other values "
                         f"({listed(words, 5)}) mark missing cells: data.na_values: "
                         f"[{', '.join(map(repr, words[:5]))}], or to list them as "
                         f"problems: data.columns.{spec.name}.type: numeric")
        if spec.fold_case:
            continue
        variants: dict[str, list[str]] = {}
        for category in table.columns[spec.name].categories:
            variants.setdefault(" ".join(category.split()).lower(), []).append(category)
        alike = [group for group in variants.values() if len(group) > 1]
        if alike:
            shown = "; ".join(", ".join(map(repr, group)) for group in alike[:3])
            notes.append(f"warning: column {spec.name!r}: {shown} differ only in case or "
                         "spaces and are separate values; to make them one: "
                         f"data.columns.{spec.name}.fold_case: true")


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
        if isinstance(layer, Conv2DConfig):
            act = layer.activation or ActivationConfig(name="relu")
            init = layer.init
            if init.name == "auto":
                init = InitConfig(name=default_initializer(act.name, convolution=True))
            layer = layer.model_copy(update={"activation": act, "init": init})
        if isinstance(layer, DenseConfig):
            act = layer.activation or ActivationConfig(name=activation if i == last else "relu")
            init = layer.init
            if init.name == "auto":
                init = InitConfig(name=default_initializer(act.name))
            layer = layer.model_copy(update={
                "units": units if i == last else layer.units, "activation": act, "init": init,
            })
        resolved_layers.append(layer)
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
    model = config.model.model_copy(update={"layers": resolved_layers})
    return config.model_copy(update={"data": data, "model": model, "loss": loss,
                                     "output": output, "training": training})


def _loss_name(config: Config) -> str:
    assert config.loss is not None  # resolved
    return config.loss.name


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
    layers: list[Layer] = []
    owners: list[int] = []  # the config layer each network layer comes from
    for index, spec in enumerate(config.model.layers):
        try:
            made = _layers_of(spec)
        except ValueError as exc:
            raise LayerError(index, str(exc)) from None
        layers.extend(made)
        owners.extend([index] * len(made))
    shape = config.data.input_shape or (n_features,)
    _check_shapes(layers, owners, tuple(shape))
    needs = layer_needs(layers, tuple(shape), np.dtype(dtype).itemsize, batch,
                        inference_batch)
    problem = too_big(needs)
    if problem is not None:
        index, message = problem
        raise LayerError(owners[index], f"{message}; use fewer units or filters, or a "
                         f"smaller training.batch_size (now {config.training.batch_size})")
    loss = LOSSES[_loss_name(config)](**(loss_options or {}))
    return Network(layers, loss, tuple(shape), rng, dtype)


def _layers_of(spec: LayerConfig) -> list[Layer]:
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
    return [Flatten()]


def _check_shapes(layers: list[Layer], owners: list[int], shape: tuple[int, ...]) -> None:
    """Each layer's output shape from its input's, or the first layer that cannot."""
    for layer, index in zip(layers, owners, strict=True):
        try:
            shape = layer.compute_output_shape(shape)
        except ValueError as exc:
            hint = ""
            if isinstance(layer, Dense) and len(shape) > 1:
                hint = "; add {type: flatten} (or global_avg_pool2d) before it"
            elif len(shape) == 1 and isinstance(layer, Conv2D | MaxPool2D | AvgPool2D |
                                                GlobalAvgPool2D | Flatten):
                hint = ("; image layers need data.input_shape: [channels, height, width], "
                        "and come before any flatten or dense layer")
            raise LayerError(index, f"{exc}{hint}") from None


def penalties(config: Config, network: Network) -> Penalties | None:
    """L1/L2 penalties: the global ones, and a dense layer's own where it sets them."""
    reg = config.regularization
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
