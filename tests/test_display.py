"""The live training screen, its number formats and ETA, and plain output: what a person
sees on a terminal of a given size, and in a pipe."""

from __future__ import annotations

import io
import math
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console  # noqa: TID251 - the test plays the terminal

from bpcli import inference
from bpcli.commands import predict as predict_module
from bpcli.commands.gradcheck import gradcheck
from bpcli.display import (
    Display,
    TrainingView,
    clock_time,
    epoch_eta,
    fit_general,
    fit_number,
    fold,
    run_eta,
    wrap_words,
)
from bpcli.events import (
    BatchesDone,
    EpochEnded,
    Health,
    Progress,
    RolledBack,
    StoppedEarly,
    TrainingEnded,
    TrainingStarted,
)
from bpcli.nn import Activation, Dense, Network
from bpcli.nn.gradcheck import check_gradients
from bpcli.nn.losses import SoftmaxCrossEntropy
from tests.conftest import CONFIGS, DATASETS, iris_config

HEALTH = Health(2.11, {"0": 4.8e-3, "2": 1.6e-3, "5": 1.9e-3, "9": 3.4e-4, "11": 1.2e-2},
                0.05)
STOP_NOTE = ("stopped early after epoch 37: val_accuracy has not improved for 12 epochs; "
             "keeping epoch 12")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def terminal(width: int, height: int) -> Display:
    """A display drawing on a terminal of a fixed size, into a string."""
    display = Display(io.StringIO(), interactive=True)
    display.console = Console(file=io.StringIO(), width=width, height=height,
                              force_terminal=True, color_system=None, highlight=False,
                              soft_wrap=True)
    return display


def epoch(n: int, *, best: bool = False, health: Health | None = HEALTH,
          epochs: int = 40, seconds: float = 2.5) -> EpochEnded:
    return EpochEnded(n, epochs, 1.0 / n, 0.5 + 0.001 * n, 0.9 + n / 1000, 0.002, seconds,
                      best, 0, health)


def trained(display: Display, epochs: int = 37, best: int = 12,
            health: Health | None = HEALTH, clock: Clock | None = None) -> TrainingView:
    """A view fed a run of ``epochs`` epochs (of 40) whose best is ``best``, with a
    rollback and an early stop, part way into the next epoch."""
    clock = clock or Clock()
    view = TrainingView(display, clock=clock)
    view(TrainingStarted(40, 37, 1169, 269, "accuracy"))
    for n in range(1, epochs + 1):
        clock.now += 2.5
        view(epoch(n, best=n == best or n == 1, health=health))
    view(RolledBack(12, "the loss became nan at epoch 13, batch 5 (huge values)", 0.001, 1))
    view(StoppedEarly(epochs, best, "val_accuracy", 12))
    clock.now += 1.0
    view(BatchesDone(epochs + 1, 15, 37))
    return view


def screen(view: TrainingView) -> list[str]:
    console = view.display.console
    console.print(view.render())
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert text.endswith("\n")
    return text[:-1].split("\n")


def row_epochs(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.match(r"\s*(\d+)[* ]\s+\d", line))]


def hidden_counts(lines: list[str]) -> list[tuple[int, int, int]]:
    return [(int(m.group(1)), int(m.group(2)), int(m.group(3))) for line in lines
            if (m := re.search(r"⋮ (\d+) epochs? hidden \((\d+)-(\d+)", line))]


@pytest.mark.parametrize("size", [(80, 24), (80, 30), (80, 12), (100, 40), (60, 20),
                                  (80, 8), (40, 10)])
def test_the_screen_fits_and_keeps_the_newest_epoch_and_the_progress(
        size: tuple[int, int]) -> None:
    width, height = size
    lines = screen(trained(terminal(width, height)))
    assert len(lines) <= height
    assert all(len(line) <= width for line in lines), lines
    assert "…" not in "\n".join(lines)
    assert 37 in row_epochs(lines)
    assert "38/40 15/37" in lines[-1] or "epoch 38/40  batch 15/37" in lines[-1]
    # room for the ^C echo: on a full last line it would wrap and scroll the live screen
    assert len(lines[-1]) <= width - 3


def test_a_long_history_folds_keeping_first_best_and_newest() -> None:
    lines = screen(trained(terminal(80, 24)))
    shown = row_epochs(lines)
    assert shown[0] == 1 and 12 in shown and shown[-1] == 37
    assert shown == sorted(shown)
    gaps = hidden_counts(lines)
    assert gaps
    for count, first, last in gaps:
        assert count == last - first + 1
    # every epoch is either shown or counted in a gap, once
    assert len(shown) + sum(count for count, _, _ in gaps) == 37
    best = next(line for line in lines if re.match(r"\s*12\*", line))
    assert "0.9120" in best  # its own numbers, in full


