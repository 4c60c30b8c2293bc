"""``bp train``: validate the config, train, and record the run directory."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bpcli.atomic import write_text_atomic
from bpcli.config import load_config
from bpcli.display import Display
from bpcli.events import EpochEnded
from bpcli.experiment import prepare
from bpcli.modelfile import save_model
from bpcli.runs import RunRecorder, create_run_dir, environment, write_json
from bpcli.trainer import Trainer, TrainingDiverged


def train(config_path: Path, display: Display) -> Path:
    """Train the network ``config_path`` describes; return the run directory."""
    loaded = load_config(config_path)
    experiment = prepare(loaded)
    config = experiment.config
    for note in experiment.notes:
        display.info(note)

    # Independent streams: changing the architecture does not change the batch order.
    init_seed, shuffle_seed = np.random.SeedSequence(config.training.seed).spawn(2)
    network = experiment.build_network(np.random.default_rng(init_seed))
    optimizer = experiment.build_optimizer()
    assert config.output.name is not None
    run_dir = create_run_dir(Path(config.output.runs_dir), config.output.name)
    resolved = config.model_dump(mode="json")
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    display.info(f"run directory: {run_dir}")
    display.info(f"network: {network.n_params} parameters, loss {config.loss}, optimizer "
                 f"{config.optimizer.name}, {config.training.epochs} epochs of batch "
                 f"{config.training.batch_size}")

    meta: dict[str, Any] = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "environment": environment(), "config": resolved}

    def save_checkpoint(path: Path, event: EpochEnded) -> None:
        save_model(path, network, experiment.preprocessor,
                   {**meta, "epoch": event.epoch, "val_loss": event.val_loss,
                    f"val_{experiment.metric_name}": event.val_metric},
                   optimizer.state())

    recorder = RunRecorder(run_dir, experiment.metric_name, save_checkpoint)
    summary: dict[str, Any] = {"status": "running", "seed": config.training.seed,
                               "environment": environment(), "run_dir": str(run_dir),
                               "task": experiment.preprocessor.task,
                               "n_train": len(experiment.X_train), "n_val": len(experiment.X_val)}
    write_json(run_dir / "summary.json", summary)
    try:
        with display.training() as view:
            trainer = Trainer(network, optimizer, epochs=config.training.epochs,
                              batch_size=config.training.batch_size,
                              rng=np.random.default_rng(shuffle_seed),
                              metric=experiment.metric, metric_name=experiment.metric_name,
                              listeners=[recorder, view])
            result = trainer.fit(experiment.X_train, experiment.Y_train,
                                 experiment.X_val, experiment.Y_val)
    except TrainingDiverged:
        write_json(run_dir / "summary.json", {**summary, "status": "diverged"})
        raise
    except KeyboardInterrupt:
        write_json(run_dir / "summary.json", {**summary, "status": "interrupted"})
        raise

    metrics = {"best_epoch": result.best_epoch, "val_loss": result.best_val_loss,
               f"val_{experiment.metric_name}": result.best_val_metric}
    save_model(run_dir / "model.npz", network, experiment.preprocessor,
               {**meta, "epoch": result.best_epoch, "metrics": metrics})
    write_json(run_dir / "summary.json", {
        **summary, "status": "finished", "epochs": result.epochs_done,
        "wall_time_s": round(result.seconds, 3), "metrics": metrics,
    })
    display.info(f"best epoch {result.best_epoch}: val_loss {result.best_val_loss:.4f}, "
                 f"val_{experiment.metric_name} {result.best_val_metric:.4f} "
                 f"({result.seconds:.1f}s)")
    display.info(f"model written to {run_dir / 'model.npz'}; predict with:")
    display.info(f"  bp predict {run_dir / 'model.npz'} {_shown(Path(config.data.path))}")
    return run_dir


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when that is shorter."""
    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)
