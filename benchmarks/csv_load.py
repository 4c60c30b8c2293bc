"""Loading a large CSV: bp's reader against polars, pandas (+ scikit-learn) and numpy.

    python benchmarks/csv_load.py [--shape narrow|wide] [--rows N] [--repeats 3]

Writes (once, cached in the temp directory) a CSV of one of two shapes:

- ``narrow`` (default 1,000,000 rows): 20 numeric columns, an integer label and one text
  category column (about 215 MB);
- ``wide`` (default 60,000 rows, MNIST-shaped): 784 pixel columns of integers 0-255,
  four in five of them 0, and a label (about 110 MB).

Then, each contender in a fresh process, interleaved, ``--repeats`` times:

- bp: ``prepare`` on a config naming that file, i.e. read, split, impute, scale and
  one-hot encode into the float32 training and validation arrays bp trains on;
- sklearn: the same job with pandas and scikit-learn: ``pandas.read_csv`` (features as
  float32), ``train_test_split`` (20% validation, stratified), a ``ColumnTransformer``
  of ``SimpleImputer`` + ``StandardScaler`` on the numeric columns and ``OneHotEncoder``
  on the text one, into float32 arrays, and the labels as class indices;
- pandas: ``pandas.read_csv`` (C engine) alone;
- loadtxt: ``numpy.loadtxt`` of the numeric columns as float32 (narrow shape only: it
  takes minutes on the wide one);
- polars: ``polars.read_csv`` of the whole file with the column types bp uses, into a
  DataFrame and nothing more: the parser bp uses, without bp's chunking, checks and
  encoding (the floor for bp's time).

pandas and scikit-learn are never bp dependencies; contenders whose libraries are not
installed are skipped. Prints the median wall time and median peak resident memory of
each (interpreter and libraries included), the ratios bp/sklearn and bp/polars, and bp's
peak beside the size of the arrays it produced (the target: at most those arrays plus
200 MiB).

Peak memory is each child's own high-water mark (``VmHWM`` in ``/proc/self/status``),
read inside the child. ``getrusage``'s ``ru_maxrss`` will not do: a child started with
``vfork`` (as ``subprocess`` does) keeps the parent's high-water mark across ``exec``, so
every contender would show at least the harness's peak (which writing the file raises).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES = 20
PIXELS = 784
MiB = 1 << 20
COLOURS = np.array(["red", "green", "blue", "yellow", "purple", "orange", "black", "white"])
DEFAULT_ROWS = {"narrow": 1_000_000, "wide": 60_000}


def make_csv(path: Path, rows: int) -> None:
    """Random normal features with 6 decimals, a label 0-9 and a colour word."""
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".part")
    with tmp.open("w") as f:
        f.write(",".join([*(f"x{i}" for i in range(FEATURES)), "label", "colour"]) + "\n")
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            X = rng.standard_normal((n, FEATURES))
            labels = rng.integers(0, 10, n)
            colours = COLOURS[rng.integers(0, len(COLOURS), n)]
            body = np.char.mod("%.6f", X)
            lines = [",".join(row) + f",{label},{colour}\n"
                     for row, label, colour in zip(body.tolist(), labels.tolist(),
                                                   colours.tolist(), strict=True)]
            f.write("".join(lines))
    tmp.replace(path)


def make_wide_csv(path: Path, rows: int) -> None:
    """MNIST-shaped: a label 0-9, then 784 pixels, 0 four times in five, else 1-255."""
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".part")
    with tmp.open("w") as f:
        f.write(",".join(["label", *(f"pixel{i}" for i in range(PIXELS))]) + "\n")
        for start in range(0, rows, 5_000):
            n = min(5_000, rows - start)
            pixels = rng.integers(1, 256, (n, PIXELS)) * (rng.random((n, PIXELS)) < 0.2)
            table = np.column_stack([rng.integers(0, 10, n), pixels])
            np.savetxt(f, table, fmt="%d", delimiter=",")
    tmp.replace(path)


def peak_mib() -> float:
    """This process's own peak resident memory (see the module's docstring)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def shape_of(path: Path) -> str:
    return "wide" if "-wide-" in path.name else "narrow"


def run_bp(path: Path) -> dict[str, float]:
    from bpcli.config import LoadedConfig, load_config
    from bpcli.experiment import prepare

    config = path.with_suffix(".yaml")
    config.write_text(f"data: {{path: {path.name}, target: label, task: classification}}\n"
                      "model: {layers: [{type: dense, units: 8}, {type: dense}]}\n")
    loaded: LoadedConfig = load_config(config)
    start = time.perf_counter()
    experiment = prepare(loaded)
    seconds = time.perf_counter() - start
    arrays = sum(a.nbytes for a in (experiment.X_train, experiment.Y_train, experiment.X_val,
                                    experiment.Y_val))
    return {"seconds": seconds, "peak_mib": peak_mib(), "arrays_mib": arrays / MiB}


