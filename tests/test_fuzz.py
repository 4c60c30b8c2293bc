"""Fuzzing the loaders: random and mutated configs, CSV files and model files either load
or fail with bp's own error (exit 2 on the command line), never anything else."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.config import load_config
from bpcli.csvfile import read_csv
from bpcli.errors import BpError
from bpcli.experiment import prepare
from bpcli.modelfile import load_model
from bpcli.nn import OPTIMIZERS
from tests.conftest import CONFIGS, iris_config, train_iris_model

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8)


def paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a nested dict/list."""
    found = [prefix] if prefix else []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            found += paths(value, (*prefix, i))
    return found


def mutate(config: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """Replace, delete or add at a few random places in a valid config."""
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(paths(config)))
        parent: Any = config
        for key in where[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[where[-1]] = data.draw(values)
        elif action == "delete":
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.text(max_size=8))] = data.draw(values)
    return config


@FUZZ
@given(text=st.text(max_size=300))
def test_random_text_as_a_config(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except BpError:
        pass


@FUZZ
@given(data=st.data())
def test_mutated_configs(tmp_path: Path, data: st.DataObject) -> None:
    config = mutate(iris_config(), data)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    try:
        prepare(load_config(path))
    except BpError:
        pass


csv_cells = st.one_of(st.sampled_from(["", "1", "-2.5", "NA", "nan", "inf", "x", "a,b",
                                       '"q"', "1e400", " 3 ", "true", '"a\nb"', '"x""y"',
                                       "é", ";", "\t"]), st.text(max_size=6))
csv_bytes = st.one_of(
    st.binary(max_size=80),
    st.lists(st.sampled_from([b",", b";", b"\t", b"\n", b"\r\n", b'"', b"1", b"a", b"NA",
                              b"\xef\xbb\xbf", b"\xff", b"-", b"e5", b"true"]), max_size=40
             ).map(b"".join))


@FUZZ
@given(rows=st.lists(st.lists(csv_cells, min_size=1, max_size=4), max_size=8),
       raw=csv_bytes, use_raw=st.booleans(), missing=st.sampled_from(["error", "mean",
                                                                      "most_frequent"]))
def test_random_csv_files(tmp_path: Path, rows: list[list[str]], raw: bytes,
                          use_raw: bool, missing: str) -> None:
    """Random CSV text either loads (the reader, then the whole data pipeline) or raises
    bp's own error."""
    data = raw if use_raw else "\n".join(",".join(row) for row in rows).encode()
    path = tmp_path / "d.csv"
    path.write_bytes(data)
    try:
        table = read_csv(path)
        assert all(len(c.values) == len(table) for c in table.columns.values())
        config = iris_config(data={"path": str(path), "target": table.header[0],
                                   "missing": missing, "validation_fraction": 0.5})
        config_path = tmp_path / "c.yaml"
        config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        prepare(load_config(config_path))
    except BpError:
        pass


class Blob(bytes):
    """Bytes with a short repr, so that a failing example stays readable."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes of model.npz>"


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real model file, trained once for the module."""
    return Blob(train_iris_model(tmp_path_factory.mktemp("model")).read_bytes())


def try_load(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    try:
        load_model(path)
    except BpError:
        pass


@FUZZ
@given(data=st.data())
def test_mutated_model_bytes(tmp_path: Path, model_bytes: bytes, data: st.DataObject) -> None:
    content = bytearray(model_bytes)
    if data.draw(st.booleans()):
        content = content[: data.draw(st.integers(0, len(content)))]
    for _ in range(data.draw(st.integers(0, 8))):
        if content:
            content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    try_load(tmp_path, bytes(content))


@FUZZ
@given(data=st.data())
def test_mutated_model_arrays(tmp_path: Path, model_bytes: bytes, data: st.DataObject) -> None:
    with np.load(io.BytesIO(model_bytes)) as archive:
        arrays = {k: archive[k] for k in archive.files}
    name = data.draw(st.sampled_from(sorted(arrays)))
    kind = data.draw(st.sampled_from(["drop", "shape", "dtype", "text", "meta", "extra"]))
    if kind == "drop":
        del arrays[name]
    elif kind == "shape":
        arrays[name] = np.zeros(data.draw(st.lists(st.integers(0, 5), max_size=3)))
    elif kind == "dtype":
        dtype = data.draw(st.sampled_from(["i1", "U3", "c8", "?", "f2", "f8"]))
        arrays[name] = np.zeros(arrays[name].shape, dtype=dtype)
    elif kind == "text":
        arrays[name] = np.array(data.draw(st.text(max_size=20)))
    elif kind == "meta":
        arrays["meta"] = np.array(data.draw(st.sampled_from([
            '{"format": "bp-model", "format_version": 1}', "[]", "{", '"x"',
            '{"format": "bp-model", "format_version": 1, "layers": 3, "loss": "mse"}'])))
    else:
        arrays["param/99.W"] = np.zeros((2, 2), dtype=np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    try_load(tmp_path, buffer.getvalue())


def test_pickled_member_is_refused_without_unpickling(tmp_path: Path,
                                                      model_bytes: bytes) -> None:
    """An object array inside the archive would run code if unpickled; bp refuses it."""
    buffer = io.BytesIO()
    with np.load(io.BytesIO(model_bytes)) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["pre/classes"] = np.array([object()], dtype=object)
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    path = tmp_path / "m.npz"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(BpError, match="holds pickled objects"):
        load_model(path)
    assert zipfile.is_zipfile(path)


@pytest.mark.parametrize("content", [b"garbage", b"", b"PK\x05\x06" + bytes(18)])
def test_cli_on_broken_inputs_exits_2_without_traceback(tmp_path: Path, content: bytes) -> None:
    model = tmp_path / "m.npz"
    model.write_bytes(content)
    config = tmp_path / "c.yaml"
    config.write_bytes(content)
    runner = CliRunner()
    for args in (["predict", str(model), str(CONFIGS / "iris.yaml")], ["train", str(config)],
                 ["gradcheck", str(config)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output


# -- valid inputs are accepted ----------------------------------------------------------------
# The tests above would pass if every input were refused; these generate inputs that are
# valid by construction and require them to load, with the values they hold.

VALID = settings(FUZZ, max_examples=40)

HIDDEN = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "elu", "selu", "gelu", "silu",
          "softplus", "swish"]
layer_specs = st.lists(st.builds(lambda units, act: {"type": "dense", "units": units,
                                                     "activation": act},
                                 st.integers(1, 12), st.sampled_from(HIDDEN)),
                       min_size=0, max_size=3)


@VALID
# rprop is full-batch, with rules of its own (test_toolkit.py)
@given(hidden=layer_specs, optimizer=st.sampled_from(sorted(set(OPTIMIZERS) - {"rprop"})),
       rate=st.floats(1e-5, 0.5), epochs=st.integers(1, 500), batch_size=st.integers(1, 512),
       seed=st.integers(0, 2**31), fraction=st.floats(0.05, 0.5))
def test_valid_configs_are_accepted(tmp_path: Path, hidden: list[dict[str, Any]],
                                    optimizer: str, rate: float, epochs: int, batch_size: int,
                                    seed: int, fraction: float) -> None:
    config = iris_config(
        model={"layers": [*hidden, {"type": "dense", "activation": "softmax"}]},
        optimizer={"name": optimizer, "learning_rate": rate},
        training={"epochs": epochs, "batch_size": batch_size, "seed": seed})
    config["data"]["validation_fraction"] = fraction
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    experiment = prepare(load_config(path))
    resolved = experiment.config
    assert (resolved.training.epochs, resolved.training.batch_size) == (epochs, batch_size)
    assert resolved.optimizer.name == optimizer
    assert resolved.optimizer.learning_rate == pytest.approx(rate)
    n_val = len(experiment.X_val)
    assert len(experiment.X_train) + n_val == 150 and n_val == pytest.approx(150 * fraction,
                                                                             abs=1.5)
    network = experiment.build_network(np.random.default_rng(0))
    assert network.output_shape == (3,)
    assert [layer.params["W"].shape[1] for layer in network.layers
            if "W" in layer.params] == [*(h["units"] for h in hidden), 3]


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@VALID
@given(header=st.lists(names, min_size=2, max_size=5, unique=True),
       rows=st.integers(4, 20), data=st.data(), delimiter=st.sampled_from([",", ";", "\t"]))
def test_valid_csv_files_load_with_their_values(tmp_path: Path, header: list[str], rows: int,
                                                 data: st.DataObject, delimiter: str) -> None:
    numbers = [data.draw(st.lists(finite, min_size=len(header) - 1,
                                  max_size=len(header) - 1)) for _ in range(rows)]
    labels = [data.draw(st.sampled_from(["red", "green"])) for _ in range(rows)]
    labels[:2] = ["red", "green"]  # both classes appear
    lines = [delimiter.join(header)] + [
        delimiter.join([label, *(repr(v) for v in row)])
        for label, row in zip(labels, numbers, strict=True)]
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = read_csv(path)
    assert table.header == header and len(table) == rows
    target = table.columns[header[0]]
    assert [target.categories[code] for code in target.values] == labels
    for j, name in enumerate(header[1:]):
        assert np.allclose(np.asarray(table.columns[name].values, dtype=np.float64),
                           [row[j] for row in numbers], rtol=1e-6)
    config = iris_config(data={"path": str(path), "target": header[0],
                               "validation_fraction": 0.25},
                         model={"layers": [{"type": "dense", "units": 3},
                                           {"type": "dense", "activation": "softmax"}]})
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    experiment = prepare(load_config(config_path))
    assert experiment.preprocessor.task == "classification"
    assert experiment.preprocessor.classes == ["green", "red"]
    assert experiment.X_train.shape[1] == len(header) - 1


def test_an_unmutated_model_loads_and_so_does_a_resaved_one(tmp_path: Path,
                                                           model_bytes: bytes) -> None:
    path = tmp_path / "m.npz"
    path.write_bytes(model_bytes)
    saved = load_model(path)
    with np.load(io.BytesIO(model_bytes)) as archive:
        arrays = {k: archive[k] for k in archive.files}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    path.write_bytes(buffer.getvalue())
    again = load_model(path)
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    assert np.array_equal(saved.network.forward(X), again.network.forward(X))
    assert again.preprocessor.classes == ["setosa", "versicolor", "virginica"]
