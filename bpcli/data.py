"""From CSV columns to training arrays: imputation, scaling, one-hot encoding, targets.

The ``Preprocessor`` is fitted on the training rows only and travels inside the model
file (JSON settings plus plain arrays, no pickles), so that ``bp predict`` applies
exactly what training applied: the same fills, scales, vocabularies and class order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from bpcli.csvfile import DELIMITERS, SHOWN, Column, Kind, Table, cells_problem, listed
from bpcli.dates import DATE_FEATURES, EPOCH, date_features, features_of, parse_date
from bpcli.errors import DataError, DataProblems
from bpcli.targets import is_number, sort_labels
from bpcli.text import EncodedTexts, TextSpec

# A text column with more distinct values than this makes a warning: one input per value.
MANY_CATEGORIES = 1000
# A text column is taken for an identifier (and left out) when at least this share of its
# cells are distinct, and there are more than ID_MIN_VALUES of them.
ID_SHARE = 0.9
ID_MIN_VALUES = 20
OTHER = "<other>"  # the name of the one-hot input shared by rare and unseen values

Rows = NDArray[np.intp] | None  # row indices into a table; None means every row
Block = NDArray[np.intp] | slice  # rows encoded together: indices, or a run of rows
BLOCK_ROWS = 8192  # rows encoded together: their part of the output stays in cache
BLOCK_BYTES = 4 << 20  # ... and at most about this much of it


@dataclass
class InputColumn:
    """One CSV column the model reads, with what was fitted on the training rows."""

    name: str
    kind: str  # numeric | boolean | categorical | date | text
    scaling: str = "standard"  # numeric and boolean columns: standard, minmax, none, fixed
    missing: str = "error"  # error | mean | median | most_frequent | constant
    fill: float | str | None = None  # the value that replaces a missing cell
    unseen: str = "error"  # categorical: other | error | zeros
    categories: list[str] = field(default_factory=list)  # categorical vocabulary
    scale_by: float | None = None  # scaling "fixed": x / scale_by
    na_values: list[str] = field(default_factory=list)  # texts of a missing cell
    #: categorical: a last one-hot input shared by the values rare in training (and unseen
    #: ones, with unseen "other")
    other: bool = False
    fold_case: bool = False  # categorical: values compared in lower case, spaces collapsed
    # fitting settings (not saved): the vocabulary's size and its values' least count
    max_categories: int | None = field(default=None, repr=False)
    min_frequency: int = field(default=1, repr=False)
    #: values of the training rows that went to the "other" input (not saved: at predict
    #: time they count as outside the vocabulary, like unseen ones)
    grouped: set[str] = field(default_factory=set, repr=False, compare=False)
    date_format: str | None = None  # date: strftime codes, or None for the usual forms
    day_first: bool = True  # date: 03/01/2012 is the 3rd of January
    text: TextSpec | None = None  # text: tokenising, encoding and the fitted vocabulary

    @property
    def width(self) -> int:
        if self.text is not None:
            return self.text.width
        if self.kind == "date":
            return len(DATE_FEATURES)
        return len(self.categories) + self.other if self.kind == "categorical" else 1

    def input_names(self) -> list[str]:
        if self.text is not None:
            return self.text.input_names(self.name)
        if self.kind == "categorical":
            return [f"{self.name}={c}" for c in [*self.categories, *[OTHER] * self.other]]
        if self.kind == "date":
            return [f"{self.name}:{f}" for f in DATE_FEATURES]
        return [self.name]

    def date_table(self, column: Column) -> NDArray[np.float64]:
        """A date column's raw inputs per distinct text of ``column``, (texts + 1, 8),
        with a last row of NaN for code -1 (missing); NaN where a text is not a date."""
        return features_of([parse_date(text, self.date_format, self.day_first)
                            for text in column.categories] + [None])

    def key(self, text: str) -> str:
        """The value a cell's text stands for (folded when ``fold_case``)."""
        return " ".join(text.split()).lower() if self.fold_case else text

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "missing": self.missing,
                                "fill": self.fill}
        if self.kind == "categorical":
            data.update(unseen=self.unseen, categories=self.categories, other=self.other,
                        fold_case=self.fold_case)
        elif self.kind == "date":
            data.update(scaling=self.scaling, date_format=self.date_format,
                        day_first=self.day_first)
        elif self.text is not None:
            data["text"] = self.text.to_json()
        else:
            data["scaling"] = self.scaling
            if self.scaling == "fixed":
                data["scale_by"] = self.scale_by
        data["na_values"] = self.na_values
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputColumn:
        known = {"name", "kind", "missing", "fill", "unseen", "categories", "scaling",
                 "scale_by", "na_values", "other", "fold_case", "date_format", "day_first"}
        column = cls(**{k: v for k, v in data.items() if k in known})
        if column.kind == "text":
            column.text = TextSpec.from_json(data["text"])
        return column


