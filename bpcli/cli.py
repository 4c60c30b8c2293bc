"""The command line. Thin: parse options, call one function per command, and turn bp's
errors into one-line messages and exit codes (the only place that does)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from typer.core import TyperGroup

from bpcli import __version__
from bpcli.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, BpError

T = TypeVar("T")

app = typer.Typer(
    name="bp",
    help="Train neural networks with backpropagation from a YAML config and a CSV file.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _run(action: Callable[[], T]) -> T:
    """Run a command; bp's errors become messages on stderr and exit codes."""
    try:
        return action()
    except BpError as exc:
        for line in exc.lines():
            typer.echo(f"bp: {line}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("bp: interrupted", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        # the reader went away (e.g. `bp predict ... | head`); nothing more to say
        sys.stderr.close()
        raise typer.Exit(0) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"bp: {where}{exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _use_threads(threads: int | None) -> None:
    """Set the BLAS thread count. BLAS libraries read it once, when NumPy loads, which is
    why the commands import NumPy only after this runs."""
    if threads is None:
        return
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)


ThreadsOption = Annotated[Optional[int], typer.Option(  # noqa: UP045
    "--threads", min=1, help="Threads for the matrix products (default: BLAS's own choice, "
    "usually one per core).")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bp {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show bp's version and exit.")] = False,
) -> None:
    """Train neural networks with backpropagation from a YAML config and a CSV file."""


ConfigArg = Annotated[Path, typer.Argument(help="The YAML config file.", show_default=False)]
SetOption = Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
    "--set", metavar="KEY.PATH=VALUE",
    help="Override a config value, e.g. --set training.epochs=20 (repeatable).")]


@app.command()
def train(
    config: Annotated[Optional[Path], typer.Argument(  # noqa: UP045
        help="The YAML config file.", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--resume", help="Carry on this run directory from its last checkpoint.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="With --resume: resume even if the config or data changed.")] = False,
    threads: ThreadsOption = None,
    health: Annotated[bool, typer.Option(
        "--health", help="Add gradient norm, update-to-weight ratio per layer and dead "
        "ReLU units to the table.")] = False,
    init_from: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--init-from", help="Warm start: begin from this model.npz's weights (same as "
        "training.init_from).")] = None,
    set_: SetOption = None,
) -> None:
    """Train the network a config describes and write a run directory."""
    _use_threads(threads)
    overrides = list(set_ or [])
    if init_from is not None:  # relative to here, not to the config file
        overrides.append(f"training.init_from={init_from.resolve()}")
    from bpcli.commands.train import resume as resume_run
    from bpcli.commands.train import train as run_train
    from bpcli.display import Display
    from bpcli.errors import UsageError

    def action() -> Path:
        if config is None and resume is None:
            raise UsageError("give a config file (bp train CONFIG.yaml) or a run to carry "
                             "on (bp train --resume RUN_DIR)")
        if config is not None and resume is not None:
            raise UsageError("give a config file or --resume RUN_DIR, not both")
        if resume is not None:
            if overrides:
                raise UsageError("--set and --init-from cannot change a run being resumed: "
                                 "its config is fixed by its fingerprint")
            return resume_run(resume, Display(), force, health)
        assert config is not None
        return run_train(config, Display(), overrides, health)

    _run(action)


DelimiterOption = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--delimiter", help="The input's delimiter: , ; | or tab (default: the one the model "
    "was trained with if its config set one, else detected).")]


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="A model.npz written by bp train.")],
    input: Annotated[Path, typer.Argument(help="CSV file with the model's feature columns.")],
    out: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--out", "-o", help="Write the predictions here instead of stdout.")] = None,
    keep: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--keep", help="Copy this input column (an id, say) into the output, before the "
        "predictions; repeat for several.")] = None,
    delimiter: DelimiterOption = None,
    threads: ThreadsOption = None,
) -> None:
    """Predict every row of a CSV file with a trained model (CSV on stdout or --out)."""
    _use_threads(threads)
    from bpcli.commands.predict import predict as run_predict

    notes: list[str] = []
    rows = _run(lambda: run_predict(model, input, out, notes, delimiter, keep or []))
    for note in notes:
        typer.echo(f"bp: warning: {note}", err=True)
    if out is not None:
        typer.echo(f"{rows} predictions written to {out}", err=True)


