"""``search: optuna``: Optuna's TPE proposes each next trial from the scores of those
that have ended (the extra ``bp[optuna]``, imported here only). The sweep asks for a trial
whenever a worker is free and tells the study each score as it comes."""

from __future__ import annotations

import math
from typing import Any

from bpcli.config.sweep import ParameterConfig
from bpcli.errors import UsageError

INSTALL_HINT = "pip install 'bp[optuna]'"


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UsageError(f"search optuna needs Optuna: {INSTALL_HINT} (from a clone: pip "
                         "install '.[optuna]')") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class OptunaSearch:
    """A TPE study over the sweep's parameters. Listed values (which may be whole blocks,
    which Optuna cannot hold) are chosen by their index."""

    def __init__(self, parameters: dict[str, ParameterConfig], maximize: bool, seed: int
                 ) -> None:
        optuna = _optuna()
        self.optuna = optuna
        self.parameters = parameters
        self.study = optuna.create_study(
            direction="maximize" if maximize else "minimize",
            sampler=optuna.samplers.TPESampler(seed=seed))
        self.asked: dict[str, Any] = {}  # trial id -> Optuna's trial

    def distributions(self) -> dict[str, Any]:
        d = self.optuna.distributions
        out: dict[str, Any] = {}
        for key, spec in self.parameters.items():
            listed = spec.values()
            if listed is not None:
                out[key] = d.CategoricalDistribution(list(range(len(listed))))
                continue
            low, high = spec.bounds() or (0.0, 1.0)
            if spec.kind in ("int", "randint"):
                out[key] = d.IntDistribution(int(low), int(high),
                                             step=int(spec.q) if spec.q else 1)
            elif spec.kind == "loguniform":
                out[key] = d.FloatDistribution(low, high, log=True)
            else:
                out[key] = d.FloatDistribution(low, high, step=spec.q)
        return out

    def ask(self, trial_id: str) -> dict[str, Any]:
        """The next trial's values."""
        trial = self.study.ask(self.distributions())
        self.asked[trial_id] = trial
        return {key: self._value(key, trial.params[key]) for key in self.parameters}

    def _value(self, key: str, raw: Any) -> Any:
        spec = self.parameters[key]
        listed = spec.values()
        if listed is not None:
            return listed[int(raw)]
        if spec.kind == "loguniform":
            return spec.quantize(float(raw))
        return raw

    def tell(self, trial_id: str, score: float | None) -> None:
        trial = self.asked.pop(trial_id, None)
        if trial is None:
            return
        if score is None or not math.isfinite(score):
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, score)

    def add(self, params: dict[str, Any], score: float) -> None:
        """A trial that ended before (a resumed sweep), so that TPE learns from it."""
        raw = {}
        for key, spec in self.parameters.items():
            listed = spec.values()
            raw[key] = listed.index(params[key]) if listed is not None else params[key]
        self.study.add_trial(self.optuna.trial.create_trial(
            params=raw, distributions=self.distributions(), value=score))