def run_sklearn(path: Path) -> dict[str, float]:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler

    numeric, text = _feature_columns(path)
    start = time.perf_counter()
    frame = pd.read_csv(path, engine="c", dtype=dict.fromkeys(numeric, np.float32))
    y = LabelEncoder().fit_transform(frame.pop("label"))
    train, val, y_train, y_val = train_test_split(frame, y, test_size=0.2, stratify=y,
                                                  random_state=0)
    del frame
    steps = [("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric)]
    if text:
        steps.append(("text", OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                            dtype=np.float32), text))
    encoder = ColumnTransformer(steps, sparse_threshold=0)
    X_train = encoder.fit_transform(train).astype(np.float32, copy=False)
    X_val = encoder.transform(val).astype(np.float32, copy=False)
    seconds = time.perf_counter() - start
    assert X_train.dtype == np.float32 and len(X_train) + len(X_val) == len(y)
    return {"seconds": seconds, "peak_mib": peak_mib()}


def _feature_columns(path: Path) -> tuple[list[str], list[str]]:
    """The numeric and the text feature columns of a benchmark file."""
    if shape_of(path) == "wide":
        return [f"pixel{i}" for i in range(PIXELS)], []
    return [f"x{i}" for i in range(FEATURES)], ["colour"]


def run_pandas(path: Path) -> dict[str, float]:
    import pandas as pd

    start = time.perf_counter()
    frame = pd.read_csv(path, engine="c")
    seconds = time.perf_counter() - start
    assert len(frame) > 0
    return {"seconds": seconds, "peak_mib": peak_mib()}


def run_loadtxt(path: Path) -> dict[str, float]:
    start = time.perf_counter()
    data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(FEATURES + 1),
                      dtype=np.float32)
    seconds = time.perf_counter() - start
    assert len(data) > 0
    return {"seconds": seconds, "peak_mib": peak_mib()}


def run_polars(path: Path) -> dict[str, float]:
    import polars as pl

    numeric, text = _feature_columns(path)
    types = dict.fromkeys(numeric, pl.Float32) | dict.fromkeys(text, pl.Categorical)
    start = time.perf_counter()
    frame = pl.read_csv(path, schema_overrides=types)
    seconds = time.perf_counter() - start
    assert frame.height > 0
    return {"seconds": seconds, "peak_mib": peak_mib()}


CONTENDERS = {"bp": run_bp, "sklearn": run_sklearn, "pandas": run_pandas,
              "loadtxt": run_loadtxt, "polars": run_polars}
NEEDS = {"sklearn": ("pandas", "sklearn"), "pandas": ("pandas",)}


def available(name: str) -> bool:
    try:
        for module in NEEDS.get(name, ()):
            __import__(module)
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=list(DEFAULT_ROWS), default="narrow")
    parser.add_argument("--rows", type=int, help="default: 1,000,000 narrow, 60,000 wide")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=list(CONTENDERS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, path = args.child
        print(json.dumps(CONTENDERS[name](Path(path))))
        return

    rows = args.rows or DEFAULT_ROWS[args.shape]
    wide = args.shape == "wide"
    path = Path(tempfile.gettempdir()) / (f"bp-bench-csv-wide-{rows}.csv" if wide
                                          else f"bp-bench-csv-{rows}.csv")
    if not path.exists():
        print(f"writing {path} ...", flush=True)
        (make_wide_csv if wide else make_csv)(path, rows)
    width = PIXELS + 1 if wide else FEATURES + 2
    print(f"{path}: {path.stat().st_size / 1e6:.0f} MB, {rows:,} rows x {width} columns")
    skip = [*args.skip, *(["loadtxt"] if wide else [])]
    names = [n for n in CONTENDERS if n not in skip and available(n)]
    results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for _ in range(args.repeats):
        for name in names:  # interleaved, each in a fresh interpreter
            out = subprocess.run([sys.executable, __file__, "--child", name, str(path)],
                                 capture_output=True, text=True, check=True)
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))

    print(f"{'contender':<10}{'seconds':>10}{'peak MiB':>11}   (medians of {args.repeats})")
    medians = {}
    for name in names:
        seconds = statistics.median(r["seconds"] for r in results[name])
        peak = statistics.median(r["peak_mib"] for r in results[name])
        medians[name] = (seconds, peak)
        spread = ", ".join(f"{r['seconds']:.2f}" for r in results[name])
        print(f"{name:<10}{seconds:>10.2f}{peak:>11.0f}   ({spread})")
    if "bp" in medians:
        arrays = results["bp"][0]["arrays_mib"]
        seconds, peak = medians["bp"]
        print(f"bp's training arrays: {arrays:.0f} MiB; peak {peak:.0f} MiB = arrays + "
              f"{peak - arrays:.0f} MiB (target: at most + 200 MiB)")
        for peer, target in (("sklearn", "target < 1"), ("pandas", "")):
            if peer in medians:
                print(f"time bp/{peer}: {seconds / medians[peer][0]:.2f}"
                      f"{f' ({target})' if target else ''}; "
                      f"peak bp/{peer}: {peak / medians[peer][1]:.2f}")
        if "polars" in medians:
            print(f"time bp/polars read_csv alone: {seconds / medians['polars'][0]:.2f} "
                  "(target <= 1.5)")


if __name__ == "__main__":
    main()
