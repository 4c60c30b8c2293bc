"""What `bp train` spends besides the training steps, on a 100,000-row tabular example.

    python benchmarks/train_overhead.py

Runs the real `bp train` command in-process on a generated CSV (20 numeric features,
3 classes, 100,000 rows), with the live display drawing to a terminal that goes nowhere
and, separately, with plain output. What is not a training step is timed by wrapping it:
validation (`Network.evaluate` and the metric), and everything the trainer's events set
off (metrics.csv, checkpoints, display). The rest of the training loop is the steps
(batch gathering, forward, backward, update). Reading and preparing the CSV, before
training starts, is reported apart.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bpcli import trainer as trainer_module
from bpcli.display import Display
from bpcli.nn import Network
from bpcli.session import train

ROWS, FEATURES = 100_000, 20


def make_dataset(directory: Path) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, FEATURES))
    score = X[:, 0] + np.sin(X[:, 1]) * X[:, 2]
    labels = np.digitize(score, [-0.5, 0.5])
    path = directory / "tabular.csv"
    header = ",".join([f"x{i}" for i in range(FEATURES)] + ["label"])
    np.savetxt(path, np.column_stack([X, labels]), delimiter=",", header=header,
               comments="", fmt=["%.5f"] * FEATURES + ["%d"])
    return path


def timed(function: Callable[..., Any], total: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - start
    return wrapper


def run(config: Path, interactive: bool) -> dict[str, float]:
    overhead = [0.0]
    fit = [0.0]
    Trainer = trainer_module.Trainer
    originals = (Network.evaluate, Trainer.emit, Trainer.fit)
    Network.evaluate = timed(Network.evaluate, overhead)  # type: ignore[method-assign]
    Trainer.emit = timed(Trainer.emit, overhead)  # type: ignore[method-assign]
    Trainer.fit = timed(Trainer.fit, fit)  # type: ignore[method-assign]
    try:
        with open(os.devnull, "w") as devnull:
            start = time.perf_counter()
            train(config, Display(stream=devnull, interactive=interactive))
            total = time.perf_counter() - start
    finally:
        Network.evaluate, Trainer.emit, Trainer.fit = originals  # type: ignore[method-assign]
    return {"total": total, "fit": fit[0], "overhead": overhead[0]}


def bare_fit_seconds(config: Path) -> float:
    """The same training with nothing listening: no validation display, no files."""
    from bpcli.config import load_config
    from bpcli.experiment import prepare
    from bpcli.session import _trainer

    experiment = prepare(load_config(config))
    init_seed, shuffle_seed = np.random.SeedSequence(0).spawn(2)
    network = experiment.build_network(np.random.default_rng(init_seed))
    optimizer = experiment.build_optimizer(network)
    trainer = _trainer(experiment, network, optimizer, np.random.default_rng(shuffle_seed))
    start = time.perf_counter()
    trainer.fit(experiment.X_train, experiment.Y_train, experiment.X_val, experiment.Y_val)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        data = make_dataset(directory)
        config = directory / "config.yaml"
        config.write_text(yaml.safe_dump({
            "data": {"path": str(data), "target": "label"},
            "model": {"layers": [{"type": "dense", "units": 64}, {"type": "dense", "units": 64},
                                 {"type": "dense"}]},
            "optimizer": {"name": "adam", "learning_rate": 0.001},
            "training": {"epochs": 5, "batch_size": 128},
            "output": {"runs_dir": str(directory / "runs"), "name": "overhead"},
        }))
        print(f"{ROWS:,} rows x {FEATURES} features, 20-64-64-3, 5 epochs of batch 128")
        bare = sorted(bare_fit_seconds(config) for _ in range(3))[1]
        print(f"the same training with no listeners (validation only): {bare:.2f} s")
        for interactive in (True, False):
            r = run(config, interactive)
            overhead = r["overhead"]
            label = "live display" if interactive else "plain output"
            print(f"{label}: training {r['fit']:.2f} s, of which validation, metrics, "
                  f"checkpoints and display {overhead:.2f} s ({overhead / r['fit']:.1%}); "
                  f"reading and preparing the data {r['total'] - r['fit']:.2f} s; "
                  f"training took {r['fit'] / bare - 1:+.1%} longer than with no listeners")


if __name__ == "__main__":
    main()
