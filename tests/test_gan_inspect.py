"""bp inspect on a GAN's model and checkpoint files (format 5): the noise, both networks'
layers and parameter counts, what it generates, as text and as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.modelfile import load_gan
from tests.test_gan import digits_gan, iris_gan, train

Writer = Callable[..., Path]


def inspect_json(runner: CliRunner, path: Path) -> dict:
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_inspect_shows_a_tabular_gan_model(runner: CliRunner, in_tmp: Path,
                                           write_config: Writer) -> None:
    run = train(runner, write_config(iris_gan(noise="uniform", d_steps=2)))
    model = run / "model.npz"
    gan = load_gan(model).gan
    report = inspect_json(runner, model)
    assert report["model"] == "gan" and report["kind"] == "model"
    assert report["format_version"] == 5
    assert report["noise"] == {"size": 4, "distribution": "uniform"}
    generator, discriminator = report["generator"], report["discriminator"]
    assert generator["input_shape"] == [4] and generator["output_shape"] == [7]
    assert discriminator["input_shape"] == [7] and discriminator["output_shape"] == [1]
    assert generator["parameters"] == gan.generator.n_params == (4 + 1) * 16 + (16 + 1) * 7
    assert discriminator["parameters"] == gan.discriminator.n_params == (7 + 1) * 16 + 17
    assert report["parameters"] == generator["parameters"] + discriminator["parameters"]
    assert [layer["type"] for layer in generator["layers"]] == ["dense", "dense",
                                                                 "group_softmax"]
    assert [layer["type"] for layer in discriminator["layers"]] == ["dense", "dropout",
                                                                     "dense"]
    assert sum(layer["parameters"] for layer in discriminator["layers"]) == 145
    columns = report["generates"]["columns"]
    assert report["generates"]["kind"] == "rows"
    assert [c["name"] for c in columns] == ["sepal_length", "sepal_width", "petal_length",
                                            "petal_width", "species"]
    assert columns[-1] == {"name": "species", "kind": "categorical",
                           "categories": ["setosa", "versicolor", "virginica"]}
    assert report["settings"] == {"d_steps": 2, "label_smoothing": 0.0}
    assert report["training"]["epoch"] == 3
    assert set(report["training"]["quality"]) == {"KS max", "TV max", "corr gap", "TSTR"}

    result = runner.invoke(app, ["inspect", str(model)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "a GAN's model" in out and f"bp generate {model}" in out
    assert "noise       4 values, uniform on [-1, 1]" in out
    assert "generator (input 4)" in out and "discriminator (input 7)" in out
    assert (f"{report['parameters']:,} (generator {generator['parameters']:,}, "
            f"discriminator {discriminator['parameters']:,})") in out
    assert "species (categorical: setosa, versicolor, virginica)" in out
    assert "group_softmax" in out and "dropout (rate=0.2)" in out
    assert "2 discriminator steps per generator step" in out
    assert "3, the last: these are its networks" in out and "TSTR" in out


def test_inspect_shows_an_image_gan_checkpoint(runner: CliRunner, in_tmp: Path,
                                               write_config: Writer) -> None:
    run = train(runner, write_config(digits_gan()))
    checkpoint = run / "checkpoints" / "last.npz"
    report = inspect_json(runner, checkpoint)
    assert report["kind"] == "checkpoint" and report["model"] == "gan"
    assert report["generates"]["kind"] == "images"
    assert report["generates"]["image_shape"] == [1, 8, 8]
    assert len(report["generates"]["columns"]) == 64
    assert report["generator"]["output_shape"] == [1, 8, 8]
    assert report["noise"] == {"size": 8, "distribution": "uniform"}
    assert report["training"]["epoch"] == 1 and report["training"]["batch"] == 0
    with np.load(checkpoint) as archive:
        stored = sum(archive[k].size for k in archive.files if "param/" in k
                     and not k.startswith("opt/"))
    assert report["parameters"] == stored
    result = runner.invoke(app, ["inspect", str(checkpoint)])
    assert result.exit_code == 0, result.output
    assert "a GAN's checkpoint" in result.output
    assert "images 1x8x8" in result.output and "upsample2d" in result.output
    assert "1 completed" in result.output
