"""The CSV reader, bpcli/csvfile/: the header and its delimiter, records across lines and
chunks, column kinds and cells, parse modes and column storage, read by ``read_csv`` from
files as they come. What bp makes of the columns (configs, splits, training, predict) is
in test_data_cli.py."""

from __future__ import annotations

import csv
import io
import mmap
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpcli.csvfile import MISSING_TOKENS, Table, read_csv, read_header, sniff_delimiter
from bpcli.csvfile import header as csv_header
from bpcli.csvfile import records as csv_records
from bpcli.csvfile.modes import ParseMode
from bpcli.csvfile.parsing import ChunkReader
from bpcli.errors import DataError
from tests.datafiles import mixed_table, texts, write_rows

MISSING_WORDS, BLANKS, DECIMAL_COMMAS = (ParseMode.MISSING_WORDS, ParseMode.BLANKS,
                                         ParseMode.DECIMAL_COMMAS)


def python_records(path: Path, delimiter: str = ",") -> tuple[list[list[str]], list[int]]:
    """The data records (blank lines skipped) and the line each starts on, by Python's csv."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        next(reader)
        records, lines, end = [], [], reader.line_num
        for record in reader:
            if record:
                records.append(record)
                lines.append(end + 1)
            end = reader.line_num
    return records, lines


# -- the header and its delimiter (header.py) -------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected(tmp_path: Path, delimiter: str) -> None:
    rows = [[1.5, "dark, red; really", "true", "a"], [2, "blue|ish\ttone", "False", "b"],
            [-3e2, "green", "TRUE", "a"]]
    path = write_rows(tmp_path / "d.csv", ["x", "colour", "flag", "y"], rows, delimiter)
    assert read_header(path) == (["x", "colour", "flag", "y"], delimiter)
    table = read_csv(path)
    assert table.delimiter == delimiter
    assert table.header == ["x", "colour", "flag", "y"]
    assert table.columns["x"].values.tolist() == [1.5, 2.0, -300.0]
    assert texts(table, "colour") == ["dark, red; really", "blue|ish\ttone", "green"]
    assert table.columns["flag"].kind == "boolean"
    assert table.lines.tolist() == [2, 3, 4]


def test_the_delimiter_is_found_past_a_quoted_newline() -> None:
    assert sniff_delimiter('"a";"b"\n"x\ny";"1"\n"z";"2"\n') == ";"
    assert sniff_delimiter('"a";"b"\n"x\ny";"1') == ";"  # cut inside a record


@pytest.mark.parametrize("bom,newline,trailing", [
    (True, "\n", True), (False, "\r\n", True), (False, "\n", False), (True, "\r\n", False),
])
def test_bom_crlf_and_no_trailing_newline(tmp_path: Path, bom: bool, newline: str,
                                          trailing: bool) -> None:
    lines = ["a,b,c", "1,x,true", f'2,"y{newline}z",false', "3,w,TRUE"]
    text = newline.join(lines) + (newline if trailing else "")
    path = tmp_path / "d.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    table = read_csv(path)
    assert table.header == ["a", "b", "c"]  # no BOM in the first name
    assert table.columns["a"].values.tolist() == [1, 2, 3]
    assert texts(table, "b") == ["x", f"y{newline}z", "w"]  # as Python's csv reads it
    assert table.columns["c"].kind == "boolean"
    assert table.columns["c"].values.tolist() == [1, 0, 1]
    assert table.lines.tolist() == [2, 3, 5]


# -- records across lines and chunks (records.py, diagnosis.py) -------------------------------


def test_quoted_fields_with_delimiters_quotes_and_newlines(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        'n,note,tag\n'
        '1,"a, b",x\n'                      # line 2
        '2,"two\nlines",y\n'                # lines 3-4
        '3,"she said ""hi""",x\n'           # line 5
        '4,"three\nline\nfield, too",y\n'   # lines 6-8
        '5,plain,"x"\n'                     # line 9
        '6,"",y\n',                         # line 10
        encoding="utf-8")
    table = read_csv(path, kinds={"note": "categorical"})
    assert table.columns["n"].values.tolist() == [1, 2, 3, 4, 5, 6]
    assert texts(table, "note") == ["a, b", "two\nlines", 'she said "hi"',
                                    "three\nline\nfield, too", "plain", ""]
    assert texts(table, "tag") == ["x", "y", "x", "y", "x", "y"]
    assert table.lines.tolist() == [2, 3, 5, 6, 9, 10]
    records, lines = python_records(path)
    assert lines == table.lines.tolist()
    assert [r[1] for r in records][:5] == texts(table, "note")[:5]
    assert table.where(4, "n") == f"{path}:9: column 'n'"


