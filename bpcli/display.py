"""Everything bp shows a person. The only module that imports rich.

On a terminal, training is a live table updated in place with a progress bar within long
epochs; elsewhere (a pipe, a file, CI) it is one plain line per epoch with no escape codes.
"""

from __future__ import annotations

import math
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.measure import Measurement
from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from bpcli.events import (
    BatchesDone,
    EpochEnded,
    Event,
    Health,
    Progress,
    RolledBack,
    Stopped,
    StoppedEarly,
    TrainingEnded,
    TrainingStarted,
)
from bpcli.explain import Trace
from bpcli.metrics import ClassificationReport, RegressionReport, metric_text
from bpcli.nn.gradcheck import TensorCheck
from bpcli.nn.layers import KIND_KEY
from bpcli.rundir import RunFiles

if TYPE_CHECKING:  # only named in annotations: the profile reads data files
    from bpcli.profile import ColumnProfile

REFRESHES_PER_SECOND = 4
ECHO_ROOM = 3  # columns kept free at the end of the live screen's last line


#: bp explain: the words shown per text, the largest contributions first
TOKENS_SHOWN = 10


class Display:
    """Renders bp's output to ``stream`` (stdout by default)."""

    def __init__(self, stream: TextIO | None = None, interactive: bool | None = None) -> None:
        self.console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=True,
                               force_terminal=interactive)
        # a dumb terminal (TERM=dumb) cannot redraw in place: it gets the plain lines
        self.interactive = (self.console.is_terminal and not self.console.is_dumb_terminal
                            if interactive is None else interactive)

    def info(self, text: str) -> None:
        """A line of text. On a terminal, lines wider than it break between words, except
        indented ones: those are commands and paths to copy, which a break would spoil.
        Into a pipe or a file lines stay whole (it has no width, and grep wants them so)."""
        if self.console.is_terminal:
            width = self.console.width
            text = "\n".join(wrapped for line in text.split("\n")
                             for wrapped in ([line] if line.startswith(" ")
                                             else wrap_words(line, width)))
        self.console.print(text, markup=False)

    @contextmanager
    def training(self) -> Iterator[TrainingView]:
        view = TrainingView(self)
        if not self.interactive:
            yield view
            return
        with Live(get_renderable=view.render, console=self.console,
                  refresh_per_second=REFRESHES_PER_SECOND, transient=False) as live:
            view.live = live
            try:
                yield view
            finally:  # the last screen stays: without a stale progress line
                view.progress = None
                live.refresh()

    @contextmanager
    def working(self, what: str) -> Iterator[Progress]:
        """A transient progress line on an interactive terminal while a long step runs
        (spinner, ``what``, bar, elapsed time), gone when it ends; nothing elsewhere, so
        that pipes and logs get only the results. Yields the ``Progress`` to report to."""
        if not self.interactive:
            yield lambda done, total, text: None
            return
        # stdout is left alone: bp predict may be writing its CSV there
        with RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                          TimeElapsedColumn(), console=self.console, transient=True,
                          redirect_stdout=False, redirect_stderr=False) as progress:
            task = progress.add_task(what, total=None)

            def update(done: int, total: int, text: str) -> None:
                # drawn at once: a step's reports are seconds apart, not many a second
                progress.update(task, completed=done, total=total or None,
                                description=text or what, refresh=True)

            yield update

    def layer_table(self, input_shape: tuple[int, ...],
                    rows: list[tuple[str, str, str, int]], title: str = "layers") -> None:
        """The network's layers: index, kind and options, output shape, parameters."""
        table = Table(title=f"{title} (input {'x'.join(map(str, input_shape))})",
                      title_justify="left")
        for heading in ("#", "layer", "output", "parameters"):
            table.add_column(heading, justify="right" if heading in ("#", "parameters")
                             else "left")
        for index, layer, shape, params in rows:
            table.add_row(index, layer, shape, f"{params:,}")
        table.add_row("", "total", "", f"{sum(r[3] for r in rows):,}", style="bold")
        self._print_whole(table)

    def column_profile(self, source: str, columns: list[ColumnProfile]) -> None:
        """A data file's columns: role, kind, missing and distinct counts, examples, and
        what looks wrong."""
        table = Table(title=Text(f"columns of {source}"), title_justify="left")
        for heading in ("column", "role", "kind", "missing", "distinct", "examples",
                        "look at"):
            table.add_column(heading, overflow="fold",
                             justify="right" if heading in ("missing", "distinct") else "left")
        for c in columns:
            table.add_row(Text(c.name), c.role, c.kind, f"{c.missing:,}", f"{c.distinct:,}",
                          Text(", ".join(c.examples)),
                          Text("; ".join(c.flags), style="yellow" if c.flags else ""))
        self._print_whole(table)

    def explain_report(self, trace: Trace, detail_limit: int = 64) -> None:
        """The trace of one backpropagation step, in the order it is computed. Arrays
        with at most ``detail_limit`` entries are shown in full; larger ones summarised."""
        rows = ", ".join(map(str, trace.rows))
        self.console.print(Text(f"One step of backpropagation on data row(s) {rows}",
                                style="bold"))
        headings = {
            "forward": "1. Forward pass: each layer's output, input to output",
            "loss": "2. The loss, and the error at the output",
            "backward": "3. Backward pass: the chain rule, output to input",
            "update": "4. The weight update (the configured optimizer, one step)",
        }
        phase = ""
        for stage in trace.stages:
            if stage.phase != phase:
                phase = stage.phase
                self.console.print()
                self.console.print(Text(headings[phase], style="bold underline"))
            title = f"{stage.layer}: {stage.what}" if stage.layer else stage.what
            self.console.print(Text(title, style="cyan"))
            for line in _array_lines(stage.values, detail_limit):
                self.console.print("    " + line, markup=False)
            if stage.note:
                self.console.print(Text(f"    ({stage.note})", style="dim"))
        self.console.print()
        change = trace.loss_after - trace.loss_before
        self.console.print(Text(f"Loss on these rows: {trace.loss_before:.6g} before the "
                                f"update, {trace.loss_after:.6g} after ({change:+.3g})",
                                style="bold"))
        if trace.tokens:
            self.console.print()
            self.console.print(Text("5. The words that carried the prediction (gradient x "
                                    "input, before the update)", style="bold underline"))
        for found in trace.tokens:
            self.console.print(Text(f"row {found.row}, {found.column!r}: {found.output}",
                                    style="cyan"))
            if not found.shares:
                self.console.print("    (no word of the vocabulary in this text)")
            for token, share in found.shares[:TOKENS_SHOWN]:
                self.console.print(f"    {share:+.4f}  {token}", markup=False)
            if len(found.shares) > TOKENS_SHOWN:
                rest = sum(share for _, share in found.shares[TOKENS_SHOWN:])
                self.console.print(f"    {rest:+.4f}  ({len(found.shares) - TOKENS_SHOWN} "
                                   "more)", markup=False)

    def evaluation(self, report: ClassificationReport | RegressionReport, source: str) -> None:
        """Classification: per-class scores and the confusion matrix; regression: errors."""
        if isinstance(report, RegressionReport):
            table = Table(title=f"{source}: {report.n} rows", title_justify="left")
            for heading in ("target", "RMSE", "MAE", "R^2"):
                table.add_column(heading, justify="right" if heading != "target" else "left")
            for target in report.targets:
                table.add_row(target.target, *map(metric_text, (target.rmse, target.mae,
                                                                 target.r2)))
            self._print_whole(table)
            return
        scores = Table(title=f"{source}: accuracy {metric_text(report.accuracy)} on "
                       f"{report.macro.support} rows", title_justify="left")
        for heading in ("class", "precision", "recall", "F1", "support"):
            scores.add_column(heading, justify="left" if heading == "class" else "right")
        for row in [*report.classes, report.macro, report.weighted]:
            scores.add_row(row.label, *map(metric_text, (row.precision, row.recall, row.f1)),
                           str(row.support),
                           style="bold" if row.label.endswith(" avg") else None)
        self._print_whole(scores)
        confusion = Table(title="confusion matrix (rows: true class, columns: predicted)",
                          title_justify="left")
        confusion.add_column("true \\ predicted")
        for label in report.labels:
            confusion.add_column(label, justify="right")
        for label, counts in zip(report.labels, report.confusion, strict=True):
            confusion.add_row(label, *(str(c) for c in counts))
        self._print_whole(confusion)

    def gradcheck_report(self, results: list[TensorCheck], atol: float, rtol: float) -> None:
        table = Table(title=f"gradient check (|analytic - numeric| <= {atol:g} + {rtol:g} * "
                      "|numeric|)", title_justify="left")
        for heading in ("layer", "tensor", "shape", "checked", "max abs err", "max rel err",
                        "result"):
            table.add_column(heading, no_wrap=True, justify="right" if "err" in heading
                             or heading == "checked" else "left")
        for r in results:
            if r.directional:
                checked = f"{r.checked} direction{'s' if r.checked > 1 else ''}"
            else:
                checked = f"{r.checked}" if r.checked == r.total else f"{r.checked} of {r.total}"
            table.add_row(r.layer, r.name, "x".join(map(str, r.shape)), checked,
                          f"{r.max_abs_error:.2e}", f"{r.max_rel_error:.2e}",
                          Text("pass", style="green") if r.passed
                          else Text("FAIL", style="bold red"))
        self._print_whole(table)

    def details(self, title: str, rows: list[tuple[str, str]]) -> None:
        """A titled block of ``key  value`` lines. Values are never wrapped or cut, so that
        paths and digests survive a pipe whole."""
        self.console.print(Text(title, style="bold"))
        width = max((len(key) for key, _ in rows), default=0)
        for key, value in rows:
            self.console.print(Text.assemble("  ", (key.ljust(width), "cyan"), "  ", value))

    def feature_table(self, rows: list[tuple[str, float, float]]) -> None:
        """The preprocessing of each feature column: ``x' = (x - mean) / scale``."""
        table = Table(title="features (x' = (x - mean) / scale, fitted on the training split)",
                      title_justify="left")
        table.add_column("feature")
        table.add_column("mean", justify="right")
        table.add_column("scale", justify="right")
        for name, mean, scale in rows:
            table.add_row(Text(name), f"{mean:.6g}", f"{scale:.6g}")
        self._print_whole(table)

    def runs_table(self, title: str, rows: list[tuple[str, str, str, str, str, str]]) -> None:
        """Runs, one a row: name, started, epochs, best validation metric, status, time."""
        table = Table(title=Text(title), title_justify="left")
        for heading in ("run", "started", "epochs", "best", "status", "wall time"):
            table.add_column(heading, overflow="fold",
                             justify="right" if heading in ("epochs", "wall time") else "left")
        styles = {"finished": "green", "stopped early": "green", "interrupted": "yellow",
                  "diverged": "bold red", "crashed": "bold red", "running": "cyan"}
        for name, started, epochs, best, status, wall_time in rows:
            table.add_row(Text(name), started, epochs, best,
                          Text(status, style=styles.get(status, "dim")), wall_time)
        self._print_whole(table)

    def comparison(self, title: str, names: tuple[str, str],
                   rows: list[tuple[str, str, str]]) -> None:
        """Two things side by side, one row per key; differing values stand out."""
        table = Table(title=Text(title), title_justify="left")
        for heading in ("", *names):
            table.add_column(Text(heading), overflow="fold")
        for key, a, b in rows:
            style = "yellow" if a != b else None
            table.add_row(Text(key), Text(a, style=style or ""), Text(b, style=style or ""))
        self._print_whole(table)

    @contextmanager
    def sweep(self, title: str, params: list[str], metric: str) -> Iterator[SweepView]:
        """The trials of a sweep as they run: a table redrawn in place on a terminal, a
        line as each trial starts and ends elsewhere."""
        view = SweepView(self, title, params, metric)
        if not self.interactive:
            yield view
            return
        with Live(get_renderable=view.table, console=self.console,
                  refresh_per_second=REFRESHES_PER_SECOND, transient=True) as live:
            view.live = live
            yield view
        self._print_whole(view.table())

    def sweep_table(self, title: str, params: list[str], metric: str,
                    rows: list[SweepRow]) -> None:
        view = SweepView(self, title, params, metric)
        for row in rows:
            view.rows[row.trial] = row
        self._print_whole(view.table())

    def _print_whole(self, table: Table) -> None:
        """A table at its natural width when the output is not a terminal (a pipe or a
        file is not 80 columns wide), so that no cell is folded or cut short there. On a
        terminal narrower than the table, rich folds its cells."""
        if self.console.is_terminal:
            self.console.print(table)
            return
        width = self.console.width
        needed = Measurement.get(self.console, self.console.options.update(width=1 << 16),
                                 table).maximum
        try:
            self.console.width = max(width, needed)
            self.console.print(table)
        finally:
            self.console.width = width


