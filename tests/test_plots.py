"""Pictures: curves.png in every run directory, bp plot, and life without matplotlib."""

from __future__ import annotations

import csv
import io
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bpcli import plots
from bpcli import session as train_command
from bpcli.cli import app
from bpcli.events import EpochEnded, Stopped, TrainingEnded
from bpcli.rundir import metrics_header
from tests.conftest import REPO, iris_config
from tests.test_runs import StopAfter, run_dirs

Writer = Callable[..., Path]
SIZE = (int(plots.WIDTH_IN * plots.DPI), int(plots.HEIGHT_IN * plots.DPI))
HINT = "pip install 'bp[plot]'"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def fake_run(root: Path, name: str, epochs: int = 5, metric: str = "accuracy") -> Path:
    """A run directory with only a metrics.csv (bp plot needs no more)."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(metrics_header(metric))
    for e in range(1, epochs + 1):
        writer.writerow([e, 1 / e, 1.2 / e, 1 - 0.5 / e, 0.1 * 0.5**e, 0, 0.01])
    (run_dir / "metrics.csv").write_text(buffer.getvalue())
    return run_dir


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Path]]:
    """Every figure bp writes, with its path; the PNG is still written."""
    figures: list[tuple[Any, Path]] = []
    write = plots._write_png

    def record(figure: Any, path: Path) -> None:
        figures.append((figure, Path(path)))
        write(figure, path)

    monkeypatch.setattr(plots, "_write_png", record)
    return figures


def panels(figure: Any) -> dict[str, dict[str, Any]]:
    """What each of the three panels shows: labels and, by line label, (x, y, style)."""
    assert len(figure.axes) == 3
    shown = {}
    for axes in figure.axes:
        shown[axes.get_title()] = {
            "xlabel": axes.get_xlabel(), "ylabel": axes.get_ylabel(),
            "lines": [(line.get_label(), list(line.get_xdata()), list(line.get_ydata()),
                       line.get_linestyle()) for line in axes.get_lines()],
        }
    return shown


def history(path: Path) -> dict[str, list[float]]:
    """metrics.csv's columns, read with the csv module."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows] for key in rows[0]}


def assert_curves_of_one_run(figure: Any, run_dir: Path) -> None:
    """The picture shows the run's metrics.csv: loss, accuracy and rate against epochs."""
    h = history(run_dir / "metrics.csv")
    shown = panels(figure)
    assert set(shown) == {"Loss", "Validation accuracy", "Learning rate"}
    assert figure._suptitle.get_text() == run_dir.name
    assert all(panel["xlabel"] == "epoch" for panel in shown.values())
    assert shown["Loss"]["lines"] == [("validation", h["epoch"], h["val_loss"], "-"),
                                      ("training", h["epoch"], h["train_loss"], "--")]
    assert shown["Validation accuracy"]["ylabel"] == "val_accuracy"
    assert shown["Validation accuracy"]["lines"] == [
        (run_dir.name, h["epoch"], h["val_accuracy"], "-")]
    assert shown["Learning rate"]["lines"] == [
        (run_dir.name, h["epoch"], h["learning_rate"], "-")]


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every ``import matplotlib...`` fail, as when it is not installed."""
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)


# -- curves.png in the run directory ---------------------------------------------------------


def test_training_writes_curves_png(runner: CliRunner, in_tmp: Path, write_config: Writer,
                                    drawn: list[tuple[Any, Path]]) -> None:
    result = runner.invoke(app, ["train", str(write_config(iris_config()))])
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(in_tmp)
    assert png_size(run_dir / "curves.png") == SIZE
    figure, path = drawn[-1]
    assert path.resolve() == (run_dir / "curves.png").resolve()
    assert_curves_of_one_run(figure, run_dir)
    assert history(run_dir / "metrics.csv")["epoch"] == [1, 2, 3, 4, 5]
    assert not list(run_dir.glob(".curves.png.*"))  # no temporary file left behind


def test_an_interrupted_run_still_gets_its_final_picture(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
    drawn: list[tuple[Any, Path]],
) -> None:
    # 120 training rows in batches of 16: 8 batches an epoch; stop in the third epoch
    monkeypatch.setattr(train_command, "StopOnSignal", lambda: StopAfter(20))
    result = runner.invoke(app, ["train", str(write_config(iris_config()))])
    assert result.exit_code == 130, result.output
    (run_dir,) = run_dirs(in_tmp)
    assert png_size(run_dir / "curves.png") == SIZE
    assert history(run_dir / "metrics.csv")["epoch"] == [1, 2]  # the two epochs done
    assert_curves_of_one_run(drawn[-1][0], run_dir)


class InterruptAfter(StopAfter):
    """A second Ctrl-C: KeyboardInterrupt out of the training loop, with no Stopped event
    (the path that divergence takes too)."""

    def __call__(self) -> bool:
        if super().__call__():
            raise KeyboardInterrupt
        return False


def test_a_run_ended_by_an_exception_still_gets_its_final_picture(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
    drawn: list[tuple[Any, Path]],
) -> None:
    monkeypatch.setattr(train_command, "StopOnSignal", lambda: InterruptAfter(20))
    result = runner.invoke(app, ["train", str(write_config(iris_config()))])
    assert result.exit_code == 130, result.output
    (run_dir,) = run_dirs(in_tmp)
    assert png_size(run_dir / "curves.png") == SIZE
    assert history(run_dir / "metrics.csv")["epoch"] == [1, 2]
    assert_curves_of_one_run(drawn[-1][0], run_dir)


def test_without_matplotlib_training_works_and_says_so_once(
    runner: CliRunner, in_tmp: Path, write_config: Writer, monkeypatch: pytest.MonkeyPatch,
    no_matplotlib: None,
) -> None:
    monkeypatch.setattr(plots, "REDRAW_INTERVAL_S", 0.0)  # try to draw after every epoch
    result = runner.invoke(app, ["train", str(write_config(iris_config()))])
    assert result.exit_code == 0, result.output
    (run_dir,) = run_dirs(in_tmp)
    assert (run_dir / "model.npz").is_file()
    assert not (run_dir / "curves.png").exists()
    assert not list(run_dir.glob(".curves.png.*"))
    notice = f"curves.png skipped: install matplotlib for pictures ({HINT})"
    assert result.output.count(notice) == 1, result.output


def test_bp_never_imports_matplotlib_until_it_draws() -> None:
    code = ("import sys, bpcli.cli, bpcli.commands.train, bpcli.commands.plot, bpcli.plots; "
            "print(sorted(m for m in sys.modules if m.startswith('matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


# -- the throttle ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def epoch_ended(epoch: int) -> EpochEnded:
    return EpochEnded(epoch, 100, 1.0, 1.0, 0.5, 0.1, 0.01, False)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def draws(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> list[float]:
    """Record the clock's time of each picture instead of drawing it."""
    times: list[float] = []
    monkeypatch.setattr(plots, "read_curves", lambda path: None)
    monkeypatch.setattr(plots, "learning_curves", lambda runs, path: times.append(clock.now))
    return times


