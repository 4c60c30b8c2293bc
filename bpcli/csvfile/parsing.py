"""Parsing chunks: polars' multithreaded CSV parser reads each chunk into only the columns
asked for, typed as the first chunk decided (numbers, true/false, otherwise text) unless
the caller said. Numbers become float arrays (NaN where missing), texts integer codes.
polars fills a short row with missing values and gives no line numbers, so a chunk with
quotes or a missing last cell is checked record by record (``diagnosis``), and a chunk
that does not parse is diagnosed there to the cell."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import DTypeLike, NDArray
from polars.exceptions import ComputeError

from bpcli.csvfile.cells import (
    BLANK,
    MISSING_TOKENS,
    Kind,
    booleans,
    chunk_codes,
    comma_to_point,
    leading_blanks,
    missing_cells,
    not_numbers,
    number_columns,
    sorted_codes,
)
from bpcli.csvfile.diagnosis import check_structure, diagnose
from bpcli.csvfile.modes import TEXT, ParseMode
from bpcli.csvfile.records import QUOTE
from bpcli.csvfile.storage import Columns
from bpcli.csvfile.table import BadCells, Column, Table
from bpcli.errors import DataError

INFER_ROWS = 10_000  # rows that decide a column's type when the config does not
HEAD_ROWS = 100  # rows that pick the columns tried as numbers on a whole chunk
# Share of non-numbers in a column of numbers that are taken for typos or missing-value
# markers to report (rather than making the column text): a column is numeric when at least
# 90% of its non-missing cells are numbers.
MAX_TYPOS = 0.10
_POLARS_TYPE = {"numeric": pl.Float32, "boolean": pl.Boolean, "categorical": pl.String}


class _DecimalCommas(Exception):
    """Cells that did not read as numbers in ``BLANKS`` mode read with decimal commas:
    parse again with them (and from then on)."""


class ChunkReader:
    """Parses chunks into column pieces, then joins them into a ``Table``."""

    def __init__(self, path: Path, header: list[str], names: list[str], delimiter: str,
                 kinds: dict[str, Kind], float_dtype: DTypeLike, float64: Collection[str],
                 size_hint: int, na_values: Mapping[str, Collection[str]]) -> None:
        self.path, self.header, self.names, self.delimiter = path, header, names, delimiter
        self.kinds: dict[str, Kind] = dict(kinds)
        self.float_dtype = np.dtype(float_dtype)
        self.float64 = set(float64)
        # The last column is always parsed: a short row shows as a missing value there.
        self.last = header[-1]
        self.parsed = names if self.last in names else [*names, self.last]
        self.indices = sorted(header.index(n) for n in self.parsed)
        # Columns grow in place (no list of pieces to join: that would double the peak).
        self.out = Columns(size_hint)
        self.small_file = size_hint < 2**31 - 1  # so fewer lines than int32 can count
        # categorical columns: text -> code in order of first appearance, over every chunk
        self.texts: dict[str, dict[str, int]] = {n: {} for n in names}
        # how chunks are parsed: kinds inference and failed parses switch modes on, for
        # every chunk after (see ParseMode)
        self.mode = ParseMode.PLAIN
        self.na = {name: [*MISSING_TOKENS, *na_values.get(name, ())] for name in self.parsed}
        self.bad: dict[str, BadCells] = {}
        # the cells of the chunk being parsed that did not read: frame rows and texts
        self.pending: dict[str, tuple[NDArray[np.int64], list[str]]] = {}

    def add(self, chunk: bytes, first_line: int) -> int:
        """Parse one chunk; return the line after it."""
        while chunk.startswith((b"\n", b"\r\n")):  # polars counts fields on the first line
            chunk = chunk[chunk.index(b"\n") + 1:]
            first_line += 1
        if not chunk or chunk.isspace():
            return first_line + chunk.count(b"\n")
        frame = self._infer(chunk, first_line) if len(self.kinds) < len(self.parsed) else None
        if frame is None:
            frame = self._parse(chunk, first_line)
        if QUOTE in chunk or frame.get_column(self.last).null_count():
            records = check_structure(self.path, chunk, first_line, self.delimiter,
                                      len(self.header))  # exact, slower
            if records.blank.any():  # parse the records again without the blank lines
                keep = ~records.blank
                chunk = b"\n".join(chunk[s:e] for (s, e), k in
                                   zip(records.spans, keep, strict=True) if k) + b"\n"
                frame = self._parse(chunk, first_line) if keep.any() else frame.clear()
            lines = records.lines[~records.blank]
            next_line = records.next_line
        else:
            lines = np.arange(first_line, first_line + frame.height, dtype=np.int64)
            next_line = first_line + frame.height
        if frame.height != len(lines):
            raise DataError(f"{self.path}:{first_line}: cannot split this part of the file "
                            "into records; check its quotes")
        if not len(lines):
            return next_line
        for name, (positions, texts) in self.pending.items():
            if name in self.names:
                kind = self.kinds[name]
                self.bad.setdefault(name, BadCells(kind)).add(
                    self.out.rows + positions, lines[positions], texts)
        self.out.reserve(len(lines), len(chunk))
        for name in self.names:
            series = frame.get_column(name)
            if self.kinds[name] == "categorical":
                self.out.append(name, chunk_codes(series, self.texts[name]), np.int32)
            else:
                self.out.append(name, series.cast(pl.Float64 if self._wide(name)
                                                  else pl.Float32).to_numpy())
        # int32 halves the line numbers' memory; a file of 2**31 lines is out of reach
        self.out.append("\0lines", lines, np.int32 if self.small_file else np.int64)
        self.out.advance(len(lines))
        return next_line

    def _wide(self, name: str) -> bool:
        return name in self.float64 or self.float_dtype == np.float64

    def _infer(self, chunk: bytes, first_line: int) -> pl.DataFrame | None:
        """Kinds of the columns not given, from the first rows: all numbers (or missing)
        is numeric, all true/false is boolean, anything else is text. Returns the chunk
        parsed when that is how the kinds were settled, else None.

        The columns whose first few cells are numbers (every column of an image file) are
        tried as numbers on the whole chunk at once: when it parses, each of their cells is
        a number and their kind is settled without reading a sample of them as text."""
        undecided = [name for name in self.parsed if name not in self.kinds]
        head = self._safely(chunk, first_line, lambda: self._read(
            chunk, {}, TEXT, n_rows=HEAD_ROWS, names=undecided))
        numbers = number_columns(head, undecided)
        others = [name for name in undecided if name not in numbers]
        if others:
            self._infer_from_sample(chunk, first_line, others)
        if numbers and not self.mode & (ParseMode.BLANKS | ParseMode.DECIMAL_COMMAS) \
                and not leading_blanks(chunk, self.delimiter):
            # polars' number parser skips blanks before a number, which the sample would
            # have noted (``BLANKS``): chunks with blanks after a delimiter are not tried
            self.kinds.update(dict.fromkeys(numbers, "numeric"))
            try:
                frame = self._read(chunk, {n: self._type(n) for n in self.parsed}, self.mode)
            except BaseException as exc:  # noqa: B036 - polars' panics are BaseExceptions
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                for name in numbers:  # not all numbers (or not parseable): look closer
                    del self.kinds[name]
            else:
                self.pending = {}
                return frame
        if numbers:
            self._infer_from_sample(chunk, first_line, numbers)
        return None

    def _infer_from_sample(self, chunk: bytes, first_line: int, names: Sequence[str]
                           ) -> None:
        """The kinds of ``names`` from the chunk's first ``INFER_ROWS`` rows."""
        sample = self._safely(chunk, first_line, lambda: self._read(
            chunk, {}, TEXT, n_rows=INFER_ROWS, names=names))
        numbers = set(number_columns(sample, names))
        for name in names:
            if name in numbers:
                self.kinds[name] = "numeric"
                continue
            raw = sample.get_column(name).drop_nulls()
            text = raw.str.strip_chars(BLANK)  # "1, 2" is the numbers 1 and 2
            # blank: a quoted empty cell (""), or spaces, which polars reads as missing
            present = ~missing_cells(text, self.na[name])
            raw, text = raw.filter(present), text.filter(present)
            # A few non-numbers in a column of numbers are typos to report, not categories.
            if not_numbers(text) <= MAX_TYPOS * len(text):
                self.kinds[name] = "numeric"
            elif self.delimiter != "," and not_numbers(comma_to_point(text)) <= \
                    MAX_TYPOS * len(text):
                self.kinds[name] = "numeric"  # decimal commas: 1,5 for 1.5
                self.mode |= ParseMode.DECIMAL_COMMAS
            elif booleans(text).all():
                self.kinds[name] = "boolean"
            else:
                self.kinds[name] = "categorical"
            if self.kinds[name] != "categorical" and (raw != text).any():
                self.mode |= ParseMode.BLANKS

    def _read(self, chunk: bytes, schema: dict[str, Any], mode: ParseMode,
              n_rows: int | None = None, names: Sequence[str] | None = None) -> pl.DataFrame:
        """The chunk's columns (``names``, default: all parsed) typed as ``schema`` says,
        text where it says nothing, read as ``mode`` says (but for ``BLANKS``, which is
        the caller's)."""
        indices = self.indices if names is None else \
            sorted(self.header.index(n) for n in names)
        return pl.read_csv(
            chunk, has_header=False, new_columns=self.header, columns=indices,
            separator=self.delimiter, quote_char='"', schema_overrides=schema,
            infer_schema_length=0, n_rows=n_rows, encoding="utf8", raise_if_empty=False,
            null_values=list(MISSING_TOKENS) if ParseMode.MISSING_WORDS in mode else None,
            decimal_comma=ParseMode.DECIMAL_COMMAS in mode,
        )

    def _parse(self, chunk: bytes, first_line: int) -> pl.DataFrame:
        """The chunk parsed in the reader's mode; while polars fails, in the next one
        (``ParseMode.after_failure``), which the chunks after it keep."""
        def read() -> pl.DataFrame:
            while True:
                try:
                    return self._parse_as(chunk, self.mode)
                except (ComputeError, _DecimalCommas):
                    # polars raises ComputeError for a cell it cannot read as the column's
                    # type (NA or " 7 " among numbers, 1,5 for 1.5), and for a record it
                    # cannot split; a failure no mode mends ends in ``diagnose``
                    fallback = self.mode.after_failure(self.delimiter)
                    if fallback is None:
                        raise
                    self.mode = fallback

        return self._safely(chunk, first_line, read)

    def _parse_as(self, chunk: bytes, mode: ParseMode) -> pl.DataFrame:
        """One try: the chunk parsed in ``mode``."""
        self.pending = {}
        if ParseMode.BLANKS not in mode:
            return self._read(chunk, {n: self._type(n) for n in self.parsed}, mode)
        frame = self._read(chunk, dict.fromkeys(self.parsed, pl.String), mode)
        return frame.with_columns(self._from_text(frame, n, mode) for n in self.parsed
                                  if self.kinds[n] != "categorical")

    def _type(self, name: str) -> Any:
        if self.kinds[name] == "numeric" and self._wide(name):
            return pl.Float64
        return _POLARS_TYPE[self.kinds[name]]

    def _from_text(self, frame: pl.DataFrame, name: str, mode: ParseMode) -> pl.Series:
        """A numeric or boolean column read as text, trimmed and converted; a cell that
        does not convert is missing, and noted in ``pending``."""
        text = frame.get_column(name).str.strip_chars(BLANK)
        text = text.set(missing_cells(text, self.na[name]), None)
        if self.kinds[name] == "boolean":
            lower = text.str.to_lowercase()
            out = (lower == "true").set(~lower.is_in(["true", "false"]), None).alias(name)
        else:
            decimal_commas = ParseMode.DECIMAL_COMMAS in mode
            numbers = comma_to_point(text) if decimal_commas else text
            out = numbers.cast(self._type(name), strict=False)
        bad = out.is_null() & text.is_not_null()
        if bad.any():
            words = text.filter(bad)
            if self.kinds[name] == "numeric" and self.delimiter != "," and \
                    not decimal_commas and not_numbers(comma_to_point(words)) < len(words):
                raise _DecimalCommas
            self.pending[name] = (bad.arg_true().to_numpy().astype(np.int64),
                                  frame.get_column(name).filter(bad).to_list())
        return out

    def _safely(self, chunk: bytes, first_line: int, read: Callable[[], pl.DataFrame]
                ) -> pl.DataFrame:
        """``read()``, with any failure turned into a ``DataError`` that points at it."""
        try:
            return read()
        except BaseException as exc:  # noqa: B036 - polars' panics are BaseExceptions
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise diagnose(
                self.path, chunk, first_line, exc, delimiter=self.delimiter,
                width=len(self.header), read_text=lambda: self._read(chunk, {}, TEXT),
                kinds={name: self.kinds.get(name) for name in self.parsed}, na=self.na,
                decimal_commas=ParseMode.DECIMAL_COMMAS in self.mode) from None

    def table(self) -> Table:
        if not self.out.rows:
            raise DataError(f"{self.path}: no data rows below the header; add rows or "
                            "check the file is the right one")
        lines, _ = self.out.take("\0lines")
        columns: dict[str, Column] = {}
        for name in self.names:
            values, mapping = self.out.take(name)
            if self.kinds[name] == "categorical":
                codes, categories = sorted_codes(values, self.texts[name], self.na[name])
                columns[name] = Column("categorical", codes, categories)
                continue
            infinite = np.flatnonzero(np.isinf(values))
            if len(infinite):
                found = self.bad.setdefault(name, BadCells("infinite"))
                found.add(infinite, lines[infinite], [])
                values[infinite] = np.nan
            columns[name] = Column(self.kinds[name], values, mapping=mapping)
        return Table(self.path, self.header, columns, lines, self.delimiter, self.bad)

