"""The Poisson family (R's ``poisson()``).

Example
-------
>>> import numpy as np
>>> fam = PoissonFamily()
>>> fam.fast_path
('poisson', 'log')
>>> float(fam.initialize(np.array([0.0]), np.ones(1))[0])
0.1
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import special

from interlace.families.base import ExponentialFamily, poisson_dev_resids
from interlace.families.links import Link, LogLink
from interlace.families.variance import MuVariance

__all__ = ["PoissonFamily"]


class PoissonFamily(ExponentialFamily):
    """Poisson: V(mu) = mu, links log (default), identity, sqrt or a custom Link.

    >>> PoissonFamily(link="sqrt").fast_path is None
    True
    """

    canonical_link = LogLink
    allowed_links = ("log", "identity", "sqrt")
    _fast_links = ("log",)
    kernel_code = 1
    response_scale_name = "rate"

    def zero_inflated_family(self):
        """glmmTMB's poisson + ziformula: the zero-inflated Poisson (log link; other
        links take the generic zero inflation of the density)."""
        if self.link.name != "log":
            return None
        from interlace.families.zip import ZeroInflatedPoissonFamily

        return ZeroInflatedPoissonFamily()

    def observation_variance(self, sigma2, params, null_mu):
        """log(1 + 1 / mu0) for the log link (insight's lognormal approximation)."""
        if self.link.name != "log":
            return super().observation_variance(sigma2, params, null_mu)
        return float(np.log1p(1.0 / null_mu()))

    def __init__(self, link: str | Link = "log") -> None:
        super().__init__(link=link, variance=MuVariance(), name="poisson")

    def likelihood_family(self):
        """The Poisson log-likelihood (log link) as a general-engine family (the base
        that ``ziformula`` zero-inflates).

        >>> PoissonFamily().likelihood_family().name
        'poisson'
        """
        from interlace.families.zi import PoissonLikelihood

        if self.link.name != "log":
            raise ValueError(f"ziformula with the poisson family needs the log link, not {self.link.name!r}")
        return PoissonLikelihood()

    def simulate(self, mu, wt, rng, params):
        return rng.poisson(mu).astype(float)

    def aggregate_rows(self, y, wt, inverse, k):
        """Rows sharing a mean summed into one Poisson row (interlace/collapse.py): with
        the log link the sum of m counts is Poisson with mean m mu (log m joins the
        offset) and the log-likelihood changes by a constant. (y, weights, offset
        shift), or None for another link, prior weights or non-integer counts.

        >>> PoissonFamily().aggregate_rows(np.array([1.0, 3.0, 2.0]), np.ones(3), np.array([0, 0, 1]), 2)[2]
        array([0.69314718, 0.        ])
        """
        y, wt = np.asarray(y, dtype=np.float64), np.asarray(wt, dtype=np.float64)
        if self.link.name != "log" or not np.all(wt == 1.0) or not np.array_equal(y, np.rint(y)):
            return None
        m = np.bincount(inverse, minlength=k).astype(np.float64)
        return np.bincount(inverse, weights=y, minlength=k), np.ones(k), np.log(m)

    def dev_resids(self, y, mu, wt):
        return poisson_dev_resids(y, mu, wt)

    def loglik(self, y, mu, wt, scale: float = 1.0):
        """wt * log dpois(y, mu), as R's ``poisson()$aic`` weights it.

        Non-integer y use lgamma(y + 1) (R's dpois would give -Inf).
        """
        y, mu, wt = (np.asarray(a, dtype=np.float64) for a in (y, mu, wt))
        return wt * (special.xlogy(y, mu) - mu - special.gammaln(y + 1.0))

    def initialize(self, y, wt):
        """y + 0.1, R's poisson ``mustart``."""
        return np.asarray(y, dtype=np.float64) + 0.1

    def validate_response(self, y, wt, column: str) -> None:
        """Counts must be finite and >= 0; non-integer counts warn."""
        y = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"response {column!r} has non-finite values")
        if np.any(y < 0):
            raise ValueError(f"poisson response {column!r} has negative counts "
                             f"({int((y < 0).sum())} value(s) < 0)")
        if np.any(y != np.rint(y)):
            warnings.warn(
                f"non-integer counts in response {column!r} for the poisson family",
                UserWarning,
                stacklevel=3,
            )
