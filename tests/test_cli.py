"""bpcli/cli.py, the command line as a whole: version and help (switches read as switches,
every option says what it does), a mistake on the command line as one ``bp: ...`` line with
the help command to run, and one numbering of layers across every command. (Each command's
own tests are in the file named after it: test_train.py, test_predict.py, ...)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bpcli.cli import app
from tests.conftest import REPO, iris_config

COMMANDS = ["train", "predict", "gradcheck", "evaluate", "explain", "validate", "schema",
            "plot", "inspect", "runs", "runs diff"]


def _options(command: str) -> list[typer.core.TyperOption]:
    group = typer.main.get_command(app)
    target = group
    for name in command.split():
        target = target.commands[name]  # type: ignore[attr-defined]
    ctx = typer.Context(target, info_name=command)
    return [p for p in target.get_params(ctx) if isinstance(p, typer.core.TyperOption)]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_switches_without_a_type_and_every_option_has_help(command: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "bpcli", *command.split(), "--help"],
                          capture_output=True, text=True, check=False, cwd=REPO,
                          env={"COLUMNS": "80", "PATH": "", "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert "<bool>" not in proc.stdout
    for option in _options(command) if command else []:
        assert option.help, f"{command} {option.opts[0]} has no help"
        assert "\n" not in option.help
        if option.opts[0] in proc.stdout:  # the help names each option, switches bare
            line = next(ln for ln in proc.stdout.splitlines() if option.opts[0] in ln)
            if option.is_flag:
                assert re.search(re.escape(option.opts[0]) + r"\s+(-\w\s+)?\s{2,}\w", line), line


def test_switch_flags_listed_are_switches() -> None:
    flags = {o.opts[0] for o in _options("train") if o.is_flag}
    assert {"--force", "--health"} <= flags


def test_options_with_a_value_show_their_default() -> None:
    result = CliRunner().invoke(app, ["gradcheck", "--help"], env={"COLUMNS": "200"})
    assert "[default: 8]" in result.output and "[default: 500]" in result.output


def _usage_error(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bp: "), lines[0]
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize(("args", "expected"), [
    (["trian"], "bp: no such command 'trian'; did you mean 'train'? Run 'bp --help'."),
    (["train", "--forse", "c.yaml"], "bp: no such option '--forse' for 'bp train'; did you "
     "mean '--force'? Run 'bp train --help'."),
    (["train", "--nope", "c.yaml"], "bp: no such option '--nope' for 'bp train'. Run "
     "'bp train --help'."),
    (["evaluate"], "bp: missing argument 'MODEL' of 'bp evaluate'. Run 'bp evaluate --help'."),
    (["gradcheck", "c.yaml", "--rows", "abc"], "bp: invalid value for '--rows': input should "
     "be a valid integer, unable to parse string as an integer. Run 'bp gradcheck --help'."),
    (["evaluate", "m.npz", "d.csv", "--json", "true"], "bp: unexpected argument 'true' to "
     "'bp evaluate'; --json takes no value: give the option alone to switch it on. Run "
     "'bp evaluate --help'."),
    (["runs", "diff", "a"], "bp: missing argument 'RUN_B' of 'bp runs diff'. Run "
     "'bp runs diff --help'."),
    (["train", "c.yaml", "--threads"], "bp: option '--threads' requires an argument. Run "
     "'bp train --help'."),
])
def test_usage_mistakes_are_one_line(args: list[str], expected: str) -> None:
    assert _usage_error(args) == expected


def test_usage_mistake_through_the_real_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "bpcli", "trian"], capture_output=True,
                          text=True, check=False, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr == "bp: no such command 'trian'; did you mean 'train'? Run 'bp --help'.\n"


def test_version_and_help(runner: CliRunner) -> None:
    assert runner.invoke(app, ["--version"]).output.startswith("bp ")
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "predict", "gradcheck"):
        assert command in result.output


# -- one numbering of layers everywhere: the config's model.layers[i]. validate's and
# inspect's tables, inspect --json, --health's update/weight columns, gradcheck's tensors and
# errors all say 3 for config layer 3; an activation is part of its dense layer.
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
