"""Weight initialisers: ``init(shape, rng, dtype)`` with ``shape = (fan_in, fan_out)``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import DTypeLike, NDArray

Initializer = Callable[[tuple[int, int], np.random.Generator, DTypeLike], NDArray[np.floating]]


def glorot_uniform(shape: tuple[int, int], rng: np.random.Generator, dtype: DTypeLike) -> NDArray:
    """U(-l, l) with ``l = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio, 2010)."""
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def glorot_normal(shape: tuple[int, int], rng: np.random.Generator, dtype: DTypeLike) -> NDArray:
    """N(0, s^2) with ``s = sqrt(2 / (fan_in + fan_out))``."""
    std = np.sqrt(2.0 / (shape[0] + shape[1]))
    return rng.normal(0.0, std, size=shape).astype(dtype)


def he_uniform(shape: tuple[int, int], rng: np.random.Generator, dtype: DTypeLike) -> NDArray:
    """U(-l, l) with ``l = sqrt(6 / fan_in)`` (He et al., 2015), suited to ReLU."""
    limit = np.sqrt(6.0 / shape[0])
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(shape: tuple[int, int], rng: np.random.Generator, dtype: DTypeLike) -> NDArray:
    """N(0, s^2) with ``s = sqrt(2 / fan_in)``."""
    std = np.sqrt(2.0 / shape[0])
    return rng.normal(0.0, std, size=shape).astype(dtype)


INITIALIZERS: dict[str, Initializer] = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
}

# Activations whose units die or saturate less under He's larger variance.
HE_ACTIVATIONS = frozenset({"relu", "leaky_relu"})


def default_initializer(activation: str) -> str:
    """He for the ReLU family, Glorot for everything else (as Keras and PyTorch advise)."""
    return "he_uniform" if activation in HE_ACTIVATIONS else "glorot_uniform"
