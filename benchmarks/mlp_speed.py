"""Training speed of bp's MLP path beside PyTorch (CPU) and scikit-learn, same run.

    python benchmarks/mlp_speed.py                 # every net, 1 and 2 threads, 5 repeats
    python benchmarks/mlp_speed.py --quick         # batch 128 only, 2 threads, 3 repeats

Each measurement runs in its own process (so thread settings and caches start equal),
the contenders are interleaved, and medians are reported with the ratios bp/PyTorch and
bp/scikit-learn (how many times faster bp is) and bp's time over the time of its matrix
products alone (the bound for a NumPy core). For PyTorch the same products are timed with
its own BLAS too: its step over them, and its products' time over bp's (below 1: PyTorch's
BLAS is the faster one on these shapes). PyTorch and scikit-learn are measured only
when installed: `pip install torch scikit-learn`; neither is a dependency of bp.

bp is driven through its real training path: the network is built from a config by
`bpcli.building.build_network` and trained by `bpcli.trainer.Trainer.fit`, as `bp train`
does. Every contender trains float32 with plain SGD on the same shapes for the same steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

# (name, layer widths, samples, batch sizes); classification when the output is > 1 wide
NETS = [
    ("784-256-128-10", (784, 256, 128, 10), 60_000, (32, 128, 1024)),
    ("784-1024-1024-10", (784, 1024, 1024, 10), 60_000, (128, 1024)),
    ("20-64-64-1", (20, 64, 64, 1), 100_000, (32, 128, 1024)),
]
STEP_BUDGET_FLOPS = 1e11  # per measurement: about a second of work, at least 20 steps
LEARNING_RATE = 0.01


@dataclass(frozen=True)
class Case:
    net: str
    sizes: tuple[int, ...]
    samples: int
    batch: int
    threads: int

    @property
    def steps(self) -> int:
        flops = 6 * self.batch * sum(a * b for a, b in pairwise(self.sizes))
        return max(20, min(self.samples // self.batch, int(STEP_BUDGET_FLOPS / flops)))

    @property
    def classify(self) -> bool:
        return self.sizes[-1] > 1


def make_data(case: Case) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    n = case.steps * case.batch
    X = rng.normal(size=(n, case.sizes[0])).astype(np.float32)
    if case.classify:
        return X, rng.integers(0, case.sizes[-1], n)
    return X, rng.normal(size=(n, 1)).astype(np.float32)


# -- workers: each runs in a fresh process and prints seconds per step -----------------------


def run_bp(case: Case) -> dict[str, float]:
    import numpy as np

    from bpcli.building import build_network
    from bpcli.config import Config
    from bpcli.trainer import Trainer

    hidden = [{"type": "dense", "units": u, "activation": "relu", "init": "he_uniform"}
              for u in case.sizes[1:-1]]
    output = {"type": "dense", "units": case.sizes[-1], "init": "glorot_uniform",
              "activation": "softmax" if case.classify else "identity"}
    config = Config.model_validate({
        "data": {"path": "unused.csv", "target": "y"},
        "model": {"layers": [*hidden, output]},
        "loss": "cross_entropy" if case.classify else "mse",
        "optimizer": {"name": "sgd", "learning_rate": LEARNING_RATE},
    })
    X, Y = make_data(case)
    network = build_network(config, case.sizes[0], np.random.default_rng(0))
    from bpcli.nn.optimizers import SGD

    trainer = Trainer(network, SGD(LEARNING_RATE), epochs=1, batch_size=case.batch,
                      rng=np.random.default_rng(1), metric=lambda o, y: 0.0,
                      metric_name="none", listeners=[])
    tiny = slice(0, 1)  # validation is not what is measured here
    start = time.perf_counter()
    trainer.fit(X, Y, X[tiny], Y[tiny])
    seconds = time.perf_counter() - start
    return {"step": seconds / case.steps, "matmul": matmul_bound(case, network)}


def matmul_bound(case: Case, network: Any) -> float:
    """Seconds per step of the training step's matrix products alone, outputs preallocated:
    forward ``X @ W`` per layer, backward ``X.T @ dZ`` per layer and ``dZ @ W.T`` for all
    but the first."""
    import numpy as np

    weights = [layer.params["W"] for layer in network.layers if "W" in layer.params]
    rng = np.random.default_rng(2)
    widths = case.sizes
    acts = [rng.normal(size=(case.batch, w)).astype(np.float32) for w in widths]
    grads = [np.empty_like(a) for a in acts]
    dws = [np.empty_like(w) for w in weights]
    return time_products(np.matmul, weights, acts, grads, dws, max(10, case.steps // 2))


def time_products(matmul: Any, weights: list[Any], acts: list[Any], grads: list[Any],
                  dws: list[Any], repeats: int) -> float:
    """Seconds per step of a training step's products by ``matmul(a, b, out=c)`` (NumPy's
    or PyTorch's), outputs preallocated."""
    start = time.perf_counter()
    for _ in range(repeats):
        for i, W in enumerate(weights):
            matmul(acts[i], W, out=acts[i + 1])
        for i in range(len(weights) - 1, -1, -1):
            matmul(acts[i].T, acts[i + 1], out=dws[i])
            if i > 0:
                matmul(acts[i + 1], weights[i].T, out=grads[i])
    return (time.perf_counter() - start) / repeats


