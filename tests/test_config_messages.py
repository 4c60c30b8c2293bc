"""One sentence per config mistake, at the place it came from: the file's line and column,
the exact ``--set`` that set the value, or the ``--init-from`` flag."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.config import Override, load_config
from bpcli.errors import ConfigError
from tests.conftest import CONFIGS, DATASETS, iris_config

DIGITS = (CONFIGS / "digits-cnn.yaml").read_text()
Writer = Callable[..., Path]


def _error_lines(args: list[str]) -> list[str]:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.stderr.splitlines()


def _digits(write_config: Writer, old: str, new: str) -> Path:
    assert old in DIGITS
    text = DIGITS.replace(old, new).replace("../datasets/", f"{DATASETS}/")
    return write_config(text, "digits.yaml")


@pytest.mark.parametrize(("setting", "expected"), [
    ("model.layers.0.stride=0", "model.layers[0].stride: must be a positive integer or "
     "[height, width], each at most 1024 (got 0)"),
    ("model.layers.0.kernel_size=[3]", "model.layers[0].kernel_size: must be a positive "
     "integer or [height, width], each at most 1024 (got [3])"),
    ("model.layers.2.pool_size=abc", "model.layers[2].pool_size: must be a positive integer "
     "or [height, width], each at most 1024 (got 'abc')"),
    ("model.layers.0.padding=-1", "model.layers[0].padding: must be valid, same, a whole "
     "number >= 0 or [height, width], each at most 1024 (got -1)"),
    ("data.input_shape=[8,8]", "data.input_shape: must be [channels, height, width] of "
     "positive integers, each at most 1,000,000 (got [8, 8])"),
    # a whole layer that cannot work because of the value set: blamed on the --set too
    ("model.layers.2.pool_size=16", "model.layers[2]: max_pool2d: the 16x16 pool window is "
     "larger than its 8x8 input; use a smaller pool window, more padding or a larger input"),
])
def test_a_bad_set_value_is_one_line_at_that_set(write_config: Writer, setting: str,
                                                 expected: str) -> None:
    config = _digits(write_config, "split_seed: 0", "split_seed: 0")
    lines = _error_lines(["validate", str(config), "--set", setting])
    assert lines == [f"bp: --set {setting}: {expected}"]


def test_union_mistakes_in_the_file_are_one_line_each_at_their_place(
    write_config: Writer,
) -> None:
    config = _digits(write_config, "kernel_size: 3, padding: same}\n    - {type: conv2d, "
                     "filters: 32", "kernel_size: 3, padding: -1}\n    - {type: conv2d, "
                     "filters: 32")
    config.write_text(config.read_text().replace("input_shape: [1, 8, 8]",
                                                 "input_shape: [8, 8]"))
    lines = _error_lines(["validate", str(config)])
    assert lines == [
        f"bp: {config}:7:3: data.input_shape: must be [channels, height, width] of positive "
        "integers, each at most 1,000,000 (got [8, 8])",
        f"bp: {config}:14:51: model.layers[0].padding: must be valid, same, a whole number "
        ">= 0 or [height, width], each at most 1024 (got -1)",
        f"bp: 2 problems in {config}; fix them and run again",
    ]


def test_a_layer_problem_from_the_file_stays_at_its_line(write_config: Writer) -> None:
    config = _digits(write_config, "{type: max_pool2d, pool_size: 2}",
                     "{type: max_pool2d, pool_size: 16}")
    # a --set elsewhere in the same layer list is not to blame
    assert _error_lines(["validate", str(config), "--set", "model.layers.0.filters=8"]) == [
        f"bp: {config}:16:7: model.layers[2]: max_pool2d: the 16x16 pool window is larger "
        "than its 8x8 input; use a smaller pool window, more padding or a larger input"]


def test_an_override_from_another_flag_is_blamed_on_that_flag(write_config: Writer) -> None:
    path = write_config(iris_config())
    with pytest.raises(ConfigError) as info:
        load_config(path, [Override("training.init_from=[1]", "--init-from x.npz")])
    assert info.value.problems == ["--init-from x.npz: training.init_from: Input should be a "
                                   "valid string (got [1])"]
    loaded = load_config(path, [Override("training.init_from=m.npz", "--init-from m.npz")])
    assert loaded.problem(("training", "init_from"), "no").startswith("--init-from m.npz: ")


def test_init_from_a_model_of_another_architecture_names_the_flag(
    write_config: Writer, in_tmp: Path,
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["train", str(write_config(iris_config()))]).exit_code == 0
    (model,) = Path("runs").glob("*/model.npz")
    wider = iris_config(model={"layers": [{"type": "dense", "units": 9},
                                          {"type": "dense", "activation": "softmax"}]})
    lines = _error_lines(["train", str(write_config(wider, "wider.yaml")),
                          "--init-from", str(model)])
    assert len(lines) == 1
    assert lines[0].startswith(f"bp: --init-from {model}: training.init_from: ")
    assert "training.init_from: layer 0 differs: " in lines[0]
    assert "--set" not in lines[0]
    narrower = iris_config()
    narrower["data"]["features"] = ["sepal_length", "sepal_width"]
    lines = _error_lines(["train", str(write_config(narrower, "narrower.yaml")),
                          "--init-from", str(model)])
    assert lines[0].endswith("takes inputs of shape 4; this config's are 2")


def test_a_misspelt_key_is_one_problem_not_also_a_missing_one(write_config: Writer) -> None:
    config = iris_config()
    config["data"]["targt"] = config["data"].pop("target")
    with pytest.raises(ConfigError) as info:
        load_config(write_config(config))
    (problem,) = info.value.problems
    assert "data.targt: unknown key 'targt' (did you mean 'target'?)" in problem
    del config["data"]["targt"]  # with no typo to explain it, a missing key is reported
    with pytest.raises(ConfigError) as info:
        load_config(write_config(config))
    assert info.value.problems[0].endswith("data.target: required key is missing")


def test_unknown_key_in_an_optional_choice_lists_its_keys(write_config: Writer) -> None:
    path = write_config(iris_config())
    with pytest.raises(ConfigError) as info:
        load_config(path, ["model.layers.0.activation={nam: elu, alfa: 2}"])
    assert info.value.problems == [
        "--set model.layers.0.activation={nam: elu, alfa: 2}: model.layers[0].activation.alfa: "
        "unknown key 'alfa' (did you mean 'alpha'?); allowed here: name, slope, alpha, "
        "approximate",
        "--set model.layers.0.activation={nam: elu, alfa: 2}: model.layers[0].activation.nam: "
        "unknown key 'nam' (did you mean 'name'?); allowed here: name, slope, alpha, approximate",
    ]
