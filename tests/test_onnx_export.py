"""bp export --onnx: every example config's model, run by onnxruntime on raw columns, gives
``bp predict``'s numbers (and labels), rows with missing values and unseen categories too."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import bpcli
from bpcli.cli import app
from bpcli.csvfile import MISSING_TOKENS
from bpcli.dates import EPOCH, parse_date
from bpcli.inference import class_probabilities, network_outputs, read_inputs
from bpcli.modelfile import load_model
from bpcli.onnxexport import FIRST_DAY, LAST_DAY
from tests.conftest import CONFIGS, iris_config

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOLERANCE = 1e-5
EPOCHS = {"diabetes-advanced": 6}  # its warm-up (5 epochs) must end before training does
#: Rows with cells bp fills in or has never seen, for the example configs that fill any
#: (the others refuse a missing value: test_rows_bp_predict_refuses_... covers those):
#: rentals' missing dates, cities, rooms, areas and balconies (blank or one of its
#: na_values), unseen cities, a city in other case and spacing, a day-first date.
EXTRA_ROWS = {
    "rentals": ["L1,,Atlantis,2,,,900", "L2,2021-03-05,  BERLIN   ,3,70.5,TRUE,1200",
                "L3,05.03.2021,munich,,50,false,800", "L4,NA,gotham city,1,-,?,500",
                "L5,unknown,,?,44,,610"],
}


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


#: the example configs that train (sweep files are checked as sweeps)
# a GAN's model makes rows rather than predicting them: nothing to export
EXAMPLES = sorted(set(CONFIGS.glob("*.yaml")) - set(CONFIGS.glob("*-sweep.yaml"))
                  - set(CONFIGS.glob("*-gan.yaml")))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx")
    return {config.stem: train(config, root, config.stem)
            for config in EXAMPLES}


def test_every_example_config_is_covered(trained: dict[str, Path]) -> None:
    # (a parametrisation over no configs would pass by running nothing)
    assert {"iris", "spirals", "diabetes", "diabetes-advanced", "rentals",
            "digits-cnn"} <= set(trained) - set(TEXT_CONFIGS)
    assert len(TEXT_CONFIGS) >= 3


def reads_text(config: Path) -> bool:
    """Whether an example config has a text column (which bp cannot export yet)."""
    columns = (yaml.safe_load(config.read_text())["data"].get("columns") or {}).values()
    return any(c.get("type") == "text" or "encoding" in c for c in columns)


TEXT_CONFIGS = sorted(p.stem for p in EXAMPLES if reads_text(p))


@pytest.mark.parametrize("name", TEXT_CONFIGS)
def test_text_models_are_refused_in_one_line(name: str, trained: dict[str, Path],
                                             tmp_path: Path) -> None:
    out = tmp_path / f"{name}.onnx"
    result = CliRunner().invoke(app, ["export", str(trained[name]), "--onnx", str(out)])
    assert result.exit_code == 2, result.output
    assert "column 'text' is of kind 'text', which this bp cannot export to ONNX" in \
        result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES if not reads_text(p)))
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


# -- every layer, activation and column setting ---------------------------------------------
def compare(model: Path, rows_csv: Path, tmp_path: Path) -> tuple[dict[str, np.ndarray],
                                                                   np.ndarray]:
    """Export ``model``, run onnxruntime on ``rows_csv``; its outputs, and bp's numbers
    (asserting they agree)."""
    exported = tmp_path / "model.onnx"
    export(model, exported)
    _, rows = read_rows(rows_csv)
    got = run_onnx(exported, raw_inputs(model, rows))
    expected = bp_outputs(model, rows_csv)
    pre = load_model(model).preprocessor
    if pre.task == "regression":
        assert np.abs(got["values"] - expected).max() / pre.target_scale.min() <= TOLERANCE
    else:
        assert np.abs(got["probabilities"] - expected).max() <= TOLERANCE
        assert list(got["label"]) == [r[pre.targets[0]]
                                      for r in bp_predict(model, rows_csv)]
    return got, expected


def dense_model(tmp_path: Path, write_config: Any, layers: list[dict[str, Any]],
                **data: Any) -> Path:
    config = iris_config(model={"layers": layers})
    config["data"].update(data)
    return train(write_config(config), tmp_path, "m")


ACTIVATION_LAYERS = [
    {"type": "dense", "units": 8, "activation": {"name": "leaky_relu", "slope": 0.1}},
    {"type": "dense", "units": 8, "activation": "selu"},
    {"type": "batch_norm"},
    {"type": "dense", "units": 8, "activation": "swish"},
    {"type": "dense", "units": 8, "activation": "softplus"},
    {"type": "layer_norm"},
    {"type": "dense", "units": 8, "activation": {"name": "gelu", "approximate": True}},
    {"type": "dense", "units": 8, "activation": "silu"},
    {"type": "dense", "units": 8, "activation": {"name": "elu", "alpha": 0.5}},
    {"type": "dense", "units": 8, "activation": "gelu"},
    {"type": "dense", "units": 8, "activation": "sigmoid"},
    {"type": "dropout", "rate": 0.5},
    {"type": "dense", "activation": "softmax"},
]


def test_every_activation_and_normalisation(tmp_path: Path, write_config: Any) -> None:
    from bpcli.nn import ACTIVATIONS

    model = dense_model(tmp_path, write_config, ACTIVATION_LAYERS)
    used = {layer.name for layer in load_model(model).network.layers
            if hasattr(layer, "name")}
    assert used | {"relu", "tanh", "identity"} == set(ACTIVATIONS)  # the rest: configs/
    data = tmp_path / "wide.csv"
    header, rows = read_rows(CONFIGS.parent / "datasets" / "iris.csv")
    # inputs far outside the training range push every activation into its tails
    lines = [",".join(header)] + [",".join(r[h] for h in header) for r in rows]
    lines += [f"{v},{-v},{v * 3},{v / 2},setosa" for v in (-40.0, -9.5, 0.0, 12.0, 60.0)]
    data.write_text("\n".join(lines) + "\n")
    compare(model, data, tmp_path)


def test_every_image_layer(tmp_path: Path, write_config: Any) -> None:
    layers = [
        {"type": "conv2d", "filters": 3, "kernel_size": 3, "stride": 2, "padding": 1,
         "activation": "tanh"},
        {"type": "batch_norm"},
        {"type": "avg_pool2d", "pool_size": 2, "stride": 1, "padding": "same"},
        {"type": "layer_norm"},
        {"type": "conv2d", "filters": 4, "kernel_size": [2, 3], "padding": "same",
         "use_bias": False},
        {"type": "max_pool2d", "pool_size": 3, "stride": 2, "padding": "same"},
        {"type": "conv2d", "filters": 5, "kernel_size": 1},
        {"type": "global_avg_pool2d"},
        {"type": "dense", "units": 6},
        {"type": "dense"},
    ]
    config = yaml.safe_load((CONFIGS / "digits-cnn.yaml").read_text())
    config["data"]["path"] = str(data_path(CONFIGS / "digits-cnn.yaml"))
    config["model"]["layers"] = layers
    config["output"] = {"runs_dir": str(tmp_path / "runs"), "name": "cnn"}
    model = train(write_config(config), tmp_path, "m", "training.epochs=1")
    kinds = {layer.kind for layer in load_model(model).network.layers}
    assert {"conv2d", "avg_pool2d", "max_pool2d", "global_avg_pool2d", "batch_norm",
            "layer_norm"} <= kinds
    subset = tmp_path / "digits.csv"
    subset.write_text("".join(data_path(CONFIGS / "digits-cnn.yaml").read_text()
                              .splitlines(keepends=True)[:300]))
    compare(model, subset, tmp_path)


def mixed_csv(path: Path, rng: np.random.Generator, n: int, blank: float = 0.1) -> None:
    """Rows of every kind of column, with missing cells in each (a ``blank`` share of the
    sizes)."""
    cities = ["New York", "new  york", "NEW YORK", "Bad Homburg", "bad homburg", "Berlin",
              "berlin", ""]
    lines = ["city,colour,flag,size,when,y"]
    for i in range(n):
        city = "Passau" if i == 0 else cities[rng.integers(len(cities))]
        colour = ["red", "green", "blue", "", "?"][rng.integers(5)]
        flag = ["true", "false", "", "TRUE"][rng.integers(4)]
        size = "" if rng.random() < blank else f"{rng.normal(10, 3):.3f}"
        day = rng.integers(-3000, 20000)
        when = "" if rng.random() < 0.1 else (EPOCH + dt.timedelta(days=int(day))).strftime(
            "%Y-%m-%d" if i % 2 else "%d.%m.%Y")
        lines.append(f"{city},{colour},{flag},{size},{when},{'yes' if i % 3 else 'no'}")
    path.write_text("\n".join(lines) + "\n")


MIXED_DATA = {
    "target": "y", "missing": "most_frequent", "na_values": ["?"],
    "columns": {"city": {"fold_case": True, "min_frequency": 2},
                "colour": {"missing": "constant", "fill_value": "grey", "unseen": "zeros"},
                "size": {"missing": "mean", "scaling": "minmax"},
                "when": {"type": "date", "missing": "median"}},
}
SIGMOID_LAYERS = [{"type": "dense", "units": 8, "activation": "relu"},
                  {"type": "dense", "units": 1, "activation": "sigmoid"}]


def test_every_kind_of_column_with_missing_and_unseen_values(tmp_path: Path,
                                                             write_config: Any) -> None:
    rng = np.random.default_rng(0)
    training = tmp_path / "mixed.csv"
    mixed_csv(training, rng, 120)
    config = iris_config(model={"layers": SIGMOID_LAYERS}, loss="binary_cross_entropy")
    config["data"] = {"path": str(training), **MIXED_DATA}
    model = train(write_config(config), tmp_path, "m")
    pre = load_model(model).preprocessor
    city = next(c for c in pre.inputs if c.name == "city")
    assert city.other and "new york" in city.categories and "bad homburg" in city.categories
    rows = tmp_path / "rows.csv"
    mixed_csv(rows, rng, 60)
    with rows.open("a") as f:  # folded, unseen, missing, and longer than any value
        f.write("NEW   YORK,purple,,,,no\nNew York City,?,true,1e3,1999-12-31,yes\n"
                "Bad  HOMBURG,NA,False,-5,,no\nParis,red,false,8,29.02.2000,yes\n"
                "new,blue,true,11,0001-01-01,no\n,,,,9999-12-31,yes\n")
    got, _ = compare(model, rows, tmp_path)
    assert not np.isnan(got["probabilities"]).any()


def test_rows_bp_predict_refuses_give_nan_and_no_label(tmp_path: Path,
                                                       write_config: Any) -> None:
    rng = np.random.default_rng(1)
    training = tmp_path / "mixed.csv"
    mixed_csv(training, rng, 120, blank=0)
    config = iris_config(model={"layers": SIGMOID_LAYERS}, loss="binary_cross_entropy")
    config["data"] = {"path": str(training), **MIXED_DATA, "unseen": "error"}
    config["data"]["columns"] = {**MIXED_DATA["columns"], "size": {"missing": "error"}}
    model = train(write_config(config), tmp_path, "m")
    fine = "berlin,red,true,10,2020-01-01,yes"
    refused = ["Atlantis,red,true,10,2020-01-01,yes",  # unseen, policy error
               "berlin,red,true,,2020-01-01,yes",  # missing, nothing fills it
               "berlin,red,true,inf,2020-01-01,yes"]  # bp refuses infinite numbers
    for line in refused:
        rows = tmp_path / "rows.csv"
        rows.write_text(f"city,colour,flag,size,when,y\n{fine}\n{line}\n")
        result = CliRunner().invoke(app, ["predict", str(model), str(rows)])
        assert result.exit_code == 2, result.output
        exported = tmp_path / "model.onnx"
        export(model, exported)
        _, parsed = read_rows(rows)
        got = run_onnx(exported, raw_inputs(model, parsed))
        assert list(got["label"]) == [bp_predict(model, _one_row(rows, 1))[0]["y"], ""]
        assert not np.isnan(got["probabilities"][0]).any()
        assert np.isnan(got["probabilities"][1]).all()
    feeds = raw_inputs(model, read_rows(rows)[1][:1])
    feeds["flag"] = np.array([2], np.float32)  # a boolean neither true (1) nor false (0)
    assert run_onnx(exported, feeds)["label"].tolist() == [""]


def _one_row(path: Path, k: int) -> Path:
    lines = path.read_text().splitlines()
    out = path.with_name(f"row{k}.csv")
    out.write_text(f"{lines[0]}\n{lines[k]}\n")
    return out


def test_dates_from_year_1_to_9999() -> None:
    """The graph's calendar (days -> year, month, weekday, day of the year) is bp's."""
    from onnx import TensorProto, helper

    from bpcli.data import InputColumn, Preprocessor
    from bpcli.dates import features_of
    from bpcli.onnxexport import OPSET, _date, _Graph

    rng = np.random.default_rng(2)
    days = [*rng.integers(FIRST_DAY, LAST_DAY + 1, 2000).tolist(), FIRST_DAY, LAST_DAY, 0, -1,
            *((dt.date(*ymd) - EPOCH).days for ymd in [(2000, 2, 29), (1900, 2, 28),
                                                        (1900, 3, 1), (2100, 12, 31),
                                                        (1600, 2, 29), (2024, 12, 31)])]
    spec = InputColumn("d", "date", missing="median", fill="2001-02-03")
    pre = Preprocessor([spec], ["y"], "regression", np.zeros(8), np.ones(8))
    g = _Graph(["d"])
    invalid: list[str] = []
    features = _date(g, pre, spec, 0, invalid)
    (refused,) = invalid  # days outside the years 1 to 9999 (missing ones are filled)
    graph = helper.make_graph(g.nodes, "dates", [helper.make_tensor_value_info(
        "d", TensorProto.FLOAT, ["N"])], [
        helper.make_tensor_value_info(features, TensorProto.FLOAT, ["N", 8]),
        helper.make_tensor_value_info(refused, TensorProto.BOOL, ["N"])], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    dates = [EPOCH + dt.timedelta(days=d) for d in days]
    got, bad = session.run(None, {"d": np.array(days, np.float32)})
    expected = features_of(dates).astype(np.float32)
    assert not bad.any()
    assert np.array_equal(got[:, :2], expected[:, :2])  # days and year exactly
    assert np.abs(got - expected).max() <= 1e-6  # sines and cosines to float32 rounding
    # missing: the fill; outside the years 1 to 9999 or infinite: refused
    got, bad = session.run(None, {"d": np.array([np.nan, FIRST_DAY - 1, LAST_DAY + 1,
                                                 np.inf, 0.5], np.float32)})
    assert np.allclose(got[0], features_of([dt.date(2001, 2, 3)])[0], atol=1e-6)
    assert bad.tolist() == [False, True, True, True, False]
    assert np.allclose(got[4], features_of([EPOCH])[0], atol=1e-6)  # a day's fraction: floor


# -- the file, and what bp refuses ----------------------------------------------------------
def test_the_file_passes_the_checker_with_old_runtimes_in_mind(trained: dict[str, Path],
                                                               tmp_path: Path) -> None:
    for name, (opset, ir) in {"iris": (17, 8), "rentals": (20, 9)}.items():  # fold_case
        proto = export(trained[name], tmp_path / f"{name}.onnx")
        onnx.checker.check_model(proto, full_check=True)
        assert {(o.domain, o.version) for o in proto.opset_import} == {("", opset),
                                                                        ("ai.onnx.ml", 3)}
        assert proto.ir_version == ir
        props = {p.key: p.value for p in proto.metadata_props}
        pre = load_model(trained[name]).preprocessor
        assert json.loads(props["bp.targets"]) == pre.targets
        assert [c["name"] for c in json.loads(props["bp.inputs"])] == pre.columns
        assert [i.name for i in proto.graph.input] == pre.columns
    assert json.loads(props["bp.inputs"])[0] == {"name": "listed", "kind": "date",
                                                 "type": "float"}
    assert json.loads({p.key: p.value for p in export(
        trained["iris"], tmp_path / "i.onnx").metadata_props}["bp.classes"]) == [
        "setosa", "versicolor", "virginica"]


def test_a_layer_without_an_onnx_form_is_refused(trained: dict[str, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from bpcli import onnxexport

    monkeypatch.delitem(onnxexport.LAYERS, "max_pool2d")
    out = tmp_path / "digits.onnx"
    out.write_bytes(b"before")
    result = CliRunner().invoke(app, ["export", str(trained["digits-cnn"]), "--onnx",
                                      str(out)])
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.startswith("bp: ") and "layer 2 max_pool2d has no ONNX form" in line
    assert "train again" in line
    assert out.read_bytes() == b"before"  # nothing written over it
    monkeypatch.delitem(onnxexport.ACTIVATIONS, "softmax")
    result = CliRunner().invoke(app, ["export", str(trained["iris"]), "--onnx", str(out)])
    assert result.exit_code == 2 and "layer 1 softmax has no ONNX form" in result.output


def test_a_column_kind_without_an_onnx_form_is_refused(trained: dict[str, Path],
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from bpcli import onnxexport

    def text_column(path: Path) -> Any:  # a kind some later bp may add
        saved = load_model(path)
        saved.preprocessor.inputs[1].kind = "text"
        return saved

    monkeypatch.setattr(onnxexport, "load_model", text_column)
    result = CliRunner().invoke(app, ["export", str(trained["rentals"]), "--onnx",
                                      str(tmp_path / "r.onnx")])
    assert result.exit_code == 2
    assert "column 'city' is of kind 'text', which this bp cannot export" in result.output
    assert len(result.output.splitlines()) == 1 and not (tmp_path / "r.onnx").exists()


def test_a_column_named_like_an_output_is_refused(tmp_path: Path, write_config: Any) -> None:
    data = tmp_path / "d.csv"
    data.write_text("label,y\n" + "".join(f"{i % 7},{i % 2}\n" for i in range(40)))
    config = iris_config()
    config["data"] = {"path": str(data), "target": "y"}
    model = train(write_config(config), tmp_path, "m")
    result = CliRunner().invoke(app, ["export", str(model), "--onnx",
                                      str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    assert "column 'label' has the name of an output" in result.output
    assert not (tmp_path / "m.onnx").exists()


def test_bad_arguments(trained: dict[str, Path], tmp_path: Path) -> None:
    model = trained["iris"]
    cases = {("export", str(model)): "--onnx OUT.onnx",
             ("export", str(model), "--onnx", str(model)): "is the input file",
             ("export", str(model), "--onnx", "-"): "give a file name",
             ("export", str(tmp_path / "none.npz"), "--onnx", str(tmp_path / "o.onnx")):
                 "none.npz",
             ("export", str(model), "--onnx", str(tmp_path / "no" / "o.onnx")):
                 "does not exist"}
    for args, message in cases.items():
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == 2, (args, result.output)
        assert len(result.output.splitlines()) == 1 and message in result.output, args


def test_without_onnx_bp_says_what_to_install(trained: dict[str, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "onnx" or m.startswith("onnx.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(app, ["export", str(trained["iris"]), "--onnx", str(out)])
    assert result.exit_code == 2
    assert result.output == ("bp: exporting to ONNX needs the onnx package: pip install "
                             "'bp[onnx]' (from a clone: pip install '.[onnx]')\n")
    assert not out.exists()


def test_bp_loads_no_onnx_until_asked() -> None:
    code = ("import sys; from bpcli.cli import app; import bpcli.commands.export, "
            "bpcli.onnxexport; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('onnx', 'onnxruntime')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_the_readme_example_runs(trained: dict[str, Path], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (CONFIGS.parent / "README.md").read_text()
    section = readme[readme.index("### ONNX"):]
    code = section[section.index("```python\n") + 10:section.index("```\n", 10)]
    export(trained["iris"], tmp_path / "iris.onnx")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)
    model = bpcli.load(trained["iris"])
    assert scope["label"].tolist() == list(model.predict(scope["rows"]))
    assert np.abs(scope["probabilities"] - model.predict_proba(scope["rows"])).max() <= TOLERANCE


ACTIVATION_OPTIONS: dict[str, list[dict[str, Any]]] = {
    "leaky_relu": [{"slope": 0.1}], "elu": [{"alpha": 0.5}, {}],
    "gelu": [{"approximate": True}, {"approximate": False}]}


@pytest.mark.parametrize("name", sorted(__import__("bpcli.nn").nn.ACTIVATIONS))
def test_each_activation_over_a_wide_range(name: str) -> None:
    """Each activation's ONNX form against bp's, from -40 to 40 (tails included)."""
    from onnx import TensorProto, helper

    from bpcli.nn.layers import Activation
    from bpcli.onnxexport import ACTIVATIONS, OPSET, _Graph

    Z = np.concatenate([np.linspace(-40, 40, 4001), [-1e-6, 0, 1e-6]]).astype(np.float32)
    Z = Z.reshape(-1, 1) * np.float32([1, 0.5])  # two units: softmax needs a row
    for options in ACTIVATION_OPTIONS.get(name, [{}]):
        layer = Activation(name, **options)
        g = _Graph(["Z"])
        out = ACTIVATIONS[name](g, layer, "Z")
        if out == "Z":
            out = g.op("Identity", ["Z"])
        graph = helper.make_graph(g.nodes, "a", [helper.make_tensor_value_info(
            "Z", TensorProto.FLOAT, ["N", 2])], [helper.make_tensor_value_info(
                out, TensorProto.FLOAT, ["N", 2])], g.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        (got,) = ort.InferenceSession(model.SerializeToString(),
                                      providers=["CPUExecutionProvider"]).run(None, {"Z": Z})
        expected = layer.forward(Z.copy(), training=False)
        assert np.allclose(got, expected, rtol=2e-6, atol=1e-6), (name, options)
