"""Regenerate datasets/digits.csv from scikit-learn's bundled copy of the UCI handwritten digits.

    python scripts/make_digits.py                       # from the installed scikit-learn
    python scripts/make_digits.py path/to/digits.csv.gz  # from a copy of that file

The source is scikit-learn's ``sklearn/datasets/data/digits.csv.gz``: 1,797 rows of 64
pixel counts (an 8x8 image in row-major order, each 0 to 16) and the digit. The output keeps
the rows in the source's order and adds a header, ``px_0_0`` ... ``px_7_7`` (``px_<row>_<col>``)
then ``digit``, so the same source always gives the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib.util
import sys
from pathlib import Path

SIDE = 8
ROWS = 1797
OUTPUT = Path(__file__).resolve().parent.parent / "datasets" / "digits.csv"
HEADER = [f"px_{r}_{c}" for r in range(SIDE) for c in range(SIDE)] + ["digit"]


def bundled_copy() -> Path:
    """scikit-learn's digits.csv.gz, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        sys.exit("scikit-learn is not installed: pass the path of digits.csv.gz instead")
    return Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"


def read_rows(source: Path) -> list[list[int]]:
    """Every row as 65 ints, checked: 64 pixels in 0..16 and a digit in 0..9."""
    rows = []
    with gzip.open(source, "rt", newline="") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            try:
                ints = [int(v) for v in row]
            except ValueError:
                ints = []
            if len(ints) != SIDE * SIDE + 1:
                raise ValueError(f"{source}, row {number}: expected 65 integers, got {row!r}")
            if not all(0 <= v <= 16 for v in ints[:-1]) or not 0 <= ints[-1] <= 9:
                raise ValueError(f"{source}, row {number}: a pixel outside 0..16 or a label "
                                 "outside 0..9")
            rows.append(ints)
    if len(rows) != ROWS:
        raise ValueError(f"{source}: expected {ROWS} rows, found {len(rows)}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", type=Path, help="digits.csv.gz (default: "
                        "the copy inside the installed scikit-learn)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    rows = read_rows(args.source or bundled_copy())
    with args.output.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)


if __name__ == "__main__":
    main()
