"""Failure diagnosis: records of the wrong width, and, when polars cannot parse a chunk,
the cell or record it stumbled on, found the slow way and named by file, line and column."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from bpcli.csvfile.cells import BLANK, Kind, booleans, comma_to_point, missing_cells
from bpcli.csvfile.header import DELIMITER_NAMES
from bpcli.csvfile.records import QUOTE, Records, scan
from bpcli.errors import DataError


def check_structure(path: Path, chunk: bytes, first_line: int, delimiter: str, width: int
                    ) -> Records:
    """Every record's line and width; a record with the wrong width is an error."""
    found = scan(chunk, delimiter, first_line)
    wrong = np.flatnonzero((found.fields != width) & ~found.blank)
    if len(wrong):
        i = wrong[0]
        raise DataError(
            f"{path}:{found.lines[i]}: {found.fields[i]} fields where the header has "
            f"{width}; check for a stray or missing {DELIMITER_NAMES[delimiter]} or "
            "an unclosed quote"
        )
    return found


def diagnose(path: Path, chunk: bytes, first_line: int, exc: BaseException, *,
             delimiter: str, width: int, read_text: Callable[[], pl.DataFrame],
             kinds: Mapping[str, Kind | None], na: Mapping[str, Sequence[str]],
             decimal_commas: bool) -> DataError:
    """The cell or record that polars could not parse (``exc``), found the slow way.
    ``read_text()`` reads the chunk's columns as text; ``kinds`` are theirs, in order (None
    where not yet known), ``na`` their missing-value words."""
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError as undecodable:
        line = first_line + chunk[: undecodable.start].count(b"\n")
        return DataError(f"{path}:{line}: not UTF-8 text; save the file as UTF-8 CSV")
    quotes = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == QUOTE)
    if len(quotes) % 2:  # the last opening quote is never closed
        line = first_line + chunk[: int(quotes[-1])].count(b"\n")
        return DataError(f"{path}:{line}: a quote (\") opens a field that never "
                         "closes; close it, or double a quote inside a field (\"\")")
    records = check_structure(path, chunk, first_line, delimiter, width)
    try:
        frame = read_text()
    except BaseException as again:  # noqa: B036 - polars' panics are BaseExceptions
        if isinstance(again, KeyboardInterrupt | SystemExit):
            raise
        return DataError(f"{path}:{first_line}: cannot parse this part of the file "
                         f"as CSV ({_first_line(exc)})")
    # polars may keep blank lines as empty rows or skip them
    lines = records.lines if frame.height == len(records.lines) else \
        records.lines[~records.blank]
    for name, kind in kinds.items():
        if kind not in ("numeric", "boolean"):
            continue
        text = frame.get_column(name)
        if kind == "numeric":  # a blank cell is missing, not a bad number
            trimmed = text.str.strip_chars(BLANK)
            numbers = comma_to_point(trimmed) if decimal_commas else trimmed
            readable = numbers.cast(pl.Float64, strict=False).is_not_null() | \
                missing_cells(trimmed, na[name])
        else:
            readable = booleans(text)
        bad = (~readable & text.is_not_null()).arg_true()
        if len(bad):
            row = int(bad[0])
            line = lines[row] if row < len(lines) else first_line
            what = "a number" if kind == "numeric" else "true or false"
            return DataError(
                f"{path}:{line}: column {name!r}: {text[row]!r} is not {what}; fix "
                f"the value, leave the cell empty if it is missing, or declare the "
                f"column as text: data.columns.{name}.type: categorical"
            )
    return DataError(f"{path}:{first_line}: cannot parse this part of the file as "
                     f"CSV ({_first_line(exc)})")


def _first_line(exc: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(exc).strip().split("\n")[0])
    return text[:200] or type(exc).__name__