@app.command()
def gradcheck(
    config: ConfigArg,
    rows: Annotated[int, typer.Option(min=1, help="Training rows in the checked batch.")] = 8,
    eps: Annotated[float, typer.Option(min=0, help="Finite-difference step.")] = 1e-6,
    atol: Annotated[float, typer.Option(min=0, help="Absolute tolerance.")] = 1e-8,
    rtol: Annotated[float, typer.Option(min=0, help="Relative tolerance.")] = 1e-5,
    max_entries: Annotated[int, typer.Option(
        min=1, help="Check at most this many entries of each tensor (sampled).")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the weights and sampled entries.")] = 0,
    fast: Annotated[bool, typer.Option(
        "--fast", help="Check random directional derivatives instead of entries (cost "
        "independent of the network's size).")] = False,
    directions: Annotated[int, typer.Option(
        min=1, help="With --fast: random directions per tensor.")] = 3,
    set_: SetOption = None,
) -> None:
    """Compare analytic gradients with central finite differences, tensor by tensor."""
    from bpcli.commands.gradcheck import gradcheck as run_gradcheck
    from bpcli.display import Display

    _run(lambda: run_gradcheck(config, Display(), rows=rows, eps=eps, atol=atol, rtol=rtol,
                               max_entries=max_entries, seed=seed,
                               directions=directions if fast else None,
                               overrides=set_ or []))


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="A model.npz written by bp train.")],
    data: Annotated[Path, typer.Argument(help="CSV with the features and the target.")],
    json_: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    plot: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--plot", help="Also draw the confusion matrix to this PNG file (needs matplotlib: "
        "pip install 'bp\\[plot]').")] = None,
    delimiter: DelimiterOption = None,
) -> None:
    """Score a trained model on a labelled CSV file."""
    import json

    from bpcli.commands.evaluate import as_json, plot_confusion
    from bpcli.commands.evaluate import evaluate as run_evaluate
    from bpcli.display import Display

    notes: list[str] = []
    report = _run(lambda: run_evaluate(model, data, notes, delimiter))
    for note in notes:
        typer.echo(f"bp: warning: {note}", err=True)
    if plot is not None:
        _run(lambda: plot_confusion(report, plot, data))
    if json_:
        typer.echo(json.dumps(as_json(report), indent=2))
    else:
        Display().evaluation(report, str(data))


@app.command()
def explain(
    source: Annotated[Path, typer.Argument(help="A config file, or a model.npz.",
                                           show_default=False)],
    row: Annotated[int, typer.Option(min=1, help="First data row (1 = the first row under "
                                     "the header).")] = 1,
    rows: Annotated[int, typer.Option(min=1, help="How many rows in the batch.")] = 1,
    data: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        help="CSV to take the rows from (default: the training data).")] = None,
) -> None:
    """Show one forward pass, loss, backward pass and update, step by step."""
    from bpcli.commands.explain import explain as run_explain
    from bpcli.display import Display

    _run(lambda: run_explain(source, Display(), row=row, rows=rows, data=data))


@app.command()
def validate(config: ConfigArg, set_: SetOption = None) -> None:
    """Check a config and its data files without training; show the layers."""
    from bpcli.commands.validate import validate as run_validate
    from bpcli.display import Display

    _run(lambda: run_validate(config, Display(), set_ or []))


@app.command()
def schema(
    out: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--out", "-o", help="Write the schema here instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of the config format (for editors' YAML support)."""
    from bpcli.atomic import write_text_atomic
    from bpcli.commands.validate import schema as config_schema

    text = config_schema()
    if out is None:
        typer.echo(text, nl=False)
    else:
        _run(lambda: write_text_atomic(out, text))


@app.command()
def plot(
    run_dirs: Annotated[list[Path], typer.Argument(
        help="Run directories (or their metrics.csv files).", metavar="RUN_DIR",
        show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="The PNG file to write.")] = Path("compare.png"),
) -> None:
    """Draw the learning curves of one or more runs on one picture, to compare them."""
    from bpcli.commands.plot import plot as run_plot

    written = _run(lambda: run_plot(run_dirs, out))
    typer.echo(f"curves of {len(run_dirs)} run{'s' if len(run_dirs) > 1 else ''} written "
               f"to {written}", err=True)


@app.command()
def inspect(
    model: Annotated[Path, typer.Argument(help="A model.npz, or a checkpoint in a run's "
                                          "checkpoints/.", show_default=False)],
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document instead.")]
    = False,
) -> None:
    """Show a model or checkpoint: layers, loss, preprocessing, and where it came from."""
    from bpcli.commands.inspect import inspect as run_inspect
    from bpcli.display import Display

    _run(lambda: run_inspect(model, Display(), as_json=json_))


DEFAULT_RUNS_DIR = "runs"


class _RunsGroup(TyperGroup):
    """``bp runs [RUNS_DIR]`` lists and ``bp runs diff A B`` compares: a subcommand's name
    must not be taken for RUNS_DIR, which comes before it on the command line."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            args = [DEFAULT_RUNS_DIR, *args]
        return super().parse_args(ctx, args)


runs_app = typer.Typer(cls=_RunsGroup, invoke_without_command=True,
                       subcommand_metavar="| diff RUN_A RUN_B")
app.add_typer(runs_app, name="runs")


@runs_app.callback()
def runs(
    ctx: typer.Context,
    runs_dir: Annotated[Path, typer.Argument(
        help="The directory holding the run directories.", metavar="RUNS_DIR")]
    = Path(DEFAULT_RUNS_DIR),
) -> None:
    """List the runs in RUNS_DIR, newest first; 'bp runs diff A B' compares two runs."""
    if ctx.invoked_subcommand is not None:
        return
    from bpcli.commands.runs import list_runs
    from bpcli.display import Display

    _run(lambda: list_runs(runs_dir, Display()))


@runs_app.command()
def diff(
    run_a: Annotated[Path, typer.Argument(help="A run directory.", metavar="RUN_A",
                                          show_default=False)],
    run_b: Annotated[Path, typer.Argument(help="Another run directory.", metavar="RUN_B",
                                          show_default=False)],
) -> None:
    """Compare two runs: the config keys that differ, then their results side by side."""
    from bpcli.commands.runs import diff_runs
    from bpcli.display import Display

    _run(lambda: diff_runs(run_a, run_b, Display()))


def main() -> None:
    app()
