"""A bp model as one ONNX graph, preprocessing included: raw columns in, ``bp predict``'s
numbers out. docs/onnx.md describes the graph's inputs and outputs.

The graph repeats ``Preprocessor``'s encoding and the network's inference pass in ONNX
operators, in the same precision and order of operations (``(x - mean) / scale`` in
float32, batch norm folded into one scale and shift as bp folds it, regression outputs
mapped back to the target's units in float64), so that onnxruntime's outputs agree with
bp's to float32 rounding in the matrix products.

Rows that ``bp predict`` would refuse (a missing value nothing fills, a category the model
never saw when its policy is ``error``, an infinite number, a day outside the years 1 to
9999) cannot raise an error inside a graph: their outputs are NaN and their label empty.

onnx is an optional extra (``pip install 'bp[onnx]'``), imported only here and only when
a model is exported.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from bpcli import __version__
from bpcli.atomic import write_atomic
from bpcli.csvfile import MISSING_TOKENS
from bpcli.data import InputColumn, Preprocessor
from bpcli.dates import DATE_FEATURES, EPOCH, parse_date
from bpcli.errors import CheckFailed, UsageError
from bpcli.files import output_path
from bpcli.modelfile import SavedModel, load_model
from bpcli.nn.conv import AvgPool2D, Conv2D, MaxPool2D, geometry
from bpcli.nn.layers import Activation, BatchNorm, Dense, Layer, LayerNorm

if TYPE_CHECKING:
    from onnx import ModelProto

OPSET = 17  # onnxruntime 1.13 (2022) and later
#: StringSplit and StringConcat, which fold_case columns need (onnxruntime 1.17 and later)
TEXT_OPSET = 20
ML_OPSET = 3
IR_VERSIONS = {OPSET: 8, TEXT_OPSET: 9}  # the oldest IR each opset allows, for old runtimes
INSTALL_HINT = "pip install 'bp[onnx]'"
#: The outputs: a classifier's, and a regression model's.
LABEL, PROBABILITIES, VALUES = "label", "probabilities", "values"
#: Days since 1970-01-01 of the first and last dates Python (and so bp) can represent.
FIRST_DAY = (dt.date.min - EPOCH).days
LAST_DAY = (dt.date.max - EPOCH).days
#: The locale fold_case lower-cases in: the one UTF-8 locale every glibc and musl has.
LOCALE = "C.UTF-8"

Array = NDArray[Any]
# onnx.TensorProto's element types (onnx itself is imported only when exporting)
FLOAT, INT64, STRING, BOOL, DOUBLE = 1, 7, 8, 9, 11


class OnnxUnavailable(UsageError):
    """onnx is not installed, so no ONNX file can be written."""

    def __init__(self) -> None:
        super().__init__(f"exporting to ONNX needs the onnx package: {INSTALL_HINT} (from a "
                         "clone: pip install '.[onnx]')")


class NotExportable(UsageError):
    """A part of a model that has no ONNX form here."""


def export_onnx(model_path: Path, out: Path) -> tuple[int, int]:
    """Write ``model_path``'s model as an ONNX file ``out`` (atomically); returns the
    graph's ``(opset, node count)``."""
    target = output_path(out, model_path, option="--onnx")
    if target is None:
        raise UsageError("--onnx -: an ONNX file is binary; give a file name")
    onnx = _require_onnx()
    saved = load_model(model_path)
    model = build_model(saved, str(model_path))
    # full_check runs shape inference too: a graph that would fail to load never lands
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:  # a bug of this module, not of the model
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckFailed(f"{model_path}: the ONNX graph bp built fails onnx's checker "
                          f"({first}); nothing was written; please report it") from None
    data = model.SerializeToString()
    write_atomic(target, lambda f: f.write(data))
    opset = next(o.version for o in model.opset_import if o.domain == "")
    return opset, len(model.graph.node)


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise OnnxUnavailable() from None
    return onnx


