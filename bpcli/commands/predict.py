"""``bp predict``: apply a trained model to a CSV file."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bpcli.atomic import write_text_atomic
from bpcli.events import Progress
from bpcli.files import output_path
from bpcli.inference import (
    class_probabilities,
    kept_text,
    network_outputs,
    read_inputs,
    use_unseen,
)
from bpcli.modelfile import SavedModel, load_model
from bpcli.nn.network import INFERENCE_BATCH
from bpcli.threads import CpuMeter, choose_threads, largest_product


def predict(model_path: Path, input_path: Path, out: Path | None,
            notes: list[str] | None = None, progress: Progress | None = None,
            delimiter: str | None = None, keep: Sequence[str] = (),
            unseen: str | None = None, threads: int | None = None) -> int:
    """Write predictions for every row of ``input_path`` to ``out`` (standard output when
    ``None`` or ``-``); return the number of rows. The ``keep`` columns of the input come
    first in the output, as they are; the ``delimiter`` overrides the model's and
    detection."""
    if out is not None:
        out = output_path(out, model_path, input_path)
    meter = CpuMeter() if threads is None else None  # its reading spans the loading
    saved = load_model(model_path)
    pre = saved.preprocessor
    use_unseen(pre, unseen)
    if progress is not None:
        progress(0, 0, f"reading {input_path.name}")
    table = read_inputs(pre, input_path, with_targets=False, delimiter=delimiter, keep=keep)
    pre.check_cells(table)
    X = pre.transform_features(table, None, saved.network.dtype, notes)
    if meter is not None:  # as bp train chooses, for this network's inference batches
        choose_threads(meter, largest_product(saved.network.layers, min(len(X),
                                                                        INFERENCE_BATCH)))
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


def prediction_columns(saved: SavedModel, X: np.ndarray, progress: Progress | None = None
                       ) -> tuple[list[str], list[list[str]]]:
    """The header and text columns of the prediction CSV: a column per target, named like
    it, and for a classifier one ``prob_<class>`` column per class."""
    outputs = network_outputs(saved.network, X, progress)
    pre = saved.preprocessor
    if pre.task == "regression":
        values = pre.inverse_target(outputs)
        return list(pre.targets), [[f"{v:.8g}" for v in column] for column in values.T]
    outputs = class_probabilities(outputs)
    labels = np.asarray(pre.classes)[np.argmax(outputs, axis=1)]
    header = [pre.targets[0], *(f"prob_{c}" for c in pre.classes)]
    return header, [list(labels), *([f"{p:.6f}" for p in col] for col in outputs.T)]
