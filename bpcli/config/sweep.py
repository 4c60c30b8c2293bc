"""A sweep file: a base config (a path, or written inline), the search space over its
dotted paths (the paths ``--set`` takes), the metric to optimise, how to search and where
the trials run. Every problem is located at ``file:line:column``, in the sweep file or in
the base config, and every searched value is applied to the base as ``--set`` would
apply it, so that a bad path or value is refused before any trial starts."""

from __future__ import annotations

import builtins
import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from bpcli.config.fields import Count, Seed, Strict, name_or_mapping
from bpcli.config.loading import (
    LoadedConfig,
    Override,
    load_config,
    read_yaml,
    validate_config,
)
from bpcli.config.locating import (
    MAX_PROBLEMS,
    describe_error,
    duplicate_keys,
    locate,
    one_per_typo,
)
from bpcli.errors import ConfigError
from bpcli.rundir import RunFiles

#: The columns of metrics.csv a sweep can rank trials by (val_<metric> is the task's).
METRICS = ("val_loss", "val_accuracy", "val_rmse", "train_loss")
KINDS = ("choice", "grid", "uniform", "loguniform", "int", "randint")


class ParameterConfig(Strict):
    """One searched path: exactly one of the kinds, with ``q`` to round sampled numbers
    to a step. ``int`` and ``randint`` include both ends."""

    choice: list[Any] | None = Field(None, min_length=1)
    grid: list[Any] | None = Field(None, min_length=1)
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    int: tuple[builtins.int, builtins.int] | None = None
    randint: tuple[builtins.int, builtins.int] | None = None
    q: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> ParameterConfig:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(KINDS)} (got "
                             f"{', '.join(given) or 'none'})")
        kind = given[0]
        if self.q is not None and kind in ("choice", "grid"):
            raise ValueError(f"q rounds sampled numbers; {kind} lists its values already")
        bounds = self.bounds()
        if bounds is not None:
            low, high = bounds
            if not low < high:
                raise ValueError(f"{kind}: the low end must be below the high end (got "
                                 f"[{low}, {high}])")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform: both ends must be above 0 (got [{low}, "
                                 f"{high}])")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    def bounds(self) -> tuple[float, float] | None:
        """The range of a sampled parameter; ``None`` for a list of values."""
        value = getattr(self, self.kind)
        return None if self.kind in ("choice", "grid") else (value[0], value[1])

    def values(self) -> list[Any] | None:
        """The listed values of ``choice`` and ``grid``; ``None`` for a range."""
        return self.choice if self.choice is not None else self.grid

    def examples(self) -> list[Any]:
        """Values to try on the base config before any trial: every listed value, or a
        range's two ends."""
        listed = self.values()
        if listed is not None:
            return listed
        low, high = self.bounds() or (0.0, 0.0)
        if self.kind in ("int", "randint"):
            return [builtins.int(low), builtins.int(high)]
        return [self.quantize(low), self.quantize(high)]

    def quantize(self, value: float) -> float:
        if self.q is None:
            return value
        return round(round(value / self.q) * self.q, 12)  # no 0.30000000000000004


class AshaConfig(Strict):
    """Asynchronous successive halving: at epochs ``grace_period * reduction_factor**k``
    a trial carries on only while its score is in the best ``1/reduction_factor`` of
    those that reached that epoch."""

    name: Literal["asha"]
    grace_period: Count = Field(1, description="Epochs every trial gets.")
    reduction_factor: builtins.int = Field(3, ge=2, le=100)


class SweepConfig(Strict):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                             description="Default: the sweep file's name.")
    base: str | dict[str, Any] = Field(description="The config the trials change: a path "
                                       "relative to this file, or the config itself.")
    parameters: dict[str, ParameterConfig] = Field(min_length=1)
    metric: str = "val_loss"
    mode: Literal["min", "max"] | None = Field(
        None, description="Default: max for accuracy, min for losses and errors.")
    search: Literal["grid", "random", "optuna"] = "random"
    samples: Count = Field(10, description="Trials of a random or optuna search.")
    seed: Seed = 0
    workers: Count | None = Field(None, description="Trials at once; default: the cores.")
    executor: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="executor ray: the cluster (auto, or "
                                "ray://host:port); default: a Ray instance of its own.")
    scheduler: Annotated[AshaConfig, BeforeValidator(name_or_mapping)] | None = None
    cv: builtins.int | None = Field(None, ge=2, le=100)

    @field_validator("metric")
    @classmethod
    def _recorded(cls, metric: str) -> str:
        if metric not in METRICS:
            raise ValueError(f"{metric!r} is not recorded in {RunFiles.METRICS}; use one of "
                             f"{', '.join(METRICS)}")
        return metric

    def maximize(self) -> bool:
        return self.mode == "max" if self.mode is not None else self.metric == "val_accuracy"


@dataclass
class LoadedSweep:
    """A validated sweep, with the means to point into its file and to make any trial's
    config from the base."""

    config: SweepConfig
    path: Path
    root: yaml.Node
    base_path: Path | None  # the base config's file; None when written inline
    base: LoadedConfig  # the base alone, validated

    @property
    def name(self) -> str:
        return self.config.name or _stem(self.path)

    def where(self, *loc: str | builtins.int) -> str:
        """``file:line:col`` of a field of the sweep file."""
        line, col = locate(self.root, loc)
        return f"{self.path}:{line}:{col}"

    def trial_config(self, params: dict[str, Any]) -> LoadedConfig:
        return trial_config(self.path, self.base_path, params, self.root)