@pytest.mark.parametrize("text,lines", [
    ("a,b\n1,2\n\n3,4\n\n\n5,6\n", [2, 4, 7]),
    ("a,b\r\n1,2\r\n\r\n3,4\r\n\r\n5,6", [2, 4, 6]),
    ('a,b\n1,"x"\n\n3,"y\n"\n\n\n5,z\n\n', [2, 4, 8]),
    ("a,b\n\n\n1,2\n3,4\n", [4, 5]),
])
def test_blank_lines_are_skipped_and_lines_still_count(tmp_path: Path, text: str,
                                                       lines: list[int]) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(text.encode())
    table = read_csv(path)
    assert table.lines.tolist() == lines
    assert table.columns["a"].values.tolist() == list(range(1, 2 * len(lines), 2))
    assert python_records(path)[1] == lines


def test_blank_line_at_the_start_of_a_chunk(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"a,b\n1,2\n" + b"3,4\n\n" * 5)
    monkeypatch.setattr(csv_header, "SAMPLE_BYTES", 4)
    monkeypatch.setattr(csv_records, "CHUNK_BYTES", 8)
    table = read_csv(path)
    assert table.lines.tolist() == [2, 3, 5, 7, 9, 11]


def chunky_file(path: Path, n: int = 300) -> Path:
    """Numbers, words, multi-line quoted notes, booleans and missing cells in every form."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(n):
        x = "" if i % 17 == 5 else ("NA" if i % 23 == 7 else f"{rng.normal():.5f}")
        note = (f"line one\nline two, {i}" if i % 7 == 0
                else f'says "{i % 5}"' if i % 3 == 0 else f"n{i % 4}")
        colour = ["red", "green", "blue", "", "n/a"][i % 5] if i > 4 else "red"
        flag = ["true", "False", "TRUE", "false", "null"][i % 5] if i > 4 else "true"
        rows.append([x, note, colour, flag, i % 3, f"{i * 0.1:.1f}"])
    path = write_rows(path, ["x", "note", "colour", "flag", "k", "y"], rows)
    with path.open("a") as f:  # a last row without a newline
        f.write('1.0,"last\nrow",red,true,1,0.5')
    return path


def check_against_python_csv(table: Table, path: Path, kinds: Sequence[str]) -> None:
    """``table``'s lines and its columns of ``kinds`` hold what Python's csv module reads."""
    records, lines = python_records(path)
    assert table.lines.tolist() == lines
    missing = {"", *MISSING_TOKENS}
    for j, name in enumerate(table.header):
        cells = [r[j] for r in records]
        column = table.columns[name]
        if column.kind not in kinds:
            continue
        if column.kind == "numeric":
            expected = [np.float32(c) if c not in missing else np.nan for c in cells]
            np.testing.assert_array_equal(column.values, np.array(expected, np.float32),
                                          err_msg=name)
        elif column.kind == "boolean":
            expected = [float(c.lower() == "true") if c not in missing else np.nan
                        for c in cells]
            np.testing.assert_array_equal(column.values, expected, err_msg=name)
        else:
            assert column.categories == sorted({c for c in cells if c not in missing}), name
            assert texts(table, name) == [c if c not in missing else "" for c in cells], name


def test_file_bigger_than_a_chunk_reads_the_same(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = chunky_file(tmp_path / "big.csv")
    whole = read_csv(path)
    check_against_python_csv(whole, path, ["numeric", "boolean", "categorical"])
    assert path.stat().st_size > 100 * 64
    monkeypatch.setattr(csv_records, "CHUNK_BYTES", 64)
    monkeypatch.setattr(csv_header, "SAMPLE_BYTES", 64)  # so that the chunks start at once
    chunked = read_csv(path)
    assert len(whole) == len(chunked) == 301
    assert chunked.lines[:8].tolist() == [2, 4, 5, 6, 7, 8, 9, 10]
    assert chunked.lines[-1] == 1 + 300 + 300 // 7 + 1 + 1  # the last row, on two lines
    np.testing.assert_array_equal(whole.lines, chunked.lines)
    kinds = {name: column.kind for name, column in chunked.columns.items()}
    assert kinds == {"x": "numeric", "note": "categorical", "colour": "categorical",
                     "flag": "boolean", "k": "numeric", "y": "numeric"}
    for name in ("x", "flag", "k", "y"):
        np.testing.assert_array_equal(whole.columns[name].values, chunked.columns[name].values,
                                      err_msg=name)
    check_against_python_csv(chunked, path, ["numeric", "boolean"])


def test_text_columns_bigger_than_a_chunk_read_the_same(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    path = chunky_file(tmp_path / "big.csv")
    whole = read_csv(path)
    monkeypatch.setattr(csv_records, "CHUNK_BYTES", 64)
    monkeypatch.setattr(csv_header, "SAMPLE_BYTES", 64)
    chunked = read_csv(path)
    for name in ("note", "colour"):
        assert whole.columns[name].categories == chunked.columns[name].categories, name
        np.testing.assert_array_equal(whole.columns[name].values,
                                      chunked.columns[name].values, err_msg=name)
    check_against_python_csv(chunked, path, ["categorical"])


def test_a_bad_number_after_blank_lines_is_found_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,x\n\n2,y\n\n\n3,x\noops,y\n4,x\n")
    with pytest.raises(DataError, match=r"d.csv:8: column 'a': 'oops' is not a number"):
        read_csv(path, kinds={"a": "numeric"})


# -- kinds and cells (parsing.py, cells.py) ---------------------------------------------------


def test_types_are_inferred(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("int,float,flag,word,mixed_case,zip\n"
                    "1,1.5,true,red,True,01234\n"
                    "-2,,False,green,fAlSe,10115\n"
                    "NA,-2.5e3,TRUE,NA,TRUE,99999\n"
                    "4,0.25,false,red,,00001\n")
    table = read_csv(path)
    kinds = {name: column.kind for name, column in table.columns.items()}
    assert kinds == {"int": "numeric", "float": "numeric", "flag": "boolean",
                     "word": "categorical", "mixed_case": "boolean", "zip": "numeric"}
    np.testing.assert_array_equal(table.columns["int"].values, [1, -2, np.nan, 4])
    np.testing.assert_array_equal(table.columns["float"].values, [1.5, np.nan, -2500, 0.25])
    assert table.columns["float"].values.dtype == np.float32
    np.testing.assert_array_equal(table.columns["flag"].values, [1, 0, 1, 0])
    np.testing.assert_array_equal(table.columns["mixed_case"].values, [1, 0, 1, np.nan])
    assert table.columns["word"].categories == ["green", "red"]
    assert table.columns["word"].values.tolist() == [1, 0, -1, 1]
    # a declared type wins over the inferred one
    typed = read_csv(path, kinds={"zip": "categorical", "flag": "categorical"})
    assert typed.columns["zip"].categories == ["00001", "01234", "10115", "99999"]
    assert typed.columns["flag"].categories == ["False", "TRUE", "false", "true"]


@pytest.mark.parametrize("text", [
    '"x","flag","c"\n"1.5","true","u"\n"","","v"\n"3","false",""\n',
    'x,flag,c\n1.5,true,u\n"","",v\n3,false,""\n',
])
def test_quoted_empty_cells_are_missing(tmp_path: Path, text: str) -> None:
    path = tmp_path / "d.csv"
    path.write_text(text)
    table = read_csv(path)
    assert table.columns["x"].kind == "numeric"
    np.testing.assert_array_equal(table.columns["x"].values, [1.5, np.nan, 3])
    assert table.columns["flag"].kind == "boolean"
    assert table.columns["c"].categories == ["u", "v"]
    assert table.columns["c"].values.tolist() == [0, 1, -1]


def test_decimal_commas_in_a_semicolon_file(tmp_path: Path) -> None:
    """European spreadsheets write 1,5 for 1.5 in semicolon files: numbers, not text."""
    path = tmp_path / "d.csv"
    path.write_text("age;income;city\n34;1,5;Köln\n51;2,25;Berlin\n29;3;Köln\n45;1.75;x\n",
                    encoding="utf-8")
    table = read_csv(path)
    assert table.columns["income"].kind == "numeric"
    np.testing.assert_array_equal(table.columns["income"].values, [1.5, 2.25, 3.0, 1.75])
    assert table.columns["city"].kind == "categorical"
    # a model's predict file is read with the kinds fixed: the commas are found on retry
    typed = read_csv(path, kinds={"income": "numeric", "age": "numeric"})
    np.testing.assert_array_equal(typed.columns["income"].values, [1.5, 2.25, 3.0, 1.75])
    path.write_text("a;b\n1,5;x\n2,5,3;y\n")
    with pytest.raises(DataError, match=r"d.csv:3: column 'a': '2,5,3' is not a number"):
        read_csv(path, kinds={"a": "numeric"})


def test_blanks_around_cells_are_trimmed(tmp_path: Path) -> None:
    """Files written by hand put a space after each delimiter: "1.5, true, x" holds a
    number, a boolean and the word x; a cell of blanks or a padded NA is missing."""
    path = tmp_path / "d.csv"
    path.write_text("a, ok, label\n1.5, true, x\n NA , FALSE , y\n5,\t, x\n 7 , true,y\n")
    for kinds in ({}, {"a": "numeric", "ok": "boolean", "label": "categorical"}):
        table = read_csv(path, kinds=kinds)  # inferred, and fixed as a model's are
        assert table.header == ["a", "ok", "label"]
        np.testing.assert_array_equal(table.columns["a"].values, [1.5, np.nan, 5, 7])
        np.testing.assert_array_equal(table.columns["ok"].values, [1, 0, np.nan, 1])
        assert table.columns["label"].categories == ["x", "y"]
        assert table.columns["label"].values.tolist() == [0, 1, 0, 1]
    path.write_text("a; b\n 1,5 ; p\n2 ; q\n")  # with decimal commas
    np.testing.assert_array_equal(read_csv(path).columns["a"].values, [1.5, 2])
    path.write_text("a, b\n1, p\n 2x , q\n")
    with pytest.raises(DataError, match=r"d.csv:3: column 'a': ' 2x ' is not a number"):
        read_csv(path, kinds={"a": "numeric"})
    path.write_text("a, b\n1, true\n2, maybe\n")
    with pytest.raises(DataError, match=r"d.csv:3: column 'b': ' maybe' is not true or "):
        read_csv(path, kinds={"b": "boolean"})


# -- parse modes (modes.py) -------------------------------------------------------------------


@pytest.fixture
def tries(monkeypatch: pytest.MonkeyPatch) -> list[list[ParseMode]]:
    """The modes each chunk was parsed in, chunk by chunk."""
    seen: list[list[ParseMode]] = []
    add, parse_as = ChunkReader.add, ChunkReader._parse_as

    def spy_add(self: ChunkReader, chunk: bytes, first_line: int) -> int:
        seen.append([])
        return add(self, chunk, first_line)

    def spy_parse_as(self: ChunkReader, chunk: bytes, mode: ParseMode) -> pl.DataFrame:
        seen[-1].append(mode)
        return parse_as(self, chunk, mode)

    monkeypatch.setattr(ChunkReader, "add", spy_add)
    monkeypatch.setattr(ChunkReader, "_parse_as", spy_parse_as)
    return seen


def one_row_per_chunk(path: Path, header: str, rows: list[str],
                      monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file whose rows (all as long) are read a chunk each."""
    (size,) = {len(row) + 1 for row in rows}
    path.write_text("".join(f"{line}\n" for line in [header, *rows]))
    monkeypatch.setattr(csv_header, "SAMPLE_BYTES", len(header) + 1)
    monkeypatch.setattr(csv_records, "CHUNK_BYTES", size)
    return path


