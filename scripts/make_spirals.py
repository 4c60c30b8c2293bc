"""Regenerate datasets/spirals.csv: two interleaved spirals, a classic nonlinear toy set.

Run from the repository root: ``python scripts/make_spirals.py``. The output is fixed by
the seed, so the shipped file can be checked against a fresh run.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

POINTS_PER_ARM = 200
NOISE = 0.05
SEED = 7


def main() -> None:
    rng = np.random.default_rng(SEED)
    rows: list[tuple[str, str, str]] = []
    for arm, label in enumerate(("a", "b")):
        t = np.linspace(0.25, 3.0, POINTS_PER_ARM) * np.pi  # two half-turns per arm
        radius = t / (3.0 * np.pi)
        angle = t + arm * np.pi
        x = radius * np.cos(angle) + rng.normal(0.0, NOISE, POINTS_PER_ARM)
        y = radius * np.sin(angle) + rng.normal(0.0, NOISE, POINTS_PER_ARM)
        rows.extend((f"{a:.5f}", f"{b:.5f}", label) for a, b in zip(x, y, strict=True))
    order = rng.permutation(len(rows))
    out = Path(__file__).resolve().parent.parent / "datasets" / "spirals.csv"
    with out.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("x", "y", "arm"))
        writer.writerows(rows[i] for i in order)


if __name__ == "__main__":
    main()
