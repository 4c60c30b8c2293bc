"""docs/model-format.md, checked against real files.

The document's reference loader (its Python example: numpy, csv, json and math, no bpcli)
must reproduce ``bp predict`` on models trained here: on numeric data sets; on a small
generated CSV with numeric, boolean and categorical columns, missing cells, an unseen
category, shuffled and extra columns, for a classifier and for two regression targets; on
a semicolon file that delimiter detection misreads, with the delimiter set in the config;
and on two convolutional networks (8x8 digits, generated 3x7x9 colour images) with fixed
pixel scaling and every image layer and padding kind. The document's image-layer formulas
are also checked, one geometry at a time, against bp's layers. The archive layout, dtypes,
shapes and metadata keys must be those the document lists, and bp and the loader must
refuse the same defective inputs and versions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections.abc import Callable
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
EPOCHS = 5  # unless a case sets "epochs"
BATCH = 16
# generated into the module's tmp dir (see the workdir fixture)
FRUIT = "fruit.csv"
DIGITS = "digits.csv"  # the first DIGIT_ROWS rows of datasets/digits.csv
DIGIT_ROWS = 400
RGB = "rgb.csv"
SEMICOLON = "semicolon.csv"
DATED = "dated.csv"
GENERATED = {FRUIT, DIGITS, RGB, SEMICOLON, DATED}

Arrays = dict[str, np.ndarray]

# name -> data file, data section, layers, loss, optimizer, and the kind of each input column
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
    # numeric with missing cells (mean-imputed), categorical (unseen -> zeros), boolean
    "mixed": {
        "csv": FRUIT,
        "data": {"target": "label", "drop": ["a", "b"], "missing": "mean",
                 "columns": {"colour": {"unseen": "zeros"}, "weight": {"scaling": "minmax"}}},
        "layers": [{"type": "dense", "units": 8, "activation": "tanh"},
                   {"type": "dense", "activation": "softmax"}],
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "kinds": {"size": "numeric", "colour": "categorical", "fresh": "boolean",
                  "weight": "numeric"},
    },
    # version 3's vocabularies: folded case, an 'other' input for the rarest colour (and
    # unseen values), a missing-value marker
    "messy": {
        "csv": FRUIT,
        "data": {"target": "label", "drop": ["a", "b"], "missing": "most_frequent",
                 "na_values": ["?"],
                 "columns": {"colour": {"fold_case": True, "max_categories": 2}}},
        "layers": [{"type": "dense", "units": 8, "activation": "tanh"},
                   {"type": "dense", "activation": "softmax"}],
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "kinds": {"size": "numeric", "colour": "categorical", "fresh": "boolean",
                  "weight": "numeric"},
    },
    # two regression targets; a constant categorical fill no training row holds; every
    # activation and normalisation layer the document's example implements
    "two_targets": {
        "csv": FRUIT,
        "data": {"target": ["a", "b"], "drop": ["label"], "missing": "median",
                 "unseen": "zeros",
                 "columns": {"colour": {"missing": "constant", "fill_value": "grey"},
                             "fresh": {"scaling": "none"}}},
        "layers": [{"type": "dense", "units": 8, "activation": {"name": "elu", "alpha": 0.5}},
                   {"type": "batch_norm"},
                   {"type": "dense", "units": 8, "activation": "gelu"},
                   {"type": "layer_norm"},
                   {"type": "dense", "units": 6, "activation": "selu"},
                   {"type": "dense", "units": 6, "activation": "softplus"},
                   {"type": "dense", "units": 6, "activation": "swish"},
                   {"type": "dense", "units": 6,
                    "activation": {"name": "gelu", "approximate": True}},
                   {"type": "dense", "units": 6,
                    "activation": {"name": "leaky_relu", "slope": 0.2}},
                   {"type": "dense", "units": 2}],
        "loss": "mse",
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "kinds": {"size": "numeric", "colour": "categorical", "fresh": "boolean",
                  "weight": "numeric"},
    },
    # a semicolon file that detection takes for a comma file: data.delimiter says ";";
    # decimal commas (0,5) in x; a huber loss with options
    "semicolon": {
        "csv": SEMICOLON,
        "data": {"target": "y", "task": "regression", "delimiter": ";",
                 "features": ["x", "grade"]},
        "layers": [{"type": "dense", "units": 6, "activation": "tanh"},
                   {"type": "dense"}],
        "loss": {"name": "huber", "delta": 0.5},
        "optimizer": {"name": "adam", "learning_rate": 0.02},
        "kinds": {"x": "numeric", "grade": "categorical"},
    },
    # version 3's dates: one column in three spellings (ISO, year first with slashes, day
    # first with dots) with missing cells filled by the median, one in a declared format
    "dates": {
        "csv": DATED,
        "data": {"target": "y", "task": "regression", "missing": "median",
                 "columns": {"stamp": {"type": "date", "date_format": "%d %b %Y",
                                       "scaling": "minmax"}}},
        "layers": [{"type": "dense", "units": 6, "activation": "tanh"},
                   {"type": "dense"}],
        "loss": "mse",
        "optimizer": {"name": "adam", "learning_rate": 0.02},
        "kinds": {"when": "date", "stamp": "date", "x": "numeric"},
    },
    # 8x8 digits, pixels / 16: conv2d with stride 2 and "same" padding (one row and column
    # of zeros, on the bottom and right), batch_norm on channels, conv2d with integer
    # padding, no bias and a 3x2 kernel, max pooling over tanh outputs padded with -inf,
    # average pooling whose stride leaves the last row out, flatten, dense
    "digits_cnn": {
        "csv": DIGITS,
        "data": {"target": "digit", "task": "classification", "input_shape": [1, 8, 8],
                 "pixel_scale": 16},
        "layers": [
            {"type": "conv2d", "filters": 6, "kernel_size": 3, "stride": 2, "padding": "same"},
            {"type": "batch_norm"},
            {"type": "conv2d", "filters": 8, "kernel_size": [3, 2], "padding": 1,
             "use_bias": False, "activation": "tanh"},
            {"type": "max_pool2d", "pool_size": 2, "stride": 1, "padding": 1},
            {"type": "avg_pool2d", "pool_size": 2, "stride": 2},
            {"type": "flatten"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "activation": "softmax"}],
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 2,
        # (C, H, W) after each image layer, by the document's formulas
        "shapes": [(6, 4, 4), (8, 4, 5), (8, 5, 6), (8, 2, 3)],
    },
    # 3 channels of 7x9 pixels, pixels / 255: "same" padding that differs by axis, max
    # pooling with "same" padding, pair padding, layer_norm on images, average pooling
    # with "same" padding (padded cells left out of the count), global average pooling
    "rgb_cnn": {
        "csv": RGB,
        "data": {"target": "blob", "task": "classification", "input_shape": [3, 7, 9],
                 "pixel_scale": 255},
        "layers": [
            {"type": "conv2d", "filters": 4, "kernel_size": [2, 3], "stride": 2,
             "padding": "same", "activation": "tanh"},
            {"type": "max_pool2d", "pool_size": 2, "stride": 1, "padding": "same"},
            {"type": "batch_norm"},
            {"type": "conv2d", "filters": 6, "kernel_size": 3, "padding": [1, 0],
             "use_bias": False, "activation": "elu"},
            {"type": "layer_norm"},
            {"type": "avg_pool2d", "pool_size": 3, "stride": 2, "padding": "same"},
            {"type": "global_avg_pool2d"},
            {"type": "dense", "activation": "softmax"}],
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.02},
        "epochs": 2,
        "shapes": [(4, 4, 5), (4, 4, 5), (6, 4, 3), (6, 2, 2)],
    },
    # version 4's text, on the SMS spam dataset: tfidf of words, word pairs and character
    # n-grams; word ids into an embedding, a "same" conv1d, a strided "valid" conv1d (whose
    # mask follows its windows' centres) and a masked max pool; stacked recurrent layers
    # carrying their state over padding; an embedding bag, with side inputs joining it
    "text_tfidf": {
        "csv": "sms_spam.csv",
        "data": {"target": "label", "columns": {"text": {
            "type": "text", "ngrams": [1, 2], "char_ngrams": [2, 3], "max_tokens": 400}}},
        "layers": [{"type": "dense", "units": 8}, {"type": "dense"}],
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 1,
        "kinds": {"text": "text"},
    },
    "text_cnn": {
        "csv": "sms_spam.csv",
        "data": {"target": "label", "columns": {"text": {
            "encoding": "sequence", "max_tokens": 500, "max_length": 25}}},
        "layers": [{"type": "embedding", "dimension": 6},
                   {"type": "conv1d", "filters": 5, "kernel_size": 3},
                   {"type": "conv1d", "filters": 4, "kernel_size": 2, "stride": 2,
                    "padding": "valid", "activation": "tanh"},
                   {"type": "global_max_pool1d"}, {"type": "dense"}],
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 1,
        "kinds": {"text": "text"},
    },
    "text_recurrent": {
        "csv": "sms_spam.csv",
        "data": {"target": "label", "columns": {"text": {
            "encoding": "sequence", "max_tokens": 300, "max_length": 15}}},
        "layers": [{"type": "embedding", "dimension": 4},
                   {"type": "gru", "units": 5, "return_sequences": True},
                   {"type": "lstm", "units": 3}, {"type": "dense"}],
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 1,
        "kinds": {"text": "text"},
    },
    "text_bag": {
        "csv": FRUIT,
        "data": {"target": "label", "drop": ["a", "b"], "missing": "mean",
                 "columns": {"colour": {"type": "text", "encoding": "sequence",
                                        "token_pattern": r"\w+"}}},
        "layers": [{"type": "embedding", "dimension": 3}, {"type": "global_avg_pool1d"},
                   {"type": "dense", "units": 4}, {"type": "dense"}],
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.02},
        "kinds": {"colour": "text", "size": "numeric", "fresh": "boolean",
                  "weight": "numeric"},
    },
}
FRUIT_CASES = [name for name, case in CASES.items() if case["csv"] == FRUIT]
IMAGE_CASES = [name for name, case in CASES.items() if "input_shape" in case["data"]]


# -- the generated data ------------------------------------------------------------------------


def write_fruit(path: Path, n: int = 120) -> None:
    """Training data: numeric ``size`` (missing cells in three spellings) and ``weight``,
    text ``colour`` (some missing), boolean ``fresh`` (mixed case, some missing), the class
    ``label`` and the regression targets ``a`` and ``b``."""
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["size", "colour", "fresh", "weight", "label", "a", "b"])
        for i in range(n):
            size, weight = rng.normal(10, 3), rng.uniform(0, 50)
            colour = str(rng.choice(["red", "green", "blue"]))
            fresh = bool(rng.random() < 0.6)
            label = "ripe" if size + 3 * (colour == "red") + 2 * fresh > 13 else "raw"
            a = 2 * size - weight / 10 + 5 * (colour == "blue")
            b = size * fresh + rng.normal()
            cells = [f"{size:.3f}", colour, ["false", "True", "TRUE"][fresh * (1 + i % 2)],
                     f"{weight:.2f}", label, f"{a:.4f}", f"{b:.4f}"]
            if i % 9 == 0:
                cells[0] = ["", "NA", "nan"][i % 3]
            if i % 13 == 0:
                cells[1] = ""
            if i % 17 == 0:
                cells[2] = "null"
            writer.writerow(cells)


def write_digits(path: Path) -> None:
    """The first DIGIT_ROWS rows of the shipped digits (64 pixel columns, then digit)."""
    with (DATASETS / "digits.csv").open(newline="") as f:
        lines = f.read().splitlines()[: DIGIT_ROWS + 1]
    path.write_text("\n".join(lines) + "\n")


def write_rgb(path: Path, n: int = 240) -> None:
    """3x7x9 colour images (pixels 0 to 255, channel by channel, each row by row): noise
    plus a bright 3x3 blob in one channel; ``blob`` is the blob's channel name."""
    rng = np.random.default_rng(1)
    names = [f"{ch}_{y}_{x}" for ch in "rgb" for y in range(7) for x in range(9)]
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([*names, "blob"])
        for _ in range(n):
            image = rng.integers(0, 90, size=(3, 7, 9))
            channel, y, x = rng.integers(3), rng.integers(0, 5), rng.integers(0, 7)
            image[channel, y : y + 3, x : x + 3] += 160
            writer.writerow([*image.reshape(-1).tolist(), "rgb"[channel]])