@dataclass(frozen=True)
class SweepRow:
    """A trial as the sweep's table shows it: every cell already text."""

    trial: str
    params: list[str]
    status: str
    epochs: str
    best: str
    time: str


SWEEP_STYLES = {"finished": "green", "stopped": "yellow", "failed": "bold red",
                "interrupted": "yellow", "running": "cyan", "pending": "dim"}


class SweepView:
    """The trials of a sweep: a row each (parameters, status, epochs, best score, time)."""

    def __init__(self, display: Display, title: str, params: list[str], metric: str) -> None:
        self.display = display
        self.title = title
        self.params = params
        self.metric = metric
        self.rows: dict[str, SweepRow] = {}
        self.live: Live | None = None

    def update(self, row: SweepRow, say: str | None = None) -> None:
        """Show ``row`` (new or changed); off a terminal, print ``say`` as its line."""
        self.rows[row.trial] = row
        if self.live is not None:  # redrawn a few times a second: epochs come faster
            return
        if say is not None:
            values = "  ".join(f"{k}={v}" for k, v in zip(self.params, row.params,
                                                          strict=True))
            self.display.console.print(f"{row.trial} {say}  {values}" + (
                f"  epochs {row.epochs}  {self.metric} {row.best}  {row.time}"
                if say != "started" else ""), markup=False, soft_wrap=True)

    def table(self) -> Table:
        table = Table(title=Text(self.title), title_justify="left")
        for heading in ("trial", *self.params, "status", "epochs", self.metric, "time"):
            table.add_column(Text(heading), overflow="fold", justify="left" if heading in (
                "trial", "status") else "right")
        for row in self.rows.values():
            table.add_row(row.trial, *map(Text, row.params),
                          Text(row.status, style=SWEEP_STYLES.get(row.status, "")),
                          row.epochs, row.best, row.time)
        return table


