"""Will a network fit in memory? Estimated from its layers' shapes before anything is
allocated, so that ``units: 1000000`` is refused with the layer's name instead of
swapping the machine to a halt or dying in NumPy's allocator."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from bpcli.files import human_size
from bpcli.nn import Conv2D, Layer
from bpcli.nn.network import INFERENCE_BATCH

#: With no way to read the available memory, refuse only what no machine has.
UNKNOWN_MEMORY_LIMIT = 1 << 40
#: Rows per inference batch bp uses at most (validation, predict and evaluate).
INFERENCE_ROWS = INFERENCE_BATCH
#: Conv2D's inference bounds its unrolled windows to this per chunk (nn/conv.py).
INFERENCE_COLS_BYTES = 32 << 20
#: A training step keeps each parameter, its gradient and up to two optimizer slots.
TRAINING_COPIES = 4
#: A training step keeps each layer's output, the cache for its backward pass and the
#: gradient flowing back.
ACTIVATION_COPIES = 3


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes the kernel says can be allocated without swapping (Linux's MemAvailable),
    else the free physical memory where the system tells it, else None."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit() -> int:
    """The most bp lets a network or a model file take: the available memory."""
    available = available_memory()
    return UNKNOWN_MEMORY_LIMIT if available is None else available


def layer_needs(layers: Sequence[Layer], input_shape: tuple[int, ...], itemsize: int,
                batch: int, inference_batch: int, training: bool = True) -> list[int]:
    """Bytes each layer needs: its parameters (with gradients and optimizer state when
    ``training``), its activations for ``batch`` training rows and for
    ``inference_batch`` rows in inference. Raises ``ValueError`` from the first layer
    whose input shape does not fit it."""
    needs = []
    shape = tuple(input_shape)
    for layer in layers:
        out = layer.compute_output_shape(shape)
        width_in, width_out = math.prod(shape), math.prod(out)
        elements = layer.count_params(shape) * (TRAINING_COPIES if training else 1)
        if training:
            elements += batch * (ACTIVATION_COPIES * width_out + layer.workspace(shape))
        elements += inference_batch * (width_in + width_out)
        need = elements * itemsize
        if isinstance(layer, Conv2D):
            need += min(inference_batch * layer.workspace(shape) // 2 * itemsize,
                        INFERENCE_COLS_BYTES)
        needs.append(need)
        shape = out
    return needs


def too_big(needs: Sequence[int], available: int | None = None) -> tuple[int, str] | None:
    """``None`` when ``needs`` (bytes per layer) fit in the available memory, else the
    index of the layer needing most and the problem in words."""
    total = sum(needs)
    limit = available_memory() if available is None else available
    if total <= (UNKNOWN_MEMORY_LIMIT if limit is None else limit):
        return None
    index = max(range(len(needs)), key=needs.__getitem__)
    where = ("" if limit is None
             else f", more than the {human_size(limit)} of memory available")
    return index, (f"the network needs about {human_size(total)}{where}; this layer "
                   f"alone needs {human_size(needs[index])}")
