"""``read_csv``: the header, then the file in chunks, each parsed into the columns asked
for, then the ``Table``."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from bpcli.csvfile.cells import Kind
from bpcli.csvfile.header import open_csv, read_head
from bpcli.csvfile.parsing import ChunkReader
from bpcli.csvfile.records import file_chunks, read_ahead
from bpcli.csvfile.table import Table, missing_columns_error
from bpcli.errors import DataProblems


def read_csv(
    path: Path,
    columns: Sequence[str] | None = None,
    *,
    kinds: Mapping[str, Kind] | None = None,
    delimiter: str | None = None,
    float_dtype: DTypeLike = np.float32,
    float64: Collection[str] = (),
    hint: str = "",
    na_values: Mapping[str, Collection[str]] | None = None,
    collect: bool = False,
) -> Table:
    """Read ``columns`` (default: all) of a CSV file with a header row.

    Types are inferred from the first chunk (numbers, true/false, otherwise text) unless
    ``kinds`` sets them. Numeric columns are ``float_dtype``, or float64 for the names in
    ``float64`` (targets, whose units are reported). ``hint`` ends the message when a
    column is missing. ``na_values`` are a column's texts for a missing cell besides the
    usual ones. Cells that do not read as their column's type raise one ``DataProblems``
    for them all, or with ``collect`` are left missing and listed in ``Table.bad``.
    """
    kinds = dict(kinds or {})
    with open_csv(path) as f:
        header, delimiter, rest, header_lines = read_head(path, f, delimiter)
        names = list(columns) if columns is not None else header
        absent = [n for n in names if n not in header]
        if absent:
            raise missing_columns_error(path, header, absent, hint)
        size = os.fstat(f.fileno()).st_size
        reader = ChunkReader(path, header, names, delimiter, kinds, float_dtype, float64,
                             size, na_values or {})
        line = 1 + header_lines
        for chunk in read_ahead(file_chunks(f, rest)):
            line = reader.add(chunk, line)
    table = reader.table()
    if table.bad and not collect:
        raise DataProblems(table.problems(), str(path))
    return table
