"""bpcli/data.py on small tables: targets, imputation and row bookkeeping that the
end-to-end tests never reached (found by branch coverage)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli import data
from bpcli.csvfile import Table, read_csv
from bpcli.data import (
    BLOCK_BYTES,
    BLOCK_ROWS,
    InputColumn,
    Preprocessor,
    _block_rows,
    _owner,
    cell_problems,
    fill_advice,
)
from bpcli.dates import DATE_FEATURES, EPOCH, date_features
from bpcli.errors import DataError, DataProblems
from bpcli.targets import as_numbers
from bpcli.text import TextSpec


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


# -- categories: rare values share the "other" input; unseen ones follow data.columns.*.unseen
COLOURS = "c,y\nred,1\nblue,2\nred,3\ngreen,4\nblue,5\nred,6\n"  # green: rare in training


@pytest.mark.parametrize(("unseen", "pink", "note"), [
    ("other", [0, 0, 1], "value outside the model's vocabulary (rare in training, or new) "
     "(first: 'pink' on line 3); encoded as c=<other>"),
    ("zeros", [0, 0, 0], "category not seen in training (first: 'pink' on line 3); encoded "
     "as all zeros"),
])
def test_rare_training_values_share_the_other_input_and_unseen_ones_follow_the_setting(
        tmp_path: Path, unseen: str, pink: list[int], note: str) -> None:
    spec = InputColumn("c", "categorical", unseen=unseen, min_frequency=2)
    pre = Preprocessor.fit(table(tmp_path, COLOURS), None, [spec], ["y"], "regression")
    assert (spec.categories, spec.other) == (["blue", "red"], True)
    assert pre.features == ["c=blue", "c=red", "c=<other>"]
    new = table(tmp_path, "c,y\ngreen,1\npink,2\nred,3\npink,4\n")
    notes: list[str] = []
    X = pre.transform_features(new, notes=notes)
    assert X.tolist() == [[0, 0, 1], pink, [0, 1, 0], pink]
    assert notes == [f"{new.path}: 2 rows with a 'c' {note}"]
    # counted over every block of rows encoded (here one per part)
    notes.clear()
    pre.transform_parts(new, [np.array([3]), np.array([1])], notes=notes)
    assert notes == [f"{new.path}: 2 rows with a 'c' {note.replace('line 3', 'line 5')}"]
    # green, rare in training, is no unseen value: it goes to "other" and makes no note
    notes.clear()
    assert pre.transform_features(new, np.array([2, 0]), notes=notes).tolist() == [
        [0, 1, 0], [0, 0, 1]]
    assert notes == []


def test_an_unseen_category_is_refused_on_its_line_with_what_to_do(tmp_path: Path) -> None:
    spec = InputColumn("c", "categorical", min_frequency=2)  # unseen: error
    pre = Preprocessor.fit(table(tmp_path, COLOURS), None, [spec], ["y"], "regression")
    new = table(tmp_path, "c,y\ngreen,1\nred,2\npink,3\n")
    assert pre.transform_features(new, np.array([1, 0])).tolist() == [[0, 1, 0], [0, 0, 1]]
    with pytest.raises(DataError, match=r"^\S*d\.csv:4: column 'c': category 'pink' was not "
                       r"in the training data \('blue', 'red'\); fix the value, or train the "
                       r"model with data.columns.c.unseen: other \(such values then share an "
                       r"'other' input\)$"):
        pre.transform_features(new, np.array([2, 0, 1]))


def test_unseen_other_without_rare_values_encodes_zeros_and_says_so(tmp_path: Path) -> None:
    spec = InputColumn("c", "categorical", unseen="other")
    pre = Preprocessor.fit(table(tmp_path, COLOURS), None, [spec], ["y"], "regression")
    assert (spec.categories, spec.other) == (["blue", "green", "red"], False)
    new = table(tmp_path, "c,y\npink,1\nred,2\n")
    notes: list[str] = []
    assert pre.transform_features(new, notes=notes).tolist() == [[0, 0, 0], [0, 0, 1]]
    assert notes == [f"{new.path}: 1 row with a 'c' category not seen in training (first: "
                     "'pink' on line 2); encoded as all zeros"]


def test_a_missing_category_imputed_with_a_rare_value_goes_to_the_other_input(
        tmp_path: Path) -> None:
    # every value rarer than min_frequency: the most frequent, red, is in "other" too
    spec = InputColumn("c", "categorical", missing="most_frequent", min_frequency=4)
    pre = Preprocessor.fit(table(tmp_path, COLOURS), None, [spec], ["y"], "regression")
    assert (spec.categories, spec.fill, pre.features) == ([], "red", ["c=<other>"])
    new = table(tmp_path, "c,y\n,1\nred,2\n")
    assert pre.transform_features(new).tolist() == [[1], [1]]


def test_a_missing_category_without_imputation_is_refused_on_its_line(tmp_path: Path) -> None:
    pre = Preprocessor.fit(table(tmp_path, COLOURS), None, [InputColumn("c", "categorical")],
                           ["y"], "regression")
    new = table(tmp_path, "c,y\nred,1\nblue,2\n,3\n")
    with pytest.raises(DataError, match=r"^\S*d\.csv:4: column 'c': missing value; fill it "
                       r"in, or impute: data.columns.c.missing: most_frequent"):
        pre.transform_features(new, np.array([2, 0]))


# -- check_cells: every cell problem of the inputs at once -----------------------------------
def test_check_cells_lists_texts_that_are_no_dates_and_missing_cells_of_every_column(
        tmp_path: Path) -> None:
    text = "d,n,y\n2012-01-01,1,1\nsoon,2,1\n,,1\nlater,3,1\nsoon,4,1\n2012-01-02,5,1\n" \
        "never,6,1\n"
    t = table(tmp_path, text)
    specs = [InputColumn("d", "date"), InputColumn("n", "numeric")]
    pre = Preprocessor.fit(t, np.array([0, 5]), specs, ["y"], "regression")
    how = "write a date such as 2012-01-31, 2012/01/31 or 31.01.2012 (or set its format: " \
        "data.columns.d.date_format: '%d %b %Y'), or leave the cell empty"
    with pytest.raises(DataProblems) as raised:
        pre.check_cells(t)
    path = t.path
    assert raised.value.where == str(path)
    assert raised.value.problems == [
        f"{path}:3: column 'd': 'soon' is not a date (nor 'later', 'never') (4 cells, on "
        f"lines 3, 5, 6, 8); {how}",
        f"{path}:4: column 'd': missing value; {fill_advice(specs[0])}",
        f"{path}:4: column 'n': missing value; {fill_advice(specs[1])}"]
    # among some rows only, named by their file lines
    with pytest.raises(DataProblems) as raised:
        pre.check_cells(t, np.array([2, 4, 5]))
    assert raised.value.problems == [f"{path}:6: column 'd': 'soon' is not a date; {how}",
                                     *raised.value.problems[1:]]
    assert raised.value.problems[1:] == [
        f"{path}:4: column 'd': missing value; {fill_advice(specs[0])}",
        f"{path}:4: column 'n': missing value; {fill_advice(specs[1])}"]
    pre.check_cells(t, np.array([0, 5]))  # no problem there
    # imputed columns have no missing values to report; a date format is named as advice
    specs = [InputColumn("d", "date", missing="median", date_format="%Y-%m-%d"),
             InputColumn("n", "numeric", missing="mean")]
    pre = Preprocessor.fit(t, np.array([0, 2, 5]), specs, ["y"], "regression")
    with pytest.raises(DataProblems) as raised:
        pre.check_cells(t, np.array([1, 2]))
    assert raised.value.problems == [
        f"{path}:3: column 'd': 'soon' is not a date; write the format "
        "data.columns.d.date_format: '%Y-%m-%d', or leave the cell empty"]


def test_cells_that_did_not_read_are_not_reported_again_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("n,y\n1,1\nabc,2\n,3\n")
    t = read_csv(path, kinds={"n": "numeric"}, collect=True)
    assert list(t.bad) == ["n"]
    spec = InputColumn("n", "numeric")
    assert cell_problems(t, spec) == [f"{path}:4: column 'n': missing value; "
                                      f"{fill_advice(spec)}"]


def test_a_missing_text_is_an_empty_one(tmp_path: Path) -> None:
    t = table(tmp_path, "t,y\nhello world,1\n,2\n")
    spec = InputColumn("t", "text", text=TextSpec())
    pre = Preprocessor.fit(t, None, [spec], ["y"], "regression")
    assert cell_problems(t, spec) == []
    pre.check_cells(t)
    assert pre.transform_features(t)[1].tolist() == [0, 0]


def test_max_categories_keeps_the_most_frequent_values_ties_in_sorted_order(
        tmp_path: Path) -> None:
    t = table(tmp_path, "c,y\n" + "".join(f"{c},1\n" for c in
                                           "d d d b b a a c e e".split()))
    for most, kept, other in ((2, ["a", "d"], True),  # a, b and e have 2: a, the first
                              (4, ["a", "b", "d", "e"], True),
                              (5, ["a", "b", "c", "d", "e"], False)):
        spec = InputColumn("c", "categorical", unseen="other", max_categories=most)
        pre = Preprocessor.fit(t, None, [spec], ["y"], "regression")
        assert (spec.categories, spec.other) == (kept, other)
        X = pre.transform_features(t)
        for row, value in enumerate("d d d b b a a c e e".split()):
            assert X[row].tolist() == [float(value == c) for c in kept] + \
                [float(value not in kept)] * other


@pytest.mark.parametrize("scaling", ["standard", "minmax"])
def test_a_constant_column_keeps_a_scale_of_one(tmp_path: Path, scaling: str) -> None:
    t = table(tmp_path, "x,y\n3,7\n3,7\n3,7\n")
    pre = Preprocessor.fit(t, None, [InputColumn("x", "numeric", scaling=scaling)], ["y"],
                           "regression")
    assert (pre.mean.tolist(), pre.scale.tolist()) == ([3.0], [1.0])
    assert (pre.target_mean.tolist(), pre.target_scale.tolist()) == ([7.0], [1.0])
    new = table(tmp_path, "x,y\n5,8\n")
    assert pre.transform_features(new).tolist() == [[2.0]]
    assert pre.transform_target(new).tolist() == [[1.0]]


# -- the model file: what predict reads back is what training fitted ----------------------
def fitted_for_saving(tmp_path: Path) -> tuple[Preprocessor, Table]:
    t = table(tmp_path, "n,f,m,b,c,d,t,y\n"
                        "1,10,5,true,Red,03/01/2012,good day,a\n"
                        "2,20,,false,red ,04/01/2012,bad day,b\n"
                        "4,30,9,true,Blue,,good night,a\n"
                        "8,40,7,false,green,05/02/2012,,b\n")
    inputs = [InputColumn("n", "numeric"),
              InputColumn("f", "numeric", scaling="fixed", scale_by=8.0),
              InputColumn("m", "numeric", scaling="minmax", missing="median"),
              InputColumn("b", "boolean", scaling="none"),
              InputColumn("c", "categorical", unseen="other", fold_case=True,
                          min_frequency=2, na_values=["?"]),
              InputColumn("d", "date", missing="most_frequent", day_first=False,
                          date_format="%m/%d/%Y"),
              InputColumn("t", "text", text=TextSpec())]
    pre = Preprocessor.fit(t, None, inputs, ["y"], "classification")
    pre.delimiter, pre.na_values = ";", ["-"]
    return pre, t


def test_a_preprocessor_read_back_from_its_settings_and_arrays_encodes_alike(
        tmp_path: Path) -> None:
    pre, t = fitted_for_saving(tmp_path)
    assert pre.inputs[4].categories == ["red"] and pre.inputs[4].other
    assert pre.features == ["n", "f", "m", "b", "c=red", "c=<other>",
                            *(f"d:{name}" for name in DATE_FEATURES),
                            *(f"t:{token}" for token in ["bad", "day", "good", "night"])]
    settings = json.loads(json.dumps(pre.to_json()))  # as the model file stores it
    arrays = pre.to_arrays()
    assert arrays["features"].tolist() == pre.features and arrays["classes"].tolist() == \
        ["a", "b"]
    back = Preprocessor.from_saved(settings, arrays)
    for name in ("mean", "scale", "target_mean", "target_scale"):
        assert np.array_equal(getattr(back, name), getattr(pre, name))
    assert (back.classes, back.features) == (pre.classes, pre.features)
    assert (back.delimiter, back.na_values, back.task, back.targets) == (
        ";", ["-"], "classification", ["y"])
    assert [c.to_json() for c in back.inputs] == [c.to_json() for c in pre.inputs]
    new = table(tmp_path, "n,f,m,b,c,d,t,y\n3,16,,true,RED,,good,a\n5,8,6,false,pink,"
                          "12/31/2012,night day,b\n")
    assert np.array_equal(back.transform_features(new), pre.transform_features(new))
    # fixed scaling divides by scale_by alone; minmax maps the training range onto [0, 1]
    assert (pre.mean[1], pre.scale[1], pre.mean[2], pre.scale[2]) == (0, 8, 5, 4)
    assert back.transform_features(new)[:, 1:3].tolist() == [[2, 0.5], [1, 0.25]]
    assert back.class_indices(new).tolist() == [0, 1]
    # what was saved for each kind, as docs/model-format.md lists it
    saved = {c["name"]: c for c in settings["inputs"]}
    assert saved["f"] == {"name": "f", "kind": "numeric", "missing": "error", "fill": None,
                          "scaling": "fixed", "scale_by": 8.0, "na_values": []}
    assert saved["m"]["fill"] == 7.0 and "scale_by" not in saved["m"]
    assert saved["c"] == {"name": "c", "kind": "categorical", "missing": "error",
                          "fill": None, "unseen": "other", "categories": ["red"],
                          "other": True, "fold_case": True, "na_values": ["?"]}
    assert saved["d"] == {"name": "d", "kind": "date", "missing": "most_frequent",
                          "fill": "2012-03-01", "scaling": "standard",
                          "date_format": "%m/%d/%Y",
                          "day_first": False, "na_values": []}
    assert saved["t"]["text"] == pre.inputs[6].text.to_json()  # type: ignore[union-attr]


def test_saved_settings_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    pre, _ = fitted_for_saving(tmp_path)
    settings, arrays = pre.to_json(), pre.to_arrays()
    # the whole messages (^...$): a refusal that says only part of it is a worse one
    with pytest.raises(ValueError, match=r"^delimiter '\|\|' is none of ',', ';', '\\t', "
                       r"'\|'$"):
        Preprocessor.from_saved({**settings, "delimiter": "||"}, arrays)
    renamed = {**arrays, "features": np.array(["x", *pre.features[1:]])}
    with pytest.raises(ValueError, match="^the feature names do not match the column "
                       "settings$"):
        Preprocessor.from_saved(settings, renamed)
    # settings of an older file: no delimiter, no na_values
    older = {k: v for k, v in settings.items() if k not in ("delimiter", "na_values")}
    back = Preprocessor.from_saved(older, arrays)
    assert (back.delimiter, back.na_values) == (None, [])


def test_numeric_columns_are_fitted_in_float64(tmp_path: Path) -> None:
    # the cells are read as float32; their mean, spread and fill are sums of many of them,
    # which float32 would round at every step
    cells = [f"{1000 + i / 7:.4f}" for i in range(3000)]
    cells[5] = ""
    t = table(tmp_path, "x,y\n" + "".join(f"{c},1\n" for c in cells))
    spec = InputColumn("x", "numeric", missing="mean")
    pre = Preprocessor.fit(t, None, [spec], ["y"], "regression")
    values = t.columns["x"].values.astype(np.float64)
    present = values[~np.isnan(values)]
    assert spec.fill == present.mean()
    filled = np.where(np.isnan(values), present.mean(), values)
    assert (pre.mean[0], pre.scale[0]) == (filled.mean(), filled.std())


def test_fold_case_compares_values_in_lower_case_with_spaces_collapsed(tmp_path: Path) -> None:
    t = table(tmp_path, "c,y\nLight Blue,1\nlight  blue,2\n LIGHT BLUE ,3\nRed,4\n")
    spec = InputColumn("c", "categorical", fold_case=True)
    pre = Preprocessor.fit(t, None, [spec], ["y"], "regression")
    assert spec.categories == ["light blue", "red"]
    new = table(tmp_path, "c,y\nlight\tBLUE,1\nRED,2\n")
    assert pre.transform_features(new).tolist() == [[1, 0], [0, 1]]


def test_parts_of_a_table_encode_as_each_part_alone_and_can_release_the_columns(
        tmp_path: Path) -> None:
    t = table(tmp_path, "x,c,y\n" + "".join(f"{i % 7},{'abc'[i % 3]},{i}\n"
                                             for i in range(600)))
    rows = np.arange(600)
    parts = [rows[rows % 5 != 0], rows[rows % 10 == 0], rows[rows % 10 == 5]]
    pre = Preprocessor.fit(t, parts[0], [InputColumn("x", "numeric"),
                                         InputColumn("c", "categorical")], ["y"], "regression")
    alone = [pre.transform_features(t, p, np.float64) for p in parts]
    for release in (False, True):
        together = pre.transform_parts(t, parts, np.float64, release=release)
        assert [X.dtype for X in together] == [np.float64] * 3
        assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))
        assert sorted(t.columns) == (["y"] if release else ["c", "x", "y"])
    t = table(tmp_path, "x,c,y\n1,a,1\n2,b,2\n3,c,3\n")
    # parts in no file order: each is encoded in its own order
    X = pre.transform_parts(t, [np.array([2, 0]), np.array([1])])
    assert np.array_equal(X[0], pre.transform_features(t, np.array([2, 0])))
    assert X[0][:, 1:].tolist() == [[0, 0, 1], [1, 0, 0]]


def test_block_rows_keep_a_block_within_a_few_megabytes() -> None:
    assert _block_rows(4) == BLOCK_ROWS
    assert _block_rows(0) == BLOCK_ROWS
    assert _block_rows(BLOCK_BYTES // 1000) == 1000
    assert _block_rows(BLOCK_BYTES) == 256  # never fewer rows than that


def labels(tmp_path: Path, text: str) -> Table:
    """A table whose target column is read as text, as bp reads class labels."""
    path = tmp_path / "d.csv"
    path.write_text(text)
    return read_csv(path, kinds={"y": "categorical"})


def test_class_labels_that_are_numbers_match_by_value(tmp_path: Path) -> None:
    t = labels(tmp_path, "x,y\n1,10\n2,9\n3,10\n4,2\n")
    pre = Preprocessor.fit(t, np.array([0, 1, 3]), [InputColumn("x", "numeric")], ["y"],
                           "classification")
    assert pre.classes == ["2", "9", "10"]  # as numbers
    new = labels(tmp_path, "x,y\n1,10.0\n2,2\n3,9e0\n")
    assert pre.class_indices(new).tolist() == [2, 0, 1]
    assert pre.transform_target(new).tolist() == [2, 0, 1]
    one = pre.transform_target(new, one_column=True)
    assert one.shape == (3, 1) and one.dtype == np.float32
    with pytest.raises(DataError, match=r"d\.csv:2: column 'y': label '10.5' was not in the "
                       r"training data \(classes: 2, 9, 10\)"):
        pre.class_indices(labels(tmp_path, "x,y\n1,10.5\n"))
    # text classes are compared as text
    t = labels(tmp_path, "x,y\n1,a\n2,1\n")
    pre = Preprocessor.fit(t, None, [InputColumn("x", "numeric")], ["y"], "classification")
    assert pre.classes == ["1", "a"]
    with pytest.raises(DataError, match="label '1.0' was not in the training data"):
        pre.class_indices(labels(tmp_path, "x,y\n1,1.0\n"))


def test_regression_targets_are_scaled_unless_told_not_to(tmp_path: Path) -> None:
    t = table(tmp_path, "x,y,z\n1,2,10\n2,4,10\n3,9,40\n")
    for scale, mean, spread in ((True, [5.0, 20.0], [np.std([2, 4, 9]), np.std([10, 10, 40])]),
                                (False, [0.0, 0.0], [1.0, 1.0])):
        pre = Preprocessor.fit(t, None, [InputColumn("x", "numeric")], ["y", "z"],
                               "regression", scale_target=scale)
        assert pre.target_mean.tolist() == mean
        assert np.allclose(pre.target_scale, spread, rtol=1e-12)
        Y = pre.transform_target(t, np.array([2, 0]), dtype=np.float64)
        assert np.allclose(Y, (np.array([[9, 40], [2, 10]]) - mean) / spread)
        assert np.allclose(pre.inverse_target(Y), [[9, 40], [2, 10]])


def test_a_text_column_without_a_token_in_the_training_rows_is_refused(tmp_path: Path) -> None:
    t = table(tmp_path, "t,y\n!!,1\n??,2\nhello,3\n")
    spec = InputColumn("t", "text", text=TextSpec())
    with pytest.raises(DataError, match=r"^\S*d\.csv: column 't': no token of the training "
                       r"rows matches the token pattern .* \(and min_count 1\); is it text\? If "
                       r"so, set data.columns.t.token_pattern$"):
        Preprocessor.fit(t, np.array([0, 1]), [spec], ["y"], "regression")


@pytest.mark.parametrize(("missing", "fill", "expected"), [
    ("constant", -1, -1.0), ("mean", None, 13 / 4), ("median", None, 3.5),
    ("most_frequent", None, 5.0)])
def test_a_missing_number_is_filled_as_told(tmp_path: Path, missing: str, fill: int | None,
                                           expected: float) -> None:
    t = table(tmp_path, "x,y\n1,1\n,2\n5,3\n5,4\n2,5\n9,6\n")
    spec = InputColumn("x", "numeric", missing=missing, fill=fill, scaling="none")
    # the training rows: 1, missing, 5, 5, 2 (not the 9 after them)
    pre = Preprocessor.fit(t, np.arange(5), [spec], ["y"], "regression")
    assert isinstance(spec.fill, float) and spec.fill == pytest.approx(expected, rel=1e-12)
    assert pre.transform_features(t, np.array([1]), np.float64).tolist() == [[spec.fill]]


@pytest.mark.parametrize(("kind", "missing"), [("numeric", "mean"), ("numeric", "median"),
                                               ("boolean", "most_frequent"),
                                               ("categorical", "most_frequent")])
def test_no_training_value_to_impute_from_is_an_error_saying_what_to_do(
        tmp_path: Path, kind: str, missing: str) -> None:
    t = table(tmp_path, "x,y\n,1\n,2\n" + ("true" if kind == "boolean" else "3") + ",3\n")
    if kind == "categorical":
        t = read_csv(t.path, kinds={"x": "categorical"})
    with pytest.raises(DataError, match=r"^\S*d\.csv: column 'x' has no values in the "
                       "training rows to impute from; drop it or fill it in$"):
        Preprocessor.fit(t, np.array([0, 1]), [InputColumn("x", kind, missing=missing)],
                         ["y"], "regression")


def test_numeric_inputs_are_scaled_in_float32_from_float32_mean_and_scale(
        tmp_path: Path) -> None:
    # small values and large ones: subtracting the mean rounds in float32
    cells = [f"{k / 1000:.4f}" for k in range(1, 41)] + [f"{5000 + k / 7:.4f}" for k in range(10)]
    t = table(tmp_path, "x,z,y\n" + "".join(f"{c},{i % 3 / 5},1\n" for i, c in enumerate(cells)))
    pre = Preprocessor.fit(t, None, [InputColumn("x", "numeric"),
                                     InputColumn("z", "numeric", scaling="minmax")],
                           ["y"], "regression")
    assert (pre.mean[1], pre.scale[1]) == (0, pytest.approx(0.4))  # a span below 1 too
    raw = np.column_stack([t.columns["x"].values, t.columns["z"].values])
    f32 = np.float32
    expected = (raw.astype(f32) - pre.mean.astype(f32)) / pre.scale.astype(f32)
    assert np.array_equal(pre.transform_features(t), expected)
    # which differs from the same computed in float64 and rounded once
    mean, scale = pre.mean.astype(f32).astype(np.float64), pre.scale.astype(f32).astype(np.float64)
    assert not np.array_equal(expected, ((raw - mean) / scale).astype(f32))


def test_a_missing_number_at_predict_time_is_named_on_its_line(tmp_path: Path) -> None:
    pre = Preprocessor.fit(table(tmp_path, "x,y\n1,1\n2,2\n"), None,
                           [InputColumn("x", "numeric")], ["y"], "regression")
    new = table(tmp_path, "x,y\n1,1\n,2\n3,3\n")
    with pytest.raises(DataError, match=r"^\S*d\.csv:3: column 'x': missing value; fill it "
                       r"in, or impute: data.columns.x.missing: mean"):
        pre.transform_features(new, np.array([2, 0, 1]))


def test_a_regression_preprocessor_read_back_keeps_its_target_scaling(tmp_path: Path) -> None:
    t = table(tmp_path, "x,y\n1,10\n2,30\n")
    pre = Preprocessor.fit(t, None, [InputColumn("x", "numeric")], ["y"], "regression")
    back = Preprocessor.from_saved(pre.to_json(), pre.to_arrays())
    assert (back.target_mean.tolist(), back.target_scale.tolist()) == ([20.0], [10.0])
    assert back.inverse_target(np.array([[1.0]])).tolist() == [[30.0]]


def test_targets_of_chosen_rows_in_the_asked_dtype_and_text_labels_among_number_classes(
        tmp_path: Path) -> None:
    t = labels(tmp_path, "x,y\n1,10\n2,9\n3,10\n4,2\n")
    pre = Preprocessor.fit(t, None, [InputColumn("x", "numeric")], ["y"], "classification")
    # the rows asked for, in their order (not every row)
    assert pre.transform_target(t, np.array([3, 1])).tolist() == [0, 1]
    assert pre.transform_target(t, np.array([2]), one_column=True).tolist() == [[2.0]]
    # a label that is no number, among classes that all are, is unseen, not a crash
    with pytest.raises(DataError, match=r"d\.csv:2: column 'y': label 'ten' was not in the "
                       r"training data \(classes: 2, 9, 10\)"):
        pre.class_indices(labels(tmp_path, "x,y\n1,ten\n"))
    r = table(tmp_path, "x,y\n1,10\n2,20\n3,40\n")
    reg = Preprocessor.fit(r, None, [InputColumn("x", "numeric")], ["y"], "regression")
    for dtype in (np.float32, np.float64):
        assert reg.transform_target(r, dtype=dtype).dtype == dtype
    assert reg.transform_target(r, np.array([2, 0])).shape == (2, 1)


def test_parts_encoded_over_several_blocks_equal_each_part_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # blocks of 256 rows (the fewest) and columns released after every block: a table of
    # 600 rows takes three blocks, the last one short
    monkeypatch.setattr(data, "BLOCK_BYTES", 64)
    # line 312 (row 310, a validation row) has a category the training rows never had
    text = "x,c,y\n" + "".join(f"{i % 7},{'z' if i == 310 else 'abc'[i % 3]},{i}\n"
                                for i in range(600))
    rows = np.arange(600)
    parts = [rows[rows % 5 != 0], rows[rows % 10 == 0], rows[rows % 10 == 5]]
    t = table(tmp_path, text)
    inputs = [InputColumn("x", "numeric"), InputColumn("c", "categorical", unseen="zeros")]
    pre = Preprocessor.fit(t, parts[0], inputs, ["y"], "regression")
    alone = [pre.transform_features(t, p, np.float64) for p in parts]
    for release in (False, True):
        t = table(tmp_path, text)
        notes: list[str] = []
        together = pre.transform_parts(t, parts, np.float64, notes=notes, release=release)
        assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))
        assert len(notes) == 1 and "1 row with a 'c' category not seen" in notes[0]
        assert "on line 312" in notes[0]
    # row sets in no file order are gathered block by block too
    shuffled = [rows[::-1][:500], rows[:7]]
    gathered = pre.transform_parts(table(tmp_path, text), shuffled, np.float64)
    for part, X in zip(shuffled, gathered, strict=True):
        assert np.array_equal(X, pre.transform_features(table(tmp_path, text), part,
                                                        np.float64))
