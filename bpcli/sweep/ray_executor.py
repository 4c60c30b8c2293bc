"""The Ray executor (``executor: ray``, the extra ``bp[ray]``): the same trials, each
trained by the same ``run_trial`` as on the local executor, run as Ray Tune trials of a
``Tuner``, on a Ray instance of their own or on an existing cluster (``--address auto``
or ``ray://host:port``). Each trial reports every epoch's score to Tune; with
``scheduler: asha`` Ray's ``ASHAScheduler`` decides, and a trial it stops ends the way
early stopping ends a run (its best epoch kept, its model written).

Ray is imported here only. On a cluster every node must see the runs directory (shared
storage) and the data files at the paths the configs give (docs/sweeps.md)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bpcli.config.sweep import ParameterConfig
from bpcli.errors import BpError, UsageError
from bpcli.modelfile import load_model
from bpcli.rundir import RunFiles, write_json
from bpcli.sweep.trial import TrialTask, run_trial

INSTALL_HINT = "pip install 'bp[ray]'"
OUTCOME = "outcome.json"  # a trial's outcome, written by the Ray worker beside its run
#: the epoch at which Tune's scheduler stopped a trial, written the moment it says so: Ray
#: may end the worker before the run's final writes (it did, on a busy machine)
STOPPED_AT = "stopped_at.json"
PROPOSED = "proposed"  # search optuna: the trials Tune's searcher proposed, a file each
#: Tune's schedulers compare numbers: a trial without a score ranks below every other
WORST = 1e300


def _ray() -> Any:
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError:
        raise UsageError(f"executor ray needs Ray Tune: {INSTALL_HINT} (from a clone: pip "
                         "install '.[ray]')") from None
    return ray


@dataclass(frozen=True)
class OptunaPlan:
    """``search: optuna`` on Ray: Tune's ``OptunaSearch`` proposes ``samples`` trials
    over ``parameters`` (specs as sweep.json records them); each trial's task is
    ``template`` with its id, values and run directory."""

    parameters: dict[str, dict[str, Any]]
    seed: int
    samples: int
    template: TrialTask


def run_ray(tasks: list[TrialTask], workers: int, threads: int, address: str | None,
            scheduler: dict[str, Any] | None, maximize: bool, max_epochs: int,
            storage: Path, on_event: Any, optuna: OptunaPlan | None = None,
            register: Callable[[TrialTask], None] | None = None) -> bool:
    """Run ``tasks`` as Tune trials, at most ``workers`` at once with ``threads`` CPUs
    each; ``on_event`` hears each trial's "started" and "done" as ``run_local`` tells
    them. With ``optuna``, Tune's Optuna searcher proposes the trials instead, and
    ``register`` hears of each (before its "done"). Returns whether the sweep was
    interrupted."""
    ray = _ray()
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False,
                     **({} if address else {"num_cpus": workers * threads}))
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"--address {address}: cannot reach a Ray cluster there "
                             f"({exc}); start one (ray start --head) or leave out --address "
                             "for a Ray instance of the sweep's own") from None
    sign = 1.0 if maximize else -1.0

    def trainable(config: dict[str, Any]) -> None:
        if optuna is None:
            task = tasks[config["unit"]]
        else:  # named by Tune's id for it: trials start on many machines at once
            task = _proposed(optuna, f"t-{tune.get_context().get_trial_id()}", config)
            proposals = optuna.template.run_dir / PROPOSED
            proposals.mkdir(exist_ok=True)
            write_json(proposals / f"{task.trial_id}.json", {
                "trial_id": task.trial_id, "params": task.params, "proposed": time.time()})
        stopped = False

        def ask(name: str, epoch: int, score: float | None) -> bool:
            nonlocal stopped
            value = score if score is not None and math.isfinite(score) else -sign * WORST
            try:
                tune.report({"epoch": epoch, "score": value})
            except SystemExit:  # Tune's scheduler stops the trial here
                stopped = True
                write_json(task.run_dir / STOPPED_AT, {"epoch": epoch})
                return False
            return True

        outcome = run_trial(task, lambda kind, name, payload: None, ask)
        write_json(task.run_dir / OUTCOME, outcome.__dict__)
        if not stopped and outcome.score is not None:
            tune.report({"epoch": outcome.epochs, "score": outcome.score})

    asha = None if scheduler is None else ASHAScheduler(
        time_attr="epoch", metric="score", mode="max" if maximize else "min",
        max_t=max_epochs, grace_period=scheduler["grace_period"],
        reduction_factor=scheduler["reduction_factor"])
    mode = "max" if maximize else "min"
    searcher = None
    if optuna is None:
        space: dict[str, Any] = {"unit": tune.grid_search(list(range(len(tasks))))}
    else:
        from ray.tune.search.optuna import OptunaSearch

        space = _tune_space(optuna.parameters)
        searcher = OptunaSearch(metric="score", mode=mode, seed=optuna.seed)
    ranked_here = asha is None and searcher is None  # else they rank the trials
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": threads}),
        param_space=space,
        tune_config=tune.TuneConfig(scheduler=asha, search_alg=searcher,
                                    max_concurrent_trials=workers,
                                    num_samples=1 if optuna is None else optuna.samples,
                                    metric="score" if ranked_here else None,
                                    mode=mode if ranked_here else None),
        run_config=tune.RunConfig(name="ray", storage_path=str(storage.resolve()),
                                  verbose=0))
    for task in tasks:
        on_event("started", task.trial_id, {})
    interrupted = False
    try:
        grid = tuner.fit()
        results = [grid[i] for i in range(len(grid))]
        errors = {result.config["unit"]: result.error for result in results
                  if result.config is not None and "unit" in result.config}
    except KeyboardInterrupt:
        interrupted, errors = True, {}
    finally:
        if started_here:
            ray.shutdown()
    if optuna is not None:  # the trials Tune made, as each recorded itself
        assert register is not None
        tasks, errors = [], {}
        found = [json.loads(path.read_text())
                 for path in (optuna.template.run_dir / PROPOSED).glob("t-*.json")]
        for proposed in sorted(found, key=lambda item: item["proposed"]):
            task = replace(optuna.template, trial_id=proposed["trial_id"],
                           params=proposed["params"],
                           run_dir=optuna.template.run_dir / proposed["trial_id"])
            register(task)
            tasks.append(task)
    outcomes = [_outcome(task, errors.get(unit), interrupted)
                for unit, task in enumerate(tasks)]
    # Ctrl-C reaches Tune, which ends the trials and returns: they are interrupted, and
    # those it never started are still to run
    interrupted = interrupted or any(o["status"] == "interrupted" for o in outcomes)
    for task, outcome in zip(tasks, outcomes, strict=True):
        if interrupted and outcome["status"] == "failed" and \
                not RunFiles(task.run_dir).config.is_file():
            outcome = {**outcome, "status": "pending", "error": None}
        on_event("done", task.trial_id, outcome)
    return interrupted


def _tune_space(parameters: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The sweep's parameters as Tune's search space; listed values by their index."""
    from ray import tune

    space: dict[str, Any] = {}
    for key, raw in parameters.items():
        spec = ParameterConfig.model_validate(raw)
        listed = spec.values()
        if listed is not None:
            space[key] = tune.choice(list(range(len(listed))))
            continue
        low, high = spec.bounds() or (0.0, 1.0)
        if spec.kind in ("int", "randint"):  # both ends included, as bp's int is
            step = int(spec.q or 1)
            space[key] = (tune.qrandint(int(low), int(high), step) if step > 1
                          else tune.randint(int(low), int(high) + 1))
        elif spec.kind == "loguniform":
            space[key] = (tune.qloguniform(low, high, spec.q) if spec.q
                          else tune.loguniform(low, high))
        else:
            space[key] = (tune.quniform(low, high, spec.q) if spec.q
                          else tune.uniform(low, high))
    return space


