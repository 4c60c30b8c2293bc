"""``bp validate`` and ``bp schema``: check a config against its data without training,
and describe the config format for editors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bpcli.config import Config, load_config
from bpcli.display import Display, layer_row
from bpcli.experiment import prepare


def validate(config_path: Path, display: Display, overrides: Sequence[str] = ()) -> None:
    """Load the config and its data, build the network, and show its layers."""
    loaded = load_config(config_path, overrides)
    experiment = prepare(loaded)
    network = experiment.build_network(np.random.default_rng(0))
    experiment.build_schedule(experiment.build_optimizer(network))  # their own checks
    for note in experiment.notes:
        display.info(note)
    display.layer_table(network.input_shape, [layer_row(e) for e in network.summary()])
    config = experiment.config
    display.info(f"{config_path}: valid; {network.n_params} parameters, loss {config.loss}, "
                 f"optimizer {config.optimizer.name}")


def schema() -> str:
    """The JSON Schema of the config file format."""
    document = Config.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "bp config"
    return json.dumps(document, indent=2) + "\n"
