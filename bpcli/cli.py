"""The command line. Thin: parse options, call one function per command, and turn bp's
errors into one-line messages and exit codes (the only place that does)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup

from bpcli import __version__
from bpcli.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, BpError
from bpcli.streams import flush_standard_streams, guard_standard_streams

T = TypeVar("T")


class _Switches:
    """Help shows an on/off option as a bare switch (``--force``), not ``--force <bool>``,
    which reads as if it took a value (and ``--json true`` then fails). A usage mistake
    found while parsing knows its command, for the help command to suggest."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            parsed: list[str] = super().parse_args(ctx, args)  # type: ignore[misc]
        except _click.exceptions.UsageError as exc:
            if exc.ctx is None:  # e.g. an option missing its value
                exc.ctx, exc.cmd = ctx, ctx.command
            raise
        return parsed

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""  # typer prints the metavar in place of the type
        return params


class _Command(_Switches, TyperCommand):
    pass


class _Group(_Switches, TyperGroup):
    """bp's command group: usage mistakes (unknown command or option, missing argument, bad
    value) become one ``bp: ...`` line on stderr and exit 2, here for every command."""

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        try:
            code = super().main(args, prog_name or "bp", complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        except _click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            code = exc.exit_code
        except _click.exceptions.UsageError as exc:
            typer.echo(f"bp: {usage_message(exc)}", err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo("bp: aborted", err=True)
            code = 1
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else ""
        if (name and not name.startswith("-") and self.get_command(ctx, name) is None
                and not ctx.resilient_parsing):
            raise _NoSuchCommand(name, list(self.commands), ctx)
        return super().resolve_command(ctx, args)


class _Typer(typer.Typer):
    """A Typer whose commands show switches as switches (see ``_Switches``)."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


def usage_message(exc: _click.exceptions.UsageError) -> str:
    """One line for a usage mistake: what is wrong, a did-you-mean where one is close, and
    the help command to run."""
    ctx = exc.ctx
    names: list[str] = []
    parent = ctx
    while parent is not None:  # not ctx.command_path, which carries the groups' arguments
        names.insert(0, parent.info_name or "bp")
        parent = parent.parent
    command = " ".join(names) or "bp"
    hint = ""
    if isinstance(exc, _click.exceptions.NoSuchOption):
        what = f"no such option {exc.option_name!r} for '{command}'"
        if ctx is not None:
            names = [opt for param in ctx.command.get_params(ctx)
                     for opt in (*param.opts, *param.secondary_opts) if opt.startswith("--")]
            hint = _did_you_mean(exc.option_name, names)
    elif isinstance(exc, _click.exceptions.MissingParameter):
        param = exc.param
        name = param.get_error_hint() if param is not None else "a value"
        kind = exc.param_type or (param.param_type_name if param is not None else "argument")
        what = f"missing {kind} {name} of '{command}'"
    elif isinstance(exc, _click.exceptions.BadParameter):
        param = exc.param
        name = param.get_error_hint() if param is not None else "a value"
        what = f"invalid value for {name}: {_lower_first(exc.message)}"
    elif isinstance(exc, _NoSuchCommand):
        what = f"no such command {exc.name!r}"
        hint = _did_you_mean(exc.name, exc.commands)
    else:
        what = _lower_first(exc.format_message())
        extra = re.search(r"unexpected extra argument\S* \((.*)\)$", exc.format_message())
        if extra:
            what = f"unexpected argument {extra.group(1)!r} to '{command}'"
        switches = _switches_given_a_value(exc.format_message(), ctx)
        if switches:
            hint = f"; {' and '.join(switches)} take{'s' if len(switches) == 1 else ''} no " \
                   "value: give the option alone to switch it on"
    end = " " if hint.endswith("?") else ". "
    return f"{what.rstrip('.')}{hint}{end}Run '{command} --help'."


def _did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    bare = {choice.lstrip("-"): choice for choice in choices}
    close = difflib.get_close_matches(word.lstrip("-"), list(bare), n=1, cutoff=0.6)
    return f"; did you mean {bare[close[0]]!r}?" if close else ""


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _switches_given_a_value(message: str, ctx: Any) -> list[str]:
    """The command's on/off options, when an unexpected argument looks like a value meant
    for one (``--json true``)."""
    extra = message.partition("extra argument")[2].lower().strip("s() ").split()
    if ctx is None or not {"true", "false", "yes", "no", "on", "off"} & set(extra):
        return []
    return [p.opts[0] for p in ctx.command.params if getattr(p, "is_flag", False)]


class _NoSuchCommand(_click.exceptions.UsageError):
    def __init__(self, name: str, commands: list[str], ctx: Any) -> None:
        super().__init__(f"no such command {name!r}", ctx)
        self.name = name
        self.commands = commands


app = _Typer(
    name="bp",
    cls=_Group,
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
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"bp: {where}{exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except MemoryError:  # bp estimates what it needs first; other programs may take it since
        typer.echo("bp: ran out of memory; free some memory, or ask for less: a smaller "
                   "training.batch_size, fewer units or filters, or a smaller data file",
                   err=True)
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
    "--threads", min=1, help="Threads for the matrix products (default: bp chooses by the "
    "size of the products and the cores other programs leave free).")]


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


ConfigArg = Annotated[Path, typer.Argument(help="The YAML config file.", metavar="CONFIG",
                                           show_default=False)]
SetOption = Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
    "--set", metavar="KEY.PATH=VALUE",
    help="Override a config value, e.g. --set training.epochs=20 (repeatable).")]


@app.command()
def train(
    config: Annotated[Optional[Path], typer.Argument(  # noqa: UP045
        help="The YAML config file.", metavar="CONFIG", show_default=False)] = None,
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
    epochs: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--epochs", min=1, help="With --resume: the new total of epochs, to train a run "
        "further (a finished one too).")] = None,
    cv: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--cv", min=2, max=100, help="Cross-validate: train on each of K folds (stratified "
        "for classification) and report the mean and spread of the score.")] = None,
    set_: SetOption = None,
) -> None:
    """Train the network a config describes and write a run directory."""
    _use_threads(threads)
    from bpcli.config import Override

    overrides = list(set_ or [])
    if init_from is not None:  # relative to here, not to the config file
        overrides.append(Override(f"training.init_from={init_from.resolve()}",
                                  f"--init-from {init_from}"))
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
            if cv is not None:
                raise UsageError("--cv trains a config on each fold; resume an "
                                 "interrupted cross-validation with bp sweep --resume DIR")
            return resume_run(resume, Display(), force, health, epochs, threads)
        if epochs is not None:
            raise UsageError("--epochs goes with --resume; for a new run, set "
                             "training.epochs in the config or --set training.epochs=N")
        assert config is not None
        if cv is not None:
            from bpcli.commands.sweep import cross_validate

            return cross_validate(config, cv, Display(), overrides, threads)
        return run_train(config, Display(), overrides, health, threads)

    _run(action)


@app.command()
def sweep(
    sweep_file: Annotated[Optional[Path], typer.Argument(  # noqa: UP045
        help="The sweep file: a base config and the values to search.", metavar="SWEEP",
        show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--resume", help="Carry on this sweep directory: finished trials are kept.")]
    = None,
    force: Annotated[bool, typer.Option(
        "--force", help="With --resume: resume even if the sweep file or base config "
        "changed.")] = False,
    workers: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--workers", min=1, help="Trials at once (default: the sweep file's workers, "
        "else one per core).")] = None,
    threads: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--threads", min=1, help="Threads for each trial's matrix products (default: the "
        "cores shared among the workers).")] = None,
    executor: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--executor", metavar="local|ray", help="Where the trials run (default: the sweep "
        "file's executor, else local); ray needs pip install 'bp\\[ray]'.")] = None,
    address: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--address", help="With --executor ray: the cluster, auto or ray://host:port "
        "(default: a Ray instance of the sweep's own).")] = None,
) -> None:
    """Train many variants of a config (grid or random search, ASHA) and name the best."""
    from bpcli.commands.sweep import resume as resume_sweep
    from bpcli.commands.sweep import sweep as run_sweep
    from bpcli.display import Display
    from bpcli.errors import UsageError

    def action() -> Path:
        if (sweep_file is None) == (resume is None):
            raise UsageError("give a sweep file (bp sweep SWEEP.yaml) or a sweep to carry "
                             "on (bp sweep --resume SWEEP_DIR), one of the two")
        if executor not in (None, "local", "ray"):
            raise UsageError(f"--executor {executor}: choose local or ray")
        if resume is not None:
            if executor is not None:
                raise UsageError("a sweep resumes on the executor it started on; leave out "
                                 "--executor")
            return resume_sweep(resume, Display(), workers, threads, address, force)
        if force:
            raise UsageError("--force goes with --resume")
        assert sweep_file is not None
        return run_sweep(sweep_file, Display(), workers, threads, executor, address)

    _run(action)


DelimiterOption = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--delimiter", help="The input's delimiter: , ; | or tab (default: the one the model "
    "was trained with if its config set one, else detected).")]
UnseenOption = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--unseen", metavar="other|zeros|error", help="A category the model never saw: to the "
    "column's 'other' input, all zeros, or an error (default: as the model was trained).")]


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="A model.npz written by bp train.",
                                          metavar="MODEL")],
    input: Annotated[Path, typer.Argument(help="CSV file with the model's feature columns.",
                                          metavar="INPUT")],
    out: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--out", "-o", help="Write the predictions to this file (- for stdout, the "
        "default).")] = None,
    keep: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--keep", help="Copy this input column (an id, say) into the output, before the "
        "predictions; repeat for several.")] = None,
    delimiter: DelimiterOption = None,
    unseen: UnseenOption = None,
    threads: ThreadsOption = None,
) -> None:
    """Predict every row of a CSV file with a trained model (CSV on stdout or --out)."""
    _use_threads(threads)
    from bpcli.commands.predict import predict as run_predict
    from bpcli.display import Display

    # progress on stderr, unless the CSV goes to that same screen
    to_stdout = out is None or str(out) == "-"
    display = Display(sys.stderr, interactive=False if to_stdout and sys.stdout.isatty()
                      else None)
    notes: list[str] = []

    def action() -> int:
        with display.working(f"predicting {input.name}") as progress:
            return run_predict(model, input, out, notes, progress, delimiter, keep or [],
                               unseen, threads)

    rows = _run(action)
    for note in notes:
        typer.echo(f"bp: warning: {note}", err=True)
    if out is not None and str(out) != "-":
        typer.echo(f"{rows} predictions written to {out}", err=True)


@app.command()
def generate(
    model: Annotated[Path, typer.Argument(help="A model.npz bp train wrote from a gan "
                                          "config.", metavar="MODEL")],
    n: Annotated[int, typer.Option("-n", help="How many rows (images) to draw.")] = 16,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the noise (and of "
                                      "the categories drawn).")] = 0,
    out: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--out", "-o", help="Write the rows to this file: CSV, or a PNG grid for images "
        "(a name ending in .png; needs bp[plot]). Default: CSV on stdout.")] = None,
) -> None:
    """Draw new rows from a GAN: CSV in the data's columns and units, or a PNG grid."""
    from bpcli.commands.generate import generate as run_generate

    count = _run(lambda: run_generate(model, n, seed, out))
    if out is not None and str(out) != "-":
        typer.echo(f"{count} generated rows written to {out}", err=True)


@app.command()
def gradcheck(
    config: ConfigArg,
    rows: Annotated[int, typer.Option(min=1, help="Training rows in the checked batch.")] = 8,
    eps: Annotated[float, typer.Option(min=0, help="Finite-difference step.")] = 1e-6,
    atol: Annotated[float, typer.Option(min=0, help="Absolute tolerance.")] = 1e-8,
    rtol: Annotated[float, typer.Option(min=0, help="Relative tolerance.")] = 1e-5,
    max_entries: Annotated[int, typer.Option(
        min=1, help="Check at most this many entries of each tensor (sampled).")] = 500,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1,
                                      help="Seed of the weights and sampled entries.")] = 0,
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
    model: Annotated[Path, typer.Argument(help="A model.npz written by bp train.",
                                          metavar="MODEL")],
    data: Annotated[Path, typer.Argument(help="CSV with the features and the target.",
                                         metavar="DATA")],
    json_: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    plot: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--plot", help="Also draw the confusion matrix to this PNG file (needs matplotlib: "
        "pip install 'bp\\[plot]').")] = None,
    delimiter: DelimiterOption = None,
    unseen: UnseenOption = None,
) -> None:
    """Score a trained model on a labelled CSV file."""
    import json

    from bpcli.commands.evaluate import evaluate as run_evaluate
    from bpcli.commands.evaluate import plot_confusion
    from bpcli.display import Display
    from bpcli.metrics import ClassificationReport, RegressionReport

    notes: list[str] = []

    def action() -> ClassificationReport | RegressionReport:
        # progress on stderr: stdout may be a pipe into jq
        with Display(sys.stderr).working(f"scoring {data.name}") as progress:
            return run_evaluate(model, data, notes, progress, delimiter, unseen)

    report = _run(action)
    for note in notes:
        typer.echo(f"bp: warning: {note}", err=True)
    if plot is not None:
        _run(lambda: plot_confusion(report, plot, data))
        typer.echo(f"confusion matrix written to {plot}", err=True)
    if json_:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        Display().evaluation(report, str(data))