class TrainingView:
    """Listens to training events and shows them.

    On a terminal it draws a screen that always fits: the newest epoch and the progress
    line stay at the bottom, and older epochs fold away (the first and the best stay) into
    a line saying how many are hidden. Elsewhere it prints one plain line per epoch."""

    def __init__(self, display: Display, clock: Callable[[], float] = time.monotonic) -> None:
        self.display = display
        self.live: Live | None = None
        self.clock = clock
        self.metric_name = "metric"
        self.epochs = 0
        self.rows: list[EpochEnded] = []
        self.progress: BatchesDone | None = None
        self.notes: list[str] = []
        self.finished = False
        self.epoch_started = clock()  # when the epoch in progress began
        self.reported = self.epoch_started  # when ``progress`` arrived
        self.resumed_at = 0  # batches of this epoch done before this process started

    def __call__(self, event: Event) -> None:
        if isinstance(event, TrainingStarted):
            self.metric_name = event.metric_name
            self.epochs = event.epochs
            self.epoch_started = self.clock()
            self.resumed_at = event.start_batch
            if event.start_epoch < event.epochs:
                self._progress(BatchesDone(event.start_epoch + 1, event.start_batch,
                                           event.batches_per_epoch))
        elif isinstance(event, RolledBack):
            self._note(f"{event.reason}; rolled back to the end of epoch {event.to_epoch} "
                       f"with learning rate {event.learning_rate:.3g} (rollback "
                       f"{event.rollbacks})")
        elif isinstance(event, StoppedEarly):
            self.progress = None
            why = (f"{event.monitor} has not improved for {event.patience} epochs"
                   if event.by is None else f"by the {event.by}")
            self._note(f"stopped early after epoch {event.epoch}: {why}; keeping epoch "
                       f"{event.best_epoch}")
        elif isinstance(event, Stopped):
            self.progress = None
            self._note(f"stopping after batch {event.batches_done} of epoch {event.epoch}; "
                       "writing a checkpoint")
        elif isinstance(event, BatchesDone):
            self._progress(event)
        elif isinstance(event, EpochEnded):
            self.rows.append(event)
            self.epoch_started = self.clock()
            self.resumed_at = 0
            batches = self.progress.batches if self.progress is not None else 0
            # the next epoch's line straight away, so that the bar does not blink out
            self.progress = None
            if event.epoch < event.epochs and batches:
                self._progress(BatchesDone(event.epoch + 1, 0, batches))
            if not self.display.interactive:
                self.display.info(self._plain_line(event))
        elif isinstance(event, TrainingEnded):
            self.finished = True
            self.progress = None
            if self.live is not None:
                self.live.refresh()

    def _progress(self, event: BatchesDone) -> None:
        self.progress = event
        self.reported = self.clock()

    def _note(self, note: str) -> None:
        self.notes.append(note)
        if not self.display.interactive:
            self.display.info(note)

    def _plain_line(self, e: EpochEnded) -> str:
        width = len(str(e.epochs))
        line = (f"epoch {e.epoch:>{width}}/{e.epochs}  train_loss {metric_text(e.train_loss)}  "
                f"val_loss {metric_text(e.val_loss)}  "
                f"val_{self.metric_name} {metric_text(e.val_metric)}  "
                f"lr {e.learning_rate:.3g}  {e.seconds:.2f}s")
        if e.stats:  # a step's own figures stand for the losses (a GAN's)
            line = (f"epoch {e.epoch:>{width}}/{e.epochs}  "
                    + "  ".join(f"{name.replace(' ', '_')} {_figure_text(value)}"
                                for name, value in e.stats.items()
                                if not math.isnan(value))  # NaN: not measured
                    + f"  lr {e.learning_rate:.3g}  {e.seconds:.2f}s")
        if e.health is not None:
            grad, ratios, dead = _health_cells(e.health)
            line += f"  grad_norm {grad}  update/weight {ratios}  dead_relu {dead}"
        return line + ("  *best" if e.is_best else "")

    # -- the live screen -------------------------------------------------------------------

    def render(self) -> RenderableType:
        width, height = self.display.console.size
        return Group(*self.screen_lines(width, height))

    def screen_lines(self, width: int, height: int) -> list[Text]:
        """The screen as lines of at most ``width`` characters, at most ``height`` of them.
        What matters most when room is short: the status line (progress and ETA), then the
        newest epoch, the headings, the notes, the health line, and the older epochs."""
        columns = self._columns(width)
        status = self._status(width)
        wrapped = [wrap_words(note, width) for note in self.notes[-3:]]
        health = self._health_lines(width, columns)
        # the newest epoch, and a line saying that older ones are hidden
        least = min(len(self.rows), 2)
        room = height - len(status)
        header = self._header(columns, width) if room >= least + 2 else []
        room -= len(header)
        while wrapped and room - sum(map(len, wrapped)) < least:
            wrapped.pop(0)  # whole notes, the oldest first
        notes = [Text(line, style="yellow") for note in wrapped for line in note]
        room -= len(notes)
        if room - len(health) < least:
            health = []
        room -= len(health)
        body = [self._row(item, columns) if isinstance(item, EpochEnded)
                else self._gap(*item, width)
                for item in self._folded(max(room, 0))]
        return [*header, *body, *(Text(line, style="cyan") for line in health), *notes,
                *status][:max(height, 0)]

    def _columns(self, width: int) -> list[_Column]:
        """The columns that fit in ``width``; the health columns go first, then lr and
        seconds (the health line below the table then carries grad norm and dead relu)."""
        health = bool(self.rows) and self.rows[-1].health is not None
        columns = [
            _Column("epoch", lambda e: f"{e.epoch}{'*' if e.is_best else ' '}",
                    max(5, len(str(self.epochs)) + 1), 0),
            _Column("train loss", lambda e: fit_number(e.train_loss, 7), 10, 0),
            _Column("val loss", lambda e: fit_number(e.val_loss, 7), 8, 0),
            _Column(f"val {self.metric_name}", lambda e: fit_number(e.val_metric, 7),
                    max(7, len(f"val {self.metric_name}")), 0),
            _Column("lr", lambda e: fit_general(e.learning_rate, 6), 6, 2),
            _Column("seconds", lambda e: fit_number(e.seconds, 7, decimals=2), 7, 1),
        ]
        stats = list(self.rows[-1].stats) if self.rows else []
        if stats:  # a step's own figures (a GAN's) in place of the losses and metric
            columns[1:4] = [_Column(name, _stat_cell(name), max(7, len(name)), 0)
                            for name in stats]
        if health:
            columns += [
                _Column("grad norm", lambda e: fit_general(e.health.grad_norm, 9)
                        if e.health else "", 9, 4),
                _Column("dead relu", lambda e: _dead(e.health) if e.health else "", 9, 3),
            ]
        for drop in (4, 3, 2, 1):
            if _table_width(columns) <= width:
                break
            columns = [c for c in columns if c.drop != drop]
        return columns

    def _header(self, columns: list[_Column], width: int) -> list[Text]:
        headings = COLUMN_GAP.join(c.heading.rjust(c.width) for c in columns)
        rule = "─" * min(_table_width(columns), width)
        legend = " * best so far "
        # a GAN's epochs are never best: no legend for a mark that never shows
        if len(rule) > len(legend) + 4 and any(e.is_best for e in self.rows):
            rule = rule[:2] + legend + rule[2 + len(legend):]
        return [Text(headings, style="bold", no_wrap=True, overflow="crop"),
                Text(rule, style="dim", no_wrap=True, overflow="crop")]

    def _row(self, e: EpochEnded, columns: list[_Column]) -> Text:
        cells = COLUMN_GAP.join(c.cell(e).rjust(c.width) for c in columns)
        return Text(cells, style="bold" if e.is_best else "", no_wrap=True, overflow="crop")

    def _gap(self, first: int, last: int, width: int) -> Text:
        count = last - first + 1
        which = f"{first}" if count == 1 else f"{first}-{last}"
        where = f"; every epoch is in {RunFiles.METRICS}" if self.finished else ""
        text = f"   ⋮ {count} epoch{'s' if count > 1 else ''} hidden ({which}{where})"
        if len(text) > width:
            text = f"   ⋮ {count} hidden"
        return Text(text, style="dim", no_wrap=True, overflow="crop")

    def _folded(self, room: int) -> list[EpochEnded | tuple[int, int]]:
        """The rows to show in ``room`` lines: every epoch when they fit, else the newest
        ones, the first and the best, with a line for each run of hidden epochs."""
        best = max((i for i, e in enumerate(self.rows) if e.is_best), default=None)
        shown = fold(len(self.rows), best, room)
        items: list[EpochEnded | tuple[int, int]] = []
        previous = -1
        for i in shown:
            if i > previous + 1:
                items.append((self.rows[previous + 1].epoch, self.rows[i - 1].epoch))
            items.append(self.rows[i])
            previous = i
        return items

    def _health_lines(self, width: int, columns: list[_Column]) -> list[str]:
        """The newest epoch's update/weight ratio of each layer (too many for a column),
        and the health numbers whose columns did not fit."""
        health = self.rows[-1].health if self.rows else None
        if health is None:
            return []
        parts = []
        if not any(c.heading == "grad norm" for c in columns):
            parts.append(f"grad norm {fit_general(health.grad_norm, 9)}")
        if not any(c.heading == "dead relu" for c in columns):
            parts.append(f"dead relu {_dead(health)}")
        ratios = ", ".join(f"{layer} {_ratio(r)}" for layer, r in health.update_ratios.items())
        parts.append(f"update/weight by layer: {ratios}")
        return wrap_words(f"epoch {self.rows[-1].epoch} health: {'; '.join(parts)}", width)

    def _status(self, width: int) -> list[Text]:
        """The progress bar and ETA of the epoch in progress, as one line."""
        p = self.progress
        if p is None or self.finished:
            return []
        epochs = self.epochs
        now = self.clock()
        recent = [e.seconds for e in self.rows[-5:]]
        epoch_seconds = sum(recent) / len(recent) if recent else None
        # the pace of the batches this process ran, not of those done before a resume
        elapsed, done = self.reported - self.epoch_started, p.batches_done - self.resumed_at
        left = epoch_eta(elapsed, done, p.batches - self.resumed_at, epoch_seconds)
        if left is not None:
            left = max(left - (now - self.reported), 0.0)
        of = f"/{epochs}" if epochs else ""
        labels = [f"epoch {p.epoch}{of}  batch {p.batches_done}/{p.batches}"]
        if left is not None:
            labels[0] += f"  ETA {clock_time(left)}"
            if epochs:
                run = run_eta(left, epochs - p.epoch,
                              epoch_seconds or elapsed * p.batches / max(done, 1))
                labels.insert(0, f"{labels[0]} (run {clock_time(run)})")
        labels.append(f"{p.epoch}{of} {p.batches_done}/{p.batches}")
        label = next((text for text in labels if len(text) <= width - ECHO_ROOM), labels[-1])
        # three columns left free: the ^C a user types to stop echoes after the last line,
        # and on a full line it would wrap and scroll the screen under the live redraw
        bar_width = width - len(label) - 2 - ECHO_ROOM
        line = Text(no_wrap=True, overflow="crop")
        if bar_width >= 10:
            filled = round(bar_width * p.batches_done / max(p.batches, 1))
            line.append("━" * filled, style="magenta")
            # a thinner line for the rest: the bar must read without colours (NO_COLOR)
            line.append("─" * (bar_width - filled), style="grey30")
            line.append("  ")
        line.append(label)
        return [line]


