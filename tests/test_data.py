"""bpcli/data.py on small tables: targets, imputation and row bookkeeping that the
end-to-end tests never reached (found by branch coverage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpcli.csvfile import Table, read_csv
from bpcli.data import InputColumn, Preprocessor, _owner
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
