"""The one-pass ``axpy``/``axpby`` from NumPy's BLAS, and SGD steps large enough to use it."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import threadpoolctl

from bpcli.nn import blas
from bpcli.nn.optimizers import SGD

LARGE = 3 * blas.SMALL + 7  # an odd size: BLAS kernels handle the tail apart


def vectors(n: int, dtype: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)


@pytest.fixture(autouse=True)
def fresh_lookup() -> Iterator[None]:
    """Each test looks the functions up anew: the lookup is cached for the process, and a
    test should check the lookup of the code it runs, not one made before it started."""
    blas._functions.cache_clear()
    yield
    blas._functions.cache_clear()


@pytest.fixture
def blas_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the BLAS functions called, recorded as they are called."""
    calls: list[str] = []
    functions = dict(blas._functions())

    def recording(name: str, function: Any) -> Any:
        def call(*args: Any) -> None:
            calls.append(name)
            function(*args)
        return call

    recorded = {name: recording(name, f) for name, f in functions.items()}
    monkeypatch.setattr(blas, "_functions", lambda: recorded)
    return calls


def test_numpys_blas_offers_all_four_functions() -> None:
    # NumPy's wheels ship OpenBLAS with 64-bit integer CBLAS symbols; if bp stopped
    # finding them every update would silently take the slower path
    assert set(blas._functions()) == {"saxpy", "daxpy", "saxpby", "daxpby"}


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-6), (np.float64, 1e-15)])
def test_axpy_and_axpby_compute_their_formulas_through_blas(
        dtype: Any, rtol: float, blas_calls: list[str]) -> None:
    x, y = vectors(LARGE, dtype)
    expected_axpy = y.astype(np.float64) - 0.03 * x.astype(np.float64)
    expected_axpby = 0.9 * y.astype(np.float64) - 0.03 * x.astype(np.float64)
    scratch = np.empty_like(x)
    y1, y2 = y.copy(), y.copy()
    blas.axpy(-0.03, x, y1, scratch)
    blas.axpby(-0.03, x, 0.9, y2, scratch)
    np.testing.assert_allclose(y1, expected_axpy, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(y2, expected_axpby, rtol=rtol, atol=rtol)
    assert y1.dtype == y2.dtype == dtype
    prefix = "s" if dtype == np.float32 else "d"
    assert blas_calls == [prefix + "axpy", prefix + "axpby"]


@pytest.mark.parametrize("case", ["small", "x strided", "y strided", "mixed dtypes", "float16"])
def test_numpy_does_what_blas_cannot_take_with_the_same_arithmetic(
        case: str, blas_calls: list[str]) -> None:
    x, y = vectors(blas.SMALL - 1 if case == "small" else LARGE, np.float64)
    if case == "x strided":
        x = np.repeat(x, 2)[::2]
    elif case == "mixed dtypes":
        x = x.astype(np.float32)
    elif case == "float16":
        x, y = x.astype(np.float16), y.astype(np.float16)

    def target() -> np.ndarray:  # a copy of y, as strided as the case wants
        return np.repeat(y, 2)[::2] if case == "y strided" else y.copy()

    scratch = np.empty_like(x)
    y1, y2 = target(), target()
    blas.axpy(-0.03, x, y1, scratch)
    blas.axpby(-0.03, x, 0.9, y2, scratch)
    np.testing.assert_array_equal(y1, y + x * -0.03)
    np.testing.assert_array_equal(y2, y * 0.9 + x * -0.03)
    assert blas_calls == []


def test_a_blas_without_64_bit_symbols_is_called_with_32_bit_integers() -> None:
    # a system OpenBLAS or MKL names its functions plainly; the first names tried are
    # absent there, and asking for them must not fail
    library = SimpleNamespace(cblas_daxpby=SimpleNamespace(), cblas_saxpy=SimpleNamespace())
    function = blas._symbol(library, "daxpby")  # type: ignore[arg-type]
    assert function is library.cblas_daxpby
    c_int, c_double, pointer = ctypes.c_int32, ctypes.c_double, ctypes.c_void_p
    assert function.argtypes == [c_int, c_double, pointer, c_int, c_double, pointer, c_int]
    assert function.restype is None
    function = blas._symbol(library, "saxpy")  # type: ignore[arg-type]
    assert function is library.cblas_saxpy
    assert function.argtypes == [c_int, ctypes.c_float, pointer, c_int, pointer, c_int]
    assert blas._symbol(library, "daxpy") is None  # type: ignore[arg-type]


def test_the_64_bit_symbols_come_first() -> None:
    library = SimpleNamespace(cblas_saxpby=SimpleNamespace(),
                              scipy_cblas_saxpby64_=SimpleNamespace())
    function = blas._symbol(library, "saxpby")  # type: ignore[arg-type]
    assert function is library.scipy_cblas_saxpby64_
    c_int, c_float, pointer = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    assert function.argtypes == [c_int, c_float, pointer, c_int, c_float, pointer, c_int]


@pytest.mark.parametrize("n, through_blas", [(blas.SMALL - 1, False), (blas.SMALL, True)])
def test_blas_takes_vectors_from_small_values_on(n: int, through_blas: bool,
                                                 blas_calls: list[str]) -> None:
    x, y = vectors(n, np.float32)
    blas.axpy(2.0, x, y, np.empty_like(x))
    assert blas_calls == (["saxpy"] if through_blas else [])


def test_vectors_of_different_shapes_are_refused() -> None:
    x, y = vectors(LARGE, np.float32)
    with pytest.raises(ValueError, match="shapes differ"):
        blas.axpy(1.0, x, y[:-1], np.empty_like(x))


def test_the_result_does_not_depend_on_the_blas_thread_count() -> None:
    # a resumed run keeps its thread count, but the update must not need that
    x, y = vectors(4 * LARGE, np.float32)
    results = []
    for threads in (1, 2):
        out = y.copy()
        with threadpoolctl.threadpool_limits(threads):
            blas.axpby(-0.03, x, 0.9, out, np.empty_like(x))
            blas.axpy(0.5, x, out, np.empty_like(x))
        results.append(out)
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_steps_on_a_large_vector_follow_the_documented_rule(
        momentum: float, nesterov: bool, blas_calls: list[str]) -> None:
    w = np.random.default_rng(1).normal(size=LARGE)
    grads = [np.random.default_rng(seed).normal(size=LARGE) for seed in (2, 3, 4)]
    optimizer = SGD(0.05, momentum=momentum, nesterov=nesterov)
    expected, v = w.copy(), np.zeros_like(w)
    for g in grads:
        optimizer.step([w], [g])
        v = momentum * v - 0.05 * g
        expected = expected + (momentum * v - 0.05 * g if nesterov else v)
    np.testing.assert_allclose(w, expected, rtol=1e-13, atol=1e-13)
    assert blas_calls, "a vector this large is updated by BLAS"