# A header cell with four commas, and four commas in each row (the remark's, and x's
# decimal comma): comma splits every line of the semicolon file into five fields,
# semicolon into four, so detection picks comma.
REMARK = "remark, free text, not, an, input"


def write_semicolon(path: Path, n: int = 150, columns: tuple[str, ...] = (
        "x", "grade", "y", REMARK), crlf: bool = False, seed: int = 2) -> Path:
    """Numeric ``x`` (a decimal comma in every other row: 1,5 is 1.5 in a file that is not
    comma-separated), text ``grade``, the target ``y`` and an unquoted ``REMARK``, with
    ";" delimiters (in the order of ``columns``; ``y`` may be left out)."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter=";", lineterminator="\r\n" if crlf else "\n")
        writer.writerow(columns)
        for i in range(n):
            x, grade = rng.normal(0, 2), str(rng.choice(["low", "mid", "high"]))
            y = x * (1 + (grade == "high")) + 3 * (grade == "low") + rng.normal(0, 0.3)
            cells = {"x": f"{x:.4f}".replace(".", "," if i % 2 else "."), "grade": grade,
                     "y": f"{y:.4f}",
                     # four commas in every line, as in the header
                     REMARK: f"row {i}, a, b, c" + ("" if i % 2 else ", d")}
            writer.writerow([cells[c] for c in columns])
    return path


def write_dated(path: Path, n: int = 120, seed: int = 4) -> Path:
    """Dates ``when`` (ISO, 2012/01/31 or 31.01.2012, some missing) and ``stamp``
    (``31 Jan 2012``), numeric ``x``, and a target ``y`` with a yearly cycle."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["when", "stamp", "x", "y"])
        for i in range(n):
            day = dt.date(2011, 1, 1) + dt.timedelta(days=int(rng.integers(0, 1500)))
            when = [day.isoformat(), day.strftime("%Y/%m/%d"), day.strftime("%d.%m.%Y"),
                    ""][i % 7 % 4]
            x = rng.normal()
            y = math.sin(2 * math.pi * day.month / 12) + 0.5 * x + rng.normal(0, 0.1)
            writer.writerow([when, (day + dt.timedelta(days=3)).strftime("%d %b %Y"),
                             f"{x:.4f}", f"{y:.4f}"])
    return path


