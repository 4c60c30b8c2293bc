"""Model and checkpoint files: ``.npz`` archives of plain arrays plus JSON metadata.

The format is documented in ``docs/model-format.md``. Files are read with
``allow_pickle=False``: loading never executes anything from the file.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from bpcli.atomic import json_text, write_atomic
from bpcli.data import Preprocessor
from bpcli.errors import ModelFileError
from bpcli.files import human_size, open_regular
from bpcli.memory import layer_needs, memory_limit, too_big
from bpcli.nn import LOSSES, Gan, Layer, Network, NoLoss
from bpcli.nn.layers import layer_from_description
from bpcli.nn.losses import SigmoidBinaryCrossEntropy
from bpcli.rundir import RunFiles

FORMAT = "bp-model"
FORMAT_VERSION = 4
#: GAN files (a ``gan`` key, a discriminator beside the generator) are version 5, so that
#: a bp that predates them refuses them rather than take the generator for a predictor;
#: other files stay version 4.
GAN_FORMAT_VERSION = 5
READS = (2, 3, 4, 5)  # format versions this bp reads
#: Limits on the JSON metadata, far beyond what bp writes (see docs/model-format.md).
MAX_META_CHARS = 16 << 20
MAX_META_DEPTH = 64


@dataclass
class SavedModel:
    """Everything a model file holds: the network, its preprocessing, and metadata."""

    network: Network
    preprocessor: Preprocessor
    meta: dict[str, Any]
    optimizer_state: dict[str, NDArray] = field(default_factory=dict)


def save_model(
    path: Path,
    network: Network,
    preprocessor: Preprocessor,
    meta: dict[str, Any],
    optimizer_state: dict[str, NDArray] | None = None,
) -> None:
    """Write a model (or, with ``optimizer_state``, a checkpoint) atomically."""
    write_arrays(path, model_arrays(network, preprocessor, meta, optimizer_state))


def write_arrays(path: Path, arrays: dict[str, NDArray]) -> None:
    """Write ``model_arrays``' result as an .npz file, atomically."""
    write_atomic(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]


def model_arrays(
    network: Network,
    preprocessor: Preprocessor,
    meta: dict[str, Any],
    optimizer_state: dict[str, NDArray] | None = None,
    version: int = FORMAT_VERSION,
) -> dict[str, NDArray]:
    """Everything a model file holds, as arrays copied from the live objects (so they
    can be written later, in another thread, while training goes on)."""
    header = {
        "format": FORMAT,
        "format_version": version,
        "task": preprocessor.task,
        "targets": preprocessor.targets,
        "preprocessing": preprocessor.to_json(),
        "loss": network.loss.name,
        "loss_options": {k: v for k, v in network.loss.describe().items() if k != "name"},
        "input_shape": list(network.input_shape),
        "output_shape": list(network.output_shape),
        "layers": [layer.describe() for layer in network.layers],
        **meta,
    }
    arrays: dict[str, NDArray] = {"meta": np.array(json_text(header))}
    arrays.update({f"param/{k}": v for k, v in network.state().items()})
    arrays.update({f"buffer/{k}": v for k, v in network.buffers().items()})
    arrays.update({f"pre/{k}": v for k, v in preprocessor.to_arrays().items()})
    arrays.update({f"opt/{k}": v for k, v in (optimizer_state or {}).items()})
    return {name: np.array(value, copy=True) for name, value in arrays.items()}


#: the prefix of a GAN discriminator's arrays (``discriminator/param/<name>``, ...)
DISCRIMINATOR = "discriminator"


