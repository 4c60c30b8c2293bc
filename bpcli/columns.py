"""The config's columns against a CSV file: which columns are features, how each is read
(its declared type, its texts for a missing cell), each input column's settings checked
against its values, the rows to use, and notes on values that look wrong (identifiers,
huge vocabularies, near-duplicate texts, numbers made text by a few words).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bpcli.config import MAX_PROBLEMS, ColumnConfig, EmbeddingConfig, LoadedConfig, did_you_mean
from bpcli.csvfile import Kind, Table, listed
from bpcli.data import (
    ID_MIN_VALUES,
    ID_SHARE,
    MANY_CATEGORIES,
    OTHER,
    InputColumn,
    Preprocessor,
    cell_problems,
)
from bpcli.dates import day_first_order, looks_like_dates, parse_date
from bpcli.errors import ConfigError
from bpcli.targets import is_number
from bpcli.text import WORD_PATTERN, TextSpec, looks_like_text


def feature_columns(loaded: LoadedConfig, header: list[str]) -> list[str]:
    """The feature columns; every column the config names must be in the file."""
    data = loaded.config.data
    where = f"in {Path(data.path).name}"
    problems: list[str] = []
    omitted = 0

    def absent(loc: tuple[str | int, ...], name: str) -> None:
        nonlocal omitted
        if len(problems) >= MAX_PROBLEMS:  # only counted: a hint searches the header
            omitted += 1
            return
        problems.append(loaded.problem(loc, f"no column {name!r} {where}"
                                            f"{did_you_mean(name, header)}; columns: "
                                            f"{', '.join(header)}"))

    targets = data.targets
    if not targets:
        problems.append(loaded.problem(("data", "target"), "name at least one target column"))
    for i, name in enumerate(targets):
        loc: tuple[str | int, ...] = ("data", "target") if isinstance(data.target, str) \
            else ("data", "target", i)
        if name not in header:
            absent(loc, name)
        elif targets.index(name) != i:
            problems.append(loaded.problem(loc, f"{name!r} is named twice"))
    for i, name in enumerate(data.features or []):
        if name not in header:
            absent(("data", "features", i), name)
        elif name in targets:
            problems.append(loaded.problem(("data", "features", i),
                                           f"{name!r} is a target; it cannot be a feature"))
    for i, name in enumerate(data.drop):
        if name not in header:
            absent(("data", "drop", i), name)
        elif data.features is not None:
            problems.append(loaded.problem(("data", "drop", i), "drop is for leaving columns "
                                           "out of the default features; with features "
                                           "given, simply do not list it"))
    for name in data.columns:
        if name not in header:
            absent(("data", "columns", name), name)
        elif name in targets:
            problems.append(loaded.problem(("data", "columns", name), f"{name!r} is a target; "
                                           "its encoding follows data.task"))
        settings = data.column(name)
        if settings.missing == "constant" and settings.fill_value is None:
            problems.append(loaded.problem(("data", "columns", name, "missing"), "constant "
                                           "needs a fill_value (here or under data)"))
    if data.missing == "constant" and data.fill_value is None:
        problems.append(loaded.problem(("data", "missing"), "constant needs data.fill_value"))
    if problems:
        raise ConfigError(problems, str(loaded.path), omitted)
    features = data.features or [c for c in header if c not in targets and c not in data.drop]
    if not features:
        raise loaded.error(("data",), "no feature columns are left; the file has only "
                           f"{', '.join(header)}")
    return features


def read_settings(loaded: LoadedConfig, columns: Sequence[str]
                  ) -> tuple[dict[str, Kind], dict[str, list[str]]]:
    """How the config asks for ``columns`` to be read: the kinds it declares (targets by
    the task; dates as text, each distinct text converted once) and each column's texts
    for a missing cell."""
    data = loaded.config.data
    kinds: dict[str, Kind] = {
        n: "categorical" if c.type == "date" or c.type == "text" else c.type
        for n, c in data.columns.items() if c.type}
    for target in data.targets:
        kinds[target] = "numeric" if data.task == "regression" else "categorical"
    na_values = {n: [t.strip(" \t") for t in data.column(n).na_values or []]
                 for n in columns}
    return kinds, na_values


def input_columns(loaded: LoadedConfig, table: Table, features: list[str],
                  notes: list[str]) -> list[InputColumn]:
    """Each feature column's settings, checked against its type. A text column of dates
    (or one declared a date) is a date column; one of free text (or declared text, or
    given a text encoding) is a text column."""
    data = loaded.config.data
    inputs = []
    for name in features:
        kind: str = table.columns[name].kind
        settings = data.column(name)
        loc = ("data", "columns", name) if name in data.columns else ("data",)
        fill = settings.fill_value
        missing = settings.missing or "error"
        day_first = True
        texts = table.columns[name].categories
        if settings.type == "date" or (settings.type is None and kind == "categorical"
                                       and looks_like_dates(texts)):
            kind = "date"
            day_first, certain = day_first_order(texts)
            if not certain and settings.date_format is None:
                notes.append(f"column {name!r}: dates such as {texts[0]!r} read day first "
                             f"(day/month/year); if the month comes first: "
                             f"data.columns.{name}.date_format: '%m/%d/%Y'")
            if settings.missing == "constant" and parse_date(str(fill)) is None:
                raise loaded.error((*loc, "fill_value"), f"column {name!r} holds dates; its "
                                   f"fill_value must be a date such as 2012-01-31, not "
                                   f"{fill!r}")
        elif settings.type is None and kind == "categorical" and settings.date_format:
            raise loaded.error(("data", "columns", name, "date_format"), f"column {name!r} "
                               "does not hold dates; declare it: type: date")
        elif settings.type == "text" or (settings.type is None and kind == "categorical" and (
                settings.encoding is not None or looks_like_text(
                    texts, int(np.count_nonzero(table.columns[name].values >= 0))))):
            inputs.append(_text_input(loaded, name, settings, notes))
            continue
        if settings.encoding is not None:
            raise loaded.error(("data", "columns", name, "encoding"), f"column {name!r} "
                               f"is {settings.type or kind}, not text; encoding is for "
                               "text columns (type: text)")
        if kind == "categorical" and missing in ("mean", "median"):
            if name in data.columns and data.columns[name].missing is not None:
                raise loaded.error((*loc, "missing"), f"column {name!r} holds text; impute "
                                   f"it with most_frequent or constant, not {missing}")
            missing = "most_frequent"  # the data-wide mean/median, for a text column
        if kind in ("numeric", "boolean") and settings.missing == "constant" and \
                not isinstance(fill, int | float):
            raise loaded.error((*loc, "fill_value"), f"column {name!r} is {kind}; its "
                               f"fill_value must be a number, not {fill!r}")
        scaling: str = settings.scaling or "standard"
        if data.pixel_scale is not None and kind == "numeric":
            scaling = "fixed"  # x / pixel_scale
        inputs.append(InputColumn(name, kind, scaling=scaling,
                                  scale_by=data.pixel_scale if scaling == "fixed" else None,
                                  missing=missing, fill=fill,
                                  unseen=settings.unseen or "other",
                                  na_values=[t.strip(" \t") for t in settings.na_values or []],
                                  fold_case=bool(settings.fold_case),
                                  max_categories=settings.max_categories,
                                  date_format=settings.date_format, day_first=day_first,
                                  min_frequency=settings.min_frequency or 1))
    return inputs


def _text_input(loaded: LoadedConfig, name: str, settings: ColumnConfig,
                notes: list[str]) -> InputColumn:
    encoding = settings.encoding or "tfidf"
    if settings.max_length is not None and encoding != "sequence":
        raise loaded.error(("data", "columns", name, "max_length"), "max_length is for "
                           "encoding: sequence (a tfidf bag of words has no length)")
    spec = TextSpec(encoding=encoding, lowercase=settings.lowercase is not False,
                    token_pattern=settings.token_pattern or WORD_PATTERN,
                    ngrams=settings.ngrams or (1, 1), char_ngrams=settings.char_ngrams,
                    max_tokens=settings.max_tokens, min_count=settings.min_count or 1,
                    max_length=settings.max_length)
    if settings.type is None:
        notes.append(f"column {name!r}: free text, encoded as {encoding}; to treat it as "
                     f"categories instead: data.columns.{name}.type: categorical")
    # a missing cell is an empty text: nothing to impute (and nothing refused)
    return InputColumn(name, "text", missing="error", text=spec)


def order_text_inputs(loaded: LoadedConfig, inputs: list[InputColumn]) -> list[InputColumn]:
    """A sequence text column comes first in the network's inputs, where the embedding
    reads its word ids; there is at most one, and only with an embedding (and the other
    way round)."""
    sequences = [c for c in inputs if c.text is not None and c.text.encoding == "sequence"]
    model = loaded.config.model
    layers = model.layers if model is not None else []  # a GAN has no text columns
    embeddings = [i for i, layer in enumerate(layers) if isinstance(layer, EmbeddingConfig)]
    if len(sequences) > 1:
        raise loaded.error(("data", "columns", sequences[1].name, "encoding"),
                           f"only one text column can be a sequence (here "
                           f"{', '.join(repr(c.name) for c in sequences)}); encode the "
                           "others as tfidf")
    if sequences and not embeddings:
        raise loaded.error(("model", "layers", 0), f"text column {sequences[0].name!r} is "
                           "a sequence of word ids; start model.layers with {type: "
                           "embedding, dimension: 32}, or encode it as tfidf")
    if embeddings and not sequences:
        raise loaded.error(("model", "layers", embeddings[0]), "an embedding reads a text "
                           "column's word ids: set data.columns.<text column>.encoding: "
                           "sequence")
    return sequences + [c for c in inputs if c not in sequences]


def leave_out_identifiers(loaded: LoadedConfig, table: Table, inputs: list[InputColumn],
                          notes: list[str]) -> list[InputColumn]:
    """The inputs without the text columns whose values are nearly all distinct (ids,
    free text): one-hot inputs that each match one row teach nothing and match no new
    row. A column declared categorical stays."""
    data = loaded.config.data
    kept = []
    for spec in inputs:
        column = table.columns[spec.name]
        declared = spec.name in data.columns and data.columns[spec.name].type is not None
        if spec.kind == "categorical" and not declared:
            present = int(np.count_nonzero(column.values >= 0))
            distinct = len(column.categories)  # the texts present, missing ones aside
            if distinct > ID_MIN_VALUES and distinct >= ID_SHARE * present:
                notes.append(f"warning: column {spec.name!r} left out: {distinct} distinct "
                             f"values in {present} cells, like an identifier; to use it "
                             f"anyway: data.columns.{spec.name}.type: categorical (and "
                             "max_categories), or drop it yourself: data.drop: "
                             f"[{spec.name}]")
                continue
        kept.append(spec)
    if not kept:
        raise loaded.error(("data",), "no feature columns are left once identifiers are left "
                           "out; declare the ones to use: data.columns.<name>.type")
    return kept


def rows_to_use(loaded: LoadedConfig, table: Table, inputs: list[InputColumn],
                problems: list[str], notes: list[str]) -> NDArray[np.intp]:
    """The rows of ``table`` to use. A missing target is a problem, or with
    ``data.missing_target: drop`` leaves its row out (noted); so is a missing input cell
    that is not imputed. Cells that did not read are reported already, not again."""
    data = loaded.config.data
    dropped = np.zeros(len(table), dtype=np.bool_)
    for target in data.targets:
        missing = table.columns[target].missing() & ~table.unreadable(target)
        if not missing.any():
            continue
        if data.missing_target == "drop":
            dropped |= missing
        else:
            problems.append(table.cells(np.flatnonzero(missing), target, "the target is "
                                        "missing", "fill it in, or leave such rows out: "
                                        "data.missing_target: drop"))
    if dropped.any():
        count = int(dropped.sum())
        notes.append(f"{table.path}: {count} row{'s' if count > 1 else ''} without a target "
                     "left out (data.missing_target: drop)")
    kept = np.flatnonzero(~dropped)
    for spec in inputs:
        problems += cell_problems(table, spec, kept)
    return kept


def note_variants(table: Table, inputs: list[InputColumn], declared: Collection[str],
                  notes: list[str]) -> None:
    """A warning for each text column with values that differ only in case or spaces
    (Berlin, berlin, BERLIN), which are separate values unless folded; and for each that
    holds mostly numbers, made text by a few words (markers of missing cells, likely)."""
    for spec in inputs:
        if spec.kind != "categorical":
            continue
        column = table.columns[spec.name]
        numbers = np.array([is_number(c) for c in column.categories] + [False])
        counts = np.bincount(column.values[column.values >= 0],
                             minlength=len(column.categories))
        share = counts[numbers[:-1]].sum() / max(1, counts.sum())
        if 0.5 <= share < 1 and spec.name not in declared:
            words = [c for c, n in zip(column.categories, numbers, strict=False) if not n]
            notes.append(f"warning: column {spec.name!r} is read as text, but "
                         f"{share:.0%} of its cells are numbers; if its other values "
                         f"({listed(words, 5)}) mark missing cells: data.na_values: "
                         f"[{', '.join(map(repr, words[:5]))}], or to list them as "
                         f"problems: data.columns.{spec.name}.type: numeric")
        if spec.fold_case:
            continue
        variants: dict[str, list[str]] = {}
        for category in table.columns[spec.name].categories:
            variants.setdefault(" ".join(category.split()).lower(), []).append(category)
        alike = [group for group in variants.values() if len(group) > 1]
        if alike:
            shown = "; ".join(", ".join(map(repr, group)) for group in alike[:3])
            notes.append(f"warning: column {spec.name!r}: {shown} differ only in case or "
                         "spaces and are separate values; to make them one: "
                         f"data.columns.{spec.name}.fold_case: true")


def note_vocabularies(pre: Preprocessor, notes: list[str]) -> None:
    """Notes on the vocabularies: very large ones, and values grouped into "other"."""
    for column in pre.inputs:
        if column.kind != "categorical":
            continue
        name = column.name
        if len(column.categories) > MANY_CATEGORIES:
            notes.append(f"warning: column {name!r} has {len(column.categories)} distinct "
                         "values, one network input each; keep the most frequent: "
                         f"data.columns.{name}.max_categories: 100, or leave it out: "
                         f"data.drop: [{name}]")
        if column.grouped:
            notes.append(f"column {name!r}: {len(column.grouped)} rare value"
                         f"{'s' if len(column.grouped) > 1 else ''} (such as "
                         f"{sorted(column.grouped)[0]!r}) share the input "
                         f"{name}={OTHER}")
