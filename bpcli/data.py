"""Reading CSV files into tables, and the preprocessing that turns them into arrays.

The ``Preprocessor`` is fitted on the training split only and travels inside the model
file, so that ``bp predict`` applies exactly what training applied.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bpcli.errors import DataError

MISSING = frozenset({"", "na", "nan", "null", "none", "n/a"})
# An integer target with at most this many distinct values is taken for class labels.
MAX_INFERRED_CLASSES = 20


@dataclass
class Table:
    """A CSV file as text columns. ``lines[i]`` is the file line where row ``i`` starts."""

    path: Path
    columns: list[str]
    cells: dict[str, NDArray[np.str_]]
    lines: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.lines)

    def take(self, index: NDArray[np.intp]) -> Table:
        return Table(self.path, self.columns, {k: v[index] for k, v in self.cells.items()},
                     self.lines[index])

    def require(self, names: list[str], hint: str) -> None:
        missing = [n for n in names if n not in self.cells]
        if missing:
            raise DataError(
                f"{self.path}: missing column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(m) for m in missing)}; it has {', '.join(self.columns)}. {hint}"
            )

    def numbers(self, column: str) -> NDArray[np.float64]:
        """A column as float64, or a ``DataError`` naming the first bad cell."""
        values = self.cells[column]
        try:
            parsed = values.astype(np.float64)
        except ValueError:
            parsed = None
        if parsed is not None and np.isfinite(parsed).all():
            return parsed
        for i, text in enumerate(values.tolist()):
            where = f"{self.path}:{self.lines[i]}: column {column!r}"
            if text.strip().lower() in MISSING:
                raise DataError(f"{where}: missing value; bp does not impute yet: fill it in "
                                "or remove the row")
            try:
                value = float(text)
            except ValueError:
                raise DataError(f"{where}: {text!r} is not a number; fix the value or leave "
                                "the column out with data.features") from None
            if not np.isfinite(value):
                raise DataError(f"{where}: {text!r} is not a finite number")
        raise AssertionError("unreachable: a bad value was detected but not found")


def read_csv(path: Path) -> Table:
    """Read a CSV file with a header row; every data row must have the header's width."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: the file is empty; it needs a header row and data")
            header = [h.strip() for h in header]
            _check_header(path, header)
            rows: list[list[str]] = []
            lines: list[int] = []
            start = reader.line_num + 1
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    start = reader.line_num + 1
                    continue  # blank line
                if len(row) != len(header):
                    raise DataError(
                        f"{path}:{start}: {len(row)} fields where the header has "
                        f"{len(header)}; check for a stray or missing delimiter"
                    )
                rows.append(row)
                lines.append(start)
                start = reader.line_num + 1
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save it as UTF-8 CSV") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not valid CSV: {exc}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    if not rows:
        raise DataError(f"{path}: no data rows below the header")
    columns = np.array(rows, dtype=np.str_).T if rows else np.empty((len(header), 0), np.str_)
    cells = {name: columns[j].copy() for j, name in enumerate(header)}
    return Table(path, header, cells, np.array(lines, dtype=np.int64))


def _check_header(path: Path, header: list[str]) -> None:
    seen: set[str] = set()
    for j, name in enumerate(header, start=1):
        if not name:
            raise DataError(f"{path}:1: column {j} has no name; every column needs a header")
        if name in seen:
            raise DataError(f"{path}:1: column name {name!r} appears twice; rename one")
        seen.add(name)


def infer_task(table: Table, target: str) -> tuple[str, str]:
    """``(task, reason)``: text labels or a few distinct integers mean classification."""
    values = table.cells[target]
    try:
        numbers = values.astype(np.float64)
    except ValueError:
        return "classification", f"target {target!r} holds text labels"
    distinct = np.unique(numbers)
    if np.all(distinct == np.round(distinct)) and len(distinct) <= MAX_INFERRED_CLASSES:
        return "classification", (f"target {target!r} holds {len(distinct)} distinct "
                                  "integers; set data.task: regression if they are amounts")
    return "regression", f"target {target!r} holds numbers"