def layer_row(entry: dict[str, Any]) -> tuple[str, str, str, int]:
    """A row of the layer table from an entry of ``Network.summary()``: its number, kind
    and options (its activation among them), output shape and parameter count."""
    detail = layer_options(entry["options"])
    activation = entry["activation"]
    if activation is not None:
        options = layer_options({k: v for k, v in activation.items() if k != "name"})
        named = activation["name"] + (f" ({options})" if options else "")
        detail = ", ".join(filter(None, [detail, f"activation={named}"]))
    return (str(entry["index"]), entry[KIND_KEY] + (f" ({detail})" if detail else ""),
            "x".join(map(str, entry["output_shape"])), entry["parameters"])


def layer_options(options: dict[str, Any]) -> str:
    """A layer's settings for a table cell: sizes as 3x3, stride 1 and a bias left out."""
    shown = []
    for key, value in options.items():
        if (key == "stride" and value == [1, 1]) or (key == "use_bias" and value is True):
            continue  # the defaults
        if isinstance(value, list) and all(isinstance(v, int) for v in value):
            value = "x".join(map(str, value))
        shown.append(f"{key}={value}")
    return ", ".join(shown)


COLUMN_GAP = "  "


@dataclass(frozen=True)
class _Column:
    heading: str
    cell: Callable[[EpochEnded], str]
    width: int
    drop: int  # 0: always shown; on a narrow screen the highest go first


