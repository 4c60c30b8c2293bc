"""Cell rules: which cells are missing, which read as numbers (decimal commas too) or as
true and false, and texts as codes into their sorted distinct values."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

Kind = Literal["numeric", "boolean", "categorical"]
KINDS: tuple[Kind, ...] = ("numeric", "boolean", "categorical")
#: Cells read as missing values (besides an empty cell).
MISSING_TOKENS = ("NA", "N/A", "n/a", "na", "NaN", "nan", "NAN", "null", "NULL", "Null",
                  "None", "none")
BLANK = " \t"  # a cell of only these is missing


def chunk_codes(series: pl.Series, codes: dict[str, int]) -> NDArray[np.int32]:
    """A chunk's texts as codes in order of first appearance (``codes`` grows), -1 where
    missing. polars' categorical codes hold only while the chunk's series lives, so each
    chunk maps its own codes to the file's."""
    local = series.cast(pl.Categorical)
    distinct = local.unique().drop_nulls()
    physical = distinct.to_physical().to_numpy().astype(np.int64)
    lookup = np.full(int(physical.max(initial=-1)) + 2, -1, dtype=np.int32)
    lookup[physical] = [codes.setdefault(text.strip(BLANK), len(codes))
                        for text in distinct.cast(pl.String).to_list()]
    # null takes the last slot, which stays -1
    return lookup[local.to_physical().fill_null(len(lookup) - 1).to_numpy()]


def sorted_codes(codes: NDArray[np.int32], texts: dict[str, int],
                 tokens: Collection[str] = MISSING_TOKENS
                 ) -> tuple[NDArray[np.int32], list[str]]:
    """Codes into the sorted distinct texts, and those texts; the missing-value words
    count as missing."""
    categories = sorted(t for t in texts if not is_missing(t, tokens))
    index = {t: i for i, t in enumerate(categories)}
    by_appearance = np.empty(len(texts) + 1, dtype=np.int32)
    for text, code in texts.items():
        by_appearance[code] = index.get(text, -1)
    by_appearance[-1] = -1  # code -1 (missing) indexes the last entry
    return by_appearance[codes], categories


def number_columns(sample: pl.DataFrame, names: Sequence[str]) -> list[str]:
    """The columns of ``names`` whose every cell in ``sample`` (read as text) reads as
    a number or is missing; polars reads none with blanks around it. One query for
    them all, as a wide file has hundreds of them."""
    cells = pl.col(names)
    unread = sample.select(cells.cast(pl.Float64, strict=False).null_count()
                           - cells.null_count()).row(0)
    return [name for name, count in zip(names, unread, strict=True) if count == 0]


def is_missing(text: str, tokens: Collection[str] = MISSING_TOKENS) -> bool:
    """A missing-value word, or a blank (a quoted empty cell, "", is blank too)."""
    return text in tokens or not text.strip(BLANK)


def missing_cells(trimmed: pl.Series, tokens: Sequence[str] = MISSING_TOKENS) -> pl.Series:
    """Where trimmed cells are missing: empty, or a missing-value word (``is_missing``
    for one text)."""
    return (trimmed == "") | trimmed.is_in(list(tokens))


def not_numbers(text: pl.Series) -> int:
    return int(text.cast(pl.Float64, strict=False).null_count())


def comma_to_point(text: pl.Series) -> pl.Series:
    """Decimal commas as points: '1,5' -> '1.5' (one comma at most)."""
    return text.str.replace(",", ".", literal=True)


def booleans(text: pl.Series) -> pl.Series:
    """Where the cells are true or false (in any case, blanks around them allowed)."""
    return text.str.strip_chars(BLANK).str.to_lowercase().is_in(["true", "false"])


def leading_blanks(chunk: bytes, delimiter: str) -> bool:
    """Whether a field of the chunk may start with a blank (a space, or a tab when tabs do
    not delimit): after a delimiter, a newline or a quote, or at the start."""
    blanks = BLANK.replace(delimiter, "").encode()
    if not any(blank in chunk for blank in blanks):  # one fast scan for most files
        return False
    for blank in blanks:
        if chunk[:1] == bytes([blank]):
            return True
        for before in (delimiter.encode(), b"\n", b'"'):
            if before + bytes([blank]) in chunk:
                return True
    return False