def build_model(saved: SavedModel, where: str) -> ModelProto:
    """The ONNX model of ``saved`` (``where`` names it in refusals)."""
    onnx = _require_onnx()
    from onnx import helper

    pre = saved.preprocessor
    for name in pre.columns:
        if name in (LABEL, PROBABILITIES, VALUES):
            raise NotExportable(f"{where}: column {name!r} has the name of an output of the "
                                "ONNX graph; rename the column and train again")
    opset = TEXT_OPSET if any(c.fold_case for c in pre.inputs if c.kind == "categorical") \
        else OPSET
    g = _Graph(pre.columns)
    X, invalid = _preprocessing(g, pre, where)
    outputs = _network(g, saved, X, where)
    if pre.task == "regression":
        # (masked in float32: onnxruntime has no Where for doubles)
        outputs = g.op("Where", [g.rows(invalid), g.const(np.float32(np.nan)), outputs])
        g.op("Add", [g.op("Mul", [g.op("Cast", [outputs], to=DOUBLE),
                                  g.const(pre.target_scale.astype(np.float64))]),
                     g.const(pre.target_mean.astype(np.float64))], out=VALUES)
        results = [helper.make_tensor_value_info(VALUES, DOUBLE,
                                                 ["N", len(pre.targets)])]
    else:
        if saved.network.output_shape[0] == 1:  # one sigmoid unit: P(second class)
            outputs = g.op("Concat", [g.op("Sub", [g.const(np.float32(1)), outputs]),
                                      outputs], axis=1)
        index = g.op("ArgMax", [outputs], axis=1, keepdims=0)  # the first of equals, as bp
        label = g.op("Gather", [g.const(np.array(pre.classes, dtype=object)), index])
        g.op("Where", [invalid, g.const(np.array("", dtype=object)), label], out=LABEL)
        g.op("Where", [g.rows(invalid), g.const(np.float32(np.nan)), outputs],
             out=PROBABILITIES)
        results = [helper.make_tensor_value_info(LABEL, STRING, ["N"]),
                   helper.make_tensor_value_info(PROBABILITIES, FLOAT,
                                                 ["N", len(pre.classes)])]
    inputs = [helper.make_tensor_value_info(
        spec.name, STRING if spec.kind == "categorical" else FLOAT,
        ["N"]) for spec in pre.inputs]
    graph = helper.make_graph(g.nodes, "bp", inputs, results, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid("ai.onnx.ml",
                                                                        ML_OPSET)],
                              producer_name="bp", producer_version=__version__)
    model.ir_version = IR_VERSIONS[opset]
    model.doc_string = (f"bp model {Path(where).name}: {pre.task}; inputs are the raw "
                        "columns (see docs/onnx.md)")
    onnx.helper.set_model_props(model, _properties(saved))
    return model


def _properties(saved: SavedModel) -> dict[str, str]:
    """The model's metadata: what a caller needs to read the outputs and feed the inputs."""
    pre = saved.preprocessor
    columns = [{"name": c.name, "kind": c.kind,
                "type": "string" if c.kind == "categorical" else "float",
                **({"categories": c.categories} if c.kind == "categorical" else {})}
               for c in pre.inputs]
    meta = {"bp.task": pre.task, "bp.targets": json.dumps(pre.targets),
            "bp.inputs": json.dumps(columns)}
    if pre.task == "classification":
        meta["bp.classes"] = json.dumps(pre.classes)
    # where it came from, as bp inspect shows it
    for key in ("created", "epoch", "metrics"):
        if key in saved.meta:
            meta[f"bp.{key}"] = json.dumps(saved.meta[key])
    return meta