@app.command()
def explain(
    source: Annotated[Path, typer.Argument(help="A config file, or a model.npz.",
                                           metavar="CONFIG_OR_MODEL",
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
def validate(
    config: ConfigArg,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document: the "
                                        "column profile, the layers, and the problems.")]
    = False,
    set_: SetOption = None,
) -> None:
    """Check a config and its data files without training: columns, layers, problems."""
    from bpcli.commands.validate import validate as run_validate
    from bpcli.display import Display

    _run(lambda: run_validate(config, Display(), set_ or [], as_json=json_))


@app.command()
def schema(
    out: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--out", "-o", help="Write the schema to this file (- for stdout, the default).")]
    = None,
) -> None:
    """Print the JSON Schema of the config format (for editors' YAML support)."""
    from bpcli.atomic import write_text_atomic
    from bpcli.commands.validate import schema as config_schema
    from bpcli.files import output_path

    target = None if out is None else _run(lambda: output_path(out))
    text = config_schema()
    if target is None:
        typer.echo(text, nl=False)
    else:
        _run(lambda: write_text_atomic(target, text))


@app.command()
def plot(
    run_dirs: Annotated[list[Path], typer.Argument(
        help="Run directories (or their metrics.csv files).", metavar="RUN_DIR",
        show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="The PNG file to write.")] = Path("compare.png"),
) -> None:
    """Draw runs' learning curves on one picture; a sweep's metric against each parameter."""
    from bpcli.commands.plot import plot as run_plot
    from bpcli.sweep.record import is_sweep_dir

    written = _run(lambda: run_plot(run_dirs, out))
    if len(run_dirs) == 1 and is_sweep_dir(run_dirs[0]):
        typer.echo(f"the sweep's metric against each parameter written to {written}",
                   err=True)
        return
    typer.echo(f"curves of {len(run_dirs)} run{'s' if len(run_dirs) > 1 else ''} written "
               f"to {written}", err=True)


@app.command()
def export(
    model: Annotated[Path, typer.Argument(help="A model.npz written by bp train.",
                                          metavar="MODEL", show_default=False)],
    onnx: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--onnx", help="Write the model, preprocessing included, as this ONNX file (needs "
        "onnx: pip install 'bp\\[onnx]').")] = None,
) -> None:
    """Export a model for other runtimes: ONNX, raw columns in, bp predict's numbers out."""
    from bpcli.commands.export import export as run_export

    typer.echo(_run(lambda: run_export(model, onnx)), err=True)


