"""``bp train``: validate the config, train, and record the run directory; or carry on
a stopped run from its last checkpoint (``--resume``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bpcli.atomic import write_text_atomic
from bpcli.commands.evaluate import as_json, score
from bpcli.config import load_config
from bpcli.display import Display
from bpcli.errors import ModelFileError, UsageError
from bpcli.experiment import Experiment, prepare
from bpcli.metrics import ClassificationReport, RegressionReport, metric_text
from bpcli.modelfile import load_model, model_arrays, save_model, write_arrays
from bpcli.nn import Network, Optimizer
from bpcli.plots import CurvesWriter
from bpcli.runs import (
    CHECKPOINTS,
    FINGERPRINTS,
    RunRecorder,
    changed_inputs,
    create_run_dir,
    environment,
    fingerprints,
    read_metrics,
    write_json,
)
from bpcli.signals import StopOnSignal
from bpcli.trainer import (
    DivergencePolicy,
    Trainer,
    TrainerState,
    TrainingDiverged,
    TrainingInterrupted,
)

TEST_SCORES = "test.json"


@dataclass
class Session:
    """A run being trained: where it writes, and the objects that train."""

    run_dir: Path
    experiment: Experiment
    network: Network
    optimizer: Optimizer
    trainer: Trainer
    metrics_rows: list[list[str]]


def train(config_path: Path, display: Display, overrides: Sequence[str] = (),
          health: bool = False) -> Path:
    """Train the network ``config_path`` describes in a new run directory."""
    loaded = load_config(config_path, overrides)
    experiment = prepare(loaded)
    config = experiment.config
    for note in experiment.notes:
        display.info(note)
    # Independent streams: changing the architecture does not change the batch order.
    init_seed, shuffle_seed = np.random.SeedSequence(config.training.seed).spawn(2)
    network = experiment.build_network(np.random.default_rng(init_seed))
    if config.training.init_from is not None:
        _warm_start(network, Path(config.training.init_from), experiment)
        display.info(f"starting from the weights of {config.training.init_from}")
    optimizer = experiment.build_optimizer(network)
    trainer = _trainer(experiment, network, optimizer, np.random.default_rng(shuffle_seed),
                       health)
    assert config.output.name is not None
    # model.npz, best and last checkpoints with optimizer state, and their temporary copies
    needed = 8 * network.flat_params.nbytes + (1 << 20)
    run_dir = create_run_dir(Path(config.output.runs_dir), config.output.name, needed)
    write_text_atomic(run_dir / "config.yaml",
                      yaml.safe_dump(config.model_dump(mode="json", exclude_none=True),
                                     sort_keys=False))
    write_json(run_dir / FINGERPRINTS, fingerprints(run_dir, _data_files(experiment)))
    display.info(f"run directory: {run_dir}")
    return _run(Session(run_dir, experiment, network, optimizer, trainer, []), display)


def resume(run_dir: Path, display: Display, force: bool, health: bool = False) -> Path:
    """Carry on the run in ``run_dir`` from its last checkpoint, bit for bit."""
    last = run_dir / CHECKPOINTS / "last.npz"
    if not (run_dir / "config.yaml").is_file():
        raise UsageError(f"{run_dir}: not a bp run directory (no config.yaml)")
    if not last.is_file():
        raise UsageError(f"{run_dir}: no checkpoint to resume from (it stopped before its "
                         "first epoch ended); start it again with bp train")
    experiment = prepare(load_config(run_dir / "config.yaml"))
    changes = changed_inputs(run_dir, _data_files(experiment))
    if changes and not force:
        raise UsageError(f"{run_dir}: cannot resume: {'; '.join(changes)}. Resuming would "
                         "not continue the same run; pass --force to resume anyway")
    checkpoint = load_model(last)
    try:
        state = TrainerState.from_json(checkpoint.meta["trainer"])
        network_rng = checkpoint.meta["rng"]["network"]
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"{last}: not a checkpoint (no trainer state: {exc})") from None
    network = experiment.build_network(np.random.default_rng(0))
    optimizer = experiment.build_optimizer(network)
    try:
        network.load_state(checkpoint.network.state())
        network.load_buffers(checkpoint.network.buffers())
        network.rng.bit_generator.state = network_rng
        optimizer.load_state(checkpoint.optimizer_state)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{last}: does not match {run_dir / 'config.yaml'}: {exc}") from None
    trainer = _trainer(experiment, network, optimizer, np.random.default_rng(0), health)
    trainer.state = state
    best = run_dir / CHECKPOINTS / "best.npz"
    if best.is_file():
        trainer.best_params[...] = load_model(best).network.flat_params
    display.info(f"resuming {run_dir} after epoch {state.epoch}"
                 + (f", batch {state.batch}" if state.batch else "")
                 + (" (inputs changed; --force given)" if changes else ""))
    rows = read_metrics(run_dir, state.epoch)
    return _run(Session(run_dir, experiment, network, optimizer, trainer, rows), display)


def _trainer(experiment: Experiment, network: Network, optimizer: Optimizer,
             rng: np.random.Generator, health: bool = False) -> Trainer:
    training = experiment.config.training
    regularization = experiment.config.regularization
    policy = DivergencePolicy(rollback=training.on_divergence == "rollback",
                              lr_factor=training.rollback_lr_factor,
                              max_rollbacks=training.max_rollbacks)
    return Trainer(network, optimizer, epochs=training.epochs, batch_size=training.batch_size,
                   rng=rng, metric=experiment.metric, metric_name=experiment.metric_name,
                   listeners=[], divergence=policy,
                   schedule=experiment.build_schedule(optimizer),
                   early_stopping=experiment.early_stopping(),
                   clip_norm=regularization.clip_norm, clip_value=regularization.clip_value,
                   health=health)


def _warm_start(network: Network, path: Path, experiment: Experiment) -> None:
    """Copy a saved model's weights in, refusing when the architectures differ."""
    saved = load_model(path)
    mine = [layer.describe() for layer in network.layers]
    theirs = [layer.describe() for layer in saved.network.layers]
    where = ("training", "init_from")
    if saved.network.input_shape != network.input_shape:
        theirs_in, mine_in = ("x".join(map(str, n.input_shape))
                              for n in (saved.network, network))
        raise experiment.loaded.error(where, f"{path} takes inputs of shape {theirs_in}; "
                                      f"this config's are {mine_in}")
    if len(mine) != len(theirs):
        raise experiment.loaded.error(where, f"{path} has {len(saved.network.summary())} "
                                      f"layers; this config builds {len(network.summary())}")
    for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        if a != b:
            raise experiment.loaded.error(where, f"layer {network.layer_numbers[i]} differs: "
                                          f"{path} has {b}, this config builds {a}")
    network.load_state(saved.network.state())
    network.load_buffers(saved.network.buffers())