def test_parse_modes_are_tried_in_order_and_carry_to_later_chunks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tries: list[list[ParseMode]]
) -> None:
    rows = ["1.000,p", "NA,pppp", "2.000,p", " 7 ,ppp", "3.000,p"]
    path = one_row_per_chunk(tmp_path / "d.csv", "a,b", rows, monkeypatch)
    table = read_csv(path, kinds={"a": "numeric", "b": "categorical"})
    np.testing.assert_array_equal(table.columns["a"].values, [1, np.nan, 2, 7, 3])
    plain = ParseMode.PLAIN
    assert tries == [
        [plain],
        [plain, MISSING_WORDS],  # NA: missing-value words first
        [MISSING_WORDS],  # kept: no failed parse for the chunks after
        [MISSING_WORDS, MISSING_WORDS | BLANKS],  # " 7 ": then blanks
        [MISSING_WORDS | BLANKS],
    ]


def test_decimal_commas_come_last_and_only_where_commas_do_not_delimit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tries: list[list[ParseMode]]
) -> None:
    path = one_row_per_chunk(tmp_path / "d.csv", "a;b", ["1,5;pp", "2.5;pp"], monkeypatch)
    table = read_csv(path, kinds={"a": "numeric", "b": "categorical"})
    np.testing.assert_array_equal(table.columns["a"].values, [1.5, 2.5])
    everything = MISSING_WORDS | BLANKS | DECIMAL_COMMAS
    assert tries == [[ParseMode.PLAIN, MISSING_WORDS, MISSING_WORDS | BLANKS, everything],
                     [everything]]  # 2.5 reads with decimal commas on, as without
    mode, order = ParseMode.PLAIN, []
    while (following := mode.after_failure(",")) is not None:
        mode = following
        order.append(mode)
    assert order == [MISSING_WORDS, MISSING_WORDS | BLANKS]
    # where kinds inference found blanks and decimal commas, only missing words are left
    assert (BLANKS | DECIMAL_COMMAS).after_failure(";") == everything
    assert everything.after_failure(";") is None


