"""One numbering of layers everywhere: the config's ``model.layers[i]``. validate's and
inspect's tables, inspect --json, --health's update/weight columns, gradcheck's tensors and
errors all say ``3`` for config layer 3; an activation is part of its dense layer."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from bpcli.cli import app
from tests.conftest import iris_config

LAYERS = [{"type": "dense", "units": 8, "activation": "tanh"},
          {"type": "batch_norm"},
          {"type": "dropout", "rate": 0.1},
          {"type": "dense", "units": 6, "activation": "relu"},
          {"type": "dense", "activation": "softmax"}]
WITH_WEIGHTS = {0, 3, 4}


def _table_rows(output: str) -> list[tuple[int, str]]:
    """(number, kind) of each row of a layer table in plain output."""
    return [(int(m[1]), m[2]) for m in re.finditer(r"^\S\s+(\d+)\s+\S\s+(\w+)", output, re.M)]


def test_every_command_numbers_layers_as_the_config_does(
    runner: CliRunner, in_tmp: Path, write_config: Callable[..., Path],
) -> None:
    config = write_config(iris_config(model={"layers": LAYERS}))
    expected = [(i, layer["type"]) for i, layer in enumerate(LAYERS)]

    validated = runner.invoke(app, ["validate", str(config)])
    assert validated.exit_code == 0, validated.output
    assert _table_rows(validated.output) == expected
    assert "activation=tanh" in validated.output

    trained = runner.invoke(app, ["train", str(config), "--health"])
    assert trained.exit_code == 0, trained.output
    ratios = re.search(r"update/weight ((?:\d+:\S+ ?)+)", trained.output)
    assert ratios, trained.output
    assert {int(part.split(":")[0]) for part in ratios[1].split()} == WITH_WEIGHTS

    (model,) = Path("runs").glob("*/model.npz")
    shown = runner.invoke(app, ["inspect", str(model)])
    assert _table_rows(shown.output) == expected
    assert "tanh at layer 0, relu at layer 3, softmax at layer 4" in shown.output
    report = json.loads(runner.invoke(app, ["inspect", str(model), "--json"]).output)
    assert [(e["index"], e["type"]) for e in report["layers"]] == expected

    checked = runner.invoke(app, ["gradcheck", str(config)])
    assert checked.exit_code == 0, checked.output
    labels = {int(m[1]) for m in re.finditer(r"^\S\s+(\d+) \w+\s+\S\s+(W|b|gamma)\s",
                                             checked.output, re.M)}
    assert labels == WITH_WEIGHTS | {1}  # batch_norm's gamma and beta
