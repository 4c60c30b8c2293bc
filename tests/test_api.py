"""bp's models from Python: bpcli.load(...).predict(rows) agrees with bp predict."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import bpcli
from bpcli.cli import app
from bpcli.errors import DataError, UsageError
from tests.conftest import DATASETS, REPO, iris_config
from tests.test_runs import run_dirs

Writer = Callable[..., Path]


class FakeFrame:
    """What predict needs of a pandas DataFrame (pandas is no dependency of the tests)."""

    def __init__(self, columns: dict[str, list[Any]]) -> None:
        self._columns = columns
        self.columns = list(columns)

    def to_dict(self, orient: str) -> dict[str, list[Any]]:
        assert orient == "list"
        return self._columns


def trained(runner: CliRunner, in_tmp: Path, config: dict[str, Any]) -> Path:
    path = in_tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert runner.invoke(app, ["train", str(path)]).exit_code == 0
    (run_dir,) = run_dirs(in_tmp)
    return run_dir / "model.npz"


def predicted(runner: CliRunner, model: Path, data: Path) -> list[dict[str, str]]:
    result = runner.invoke(app, ["predict", str(model), str(data)])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def iris_rows() -> dict[str, list[Any]]:
    with (DATASETS / "iris.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {c: [float(r[c]) for r in rows] for c in rows[0] if c != "species"}


def test_a_classifier_predicts_as_bp_predict_does(runner: CliRunner, in_tmp: Path) -> None:
    model_path = trained(runner, in_tmp, iris_config())
    expected = predicted(runner, model_path, DATASETS / "iris.csv")
    model = bpcli.load(model_path)
    assert model.task == "classification" and model.targets == ["species"]
    assert model.classes == ["setosa", "versicolor", "virginica"]
    assert model.inputs == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    columns = iris_rows()
    records = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(),
                                                                          strict=True)]
    for rows in (columns, records, FakeFrame(columns)):
        labels = model.predict(rows)
        assert list(labels) == [row["species"] for row in expected]
        probabilities = model.predict_proba(rows)
        assert probabilities.shape == (150, 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
        for c, label in enumerate(model.classes):
            np.testing.assert_allclose(probabilities[:, c],
                                       [float(row[f"prob_{label}"]) for row in expected],
                                       atol=1e-6)


def test_a_regressor_predicts_in_the_targets_units(runner: CliRunner, in_tmp: Path) -> None:
    config = iris_config(data={"path": str(DATASETS / "diabetes.csv"),
                               "target": "progression"},
                         model={"layers": [{"type": "dense", "units": 8},
                                           {"type": "dense"}]})
    model_path = trained(runner, in_tmp, config)
    expected = [float(row["progression"])
                for row in predicted(runner, model_path, DATASETS / "diabetes.csv")]
    model = bpcli.load(model_path)
    with (DATASETS / "diabetes.csv").open() as f:
        records = [{k: v for k, v in row.items() if k != "progression"}
                   for row in csv.DictReader(f)]
    values = model.predict(records)
    assert values.shape == (442,) and model.classes is None
    np.testing.assert_allclose(values, expected, rtol=1e-7)
    assert values.std() > 1  # in the target's units (25 to 346), not standardised
    with pytest.raises(UsageError, match="predict_proba is for classifiers"):
        model.predict_proba(records)


def test_bad_rows_are_bp_errors_said_of_the_rows(runner: CliRunner, in_tmp: Path) -> None:
    model = bpcli.load(trained(runner, in_tmp, iris_config()))
    with pytest.raises(DataError, match="missing columns 'sepal_width'"):
        model.predict({"sepal_length": [1.0]})
    with pytest.raises(DataError, match=r"^row 2: column 'petal_width': missing value"):
        model.predict([{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
                        "petal_width": 0.2},
                       {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
                        "petal_width": None}])
    with pytest.raises(DataError, match="different lengths"):
        model.predict({"sepal_length": [1.0, 2.0], "sepal_width": [1.0]})
    with pytest.raises(DataError, match="not int"):
        model.predict(5)
    assert issubclass(DataError, bpcli.BpError)


def test_importing_bpcli_loads_nothing_heavy() -> None:
    """The command line sets the BLAS threads before NumPy loads: bpcli must not load it."""
    code = "import sys, bpcli; print('numpy' in sys.modules, bpcli.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.split()
    assert out == ["False", bpcli.__version__]