def write_shuffled(source: Path, path: Path, seed: int = 3) -> Path:
    """``source`` (a comma file) with its columns in a random order."""
    with source.open(newline="") as f:
        rows = list(csv.reader(f))
    order = np.random.default_rng(seed).permutation(len(rows[0]))
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([row[j] for j in order] for row in rows)
    return path


# Rows to predict, in a shuffled column order with the extra columns note and a.
NEW_COLUMNS = ["note", "weight", "fresh", "a", "colour", "size"]
NEW_ROWS: dict[str, dict[str, str]] = {
    "plain": {"size": "9.7", "colour": "red", "fresh": "true", "weight": "12.3"},
    "upper case": {"size": "14", "colour": "green", "fresh": "FALSE", "weight": "40"},
    "unseen": {"size": "8.25", "colour": "purple", "fresh": "True", "weight": "3"},
    "no size": {"size": "", "colour": "blue", "fresh": "false", "weight": "20"},
    "size N/A": {"size": "N/A", "colour": "red", "fresh": "false", "weight": "30.5"},
    "size Nan": {"size": "Nan", "colour": "green", "fresh": "true", "weight": "7"},
    "size spaces": {"size": "  ", "colour": "blue", "fresh": "true", "weight": "7"},
    "no colour": {"size": "11", "colour": "", "fresh": "true", "weight": "25"},
    "colour NA": {"size": "12", "colour": "NA", "fresh": "false", "weight": "25"},
    "no fresh": {"size": "10", "colour": "red", "fresh": "none", "weight": "45"},
    "exponent": {"size": "1.2e1", "colour": "blue", "fresh": "False", "weight": "+5"},
    "colour case": {"size": "10", "colour": "Red", "fresh": "true", "weight": "12"},
}
# Rows only the "messy" model reads: a marker of a missing cell (na_values) among them.
MESSY_ROWS = {**NEW_ROWS,
              "size marker": {"size": " ? ", "colour": "green", "fresh": "true",
                              "weight": "12"},
              "colour spaces": {"size": "9", "colour": "BLUE ", "fresh": "?", "weight": "1"}}


def write_new(path: Path, delimiter: str = ",", lineterminator: str = "\n",
              rows: dict[str, dict[str, str]] | None = None,
              columns: list[str] | None = None) -> Path:
    """``rows`` (default NEW_ROWS) with the extra cells ``note`` (holding the delimiter,
    so quoted) and ``a``, in the order of ``columns`` (default NEW_COLUMNS)."""
    columns = columns or NEW_COLUMNS
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter, lineterminator=lineterminator)
        writer.writerow(columns)
        for label, row in (rows or NEW_ROWS).items():
            cells = {**row, "note": f"{label}{delimiter} noted", "a": "-1"}
            writer.writerow([cells[c] for c in columns])
    return path


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model_format")
    write_fruit(path / FRUIT)
    write_new(path / "new.csv")
    write_digits(path / DIGITS)
    write_rgb(path / RGB)
    write_semicolon(path / SEMICOLON)
    write_dated(path / DATED)
    return path


@pytest.fixture(scope="module")
def trained(workdir: Path) -> Callable[[str], Path]:
    """``trained(name)``: the run directory of case ``name``, trained once per module."""
    runs: dict[str, Path] = {}

    def run_dir(name: str) -> Path:
        if name not in runs:
            runs[name] = train_case(name, workdir)
        return runs[name]

    return run_dir


def data_path(name: str, workdir: Path) -> Path:
    csv_name = CASES[name]["csv"]
    return workdir / csv_name if csv_name in GENERATED else DATASETS / csv_name


def loss_name(name: str) -> str:
    loss = CASES[name]["loss"]
    return loss if isinstance(loss, str) else loss["name"]


def epochs_of(name: str) -> int:
    return int(CASES[name].get("epochs", EPOCHS))


def train_case(name: str, workdir: Path) -> Path:
    """Train case ``name`` through the CLI; return its run directory."""
    case = CASES[name]
    config = {
        "data": {"path": str(data_path(name, workdir)), **case["data"]},
        "model": {"layers": case["layers"]},
        "loss": case["loss"],
        "optimizer": case["optimizer"],
        "training": {"epochs": epochs_of(name), "batch_size": BATCH, "seed": 0},
        "output": {"runs_dir": str(workdir / "runs"), "name": name},
    }
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = CliRunner().invoke(app, ["train", str(path)])
    assert result.exit_code == 0, result.output
    (run_dir,) = (workdir / "runs").glob(f"{name}-*")
    return run_dir


def bp_predict(model: Path, data: Path) -> str:
    result = CliRunner().invoke(app, ["predict", str(model), str(data)])
    assert result.exit_code == 0, result.output
    return result.stdout


def bp_refuses(model: Path, data: Path, message: str) -> None:
    result = CliRunner().invoke(app, ["predict", str(model), str(data)])
    assert result.exit_code != 0, result.stdout
    assert message in result.output


