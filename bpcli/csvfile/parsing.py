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
"""

from __future__ import annotations

import csv
import ctypes
import io
import itertools
import mmap
import os
import queue
import re
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import polars as pl
from numpy.typing import DTypeLike, NDArray

from bpcli.errors import DataError, DataProblems
from bpcli.files import open_regular

Kind = Literal["numeric", "boolean", "categorical"]
KINDS: tuple[Kind, ...] = ("numeric", "boolean", "categorical")
#: Cells read as missing values (besides an empty cell).
MISSING_TOKENS = ("NA", "N/A", "n/a", "na", "NaN", "nan", "NAN", "null", "NULL", "Null",
                  "None", "none")
DELIMITERS = (",", ";", "\t", "|")
BLANK = " \t"  # a cell of only these is missing
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# 8 MB: 16 took as long, and 35 MiB (22 columns) to 80 MiB (785 columns) more at the peak
CHUNK_BYTES = 8 << 20
INFER_ROWS = 10_000  # rows that decide a column's type when the config does not
HEAD_ROWS = 100  # rows that pick the columns tried as numbers on a whole chunk
# Share of non-numbers in a column of numbers that are taken for typos or missing-value
# markers to report (rather than making the column text): a column is numeric when at least
# 90% of its non-missing cells are numbers.
MAX_TYPOS = 0.10
SHOWN = 5  # lines and values a message about many cells shows
SAMPLE_BYTES = 64 << 10
QUOTE = ord('"')
NEWLINE = ord("\n")
_BOM = b"\xef\xbb\xbf"
_POLARS_TYPE = {"numeric": pl.Float32, "boolean": pl.Boolean, "categorical": pl.String}


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


def read_header(path: Path, delimiter: str | None = None) -> tuple[list[str], str]:
    """The column names and the delimiter (detected unless given) of a CSV file."""
    with _open(path) as f:
        header, delimiter, _, _ = _read_head(path, f, delimiter)
    return header, delimiter


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
    with _open(path) as f:
        header, delimiter, rest, header_lines = _read_head(path, f, delimiter)
        names = list(columns) if columns is not None else header
        absent = [n for n in names if n not in header]
        if absent:
            raise missing_columns_error(path, header, absent, hint)
        size = os.fstat(f.fileno()).st_size
        reader = _ChunkReader(path, header, names, delimiter, kinds, float_dtype, float64,
                              size, na_values or {})
        line = 1 + header_lines
        for chunk in _read_ahead(_chunks(f, rest)):
            line = reader.add(chunk, line)
    table = reader.table()
    if table.bad and not collect:
        raise DataProblems(table.problems(), str(path))
    return table


def _read_ahead(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks``, with the next one read from disk on a thread while the current one is
    parsed (both release the GIL), one chunk ahead at most. When the consumer stops early
    (an error in the data), the thread finishes its read and ends before this returns."""
    ahead: queue.Queue[tuple[bytes | None, BaseException | None]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(item: tuple[bytes | None, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for chunk in chunks:
                if not hand_over((chunk, None)):
                    return
            hand_over((None, None))
        except BaseException as exc:  # noqa: BLE001 - raised again in the consumer
            hand_over((None, exc))

    thread = threading.Thread(target=read, name="bp-csv-read", daemon=True)
    thread.start()
    try:
        while True:
            chunk, error = ahead.get()
            if error is not None:
                raise error
            if chunk is None:
                return
            yield chunk
    finally:
        stop.set()
        thread.join()


def release_freed_memory() -> None:
    """Give the memory that reading and fitting left free back to the system (glibc keeps
    up to twice its largest recent allocation for reuse, here tens of megabytes), so that
    the arrays built next do not come on top of it. A no-op where the C library is not
    glibc."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # no such C library or function
        pass


# -- the header ------------------------------------------------------------------------
class _open:
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


def _read_head(path: Path, f: IO[bytes], delimiter: str | None
               ) -> tuple[list[str], str, bytes, int]:
    """Header names, delimiter, the bytes read past the header, and the header's lines."""
    head = f.read(SAMPLE_BYTES)
    if head.startswith(_BOM):
        head = head[len(_BOM):]
    if not head.strip():
        raise DataError(f"{path}: the file is empty; it needs a header row and data rows")
    end = _first_record_end(head)
    while end is None:
        more = f.read(SAMPLE_BYTES)
        if not more:
            end = len(head)
            break
        head += more
        end = _first_record_end(head)
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


def _first_record_end(buffer: bytes) -> int | None:
    """Index just past the first newline outside quotes, or None when there is none."""
    for end in _record_ends(buffer):
        return int(end) + 1
    return None


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


# -- chunks and their structure ---------------------------------------------------------
def _chunks(f: IO[bytes], rest: bytes) -> Iterator[bytes]:
    """Pieces of the file that end on record boundaries."""
    pending = rest
    while True:
        block = f.read(CHUNK_BYTES)
        if not block:
            if pending.strip():
                yield pending
            return
        if QUOTE in block or QUOTE in pending:
            data = pending + block
            end = _last_record_end(data)
            if end <= 0:  # one record longer than a chunk (or an unclosed quote): read on
                pending = data
                continue
            yield data[:end]
            pending = data[end:]
        else:
            end = block.rfind(b"\n") + 1
            if end <= 0:
                pending += block
                continue
            yield pending + memoryview(block)[:end]  # one copy, not two
            pending = block[end:]


def _record_ends(buffer: bytes) -> NDArray[np.intp]:
    """Positions of the newlines that end records (those outside double quotes)."""
    raw = np.frombuffer(buffer, dtype=np.uint8)
    newlines = np.flatnonzero(raw == NEWLINE)
    if QUOTE not in buffer:
        return newlines
    # A newline is outside quotes when an even number of quote characters precede it;
    # an escaped quote ("") adds two, so the parity holds.
    quotes = np.cumsum(raw == QUOTE, dtype=np.int64)
    return newlines[quotes[newlines] % 2 == 0]


def _last_record_end(buffer: bytes) -> int:
    ends = _record_ends(buffer)
    return int(ends[-1]) + 1 if len(ends) else 0


@dataclass
class _Records:
    """The exact structure of a chunk: per record, its first line and field count."""

    lines: NDArray[np.int64]
    fields: NDArray[np.int64]
    blank: NDArray[np.bool_]
    spans: list[tuple[int, int]]
    next_line: int  # the line after the chunk


def _scan(chunk: bytes, delimiter: str, first_line: int) -> _Records:
    raw = np.frombuffer(chunk, dtype=np.uint8)
    outside = np.ones(len(raw), dtype=np.bool_)
    if QUOTE in chunk:
        outside = np.cumsum(raw == QUOTE, dtype=np.int64) % 2 == 0
    ends = np.flatnonzero((raw == NEWLINE) & outside)
    if len(ends) == 0 or ends[-1] != len(raw) - 1:
        ends = np.append(ends, len(raw))  # the last record has no newline
    starts = np.concatenate([[0], ends[:-1] + 1])
    delimiters = np.concatenate([[0], np.cumsum((raw == ord(delimiter)) & outside)])
    fields = delimiters[ends] - delimiters[starts] + 1
    newlines_before = np.concatenate([[0], np.cumsum(raw == NEWLINE)])
    lines = first_line + newlines_before[starts]
    lengths = ends - starts
    blank = (lengths == 0) | ((lengths == 1) & (raw[np.minimum(starts, len(raw) - 1)] == 13))
    spans = list(zip(starts.tolist(), ends.tolist(), strict=True))
    return _Records(lines.astype(np.int64), fields.astype(np.int64), blank, spans,
                    first_line + int(newlines_before[-1]))


# -- parsing ------------------------------------------------------------------------------
class _ChunkReader:
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
        self.out = _Columns(size_hint)
        self.small_file = size_hint < 2**31 - 1  # so fewer lines than int32 can count
        # categorical columns: text -> code in order of first appearance, over every chunk
        self.texts: dict[str, dict[str, int]] = {n: {} for n in names}
        self.null_tokens = False  # parse words such as NA as missing (slower)
        self.decimal_comma = False  # numbers such as 1,5 (only when not comma-separated)
        self.padded = False  # numbers with blanks around them ("1, 2"): read as text, trim
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
            records = self._check_structure(chunk, first_line)  # exact, slower
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
                self.out.append(name, _codes(series, self.texts[name]), np.int32)
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
            chunk, {}, n_rows=HEAD_ROWS, as_text=True, names=undecided))
        numbers = self._numbers(head, undecided)
        others = [name for name in undecided if name not in numbers]
        if others:
            self._infer_from_sample(chunk, first_line, others)
        if numbers and not self.padded and not self.decimal_comma \
                and not _leading_blanks(chunk, self.delimiter):
            # polars' number parser skips blanks before a number, which the sample would
            # have noted (``padded``): chunks with blanks after a delimiter are not tried
            self.kinds.update(dict.fromkeys(numbers, "numeric"))
            try:
                frame = self._read(chunk, {n: self._type(n) for n in self.parsed})
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

    def _numbers(self, sample: pl.DataFrame, names: Sequence[str]) -> list[str]:
        """The columns of ``names`` whose every cell in ``sample`` (read as text) reads as
        a number or is missing; polars reads none with blanks around it. One query for
        them all, as a wide file has hundreds of them."""
        cells = pl.col(names)
        unread = sample.select(cells.cast(pl.Float64, strict=False).null_count()
                               - cells.null_count()).row(0)
        return [name for name, count in zip(names, unread, strict=True) if count == 0]

    def _infer_from_sample(self, chunk: bytes, first_line: int, names: Sequence[str]
                           ) -> None:
        """The kinds of ``names`` from the chunk's first ``INFER_ROWS`` rows."""
        sample = self._safely(chunk, first_line, lambda: self._read(
            chunk, {}, n_rows=INFER_ROWS, as_text=True, names=names))
        numbers = set(self._numbers(sample, names))
        for name in names:
            if name in numbers:
                self.kinds[name] = "numeric"
                continue
            raw = sample.get_column(name).drop_nulls()
            text = raw.str.strip_chars(BLANK)  # "1, 2" is the numbers 1 and 2
            # blank: a quoted empty cell (""), or spaces, which polars reads as missing
            present = ~_missing_cells(text, self.na[name])
            raw, text = raw.filter(present), text.filter(present)
            # A few non-numbers in a column of numbers are typos to report, not categories.
            if _not_numbers(text) <= MAX_TYPOS * len(text):
                self.kinds[name] = "numeric"
            elif self.delimiter != "," and _not_numbers(_comma_to_point(text)) <= \
                    MAX_TYPOS * len(text):
                self.kinds[name] = "numeric"  # decimal commas: 1,5 for 1.5
                self.decimal_comma = True
            elif _booleans(text).all():
                self.kinds[name] = "boolean"
            else:
                self.kinds[name] = "categorical"
            if self.kinds[name] != "categorical" and (raw != text).any():
                self.padded = True

    def _read(self, chunk: bytes, schema: dict[str, Any], n_rows: int | None = None,
              as_text: bool = False, names: Sequence[str] | None = None) -> pl.DataFrame:
        """The chunk's columns (``names``, default: all parsed) typed as ``schema`` says,
        text where it says nothing."""
        indices = self.indices if names is None else \
            sorted(self.header.index(n) for n in names)
        return pl.read_csv(
            chunk, has_header=False, new_columns=self.header, columns=indices,
            separator=self.delimiter, quote_char='"', schema_overrides=schema,
            infer_schema_length=0, n_rows=n_rows, encoding="utf8", raise_if_empty=False,
            null_values=list(MISSING_TOKENS) if as_text or self.null_tokens else None,
            decimal_comma=self.decimal_comma and not as_text,
        )

    def _parse(self, chunk: bytes, first_line: int) -> pl.DataFrame:
        def read() -> pl.DataFrame:
            while True:
                self.pending = {}
                try:
                    if not self.padded:
                        return self._read(chunk, {n: self._type(n) for n in self.parsed})
                    frame = self._read(chunk, dict.fromkeys(self.parsed, pl.String))
                    return frame.with_columns(self._from_text(frame, n) for n in self.parsed
                                              if self.kinds[n] != "categorical")
                except Exception:
                    # Words such as NA may mark missing numbers, numbers may have blanks
                    # around them, and a file that is not comma-separated may write 1,5
                    # for 1.5: parse them from now on.
                    if not self.null_tokens:
                        self.null_tokens = True
                    elif not self.padded:
                        self.padded = True
                    elif self.delimiter != "," and not self.decimal_comma:
                        self.decimal_comma = True
                    else:
                        raise

        return self._safely(chunk, first_line, read)

    def _type(self, name: str) -> Any:
        if self.kinds[name] == "numeric" and self._wide(name):
            return pl.Float64
        return _POLARS_TYPE[self.kinds[name]]

    def _from_text(self, frame: pl.DataFrame, name: str) -> pl.Series:
        """A numeric or boolean column read as text, trimmed and converted; a cell that
        does not convert is missing, and noted in ``pending``."""
        text = frame.get_column(name).str.strip_chars(BLANK)
        text = text.set(_missing_cells(text, self.na[name]), None)
        if self.kinds[name] == "boolean":
            lower = text.str.to_lowercase()
            out = (lower == "true").set(~lower.is_in(["true", "false"]), None).alias(name)
        else:
            numbers = _comma_to_point(text) if self.decimal_comma else text
            out = numbers.cast(self._type(name), strict=False)
        bad = out.is_null() & text.is_not_null()
        if bad.any():
            words = text.filter(bad)
            if self.kinds[name] == "numeric" and self.delimiter != "," and \
                    not self.decimal_comma and _not_numbers(_comma_to_point(words)) < len(words):
                raise ValueError("decimal commas")  # read the file with them from now on
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
            raise self._diagnose(chunk, first_line, exc) from None

    def _check_structure(self, chunk: bytes, first_line: int) -> _Records:
        """Every record's line and width; a record with the wrong width is an error."""
        found = _scan(chunk, self.delimiter, first_line)
        width = len(self.header)
        wrong = np.flatnonzero((found.fields != width) & ~found.blank)
        if len(wrong):
            i = wrong[0]
            raise DataError(
                f"{self.path}:{found.lines[i]}: {found.fields[i]} fields where the header has "
                f"{width}; check for a stray or missing {DELIMITER_NAMES[self.delimiter]} or "
                "an unclosed quote"
            )
        return found

    def _diagnose(self, chunk: bytes, first_line: int, exc: BaseException) -> DataError:
        """The cell or record that polars could not parse, found the slow way."""
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError as undecodable:
            line = first_line + chunk[: undecodable.start].count(b"\n")
            return DataError(f"{self.path}:{line}: not UTF-8 text; save the file as UTF-8 "
                             "CSV")
        quotes = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == QUOTE)
        if len(quotes) % 2:  # the last opening quote is never closed
            line = first_line + chunk[: int(quotes[-1])].count(b"\n")
            return DataError(f"{self.path}:{line}: a quote (\") opens a field that never "
                             "closes; close it, or double a quote inside a field (\"\")")
        records = self._check_structure(chunk, first_line)
        try:
            frame = self._read(chunk, {}, as_text=True)
        except BaseException as again:  # noqa: B036 - polars' panics are BaseExceptions
            if isinstance(again, KeyboardInterrupt | SystemExit):
                raise
            return DataError(f"{self.path}:{first_line}: cannot parse this part of the file "
                             f"as CSV ({_first_line(exc)})")
        # polars may keep blank lines as empty rows or skip them
        lines = records.lines if frame.height == len(records.lines) else \
            records.lines[~records.blank]
        for name in self.parsed:
            kind = self.kinds.get(name)
            if kind not in ("numeric", "boolean"):
                continue
            text = frame.get_column(name)
            if kind == "numeric":  # a blank cell is missing, not a bad number
                trimmed = text.str.strip_chars(BLANK)
                numbers = _comma_to_point(trimmed) if self.decimal_comma else trimmed
                readable = numbers.cast(pl.Float64, strict=False).is_not_null() | \
                    _missing_cells(trimmed, self.na[name])
            else:
                readable = _booleans(text)
            bad = (~readable & text.is_not_null()).arg_true()
            if len(bad):
                row = int(bad[0])
                line = lines[row] if row < len(lines) else first_line
                what = "a number" if kind == "numeric" else "true or false"
                return DataError(
                    f"{self.path}:{line}: column {name!r}: {text[row]!r} is not {what}; fix "
                    f"the value, leave the cell empty if it is missing, or declare the "
                    f"column as text: data.columns.{name}.type: categorical"
                )
        return DataError(f"{self.path}:{first_line}: cannot parse this part of the file as "
                         f"CSV ({_first_line(exc)})")

    def table(self) -> Table:
        if not self.out.rows:
            raise DataError(f"{self.path}: no data rows below the header; add rows or "
                            "check the file is the right one")
        lines, _ = self.out.take("\0lines")
        columns: dict[str, Column] = {}
        for name in self.names:
            values, mapping = self.out.take(name)
            if self.kinds[name] == "categorical":
                columns[name] = _categorical(values, self.texts[name], self.na[name])
                continue
            infinite = np.flatnonzero(np.isinf(values))
            if len(infinite):
                found = self.bad.setdefault(name, BadCells("infinite"))
                found.add(infinite, lines[infinite], [])
                values[infinite] = np.nan
            columns[name] = Column(self.kinds[name], values, mapping=mapping)
        return Table(self.path, self.header, columns, lines, self.delimiter, self.bad)