def trial_config(sweep_path: Path, base_path: Path | None, params: dict[str, Any],
                 root: yaml.Node | None = None, sets: Sequence[str] = ()) -> LoadedConfig:
    """The base config with a trial's values set as ``--set`` sets them; a value the base
    refuses is blamed on its parameter in the sweep file. ``sets`` are further ``--set``
    texts (a cross-validation fold's)."""
    if not params:
        return load_base(sweep_path, base_path, list(sets))
    if root is None:
        root, _ = read_yaml(sweep_path, "sweep file")
        assert root is not None
    overrides = []
    for key, value in params.items():
        line, col = locate(root, ("parameters", key))
        overrides.append(Override(f"{key}={yaml_value(value)}", f"{sweep_path}:{line}:{col}: "
                                  f"parameters.{key} = {yaml_value(value)}"))
    return load_base(sweep_path, base_path, [*overrides, *sets])


def load_sweep(path: Path) -> LoadedSweep:
    """Read and validate a sweep file and its base config; try every searched value on
    the base. Raises ``ConfigError`` listing every problem, each located."""
    root, data = read_yaml(path, "sweep file")
    if root is None or not isinstance(data, dict):
        raise ConfigError([f"{path}:1:1: a sweep must be a mapping with base, parameters, "
                           "metric, ..."], str(path))
    problems = duplicate_keys(root)
    config: SweepConfig | None = None
    try:
        config = SweepConfig.model_validate(data)
    except ValidationError as exc:
        errors = one_per_typo(exc.errors(), data, SweepConfig)
        problems += [describe_error(root, data, err, SweepConfig)
                     for err in errors[:MAX_PROBLEMS]]
    if problems or config is None:
        raise ConfigError([f"{path}:{line}:{col}: {message}"
                           for line, col, message in sorted(problems)], str(path))
    if isinstance(config.base, str):
        base_path = (path.parent / config.base).resolve()
        if not base_path.is_file():
            line, col = locate(root, ("base",))
            raise ConfigError([f"{path}:{line}:{col}: base: no config file {base_path}; "
                               "give a path relative to the sweep file, or write the config "
                               "here"], str(path))
    else:
        base_path = None
    sweep = LoadedSweep(config, path, root, base_path, load_base(path, base_path, []))
    problems_ = _search_problems(sweep)
    for key, spec in config.parameters.items():
        for value in spec.examples():
            try:
                sweep.trial_config({key: value})
            except ConfigError as exc:
                problems_ += exc.problems
                break  # the next values would most often say the same
    if config.cv is not None and not problems_:
        try:
            load_base(path, base_path, [f"data.cv={{folds: {config.cv}, fold: 1}}"])
        except ConfigError as exc:
            line, col = locate(root, ("cv",))
            problems_ += [f"{path}:{line}:{col}: cv: {p}" for p in exc.problems]
    if problems_:
        raise ConfigError(problems_[:MAX_PROBLEMS], str(path),
                          omitted=max(0, len(problems_) - MAX_PROBLEMS))
    return sweep


def load_base(sweep_path: Path, base_path: Path | None, overrides: Sequence[str]
              ) -> LoadedConfig:
    """The base config with ``overrides`` applied: from its own file, or (``base_path``
    None) from the sweep file's ``base`` mapping, located in the sweep file and with
    paths relative to it."""
    if base_path is not None:
        return load_config(base_path, overrides)
    root, data = read_yaml(sweep_path, "sweep file")
    assert isinstance(root, yaml.MappingNode) and isinstance(data, dict)
    node = next(value for key, value in root.value
                if isinstance(key, yaml.ScalarNode) and key.value == "base")
    base = data["base"]
    if not isinstance(base, dict):  # checked by load_sweep; the file changed since
        line, col = locate(root, ("base",))
        raise ConfigError([f"{sweep_path}:{line}:{col}: base: write the config's sections "
                           "here, or a path"], str(sweep_path))
    return validate_config(node, copy.deepcopy(base), sweep_path, overrides)


def _search_problems(sweep: LoadedSweep) -> list[str]:
    config = sweep.config
    problems = []
    if config.search == "grid":
        for key, spec in config.parameters.items():
            if spec.values() is None:
                problems.append(f"{sweep.where('parameters', key, spec.kind)}: parameters."
                                f"{key}: a grid search tries listed values; give grid or "
                                f"choice, or use search: random")
    if config.scheduler is not None:
        epochs = sweep.base.config.training.epochs
        if config.scheduler.grace_period >= epochs:
            problems.append(f"{sweep.where('scheduler', 'grace_period')}: scheduler."
                            f"grace_period: {config.scheduler.grace_period} epochs is not "
                            f"fewer than the {epochs} every trial trains; make it smaller")
    if config.search == "optuna" and config.executor == "ray" and config.cv is not None:
        problems.append(f"{sweep.where('cv')}: cv: on Ray, Optuna's trials are single "
                        "runs; leave out cv, or use search random or the local executor")
    if config.executor != "ray" and config.address is not None:
        problems.append(f"{sweep.where('address')}: address: a cluster's address goes with "
                        "executor: ray")
    return problems


def yaml_value(value: Any) -> str:
    """``value`` as one line of YAML, as ``--set`` reads it back."""
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _stem(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in path.stem)
    return stem.lstrip("._-") or "sweep"
