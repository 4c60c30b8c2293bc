"""bpcli/modelfile.py: a model file whose parts do not fit together is refused, not used."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    # two classes on one output need the sigmoid's loss
    (net([Dense(1)], MeanSquaredError(), (4,)), {"classes": ["a", "b"]},
     "2 class labels for 1 outputs"),
    (net([Dense(2)], MeanSquaredError(), (4,)),
     {"task": "regression", "target_mean": np.zeros(2), "target_scale": np.ones(1)},
     "regression target arrays do not match the output width"),
    (net([Dense(2)], MeanSquaredError(), (4,)),
     {"task": "regression", "target_mean": np.zeros(3), "target_scale": np.ones(3)},
     "regression target arrays do not match the output width"),
    (classifier(4, 3), {"task": "ranking"}, "unknown task 'ranking'"),
])
def test_parts_that_do_not_fit_are_refused(iris_model: Path, network: Network,
                                           change: dict, message: str) -> None:
    pre = dataclasses.replace(load_model(iris_model).preprocessor, **change)
    with pytest.raises(ValueError) as error:
        _check_consistent(network, pre)
    assert message in str(error.value)
    if message.startswith("regression"):  # the whole message, nothing around it
        assert str(error.value) == message


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


# -- what a damaged or foreign archive is refused for (in process: the subprocess cases of
# test_hostile_input cannot be traced by mutation testing) ---------------------------------
def rewritten(iris_model: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None]
              ) -> Path:
    """A copy of the iris model with ``change`` applied to its arrays."""
    with np.load(iris_model) as archive:
        arrays: dict[str, Any] = {k: archive[k] for k in archive.files}
    change(arrays)
    path = tmp_path / "m.npz"
    with path.open("wb") as f:
        np.savez(f, **arrays)
    return path


def meta_of(arrays: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(str(arrays["meta"])))


def with_meta(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(arrays: dict[str, Any]) -> None:
        arrays["meta"] = np.array(json.dumps({**meta_of(arrays), **changes}))
    return change


def test_json_depth_counts_brackets_outside_strings() -> None:
    from bpcli.modelfile import _json_depth

    assert _json_depth("{}") == 1 and _json_depth('"no brackets"') == 0
    assert _json_depth('{"a": [[1], {"b": []}]}') == 4
    assert _json_depth('{"a": "[[[[\\"[[["}') == 1  # brackets in strings do not count
    assert _json_depth("[" * 70 + "]" * 70) == 70


@pytest.mark.parametrize(("change", "message"), [
    (lambda a: a.__setitem__("meta", np.array("[" * 65 + "]" * 65)),
     "the metadata is nested more than 64 levels deep; not a file bp wrote"),
    (lambda a: a.__setitem__("meta", np.array("{not json")),
     "model metadata is not valid JSON"),
    (lambda a: a.__setitem__("meta", np.array("[1, 2]")), "not a bp model file"),
    (with_meta(format="other"), "not a bp model file"),
    (with_meta(format_version=6), "model format version 6 is not supported by this bp (it "
     "reads versions 2 to 5); use the bp version that wrote it"),
    (with_meta(format_version=None), "model format version None is not supported"),
    (lambda a: a.pop("meta"), "not a bp model file (no metadata)"),
    (lambda a: a.__setitem__("meta", np.array(["{}"])), "the metadata is not a text scalar"),
    (lambda a: a.__setitem__("meta", np.array(3)), "the metadata is not a text scalar"),
    (lambda a: a.pop("pre/scale"), "missing array pre/scale"),
    (lambda a: a.__setitem__("pre/mean", np.zeros((4, 1))),
     "array pre/mean should be 1-D floats, not 2-D float64"),
    (lambda a: a.__setitem__("pre/features", np.zeros(4)),
     "array pre/features should be 1-D text, not 1-D float64"),
    (lambda a: a.__setitem__("pre/classes", np.array(["a", "b", "c"])[None]),
     "array pre/classes should be 1-D text, not 2-D <U1"),
    (lambda a: a.__setitem__("param/0.W", np.array(["x"])),
     "array param/0.W has dtype <U1; bp model files hold numbers and text only"),
    (lambda a: a.__setitem__("param/0.W", np.zeros((4, 8), dtype=np.int64)),
     "damaged or incompatible model file: parameter 0.W has dtype int64, expected floats"),
    (with_meta(input_shape=[0]), "input_shape [0] is not a list of positive ints"),
    (with_meta(input_shape=[True]), "input_shape [True] is not a list of positive ints"),
    (with_meta(input_shape=[]), "input_shape [] is not a list of positive ints"),
    (with_meta(input_shape=4), "input_shape 4 is not a list of positive ints"),
    (with_meta(layers=None), "damaged or incompatible model file: 'NoneType' object is not "
     "iterable"),
    (lambda a: a.__setitem__("meta", np.array(json.dumps(
        {k: v for k, v in meta_of(a).items() if k != "loss"}))),
     "damaged or incompatible model file: missing 'loss'"),
    (with_meta(gan={}), "a GAN's model, which makes rows rather than predicting them: draw "
     "new rows with bp generate"),
])
def test_a_damaged_archive_is_refused_for_what_is_wrong(
        iris_model: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None],
        message: str) -> None:
    path = rewritten(iris_model, tmp_path, change)
    with pytest.raises(ModelFileError) as error:
        load_model(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def test_the_unaltered_copy_loads(iris_model: Path, tmp_path: Path) -> None:
    """The rewriting above alone changes nothing: each refusal is its change's."""
    saved = load_model(rewritten(iris_model, tmp_path, lambda a: None))
    assert saved.preprocessor.classes == load_model(iris_model).preprocessor.classes
    assert saved.meta["format_version"] == 4