def _stat_cell(name: str) -> Callable[[EpochEnded], str]:
    def cell(e: EpochEnded) -> str:
        value = e.stats.get(name, math.nan)
        return str(int(value)) if _whole(value) else fit_number(value, 7)
    return cell


def _figure_text(value: float) -> str:
    """A step's figure: a count (a GAN's classes present) as a whole number."""
    return str(int(value)) if _whole(value) else metric_text(value)


def _whole(value: float) -> bool:
    return math.isfinite(value) and value.is_integer() and abs(value) < 1e6


def _table_width(columns: list[_Column]) -> int:
    return sum(c.width for c in columns) + len(COLUMN_GAP) * (len(columns) - 1)


def fit_number(value: float, width: int, decimals: int = 4) -> str:
    """``value`` in at most ``width`` characters (``width`` >= 6), as precisely as fits:
    fixed point with up to ``decimals`` decimals while that keeps two significant digits,
    otherwise scientific notation with a short exponent (``1.23e-5``, ``4.5e7``). NaN is
    a value that was not measured (no validation rows): ``-``."""
    if math.isnan(value):
        return "-"
    if not math.isfinite(value):
        return str(value)
    if value == 0 or abs(value) >= 10.0 ** (1 - decimals):
        for places in range(decimals, -1, -1):
            text = f"{value:.{places}f}"
            if len(text) <= width:
                return text
    for digits in range(width, -1, -1):
        mantissa, exponent = f"{value:.{digits}e}".split("e")
        text = f"{mantissa}e{int(exponent)}"
        if len(text) <= width:
            return text
    return text