def python_block(marker: str) -> str:
    """The document's Python code block that contains ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return next(b for b in blocks if marker in b)


def doc_example() -> dict[str, Any]:
    """The Python example of the document, executed as a module (not as __main__)."""
    namespace: dict[str, Any] = {"__name__": "bp_model_format_example"}
    exec(compile(python_block("def predict_csv"), str(DOC), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return doc_example()


def read_arrays(path: Path) -> tuple[dict[str, Any], Arrays]:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return json.loads(str(arrays["meta"])), arrays


def with_meta(arrays: Arrays, meta: dict[str, Any], path: Path) -> Path:
    """A copy of a model file with other metadata."""
    np.savez(path, **{**arrays, "meta": np.array(json.dumps(meta, sort_keys=True))})
    return path


def assert_same_csv(got: str, want: str) -> None:
    """Two prediction CSVs: the same header and labels, numbers equal up to float32."""
    got_rows = list(csv.reader(io.StringIO(got)))
    want_rows = list(csv.reader(io.StringIO(want)))
    assert got_rows[0] == want_rows[0]
    assert len(got_rows) == len(want_rows)
    if len(want_rows[0]) > 1 and want_rows[0][1].startswith("prob_"):  # classification
        assert [r[0] for r in got_rows[1:]] == [r[0] for r in want_rows[1:]]
        got_values = np.array([r[1:] for r in got_rows[1:]], dtype=np.float64)
        want_values = np.array([r[1:] for r in want_rows[1:]], dtype=np.float64)
        # at most one unit in the last printed digit (float32 rounding)
        np.testing.assert_allclose(got_values, want_values, rtol=0, atol=1.5e-6)
    else:
        got_values = np.array(got_rows[1:], dtype=np.float64)
        want_values = np.array(want_rows[1:], dtype=np.float64)
        np.testing.assert_allclose(got_values, want_values, rtol=1e-5, atol=1e-4)


def layer_arrays(meta: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The ``param/`` and ``buffer/`` members the layer list implies, in network order."""
    params: list[str] = []
    buffers: list[str] = []
    for i, layer in enumerate(meta["layers"]):
        if layer["type"] in ("dense", "conv1d") or layer["type"] == "conv2d" and layer[
                "use_bias"]:
            params += [f"param/{i}.W", f"param/{i}.b"]
        elif layer["type"] == "embedding":
            params.append(f"param/{i}.W")
        elif layer["type"] in ("gru", "lstm"):
            params += [f"param/{i}.{key}" for key in ("W", "U", "b", "c")[
                : 4 if layer["type"] == "gru" else 3]]
        elif layer["type"] == "conv2d":
            params.append(f"param/{i}.W")
        elif layer["type"] in ("batch_norm", "layer_norm"):
            params += [f"param/{i}.gamma", f"param/{i}.beta"]
        if layer["type"] == "batch_norm":
            buffers += [f"buffer/{i}.running_mean", f"buffer/{i}.running_var"]
    return params, buffers


def documented_paddings(size: tuple[int, int], window: list[int], stride: list[int],
                        padding: str | list[int]) -> list[tuple[int, int]]:
    """((top, bottom), (left, right)) as the document's "Windows and padding" says."""
    if padding == "valid":
        return [(0, 0), (0, 0)]
    if padding == "same":
        pads = []
        for n, k, s in zip(size, window, stride, strict=True):
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        return pads
    return [(padding[0], padding[0]), (padding[1], padding[1])]


def documented_output_shape(layer: dict[str, Any], shape: tuple[int, ...], side: int = 0
                            ) -> tuple[int, ...]:
    """A layer's output shape (no batch axis) for inputs of ``shape``, by the document;
    ``side``: the inputs a text model's embedding keeps aside."""
    kind = layer["type"]
    if kind == "dense":
        return (layer["units"],)
    if kind == "embedding":
        return (layer["length"], layer["dimension"])
    if kind == "conv1d":
        length, k, stride = shape[0], layer["kernel_size"], layer["stride"]
        padding = layer["padding"]
        total = (max((math.ceil(length / stride) - 1) * stride + k - length, 0)
                 if padding == "same" else 0 if padding == "valid" else 2 * padding)
        return ((length + total - k) // stride + 1, layer["filters"])
    if kind in ("global_max_pool1d", "global_avg_pool1d"):
        return (shape[1] + side,)
    if kind in ("gru", "lstm"):
        return (shape[0], layer["units"]) if layer["return_sequences"] else (
            layer["units"] + side,)
    if kind == "flatten":
        return (math.prod(shape),)
    if kind == "global_avg_pool2d":
        return shape[:1]
    if kind not in ("conv2d", "max_pool2d", "avg_pool2d"):
        return shape
    window = layer["kernel_size"] if kind == "conv2d" else layer["pool_size"]
    pads = documented_paddings(shape[1:], window, layer["stride"], layer["padding"])
    out = [(n + before + after - k) // s + 1 for n, (before, after), k, s
           in zip(shape[1:], pads, window, layer["stride"], strict=True)]
    if layer["padding"] == "same":
        assert out == [math.ceil(n / s) for n, s in zip(shape[1:], layer["stride"],
                                                         strict=True)]
    return (layer["filters"] if kind == "conv2d" else shape[0], *out)


def targets_of(name: str) -> list[str]:
    target = CASES[name]["data"]["target"]
    return [target] if isinstance(target, str) else target


# -- predictions -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_reference_loader_reproduces_bp_predict(
    name: str, trained: Callable[[str], Path], workdir: Path, example: dict[str, Any]
) -> None:
    run_dir = trained(name)
    data = data_path(name, workdir)
    inputs = [data]
    if name in FRUIT_CASES:
        # shuffled columns, extra columns, missing cells, an unseen category; then the same
        # rows with semicolons and CRLF line endings, which bp detects
        inputs += [workdir / "new.csv",
                   write_new(workdir / "new_semicolon.csv", ";", "\r\n")]
        if name == "messy":
            inputs.append(write_new(workdir / "new_messy.csv", rows=MESSY_ROWS))
    elif name == "semicolon":
        # other rows, other column order, no target, CRLF: still read with ";"
        inputs.append(write_semicolon(workdir / "semicolon_new.csv", 40,
                                      (REMARK, "grade", "x"), crlf=True, seed=7))
    elif name in IMAGE_CASES:
        # the pixel columns in another order: each is found by its name
        inputs.append(write_shuffled(data, workdir / f"shuffled_{data.name}"))
    targets = targets_of(name)
    regression = loss_name(name) in ("mse", "mae", "huber")
    for model in (run_dir / "model.npz", run_dir / "checkpoints" / "last.npz"):
        for path in inputs:
            want = bp_predict(model, path)
            got = example["predict_csv"](str(model), str(path))
            assert_same_csv(got, want)
            # one row per data row, in order; the header as the document says
            assert len(want.splitlines()) == len(path.read_text().splitlines())
            header = want.splitlines()[0].split(",")
            if regression:
                assert header == targets
            else:
                _, arrays = read_arrays(model)
                assert header == [targets[0], *(f"prob_{c}" for c in arrays["pre/classes"])]


