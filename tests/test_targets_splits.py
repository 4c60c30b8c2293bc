"""bpcli/targets.py and bpcli/splits.py on small inputs: the task a target column makes,
its labels read as numbers or text, and the seeded train/validation/test splits and
cross-validation folds (stratified by class)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpcli.csvfile import Table, read_csv
from bpcli.errors import DataError
from bpcli.splits import fold_rows, split_rows
from bpcli.targets import MAX_INFERRED_CLASSES, as_numbers, infer_task, is_number, sort_labels


def table(tmp_path: Path, text: str) -> Table:
    path = tmp_path / "d.csv"
    path.write_text(text)
    return read_csv(path, float64=["y"])


# -- targets --------------------------------------------------------------------------------
def column_of(tmp_path: Path, cells: list[str]) -> Table:
    return table(tmp_path, "y\n" + "".join(f"{c}\n" for c in cells))


@pytest.mark.parametrize(("cells", "task", "reason"), [
    (["a", "b", "a"], "classification", "target 'y' holds text labels"),
    # words among numbers, but more than 5% of the rows: labels, not typos
    (["1", "2", "x"] * 7, "classification", "target 'y' holds text labels"),
    (["1", "2", "", "2"], "classification", "target 'y' holds 2 distinct integers; set "
     "data.task: regression if they are amounts"),
    ([str(i) for i in range(MAX_INFERRED_CLASSES)] * 2, "classification",
     f"target 'y' holds {MAX_INFERRED_CLASSES} distinct integers; set data.task: regression "
     "if they are amounts"),
    ([str(i) for i in range(MAX_INFERRED_CLASSES + 1)], "regression",
     "target 'y' holds numbers"),
    (["1", "2.5", "3"], "regression", "target 'y' holds numbers"),
])
def test_the_target_column_decides_the_task(tmp_path: Path, cells: list[str], task: str,
                                            reason: str) -> None:
    t = column_of(tmp_path, cells)
    assert infer_task(t.columns["y"], "y", t) == (task, reason)


def test_a_text_column_of_numbers_decides_as_its_numbers(tmp_path: Path) -> None:
    # numbers read as text (a column the reader was told is categorical)
    path = tmp_path / "d.csv"
    for cells, task in ((["1", "2", "1"], "classification"), (["1", "2.5"], "regression"),
                        ([str(i) for i in range(MAX_INFERRED_CLASSES + 1)], "regression")):
        path.write_text("y\n" + "".join(f"{c}\n" for c in cells))
        t = read_csv(path, kinds={"y": "categorical"})
        assert t.columns["y"].kind == "categorical"
        assert infer_task(t.columns["y"], "y", t)[0] == task


def test_a_word_among_many_numbers_is_a_typo_named_on_its_line(tmp_path: Path) -> None:
    cells = [str(i % 7) + ".5" for i in range(40)]
    cells[1] = ""  # missing: neither a number nor a word
    cells[12], cells[30] = "n/a?", "#REF!"  # 2 of 40 rows: 5%
    path = tmp_path / "d.csv"
    path.write_text("i,y\n" + "".join(f"{i},{c}\n" for i, c in enumerate(cells)))
    t = read_csv(path, kinds={"y": "categorical"})  # as bp reads a column with words
    assert len(t) == 40
    with pytest.raises(DataError, match=r"^\S*d\.csv:14: column 'y': 'n/a\?' is not a number "
                       r"in a column of numbers \(2 cells, on lines 14, 32\); fix it, or set "
                       r"data.task: classification if the column holds labels$"):
        infer_task(t.columns["y"], "y", t)
    # without the table (no line to name) the words make labels
    assert infer_task(t.columns["y"], "y")[0] == "classification"
    # one word, sorted before the one number of the column
    path.write_text("y\n" + "7\n" * 30 + "#REF!\n" + "7\n" * 9)
    t = read_csv(path, kinds={"y": "categorical"})
    assert t.columns["y"].categories == ["#REF!", "7"]
    with pytest.raises(DataError, match=r"^\S*d\.csv:32: column 'y': '#REF!' is not a number "
                       r"in a column of numbers; fix it"):
        infer_task(t.columns["y"], "y", t)


def test_a_regression_target_of_text_names_the_line_and_the_way_out(tmp_path: Path) -> None:
    t = column_of(tmp_path, ["1.5", "2", "abc"])
    with pytest.raises(DataError, match=r"^\S*d\.csv:4: column 'y': 'abc' is not a number, and "
                       r"a regression target must be; set data.task: classification if these "
                       r"are labels$"):
        as_numbers(t.columns["y"], t, "y")


@pytest.mark.parametrize(("text", "number"), [
    ("1", True), ("-2.5e3", True), (" 7 ", True), ("nan", True), ("", False), ("1,5", False),
    ("seven", False)])
def test_is_number(text: str, number: bool) -> None:
    assert is_number(text) is number


def test_labels_sort_as_numbers_when_they_all_are() -> None:
    assert sort_labels(["10", "9", "1.5", "9"]) == ["1.5", "9", "10"]
    assert sort_labels(["b", "10", "9", "b"]) == ["10", "9", "b"]  # as text
    assert sort_labels([]) == []


# -- splits ---------------------------------------------------------------------------------
LABELS = np.array([0] * 50 + [1] * 30 + [2] * 20)


def test_a_split_takes_each_fraction_of_every_class_and_leaves_the_rest() -> None:
    parts = split_rows(100, [0.2, 0.1], 5, LABELS)
    assert [np.bincount(LABELS[p], minlength=3).tolist() for p in parts] == [
        [35, 21, 14], [10, 6, 4], [5, 3, 2]]
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))
    assert all(p.tolist() == sorted(p.tolist()) for p in parts)
    # seeded: the same seed gives the same split, another one another
    assert [p.tolist() for p in split_rows(100, [0.2, 0.1], 5, LABELS)] == \
        [p.tolist() for p in parts]
    assert split_rows(100, [0.2, 0.1], 6, LABELS)[1].tolist() != parts[1].tolist()
    # shuffled within each class
    assert parts[1].tolist() != [*range(10), *range(50, 56), *range(80, 84)]


def test_a_split_without_labels_rounds_each_part_of_all_rows() -> None:
    parts = split_rows(37, [0.25, 0.1], 0, None)
    assert [len(p) for p in parts] == [37 - 9 - 4, 9, 4]  # 9.25 and 3.7 rows, rounded
    assert sorted(np.concatenate(parts).tolist()) == list(range(37))
    assert split_rows(37, [0.25, 0.1], 1, None)[1].tolist() != parts[1].tolist()


@pytest.mark.parametrize(("size", "fractions", "counts", "large"), [
    # each part at least one row, and one left for the rest
    (3, [0.1, 0.1], [1, 1, 1], [32, 4, 4]),
    (4, [0.9], [1, 3], [4, 36]),  # 3.6 rows rounded to 4 would leave the rest nothing
    # 3 and 1.5 rounded: 3 and 2; one row stays for the rest (and of 40: 24 and 12)
    (5, [0.6, 0.3], [1, 3, 1], [4, 24, 12]),
    # too few rows for one in every part: rounded, none taken; 40 rows keep one back
    (2, [0.1, 0.1], [2, 0, 0], [32, 4, 4]),
    (2, [0.5, 0.5], [0, 1, 1], [1, 20, 19]),
    (10, [0.05], [9, 1], [38, 2]),  # half a row rounded to none: one, not more
    # 4.5 rows rounded to 4 would leave no row for the next part and the rest: 3
    (5, [0.9, 0.1], [1, 3, 1], [1, 36, 3]),
    (40, [0.2, 0.1, 0.3], [16, 8, 4, 12], [16, 8, 4, 12]),  # three parts after the rest
])
def test_a_small_class_gives_each_part_a_row_while_it_has_enough(
        size: int, fractions: list[float], counts: list[int], large: list[int]) -> None:
    labels = np.array([0] * 40 + [1] * size)
    parts = split_rows(len(labels), fractions, 0, labels)
    assert [int(np.count_nonzero(labels[p] == 1)) for p in parts] == counts
    assert [int(np.count_nonzero(labels[p] == 0)) for p in parts] == large


def test_folds_deal_every_class_across_the_folds_like_cards() -> None:
    labels = np.array([0] * 7 + [1] * 5 + [2] * 5 + [3] * 2)  # 19 rows
    folds = fold_rows(19, 4, 3, labels)
    assert sorted(np.concatenate(folds).tolist()) == list(range(19))
    assert all(f.tolist() == sorted(f.tolist()) for f in folds)
    # each class continues where the last left off: the folds' sizes differ by one at most,
    # the first ones taking the extra rows, and each class is spread as evenly
    assert [len(f) for f in folds] == [5, 5, 5, 4]
    for c, size in enumerate(np.bincount(labels)):
        per_fold = [int(np.count_nonzero(labels[f] == c)) for f in folds]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == size
    assert [f.tolist() for f in fold_rows(19, 4, 3, labels)] == [f.tolist() for f in folds]
    assert [f.tolist() for f in fold_rows(19, 4, 4, labels)] != [f.tolist() for f in folds]


def test_folds_without_labels_are_a_seeded_shuffle_dealt_in_turn() -> None:
    folds = fold_rows(10, 3, 0, None)
    assert [len(f) for f in folds] == [4, 3, 3]
    order = np.random.default_rng(0).permutation(10)  # the seed's shuffle, dealt in turn
    assert [f.tolist() for f in folds] == [sorted(order[k::3].tolist()) for k in range(3)]
