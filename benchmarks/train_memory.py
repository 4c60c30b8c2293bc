"""Peak memory of training on 1,000,000 x 20 float32 rows, beside the data's own size.

    python benchmarks/train_memory.py

Builds the arrays in memory (chunk by chunk, straight into float32), then trains one
epoch of a 20-64-64-1 regression network through bp's trainer. Reports the peak resident
memory above the baseline taken after the imports, as a multiple of the data arrays
plus the model and optimizer state. (Reading such a CSV is the data loader's business
and is measured separately.)
"""

from __future__ import annotations

import resource

import numpy as np

from bpcli.building import build_network
from bpcli.config import Config
from bpcli.nn.optimizers import Adam
from bpcli.trainer import Trainer

ROWS, FEATURES, VALIDATION = 1_000_000, 20, 100_000
MiB = 1 << 20


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def main() -> None:
    baseline = current_rss()
    rng = np.random.default_rng(0)
    X = np.empty((ROWS + VALIDATION, FEATURES), dtype=np.float32)
    for start in range(0, len(X), 100_000):
        rng.standard_normal(out=X[start : start + 100_000], dtype=np.float32)
    Y = (X[:, :1] * X[:, 1:2]).astype(np.float32)
    data_bytes = X.nbytes + Y.nbytes
    config = Config.model_validate({
        "data": {"path": "unused.csv", "target": "y"},
        "model": {"layers": [{"type": "dense", "units": 64, "activation": "relu",
                              "init": "he_uniform"},
                             {"type": "dense", "units": 64, "activation": "relu",
                              "init": "he_uniform"},
                             {"type": "dense", "units": 1, "activation": "identity",
                              "init": "glorot_uniform"}]},
        "loss": "mse",
    })
    network = build_network(config, FEATURES, np.random.default_rng(1))
    optimizer = Adam()
    trainer = Trainer(network, optimizer, epochs=1, batch_size=128,
                      rng=np.random.default_rng(2), metric=lambda o, y: 0.0,
                      metric_name="none", listeners=[])
    trainer.fit(X[:ROWS], Y[:ROWS], X[ROWS:], Y[ROWS:])
    state_bytes = network.flat_params.nbytes * 4  # params, grads, Adam's m and v
    above = peak_rss() - baseline
    budget = data_bytes + state_bytes
    print(f"data arrays {data_bytes / MiB:.1f} MiB, model and optimizer state "
          f"{state_bytes / MiB:.2f} MiB")
    print(f"peak above baseline {above / MiB:.1f} MiB = {above / budget:.2f}x "
          "(target: at most 1.5x)")


if __name__ == "__main__":
    main()