def fit_general(value: float, width: int, digits: int = 3) -> str:
    """``value`` with up to ``digits`` significant digits in at most ``width`` characters
    (``width`` >= 6), the shortest way: ``0.002``, ``1e-5``, ``3.66``, ``1.2e6``."""
    if not math.isfinite(value):
        return str(value)
    for places in range(digits, 0, -1):
        for text in (f"{value:.{places}g}", f"{value:.{places - 1}e}"):
            if "e" in text:
                mantissa, exponent = text.split("e")
                text = f"{mantissa}e{int(exponent)}"
            if len(text) <= width:
                return text
    return fit_number(value, width)


def wrap_words(text: str, width: int, indent: str = "  ") -> list[str]:
    """``text`` as lines of at most ``width`` characters, broken between words; later
    lines indented. Only a word longer than a whole line is split."""
    return textwrap.wrap(text, max(width, len(indent) + 1), subsequent_indent=indent,
                         break_on_hyphens=False) or [""]


def fold(n: int, best: int | None, room: int) -> list[int]:
    """Which of ``n`` rows to show in ``room`` lines, where each run of hidden rows takes
    a line of its own: all when they fit, else as many of the newest as fit with the first
    and the ``best`` row kept too (the best before the first when both do not fit)."""
    if n <= room:
        return list(range(n))
    for pinned in ([0, best], [best], [0], []):
        keep = sorted({i for i in pinned if i is not None})
        for tail in range(room, 0, -1):
            shown = sorted({*(i for i in keep if i < n - tail), *range(n - tail, n)})
            gaps = sum(1 for a, b in zip([-1, *shown], shown, strict=False) if b > a + 1)
            if len(shown) + gaps <= room:
                return shown
    return list(range(n - room, n)) if room > 0 else []  # no room even for a gap line


