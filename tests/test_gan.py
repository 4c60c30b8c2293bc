"""GANs from a config: the gan section's checks (located, did-you-mean), training through
the one loop (live figures, checkpoints with both networks), bit-exact resume, bp
generate's rows (columns, units, categories) and pictures, bp validate, and the refusals
of model files that are not what a command wants."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from bpcli import session as train_command
from bpcli.cli import app
from bpcli.data import InputColumn, Preprocessor
from bpcli.ganquality import fidelity
from bpcli.ganrows import GanLayout
from bpcli.modelfile import GAN_FORMAT_VERSION, load_gan
from bpcli.nn import GroupSoftmax
from tests.conftest import DATASETS
from tests.test_runs import StopAfter, assert_same_arrays, params, run_dirs

Writer = Callable[..., Path]


def iris_gan(**gan: Any) -> dict[str, Any]:
    """A small tabular GAN on iris: four numbers and the species."""
    section: dict[str, Any] = {
        "noise_size": 4,
        "generator": {"layers": [{"type": "dense", "units": 16}, {"type": "dense"}]},
        "discriminator": {"layers": [{"type": "dense", "units": 16,
                                      "activation": {"name": "leaky_relu", "slope": 0.2}},
                                     {"type": "dropout", "rate": 0.2},
                                     {"type": "dense", "units": 1}]},
        **gan,
    }
    return {"data": {"path": str(DATASETS / "iris.csv"), "target": "species",
                     "validation_fraction": 0},
            "gan": section,
            "training": {"epochs": 3, "batch_size": 32, "seed": 1}}


def digits_gan() -> dict[str, Any]:
    """A tiny image GAN on the 8x8 digits, growing 4x4 maps with upsample2d."""
    return {"data": {"path": str(DATASETS / "digits.csv"), "target": "digit",
                     "input_shape": [1, 8, 8], "pixel_scale": 16, "validation_fraction": 0},
            "gan": {"noise_size": 8, "noise": "uniform",
                    "generator": {"layers": [
                        {"type": "dense", "units": 32}, {"type": "reshape", "shape": [2, 4, 4]},
                        {"type": "upsample2d", "size": 2},
                        {"type": "conv2d", "filters": 1, "kernel_size": 3, "padding": "same",
                         "activation": "sigmoid"}]},
                    "discriminator": {"layers": [{"type": "flatten"},
                                                 {"type": "dense", "units": 16},
                                                 {"type": "dense"}]}},
            "training": {"epochs": 1, "batch_size": 128, "seed": 0}}


def train(runner: CliRunner, path: Path) -> Path:
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 0, result.output
    return Path(result.output.split("run directory: ")[1].split()[0])


# -- the config --------------------------------------------------------------------------

def problems(runner: CliRunner, path: Path) -> str:
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


def test_model_and_gan_together_are_refused_at_the_gan_section(
        runner: CliRunner, write_config: Writer) -> None:
    config = iris_gan()
    config["model"] = {"layers": [{"type": "dense"}]}
    out = problems(runner, write_config(config))
    assert "config.yaml:" in out and "gan: give model or gan, not both" in out


def test_a_config_with_neither_model_nor_gan_says_it_needs_one(
        runner: CliRunner, write_config: Writer) -> None:
    config = iris_gan()
    del config["gan"]
    assert "needs a model section" in problems(runner, write_config(config))


def test_gan_keys_are_checked_with_did_you_mean(runner: CliRunner,
                                                write_config: Writer) -> None:
    config = iris_gan()
    config["gan"]["noise_sise"] = config["gan"].pop("noise_size")
    out = problems(runner, write_config(config))
    assert "gan.noise_sise" in out and "noise_size" in out


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["gan"]["discriminator"]["layers"][-1].update(units=2),
     "gan.discriminator.layers[2].units: the discriminator ends in one unit"),
    (lambda c: c["gan"]["discriminator"]["layers"][-1].update(activation="softmax"),
     "gan.discriminator.layers[2].activation: the discriminator's output is one sigmoid"),
    (lambda c: c["gan"]["generator"]["layers"][-1].update(units=5),
     "gan.generator.layers[1]: the generator makes rows of shape 5; the data's are 7"),
    (lambda c: c.update(optimizer={"name": "sgd"}), "optimizer: not used with gan"),
    (lambda c: c["training"].update(early_stopping={"patience": 2}),
     "training.early_stopping: a GAN's losses do not measure"),
    (lambda c: c["gan"].update(label_smoothing=0.7), "gan.label_smoothing"),
    (lambda c: c["training"].update(init_from="model.npz"),
     "training.init_from: a GAN starts from its own initial weights"),
    (lambda c: c["data"].update(cv={"folds": 3, "fold": 1}, validation_fraction=None),
     "data.cv: cross-validation scores a model on its validation rows, fold by fold; a GAN "
     "trains once"),
    (lambda c: c["gan"]["generator"]["layers"].insert(
        1, {"type": "conv2d", "filters": 2, "kernel_size": 3}),
     "gan.generator.layers[1]: conv2d expects"),
])
def test_gan_config_problems_point_at_the_field(
        runner: CliRunner, write_config: Writer, change: Callable[[dict[str, Any]], Any],
        message: str) -> None:
    config = iris_gan()
    change(config)
    out = problems(runner, write_config(config))
    assert message in out and "config.yaml:" in out, out


def test_an_image_generator_ending_flat_is_told_to_reshape(
        runner: CliRunner, write_config: Writer) -> None:
    config = digits_gan()
    config["gan"]["generator"]["layers"] = [{"type": "dense", "units": 64}]
    out = problems(runner, write_config(config))
    assert "the generator makes rows of shape 64; the data's are 1x8x8" in out
    assert "{type: reshape, shape: [1, 8, 8]}" in out


def test_gan_optimizers_default_to_adam_with_beta1_half(runner: CliRunner, in_tmp: Path,
                                                        write_config: Writer) -> None:
    config = iris_gan()
    config["gan"]["discriminator"]["optimizer"] = {"name": "adam", "learning_rate": 0.001}
    run = train(runner, write_config(config))
    resolved = (run / "config.yaml").read_text()
    saved = json.loads(str(np.load(run / "model.npz")["meta"]))["config"]["gan"]
    assert saved["generator"]["optimizer"] == {"name": "adam", "learning_rate": 0.0002,
                                               "beta1": 0.5, "beta2": 0.999, "epsilon": 1e-8}
    assert saved["discriminator"]["optimizer"]["beta1"] == 0.5
    assert saved["discriminator"]["optimizer"]["learning_rate"] == 0.001
    assert "gan:" in resolved and "model:" not in resolved


def test_commands_for_models_refuse_a_gan_config_in_one_line(
        runner: CliRunner, write_config: Writer) -> None:
    result = runner.invoke(app, ["explain", str(write_config(iris_gan()))])
    assert result.exit_code == 2, result.output
    assert "gan: this command works on a model config, not a GAN's" in result.output


def test_validate_shows_a_gan_config_valid(runner: CliRunner, write_config: Writer) -> None:
    result = runner.invoke(app, ["validate", str(write_config(iris_gan()))])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "generator" in result.output
    assert "discriminator" in result.output


# -- training, checkpoints, resume -----------------------------------------------------

def test_training_shows_the_gan_figures_and_saves_both_networks(
        runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    result = runner.invoke(app, ["train", str(write_config(iris_gan()))])
    assert result.exit_code == 0, result.output
    for figure in ("D_loss", "G_loss", "D(real)", "D(fake)"):
        assert figure in result.output
    # the rows a GAN makes, not a classifier's task and inputs
    assert "the generator makes rows of 5 columns (7 values)" in result.output
    assert "task:" not in result.output and "4 inputs" not in result.output
    assert "3 epochs of batch 32" in result.output
    (run,) = run_dirs(in_tmp)
    saved = load_gan(run / "model.npz")
    meta = saved.meta
    assert meta["format_version"] == GAN_FORMAT_VERSION
    assert saved.gan.generator.output_shape == (7,)  # 4 numbers and 3 species
    assert saved.gan.discriminator.input_shape == (7,)
    with np.load(run / "checkpoints" / "last.npz") as archive:
        names = set(archive.files)
    assert any(n.startswith("discriminator/param/") for n in names)
    assert any(n.startswith("opt/generator/") for n in names)
    assert any(n.startswith("opt/discriminator/") for n in names)
    # the generator learned: its weights moved from their initial values
    assert saved.gan.generator.layers[-2].describe()["type"] == "dense"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"


@pytest.mark.parametrize("stop_after", [3, 7])  # 120 training rows: 4 batches of 32
def test_gan_interrupted_then_resumed_is_bit_identical(
        runner: CliRunner, in_tmp: Path, write_config: Writer,
        monkeypatch: pytest.MonkeyPatch, stop_after: int) -> None:
    # quality measured at every epoch: stopped after 7 batches, the first process has
    # measured epoch 1, the resumed one measures epochs 2 and 3 as the straight run did
    config = iris_gan(d_steps=2, label_smoothing=0.1, quality_every=1)
    config["data"]["validation_fraction"] = 0.2
    path = write_config(config)
    first = runner.invoke(app, ["train", str(path)])
    assert first.exit_code == 0, first.output
    straight = Path(first.output.split("run directory: ")[1].split()[0])
    monkeypatch.setattr(train_command, "StopOnSignal", lambda: StopAfter(stop_after))
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 130, result.output
    (stopped,) = [d for d in run_dirs(in_tmp) if d.name != straight.name]
    monkeypatch.setattr(train_command, "StopOnSignal", lambda: StopAfter(10**9))
    result = runner.invoke(app, ["train", "--resume", str(stopped)])
    assert result.exit_code == 0, result.output
    # the epoch the stop cut in two shows the same figures (D loss, G loss, ...) as the
    # straight run's: the sums of its first part were carried in the checkpoint
    assert epoch_lines(result.output) == epoch_lines(first.output)[-len(
        epoch_lines(result.output)):]

    def arrays(path: Path) -> dict[str, np.ndarray]:
        with np.load(path) as archive:
            found = {k: archive[k] for k in archive.files
                     if k.startswith("discriminator/param/")}
        return {**params(path), **found}

    for name in ("model.npz", "checkpoints/last.npz"):
        a, b = arrays(in_tmp / straight / name), arrays(stopped / name)
        assert any(k.startswith("discriminator/") for k in a)
        assert_same_arrays(a, b)
    tables = [list(csv.reader(io.StringIO((run / "metrics.csv").read_text())))
              for run in (in_tmp / straight, stopped)]
    assert tables[0][0][-8:] == ["D loss", "G loss", "D(real)", "D(fake)",
                                 "KS max", "TV max", "corr gap", "TSTR"]
    assert all(cell for row in tables[0][1:] for cell in row[-4:])
    # every column but the seconds
    assert [r[:6] + r[7:] for r in tables[0]] == [r[:6] + r[7:] for r in tables[1]]


def epoch_lines(output: str) -> list[str]:
    """The epochs' plain lines without their timings."""
    return [re.sub(r"\s[0-9.]+s\b", "", line) for line in output.splitlines()
            if line.startswith("epoch ")]


