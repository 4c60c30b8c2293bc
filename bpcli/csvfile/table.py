"""What reading a CSV file gives: a ``Table`` of ``Column`` arrays, the cells that did not
read as their column's type, and messages that point into the file."""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from bpcli.csvfile.cells import BLANK, Kind
from bpcli.errors import DataError

SHOWN = 5  # lines and values a message about many cells shows


@dataclass
class Column:
    """One column of a table.

    ``values``: numeric and boolean columns hold floats, NaN where a cell is missing
    (booleans as 0 and 1); categorical columns hold ``int32`` codes into ``categories``
    (the distinct texts, sorted), -1 where a cell is missing.
    """

    kind: Kind
    values: NDArray[Any]
    categories: list[str] = field(default_factory=list)
    #: the memory map holding ``values`` from its start, when it has one of its own
    mapping: mmap.mmap | None = field(default=None, repr=False, compare=False)

    def missing(self) -> NDArray[np.bool_]:
        return self.values < 0 if self.kind == "categorical" else np.isnan(self.values)

    def release_rows(self, stop: int) -> None:
        """Hand the memory of ``values[:stop]`` (whole pages of it) back to the system,
        for a consumer that is done with those rows and goes on with the rest; the
        released rows must not be read again (on Linux they read as zeros). Does nothing
        for a column without a memory map of its own, or where the system cannot do it."""
        if self.mapping is None or not hasattr(self.mapping, "madvise"):
            return
        size = stop * self.values.itemsize // mmap.PAGESIZE * mmap.PAGESIZE
        if size > 0:
            self.mapping.madvise(mmap.MADV_DONTNEED, 0, size)


@dataclass
class Table:
    """The columns read from a CSV file. ``lines[i]`` is the file line where row ``i``
    starts (1 is the header), for messages that point into the file."""

    path: Path
    header: list[str]
    columns: dict[str, Column]
    lines: NDArray[np.integer[Any]]
    delimiter: str = ","
    #: cells that did not read as their column's type (now missing), by column
    bad: dict[str, BadCells] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lines)

    def where(self, row: int, column: str) -> str:
        """``file:line: column 'name'`` for a message about one cell."""
        return f"{self.path}:{self.lines[row]}: column {column!r}"

    def cells(self, rows: NDArray[np.integer[Any]], column: str, what: str, advice: str
              ) -> str:
        """One message about the cells of ``column`` in ``rows`` (table rows, in order):
        located at the first, with how many there are and the lines of the first few."""
        return cells_problem(self.path, column, self.lines[rows[:SHOWN]].tolist(),
                             len(rows), what, advice)

    def problems(self) -> list[str]:
        """A message for each column with cells that did not read as its type."""
        return [bad.message(self, name) for name, bad in self.bad.items()]

    def unreadable(self, column: str) -> NDArray[np.bool_]:
        """Where ``column``'s cells did not read (they are missing now, but not because the
        file left them empty)."""
        out = np.zeros(len(self), dtype=np.bool_)
        if column in self.bad:
            out[self.bad[column].rows()] = True
        return out


def cells_problem(path: Path, column: str, lines: Sequence[int], count: int, what: str,
                  advice: str) -> str:
    """``file:line: column 'c': what (N cells, on lines ...); advice``."""
    more = ""
    if count > 1:
        shown = ", ".join(map(str, lines[:SHOWN])) + (", ..." if count > SHOWN else "")
        more = f" ({count} cells, on lines {shown})"
    return f"{path}:{lines[0]}: column {column!r}: {what}{more}; {advice}"


@dataclass
class BadCells:
    """The cells of one column that did not read as its kind: every row, the first few
    lines and the distinct texts."""

    kind: str  # "numeric", "boolean", or "infinite" for infinite numbers
    chunks: list[NDArray[np.int64]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    values: list[str] = field(default_factory=list)

    def add(self, rows: NDArray[np.int64], lines: NDArray[Any], values: Sequence[str]) -> None:
        self.chunks.append(rows.astype(np.int64))
        self.lines.extend(int(line) for line in lines[: SHOWN - len(self.lines)])
        for value in values:
            if len(self.values) >= SHOWN:
                break
            if value not in self.values:
                self.values.append(value)

    def rows(self) -> NDArray[np.int64]:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int64)

    def message(self, table: Table, name: str) -> str:
        count = sum(len(c) for c in self.chunks)
        if self.kind == "infinite":
            return cells_problem(table.path, name, self.lines, count, "an infinite value",
                                 "replace it with a finite number or leave it empty")
        what = "a number" if self.kind == "numeric" else "true or false"
        first = f"{self.values[0]!r} is not {what}"
        if len(self.values) > 1:
            first += f" (nor {', '.join(map(repr, self.values[1:]))})"
        # words without digits are likely markers of a missing value (?, unknown, -)
        words = [v.strip(BLANK) for v in self.values if not any(c.isdigit() for c in v)]
        markers = (f"; if {'they mark' if len(words) > 1 else 'it marks'} missing cells: "
                   f"data.na_values: [{', '.join(map(repr, words))}] (or "
                   f"data.columns.{name}.na_values)") if words else ""
        return cells_problem(
            table.path, name, self.lines, count, first,
            f"fix the value{'s' if count > 1 else ''}{markers}; or declare the column as "
            f"text: data.columns.{name}.type: categorical")


def missing_columns_error(path: Path, header: Sequence[str], missing: Sequence[str],
                          hint: str) -> DataError:
    from bpcli.config import did_you_mean  # the one place that suggests names

    suggestion = did_you_mean(missing[0], header) if len(missing) == 1 else ""
    plural = "s" if len(missing) > 1 else ""
    return DataError(f"{path}: missing column{plural} {listed(missing)}{suggestion}; it has "
                     f"{listed(header, quote=False)}. {hint}")


def listed(names: Sequence[str], limit: int = 8, quote: bool = True) -> str:
    """Names for a message: the first ``limit``, then how many more."""
    shown = ", ".join(repr(n) if quote else n for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def as_text(column: Column, dtype: DTypeLike = np.str_) -> NDArray[np.str_]:
    """A column's cells as text ('' where missing): labels for classification."""
    if column.kind == "categorical":
        texts = np.array([*column.categories, ""], dtype=dtype)
        return texts[column.values]  # code -1 picks the trailing ''
    values = column.values
    out = np.array([_number_text(v) for v in values.tolist()], dtype=dtype)
    return out


def _number_text(value: float) -> str:
    if value != value:
        return ""
    return str(int(value)) if value == int(value) else repr(value)
