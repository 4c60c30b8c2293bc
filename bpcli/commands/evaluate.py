"""``bp evaluate``: how well a trained model does on a labelled CSV file."""

from __future__ import annotations

from pathlib import Path

from bpcli.errors import DataError
from bpcli.events import Progress
from bpcli.inference import read_inputs, score, use_unseen
from bpcli.metrics import (
    ClassificationReport,
    RegressionReport,
    metric_text,
)
from bpcli.modelfile import load_model
from bpcli.nn.network import INFERENCE_BATCH
from bpcli.threads import CpuMeter, choose_threads, largest_product


def evaluate(model_path: Path, data_path: Path, notes: list[str] | None = None,
             progress: Progress | None = None, delimiter: str | None = None,
             unseen: str | None = None) -> ClassificationReport | RegressionReport:
    """Scores of the model on the rows of ``data_path`` that hold the targets (the others
    are counted into ``notes``); ``delimiter`` overrides the model's and detection."""
    meter = CpuMeter()  # its reading spans the loading
    saved = load_model(model_path)
    pre = saved.preprocessor
    use_unseen(pre, unseen)
    if progress is not None:
        progress(0, 0, f"reading {data_path.name}")
    table = read_inputs(pre, data_path, with_targets=True, delimiter=delimiter)
    rows = pre.labelled(table)
    if rows is not None:
        if not len(rows):
            raise DataError(f"{data_path}: no row has a value in the target column"
                            f"{'s' if len(pre.targets) > 1 else ''} "
                            f"{', '.join(pre.targets)}; evaluate scores labelled rows "
                            "(bp predict needs none)")
        unlabelled = len(table) - len(rows)
        if notes is not None:
            notes.append(f"{data_path}: {unlabelled} row{'s' if unlabelled > 1 else ''} "
                         f"without a target not scored; {len(rows)} scored")
    pre.check_cells(table, rows)
    X = pre.transform_features(table, rows, saved.network.dtype, notes)
    truth = (pre.target_values(table, rows) if pre.task == "regression"
             else pre.class_indices(table, rows))
    # as bp train chooses, for this network's inference batches
    choose_threads(meter, largest_product(saved.network.layers, min(len(X), INFERENCE_BATCH)))
    return score(saved.network, pre, X, truth, progress)


def plot_confusion(report: ClassificationReport | RegressionReport, path: Path,
                   data_path: Path) -> None:
    """Draw a classification report's confusion matrix to ``path`` (PNG)."""
    from bpcli.errors import UsageError
    from bpcli.files import output_path
    from bpcli.plots import confusion_matrix

    if not isinstance(report, ClassificationReport):
        raise UsageError("--plot draws a confusion matrix, which only classifiers have")
    if path.suffix.lower() != ".png":
        raise UsageError(f"{path}: the picture is a PNG; give a file name ending in .png")
    output_path(path, data_path, option="--plot")
    confusion_matrix(report.labels, report.confusion, path,
                     f"{data_path.name}: accuracy {metric_text(report.accuracy)}")