def _proposed(plan: OptunaPlan, trial_id: str, config: dict[str, Any]) -> TrialTask:
    params = {}
    for key, raw in plan.parameters.items():
        spec = ParameterConfig.model_validate(raw)
        listed = spec.values()
        value = config[key]
        params[key] = (listed[int(value)] if listed is not None else
                       int(value) if spec.kind in ("int", "randint") else float(value))
    return replace(plan.template, trial_id=trial_id, params=params,
                   run_dir=plan.template.run_dir / trial_id)


def _outcome(task: TrialTask, error: Exception | None, interrupted: bool) -> dict[str, Any]:
    try:
        outcome: dict[str, Any] = json.loads((task.run_dir / OUTCOME).read_text())
        return outcome
    except (OSError, ValueError):
        pass
    rung = _stopped_at(task.run_dir) if error is None and not interrupted else None
    if rung is not None or (error is None and _stopped_at_rung(task.run_dir)):
        # Tune stopped the trial at a rung and ended its process before the run's final
        # writes. Carried on here from its last checkpoint (bit for bit as if never ended)
        # and stopped at the same rung, it ends as it would have: the best epoch's model
        # and the summary written. When that checkpoint already records the stop, no
        # more training is done.
        ended = run_trial(replace(task, rungs=() if rung is None else (rung,)),
                          lambda kind, name, payload: None, lambda *asked: False)
        if ended.status == "finished":
            ended.status = "stopped"
        return ended.__dict__
    if error is None and RunFiles(task.run_dir).config.is_file():
        interrupted = True  # ended by Tune mid-way, not by its scheduler: Ctrl-C
    status = "interrupted" if interrupted and error is None else "failed"
    return {"status": status, "score": None, "best_epoch": None, "epochs": 0,
            "seconds": None, "error": None if status == "interrupted" else
            f"the Ray trial ended without an outcome: {error or 'no error reported'}"}


def _stopped_at(run_dir: Path) -> int | None:
    """The epoch at which the scheduler stopped the trial, as its worker wrote it."""
    try:
        epoch = json.loads((run_dir / STOPPED_AT).read_text())["epoch"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return epoch if isinstance(epoch, int) else None


def _stopped_at_rung(run_dir: Path) -> bool:
    """Whether the run's last checkpoint says its training has ended (the scheduler's
    stop is decided before the epoch's checkpoint is written)."""
    last = RunFiles(run_dir).last
    if not last.is_file():
        return False
    try:
        return bool(load_model(last).meta["trainer"]["stopped_early"])
    except (BpError, KeyError, TypeError):
        return False