def test_each_file_starts_in_the_plain_mode(
        tmp_path: Path, tries: list[list[ParseMode]]) -> None:
    padded = tmp_path / "padded.csv"
    padded.write_text("a,b\n 1 ,x\n")
    plain = tmp_path / "plain.csv"
    plain.write_text("a,b\n2,y\n")
    kinds: dict[str, Any] = {"a": "numeric", "b": "categorical"}
    assert read_csv(padded, kinds=kinds).columns["a"].values.tolist() == [1]
    assert tries[-1][-1] == MISSING_WORDS | BLANKS
    assert read_csv(plain, kinds=kinds).columns["a"].values.tolist() == [2]
    assert tries[-1] == [ParseMode.PLAIN]  # no mode of the padded file's


def test_only_polars_failures_to_read_a_chunk_switch_modes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tries: list[list[ParseMode]]
) -> None:
    """A failure no mode mends (here a bug: a TypeError) is diagnosed at once, not tried
    again in every mode."""
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,x\n")
    spy: Callable[..., pl.DataFrame] = ChunkReader._parse_as

    def broken(self: ChunkReader, chunk: bytes, mode: ParseMode) -> pl.DataFrame:
        spy(self, chunk, mode)
        raise TypeError("a bug")

    monkeypatch.setattr(ChunkReader, "_parse_as", broken)
    with pytest.raises(DataError, match=r"d\.csv:2: cannot parse this part of the file as "
                                        r"CSV \(a bug\)"):
        read_csv(path, kinds={"a": "numeric", "b": "categorical"})
    assert tries == [[ParseMode.PLAIN]]


