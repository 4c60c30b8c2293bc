"""bp as a process among others: readers that go away, signals, dead runs, finished runs."""

from __future__ import annotations

import json
import os
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
from bpcli.commands.runs import read_run
from tests.conftest import CONFIGS, DATASETS, iris_config
from tests.test_runs import (
    StopAfter,
    assert_same_arrays,
    diabetes,
    params,
    run_dirs,
    signal_mid_run,
    slow_config,
    start,
    wait_for,
    wait_for_run,
)

Writer = Callable[..., Path]
BP = [sys.executable, "-m", "bpcli"]


def closed_reader(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run bp with its stdout a pipe whose reader has already gone (as ``| head -0``)."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([*BP, *args], stdout=write, stderr=subprocess.PIPE, text=True,
                              cwd=cwd, timeout=120, check=False)
    finally:
        os.close(write)
    return proc


# -- a reader that goes away -------------------------------------------------------------


def test_training_through_a_closed_pipe_finishes_the_run(in_tmp: Path,
                                                         write_config: Writer) -> None:
    proc = closed_reader(["train", str(write_config(iris_config()))], in_tmp)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    (run_dir,) = run_dirs(in_tmp)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 5
    assert (run_dir / "model.npz").is_file()


def test_a_closed_pipe_keeps_a_failing_check_failing(in_tmp: Path) -> None:
    """The exit code is the one the work earns: a diverging run still exits 1."""
    path = in_tmp / "config.yaml"
    path.write_text(json.dumps(diabetes(5.0)))
    proc = closed_reader(["train", str(path)], in_tmp)
    assert proc.returncode == 1, proc.stderr
    assert "diverged" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("trained")
    path = where / "config.yaml"
    path.write_text(json.dumps(iris_config()))
    subprocess.run([*BP, "train", str(path)], cwd=where, check=True, capture_output=True)
    (run_dir,) = run_dirs(where)
    return run_dir


@pytest.mark.parametrize("args", [
    ["--help"], ["train", "--help"], ["inspect", "{model}"], ["inspect", "{model}", "--json"],
    ["explain", "{model}", "--rows", "5"], ["evaluate", "{model}", "{data}"],
    ["evaluate", "{model}", "{data}", "--json"], ["validate", "{config}"],
    ["gradcheck", "{config}"], ["runs", "{runs}"], ["schema"], ["predict", "{model}", "{data}"],
], ids=lambda args: " ".join(args))
def test_every_command_through_a_closed_pipe_exits_0(trained: Path, args: list[str]) -> None:
    values = {"model": str(trained / "model.npz"), "data": str(DATASETS / "iris.csv"),
              "config": str(CONFIGS / "iris.yaml"), "runs": str(trained.parent)}
    proc = closed_reader([a.format(**values) for a in args], trained.parent)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


# -- signals ------------------------------------------------------------------------------


def test_sighup_stops_like_sigterm(in_tmp: Path, write_config: Writer) -> None:
    """Closing the terminal: a checkpoint, an honest summary, and the run resumes."""
    slow = slow_config(in_tmp)
    proc = start(write_config(slow))
    signal_mid_run(proc, signal.SIGHUP, slow["training"]["epochs"])
    run_dir = wait_for_run(in_tmp)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert f"bp train --resume {run_dir.relative_to(in_tmp)}" in err


