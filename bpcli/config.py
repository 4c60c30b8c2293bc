"""The YAML config: pydantic models, loading, and errors located at ``file:line:column``."""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from bpcli.errors import ConfigError
from bpcli.nn import ACTIVATIONS, INITIALIZERS, LOSSES

Loc = tuple[str | int, ...]


def _one_of(allowed: list[str], what: str) -> AfterValidator:
    """The check of a string field whose allowed values are the keys of a name ->
    implementation table."""

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}{did_you_mean(value, allowed)}; "
                             f"allowed: {', '.join(allowed)}")
        return value

    return AfterValidator(check)


def _enum(allowed: list[str]) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": allowed})


_ACTIVATIONS = list(ACTIVATIONS)
_INITIALIZERS = ["auto", *INITIALIZERS]
_LOSSES = list(LOSSES)
ActivationName = Annotated[str, _one_of(_ACTIVATIONS, "activation"), _enum(_ACTIVATIONS)]
InitName = Annotated[str, _one_of(_INITIALIZERS, "initialiser"), _enum(_INITIALIZERS)]
LossName = Annotated[str, _one_of(_LOSSES, "loss"), _enum(_LOSSES)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(Strict):
    path: str = Field(description="CSV file of training data, relative to the config file.")
    target: str = Field(description="Name of the column to predict.")
    features: list[str] | None = Field(
        None, min_length=1, description="Feature columns; default: every column but the target."
    )
    task: Literal["classification", "regression"] | None = Field(
        None, description="Inferred from the target column when omitted."
    )
    validation_path: str | None = Field(
        None, description="CSV file of validation data, relative to the config file."
    )
    validation_fraction: float | None = Field(
        None, gt=0, lt=1,
        description="Share of the training file held out for validation (default 0.2).",
    )
    split_seed: int = Field(0, description="Seed of the train/validation split.")

    @model_validator(mode="after")
    def _one_validation_source(self) -> DataConfig:
        if self.validation_path is not None and self.validation_fraction is not None:
            raise ValueError("give validation_path or validation_fraction, not both")
        return self


class DenseConfig(Strict):
    type: Literal["dense"]
    units: int | None = Field(
        None, ge=1, description="Output width; may be omitted on the last layer only."
    )
    activation: ActivationName | None = Field(
        None, description="Default: relu on hidden layers; on the last layer, softmax for "
        "classification and identity for regression.",
    )
    init: InitName = Field("auto", description="auto: He for ReLU-like, else Glorot.")


class DropoutConfig(Strict):
    type: Literal["dropout"]
    rate: float = Field(ge=0, lt=1, description="Probability of zeroing each unit.")


LayerConfig = Annotated[DenseConfig | DropoutConfig, Field(discriminator="type")]


class ModelConfig(Strict):
    layers: list[LayerConfig] = Field(min_length=1)


def _name_only(value: Any) -> Any:
    """Accept ``optimizer: adam`` as shorthand for ``optimizer: {name: adam}``."""
    return {"name": value} if isinstance(value, str) else value


class SGDConfig(Strict):
    name: Literal["sgd"]
    learning_rate: float = Field(0.01, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False


class AdamConfig(Strict):
    name: Literal["adam"]
    learning_rate: float = Field(0.001, gt=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    epsilon: float = Field(1e-8, gt=0)


OptimizerConfig = Annotated[
    SGDConfig | AdamConfig, Field(discriminator="name"), BeforeValidator(_name_only)
]


class TrainingConfig(Strict):
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(32, ge=1)
    seed: int = Field(0, description="Seeds initialisation, shuffling and dropout.")
    on_divergence: Literal["stop", "rollback"] = Field(
        "stop", description="When the loss or a gradient goes non-finite: stop (exit 1), or "
        "go back to the last epoch's end with a lower learning rate.")
    rollback_lr_factor: float = Field(0.5, gt=0, lt=1,
                                      description="Learning rate multiplier per rollback.")
    max_rollbacks: int = Field(3, ge=1, description="Stop after this many rollbacks.")


class OutputConfig(Strict):
    runs_dir: str = Field("runs", description="Where run directories go, relative to the "
                          "current directory.")
    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Run name; default: the config file's name.",
    )


class Config(Strict):
    data: DataConfig
    model: ModelConfig
    loss: LossName | None = Field(None, description="Inferred from the task when omitted.")
    optimizer: OptimizerConfig = Field(default_factory=lambda: AdamConfig(name="adam"))
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)


# ---------------------------------------------------------------------------------------
# Loading


@dataclass
class LoadedConfig:
    """A validated config with the means to point at any of its fields in the file."""

    config: Config
    path: Path
    root: yaml.Node

    def base_dir(self) -> Path:
        return self.path.parent

    def resolve_path(self, relative: str) -> Path:
        return (self.base_dir() / relative).resolve()

    def problem(self, loc: Loc, message: str) -> str:
        line, col = locate(self.root, loc)
        return f"{self.path}:{line}:{col}: {dotted(loc)}: {message}"

    def error(self, loc: Loc, message: str) -> ConfigError:
        return ConfigError([self.problem(loc, message)], str(self.path))


def load_config(path: str | Path) -> LoadedConfig:
    """Read, parse (safe loader) and validate a config; raise ``ConfigError`` listing every
    problem found, each located at ``file:line:column``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read config: {exc}"], str(path)) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError([f"{where}: invalid YAML: {exc.problem}"], str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"], str(path)) from None
    if root is None or not isinstance(data, dict):
        raise ConfigError(
            [f"{path}:1:1: the config must be a mapping with sections data, model, ..."],
            str(path),
        )
    problems = _duplicate_keys(root)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += [_describe(root, data, err) for err in exc.errors()]
    if problems:
        raise ConfigError(
            [f"{path}:{line}:{col}: {message}" for line, col, message in sorted(problems)],
            str(path),
        )
    loaded = LoadedConfig(config, path, root)
    structural = _structure_problems(loaded)
    if structural:
        raise ConfigError(structural, str(path))
    return loaded


def _structure_problems(loaded: LoadedConfig) -> list[str]:
    """Checks across fields that the field types cannot express."""
    layers = loaded.config.model.layers
    problems = []
    if not isinstance(layers[-1], DenseConfig):
        problems.append(loaded.problem(("model", "layers", len(layers) - 1),
                                       "the last layer must be dense (the output layer)"))
    for i, layer in enumerate(layers[:-1]):
        if isinstance(layer, DenseConfig) and layer.units is None:
            problems.append(loaded.problem(("model", "layers", i),
                                           "units is required on every dense layer but the "
                                           "last (whose width bp infers from the data)"))
    return problems


def _describe(root: yaml.Node, data: Any, err: Mapping[str, Any]) -> tuple[int, int, str]:
    """Turn one pydantic error into ``(line, column, "field.path: message")``."""
    loc = _strip_tags(tuple(err["loc"]), data)
    line, col = locate(root, loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1], data)
        hint = did_you_mean(key, allowed)
        message = f"unknown key {key!r}{hint}; allowed here: {', '.join(allowed)}"
    elif kind == "missing":
        message = "required key is missing"
        line, col = locate(root, loc[:-1])
    elif kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag", ""))
        message = (f"unknown {ctx.get('discriminator', 'type').strip(chr(39))} {tag!r}"
                   f"{did_you_mean(tag, tags)}; allowed: {', '.join(tags)}")
        loc = (*loc, str(ctx.get("discriminator", "type")).strip("'"))
        line, col = locate(root, loc)
    elif kind == "string_pattern_mismatch":
        message = (f"use letters, digits, '.', '_' and '-' only, starting with a letter or "
                   f"digit (got {err.get('input')!r})")
    elif kind == "union_tag_not_found":
        key = str(err.get("ctx", {}).get("discriminator", "type")).strip("'")
        message = f"missing {key!r}; say which kind this is"
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
        value = err.get("input")
        if isinstance(value, (str, int, float, bool)) and kind != "value_error":
            message += f" (got {value!r})"
    return line, col, f"{dotted(loc) or '(top level)'}: {message}"


def _strip_tags(loc: Loc, data: Any) -> Loc:
    """Drop the discriminator tags pydantic puts in error locations of tagged unions."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and isinstance(part, str) and (
            node.get("type") == part or node.get("name") == part
        ):
            continue
        out.append(part)
        node = _child(node, part)
    return tuple(out)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _allowed_keys(loc: Loc, data: Any) -> list[str]:
    """Field names of the model found at ``loc`` (walking from ``Config``)."""
    model: Any = Config
    node = data
    for part in loc:
        node = _child(node, part)
        annotation = model.model_fields[part].annotation if isinstance(part, str) else model
        model = _model_in(annotation, node)
        if model is None:
            return []
    if isinstance(node, str):  # the optimizer shorthand
        node = {"name": node}
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any, node: Any) -> Any:
    """The pydantic model inside an annotation, choosing a union member by its tag."""
    origin = get_origin(annotation)
    if origin is Annotated or origin is list:
        return _model_in(get_args(annotation)[0], node)
    if origin is Union or origin is types.UnionType:
        members = [m for m in get_args(annotation)
                   if isinstance(m, type) and issubclass(m, BaseModel)]
        for member in members:
            for tag_field in ("type", "name"):
                field = member.model_fields.get(tag_field)
                if (field is not None and isinstance(node, dict)
                        and node.get(tag_field) in get_args(field.annotation)):
                    return member
        return members[0] if len(members) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _duplicate_keys(node: yaml.Node) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    mark = key.start_mark
                    found.append((mark.line + 1, mark.column + 1,
                                  f"duplicate key {key.value!r}; keep one of them"))
                seen.add(key.value)
            found += _duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found += _duplicate_keys(item)
    return found


def locate(root: yaml.Node, loc: Loc) -> tuple[int, int]:
    """1-based line and column of the deepest node along ``loc`` that exists in the file.

    For a mapping key, points at the key itself (where a reader looks for it).
    """
    node = root
    mark = root.start_mark
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    mark, node = key.start_mark, value
                    break
            else:
                break
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and part < len(node.value)):
            node = node.value[part]
            mark = node.start_mark
        else:
            break
    return mark.line + 1, mark.column + 1


def dotted(loc: Loc) -> str:
    """``("model", "layers", 2, "units")`` -> ``model.layers[2].units``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
