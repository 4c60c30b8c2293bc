"""Runs that can be trusted: bit-exact resume, graceful stops, hard kills, divergence."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from bpcli import session as train_command
from bpcli.cli import app
from bpcli.modelfile import load_model
from tests.conftest import DATASETS, iris_config

Writer = Callable[..., Path]


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "runs").glob("*") if p.is_dir())


def params(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {k: archive[k] for k in archive.files if k.startswith(("param/", "opt/"))}


def metrics(run_dir: Path) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO((run_dir / "metrics.csv").read_text())))
    return [row[:-1] for row in rows]  # all but the seconds column


def assert_same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


class StopAfter:
    """Stands in for StopOnSignal: asks the trainer to stop after ``calls`` batches."""

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def __call__(self) -> bool:
        self.calls -= 1
        return self.calls < 0

    def __enter__(self) -> StopAfter:
        return self

    def deferred(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    @property
    def requested(self) -> bool:
        return self.calls < 0

    def __exit__(self, *exc: object) -> None:
        return None


CONFIGS: dict[str, dict[str, Any]] = {
    "adam+dropout": iris_config(
        model={"layers": [{"type": "dense", "units": 16}, {"type": "dropout", "rate": 0.3},
                          {"type": "dense"}]},
        training={"epochs": 6, "batch_size": 16, "seed": 3}),
    "nesterov": iris_config(
        optimizer={"name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
        training={"epochs": 6, "batch_size": 32, "seed": 1}),
    "schedule+batch_norm+early_stopping": iris_config(
        model={"layers": [{"type": "dense", "units": 16}, {"type": "batch_norm"},
                          {"type": "dense"}]},
        optimizer={"name": "adamw", "learning_rate": 0.05},
        training={"epochs": 6, "batch_size": 16, "seed": 2,
                  "schedule": {"name": "reduce_on_plateau", "patience": 1, "factor": 0.5},
                  "early_stopping": {"patience": 4}}),
}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("stop_after", [5, 12])  # mid-epoch; iris has 8 or 4 batches/epoch
def test_interrupted_then_resumed_is_bit_identical(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
    name: str, stop_after: int,
) -> None:
    path = write_config(CONFIGS[name])
    assert runner.invoke(app, ["train", str(path)]).exit_code == 0
    (straight,) = run_dirs(in_tmp)

    monkeypatch.setattr(train_command, "StopOnSignal", lambda: StopAfter(stop_after))
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 130, result.output
    (stopped,) = [d for d in run_dirs(in_tmp) if d != straight]
    assert f"bp train --resume {stopped.relative_to(in_tmp)}" in result.output
    assert json.loads((stopped / "summary.json").read_text())["status"] == "interrupted"

    monkeypatch.setattr(train_command, "StopOnSignal", lambda: StopAfter(10**9))
    result = runner.invoke(app, ["train", "--resume", str(stopped)])
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output
    assert_same_arrays(params(straight / "model.npz"), params(stopped / "model.npz"))
    assert_same_arrays(params(straight / "checkpoints" / "last.npz"),
                       params(stopped / "checkpoints" / "last.npz"))
    assert metrics(straight) == metrics(stopped)


def test_resume_refuses_changed_data_unless_forced(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = in_tmp / "iris.csv"
    data.write_text((DATASETS / "iris.csv").read_text())
    config = iris_config(data={"path": str(data), "target": "species"})
    monkeypatch.setattr(train_command, "StopOnSignal", lambda: StopAfter(10))
    assert runner.invoke(app, ["train", str(write_config(config))]).exit_code == 130
    (run_dir,) = run_dirs(in_tmp)
    with data.open("a") as f:
        f.write("5.0,3.0,1.5,0.2,setosa\n")
    monkeypatch.setattr(train_command, "StopOnSignal", lambda: StopAfter(10**9))
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 2, result.output
    assert f"data file {data} changed" in result.output and "--force" in result.output
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--force"])
    assert result.exit_code == 0, result.output


def test_resume_refuses_an_edited_config(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(train_command, "StopOnSignal", lambda: StopAfter(10))
    assert runner.invoke(app, ["train", str(write_config(iris_config()))]).exit_code == 130
    (run_dir,) = run_dirs(in_tmp)
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("epochs: 5", "epochs: 7"))
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 2 and "config.yaml was edited" in result.output


@pytest.mark.parametrize("args", [[], ["x.yaml", "--resume", "runs"], ["--resume", "nowhere"]])
def test_train_argument_errors(runner: CliRunner, in_tmp: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_not_enough_space_is_detected_before_training(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bpcli import rundir

    class Usage:
        free = 1000

    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda path: Usage())
    result = runner.invoke(app, ["train", str(write_config(iris_config()))])
    assert result.exit_code == 2 and "MiB free" in result.output
    assert run_dirs(in_tmp) == []


# -- divergence ------------------------------------------------------------------------------


def diabetes(lr: float, **training: Any) -> dict[str, Any]:
    return {"data": {"path": str(DATASETS / "diabetes.csv"), "target": "progression"},
            "model": {"layers": [{"type": "dense", "units": 16}, {"type": "dense"}]},
            "optimizer": {"name": "sgd", "learning_rate": lr},
            "training": {"epochs": 4, **training}}


def test_divergence_names_the_layer_and_keeps_the_last_good_model(
    runner: CliRunner, in_tmp: Path, write_config: Writer,
) -> None:
    result = runner.invoke(app, ["train", str(write_config(diabetes(5.0)))])
    assert result.exit_code == 1, result.output
    assert "diverged at epoch 1, batch" in result.output
    assert "the loss overflowed" in result.output and "learning rate" in result.output
    (run_dir,) = run_dirs(in_tmp)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "diverged"


def test_divergence_diagnosis_finds_the_first_non_finite_place() -> None:
    from bpcli.nn import Activation, Dense, Network
    from bpcli.nn.losses import MeanSquaredError
    from bpcli.trainer import _first_non_finite

    def network() -> Network:
        layers = [Dense(4), Activation("tanh"), Dense(1)]
        return Network(layers, MeanSquaredError(), (3,), np.random.default_rng(0))

    X = np.ones((2, 3), dtype=np.float32)
    broken = network()
    broken.layers[2].params["b"][0] = np.nan
    assert _first_non_finite(broken, X) == "parameter b of layer 1 (dense) is not finite"
    huge = network()
    with np.errstate(over="ignore", invalid="ignore"):
        where = _first_non_finite(huge, np.full((2, 3), 3e38, dtype=np.float32))
    assert where == "the output of layer 0 (dense) is not finite"
    fine = network()
    fine.layers[0].grads["W"][1, 1] = np.inf
    assert _first_non_finite(fine, X) == "the gradient of W in layer 0 (dense) is not finite"


def test_rollback_policy_lowers_the_rate_and_records_it(
    runner: CliRunner, in_tmp: Path, write_config: Writer,
) -> None:
    config = diabetes(0.6, on_divergence="rollback", rollback_lr_factor=0.1, max_rollbacks=3)
    result = runner.invoke(app, ["train", str(write_config(config))])
    assert result.exit_code == 0, result.output
    assert "rolled back" in result.output
    (run_dir,) = run_dirs(in_tmp)
    rows = list(csv.DictReader(io.StringIO((run_dir / "metrics.csv").read_text())))
    assert int(rows[-1]["rollbacks"]) >= 1
    assert float(rows[-1]["learning_rate"]) < 0.6
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["rollbacks"] >= 1


def test_rollback_gives_up_after_max_rollbacks(
    runner: CliRunner, in_tmp: Path, write_config: Writer,
) -> None:
    config = diabetes(1e6, on_divergence="rollback", rollback_lr_factor=0.9, max_rollbacks=2)
    result = runner.invoke(app, ["train", str(write_config(config))])
    assert result.exit_code == 1 and "after 2 rollbacks" in result.output


# -- real processes and signals --------------------------------------------------------------


def slow_config(tmp: Path) -> dict[str, Any]:
    """A run of a few seconds, checkpointing many times a second."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 8))
    y = X[:, 0] * X[:, 1] + np.sin(X[:, 2])
    data = tmp / "slow.csv"
    header = ",".join([f"x{i}" for i in range(8)] + ["y"])
    np.savetxt(data, np.column_stack([X, y]), delimiter=",", header=header, comments="",
               fmt="%.6f")
    return {"data": {"path": str(data), "target": "y"},
            "model": {"layers": [{"type": "dense", "units": 64},
                                 {"type": "dropout", "rate": 0.1},
                                 {"type": "dense", "units": 64}, {"type": "dense"}]},
            "optimizer": {"name": "adam", "learning_rate": 0.001},
            "training": {"epochs": 40, "batch_size": 16, "seed": 0},
            "output": {"name": "slow"}}


