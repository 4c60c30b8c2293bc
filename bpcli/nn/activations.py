"""Element-wise and row-wise activation functions with their derivatives.

Each activation maps pre-activations ``Z`` to activations ``A`` (same shape) and maps the
upstream gradient ``dA`` back to ``dZ`` by the chain rule.

For speed in training, ``forward`` may write into ``out`` (which may be ``Z`` itself), and
``backward`` may overwrite ``dA`` and return it. Activations whose derivative can be written
in terms of the output alone set ``needs_input = False``: their ``backward`` is called with
``Z=None``, which lets the layer compute them in place and keep no copy of ``Z``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.floating]


class ActivationFn:
    """One activation: ``forward(Z, out) -> A`` and ``backward(dA, Z, A) -> dZ``."""

    name: ClassVar[str]
    #: False when backward can work from the output ``A`` alone.
    needs_input: ClassVar[bool] = True

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        raise NotImplementedError

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        raise NotImplementedError


class Identity(ActivationFn):
    """``A = Z``."""

    name = "identity"
    needs_input = False

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        if out is None or out is Z:
            return Z
        np.copyto(out, Z)
        return out

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        return dA


class ReLU(ActivationFn):
    """``A = max(Z, 0)``; the derivative is 1 where ``A > 0`` (so 0 at ``Z = 0``)."""

    name = "relu"
    needs_input = False

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return np.maximum(Z, 0, out=out)

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        return np.multiply(dA, A > 0, out=dA)


class LeakyReLU(ActivationFn):
    """``A = Z`` where ``Z > 0``, else ``slope * Z`` (``slope >= 0``, so the sign of ``A``
    tells the branch)."""

    name = "leaky_relu"
    needs_input = False

    def __init__(self, slope: float = 0.01) -> None:
        if slope < 0:
            raise ValueError(f"leaky_relu slope must be >= 0, got {slope}")
        self.slope = slope

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return np.multiply(Z, np.where(Z > 0, Z.dtype.type(1), Z.dtype.type(self.slope)),
                           out=out)

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        factor = np.where(A > 0, A.dtype.type(1), A.dtype.type(self.slope))
        return np.multiply(dA, factor, out=dA)


class Sigmoid(ActivationFn):
    """``A = 1 / (1 + exp(-Z))``, computed without overflow for large ``|Z|``;
    ``dZ = dA * A * (1 - A)``."""

    name = "sigmoid"
    needs_input = False

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return sigmoid(Z, out)

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        dA *= A
        dA *= 1 - A
        return dA


class Tanh(ActivationFn):
    """``A = tanh(Z)``; ``dZ = dA * (1 - A^2)``."""

    name = "tanh"
    needs_input = False

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return np.tanh(Z, out=out)

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        dA *= 1 - A * A
        return dA


class Softmax(ActivationFn):
    """Row-wise ``A_ij = exp(Z_ij) / sum_k exp(Z_ik)`` over the last axis;
    ``dZ_i = A_i * (dA_i - sum_k dA_k A_k)``."""

    name = "softmax"
    needs_input = False

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return softmax(Z, out)

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        dA -= np.sum(dA * A, axis=-1, keepdims=True)
        dA *= A
        return dA


class ELU(ActivationFn):
    """``A = Z`` where ``Z > 0``, else ``alpha * (exp(Z) - 1)`` (Clevert et al., 2016).

    ``dZ = dA`` where ``A > 0``, else ``dA * alpha * exp(Z) = dA * (A + alpha)``; with
    ``alpha > 0`` the sign of ``A`` tells the branch, so backward needs only ``A``.
    """

    name = "elu"
    needs_input = False
    #: Multiplies both branches; 1 here, SELU's lambda in the subclass.
    scale: ClassVar[float] = 1.0

    def __init__(self, alpha: float = 1.0) -> None:
        if not 0 < alpha < math.inf:
            raise ValueError(f"{self.name} alpha must be a positive number, got {alpha}")
        self.alpha = alpha

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        t = Z.dtype.type
        # exp only ever sees non-positive arguments, so large positive Z cannot overflow.
        negative = np.expm1(np.minimum(Z, 0))
        negative *= t(self.scale * self.alpha)
        A = np.maximum(Z, 0, out=out)  # may overwrite Z: everything needed from it is done
        if self.scale != 1.0:
            A *= t(self.scale)
        A += negative
        return A

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        t = A.dtype.type
        factor = np.where(A > 0, t(self.scale), A + t(self.scale * self.alpha))
        return np.multiply(dA, factor, out=dA)


class SELU(ELU):
    """Scaled ELU: ``A = lambda * Z`` where ``Z > 0``, else ``lambda * alpha * (exp(Z) - 1)``,
    with the fixed constants of Klambauer et al. (2017) that make activations self-normalise
    (pair it with ``lecun_normal`` weights).

    ``dZ = dA * lambda`` where ``A > 0``, else ``dA * (A + lambda * alpha)``.
    """

    name = "selu"
    scale = 1.0507009873554804934193349852946

    def __init__(self) -> None:
        super().__init__(alpha=1.6732632423543772848170429916717)


class GELU(ActivationFn):
    """Gaussian error linear unit (Hendrycks & Gimpel, 2016): ``A = Z * Phi(Z)`` with ``Phi``
    the standard normal CDF; ``dZ = dA * (Phi(Z) + Z * phi(Z))``, ``phi`` the normal pdf.

    With ``approximate=True``, the tanh form ``A = Z * (1 + T) / 2`` with
    ``T = tanh(c * (Z + k * Z^3))``, ``c = sqrt(2 / pi)``, ``k = 0.044715``, and
    ``dZ = dA * ((1 + T) / 2 + Z * (1 - T^2) * c * (1 + 3 k Z^2) / 2)``.
    """

    name = "gelu"
    C = math.sqrt(2 / math.pi)
    K = 0.044715

    def __init__(self, approximate: bool = False) -> None:
        if not isinstance(approximate, bool):
            raise ValueError(f"gelu approximate must be true or false, got {approximate!r}")
        self.approximate = approximate

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        if self.approximate:
            gate = self._tanh(Z)
            gate += 1
            gate *= Z.dtype.type(0.5)
        else:
            gate = normal_cdf(Z)
        return np.multiply(Z, gate, out=out)

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        assert Z is not None, "gelu needs its input for backward"
        t = Z.dtype.type
        factor: Array
        if self.approximate:
            T = self._tanh(Z)
            factor = 1 - T * T
            factor *= Z
            factor *= t(self.C) + t(3 * self.C * self.K) * (Z * Z)
            factor += 1
            factor += T
            factor *= t(0.5)
        else:
            factor = normal_pdf(Z)
            factor *= Z
            factor += normal_cdf(Z)
        return np.multiply(dA, factor, out=dA)

    def _tanh(self, Z: Array) -> Array:
        t = Z.dtype.type
        return np.tanh(Z * (t(self.C) + t(self.C * self.K) * (Z * Z)))


class SiLU(ActivationFn):
    """Sigmoid linear unit, also called swish: ``A = Z * s(Z)`` with ``s`` the logistic
    sigmoid; ``dZ = dA * s(Z) * (1 + Z * (1 - s(Z)))``. Not monotonic, so backward needs ``Z``.
    """

    name = "silu"

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return np.multiply(Z, sigmoid(Z), out=out)

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        assert Z is not None, "silu needs its input for backward"
        S = sigmoid(Z)
        factor = 1 - S
        factor *= Z
        factor += 1
        factor *= S
        return np.multiply(dA, factor, out=dA)


class Softplus(ActivationFn):
    """``A = log(1 + exp(Z))``, computed as ``logaddexp(0, Z)`` so that it neither overflows
    nor loses small values; ``dZ = dA * s(Z)``.

    Softplus is invertible and ``s(Z) = 1 - exp(-A)``, a well-conditioned function of ``A``
    (computed with ``expm1``), so backward needs only ``A``.
    """

    name = "softplus"
    needs_input = False

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return np.logaddexp(Z.dtype.type(0), Z, out=out)

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        return np.multiply(dA, -np.expm1(-A), out=dA)


def sigmoid(Z: Array, out: Array | None = None) -> Array:
    """Logistic function; ``exp`` only ever sees non-positive arguments."""
    E = np.exp(-np.abs(Z))
    positive = Z >= 0
    return np.divide(np.where(positive, 1, E), 1 + E, out=out)


def softmax(Z: Array, out: Array | None = None) -> Array:
    """Softmax over the last axis, shifted by the row maximum for stability."""
    E = np.subtract(Z, np.max(Z, axis=-1, keepdims=True), out=out)
    np.exp(E, out=E)
    E /= np.sum(E, axis=-1, keepdims=True)
    return E


def normal_cdf(Z: Array) -> Array:
    """Standard normal CDF ``Phi(Z) = (1 + erf(Z / sqrt(2))) / 2``, in ``Z``'s dtype."""
    t = Z.dtype.type
    P = erf(Z * t(1 / math.sqrt(2)))
    P += 1
    P *= t(0.5)
    return P


