"""Training-step speed of bp's text layers beside PyTorch (CPU), same shapes, same run.

    python benchmarks/text_speed.py            # 1 and 2 threads, 5 repeats
    python benchmarks/text_speed.py --quick    # 2 threads, 3 repeats

Four models on random word ids drawn as words occur in text (Zipf's law, exponent 1.3;
batch 64, 60 positions, rows of 10 to 60 words and one of 60, the rest padding; a
vocabulary of 8,000; 2 classes), each trained with plain SGD in
float32:

- embedding bag: embedding 32 -> mean over the words -> dense 2 (PyTorch: ``EmbeddingBag``);
- text CNN: embedding 32 -> conv1d 64 (kernel 3, same) -> relu -> max over positions ->
  dense 2 (PyTorch: ``Embedding`` + ``Conv1d``);
- GRU and LSTM: embedding 32 -> recurrent 64 -> last state -> dense 2 (PyTorch: ``nn.GRU``,
  ``nn.LSTM`` on the padded batch; bp also masks the padding, PyTorch's padded batch does not).

A step is forward, loss, backward and the SGD update. Each measurement runs in its own
process (thread settings and caches start equal), the contenders are interleaved, and the
median step time is reported with the ratio PyTorch/bp (above 1: bp is faster). PyTorch
is measured only when installed; it is not a dependency of bp.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

BATCH, LENGTH, VOCAB, DIM, CLASSES = 64, 60, 8000, 32, 2
UNITS = {"bag": 0, "cnn": 64, "gru": 64, "lstm": 64}
STEPS, WARMUP = 40, 5
MODELS = ["bag", "cnn", "gru", "lstm"]


def batch() -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    # word frequencies as in text (Zipf's law): a few words in many places, most rare
    ids = np.minimum(rng.zipf(1.3, (BATCH, LENGTH)), VOCAB - 1)
    lengths = rng.integers(LENGTH // 6, LENGTH + 1, BATCH)
    lengths[0] = LENGTH  # one full row: no position is padding in every row
    ids[np.arange(LENGTH) >= lengths[:, None]] = 0
    return ids, rng.integers(0, CLASSES, BATCH)


def bp_step_time(model: str) -> float:
    import numpy as np

    from bpcli.nn import (
        GRU,
        LSTM,
        Activation,
        Conv1D,
        Dense,
        Embedding,
        GlobalAvgPool1D,
        GlobalMaxPool1D,
        Network,
    )
    from bpcli.nn.losses import LOSSES
    from bpcli.nn.optimizers import SGD

    body = {"bag": lambda: [GlobalAvgPool1D()],
            "cnn": lambda: [Conv1D(64, 3), Activation("relu"), GlobalMaxPool1D()],
            "gru": lambda: [GRU(64)], "lstm": lambda: [LSTM(64)]}[model]()
    layers = [Embedding(VOCAB, DIM), *body, Dense(CLASSES), Activation("softmax")]
    net = Network(layers, LOSSES["cross_entropy"](), (LENGTH,), np.random.default_rng(0),
                  np.float32)
    optimizer = SGD(0.01)
    ids, y = batch()
    X = ids.astype(np.float32)
    times = []
    for i in range(WARMUP + STEPS):
        start = time.perf_counter()
        net.compute_gradients(X, y)
        optimizer.step(net.param_arrays(), net.grad_arrays())
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_step_time(model: str) -> float:
    import torch

    torch.manual_seed(0)
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if model == "bag":
                self.embed: nn.Module = nn.EmbeddingBag(VOCAB, DIM, mode="mean", padding_idx=0)
            else:
                self.embed = nn.Embedding(VOCAB, DIM, padding_idx=0)
            if model == "cnn":
                self.conv = nn.Conv1d(DIM, 64, 3, padding=1)
            if model in ("gru", "lstm"):
                self.rnn = (nn.GRU if model == "gru" else nn.LSTM)(DIM, 64, batch_first=True)
            self.out = nn.Linear(DIM if model == "bag" else 64, CLASSES)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            if model == "bag":
                return self.out(self.embed(ids))
            vectors = self.embed(ids)
            if model == "cnn":
                h = torch.relu(self.conv(vectors.transpose(1, 2))).amax(dim=2)
            else:
                states, _ = self.rnn(vectors)
                h = states[:, -1]
            return self.out(h)

    net = Net()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    ids, y = batch()
    ids_t, y_t = torch.tensor(ids), torch.tensor(y)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for i in range(WARMUP + STEPS):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(ids_t), y_t)
        loss.backward()
        optimizer.step()
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker(contender: str, model: str) -> None:
    seconds = (bp_step_time if contender == "bp" else torch_step_time)(model)
    print(json.dumps({"seconds": seconds}))


def measure(contender: str, model: str, threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), BP_THREADS=str(threads))
    proc = subprocess.run([sys.executable, __file__, "--worker", contender, model],
                          capture_output=True, text=True, env=env, check=True)
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    try:
        import torch  # noqa: F401
        contenders = ["bp", "torch"]
    except ImportError:
        contenders = ["bp"]
    threads_list = [2] if args.quick else [1, 2]
    repeats = 3 if args.quick else 5
    print("| model | threads | bp ms/step | PyTorch ms/step | PyTorch/bp |")
    print("|---|---|---|---|---|")
    for threads in threads_list:
        for model in MODELS:
            samples: dict[str, list[float]] = {c: [] for c in contenders}
            for _ in range(repeats):  # interleaved
                for contender in contenders:
                    samples[contender].append(measure(contender, model, threads))
            bp = statistics.median(samples["bp"]) * 1e3
            if "torch" in samples:
                theirs = statistics.median(samples["torch"]) * 1e3
                print(f"| {model} | {threads} | {bp:.2f} | {theirs:.2f} | {theirs / bp:.2f} |")
            else:
                print(f"| {model} | {threads} | {bp:.2f} | - | - |")


if __name__ == "__main__":
    main()