def test_metadata_beyond_the_limit_is_refused(iris_model: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted in characters when read and, before reading, from the stored size."""
    import bpcli.modelfile as modelfile

    long = rewritten(iris_model, tmp_path, with_meta(padding="x" * 2500))
    with np.load(long) as archive:
        chars = len(str(archive["meta"]))  # stored in 4 bytes each, after a short header
    monkeypatch.setattr(modelfile, "MAX_META_CHARS", chars // 8)
    with pytest.raises(ModelFileError, match=r"the metadata is [0-9.]+ KiB, more than bp "
                       "reads; not a file bp wrote"):
        load_model(long)
    monkeypatch.setattr(modelfile, "MAX_META_CHARS", chars - 1)  # within the stored size
    with pytest.raises(ModelFileError, match=f"the metadata is {chars} characters, more "
                       "than bp reads; not a file bp wrote"):
        load_model(long)
    monkeypatch.setattr(modelfile, "MAX_META_CHARS", chars)
    assert load_model(long).meta["padding"] == "x" * 2500


def test_a_directory_or_a_non_archive_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r": is a directory; give the model\.npz inside"):
        load_model(tmp_path)
    text = tmp_path / "m.npz"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match=r"m\.npz: not a bp model file \(not an \.npz "
                       r"archive\)"):
        load_model(text)


def test_a_checkpoint_keeps_the_optimizer_state(iris_model: Path, tmp_path: Path) -> None:
    saved = load_model(iris_model)
    path = tmp_path / "checkpoint.npz"
    state = {"iterations": np.array(7), "velocity/0": np.arange(3.0)}
    save_model(path, saved.network, saved.preprocessor, {"note": 1}, optimizer_state=state)
    again = load_model(path)
    assert set(again.optimizer_state) == {"iterations", "velocity/0"}
    assert again.optimizer_state["iterations"] == 7
    assert np.array_equal(again.optimizer_state["velocity/0"], [0.0, 1.0, 2.0])
    assert again.meta["note"] == 1
    save_model(path, saved.network, saved.preprocessor, {})
    assert load_model(path).optimizer_state == {}  # a model file holds none


def test_the_header_records_the_loss_options_and_shapes(iris_model: Path,
                                                        tmp_path: Path) -> None:
    """A loss's options come back from the file (a model loaded for more training keeps
    them); the output shape is recorded for readers other than bp."""
    from bpcli.modelfile import model_arrays

    saved = load_model(iris_model)
    loss = SoftmaxCrossEntropy(label_smoothing=0.2, class_weights=[1.0, 2.0, 3.0])
    network = net([Dense(3), Activation("softmax")], loss, (4,))
    header = json.loads(str(model_arrays(network, saved.preprocessor, {})["meta"]))
    assert header["loss_options"] == {"label_smoothing": 0.2, "class_weights": [1.0, 2.0, 3.0]}
    assert (header["input_shape"], header["output_shape"]) == ([4], [3])
    # what the document's reference loader reads (docs/model-format.md)
    assert (header["format"], header["format_version"]) == ("bp-model", 4)
    assert (header["task"], header["targets"]) == ("classification", ["species"])
    assert header["loss"] == "cross_entropy"
    assert [d["type"] for d in header["layers"]] == ["dense", "activation"]
    assert header["preprocessing"] == saved.preprocessor.to_json()
    path = tmp_path / "m.npz"
    save_model(path, network, saved.preprocessor, {})
    again = load_model(path).network.loss
    assert again.describe() == loss.describe()


def test_the_arrays_are_copies_that_training_does_not_move(iris_model: Path) -> None:
    """Written later in another thread, they must not follow the live weights."""
    from bpcli.modelfile import model_arrays

    saved = load_model(iris_model)
    arrays = model_arrays(saved.network, saved.preprocessor, {},
                          {"velocity/0": np.zeros(2)})
    before = {name: value.copy() for name, value in arrays.items()}
    for param in saved.network.state().values():
        param += 1.0
    saved.preprocessor.mean += 1.0
    assert all(np.array_equal(arrays[name], value) for name, value in before.items())


def test_a_network_too_big_to_load_is_refused_before_it_is_built(iris_model: Path,
                                                                tmp_path: Path) -> None:
    """The metadata may claim any size; the layer that would not fit is named."""
    def huge(arrays: dict[str, Any]) -> None:
        meta = meta_of(arrays)
        meta["layers"][2]["units"] = 10**12
        arrays["meta"] = np.array(json.dumps(meta))

    path = rewritten(iris_model, tmp_path, huge)
    with pytest.raises(ModelFileError, match=r"m\.npz: layer 2 \(dense\): the network needs "
                       r"about .*; this machine cannot load the model$"):
        load_model(path)


def test_input_shapes_of_one_and_nesting_of_exactly_the_limit_are_accepted() -> None:
    from bpcli.modelfile import MAX_META_DEPTH, _input_shape, _read_meta

    assert _input_shape([1]) == (1,) and _input_shape([28, 28, 1]) == (28, 28, 1)
    deep = "[" * MAX_META_DEPTH + "]" * MAX_META_DEPTH
    with pytest.raises(ModelFileError) as error:
        _read_meta(Path("m.npz"), {"meta": np.array(deep)})
    assert str(error.value) == "m.npz: not a bp model file"  # read, not refused for depth


def test_batch_norm_statistics_travel_in_the_file(iris_model: Path, tmp_path: Path) -> None:
    """Buffers (running statistics) are members of a model file like parameters."""
    from bpcli.nn.layers import BatchNorm

    saved = load_model(iris_model)
    network = net([Dense(3), BatchNorm(), Activation("softmax")], SoftmaxCrossEntropy(), (4,))
    for buffer in network.buffers().values():
        buffer[...] = np.arange(buffer.size).reshape(buffer.shape) + 0.5
    path = tmp_path / "m.npz"
    save_model(path, network, saved.preprocessor, {})
    again = load_model(path).network.buffers()
    assert again.keys() == network.buffers().keys() and again
    assert all(np.array_equal(again[k], v) for k, v in network.buffers().items())


# -- a GAN's file: both networks, their settings, and what a damaged one is refused for -----
def gan_file(iris_model: Path, path: Path) -> tuple[Path, Any]:
    """A small GAN (a batch-norm discriminator, uniform noise, label smoothing 0.1)
    written as bp writes one, and the GAN."""
    from bpcli.modelfile import gan_arrays, write_arrays
    from bpcli.nn import Gan, NoLoss
    from bpcli.nn.layers import BatchNorm

    rng = np.random.default_rng(3)
    G = Network([Dense(6), Activation("tanh"), Dense(7)], NoLoss(), (3,), rng)
    D = Network([Dense(6), BatchNorm(), Activation("tanh"), Dense(1), Activation("sigmoid")],
                SigmoidBinaryCrossEntropy(), (7,), rng)
    for buffer in D.buffers().values():
        buffer[...] = rng.uniform(0.5, 2.0, buffer.shape)
    gan = Gan(G, D, 3, "uniform", 0.1)
    settings = {"noise_size": 3, "noise": "uniform", "label_smoothing": 0.1, "d_steps": 2}
    arrays = gan_arrays(gan, load_model(iris_model).preprocessor, {"gan": settings})
    write_arrays(path, arrays)
    return path, gan


def test_a_gan_comes_back_from_its_file_with_its_settings(iris_model: Path,
                                                          tmp_path: Path) -> None:
    from bpcli.modelfile import SavedGan, SavedModel, load_any, load_gan

    path, gan = gan_file(iris_model, tmp_path / "gan.npz")
    for saved in (load_gan(path), load_any(path)):
        assert isinstance(saved, SavedGan)
        again = saved.gan
        assert (again.noise_size, again.noise, again.label_smoothing) == (3, "uniform", 0.1)
        for new, old in ((again.generator, gan.generator),
                         (again.discriminator, gan.discriminator)):
            assert new.state().keys() == old.state().keys()
            assert all(np.array_equal(new.state()[k], v) for k, v in old.state().items())
            assert new.buffers().keys() == old.buffers().keys()
            assert all(np.array_equal(new.buffers()[k], v) for k, v in old.buffers().items())
        assert again.discriminator.buffers()  # the batch norm's statistics travelled
    assert isinstance(load_any(iris_model), SavedModel)


def test_a_gans_arrays_are_copies_that_training_does_not_move(iris_model: Path,
                                                              tmp_path: Path) -> None:
    """A checkpoint's arrays are written later, in another thread, while both networks
    train on: the discriminator's too must not follow the live weights."""
    from bpcli.modelfile import gan_arrays

    _, gan = gan_file(iris_model, tmp_path / "gan.npz")
    arrays = gan_arrays(gan, load_model(iris_model).preprocessor,
                        {"gan": {"noise_size": 3}})
    before = {name: value.copy() for name, value in arrays.items()}
    gan.flat_params += 1.0
    for buffer in gan.discriminator.buffers().values():
        buffer += 1.0
    assert any(name.startswith("discriminator/buffer/") for name in arrays)
    assert all(np.array_equal(arrays[name], value) for name, value in before.items())


