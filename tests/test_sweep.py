"""bp sweep: located errors, the plan, the local executor with two workers (each trial a
bp run, equal to bp train of its config), crashed trials, ASHA, Ctrl-C and --resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.config.sweep import SweepConfig
from bpcli.sweep.asha import Asha
from bpcli.sweep.plan import plan
from tests.conftest import CONFIGS, REPO, iris_config
from tests.test_runs import assert_same_arrays, metrics, params


def write_sweep(root: Path, base: dict[str, Any] | str | None = None,
                name: str = "sweep.yaml", **fields: Any) -> Path:
    """A sweep over the small iris config (written beside it as base.yaml)."""
    if base is None:
        config = iris_config(training={"epochs": 3, "batch_size": 16, "seed": 0},
                             output={"runs_dir": str(root / "runs"), "name": "t"})
        (root / "base.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        base = "base.yaml"
    sweep = {"base": base, "metric": "val_accuracy", **fields}
    sweep.setdefault("parameters", {"optimizer.learning_rate": {"grid": [0.01, 0.05]}})
    path = root / name
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def sweep_dir(root: Path) -> Path:
    (found,) = [p for p in (root / "runs").iterdir() if (p / "sweep.json").is_file()]
    return found


def results(root: Path) -> list[dict[str, str]]:
    with (root / "results.csv").open() as f:
        return list(csv.DictReader(f))


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["sweep", *args])


# -- the sweep file --------------------------------------------------------------------


def line_of(path: Path, text: str) -> int:
    """The number of the first line of ``path`` that holds ``text``."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_problems_are_located_in_the_sweep_file(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, parameters={
        "model.layers.5.units": {"choice": [4, 8]},   # no such layer
        "training.epochz": {"grid": [1, 2]},         # no such key
        "model.layers.0.units": {"choice": [8, 0]},  # 0 is refused by the schema
    })
    result = invoke(str(path))
    assert result.exit_code == 2
    text = result.output
    assert (f"bp: {path}:{line_of(path, 'layers.5')}:3: parameters.model.layers.5.units = 4: "
            f"there is no model.layers[5] in {tmp_path / 'base.yaml'} to set") in text
    assert (f"bp: {path}:{line_of(path, 'epochz')}:3: parameters.training.epochz = 1: "
            "training.epochz: unknown key 'epochz' (did you mean 'epochs'?)") in text
    assert (f"bp: {path}:{line_of(path, 'layers.0')}:3: parameters.model.layers.0.units = 0: "
            "model.layers[0].units: Input should be greater than or equal to 1") in text
    assert "3 problems in" in text
    assert not (tmp_path / "runs").exists()  # nothing started
    path = write_sweep(tmp_path, parameters={
        "optimizer.learning_rate": {"loguniform": [0, 1]}})
    result = invoke(str(path))
    assert result.exit_code == 2
    assert (f"bp: {path}:{line_of(path, 'learning_rate')}:3: parameters.optimizer."
            "learning_rate: loguniform: both ends must be above 0") in result.output


def test_problems_in_the_base_config_are_located_there(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("data: {path: x.csv, target: y}\nmodel:\n  layers:\n"
                                        "    - {type: dense, unitz: 3}\n")
    result = invoke(str(write_sweep(tmp_path, base="base.yaml")))
    assert result.exit_code == 2
    assert f"{tmp_path / 'base.yaml'}:4:21: model.layers[0].unitz: unknown key 'unitz'" \
        in result.output


def test_sweep_fields_are_checked(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, metric="val_f1", search="grid", samples=0,
                       parameters={"optimizer.learning_rate": {"uniform": [0.1, 0.01]}})
    result = invoke(str(path))
    assert result.exit_code == 2
    assert (f"{path}:{line_of(path, 'metric')}:1: metric: 'val_f1' is not recorded in "
            "metrics.csv; use one of val_loss, val_accuracy") in result.output
    assert "samples: Input should be greater than or equal to 1" in result.output
    assert "the low end must be below the high end" in result.output


def test_a_grid_search_refuses_ranges(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, search="grid",
                       parameters={"optimizer.learning_rate": {"uniform": [0.01, 0.1]}})
    result = invoke(str(path))
    assert result.exit_code == 2
    assert (f"{path}:{line_of(path, 'uniform')}:5: parameters.optimizer.learning_rate: a grid "
            "search tries listed values") in result.output


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*-sweep.yaml")), ids=lambda p: p.stem)
def test_shipped_sweeps_are_valid(path: Path) -> None:
    from bpcli.config.sweep import load_sweep

    sweep = load_sweep(path)
    assert sweep.base_path == CONFIGS / "iris.yaml"
    assert len(plan(sweep.config)) == sweep.config.samples


def test_the_plan() -> None:
    grid = SweepConfig.model_validate({"base": "b.yaml", "search": "grid", "parameters": {
        "a": {"grid": [1, 2, 3]}, "b": {"choice": ["x", "y"]}}})
    assert [t.params for t in plan(grid)][:3] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"},
                                                  {"a": 2, "b": "x"}]
    assert len(plan(grid)) == 6
    space = {"lr": {"loguniform": [1e-4, 1e-1]}, "units": {"int": [2, 4]},
             "l2": {"uniform": [0, 1], "q": 0.25}, "w": {"randint": [10, 20], "q": 5}}
    random = SweepConfig.model_validate({"base": "b.yaml", "samples": 200, "seed": 3,
                                         "parameters": space})
    trials = plan(random)
    assert [t.params for t in trials] == [t.params for t in plan(random)]  # seeded
    assert [t.id for t in trials[:2]] == ["t001", "t002"]
    assert all(1e-4 <= t.params["lr"] <= 1e-1 for t in trials)
    assert {t.params["units"] for t in trials} == {2, 3, 4}  # both ends included
    assert {t.params["l2"] for t in trials} <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert {t.params["w"] for t in trials} <= {10, 15, 20}
    other = SweepConfig.model_validate({"base": "b.yaml", "samples": 200, "seed": 4,
                                        "parameters": space})
    assert [t.params for t in plan(other)] != [t.params for t in trials]


