"""Training speed of bp's convolutional layers beside PyTorch (CPU), same net, same run.

    python benchmarks/cnn_speed.py                  # 1 and 2 threads, 5 repeats
    python benchmarks/cnn_speed.py --quick          # 2 threads, 3 repeats

The net, on random 28x28 single-channel images with 10 random classes:
conv 3x3x16 (same) -> relu -> max pool 2 -> conv 3x3x32 (same) -> relu -> max pool 2 ->
flatten -> dense 10 -> softmax, cross-entropy, plain SGD, float32.

Each measurement runs in its own process (so thread settings and caches start equal), the
contenders are interleaved, and medians are reported with samples per second and the
throughput ratio bp/PyTorch (above 1: bp is faster). PyTorch is measured only when
installed (`pip install torch`); it is not a dependency of bp.

bp is driven through its real training path: `bpcli.trainer.Trainer.fit` with a `Network`
and the SGD optimizer, the per-batch step `bp train` runs. After the timed epoch, a few
more steps are timed layer by layer (forward and backward separately) to show where bp's
time goes.
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
from typing import Any

IMAGE = (1, 28, 28)
CLASSES = 10
LEARNING_RATE = 0.01
BREAKDOWN_STEPS = 20


@dataclass(frozen=True)
class Case:
    images: int
    batch: int
    threads: int

    @property
    def steps(self) -> int:
        return -(-self.images // self.batch)


def make_data(case: Case) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(case.images, *IMAGE)).astype(np.float32)
    return X, rng.integers(0, CLASSES, case.images)


# -- workers: each runs in a fresh process and prints its timings as JSON -------------------


def bp_network(seed: int = 0) -> Any:
    import numpy as np

    from bpcli.nn import Activation, Conv2D, Dense, Flatten, MaxPool2D, Network
    from bpcli.nn.losses import SoftmaxCrossEntropy

    layers = [Conv2D(16, 3, padding="same"), Activation("relu"), MaxPool2D(2),
              Conv2D(32, 3, padding="same"), Activation("relu"), MaxPool2D(2),
              Flatten(), Dense(CLASSES, init="glorot_uniform"), Activation("softmax")]
    return Network(layers, SoftmaxCrossEntropy(), IMAGE, np.random.default_rng(seed),
                   np.float32)


def run_bp(case: Case) -> dict[str, Any]:
    import numpy as np

    from bpcli.nn.optimizers import SGD
    from bpcli.trainer import Trainer

    X, Y = make_data(case)
    network = bp_network()
    trainer = Trainer(network, SGD(LEARNING_RATE), epochs=1, batch_size=case.batch,
                      rng=np.random.default_rng(1), metric=lambda o, y: 0.0,
                      metric_name="none", listeners=[])
    tiny = slice(0, 2)  # validation is not what is measured here
    start = time.perf_counter()
    trainer.fit(X, Y, X[tiny], Y[tiny])
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "breakdown": breakdown(network, X[: case.batch],
                                                       Y[: case.batch])}


def breakdown(network: Any, X: Any, Y: Any) -> dict[str, float]:
    """Milliseconds per step spent in each layer's forward and backward pass, the loss and
    the optimizer step: ``Network.compute_gradients`` unrolled, with a clock around each."""
    import numpy as np

    from bpcli.nn.optimizers import SGD

    optimizer = SGD(LEARNING_RATE)
    layers = network._loss_layers  # the softmax is fused into the loss
    names = [f"{i} {layer.kind}" + (f" {layer.name}" if layer.kind == "activation" else "")
             for i, layer in enumerate(layers)]
    times = dict.fromkeys([f"{n} forward" for n in names] + [f"{n} backward" for n in names]
                          + ["loss", "optimizer"], 0.0)
    clock = time.perf_counter
    for step in range(BREAKDOWN_STEPS + 2):
        counting = step >= 2  # two warm-up steps
        P = X
        for name, layer in zip(names, layers, strict=True):
            t = clock()
            P = layer.forward(P, True)
            times[f"{name} forward"] += (clock() - t) * counting
        t = clock()
        _, grad = network.loss.value_and_grad(P, Y)
        times["loss"] += (clock() - t) * counting
        for name, layer in zip(reversed(names), reversed(layers), strict=True):
            t = clock()
            grad = layer.backward(grad)
            times[f"{name} backward"] += (clock() - t) * counting
        t = clock()
        optimizer.step([network.flat_params], [network.flat_grads])
        times["optimizer"] += (clock() - t) * counting
    assert np.isfinite(network.flat_params).all()
    return {key: value / BREAKDOWN_STEPS * 1e3 for key, value in times.items()}


def run_torch(case: Case) -> dict[str, Any]:
    import torch

    torch.set_num_threads(case.threads)
    torch.manual_seed(0)
    X_np, Y_np = make_data(case)
    X, Y = torch.from_numpy(X_np), torch.from_numpy(Y_np)
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, CLASSES),
    )
    optimizer = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(len(X))
    start = time.perf_counter()
    for s in range(case.steps):
        index = order[s * case.batch : (s + 1) * case.batch]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(X[index]), Y[index])
        loss.backward()
        optimizer.step()
    return {"seconds": time.perf_counter() - start}


WORKERS = {"bp": run_bp, "torch": run_torch}


def available() -> list[str]:
    import importlib.util

    return ["bp", "torch"] if importlib.util.find_spec("torch") else ["bp"]


def measure(contender: str, case: Case) -> dict[str, Any]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(case.threads)  # before NumPy or PyTorch load: too late afterwards
    payload = json.dumps({"contender": contender, **case.__dict__})
    out = subprocess.run([sys.executable, __file__, "--worker", payload], env=env,
                         capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="2 threads, 3 repeats")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        contender = spec.pop("contender")
        print(json.dumps(WORKERS[contender](Case(**spec))))
        return
    if args.quick:
        args.threads, args.repeats = [2], min(args.repeats, 3)
    cases = [Case(args.images, args.batch, threads) for threads in args.threads]
    contenders = available()
    print(f"contenders: {', '.join(contenders)}; {len(cases)} cases x {args.repeats} repeats; "
          f"{args.images} images, batch {args.batch}", file=sys.stderr)
    results: dict[tuple[Case, str], list[dict[str, Any]]] = {}
    for repeat in range(args.repeats):
        for case in cases:
            for contender in contenders:  # interleaved: drift hits every contender alike
                results.setdefault((case, contender), []).append(measure(contender, case))
        print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)
    report(cases, contenders, results)


def report(cases: list[Case], contenders: list[str],
           results: dict[tuple[Case, str], list[dict[str, Any]]]) -> None:
    def seconds(case: Case, contender: str) -> float:
        return statistics.median(r["seconds"] for r in results[(case, contender)])

    def spread(case: Case, contender: str) -> str:
        steps = [r["seconds"] / case.steps * 1e3 for r in results[(case, contender)]]
        return f"{min(steps):.1f}-{max(steps):.1f}"

    header = ["threads", "steps"]
    header += [f"{c} ms/step" for c in contenders] + [f"{c} samples/s" for c in contenders]
    header += [f"{c} ms/step range" for c in contenders]
    header += ["bp/torch throughput"] if "torch" in contenders else []
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for case in cases:
        row = [str(case.threads), str(case.steps)]
        row += [f"{seconds(case, c) / case.steps * 1e3:.2f}" for c in contenders]
        row += [f"{case.images / seconds(case, c):,.0f}" for c in contenders]
        row += [spread(case, c) for c in contenders]
        if "torch" in contenders:
            row.append(f"{seconds(case, 'torch') / seconds(case, 'bp'):.2f}")
        print("| " + " | ".join(row) + " |")
    print()
    print("bp, where a training step's time goes (ms, medians over runs):")
    keys = list(results[(cases[0], "bp")][0]["breakdown"])
    print("| part | " + " | ".join(f"{c.threads} thread(s)" for c in cases) + " |")
    print("|" + "---|" * (len(cases) + 1))
    for key in keys:
        values = [statistics.median(r["breakdown"][key] for r in results[(c, "bp")])
                  for c in cases]
        print(f"| {key} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    totals = [statistics.median(sum(r["breakdown"].values()) for r in results[(c, "bp")])
              for c in cases]
    print("| total | " + " | ".join(f"{v:.3f}" for v in totals) + " |")


if __name__ == "__main__":
    main()
