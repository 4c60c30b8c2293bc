"""bp's models from Python: ``bpcli.load("model.npz").predict(rows)``.

The rows go through exactly what ``bp predict`` does to a CSV file (the same reading rules,
imputation, scaling, encoding and network), so that the two always agree: they are written
to a private CSV file and read back, which costs little next to the network for the sizes
a Python caller passes. Errors are bp's own exceptions (``bpcli.BpError`` and its
subclasses) with the messages the command line prints.
"""

from __future__ import annotations

import csv
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bpcli.errors import BpError, DataError, UsageError
from bpcli.inference import class_probabilities, network_outputs, read_inputs
from bpcli.modelfile import SavedModel, load_model

Rows = Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | Any


def load(path: str | os.PathLike[str]) -> Model:
    """The model in ``path`` (a ``model.npz`` written by ``bp train``)."""
    return Model(load_model(Path(path)))


class Model:
    """A trained bp model: ``predict`` and, for classifiers, ``predict_proba``."""

    def __init__(self, saved: SavedModel) -> None:
        self._saved = saved
        pre = saved.preprocessor
        #: the columns the model reads, in any order (others are ignored)
        self.inputs: list[str] = list(pre.columns)
        #: the column(s) it predicts
        self.targets: list[str] = list(pre.targets)
        #: "classification" or "regression"
        self.task: str = pre.task
        #: the class labels, in the order of ``predict_proba``'s columns (classifiers)
        self.classes: list[str] | None = list(pre.classes) if pre.task == "classification" \
            else None

    def __repr__(self) -> str:
        what = (f"classes {self.classes}" if self.classes is not None
                else f"predicts {', '.join(self.targets)}")
        return f"<bp model: {self.task}, {len(self.inputs)} input columns, {what}>"

    def predict(self, rows: Rows) -> NDArray[Any]:
        """One prediction per row: the class label (classifiers), or the value in the
        target's units, shape (n,) for one target and (n, targets) for several.

        ``rows``: a mapping of column name to values (``{"x": [1, 2], "colour": ["red",
        None]}``), a sequence of mappings (one per row), or a pandas DataFrame. Missing
        values are ``None`` or NaN; they are imputed as the model was trained to."""
        outputs = self._outputs(rows)
        pre = self._saved.preprocessor
        if pre.task == "regression":
            values = pre.inverse_target(outputs)
            return values[:, 0] if values.shape[1] == 1 else values
        return np.asarray(pre.classes, dtype=object)[np.argmax(class_probabilities(outputs),
                                                               axis=1)]

    def predict_proba(self, rows: Rows) -> NDArray[np.float64]:
        """Each row's probability of each class, (n, classes), columns in ``classes``'
        order."""
        if self.classes is None:
            raise UsageError("predict_proba is for classifiers; this model predicts "
                             f"{', '.join(self.targets)} (use predict)")
        return class_probabilities(self._outputs(rows)).astype(np.float64)

    def _outputs(self, rows: Rows) -> NDArray[np.floating]:
        columns = _as_columns(rows)
        saved, pre = self._saved, self._saved.preprocessor
        with tempfile.TemporaryDirectory(prefix="bp-api-") as where:
            path = Path(where) / "rows.csv"
            _write_csv(path, columns, pre.delimiter or ",")
            try:
                table = read_inputs(pre, path, with_targets=False)
                pre.check_cells(table)
                X = pre.transform_features(table, None, saved.network.dtype)
            except BpError as exc:  # said of the rows given, not of bp's private file
                text = re.sub(re.escape(str(path)) + r":(\d+)",
                              lambda m: f"row {int(m.group(1)) - 1}", "\n".join(exc.lines()))
                raise DataError(text.replace(str(path), "rows")) from None
        return network_outputs(saved.network, X)


def _as_columns(rows: Rows) -> dict[str, list[Any]]:
    """Rows in any of ``predict``'s forms as {column: values}."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        rows = rows.to_dict(orient="list")
    if isinstance(rows, Mapping):
        columns = {str(name): list(values) for name, values in rows.items()}
        lengths = {len(values) for values in columns.values()}
        if len(lengths) > 1:
            raise DataError(f"the columns have different lengths ({sorted(lengths)}); give "
                            "every column a value for every row (None where missing)")
        return columns
    if isinstance(rows, Iterable) and not isinstance(rows, (str, bytes)):
        records = list(rows)
        if not all(isinstance(record, Mapping) for record in records):
            raise DataError("rows must be a mapping of column to values, a sequence of "
                            "mappings (one per row) or a pandas DataFrame")
        names = list(dict.fromkeys(str(k) for record in records for k in record))
        return {name: [record.get(name) for record in records] for name in names}
    raise DataError("rows must be a mapping of column to values, a sequence of mappings "
                    f"(one per row) or a pandas DataFrame, not {type(rows).__name__}")


def _write_csv(path: Path, columns: dict[str, list[Any]], delimiter: str) -> None:
    if not columns:
        raise DataError("no columns given")
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(zip(*(map(_cell, values) for values in columns.values()),
                             strict=True))


def _cell(value: Any) -> str:
    """A value as bp reads it from a CSV file: missing is an empty cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)