def epoch_eta(elapsed: float, done: int, total: int, epoch_seconds: float | None
              ) -> float | None:
    """Seconds left in an epoch ``elapsed`` seconds and ``done`` of ``total`` batches in:
    at the pace of its batches so far, or, before its first batch, as long as the recent
    epochs took (``epoch_seconds``; None when unknown)."""
    if done > 0:
        return elapsed / done * (total - done)
    if epoch_seconds is not None:
        return max(epoch_seconds - elapsed, 0.0)
    return None


def run_eta(epoch_left: float, epochs_after: int, epoch_seconds: float) -> float:
    """Seconds left in the run: this epoch's rest and ``epochs_after`` more epochs."""
    return epoch_left + epochs_after * epoch_seconds


def clock_time(seconds: float) -> str:
    """``0:04``, ``12:31``, ``1:02:03``."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _dead(health: Health) -> str:
    return f"{health.dead_relu:.0%}" if health.dead_relu is not None else "-"


def _ratio(ratio: float) -> str:
    if not math.isfinite(ratio):
        return str(ratio)
    mantissa, exponent = f"{ratio:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _health_cells(health: Health) -> tuple[str, str, str]:
    ratios = " ".join(f"{layer}:{ratio:.1e}" for layer, ratio in health.update_ratios.items())
    dead = f"{health.dead_relu:.0%}" if health.dead_relu is not None else "-"
    return f"{health.grad_norm:.3g}", ratios, dead


def _array_lines(values: np.ndarray, limit: int) -> list[str]:
    """An array as a few text lines: in full when small, else its shape and statistics."""
    if values.size <= limit:
        matrix = values.reshape(values.shape[0], -1) if values.ndim > 1 else values[None, :]
        # + 0.0 turns the -0.0 of masked entries into 0
        return ["[" + "  ".join(f"{v + 0.0: .4g}" for v in row) + "]" for row in matrix]
    flat = values.reshape(-1)
    first = "  ".join(f"{v: .4g}" for v in flat[:6])
    return [f"shape {'x'.join(map(str, values.shape))}, |.| {np.linalg.norm(flat):.4g}, mean "
            f"{flat.mean():.4g}, min {flat.min():.4g}, max {flat.max():.4g}",
            f"first entries: [{first} ...]"]