def run_torch(case: Case) -> dict[str, float]:
    import torch

    torch.set_num_threads(case.threads)
    torch.manual_seed(0)
    X_np, Y_np = make_data(case)
    X = torch.from_numpy(X_np)
    Y = torch.from_numpy(Y_np)
    layers: list[torch.nn.Module] = []
    for a, b in pairwise(case.sizes[:-1]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(case.sizes[-2], case.sizes[-1]))
    net = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.CrossEntropyLoss() if case.classify else torch.nn.MSELoss()
    order = torch.randperm(len(X))
    start = time.perf_counter()
    for s in range(case.steps):
        index = order[s * case.batch : (s + 1) * case.batch]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(X[index]), Y[index])
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    return {"step": seconds / case.steps, "matmul": torch_matmul_bound(case)}


def torch_matmul_bound(case: Case) -> float:
    """``matmul_bound``'s products done by PyTorch's own BLAS: when bp's step is no slower
    than its products, bp can beat PyTorch only where PyTorch's step is slower than these."""
    import torch

    sizes = case.sizes
    weights = [torch.randn(a, b) for a, b in pairwise(sizes)]
    acts = [torch.randn(case.batch, w) for w in sizes]
    grads = [torch.empty_like(a) for a in acts]
    dws = [torch.empty_like(w) for w in weights]
    with torch.no_grad():
        return time_products(torch.mm, weights, acts, grads, dws, max(10, case.steps // 2))


def run_sklearn(case: Case) -> dict[str, float]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    X, Y = make_data(case)
    model_class = MLPClassifier if case.classify else MLPRegressor
    model = model_class(hidden_layer_sizes=case.sizes[1:-1], solver="sgd", momentum=0.0,
                        learning_rate_init=LEARNING_RATE, batch_size=case.batch, alpha=0.0,
                        max_iter=1, shuffle=True, random_state=0, early_stopping=False)
    y = Y if case.classify else Y[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X, y)
    return {"step": (time.perf_counter() - start) / case.steps}


WORKERS = {"bp": run_bp, "torch": run_torch, "sklearn": run_sklearn}


def available() -> list[str]:
    import importlib.util

    names = ["bp"]
    if importlib.util.find_spec("torch"):
        names.append("torch")
    if importlib.util.find_spec("sklearn"):
        names.append("sklearn")
    return names


def measure(contender: str, case: Case) -> dict[str, float]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(case.threads)
    payload = json.dumps({"contender": contender, **case.__dict__})
    out = subprocess.run([sys.executable, __file__, "--worker", payload], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="batch 128 only, 2 threads")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        contender = spec.pop("contender")
        spec["sizes"] = tuple(spec["sizes"])
        print(json.dumps(WORKERS[contender](Case(**spec))))
        return
    if args.quick:
        args.threads, args.repeats = [2], min(args.repeats, 3)
    cases = [Case(name, sizes, samples, batch, threads)
             for threads in args.threads
             for name, sizes, samples, batches in NETS
             for batch in batches if not args.quick or batch == 128]
    contenders = available()
    print(f"contenders: {', '.join(contenders)}; {len(cases)} cases x {args.repeats} repeats",
          file=sys.stderr)
    results: dict[tuple[Case, str], list[dict[str, float]]] = {}
    for repeat in range(args.repeats):
        for case in cases:
            for contender in contenders:  # interleaved: drift hits every contender alike
                results.setdefault((case, contender), []).append(measure(contender, case))
        print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)
    report(cases, contenders, results)


def report(cases: list[Case], contenders: list[str],
           results: dict[tuple[Case, str], list[dict[str, float]]]) -> None:
    def median(case: Case, contender: str, key: str = "step") -> float:
        return statistics.median(r[key] for r in results[(case, contender)])

    header = ["net", "batch", "threads", "steps", "bp ms/step"]
    header += [f"{c} ms/step" for c in contenders[1:]]
    header += [f"bp/{c} speed-up" for c in contenders[1:]] + ["bp / matmul"]
    header += ["torch / its matmul", "torch matmul / bp matmul"] if "torch" in contenders else []
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for case in cases:
        bp = median(case, "bp")
        row = [case.net, str(case.batch), str(case.threads), str(case.steps), f"{bp * 1e3:.3f}"]
        row += [f"{median(case, c) * 1e3:.3f}" for c in contenders[1:]]
        row += [f"{median(case, c) / bp:.2f}" for c in contenders[1:]]
        row.append(f"{bp / median(case, 'bp', 'matmul'):.2f}")
        if "torch" in contenders:
            torch_matmul = median(case, "torch", "matmul")
            row.append(f"{median(case, 'torch') / torch_matmul:.2f}")
            row.append(f"{torch_matmul / median(case, 'bp', 'matmul'):.2f}")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
