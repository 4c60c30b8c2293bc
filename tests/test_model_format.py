"""docs/model-format.md, checked against real files.

A reference loader written from the document alone (numpy + json, no bpcli) must reproduce
``bp predict`` on models trained here; the archive layout, dtypes, shapes and metadata keys
must be those the document lists; and the document's own Python example must run and agree.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bpcli.cli import app

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO / "datasets"
DOC = REPO / "docs" / "model-format.md"
EPOCHS = 5
BATCH = 16

Arrays = dict[str, np.ndarray]

# name -> (data file, data section, layers, loss, optimizer)
CASES: dict[str, dict[str, Any]] = {
    "iris": {
        "csv": "iris.csv",
        "data": {"target": "species"},
        "layers": [{"type": "dense", "units": 8, "activation": "relu"},
                   {"type": "dense", "activation": "softmax"}],
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.05},
    },
    "diabetes": {
        "csv": "diabetes.csv",
        "data": {"target": "progression", "task": "regression"},
        "layers": [{"type": "dense", "units": 16, "activation": "leaky_relu"},
                   {"type": "dropout", "rate": 0.1},
                   {"type": "dense", "units": 8, "activation": "tanh"},
                   {"type": "dense", "units": 1, "activation": "identity"}],
        "loss": "mse",
        "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": True},
    },
    "spirals": {
        "csv": "spirals.csv",
        "data": {"target": "arm"},
        "layers": [{"type": "dense", "units": 16, "activation": "tanh"},
                   {"type": "dense", "units": 1, "activation": "sigmoid"}],
        "loss": "binary_cross_entropy",
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
    },
}


# -- the reference loader: written from docs/model-format.md, numpy + json only -------------


def ref_load(path: Path) -> tuple[dict[str, Any], Arrays]:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays["meta"]))
    if meta.get("format") != "bp-model":
        raise ValueError(f"{path}: not a bp model file")
    if meta.get("format_version") != 1:
        raise ValueError(f"{path}: unsupported format_version {meta.get('format_version')!r}")
    return meta, arrays


def _sigmoid(z: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


REF_ACTIVATIONS = {
    "identity": lambda z, opts: z,
    "relu": lambda z, opts: np.maximum(z, 0),
    "leaky_relu": lambda z, opts: np.where(z > 0, z, z * opts.get("slope", 0.01)),
    "sigmoid": lambda z, opts: _sigmoid(z),
    "tanh": lambda z, opts: np.tanh(z),
    "softmax": lambda z, opts: _softmax(z),
}


def ref_forward(meta: dict[str, Any], arrays: Arrays, x: np.ndarray) -> np.ndarray:
    for i, layer in enumerate(meta["layers"]):
        if layer["type"] == "dense":
            x = x @ arrays[f"param/{i}.W"] + arrays[f"param/{i}.b"]
        elif layer["type"] == "activation":
            x = REF_ACTIVATIONS[layer["name"]](x, layer)
        elif layer["type"] != "dropout":
            raise ValueError(f"unknown layer type {layer['type']!r}")
    return x


def ref_predict(path: Path, data: Path) -> tuple[list[str] | np.ndarray, np.ndarray | None]:
    """Labels and probabilities (n, k) for classifiers; values (n,) and None for regression."""
    meta, a = ref_load(path)
    features = [str(f) for f in a["pre/features"]]
    with data.open(newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[c]) for c in features] for r in rows], dtype=np.float64)
    x = ((x - a["pre/mean"]) / a["pre/scale"]).astype(np.float32)
    out = ref_forward(meta, a, x)
    if meta["task"] == "regression":
        scale = float(a["pre/target_scale"][0])
        mean = float(a["pre/target_mean"][0])
        return out[:, 0].astype(np.float64) * scale + mean, None
    classes = [str(c) for c in a["pre/classes"]]
    if out.shape[1] == 1:
        out = np.column_stack([1 - out[:, 0], out[:, 0]])
    return [classes[j] for j in np.argmax(out, axis=1)], out


# -- helpers -----------------------------------------------------------------------------------


def train_case(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Train case ``name`` through the CLI in tmp_path; return its run directory."""
    case = CASES[name]
    config = {
        "data": {"path": str(DATASETS / case["csv"]), **case["data"]},
        "model": {"layers": case["layers"]},
        "loss": case["loss"],
        "optimizer": case["optimizer"],
        "training": {"epochs": EPOCHS, "batch_size": BATCH, "seed": 0},
        "output": {"runs_dir": "runs", "name": name},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", str(path)])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").glob(f"{name}-*")
    return run_dir


