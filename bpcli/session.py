"""A training session: a config trained into a new run directory, or a stopped run carried
on from its last checkpoint, with the run directory kept current throughout. ``bp train``
is one way in; every other way to train goes through the same loop, files and signals."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bpcli.atomic import write_text_atomic
from bpcli.config import Config, LoadedConfig, load_config
from bpcli.csvfile import listed
from bpcli.display import Display
from bpcli.errors import ModelFileError, UsageError
from bpcli.events import EpochEnded, Listener, TrainingEnded
from bpcli.experiment import Experiment, prepare
from bpcli.files import short_path
from bpcli.ganbuild import GanParts, build_gan, gan_step, prepare_gan, quality_probe
from bpcli.ganquality import RealRows
from bpcli.ganrows import GanLayout
from bpcli.ganrun import (
    SAMPLE_PICTURES,
    draw_samples,
    image_samples,
    load_checkpoint,
    paired_networks,
    write_fidelity,
)
from bpcli.inference import score
from bpcli.metrics import ClassificationReport, RegressionReport, metric_text
from bpcli.modelfile import (
    SavedGan,
    gan_arrays,
    load_model,
    model_arrays,
    save_model,
    write_arrays,
)
from bpcli.nn import Network, Optimizer
from bpcli.plots import CurvesWriter, SampleGrids
from bpcli.rundir import (
    RunFiles,
    RunLock,
    RunRecorder,
    changed_inputs,
    create_run_dir,
    environment,
    fingerprints,
    process_record,
    read_metrics,
    remove_stale_temporaries,
    write_json,
)
from bpcli.signals import StopOnSignal
from bpcli.threads import CpuMeter, choose_threads, largest_product, set_threads
from bpcli.trainer import (
    DivergencePolicy,
    Trainer,
    TrainerState,
    TrainingDiverged,
    TrainingInterrupted,
)


@dataclass
class Session:
    """A run being trained: where it writes, and the objects that train."""

    run_dir: Path
    experiment: Experiment
    network: Network
    optimizer: Optimizer
    trainer: Trainer
    metrics_rows: list[list[str]]
    threads: int | None  # --threads; None: bp chooses, and keeps choosing while training
    meter: CpuMeter | None  # how busy the machine is, when bp chooses
    hooks: Hooks
    #: a GAN's networks and optimizers (``network`` is then its generator, ``optimizer``
    #: the pair of optimizers); None for a model
    gan: GanParts | None = None


@dataclass
class Hooks:
    """What a driver of sessions (a sweep) adds to the loop: listeners that hear every
    event after the run's own writers and display, and a rule that ends training after an
    epoch, as early stopping does (the run keeps its best epoch and writes its model)."""

    listeners: list[Listener] = field(default_factory=list)
    stop_after: Callable[[EpochEnded], bool] | None = None
    threads_by: str = "--threads"  # who set the thread count given, for summary.json


def train(config_path: Path, display: Display, overrides: Sequence[str] = (),
          health: bool = False, threads: int | None = None) -> Path:
    """Train the network ``config_path`` describes in a new run directory."""
    meter = CpuMeter() if threads is None else None
    return train_loaded(load_config(config_path, overrides), display, health=health,
                        threads=threads, meter=meter)


def train_loaded(loaded: LoadedConfig, display: Display, *, health: bool = False,
                 threads: int | None = None, meter: CpuMeter | None = None,
                 run_dir: Path | None = None, hooks: Hooks | None = None) -> Path:
    """Train a loaded config in a new run directory under its ``output.runs_dir``, or in
    ``run_dir`` (made if need be; a sweep names its trials' directories itself)."""
    if threads is None and meter is None:
        meter = CpuMeter()
    with display.working("reading the data"):  # a big CSV takes a while
        experiment, layout, real = _prepare(loaded)
    config = experiment.config
    for note in experiment.notes:
        display.info(note)
    # Independent streams: changing the architecture does not change the batch order.
    init_seed, shuffle_seed = np.random.SeedSequence(config.training.seed).spawn(2)
    parts = None
    optimizer: Optimizer
    if layout is not None:
        assert real is not None
        parts = build_gan(loaded, config, layout, np.random.default_rng(init_seed),
                          rows=len(experiment.X_train))
        parts.quality = quality_probe(parts, experiment, real)
        network, optimizer = parts.gan.generator, parts.optimizers
    else:
        network = experiment.build_network(np.random.default_rng(init_seed))
        if config.training.init_from is not None:
            _warm_start(network, Path(config.training.init_from), experiment)
            display.info(f"starting from the weights of {config.training.init_from}")
        optimizer = experiment.build_optimizer(network)
    trainer = _trainer(experiment, network, optimizer, np.random.default_rng(shuffle_seed),
                       health, parts)
    assert config.output.name is not None
    if run_dir is None:
        # model.npz, best and last checkpoints with optimizer state, and their temporary
        # copies
        needed = 8 * trainer.params.nbytes + (1 << 20)
        run_dir = create_run_dir(Path(config.output.runs_dir), config.output.name, needed)
    else:
        RunFiles(run_dir).checkpoints.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir):
        _write_config(run_dir, experiment)
        display.info(f"run directory: {run_dir}")
        return _run(Session(run_dir, experiment, network, optimizer, trainer, [], threads,
                            meter, hooks or Hooks(), parts), display)


