"""Reading CSV files into typed columns (see ``parsing``). What the rest of bp uses is
named here."""

from bpcli.csvfile.parsing import (
    DELIMITER_NAMES,
    DELIMITERS,
    MISSING_TOKENS,
    SHOWN,
    Column,
    Kind,
    Table,
    as_text,
    cells_problem,
    listed,
    read_csv,
    read_header,
    release_freed_memory,
    sniff_delimiter,
)

__all__ = [
    "DELIMITERS", "DELIMITER_NAMES", "MISSING_TOKENS", "SHOWN", "Column", "Kind", "Table",
    "as_text", "cells_problem", "listed", "read_csv", "read_header", "release_freed_memory",
    "sniff_delimiter",
]