def test_asha_keeps_the_best_share_at_each_rung() -> None:
    asha = Asha(grace_period=1, reduction_factor=2, max_epochs=8, maximize=True)
    assert asha.milestones == [1, 2, 4]
    assert asha.carries_on("a", 1, 0.5)  # the first always does
    assert not asha.carries_on("b", 1, 0.4)
    assert asha.carries_on("c", 1, 0.9)
    assert not asha.carries_on("d", 1, None)  # no score (diverged): stops
    assert asha.carries_on("a", 3, 0.0)  # not a rung
    low = Asha(grace_period=1, reduction_factor=2, max_epochs=8, maximize=False)
    assert low.carries_on("a", 1, 0.5) and not low.carries_on("b", 1, 0.9)


# -- running sweeps --------------------------------------------------------------------


def test_two_workers_run_every_trial_as_a_bp_run(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, parameters={
        "optimizer.learning_rate": {"grid": [0.01, 0.05]},
        "model.layers.0": {"grid": [{"type": "dense", "units": 4, "activation": "relu"},
                                    {"type": "dense", "units": 8, "activation": "tanh"}]}},
        search="grid")
    result = invoke(str(path), "--workers", "2")
    assert result.exit_code == 0, result.output
    root = sweep_dir(tmp_path)
    rows = results(root)
    assert [r["trial"] for r in rows] == ["t001", "t002", "t003", "t004"]
    assert {r["status"] for r in rows} == {"finished"}
    state = json.loads((root / "sweep.json").read_text())
    assert state["status"] == "finished"
    scores = {r["trial"]: float(r["val_accuracy"]) for r in rows}
    best = max(scores, key=lambda t: scores[t])
    assert scores[best] == max(scores.values()) and state["best"] in scores
    assert scores[state["best"]] == scores[best]
    assert f"bp train {os.path.relpath(root / 'best.yaml')}" in result.output
    assert f"bp predict {os.path.relpath(root / state['best'] / 'model.npz')}" in result.output
    # each trial is a bp run with its value set...
    config = yaml.safe_load((root / "t002" / "config.yaml").read_text())
    assert config["model"]["layers"][0]["units"] == 8
    assert config["optimizer"]["learning_rate"] == 0.01
    summary = json.loads((root / "t002" / "summary.json").read_text())
    assert summary["threads"] == {"threads": 1, "chosen_by": "sweep"}
    # ... and bp train of its config.yaml (best.yaml for the winner) trains it again bit
    # for bit
    for trial, config_path in (("t002", root / "t002" / "config.yaml"),
                               (state["best"], root / "best.yaml")):
        again = CliRunner().invoke(app, ["train", str(config_path)])
        assert again.exit_code == 0, again.output
        (run,) = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith("t-")
                  and not (p / "done").exists()]
        (run / "done").touch()
        assert_same_arrays(params(run / "model.npz"), params(root / trial / "model.npz"))
        assert [row[:-1] for row in metrics(run)] == [row[:-1]
                                                      for row in metrics(root / trial)]
    listed = CliRunner().invoke(app, ["runs", str(tmp_path / "runs")])
    assert f"a sweep; list its trials with: bp runs {root}" in listed.output
    trials = CliRunner().invoke(app, ["runs", str(root)])
    assert "4 runs in" in trials.output and "t004" in trials.output