def gan_arrays(gan: Gan, preprocessor: Preprocessor, meta: dict[str, Any],
               optimizer_state: dict[str, NDArray] | None = None) -> dict[str, NDArray]:
    """A GAN's model (or checkpoint) file: the generator where a model file has its
    network, and the discriminator's layers (in ``meta["gan"]``) and arrays beside it."""
    D = gan.discriminator
    gan_meta = {**meta["gan"], "discriminator": {
        "layers": [layer.describe() for layer in D.layers], "input_shape": list(D.input_shape)}}
    arrays = model_arrays(gan.generator, preprocessor, {**meta, "gan": gan_meta},
                          optimizer_state, GAN_FORMAT_VERSION)
    arrays.update({f"{DISCRIMINATOR}/param/{k}": np.array(v, copy=True)
                   for k, v in D.state().items()})
    arrays.update({f"{DISCRIMINATOR}/buffer/{k}": np.array(v, copy=True)
                   for k, v in D.buffers().items()})
    return arrays


@dataclass
class SavedGan:
    """A GAN's model file: both networks (one parameter vector), the preprocessing that
    decodes generated rows, and metadata (``meta["gan"]``: noise, layout, settings)."""

    gan: Gan
    preprocessor: Preprocessor
    meta: dict[str, Any]
    optimizer_state: dict[str, NDArray] = field(default_factory=dict)


def _read_checked(path: Path) -> tuple[dict[str, NDArray], dict[str, Any]]:
    """A model file's arrays, their names checked, and its metadata."""
    arrays = _read_arrays(path)
    _check_members(path, arrays)
    return arrays, _read_meta(path, arrays)


def load_gan(path: Path) -> SavedGan:
    """Read a GAN's model or checkpoint file; any defect is a ``ModelFileError``."""
    return _gan_from(path, *_read_checked(path))


