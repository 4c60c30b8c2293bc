"""Evaluation metrics, computed from predictions and true values (NumPy only)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray


def metric_text(value: float) -> str:
    """A loss or metric as every command shows it, so that train, evaluate, runs and
    inspect print the same number the same way: 4 decimals (``0.9333``, ``61.6843``); one
    decimal from 10,000 up (``156729.9``), where 4 decimals are noise; an exponent only
    where decimals would show nothing (``3.01e-05``) or digits would run on (``1.2346e+15``)."""
    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    if size >= 1e15 or 0 < size < 1e-4:
        return f"{value:.3e}" if size < 1e-4 else f"{value:.4e}"
    return f"{value:.1f}" if size >= 1e4 else f"{value:.4f}"


def value_text(value: object, missing: str = "-") -> str:
    """A value a run or model file records, as commands show it: a float as
    ``metric_text``, anything else as it prints, and ``missing`` for none."""
    if value is None:
        return missing
    if isinstance(value, float):
        return metric_text(value)
    return str(value)


@dataclass(frozen=True)
class ClassScores:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationReport:
    accuracy: float
    classes: list[ClassScores]
    macro: ClassScores  # unweighted mean over classes
    weighted: ClassScores  # mean weighted by support
    confusion: NDArray[np.int64]  # rows: true class, columns: predicted class
    labels: list[str]

    def as_json(self) -> dict[str, Any]:
        """The report as JSON data (test.json, ``bp evaluate --json``)."""
        return {**asdict(self), "confusion": self.confusion.tolist(),
                "task": "classification"}


@dataclass(frozen=True)
class TargetScores:
    target: str
    rmse: float
    mae: float
    r2: float


@dataclass(frozen=True)
class RegressionReport:
    targets: list[TargetScores]
    n: int

    def as_json(self) -> dict[str, Any]:
        """The report as JSON data (test.json, ``bp evaluate --json``)."""
        return {**asdict(self), "task": "regression"}


def classification_report(truth: NDArray[np.integer], predicted: NDArray[np.integer],
                          labels: list[str]) -> ClassificationReport:
    """Scores from class indices. Precision, recall or F1 with a zero denominator is 0
    (as scikit-learn's ``zero_division=0``)."""
    k = len(labels)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    true_positive = np.diag(confusion).astype(np.float64)
    predicted_count = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = _ratio(true_positive, predicted_count)
    recall = _ratio(true_positive, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    classes = [ClassScores(label, float(p), float(r), float(f), int(s))
               for label, p, r, f, s in zip(labels, precision, recall, f1, support,
                                            strict=True)]
    total = int(support.sum())
    weights = support / max(total, 1)
    macro = ClassScores("macro avg", float(precision.mean()), float(recall.mean()),
                        float(f1.mean()), total)
    weighted = ClassScores("weighted avg", float(precision @ weights),
                           float(recall @ weights), float(f1 @ weights), total)
    accuracy = float(true_positive.sum() / max(total, 1))
    return ClassificationReport(accuracy, classes, macro, weighted, confusion, labels)


def regression_report(targets: list[str], truth: NDArray[np.floating],
                      predicted: NDArray[np.floating]) -> RegressionReport:
    """Per target (columns of ``truth`` and ``predicted``, shape (n, targets)): RMSE, MAE
    and R^2 (1 - residual sum of squares / total sum of squares)."""
    scores = []
    for j, name in enumerate(targets):
        error = predicted[:, j] - truth[:, j]
        total = float(np.sum((truth[:, j] - truth[:, j].mean()) ** 2))
        r2 = 1.0 - float(np.sum(error**2)) / total if total > 0 else float("nan")
        scores.append(TargetScores(name, float(np.sqrt(np.mean(error**2))),
                                   float(np.mean(np.abs(error))), r2))
    return RegressionReport(scores, len(truth))


def _ratio(numerator: NDArray[np.float64], denominator: NDArray) -> NDArray[np.float64]:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=denominator > 0)