def start(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bpcli", "train", *args, str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def signal_mid_run(proc: subprocess.Popen[str], sig: int, epochs: int) -> None:
    """Send ``sig`` to a training process of ``epochs`` epochs (started by ``start``)
    while it is surely still training.

    Sent as soon as an epoch has ended, a signal could still land after the last one on
    a busy machine (slow_config's training is about a second) and find the run finished.
    So the process is paused (SIGSTOP) as its first epoch line comes, the epoch lines it
    printed before the pause are counted, and the signal is sent while it is paused: with
    epochs still to run when it continues (SIGCONT), it arrives during training."""
    assert proc.stdout is not None
    out, printed = proc.stdout.fileno(), b""
    deadline = time.monotonic() + 60
    while not re.search(rb"^epoch .*\n", printed, re.MULTILINE):
        assert time.monotonic() < deadline, f"no epoch ended in 60 s: {printed!r}"
        if select.select([out], [], [], 0.1)[0]:
            chunk = os.read(out, 1 << 16)
            assert chunk, f"bp train exited before an epoch ended: {printed!r}"
            printed += chunk
    os.kill(proc.pid, signal.SIGSTOP)
    _, status = os.waitpid(proc.pid, os.WUNTRACED)  # a stop is reported, not reaped
    assert os.WIFSTOPPED(status), f"bp train exited: {printed!r}"
    while select.select([out], [], [], 0)[0] and (chunk := os.read(out, 1 << 16)):
        printed += chunk
    ended = len(re.findall(rb"^epoch ", printed, re.MULTILINE))  # a line begun counts
    assert ended < epochs - 1, f"{ended} of {epochs} epochs over before it could be paused"
    proc.send_signal(sig)
    os.kill(proc.pid, signal.SIGCONT)


def wait_for_run(root: Path, timeout: float = 60.0) -> Path:
    """The run directory a training process makes under ``root/runs``, once it is there
    (``runs/`` itself comes a moment before it)."""
    deadline = time.monotonic() + timeout
    while not (found := run_dirs(root) if (root / "runs").is_dir() else []):
        assert time.monotonic() < deadline, "no run directory appeared"
        time.sleep(0.02)
    (run_dir,) = found
    return run_dir


def wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_and_resume_matches(
    in_tmp: Path, write_config: Writer, sig: signal.Signals,
) -> None:
    slow = slow_config(in_tmp)
    config = write_config(slow)
    proc = start(config)
    signal_mid_run(proc, sig, slow["training"]["epochs"])
    run_dir = wait_for_run(in_tmp)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"bp train --resume {run_dir.relative_to(in_tmp)}" in err and "Traceback" not in err
    resumed = subprocess.run([sys.executable, "-m", "bpcli", "train", "--resume", str(run_dir)],
                             capture_output=True, text=True, timeout=120, check=False)
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run([sys.executable, "-m", "bpcli", "train", str(config)],
                              capture_output=True, text=True, timeout=120, check=False)
    assert straight.returncode == 0, straight.stderr
    other = next(d for d in run_dirs(in_tmp) if d != run_dir)
    assert_same_arrays(params(run_dir / "model.npz"), params(other / "model.npz"))
    assert metrics(run_dir) == metrics(other)


def test_second_ctrl_c_stops_at_once_without_damage(in_tmp: Path, write_config: Writer) -> None:
    slow = slow_config(in_tmp)
    config = write_config(slow)
    proc = start(config)
    signal_mid_run(proc, signal.SIGINT, slow["training"]["epochs"])
    run_dir = wait_for_run(in_tmp)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    for npz in run_dir.rglob("*.npz"):
        load_model(npz)
    json.loads((run_dir / "summary.json").read_text())


def test_sigkill_at_random_moments_leaves_loadable_files(
    in_tmp: Path, write_config: Writer,
) -> None:
    config = write_config(slow_config(in_tmp))
    delays = np.random.default_rng(42).uniform(0.0, 0.6, size=6)
    for count, delay in enumerate(delays, start=1):
        proc = start(config)
        deadline = time.monotonic() + 60
        while len(run_dirs(in_tmp)) < count:  # its run directory exists: training is near
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        time.sleep(float(delay))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert len(run_dirs(in_tmp)) == len(delays)
    checked = 0
    for run_dir in run_dirs(in_tmp):
        for npz in run_dir.rglob("*.npz"):
            load_model(npz)
            checked += 1
        for name in ("summary.json", "fingerprints.json"):
            if (run_dir / name).exists():
                json.loads((run_dir / name).read_text())
        if (run_dir / "metrics.csv").exists():
            assert metrics(run_dir)[0][0] == "epoch"
    assert checked > 0  # some kills landed after checkpoints were written
    # the newest run with a checkpoint resumes to the end
    resumable = [d for d in run_dirs(in_tmp) if (d / "checkpoints" / "last.npz").exists()]
    resumed = subprocess.run([sys.executable, "-m", "bpcli", "train", "--resume",
                              str(resumable[-1])], capture_output=True, text=True,
                             timeout=120, check=False)
    assert resumed.returncode == 0, resumed.stderr