def resume(run_dir: Path, display: Display, force: bool, health: bool = False,
           epochs: int | None = None, threads: int | None = None,
           hooks: Hooks | None = None) -> Path:
    """Carry on the run in ``run_dir`` from its last checkpoint, bit for bit; with
    ``epochs``, to that new total (which also extends a finished run)."""
    files = RunFiles(run_dir)
    last = files.last
    if not files.config.is_file():
        raise UsageError(f"{run_dir}: not a bp run directory (no {RunFiles.CONFIG})")
    if not last.is_file():
        raise UsageError(f"{run_dir}: no checkpoint to resume from (it stopped before its "
                         "first epoch ended); start it again with bp train")
    meter = CpuMeter() if threads is None else None
    with RunLock(run_dir):  # held until the session ends: no second process on this run
        session = _resume_locked(run_dir, display, force, health, epochs)
        session.threads, session.meter = threads, meter
        session.hooks = hooks or Hooks()
        return _run(session, display)


def _resume_locked(run_dir: Path, display: Display, force: bool, health: bool,
                   epochs: int | None) -> Session:
    """The session that carries the run on from its last checkpoint."""
    files = RunFiles(run_dir)
    last = files.last
    if remove_stale_temporaries(run_dir):
        display.info("removed the temporary files of writes the stopped process left "
                     "unfinished")
    loaded = load_config(files.config)
    planned = loaded.config.training.epochs
    if epochs is None and _finished(run_dir):
        raise UsageError(f"{run_dir}: the run has finished ({planned} epochs planned; its "
                         "model is written); to train it further give a new total, e.g. "
                         f"bp train --resume {run_dir} --epochs {2 * planned}")
    with display.working("reading the data"):
        experiment, layout, real = _prepare(loaded)
    changes = changed_inputs(run_dir, _data_files(experiment))
    if changes and not force:
        raise UsageError(f"{run_dir}: cannot resume: {'; '.join(changes)}. Resuming would "
                         "not continue the same run; pass --force to resume anyway")
    parts = None
    optimizer: Optimizer
    if layout is not None:
        parts = build_gan(loaded, experiment.config, layout, np.random.default_rng(0),
                          rows=len(experiment.X_train))
        network, optimizer = parts.gan.generator, parts.optimizers
    else:
        network = experiment.build_network(np.random.default_rng(0))
        optimizer = experiment.build_optimizer(network)
    checkpoint = load_checkpoint(last, parts)
    try:
        state = TrainerState.from_json(checkpoint.meta["trainer"])
        network_rng = checkpoint.meta["rng"]["network"]
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"{last}: not a checkpoint (no trainer state: {exc})") from None
    try:
        for mine, saved in paired_networks(network, parts, checkpoint):
            mine.load_state(saved.state())
            mine.load_buffers(saved.buffers())
        network.rng.bit_generator.state = network_rng
        optimizer.load_state(checkpoint.optimizer_state)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{last}: does not match {files.config}: {exc}") from None
    if epochs is not None:
        if epochs <= state.epoch:
            raise UsageError(f"{run_dir}: --epochs {epochs} is not more than the "
                             f"{state.epoch} epochs already done; give a larger total")
        _extend(run_dir, experiment, epochs)
        state.stopped_early, state.wait = False, 0  # asked for more: train them all
        display.info(f"extending {run_dir} from {planned} to {epochs} epochs")
    if parts is not None:  # after _extend: the last epoch is measured too
        assert real is not None
        parts.quality = quality_probe(parts, experiment, real)
    trainer = _trainer(experiment, network, optimizer, np.random.default_rng(0), health, parts)
    trainer.state = state
    best = files.best
    if best.is_file():
        saved_best = load_checkpoint(best, parts)
        trainer.best_params[...] = (saved_best.gan.flat_params
                                    if isinstance(saved_best, SavedGan)
                                    else saved_best.network.flat_params)
    display.info(f"resuming {run_dir} after epoch {state.epoch}"
                 + (f", batch {state.batch}" if state.batch else "")
                 + (" (inputs changed; --force given)" if changes else ""))
    rows = read_metrics(run_dir, state.epoch)
    return Session(run_dir, experiment, network, optimizer, trainer, rows, None, None,
                   Hooks(), parts)


