"""Pictures of learning curves: ``curves.png`` in every run directory, and ``bp plot`` to
compare runs. matplotlib is an optional extra (``pip install 'bp[plot]'``), imported only
when a picture is drawn, and drawn without pyplot (a ``Figure`` on an Agg canvas), so that
bp never touches matplotlib's global state or needs a display.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from bpcli.atomic import write_atomic
from bpcli.errors import UsageError
from bpcli.events import EpochEnded, Event, Stopped, TrainingEnded
from bpcli.files import regular_file
from bpcli.rundir import MetricsFile, RunFiles, metrics_header

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'bp[plot]'"
# 1500 x 450 pixels: three panels side by side, each wide enough for its legend
WIDTH_IN, HEIGHT_IN, DPI = 15.0, 4.5, 100
REDRAW_INTERVAL_S = 5.0
DRAW_TIME_SHARE = 0.05  # and at most this share of the training time goes on drawing
MARKERS_UP_TO = 30  # epochs; with fewer points, each epoch gets a dot
LOG_SCALE_RATIO = 10.0  # a learning rate varying more than this goes on a log axis
# matplotlib's "tab10" palette: one colour per run
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
METRIC_TITLES = {"accuracy": "accuracy", "rmse": "RMSE"}


class PlotsUnavailable(UsageError):
    """matplotlib is not installed, so no picture can be drawn."""

    def __init__(self) -> None:
        super().__init__(f"pictures need matplotlib: {INSTALL_HINT} (from a clone: "
                         "pip install '.[plot]')")


@dataclass(frozen=True)
class Curves:
    """One run's ``metrics.csv``, column by column (one entry per epoch)."""

    name: str
    metric_name: str
    epoch: list[int]
    train_loss: list[float]
    val_loss: list[float]
    val_metric: list[float]
    learning_rate: list[float]


def read_curves(path: Path, name: str | None = None) -> Curves:
    """Read a run's ``metrics.csv``; ``path`` is the run directory or the file itself."""
    file = path if path.is_file() else RunFiles(path).metrics
    if file.exists():  # a FIFO or device here would block or never end
        regular_file(file, UsageError)
    try:
        metrics = MetricsFile.read(file)
    except FileNotFoundError:
        raise UsageError(f"{path}: no {RunFiles.METRICS} (not a bp run directory, or a run "
                         "that has not finished its first epoch)") from None
    except (UnicodeDecodeError, csv.Error):
        raise UsageError(f"{file}: not a bp metrics file (not CSV text); give a run "
                         f"directory or its {RunFiles.METRICS}") from None
    header = metrics.header
    metric = header[3].removeprefix("val_") if len(header) > 3 else ""
    if not metric or header[:len(metrics_header(metric))] != metrics_header(metric):
        raise UsageError(f"{file}:1: not a bp metrics file (expected the columns "
                         f"{', '.join(metrics_header('<metric>'))})")
    curves = Curves(name or file.resolve().parent.name, metric, [], [], [], [], [])
    for line, row in enumerate(metrics.records, start=2):
        if not row:
            continue
        try:
            epoch = int(row[0])
            values = [_finite_or_nan(float(cell)) for cell in row[1:5]]
        except (ValueError, IndexError):
            raise UsageError(f"{file}:{line}: not a row of numbers: {','.join(row)}") from None
        curves.epoch.append(epoch)
        for column, value in zip((curves.train_loss, curves.val_loss, curves.val_metric,
                                  curves.learning_rate), values, strict=True):
            column.append(value)
    return curves


def _finite_or_nan(value: float) -> float:
    return value if math.isfinite(value) else math.nan