def normal_pdf(Z: Array) -> Array:
    """Standard normal density ``phi(Z) = exp(-Z^2 / 2) / sqrt(2 pi)``, in ``Z``'s dtype."""
    t = Z.dtype.type
    D = np.exp(Z * Z * t(-0.5))
    D *= t(1 / math.sqrt(2 * math.pi))
    return D


# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23
# (1969), with the coefficients of his SPECFUN routine CALERF (Netlib), as published. In
# each numerator the last entry multiplies the highest power, the rest run from the next
# power down to the constant; the denominators are monic. Max relative error ~1e-17.
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)


def erf(x: ArrayLike) -> Array:
    """The error function ``erf(x) = 2 / sqrt(pi) * integral_0^x exp(-t^2) dt``, element-wise.

    Cody's three rational approximations: ``erf`` itself for ``|x| <= 0.46875``, and
    ``erfc = 1 - erf`` on ``(0.46875, 4]`` and beyond 4. Accurate to a few ulp in float64;
    float32 input is computed and returned in float32, other real input in float64.
    """
    X = np.asarray(x)
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    y = np.abs(X)
    result = np.empty_like(X)
    near = y <= 0.46875
    result[near] = X[near] * _cody_ratio(_A, _B, np.square(X[near]))
    far = ~near
    result[far] = np.copysign(1 - _erfc_far(y[far]), X[far])
    return result


