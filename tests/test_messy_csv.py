"""Messy real-world CSVs in one pass (issue 15): every data problem reported at once,
missing-value markers, vocabularies that survive rare and unseen values, identifiers,
missing targets, training on every row, labels compared as trained, and predict options."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.config import load_config
from bpcli.csvfile import read_csv
from bpcli.dates import DATE_FEATURES, date_features, day_first_order, parse_date
from bpcli.errors import ConfigError, DataError, DataProblems
from bpcli.experiment import prepare
from bpcli.modelfile import load_model
from bpcli.splits import split_rows
from tests.conftest import CONFIGS, DATASETS, REPO
from tests.datafiles import config, experiment, write_rows

Writer = Callable[..., Path]


def problems_of(write_config: Writer, data: dict[str, Any]) -> list[str]:
    with pytest.raises(DataError) as caught:
        experiment(write_config, data)
    return caught.value.lines()


def numbers_file(path: Path, n: int = 40, **cells: dict[int, str]) -> Path:
    """Columns a, b (numbers) and y (three classes); ``cells`` put texts at data rows
    (0-based): ``a={3: "?"}``. Row ``i`` is on line ``i + 2``."""
    rows = []
    for i in range(n):
        row = {"a": f"{i * 0.5:g}", "b": f"{(i * 7) % 11}", "y": str(i % 3 + 1)}
        for column, texts in cells.items():
            if i in texts:
                row[column] = texts[i]
        rows.append([row["a"], row["b"], row["y"]])
    return write_rows(path, ["a", "b", "y"], rows)


# -- A: every problem at once ---------------------------------------------------------------


def test_every_data_problem_is_listed_in_one_run(tmp_path: Path, write_config: Writer,
                                                 runner: CliRunner) -> None:
    path = numbers_file(tmp_path / "d.csv", 200, a={3: "oops", 150: "x1"}, b={133: ""},
                        y={10: ""})
    result = runner.invoke(app, ["validate", str(write_config(config(
        {"path": str(path), "target": "y"})))])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"bp: {path}:5: column 'a': 'oops' is not a number (nor 'x1') "
                               "(2 cells, on lines 5, 152)")
    assert any(f"{path}:12: column 'y': the target is missing" in line
               and "data.missing_target: drop" in line for line in lines)
    assert any(f"{path}:135: column 'b': missing value" in line for line in lines)
    assert lines[-1] == f"bp: 3 problems in {path}; fix them and run again"
    assert "Traceback" not in result.output


def test_missing_values_are_counted_per_column(tmp_path: Path, write_config: Writer) -> None:
    path = numbers_file(tmp_path / "d.csv", 40, a=dict.fromkeys(range(0, 40, 5), ""))
    (problem,) = problems_of(write_config, {"path": str(path), "target": "y"})
    assert problem.startswith(f"{path}:2: column 'a': missing value (8 cells, on lines 2, 7, "
                              "12, 17, 22, ...); fill it in, or impute: "
                              "data.columns.a.missing: mean")


def test_bad_cells_of_a_predict_file_come_together(tmp_path: Path) -> None:
    path = numbers_file(tmp_path / "d.csv", 30, a={2: "x"}, b={5: "true", 6: "y"})
    with pytest.raises(DataProblems) as caught:
        read_csv(path, kinds={"a": "numeric", "b": "numeric"})
    lines = caught.value.lines()
    assert len(lines) == 3 and lines[2] == f"2 problems in {path}; fix them and run again"
    assert lines[1].startswith(f"{path}:7: column 'b': 'true' is not a number (nor 'y') "
                               "(2 cells, on lines 7, 8)")


# -- B: missing-value markers and words among numbers ----------------------------------------


def test_a_few_words_among_numbers_are_listed_with_the_na_values_hint(
        tmp_path: Path, write_config: Writer) -> None:
    path = numbers_file(tmp_path / "d.csv", 40, a={4: "unknown", 9: "unknown", 30: "?"})
    (problem,) = problems_of(write_config, {"path": str(path), "target": "y"})
    assert problem.startswith(f"{path}:6: column 'a': 'unknown' is not a number (nor '?') "
                              "(3 cells, on lines 6, 11, 32)")
    assert "data.na_values: ['unknown', '?']" in problem


def test_a_column_of_numbers_made_text_by_many_words_is_pointed_out(
        tmp_path: Path, write_config: Writer) -> None:
    path = numbers_file(tmp_path / "d.csv", 40, a=dict.fromkeys(range(0, 40, 5), "unknown"))
    exp = experiment(write_config, {"path": str(path), "target": "y"})
    assert exp.preprocessor.inputs[0].kind == "categorical"  # 20% words: text
    assert ("warning: column 'a' is read as text, but 80% of its cells are numbers; if its "
            "other values ('unknown') mark missing cells: data.na_values: ['unknown'], or "
            "to list them as problems: data.columns.a.type: numeric") in exp.notes
    exp = experiment(write_config, {"path": str(path), "target": "y",
                                    "na_values": ["unknown"], "missing": "mean"})
    assert exp.preprocessor.inputs[0].kind == "numeric"
    assert not any("warning" in note for note in exp.notes)


@pytest.mark.parametrize("where", ["data", "column"])
def test_na_values_mark_missing_cells(tmp_path: Path, write_config: Writer,
                                      where: str) -> None:
    path = numbers_file(tmp_path / "d.csv", 40, a={4: "unknown", 9: " ? ", 30: "-"})
    data: dict[str, Any] = {"path": str(path), "target": "y", "missing": "mean"}
    if where == "data":
        data["na_values"] = ["unknown", "?", "-"]
    else:
        data["columns"] = {"a": {"na_values": ["unknown", "?", "-"]}}
    exp = experiment(write_config, data)
    (a, _) = exp.preprocessor.inputs
    assert a.kind == "numeric"
    assert a.na_values == ["unknown", "?", "-"]
    table = read_csv(path, na_values={"a": ["unknown", "?", "-"]})
    assert np.isnan(table.columns["a"].values[[4, 9, 30]]).all()
    assert np.isfinite(np.delete(table.columns["a"].values, [4, 9, 30])).all()


def test_na_values_in_a_text_column(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "d.csv", ["c"], [["red"], ["?"], ["blue"], ["-"]])
    table = read_csv(path, na_values={"c": ["?", "-"]})
    assert table.columns["c"].categories == ["blue", "red"]
    assert table.columns["c"].missing().tolist() == [False, True, False, True]


# -- C: vocabularies --------------------------------------------------------------------------


def cities_file(path: Path, n: int = 60, **cells: dict[int, str]) -> Path:
    """Columns city (berlin, paris, rome in turn), x and y (two classes)."""
    rows = []
    for i in range(n):
        row = {"city": ["berlin", "paris", "rome"][i % 3], "x": f"{i % 7}", "y": "ab"[i % 2]}
        for column, texts in cells.items():
            if i in texts:
                row[column] = texts[i]
        rows.append([row["city"], row["x"], row["y"]])
    return write_rows(path, ["city", "x", "y"], rows)


@pytest.mark.parametrize("seed", range(4))
def test_a_value_only_in_validation_rows_never_fails_training(
        tmp_path: Path, write_config: Writer, seed: int) -> None:
    path = cities_file(tmp_path / "d.csv", 60, city={17: "oslo"})
    exp = experiment(write_config, {"path": str(path), "target": "y", "split_seed": seed})
    (city, _) = exp.preprocessor.inputs
    assert ("oslo" in city.categories) != any("'oslo'" in note for note in exp.notes)


def test_rare_values_share_the_other_input(tmp_path: Path, write_config: Writer) -> None:
    path = cities_file(tmp_path / "d.csv", 60, city={3: "oslo", 6: "oslo", 9: "kyiv"})
    exp = experiment(write_config, {"path": str(path), "target": "y",
                                    "validation_fraction": 0.0, "min_frequency": 3})
    (city, _) = exp.preprocessor.inputs
    assert city.categories == ["berlin", "paris", "rome"] and city.other
    assert exp.preprocessor.features[:4] == ["city=berlin", "city=paris", "city=rome",
                                             "city=<other>"]
    np.testing.assert_array_equal(exp.X_train[[3, 6, 9], 3], [1, 1, 1])
    assert exp.X_train[:, 3].sum() == 3  # only those rows
    assert any("2 rare values (such as 'kyiv') share the input city=<other>" in note
               for note in exp.notes)
    # max_categories keeps the most frequent
    capped = experiment(write_config, {"path": str(path), "target": "y",
                                       "validation_fraction": 0.0,
                                       "columns": {"city": {"max_categories": 1}}})
    assert capped.preprocessor.inputs[0].categories == ["paris"]  # 20 rows, rome too
    assert capped.preprocessor.inputs[0].other


def cities_model(tmp_path: Path, write_config: Writer, runner: CliRunner,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model trained (in tmp_path) on cities where 'oslo' is rare: 'other' exists."""
    monkeypatch.chdir(tmp_path)
    path = cities_file(tmp_path / "d.csv", 60, city={3: "oslo"})
    cfg = write_config(config({"path": str(path), "target": "y", "min_frequency": 2}))
    assert runner.invoke(app, ["train", str(cfg)]).exit_code == 0
    (model,) = (tmp_path / "runs").glob("*/model.npz")
    return model