def _gan_from(path: Path, arrays: dict[str, NDArray], meta: dict[str, Any]) -> SavedGan:
    if "gan" not in meta:
        raise ModelFileError(f"{path}: not a GAN's model (it predicts {meta.get('task')}); "
                             f"bp generate draws rows from models trained with a gan section")
    try:
        settings = meta["gan"]
        rng = np.random.default_rng(0)
        networks = []
        for prefix, layers_meta, shape in (
                ("", meta["layers"], meta["input_shape"]),
                (f"{DISCRIMINATOR}/", settings["discriminator"]["layers"],
                 settings["discriminator"]["input_shape"])):
            layers = [layer_from_description(d) for d in layers_meta]
            input_shape = _input_shape(shape)
            _check_fits(path, layers, input_shape)
            loss = NoLoss() if not prefix else SigmoidBinaryCrossEntropy()
            network = Network(layers, loss, input_shape, rng)
            network.load_state(_prefixed(arrays, f"{prefix}param/"))
            network.load_buffers(_prefixed(arrays, f"{prefix}buffer/"))
            networks.append(network)
        gan = Gan(networks[0], networks[1], int(settings["noise_size"]), settings["noise"],
                  float(settings["label_smoothing"]))
        preprocessor = Preprocessor.from_saved(meta["preprocessing"], _prefixed(arrays, "pre/"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ModelFileError(f"{path}: damaged or incompatible model file: {detail}") from None
    return SavedGan(gan, preprocessor, meta, _prefixed(arrays, "opt/"))


def _prefixed(arrays: dict[str, NDArray], prefix: str) -> dict[str, NDArray]:
    """The arrays under ``prefix``, named without it; parameters must be floats."""
    found = {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}
    if prefix.endswith("param/"):
        for name, value in found.items():
            if value.dtype.kind != "f":
                raise ValueError(f"parameter {name} has dtype {value.dtype}, expected floats")
    return found


def load_any(path: Path) -> SavedModel | SavedGan:
    """A model's or a GAN's file (or checkpoint), whichever ``path`` holds."""
    arrays, meta = _read_checked(path)
    return (_gan_from if "gan" in meta else _model_from)(path, arrays, meta)


def load_model(path: Path) -> SavedModel:
    """Read a model or checkpoint file; any defect is a ``ModelFileError`` naming it."""
    return _model_from(path, *_read_checked(path))


def _model_from(path: Path, arrays: dict[str, NDArray], meta: dict[str, Any]) -> SavedModel:
    if "gan" in meta:
        raise ModelFileError(f"{path}: a GAN's model, which makes rows rather than predicting "
                             f"them: draw new rows with bp generate {path}")
    try:
        layers = [layer_from_description(d) for d in meta["layers"]]
        loss = LOSSES[meta["loss"]](**meta.get("loss_options", {}))
        input_shape = _input_shape(meta["input_shape"])
        _check_fits(path, layers, input_shape)
        network = Network(layers, loss, input_shape, np.random.default_rng(0))
        network.load_state(_prefixed(arrays, "param/"))
        network.load_buffers(_prefixed(arrays, "buffer/"))
        preprocessor = Preprocessor.from_saved(meta["preprocessing"], _prefixed(arrays, "pre/"))
        _check_consistent(network, preprocessor)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ModelFileError(f"{path}: damaged or incompatible model file: {detail}") from None
    return SavedModel(network, preprocessor, meta, _prefixed(arrays, "opt/"))


def _input_shape(value: Any) -> tuple[int, ...]:
    if not (isinstance(value, list) and value and all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value)):
        raise ValueError(f"input_shape {value!r} is not a list of positive ints")
    return tuple(value)


def _check_fits(path: Path, layers: list[Layer], input_shape: tuple[int, ...]) -> None:
    """Refuse, before building it, a network that would not fit in memory (its metadata
    may claim any size)."""
    problem = too_big(layer_needs(layers, input_shape, np.dtype(np.float32).itemsize,
                                  batch=1, inference_batch=1, training=False))
    if problem is not None:
        index, message = problem
        raise ModelFileError(f"{path}: layer {index} ({layers[index].kind}): {message}; "
                             "this machine cannot load the model")


def _check_consistent(network: Network, pre: Preprocessor) -> None:
    """The preprocessing must fit the network: a mismatch would predict nonsense silently."""
    if len(network.output_shape) != 1:
        raise ValueError(f"the network's outputs have shape {network.output_shape}; a model "
                         "ends in flat outputs (one per class or target)")
    width = int(np.prod(network.input_shape))
    if not len(pre.features) == pre.mean.shape[0] == pre.scale.shape[0] == width:
        raise ValueError(f"{len(pre.features)} feature names, {pre.mean.shape[0]} means and "
                         f"{pre.scale.shape[0]} scales for a network of {width} inputs")
    outputs = network.output_shape[0]
    if pre.task == "regression":
        if not pre.target_mean.shape == pre.target_scale.shape == (outputs,):
            raise ValueError("regression target arrays do not match the output width")
    elif pre.task == "classification":
        expected = 2 if network.loss.name == "binary_cross_entropy" and outputs == 1 else outputs
        if len(pre.classes) != expected or expected < 2:
            raise ValueError(f"{len(pre.classes)} class labels for {outputs} outputs")
    else:
        raise ValueError(f"unknown task {pre.task!r}")


def _read_arrays(path: Path) -> dict[str, NDArray]:
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory; give the {RunFiles.MODEL} inside it")
    try:
        # Opened here, not by np.load, so that the file is closed whatever np.load finds.
        with open_regular(path, ModelFileError, "model file") as f:
            if not zipfile.is_zipfile(f):
                raise ModelFileError(f"{path}: not a bp model file (not an .npz archive)")
            _check_sizes(path, f)
            f.seek(0)
            archive = np.load(f, allow_pickle=False)
            # checked before `with archive`: a plain array is no context manager
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ModelFileError(f"{path}: a single .npy array, not a bp model (.npz)")
            with archive:
                arrays = {name: archive[name] for name in archive.files}
            # np.load hands back a member that is no .npy array as its raw bytes
            raw = sorted(name for name, value in arrays.items()
                         if not isinstance(value, np.ndarray))
            if raw:
                raise ModelFileError(f"{path}: members {', '.join(raw)} are not NumPy arrays; "
                                     "not a file bp wrote")
            return arrays
    except ModelFileError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):  # numpy's message suggests unpickling; bp never does
            raise ModelFileError(f"{path}: holds pickled objects, which bp never loads; "
                                 "not a file bp wrote") from None
        raise ModelFileError(f"{path}: not a readable bp model file ({exc})") from None
    except Exception as exc:  # numpy's parser raises many kinds of error on a bad file
        raise ModelFileError(f"{path}: not a readable bp model file "
                             f"({type(exc).__name__}: {exc})") from None