@pytest.mark.parametrize("name", FRUIT_CASES)
def test_network_inputs_follow_the_document(
    name: str, trained: Callable[[str], Path], workdir: Path, example: dict[str, Any]
) -> None:
    """The example's inputs, row by row, against the recipe in "Preprocessing"."""
    meta, arrays = read_arrays(trained(name) / "model.npz")
    x = example["network_inputs"](meta, arrays, workdir / "new.csv")
    assert x.dtype == np.float32 and x.shape == (len(NEW_ROWS), meta["input_shape"][0])
    features = [str(f) for f in arrays["pre/features"]]
    mean, scale = arrays["pre/mean"], arrays["pre/scale"]
    columns = {c["name"]: c for c in meta["preprocessing"]["inputs"]}
    for r, row in enumerate(NEW_ROWS.values()):
        for column_name, column in columns.items():
            cell = row[column_name]
            if column["kind"] == "text":  # word ids, from the first input on
                vocabulary = column["text"]["vocabulary"]
                words = [] if cell in ("", "NA") else cell.lower().split()
                ids = [vocabulary.index(w) + 2 if w in vocabulary else 1 for w in words]
                length = column["text"]["max_length"]
                assert features.index(f"{column_name}[0]") == 0
                assert x[r, :length].tolist() == ids + [0] * (length - len(ids)), (r, cell)
                continue
            if column["kind"] == "categorical":
                value = column["fill"] if cell in ("", "NA") else cell
                if column["fold_case"]:
                    value = value.lower()
                for category in column["categories"]:
                    j = features.index(f"{column_name}={category}")
                    assert x[r, j] == (category == value), (r, column_name, category)
                if column["other"]:  # the values outside the vocabulary
                    j = features.index(f"{column_name}=<other>")
                    assert x[r, j] == (value not in column["categories"]), (r, column_name)
                continue
            j = features.index(column_name)
            if column["kind"] == "boolean":
                raw = {"true": 1.0, "false": 0.0}.get(cell.lower(), column["fill"])
            elif cell.strip() in ("", "N/A") or math.isnan(float(cell)):
                raw = column["fill"]
            else:
                raw = float(cell)
            # in float32, as bp computes it
            want = (np.float32(raw) - np.float32(mean[j])) / np.float32(scale[j])
            assert x[r, j] == want, (r, column_name, cell)
    unseen = list(NEW_ROWS).index("unseen")
    assert not any(x[unseen, j] for j, f in enumerate(features)
                   if f.startswith("colour=") and f != "colour=<other>")


def test_refusals_match_bp(trained: Callable[[str], Path], workdir: Path,
                           example: dict[str, Any]) -> None:
    """Where bp refuses a file, so does the example; settings come from the file."""
    meta, arrays = read_arrays(trained("mixed") / "model.npz")
    predict_csv = example["predict_csv"]

    def altered(column: str, **settings: Any) -> Path:
        inputs = [{**c, **settings} if c["name"] == column else c
                  for c in meta["preprocessing"]["inputs"]]
        changed = {**meta, "preprocessing": {**meta["preprocessing"], "inputs": inputs}}
        return with_meta(arrays, changed, workdir / f"altered-{column}.npz")

    new = workdir / "new.csv"
    # (model, data, bp's message, the example's message)
    cases = [
        (altered("colour", unseen="error"), new, "'purple' was not in the training data",
         "'purple' was not in the training data"),
        (altered("size", missing="error", fill=None), new, "column 'size': missing value",
         "column 'size': missing value"),
        (altered("fresh", missing="error", fill=None), new, "column 'fresh': missing value",
         "column 'fresh': missing value"),
    ]
    model = trained("mixed") / "model.npz"
    # (without the row of spaces: bp's diagnosis of a bad cell takes it for one)
    rows = {k: v for k, v in NEW_ROWS.items() if k != "size spaces"}
    plain = rows["plain"]
    for label, bad_rows, columns, message, example_message in (
        ("no_column", rows, [c for c in NEW_COLUMNS if c != "colour"],
         "missing column 'colour'", "missing columns"),
        ("not_boolean", {**rows, "plain": {**plain, "fresh": "yes"}}, None,
         "'yes' is not true or false", "'yes' is not true or false"),
        ("infinite", {**rows, "plain": {**plain, "size": "inf"}}, None, "infinite",
         "infinite"),
    ):
        path = write_new(workdir / f"bad-{label}.csv", rows=bad_rows, columns=columns)
        cases.append((model, path, message, example_message))
    for model_path, data, message, example_message in cases:
        bp_refuses(model_path, data, message)
        with pytest.raises(ValueError, match=re.escape(example_message)):
            predict_csv(str(model_path), str(data))
    # the unaltered model reads the same file
    assert_same_csv(predict_csv(str(model), str(new)), bp_predict(model, new))


# -- the delimiter, fixed scaling and image inputs ---------------------------------------------


def test_the_configured_delimiter_is_used(trained: Callable[[str], Path], workdir: Path,
                                          example: dict[str, Any]) -> None:
    """preprocessing.delimiter: set, bp and the example read with it; null (or absent, as
    earlier files have it), both detect, which takes this file for a comma file."""
    model = trained("semicolon") / "model.npz"
    meta, arrays = read_arrays(model)
    assert meta["preprocessing"]["delimiter"] == ";"
    data = workdir / SEMICOLON
    assert example["sniff_delimiter"](data.read_text()) == ","
    assert_same_csv(example["predict_csv"](str(model), str(data)), bp_predict(model, data))
    settings = {k: v for k, v in meta["preprocessing"].items() if k != "delimiter"}
    for label, preprocessing in (("null", {**settings, "delimiter": None}),
                                 ("absent", settings)):
        detected = with_meta(arrays, {**meta, "preprocessing": preprocessing},
                             workdir / f"semicolon-{label}.npz")
        bp_refuses(detected, data, "missing columns 'x', 'grade'")
        with pytest.raises(ValueError, match="missing columns"):
            example["predict_csv"](str(detected), str(data))


@pytest.mark.parametrize("name", IMAGE_CASES)
def test_image_inputs_follow_the_document(
    name: str, trained: Callable[[str], Path], workdir: Path, example: dict[str, Any]
) -> None:
    """Fixed scaling: pixel / scale_by, in float32. Network input j, a column named
    <channel>_<row>_<column>, is the pixel (c * H + y) * W + x of the reshaped image."""
    meta, arrays = read_arrays(trained(name) / "model.npz")
    channels, height, width = meta["input_shape"]
    scale_by = CASES[name]["data"]["pixel_scale"]
    data = data_path(name, workdir)
    with data.open(newline="") as f:
        rows = list(csv.DictReader(f))
    features = [str(f) for f in arrays["pre/features"]]
    raw = np.array([[float(row[f]) for f in features] for row in rows], dtype=np.float32)
    x = example["network_inputs"](meta, arrays, data)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, raw / np.float32(scale_by))
    shuffled = write_shuffled(data, workdir / f"inputs_{data.name}", seed=4)
    np.testing.assert_array_equal(example["network_inputs"](meta, arrays, shuffled), x)
    images = x.reshape(len(x), channels, height, width)
    names = "rgb" if channels == 3 else "p"  # digits: px_<row>_<column>
    for j, feature in enumerate(features):
        channel, y, x_ = feature.split("_")
        c, y, x_ = names.index(channel[0]), int(y), int(x_)
        assert j == (c * height + y) * width + x_
        np.testing.assert_array_equal(images[:, c, y, x_], x[:, j])


