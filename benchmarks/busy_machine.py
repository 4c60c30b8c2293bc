"""Training time with bp's default thread choice against --threads 1 and --threads 2, on an
idle machine and beside one CPU-bound process.

    python benchmarks/busy_machine.py              # every case, 3 repeats
    python benchmarks/busy_machine.py --quick      # fewer epochs, 1 repeat

Each measurement is a real `bp train` in its own process; the time is the training time
that the run records (summary.json's wall_time_s), so that start-up and data loading do
not blur the thread effect. The settings are interleaved, medians are reported, and the
ratio default / best(--threads 1, --threads 2) shows what the default costs: the target is
at most 1.3 beside a busy process, and no slower than the old default (BLAS's own choice,
one thread per core: --threads 2 here) on an idle machine.

The cases are the shipped example configs and the speed benchmark's three nets at batch 128
on generated data (benchmarks/mlp_speed.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
SETTINGS = {"default": [], "--threads 1": ["--threads", "1"], "--threads 2": ["--threads", "2"]}
# epochs: the examples' own budgets stretched so that each run trains for about a second or
# more (shorter runs measure the machine's noise, not the threads)
EXAMPLES = {"iris": 500, "diabetes": 500, "diabetes-advanced": 300, "spirals": 400,
            "digits-cnn": 8}
NETS = [("784-256-128-10", (784, 256, 128, 10), 8192, 3),
        ("784-1024-1024-10", (784, 1024, 1024, 10), 8192, 2),
        ("20-64-64-1", (20, 64, 64, 1), 50_000, 3)]


def net_config(where: Path, name: str, sizes: tuple[int, ...], rows: int, epochs: int
               ) -> Path:
    """A config and CSV for one of the speed benchmark's nets, trained at batch 128."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, sizes[0])).astype(np.float32)
    classes = sizes[-1] > 1
    y = (np.argmax(X[:, : sizes[-1]], axis=1) if classes else X[:, 0] * X[:, 1])
    data = where / f"{name}.csv"
    header = ",".join([f"x{i}" for i in range(sizes[0])] + ["y"])
    np.savetxt(data, np.column_stack([X, y]), delimiter=",", header=header, comments="",
               fmt="%.4g")
    config = {"data": {"path": str(data), "target": "y",
                       "task": "classification" if classes else "regression"},
              "model": {"layers": [{"type": "dense", "units": u} for u in sizes[1:-1]]
                        + [{"type": "dense"}]},
              "optimizer": {"name": "sgd", "learning_rate": 0.01},
              "training": {"epochs": epochs, "batch_size": 128, "seed": 0},
              "output": {"runs_dir": str(where / "runs"), "name": name}}
    path = where / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def train_seconds(config: Path, extra: list[str], runs: Path) -> tuple[float, int]:
    """The training time of one run, and the thread count it trained with."""
    before = set(runs.glob("*")) if runs.exists() else set()
    subprocess.run([sys.executable, "-m", "bpcli", "train", str(config), *extra,
                    "--set", f"output.runs_dir={runs}", "--set", "training.early_stopping=null"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (run,) = set(runs.glob("*")) - before
    summary: dict[str, Any] = json.loads((run / "summary.json").read_text())
    return float(summary["wall_time_s"]), int(summary["threads"]["threads"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        cases: list[tuple[str, Path, list[str]]] = []
        for name, epochs in EXAMPLES.items():
            epochs = max(2, epochs // 4) if args.quick else epochs
            cases.append((name, REPO / "configs" / f"{name}.yaml",
                          ["--set", f"training.epochs={epochs}"]))
        for name, sizes, rows, epochs in NETS:
            cases.append((name, net_config(where, name, sizes, rows, epochs), []))
        print(f"{'case':<20} {'machine':<6} " + " ".join(f"{s:>12}" for s in SETTINGS)
              + f" {'default/best':>13} {'default chose':>14}")
        for busy in (False, True):
            for name, config, extra in cases:
                times: dict[str, list[float]] = {s: [] for s in SETTINGS}
                chosen: list[int] = []
                for _ in range(repeats):
                    for setting, flags in SETTINGS.items():  # interleaved
                        hog = (subprocess.Popen([sys.executable, "-c", "while True: pass"])
                               if busy else None)
                        try:
                            seconds, threads = train_seconds(config, [*extra, *flags],
                                                             where / "runs")
                            times[setting].append(seconds)
                            if setting == "default":
                                chosen.append(threads)
                        finally:
                            if hog is not None:
                                hog.kill()
                                hog.wait()
                median = {s: statistics.median(t) for s, t in times.items()}
                best = min(median["--threads 1"], median["--threads 2"])
                print(f"{name:<20} {'busy' if busy else 'idle':<6} "
                      + " ".join(f"{median[s]:>11.2f}s" for s in SETTINGS)
                      + f" {median['default'] / best:>13.2f} "
                      + f"{'/'.join(map(str, chosen)) + ' threads':>14}", flush=True)


if __name__ == "__main__":
    main()
