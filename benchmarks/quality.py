"""What bp's defaults learn, beside scikit-learn's MLP and a PyTorch loop at the same budget.

    pip install torch scikit-learn        # the contenders; never dependencies of bp
    python benchmarks/quality.py                      # every dataset, 3 seeds
    python benchmarks/quality.py --datasets friedman1-20k --bp-init glorot_uniform
    python benchmarks/quality.py --datasets diabetes --seeds 10 --bp-set data.scale_target=false

Every contender gets the same rows: each dataset is split once (fixed seed) into training,
validation and test files; bp reads them through `data.validation_path` and `test_path`
and trains with `bp train` (its defaults: only the layers, the optimizer, the batch size
and the epochs are set); scikit-learn's MLP is trained one epoch at a time with
`partial_fit`, and the PyTorch loop is the textbook one with PyTorch's default
initialisation. Every contender keeps the epoch with the lowest validation loss and is
scored once on the test rows: accuracy for classification (higher is better), RMSE in the
target's units for regression (lower is better). The peers standardise the inputs with
`StandardScaler` fitted on the training rows, as their documentation advises; bp does the
same by default. A gradient-boosting model (scikit-learn's HistGradientBoosting, defaults)
gives context. Each neural contender runs 3 seeds; the table shows mean and spread
(standard deviation). The target: bp's mean at least the better neural peer's mean minus
one spread (the larger of the two spreads).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
HIDDEN = (64, 64)
LEARNING_RATE = 1e-3
SEEDS = (0, 1, 2)


@dataclass
class Dataset:
    name: str
    X: np.ndarray
    y: np.ndarray  # class labels (int) or values (float)
    classify: bool
    epochs: int
    batch: int = 32


def _shipped(name: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    import csv

    with (REPO / "datasets" / f"{name}.csv").open() as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in rows[0] if c != target]
    X = np.array([[float(r[c]) for c in columns] for r in rows])
    labels = [r[target] for r in rows]
    try:
        y = np.array([float(v) for v in labels])
    except ValueError:
        names = sorted(set(labels))
        y = np.array([names.index(v) for v in labels])
    return X, y


def datasets() -> list[Dataset]:
    from sklearn.datasets import make_classification, make_friedman1, make_friedman3

    X, y = _shipped("iris", "species")
    found = [Dataset("iris", X, y.astype(int), True, 100, 8)]
    X, y = _shipped("diabetes", "progression")
    found.append(Dataset("diabetes", X, y, False, 100, 16))
    X, y = _shipped("spirals", "arm")
    found.append(Dataset("spirals", X, y.astype(int), True, 200, 16))
    X, y = _shipped("digits", "digit")
    found.append(Dataset("digits", X, y.astype(int), True, 40))
    X, y = make_friedman1(n_samples=20_000, noise=1.0, random_state=0)
    found.append(Dataset("friedman1-20k", X, y, False, 30))
    X, y = make_friedman3(n_samples=2_000, noise=0.05, random_state=0)
    found.append(Dataset("friedman3-2k", X, y, False, 60))
    X, y = make_classification(n_samples=50_000, n_features=20, n_informative=10,
                               n_redundant=4, n_classes=5, n_clusters_per_class=2,
                               class_sep=1.0, flip_y=0.02, random_state=0)
    found.append(Dataset("5-class-50k", X, y, True, 20, 64))
    X, y = make_classification(n_samples=5_000, n_features=40, n_informative=8,
                               n_classes=2, random_state=1)
    found.append(Dataset("binary-5k", X, y, True, 40))
    return found


def split(data: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """60/20/20 training, validation and test rows, the same for every contender."""
    order = np.random.default_rng(12345).permutation(len(data.X))
    n = len(order)
    parts = {"train": order[: int(0.6 * n)], "val": order[int(0.6 * n) : int(0.8 * n)],
             "test": order[int(0.8 * n) :]}
    return {k: (data.X[v], data.y[v]) for k, v in parts.items()}


def score(data: Dataset, y_true: np.ndarray, prediction: np.ndarray) -> float:
    if data.classify:
        return float(np.mean(y_true == prediction))
    return float(np.sqrt(np.mean((y_true - prediction) ** 2)))


# -- bp ------------------------------------------------------------------------------------


def run_bp(data: Dataset, parts: dict[str, Any], seed: int, where: Path,
           init: str | None, overrides: list[str]) -> float:
    files = {}
    for key, (X, y) in parts.items():
        path = where / f"{data.name}-{key}.csv"
        if not path.exists():
            labels = [f"c{int(v)}" for v in y] if data.classify else [repr(float(v)) for v in y]
            lines = [",".join([f"x{i}" for i in range(X.shape[1])] + ["target"])]
            lines += [",".join([*(repr(float(v)) for v in row), label])
                      for row, label in zip(X, labels, strict=True)]
            path.write_text("\n".join(lines) + "\n")
        files[key] = str(path)
    hidden: list[dict[str, Any]] = [{"type": "dense", "units": u} for u in HIDDEN]
    if init is not None:
        for layer in hidden:
            layer["init"] = init
    config = {"data": {"path": files["train"], "target": "target",
                       "validation_path": files["val"], "test_path": files["test"]},
              "model": {"layers": [*hidden, {"type": "dense"}]},
              "optimizer": {"name": "adam", "learning_rate": LEARNING_RATE},
              "training": {"epochs": data.epochs, "batch_size": data.batch, "seed": seed},
              "output": {"runs_dir": str(where / "runs"), "name": data.name}}
    path = where / f"{data.name}-{seed}.yaml"
    path.write_text(yaml.safe_dump(config))
    before = set((where / "runs").glob("*"))
    sets = [arg for override in overrides for arg in ("--set", override)]
    subprocess.run([sys.executable, "-m", "bpcli", "train", str(path), *sets], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    (run,) = set((where / "runs").glob("*")) - before
    test = json.loads((run / "test.json").read_text())
    if data.classify:
        return float(test["accuracy"])
    return float(test["targets"][0]["rmse"])


# -- peers ---------------------------------------------------------------------------------


def run_sklearn(data: Dataset, parts: dict[str, Any], seed: int) -> float:
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import StandardScaler

    (X, y), (Xv, yv), (Xt, yt) = parts["train"], parts["val"], parts["test"]
    scaler = StandardScaler().fit(X)
    X, Xv, Xt = scaler.transform(X), scaler.transform(Xv), scaler.transform(Xt)
    kind = MLPClassifier if data.classify else MLPRegressor
    model = kind(hidden_layer_sizes=HIDDEN, learning_rate_init=LEARNING_RATE,
                 batch_size=data.batch, random_state=seed, alpha=0.0)
    classes = np.unique(y) if data.classify else None
    best, best_loss = None, math.inf
    for _ in range(data.epochs):
        if data.classify:
            model.partial_fit(X, y, classes=classes)
            loss = log_loss(yv, model.predict_proba(Xv), labels=classes)
        else:
            model.partial_fit(X, y)
            loss = float(np.mean((model.predict(Xv) - yv) ** 2))
        if loss < best_loss:
            best, best_loss = copy.deepcopy(model), loss
    assert best is not None
    return score(data, yt, best.predict(Xt))


def run_torch(data: Dataset, parts: dict[str, Any], seed: int) -> float:
    import torch
    from sklearn.preprocessing import StandardScaler

    torch.manual_seed(seed)
    (X, y), (Xv, yv), (Xt, yt) = parts["train"], parts["val"], parts["test"]
    scaler = StandardScaler().fit(X)
    tensors = [torch.tensor(scaler.transform(a), dtype=torch.float32) for a in (X, Xv, Xt)]
    X_, Xv_, Xt_ = tensors
    out = int(y.max()) + 1 if data.classify else 1
    sizes = [X.shape[1], *HIDDEN]
    layers: list[torch.nn.Module] = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], out))
    if data.classify:
        y_, yv_ = torch.tensor(y, dtype=torch.long), torch.tensor(yv, dtype=torch.long)
        loss_fn: Callable[..., torch.Tensor] = torch.nn.functional.cross_entropy
    else:
        y_ = torch.tensor(y, dtype=torch.float32)[:, None]
        yv_ = torch.tensor(yv, dtype=torch.float32)[:, None]
        loss_fn = torch.nn.functional.mse_loss
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(seed)
    best, best_loss = None, math.inf
    for _ in range(data.epochs):
        net.train()
        order = torch.randperm(len(X_), generator=generator)
        for i in range(0, len(order), data.batch):
            index = order[i : i + data.batch]
            optimizer.zero_grad()
            loss_fn(net(X_[index]), y_[index]).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            loss = float(loss_fn(net(Xv_), yv_))
        if loss < best_loss:
            best, best_loss = copy.deepcopy(net.state_dict()), loss
    net.load_state_dict(best)
    with torch.no_grad():
        output = net(Xt_)
    prediction = output.argmax(1).numpy() if data.classify else output[:, 0].numpy()
    return score(data, yt, prediction)


def run_boosting(data: Dataset, parts: dict[str, Any]) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    (X, y), (Xt, yt) = parts["train"], parts["test"]
    kind = HistGradientBoostingClassifier if data.classify else HistGradientBoostingRegressor
    return score(data, yt, kind(random_state=0).fit(X, y).predict(Xt))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", help="only these (by name)")
    parser.add_argument("--bp-init", help="init for bp's hidden layers (default: bp's own)")
    parser.add_argument("--bp-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a `bp train --set` override for bp's runs (repeatable)")
    parser.add_argument("--seeds", type=int, default=len(SEEDS))
    args = parser.parse_args()
    chosen = [d for d in datasets() if not args.datasets or d.name in args.datasets]
    print(f"{'dataset':<15} {'metric':<9} {'bp':>15} {'scikit-learn':>15} {'PyTorch':>15} "
          f"{'boosting':>9}  target")
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        for data in chosen:
            parts = split(data)
            results: dict[str, list[float]] = {"bp": [], "sklearn": [], "torch": []}
            for seed in range(args.seeds):
                results["bp"].append(run_bp(data, parts, seed, where, args.bp_init, args.bp_set))
                results["sklearn"].append(run_sklearn(data, parts, seed))
                results["torch"].append(run_torch(data, parts, seed))
            mean = {k: statistics.mean(v) for k, v in results.items()}
            spread = {k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in results.items()}
            sign = 1 if data.classify else -1  # higher is better, after the sign
            peer = max(("sklearn", "torch"), key=lambda k: sign * mean[k])
            allowed = max(spread["bp"], spread[peer])
            met = sign * mean["bp"] >= sign * mean[peer] - allowed
            cells = " ".join(f"{mean[k]:>8.4g} ±{spread[k]:<5.2g}" for k in results)
            print(f"{data.name:<15} {'accuracy' if data.classify else 'RMSE':<9} {cells} "
                  f"{run_boosting(data, parts):>9.4g}  {'met' if met else 'MISSED'}",
                  flush=True)


if __name__ == "__main__":
    main()