def test_input_shape_must_fit_the_features(trained: Callable[[str], Path], workdir: Path,
                                           example: dict[str, Any]) -> None:
    """bp refuses a file whose input_shape holds another number of values than
    pre/features, even where every layer would fit it."""
    # 7x8 images give the flatten layer as many values as 8x8 ones: every layer fits
    meta, arrays = read_arrays(trained("digits_cnn") / "model.npz")
    altered = with_meta(arrays, {**meta, "input_shape": [1, 7, 8]}, workdir / "shape.npz")
    data = data_path("digits_cnn", workdir)
    bp_refuses(altered, data, "64 feature names, 64 means and 64 scales for a network of "
               "56 inputs")
    with pytest.raises(ValueError):
        example["predict_csv"](str(altered), str(data))


def documented_image_layer(layer: dict[str, Any], X: np.ndarray, W: np.ndarray | None = None,
                           b: np.ndarray | None = None) -> np.ndarray:
    """conv2d, max_pool2d or avg_pool2d on ``X`` (n, C, H, W), one output position at a
    time, as the document's formulas say, in float64."""
    kind = layer["type"]
    n, C, H, W_ = X.shape
    (kh, kw) = layer["kernel_size"] if kind == "conv2d" else layer["pool_size"]
    sh, sw = layer["stride"]
    (top, bottom), (left, right) = documented_paddings((H, W_), [kh, kw], [sh, sw],
                                                       layer["padding"])
    out_h, out_w = (H + top + bottom - kh) // sh + 1, (W_ + left + right - kw) // sw + 1
    X = X.astype(np.float64)
    Y = np.zeros((n, W.shape[0] if W is not None else C, out_h, out_w))
    for y in range(out_h):
        for x in range(out_w):
            # (i, j) in the window -> input row and column; outside the input: padding
            cells = [(i, j, y * sh - top + i, x * sw - left + j)
                     for i in range(kh) for j in range(kw)]
            inside = [(i, j, r, s) for i, j, r, s in cells if 0 <= r < H and 0 <= s < W_]
            assert inside  # no window of padding alone
            if kind == "conv2d":
                assert W is not None
                total = sum(np.einsum("fc,nc->nf", W[:, :, i, j], X[:, :, r, s])
                            for i, j, r, s in inside)  # zeros elsewhere
                Y[:, :, y, x] = total + (b if b is not None else 0)
            elif kind == "max_pool2d":  # padding (-inf) never wins
                Y[:, :, y, x] = np.max([X[:, :, r, s] for _, _, r, s in inside], axis=0)
            else:  # the padding leaves the sum and the count
                Y[:, :, y, x] = np.mean([X[:, :, r, s] for _, _, r, s in inside], axis=0)
    return Y


GEOMETRIES = [  # window, stride, padding on a 7x6 input
    ([3, 3], [1, 1], "valid"),
    ([3, 2], [2, 1], "same"),
    ([2, 2], [3, 2], "same"),  # stride larger than the window
    ([4, 3], [2, 3], "same"),
    ([2, 3], [2, 2], "valid"),  # the stride leaves the last row out
    ([3, 3], [2, 2], [1, 1]),
    ([3, 2], [3, 1], [1, 0]),
    ([1, 1], [2, 2], "valid"),
]


