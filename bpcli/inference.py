"""A trained network applied to rows: reading a model's inputs from a CSV file, its
outputs in batches, and outputs turned into classes, probabilities and scores. What
predict, evaluate, explain and train's test scores share, so that no command imports
another."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bpcli.csvfile import (
    DELIMITER_NAMES,
    DELIMITERS,
    Column,
    Kind,
    Table,
    as_text,
    listed,
    read_csv,
)
from bpcli.data import Preprocessor
from bpcli.errors import UsageError
from bpcli.events import Progress
from bpcli.metrics import (
    ClassificationReport,
    RegressionReport,
    classification_report,
    regression_report,
)
from bpcli.nn import Network
from bpcli.nn.network import INFERENCE_BATCH


def read_inputs(pre: Preprocessor, path: Path, with_targets: bool,
                delimiter: str | None = None, keep: Sequence[str] = ()) -> Table:
    """The columns the model reads (and its targets, and the ``keep`` columns as text),
    typed as in training; other columns are ignored and their order does not matter.
    ``delimiter`` (a character or a name such as ``tab``) overrides the model's."""
    kinds: dict[str, Kind] = pre.kinds
    columns = pre.columns
    hint = f"The model reads {listed(columns, quote=False)} (in any order; other columns " \
        "are ignored)" + (f"; --keep asks for {listed(keep, quote=False)}" if keep else "")
    if with_targets:
        columns = [*columns, *pre.targets]
        kind: Kind = "numeric" if pre.task == "regression" else "categorical"
        kinds.update(dict.fromkeys(pre.targets, kind))
    for name in keep:
        if name not in columns:
            columns = [*columns, name]
            kinds[name] = "categorical"  # carried as it is written
    na_values = {**dict.fromkeys(pre.targets, pre.na_values),
                 **{c.name: c.na_values for c in pre.inputs}}
    delimiter = pre.delimiter if delimiter is None else delimiter_named(delimiter)
    return read_csv(path, columns, kinds=kinds, float64=pre.targets, delimiter=delimiter,
                    na_values=na_values, hint=hint + ".")


UNSEEN_POLICIES = ("other", "zeros", "error")


def use_unseen(pre: Preprocessor, policy: str | None) -> None:
    """What a category the model never saw becomes, for every categorical input, when the
    command line says (``--unseen``); ``other`` is all zeros for a column that has no
    'other' input."""
    if policy is None:
        return
    if policy not in UNSEEN_POLICIES:
        raise UsageError(f"--unseen {policy!r}: use one of {', '.join(UNSEEN_POLICIES)}")
    for spec in pre.inputs:
        if spec.kind == "categorical":
            spec.unseen = policy


def kept_text(column: Column) -> list[str]:
    """A --keep column's cells as text: numbers as their shortest float32 spelling (a
    column the model also reads as numbers), missing cells empty."""
    if column.kind == "categorical":
        return [str(t) for t in as_text(column)]
    return ["" if np.isnan(v) else str(int(v)) if v == int(v) else str(v)
            for v in column.values]


def delimiter_named(text: str) -> str:
    """A delimiter given on the command line: the character, or its name."""
    by_name = {name: char for char, name in DELIMITER_NAMES.items()}
    if text in DELIMITERS:
        return text
    if text.lower() in by_name:
        return by_name[text.lower()]
    if text == "\\t":
        return "\t"
    raise UsageError(f"--delimiter {text!r}: use one of , ; | tab (or comma, semicolon, "
                     "pipe)")


def network_outputs(network: Network, X: NDArray[np.floating],
                    progress: Progress | None = None) -> NDArray[np.floating]:
    """The network's outputs in inference mode, in batches (bounded memory); the rows done
    are told to ``progress`` after each batch."""
    if not len(X):
        return np.zeros((0, *network.output_shape), dtype=network.dtype)
    outputs = []
    for i in range(0, len(X), INFERENCE_BATCH):
        outputs.append(network.forward(X[i : i + INFERENCE_BATCH]))
        if progress is not None:
            done = min(i + INFERENCE_BATCH, len(X))
            progress(done, len(X), f"computing the outputs: {done:,} of {len(X):,} rows")
    return np.concatenate(outputs)


def class_probabilities(outputs: NDArray[np.floating]) -> NDArray[np.floating]:
    """Each class's probability, (n, classes), from a classifier's outputs: a softmax's
    as they are; one sigmoid unit's output is the probability of the second class."""
    if outputs.shape[1] == 1:
        return np.column_stack([1 - outputs[:, 0], outputs[:, 0]])
    return outputs


def predicted_classes(outputs: NDArray[np.floating]) -> NDArray[np.int64]:
    """The most probable class of each row, by index (a sigmoid unit: above 0.5)."""
    return np.argmax(class_probabilities(outputs), axis=1)


def score(network: Network, pre: Preprocessor, X: NDArray[np.floating], truth: NDArray[Any],
          progress: Progress | None = None) -> ClassificationReport | RegressionReport:
    """Scores of ``network`` on inputs ``X`` against class indices or, for regression,
    targets in their own units (n, targets)."""
    outputs = network_outputs(network, X, progress)
    if pre.task == "regression":
        return regression_report(pre.targets, truth, pre.inverse_target(outputs))
    return classification_report(truth, predicted_classes(outputs), pre.classes)
