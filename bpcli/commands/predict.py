"""``bp predict``: apply a trained model to a CSV file."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bpcli.atomic import write_text_atomic
from bpcli.csvfile import Kind, Table, listed, read_csv
from bpcli.data import Preprocessor
from bpcli.errors import DataError
from bpcli.modelfile import SavedModel, load_model
from bpcli.nn import Network

BATCH = 8192


def predict(model_path: Path, input_path: Path, out: Path | None,
            notes: list[str] | None = None) -> int:
    """Write predictions for every row of ``input_path``; return the number of rows."""
    if out is not None and out.exists() and out.resolve() == input_path.resolve():
        raise DataError(f"{out}: is the input file; write the predictions to another file")
    saved = load_model(model_path)
    table = read_inputs(saved.preprocessor, input_path, with_targets=False)
    X = saved.preprocessor.transform_features(table, None, saved.network.dtype, notes)
    header, columns = prediction_columns(saved, X)
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


def read_inputs(pre: Preprocessor, path: Path, with_targets: bool) -> Table:
    """The columns the model reads (and its targets), typed as in training; other columns
    are ignored and their order does not matter."""
    kinds: dict[str, Kind] = pre.kinds
    columns = pre.columns
    if with_targets:
        columns = [*columns, *pre.targets]
        kind: Kind = "numeric" if pre.task == "regression" else "categorical"
        kinds.update(dict.fromkeys(pre.targets, kind))
    na_values = {c.name: c.na_values for c in pre.inputs}
    return read_csv(path, columns, kinds=kinds, float64=pre.targets, delimiter=pre.delimiter,
                    na_values=na_values, hint=f"The model reads {listed(columns, quote=False)} "
                    "(in any order; other columns are ignored).")


def network_outputs(network: Network, X: NDArray[np.floating]) -> NDArray[np.floating]:
    """The network's outputs in inference mode, in batches (bounded memory)."""
    if not len(X):
        return np.zeros((0, *network.output_shape), dtype=network.dtype)
    return np.concatenate([network.forward(X[i : i + BATCH])
                           for i in range(0, len(X), BATCH)])


def prediction_columns(saved: SavedModel, X: np.ndarray) -> tuple[list[str], list[list[str]]]:
    """The header and text columns of the prediction CSV."""
    outputs = network_outputs(saved.network, X)
    pre = saved.preprocessor
    if pre.task == "regression":
        values = pre.inverse_target(outputs)
        header = (["prediction"] if len(pre.targets) == 1
                  else [f"prediction_{t}" for t in pre.targets])
        return header, [[f"{v:.8g}" for v in column] for column in values.T]
    if outputs.shape[1] == 1:  # one sigmoid unit: probability of the second class
        outputs = np.column_stack([1 - outputs[:, 0], outputs[:, 0]])
    labels = np.asarray(pre.classes)[np.argmax(outputs, axis=1)]
    header = ["prediction", *(f"prob_{c}" for c in pre.classes)]
    return header, [list(labels), *([f"{p:.6f}" for p in col] for col in outputs.T)]
