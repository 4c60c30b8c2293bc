"""``bp predict``: apply a trained model to a CSV file."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np

from bpcli.atomic import write_text_atomic
from bpcli.data import read_csv
from bpcli.modelfile import SavedModel, load_model

BATCH = 8192


def predict(model_path: Path, input_path: Path, out: Path | None) -> int:
    """Write predictions for every row of ``input_path``; return the number of rows."""
    saved = load_model(model_path)
    table = read_csv(input_path)
    X = saved.preprocessor.transform_features(table, saved.network.dtype.type)
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


def prediction_columns(saved: SavedModel, X: np.ndarray) -> tuple[list[str], list[list[str]]]:
    """The header and text columns of the prediction CSV."""
    outputs = np.concatenate([saved.network.forward(X[i : i + BATCH])
                              for i in range(0, max(len(X), 1), BATCH)])
    pre = saved.preprocessor
    if pre.task == "regression":
        values = pre.inverse_target(outputs)[:, 0]
        return ["prediction"], [[f"{v:.8g}" for v in values]]
    if outputs.shape[1] == 1:  # one sigmoid unit: probability of the second class
        outputs = np.column_stack([1 - outputs[:, 0], outputs[:, 0]])
    labels = np.asarray(pre.classes)[np.argmax(outputs, axis=1)]
    header = ["prediction", *(f"prob_{c}" for c in pre.classes)]
    return header, [list(labels), *([f"{p:.6f}" for p in col] for col in outputs.T)]
