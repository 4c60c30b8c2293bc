"""A profile of a data file's columns, as ``bp validate`` shows it: each column's kind,
missing and distinct counts, a few examples, and what looks wrong (an identifier, dates read
as text, a constant, values that differ only in case or spaces, words among numbers).

The file is read as training reads it (the config's kinds, missing-value markers and
delimiter), with problems collected rather than raised, so that a messy file gets its
profile beside the list of what to fix.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bpcli.columns import read_settings
from bpcli.config import LoadedConfig
from bpcli.csvfile import Column, Table, read_csv, read_header
from bpcli.dates import looks_like_dates
from bpcli.text import looks_like_text

EXAMPLES = 3
EXAMPLE_CHARS = 40  # an example longer than this is cut (free text)
#: an identifier: at least this many distinct values, nearly all of them distinct
ID_MIN_DISTINCT = 20
ID_DISTINCT_SHARE = 0.9


@dataclass
class ColumnProfile:
    name: str
    role: str  # target, input or dropped
    kind: str  # numeric, boolean or text, as the file reads
    missing: int
    distinct: int
    examples: list[str]
    flags: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def profile(loaded: LoadedConfig) -> list[ColumnProfile]:
    """Every column of the training file, in the file's order."""
    data = loaded.config.data
    path = loaded.resolve_path(data.path)
    header, _ = read_header(path, data.delimiter)
    kinds, na_values = read_settings(loaded, header)
    if data.task is None:  # a target is read for what it holds, as training infers it
        kinds = {name: kind for name, kind in kinds.items() if name not in data.targets}
    table = read_csv(path, None, kinds=kinds, delimiter=data.delimiter,
                     float64=[t for t in data.targets if t in header], na_values=na_values,
                     collect=True)
    dropped = set(data.drop or [])
    if data.features is not None:
        dropped |= set(header) - set(data.features) - set(data.targets)
    return [_column(table, name, "target" if name in data.targets
                    else "dropped" if name in dropped else "input",
                    bool(data.column(name).fold_case)) for name in header]


def _column(table: Table, name: str, role: str, folded: bool) -> ColumnProfile:
    column = table.columns[name]
    missing = column.missing()
    values = column.values[~missing]
    present = len(values)
    distinct = len(np.unique(values))
    kind: str = "text" if column.kind == "categorical" else column.kind
    free_text = column.kind == "categorical" and role != "target" and looks_like_text(
        column.categories, present)
    if free_text:
        kind = "free text"
    found = ColumnProfile(name, role, kind, int(missing.sum()), distinct,
                          _examples(column, values))
    if distinct == 1:
        found.flags.append("constant: one value in every row")
    dates = column.kind == "categorical" and looks_like_dates(column.categories)
    if dates:
        found.flags.append("looks like dates")
    elif distinct >= ID_MIN_DISTINCT and distinct >= ID_DISTINCT_SHARE * present \
            and role != "target" and column.kind != "numeric" and not free_text:
        found.flags.append(f"looks like an identifier: {distinct} distinct values in "
                           f"{present} rows")
    if column.kind == "categorical" and not free_text:
        variants = _variants(column.categories)
        if variants and not folded:  # fold_case makes them one value already
            shown = "; ".join(", ".join(repr(v) for v in group) for group in variants[:3])
            found.flags.append(f"differ only in case or spaces: {shown}")
    if name in table.bad:
        bad = table.bad[name]
        count = sum(len(rows) for rows in bad.chunks)
        found.flags.append(f"{count} cell{'s' if count > 1 else ''} not {bad.kind}: "
                           f"{', '.join(repr(v) for v in bad.values)} (line"
                           f"{'s' if len(bad.lines) > 1 else ''} "
                           f"{', '.join(map(str, bad.lines))})")
    return found


def _examples(column: Column, values: np.ndarray) -> list[str]:
    """The first few distinct present values, in row order, as text."""
    first = values[:1000]
    _, where = np.unique(first, return_index=True)
    chosen = first[np.sort(where)][:EXAMPLES].tolist()
    if column.kind == "categorical":  # long texts cut, so that the table stays readable
        return [_cut(column.categories[c]) for c in chosen]
    if column.kind == "boolean":
        return ["true" if v else "false" for v in chosen]
    return [f"{v:g}" for v in chosen]


def _cut(text: str, most: int = EXAMPLE_CHARS) -> str:
    return text if len(text) <= most else text[: most - 1].rstrip() + "…"


def _variants(categories: list[str]) -> list[list[str]]:
    """Groups of values that are the same but for case and spaces."""
    groups: dict[str, list[str]] = defaultdict(list)
    for value in categories:
        groups[re.sub(r"\s+", " ", value.strip()).casefold()].append(value)
    return [group for group in groups.values() if len(group) > 1]