def learning_curves(runs: Sequence[Curves], path: Path) -> None:
    """Draw the runs' curves side by side and write them to ``path`` as a PNG, atomically:
    loss (solid: validation, dashed: training), the validation metric and the learning
    rate, each against the epoch, one colour per run; ``WIDTH_IN`` x ``HEIGHT_IN`` inches
    at ``DPI``. Raises ``PlotsUnavailable`` without matplotlib."""
    figure = _figure()
    loss, metric, rate = figure.subplots(1, 3)
    several = len(runs) > 1
    markers = max((len(run.epoch) for run in runs), default=0) <= MARKERS_UP_TO
    for i, run in enumerate(runs):
        style = {"color": COLOURS[i % len(COLOURS)], "linewidth": 1.6,
                 "marker": "o" if markers else None, "markersize": 3}
        loss.plot(run.epoch, run.val_loss, linestyle="-",
                  label=run.name if several else "validation", **style)
        loss.plot(run.epoch, run.train_loss, linestyle="--",
                  label="_" if several else "training", **style)
        metric.plot(run.epoch, run.val_metric, label=run.name, **style)
        rate.plot(run.epoch, run.learning_rate, label=run.name, **style)
    if several:  # the colours name the runs; two grey lines explain the line styles
        from matplotlib.lines import Line2D

        handles, labels = loss.get_legend_handles_labels()
        handles += [Line2D([], [], color="grey", linestyle="-"),
                    Line2D([], [], color="grey", linestyle="--")]
        loss.legend(handles, [*labels, "validation", "training"], fontsize="small")
        metric.legend(fontsize="small")
    else:
        loss.legend(fontsize="small")
        figure.suptitle(runs[0].name if runs else "")
    # fixed margins (room for the run's name above one run's panels): half the drawing
    # time of matplotlib's automatic layouts
    figure.subplots_adjust(left=0.05, right=0.99, bottom=0.12, top=0.92 if several else 0.86,
                           wspace=0.25)
    names = sorted({run.metric_name for run in runs})
    metric_title = "Validation " + " / ".join(METRIC_TITLES.get(n, n) for n in names)
    _label(loss, "Loss", "loss")
    _label(metric, metric_title, " / ".join(f"val_{n}" for n in names))
    _label(rate, "Learning rate", "learning rate")
    rates = [r for run in runs for r in run.learning_rate]
    if rates and all(r > 0 for r in rates) and max(rates) > LOG_SCALE_RATIO * min(rates):
        rate.set_yscale("log")
        rate.set_title("Learning rate (log scale)")
    _write_png(figure, path)


def confusion_matrix(labels: Sequence[str], counts: NDArray[np.integer], path: Path,
                     title: str) -> None:
    """The confusion matrix as a heat map (rows: true class, columns: predicted), each
    cell with its count and its share of the true class."""
    k = len(labels)
    side = max(4.0, 1.0 + 0.7 * k)
    figure = _figure(side + 1.5, side)
    axes = figure.add_subplot()
    totals = np.maximum(counts.sum(axis=1, keepdims=True), 1)
    shares = counts / totals
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of the true class")
    axes.set_xticks(range(k), labels=list(labels), rotation=45 if k > 4 else 0, ha="right"
                    if k > 4 else "center")
    axes.set_yticks(range(k), labels=list(labels))
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    for i in range(k):
        for j in range(k):
            colour = "white" if shares[i, j] > 0.5 else "black"
            axes.text(j, i, f"{counts[i, j]}\n{shares[i, j]:.0%}", ha="center",
                      va="center", color=colour, fontsize=9)
    figure.tight_layout()
    _write_png(figure, path)


@dataclass(frozen=True)
class SweepPoint:
    """A trial of a sweep as a point: its value of one parameter and its score."""

    value: float | str  # a number, or a listed value's text
    score: float
    stopped: bool  # by the scheduler: it trained fewer epochs