# -- column storage (storage.py) --------------------------------------------------------------


def test_released_rows_leave_memory_and_the_rest_stays(tmp_path: Path) -> None:
    column = mixed_table(tmp_path / "d.csv", 5000).columns["x"]
    assert column.mapping is not None
    before = column.values.copy()
    column.release_rows(2500)  # whole pages only
    released = 2500 * 4 // mmap.PAGESIZE * mmap.PAGESIZE // 4
    if sys.platform == "linux":  # elsewhere the system may keep the pages as they were
        assert not column.values[:released].any()
    np.testing.assert_array_equal(column.values[released:], before[released:])


# -- property: what the csv module writes, read_csv reads -------------------------------------


DELIMITERS = [",", ";", "\t", "|"]


# (a cell of only spaces and tabs is missing, not a word)
WORD = st.text(alphabet='abxyz ,;|\t"\n', min_size=1, max_size=5).filter(
    lambda word: word.strip(" \t") != "")


FLOAT = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False).map(repr)


INT = st.integers(-10**6, 10**6).map(str)


@st.composite
def csv_tables(draw: st.DrawFn, whole_first_row: bool) -> dict[str, Any]:
    n_cols, n_rows = draw(st.integers(1, 4)), draw(st.integers(1, 8))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    kinds = draw(st.lists(st.sampled_from(["float", "int", "word"]), min_size=n_cols,
                          max_size=n_cols))
    tokens = [*MISSING_TOKENS, ""]
    rows = []
    for r in range(n_rows):
        row: list[tuple[str | None, str]] = []
        for kind in kinds:
            if draw(st.integers(0, 4)) == 0 and not (whole_first_row and r == 0):
                row.append((None, draw(st.sampled_from(tokens))))
            else:
                text = draw({"float": FLOAT, "int": INT, "word": WORD}[kind])
                row.append((text, text))
        rows.append(row)
    return {"kinds": kinds, "rows": rows, "quoting": quoting,
            "delimiter": draw(st.sampled_from(DELIMITERS)), "crlf": draw(st.booleans()),
            "explicit": draw(st.booleans())}


