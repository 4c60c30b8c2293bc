"""Wide files (issue 15): hundreds of columns of mixed kinds read and encode as each column
would on its own. Their columns are typed and encoded many at a time, so a mistake there
would shift or mistype columns silently."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from bpcli.config import load_config
from bpcli.csvfile import MISSING_TOKENS, read_csv
from bpcli.csvfile import records as csv_records
from bpcli.experiment import prepare

ROWS = 250  # more than csvfile.parsing.HEAD_ROWS: some columns change character further down
PIXELS = 60


def wide_file(path: Path) -> tuple[Path, dict[str, list[str]]]:
    """Pixel columns (one with empty cells) around a text, a boolean and a date column,
    and columns that look like numbers in their first rows only: mostly words further
    down (text), one word further down (a number with a typo), blanks before numbers
    further down (numbers). Returns the path and each column's cells."""
    rng = np.random.default_rng(5)
    columns: dict[str, list[str]] = {}
    for j in range(PIXELS):
        values = rng.integers(0, 256, ROWS) * (rng.random(ROWS) < 0.3)
        columns[f"p{j}"] = [str(v) for v in values]
        if j == 3:
            columns["p3"] = ["" if i % 11 == 4 else c for i, c in enumerate(columns["p3"])]
        if j == PIXELS // 2:  # a run of numeric inputs broken by other kinds
            columns["city"] = [["Oslo", "Lima", "Pune"][i % 3] for i in range(ROWS)]
            columns["flag"] = [["true", "false"][i % 2] for i in range(ROWS)]
            columns["day"] = [f"2020-01-{1 + i % 28:02d}" for i in range(ROWS)]
    columns["late"] = [str(i) if i < 150 else f"w{i % 4}" for i in range(ROWS)]
    columns["typo"] = [str(i % 9) if i != 180 else "oops" for i in range(ROWS)]
    columns["padded"] = [f" {i % 7}" if i > 120 else str(i % 7) for i in range(ROWS)]
    columns["y"] = [["a", "b"][i % 2] for i in range(ROWS)]
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(list(columns))
        writer.writerows(zip(*columns.values(), strict=True))
    return path, columns


def number(cell: str) -> float:
    return np.nan if cell.strip() in ("", *MISSING_TOKENS) else float(cell)


@pytest.mark.parametrize("chunk_bytes", [None, 4096])
def test_wide_file_of_mixed_kinds_reads_each_column_as_on_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int | None) -> None:
    if chunk_bytes:  # many chunks, the first shorter than the rows that decide the kinds
        monkeypatch.setattr(csv_records, "CHUNK_BYTES", chunk_bytes)
    path, cells = wide_file(tmp_path / "wide.csv")
    table = read_csv(path, collect=True)
    kinds = {name: column.kind for name, column in table.columns.items()}
    expected = dict.fromkeys(cells, "numeric") | {
        "city": "categorical", "flag": "boolean", "day": "categorical",
        "late": "categorical", "y": "categorical"}
    assert kinds == expected
    for name, kind in expected.items():
        column = table.columns[name]
        if kind == "numeric":
            want = [np.nan if name == "typo" and c == "oops" else number(c)
                    for c in cells[name]]
            np.testing.assert_array_equal(column.values, np.array(want, np.float32),
                                          err_msg=name)
        elif kind == "boolean":
            np.testing.assert_array_equal(column.values,
                                          [float(c == "true") for c in cells[name]])
        else:
            assert [column.categories[c] for c in column.values] == cells[name], name
    # the word among numbers is a problem to report, not a reason to make them text
    assert list(table.bad) == ["typo"] and table.bad["typo"].rows().tolist() == [180]
    own = read_csv(path, ["padded"], collect=True).columns["padded"]
    np.testing.assert_array_equal(own.values, table.columns["padded"].values)


def test_wide_file_encodes_each_input_in_its_place(
        tmp_path: Path, write_config: Callable[..., Path]) -> None:
    path, cells = wide_file(tmp_path / "wide.csv")
    config = {"data": {"path": path.name, "target": "y", "task": "classification",
                       "drop": ["late", "typo", "padded"], "missing": "mean",
                       "validation_fraction": 0},
              "model": {"layers": [{"type": "dense", "units": 4}, {"type": "dense"}]}}
    loaded = load_config(write_config(yaml.safe_dump(config)))
    experiment = prepare(loaded)
    features = experiment.preprocessor.features
    X = experiment.X_train
    assert X.shape == (ROWS, len(features)) and X.dtype == np.float32
    for j in range(PIXELS):
        name = f"p{j}"
        values = np.array([number(c) for c in cells[name]], np.float32).astype(np.float64)
        filled = np.where(np.isnan(values), np.nanmean(values), values)
        mean, std = filled.mean(), filled.std() or 1.0
        want = (filled.astype(np.float32) - np.float32(mean)) / np.float32(std)
        np.testing.assert_allclose(X[:, features.index(name)], want, rtol=1e-6, atol=1e-6,
                                   err_msg=name)
    for city in ("Lima", "Oslo", "Pune"):
        np.testing.assert_array_equal(X[:, features.index(f"city={city}")],
                                      [float(c == city) for c in cells["city"]])
    flag = np.array([float(c == "true") for c in cells["flag"]])
    np.testing.assert_allclose(X[:, features.index("flag")],
                               (flag - flag.mean()) / flag.std(), rtol=1e-6)
    days = X[:, features.index("day:days")]  # days since 1970, standardised
    day_of_month = np.array([int(c[-2:]) for c in cells["day"]], np.float64)
    np.testing.assert_allclose(days, (day_of_month - day_of_month.mean())
                               / day_of_month.std(), atol=1e-3)  # float32 of ~18000 days