@dataclass
class Preprocessor:
    """Column encodings and target encoding, fitted on the training rows.

    Network input ``j`` is ``(raw_j - mean[j]) / scale[j]`` where ``raw_j`` is a numeric
    column's value (missing ones filled) or a 0/1 one-hot indicator (mean 0, scale 1).
    Classification targets become indices into ``classes``; regression targets are
    ``(y - target_mean) / target_scale`` for training and mapped back for every report.
    """

    inputs: list[InputColumn]
    targets: list[str]
    task: str
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    classes: list[str] = field(default_factory=list)
    target_mean: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    target_scale: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    #: the delimiter the config set (None: detected in every file read)
    delimiter: str | None = None
    #: texts that mark a missing cell in every column (config data.na_values): the
    #: targets' markers when bp evaluate reads them
    na_values: list[str] = field(default_factory=list)
    #: the raw inputs of each date column's texts, for the table being encoded
    _dates: dict[str, NDArray[np.float64]] = field(default_factory=dict, init=False,
                                                   repr=False, compare=False)
    #: ... and each text column's
    _texts: dict[str, EncodedTexts] = field(default_factory=dict, init=False, repr=False,
                                            compare=False)

    @property
    def columns(self) -> list[str]:
        """The CSV columns the model reads."""
        return [c.name for c in self.inputs]

    @property
    def features(self) -> list[str]:
        """One name per network input (``colour=red`` for one-hot inputs)."""
        return [name for column in self.inputs for name in column.input_names()]

    @property
    def kinds(self) -> dict[str, Kind]:
        """How the input columns are read (dates and free text as text)."""
        return {c.name: "categorical" if c.kind in ("date", "text")
                else c.kind  # type: ignore[misc]
                for c in self.inputs}

    # -- fitting --------------------------------------------------------------------
    @classmethod
    def fit(cls, table: Table, rows: Rows, inputs: list[InputColumn], targets: list[str],
            task: str, scale_target: bool = True) -> Preprocessor:
        """Fit fills, scales and vocabularies on ``rows`` of ``table`` (``inputs`` carry the
        settings; their fitted fields are filled in)."""
        means: list[NDArray[np.float64]] = []
        scales: list[NDArray[np.float64]] = []
        for spec in inputs:
            column = table.columns[spec.name]
            if spec.kind == "categorical":
                _fit_categorical(table, rows, spec, column)
                means.append(np.zeros(spec.width))
                scales.append(np.ones(spec.width))
            elif spec.text is not None:
                codes = _take(column.values, rows)
                weights = np.bincount(codes[codes >= 0], minlength=len(column.categories))
                spec.text.fit(column.categories, weights)
                if not spec.text.vocabulary:
                    raise DataError(
                        f"{table.path}: column {spec.name!r}: no token of the training rows "
                        f"matches the token pattern {spec.text.token_pattern!r} (and "
                        f"min_count {spec.text.min_count}); is it text? If so, set "
                        f"data.columns.{spec.name}.token_pattern")
                means.append(np.zeros(spec.width))
                scales.append(np.ones(spec.width))
            elif spec.kind == "date":
                filled = _fit_date_fill(table, rows, spec, column)
                fitted = [_fit_scaling(v, spec.scaling, None) for v in filled.T]
                means.append(np.array([m for m, _ in fitted]))
                scales.append(np.array([s for _, s in fitted]))
            else:
                values = _fit_numeric_fill(table, rows, spec, column)
                mean, scale = _fit_scaling(values, spec.scaling, spec.scale_by)
                means.append(np.array([mean]))
                scales.append(np.array([scale]))
        pre = cls(inputs, list(targets), task, np.concatenate(means), np.concatenate(scales))
        if task == "classification":
            labels = table.columns[targets[0]]
            present = np.unique(_take(labels.values, rows))
            pre.classes = sort_labels([labels.categories[c] for c in present if c >= 0])
        else:
            Y = pre.target_values(table, rows)
            if scale_target:
                pre.target_mean, pre.target_scale = Y.mean(axis=0), _safe_std(Y)
            else:
                pre.target_mean, pre.target_scale = np.zeros(Y.shape[1]), np.ones(Y.shape[1])
        return pre

    # -- transforming ---------------------------------------------------------------
    def transform_features(self, table: Table, rows: Rows = None,
                           dtype: DTypeLike = np.float32,
                           notes: list[str] | None = None) -> NDArray[np.floating]:
        """The network inputs for ``rows`` of ``table``; rows whose category was never seen
        in training are counted into ``notes`` when they are encoded as zeros."""
        return self.transform_parts(table, [rows], dtype, notes)[0]

    def transform_parts(self, table: Table, parts: Sequence[Rows],
                        dtype: DTypeLike = np.float32, notes: list[str] | None = None,
                        release: bool = False) -> list[NDArray[np.floating]]:
        """``transform_features`` for several row sets at once; with ``release`` the input
        columns leave ``table`` afterwards.

        When the parts split the whole table (train, validation and test rows of one file),
        the rows are encoded in file order, a cache-sized block at a time from contiguous
        slices of the columns, and each block's rows are copied out to their parts; other
        row sets are gathered block by block."""
        outputs = [np.empty((len(table) if rows is None else len(rows), len(self.mean)), dtype)
                   for rows in parts]
        unseen: dict[str, _Unseen] = {}
        self._dates = {spec.name: spec.date_table(table.columns[spec.name])
                       for spec in self.inputs if spec.kind == "date"}
        self._texts = {spec.name: spec.text.encode_texts(table.columns[spec.name].categories)
                       for spec in self.inputs if spec.text is not None}
        owner = _owner(len(table), parts)
        step = _block_rows(len(self.mean) * np.dtype(dtype).itemsize)
        if owner is not None:
            filled = [0] * len(parts)
            released = 0
            column_bytes = sum(table.columns[spec.name].values.itemsize for spec in self.inputs)
            block = np.empty((min(step, len(table)), len(self.mean)), dtype)
            for start in range(0, len(table), step):
                stop = min(len(table), start + step)
                encoded = block[: stop - start]
                self._encode(table, slice(start, stop), encoded, unseen)
                for k, X in enumerate(outputs):
                    mine = owner[start:stop] == k
                    count = int(np.count_nonzero(mine))
                    np.compress(mine, encoded, axis=0, out=X[filled[k]:filled[k] + count])
                    filled[k] += count
                # the outputs grow as the columns shrink, a few megabytes at a time (one
                # system call per column each time)
                if release and (stop - released) * column_bytes >= BLOCK_BYTES:
                    for spec in self.inputs:
                        table.columns[spec.name].release_rows(stop)
                    released = stop
        else:
            for rows, X in zip(parts, outputs, strict=True):
                for start in range(0, len(X), step):
                    stop = min(len(X), start + step)
                    chosen = slice(start, stop) if rows is None else rows[start:stop]
                    self._encode(table, chosen, X[start:stop], unseen)
        if notes is not None:
            notes.extend(f"{table.path}: {u.rows} row{'s' if u.rows > 1 else ''} with a "
                         f"{name!r} " + ("value outside the model's vocabulary (rare in "
                                         "training, or new)" if u.encoding != "all zeros"
                                         else "category not seen in training")
                         + f" (first: {u.value!r} on line {u.line}); encoded as {u.encoding}"
                         for name, u in unseen.items())
        if release:
            for spec in self.inputs:
                del table.columns[spec.name]
        return outputs

    def _encode(self, table: Table, rows: Block, out: NDArray[np.floating],
                unseen: dict[str, _Unseen]) -> None:
        """The network inputs of ``rows`` (a slice or row indices) into ``out``."""
        j = 0
        run: list[InputColumn] = []  # numeric and boolean columns side by side, from j - len
        for spec in self.inputs:
            if spec.kind in ("numeric", "boolean"):
                run.append(spec)
                j += 1
                continue
            self._scaled(table, rows, run, j - len(run), out[:, j - len(run):j])
            run = []
            column = table.columns[spec.name]
            if spec.kind == "categorical":
                self._one_hot(table, rows, spec, column, unseen, out[:, j:j + spec.width])
            elif spec.kind == "text":
                self._texts[spec.name].write(column.values[rows], out[:, j:j + spec.width])
            else:
                self._date(table, rows, spec, column, j, out[:, j:j + spec.width])
            j += spec.width
        self._scaled(table, rows, run, j - len(run), out[:, j - len(run):j])

    def _scaled(self, table: Table, rows: Block, specs: list[InputColumn], j: int,
                out: NDArray[np.floating]) -> None:
        """Numeric columns side by side (inputs ``j`` on), encoded together: each column
        is copied into a row of a buffer (contiguous), filled and scaled there with one
        operation for them all, and the buffer transposed into ``out`` (a wide file has
        hundreds of such columns, and writing each down a column of ``out`` would touch
        every cache line of it once per column)."""
        if not specs:
            return
        dtype = out.dtype
        buffer = np.empty((len(specs), len(out)), dtype)
        for i, spec in enumerate(specs):
            buffer[i] = table.columns[spec.name].values[rows]
        missing = np.isnan(buffer)
        if missing.any():
            for k in np.flatnonzero(missing.any(axis=1)).tolist():
                _check_fillable(table, rows, specs[k], missing[k])
                assert isinstance(specs[k].fill, float)
                buffer[k, missing[k]] = dtype.type(specs[k].fill)
        # (value - mean) / scale in the output's precision, as the model file documents
        np.subtract(buffer, self.mean[j:j + len(specs), None].astype(dtype), out=buffer)
        np.divide(buffer, self.scale[j:j + len(specs), None].astype(dtype), out=buffer)
        out[...] = buffer.T

    def _date(self, table: Table, rows: Block, spec: InputColumn, column: Column, j: int,
              out: NDArray[np.floating]) -> None:
        values = self._dates[spec.name][column.values[rows]]
        missing = np.isnan(values[:, 0])
        if missing.any():  # a text that is not a date is reported before encoding
            _check_fillable(table, rows, spec, missing)
            values[missing] = _date_fill(spec)
        mean = self.mean[j:j + spec.width].astype(out.dtype)
        scale = self.scale[j:j + spec.width].astype(out.dtype)
        np.subtract(values.astype(out.dtype), mean, out=out)
        np.divide(out, scale, out=out)

    def _one_hot(self, table: Table, rows: Block, spec: InputColumn,
                 column: Column, unseen_rows: dict[str, _Unseen],
                 out: NDArray[np.floating]) -> None:
        vocabulary = {c: i for i, c in enumerate(spec.categories)}
        other = len(spec.categories) if spec.other else -1
        # this file's codes -> the model's vocabulary (-1: unseen, -3: grouped into other
        # in training), with -2 (missing) last
        keys = [spec.key(c) for c in column.categories]
        lookup = np.array([vocabulary.get(k, -3 if k in spec.grouped else -1) for k in keys]
                          + [-2], dtype=np.int64)
        codes = column.values[rows]
        index = lookup[codes]
        missing = index == -2
        if missing.any():
            _check_fillable(table, rows, spec, missing)
            index[missing] = vocabulary.get(spec.key(str(spec.fill)), other)
        index[index == -3] = other
        unseen = np.flatnonzero(index == -1)
        if len(unseen):
            first = int(unseen[0])
            row = _row(rows, first)
            value = column.categories[codes[first]]
            if spec.unseen == "error":
                raise DataError(
                    f"{table.where(row, spec.name)}: category {value!r} was not in the "
                    f"training data ({listed(spec.categories)}); fix the value, or train "
                    f"the model with data.columns.{spec.name}.unseen: other (such values "
                    "then share an 'other' input)")
            found = unseen_rows.setdefault(spec.name, _Unseen(
                0, str(value), int(table.lines[row]),
                f"{spec.name}={OTHER}" if spec.unseen == "other" and spec.other
                else "all zeros"))
            found.rows += len(unseen)
            if spec.unseen == "other":
                index[unseen] = other
        out[...] = 0
        seen = index >= 0
        out[np.flatnonzero(seen), index[seen]] = 1

    def target_values(self, table: Table, rows: Rows = None) -> NDArray[np.float64]:
        """Regression targets in their own units, (n, targets); missing ones are errors."""
        columns = []
        for name in self.targets:
            values = _take(table.columns[name].values, rows).astype(np.float64)
            missing = np.flatnonzero(np.isnan(values))
            if len(missing):
                row = int(missing[0]) if rows is None else int(rows[missing[0]])
                raise DataError(f"{table.where(row, name)}: the target is missing; fill it "
                                "in or remove the row")
            columns.append(values)
        return np.column_stack(columns)

    def transform_target(self, table: Table, rows: Rows = None, one_column: bool = False,
                         dtype: DTypeLike = np.float32) -> NDArray[Any]:
        """Class indices (n,), or with ``one_column`` a (n, 1) 0/1 column for a sigmoid
        output; regression: scaled targets (n, targets)."""
        if self.task == "regression":
            Y = (self.target_values(table, rows) - self.target_mean) / self.target_scale
            return Y.astype(dtype)
        codes = self.class_indices(table, rows)
        return codes.reshape(-1, 1).astype(dtype) if one_column else codes

    def class_indices(self, table: Table, rows: Rows = None) -> NDArray[np.int64]:
        """Each row's class, its label compared as the classes were: numbers by value
        when every class is a number (``1.0`` is class ``1``), texts exactly."""
        name = self.targets[0]
        column = table.columns[name]
        index = {c: i for i, c in enumerate(self.classes)}
        by_value = {float(c): i for i, c in enumerate(self.classes)} \
            if all(is_number(c) for c in self.classes) else {}

        def find(label: str) -> int:
            if label in index:
                return index[label]
            return by_value.get(float(label), -1) if by_value and is_number(label) else -1

        lookup = np.array([find(c) for c in column.categories] + [-2], np.int64)
        codes = lookup[_take(column.values, rows)]
        bad = np.flatnonzero(codes < 0)
        if len(bad):
            row = int(bad[0]) if rows is None else int(rows[bad[0]])
            if codes[bad[0]] == -2:
                raise DataError(f"{table.where(row, name)}: the target is missing; fill it in "
                                "or remove the row")
            value = column.categories[_take(column.values, rows)[bad[0]]]
            raise DataError(f"{table.where(row, name)}: label {value!r} was not in the "
                            f"training data (classes: {', '.join(self.classes)})")
        return codes

    def check_cells(self, table: Table, rows: Rows = None) -> None:
        """Every input column's missing cells that nothing fills, and texts that are not
        dates in a date column, as one ``DataProblems`` (rather than the first one met
        while encoding)."""
        problems = [problem for spec in self.inputs
                    for problem in cell_problems(table, spec, rows)]
        if problems:
            raise DataProblems(problems, str(table.path))

    def labelled(self, table: Table) -> NDArray[np.intp] | None:
        """The rows whose targets are all present; None when that is every row."""
        present = np.ones(len(table), dtype=np.bool_)
        for name in self.targets:
            present &= ~table.columns[name].missing()
        return None if present.all() else np.flatnonzero(present)

    def inverse_target(self, Y: NDArray[Any]) -> NDArray[np.float64]:
        """Scaled regression outputs back to the targets' units."""
        return np.asarray(Y, dtype=np.float64) * self.target_scale + self.target_mean

    # -- the model file -------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"inputs": [c.to_json() for c in self.inputs], "targets": self.targets,
                "task": self.task, "delimiter": self.delimiter, "na_values": self.na_values}

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        return {
            "features": np.array(self.features, dtype=np.str_),
            "mean": self.mean,
            "scale": self.scale,
            "classes": np.array(self.classes, dtype=np.str_),
            "target_mean": self.target_mean,
            "target_scale": self.target_scale,
        }

    @classmethod
    def from_saved(cls, settings: dict[str, Any], arrays: dict[str, NDArray[Any]]
                   ) -> Preprocessor:
        pre = cls(
            inputs=[InputColumn.from_json(c) for c in settings["inputs"]],
            targets=[str(t) for t in settings["targets"]],
            task=str(settings["task"]),
            mean=np.asarray(arrays["mean"], dtype=np.float64),
            scale=np.asarray(arrays["scale"], dtype=np.float64),
            classes=[str(c) for c in arrays["classes"]],
            target_mean=np.asarray(arrays["target_mean"], dtype=np.float64),
            target_scale=np.asarray(arrays["target_scale"], dtype=np.float64),
            delimiter=settings.get("delimiter"),
            na_values=[str(t) for t in settings.get("na_values", [])],
        )
        if pre.delimiter not in (None, *DELIMITERS):
            raise ValueError(f"delimiter {pre.delimiter!r} is none of "
                             f"{', '.join(map(repr, DELIMITERS))}")
        if [str(f) for f in arrays["features"]] != pre.features:
            raise ValueError("the feature names do not match the column settings")
        return pre