def _without_noise_size(settings: dict[str, Any]) -> None:
    del settings["noise_size"]


@pytest.mark.parametrize(("change", "message"), [
    (_without_noise_size, "damaged or incompatible model file: missing 'noise_size'"),
    (lambda s: s.update(noise="gaussian"), "damaged or incompatible model file: unknown "
     "noise 'gaussian'; one of ['normal', 'uniform']"),
    (lambda s: s["discriminator"]["layers"][0].update(units=10**12),
     "layer 0 (dense): the network needs about "),
])
def test_a_damaged_gan_file_is_refused_naming_it(iris_model: Path, tmp_path: Path,
                                                 change: Callable[[dict[str, Any]], None],
                                                 message: str) -> None:
    from bpcli.modelfile import load_any, load_gan

    path, _ = gan_file(iris_model, tmp_path / "gan.npz")
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = meta_of(arrays)
    change(meta["gan"])
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    for load in (load_gan, load_any):
        with pytest.raises(ModelFileError) as error:
            load(path)
        assert str(error.value).startswith(f"{path}: {message}")
        if not message.startswith("layer"):
            assert str(error.value) == f"{path}: {message}"


def test_bp_generate_refuses_a_predictors_file_saying_what_it_predicts(
        iris_model: Path) -> None:
    from bpcli.modelfile import load_gan

    with pytest.raises(ModelFileError) as error:
        load_gan(iris_model)
    assert str(error.value) == (f"{iris_model}: not a GAN's model (it predicts "
                                "classification); bp generate draws rows from models "
                                "trained with a gan section")


