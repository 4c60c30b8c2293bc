"""Everything bp shows a person. The only module that imports rich.

On a terminal, training is a live table updated in place with a progress bar within long
epochs; elsewhere (a pipe, a file, CI) it is one plain line per epoch with no escape codes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import numpy as np
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.measure import Measurement
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from bpcli.events import (
    BatchesDone,
    EpochEnded,
    Event,
    Health,
    RolledBack,
    Stopped,
    StoppedEarly,
    TrainingEnded,
    TrainingStarted,
)
from bpcli.explain import Trace
from bpcli.metrics import ClassificationReport, RegressionReport, metric_text
from bpcli.nn.gradcheck import TensorCheck

REFRESHES_PER_SECOND = 4


class Display:
    """Renders bp's output to ``stream`` (stdout by default)."""

    def __init__(self, stream: TextIO | None = None, interactive: bool | None = None) -> None:
        self.console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=True,
                               force_terminal=interactive)
        self.interactive = self.console.is_terminal if interactive is None else interactive

    def info(self, text: str) -> None:
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
            yield view
            view.progress = None
            live.refresh()

    def layer_table(self, input_shape: tuple[int, ...],
                    rows: list[tuple[str, str, str, int]]) -> None:
        """The network's layers: index, kind and options, output shape, parameters."""
        table = Table(title=f"layers (input {'x'.join(map(str, input_shape))})",
                      title_justify="left")
        for heading in ("#", "layer", "output", "parameters"):
            table.add_column(heading, justify="right" if heading in ("#", "parameters")
                             else "left")
        for index, layer, shape, params in rows:
            table.add_row(index, layer, shape, f"{params:,}")
        table.add_row("", "total", "", f"{sum(r[3] for r in rows):,}", style="bold")
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
                  "diverged": "bold red", "running": "cyan"}
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


class TrainingView:
    """Listens to training events and shows them."""

    def __init__(self, display: Display) -> None:
        self.display = display
        self.live: Live | None = None
        self.metric_name = "metric"
        self.rows: list[EpochEnded] = []
        self.progress: BatchesDone | None = None
        self.notes: list[str] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, TrainingStarted):
            self.metric_name = event.metric_name
        elif isinstance(event, RolledBack):
            self.notes.append(f"{event.reason}; rolled back to the end of epoch "
                              f"{event.to_epoch} with learning rate {event.learning_rate:.3g} "
                              f"(rollback {event.rollbacks})")
            if not self.display.interactive:
                self.display.info(self.notes[-1])
        elif isinstance(event, StoppedEarly):
            self.notes.append(f"stopped early after epoch {event.epoch}: {event.monitor} has "
                              f"not improved for {event.patience} epochs; keeping epoch "
                              f"{event.best_epoch}")
            if not self.display.interactive:
                self.display.info(self.notes[-1])
        elif isinstance(event, Stopped):
            self.progress = None
            self.notes.append(f"stopping after batch {event.batches_done} of epoch "
                              f"{event.epoch}; writing a checkpoint")
            if not self.display.interactive:
                self.display.info(self.notes[-1])
        elif isinstance(event, BatchesDone):
            self.progress = event
        elif isinstance(event, EpochEnded):
            self.progress = None
            self.rows.append(event)
            if not self.display.interactive:
                self.display.info(self._plain_line(event))
        elif isinstance(event, TrainingEnded) and self.live is not None:
            self.live.refresh()

    def _plain_line(self, e: EpochEnded) -> str:
        width = len(str(e.epochs))
        line = (f"epoch {e.epoch:>{width}}/{e.epochs}  train_loss {metric_text(e.train_loss)}  "
                f"val_loss {metric_text(e.val_loss)}  "
                f"val_{self.metric_name} {metric_text(e.val_metric)}  "
                f"lr {e.learning_rate:.3g}  {e.seconds:.2f}s")
        if e.health is not None:
            grad, ratios, dead = _health_cells(e.health)
            line += f"  grad_norm {grad}  update/weight {ratios}  dead_relu {dead}"
        return line + ("  *best" if e.is_best else "")

    def render(self) -> RenderableType:
        table = Table(caption="* best so far", caption_justify="left")
        health = bool(self.rows) and self.rows[-1].health is not None
        headings = ["epoch", "train loss", "val loss", f"val {self.metric_name}", "lr",
                    "seconds"]
        if health:
            headings += ["grad norm", "update/weight by layer", "dead relu"]
        for heading in headings:
            table.add_column(heading, justify="right")
        height = self.display.console.size.height
        shown = self.rows[-max(5, height - 10):]
        for e in shown:
            cells = [f"{e.epoch}{'*' if e.is_best else ' '}", metric_text(e.train_loss),
                     metric_text(e.val_loss), metric_text(e.val_metric), f"{e.learning_rate:.3g}",
                     f"{e.seconds:.2f}"]
            if health:
                cells += list(_health_cells(e.health)) if e.health else ["", "", ""]
            table.add_row(*cells, style="bold" if e.is_best else None)
        parts: list[RenderableType] = [table]
        parts += [Text(note, style="yellow") for note in self.notes[-3:]]
        if self.progress is not None:
            p = self.progress
            bar = ProgressBar(total=p.batches, completed=p.batches_done, width=40)
            label = Text(f" epoch {p.epoch}: batch {p.batches_done}/{p.batches}")
            grid = Table.grid()
            grid.add_row(bar, label)
            parts.append(grid)
        return Group(*parts)


def layer_row(entry: dict[str, Any]) -> tuple[str, str, str, int]:
    """A row of the layer table from an entry of ``Network.summary()``: its number, kind
    and options (its activation among them), output shape and parameter count."""
    detail = layer_options(entry["options"])
    activation = entry["activation"]
    if activation is not None:
        options = layer_options({k: v for k, v in activation.items() if k != "name"})
        named = activation["name"] + (f" ({options})" if options else "")
        detail = ", ".join(filter(None, [detail, f"activation={named}"]))
    return (str(entry["index"]), entry["type"] + (f" ({detail})" if detail else ""),
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