class _Graph:
    """The nodes and constants of a graph under construction, with unique names."""

    def __init__(self, reserved: list[str]) -> None:
        from onnx import helper, numpy_helper

        self._helper, self._numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._taken = set(reserved) | {LABEL, PROBABILITIES, VALUES}
        self._count = 0

    def name(self, hint: str) -> str:
        while True:
            self._count += 1
            name = f"{hint}_{self._count}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def const(self, value: Any, hint: str = "c") -> str:
        array = np.asarray(value)
        name = self.name(hint)
        self.initializers.append(self._numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None,
           domain: str = "", outputs: int = 1, **attributes: Any) -> str:
        """Add a node; its (first) output's name."""
        names = [out or self.name(op_type.lower())] + [self.name(op_type.lower())
                                                        for _ in range(outputs - 1)]
        self.nodes.append(self._helper.make_node(op_type, inputs, names, domain=domain or None,
                                                 **attributes))
        return names[0]

    def unsqueeze(self, x: str, axis: int) -> str:
        return self.op("Unsqueeze", [x, self.const(np.array([axis], dtype=np.int64))])

    def rows(self, invalid: str) -> str:
        """``invalid`` (N,) as (N, 1), to broadcast along a row of outputs."""
        return self.unsqueeze(invalid, 1)


# -- preprocessing -------------------------------------------------------------------------
def _preprocessing(g: _Graph, pre: Preprocessor, where: str) -> tuple[str, str]:
    """The network inputs (N, features) float32, and where a row is one bp would refuse
    (N,) bool."""
    pieces: list[str] = []
    invalid: list[str] = []
    run: list[tuple[InputColumn, int]] = []  # numeric columns side by side, with their j
    j = 0
    for spec in pre.inputs:
        if spec.kind in ("numeric", "boolean"):
            run.append((spec, j))
        else:
            if run:
                pieces.append(_numeric(g, pre, run, invalid))
                run = []
            if spec.kind == "categorical":
                pieces.append(_categorical(g, spec, invalid))
            elif spec.kind == "date":
                pieces.append(_date(g, pre, spec, j, invalid))
            else:
                raise NotExportable(f"{where}: column {spec.name!r} is of kind "
                                    f"{spec.kind!r}, which this bp cannot export to ONNX; "
                                    "leave it out of the model (data.drop) to export it")
        j += spec.width
    if run:
        pieces.append(_numeric(g, pre, run, invalid))
    X = pieces[0] if len(pieces) == 1 else g.op("Concat", pieces, axis=1)
    refused = invalid[0]  # every kind of column adds at least one
    for more in invalid[1:]:
        refused = g.op("Or", [refused, more])
    return X, refused


def _numeric(g: _Graph, pre: Preprocessor, run: list[tuple[InputColumn, int]],
             invalid: list[str]) -> str:
    """Numeric and boolean columns side by side: filled where missing, then
    ``(x - mean) / scale`` in float32 as ``Preprocessor._scaled`` computes it."""
    X = g.op("Concat", [g.unsqueeze(spec.name, 1) for spec, _ in run], axis=1)
    columns = [j for _, j in run]
    fills = np.array([np.nan if spec.missing == "error" or spec.fill is None
                      else float(spec.fill) for spec, _ in run], dtype=np.float32)
    missing = g.op("IsNaN", [X])
    bad = g.op("IsInf", [X])  # bp refuses infinite numbers when it reads them
    boolean = np.array([spec.kind == "boolean" for spec, _ in run])
    if boolean.any():  # ... and booleans other than true and false
        binary = g.op("Or", [g.op("Equal", [X, g.const(np.float32(0))]),
                             g.op("Equal", [X, g.const(np.float32(1))])])
        other = g.op("Not", [g.op("Or", [binary, missing])])
        bad = g.op("Or", [bad, g.op("And", [other, g.const(boolean[None, :])])])
    unfilled = np.isnan(fills)
    if unfilled.any():
        bad = g.op("Or", [bad, g.op("And", [missing, g.const(unfilled[None, :])])])
    invalid.append(_any(g, bad))
    if not unfilled.all():
        X = g.op("Where", [missing, g.const(fills[None, :]), X])
    X = g.op("Sub", [X, g.const(pre.mean[columns].astype(np.float32)[None, :])])
    return g.op("Div", [X, g.const(pre.scale[columns].astype(np.float32)[None, :])])


def _any(g: _Graph, flags: str) -> str:
    """(N, k) bool -> (N,) bool: any along each row (ReduceSum, whose axes are an input
    from opset 13 on, unlike ReduceMax's)."""
    count = g.op("ReduceSum", [g.op("Cast", [flags], to=FLOAT),
                               g.const(np.array([1], dtype=np.int64))], keepdims=0)
    return g.op("Greater", [count, g.const(np.float32(0))])