# -- the limits at their edges --------------------------------------------------------------
def test_a_file_without_loss_options_loads_with_the_losss_defaults(iris_model: Path,
                                                                   tmp_path: Path) -> None:
    """``loss_options`` only carries settings; a file without the key (a reader of the
    document may write one) reads as one with none set."""
    def drop(arrays: dict[str, Any]) -> None:
        meta = meta_of(arrays)
        del meta["loss_options"]
        arrays["meta"] = np.array(json.dumps(meta))

    saved = load_model(rewritten(iris_model, tmp_path, drop))
    assert saved.network.loss.describe() == SoftmaxCrossEntropy().describe()


def test_a_network_is_refused_only_when_loading_it_would_not_fit(
        iris_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading needs each parameter once and one row's inputs and outputs per layer, in
    float32; not a training step's gradients, optimizer slots or batch."""
    import bpcli.memory
    import bpcli.modelfile as modelfile

    network = classifier(4, 3)  # dense 4 -> 3, then softmax
    path = tmp_path / "m.npz"
    save_model(path, network, load_model(iris_model).preprocessor, {})
    need = ((4 * 3 + 3) + (4 + 3) + (3 + 3)) * 4
    monkeypatch.setattr(modelfile, "memory_limit", lambda: 1 << 40)  # the archive's size
    monkeypatch.setattr(bpcli.memory, "available_memory", lambda: need)
    assert load_model(path).network.n_params == 15
    monkeypatch.setattr(bpcli.memory, "available_memory", lambda: need - 1)
    with pytest.raises(ModelFileError, match=rf"m\.npz: layer 0 \(dense\): the network "
                       rf"needs about {need} bytes, more than the {need - 1} bytes of memory"):
        load_model(path)


def test_an_archive_is_refused_only_when_its_arrays_exceed_the_memory(
        iris_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bpcli.modelfile as modelfile
    from bpcli.files import human_size

    with zipfile.ZipFile(iris_model) as archive:
        total = sum(m.file_size for m in archive.infolist())
    monkeypatch.setattr(modelfile, "memory_limit", lambda: total)
    load_model(iris_model)
    monkeypatch.setattr(modelfile, "memory_limit", lambda: total - 1)
    with pytest.raises(ModelFileError) as error:
        load_model(iris_model)
    assert str(error.value) == (f"{iris_model}: its arrays hold {human_size(total)}, more "
                                "than the memory available; this machine cannot load the "
                                "model")


@pytest.mark.parametrize(("extra", "refused"), [(0, False), (1, True)])
def test_a_metadata_member_is_refused_unread_one_byte_over_its_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: int, refused: bool) -> None:
    """Before reading, the stored metadata may take 4 bytes a character and 4 KiB of
    header; one byte more is refused, whatever the member holds."""
    import bpcli.modelfile as modelfile

    monkeypatch.setattr(modelfile, "MAX_META_CHARS", 1000)
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("meta.npy", b"\0" * (4 * 1000 + 4096 + extra))
    with pytest.raises(ModelFileError) as error:
        load_model(path)
    over = f"{path}: the metadata is 7.9 KiB, more than bp reads; not a file bp wrote"
    assert (str(error.value) == over) is refused
    if not refused:  # read, and refused for what it holds
        assert str(error.value) == f"{path}: members meta are not NumPy arrays; not a file bp wrote"


@pytest.mark.parametrize("member", ["meta.npy", "param/0.W.npy", "notes.txt"])
def test_a_member_that_is_no_array_is_refused_in_one_line(iris_model: Path, tmp_path: Path,
                                                          member: str) -> None:
    """np.load returns such a member as bytes; it used to end in an AttributeError's
    traceback."""
    from bpcli.modelfile import load_any

    path = tmp_path / "m.npz"
    with zipfile.ZipFile(iris_model) as source, zipfile.ZipFile(path, "w") as archive:
        for info in source.infolist():
            if info.filename != member:
                archive.writestr(info, source.read(info))
        archive.writestr(member, b"hello")
    name = member.removesuffix(".npy")
    for load in (load_model, load_any):
        with pytest.raises(ModelFileError) as error:
            load(path)
        assert str(error.value) == (f"{path}: members {name} are not NumPy arrays; not a "
                                    "file bp wrote")


# -- files that are not bp's: what np.load meets, said in one line ----------------------
PICKLE_RAN: list[int] = []


def _pickle_ran() -> None:
    PICKLE_RAN.append(1)


class _Payload:
    """Unpickled, it calls ``_pickle_ran``: what a hostile file would run."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_pickle_ran, ())


def test_pickled_arrays_are_refused_and_never_run(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    np.savez(path, meta=np.array("{}"), evil=np.array([_Payload()], dtype=object))
    with pytest.raises(ModelFileError) as error:
        load_model(path)
    assert str(error.value) == (f"{path}: holds pickled objects, which bp never loads; not a "
                                "file bp wrote")
    assert not PICKLE_RAN


def test_a_missing_or_unreadable_file_is_refused_saying_why(tmp_path: Path) -> None:
    missing = tmp_path / "none.npz"
    with pytest.raises(ModelFileError) as error:
        load_model(missing)
    assert str(error.value) == f"{missing}: model file not found"
    bad_header = tmp_path / "header.npz"  # numpy's magic, then no header it can parse
    with zipfile.ZipFile(bad_header, "w") as archive:
        archive.writestr("meta.npy", b"\x93NUMPY\x01\x00" + (20).to_bytes(2, "little")
                         + b"{garbage}" + b" " * 11)
    with pytest.raises(ModelFileError) as error:
        load_model(bad_header)
    assert str(error.value).startswith(f"{bad_header}: not a readable bp model file (")
    damaged = tmp_path / "crc.npz"  # a byte flipped inside a stored array
    np.savez(damaged, meta=np.array("x" * 100), a=np.arange(1000.0))
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ModelFileError) as error:
        load_model(damaged)
    assert str(error.value) == (f"{damaged}: not a readable bp model file (BadZipFile: Bad "
                                "CRC-32 for file 'a.npy')")