@dataclass
class _Unseen:
    """Rows with a category not seen in training: how many, and the first one."""

    rows: int
    value: str
    line: int
    encoding: str  # what they became


# -- fitting helpers -----------------------------------------------------------------------
def _take(values: NDArray[Any], rows: Rows) -> NDArray[Any]:
    return values if rows is None else values[rows]


def _row(rows: Rows | Block, i: int) -> int:
    """The table row of the ``i``-th of ``rows``."""
    if rows is None:
        return i
    if isinstance(rows, slice):
        return (rows.start or 0) + i
    return int(rows[i])


def _block_rows(row_bytes: int) -> int:
    """Rows encoded together: ``BLOCK_ROWS``, fewer for wide rows so that a block stays
    within a few megabytes (of cache)."""
    return max(256, min(BLOCK_ROWS, BLOCK_BYTES // max(1, row_bytes)))


def _owner(n: int, parts: Sequence[Rows]) -> NDArray[np.int8] | None:
    """The part each of ``n`` rows belongs to, when the parts are disjoint and together
    hold every row in order (train, validation and test of one file); otherwise None
    (one part is encoded straight into its output)."""
    if not 1 < len(parts) < 100 or sum(n if rows is None else len(rows) for rows in parts) != n:
        return None
    owner = np.full(n, -1, dtype=np.int8)
    for k, rows in enumerate(parts):
        if rows is not None and len(rows) > 1 and np.any(np.diff(rows) <= 0):
            return None  # not in file order: the outputs keep the order given
        owner[slice(None) if rows is None else rows] = k
    return owner if not np.any(owner < 0) else None


def _check_fillable(table: Table, rows: Rows | Block, spec: InputColumn,
                    missing: NDArray[np.bool_]) -> None:
    if spec.missing != "error" or spec.kind == "text":  # a missing text is an empty one
        return
    positions = np.flatnonzero(missing)
    found = np.array([_row(rows, int(i)) for i in positions[:SHOWN]])
    raise DataError(cells_problem(table.path, spec.name, table.lines[found].tolist(),
                                  len(positions), "missing value", fill_advice(spec)))


def cell_problems(table: Table, spec: InputColumn, rows: Rows = None) -> list[str]:
    """The problems of one input column's cells among ``rows``: texts that are not dates
    in a date column, and missing cells when nothing fills them."""
    problems = []
    column = table.columns[spec.name]
    if spec.kind == "date":
        codes = _take(column.values, rows)
        undated = np.isnan(spec.date_table(column)[:, 0])
        undated[-1] = False  # code -1: missing, not a bad text
        bad = np.flatnonzero(undated[codes])
        if len(bad):
            found = bad if rows is None else rows[bad]
            texts = [column.categories[c] for c in np.unique(codes[bad])[:SHOWN]]
            first = column.categories[codes[bad[0]]]
            others = [t for t in texts if t != first]
            how = (f"the format data.columns.{spec.name}.date_format: "
                   f"{spec.date_format!r}" if spec.date_format else "a date such as "
                   "2012-01-31, 2012/01/31 or 31.01.2012 (or set its format: "
                   f"data.columns.{spec.name}.date_format: '%d %b %Y')")
            problems.append(table.cells(
                found, spec.name, f"{first!r} is not a date"
                + (f" (nor {', '.join(map(repr, others))})" if others else ""),
                f"write {how}, or leave the cell empty"))
    if spec.missing == "error" and spec.kind != "text" and (cells := column.missing()).any():
        # cells that did not read are reported as such, not again as missing
        missing = np.flatnonzero(_take(cells & ~table.unreadable(spec.name), rows))
        if len(missing):
            found = missing if rows is None else rows[missing]
            problems.append(table.cells(found, spec.name, "missing value",
                                        fill_advice(spec)))
    return problems


def fill_advice(spec: InputColumn) -> str:
    """What to do about a missing cell of a column that is not imputed."""
    fill = "most_frequent" if spec.kind == "categorical" else "mean"
    return (f"fill it in, or impute: data.columns.{spec.name}.missing: {fill} (or "
            "data.missing for every column)")


def _fit_numeric_fill(table: Table, rows: Rows, spec: InputColumn, column: Column
                      ) -> NDArray[np.float64]:
    """The training values with missing ones filled (the fill is fitted here)."""
    values = _take(column.values, rows).astype(np.float64)
    missing = np.isnan(values)
    present = values[~missing] if missing.any() else values
    if spec.missing == "constant":
        spec.fill = float(spec.fill)  # type: ignore[arg-type]  # checked with the config
    elif spec.missing != "error":
        if not len(present):
            raise DataError(f"{table.path}: column {spec.name!r} has no values in the "
                            "training rows to impute from; drop it or fill it in")
        if spec.missing == "mean":
            spec.fill = float(present.mean())
        elif spec.missing == "median":
            spec.fill = float(np.median(present))
        else:
            distinct, counts = np.unique(present, return_counts=True)
            spec.fill = float(distinct[np.argmax(counts)])
    if missing.any():
        _check_fillable(table, rows, spec, missing)
        values[missing] = spec.fill
    return values


def _fit_scaling(values: NDArray[np.float64], scaling: str, scale_by: float | None
                 ) -> tuple[float, float]:
    if scaling == "fixed" and scale_by is not None:
        return 0.0, float(scale_by)
    if scaling == "standard":
        return float(values.mean()), float(_safe_std(values)[0])
    if scaling == "minmax":
        low, span = float(values.min()), float(values.max() - values.min())
        return low, span if span > 0 else 1.0
    return 0.0, 1.0


def _date_fill(spec: InputColumn) -> list[float]:
    date = parse_date(str(spec.fill))
    assert date is not None  # fitted, or checked with the config
    return date_features(date)


def _fit_date_fill(table: Table, rows: Rows, spec: InputColumn, column: Column
                   ) -> NDArray[np.float64]:
    """A date column's raw training inputs (rows, 8), missing ones filled; the fill, an
    ISO date, is fitted here on the days since 1970."""
    values = spec.date_table(column)[_take(column.values, rows)]
    days = values[:, 0]
    missing = np.isnan(days)
    present = days[~missing]
    if spec.missing not in ("error", "constant"):
        if not len(present):
            raise DataError(f"{table.path}: column {spec.name!r} has no dates in the "
                            "training rows to impute from; drop it or fill it in")
        if spec.missing == "mean":
            day = float(np.round(present.mean()))
        elif spec.missing == "median":
            day = float(np.round(np.median(present)))
        else:
            distinct, counts = np.unique(present, return_counts=True)
            day = float(distinct[np.argmax(counts)])
        spec.fill = (EPOCH + dt.timedelta(days=int(day))).isoformat()
    elif spec.missing == "constant":
        date = parse_date(str(spec.fill))
        assert date is not None  # checked with the config
        spec.fill = date.isoformat()
    if missing.any():
        _check_fillable(table, rows, spec, missing)
        values[missing] = _date_fill(spec)
    return values


def _fit_categorical(table: Table, rows: Rows, spec: InputColumn, column: Column) -> None:
    """The vocabulary: the values of the training rows (folded with ``fold_case``) but
    those rarer than ``min_frequency`` or beyond the ``max_categories`` most frequent,
    which share the "other" input."""
    codes = _take(column.values, rows)
    values = sorted({spec.key(c) for c in column.categories})
    index = {v: i for i, v in enumerate(values)}
    to_value = np.array([index[spec.key(c)] for c in column.categories] + [-1], np.int64)
    present = to_value[codes]
    counts = np.bincount(present[present >= 0], minlength=len(values))
    kept = counts >= spec.min_frequency
    if spec.max_categories is not None and kept.sum() > spec.max_categories:
        # the most frequent; among equals, the first in sorted order
        order = np.lexsort((np.arange(len(values)), -counts))
        kept = np.zeros(len(values), dtype=np.bool_)
        kept[order[: spec.max_categories]] = True
    spec.categories = [v for v, k in zip(values, kept, strict=True) if k]
    spec.grouped = {v for v, k, n in zip(values, kept, counts, strict=True) if n and not k}
    spec.other = bool(spec.grouped)
    if spec.missing == "most_frequent":
        if not counts.any():
            raise DataError(f"{table.path}: column {spec.name!r} has no values in the "
                            "training rows to impute from; drop it or fill it in")
        spec.fill = values[int(np.argmax(counts))]
    elif spec.missing == "constant":
        spec.fill = spec.key(str(spec.fill))
        if spec.fill not in spec.categories:
            spec.categories = sorted([*spec.categories, spec.fill])
    if (codes < 0).any():
        _check_fillable(table, rows, spec, codes < 0)


def _safe_std(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Standard deviation per column, with 1 where a column is constant."""
    std = np.atleast_1d(X.std(axis=0))
    std[std == 0] = 1.0
    return std