def _erfc_far(y: Array) -> Array:
    """``erfc(y)`` for ``y > 0.46875``, as far as ``1 - erfc`` can tell: clamped at 6, where
    erfc is below 2.2e-17 and ``erf`` is 1 in float64 (this also keeps ``y * y`` finite)."""
    y = np.minimum(y, 6)
    ratio = np.empty_like(y)
    middle = y <= 4
    ratio[middle] = _cody_ratio(_C, _D, y[middle])
    tail = y[~middle]
    u = 1 / (tail * tail)
    ratio[~middle] = (1 / math.sqrt(math.pi) - u * _cody_ratio(_P, _Q, u)) / tail
    # exp(-y^2) as exp(-h^2) * exp(-(y - h)(y + h)) with h = y rounded down to 1/16: h^2 is
    # exact, so the rounding error of y^2 is not magnified by exp (Cody's device).
    h = np.trunc(y * 16) / 16
    ratio *= np.exp(-h * h)
    ratio *= np.exp(-(y - h) * (y + h))
    return ratio


def _cody_ratio(numerator: tuple[float, ...], denominator: tuple[float, ...], u: Array) -> Array:
    """Cody's ``P(u) / Q(u)`` from his coefficient layout (see the tables above)."""
    return _horner((numerator[-1], *numerator[:-1]), u) / _horner((1.0, *denominator), u)


def _horner(coefficients: tuple[float, ...], u: Array) -> Array:
    """The polynomial with ``coefficients`` from the highest power down, at ``u``."""
    result = np.full_like(u, coefficients[0])
    for c in coefficients[1:]:
        result *= u
        result += c
    return result


ACTIVATIONS: dict[str, type[ActivationFn]] = {
    **{cls.name: cls for cls in (Identity, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, ELU, SELU,
                                 GELU, SiLU, Softplus)},
    "swish": SiLU,  # the same function under the name Ramachandran et al. (2017) gave it
}
