"""GAN quality: the two example GAN configs trained through the CLI and their samples
measured.

    python benchmarks/gan_quality.py               # digits and iris, GAN seeds 0, 1, 2
    python benchmarks/gan_quality.py --seeds 0     # one seed
    python benchmarks/gan_quality.py --only iris   # one of the two

Images (``configs/digits-gan.yaml``): a bp classifier (``configs/digits-cnn.yaml``) trained
on the real digits labels 1,000 generated ones (``bp generate`` then ``bp predict``):
the share it labels with confidence >= 0.9, and how many of the 10 classes appear among
those (a GAN that collapses onto a few modes shows few). Targets: >= 80 % and all 10.
The same classifier's share on the real test digits is shown beside, as the ceiling.

Tabular (``configs/iris-gan.yaml``): iris cut into 70 % training and 30 % test rows,
stratified; the GAN learns the training rows; as many rows are generated. Fidelity: the
two-sample Kolmogorov-Smirnov statistic per measurement, the total variation distance of
the species, and the largest gap between the measurements' correlation matrices, generated
against the real training rows. Utility: the iris classifier (``configs/iris.yaml``)
trained on the generated rows and tested on the real test rows (train on synthetic, test
on real), against the same trained on the real training rows. Target: >= 0.85 of it.
Mean and standard deviation over the seeds.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bpcli.ganquality import (  # the measures training reports, one implementation
    CONFIDENCE,
    confident_classes,
    correlation_gap,
    ks_statistic,
    total_variation,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
DATASETS = ROOT / "datasets"
SAMPLES = 1000
CONFIDENT = CONFIDENCE
#: --set for the GAN configs: every row of the benchmark's own training split trains (it
#: measures on its own held-out rows), then the settings being tried
GAN_SETS: list[str] = ["data.validation_fraction=0"]


def bp(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bpcli", *args], check=True,
                          capture_output=True, text=True, cwd=ROOT)
    return done.stdout


def train(config: Path, runs: Path, name: str, *sets: str) -> Path:
    bp("train", str(config), "--set", f"output.runs_dir={runs}", "--set",
       f"output.name={name}", *[a for s in sets for a in ("--set", s)])
    (run,) = sorted(runs.glob(f"{name}-*"))
    return run


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def predicted_classes(predictions: Path) -> tuple[float, int, list[int]]:
    """Share of rows whose top class probability is >= CONFIDENT, how many classes the
    confident rows cover, and the count of each predicted class."""
    header, rows = read_csv(predictions)
    probs = np.array([[float(r[i]) for i, h in enumerate(header) if h.startswith("prob_")]
                      for r in rows])
    share, classes = confident_classes(probs)
    return share, classes, np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]).tolist()


def digits(seeds: list[int], work: Path) -> None:
    runs = work / "runs"
    classifier = train(CONFIGS / "digits-cnn.yaml", runs, "digits-classifier")
    test = json.loads((classifier / "test.json").read_text())
    print(f"digits classifier (digits-cnn): test accuracy {test['accuracy']:.3f}")
    # the ceiling: the classifier's confidence on real digits
    real = work / "real-digits.csv"
    header, rows = read_csv(DATASETS / "digits.csv")
    with real.open("w", newline="") as f:
        csv.writer(f).writerows([header[:-1], *[r[:-1] for r in rows[-360:]]])
    bp("predict", str(classifier / "model.npz"), str(real), "--out", str(work / "real.csv"))
    share, classes, _ = predicted_classes(work / "real.csv")
    print(f"  on the last 360 real digits (some among its training rows): {share:.1%} "
          f"confident (>= {CONFIDENT}), {classes} classes")
    shares, covered, seconds = [], [], []
    for seed in seeds:
        run = train(CONFIGS / "digits-gan.yaml", runs, f"digits-gan-{seed}",
                    f"training.seed={seed}", *GAN_SETS)
        seconds.append(json.loads((run / "summary.json").read_text())["wall_time_s"])
        generated = work / f"generated-{seed}.csv"
        bp("generate", str(run / "model.npz"), "-n", str(SAMPLES), "--seed", str(seed),
           "--out", str(generated))
        if seed == seeds[0]:
            bp("generate", str(run / "model.npz"), "-n", "100", "--seed", str(seed),
               "--out", str(work / "digits-gan-samples.png"))
        bp("predict", str(classifier / "model.npz"), str(generated), "--out",
           str(work / f"labels-{seed}.csv"))
        share, classes, counts = predicted_classes(work / f"labels-{seed}.csv")
        shares.append(share)
        covered.append(classes)
        print(f"  GAN seed {seed}: {share:.1%} of {SAMPLES} generated digits confident, "
              f"{classes} of 10 classes; per class {counts}; trained in {seconds[-1]:.0f}s")
    print(f"digits GAN: confident {_mean(shares, 100)} %, classes {_mean(covered)}, "
          f"training {_mean(seconds)} s (targets: >= 80 %, all 10)")


def iris(seeds: list[int], work: Path) -> None:
    runs = work / "runs"
    header, rows = read_csv(DATASETS / "iris.csv")
    rng = np.random.default_rng(0)
    train_rows, test_rows = [], []
    for species in sorted({r[-1] for r in rows}):
        mine = [r for r in rows if r[-1] == species]
        order = rng.permutation(len(mine))
        cut = round(0.7 * len(mine))
        train_rows += [mine[i] for i in order[:cut]]
        test_rows += [mine[i] for i in order[cut:]]
    real_train, real_test = work / "iris-train.csv", work / "iris-test.csv"
    for path, part in ((real_train, train_rows), (real_test, test_rows)):
        with path.open("w", newline="") as f:
            csv.writer(f).writerows([header, *part])

    def accuracy(data: Path, name: str, seed: int) -> float:
        run = train(CONFIGS / "iris.yaml", runs, name, f"data.path={data}",
                    f"data.test_path={real_test}", f"training.seed={seed}")
        return float(json.loads((run / "test.json").read_text())["accuracy"])

    real = np.array([[float(v) for v in r[:4]] for r in train_rows])
    tstr, trtr, ks_all, tv_all, corr_all = [], [], [], [], []
    for seed in seeds:
        run = train(CONFIGS / "iris-gan.yaml", runs, f"iris-gan-{seed}",
                    f"data.path={real_train}", f"training.seed={seed}", *GAN_SETS)
        synthetic = work / f"iris-synthetic-{seed}.csv"
        bp("generate", str(run / "model.npz"), "-n", str(len(train_rows)), "--seed",
           str(seed), "--out", str(synthetic))
        _, made = read_csv(synthetic)
        fake = np.array([[float(v) for v in r[:4]] for r in made])
        distances = [ks_statistic(real[:, j], fake[:, j]) for j in range(4)]
        species = sorted({r[-1] for r in train_rows})
        p = np.array([sum(r[-1] == s for r in train_rows) for s in species]) / len(train_rows)
        q = np.array([sum(r[-1] == s for r in made) for s in species]) / len(made)
        tv = total_variation(p, q)
        gap = correlation_gap(real, fake)
        on_fake = accuracy(synthetic, f"tstr-{seed}", seed)
        on_real = accuracy(real_train, f"trtr-{seed}", seed)
        ks_all.append(max(distances))
        tv_all.append(tv)
        corr_all.append(gap)
        tstr.append(on_fake)
        trtr.append(on_real)
        print(f"  GAN seed {seed}: KS {' '.join(f'{d:.3f}' for d in distances)} "
              f"(columns {', '.join(header[:4])}), species TV {tv:.3f}, correlation gap "
              f"{gap:.3f}; test accuracy trained on synthetic {on_fake:.3f}, on real "
              f"{on_real:.3f}")
    ratio = [a / b for a, b in zip(tstr, trtr, strict=True)]
    print(f"iris GAN: largest KS {_mean(ks_all)}, species TV {_mean(tv_all)}, correlation "
          f"gap {_mean(corr_all)}; accuracy on real test rows: trained on synthetic "
          f"{_mean(tstr)}, on real {_mean(trtr)}, ratio {_mean(ratio)} (target >= 0.85)")


def _mean(values: list[float] | list[int], scale: float = 1.0) -> str:
    scaled = [v * scale for v in values]
    if len(scaled) == 1:
        return f"{scaled[0]:.3g}"
    return f"{statistics.mean(scaled):.3g} ± {statistics.stdev(scaled):.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", choices=["digits", "iris"])
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="K=V for the GAN config, as bp train's --set (to try settings)")
    parser.add_argument("--keep", type=Path, help="Work in this directory and keep it "
                        "(generated rows, sample grid, runs).")
    args = parser.parse_args()
    GAN_SETS.extend(args.sets)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.only in (None, "iris"):
            iris(args.seeds, work)
        if args.only in (None, "digits"):
            digits(args.seeds, work)


if __name__ == "__main__":
    main()