def _prepare(loaded: LoadedConfig
             ) -> tuple[Experiment, GanLayout | None, RealRows | None]:
    """The experiment, and for a GAN config the layout of the rows it learns and the real
    rows its samples are measured against."""
    experiment = prepare(loaded)
    if experiment.config.gan is None:
        return experiment, None, None
    return prepare_gan(experiment)


def _finished(run_dir: Path) -> bool:
    """Whether the run ended as planned and wrote its model (a run killed while finishing
    is not finished: resuming it completes the final writes)."""
    files = RunFiles(run_dir)
    status = files.read_summary().get("status")
    return status in ("finished", "stopped early") and files.model.is_file()


def _extend(run_dir: Path, experiment: Experiment, epochs: int) -> None:
    """Make ``epochs`` the run's planned total: in its config, and in the fingerprint that
    guards the config against edits."""
    experiment.config.training.epochs = epochs
    _write_config(run_dir, experiment)


def _write_config(run_dir: Path, experiment: Experiment) -> None:
    """The run's resolved config, and the fingerprints that guard it and the data."""
    config = experiment.config
    files = RunFiles(run_dir)
    write_text_atomic(files.config,
                      yaml.safe_dump(config.model_dump(mode="json", exclude_none=True,
                                                       exclude=_unused_sections(config)),
                                     sort_keys=False))
    write_json(files.fingerprints, fingerprints(run_dir, _data_files(experiment)))


def _unused_sections(config: Config) -> set[str]:
    """The sections a config does not use: a model's gan, or a GAN's model sections (its
    networks carry their own optimizers)."""
    if config.gan is None:
        return {"gan"}
    return {"model", "loss", "optimizer", "regularization"}