def test_the_status_line_has_a_bar_and_the_eta_of_epoch_and_run() -> None:
    clock = Clock()
    view = TrainingView(terminal(80, 24), clock=clock)
    view(TrainingStarted(10, 400, 12800, 1000, "accuracy"))
    clock.now = 10.0
    view(BatchesDone(1, 100, 400))  # 0.1 s a batch: 30 s left, then 9 epochs of 40 s
    status = screen(view)[-1]
    assert status.endswith("epoch 1/10  batch 100/400  ETA 0:30 (run 6:30)")
    bar = status.split("  epoch")[0]
    assert bar.count("━") == round(len(bar) / 4)  # a quarter done
    clock.now = 15.0  # no news for 5 s: the countdown goes on
    assert screen(view)[-1].endswith("ETA 0:25 (run 6:25)")


def test_eta_between_epochs_uses_the_measured_epoch_time() -> None:
    clock = Clock()
    view = TrainingView(terminal(80, 24), clock=clock)
    view(TrainingStarted(10, 400, 12800, 1000, "accuracy"))
    view(BatchesDone(1, 200, 400))
    for n in (1, 2):
        clock.now += 40.0
        view(epoch(n, epochs=10, seconds=40.0))
    status = screen(view)[-1]  # epoch 3 has not reported a batch yet
    assert status.endswith("epoch 3/10  batch 0/400  ETA 0:40 (run 5:20)")


def test_eta_after_a_resume_counts_only_the_batches_run_since() -> None:
    clock = Clock()
    view = TrainingView(terminal(80, 24), clock=clock)
    view(TrainingStarted(10, 400, 12800, 1000, "accuracy", start_epoch=4, start_batch=300))
    assert screen(view)[-1].endswith("epoch 5/10  batch 300/400")
    clock.now = 5.0
    view(BatchesDone(5, 350, 400))  # 50 batches in 5 s: 5 s left, then 5 epochs of 40 s
    assert screen(view)[-1].endswith("epoch 5/10  batch 350/400  ETA 0:05 (run 3:25)")


def test_eta_maths() -> None:
    assert epoch_eta(10.0, 100, 400, None) == pytest.approx(30.0)
    assert epoch_eta(10.0, 400, 400, None) == 0.0
    assert epoch_eta(2.0, 0, 400, 5.0) == pytest.approx(3.0)
    assert epoch_eta(9.0, 0, 400, 5.0) == 0.0
    assert epoch_eta(2.0, 0, 400, None) is None
    assert run_eta(30.0, 9, 40.0) == pytest.approx(390.0)
    assert run_eta(30.0, 0, 40.0) == pytest.approx(30.0)
    assert [clock_time(s) for s in (0, 4.4, 59.6, 754, 3723)] == [
        "0:00", "0:04", "1:00", "12:34", "1:02:03"]


def test_the_final_screen_says_what_it_left_out() -> None:
    view = trained(terminal(80, 24))
    view(TrainingEnded(37, 12, 0.51, 0.912, 95.0))
    lines = screen(view)
    assert not any("ETA" in line for line in lines)
    assert any("hidden" in line and "metrics.csv" in line for line in lines)
    assert row_epochs(lines)[-1] == 37


def test_notes_wrap_between_words() -> None:
    lines = screen(trained(terminal(60, 30)))
    start = next(i for i, line in enumerate(lines) if line.startswith("stopped early"))
    note_lines = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("  ") or "━" in line:
            break
        note_lines.append(line)
    assert len(note_lines) > 1
    assert " ".join(line.strip() for line in note_lines).split() == STOP_NOTE.split()


def test_health_fits_at_80_columns() -> None:
    lines = screen(trained(terminal(80, 24)))
    assert "grad norm" in lines[0] and "dead relu" in lines[0]
    health = " ".join(line.strip() for line in lines if "health" in line or "11 1.2e-2"
                      in line)
    assert "0 4.8e-3" in health and "11 1.2e-2" in health
    narrow = screen(trained(terminal(60, 24)))
    assert "grad norm" not in narrow[0]  # no room: the health line carries it
    assert any("grad norm 2.11" in line for line in narrow)


def test_without_health_no_health_line() -> None:
    lines = screen(trained(terminal(80, 24), health=None))
    assert "grad norm" not in "\n".join(lines)
    assert len(lines) <= 24


def test_a_short_history_shows_every_epoch() -> None:
    lines = screen(trained(terminal(80, 24), epochs=5, best=3))
    assert row_epochs(lines) == [1, 2, 3, 4, 5]
    assert not hidden_counts(lines)


