"""The header: opening the file, finding its first record (which may span lines), the
delimiter (detected unless given) and the column names, which must be unique and
non-empty."""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path
from typing import IO

from bpcli.csvfile.records import first_record_end
from bpcli.errors import DataError
from bpcli.files import open_regular

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
SAMPLE_BYTES = 64 << 10
_BOM = b"\xef\xbb\xbf"


def read_header(path: Path, delimiter: str | None = None) -> tuple[list[str], str]:
    """The column names and the delimiter (detected unless given) of a CSV file."""
    with open_csv(path) as f:
        header, delimiter, _, _ = read_head(path, f, delimiter)
    return header, delimiter


class open_csv:
    """``open(path, "rb")`` with every failure to open as a ``DataError``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> IO[bytes]:
        if self.path.is_dir():
            raise DataError(f"{self.path}: is a directory, not a CSV file")
        # a FIFO or device is refused before it is opened: reading one blocks or never ends
        self.file = open_regular(self.path, DataError)
        return self.file

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def read_head(path: Path, f: IO[bytes], delimiter: str | None
               ) -> tuple[list[str], str, bytes, int]:
    """Header names, delimiter, the bytes read past the header, and the header's lines."""
    head = f.read(SAMPLE_BYTES)
    if head.startswith(_BOM):
        head = head[len(_BOM):]
    if not head.strip():
        raise DataError(f"{path}: the file is empty; it needs a header row and data rows")
    end = first_record_end(head)
    while end is None:
        more = f.read(SAMPLE_BYTES)
        if not more:
            end = len(head)
            break
        head += more
        end = first_record_end(head)
    try:
        header_text = head[:end].decode("utf-8")
        sample = head.decode("utf-8", errors="ignore")
    except UnicodeDecodeError:
        raise DataError(f"{path}:1: the header is not UTF-8 text; save the file as UTF-8 "
                        "CSV") from None
    if delimiter is None:
        delimiter = sniff_delimiter(sample)
    try:
        fields = next(csv.reader(io.StringIO(header_text, newline=""), delimiter=delimiter,
                                 strict=True), [])
    except csv.Error as exc:
        raise DataError(f"{path}:1: the header is not valid CSV ({exc}); check its quotes"
                        ) from None
    header = [name.strip() for name in fields]
    _check_header(path, header)
    return header, delimiter, head[end:], header_text.count("\n")


def sniff_delimiter(sample: str) -> str:
    """The delimiter among comma, semicolon, tab and pipe that splits the sample's records
    into the same number (more than one) of fields; comma when none does. Records are
    split as CSV (a quoted field may hold a newline)."""
    best, best_width = ",", 1
    for candidate in DELIMITERS:
        try:
            rows = list(itertools.islice(csv.reader(io.StringIO(sample, newline=""),
                                                    delimiter=candidate), 50))
        except csv.Error:
            continue
        rows = [row for row in rows if row]  # blank lines
        if len(rows) > 1 and not sample.endswith("\n"):
            rows = rows[:-1]  # the sample may end inside the last record
        widths = [len(row) for row in rows]
        if not widths or widths[0] <= 1:
            continue
        consistent = all(w == widths[0] for w in widths)
        if consistent and widths[0] > best_width:
            best, best_width = candidate, widths[0]
    return best


def _check_header(path: Path, header: list[str]) -> None:
    if not any(header):
        raise DataError(f"{path}:1: the first line is empty; it must be the header row "
                        "naming the columns")
    seen: set[str] = set()
    for j, name in enumerate(header, start=1):
        if not name:
            raise DataError(f"{path}:1: column {j} has no name; every column needs a header")
        if name in seen:
            raise DataError(f"{path}:1: column name {name!r} appears twice (columns "
                            f"{header.index(name) + 1} and {j}); rename one")
        seen.add(name)