def _data_files(experiment: Experiment) -> list[Path]:
    data = experiment.config.data
    return [Path(p) for p in (data.path, data.validation_path, data.test_path)
            if p is not None]


def _run(session: Session, display: Display) -> Path:
    """Train the session to its last epoch, keeping the run directory current."""
    run_dir, experiment, trainer = session.run_dir, session.experiment, session.trainer
    config = experiment.config
    network, optimizer = session.network, session.optimizer
    metric = f"val_{experiment.metric_name}"
    meta: dict[str, Any] = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "environment": environment(), "config": config.model_dump(mode="json")}

    def save_checkpoint(path: Path) -> Callable[[], None]:
        state = trainer.state
        arrays = model_arrays(network, experiment.preprocessor,
                              {**meta, "epoch": state.epoch, "trainer": state.to_json(),
                               "rng": {"network": network.rng.bit_generator.state}},
                              optimizer.state())
        return lambda: write_arrays(path, arrays)

    display.info(f"network: {network.n_params} parameters, loss {config.loss}, optimizer "
                 f"{config.optimizer.name}, {config.training.epochs} epochs of batch "
                 f"{config.training.batch_size}")
    summary: dict[str, Any] = {"status": "running", "started": _started(run_dir, meta),
                               "seed": config.training.seed,
                               "environment": environment(), "run_dir": str(run_dir),
                               "task": experiment.preprocessor.task,
                               "n_train": len(experiment.X_train), "n_val": len(experiment.X_val)}
    write_json(run_dir / "summary.json", summary)
    recorder = RunRecorder(run_dir, experiment.metric_name, save_checkpoint,
                           session.metrics_rows)
    # listens after the recorder, and draws on its writer, after the rows it depends on
    curves = CurvesWriter(run_dir, display.info, submit=recorder.writer.submit)
    try:
        with StopOnSignal() as stop, display.training() as view:
            trainer.listeners = [recorder, curves, view]
            trainer.should_stop = stop
            result = trainer.fit(experiment.X_train, experiment.Y_train,
                                 experiment.X_val, experiment.Y_val)
    except TrainingDiverged:
        if trainer.state.best_epoch > 0:  # the last good weights stay the model
            network.flat_params[...] = trainer.best_params
            save_model(run_dir / "model.npz", network, experiment.preprocessor,
                       {**meta, "epoch": trainer.state.best_epoch})
        write_json(run_dir / "summary.json", {**summary, "status": "diverged",
                                              "epochs": trainer.state.epoch})
        raise
    except (TrainingInterrupted, KeyboardInterrupt) as exc:
        write_json(run_dir / "summary.json", {**summary, "status": "interrupted",
                                              "epochs": trainer.state.epoch})
        if isinstance(exc, TrainingInterrupted):
            raise TrainingInterrupted(f"{exc}; checkpoint written. Resume with:\n"
                                      f"  bp train --resume {run_dir}") from None
        raise
    finally:
        try:
            curves.finish()  # the epochs since the last picture, however training ended
        finally:
            recorder.close()  # every checkpoint, row and picture on disk before going on

    metrics = {"best_epoch": result.best_epoch, "val_loss": result.best_val_loss,
               metric: result.best_val_metric}
    save_model(run_dir / "model.npz", network, experiment.preprocessor,
               {**meta, "epoch": result.best_epoch, "metrics": metrics})
    status = "stopped early" if trainer.state.stopped_early else "finished"
    test = _test_report(experiment, network, run_dir)
    write_json(run_dir / "summary.json", {
        **summary, "status": status, "epochs": result.epochs_done,
        "wall_time_s": round(result.seconds, 3), "metrics": metrics,
        "rollbacks": trainer.state.rollbacks,
        **({"test": _headline(test)} if test is not None else {}),
    })
    display.info(f"best epoch {result.best_epoch}: val_loss "
                 f"{metric_text(result.best_val_loss)}, {metric} "
                 f"{metric_text(result.best_val_metric)} ({result.seconds:.1f}s)")
    if test is not None:
        display.evaluation(test, f"test split, best epoch's model ({TEST_SCORES})")
    display.info(f"model written to {run_dir / 'model.npz'}; predict with:")
    display.info(f"  bp predict {run_dir / 'model.npz'} {_shown(Path(config.data.path))}")
    return run_dir


def _test_report(experiment: Experiment, network: Network, run_dir: Path
                 ) -> ClassificationReport | RegressionReport | None:
    """Score the model (the best epoch's weights) once on the held-out test rows and
    write the report to test.json."""
    if experiment.X_test is None or experiment.Y_test is None:
        return None
    report = score(network, experiment.preprocessor, experiment.X_test, experiment.Y_test)
    write_json(run_dir / TEST_SCORES, as_json(report))
    return report


def _headline(report: ClassificationReport | RegressionReport) -> dict[str, Any]:
    if isinstance(report, ClassificationReport):
        return {"n": report.macro.support, "accuracy": report.accuracy}
    return {"n": report.n, **{f"rmse_{t.target}": t.rmse for t in report.targets}}


def _started(run_dir: Path, meta: dict[str, Any]) -> str:
    """When the run first started (kept across resumes)."""
    try:
        previous = json.loads((run_dir / "summary.json").read_text())
        return str(previous["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return str(meta["created"])


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when that is shorter."""
    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)