def test_fold() -> None:
    assert fold(5, 2, 10) == [0, 1, 2, 3, 4]
    # first, gap, best, gap, newest 3 = 7 lines
    assert fold(40, 10, 7) == [0, 10, 37, 38, 39]
    assert fold(40, 39, 4) == [0, 38, 39]  # the best is among the newest
    assert fold(40, 10, 1) == [39]
    assert fold(40, None, 3) == [0, 39]


@pytest.mark.parametrize("value", [0.0, 1.0, 0.08333, 123456.789, 12345678.9, 0.00098,
                                   1.5e-12, -0.5, -98765432.1, 3.0e300])
def test_numbers_fit_their_cells_with_significant_digits(value: float) -> None:
    assert len(fit_number(value, 6)) <= 6 and len(fit_general(value, 6)) <= 6
    for width in (7, 9):
        text = fit_number(value, width)
        assert len(text) <= width, (value, width, text)
        assert float(text) == pytest.approx(value, rel=0.06, abs=1e-4 if value == 0 else 0)
        general = fit_general(value, width)
        assert len(general) <= width and float(general) == pytest.approx(value, rel=0.06)
    assert fit_number(0.08333, 7) == "0.0833"
    assert fit_number(123456.789, 7) == "123457"
    assert fit_number(12345678.9, 7) == "1.235e7"
    assert fit_number(0.00098, 7) == "9.80e-4"
    assert [fit_general(v, 6) for v in (0.002, 3.66, 1e-5, 0.0001234, 2.5e6)] == [
        "0.002", "3.66", "1e-5", "1.2e-4", "2.5e6"]


def test_wrap_words_never_splits_a_word_that_fits() -> None:
    text = "update/weight by layer: 0 4.8e-3, 2 1.6e-3, 5 1.9e-3, 9 3.4e-4, 11 1.2e-2"
    lines = wrap_words(text, 30)
    assert all(len(line) <= 30 for line in lines)
    assert " ".join(lines).split() == text.split()


# -- plain output -------------------------------------------------------------------------


def test_plain_lines_in_a_pipe_stay_whole() -> None:
    out = io.StringIO()
    display = Display(out)
    assert not display.interactive
    long = "word " * 40
    display.info(long.strip())
    with display.training() as view:
        view(TrainingStarted(3, 10, 100, 20, "accuracy"))
        view(BatchesDone(1, 5, 10))
        view(epoch(1, best=True, epochs=3))
        view(StoppedEarly(1, 1, "val_loss", 1))
    lines = out.getvalue().splitlines()
    assert lines[0] == long.strip()
    assert lines[1].startswith("epoch 1/3  train_loss 1.0000") and lines[1].endswith("*best")
    assert lines[2].startswith("stopped early after epoch 1")
    assert len(lines) == 3 and "\x1b" not in out.getvalue()


def test_plain_lines_on_a_terminal_wrap_between_words() -> None:
    display = terminal(40, 24)
    text = ("network: 89546 parameters, loss cross_entropy, optimizer adam, 40 epochs of "
            "batch 32")
    display.info(text)
    display.info("  bp predict runs/a-very-long-run-name-20261207/model.npz data.csv")
    lines = display.console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    command = lines.pop()
    assert all(len(line) <= 40 for line in lines)
    assert " ".join(lines).split() == text.split()
    # a command to copy stays one line, however wide
    assert command == "  bp predict runs/a-very-long-run-name-20261207/model.npz data.csv"


@pytest.mark.parametrize(("term", "interactive"), [("dumb", False), ("xterm-256color", True)])
def test_a_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch, term: str,
                                          interactive: bool) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # a terminal, as far as rich can tell
    monkeypatch.setenv("TERM", term)
    out = io.StringIO()
    display = Display(out)
    assert display.interactive is interactive
    if not interactive:
        with display.training() as view:
            view(TrainingStarted(3, 10, 100, 20, "accuracy"))
            view(epoch(1, epochs=3))
        assert out.getvalue().startswith("epoch 1/3  train_loss")


# -- progress of long commands --------------------------------------------------------------


def test_progress_shows_on_a_terminal_and_nothing_in_a_pipe() -> None:
    for display, shown in ((terminal(80, 24), True), (Display(io.StringIO()), False)):
        with display.working("checking gradients") as progress:
            progress(1, 11, "checking 2 conv2d W (2/11)")
        out = display.console.file.getvalue()  # type: ignore[attr-defined]
        assert ("checking 2 conv2d W (2/11)" in out) is shown
        if not shown:
            assert out == ""