def test_a_signal_while_the_run_finishes_waits_for_the_writes(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C (twice) just as the model is being written: the run completes on disk, and
    the interruption is reported after it."""
    save_model = train_command.save_model

    def interrupted_save(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        save_model(*args, **kwargs)

    monkeypatch.setattr(train_command, "save_model", interrupted_save)
    result = runner.invoke(app, ["train", str(write_config(iris_config()))])
    assert result.exit_code == 130, result.output
    assert "interrupted as the run finished; it is complete" in result.output
    (run_dir,) = run_dirs(in_tmp)
    assert (run_dir / "model.npz").is_file()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_a_second_signal_still_stops_training_at_once(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outside the final writes, the second signal acts at once, and says how to resume."""
    from bpcli.signals import StopOnSignal

    class SignalTwice(StopOnSignal):
        batches = 0

        def __call__(self) -> bool:
            self.batches += 1
            if self.batches == 3:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
            return super().__call__()

    monkeypatch.setattr(train_command, "StopOnSignal", SignalTwice)
    config = iris_config(training={"epochs": 5, "batch_size": 16, "seed": 0})
    result = runner.invoke(app, ["train", str(write_config(config))])
    assert result.exit_code == 130, result.output
    assert "stopped at once" in result.output and "bp train --resume" in result.output
    (run_dir,) = run_dirs(in_tmp)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"


# -- dead runs ----------------------------------------------------------------------------


def test_a_killed_run_shows_as_crashed_and_resumes_without_its_litter(
    in_tmp: Path, write_config: Writer,
) -> None:
    long_run = slow_config(in_tmp)
    long_run["training"]["epochs"] = 10_000  # still running when it is killed
    config = write_config(long_run)
    proc = subprocess.Popen([*BP, "train", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    run_dir = wait_for_run(in_tmp)
    wait_for(run_dir / "checkpoints" / "last.npz")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pid"] == proc.pid and summary["host"] and summary["process_started"]
    assert read_run(run_dir).status == "running"
    again = subprocess.run([*BP, "train", "--resume", str(run_dir)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert again.returncode == 2 and "another bp process is training this run" in again.stderr

    proc.kill()
    proc.wait(timeout=30)
    assert read_run(run_dir).status == "crashed"
    listed = subprocess.run([*BP, "runs"], capture_output=True, text=True, check=True)
    assert f"carry it on with: bp train --resume {run_dir.relative_to(in_tmp)}" in (
        listed.stdout)
    litter = [run_dir / ".curves.png.abc123.tmp", run_dir / "checkpoints" / ".last.npz.x.tmp"]
    for path in litter:
        path.write_bytes(b"")
    done = read_run(run_dir).epochs_done
    resumed = subprocess.run([*BP, "train", "--resume", str(run_dir), "--epochs",
                              str(done + 2)], capture_output=True, text=True, timeout=120,
                             check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert not any(path.exists() for path in litter)
    assert not list(run_dir.rglob("*.tmp"))
    assert read_run(run_dir).status == "finished"


# -- finished runs ------------------------------------------------------------------------


def test_a_finished_run_is_not_trained_again_but_can_be_extended(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def config(epochs: int) -> dict[str, Any]:
        return iris_config(training={"epochs": epochs, "batch_size": 16, "seed": 0})

    assert runner.invoke(app, ["train", str(write_config(config(8), "eight.yaml"))]
                         ).exit_code == 0
    (straight,) = run_dirs(in_tmp)
    assert runner.invoke(app, ["train", str(write_config(config(5), "five.yaml"))]
                         ).exit_code == 0
    (extended,) = [d for d in run_dirs(in_tmp) if d != straight]
    model_before = (extended / "model.npz").read_bytes()

    result = runner.invoke(app, ["train", "--resume", str(extended)])
    assert result.exit_code == 2
    assert "the run has finished" in result.output and "--epochs 10" in result.output
    assert (extended / "model.npz").read_bytes() == model_before  # nothing rewritten
    result = runner.invoke(app, ["train", "--resume", str(extended), "--epochs", "5"])
    assert result.exit_code == 2 and "not more than the 5 epochs already done" in result.output

    first = json.loads((extended / "summary.json").read_text())["wall_time_s"]
    result = runner.invoke(app, ["train", "--resume", str(extended), "--epochs", "8"])
    assert result.exit_code == 0, result.output
    assert "extending" in result.output
    summary = json.loads((extended / "summary.json").read_text())
    assert summary["epochs"] == 8 and summary["wall_time_s"] > first
    # five epochs and three more are the eight epochs of a straight run, bit for bit
    assert_same_arrays(params(straight / "model.npz"), params(extended / "model.npz"))
    assert_same_arrays(params(straight / "checkpoints" / "last.npz"),
                       params(extended / "checkpoints" / "last.npz"))


def test_extending_undoes_an_early_stop(
    runner: CliRunner, in_tmp: Path, write_config: Writer,
) -> None:
    config = iris_config(training={"epochs": 30, "batch_size": 16, "seed": 0,
                                   "early_stopping": {"patience": 1, "min_delta": 10.0}})
    assert runner.invoke(app, ["train", str(write_config(config))]).exit_code == 0
    (run_dir,) = run_dirs(in_tmp)
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 2
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--epochs", "4"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    # it trains again, until the same rule stops it again
    assert summary["epochs"] == 3 and summary["status"] == "stopped early"


def test_epochs_goes_with_resume(runner: CliRunner, in_tmp: Path,
                                 write_config: Writer) -> None:
    result = runner.invoke(app, ["train", str(write_config(iris_config())), "--epochs", "3"])
    assert result.exit_code == 2 and "--epochs goes with --resume" in result.output


def test_a_run_killed_while_finishing_is_completed_by_resume(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """All epochs done and checkpointed, but no model: resume writes it, trains nothing."""
    monkeypatch.setattr(train_command, "StopOnSignal", lambda: StopAfter(10**9))

    def killed(*args: object, **kwargs: object) -> None:
        raise SystemExit(137)

    monkeypatch.setattr(train_command, "save_model", killed)
    runner.invoke(app, ["train", str(write_config(iris_config()))])
    monkeypatch.undo()
    (run_dir,) = run_dirs(in_tmp)
    assert not (run_dir / "model.npz").exists()
    started = time.monotonic()
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert (run_dir / "model.npz").is_file() and time.monotonic() - started < 30
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    assert np.isfinite(json.loads((run_dir / "summary.json").read_text())["wall_time_s"])


def test_running_out_of_memory_is_one_line(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Memory another program took after bp's estimate: a message, not a traceback."""
    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(train_command, "prepare", exhausted)
    result = runner.invoke(app, ["train", str(write_config(iris_config()))])
    assert result.exit_code == 2
    assert result.output.startswith("bp: ran out of memory;") and result.output.count("\n") == 1
