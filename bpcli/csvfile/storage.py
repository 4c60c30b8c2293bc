"""Column storage: arrays filled chunk by chunk, each in a private memory map of its own,
and handing freed memory back to the system."""

from __future__ import annotations

import ctypes
import mmap
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray


class Columns:
    """Column arrays filled chunk by chunk, with room reserved from the file's size so
    that they are rarely copied to grow. Each array has a private memory map of its own:
    room never written costs no memory, and rows done with can be released early
    (``Column.release_rows``)."""

    def __init__(self, file_bytes: int) -> None:
        self.file_bytes = file_bytes
        self.arrays: dict[str, tuple[NDArray[Any], mmap.mmap | None]] = {}
        self.rows = 0
        self.capacity = 0
        self.seen_bytes = 0

    def reserve(self, rows: int, chunk_bytes: int) -> None:
        self.seen_bytes += chunk_bytes
        needed = self.rows + rows
        if needed <= self.capacity:
            return
        # rows per byte so far, times the file's size, and a little slack
        estimate = int(needed / self.seen_bytes * self.file_bytes * 1.02) + 64
        self.capacity = max(needed, estimate, int(self.capacity * 1.5))
        for name, (array, _) in self.arrays.items():
            grown = self.arrays[name] = _mapped(self.capacity, array.dtype)
            grown[0][: self.rows] = array[: self.rows]

    def append(self, name: str, values: NDArray[Any], dtype: DTypeLike | None = None) -> None:
        if name not in self.arrays:
            self.arrays[name] = _mapped(self.capacity, np.dtype(dtype or values.dtype))
        self.arrays[name][0][self.rows : self.rows + len(values)] = values

    def advance(self, rows: int) -> None:
        self.rows += rows

    def take(self, name: str) -> tuple[NDArray[Any], mmap.mmap | None]:
        """The filled part of a column, and its memory map."""
        array, mapping = self.arrays.pop(name)
        return array[: self.rows], mapping


def _mapped(length: int, dtype: np.dtype[Any]) -> tuple[NDArray[Any], mmap.mmap | None]:
    """An array of ``length`` in a private anonymous memory map of its own (a plain array
    where the system has no such maps)."""
    if not hasattr(mmap, "MAP_PRIVATE"):
        return np.empty(length, dtype=dtype), None
    mapping = mmap.mmap(-1, max(1, length * dtype.itemsize),
                        flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(mapping, dtype=dtype, count=length), mapping


def release_freed_memory() -> None:
    """Give the memory that reading and fitting left free back to the system (glibc keeps
    up to twice its largest recent allocation for reuse, here tens of megabytes), so that
    the arrays built next do not come on top of it. A no-op where the C library is not
    glibc."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # no such C library or function
        pass

