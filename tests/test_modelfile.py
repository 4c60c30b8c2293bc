"""bpcli/modelfile.py: a model file whose parts do not fit together is refused, not used."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bpcli.data import Preprocessor
from bpcli.errors import ModelFileError
from bpcli.modelfile import _check_consistent, load_model, save_model
from bpcli.nn import Activation, Dense, Network
from bpcli.nn.losses import MeanSquaredError, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from tests.conftest import train_iris_model


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_iris_model(tmp_path_factory.mktemp("model"))


def net(layers: list, loss: object, shape: tuple[int, ...]) -> Network:
    return Network(layers, loss, shape, np.random.default_rng(0))  # type: ignore[arg-type]


def classifier(inputs: int, classes: int) -> Network:
    return net([Dense(classes), Activation("softmax")], SoftmaxCrossEntropy(), (inputs,))


def test_the_trained_model_fits_its_preprocessing(iris_model: Path) -> None:
    saved = load_model(iris_model)
    _check_consistent(saved.network, saved.preprocessor)  # no error
    _check_consistent(classifier(4, 3), saved.preprocessor)
    # one sigmoid unit for two classes
    two = dataclasses.replace(saved.preprocessor, classes=["a", "b"])
    _check_consistent(net([Dense(1), Activation("sigmoid")], SigmoidBinaryCrossEntropy(),
                          (4,)), two)


@pytest.mark.parametrize(("network", "change", "message"), [
    (net([Activation("relu")], MeanSquaredError(), (2, 2, 1)), {},
     "outputs have shape (2, 2, 1); a model ends in flat outputs (one per class or target)"),
    (classifier(5, 3), {}, "4 feature names, 4 means and 4 scales for a network of 5 inputs"),
    (classifier(4, 3), {"mean": np.zeros(3)}, "4 feature names, 3 means"),
    (classifier(4, 3), {"scale": np.ones(5)}, "5 scales"),
    (classifier(4, 2), {}, "3 class labels for 2 outputs"),
    (classifier(4, 3), {"classes": ["a"] * 4}, "4 class labels for 3 outputs"),
    (net([Dense(1), Activation("sigmoid")], SigmoidBinaryCrossEntropy(), (4,)), {},
     "3 class labels for 1 outputs"),
    (net([Dense(1)], MeanSquaredError(), (4,)), {"classes": ["a"]},
     "1 class labels for 1 outputs"),
    (net([Dense(2)], MeanSquaredError(), (4,)),
     {"task": "regression", "target_mean": np.zeros(2), "target_scale": np.ones(1)},
     "regression target arrays do not match"),
    (net([Dense(2)], MeanSquaredError(), (4,)),
     {"task": "regression", "target_mean": np.zeros(3), "target_scale": np.ones(3)},
     "regression target arrays do not match"),
    (classifier(4, 3), {"task": "ranking"}, "unknown task 'ranking'"),
])
def test_parts_that_do_not_fit_are_refused(iris_model: Path, network: Network,
                                           change: dict, message: str) -> None:
    pre = dataclasses.replace(load_model(iris_model).preprocessor, **change)
    with pytest.raises(ValueError) as error:
        _check_consistent(network, pre)
    assert message in str(error.value)


def test_a_regression_model_that_fits_is_accepted(iris_model: Path) -> None:
    pre = dataclasses.replace(load_model(iris_model).preprocessor, task="regression",
                              target_mean=np.zeros(2), target_scale=np.ones(2))
    _check_consistent(net([Dense(2)], MeanSquaredError(), (4,)), pre)


def test_a_mismatch_in_a_file_is_a_model_file_error(iris_model: Path, tmp_path: Path) -> None:
    saved = load_model(iris_model)
    path = tmp_path / "m.npz"
    pre: Preprocessor = dataclasses.replace(saved.preprocessor, classes=["a", "b"])
    save_model(path, saved.network, pre, {})
    with pytest.raises(ModelFileError, match=r"m\.npz: damaged or incompatible model file: "
                       "2 class labels for 3 outputs"):
        load_model(path)


def test_a_single_npy_array_is_not_a_model(tmp_path: Path) -> None:
    """An .npy array with a zip archive after it passes the zip check but np.load reads
    the array; that used to end in numpy's TypeError about context managers."""
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("meta.npy", b"")
    path = tmp_path / "m.npz"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ModelFileError, match=r"m\.npz: a single \.npy array, not a bp model"):
        load_model(path)


def test_unexpected_members_are_refused(iris_model: Path, tmp_path: Path) -> None:
    with np.load(iris_model) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["weights/0"] = np.zeros(2)
    arrays["zz"] = np.zeros(2)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    path = tmp_path / "m.npz"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ModelFileError, match="unexpected arrays weights/0, zz; not a file "
                       "bp wrote"):
        load_model(path)
    del arrays["weights/0"], arrays["zz"]
    arrays["opt/iterations"] = np.array(3)  # a checkpoint's optimizer state is expected
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    path.write_bytes(buffer.getvalue())
    assert load_model(path).optimizer_state["iterations"] == 3
