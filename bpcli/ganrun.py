"""What a GAN's run adds to a training session (``bpcli.session``): reading its
checkpoints, pictures of its samples, and how far its rows are from the real ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bpcli.data import Preprocessor
from bpcli.display import Display
from bpcli.ganbuild import GanParts
from bpcli.ganquality import fidelity
from bpcli.modelfile import SavedGan, SavedModel, load_gan, load_model
from bpcli.nn import Network
from bpcli.plots import PlotsUnavailable, image_grid
from bpcli.rundir import write_json

SAMPLE_GRID = 64  # images in an image GAN's samples.png
SAMPLE_PICTURES = 10  # pictures of an image GAN's samples while it trains


def load_checkpoint(path: Path, parts: GanParts | None) -> SavedModel | SavedGan:
    """A run's checkpoint: a GAN's (``parts`` given) or a model's."""
    return load_gan(path) if parts is not None else load_model(path)


def paired_networks(network: Network, parts: GanParts | None,
                    saved: SavedModel | SavedGan) -> list[tuple[Network, Network]]:
    """The session's networks paired with a checkpoint's."""
    if isinstance(saved, SavedGan):
        assert parts is not None
        return [(parts.gan.generator, saved.gan.generator),
                (parts.gan.discriminator, saved.gan.discriminator)]
    return [(network, saved.network)]


def image_samples(parts: GanParts) -> NDArray[np.float64]:
    """An image GAN's images from the same noise (seed 0) each time, so that pictures of
    one run, and of runs of one config, compare: (SAMPLE_GRID, channels, height, width)."""
    shape = parts.layout.image_shape
    assert shape is not None
    images = parts.gan.sample(SAMPLE_GRID, np.random.default_rng(0))
    return np.asarray(images, dtype=np.float64).reshape(SAMPLE_GRID, *shape)


def draw_samples(parts: GanParts, path: Path, display: Display) -> None:
    """An image GAN's run ends with a grid of 64 generated images (the same noise, seed 0,
    in every run, so that runs compare), when matplotlib is there."""
    if parts.layout.image_shape is None:
        return
    try:
        image_grid(image_samples(parts), path)
    except PlotsUnavailable as exc:
        display.info(f"no {path.name}: {exc}")
        return
    display.info(f"generated images drawn in {path}")


def write_fidelity(parts: GanParts, real: NDArray, preprocessor: Preprocessor, path: Path,
                   display: Display) -> None:
    """A tabular GAN's run ends with each column's distance between the training rows and
    as many generated ones (seed 0), in ``fidelity.json`` and on the screen."""
    if parts.layout.image_shape is not None:
        return
    rng = np.random.default_rng(0)
    found = fidelity(parts.layout, preprocessor, real,
                     parts.gan.sample(len(real), rng), rng)
    write_json(path, {"rows": len(real), "columns": {
        name: {"measure": measure, "distance": round(distance, 4)}
        for name, (measure, distance) in found.items()}})
    display.info(f"generated rows against the {len(real)} training rows ({path.name}; 0 is "
                 "alike, 1 apart): " + ", ".join(f"{name} {measure} {distance:.3f}"
                                                 for name, (measure, distance) in found.items()))