class _Columns:
    """Column arrays filled chunk by chunk, with room reserved from the file's size so
    that they are rarely copied to grow. Each array has a private memory map of its own:
    room never written costs no memory, and rows done with can be released early
    (``Column.release_rows``)."""

    def __init__(self, file_bytes: int) -> None:
        self.file_bytes = file_bytes
        self.arrays: dict[str, tuple[NDArray[Any], mmap.mmap | None]] = {}
        self.rows = 0
        self.capacity = 0
        self.seen_bytes = 0

    def reserve(self, rows: int, chunk_bytes: int) -> None:
        self.seen_bytes += chunk_bytes
        needed = self.rows + rows
        if needed <= self.capacity:
            return
        # rows per byte so far, times the file's size, and a little slack
        estimate = int(needed / self.seen_bytes * self.file_bytes * 1.02) + 64
        self.capacity = max(needed, estimate, int(self.capacity * 1.5))
        for name, (array, _) in self.arrays.items():
            grown = self.arrays[name] = _mapped(self.capacity, array.dtype)
            grown[0][: self.rows] = array[: self.rows]

    def append(self, name: str, values: NDArray[Any], dtype: DTypeLike | None = None) -> None:
        if name not in self.arrays:
            self.arrays[name] = _mapped(self.capacity, np.dtype(dtype or values.dtype))
        self.arrays[name][0][self.rows : self.rows + len(values)] = values

    def advance(self, rows: int) -> None:
        self.rows += rows

    def take(self, name: str) -> tuple[NDArray[Any], mmap.mmap | None]:
        """The filled part of a column, and its memory map."""
        array, mapping = self.arrays.pop(name)
        return array[: self.rows], mapping