def test_unseen_values_at_predict_go_to_other_with_a_note(
        tmp_path: Path, write_config: Writer, runner: CliRunner,
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = cities_model(tmp_path, write_config, runner, monkeypatch)
    new = write_rows(tmp_path / "new.csv", ["city", "x"], [["rome", 1], ["lima", 2],
                                                           ["lima", 3]])
    result = runner.invoke(app, ["predict", str(model), str(new)])
    assert result.exit_code == 0, result.output
    assert (f"{new}: 2 rows with a 'city' value outside the model's vocabulary (rare in "
            "training, or new) (first: 'lima' on line 3); encoded as city=<other>") in \
        result.stderr


def test_unseen_values_follow_the_unseen_option_at_predict_and_evaluate(
        tmp_path: Path, write_config: Writer, runner: CliRunner,
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = cities_model(tmp_path, write_config, runner, monkeypatch)
    new = write_rows(tmp_path / "new.csv", ["city", "x", "y"], [["rome", 1, "a"],
                                                                ["lima", 2, "b"]])
    refused = runner.invoke(app, ["predict", str(model), str(new), "--unseen", "error"])
    assert refused.exit_code == 2 and "'lima'" in refused.stderr
    assert runner.invoke(app, ["evaluate", str(model), str(new), "--unseen", "error"]
                         ).exit_code == 2
    other = runner.invoke(app, ["predict", str(model), str(new)])
    zeros = runner.invoke(app, ["predict", str(model), str(new), "--unseen", "zeros"])
    assert other.exit_code == zeros.exit_code == 0
    assert "not seen in training (first: 'lima' on line 3); encoded as all zeros" in zeros.stderr
    assert other.stdout.splitlines()[1] == zeros.stdout.splitlines()[1]  # rome is known
    assert other.stdout.splitlines()[2] != zeros.stdout.splitlines()[2]  # lima: other or 0
    bad = runner.invoke(app, ["predict", str(model), str(new), "--unseen", "skip"])
    assert bad.exit_code == 2 and "use one of other, zeros, error" in bad.stderr


def test_an_identifier_is_left_out_with_a_warning(tmp_path: Path,
                                                  write_config: Writer) -> None:
    rows = [[f"ID{i:04d}", i % 5, "ab"[i % 2]] for i in range(300)]
    path = write_rows(tmp_path / "d.csv", ["id", "x", "y"], rows)
    exp = experiment(write_config, {"path": str(path), "target": "y"})
    assert exp.preprocessor.columns == ["x"]
    assert ("warning: column 'id' left out: 300 distinct values in 300 cells, like an "
            "identifier; to use it anyway: data.columns.id.type: categorical") in \
        "\n".join(exp.notes)
    kept = experiment(write_config, {"path": str(path), "target": "y", "max_categories": 5,
                                     "columns": {"id": {"type": "categorical"}}})
    assert kept.preprocessor.columns == ["id", "x"]


def test_case_and_space_variants_are_pointed_out_and_folded_on_request(
        tmp_path: Path, write_config: Writer) -> None:
    path = cities_file(tmp_path / "d.csv", 60, city={0: " Berlin", 3: "BERLIN",
                                                     6: "new  york", 9: "New York"})
    exp = experiment(write_config, {"path": str(path), "target": "y",
                                    "validation_fraction": 0.0})
    notes = "\n".join(exp.notes)
    assert ("warning: column 'city': 'BERLIN', 'Berlin', 'berlin'; 'New York', 'new  york' "
            "differ only in case or spaces") in notes
    assert "data.columns.city.fold_case: true" in notes
    folded = experiment(write_config, {"path": str(path), "target": "y",
                                       "validation_fraction": 0.0,
                                       "columns": {"city": {"fold_case": True}}})
    assert folded.preprocessor.inputs[0].categories == ["berlin", "new york", "paris", "rome"]
    assert folded.X_train[[0, 3], 0].tolist() == [1, 1]
    assert "fold_case" not in "\n".join(folded.notes)


# -- D: missing targets and training on every row -------------------------------------------


def test_rows_without_a_target_can_be_left_out(tmp_path: Path, write_config: Writer) -> None:
    path = numbers_file(tmp_path / "d.csv", 40, y={10: "", 20: "NA"})
    exp = experiment(write_config, {"path": str(path), "target": "y",
                                    "missing_target": "drop", "validation_fraction": 0.0})
    assert len(exp.X_train) == 38
    assert f"{path}: 2 rows without a target left out (data.missing_target: drop)" in exp.notes
    np.testing.assert_array_equal(exp.Y_train, np.delete(np.arange(40) % 3, [10, 20]))


def test_validation_fraction_zero_trains_on_every_row(tmp_path: Path, write_config: Writer,
                                                      runner: CliRunner,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = numbers_file(tmp_path / "d.csv", 40)
    cfg = config({"path": str(path), "target": "y", "validation_fraction": 0},
                 training={"epochs": 3, "batch_size": 16, "seed": 0})
    exp = prepare(load_config(write_config(cfg)))
    assert len(exp.X_train) == 40 and len(exp.X_val) == 0
    assert exp.config.data.validation_fraction == 0
    result = runner.invoke(app, ["train", str(write_config(cfg))])
    assert result.exit_code == 0, result.output
    (summary,) = (tmp_path / "runs").glob("*/summary.json")
    assert '"best_epoch": 3' in summary.read_text()  # the last epoch is the model


@pytest.mark.parametrize(("training", "message"), [
    ({"early_stopping": {"patience": 2}}, "training.early_stopping: early stopping watches"),
    ({"schedule": {"name": "reduce_on_plateau"}},
     "training.schedule: the reduce_on_plateau schedule watches"),
])
def test_validation_fraction_zero_refuses_what_watches_validation(
        tmp_path: Path, write_config: Writer, training: dict[str, Any], message: str) -> None:
    path = numbers_file(tmp_path / "d.csv", 40)
    cfg = config({"path": str(path), "target": "y", "validation_fraction": 0},
                 training={"epochs": 3, **training})
    with pytest.raises(ConfigError) as caught:
        prepare(load_config(write_config(cfg)))
    assert message in str(caught.value)
    assert "data.validation_fraction: 0 leaves none" in str(caught.value)


# -- E and F: evaluate and predict on files as they come --------------------------------------


@pytest.fixture
def numbers_model(tmp_path: Path, write_config: Writer, runner: CliRunner,
                  monkeypatch: pytest.MonkeyPatch) -> Path:
    """A classifier of y (classes 1, 2, 3) from a and b, trained with mean imputation."""
    monkeypatch.chdir(tmp_path)
    path = numbers_file(tmp_path / "train.csv", 60)
    cfg = write_config(config({"path": str(path), "target": "y", "missing": "mean"},
                              training={"epochs": 5, "batch_size": 16, "seed": 0}))
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 0, result.output
    (model,) = (tmp_path / "runs").glob("*/model.npz")
    return model


def test_labels_are_compared_as_the_kind_they_were_trained_as(
        numbers_model: Path, tmp_path: Path, runner: CliRunner) -> None:
    plain = numbers_file(tmp_path / "plain.csv", 30)
    text = plain.read_text().splitlines()
    floats = tmp_path / "floats.csv"
    floats.write_text("\n".join([text[0], *(line[:line.rindex(",")] + ","
                                            + line[line.rindex(",") + 1:] + ".0"
                                            for line in text[1:])]) + "\n")
    assert floats.read_text().splitlines()[1].endswith(",1.0")
    want = runner.invoke(app, ["evaluate", str(numbers_model), str(plain), "--json"])
    got = runner.invoke(app, ["evaluate", str(numbers_model), str(floats), "--json"])
    assert got.exit_code == 0, got.output
    assert got.stdout == want.stdout


def test_evaluate_scores_the_labelled_rows(numbers_model: Path, tmp_path: Path,
                                           runner: CliRunner) -> None:
    path = numbers_file(tmp_path / "some.csv", 30, y={3: "", 7: "", 8: ""})
    result = runner.invoke(app, ["evaluate", str(numbers_model), str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"support": 27' in result.stdout
    assert f"bp: warning: {path}: 3 rows without a target not scored; 27 scored" in \
        result.stderr
    none = numbers_file(tmp_path / "none.csv", 5, y=dict.fromkeys(range(5), ""))
    result = runner.invoke(app, ["evaluate", str(numbers_model), str(none)])
    assert result.exit_code == 2
    assert "no row has a value in the target column y" in result.stderr


def test_predict_keeps_columns_names_outputs_after_the_target_and_takes_a_delimiter(
        numbers_model: Path, tmp_path: Path, runner: CliRunner) -> None:
    rows = [[f"r{i}", f"{i * 0.5:g}".replace(".", ","), i % 4, i % 3 + 1] for i in range(6)]
    path = write_rows(tmp_path / "new.csv", ["id", "a", "b", "y"], rows, delimiter=";")
    # a semicolon file whose first rows a sniffer could take for comma-separated
    result = runner.invoke(app, ["predict", str(numbers_model), str(path), "--delimiter",
                                 ";", "--keep", "id", "--keep", "y"])
    assert result.exit_code == 0, result.output
    got = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(got[0]) == ["id", "y", "predicted_y", "prob_1", "prob_2", "prob_3"]
    assert [r["id"] for r in got] == [f"r{i}" for i in range(6)]
    assert [r["y"] for r in got] == [str(i % 3 + 1) for i in range(6)]
    # a column the model reads as numbers is carried as written, not as float32 digits
    numbers = runner.invoke(app, ["predict", str(numbers_model), str(path), "--delimiter",
                                  "semicolon", "--keep", "a"])
    assert [r["a"] for r in csv.DictReader(io.StringIO(numbers.stdout))] == \
        ["0", "0.5", "1", "1.5", "2", "2.5"]
    missing = runner.invoke(app, ["predict", str(numbers_model), str(path), "--delimiter",
                                  ";", "--keep", "ids"])
    assert "missing column 'ids' (did you mean 'id'?)" in missing.stderr
    assert "--keep asks for ids" in missing.stderr
    bad = runner.invoke(app, ["predict", str(numbers_model), str(path), "--delimiter", "x"])
    assert bad.exit_code == 2 and "--delimiter 'x'" in bad.stderr
    evaluated = runner.invoke(app, ["evaluate", str(numbers_model), str(path),
                                    "--delimiter", "semicolon"])
    assert evaluated.exit_code == 0, evaluated.output


def test_predict_reports_every_missing_cell_at_once(tmp_path: Path, write_config: Writer,
                                                    runner: CliRunner,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = write_config(config({"path": str(numbers_file(tmp_path / "t.csv", 40)),
                               "target": "y"}))
    assert runner.invoke(app, ["train", str(cfg)]).exit_code == 0
    (model,) = (tmp_path / "runs").glob("*/model.npz")
    path = numbers_file(tmp_path / "new.csv", 10, a={2: "", 5: ""}, b={7: ""})
    result = runner.invoke(app, ["predict", str(model), str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"bp: {path}:4: column 'a': missing value (2 cells, on lines 4, 7); fill it in, or "
        "impute: data.columns.a.missing: mean (or data.missing for every column)",
        f"bp: {path}:9: column 'b': missing value; fill it in, or impute: "
        "data.columns.b.missing: mean (or data.missing for every column)",
        f"bp: 2 problems in {path}; fix them and run again"]


def test_inspect_shows_the_fills(numbers_model: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["inspect", str(numbers_model)])
    assert result.exit_code == 0, result.output
    fill = load_model(numbers_model).preprocessor.inputs[0].fill
    assert isinstance(fill, float)
    assert f"numeric; missing cells: filled with {fill:.6g} (mean)" in result.output


# -- G: dates -----------------------------------------------------------------------------------


def dates_file(path: Path, n: int = 40, texts: dict[int, str] | None = None) -> Path:
    """A date column (ISO and year/month/day with slashes, in turn), x and y."""
    rows = []
    for i in range(n):
        day = dt.date(2012, 1, 3) + dt.timedelta(days=11 * i)
        text = day.isoformat() if i % 2 else day.strftime("%Y/%m/%d")
        rows.append([(texts or {}).get(i, text), i % 5, "ab"[i % 2]])
    return write_rows(path, ["when", "x", "y"], rows)


def test_a_date_column_becomes_days_year_and_cycles(tmp_path: Path,
                                                    write_config: Writer) -> None:
    path = dates_file(tmp_path / "d.csv")
    exp = experiment(write_config, {"path": str(path), "target": "y"})
    when = exp.preprocessor.inputs[0]
    assert when.kind == "date"
    assert exp.preprocessor.features[:8] == [f"when:{f}" for f in DATE_FEATURES]
    pre = exp.preprocessor
    raw = exp.X_val[:, :8].astype(np.float64) * pre.scale[:8] + pre.mean[:8]
    train_rows, val_rows = split_rows(40, [0.2], 0, np.arange(40) % 2)
    first = dt.date(2012, 1, 3) + dt.timedelta(days=11 * int(val_rows[0]))
    np.testing.assert_allclose(raw[0], date_features(first), atol=1e-3)
    assert date_features(dt.date(2012, 1, 3))[:2] == [15342.0, 2012.0]
    assert "(1 date, 8 inputs each)" in exp.notes[-1]


def test_a_text_that_is_not_a_date_is_listed(tmp_path: Path, write_config: Writer) -> None:
    path = dates_file(tmp_path / "d.csv", 40, {5: "2012-13-45", 9: "soon"})
    (problem,) = problems_of(write_config, {"path": str(path), "target": "y"})
    assert problem.startswith(f"{path}:7: column 'when': '2012-13-45' is not a date (nor "
                              "'soon') (2 cells, on lines 7, 11); write a date such as ")


def test_dates_in_a_declared_format_and_day_first_order(tmp_path: Path,
                                                        write_config: Writer) -> None:
    rows = [[(dt.date(2020, 1, 1) + dt.timedelta(days=3 * i)).strftime("%d %b %Y"), i % 2]
            for i in range(30)]
    path = write_rows(tmp_path / "d.csv", ["when", "y"], rows)
    exp = experiment(write_config, {"path": str(path), "target": "y", "columns": {
        "when": {"type": "date", "date_format": "%d %b %Y"}}})
    assert exp.preprocessor.inputs[0].kind == "date"
    assert parse_date("03/04/2012") == dt.date(2012, 4, 3)
    assert parse_date("03/04/2012", day_first=False) == dt.date(2012, 3, 4)
    assert day_first_order(["03/04/2012", "12/25/2012"]) == (False, True)
    assert day_first_order(["03/04/2012", "02/01/2012"]) == (True, False)
    ambiguous = write_rows(tmp_path / "a.csv", ["when", "y"], [
        [f"{1 + i % 12:02d}/{1 + i % 12:02d}/2012", i % 2] for i in range(30)])
    exp = experiment(write_config, {"path": str(ambiguous), "target": "y"})
    assert any("read day first" in note and "date_format: '%m/%d/%Y'" in note
               for note in exp.notes)


def test_predict_applies_the_dates_of_the_model(tmp_path: Path, write_config: Writer,
                                                runner: CliRunner,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = dates_file(tmp_path / "d.csv", 60)
    cfg = write_config(config({"path": str(path), "target": "y", "missing": "median"}))
    assert runner.invoke(app, ["train", str(cfg)]).exit_code == 0
    (model,) = (tmp_path / "runs").glob("*/model.npz")
    saved = load_model(model)
    when = saved.preprocessor.inputs[0]
    assert when.kind == "date" and parse_date(str(when.fill)) is not None
    new = dates_file(tmp_path / "new.csv", 4, {1: "", 2: "2031-02-28"})
    result = runner.invoke(app, ["predict", str(model), str(new)])
    assert result.exit_code == 0, result.output
    table = read_csv(new, saved.preprocessor.columns, kinds=saved.preprocessor.kinds)
    X = saved.preprocessor.transform_features(table)
    raw = X[:, :8].astype(np.float64) * saved.preprocessor.scale[:8] + \
        saved.preprocessor.mean[:8]
    np.testing.assert_allclose(raw[2], date_features(dt.date(2031, 2, 28)), atol=1e-2)
    np.testing.assert_allclose(raw[1], date_features(parse_date(str(when.fill))),
                               atol=1e-2)
    probs = saved.network.forward(X)
    got = list(csv.DictReader(io.StringIO(result.stdout)))
    np.testing.assert_allclose([[float(r["prob_a"]), float(r["prob_b"])] for r in got],
                               probs, atol=1e-6)


# -- H: the messy example -------------------------------------------------------------------


def test_the_messy_example_needs_one_validate_pass(tmp_path: Path, write_config: Writer,
                                                   runner: CliRunner) -> None:
    rentals = DATASETS / "rentals.csv"
    naive = write_config(config({"path": str(rentals), "target": "rent"}))
    result = runner.invoke(app, ["validate", str(naive)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    for expected in ("column 'rooms': '?' is not a number", "data.na_values: ['?']",
                     "column 'area_m2': '-' is not a number (nor 'unknown')",
                     "column 'rent': the target is missing", "data.missing_target: drop",
                     "column 'balcony': missing value",
                     "warning: column 'listing_id' left out",
                     "data.columns.city.fold_case: true"):
        assert any(expected in line for line in lines), expected
    assert lines[-1] == f"bp: 5 problems in {rentals}; fix them and run again"
    # the shipped config is those fixes, and trains
    result = runner.invoke(app, ["validate", str(CONFIGS / "rentals.yaml")])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    assert "1 date, 8 inputs each" in result.output


def test_the_messy_example_is_reproducible(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_rentals",
                                                  REPO / "scripts" / "make_rentals.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path / "rentals.csv")
    assert (tmp_path / "rentals.csv").read_bytes() == (DATASETS / "rentals.csv").read_bytes()


def test_evaluate_reads_targets_with_the_markers_of_training(
        tmp_path: Path, write_config: Writer, runner: CliRunner,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = write_config(config({"path": str(numbers_file(tmp_path / "t.csv", 40)),
                               "target": "y", "na_values": ["?"]}))
    assert runner.invoke(app, ["train", str(cfg)]).exit_code == 0
    (model,) = (tmp_path / "runs").glob("*/model.npz")
    path = numbers_file(tmp_path / "new.csv", 10, y={4: "?"})
    result = runner.invoke(app, ["evaluate", str(model), str(path)])
    assert result.exit_code == 0, result.output
    assert "1 row without a target not scored; 9 scored" in result.stderr


def test_a_typo_among_numeric_targets_is_listed_once_with_the_others(
        tmp_path: Path, write_config: Writer) -> None:
    rows = [[i % 7, f"{i * 1.5 + 0.25}"] for i in range(60)]
    rows[12][1], rows[40][1] = "12x", "n/k"
    rows[20][0] = "oops"
    path = write_rows(tmp_path / "d.csv", ["x", "y"], rows)
    problems = problems_of(write_config, {"path": str(path), "target": "y"})
    assert len(problems) == 3, problems
    assert problems[1].startswith(f"{path}:14: column 'y': '12x' is not a number in a column "
                                  "of numbers (2 cells, on lines 14, 42)")