# -- bp generate -------------------------------------------------------------------------

def test_generate_writes_rows_in_the_data_columns_and_units(
        runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    run = train(runner, write_config(iris_gan()))
    result = runner.invoke(app, ["generate", str(run / "model.npz"), "-n", "25",
                                 "--seed", "3"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["sepal_length", "sepal_width", "petal_length", "petal_width",
                       "species"]
    assert len(rows) == 26
    assert {r[4] for r in rows[1:]} <= {"setosa", "versicolor", "virginica"}
    lengths = np.array([float(r[0]) for r in rows[1:]])
    # original units (centimetres around 5.8), not standardised values around 0
    assert 2 < lengths.mean() < 10
    again = runner.invoke(app, ["generate", str(run / "model.npz"), "-n", "25",
                                "--seed", "3"])
    assert again.stdout == result.stdout  # the seed decides the rows
    other = runner.invoke(app, ["generate", str(run / "model.npz"), "-n", "25",
                                "--seed", "4"])
    assert other.stdout != result.stdout


def test_generate_draws_an_image_grid_and_pixel_csv(
        runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    pytest.importorskip("matplotlib")
    run = train(runner, write_config(digits_gan()))
    assert (run / "samples.png").read_bytes()[:4] == b"\x89PNG"  # the run's own grid
    assert (run / "samples" / "epoch-0001.png").read_bytes()[:4] == b"\x89PNG"  # per epochs
    model = run / "model.npz"
    result = runner.invoke(app, ["generate", str(model), "-n", "9", "--out", "grid.png"])
    assert result.exit_code == 0, result.output
    assert (in_tmp / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = runner.invoke(app, ["generate", str(model), "-n", "4", "--out", "pixels.csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO((in_tmp / "pixels.csv").read_text())))
    assert len(rows) == 5 and len(rows[0]) == 64 and rows[0][0] == "px_0_0"
    pixels = np.array(rows[1:], dtype=float)
    assert pixels.min() >= 0 and pixels.max() <= 16  # pixel units: sigmoid times 16


def test_generate_refuses_what_it_cannot_do(runner: CliRunner, in_tmp: Path,
                                            write_config: Writer) -> None:
    run = train(runner, write_config(iris_gan()))
    result = runner.invoke(app, ["generate", str(run / "model.npz"), "--out", "x.png"])
    assert result.exit_code == 2 and "a PNG grid draws images" in result.output
    result = runner.invoke(app, ["generate", str(run / "model.npz"), "-n", "0"])
    assert result.exit_code == 2 and "draw between 1 and" in result.output
    result = runner.invoke(app, ["predict", str(run / "model.npz"),
                                 str(DATASETS / "iris.csv")])
    assert result.exit_code == 2 and "bp generate" in result.output
    assert not (in_tmp / "x.png").exists()


def test_generate_refuses_a_model_that_is_no_gan(runner: CliRunner, in_tmp: Path,
                                                 write_config: Writer) -> None:
    config = iris_gan()
    del config["gan"]
    config["model"] = {"layers": [{"type": "dense"}]}
    config["data"]["validation_fraction"] = 0.2
    run = train(runner, write_config(config))
    result = runner.invoke(app, ["generate", str(run / "model.npz")])
    assert result.exit_code == 2 and "not a GAN's model" in result.output


@pytest.mark.parametrize("path", sorted((DATASETS.parent / "configs").glob("*-gan.yaml")),
                         ids=lambda p: p.stem)
def test_every_example_gan_config_validates_trains_and_generates(
        runner: CliRunner, in_tmp: Path, path: Path) -> None:
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "valid; a GAN of" in result.output, result.output
    result = runner.invoke(app, ["train", str(path), "--set", "training.epochs=2",
                                 "--set", "output.runs_dir=runs"])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(in_tmp)
    result = runner.invoke(app, ["generate", str(run / "model.npz"), "-n", "5"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert len(rows) == 6 and all(np.isfinite(float(v)) for v in rows[1][:4])


def test_gradcheck_checks_both_networks_and_the_generator_through_the_discriminator(
        runner: CliRunner, write_config: Writer) -> None:
    result = runner.invoke(app, ["gradcheck", str(write_config(iris_gan()))])
    assert result.exit_code == 0, result.output
    assert "discriminator input" in result.output and "generator 1 dense" in result.output
    assert "all 9 tensors pass" in result.output  # D: 2 dense and its input; G: 2 dense


def test_gradcheck_catches_a_wrong_backward_in_the_generator(
        runner: CliRunner, write_config: Writer, monkeypatch: pytest.MonkeyPatch) -> None:
    # the softmax over the species block is the generator's own: its gradient reaches
    # the generator only through the discriminator's input gradient
    monkeypatch.setattr(GroupSoftmax, "backward", lambda self, dY: dY)
    result = runner.invoke(app, ["gradcheck", str(write_config(iris_gan()))])
    assert result.exit_code == 1, result.output
    assert "generator 1 dense" in result.output and "FAILED" in result.output


def test_a_tabular_run_ends_with_each_columns_fidelity(
        runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    run = train(runner, write_config(iris_gan()))
    found = json.loads((run / "fidelity.json").read_text())
    assert found["rows"] == 150
    columns = found["columns"]
    assert set(columns) == {"sepal_length", "sepal_width", "petal_length", "petal_width",
                            "species"}
    assert columns["species"]["measure"] == "total variation"
    assert all(0 <= c["distance"] <= 1 for c in columns.values())
    # three epochs of training are far from the data, but not maximally so on every column
    assert any(c["distance"] > 0.05 for c in columns.values())


def test_fidelity_of_categories_is_the_total_variation_of_their_shares() -> None:
    pre = Preprocessor([InputColumn("size", "numeric"),
                        InputColumn("colour", "categorical", categories=["a", "b"])],
                       ["y"], "regression", np.zeros(3), np.ones(3),
                       target_mean=np.zeros(1), target_scale=np.ones(1))
    layout = GanLayout.of(pre, None)
    assert layout.groups == ((1, 3),) and layout.width == 4
    real = np.array([[0.0, 1, 0, 0.5]] * 4)  # every row colour a
    half = np.array([[0.0, 0.5, 0.5, 0.5]] * 400)  # drawn: about half a, half b
    rng = np.random.default_rng(0)
    found = fidelity(layout, pre, real, half, rng)
    assert found["colour"][0] == "total variation"
    assert found["colour"][1] == pytest.approx(0.5, abs=0.06)
    assert fidelity(layout, pre, real, real, rng)["colour"][1] == 0.0
    assert fidelity(layout, pre, real, real, rng)["size"] == ("KS", 0.0)


def test_a_sweep_over_a_gan_is_refused_before_any_trial(
        runner: CliRunner, in_tmp: Path, write_config: Writer) -> None:
    write_config(iris_gan(), "base.yaml")
    sweep = write_config({"base": "base.yaml", "metric": "val_loss", "search": "grid",
                          "parameters": {"training.batch_size": {"choice": [16, 32]}}},
                         "sweep.yaml")
    result = runner.invoke(app, ["sweep", str(sweep)])
    assert result.exit_code == 2, result.output
    assert "a GAN's config" in result.output and not (in_tmp / "runs").exists()