def _categorical(g: _Graph, spec: InputColumn, invalid: list[str]) -> str:
    """A text column's one-hot inputs (N, categories [+ other]), as
    ``Preprocessor._one_hot``: missing texts take the fill, and an unseen value the
    'other' input, no input, or the row is refused, by the column's ``unseen``."""
    x = spec.name
    markers = list(dict.fromkeys(["", *MISSING_TOKENS, *spec.na_values]))
    missing = g.op("Cast", [g.op("LabelEncoder", [x], domain="ai.onnx.ml",
                                 keys_strings=markers, values_int64s=[1] * len(markers),
                                 default_int64=0)], to=BOOL)
    # a text of more words than any value of the vocabulary cannot be one of them
    words = max((len(c.split()) for c in spec.categories), default=1)
    key = _folded(g, x, words) if spec.fold_case else x
    other = len(spec.categories) if spec.other else -1
    minus_one = g.const(np.int64(-1))
    if spec.categories:
        index = g.op("LabelEncoder", [key], domain="ai.onnx.ml",
                     keys_strings=list(spec.categories),
                     values_int64s=list(range(len(spec.categories))), default_int64=-1)
    else:
        index = g.op("Where", [missing, minus_one, minus_one])  # -1 for every row
    refusing = spec.unseen == "error" or spec.missing == "error" or spec.fill is None
    if spec.missing == "error" or spec.fill is None:
        invalid.append(missing)
    else:
        fill = {c: i for i, c in enumerate(spec.categories)}.get(spec.key(str(spec.fill)),
                                                                 other)
        index = g.op("Where", [missing, g.const(np.int64(fill)), index])
    unseen = g.op("Equal", [index, minus_one])
    if spec.unseen == "error":
        invalid.append(unseen)
    elif spec.unseen == "other" and spec.other:
        index = g.op("Where", [unseen, g.const(np.int64(other)), index])
    if not refusing:  # a False per row all the same: every kind of column adds one
        invalid.append(g.op("And", [missing, g.op("Not", [missing])]))
    width = np.arange(spec.width, dtype=np.int64)[None, :]
    return g.op("Cast", [g.op("Equal", [g.unsqueeze(index, 1), g.const(width)])], to=FLOAT)


def _folded(g: _Graph, x: str, most: int) -> str:
    """``InputColumn.key`` for fold_case: lower case, words joined by one space. The
    words are split by StringSplit and joined back one at a time, up to ``most`` words
    and one more, so that a longer text stays longer than any value of the vocabulary."""
    lower = g.op("StringNormalizer", [x], case_change_action="LOWER", locale=LOCALE)
    words = g.op("StringSplit", [lower], outputs=2)
    count = g.nodes[-1].output[1]
    width = most + 1
    # a text of fewer words is padded with empty ones
    padding = g.op("Where", [g.op("Equal", [g.unsqueeze(count, 1),
                                            g.const(np.full((1, width), -1, np.int64))]),
                             g.const(np.array("", dtype=object)),
                             g.const(np.array("", dtype=object))])
    padded = g.op("Concat", [words, padding], axis=1)
    key = g.op("Squeeze", [g.op("Slice", [padded, g.const(np.array([0], np.int64)),
                                          g.const(np.array([1], np.int64)),
                                          g.const(np.array([1], np.int64))]),
                           g.const(np.array([1], np.int64))])
    space = g.const(np.array(" ", dtype=object))
    empty = g.const(np.array("", dtype=object))
    for k in range(1, width):
        word = g.op("Squeeze", [g.op("Slice", [padded, g.const(np.array([k], np.int64)),
                                               g.const(np.array([k + 1], np.int64)),
                                               g.const(np.array([1], np.int64))]),
                                g.const(np.array([1], np.int64))])
        separator = g.op("Where", [g.op("Greater", [count, g.const(np.int64(k))]), space,
                                   empty])
        key = g.op("StringConcat", [g.op("StringConcat", [key, separator]), word])
    return key