def test_redraws_at_most_once_per_interval_and_always_at_the_end(
    tmp_path: Path, clock: Clock, draws: list[float],
) -> None:
    writer = plots.CurvesWriter(tmp_path, lambda text: None, interval=5.0, clock=clock)
    for epoch in range(1, 13):  # one epoch a second
        clock.now = float(epoch)
        writer(epoch_ended(epoch))
    assert draws == [5.0, 10.0]
    writer(TrainingEnded(12, 12, 1.0, 0.5, 12.0))
    assert draws == [5.0, 10.0, 12.0]  # the final picture
    writer.finish()
    assert draws == [5.0, 10.0, 12.0]  # nothing new to draw


def test_a_stop_draws_only_when_epochs_are_missing_from_the_picture(
    tmp_path: Path, clock: Clock, draws: list[float],
) -> None:
    writer = plots.CurvesWriter(tmp_path, lambda text: None, interval=5.0, clock=clock)
    clock.now = 5.0
    writer(epoch_ended(1))
    writer(Stopped(2, 3, 8))
    writer.finish()
    assert draws == [5.0]
    clock.now = 6.0
    writer(epoch_ended(2))
    writer.finish()
    assert draws == [5.0, 6.0]


def test_slow_pictures_are_drawn_less_often(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock,
) -> None:
    times: list[float] = []

    def slow_draw(runs: object, path: Path) -> None:
        times.append(clock.now)
        clock.now += 2.0  # a picture that takes 2 s may come every 2 / 5% = 40 s

    monkeypatch.setattr(plots, "read_curves", lambda path: None)
    monkeypatch.setattr(plots, "learning_curves", slow_draw)
    writer = plots.CurvesWriter(tmp_path, lambda text: None, interval=5.0, clock=clock)
    for _ in range(100):
        clock.now += 1.0
        writer(epoch_ended(1))
    assert len(times) >= 2
    assert all(b - a >= 40.0 for a, b in zip(times, times[1:], strict=False))


# -- bp plot -----------------------------------------------------------------------------------


