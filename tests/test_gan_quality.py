"""A GAN's sample quality measured while it trains (bpcli.ganquality): the measures
against independent oracles, the quality columns of metrics.csv against a direct
computation, their determinism and independence from training's random streams, the
config fields that set them, and no "best" epoch for a GAN."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.config import load_config
from bpcli.display import Display, TrainingView
from bpcli.events import EpochEnded, TrainingStarted
from bpcli.experiment import prepare
from bpcli.ganbuild import prepare_gan
from bpcli.ganquality import (
    QUALITY_STREAM,
    confident_classes,
    correlation_gap,
    ks_statistic,
    total_variation,
    train_classifier,
)
from bpcli.ganrows import draw
from bpcli.modelfile import load_gan
from tests.test_gan import digits_gan, iris_gan, train

Writer = Callable[..., Path]


# -- the measures against oracles --------------------------------------------------------

def ks_oracle(a: np.ndarray, b: np.ndarray) -> float:
    """The KS statistic by its definition: at every observed value, the gap between the
    shares of each sample at or below it."""
    return max(abs(float(np.mean(a <= x)) - float(np.mean(b <= x)))
               for x in [*a.tolist(), *b.tolist()])


@pytest.mark.parametrize("seed", range(5))
def test_ks_statistic_matches_its_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=int(rng.integers(5, 60)))
    b = rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), size=int(rng.integers(5, 60)))
    assert ks_statistic(a, b) == pytest.approx(ks_oracle(a, b), abs=1e-12)
    ties_a, ties_b = rng.integers(0, 4, size=30).astype(float), rng.integers(0, 5, size=17)
    assert ks_statistic(ties_a, ties_b.astype(float)) == pytest.approx(
        ks_oracle(ties_a, ties_b), abs=1e-12)


def test_ks_statistic_matches_scipy() -> None:
    # scipy comes with scikit-learn in the test extra: a second, independent oracle
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(0.3, 1.2, size=150)
    assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_ks_statistic_extremes() -> None:
    a = np.arange(10.0)
    assert ks_statistic(a, a[::-1].copy()) == 0.0
    assert ks_statistic(a, a + 100) == 1.0
    assert ks_statistic(np.array([0.0, 1.0]), np.array([1.0, 2.0])) == 0.5


def test_total_variation_is_half_the_absolute_differences() -> None:
    assert total_variation(np.array([0.5, 0.5, 0.0]),
                           np.array([0.2, 0.3, 0.5])) == pytest.approx(0.5)  # (.3+.2+.5)/2
    assert total_variation(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    assert total_variation(np.array([0.25] * 4), np.array([0.25] * 4)) == 0.0


def test_correlation_gap_matches_numpy_corrcoef() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(200, 1))
    real = np.hstack([z, 2 * z + rng.normal(size=(200, 1)), rng.normal(size=(200, 1))])
    fake = rng.normal(size=(150, 3))
    expected = np.abs(np.corrcoef(real.T) - np.corrcoef(fake.T)).max()
    assert correlation_gap(real, fake) == pytest.approx(expected, abs=1e-12)
    flipped = real * np.array([-1.0, 1.0, 1.0])  # the first column's correlations negated
    C = np.corrcoef(real.T)
    assert correlation_gap(real, flipped) == pytest.approx(2 * max(abs(C[0, 1]), abs(C[0, 2])))


def test_a_constant_column_correlates_with_nothing_and_warns_not() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(50, 2))
    fake = real.copy()
    fake[:, 1] = 3.0  # a collapsed generator's column
    # its own correlation is 1 in the real rows, 0 in the fake: the gap is 1
    assert correlation_gap(real, fake) == pytest.approx(1.0)


def test_confident_classes_counts_the_classes_of_confident_rows() -> None:
    probabilities = np.array([[0.95, 0.05, 0.0], [0.1, 0.9, 0.0], [0.5, 0.5, 0.0],
                              [0.0, 0.2, 0.8]])
    assert confident_classes(probabilities) == (0.5, 2)


# -- quality in training -------------------------------------------------------------------

QUALITY = ["KS max", "TV max", "corr gap", "TSTR"]


def metrics_table(run: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO((run / "metrics.csv").read_text())))
    return rows[0], rows[1:]


def quality_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(QUALITY_STREAM,
                                                                         epoch)))


def real_rows(run: Path) -> Any:
    experiment = prepare(load_config(run / "config.yaml"))
    return prepare_gan(experiment)[2]


def test_tabular_quality_columns_match_a_direct_computation(
        runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    config = iris_gan(quality_every=2, quality_samples=300)
    config["data"]["validation_fraction"] = 0.2
    run = train(runner, write_config(config))
    header, rows = metrics_table(run)
    assert header[-4:] == QUALITY
    got = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert [got["1"][name] for name in QUALITY] == [""] * 4  # not measured on epoch 1
    assert all(got[epoch][name] for epoch in ("2", "3") for name in QUALITY)

    # the last epoch's figures, recomputed from the model (the last epoch's networks)
    real = real_rows(run)
    assert len(real.val) == 30  # against the validation rows
    gan = load_gan(run / "model.npz").gan
    rng = quality_rng(1, 3)
    fake = np.asarray(gan.sample(300, rng), dtype=np.float64)
    species = draw(fake[:, 4:7], rng)  # the one categorical block, drawn as training does
    ks = max(ks_oracle(real.val[:, j], fake[:, j]) for j in range(4))
    shares = [np.bincount(rows_.argmax(axis=1), minlength=3) / len(rows_)
              for rows_ in (real.val[:, 4:7], np.eye(3)[species])]
    tv = 0.5 * float(np.abs(shares[0] - shares[1]).sum())
    gap = float(np.abs(np.corrcoef(real.val[:, :4].T) - np.corrcoef(fake[:, :4].T)).max())
    last = got["3"]
    assert float(last["KS max"]) == pytest.approx(ks, abs=1e-12)
    assert float(last["TV max"]) == pytest.approx(tv, abs=1e-12)
    assert float(last["corr gap"]) == pytest.approx(gap, abs=1e-9)
    assert 0 <= float(last["TSTR"]) <= 3  # an accuracy over one above a third
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"]["epoch"] == 3
    assert (summary["n_train"], summary["n_val"]) == (120, 30)
    assert {k: summary["metrics"][k] for k in QUALITY} == {k: float(last[k]) for k in QUALITY}


def test_image_quality_columns_match_a_direct_computation(
        runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    config = digits_gan()
    config["data"]["validation_fraction"] = 0.2
    config["gan"].update(quality_every=1, quality_samples=200)
    run = train(runner, write_config(config))
    header, rows = metrics_table(run)
    assert header[-2:] == ["confident", "classes"]
    real = real_rows(run)
    classifier = train_classifier(real.train, real.train_labels, 10, quality_rng(0, 0))
    gan = load_gan(run / "model.npz").gan
    images = gan.sample(200, quality_rng(0, 1)).reshape(200, -1)
    share, classes = confident_classes(classifier.forward(images.astype(np.float32)))
    assert rows[-1][-2:] == [repr(share), repr(float(classes))]


def test_quality_is_deterministic_and_draws_nothing_from_training(
        runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    measured = iris_gan(quality_every=1)
    measured["data"]["validation_fraction"] = 0.2
    unmeasured = {**measured, "gan": {**measured["gan"], "quality_every": 0}}
    runs = [train(runner, write_config(c, f"{i}.yaml"))
            for i, c in enumerate((measured, measured, unmeasured))]
    tables = [metrics_table(run) for run in runs]
    assert tables[0][0][-4:] == QUALITY and tables[2][0][-4:] != QUALITY
    assert [r[:6] + r[7:] for r in tables[0][1]] == [r[:6] + r[7:] for r in tables[1][1]]
    # measuring or not, training is the same: its figures and its weights
    assert [r[7:11] for r in tables[0][1]] == [r[7:11] for r in tables[2][1]]
    weights = [load_gan(run / "model.npz").gan.flat_params for run in (runs[0], runs[2])]
    assert np.array_equal(*weights)


def test_a_gan_marks_no_epoch_best_and_keeps_no_best_checkpoint(
        runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    result = runner.invoke(app, ["train", str(write_config(iris_gan()))])
    assert result.exit_code == 0, result.output
    epochs = [line for line in result.output.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 3 and not any("best" in line for line in epochs)
    run = Path(result.output.split("run directory: ")[1].split()[0])
    assert not (run / "checkpoints" / "best.npz").exists()
    assert (run / "checkpoints" / "last.npz").exists()
    metrics = json.loads((run / "summary.json").read_text())["metrics"]
    assert metrics["epoch"] == 3 and "best_epoch" not in metrics
    assert json.loads(str(np.load(run / "model.npz")["meta"]))["epoch"] == 3
    listed = runner.invoke(app, ["runs", "runs"])
    assert listed.exit_code == 0 and run.name in listed.output, listed.output


def test_bp_plot_draws_a_gan_run_with_quality_columns(
        runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    pytest.importorskip("matplotlib")
    config = iris_gan(quality_every=2)
    run = train(runner, write_config(config))
    result = runner.invoke(app, ["plot", str(run), "--out", str(in_tmp / "curves.png")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("change", "message"), [
    ({"quality_every": -1}, "gan.quality_every"),
    ({"quality_every": "often"}, "gan.quality_every"),
    ({"quality_samples": 5}, "gan.quality_samples"),
    ({"quality_evry": 3}, "did you mean 'quality_every'"),
])
def test_quality_fields_are_checked_at_their_line(
        runner: CliRunner, write_config: Writer, change: dict[str, Any], message: str) -> None:
    result = runner.invoke(app, ["validate", str(write_config(iris_gan(**change)))])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert message in result.output and "config.yaml:" in result.output, result.output


def test_the_live_screen_of_a_gan_shows_its_quality_and_no_best() -> None:
    view = TrainingView(Display(io.StringIO(), interactive=True), clock=lambda: 0.0)
    view(TrainingStarted(20, 4, 120, 0, "metric"))
    figures = {"D loss": 0.65, "G loss": 0.9, "D(real)": 0.49, "D(fake)": 0.42}
    for epoch in range(1, 6):
        quality = ({"KS max": 0.21, "TV max": 0.03, "corr gap": 0.41, "TSTR": 0.93}
                   if epoch == 5 else dict.fromkeys(QUALITY, math.nan))
        view(EpochEnded(epoch, 20, 0.65, math.nan, math.nan, 0.0005, 0.01, False, 0, None,
                        {**figures, **quality}))
    lines = [line.plain for line in view.screen_lines(80, 20)]
    assert lines[0].endswith("KS max   TV max  corr gap     TSTR")
    assert not any("best" in line or "*" in line for line in lines)
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert rows[0][-4:] == ["-"] * 4  # not measured: a dash
    assert rows[4][-4:] == ["0.2100", "0.0300", "0.4100", "0.9300"]