def _date(g: _Graph, pre: Preprocessor, spec: InputColumn, j: int,
          invalid: list[str]) -> str:
    """A date column, given as days since 1970-01-01 (float, NaN when missing), as its
    ``DATE_FEATURES``: computed in float64 from the civil date of the day number (Howard
    Hinnant's ``civil_from_days``, in int64), cast to float32 and scaled, as bp casts and
    scales ``date_features``' values."""
    days = g.op("Floor", [spec.name])
    missing = g.op("IsNaN", [days])
    outside = g.op("Or", [g.op("Less", [days, g.const(np.float32(FIRST_DAY))]),
                          g.op("Greater", [days, g.const(np.float32(LAST_DAY))])])
    invalid.append(outside)
    fill = parse_date(str(spec.fill)) if spec.fill is not None else None
    if spec.missing == "error" or fill is None:
        invalid.append(missing)
        fill_day = 0
    else:
        fill_day = (fill - EPOCH).days
    days = g.op("Where", [g.op("Or", [missing, outside]), g.const(np.float32(fill_day)), days])
    day = g.op("Cast", [days], to=INT64)

    def i64(value: int) -> str:
        return g.const(np.int64(value))

    def div(a: str, b: int) -> str:  # of non-negative numbers: truncation is floor
        return g.op("Div", [a, i64(b)])

    def mul(a: str, b: int) -> str:
        return g.op("Mul", [a, i64(b)])

    def add(*terms: str) -> str:
        total = terms[0]
        for term in terms[1:]:
            total = g.op("Add", [total, term])
        return total

    def sub(a: str, b: str) -> str:
        return g.op("Sub", [a, b])

    def mod(a: str, b: int) -> str:
        return g.op("Mod", [a, i64(b)])

    eras = 25  # 10,000 years ahead: every day from year 1 on is non-negative
    z = add(day, i64(719468 + eras * 146097))
    era = div(z, 146097)
    doe = sub(z, mul(era, 146097))
    yoe = div(sub(add(sub(doe, div(doe, 1460)), div(doe, 36524)), div(doe, 146096)), 365)
    doy = sub(doe, sub(add(mul(yoe, 365), div(yoe, 4)), div(yoe, 100)))
    mp = div(add(mul(doy, 5), i64(2)), 153)
    spring = g.op("Less", [mp, i64(10)])  # March to December
    month = g.op("Where", [spring, add(mp, i64(3)), sub(mp, i64(9))])
    year = add(yoe, mul(era, 400), i64(-eras * 400),
               g.op("Cast", [g.op("Not", [spring])], to=INT64))
    leap = g.op("Or", [g.op("And", [g.op("Equal", [mod(year, 4), i64(0)]),
                                    g.op("Not", [g.op("Equal", [mod(year, 100), i64(0)])])]),
                       g.op("Equal", [mod(year, 400), i64(0)])])
    yearday = g.op("Where", [spring, add(doy, i64(59),
                                         g.op("Cast", [leap], to=INT64)),
                             sub(doy, i64(306))])
    weekday = mod(add(day, i64(3 + 7 * 200000)), 7)  # 1970-01-01 was a Thursday (3)

    def f64(x: str) -> str:
        return g.op("Cast", [x], to=DOUBLE)

    def circle(x: str, offset: int, period: float) -> list[str]:
        # 2 * pi * (x - offset) / period, in date_features' order of operations
        angle = g.op("Div", [g.op("Mul", [g.const(np.float64(2 * math.pi)),
                                          f64(sub(x, i64(offset)))]),
                             g.const(np.float64(period))])
        return [g.op("Sin", [angle]), g.op("Cos", [angle])]

    features = [f64(day), f64(year), *circle(month, 1, 12), *circle(weekday, 0, 7),
                *circle(yearday, 0, 365.25)]
    assert len(features) == len(DATE_FEATURES)
    raw = g.op("Concat", [g.unsqueeze(f, 1) for f in features], axis=1)
    X = g.op("Cast", [raw], to=FLOAT)
    columns = slice(j, j + spec.width)
    X = g.op("Sub", [X, g.const(pre.mean[columns].astype(np.float32)[None, :])])
    return g.op("Div", [X, g.const(pre.scale[columns].astype(np.float32)[None, :])])