def test_plot_compares_runs(runner: CliRunner, in_tmp: Path,
                           drawn: list[tuple[Any, Path]]) -> None:
    a, b = fake_run(in_tmp, "a"), fake_run(in_tmp, "b", epochs=8)
    result = runner.invoke(app, ["plot", str(a), str(b / "metrics.csv"), "--out", "both.png"])
    assert result.exit_code == 0, result.output
    assert png_size(in_tmp / "both.png") == SIZE
    assert "curves of 2 runs written to both.png" in result.output
    ((figure, path),) = drawn
    assert path.name == "both.png"
    shown = panels(figure)
    ha, hb = history(a / "metrics.csv"), history(b / "metrics.csv")
    # one colour per run; solid validation and dashed training loss for each
    assert shown["Loss"]["lines"] == [("a", ha["epoch"], ha["val_loss"], "-"),
                                      ("_", ha["epoch"], ha["train_loss"], "--"),
                                      ("b", hb["epoch"], hb["val_loss"], "-"),
                                      ("_", hb["epoch"], hb["train_loss"], "--")]
    colours = [line.get_color() for line in figure.axes[0].get_lines()]
    assert colours[0] == colours[1] != colours[2] == colours[3]
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend == ["a", "b", "validation", "training"]
    assert shown["Validation accuracy"]["lines"] == [
        ("a", ha["epoch"], ha["val_accuracy"], "-"), ("b", hb["epoch"], hb["val_accuracy"], "-")]
    # the rates fall from 0.05 to under 0.001: more than tenfold, so a log axis
    assert [line[2] for line in shown["Learning rate (log scale)"]["lines"]] == [
        ha["learning_rate"], hb["learning_rate"]]
    assert figure.axes[2].get_yscale() == "log"


def test_plot_of_real_runs_writes_compare_png_here(
    runner: CliRunner, in_tmp: Path, write_config: Writer, drawn: list[tuple[Any, Path]],
) -> None:
    for seed in (0, 1):
        config = iris_config(training={"epochs": 3, "batch_size": 32, "seed": seed})
        assert runner.invoke(app, ["train", str(write_config(config))]).exit_code == 0
    result = runner.invoke(app, ["plot", *map(str, run_dirs(in_tmp))])
    assert result.exit_code == 0, result.output
    assert png_size(in_tmp / "compare.png") == SIZE
    figure, path = drawn[-1]
    assert path == Path("compare.png")
    shown = panels(figure)
    runs = run_dirs(in_tmp)
    assert [line[0] for line in shown["Validation accuracy"]["lines"]] == [r.name for r in runs]
    assert [line[2] for line in shown["Validation accuracy"]["lines"]] == [
        history(r / "metrics.csv")["val_accuracy"] for r in runs]


@pytest.mark.parametrize(("args", "message"), [
    (["nowhere"], "nowhere: no metrics.csv"),
    (["run", "--out", "x.jpg"], "give a file name ending in .png"),
    (["run", "other"], "measures val_rmse but run measures val_accuracy"),
    (["empty"], "empty: metrics.csv has no epochs yet"),
    (["junk"], "not a bp metrics file"),
    (["binary/metrics.csv"], "binary/metrics.csv: not a bp metrics file (not CSV text)"),
])
def test_plot_refuses_what_it_cannot_draw(
    runner: CliRunner, in_tmp: Path, args: list[str], message: str,
) -> None:
    fake_run(in_tmp, "run")
    fake_run(in_tmp, "other", metric="rmse")
    fake_run(in_tmp, "empty", epochs=0)
    (in_tmp / "junk").mkdir()
    (in_tmp / "junk" / "metrics.csv").write_text("a,b\n1,2\n")
    (in_tmp / "binary").mkdir()
    (in_tmp / "binary" / "metrics.csv").write_bytes(b"\xff\xfe\x00epoch")
    result = runner.invoke(app, ["plot", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_plot_without_matplotlib_exits_2_with_the_hint(
    runner: CliRunner, in_tmp: Path, no_matplotlib: None,
) -> None:
    result = runner.invoke(app, ["plot", str(fake_run(in_tmp, "a"))])
    assert result.exit_code == 2
    assert HINT in result.output
    assert not (in_tmp / "compare.png").exists()


def test_learning_rate_goes_on_a_log_axis_only_when_it_varies_tenfold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    figures: list[Any] = []
    monkeypatch.setattr(plots, "_write_png", lambda figure, path: figures.append(figure))

    def rate_axis(rates: list[float]) -> str:
        n = len(rates)
        curves = plots.Curves("r", "accuracy", list(range(1, n + 1)), [1.0] * n, [1.0] * n,
                              [0.5] * n, rates)
        plots.learning_curves([curves], tmp_path / "x.png")
        return str(figures[-1].axes[2].get_yscale())

    assert rate_axis([0.1, 0.05, 0.02]) == "linear"
    assert rate_axis([0.1, 0.01, 0.001]) == "log"
    assert rate_axis([0.1, 0.0, 0.001]) == "linear"  # a zero rate has no logarithm