def test_a_crashing_trial_is_recorded_and_the_sweep_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, search="grid", parameters={
        "optimizer.learning_rate": {"grid": [0.05, 1.0e+38]}})
    result = invoke(str(path), "--workers", "2")
    assert result.exit_code == 0, result.output
    rows = {r["trial"]: r for r in results(sweep_dir(tmp_path))}
    assert rows["t001"]["status"] == "finished"
    assert rows["t002"]["status"] == "failed"
    assert rows["t002"]["error"].startswith("training diverged at epoch 1")
    assert rows["t002"]["val_accuracy"] == ""
    assert "t002 failed (training diverged" in result.output
    assert "best: t001" in result.output


def test_asha_stops_the_trailing_trials(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = iris_config(optimizer={"name": "sgd", "learning_rate": 0.1},
                       training={"epochs": 6, "batch_size": 16, "seed": 0},
                       output={"runs_dir": str(tmp_path / "runs"), "name": "t"})
    # one worker: the trials reach the rungs in order, the good one first
    path = write_sweep(tmp_path, base=base, search="grid", metric="val_loss",
                       scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2},
                       parameters={"optimizer.learning_rate": {"grid": [0.3, 1e-5, 1e-6]}})
    result = invoke(str(path), "--workers", "1")
    assert result.exit_code == 0, result.output
    root = sweep_dir(tmp_path)
    rows = {r["trial"]: r for r in results(root)}
    assert rows["t001"]["status"] == "finished" and rows["t001"]["epochs"] == "6"
    for trial in ("t002", "t003"):
        assert rows[trial]["status"] == "stopped"
        assert rows[trial]["epochs"] == "1"
        summary = json.loads((root / trial / "summary.json").read_text())
        assert summary["status"] == "stopped early"
        assert (root / trial / "model.npz").is_file()
    assert "stopped early after epoch 1: by the scheduler" in \
        (root / "t002" / "train.log").read_text()
    state = json.loads((root / "sweep.json").read_text())
    assert set(state["rungs"]["1"]) == {"t001", "t002", "t003"}
    assert set(state["rungs"]["2"]) == {"t001"}


