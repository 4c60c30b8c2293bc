"""The trials of a sweep: every combination of a grid, or samples drawn from the space."""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bpcli.config.sweep import ParameterConfig, SweepConfig

#: a trial's status in sweep.json and results.csv; the first three are final
FINAL = ("finished", "stopped", "failed")


@dataclass
class Trial:
    """One point of the search space, and what became of it."""

    id: str
    params: dict[str, Any]
    status: str = "pending"  # pending, running, finished, stopped, failed, interrupted
    score: float | None = None  # the sweep's metric at the epoch the model keeps
    best_epoch: int | None = None
    epochs: int = 0  # epochs trained
    seconds: float | None = None
    error: str | None = None
    folds: list[float | None] | None = None  # cv: each fold's score
    fold_status: list[str] | None = None  # cv: each fold's status
    spread: float | None = None  # cv: standard deviation of the folds' scores
    reports: dict[str, float | None] = field(default_factory=dict)  # epoch -> metric

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trial:
        return cls(**data)


def plan(config: SweepConfig) -> list[Trial]:
    """The trials, in order: a grid's combinations (the first parameter varying slowest),
    or ``samples`` draws from one generator seeded by ``seed``."""
    keys = list(config.parameters)
    if config.search == "grid":
        lists = [config.parameters[k].values() or [] for k in keys]
        points = [dict(zip(keys, values, strict=True)) for values in itertools.product(*lists)]
    else:
        rng = np.random.default_rng(config.seed)
        points = [{k: sample(config.parameters[k], rng) for k in keys}
                  for _ in range(config.samples)]
    width = len(str(len(points)))
    return [Trial(f"t{i + 1:0{max(width, 3)}d}", point) for i, point in enumerate(points)]


def sample(spec: ParameterConfig, rng: np.random.Generator) -> Any:
    """One value of a parameter, as a plain Python value (YAML writes it back as is)."""
    listed = spec.values()
    if listed is not None:
        return listed[int(rng.integers(len(listed)))]
    low, high = spec.bounds() or (0.0, 1.0)
    if spec.kind in ("int", "randint"):
        value = int(rng.integers(int(low), int(high) + 1))
        if spec.q is not None:
            value = int(round(value / spec.q) * spec.q)
        return value
    if spec.kind == "loguniform":
        return spec.quantize(float(math.exp(rng.uniform(math.log(low), math.log(high)))))
    return spec.quantize(float(rng.uniform(low, high)))
