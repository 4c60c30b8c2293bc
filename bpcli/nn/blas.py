"""``y += a * x`` and ``y = a * x + b * y`` in one pass, from the BLAS NumPy itself loaded.

NumPy has no fused multiply-add over arrays: ``w -= lr * g`` writes ``lr * g`` to a
scratch array and reads it back, two passes over memory where BLAS's ``axpy`` makes one,
on every BLAS thread. For a network of 1.9 M weights this took the SGD update from 1.1 ms
to 0.3 ms a step (benchmarks/mlp_speed.py). The functions are found through threadpoolctl,
which lists the BLAS libraries loaded in the process; when it is missing, or the library
has no CBLAS symbols bp recognises (with their integer width), or the arrays are not
contiguous vectors of one float type, NumPy does the same arithmetic in two passes.
Elementwise, so the result does not depend on how many threads share the vector.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]

@functools.cache
def _functions() -> dict[str, Any]:
    """The CBLAS ``{s,d}axpy`` and ``{s,d}axpby`` of NumPy's BLAS, by name ('' if absent)."""
    try:
        import threadpoolctl
    except ImportError:  # pragma: no cover - a dependency of bp; nn may be used without it
        return {}
    found: dict[str, Any] = {}
    libraries = [lib for lib in threadpoolctl.threadpool_info() if lib.get("user_api") == "blas"]
    # NumPy's own first: another library loaded beside it (PyTorch's) may round differently
    libraries.sort(key=lambda lib: "numpy" not in lib["filepath"])
    for library in libraries:
        try:
            handle = ctypes.CDLL(library["filepath"])
        except OSError:  # pragma: no cover - listed as loaded, so it loads
            continue
        for name in ("saxpy", "daxpy", "saxpby", "daxpby"):
            if name not in found and (function := _symbol(handle, name)) is not None:
                found[name] = function
    return found


def _symbol(handle: ctypes.CDLL, name: str) -> Any:
    """``cblas_<name>`` with the argument types of its integer width: NumPy's wheels
    build OpenBLAS with 64-bit integers and mark those symbols ``64_``."""
    real = ctypes.c_float if name[0] == "s" else ctypes.c_double
    for symbol, integer in ((f"scipy_cblas_{name}64_", ctypes.c_int64),
                            (f"cblas_{name}64_", ctypes.c_int64),
                            (f"scipy_cblas_{name}", ctypes.c_int32),
                            (f"cblas_{name}", ctypes.c_int32)):
        function = getattr(handle, symbol, None)
        if function is None:
            continue
        pointer = ctypes.c_void_p
        if name.endswith("axpby"):
            function.argtypes = [integer, real, pointer, integer, real, pointer, integer]
        else:
            function.argtypes = [integer, real, pointer, integer, pointer, integer]
        function.restype = None
        return function
    return None


#: below this many values NumPy's two passes stay in cache and cost less than the call
SMALL = 1 << 15
_PREFIX = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}


def _blas(kind: str, x: Array, y: Array) -> Any:
    """The BLAS function ``kind`` for these arrays' float type, or None when NumPy does
    it (small, not one float type, not contiguous, or no such function)."""
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} and {y.shape}")
    prefix = _PREFIX.get(x.dtype)
    if (prefix is None or x.size < SMALL or y.dtype != x.dtype or not x.flags.c_contiguous
            or not y.flags.c_contiguous):
        return None
    return _functions().get(prefix + kind)


def axpy(a: float, x: Array, y: Array, scratch: Array) -> None:
    """``y += a * x`` in place; ``scratch`` (like ``x``) holds ``a * x`` when NumPy
    does it."""
    function = _blas("axpy", x, y)
    if function is None:
        y += np.multiply(x, a, out=scratch)
    else:
        function(x.size, a, x.ctypes.data, 1, y.ctypes.data, 1)


def axpby(a: float, x: Array, b: float, y: Array, scratch: Array) -> None:
    """``y = a * x + b * y`` in place; ``scratch`` as in ``axpy``."""
    function = _blas("axpby", x, y)
    if function is None:
        y *= b
        y += np.multiply(x, a, out=scratch)
    else:
        function(x.size, a, x.ctypes.data, 1, b, y.ctypes.data, 1)
