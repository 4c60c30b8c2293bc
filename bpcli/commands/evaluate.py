"""``bp evaluate``: how well a trained model does on a labelled CSV file."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bpcli.commands.predict import BATCH
from bpcli.data import read_csv
from bpcli.metrics import (
    ClassificationReport,
    RegressionReport,
    classification_report,
    regression_report,
)
from bpcli.modelfile import load_model


def evaluate(model_path: Path, data_path: Path) -> ClassificationReport | RegressionReport:
    """Scores of the model on every row of ``data_path`` (which must hold the target)."""
    saved = load_model(model_path)
    table = read_csv(data_path)
    pre = saved.preprocessor
    table.require([*pre.features, pre.target], "Evaluation needs the features and the "
                  "target column.")
    X = pre.transform_features(table, saved.network.dtype.type)
    outputs = np.concatenate([saved.network.forward(X[i : i + BATCH])
                              for i in range(0, len(X), BATCH)])
    if pre.task == "regression":
        truth = table.numbers(pre.target)
        return regression_report(pre.target, truth, pre.inverse_target(outputs)[:, 0])
    truth_index = pre.transform_target(table, one_column=False)
    if outputs.shape[1] == 1:  # one sigmoid unit: the probability of the second class
        predicted = (outputs[:, 0] > 0.5).astype(np.int64)
    else:
        predicted = np.argmax(outputs, axis=1)
    return classification_report(truth_index, predicted, pre.classes)


def as_json(report: ClassificationReport | RegressionReport) -> dict[str, Any]:
    data = asdict(report)
    if isinstance(report, ClassificationReport):
        data["confusion"] = report.confusion.tolist()
        data["task"] = "classification"
    else:
        data["task"] = "regression"
    return data


def plot_confusion(report: ClassificationReport | RegressionReport, path: Path,
                   data_path: Path) -> None:
    """Draw a classification report's confusion matrix to ``path`` (PNG)."""
    from bpcli.errors import UsageError
    from bpcli.plots import confusion_matrix

    if not isinstance(report, ClassificationReport):
        raise UsageError("--plot draws a confusion matrix, which only classifiers have")
    if path.suffix.lower() != ".png":
        raise UsageError(f"{path}: the picture is a PNG; give a file name ending in .png")
    confusion_matrix(report.labels, report.confusion, path,
                     f"{data_path.name}: accuracy {report.accuracy:.3f}")
