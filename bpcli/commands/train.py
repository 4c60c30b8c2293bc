"""``bp train``: validate the config, train, and record the run directory; or carry on
a stopped run from its last checkpoint (``--resume``). The session itself lives in
``bpcli.session``, which sweeps share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bpcli import session
from bpcli.display import Display


def train(config_path: Path, display: Display, overrides: Sequence[str] = (),
          health: bool = False, threads: int | None = None) -> Path:
    """Train the network ``config_path`` describes in a new run directory."""
    return session.train(config_path, display, overrides, health, threads)


def resume(run_dir: Path, display: Display, force: bool, health: bool = False,
           epochs: int | None = None, threads: int | None = None) -> Path:
    """Carry on the run in ``run_dir`` from its last checkpoint, bit for bit; with
    ``epochs``, to that new total (which also extends a finished run)."""
    return session.resume(run_dir, display, force, health, epochs, threads)