# -- the network ---------------------------------------------------------------------------
def _network(g: _Graph, saved: SavedModel, X: str, where: str) -> str:
    network = saved.network
    if len(network.input_shape) > 1:
        X = g.op("Reshape", [X, g.const(np.array([-1, *network.input_shape], np.int64))])
    for index, layer in enumerate(network.layers):
        export = LAYERS.get(layer.kind)
        if export is None or (isinstance(layer, Activation) and layer.name not in ACTIVATIONS):
            raise NotExportable(
                f"{where}: layer {network.layer_name(index)} has no ONNX form in this bp; "
                "replace it in the config and train again, or use bp predict")
        X = export(g, layer, X)
    return X


def _per_channel(layer: Layer, v: Array) -> Array:
    """A (features,) vector shaped to broadcast along axis 1 of the layer's inputs."""
    return v.astype(np.float32).reshape((-1,) + (1,) * (len(layer.input_shape) - 1))


def _dense(g: _Graph, layer: Layer, X: str) -> str:
    assert isinstance(layer, Dense)
    return g.op("Add", [g.op("MatMul", [X, g.const(layer.params["W"].astype(np.float32))]),
                        g.const(layer.params["b"].astype(np.float32))])


def _batch_norm(g: _Graph, layer: Layer, X: str) -> str:
    """Inference form, folded into one scale and shift exactly as ``BatchNorm.forward``."""
    assert isinstance(layer, BatchNorm)
    scale = layer.params["gamma"] / np.sqrt(layer.buffers["running_var"] + layer.epsilon)
    shift = layer.params["beta"] - layer.buffers["running_mean"] * scale
    return g.op("Add", [g.op("Mul", [X, g.const(_per_channel(layer, scale))]),
                        g.const(_per_channel(layer, shift))])


def _layer_norm(g: _Graph, layer: Layer, X: str) -> str:
    assert isinstance(layer, LayerNorm)
    return g.op("LayerNormalization", [X, g.const(layer.params["gamma"].astype(np.float32)),
                                       g.const(layer.params["beta"].astype(np.float32))],
                axis=1, epsilon=layer.epsilon)


def _pads(layer: Conv2D | MaxPool2D | AvgPool2D, window: tuple[int, int]) -> list[int]:
    """bp's padding as ONNX's ``[top, left, bottom, right]``."""
    (top, bottom), (left, right) = geometry(layer.kind, layer.input_shape, window,
                                            layer.stride, layer.padding).pads
    return [top, left, bottom, right]


def _conv2d(g: _Graph, layer: Layer, X: str) -> str:
    assert isinstance(layer, Conv2D)
    inputs = [X, g.const(layer.params["W"].astype(np.float32))]
    if layer.use_bias:
        inputs.append(g.const(layer.params["b"].astype(np.float32)))
    return g.op("Conv", inputs, kernel_shape=list(layer.kernel_size),
                strides=list(layer.stride), pads=_pads(layer, layer.kernel_size))


def _max_pool2d(g: _Graph, layer: Layer, X: str) -> str:
    assert isinstance(layer, MaxPool2D)  # padding never wins: ONNX ignores it in a max too
    return g.op("MaxPool", [X], kernel_shape=list(layer.pool_size),
                strides=list(layer.stride), pads=_pads(layer, layer.pool_size))


def _avg_pool2d(g: _Graph, layer: Layer, X: str) -> str:
    assert isinstance(layer, AvgPool2D)  # padding left out of the count, as bp does
    return g.op("AveragePool", [X], kernel_shape=list(layer.pool_size),
                strides=list(layer.stride), pads=_pads(layer, layer.pool_size),
                count_include_pad=0)