def _check_sizes(path: Path, f: IO[bytes]) -> None:
    """Refuse an archive whose arrays would not fit in memory once decompressed (a small
    file may unpack to any size), or whose metadata is beyond ``MAX_META_CHARS``."""
    with zipfile.ZipFile(f) as archive:
        members = archive.infolist()
    total = sum(m.file_size for m in members)
    if total > memory_limit():
        raise ModelFileError(f"{path}: its arrays hold {human_size(total)}, more than the "
                             "memory available; this machine cannot load the model")
    for member in members:
        # the text is stored as 4-byte characters after a short header
        if member.filename == "meta.npy" and member.file_size > 4 * MAX_META_CHARS + 4096:
            raise ModelFileError(f"{path}: the metadata is {human_size(member.file_size)}, "
                                 "more than bp reads; not a file bp wrote")


def _json_depth(text: str) -> int:
    """How deeply JSON ``text`` nests, without parsing it (a parser recurses per level)."""
    brackets = re.sub(r"[^\[\]{}]", "", _JSON_STRING.sub("", text)).encode("ascii")
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


# The preprocessing arrays: dtype kind ("U" text, "f" floats) and number of dimensions.
PRE_ARRAYS = {"features": ("U", 1), "mean": ("f", 1), "scale": ("f", 1), "classes": ("U", 1),
              "target_mean": ("f", 1), "target_scale": ("f", 1)}


def _check_members(path: Path, arrays: dict[str, NDArray]) -> None:
    unexpected = sorted(k for k in arrays if k != "meta" and k.split("/")[0]
                        not in ("param", "buffer", "pre", "opt", DISCRIMINATOR))
    if unexpected:
        raise ModelFileError(f"{path}: unexpected arrays {', '.join(unexpected)}; not a file "
                             "bp wrote")
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf" and not (name in ("meta", "pre/features",
                                                           "pre/classes")
                                                   and array.dtype.kind == "U"):
            raise ModelFileError(f"{path}: array {name} has dtype {array.dtype}; bp model "
                                 "files hold numbers and text only")
    if "meta" in arrays and (arrays["meta"].dtype.kind != "U" or arrays["meta"].ndim != 0):
        raise ModelFileError(f"{path}: the metadata is not a text scalar")
    for name, (kind, ndim) in PRE_ARRAYS.items():
        pre = arrays.get(f"pre/{name}")
        if pre is None:
            raise ModelFileError(f"{path}: missing array pre/{name}")
        if pre.dtype.kind != kind or pre.ndim != ndim:
            raise ModelFileError(f"{path}: array pre/{name} should be {ndim}-D "
                                 f"{'text' if kind == 'U' else 'floats'}, not {pre.ndim}-D "
                                 f"{pre.dtype}")


def _read_meta(path: Path, arrays: dict[str, NDArray]) -> dict[str, Any]:
    if "meta" not in arrays:
        raise ModelFileError(f"{path}: not a bp model file (no metadata)")
    text = str(arrays["meta"])
    if len(text) > MAX_META_CHARS:
        raise ModelFileError(f"{path}: the metadata is {len(text)} characters, more than bp "
                             "reads; not a file bp wrote")
    if _json_depth(text) > MAX_META_DEPTH:
        raise ModelFileError(f"{path}: the metadata is nested more than {MAX_META_DEPTH} "
                             "levels deep; not a file bp wrote")
    try:
        meta = json.loads(text)
    except ValueError:
        raise ModelFileError(f"{path}: model metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a bp model file")
    version = meta.get("format_version")
    if version not in READS:  # an older file is a newer one without the new keys
        raise ModelFileError(
            f"{path}: model format version {version} is not supported by this bp "
            f"(it reads versions 2 to {max(READS)}); use the bp version that wrote it"
        )
    return meta
