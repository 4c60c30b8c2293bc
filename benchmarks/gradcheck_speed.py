"""Time `bp gradcheck`'s two modes on a network of about a million parameters.

    python benchmarks/gradcheck_speed.py

The directional mode (`--fast`) costs two loss evaluations per direction per tensor,
whatever the tensor's size; the entry mode samples `max_entries` entries per tensor.
"""

from __future__ import annotations

import time

import numpy as np

from bpcli.nn import Activation, Dense, Network
from bpcli.nn.gradcheck import check_gradients
from bpcli.nn.losses import SoftmaxCrossEntropy


def main() -> None:
    layers = [Dense(1024), Activation("relu"), Dense(200), Activation("tanh"), Dense(10),
              Activation("softmax")]
    network = Network(layers, SoftmaxCrossEntropy(), (784,), np.random.default_rng(0),
                      np.float64)
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(8, 784)), rng.integers(0, 10, 8)
    print(f"network 784-1024-200-10: {network.n_params:,} parameters, batch of 8, float64")
    for label, options in (("--fast (3 directions per tensor)", {"directions": 3}),
                           ("entries (max 500 per tensor)", {"max_entries": 500})):
        start = time.perf_counter()
        results = check_gradients(network, X, Y, rng=np.random.default_rng(2), **options)
        seconds = time.perf_counter() - start
        verdict = "all pass" if all(r.passed for r in results) else "FAILURES"
        print(f"{label:34s} {seconds:6.2f} s  {verdict}")


if __name__ == "__main__":
    main()