def sweep_picture(points: dict[str, list[SweepPoint]], metric: str, title: str,
                  path: Path) -> None:
    """The sweep's metric against each searched parameter, a panel each: numbers on a
    number axis (a log axis when they span more than tenfold), listed values as
    categories. Trials the scheduler stopped are hollow."""
    panels = max(1, len(points))
    columns = min(panels, 3)
    rows = (panels + columns - 1) // columns
    figure = _figure(5.0 * columns, 4.0 * rows)
    figure.suptitle(title)
    for i, (name, trial_points) in enumerate(points.items()):
        axes = figure.add_subplot(rows, columns, i + 1)
        numeric = all(isinstance(p.value, int | float) for p in trial_points)
        if numeric:
            xs = [float(p.value) for p in trial_points]
        else:
            labels = list(dict.fromkeys(str(p.value) for p in trial_points))
            xs = [float(labels.index(str(p.value))) for p in trial_points]
            axes.set_xticks(range(len(labels)),
                            labels=[label if len(label) <= 32 else label[:30] + "…"
                                    for label in labels],
                            rotation=20 if len(labels) > 2 else 0, ha="right"
                            if len(labels) > 2 else "center", fontsize=8)
        for stopped in (False, True):
            chosen = [(x, p.score) for x, p in zip(xs, trial_points, strict=True)
                      if p.stopped == stopped]
            if chosen:
                axes.scatter([x for x, _ in chosen], [y for _, y in chosen],
                             facecolors="none" if stopped else COLOURS[0],
                             edgecolors=COLOURS[0], label="stopped by the scheduler"
                             if stopped else "trained to the end")
        if numeric and xs and min(xs) > 0 and max(xs) > LOG_SCALE_RATIO * min(xs):
            axes.set_xscale("log")
        axes.set_xlabel(name)
        axes.set_ylabel(metric)
        axes.grid(True, alpha=0.3)
        if i == 0 and any(p.stopped for p in trial_points):
            axes.legend(fontsize=8)
    figure.tight_layout()
    _write_png(figure, path)


def image_grid(images: NDArray[np.float64], path: Path, title: str | None = None) -> None:
    """Draw images ``(n, channels, height, width)`` tiled in a square-ish grid, one
    pixel of background between them: grey for one channel (darkest at the largest
    value, as ink on paper), colour for three; scaled to the images' common range. Write
    a PNG to ``path`` atomically. Raises ``PlotsUnavailable`` without matplotlib."""
    n, channels, height, width = images.shape
    columns = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / columns)
    low, high = float(images.min(initial=0.0)), float(images.max(initial=1.0))
    scaled = (images - low) / ((high - low) or 1.0)
    tiled = np.zeros(((height + 1) * rows + 1, (width + 1) * columns + 1, channels))
    for i in range(n):
        y, x = 1 + (i // columns) * (height + 1), 1 + (i % columns) * (width + 1)
        tiled[y : y + height, x : x + width] = np.moveaxis(scaled[i], 0, -1)
    inches = 0.08 * max(height, width) * max(rows, columns)
    figure = _figure(width=min(max(inches, 2.0), 12.0), height=min(max(inches, 2.0), 12.0)
                     + (0.3 if title else 0.0))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0 if not title else 0.94))
    axes.set_axis_off()
    if channels == 1:
        axes.imshow(tiled[:, :, 0], cmap="gray_r", interpolation="nearest", vmin=0, vmax=1)
    else:
        axes.imshow(tiled, interpolation="nearest")
    if title:
        figure.suptitle(title, fontsize=9, y=0.99)
    _write_png(figure, path)


