"""Reading a config: the file and YAML limits, ``--set`` overrides, validation, and the
cross-field checks; every problem located at ``file:line:column``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bpcli.config.fields import Loc
from bpcli.config.locating import (
    MAX_PROBLEMS,
    describe_error,
    dotted,
    duplicate_keys,
    locate,
    one_per_typo,
)
from bpcli.config.model import (
    Conv1DConfig,
    DenseConfig,
    EmbeddingConfig,
    GRUConfig,
    LSTMConfig,
)
from bpcli.config.schema import Config
from bpcli.errors import ConfigError
from bpcli.files import read_limited

#: Limits on a config file, far beyond any real config, so that a hostile or mistaken
#: file is refused quickly instead of exhausting memory or time (see docs).
MAX_CONFIG_BYTES = 256 << 10


MAX_YAML_DEPTH = 64


MAX_YAML_NODES = 200_000


@dataclass
class LoadedConfig:
    """A validated config with the means to point at any of its fields in the file."""

    config: Config
    path: Path
    root: yaml.Node
    overridden: dict[str, str] = field(default_factory=dict)  # dotted path -> the flag

    def base_dir(self) -> Path:
        return self.path.parent

    def resolve_path(self, relative: str) -> Path:
        return (self.base_dir() / relative).resolve()

    def problem(self, loc: Loc, message: str) -> str:
        line, col = locate(self.root, loc)
        return _place(self.path, line, col, f"{dotted(loc)}: {message}", self.overridden)

    def error(self, loc: Loc, message: str) -> ConfigError:
        return ConfigError([self.problem(loc, message)], str(self.path))


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> LoadedConfig:
    """Read, parse (safe loader) and validate a config; raise ``ConfigError`` listing every
    problem found, each located at ``file:line:column`` (or at the ``--set`` it came from).

    ``overrides`` are ``dotted.key=value`` strings applied before validation; values are
    read as YAML (``0.1`` is a number, ``[a, b]`` a list, ``true`` a boolean).
    """
    path = Path(path)
    root, data = read_yaml(path, "config file")
    if root is None or not isinstance(data, dict):
        raise ConfigError(
            [f"{path}:1:1: the config must be a mapping with sections data, model, ..."],
            str(path),
        )
    return validate_config(root, data, path, overrides)


def read_yaml(path: Path, what: str) -> tuple[yaml.Node | None, Any]:
    """The node tree and data of a YAML file within bp's limits (safe loader); problems
    are a ``ConfigError`` located at ``file:line:column``."""
    raw = read_limited(path, MAX_CONFIG_BYTES, lambda m: ConfigError([m], str(path)), what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: cannot read {what}: {exc}"], str(path)) from None
    try:
        return _parse_yaml(text)
    except YAMLLimitError as exc:
        mark = exc.mark
        raise ConfigError([f"{path}:{mark.line + 1}:{mark.column + 1}: {exc}"],
                          str(path)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError([f"{where}: invalid YAML: {exc.problem}"], str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"], str(path)) from None


def validate_config(root: yaml.Node, data: dict[str, Any], path: Path,
                    overrides: Sequence[str] = ()) -> LoadedConfig:
    """Validate a config's parsed ``data`` (changed in place by ``overrides``), whose
    nodes ``root`` says where each value is in the file ``path``: a config file, or a
    config written inline in another file (a sweep's base)."""
    problems = duplicate_keys(root)
    overridden = _apply_overrides(data, overrides, path)
    found = len(problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors = one_per_typo(exc.errors(), data)
        found += len(errors)
        # describing a problem searches the file for it: describe only those reported
        problems += [describe_error(root, data, err)
                     for err in errors[: max(0, MAX_PROBLEMS - len(problems))]]
    if problems:
        shown = sorted(problems)[:MAX_PROBLEMS]
        raise ConfigError([_place(path, line, col, message, overridden)
                           for line, col, message in shown], str(path),
                          omitted=found - len(shown))
    loaded = LoadedConfig(config, path, root, overridden)
    structural = _structure_problems(loaded)
    if structural:
        raise ConfigError(structural, str(path))
    return loaded


class YAMLLimitError(yaml.YAMLError):
    """YAML beyond bp's limits on nesting, size or aliases; ``mark`` is where."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.mark = mark


# libyaml's parser when PyYAML has it: several times faster on a large file
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for locating problems) and the data of one YAML document (safe
    loader), after checking its shape is within bp's limits."""
    _check_yaml_limits(text)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        return root, loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()


def _check_yaml_limits(text: str) -> None:
    """Walk the parser's events (no tree is built) and refuse YAML nested more than
    ``MAX_YAML_DEPTH`` deep, holding more than ``MAX_YAML_NODES`` values once every alias
    is expanded (a "billion laughs" file expands a few lines into 10^9 values), or with an
    alias inside the node it names (an endless structure)."""
    depth = nodes = 0
    sizes: dict[str, int] = {}  # anchor -> values in the node it names, aliases expanded
    open_nodes: list[tuple[str | None, int]] = []  # anchor, values counted before it
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            anchor = event.anchor
            if any(anchor == name for name, _ in open_nodes):
                raise YAMLLimitError(f"the alias *{anchor} is inside the node &{anchor} "
                                     "names, which would make it endless; copy the values "
                                     "instead", event.start_mark)
            # an unknown anchor is the composer's error
            nodes += sizes.get(anchor, 1) if anchor is not None else 1
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            nodes += 1
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise YAMLLimitError(f"nested more than {MAX_YAML_DEPTH} levels deep; a "
                                     "bp config needs a few", event.start_mark)
            open_nodes.append((event.anchor, nodes))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, before = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = nodes - before + 1
        if nodes > MAX_YAML_NODES:
            raise YAMLLimitError(f"more than {MAX_YAML_NODES} values (aliases counted as "
                                 "the values they repeat); a bp config needs far fewer",
                                 event.start_mark)


class Override(str):
    """A ``key.path=value`` setting that came from another flag than ``--set``, e.g.
    ``--init-from``: problems with its value are blamed on that flag, as the user wrote
    it. (A ``str``, so that it travels wherever ``--set`` texts go.)"""

    given_as: str

    def __new__(cls, text: str, given_as: str) -> Override:
        override = super().__new__(cls, text)
        override.given_as = given_as
        return override


def _apply_overrides(data: dict[str, Any], overrides: Sequence[str],
                     path: Path) -> dict[str, str]:
    """Set each ``key.path=value`` in the raw config; return {dotted path: the flag that
    set it, as given (``--set key.path=value``)}."""
    applied: dict[str, str] = {}
    for text in overrides:
        flag = text.given_as if isinstance(text, Override) else f"--set {text}"
        key, sep, raw = text.partition("=")
        parts: list[str | int] = [int(p) if p.isdigit() else p
                                  for p in key.replace("[", ".").replace("]", "").split(".")]
        if not sep or not key or any(p == "" for p in parts):
            raise ConfigError([f"{flag}: write it as key.path=value, e.g. "
                               "--set training.epochs=20"], str(path))
        try:
            _, value = _parse_yaml(raw)
        except YAMLLimitError as exc:
            raise ConfigError([f"--set {text}: {exc}"], str(path)) from None
        except yaml.YAMLError:
            value = raw
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, dict):
                node = node.setdefault(part, {})
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                where = dotted(tuple(parts[: i + 1]))
                raise ConfigError([f"{flag}: there is no {where} in {path} to set"],
                                  str(path))
        last = parts[-1]
        if isinstance(node, dict):
            node[last] = value
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = value
        else:
            raise ConfigError([f"{flag}: there is no {dotted(tuple(parts))} in {path} "
                               "to set"], str(path))
        applied[dotted(tuple(parts))] = flag
    return applied


def _place(path: Path, line: int, col: int, message: str, overridden: dict[str, str]) -> str:
    """Prefix a problem with where it came from: the file, or the flag that set the value
    it is about. A problem with a whole layer or section (``model.layers[2]: the pool
    window is larger than its input``) is blamed on a flag that set a key within it."""
    field_path = message.split(": ", 1)[0]
    for key, flag in overridden.items():
        if _within(field_path, key) or (field_path != "(top level)" and _within(key, field_path)):
            return f"{flag}: {message}"
    return f"{path}:{line}:{col}: {message}"


def _within(inner: str, outer: str) -> bool:
    """Whether dotted path ``inner`` is ``outer`` or a key or item under it."""
    return inner == outer or inner.startswith((outer + ".", outer + "["))


def gan_structure_problems(loaded: LoadedConfig) -> list[str]:
    """A config has model or gan, not both; a GAN's networks end as they must, and the
    sections that configure a model's training are the networks' own in a GAN."""
    config = loaded.config
    if config.gan is None:
        return [_place(loaded.path, 1, 1, "(top level): a config needs a model section (the "
                       "network to train) or a gan section (a generator and a "
                       "discriminator)", loaded.overridden)]
    if config.model is not None:
        return [loaded.problem(("gan",), "give model or gan, not both: a GAN's networks "
                               "are gan.generator and gan.discriminator")]
    problems = []
    for section, instead in (("loss", "the discriminator's loss is binary cross-entropy"),
                             ("optimizer", "each network has its own: gan.generator."
                              "optimizer, gan.discriminator.optimizer"),
                             ("regularization", "a GAN takes no penalties or clipping")):
        if section in config.model_fields_set:
            problems.append(loaded.problem((section,), f"not used with gan: {instead}; "
                                           "remove it"))
    if config.training.init_from is not None:
        problems.append(loaded.problem(("training", "init_from"), "a GAN starts from its "
                                       "own initial weights: remove init_from (bp train "
                                       "--resume carries a stopped GAN on)"))
    if config.data.cv is not None:
        problems.append(loaded.problem(("data", "cv"), "cross-validation scores a model on "
                                       "its validation rows, fold by fold; a GAN trains "
                                       "once: remove cv (data.validation_fraction holds "
                                       "rows out to measure its samples on)"))
    if config.training.early_stopping is not None:
        problems.append(loaded.problem(("training", "early_stopping"), "a GAN's losses do "
                                       "not measure its samples' quality, so nothing picks "
                                       "a best epoch: remove early_stopping (the last "
                                       "epoch is the model)"))
    for name in ("generator", "discriminator"):
        layers = getattr(config.gan, name).layers
        where: tuple[str | int, ...] = ("gan", name, "layers")
        for i, layer in enumerate(layers):
            if isinstance(layer, EmbeddingConfig | GRUConfig | LSTMConfig | Conv1DConfig):
                problems.append(loaded.problem((*where, i), f"a GAN makes numbers, "
                                               f"categories and images, not text: no "
                                               f"{layer.type} layers"))
            elif (isinstance(layer, DenseConfig) and layer.units is None
                  and i < len(layers) - 1):
                problems.append(loaded.problem((*where, i), "units is required on every "
                                               "dense layer but the last"))
    last = config.gan.discriminator.layers[-1]
    where = ("gan", "discriminator", "layers", len(config.gan.discriminator.layers) - 1)
    if not isinstance(last, DenseConfig):
        problems.append(loaded.problem(where, "the discriminator's last layer must be dense "
                                       "with one sigmoid unit: {type: dense, units: 1, "
                                       "activation: sigmoid}"))
    else:
        if last.units not in (None, 1):
            problems.append(loaded.problem((*where, "units"), f"the discriminator ends in "
                                           f"one unit (real or generated), not {last.units}"))
        if last.activation_name() not in (None, "sigmoid"):
            problems.append(loaded.problem((*where, "activation"), "the discriminator's "
                                           "output is one sigmoid unit (fused with its "
                                           f"loss), not {last.activation_name()!r}"))
    return problems


def _structure_problems(loaded: LoadedConfig) -> list[str]:
    """Checks across fields that the field types cannot express."""
    config = loaded.config
    if config.gan is not None or config.model is None:
        return gan_structure_problems(loaded)
    layers = config.model.layers
    problems = []
    if not isinstance(layers[-1], DenseConfig):
        problems.append(loaded.problem(("model", "layers", len(layers) - 1),
                                       "the last layer must be dense (the output layer)"))
    for i, layer in enumerate(layers[1:], 1):
        if isinstance(layer, EmbeddingConfig):
            problems.append(loaded.problem(("model", "layers", i), "an embedding must be the "
                                           "first layer: it reads the text column's word ids"))
    for i, layer in enumerate(layers[:-1]):
        if isinstance(layer, DenseConfig) and layer.units is None:
            problems.append(loaded.problem(("model", "layers", i),
                                           "units is required on every dense layer but the "
                                           "last (whose width bp infers from the data)"))
    return problems
