"""``bp validate`` and ``bp schema``: check a config against its data without training,
and describe the config format for editors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bpcli.atomic import json_text
from bpcli.config import Config, load_config
from bpcli.display import Display, layer_row
from bpcli.errors import BpError
from bpcli.experiment import prepare
from bpcli.ganbuild import build_gan, prepare_gan
from bpcli.profile import profile


def validate(config_path: Path, display: Display, overrides: Sequence[str] = (),
             as_json: bool = False) -> None:
    """Profile the data's columns, load the config and its data, build the network, and
    show what was found: the profile, then the problems (every one at once) or the
    layers."""
    loaded = load_config(config_path, overrides)
    columns = profile(loaded)
    try:
        experiment = prepare(loaded)
        if experiment.config.gan is not None:
            experiment, layout, _ = prepare_gan(experiment)
            parts = build_gan(loaded, experiment.config, layout, np.random.default_rng(0),
                              rows=len(experiment.X_train))
            experiment.build_schedule(parts.optimizers)
            networks = {"generator": parts.gan.generator,
                        "discriminator": parts.gan.discriminator}
        else:
            network = experiment.build_network(np.random.default_rng(0))
            experiment.build_schedule(experiment.build_optimizer(network))  # their own checks
            networks = {"model": network}
    except BpError as exc:
        if as_json:
            display.info(json_text({"config": str(config_path), "valid": False,
                                    "problems": exc.lines(),
                                    "columns": [c.as_json() for c in columns]}, indent=2))
        else:
            display.column_profile(str(loaded.config.data.path), columns)
        raise
    config = experiment.config
    if as_json:
        described: dict[str, Any] = (
            {"layers": network.summary(), "parameters": network.n_params}
            if "model" in networks else
            {name: {"layers": net.summary(), "parameters": net.n_params}
             for name, net in networks.items()})
        display.info(json_text({"config": str(config_path), "valid": True,
                                "notes": experiment.notes,
                                "columns": [c.as_json() for c in columns], **described},
                               indent=2))
        return
    display.column_profile(str(loaded.config.data.path), columns)
    for note in experiment.notes:
        display.info(note)
    for name, net in networks.items():
        if name != "model":
            display.info(f"{name}:")
        display.layer_table(net.input_shape, [layer_row(e) for e in net.summary()])
    if config.gan is not None:
        sizes = " and ".join(f"{name} {net.n_params}" for name, net in networks.items())
        display.info(f"{config_path}: valid; a GAN of {sizes} parameters, optimizers "
                     f"{config.gan.generator.optimizer.name} and "
                     f"{config.gan.discriminator.optimizer.name}")
        return
    display.info(f"{config_path}: valid; {network.n_params} parameters, loss {config.loss}, "
                 f"optimizer {config.optimizer.name}")


def schema() -> str:
    """The JSON Schema of the config file format."""
    document = Config.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "bp config"
    return json.dumps(document, indent=2) + "\n"