@app.command()
def inspect(
    model: Annotated[Path, typer.Argument(help="A model.npz, or a checkpoint in a run's "
                                          "checkpoints/.", metavar="MODEL",
                                          show_default=False)],
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document instead.")]
    = False,
) -> None:
    """Show a model or checkpoint: layers, loss, preprocessing, and where it came from."""
    from bpcli.commands.inspect import inspect as run_inspect
    from bpcli.display import Display

    _run(lambda: run_inspect(model, Display(), as_json=json_))


@app.command()
def serve(
    model: Annotated[Path, typer.Argument(help="A model.npz written by bp train.",
                                          metavar="MODEL", show_default=False)],
    host: Annotated[str, typer.Option(help="The address to listen on (0.0.0.0: every "
                                      "interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port (0: any free "
                                      "one).")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes, each with the "
                                         "model loaded.")] = 1,
    max_body: Annotated[float, typer.Option(
        "--max-body", min=0.001, metavar="MB", help="Larger request bodies get 413.")] = 16,
    unseen: UnseenOption = None,
    threads: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--threads", min=1, help="BLAS threads per worker (default 1: requests are small, "
        "and the workers run side by side).")] = None,
) -> None:
    """Serve a model's predictions over HTTP: POST /predict, GET /model, GET /health, /docs."""
    if threads is not None or not any(v in os.environ for v in THREAD_VARIABLES):
        _use_threads(threads or 1)
    from bpcli.commands.serve import serve as run_serve

    _run(lambda: run_serve(model, host, port, workers, unseen, max_body,
                           lambda line: typer.echo(f"bp: {line}", err=True)))


DEFAULT_RUNS_DIR = "runs"


class _RunsGroup(_Group):
    """``bp runs [RUNS_DIR]`` lists and ``bp runs diff A B`` compares: a subcommand's name
    must not be taken for RUNS_DIR, which comes before it on the command line."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            args = [DEFAULT_RUNS_DIR, *args]
        return super().parse_args(ctx, args)


runs_app = _Typer(cls=_RunsGroup, invoke_without_command=True,
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
    guard_standard_streams()
    try:
        app()
    finally:
        flush_standard_streams()
