"""interlace-cauchit: the binomial family with the cauchit link, as an interlace plugin.

The link is written here in plain NumPy (no numba): interlace runs any family
without a fast path on its generic NumPy path. The family is registered under
the name ``"binomial_cauchit"`` through interlace's ``interlace.families``
entry point, so after ``pip install interlace-cauchit``::

    >>> import interlace                                   # doctest: +SKIP
    >>> interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                 interlace.datasets.load("cbpp"),
    ...                 family="binomial_cauchit")         # doctest: +SKIP

The cauchit link is the quantile function of the standard Cauchy
distribution: eta = tan(pi (mu - 1/2)), mu = 1/2 + atan(eta) / pi. Its heavy
tails make it robust to a few "surprising" successes or failures.
"""

from __future__ import annotations

import math

import numpy as np

from interlace.families import BinomialFamily, Link
from interlace.plugins import hookimpl

__all__ = ["CauchitLink", "binomial_cauchit", "interlace_register_families"]
__version__ = "0.1.0"

_EPS = float(np.finfo(np.float64).eps)
# R's make.link("cauchit") clamps eta at -qcauchy(eps), so mu stays in (0, 1).
_THRESH = -math.tan(math.pi * (_EPS - 0.5))


class CauchitLink(Link):
    """The cauchit link, clamped as R's ``make.link("cauchit")``.

    >>> import numpy as np
    >>> float(CauchitLink().linkinv(np.array([1.0]))[0])
    0.75
    """

    name = "cauchit"

    def link(self, mu):
        return np.tan(np.pi * (np.asarray(mu, dtype=np.float64) - 0.5))

    def linkinv(self, eta):
        eta = np.clip(np.asarray(eta, dtype=np.float64), -_THRESH, _THRESH)
        return np.clip(0.5 + np.arctan(eta) / np.pi, _EPS, 1.0 - _EPS)

    def mu_eta(self, eta):
        eta = np.asarray(eta, dtype=np.float64)
        return np.maximum(1.0 / (np.pi * (1.0 + eta * eta)), _EPS)

    def d2mu_deta2(self, eta):
        # Exact second derivative: lets interlace form exact Hessians.
        eta = np.asarray(eta, dtype=np.float64)
        return -2.0 * eta / (np.pi * (1.0 + eta * eta) ** 2)


def binomial_cauchit() -> BinomialFamily:
    """The binomial family with this package's cauchit link.

    >>> binomial_cauchit().link.name
    'cauchit'
    """
    return BinomialFamily(link=CauchitLink())


@hookimpl
def interlace_register_families(registry) -> None:
    """interlace calls this once, the first time it looks a family up by name."""
    registry.add("binomial_cauchit", binomial_cauchit, aliases=("binomial-cauchit",))
