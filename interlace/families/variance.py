"""Variance functions V(mu) as small public classes.

Each is callable (``variance(mu)``), has a ``name`` and a derivative
``deriv(mu) = dV/dmu`` (used for exact Hessians of the log-likelihood in eta).

Example
-------
>>> import numpy as np
>>> from interlace.families.variance import BinomialVariance
>>> float(BinomialVariance()(np.array([0.5]))[0])
0.25
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from interlace.families.links import EPS

__all__ = [
    "VarianceFunction",
    "ConstantVariance",
    "MuVariance",
    "BinomialVariance",
    "MuSquaredVariance",
    "MuCubedVariance",
    "NegBinVariance",
    "PowerVariance",
]


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


class VarianceFunction(ABC):
    """Base class: ``V(mu)`` and its derivative.

    ``deriv`` defaults to a central difference so a custom variance works
    without it; override it for exact Hessians.

    Example
    -------
    >>> import numpy as np
    >>> class Power15(VarianceFunction):
    ...     name = "mu^1.5"
    ...     def __call__(self, mu): return np.asarray(mu, float) ** 1.5
    >>> float(Power15()(np.array([4.0]))[0])
    8.0
    """

    name: ClassVar[str] = "variance"

    @abstractmethod
    def __call__(self, mu: np.ndarray) -> np.ndarray:
        """V(mu)."""

    def variance(self, mu: np.ndarray) -> np.ndarray:
        """Same as calling the object."""
        return self(mu)

    def deriv(self, mu: np.ndarray) -> np.ndarray:
        """dV/dmu (default: central difference)."""
        mu = _arr(mu)
        h = 1e-6 * np.maximum(1.0, np.abs(mu))
        return (self(mu + h) - self(mu - h)) / (2.0 * h)

    def validmu(self, mu: np.ndarray) -> bool:
        """R's ``validmu``: True when every mu is in the variance's domain."""
        return bool(np.all(np.isfinite(_arr(mu))))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ConstantVariance(VarianceFunction):
    """V(mu) = 1 (gaussian).

    >>> import numpy as np
    >>> float(ConstantVariance()(np.array([7.0]))[0])
    1.0
    """

    name = "constant"

    def __call__(self, mu):
        return np.ones_like(_arr(mu))

    def deriv(self, mu):
        return np.zeros_like(_arr(mu))


class MuVariance(VarianceFunction):
    """V(mu) = mu (poisson).

    >>> import numpy as np
    >>> float(MuVariance().deriv(np.array([7.0]))[0])
    1.0
    """

    name = "mu"

    def __call__(self, mu):
        return _arr(mu).copy()

    def deriv(self, mu):
        return np.ones_like(_arr(mu))

    def validmu(self, mu):
        mu = _arr(mu)
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))


class BinomialVariance(VarianceFunction):
    """V(mu) = mu (1 - mu), floored at eps as lme4's ``x1mx`` does.

    >>> import numpy as np
    >>> float(BinomialVariance().deriv(np.array([0.25]))[0])
    0.5
    """

    name = "mu(1-mu)"

    def __call__(self, mu):
        mu = _arr(mu)
        return np.maximum(mu * (1.0 - mu), EPS)

    def deriv(self, mu):
        return 1.0 - 2.0 * _arr(mu)

    def validmu(self, mu):
        mu = _arr(mu)
        return bool(np.all(np.isfinite(mu)) and np.all((mu > 0) & (mu < 1)))


class MuSquaredVariance(VarianceFunction):
    """V(mu) = mu^2 (Gamma).

    >>> import numpy as np
    >>> float(MuSquaredVariance()(np.array([3.0]))[0])
    9.0
    """

    name = "mu^2"

    def __call__(self, mu):
        mu = _arr(mu)
        return mu * mu

    def deriv(self, mu):
        return 2.0 * _arr(mu)

    def validmu(self, mu):
        mu = _arr(mu)
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))


class MuCubedVariance(VarianceFunction):
    """V(mu) = mu^3 (inverse Gaussian).

    >>> import numpy as np
    >>> float(MuCubedVariance()(np.array([2.0]))[0])
    8.0
    """

    name = "mu^3"

    def __call__(self, mu):
        return _arr(mu) ** 3

    def deriv(self, mu):
        return 3.0 * _arr(mu) ** 2

    def validmu(self, mu):
        mu = _arr(mu)
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))


class NegBinVariance(VarianceFunction):
    """V(mu) = mu + mu^2 / theta (NB2 with size theta).

    >>> import numpy as np
    >>> float(NegBinVariance(2.0)(np.array([2.0]))[0])
    4.0
    """

    name = "mu+mu^2/theta"

    def __init__(self, theta: float = 1.0) -> None:
        if not np.isfinite(theta) or theta <= 0:
            raise ValueError(f"theta must be positive and finite, got {theta!r}")
        self.theta = float(theta)

    def __call__(self, mu):
        mu = _arr(mu)
        return mu + mu * mu / self.theta

    def deriv(self, mu):
        return 1.0 + 2.0 * _arr(mu) / self.theta

    def validmu(self, mu):
        mu = _arr(mu)
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))

    def __repr__(self) -> str:
        return f"NegBinVariance(theta={self.theta!r})"


class PowerVariance(VarianceFunction):
    """V(mu) = mu^p (Tweedie-type quasi-likelihood; p = 1.5 between Poisson and Gamma).

    >>> import numpy as np
    >>> float(PowerVariance(1.5)(np.array([4.0]))[0])
    8.0
    """

    name = "mu^p"

    def __init__(self, p: float) -> None:
        if not np.isfinite(p):
            raise ValueError(f"power p must be finite, got {p!r}")
        self.p = float(p)

    def __call__(self, mu):
        return _arr(mu) ** self.p

    def deriv(self, mu):
        return self.p * _arr(mu) ** (self.p - 1.0)

    def validmu(self, mu):
        mu = _arr(mu)
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))

    def __repr__(self) -> str:
        return f"PowerVariance(p={self.p!r})"