def test_ctrl_c_saves_the_sweep_and_resume_finishes_it(tmp_path: Path) -> None:
    base = iris_config(training={"epochs": 150, "batch_size": 4, "seed": 0},
                       output={"runs_dir": str(tmp_path / "runs"), "name": "t"})
    path = write_sweep(tmp_path, base=base, search="grid", parameters={
        "optimizer.learning_rate": {"grid": [0.001, 0.002, 0.003, 0.004]}})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "bpcli", "sweep", str(path),
                             "--workers", "2"], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:  # plain lines through the pipe
        assert time.monotonic() < deadline
        if " finished " in line:
            break
    time.sleep(0.3)  # the next trials under way
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    root = sweep_dir(tmp_path)
    assert f"bp sweep --resume {root}" in err
    state = json.loads((root / "sweep.json").read_text())
    assert state["status"] == "interrupted"
    statuses = [t["status"] for t in state["trials"]]
    assert "finished" in statuses and "interrupted" in statuses, statuses
    assert "pending" in statuses or statuses.count("interrupted") >= 1
    stopped = next(t["id"] for t in state["trials"] if t["status"] == "interrupted")
    summary = json.loads((root / stopped / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    finished_before = {t["id"]: t for t in state["trials"] if t["status"] == "finished"}

    # an edited sweep file would make the trials still to run another sweep's
    text = path.read_text()
    path.write_text(text + "\n# edited\n")
    refused = CliRunner().invoke(app, ["sweep", "--resume", str(root)])
    assert refused.exit_code == 2
    assert f"{root}: cannot resume: {path.resolve()} changed since the sweep started" in \
        refused.output
    path.write_text(text)
    again = subprocess.run([sys.executable, "-m", "bpcli", "sweep", "--resume", str(root)],
                           cwd=tmp_path, env=env, text=True, capture_output=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{len(finished_before)} trial" in again.stdout
    state = json.loads((root / "sweep.json").read_text())
    assert state["status"] == "finished"
    assert {t["status"] for t in state["trials"]} == {"finished"}
    for trial in state["trials"]:  # kept as they were
        if trial["id"] in finished_before:
            assert trial == finished_before[trial["id"]]
    summary = json.loads((root / stopped / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 150
    assert f"resuming {root.resolve() / stopped} after epoch" in \
        (root / stopped / "train.log").read_text()  # from its checkpoint, not afresh


def test_resume_needs_a_sweep_directory(tmp_path: Path) -> None:
    result = invoke("--resume", str(tmp_path))
    assert result.exit_code == 2
    assert "not a sweep directory (no sweep.json)" in result.output
    result = invoke()
    assert result.exit_code == 2 and "give a sweep file" in result.output


def test_inline_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = iris_config(training={"epochs": 2, "batch_size": 16, "seed": 0},
                       output={"runs_dir": str(tmp_path / "runs"), "name": "t"})
    path = write_sweep(tmp_path, base=base, samples=2, seed=1, name="inline.yaml",
                       parameters={"optimizer.learning_rate": {"loguniform": [0.01, 0.1]}})
    result = invoke(str(path), "--workers", "1")
    assert result.exit_code == 0, result.output
    rows = results(sweep_dir(tmp_path))
    assert [r["status"] for r in rows] == ["finished", "finished"]
    lrs = [float(r["optimizer.learning_rate"]) for r in rows]
    assert all(0.01 <= lr <= 0.1 for lr in lrs) and lrs[0] != lrs[1]
    bad = write_sweep(tmp_path, base={**base, "training": {"epochs": -1}}, name="bad.yaml")
    result = invoke(str(bad))
    assert result.exit_code == 2
    assert f"{bad}:" in result.output and "training.epochs" in result.output
    assert np.isfinite(lrs).all()


# -- cross-validation ------------------------------------------------------------------


def test_folds_are_stratified_and_cover_every_row() -> None:
    from bpcli.splits import fold_rows

    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    folds = fold_rows(100, 5, seed=0, labels=labels)
    assert sorted(np.concatenate(folds).tolist()) == list(range(100))
    for fold in folds:
        assert len(fold) == 20
        assert np.bincount(labels[fold]).tolist() == [10, 6, 4]
    assert [f.tolist() for f in fold_rows(100, 5, seed=1, labels=labels)] != \
        [f.tolist() for f in folds]  # seeded, and shuffled
    assert folds[0].tolist() != sorted(folds[0].tolist())[:10] + list(range(50, 60))
    plain = fold_rows(7, 3, seed=1, labels=None)
    assert sorted(len(f) for f in plain) == [2, 2, 3]
    assert [f.tolist() for f in fold_rows(7, 3, 1, None)] == [f.tolist() for f in plain]


def test_train_cv_scores_the_mean_of_the_folds(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(iris_config(
        data={"path": str(REPO / "datasets" / "iris.csv"), "target": "species",
              "validation_fraction": 0.2},
        output={"runs_dir": str(tmp_path / "runs"), "name": "m"})))
    result = CliRunner().invoke(app, ["train", "--cv", "3", str(config),
                                      "--set", "training.epochs=2"])
    assert result.exit_code == 0, result.output
    root = sweep_dir(tmp_path)
    scores = []
    for fold in (1, 2, 3):
        run = root / f"t001-f{fold}"
        resolved = yaml.safe_load((run / "config.yaml").read_text())
        assert resolved["data"]["cv"] == {"folds": 3, "fold": fold}
        assert resolved["training"]["epochs"] == 2
        summary = json.loads((run / "summary.json").read_text())
        assert (summary["n_train"], summary["n_val"]) == (100, 50)
        scores.append(summary["metrics"]["val_accuracy"])
    (row,) = results(root)
    assert float(row["val_accuracy"]) == pytest.approx(np.mean(scores))
    assert float(row["val_accuracy_std"]) == pytest.approx(np.std(scores))
    assert "over 3 folds" in result.output
    best = yaml.safe_load((root / "best.yaml").read_text())
    assert "cv" not in best["data"]


def test_each_fold_validates_on_its_own_rows(tmp_path: Path) -> None:
    from bpcli.config import load_config
    from bpcli.experiment import prepare

    config = tmp_path / "c.yaml"
    # unscaled, so that the same rows are the same numbers in every fold
    config.write_text(yaml.safe_dump(iris_config(data={
        "path": str(REPO / "datasets" / "iris.csv"), "target": "species",
        "scaling": "none"})))
    vals = []
    for fold in (1, 2, 3):
        experiment = prepare(load_config(config, [f"data.cv={{folds: 3, fold: {fold}}}"]))
        assert (len(experiment.X_train), len(experiment.X_val)) == (100, 50)
        assert experiment.config.data.validation_fraction is None
        vals.append(experiment.X_val)
    assert not np.array_equal(vals[0], vals[1]) and not np.array_equal(vals[1], vals[2])


def test_a_sweep_with_cv_ranks_trials_by_their_folds(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, search="grid", cv=2, parameters={
        "optimizer.learning_rate": {"grid": [0.0001, 0.05]}})
    result = invoke(str(path), "--workers", "2")
    assert result.exit_code == 0, result.output
    root = sweep_dir(tmp_path)
    rows = {r["trial"]: r for r in results(root)}
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [
        "t001-f1", "t001-f2", "t002-f1", "t002-f2"]
    state = json.loads((root / "sweep.json").read_text())
    for trial in state["trials"]:
        assert trial["fold_status"] == ["finished", "finished"]
        assert float(rows[trial["id"]]["val_accuracy"]) == pytest.approx(
            np.mean(trial["folds"]))
    assert state["best"] == "t002"


def test_cv_with_a_validation_file_is_refused_where_it_is_set(tmp_path: Path) -> None:
    base = iris_config(data={"path": str(REPO / "datasets" / "iris.csv"), "target": "species",
                             "validation_path": str(REPO / "datasets" / "iris.csv")})
    path = write_sweep(tmp_path, base=base, cv=3)
    result = invoke(str(path))
    assert result.exit_code == 2
    assert f"{path}:{line_of(path, 'cv:')}:1: cv: " in result.output
    assert "leave out validation_path and validation_fraction" in result.output


def test_optuna_proposes_the_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("optuna")
    monkeypatch.chdir(tmp_path)
    blocks = [{"type": "dense", "units": 4, "activation": "relu"},
              {"type": "dense", "units": 8, "activation": "tanh"}]
    path = write_sweep(tmp_path, search="optuna", samples=5, seed=2, parameters={
        "optimizer.learning_rate": {"loguniform": [0.001, 0.1]},
        "model.layers.0": {"choice": blocks},
        "training.batch_size": {"int": [8, 32], "q": 8}})
    result = invoke(str(path), "--workers", "2")
    assert result.exit_code == 0, result.output
    root = sweep_dir(tmp_path)
    state = json.loads((root / "sweep.json").read_text())
    assert [t["id"] for t in state["trials"]] == ["t001", "t002", "t003", "t004", "t005"]
    for trial in state["trials"]:
        assert trial["status"] == "finished"
        values = trial["params"]
        assert 0.001 <= values["optimizer.learning_rate"] <= 0.1
        assert values["model.layers.0"] in blocks
        assert values["training.batch_size"] in (8, 16, 24, 32)
        config = yaml.safe_load((root / trial["id"] / "config.yaml").read_text())
        assert config["training"]["batch_size"] == values["training.batch_size"]
    assert len({t["params"]["optimizer.learning_rate"] for t in state["trials"]}) == 5


def test_optuna_on_ray_takes_no_folds(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, search="optuna", executor="ray", cv=3)
    result = invoke(str(path))
    assert result.exit_code == 2
    assert f"{path}:{line_of(path, 'cv:')}:1: cv: on Ray, Optuna's trials are single " \
           "runs" in result.output


def test_plot_of_a_sweep_draws_the_metric_against_each_parameter(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    from bpcli import plots

    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, search="grid", parameters={
        "optimizer.learning_rate": {"grid": [0.001, 0.05]},
        "model.layers.0": {"grid": [{"type": "dense", "units": 4},
                                    {"type": "dense", "units": 8}]}})
    assert invoke(str(path), "--workers", "2").exit_code == 0
    root = sweep_dir(tmp_path)
    figures: list[Any] = []
    monkeypatch.setattr(plots, "_write_png", lambda figure, out: figures.append(figure))
    result = CliRunner().invoke(app, ["plot", str(root), "--out", "s.png"])
    assert result.exit_code == 0, result.output
    assert "the sweep's metric against each parameter written to s.png" in result.output
    (figure,) = figures
    axes = {a.get_xlabel(): a for a in figure.axes}
    assert set(axes) == {"optimizer.learning_rate", "model.layers.0"}
    scores = sorted(float(r["val_accuracy"]) for r in results(root))
    for a in axes.values():
        assert a.get_ylabel() == "val_accuracy"
        ys = sorted(float(y) for c in a.collections for y in c.get_offsets()[:, 1])
        assert ys == pytest.approx(scores)
    assert axes["optimizer.learning_rate"].get_xscale() == "log"  # spans 50-fold
    labels = [t.get_text() for t in axes["model.layers.0"].get_xticklabels()]
    assert labels == ["units=4", "units=8"]
