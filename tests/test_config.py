"""Config loading: every problem reported at once, located, with what is allowed; settings
that clash or do not fit the data (a loss for another task, a class weight for no class); and
the JSON schema ``bp schema`` prints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.config import Config, dotted, load_config
from bpcli.errors import ConfigError
from bpcli.nn import ACTIVATIONS, LOSSES
from tests.conftest import CONFIGS, iris_config

Writer = Callable[..., Path]

BAD = """\
data:
  path: ../datasets/iris.csv
  targt: species
model:
  layers:
    - type: dense
      units: 0
      activation: relux
    - type: dropot
    - {type: dropout, rate: 2}
optimizer:
  name: adam
  learning_rate: -1
training:
  epoch: 10
output:
  name: ../escape
"""


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


@pytest.mark.parametrize("path", sorted(set(CONFIGS.glob("*.yaml"))
                                         - set(CONFIGS.glob("*-sweep.yaml"))),
                         ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    assert isinstance(load_config(path).config, Config)


def test_every_problem_is_reported_at_once_with_its_line(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(BAD)
    found = problems(path)
    expected = [  # the typo targt is one problem, not also a missing target
        (3, "data.targt", "did you mean 'target'?"),
        (7, "model.layers[0].units", "greater than or equal to 1"),
        (8, "model.layers[0].activation.name", "did you mean 'relu'?"),
        (9, "model.layers[1].type", "did you mean 'dropout'?"),
        (10, "model.layers[2].rate", "less than 1"),
        (13, "optimizer.learning_rate", "greater than 0"),
        (15, "training.epoch", "did you mean 'epochs'?"),
        (17, "output.name", "letters, digits"),
    ]
    assert len(found) == len(expected), found
    for problem, (line, field, text) in zip(found, expected, strict=True):
        assert problem.startswith(f"{path}:{line}:"), problem
        assert f": {field}: " in problem
        assert text in problem


def test_unknown_choice_lists_what_is_allowed(write_config: Callable[..., Path]) -> None:
    config = iris_config(loss="cross_entropyy")
    (problem,) = problems(write_config(config))
    assert "loss.name: unknown loss 'cross_entropyy' (did you mean 'cross_entropy'?)" in problem
    for name in LOSSES:
        assert name in problem


def test_allowed_activations_come_from_the_table(write_config: Callable[..., Path]) -> None:
    config = iris_config()
    config["model"]["layers"][0]["activation"] = "nope"
    (problem,) = problems(write_config(config))
    assert all(name in problem for name in ACTIVATIONS)


def test_unknown_key_in_tagged_optimizer_suggests_its_own_fields(
    write_config: Callable[..., Path],
) -> None:
    config = iris_config(optimizer={"name": "sgd", "momentun": 0.9})
    (problem,) = problems(write_config(config))
    assert "did you mean 'momentum'?" in problem
    assert "nesterov" in problem  # the sgd fields are listed, not adam's
    assert "beta1" not in problem


def test_optimizer_shorthand(write_config: Callable[..., Path]) -> None:
    config = iris_config(optimizer="sgd")
    assert load_config(write_config(config)).config.optimizer.name == "sgd"


def test_yaml_syntax_error_is_located(write_config: Callable[..., Path]) -> None:
    path = write_config("data:\n  path: [unclosed\nmodel: {}\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:3:") and "invalid YAML" in problem


def test_duplicate_keys_are_reported(write_config: Callable[..., Path]) -> None:
    path = write_config("data:\n  path: a.csv\n  target: y\n  target: z\nmodel:\n"
                        "  layers: [{type: dense}]\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:4:3:") and "duplicate key 'target'" in problem


@pytest.mark.parametrize("text", ["", "- just\n- a list\n", "42\n"])
def test_config_must_be_a_mapping(write_config: Callable[..., Path], text: str) -> None:
    (problem,) = problems(write_config(text))
    assert "must be a mapping" in problem


def test_missing_file(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path / "nope.yaml")
    assert "not found" in problem


def test_python_tags_are_refused(write_config: Callable[..., Path]) -> None:
    path = write_config("data: !!python/object/apply:os.system ['echo hacked']\n")
    (problem,) = problems(path)
    assert "invalid YAML" in problem


def test_hidden_dense_layers_need_units(write_config: Callable[..., Path]) -> None:
    config = iris_config(model={"layers": [{"type": "dense"}, {"type": "dense"}]})
    (problem,) = problems(write_config(config))
    assert "model.layers[0]" in problem and "units is required" in problem


def test_last_layer_must_be_dense(write_config: Callable[..., Path]) -> None:
    config = iris_config(model={"layers": [{"type": "dense", "units": 3},
                                           {"type": "dropout", "rate": 0.1}]})
    (problem,) = problems(write_config(config))
    assert "model.layers[1]" in problem and "must be dense" in problem


def test_both_validation_sources_is_an_error(write_config: Callable[..., Path]) -> None:
    config = iris_config()
    config["data"].update(validation_path="v.csv", validation_fraction=0.1)
    (problem,) = problems(write_config(config))
    assert "not both" in problem


def test_dotted() -> None:
    assert dotted(("model", "layers", 2, "units")) == "model.layers[2].units"
    assert dotted(()) == ""


def test_set_overrides_values_and_reports_their_errors(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(iris_config())
    loaded = load_config(path, ["training.epochs=7", "model.layers[0].units=5",
                                "optimizer.learning_rate=0.5", "data.features=[sepal_length]"])
    config = loaded.config
    assert config.training.epochs == 7 and config.optimizer.learning_rate == 0.5
    assert config.model.layers[0].units == 5  # type: ignore[union-attr]
    assert config.data.features == ["sepal_length"]
    found = problems_with(path, ["training.epochs=abc", "model.layers.0.unitz=3"])
    assert found[0].startswith("--set model.layers.0.unitz=3: model.layers[0].unitz: unknown "
                               "key 'unitz' (did you mean 'units'?)")
    assert found[1].startswith("--set training.epochs=abc: training.epochs: Input should be")


@pytest.mark.parametrize("override", ["training", "=3", "model.layers.9.units=3",
                                      "data.path.x=1"])
def test_malformed_set(write_config: Callable[..., Path], override: str) -> None:
    (problem,) = problems_with(write_config(iris_config()), [override])
    assert problem.startswith(f"--set {override}: ")


def problems_with(path: Path, overrides: list[str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value.problems


# -- settings checked when a run is prepared, and the schema ----------------------------
def test_settings_that_clash_are_config_errors(runner: CliRunner, write_config: Writer) -> None:
    config = iris_config(training={"epochs": 3, "schedule": {"name": "cosine",
                                                             "warmup_epochs": 5}})
    result = runner.invoke(app, ["validate", str(write_config(config))])
    assert result.exit_code == 2, result.output
    assert "training.schedule.warmup_epochs: the warm-up (5 epochs) must end" in result.output


def test_wrong_loss_for_the_task(runner: CliRunner, write_config: Writer) -> None:
    result = runner.invoke(app, ["validate", str(write_config(iris_config(loss="huber")))])
    assert result.exit_code == 2 and "'huber' does not fit a 'softmax' output" in result.output


def test_unknown_class_in_class_weights(runner: CliRunner, write_config: Writer) -> None:
    config = iris_config(loss={"name": "cross_entropy", "class_weights": {"setosaa": 2}})
    result = runner.invoke(app, ["validate", str(write_config(config))])
    assert result.exit_code == 2 and "did you mean 'setosa'?" in result.output


def test_schema_describes_the_config(runner: CliRunner) -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"data"}
    assert schema["oneOf"] == [{"required": ["model"]}, {"required": ["gan"]}]
    # key fields against what the README and configs/ say, written out by hand
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "bp config" and schema["type"] == "object"
    assert set(schema["properties"]) == {"data", "model", "gan", "loss", "optimizer",
                                         "regularization", "training", "output"}
    defs = schema["$defs"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref") or next(a["$ref"] for a in node["anyOf"] if "$ref" in a)
        return defs[ref.removeprefix("#/$defs/")]

    training = resolve(schema["properties"]["training"])["properties"]
    assert training["epochs"].items() >= {"type": "integer", "minimum": 1,
                                          "default": 100}.items()
    assert training["batch_size"].items() >= {"type": "integer", "minimum": 1,
                                              "default": 32}.items()
    data = resolve(schema["properties"]["data"])
    assert set(data["required"]) == {"path", "target"}
    assert data["properties"]["path"]["type"] == "string"
    assert data["properties"]["scaling"]["enum"] == ["standard", "minmax", "none"]
    layers = resolve(schema["properties"]["model"])["properties"]["layers"]
    assert layers["type"] == "array" and layers["minItems"] == 1
    assert layers["items"]["discriminator"]["propertyName"] == "type"
    assert set(layers["items"]["discriminator"]["mapping"]) == {
        "dense", "dropout", "batch_norm", "layer_norm", "conv2d", "max_pool2d",
        "avg_pool2d", "global_avg_pool2d", "flatten", "embedding", "conv1d",
        "global_max_pool1d", "global_avg_pool1d", "gru", "lstm", "reshape", "upsample2d"}
    optimizer = schema["properties"]["optimizer"]
    assert set(optimizer["discriminator"]["mapping"]) == {
        "sgd", "adam", "adamw", "nadam", "adagrad", "rmsprop", "rprop"}
    # a typo in any section is an error, not silently ignored
    objects = [d for d in defs.values() if d.get("type") == "object"]
    assert len(objects) > 20 and all(d["additionalProperties"] is False for d in objects)
