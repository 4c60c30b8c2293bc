"""float32 training stays faithful: the same configs trained in float32 and in float64 (the
precision gradcheck proves the gradients in) follow the same learning curves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bpcli.config import load_config
from bpcli.experiment import prepare
from bpcli.trainer import Trainer
from tests.conftest import CONFIGS

# (config, settings, epochs, the largest relative difference of a loss allowed). Dropout
# draws its masks in the network's dtype, a different random stream in float32 and float64,
# so the diabetes example is compared without it: what differs then is rounding alone.
CASES = [("iris.yaml", [], 40, 1e-5), ("spirals.yaml", [], 40, 1e-5),
         ("diabetes.yaml", ["model.layers.1.rate=0"], 30, 1e-5),
         ("diabetes-advanced.yaml", ["model.layers.2.rate=0"], 30, 1e-5)]


def curve(name: str, settings: list[str], epochs: int, dtype: Any) -> np.ndarray:
    """Training and validation loss per epoch of ``name`` trained in ``dtype``."""
    loaded = load_config(CONFIGS / name, [*settings, f"training.epochs={epochs}"])
    experiment = prepare(loaded, dtype)
    init_seed, shuffle_seed = np.random.SeedSequence(0).spawn(2)
    network = experiment.build_network(np.random.default_rng(init_seed), dtype)
    rows: list[tuple[float, float]] = []

    def listen(event: Any) -> None:
        if hasattr(event, "val_loss") and hasattr(event, "train_loss"):
            rows.append((event.train_loss, event.val_loss))

    optimizer = experiment.build_optimizer(network)
    trainer = Trainer(network, optimizer, epochs=epochs,
                      batch_size=experiment.config.training.batch_size,
                      rng=np.random.default_rng(shuffle_seed), metric=experiment.metric,
                      metric_name=experiment.metric_name, listeners=[listen],
                      schedule=experiment.build_schedule(optimizer))
    trainer.fit(experiment.X_train, experiment.Y_train, experiment.X_val, experiment.Y_val)
    return np.array(rows)


@pytest.mark.parametrize(("name", "settings", "epochs", "tolerance"), CASES)
def test_float32_follows_the_float64_curve(name: str, settings: list[str], epochs: int,
                                           tolerance: float) -> None:
    single = curve(name, settings, epochs, np.float32)
    double = curve(name, settings, epochs, np.float64)
    assert single.shape == double.shape == (epochs, 2)
    relative = np.abs(single - double) / np.abs(double)
    assert relative.max() < tolerance, (name, relative.max())
    # and float32 is not float64 in disguise: the numbers differ in the last places
    assert not np.array_equal(single, double)
