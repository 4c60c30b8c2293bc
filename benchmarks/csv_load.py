"""Loading a large CSV: bp's reader against pandas and numpy.loadtxt, same run.

    python benchmarks/csv_load.py [--rows 1000000] [--repeats 3]

Writes (once, cached in the temp directory) a CSV of ``--rows`` rows: 20 numeric
columns, an integer label and one text category column (about 215 MB at a million rows).
Then, each contender in a fresh process, interleaved, ``--repeats`` times:

- bp: ``prepare`` on a config naming that file, i.e. read, split, impute, scale and
  one-hot encode into the float32 training and validation arrays bp trains on;
- pandas: ``pandas.read_csv`` (C engine), when pandas is installed;
- loadtxt: ``numpy.loadtxt`` of the 21 numeric columns as float32;
- polars: ``polars.read_csv`` of the whole file with the column types bp uses, into a
  DataFrame and nothing more: the parser bp uses, without bp's chunking, checks and
  encoding (the floor for bp's time).

Prints the median wall time and median peak resident memory of each (interpreter and
libraries included), the ratio bp/pandas, and bp's peak beside the size of the arrays it
produced (the target: at most those arrays plus 200 MiB).
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
MiB = 1 << 20
COLOURS = np.array(["red", "green", "blue", "yellow", "purple", "orange", "black", "white"])


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


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


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

    types = {f"x{i}": pl.Float32 for i in range(FEATURES)} | {"colour": pl.Categorical}
    start = time.perf_counter()
    frame = pl.read_csv(path, schema_overrides=types)
    seconds = time.perf_counter() - start
    assert frame.height > 0
    return {"seconds": seconds, "peak_mib": peak_mib()}


CONTENDERS = {"bp": run_bp, "pandas": run_pandas, "loadtxt": run_loadtxt,
              "polars": run_polars}


def available(name: str) -> bool:
    if name != "pandas":
        return True
    try:
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=list(CONTENDERS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, path = args.child
        print(json.dumps(CONTENDERS[name](Path(path))))
        return

    path = Path(tempfile.gettempdir()) / f"bp-bench-csv-{args.rows}.csv"
    if not path.exists():
        print(f"writing {path} ...", flush=True)
        make_csv(path, args.rows)
    print(f"{path}: {path.stat().st_size / 1e6:.0f} MB, {args.rows:,} rows x "
          f"{FEATURES + 2} columns")
    names = [n for n in CONTENDERS if n not in args.skip and available(n)]
    results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for _ in range(args.repeats):
        for name in names:  # interleaved, each in a fresh interpreter
            out = subprocess.run([sys.executable, __file__, "--child", name, str(path)],
                                 capture_output=True, text=True, check=True)
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))

    print(f"{'reader':<10}{'seconds':>10}{'peak MiB':>11}   (medians of {args.repeats})")
    medians = {}
    for name in names:
        seconds = statistics.median(r["seconds"] for r in results[name])
        peak = statistics.median(r["peak_mib"] for r in results[name])
        medians[name] = (seconds, peak)
        print(f"{name:<10}{seconds:>10.2f}{peak:>11.0f}")
    if "bp" in medians:
        arrays = results["bp"][0]["arrays_mib"]
        seconds, peak = medians["bp"]
        print(f"bp's training arrays: {arrays:.0f} MiB; peak {peak:.0f} MiB = arrays + "
              f"{peak - arrays:.0f} MiB (target: at most + 200 MiB)")
        if "pandas" in medians:
            print(f"time bp/pandas: {seconds / medians['pandas'][0]:.2f} (target <= 1); "
                  f"peak bp/pandas: {peak / medians['pandas'][1]:.2f}")
        if "polars" in medians:
            print(f"time bp/polars read_csv alone: {seconds / medians['polars'][0]:.2f}")


if __name__ == "__main__":
    main()
