"""Asynchronous successive halving (ASHA, Li et al. 2018): trials are compared at rungs,
``grace_period * reduction_factor**k`` epochs. A trial reaching a rung carries on only when
its score is in the best ``1/reduction_factor`` of the scores recorded at that rung so far
(the first to arrive always does), so no trial waits for another, and bad trials stop
after a few epochs while good ones train to the end."""

from __future__ import annotations

import math

import numpy as np


class Asha:
    def __init__(self, grace_period: int, reduction_factor: int, max_epochs: int,
                 maximize: bool, rungs: dict[str, dict[str, float | None]] | None = None
                 ) -> None:
        self.reduction_factor = reduction_factor
        self.maximize = maximize
        self.milestones = []
        epoch = grace_period
        while epoch < max_epochs:
            self.milestones.append(epoch)
            epoch *= reduction_factor
        # rung (epochs, as text: it goes to JSON) -> trial -> its score there
        self.rungs: dict[str, dict[str, float | None]] = {
            str(m): dict((rungs or {}).get(str(m), {})) for m in self.milestones}

    def carries_on(self, trial: str, epoch: int, score: float | None) -> bool:
        """Record ``trial``'s score at rung ``epoch`` and say whether it trains further."""
        recorded = self.rungs.get(str(epoch))
        if recorded is None:  # not a rung
            return True
        if trial in recorded:  # decided before (a resumed trial): decide alike
            recorded.pop(trial)
        others = [s for s in recorded.values() if s is not None and math.isfinite(s)]
        recorded[trial] = score
        if score is None or not math.isfinite(score):
            return False
        if not others:
            return True
        sign = 1.0 if self.maximize else -1.0
        values = np.array(others + [score]) * sign
        cutoff = float(np.percentile(values, (1 - 1 / self.reduction_factor) * 100))
        return score * sign >= cutoff
