"""The thread count bp chooses: by the size of the products and the cores others leave free."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.config import load_config
from bpcli.experiment import prepare
from bpcli.threads import (
    SMALL_PRODUCT,
    CpuMeter,
    busy_ticks,
    choose_threads,
    largest_product,
    threads_for,
)
from tests.conftest import CONFIGS, iris_config
from tests.test_runs import run_dirs

Writer = Callable[..., Path]


class FakeMeter(CpuMeter):
    """A machine of ``cores`` cores where others use what ``readings`` says, in turn."""

    def __init__(self, cores: int, readings: list[float | None]) -> None:
        self.cores = cores
        self.readings = readings

    def others(self) -> float | None:
        return self.readings.pop(0)


def test_threads_follow_the_free_cores() -> None:
    assert threads_for(2.0, cap=2) == 2  # idle
    assert threads_for(1.9, cap=2) == 2  # idle but for a little noise
    assert threads_for(1.0, cap=2) == 1  # one busy program on two cores
    assert threads_for(1.4, cap=2) == 1  # a core shared is not a free core
    assert threads_for(0.0, cap=2) == 1  # never none
    assert threads_for(8.0, cap=4) == 4  # never above the cap


def test_small_products_get_one_thread_and_large_ones_the_free_cores() -> None:
    applied: list[int] = []
    small = choose_threads(FakeMeter(2, [0.0]), SMALL_PRODUCT - 1, applied.append)
    assert small.threads == 1 and "small products" in small.reason
    large = choose_threads(FakeMeter(2, [0.0]), SMALL_PRODUCT, applied.append)
    assert large.threads == 2 and large.cap == 2
    busy = choose_threads(FakeMeter(2, [1.0]), SMALL_PRODUCT, applied.append)
    assert busy.threads == 1 and busy.cap == 2 and "keep 1.0 of them busy" in busy.reason
    unknown = choose_threads(FakeMeter(2, [None]), SMALL_PRODUCT, applied.append)
    assert unknown.threads == 2
    assert applied == [1, 2, 1, 2]


def test_the_meter_sees_a_busy_process() -> None:
    """A real reading: this process's own work is not counted as others'."""
    meter = CpuMeter()
    x = 0
    for i in range(3_000_000):  # about 0.2 s of this process's CPU
        x += i
    others = meter.others()
    if others is None:
        pytest.skip("no /proc/stat here")
    assert 0.0 <= others <= meter.cores


def test_largest_product_counts_dense_and_convolution_work() -> None:
    mlp = prepare(load_config(CONFIGS / "iris.yaml"))
    network = mlp.build_network(np.random.default_rng(0))
    widths = [layer.params["W"].shape for layer in network.layers if "W" in layer.params]
    assert largest_product(network.layers, 8) == max(8 * a * b for a, b in widths)

    cnn = prepare(load_config(CONFIGS / "digits-cnn.yaml"))
    network = cnn.build_network(np.random.default_rng(0))
    conv = next(layer for layer in network.layers if layer.kind == "conv2d")
    F, C, kh, kw = conv.params["W"].shape
    _, H, W = conv.output_shape
    assert largest_product(network.layers, 32) >= 32 * H * W * F * C * kh * kw


def test_a_thread_count_gives_the_same_numbers_every_time() -> None:
    """Why a run keeps one count: the same count gives the same bits (another count may
    not: OpenBLAS sums 784-long products in another order on one thread than on two)."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(256, 784)).astype(np.float32)
    B = rng.normal(size=(784, 512)).astype(np.float32)
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            assert np.array_equal(A @ B, A @ B)


def test_the_run_records_the_threads(runner: CliRunner, in_tmp: Path,
                                     write_config: Writer,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(variable, "2")  # --threads sets them: undone after the test
    path = write_config(iris_config())
    assert runner.invoke(app, ["train", str(path)]).exit_code == 0
    assert runner.invoke(app, ["train", str(path), "--threads", "2"]).exit_code == 0
    chosen, given = (json.loads((run / "summary.json").read_text())["threads"]
                     for run in run_dirs(in_tmp))
    assert chosen["chosen_by"] == "bp" and chosen["threads"] == 1  # iris: tiny products
    assert "small products" in chosen["reason"]
    assert given == {"threads": 2, "chosen_by": "--threads"}


def test_a_resumed_run_keeps_the_count_it_started_with(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bpcli import session as train_command
    from tests.test_runs import StopAfter

    applied: list[int] = []
    monkeypatch.setattr(train_command, "set_threads", applied.append)
    monkeypatch.setattr(train_command, "StopOnSignal", lambda: StopAfter(10))
    assert runner.invoke(app, ["train", str(write_config(iris_config()))]).exit_code == 130
    (run_dir,) = run_dirs(in_tmp)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["threads"]["threads"] = 3  # as if started on a bigger, idle machine
    (run_dir / "summary.json").write_text(json.dumps(summary))
    monkeypatch.setattr(train_command, "StopOnSignal", lambda: StopAfter(10**9))
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert applied == [3] and "3 threads" in result.output
    assert json.loads((run_dir / "summary.json").read_text())["threads"]["threads"] == 3


def test_niced_work_leaves_its_core_free() -> None:
    """A low-priority program (nice 19) gives way to bp: its time is not counted as
    contention, unless bp runs niced itself (then its own time is there to take off)."""
    stat = ("cpu  500 300 100 9000 10 5 5 0 0 0\n"
            "cpu0 100 200 50 4000 5 2 3 1 0 0\n"
            "cpu1 400 100 50 5000 5 3 2 0 0 0\n"
            "cpu2 999 999 999 999 9 9 9 9 0 0\n"  # not this process's
            "intr 12345\n")
    assert busy_ticks(stat, {0, 1}, niced=False) == (100 + 50 + 2 + 3 + 1) + (400 + 50 + 3 + 2)
    assert busy_ticks(stat, {0, 1}, niced=True) == 611 + 200 + 100
    assert busy_ticks(stat, {1}, niced=False) == 455


def test_predict_and_evaluate_choose_threads_unless_told(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bpcli.commands import evaluate as evaluate_command
    from bpcli.commands import predict as predict_command
    from tests.conftest import DATASETS

    assert runner.invoke(app, ["train", str(write_config(iris_config()))]).exit_code == 0
    (run_dir,) = run_dirs(in_tmp)
    works: list[int] = []

    def record(meter: CpuMeter, work: int) -> None:
        works.append(work)

    monkeypatch.setattr(predict_command, "choose_threads", record)
    monkeypatch.setattr(evaluate_command, "choose_threads", record)
    model, data = str(run_dir / "model.npz"), str(DATASETS / "iris.csv")
    assert runner.invoke(app, ["predict", model, data]).exit_code == 0
    assert runner.invoke(app, ["evaluate", model, data]).exit_code == 0
    # iris' largest product over its 150 rows: 150 x 4 x 8
    assert works == [150 * 4 * 8, 150 * 4 * 8]
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(variable, "2")  # --threads sets them: undone after the test
    assert runner.invoke(app, ["predict", model, data, "--threads", "1"]).exit_code == 0
    assert len(works) == 2  # --threads decides


def test_threads_option_reaches_the_run_summary(in_tmp: Path, write_config: Writer) -> None:
    config = write_config(iris_config())
    proc = subprocess.run([sys.executable, "-m", "bpcli", "train", "--threads", "1",
                           str(config)], capture_output=True, text=True, check=False,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = run_dirs(in_tmp)
    environment = json.loads((run_dir / "summary.json").read_text())["environment"]
    assert environment["blas_threads"] == "1"
    assert environment["blas"] != "unknown"