def _trainer(experiment: Experiment, network: Network, optimizer: Optimizer,
             rng: np.random.Generator, health: bool = False, gan: GanParts | None = None
             ) -> Trainer:
    training = experiment.config.training
    regularization = experiment.config.regularization
    policy = DivergencePolicy(rollback=training.on_divergence == "rollback",
                              lr_factor=training.rollback_lr_factor,
                              max_rollbacks=training.max_rollbacks)
    if gan is not None:  # the same loop, with the GAN's alternating steps in each batch
        assert experiment.config.gan is not None
        return Trainer(network, optimizer, epochs=training.epochs,
                       batch_size=training.batch_size, rng=rng, metric=experiment.metric,
                       metric_name=experiment.metric_name, listeners=[], divergence=policy,
                       schedule=experiment.build_schedule(optimizer),
                       step=gan_step(gan, experiment.config.gan.d_steps),
                       params=gan.gan.flat_params, marks_best=False, measure=gan.quality)
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
    meta: dict[str, Any] = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "environment": environment(),
                            "config": config.model_dump(mode="json",
                                                        exclude=_unused_sections(config))}
    parts = session.gan
    if parts is not None:
        assert config.gan is not None
        meta["gan"] = parts.meta(config.gan)

    def save(more: dict[str, Any]) -> None:
        """Write the model with more metadata."""
        if parts is not None:
            write_arrays(files.model, arrays_of(more))
        else:
            save_model(files.model, network, experiment.preprocessor, {**meta, **more})

    def arrays_of(more: dict[str, Any], optimizer_state: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
        if parts is not None:
            return gan_arrays(parts.gan, experiment.preprocessor, {**meta, **more},
                              optimizer_state)
        return model_arrays(network, experiment.preprocessor, {**meta, **more},
                            optimizer_state)

    def save_checkpoint(path: Path) -> Callable[[], None]:
        state = trainer.state
        arrays = arrays_of({"epoch": state.epoch, "trainer": state.to_json(),
                            "rng": {"network": network.rng.bit_generator.state}},
                           optimizer.state())
        return lambda: write_arrays(path, arrays)

    threads = _use_threads(session, run_dir)
    if parts is not None:
        assert config.gan is not None
        what = (f"GAN: generator {parts.gan.generator.n_params} and discriminator "
                f"{parts.gan.discriminator.n_params} parameters, optimizers "
                f"{config.gan.generator.optimizer.name} and "
                f"{config.gan.discriminator.optimizer.name}, {config.gan.d_steps} "
                f"discriminator step{'s' if config.gan.d_steps > 1 else ''} per generator "
                "step")
    else:
        what = (f"network: {network.n_params} parameters, loss {config.loss}, optimizer "
                f"{config.optimizer.name}")
    epochs = config.training.epochs
    display.info(f"{what}, {epochs} epoch{'s' if epochs > 1 else ''} of batch "
                 f"{config.training.batch_size}, {threads['threads']} "
                 f"thread{'s' if threads['threads'] > 1 else ''}")
    if parts is not None and parts.quality is not None:
        for note in parts.quality.notes:
            display.info(note)
    summary: dict[str, Any] = {"status": "running", "started": _started(run_dir, meta),
                               "seed": config.training.seed, **process_record(),
                               "environment": environment(), "run_dir": str(run_dir),
                               "task": experiment.preprocessor.task,
                               "n_train": len(experiment.X_train), "n_val": _n_val(session),
                               "threads": threads}
    files = RunFiles(run_dir)
    write_json(files.summary, summary)
    recorder = RunRecorder(run_dir, experiment.metric_name, save_checkpoint,
                           session.metrics_rows)
    # listens after the recorder, and draws on its writer, after the rows it depends on
    curves = CurvesWriter(run_dir, display.info, submit=recorder.writer.submit)
    listeners: list[Listener] = [recorder, curves]
    if parts is not None and parts.layout.image_shape is not None:
        listeners.append(SampleGrids(run_dir, lambda: image_samples(parts),
                                     max(config.training.epochs // SAMPLE_PICTURES, 1),
                                     display.info, recorder.writer.submit))
    with StopOnSignal() as stop:
        try:
            with display.training() as view:
                trainer.listeners = [*listeners, view, *session.hooks.listeners]
                trainer.should_stop = stop
                trainer.stop_after = session.hooks.stop_after
                result = trainer.fit(experiment.X_train, experiment.Y_train,
                                     experiment.X_val, experiment.Y_val)
        except TrainingDiverged:
            with stop.deferred():
                _finish_writes(curves, recorder)
                if trainer.state.best_epoch > 0:  # the last good weights stay the model
                    trainer.params[...] = trainer.best_params
                    save({"epoch": trainer.state.best_epoch})
                write_json(files.summary, {**summary, "status": "diverged",
                                                      "epochs": trainer.state.epoch})
            raise
        except (TrainingInterrupted, KeyboardInterrupt) as exc:
            with stop.deferred():
                _finish_writes(curves, recorder)
                write_json(files.summary, {**summary, "status": "interrupted",
                                                      "epochs": trainer.state.epoch})
            if isinstance(exc, TrainingInterrupted):
                raise TrainingInterrupted(f"{exc}; checkpoint written. Resume with:\n"
                                          f"  bp train --resume {run_dir}") from None
            raise TrainingInterrupted(f"stopped at once, during epoch {trainer.state.epoch + 1}"
                                      f"; the last checkpoint stands. Resume with:\n"
                                      f"  bp train --resume {run_dir}") from None
        except BaseException:
            with stop.deferred():
                _finish_writes(curves, recorder)
            raise
        # A signal from here on is honoured once the run is complete on disk.
        with stop.deferred():
            _finish_writes(curves, recorder)
            _finish(session, display, result, summary, save)
    if stop.requested:
        raise TrainingInterrupted(f"interrupted as the run finished; it is complete "
                                  f"({files.model} written)")
    return run_dir


def _n_val(session: Session) -> int:
    """The rows the run is measured on: a model's validation rows, or those a GAN's
    samples are measured against (its loop validates nothing)."""
    quality = session.gan.quality if session.gan is not None else None
    return len(quality.real.val) if quality is not None else len(session.experiment.X_val)


def _use_threads(session: Session, run_dir: Path) -> dict[str, Any]:
    """Set the run's thread count and say how it was set: by --threads, as the run was
    started (a resumed run keeps its count: another count may sum products in another
    order), or chosen for this network on this machine now."""
    if session.threads is not None:
        return {"threads": session.threads, "chosen_by": session.hooks.threads_by}
    recorded = _recorded_threads(run_dir)
    if recorded is not None:
        set_threads(recorded["threads"])
        return recorded
    assert session.meter is not None
    # the meter's reading spans the data loading: what others used meanwhile
    work = largest_product(session.network.layers, session.experiment.config.training.batch_size)
    return choose_threads(session.meter, work).record()


def _recorded_threads(run_dir: Path) -> dict[str, Any] | None:
    threads = RunFiles(run_dir).read_summary().get("threads")
    if not (isinstance(threads, dict) and isinstance(threads.get("threads"), int)
            and threads["threads"] >= 1):
        return None
    return threads


def _finish_writes(curves: CurvesWriter, recorder: RunRecorder) -> None:
    """Every checkpoint, metrics row and picture on disk (re-raising a write error), and
    the writer threads ended, however training ended."""
    try:
        curves.finish()  # the epochs since the last picture
    finally:
        recorder.close()


def _finish(session: Session, display: Display, result: TrainingEnded,
            summary: dict[str, Any], save: Callable[[dict[str, Any]], None]) -> None:
    """The final writes of a run that trained to its end: model (``save`` writes it
    with more metadata), test scores, summary."""
    run_dir, experiment, trainer = session.run_dir, session.experiment, session.trainer
    config = experiment.config
    metric = f"val_{experiment.metric_name}"
    metrics: dict[str, Any] = {"best_epoch": result.best_epoch,
                               "val_loss": result.best_val_loss, metric: result.best_val_metric}
    if session.gan is not None:  # no best epoch: the last one's, and its samples' quality
        quality = session.gan.quality
        metrics = {"epoch": result.epochs_done, **(quality.last if quality else {})}
    files = RunFiles(run_dir)
    save({"epoch": result.best_epoch, "metrics": metrics})
    status = "stopped early" if trainer.state.stopped_early else "finished"
    test = _test_report(experiment, session.network, run_dir)
    write_json(files.summary, {
        **summary, "status": status, "epochs": result.epochs_done,
        "wall_time_s": round(result.seconds, 3), "metrics": metrics,
        "rollbacks": trainer.state.rollbacks,
        **({"test": _headline(test)} if test is not None else {}),
    })
    if session.gan is not None:
        draw_samples(session.gan, files.samples, display)
        write_fidelity(session.gan, experiment.X_train, experiment.preprocessor,
                       files.fidelity, display)
        display.info(f"trained {result.epochs_done} epochs ({result.seconds:.1f}s); the last "
                     f"epoch's networks are the model, written to {files.model}; draw rows "
                     "with:")
        display.info(f"  bp generate {files.model} -n 10")
        return
    if len(experiment.X_val):
        display.info(f"best epoch {result.best_epoch}: val_loss "
                     f"{metric_text(result.best_val_loss)}, {metric} "
                     f"{metric_text(result.best_val_metric)} ({result.seconds:.1f}s)")
    else:
        display.info(f"trained on every row (no validation rows): the model is epoch "
                     f"{result.best_epoch}'s weights ({result.seconds:.1f}s)")
    if test is not None:
        display.evaluation(test, f"test split, best epoch's model ({files.test_scores.name})")
    display.info(f"model written to {files.model}; predict with:")
    # a file that exists, so that the command runs as shown: the test rows when there are
    example = Path(config.data.test_path or config.data.path)
    display.info(f"  bp predict {files.model} {short_path(example)}")
    columns = experiment.preprocessor.columns
    which = (f"the column {listed(columns)}" if len(columns) == 1 else
             f"the columns {listed(columns)} in any order")
    display.info(f"or on new rows: a CSV with {which} (others, such as an id to carry "
                 "along with --keep, are ignored)")


def _test_report(experiment: Experiment, network: Network, run_dir: Path
                 ) -> ClassificationReport | RegressionReport | None:
    """Score the model (the best epoch's weights) once on the held-out test rows and
    write the report to test.json."""
    if experiment.X_test is None or experiment.Y_test is None:
        return None
    report = score(network, experiment.preprocessor, experiment.X_test, experiment.Y_test)
    files = RunFiles(run_dir)
    write_json(files.test_scores, report.as_json())
    return report


def _headline(report: ClassificationReport | RegressionReport) -> dict[str, Any]:
    if isinstance(report, ClassificationReport):
        return {"n": report.macro.support, "accuracy": report.accuracy}
    return {"n": report.n, **{f"rmse_{t.target}": t.rmse for t in report.targets}}


def _started(run_dir: Path, meta: dict[str, Any]) -> str:
    """When the run first started (kept across resumes)."""
    return str(RunFiles(run_dir).read_summary().get("started", meta["created"]))
