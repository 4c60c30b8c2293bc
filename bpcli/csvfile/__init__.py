"""Reading CSV files into typed columns, fast and lean.

The file is read in chunks of a few megabytes that end on record boundaries, each parsed
by polars' multithreaded CSV parser into only the columns asked for. Numeric columns
become float arrays (NaN where a value is missing), text columns become integer codes
into their sorted distinct values. Neither the file nor its cells are ever held whole as
Python objects or as float64, so a large file costs little more than its final arrays.

polars fills a short row with missing values and gives no line numbers, so the structure
is checked here: a cheap count of delimiters and newlines per chunk, and an exact
quote-aware scan (NumPy) only where that count does not add up or a parse fails. Every
problem becomes a ``DataError`` naming the file, the line and the column. Cells that do
not read as their column's type are collected (every one, per column) rather than stopping
at the first, so that one run lists everything to fix.

A package with one module per job: ``header`` (the header row and the delimiter),
``records`` (chunks on record boundaries, the quote-aware scan), ``parsing`` (polars and
the kinds of columns), ``modes`` (the parse modes and the order they are tried in),
``diagnosis`` (what a failed parse stumbled on), ``cells`` (missing cells, numbers,
true/false, codes), ``storage`` (memory-mapped columns), ``table`` (the result and its
messages), and ``reading`` (``read_csv``, which joins them). What the rest of bp uses is
named here.
"""

from bpcli.csvfile.cells import KINDS, MISSING_TOKENS, Kind
from bpcli.csvfile.header import DELIMITER_NAMES, DELIMITERS, read_header, sniff_delimiter
from bpcli.csvfile.reading import read_csv
from bpcli.csvfile.storage import release_freed_memory
from bpcli.csvfile.table import SHOWN, Column, Table, as_text, cells_problem, listed

__all__ = [
    "DELIMITERS", "DELIMITER_NAMES", "KINDS", "MISSING_TOKENS", "SHOWN", "Column", "Kind",
    "Table", "as_text", "cells_problem", "listed", "read_csv", "read_header",
    "release_freed_memory", "sniff_delimiter",
]
