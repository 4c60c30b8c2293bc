"""The ``data`` section: the CSV files, the target, and how each column becomes inputs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from bpcli.config.fields import MAX_UNITS, Count, Dimension, Either, FillValue, Seed, Strict

Scaling = Literal["standard", "minmax", "none"]


Missing = Literal["error", "mean", "median", "most_frequent", "constant"]


Unseen = Literal["other", "error", "zeros"]


NaValues = list[Annotated[str, Field(min_length=1)]]

WordGrams = Annotated[tuple[Annotated[int, Field(ge=1, le=3)], Annotated[int, Field(ge=1, le=3)]],
                      Either("[low, high], whole numbers from 1 to 3")]
CharGrams = Annotated[tuple[Annotated[int, Field(ge=1, le=8)], Annotated[int, Field(ge=1, le=8)]],
                      Either("[low, high], whole numbers from 1 to 8")]


class ColumnConfig(Strict):
    """How one CSV column becomes network inputs; unset fields take the data-wide default."""

    type: Literal["numeric", "boolean", "categorical", "date", "text"] | None = Field(
        None, description="Inferred from the first rows when omitted: numbers are numeric, "
        "true/false boolean, dates date, free text (many distinct values of several words) "
        "text, anything else categorical (one-hot encoded).")
    scaling: Scaling | None = Field(None, description="For numeric columns.")
    missing: Missing | None = Field(None, description="What to do with missing cells.")
    fill_value: FillValue | None = Field(None, description="The value for missing: constant.")
    unseen: Unseen | None = Field(None, description="Categorical: a category not seen in "
                                  "training goes to the 'other' input, is an error, or is "
                                  "encoded as all zeros.")
    na_values: NaValues | None = Field(None, description="Texts that mark a missing cell in "
                                       "this column, besides data.na_values.")
    max_categories: Count | None = Field(None, description="Categorical: keep the most "
                                       "frequent values; the rest share the 'other' input.")
    min_frequency: Count | None = Field(None, description="Categorical: values in fewer "
                                      "training rows share the 'other' input.")
    fold_case: bool | None = Field(None, description="Categorical: Berlin, berlin and "
                                   "BERLIN (and runs of spaces) are one value.")
    date_format: str | None = Field(None, min_length=2, description="Date: the cells' "
                                    "format in strftime codes, e.g. '%d.%m.%Y' (default: "
                                    "ISO 8601 and the common orders, detected).")
    encoding: Literal["tfidf", "sequence"] | None = Field(
        None, description="Text: tfidf (default; a bag of words, one input per vocabulary "
        "token) or sequence (word ids in order, for an embedding layer first in "
        "model.layers).")
    lowercase: bool | None = Field(None, description="Text: compare words in lower case "
                                   "(default true).")
    token_pattern: str | None = Field(None, min_length=1, description="Text: a regular "
                                      "expression for one token (default: words of two or "
                                      r"more letters or digits, '(?u)\b\w\w+\b').")
    ngrams: WordGrams | None = Field(None, description="Text, tfidf: the word n-grams, "
                                     "[1, 2] for words and pairs of words (default [1, 1]).")
    char_ngrams: CharGrams | None = Field(None, description="Text, tfidf: add character "
                                          "n-grams within words, e.g. [2, 4] (default "
                                          "none).")
    max_tokens: Count | None = Field(None, description="Text: the vocabulary's size, the "
                                     "most frequent tokens of the training rows (default "
                                     "5,000 for tfidf, 20,000 for sequence).")
    min_count: Count | None = Field(None, description="Text: leave out tokens in fewer "
                                    "training rows (tfidf) or rarer (sequence) than this.")
    max_length: Count | None = Field(None, description="Text, sequence: words per row, the "
                                     "rest cut off (default: enough for 95% of the training "
                                     "texts, at most 400).")

    @model_validator(mode="after")
    def _text_settings(self) -> ColumnConfig:
        from bpcli.text import check_pattern  # the tokeniser owns what a pattern may be

        if self.token_pattern is not None:
            check_pattern(self.token_pattern)
        for name in ("ngrams", "char_ngrams"):
            pair = getattr(self, name)
            if pair is not None and pair[0] > pair[1]:
                raise ValueError(f"{name} is [low, high]; {list(pair)} has low > high")
        if self.encoding == "sequence":
            for name in ("ngrams", "char_ngrams"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} are for encoding: tfidf; a sequence feeds "
                                     "the words in order")
        elif self.max_length is not None and self.encoding is not None:
            raise ValueError("max_length is for encoding: sequence")
        return self


class CrossValidationConfig(Strict):
    """The rows of the training file (a test_fraction aside) cut into ``folds`` folds,
    stratified by class for classification, seeded by ``split_seed``; fold ``fold``
    validates and the others train."""

    folds: int = Field(ge=2, le=100)
    fold: int = Field(ge=1, le=100, description="The validating fold, 1 to folds.")

    @model_validator(mode="after")
    def _fold_exists(self) -> CrossValidationConfig:
        if self.fold > self.folds:
            raise ValueError(f"fold {self.fold} of {self.folds}: the folds are numbered 1 "
                             f"to {self.folds}")
        return self


class DataConfig(Strict):
    path: str = Field(description="CSV file of training data, relative to the config file.")
    target: Annotated[str | list[str], Either("a column name or a list of column names")
                      ] = Field(
        description="Name of the column to predict (a list for several regression targets).")
    features: list[str] | None = Field(
        None, min_length=1, description="Feature columns; default: every column but the "
        "targets and those in drop.")
    drop: list[str] = Field(default_factory=list,
                            description="Columns to leave out when features is not given.")
    task: Literal["classification", "regression"] | None = Field(
        None, description="Inferred from the target column when omitted."
    )
    delimiter: Literal[",", ";", "\t", "|"] | None = Field(
        None, description="Detected from the file when omitted.")
    scaling: Scaling = Field("standard", description="Numeric features: standard (mean 0, "
                             "standard deviation 1), minmax (0 to 1) or none; fitted on the "
                             "training split.")
    missing: Missing = Field(
        "error", description="Missing cells (empty, NA, NaN, null, None): an error naming the "
        "row, or imputed per column from the training split.")
    fill_value: FillValue | None = Field(None, description="The value for missing: constant.")
    unseen: Unseen = Field("other", description="A category not seen in training: counted "
                           "and encoded as the column's 'other' input (all zeros when no "
                           "training value was rare), an error, or all zeros.")
    na_values: NaValues = Field(default_factory=list, description="Texts that mark a "
                                "missing cell (such as ?, unknown, -), besides empty, NA, "
                                "NaN, null and None.")
    max_categories: Count | None = Field(None, description="Categorical columns: keep "
                                       "the most frequent values; the rest share one 'other' "
                                       "input.")
    min_frequency: Count = Field(1, description="Categorical columns: values in fewer "
                               "training rows than this share one 'other' input.")
    fold_case: bool = Field(False, description="Categorical columns: values that differ only "
                            "in case or spaces are one value.")
    missing_target: Literal["error", "drop"] = Field(
        "error", description="Rows whose target is missing: an error, or left out (counted).")
    columns: dict[str, ColumnConfig] = Field(
        default_factory=dict, description="Per-column settings, by column name.")
    input_shape: Annotated[tuple[Dimension, Dimension, Dimension], Either(
        f"[channels, height, width] of positive integers, each at most {MAX_UNITS:,}"
    )] | None = Field(
        None, description="Image data: [channels, height, width]. The feature columns, in "
        "order, are the pixels channel by channel, each channel row by row.")
    pixel_scale: float | None = Field(
        None, gt=0, description="Divide every numeric feature by this (e.g. 255) instead "
        "of the fitted scaling.")
    scale_target: bool = Field(True, description="Regression: standardise the targets for "
                               "training (predictions are always in the original units).")
    validation_path: str | None = Field(
        None, description="CSV file of validation data, relative to the config file."
    )
    validation_fraction: float | None = Field(
        None, ge=0, lt=1,
        description="Share of the training file held out for validation (default 0.2); 0 "
        "trains on every row and keeps the last epoch's model.",
    )
    test_path: str | None = Field(
        None, description="CSV file of test data, evaluated once after training.")
    test_fraction: float | None = Field(
        None, gt=0, lt=1, description="Share of the training file held out for testing.")
    split_seed: Seed = Field(0, description="Seed of the train/validation/test split.")
    cv: CrossValidationConfig | None = Field(
        None, description="Validate on one of K folds of the training file instead of a "
        "validation_fraction (bp train --cv K trains every fold).")

    @model_validator(mode="after")
    def _one_source_each(self) -> DataConfig:
        if self.validation_path is not None and self.validation_fraction is not None:
            raise ValueError("give validation_path or validation_fraction, not both")
        if self.cv is not None and (self.validation_path is not None
                                    or self.validation_fraction is not None):
            raise ValueError("cv validates on a fold of the training file; leave out "
                             "validation_path and validation_fraction")
        if self.test_path is not None and self.test_fraction is not None:
            raise ValueError("give test_path or test_fraction, not both")
        held_out = (self.validation_fraction or 0) + (self.test_fraction or 0)
        if held_out >= 1:
            raise ValueError(f"validation_fraction and test_fraction add up to {held_out}; "
                             "leave some rows for training")
        return self

    @property
    def targets(self) -> list[str]:
        return [self.target] if isinstance(self.target, str) else list(self.target)

    def column(self, name: str) -> ColumnConfig:
        """A column's settings with the data-wide defaults filled in (type may stay None)."""
        own = self.columns.get(name, ColumnConfig())
        return ColumnConfig(
            type=own.type, scaling=own.scaling or self.scaling,
            missing=own.missing or self.missing,
            fill_value=own.fill_value if own.fill_value is not None else self.fill_value,
            unseen=own.unseen or self.unseen,
            na_values=[*self.na_values, *(own.na_values or [])],
            max_categories=own.max_categories or self.max_categories,
            min_frequency=own.min_frequency or self.min_frequency,
            fold_case=own.fold_case if own.fold_case is not None else self.fold_case,
            date_format=own.date_format, encoding=own.encoding, lowercase=own.lowercase,
            token_pattern=own.token_pattern, ngrams=own.ngrams, char_ngrams=own.char_ngrams,
            max_tokens=own.max_tokens, min_count=own.min_count, max_length=own.max_length,
        )
