"""bp export --onnx: every example config's model, run by onnxruntime on raw columns, gives
``bp predict``'s numbers (and labels), rows with missing values and unseen categories too."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.csvfile import MISSING_TOKENS
from bpcli.dates import EPOCH, parse_date
from bpcli.inference import class_probabilities, network_outputs, read_inputs
from bpcli.modelfile import load_model
from tests.conftest import CONFIGS

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOLERANCE = 1e-5
EPOCHS = {"diabetes-advanced": 6}  # its warm-up (5 epochs) must end before training does
#: A row per model with cells bp fills in (rentals: missing balcony, area and date, and a
#: city never seen) and one the model's policy refuses (a missing rooms count).
EXTRA_ROWS = {
    "rentals": ["L1,,Atlantis,2,,,900", "L2,2021-03-05,  BERLIN   ,3,70.5,TRUE,1200",
                "L3,05.03.2021,munich,,50,false,800", "L4,NA,gotham city,1,-,?,500"],
}
# which extra rows bp predict refuses (rooms has no fill: data.missing median fills it)
REFUSED: dict[str, set[int]] = {}


def train(config: Path, root: Path, name: str, *overrides: str) -> Path:
    """``config`` trained for a couple of epochs into ``root/name``; its model.npz."""
    epochs = EPOCHS.get(name, 2)
    result = CliRunner().invoke(app, [
        "train", str(config), "--set", f"training.epochs={epochs}",
        "--set", f"output.runs_dir={root / name}", "--set", f"output.name={name}",
        *(a for o in overrides for a in ("--set", o))])
    assert result.exit_code == 0, result.output
    (model,) = (root / name).glob("*/model.npz")
    return model


def export(model: Path, out: Path) -> Any:
    result = CliRunner().invoke(app, ["export", str(model), "--onnx", str(out)])
    assert result.exit_code == 0, result.output
    assert "written to" in result.output
    return onnx.load(str(out))


def data_path(config: Path) -> Path:
    settings = yaml.safe_load(config.read_text())
    return (config.parent / settings["data"]["path"]).resolve()


def raw_inputs(model: Path, rows: list[dict[str, str]]) -> dict[str, np.ndarray]:
    """The ONNX inputs of CSV rows, as a caller would make them from the texts: numbers
    as float32 (NaN when missing), true/false as 1/0, dates as days since 1970-01-01,
    text as it is (trimmed)."""
    pre = load_model(model).preprocessor
    feeds: dict[str, np.ndarray] = {}
    for spec in pre.inputs:
        texts = [row[spec.name].strip(" \t") for row in rows]
        missing = {"", *MISSING_TOKENS, *spec.na_values}
        if spec.kind == "categorical":
            feeds[spec.name] = np.array(texts, dtype=object)
        elif spec.kind == "date":
            dates = [None if t in missing else parse_date(t, spec.date_format, spec.day_first)
                     for t in texts]
            feeds[spec.name] = np.array([math.nan if d is None else (d - EPOCH).days
                                         for d in dates], dtype=np.float32)
        elif spec.kind == "boolean":
            feeds[spec.name] = np.array([math.nan if t in missing else t.lower() == "true"
                                         for t in texts], dtype=np.float32)
        else:
            feeds[spec.name] = np.array([math.nan if t in missing else float(t)
                                         for t in texts], dtype=np.float32)
    return feeds


def bp_outputs(model: Path, csv_path: Path) -> np.ndarray:
    """bp predict's numbers at full precision: probabilities, or values in the target's
    units."""
    saved = load_model(model)
    pre = saved.preprocessor
    table = read_inputs(pre, csv_path, with_targets=False)
    pre.check_cells(table)
    outputs = network_outputs(saved.network, pre.transform_features(table))
    if pre.task == "regression":
        return pre.inverse_target(outputs)
    return class_probabilities(outputs)


def bp_predict(model: Path, csv_path: Path) -> list[dict[str, str]]:
    result = CliRunner().invoke(app, ["predict", str(model), str(csv_path)])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx")
    return {config.stem: train(config, root, config.stem)
            for config in sorted(CONFIGS.glob("*.yaml"))}


def test_every_example_config_is_covered(trained: dict[str, Path]) -> None:
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(trained)


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_onnxruntime_agrees_with_bp_predict(name: str, trained: dict[str, Path],
                                            tmp_path: Path) -> None:
    model = trained[name]
    exported = tmp_path / f"{name}.onnx"
    proto = export(model, exported)
    onnx.checker.check_model(proto, full_check=True)
    header, rows = read_rows(data_path(CONFIGS / f"{name}.yaml"))
    text = io.StringIO()
    text.write(",".join(header) + "\n")
    for row in rows:
        text.write(",".join(_quoted(row[h]) for h in header) + "\n")
    for extra in EXTRA_ROWS.get(name, []):
        text.write(extra + "\n")
    data = tmp_path / "rows.csv"
    data.write_text(text.getvalue())
    _, rows = read_rows(data)
    pre = load_model(model).preprocessor
    got = run_onnx(exported, raw_inputs(model, rows))
    expected = bp_outputs(model, data)
    printed = bp_predict(model, data)
    if pre.task == "regression":
        values = got["values"]
        assert values.dtype == np.float64 and values.shape == expected.shape
        # float32 rounding in the products, in the scaled units the network computes
        difference = np.abs(values - expected) / pre.target_scale
        for k, target in enumerate(pre.targets):  # printed with 8 digits
            assert np.allclose([float(r[target]) for r in printed], values[:, k], rtol=1e-7,
                               atol=TOLERANCE * pre.target_scale[k])
    else:
        probabilities = got["probabilities"]
        assert probabilities.dtype == np.float32 and probabilities.shape == expected.shape
        difference = np.abs(probabilities - expected)
        assert list(got["label"]) == [r[pre.targets[0]] for r in printed]
        for k, label in enumerate(pre.classes):
            assert np.allclose([float(r[f"prob_{label}"]) for r in printed],
                               probabilities[:, k], atol=1e-6)
    absolute = np.abs((got["values"] if pre.task == "regression" else got["probabilities"])
                      - expected).max()
    print(f"{name}: max abs difference {difference.max():.3g} ({absolute:.3g} in the "
          "outputs' units)")
    assert difference.max() <= TOLERANCE


def _quoted(text: str) -> str:
    return f'"{text}"' if "," in text else text