def sort_labels(labels: NDArray[np.str_]) -> list[str]:
    """Distinct labels, numerically ordered when they are all numbers."""
    distinct = [str(label) for label in np.unique(labels)]
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return sorted(distinct)


def split_indices(
    n: int, fraction: float, seed: int, labels: NDArray[np.str_] | None
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Seeded train/validation index split; stratified by ``labels`` when given."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c)
                                                    for c in np.unique(labels)]
    train: list[NDArray[np.intp]] = []
    val: list[NDArray[np.intp]] = []
    for group in groups:
        group = rng.permutation(group)
        n_val = int(round(len(group) * fraction))
        if len(group) >= 2:
            n_val = min(max(n_val, 1), len(group) - 1)
        val.append(group[:n_val])
        train.append(group[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


@dataclass
class Preprocessor:
    """Feature standardisation and target encoding, fitted on training data.

    Features: ``x' = (x - mean) / scale`` per column. Classification targets become class
    indices into ``classes``; regression targets are standardised the same way as features
    and mapped back for reporting and prediction.
    """

    features: list[str]
    target: str
    task: str
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    classes: list[str]
    target_mean: NDArray[np.float64]
    target_scale: NDArray[np.float64]

    @classmethod
    def fit(cls, table: Table, features: list[str], target: str, task: str) -> Preprocessor:
        X = np.column_stack([table.numbers(c) for c in features])
        classes: list[str] = []
        target_mean = target_scale = np.zeros(0)
        if task == "classification":
            classes = sort_labels(table.cells[target])
        else:
            y = table.numbers(target)
            target_mean, target_scale = np.array([y.mean()]), _safe_std(y)
        return cls(features, target, task, X.mean(axis=0), _safe_std(X), classes,
                   target_mean, target_scale)

    def transform_features(self, table: Table, dtype: type = np.float32) -> NDArray:
        table.require(self.features, "The model was trained with these feature columns.")
        X = np.column_stack([table.numbers(c) for c in self.features])
        return ((X - self.mean) / self.scale).astype(dtype)

    def transform_target(self, table: Table, one_column: bool, dtype: type = np.float32) -> NDArray:
        """Class indices (n,), or with ``one_column`` a (n, 1) 0/1 column for a sigmoid
        output; regression: standardised values (n, 1)."""
        if self.task == "regression":
            y = (table.numbers(self.target) - self.target_mean) / self.target_scale
            return y.reshape(-1, 1).astype(dtype)
        labels = table.cells[self.target]
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = [(i, v) for i, v in enumerate(labels.tolist()) if v not in index]
        if unknown:
            i, value = unknown[0]
            raise DataError(
                f"{table.path}:{table.lines[i]}: column {self.target!r}: label {value!r} was "
                f"not in the training data (classes: {', '.join(self.classes)})"
            )
        codes = np.array([index[v] for v in labels], dtype=np.int64)
        return codes.reshape(-1, 1).astype(dtype) if one_column else codes

    def inverse_target(self, Y: NDArray) -> NDArray[np.float64]:
        """Standardised regression outputs back to the target's units."""
        return np.asarray(Y, dtype=np.float64) * self.target_scale + self.target_mean

    def to_arrays(self) -> dict[str, NDArray]:
        return {
            "features": np.array(self.features, dtype=np.str_),
            "mean": self.mean,
            "scale": self.scale,
            "classes": np.array(self.classes, dtype=np.str_),
            "target_mean": self.target_mean,
            "target_scale": self.target_scale,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray], target: str, task: str) -> Preprocessor:
        return cls(
            features=[str(f) for f in arrays["features"]],
            target=target,
            task=task,
            mean=np.asarray(arrays["mean"], dtype=np.float64),
            scale=np.asarray(arrays["scale"], dtype=np.float64),
            classes=[str(c) for c in arrays["classes"]],
            target_mean=np.asarray(arrays["target_mean"], dtype=np.float64),
            target_scale=np.asarray(arrays["target_scale"], dtype=np.float64),
        )


def _safe_std(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Standard deviation per column, with 1 where a column is constant."""
    std = np.atleast_1d(X.std(axis=0))
    std[std == 0] = 1.0
    return std
