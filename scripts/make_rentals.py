"""Regenerate datasets/rentals.csv: flat rents as a messy export from a listings site.

Run from the repository root: ``python scripts/make_rentals.py``. The rows are invented
(seeded, so a fresh run reproduces the shipped file exactly) and carry the mess real
exports have, each on purpose: a listing id, dates written two ways, city names in
several spellings and a few rare towns, missing-value markers (``?``, ``unknown``, ``-``)
among the numbers, blank cells, and rows whose rent was never filled in.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path

import numpy as np

ROWS = 600
SEED = 15
# city -> base rent per square metre, and how its name gets written
CITIES = {
    "Berlin": (13.0, ["Berlin", "Berlin", "berlin", " Berlin", "BERLIN"]),
    "Hamburg": (12.0, ["Hamburg", "Hamburg", "hamburg"]),
    "Leipzig": (8.0, ["Leipzig", "Leipzig", "leipzig "]),
    "Munich": (19.0, ["Munich", "Munich", "munich"]),
}
RARE_TOWNS = ["Husum", "Wismar", "Goslar", "Passau"]  # a listing or two each


def main(out: Path | None = None) -> None:
    rng = np.random.default_rng(SEED)
    rows = []
    for i in range(ROWS):
        if i % 97 == 13:
            city, per_m2, spelling = "town", 7.0, RARE_TOWNS[i % len(RARE_TOWNS)]
        else:
            city = list(CITIES)[int(rng.integers(0, len(CITIES)))]
            per_m2, spellings = CITIES[city]
            spelling = spellings[int(rng.integers(0, len(spellings)))]
        listed = dt.date(2019, 1, 1) + dt.timedelta(days=int(rng.integers(0, 5 * 365)))
        area = float(np.clip(rng.normal(70, 25), 18, 200))
        rooms = max(1, round(area / 28 + rng.normal(0, 0.5)))
        balcony = bool(rng.random() < 0.5)
        # rents rise 4% a year, peak in the autumn term, and a balcony adds a little
        years = (listed - dt.date(2019, 1, 1)).days / 365.25
        season = 1 + 0.03 * math.cos(2 * math.pi * (listed.month - 10) / 12)
        rent = area * per_m2 * 1.04 ** years * season + 40 * balcony + rng.normal(0, 40)
        cells = {
            "listing_id": f"L{100000 + 7 * i}",
            "listed": listed.isoformat() if i % 3 else listed.strftime("%Y/%m/%d"),
            "city": spelling,
            "rooms": str(rooms),
            "area_m2": f"{area:.1f}",
            "balcony": ["true", "false"][not balcony] if i % 11 else "",
            "rent": f"{rent:.0f}",
        }
        if i % 29 == 5:
            cells["rooms"] = "?"
        if i % 41 == 7:
            cells["area_m2"] = ["unknown", "-", ""][i % 3]
        if i % 53 == 11:
            cells["rent"] = ""
        rows.append(cells)
    out = out or Path(__file__).resolve().parent.parent / "datasets" / "rentals.csv"
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out} ({ROWS} rows)")


if __name__ == "__main__":
    main()