def _mapped(length: int, dtype: np.dtype[Any]) -> tuple[NDArray[Any], mmap.mmap | None]:
    """An array of ``length`` in a private anonymous memory map of its own (a plain array
    where the system has no such maps)."""
    if not hasattr(mmap, "MAP_PRIVATE"):
        return np.empty(length, dtype=dtype), None
    mapping = mmap.mmap(-1, max(1, length * dtype.itemsize),
                        flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(mapping, dtype=dtype, count=length), mapping


def _codes(series: pl.Series, codes: dict[str, int]) -> NDArray[np.int32]:
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


def _categorical(codes: NDArray[np.int32], texts: dict[str, int],
                 tokens: Collection[str] = MISSING_TOKENS) -> Column:
    """Codes into the sorted distinct texts; the missing-value words count as missing."""
    categories = sorted(t for t in texts if not _is_missing(t, tokens))
    index = {t: i for i, t in enumerate(categories)}
    by_appearance = np.empty(len(texts) + 1, dtype=np.int32)
    for text, code in texts.items():
        by_appearance[code] = index.get(text, -1)
    by_appearance[-1] = -1  # code -1 (missing) indexes the last entry
    return Column("categorical", by_appearance[codes], categories)


def _is_missing(text: str, tokens: Collection[str] = MISSING_TOKENS) -> bool:
    """A missing-value word, or a blank (a quoted empty cell, "", is blank too)."""
    return text in tokens or not text.strip(BLANK)


def _missing_cells(trimmed: pl.Series, tokens: Sequence[str] = MISSING_TOKENS) -> pl.Series:
    """Where trimmed cells are missing: empty, or a missing-value word (``_is_missing``
    for one text)."""
    return (trimmed == "") | trimmed.is_in(list(tokens))


def _not_numbers(text: pl.Series) -> int:
    return int(text.cast(pl.Float64, strict=False).null_count())


def _comma_to_point(text: pl.Series) -> pl.Series:
    """Decimal commas as points: '1,5' -> '1.5' (one comma at most)."""
    return text.str.replace(",", ".", literal=True)


def _booleans(text: pl.Series) -> pl.Series:
    """Where the cells are true or false (in any case, blanks around them allowed)."""
    return text.str.strip_chars(BLANK).str.to_lowercase().is_in(["true", "false"])


def _leading_blanks(chunk: bytes, delimiter: str) -> bool:
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


def _first_line(exc: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(exc).strip().split("\n")[0])
    return text[:200] or type(exc).__name__


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