def _global_avg_pool2d(g: _Graph, layer: Layer, X: str) -> str:
    return g.op("Flatten", [g.op("GlobalAveragePool", [X])], axis=1)


def _activation(g: _Graph, layer: Layer, X: str) -> str:
    assert isinstance(layer, Activation)
    return ACTIVATIONS[layer.name](g, layer, X)


LayerExport = Callable[[_Graph, Layer, str], str]
LAYERS: dict[str, LayerExport] = {
    "dense": _dense,
    "activation": _activation,
    "dropout": lambda g, layer, X: X,  # inverted dropout: nothing to do in inference
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "conv2d": _conv2d,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "global_avg_pool2d": _global_avg_pool2d,
    "flatten": lambda g, layer, X: g.op("Flatten", [X], axis=1),  # row-major, as bp
}


def _f32(value: float) -> Array:
    return np.float32(value)


def _gelu(g: _Graph, layer: Activation, X: str) -> str:
    if layer.fn.approximate:  # type: ignore[attr-defined]
        c, k = math.sqrt(2 / math.pi), 0.044715
        # tanh(Z * (c + c k Z^2)), as GELU._tanh groups it
        inner = g.op("Add", [g.const(_f32(c)),
                             g.op("Mul", [g.const(_f32(c * k)), g.op("Mul", [X, X])])])
        gate = g.op("Tanh", [g.op("Mul", [X, inner])])
    else:
        gate = g.op("Erf", [g.op("Mul", [X, g.const(_f32(1 / math.sqrt(2)))])])
    gate = g.op("Mul", [g.op("Add", [gate, g.const(_f32(1))]), g.const(_f32(0.5))])
    return g.op("Mul", [X, gate])


def _sigmoid(g: _Graph, X: str) -> str:
    """bp's ``sigmoid``: ``1 / (1 + E)`` or ``E / (1 + E)`` with ``E = exp(-|Z|)``.
    (onnxruntime's Sigmoid is off by up to 1.2e-7 for large negative inputs, which silu
    multiplies by the input.)"""
    E = g.op("Exp", [g.op("Neg", [g.op("Abs", [X])])])
    top = g.op("Where", [g.op("GreaterOrEqual", [X, g.const(_f32(0))]), g.const(_f32(1)), E])
    return g.op("Div", [top, g.op("Add", [g.const(_f32(1)), E])])


def _softplus(g: _Graph, layer: Activation, X: str) -> str:
    """``max(Z, 0) + log(1 + exp(-|Z|))``: neither overflows, as bp's ``logaddexp``."""
    tail = g.op("Log", [g.op("Add", [g.const(_f32(1)),
                                     g.op("Exp", [g.op("Neg", [g.op("Abs", [X])])])])])
    return g.op("Add", [g.op("Relu", [X]), tail])


def _elu(g: _Graph, layer: Activation, X: str) -> str:
    alpha = float(layer.fn.alpha)  # type: ignore[attr-defined]
    if layer.name == "selu":
        return g.op("Selu", [X], alpha=alpha, gamma=float(layer.fn.scale))  # type: ignore[attr-defined]
    return g.op("Elu", [X], alpha=alpha)


ActivationExport = Callable[[_Graph, Activation, str], str]
ACTIVATIONS: dict[str, ActivationExport] = {
    "identity": lambda g, layer, X: X,
    "relu": lambda g, layer, X: g.op("Relu", [X]),
    "leaky_relu": lambda g, layer, X: g.op("LeakyRelu", [X],
                                           alpha=float(layer.fn.slope)),  # type: ignore[attr-defined]
    "sigmoid": lambda g, layer, X: _sigmoid(g, X),
    "tanh": lambda g, layer, X: g.op("Tanh", [X]),
    "softmax": lambda g, layer, X: g.op("Softmax", [X], axis=-1),
    "elu": _elu,
    "selu": _elu,
    "gelu": _gelu,
    "silu": lambda g, layer, X: g.op("Mul", [X, _sigmoid(g, X)]),
    "swish": lambda g, layer, X: g.op("Mul", [X, _sigmoid(g, X)]),
    "softplus": _softplus,
}
