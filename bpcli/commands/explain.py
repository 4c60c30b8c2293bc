"""``bp explain``: one forward pass, loss, backward pass and update, shown step by step."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bpcli.building import build_network
from bpcli.config import Config, load_config
from bpcli.data import Preprocessor
from bpcli.display import Display
from bpcli.errors import UsageError
from bpcli.experiment import prepare
from bpcli.explain import explain_step, token_shares
from bpcli.inference import read_inputs
from bpcli.modelfile import load_model
from bpcli.nn import OPTIMIZERS, Network
from bpcli.nn.layers import BatchNorm
from bpcli.nn.optimizers import Optimizer


def explain(source: Path, display: Display, *, row: int, rows: int,
            data: Path | None) -> None:
    """Explain one training step of the network a config or model describes, on ``rows``
    data rows starting at data row ``row`` (1 is the first row under the header)."""
    if source.suffix == ".npz":
        network, optimizer, pre, csv_path = _from_model(source)
    else:
        experiment = prepare(load_config(source), dtype=np.float64)
        seed = experiment.config.training.seed
        init_seed, _ = np.random.SeedSequence(seed).spawn(2)
        network = experiment.build_network(np.random.default_rng(init_seed), np.float64)
        optimizer = experiment.build_optimizer(network)
        pre, csv_path = experiment.preprocessor, Path(experiment.config.data.path)
    if rows < 2 and any(isinstance(layer, BatchNorm) for layer in network.layers):
        rows = 2
        display.info("batch_norm needs at least two rows for its batch statistics: "
                     "explaining rows in pairs")
    table = read_inputs(pre, data or csv_path, with_targets=True)
    if not 1 <= row <= len(table) or row + rows - 1 > len(table):
        raise UsageError(f"{data or csv_path} has {len(table)} data rows; --row {row} with "
                         f"--rows {rows} does not fit")
    index = np.arange(row - 1, row - 1 + rows)
    X = pre.transform_features(table, index, np.float64).astype(np.float64)
    one_column = network.loss.name == "binary_cross_entropy"
    Y = pre.transform_target(table, index, one_column, np.float64)
    numbers = [int(i) + 1 for i in index]
    tokens = token_shares(network, pre, X, numbers)  # before the step changes the weights
    trace = explain_step(network, optimizer, X, Y, numbers, pre.features)
    trace.tokens = tokens
    display.explain_report(trace, detail_limit=64)


def _from_model(path: Path) -> tuple[Network, Optimizer, Preprocessor, Path]:
    saved = load_model(path)
    config = Config.model_validate(saved.meta["config"])
    network = build_network(config, int(np.prod(saved.network.input_shape)),
                            np.random.default_rng(0),
                            np.float64, saved.meta.get("loss_options", {}))
    network.load_state(saved.network.state())
    network.load_buffers(saved.network.buffers())
    options = config.optimizer.model_dump()
    optimizer = OPTIMIZERS[options.pop("name")](**options)
    return network, optimizer, saved.preprocessor, Path(config.data.path)