def test_gradcheck_tells_each_tensor_once() -> None:
    network = Network([Dense(4), Activation("tanh"), Dense(3), Activation("softmax")],
                      SoftmaxCrossEntropy(), (5,), np.random.default_rng(0), np.float64)
    rng = np.random.default_rng(1)
    told: list[tuple[int, int, str]] = []
    results = check_gradients(network, rng.normal(size=(6, 5)), rng.integers(0, 3, 6),
                              on_tensor=lambda i, n, name: told.append((i, n, name)))
    assert told == [(i, 5, f"{r.layer} {r.name}") for i, r in enumerate(results, 1)]
    assert told[0] == (1, 5, "0 dense W") and told[-1] == (5, 5, "input X")


class Recording(Display):
    """A display that records what long steps report."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.reports: list[tuple[str, int, int, str]] = []

    @contextmanager
    def working(self, what: str) -> Iterator[Progress]:
        yield lambda done, total, text: self.reports.append((what, done, total, text))


def test_bp_gradcheck_reports_each_tensor_and_prints_nothing_extra_in_a_pipe() -> None:
    recording = Recording()
    gradcheck(CONFIGS / "iris.yaml", recording, rows=8, eps=1e-6, atol=1e-8, rtol=1e-5,
              max_entries=50, seed=0)
    checks = [r for r in recording.reports if r[0] == "checking gradients"]
    assert [(done, total) for _, done, total, _ in checks] == [(i, 5) for i in range(5)]
    assert checks[1][3] == "checking 0 dense b (2/5)"
    piped = Display(io.StringIO())
    gradcheck(CONFIGS / "iris.yaml", piped, rows=8, eps=1e-6, atol=1e-8, rtol=1e-5,
              max_entries=50, seed=0)
    out = piped.console.file.getvalue()  # type: ignore[attr-defined]
    assert out == recording.console.file.getvalue()  # type: ignore[attr-defined]
    assert "(1/5)" not in out and "\x1b" not in out and out.endswith("all 5 tensors pass\n")


def test_the_network_outputs_report_rows_batch_by_batch(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setattr(inference, "INFERENCE_BATCH", 4)
    network = Network([Dense(3), Activation("softmax")], SoftmaxCrossEntropy(), (5,),
                      np.random.default_rng(0))
    told: list[tuple[int, int, str]] = []
    outputs = inference.network_outputs(network, np.ones((10, 5), np.float32),
                                        lambda *report: told.append(report))
    assert outputs.shape == (10, 3)
    assert [(done, total) for done, total, _ in told] == [(4, 10), (8, 10), (10, 10)]
    assert told[-1][2].endswith("10 of 10 rows")


def test_predict_and_evaluate_report_progress_and_pipes_get_none(
        in_tmp: Path, write_config: Callable[..., Path]) -> None:
    from bpcli.commands.evaluate import evaluate

    config = write_config(iris_config())
    subprocess.run([sys.executable, "-m", "bpcli", "train", str(config)], check=True,
                   capture_output=True, timeout=120)
    (model,) = (in_tmp / "runs").glob("*/model.npz")
    data = DATASETS / "iris.csv"
    for run in (lambda progress: predict_module.predict(model, data, in_tmp / "p.csv",
                                                        None, progress),
                lambda progress: evaluate(model, data, None, progress)):
        told: list[tuple[int, int, str]] = []
        run(lambda *report, told=told: told.append(report))
        assert told[0] == (0, 0, "reading iris.csv")
        assert (150, 150) in [(done, total) for done, total, _ in told]
    # through pipes: the predictions, one line on stderr, nothing else
    proc = subprocess.run([sys.executable, "-m", "bpcli", "predict", str(model), str(data)],
                          capture_output=True, text=True, timeout=120, check=True)
    assert proc.stderr == "" and proc.stdout.startswith("species,")
    proc = subprocess.run([sys.executable, "-m", "bpcli", "evaluate", str(model), str(data),
                           "--json"], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stderr == "" and proc.stdout.startswith("{")


def test_a_steps_own_figures_replace_the_loss_columns() -> None:
    display = terminal(80, 24)
    view = TrainingView(display, clock=Clock())
    view(TrainingStarted(3, 5, 150, 0, "D(real)"))
    stats = {"D loss": 0.6912, "G loss": 0.7534, "D(real)": 0.5123, "D(fake)": 0.4811}
    view(EpochEnded(1, 3, 0.69, math.nan, math.nan, 0.0002, 0.1, True, 0, None, stats))
    lines = screen(view)
    assert re.search(r"D loss\s+G loss\s+D\(real\)\s+D\(fake\)", lines[0])
    assert "val loss" not in lines[0] and "train loss" not in lines[0]
    assert re.search(r"0\.6912\s+0\.7534\s+0\.5123\s+0\.4811", "\n".join(lines))