class SampleGrids:
    """Listens to an image GAN's training and draws its generated images every ``every``
    epochs to ``samples/epoch-<N>.png`` in the run directory (``sample()`` makes them from
    the same noise each time, so that the pictures show the generator's progress), on
    the recorder's background writer. Without matplotlib it says so once and draws
    nothing."""

    def __init__(self, run_dir: Path, sample: Callable[[], NDArray[np.float64]], every: int,
                 notify: Callable[[str], None],
                 submit: Callable[[Callable[[], None]], None]) -> None:
        self.run_dir, self.sample, self.every = run_dir, sample, max(every, 1)
        self.notify, self.submit = notify, submit
        self.enabled = True

    def __call__(self, event: Event) -> None:
        if isinstance(event, EpochEnded) and self.enabled and (
                event.epoch % self.every == 0 or event.epoch == event.epochs):
            images = self.sample()  # now, while the weights are this epoch's
            path = RunFiles(self.run_dir).sample_grid(event.epoch)
            self.submit(lambda: self._draw(images, path, event.epoch))

    def _draw(self, images: NDArray[np.float64], path: Path, epoch: int) -> None:
        if not self.enabled:
            return
        try:
            path.parent.mkdir(exist_ok=True)
            image_grid(images, path, f"epoch {epoch}")
        except PlotsUnavailable:
            self.enabled = False
            self.notify(f"{path.parent.name}/ skipped: install matplotlib for pictures "
                        f"({INSTALL_HINT})")
        except Exception as exc:  # a picture is never worth stopping training for
            self.enabled = False
            self.notify(f"{path.name} not drawn: {exc}")


def _figure(width: float = WIDTH_IN, height: float = HEIGHT_IN) -> Figure:
    """A figure on its own Agg canvas: no pyplot, no global backend, no display needed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotsUnavailable() from None
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _label(axes: Axes, title: str, ylabel: str) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.set_title(title)
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    axes.grid(True, alpha=0.3)


def _write_png(figure: Figure, path: Path) -> None:
    def write(f: IO[bytes]) -> None:
        figure.savefig(f, format="png", dpi=DPI)

    write_atomic(path, write)


class CurvesWriter:
    """Listens to training and keeps ``curves.png`` in the run directory current, drawn
    from ``metrics.csv`` (so it must listen after the ``RunRecorder``). Redraws at most
    once every ``interval`` seconds (less often when drawing is slow, so that it takes at
    most ``DRAW_TIME_SHARE`` of the time), and once more when training ends, stops or
    (through ``finish``) fails. Without matplotlib it says so once through ``notify`` and
    draws nothing."""

    def __init__(self, run_dir: Path, notify: Callable[[str], None],
                 interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 submit: Callable[[Callable[[], None]], None] | None = None) -> None:
        """``submit``, when given, runs each drawing later, in order after the writes
        submitted before it (the run recorder's background writer), so that training does
        not wait for matplotlib and the picture always follows metrics.csv."""
        self.submit = submit
        self.run_dir = run_dir
        self.notify = notify
        self.interval = REDRAW_INTERVAL_S if interval is None else interval
        self.clock = clock
        self.next_draw = clock() + self.interval  # short runs: one picture, at the end
        self.pending = False  # epochs ended since the last picture
        self.enabled = True

    def __call__(self, event: Event) -> None:
        if isinstance(event, EpochEnded):
            self.pending = True
            if self.clock() >= self.next_draw:
                self.draw()
        elif isinstance(event, (TrainingEnded, Stopped)):
            self.finish()

    def finish(self) -> None:
        """Draw the epochs not yet in the picture (a no-op when there are none)."""
        if self.pending:
            self.draw()

    def draw(self) -> None:
        self.pending = False
        if self.submit is not None:
            self.next_draw = self.clock() + self.interval
            self.submit(self._draw)
        else:
            self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        start = self.clock()
        try:
            learning_curves([read_curves(self.run_dir)], RunFiles(self.run_dir).curves)
        except PlotsUnavailable:
            self.enabled = False
            self.notify(f"{RunFiles(self.run_dir).curves.name} skipped: install matplotlib "
                        f"for pictures ({INSTALL_HINT})")
        except Exception as exc:  # a picture is never worth stopping training for
            self.enabled = False
            self.notify(f"{RunFiles(self.run_dir).curves.name} not drawn: {exc}")
        end = self.clock()
        self.next_draw = end + max(self.interval, (end - start) / DRAW_TIME_SHARE)