def bp_predict(model: Path, data: Path) -> list[dict[str, str]]:
    result = CliRunner().invoke(app, ["predict", str(model), str(data)])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def assert_same_predictions(rows: list[dict[str, str]], labels: Any, probs: Any,
                            classes: list[str]) -> None:
    """``rows`` parsed from a bp prediction CSV against a reference's (labels, probs)."""
    if probs is None:
        assert list(rows[0]) == ["prediction"]
        got = np.array([float(r["prediction"]) for r in rows])
        np.testing.assert_allclose(got, labels, rtol=1e-5)
        return
    assert list(rows[0]) == ["prediction", *(f"prob_{c}" for c in classes)]
    got = np.array([[float(r[f"prob_{c}"]) for c in classes] for r in rows])
    np.testing.assert_allclose(got, probs, rtol=0, atol=1e-5)
    assert [r["prediction"] for r in rows] == list(labels)


def doc_example() -> dict[str, Any]:
    """The Python example of the document, executed as a module (not as __main__)."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    example = next(b for b in blocks if "def predict_csv" in b)
    namespace: dict[str, Any] = {"__name__": "bp_model_format_example"}
    exec(compile(example, str(DOC), "exec"), namespace)
    return namespace


def dense_indices(meta: dict[str, Any]) -> list[int]:
    return [i for i, layer in enumerate(meta["layers"]) if layer["type"] == "dense"]


# -- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_reference_loader_reproduces_bp_predict(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = train_case(name, tmp_path, monkeypatch)
    data = DATASETS / CASES[name]["csv"]
    example = doc_example()
    for model in (run_dir / "model.npz", run_dir / "checkpoints" / "last.npz"):
        meta, arrays = ref_load(model)
        classes = [str(c) for c in arrays["pre/classes"]]
        rows = bp_predict(model, data)
        assert len(rows) == len(data.read_text().splitlines()) - 1
        labels, probs = ref_predict(model, data)
        assert_same_predictions(rows, labels, probs, classes)
        # The document's own example, run as written, prints the same CSV.
        text = example["predict_csv"](str(model), str(data))
        assert_same_predictions(list(csv.DictReader(io.StringIO(text))), labels, probs, classes)
        assert text.splitlines()[0] == ",".join(rows[0])


@pytest.mark.parametrize("name", list(CASES))
def test_archive_layout_matches_the_document(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = train_case(name, tmp_path, monkeypatch)
    case = CASES[name]
    meta, arrays = ref_load(run_dir / "model.npz")
    regression = case["data"].get("task") == "regression"
    metric = "rmse" if regression else "accuracy"

    # metadata keys and their values
    assert set(meta) == {"format", "format_version", "task", "target", "loss", "loss_options",
                         "input_shape", "output_shape", "layers", "created", "environment",
                         "config", "epoch", "metrics"}
    assert meta["task"] == ("regression" if regression else "classification")
    assert meta["target"] == case["data"]["target"]
    assert meta["loss"] == case["loss"]
    assert set(meta["metrics"]) == {"best_epoch", "val_loss", f"val_{metric}"}
    assert meta["epoch"] == meta["metrics"]["best_epoch"]
    assert set(meta["environment"]) == {"bp", "numpy", "python", "platform", "blas",
                                        "blas_threads"}
    assert set(meta["config"]) == {"data", "model", "loss", "optimizer", "regularization",
                                   "training", "output"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", meta["created"])
    for layer in meta["layers"]:
        expected = {"dense": {"type", "units", "init"}, "activation": {"type", "name"},
                    "dropout": {"type", "rate"}}[layer["type"]]
        assert set(layer) == expected, layer
    assert not any(layer.get("name") == "identity" for layer in meta["layers"])

    # members, dtypes and shapes
    dense = dense_indices(meta)
    pre = {f"pre/{k}" for k in ("features", "mean", "scale", "classes", "target_mean",
                                "target_scale")}
    params = [f"param/{i}.{k}" for i in dense for k in ("W", "b")]
    assert set(arrays) == {"meta", *params, *pre}
    assert arrays["meta"].dtype.kind == "U" and arrays["meta"].shape == ()
    width = meta["input_shape"][0]
    assert meta["input_shape"] == [len(arrays["pre/features"])]
    for i in dense:
        W, b = arrays[f"param/{i}.W"], arrays[f"param/{i}.b"]
        assert W.dtype == b.dtype == np.float32
        assert W.shape == (width, meta["layers"][i]["units"]) and b.shape == (W.shape[1],)
        width = W.shape[1]
    assert meta["output_shape"] == [width]
    assert arrays["pre/features"].dtype.kind == arrays["pre/classes"].dtype.kind == "U"
    for key in ("mean", "scale", "target_mean", "target_scale"):
        assert arrays[f"pre/{key}"].dtype == np.float64
    assert arrays["pre/mean"].shape == arrays["pre/scale"].shape == (len(arrays["pre/features"]),)
    if regression:
        assert arrays["pre/classes"].shape == (0,)
        assert arrays["pre/target_mean"].shape == (1,)
        assert arrays["pre/target_scale"].shape == (1,)
        assert width == 1
    else:
        assert arrays["pre/target_mean"].shape == arrays["pre/target_scale"].shape == (0,)
        classes = [str(c) for c in arrays["pre/classes"]]
        assert classes == sorted(classes)
        assert width == (1 if case["loss"] == "binary_cross_entropy" else len(classes))

    # checkpoints: the model's members plus opt/*, epoch info at the top level
    n_train = json.loads((run_dir / "summary.json").read_text())["n_train"]
    param_order = [arrays[p] for p in params]
    n_params = sum(a.size for a in param_order)
    optimizer = case["optimizer"]
    if optimizer["name"] == "adam":
        slots = ["m", "v"]
    else:
        slots = ["velocity"] if optimizer.get("momentum", 0) > 0 else []
    for which in ("best", "last"):
        ck_meta, ck = ref_load(run_dir / "checkpoints" / f"{which}.npz")
        opt = {k for k in ck if k.startswith("opt/")}
        assert set(ck) - opt == set(arrays)
        assert {k.split("/")[1] for k in opt} == {"iterations", "learning_rate", *slots}
        assert ck["opt/iterations"].dtype == np.int64 and ck["opt/iterations"].shape == ()
        assert int(ck["opt/iterations"]) == ck_meta["epoch"] * math.ceil(n_train / BATCH)
        for s in slots:
            # one vector per slot, aligned with the flat parameter vector
            assert {k for k in opt if k.startswith(f"opt/{s}/")} == {f"opt/{s}/0"}
            state = ck[f"opt/{s}/0"]
            assert state.dtype == np.float32 and state.shape == (n_params,)
        assert set(ck_meta) == (set(meta) - {"metrics"}) | {"trainer", "rng"}
        if which == "last":
            assert ck_meta["epoch"] == EPOCHS
        else:
            assert ck_meta["epoch"] == meta["epoch"]
            assert ck_meta["trainer"]["best_val_loss"] == meta["metrics"]["val_loss"]
            for key in arrays:
                if key != "meta":
                    np.testing.assert_array_equal(ck[key], arrays[key])


def test_unknown_versions_and_formats_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = train_case("iris", tmp_path, monkeypatch) / "model.npz"
    with np.load(model, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays["meta"]))
    for change, message in (({"format_version": 2}, "version 2"),
                            ({"format": "other"}, "not a bp model")):
        altered = tmp_path / "altered.npz"
        np.savez(altered, **{**arrays, "meta": np.array(json.dumps({**meta, **change}))})
        result = CliRunner().invoke(app, ["predict", str(altered), str(DATASETS / "iris.csv")])
        assert result.exit_code != 0
        assert message in result.output
        with pytest.raises(ValueError):
            ref_load(altered)
