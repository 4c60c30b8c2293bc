"""The target column: which task it makes (classification or regression), labels read as
numbers or text, and a text column of numbers read as numbers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bpcli.csvfile import Column, Table
from bpcli.errors import DataError

# An integer target with at most this many distinct values is taken for class labels.
MAX_INFERRED_CLASSES = 20


def infer_task(column: Column, name: str, table: Table | None = None) -> tuple[str, str]:
    """``(task, reason)``: text labels or a few distinct integers mean classification. A
    column of numbers with a few words among them (at most 5% of the rows) is an error
    at the first word: a typo, which would otherwise turn the task into classification."""
    if column.kind == "numeric":
        distinct = np.unique(column.values[~np.isnan(column.values)])
    else:
        numbers = np.array([is_number(c) for c in column.categories] + [True])
        if not numbers[:-1].all():
            words = ~numbers[column.values]
            if table is not None and numbers[:-1].any() and words.mean() <= 0.05:
                found = np.flatnonzero(words)
                raise DataError(table.cells(
                    found, name, f"{column.categories[column.values[found[0]]]!r} is not a "
                    "number in a column of numbers", "fix it, or set data.task: "
                    "classification if the column holds labels"))
            return "classification", f"target {name!r} holds text labels"
        distinct = np.array([float(c) for c in column.categories])
    if np.all(distinct == np.round(distinct)) and len(distinct) <= MAX_INFERRED_CLASSES:
        return "classification", (f"target {name!r} holds {len(distinct)} distinct "
                                  "integers; set data.task: regression if they are amounts")
    return "regression", f"target {name!r} holds numbers"


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def as_numbers(column: Column, table: Table, name: str) -> Column:
    """A text column of numbers as a numeric column (float64), for regression targets."""
    if column.kind != "categorical":
        return Column("numeric", column.values.astype(np.float64))
    numbers = []
    for i, text in enumerate(column.categories):
        try:
            numbers.append(float(text))
        except ValueError:
            row = int(np.argmax(column.values == i))
            raise DataError(f"{table.where(row, name)}: {text!r} is not a number, and a "
                            "regression target must be; set data.task: classification if "
                            "these are labels") from None
    values = np.append(np.array(numbers, dtype=np.float64), np.nan)[column.values]
    if np.isinf(values).any():
        row = int(np.argmax(np.isinf(values)))
        raise DataError(f"{table.where(row, name)}: an infinite target; replace it")
    return Column("numeric", values)


def sort_labels(labels: Sequence[str]) -> list[str]:
    """Distinct labels, numerically ordered when they are all numbers."""
    distinct = sorted({str(label) for label in labels})
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return distinct
