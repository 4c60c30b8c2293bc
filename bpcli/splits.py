"""Seeded splits of a file's rows: train, validation and test parts, and cross-validation
folds, stratified by class when labels are given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray


def split_rows(n: int, fractions: Sequence[float], seed: int,
               labels: NDArray[Any] | None) -> list[NDArray[np.intp]]:
    """Seeded split of ``range(n)`` into the rest and one part per fraction (each part
    at least one row per class when the class has enough rows); stratified by ``labels``
    when given. Returns ``[rest, part_1, ...]``, each sorted."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c)
                                                    for c in np.unique(labels)]
    owner = np.zeros(n, dtype=np.int8)  # part 0, the rest, unless a fraction takes the row
    for group in groups:
        group = rng.permutation(group)
        start = 0
        for k, fraction in enumerate(fractions, start=1):
            size = int(round(len(group) * fraction))
            if len(group) > len(fractions):
                size = min(max(size, 1), len(group) - start - (len(fractions) - k) - 1)
            owner[group[start:start + size]] = k
            start += size
    return [np.flatnonzero(owner == k) for k in range(len(fractions) + 1)]


def fold_rows(n: int, folds: int, seed: int, labels: NDArray[Any] | None
              ) -> list[NDArray[np.intp]]:
    """Seeded split of ``range(n)`` into ``folds`` folds of (nearly) equal size, each
    holding every class in proportion when ``labels`` are given. Each fold sorted."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c)
                                                    for c in np.unique(labels)]
    owner = np.empty(n, dtype=np.intp)
    offset = 0
    for group in groups:
        # dealt like cards, each class continuing where the last left off, so that the
        # folds' sizes differ by one row at most
        owner[rng.permutation(group)] = (offset + np.arange(len(group))) % folds
        offset += len(group)
    return [np.flatnonzero(owner == k) for k in range(folds)]