@pytest.mark.parametrize("chunk", [None, 16])
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_read_csv_reads_what_the_csv_module_writes(tmp_path: Path, chunk: int | None,
                                                   data: st.DataObject) -> None:
    """Random tables written by Python's csv module (any delimiter, quoting, line ends)
    read back as written: numbers as float32, missing cells as NaN or -1, texts (trimmed)
    as codes into their sorted distinct values, each row at its line."""
    # types are inferred from the first chunk: with tiny chunks, the first row is whole
    spec = data.draw(csv_tables(whole_first_row=chunk is not None))
    kinds, rows, delimiter = spec["kinds"], spec["rows"], spec["delimiter"]
    header = [f"c{j}" for j in range(len(kinds))]
    records = []
    for row in [header, *[[cell for _, cell in row] for row in rows]]:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=delimiter, quoting=spec["quoting"],
                   lineterminator="\r\n" if spec["crlf"] else "\n").writerow(row)
        records.append(buffer.getvalue())
    path = tmp_path / "d.csv"
    path.write_bytes("".join(records).encode("utf-8"))
    with ExitStack() as stack:
        if chunk is not None:
            stack.enter_context(mock.patch.object(csv_records, "CHUNK_BYTES", chunk))
            stack.enter_context(mock.patch.object(csv_header, "SAMPLE_BYTES", chunk))
        try:
            table = read_csv(path, delimiter=delimiter if spec["explicit"] else None)
        except DataError:
            # only a one-column file, where nothing tells the delimiter, may fail to split
            assert len(kinds) == 1 and not spec["explicit"]
            return
    assert table.header == header
    assert table.delimiter == delimiter or len(kinds) == 1
    starts = np.cumsum([1 + records[0].count("\n")] + [r.count("\n") for r in records[1:-1]])
    assert table.lines.tolist() == starts.tolist()
    for j, name in enumerate(header):
        column = table.columns[name]
        written = [row[j][0] for row in rows]
        words = [t for t in written if t is not None]
        if kinds[j] == "word" and words:
            # blanks around a word are trimmed; a cell of blanks is missing
            written = [t.strip(" \t") if t is not None and t.strip(" \t") else None
                       for t in written]
            assert column.kind == "categorical", name
            assert column.categories == sorted({t for t in written if t is not None})
            codes = [column.categories.index(t) if t is not None else -1 for t in written]
            assert column.values.tolist() == codes
        else:
            assert column.kind == "numeric", name
            expected = [np.float32(float(t)) if t is not None else np.nan for t in written]
            np.testing.assert_array_equal(column.values, np.array(expected, np.float32))
