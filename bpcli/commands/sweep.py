"""``bp sweep``: train the trials of a search space over a config and name the best; or
carry on an interrupted sweep (``--resume``). The sweep itself lives in ``bpcli.sweep``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bpcli.display import Display
from bpcli.sweep import run


def sweep(sweep_file: Path, display: Display, workers: int | None = None,
          threads: int | None = None, executor: str | None = None,
          address: str | None = None) -> Path:
    return run.sweep(sweep_file, display, workers, threads, executor, address)


def resume(sweep_dir: Path, display: Display, workers: int | None = None,
           threads: int | None = None, address: str | None = None,
           force: bool = False) -> Path:
    return run.resume(sweep_dir, display, workers, threads, address, force)


def cross_validate(config: Path, folds: int, display: Display, overrides: Sequence[str] = (),
                   threads: int | None = None) -> Path:
    """``bp train --cv K``: the config trained on each of K folds, scored by their mean."""
    return run.cross_validate(config, folds, display, overrides, threads=threads)
