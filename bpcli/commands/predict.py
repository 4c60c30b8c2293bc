"""``bp predict``: apply a trained model to a CSV file."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bpcli.atomic import write_text_atomic
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
from bpcli.files import output_path
from bpcli.modelfile import SavedModel, load_model
from bpcli.nn import Network

BATCH = 8192


def predict(model_path: Path, input_path: Path, out: Path | None,
            notes: list[str] | None = None, progress: Progress | None = None,
            delimiter: str | None = None, keep: Sequence[str] = ()) -> int:
    """Write predictions for every row of ``input_path`` to ``out`` (standard output when
    ``None`` or ``-``); return the number of rows. The ``keep`` columns of the input come
    first in the output, as they are; the ``delimiter`` overrides the model's and
    detection."""
    if out is not None:
        out = output_path(out, model_path, input_path)
    saved = load_model(model_path)
    pre = saved.preprocessor
    if progress is not None:
        progress(0, 0, f"reading {input_path.name}")
    table = read_inputs(pre, input_path, with_targets=False, delimiter=delimiter, keep=keep)
    pre.check_cells(table)
    X = pre.transform_features(table, None, saved.network.dtype, notes)
    header, columns = prediction_columns(saved, X, progress)
    if progress is not None:
        progress(0, 0, f"writing {len(X):,} predictions")
    kept = list(dict.fromkeys(keep))
    # a kept column named like an output (the target itself, say) leaves the output's
    # name to the kept one
    header = [f"predicted_{h}" if h in kept else h for h in header]
    header = [*kept, *header]
    columns = [kept_text(table.columns[k]) for k in kept] + columns
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(zip(*columns, strict=True))
    if out is None:
        sys.stdout.write(buffer.getvalue())
        sys.stdout.flush()
    else:
        write_text_atomic(out, buffer.getvalue())
    return len(X)


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
    for i in range(0, len(X), BATCH):
        outputs.append(network.forward(X[i : i + BATCH]))
        if progress is not None:
            done = min(i + BATCH, len(X))
            progress(done, len(X), f"computing the outputs: {done:,} of {len(X):,} rows")
    return np.concatenate(outputs)


def prediction_columns(saved: SavedModel, X: np.ndarray, progress: Progress | None = None
                       ) -> tuple[list[str], list[list[str]]]:
    """The header and text columns of the prediction CSV: a column per target, named like
    it, and for a classifier one ``prob_<class>`` column per class."""
    outputs = network_outputs(saved.network, X, progress)
    pre = saved.preprocessor
    if pre.task == "regression":
        values = pre.inverse_target(outputs)
        return list(pre.targets), [[f"{v:.8g}" for v in column] for column in values.T]
    if outputs.shape[1] == 1:  # one sigmoid unit: probability of the second class
        outputs = np.column_stack([1 - outputs[:, 0], outputs[:, 0]])
    labels = np.asarray(pre.classes)[np.argmax(outputs, axis=1)]
    header = [pre.targets[0], *(f"prob_{c}" for c in pre.classes)]
    return header, [list(labels), *([f"{p:.6f}" for p in col] for col in outputs.T)]
