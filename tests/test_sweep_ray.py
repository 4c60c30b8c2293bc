"""bp sweep --executor ray on a real single-node Ray cluster, started by the test and
reached through --address, as a user reaches an existing cluster."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bpcli.cli import app
from tests.conftest import REPO, iris_config

pytest.importorskip("ray.tune")
# Under pytest-xdist these tests run on one worker (conftest.ONE_WORKER), which starts the
# module's Ray head once: one Ray head at a time on the machine.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A Ray head of its own (its own port and temporary directory, so that other Ray
    instances on the machine are left alone), stopped by killing its process group."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="bpray-", dir="/tmp")  # short: Ray's socket paths
    # a test cluster on this machine alone: no token (the client below sets the same)
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
         "--num-cpus", "2", "--port", str(port), "--temp-dir", temp,
         "--include-dashboard=false", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # the GCS listens once the head is up
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None, "ray start exited"
            assert time.monotonic() < deadline, "the Ray head did not come up"
            time.sleep(0.5)
        time.sleep(2.0)  # the raylet registers a moment after the GCS listens
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # whatever of it is left
        except ProcessLookupError:
            pass


def rows(root: Path) -> dict[str, dict[str, str]]:
    with (root / "results.csv").open() as f:
        return {r["trial"]: r for r in csv.DictReader(f)}


def test_ray_runs_the_same_trials_as_the_local_executor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ray_cluster: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    base = iris_config(optimizer={"name": "sgd", "learning_rate": 0.1},
                       training={"epochs": 4, "batch_size": 16, "seed": 0})
    sweep = {"base": base, "metric": "val_loss", "search": "grid",
             "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 3},
             "parameters": {"optimizer.learning_rate": {"grid": [0.01, 0.1, 0.3, 1e30]}}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    result = CliRunner().invoke(app, ["sweep", str(path), "--executor", "ray", "--address",
                                      ray_cluster, "--workers", "2"])
    assert result.exit_code == 0, result.output
    (root,) = [p for p in (tmp_path / "runs").iterdir() if (p / "sweep.json").is_file()]
    state = json.loads((root / "sweep.json").read_text())
    assert state["executor"] == "ray" and state["address"] == ray_cluster
    by_ray = rows(root)
    # the diverging rate trails at the first rung: Ray's ASHA stops it, and it ends as a
    # run stopped early does, its model written
    assert by_ray["t004"]["status"] == "stopped" and by_ray["t004"]["epochs"] == "1"
    assert json.loads((root / "t004" / "summary.json").read_text())["status"] == \
        "stopped early"
    assert (root / "t004" / "model.npz").is_file()
    # a trial Ray let finish scored exactly as the local executor scores it
    finished = [t for t, r in by_ray.items() if r["status"] == "finished"]
    assert finished
    local = CliRunner().invoke(app, ["sweep", str(path), "--workers", "1"])
    assert local.exit_code == 0, local.output
    (other,) = [p for p in (tmp_path / "runs").iterdir()
                if (p / "sweep.json").is_file() and p != root]
    by_local = rows(other)
    for trial in finished:
        if by_local[trial]["status"] == "finished":
            assert by_ray[trial]["val_loss"] == by_local[trial]["val_loss"]


def test_an_unreachable_cluster_is_one_line(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": iris_config(), "parameters": {
        "optimizer.learning_rate": {"grid": [0.01]}}}))
    result = CliRunner().invoke(app, ["sweep", str(path), "--address", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "--address is a Ray cluster's: give --executor ray with it" in result.output


def test_optuna_proposes_the_trials_on_ray(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ray_cluster: str) -> None:
    pytest.importorskip("optuna")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    base = iris_config(training={"epochs": 3, "batch_size": 16, "seed": 0})
    blocks = [{"type": "dense", "units": 4}, {"type": "dense", "units": 8}]
    sweep = {"base": base, "metric": "val_accuracy", "search": "optuna", "samples": 4,
             "executor": "ray", "parameters": {
                 "optimizer.learning_rate": {"loguniform": [0.001, 0.1]},
                 "model.layers.0": {"choice": blocks},
                 "training.batch_size": {"int": [8, 16], "q": 8}}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    result = CliRunner().invoke(app, ["sweep", str(path), "--address", ray_cluster,
                                      "--workers", "2"])
    assert result.exit_code == 0, result.output
    (root,) = [p for p in (tmp_path / "runs").iterdir() if (p / "sweep.json").is_file()]
    found = rows(root)
    assert len(found) == 4 and all(t.startswith("t-") for t in found)
    for trial, row in found.items():
        assert row["status"] == "finished"
        config = yaml.safe_load((root / trial / "config.yaml").read_text())
        assert 0.001 <= config["optimizer"]["learning_rate"] <= 0.1
        assert config["optimizer"]["learning_rate"] == float(row["optimizer.learning_rate"])
        assert config["model"]["layers"][0]["units"] in (4, 8)
        assert config["training"]["batch_size"] in (8, 16)
    assert json.loads((root / "sweep.json").read_text())["best"] in found


def test_a_trial_ray_ended_after_its_stop_is_finished_as_it_would_have_ended(
        tmp_path: Path) -> None:
    """Ray may end a trial's worker soon after its scheduler says stop, before the run's
    final writes (it did on a busy machine): the trial is then carried on from its last
    checkpoint to the same rung, and ends as if its worker had lived."""
    import numpy as np

    from bpcli.rundir import write_json
    from bpcli.sweep.ray_executor import STOPPED_AT, _outcome
    from bpcli.sweep.trial import TrialTask, run_trial

    base = iris_config(training={"epochs": 4, "batch_size": 16, "seed": 0})
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": base, "metric": "val_loss", "search": "grid",
                                    "parameters": {"optimizer.learning_rate":
                                                   {"grid": [0.05]}}}))

    def task(name: str) -> TrialTask:
        return TrialTask(trial_id="t001", params={"optimizer.learning_rate": 0.05},
                         run_dir=tmp_path / name, sweep_path=path, base_path=None,
                         metric="val_loss", threads=1, rungs=(2,))

    def quiet(kind: str, name: str, payload: dict[str, object]) -> None:
        pass

    lived = run_trial(task("lived"), quiet, lambda *asked: False)
    assert lived.status == "stopped" and lived.epochs == 2

    def ended_by_ray(trial_id: str, epoch: int, score: float | None) -> bool:
        write_json(tmp_path / "ended" / STOPPED_AT, {"epoch": epoch})  # as the worker does
        raise SystemExit  # and Ray ends it there
    with pytest.raises(SystemExit):
        run_trial(task("ended"), quiet, ended_by_ray)
    assert not (tmp_path / "ended" / "model.npz").exists()

    outcome = _outcome(task("ended"), None, False)
    assert (outcome["status"], outcome["epochs"], outcome["best_epoch"]) == (
        "stopped", 2, lived.best_epoch)
    assert outcome["score"] == lived.score
    with np.load(tmp_path / "lived" / "model.npz") as a, \
            np.load(tmp_path / "ended" / "model.npz") as b:
        params = [k for k in a.files if k.startswith("param/")]
        assert params
        for key in params:
            np.testing.assert_array_equal(a[key], b[key])
