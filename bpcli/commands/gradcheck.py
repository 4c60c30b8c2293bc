"""``bp gradcheck``: the configured network's gradients against finite differences."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bpcli.config import load_config
from bpcli.display import Display
from bpcli.errors import CheckFailed
from bpcli.experiment import Experiment, prepare
from bpcli.ganbuild import build_gan, prepare_gan
from bpcli.nn import Network
from bpcli.nn.gradcheck import TensorCheck, check_generator_gradients, check_gradients

BIASES = ("b", "beta")  # dense and conv biases, the shifts of batch_norm and layer_norm


def _move_biases_off_zero(network: Network, rng: np.random.Generator) -> bool:
    """Give all-zero biases small random values; True when any was moved.

    At zero, a unit that is dead for the whole batch (a ReLU fed only zeros, such as
    blank pixels) outputs exactly 0, and so does a normalised channel that is constant
    over the batch; ties at 0 with a ReLU's kink or with dropped-out zeros in a max
    pooling are points where the loss has no derivative, and finite differences there
    take the mean of the two sides while backprop takes one."""
    moved = False
    for layer in network.layers:
        for name in BIASES:
            bias = layer.params.get(name)
            if bias is not None and not bias.any():
                bias[...] = rng.uniform(-0.1, 0.1, size=bias.shape)
                moved = True
    return moved


def _break_ties(network: Network, X: NDArray[np.float64], rng: np.random.Generator) -> bool:
    """Add noise (1% of the data's spread, far above the finite-difference step) to rows
    that go through a max pooling; True when it did. Images have runs of equal
    pixels (blank borders), so a pooling window often holds equal values; nudging one
    input moves some of them and not others, a point where the maximum has no
    derivative. Training does not care (backprop takes one of the tied values)."""
    if not any(layer.kind == "max_pool2d" for layer in network.layers):
        return False
    spread = float(X.std()) or 1.0
    X += rng.uniform(-1e-2, 1e-2, size=X.shape) * spread
    return True


def gradcheck(config_path: Path, display: Display, *, rows: int, eps: float, atol: float,
              rtol: float, max_entries: int, seed: int, directions: int | None = None,
              overrides: Sequence[str] = ()) -> None:
    """Check every parameter tensor and the input; raise ``CheckFailed`` on any mismatch."""
    loaded = load_config(config_path, overrides)
    with display.working("reading the data"):
        experiment = prepare(loaded, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if experiment.config.gan is not None:
        _check_gan(experiment, display, rng, rows=rows, eps=eps, atol=atol, rtol=rtol,
                   max_entries=max_entries, directions=directions)
        return
    network = experiment.build_network(rng, np.float64)
    moved = _move_biases_off_zero(network, rng)
    # a random sample, so that the batch is not all one class of a sorted file
    picked = np.sort(rng.choice(len(experiment.X_train), min(rows, len(experiment.X_train)),
                                replace=False))
    X, Y = experiment.X_train[picked], experiment.Y_train[picked]
    jittered = _break_ties(network, X, rng)
    how = (f"along {directions} random directions per tensor" if directions
           else f"at up to {max_entries} entries per tensor")
    display.info(f"checking {network.n_params} parameters and the input {how}, on {len(X)} "
                 f"training rows in float64 (eps {eps:g})")
    if moved:
        display.info("biases start at small random values here, not 0: an input of zeros "
                     "(e.g. blank pixels) would otherwise put a ReLU or a max pooling "
                     "exactly at a kink, where finite differences cannot follow it")
    if jittered:
        display.info("the rows get noise of 1% of their spread, so that no max pooling "
                     "window holds equal values (ties have no derivative)")
    with display.working("checking gradients") as progress:
        results = check_gradients(
            network, X, Y, eps=eps, atol=atol, rtol=rtol, max_entries=max_entries,
            directions=directions, rng=rng,
            on_tensor=lambda i, n, name: progress(i - 1, n, f"checking {name} ({i}/{n})"))
    _report(display, results, atol, rtol)


def _check_gan(experiment: Experiment, display: Display, rng: np.random.Generator, *,
               rows: int, eps: float, atol: float, rtol: float, max_entries: int,
               directions: int | None) -> None:
    """A GAN's two checks: the discriminator's loss on real and generated rows (its
    parameters and its input), and the generator's loss through the discriminator."""
    experiment, layout, _ = prepare_gan(experiment)
    parts = build_gan(experiment.loaded, experiment.config, layout, rng, np.float64,
                      rows=len(experiment.X_train))
    gan = parts.gan
    G, D = gan.generator, gan.discriminator
    moved = _move_biases_off_zero(G, rng) | _move_biases_off_zero(D, rng)
    n = min(rows, len(experiment.X_train))
    real = experiment.X_train[np.sort(rng.choice(len(experiment.X_train), n, replace=False))]
    X = np.concatenate([D.shaped(real), gan.sample(n, rng)])
    Y = np.zeros((2 * n, 1))
    Y[:n] = 1.0 - gan.label_smoothing
    jittered = _break_ties(D, X.reshape(2 * n, -1), rng)
    how = (f"along {directions} random directions per tensor" if directions
           else f"at up to {max_entries} entries per tensor")
    display.info(f"checking the discriminator's {D.n_params} parameters and input on {n} "
                 f"real and {n} generated rows, and the generator's {G.n_params} parameters "
                 f"through the discriminator on {n} noise rows, {how}, in float64 (eps "
                 f"{eps:g})")
    if moved:
        display.info("biases start at small random values here, not 0 (see bp gradcheck "
                     "on a model)")
    if jittered:
        display.info("the rows get noise of 1% of their spread (ties have no derivative)")
    with display.working("checking gradients") as progress:
        def told(i: int, total: int, name: str) -> None:
            progress(i - 1, total, f"checking {name} ({i}/{total})")

        checked = check_gradients(D, X, Y, eps=eps, atol=atol, rtol=rtol,
                                  max_entries=max_entries, directions=directions, rng=rng,
                                  on_tensor=told)
        D.layers[0].needs_input_grad = True  # the generator learns through it
        results = [dataclasses.replace(r, layer=f"discriminator {r.layer}") for r in checked]
        results += check_generator_gradients(gan, gan.draw_noise(n, rng), eps=eps, atol=atol,
                                             rtol=rtol, max_entries=max_entries,
                                             directions=directions, rng=rng, on_tensor=told)
    _report(display, results, atol, rtol)


def _report(display: Display, results: list[TensorCheck], atol: float, rtol: float) -> None:
    display.gradcheck_report(results, atol, rtol)
    failed = [f"{r.layer} {r.name}" for r in results if not r.passed]
    if failed:
        raise CheckFailed(f"gradient check FAILED for {len(failed)} of {len(results)} "
                          f"tensors: {', '.join(failed)}")
    display.info(f"all {len(results)} tensors pass")
