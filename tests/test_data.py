"""bpcli/data.py on small tables: targets, imputation and row bookkeeping that the
end-to-end tests never reached (found by branch coverage)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli.csvfile import Table, read_csv
from bpcli.data import BLOCK_ROWS, InputColumn, Preprocessor, _owner
from bpcli.dates import EPOCH, date_features
from bpcli.errors import DataError
from bpcli.targets import as_numbers


def table(tmp_path: Path, text: str) -> Table:
    path = tmp_path / "d.csv"
    path.write_text(text)
    return read_csv(path)


def test_a_missing_regression_target_names_its_line(tmp_path: Path) -> None:
    t = table(tmp_path, "x,y\n1,10\n2,20\n3,\n4,40\n")
    pre = Preprocessor.fit(t, np.array([0, 1, 3]), [InputColumn("x", "numeric")], ["y"],
                           "regression")
    assert pre.target_mean.tolist() == [pytest.approx(70 / 3)]
    # rows given out of order: the message still names the file line of the missing cell
    with pytest.raises(DataError, match=r"d\.csv:4: column 'y': the target is missing"):
        pre.target_values(t, np.array([3, 2]))
    with pytest.raises(DataError, match=r"d\.csv:4: column 'y': the target is missing; fill "
                       "it in or remove the row"):
        pre.target_values(t)


def test_a_missing_or_unseen_class_label_names_its_line(tmp_path: Path) -> None:
    t = table(tmp_path, "x,y\n1,a\n2,b\n3,\n4,c\n")
    pre = Preprocessor.fit(t, np.array([0, 1]), [InputColumn("x", "numeric")], ["y"],
                           "classification")
    assert pre.classes == ["a", "b"]
    assert pre.class_indices(t, np.array([1, 0])).tolist() == [1, 0]
    with pytest.raises(DataError, match=r"d\.csv:4: column 'y': the target is missing"):
        pre.class_indices(t, np.array([0, 2]))
    with pytest.raises(DataError, match=r"d\.csv:4: column 'y': the target is missing; fill "
                       "it in or remove the row"):
        pre.class_indices(t)  # every row
    with pytest.raises(DataError, match=r"d\.csv:5: column 'y': label 'c' was not in the "
                       r"training data \(classes: a, b\)"):
        pre.class_indices(t, np.array([3, 0]))


def test_a_regression_target_of_text_or_infinity_is_an_error(tmp_path: Path) -> None:
    t = table(tmp_path, "y\n1.5\nabc\n3\n")
    with pytest.raises(DataError, match=r"d\.csv:3: column 'y': 'abc' is not a number, and "
                       "a regression target must be"):
        as_numbers(t.columns["y"], t, "y")
    t = table(tmp_path, "y\n1.5\nx\n2\n")
    column = t.columns["y"]
    column.categories[column.categories.index("x")] = "inf"  # a text column holding "inf"
    with pytest.raises(DataError, match=r"d\.csv:3: column 'y': an infinite target"):
        as_numbers(column, t, "y")
    t = table(tmp_path, "y\n1.5\nz\nNA\n")
    column = t.columns["y"]
    column.categories[column.categories.index("z")] = "2.5"
    converted = as_numbers(column, t, "y")
    assert converted.kind == "numeric"
    numeric = as_numbers(table(tmp_path, "y\n1\n2.5\n").columns["y"], t, "y")
    assert numeric.kind == "numeric" and numeric.values.dtype == np.float64
    assert numeric.values.tolist() == [1.0, 2.5]
    assert converted.values.tolist()[:2] == [1.5, 2.5] and np.isnan(converted.values[2])


def test_most_frequent_needs_some_value_in_the_training_rows(tmp_path: Path) -> None:
    t = table(tmp_path, "c,y\n,1\n,2\nred,3\n")
    spec = InputColumn("c", "categorical", missing="most_frequent")
    with pytest.raises(DataError, match=r"column 'c' has no values in the training rows to "
                       "impute from"):
        Preprocessor.fit(t, np.array([0, 1]), [spec], ["y"], "regression")


def test_a_constant_fill_joins_the_categories_once(tmp_path: Path) -> None:
    t = table(tmp_path, "c,y\nred,1\n,2\nblue,3\n")
    for fill, categories in (("blue", ["blue", "red"]), ("grey", ["blue", "grey", "red"])):
        spec = InputColumn("c", "categorical", missing="constant", fill=fill)
        pre = Preprocessor.fit(t, None, [spec], ["y"], "regression")
        assert spec.categories == categories
        X = pre.transform_features(t)
        assert X[1].tolist() == [float(c == fill) for c in categories]  # the empty cell


def test_a_missing_cell_without_imputation_names_its_line(tmp_path: Path) -> None:
    t = table(tmp_path, "x,y\n1,1\n2,2\n")
    pre = Preprocessor.fit(t, None, [InputColumn("x", "numeric")], ["y"], "regression")
    new = table(tmp_path, "x,y\n1,1\n,2\n")
    with pytest.raises(DataError, match=r"d\.csv:3: column 'x': missing value"):
        pre.transform_features(new)


def test_owner_of_rows_split_into_parts() -> None:
    # train and validation rows of one file, each in file order: every row has an owner
    assert _owner(4, [np.array([0, 2]), np.array([1, 3])]).tolist() == [0, 1, 0, 1]
    assert _owner(3, [None, np.array([], dtype=np.intp)]).tolist() == [0, 0, 0]
    # a part out of file order, rows missing or counted twice: encoded part by part
    assert _owner(4, [np.array([2, 0]), np.array([1, 3])]) is None
    assert _owner(4, [np.array([0, 2]), np.array([1])]) is None
    assert _owner(4, [np.array([0, 1]), np.array([1, 2])]) is None
    assert _owner(4, [np.array([0, 1, 2, 3])]) is None  # one part needs no owner map


# -- date columns: the fill fitted on the training rows, and what a missing date becomes ---
DAY = dt.date(2012, 1, 1)
# training rows 0-5: 0, 60, 3, 11 days after DAY, a missing cell and 60 days again (the
# most frequent is neither the first nor the median); row 6, a date far away, is not a
# training row (it would move every fill if it counted)
DATES = "d,y\n2012-01-01,1\n2012-03-01,2\n2012-01-04,3\n2012-01-12,4\n,5\n2012-03-01,6\n" \
    "2030-06-30,7\n"
TRAIN = np.arange(6)


def expected_inputs(raw: list[list[float]], train: list[int]) -> tuple[NDArray[np.float64],
                                                                       NDArray[np.float32]]:
    """Standard scaling fitted on the ``train`` rows of ``raw``, and the inputs computed as
    docs/model-format.md says: each of raw, mean and scale rounded to float32 first."""
    values = np.array(raw)
    mean, std = values[train].mean(axis=0), values[train].std(axis=0)
    std[std == 0] = 1.0
    f32 = np.float32
    return np.stack([mean, std]), (values.astype(f32) - mean.astype(f32)) / std.astype(f32)


@pytest.mark.parametrize(("missing", "fill", "expected"), [
    ("mean", None, "2012-01-28"),  # (0 + 60 + 3 + 11 + 60) / 5 = 26.8 days, rounded: 27
    ("median", None, "2012-01-12"),
    ("most_frequent", None, "2012-03-01"),
    ("constant", "31.01.2012", "2012-01-31"),  # saved as an ISO date, as the config's
])
def test_a_missing_date_is_filled_with_the_date_fitted_on_the_training_rows(
        tmp_path: Path, missing: str, fill: str | None, expected: str) -> None:
    t = table(tmp_path, DATES)
    spec = InputColumn("d", "date", missing=missing, fill=fill)
    pre = Preprocessor.fit(t, TRAIN, [spec], ["y"], "regression")
    assert spec.fill == expected and spec.to_json()["fill"] == expected
    cells = [DAY, dt.date(2012, 3, 1), dt.date(2012, 1, 4), dt.date(2012, 1, 12),
             dt.date.fromisoformat(expected), dt.date(2012, 3, 1), dt.date(2030, 6, 30)]
    fitted, inputs = expected_inputs([date_features(d) for d in cells], list(TRAIN))
    assert np.allclose(pre.mean, fitted[0], rtol=1e-12) and np.allclose(pre.scale, fitted[1])
    X = pre.transform_features(t)
    assert X.dtype == np.float32 and np.array_equal(X, inputs)
    # a new file's missing date becomes the same fill
    new = table(tmp_path, "d,y\n,1\n2012-01-01,2\n")
    assert np.array_equal(pre.transform_features(new), inputs[[4, 0]])


def test_a_date_column_reads_its_day_first_setting(tmp_path: Path) -> None:
    t = table(tmp_path, "d,y\n03/01/2012,1\n04/01/2012,2\n")
    for day_first, months in ((True, (1, 1)), (False, (3, 4))):
        spec = InputColumn("d", "date", scaling="none", day_first=day_first)
        pre = Preprocessor.fit(t, None, [spec], ["y"], "regression")
        dates = [dt.date(2012, months[0], 3 if day_first else 1),
                 dt.date(2012, months[1], 4 if day_first else 1)]
        assert pre.transform_features(t)[:, 0].tolist() == [(d - EPOCH).days for d in dates]


def test_no_training_date_to_impute_from_is_an_error_and_without_imputation_a_missing_one(
        tmp_path: Path) -> None:
    t = table(tmp_path, "d,y\n,1\n2012-01-01,2\n,3\n")
    with pytest.raises(DataError, match=r"^\S*d\.csv: column 'd' has no dates in the "
                       "training rows to impute from; drop it or fill it in$"):
        Preprocessor.fit(t, np.array([0, 2]), [InputColumn("d", "date", missing="median")],
                         ["y"], "regression")
    # without imputation the same rows are missing values, on their lines
    advice = "fill it in, or impute: data.columns.d.missing: mean (or data.missing for " \
        "every column)"
    with pytest.raises(DataError, match=rf"^\S*d\.csv:2: column 'd': missing value \(2 "
                       rf"cells, on lines 2, 4\); {re.escape(advice)}$"):
        Preprocessor.fit(t, np.array([0, 2]), [InputColumn("d", "date")], ["y"], "regression")
    with pytest.raises(DataError, match=r"^\S*d\.csv:4: column 'd': missing value; fill"):
        Preprocessor.fit(t, np.array([1, 2]), [InputColumn("d", "date")], ["y"], "regression")
    spec = InputColumn("d", "date")
    pre = Preprocessor.fit(t, np.array([1]), [spec], ["y"], "regression")
    assert spec.fill is None  # nothing imputes: the model file says null
    # a new file's missing date is refused on its line, for rows given in any order
    with pytest.raises(DataError, match=r"^\S*d\.csv:4: column 'd': missing value; fill"):
        pre.transform_features(t, np.array([1, 2]))
    with pytest.raises(DataError, match=r"^\S*d\.csv:2: column 'd': missing value \(2 cells"):
        pre.transform_features(t)


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_a_missing_training_cell_without_imputation_names_its_line_and_the_fill_to_set(
        tmp_path: Path, kind: str) -> None:
    t = table(tmp_path, "x,y\n1,1\n2,2\n,3\n4,4\n" if kind == "numeric"
              else "x,y\na,1\nb,2\n,3\na,4\n")
    fill = "mean" if kind == "numeric" else "most_frequent"
    advice = re.escape(f"fill it in, or impute: data.columns.x.missing: {fill} (or "
                       "data.missing for every column)")
    for rows in (None, np.array([3, 2, 0])):
        with pytest.raises(DataError, match=rf"^\S*d\.csv:4: column 'x': missing value; "
                           rf"{advice}$"):
            Preprocessor.fit(t, rows, [InputColumn("x", kind)], ["y"], "regression")


def test_a_missing_cell_beyond_the_first_block_of_rows_names_its_line(tmp_path: Path) -> None:
    n = BLOCK_ROWS + 500
    t = table(tmp_path, "x,y\n" + "".join(f"{'' if i == n - 3 else i},1\n" for i in range(n)))
    pre = Preprocessor.fit(t, np.arange(n - 10), [InputColumn("x", "numeric")], ["y"],
                           "regression")
    with pytest.raises(DataError, match=rf"d\.csv:{n - 1}: column 'x': missing value;"):
        pre.transform_features(t)


def test_labelled_rows_have_every_target(tmp_path: Path) -> None:
    t = table(tmp_path, "x,a,b\n1,1,1\n2,,2\n3,3,\n4,4,4\n")
    pre = Preprocessor.fit(t, np.array([0, 3]), [InputColumn("x", "numeric")], ["a", "b"],
                           "regression")
    rows = pre.labelled(t)
    assert rows is not None and rows.tolist() == [0, 3]  # row 1 lacks a, row 2 lacks b
    # every row labelled: None, so that bp evaluate reports no unscored rows
    assert pre.labelled(table(tmp_path, "x,a,b\n1,1,1\n2,2,2\n")) is None