@pytest.mark.parametrize(("window", "stride", "padding"), GEOMETRIES)
def test_image_layer_formulas_match_bp(window: list[int], stride: list[int],
                                       padding: str | list[int],
                                       example: dict[str, Any]) -> None:
    """The document's formulas (one position at a time, above) and the example's
    vectorised layers give what bp's layers give, for each kind of padding."""
    from bpcli.nn.layers import layer_from_description

    rng = np.random.default_rng(5)
    X = rng.normal(size=(3, 2, 7, 6)).astype(np.float32)  # negative values too
    pad = padding if isinstance(padding, str) else list(padding)
    layers = [
        {"type": "conv2d", "filters": 4, "kernel_size": window, "stride": stride,
         "padding": pad, "use_bias": True, "init": "glorot_uniform"},
        {"type": "conv2d", "filters": 3, "kernel_size": window, "stride": stride,
         "padding": pad, "use_bias": False, "init": "glorot_uniform"},
        {"type": "max_pool2d", "pool_size": window, "stride": stride, "padding": pad},
        {"type": "avg_pool2d", "pool_size": window, "stride": stride, "padding": pad},
    ]
    for described in layers:
        bp_layer = layer_from_description(described)
        shape = bp_layer.build(X.shape[1:], rng, np.float32)
        assert shape == documented_output_shape(described, X.shape[1:])
        assert bp_layer.describe() == described
        if described["type"] == "conv2d":
            W = rng.normal(size=bp_layer.params["W"].shape).astype(np.float32)
            b = rng.normal(size=4).astype(np.float32) if described["use_bias"] else None
            bp_layer.params["W"][...] = W
            if b is not None:
                bp_layer.params["b"][...] = b
            mine = example["conv2d"](X, described, W, b)
            documented = documented_image_layer(described, X, W, b)
        else:
            mine = example["pool2d"](X, described, described["type"][:3])
            documented = documented_image_layer(described, X)
        want = bp_layer.forward(X, False)
        assert mine.dtype == np.float32 and mine.shape == want.shape == (3, *shape)
        np.testing.assert_allclose(documented, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(mine, want, rtol=1e-5, atol=1e-6)


# -- the archive -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_archive_layout_matches_the_document(
    name: str, trained: Callable[[str], Path]
) -> None:
    run_dir = trained(name)
    case = CASES[name]
    meta, arrays = read_arrays(run_dir / "model.npz")
    regression = loss_name(name) in ("mse", "mae", "huber")
    metric = "rmse" if regression else "accuracy"
    targets = targets_of(name)

    # metadata keys and their values
    assert meta["format"] == "bp-model" and meta["format_version"] == 4
    assert set(meta) == {"format", "format_version", "task", "targets", "preprocessing",
                         "loss", "loss_options", "input_shape", "output_shape", "layers",
                         "created", "environment", "config", "epoch", "metrics"}
    assert meta["task"] == ("regression" if regression else "classification")
    assert meta["targets"] == targets
    assert meta["loss"] == loss_name(name)
    assert set(meta["metrics"]) == {"best_epoch", "val_loss", f"val_{metric}"}
    assert meta["epoch"] == meta["metrics"]["best_epoch"]
    assert set(meta["environment"]) == {"bp", "numpy", "python", "platform", "blas",
                                        "blas_threads"}
    assert set(meta["config"]) == {"data", "model", "loss", "optimizer", "regularization",
                                   "training", "output"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", meta["created"])
    pool = {"type", "pool_size", "stride", "padding"}
    recurrent = {"type", "units", "return_sequences", "init", "recurrent_init"}
    for layer in meta["layers"]:
        expected = {"dense": {"type", "units", "init"}, "activation": {"type", "name"},
                    "dropout": {"type", "rate"}, "batch_norm": {"type", "momentum", "epsilon"},
                    "layer_norm": {"type", "epsilon"},
                    "conv2d": {"type", "filters", "kernel_size", "stride", "padding",
                               "use_bias", "init"},
                    "max_pool2d": pool, "avg_pool2d": pool, "global_avg_pool2d": {"type"},
                    "flatten": {"type"},
                    "embedding": {"type", "vocabulary", "dimension", "length", "init",
                                  "init_options"},
                    "conv1d": {"type", "filters", "kernel_size", "stride", "padding", "init"},
                    "global_max_pool1d": {"type"}, "global_avg_pool1d": {"type"},
                    "gru": recurrent, "lstm": recurrent}[layer["type"]]
        options = {"slope", "alpha", "approximate"} if layer["type"] == "activation" else set()
        assert expected <= set(layer) <= expected | options, layer
        # sizes as [rows, columns]; numeric padding as [ph, pw]
        for key in ("kernel_size", "stride", "pool_size"):
            if layer["type"] == "conv1d":  # one axis: ints
                assert isinstance(layer[key] if key in layer else 1, int)
            elif key in layer:
                assert len(layer[key]) == 2 and all(isinstance(v, int) for v in layer[key])
        if "padding" in layer and layer["type"] == "conv1d":
            assert layer["padding"] in ("valid", "same") or isinstance(layer["padding"], int)
        elif "padding" in layer:
            assert layer["padding"] in ("valid", "same") or (
                len(layer["padding"]) == 2 and all(isinstance(v, int) for v in layer["padding"]))
    assert not any(layer.get("name") == "identity" for layer in meta["layers"])
    # a conv2d layer's activation is a separate layer, relu unless the config names one
    for i, layer in enumerate(meta["layers"]):
        if layer["type"] == "conv2d":
            assert meta["layers"][i + 1]["type"] == "activation"

    # the preprocessing object
    pre = meta["preprocessing"]
    assert set(pre) == {"inputs", "targets", "task", "delimiter", "na_values"}
    assert pre["na_values"] == case["data"].get("na_values", [])
    assert pre["targets"] == targets and pre["task"] == meta["task"]
    # the delimiter the config set, else null; config.data.delimiter: the one bp used
    # the delimiter the config set, else null; config.data.delimiter holds the same setting
    assert meta["config"]["data"].get("delimiter") == pre["delimiter"]  # as the config gave it
    kinds = case.get("kinds") or dict.fromkeys(meta["config"]["data"]["features"], "numeric")
    assert [c["name"] for c in pre["inputs"]] == list(kinds)
    features: list[str] = []
    for column in pre["inputs"]:
        assert column["kind"] == kinds[column["name"]]
        common = {"name", "kind", "missing", "fill", "na_values"}
        assert column["missing"] in ("error", "mean", "median", "most_frequent", "constant")
        assert (column["fill"] is None) == (column["missing"] == "error")
        if column["kind"] == "categorical":
            assert set(column) == common | {"unseen", "categories", "other", "fold_case"}
            assert column["unseen"] in ("other", "error", "zeros")
            assert column["categories"] == sorted(set(column["categories"]))
            assert column["fill"] is None or column["fill"] in column["categories"]
            features += [f"{column['name']}={c}" for c in column["categories"]]
            features += [f"{column['name']}=<other>"] * column["other"]
        elif column["kind"] == "text":
            assert set(column) == common | {"text"}
            text = column["text"]
            if text["encoding"] == "sequence":
                features += [f"{column['name']}[{t}]" for t in range(text["max_length"])]
            else:
                assert text["vocabulary"] == sorted(text["vocabulary"])
                features += [f"{column['name']}:{token}" for token in text["vocabulary"]]
        elif column["kind"] == "date":
            assert set(column) == common | {"scaling", "date_format", "day_first"}
            assert column["fill"] is None or dt.date.fromisoformat(column["fill"])
            features += [f"{column['name']}:{f}" for f in ("days", "year", "month_sin",
                                                            "month_cos", "weekday_sin",
                                                            "weekday_cos", "yearday_sin",
                                                            "yearday_cos")]
        else:
            pixel_scale = case["data"].get("pixel_scale")
            if pixel_scale is not None and column["kind"] == "numeric":
                assert column["scaling"] == "fixed" and column["scale_by"] == pixel_scale
                assert set(column) == common | {"scaling", "scale_by"}
            else:
                assert set(column) == common | {"scaling"}
                assert column["scaling"] in ("standard", "minmax", "none")
            assert column["fill"] is None or isinstance(column["fill"], float)
            features.append(column["name"])
    assert [str(f) for f in arrays["pre/features"]] == features
    image_shape = case["data"].get("input_shape")
    if image_shape:  # [channels, height, width], as many values as features
        assert meta["input_shape"] == image_shape
        assert math.prod(image_shape) == len(features)
    else:
        assert meta["input_shape"] == [len(features)]
    mean, scale = arrays["pre/mean"], arrays["pre/scale"]
    start = 0
    for column in pre["inputs"]:
        width = sum(f.startswith((f"{column['name']}:", f"{column['name']}["))
                    for f in features) if column["kind"] == "text" else 0
        if column["kind"] == "text":  # word ids and tfidf weights are not scaled
            assert width and (mean[start:start + width] == 0).all()
            assert (scale[start:start + width] == 1).all()
            start += width
            continue
        if column["kind"] == "categorical":
            j = features.index(f"{column['name']}={column['categories'][0]}")
            assert (mean[j:j + len(column["categories"])] == 0).all()
            assert (scale[j:j + len(column["categories"])] == 1).all()
            continue
        if column["kind"] == "date":  # minmax on eight inputs: each spans 0 to 1
            j = features.index(f"{column['name']}:days")
            assert (scale[j:j + 8] > 0).all()
            if column["scaling"] == "minmax":
                assert mean[j + 1] == 2011 and scale[j + 1] in (3, 4)  # years 2011-2015
            continue
        j = features.index(column["name"])
        if column["scaling"] == "none":
            assert (mean[j], scale[j]) == (0, 1)
        elif column["scaling"] == "fixed":
            assert (mean[j], scale[j]) == (0, column["scale_by"])
        elif column["scaling"] == "standard" and column["missing"] == "mean":
            # filling with the mean leaves the mean as it was
            assert math.isclose(mean[j], column["fill"], rel_tol=1e-9)
        assert scale[j] > 0
    if name == "two_targets":  # a constant fill that no training row holds is a category
        colour = next(c for c in pre["inputs"] if c["name"] == "colour")
        assert colour["fill"] == "grey" and colour["categories"] == ["blue", "green", "grey",
                                                                      "red"]

    # members, dtypes and shapes
    params, buffers = layer_arrays(meta)
    pre_arrays = {f"pre/{k}" for k in ("features", "mean", "scale", "classes", "target_mean",
                                       "target_scale")}
    assert set(arrays) == {"meta", *params, *buffers, *pre_arrays}
    assert arrays["meta"].dtype.kind == "U" and arrays["meta"].shape == ()
    # each layer's input shape, by the document's formulas; the members' shapes
    shape = tuple(meta["input_shape"])
    image_shapes = []
    side = 0
    for i, layer in enumerate(meta["layers"]):
        kind = layer["type"]
        if kind == "dense":
            W, b = arrays[f"param/{i}.W"], arrays[f"param/{i}.b"]
            assert W.dtype == b.dtype == np.float32
            assert W.shape == (*shape, layer["units"]) and b.shape == (W.shape[1],)
        elif kind == "conv2d":
            W = arrays[f"param/{i}.W"]
            assert W.dtype == np.float32
            assert W.shape == (layer["filters"], shape[0], *layer["kernel_size"])
            if layer["use_bias"]:
                b = arrays[f"param/{i}.b"]
                assert b.dtype == np.float32 and b.shape == (layer["filters"],)
            else:
                assert f"param/{i}.b" not in arrays
        elif kind in ("batch_norm", "layer_norm"):
            # batch_norm: per feature or channel (axis 1); layer_norm: the input's shape
            expected = shape[:1] if kind == "batch_norm" else shape
            for key in ("param/{}.gamma", "param/{}.beta") + (
                    ("buffer/{}.running_mean", "buffer/{}.running_var")
                    if kind == "batch_norm" else ()):
                member = arrays[key.format(i)]
                assert member.dtype == np.float32 and member.shape == expected
        if kind == "embedding":
            side = shape[0] - layer["length"]
            W = arrays[f"param/{i}.W"]
            assert W.dtype == np.float32
            assert W.shape == (layer["vocabulary"], layer["dimension"])
            assert not W[0].any()  # padding's row is never trained
        shape = documented_output_shape(layer, shape, side)
        if kind in ("conv2d", "max_pool2d", "avg_pool2d"):
            image_shapes.append(shape)
    if "shapes" in case:
        assert image_shapes == case["shapes"]
    width = shape[0]
    assert meta["output_shape"] == [width]
    assert arrays["pre/features"].dtype.kind == arrays["pre/classes"].dtype.kind == "U"
    for key in ("mean", "scale", "target_mean", "target_scale"):
        assert arrays[f"pre/{key}"].dtype == np.float64
    assert arrays["pre/mean"].shape == arrays["pre/scale"].shape == (len(features),)
    if regression:
        assert arrays["pre/classes"].shape == (0,)
        assert arrays["pre/target_mean"].shape == (len(targets),)
        assert arrays["pre/target_scale"].shape == (len(targets),)
        assert width == len(targets)
    else:
        assert arrays["pre/target_mean"].shape == arrays["pre/target_scale"].shape == (0,)
        classes = [str(c) for c in arrays["pre/classes"]]
        assert classes == sorted(classes)
        assert width == (1 if loss_name(name) == "binary_cross_entropy" else len(classes))

    # checkpoints: the model's members plus opt/*, epoch info at the top level
    n_train = json.loads((run_dir / "summary.json").read_text())["n_train"]
    n_params = sum(arrays[p].size for p in params)
    optimizer = case["optimizer"]
    if optimizer["name"] == "adam":
        slots = ["m", "v"]
    else:
        slots = ["velocity"] if optimizer.get("momentum", 0) > 0 else []
    for which in ("best", "last"):
        ck_meta, ck = read_arrays(run_dir / "checkpoints" / f"{which}.npz")
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
        assert ck_meta["preprocessing"] == meta["preprocessing"]
        if which == "last":
            assert ck_meta["epoch"] == epochs_of(name)
        else:
            assert ck_meta["epoch"] == meta["epoch"]
            assert ck_meta["trainer"]["best_val_loss"] == meta["metrics"]["val_loss"]
            for key in arrays:
                if key != "meta":
                    np.testing.assert_array_equal(ck[key], arrays[key])


# -- versions ----------------------------------------------------------------------------------


def test_unknown_versions_and_formats_are_refused(
    trained: Callable[[str], Path], workdir: Path, example: dict[str, Any]
) -> None:
    meta, arrays = read_arrays(trained("iris") / "model.npz")
    data = DATASETS / "iris.csv"
    for change, message in (
        ({"format_version": 1}, "model format version 1 is not supported by this bp"),
        ({"format_version": 6}, "model format version 6 is not supported by this bp"),
        ({"format": "other"}, "not a bp model"),
    ):
        altered = with_meta(arrays, {**meta, **change}, workdir / "altered.npz")
        bp_refuses(altered, data, message)
        with pytest.raises(ValueError):
            example["load"](str(altered))


def test_version_1_files_upgrade_as_the_document_says(
    trained: Callable[[str], Path], workdir: Path
) -> None:
    """A version 1 file (as the document describes it) is refused; upgraded with the
    document's recipe, it predicts what the version 2 file it came from predicts."""
    for name in ("iris", "diabetes"):
        model = trained(name) / "model.npz"
        meta, arrays = read_arrays(model)
        v1 = {k: v for k, v in meta.items() if k not in ("targets", "preprocessing")}
        v1.update(format_version=1, target=meta["targets"][0])
        old = with_meta(arrays, v1, workdir / f"{name}-v1.npz")
        data = DATASETS / CASES[name]["csv"]
        bp_refuses(old, data, "model format version 1 is not supported by this bp")
        namespace: dict[str, Any] = {"np": np, "json": json}
        exec(compile(python_block("def upgrade_v1"), str(DOC), "exec"), namespace)
        _, v1_arrays = read_arrays(old)
        upgraded = workdir / f"{name}-upgraded.npz"
        np.savez(upgraded, **namespace["upgrade_v1"](v1_arrays))
        assert bp_predict(upgraded, data) == bp_predict(model, data)


def test_version_2_files_are_read_as_version_3_without_the_new_keys(
    trained: Callable[[str], Path], workdir: Path, example: dict[str, Any]
) -> None:
    """What the Versions section promises: a version 2 file (no na_values, other or
    fold_case) predicts as the version 3 file it came from, in bp and in the example."""
    model = trained("mixed") / "model.npz"
    meta, arrays = read_arrays(model)
    new = {"na_values", "other", "fold_case"}
    inputs = [{k: v for k, v in c.items() if k not in new}
              for c in meta["preprocessing"]["inputs"]]
    settings = {k: v for k, v in meta["preprocessing"].items() if k != "na_values"}
    v2 = {**meta, "format_version": 2, "preprocessing": {**settings, "inputs": inputs}}
    old = with_meta(arrays, v2, workdir / "mixed-v2.npz")
    data = workdir / "new.csv"
    assert bp_predict(old, data) == bp_predict(model, data)
    assert_same_csv(example["predict_csv"](str(old), str(data)), bp_predict(model, data))
