"""The CSV reader, bpcli/csvfile/: the header and its delimiter, records across chunks,
types, parse modes, cells and column storage, read by ``read_csv`` on files as they come."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from bpcli.csvfile import header as csv_header
from bpcli.csvfile import read_csv
from bpcli.csvfile import records as csv_records
from bpcli.csvfile.modes import ParseMode
from bpcli.csvfile.parsing import ChunkReader
from bpcli.errors import DataError

MISSING_WORDS, BLANKS, DECIMAL_COMMAS = (ParseMode.MISSING_WORDS, ParseMode.BLANKS,
                                         ParseMode.DECIMAL_COMMAS)


# -- parse modes -------------------------------------------------------------------------------


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
