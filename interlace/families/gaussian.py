"""The Gaussian family (R's ``gaussian()``); the engine estimates sigma^2.

Example
-------
>>> import numpy as np
>>> fam = GaussianFamily()
>>> fam.fast_path, fam.estimates_scale
(('gaussian', 'identity'), True)
"""

from __future__ import annotations

import math

import numpy as np

from interlace.families.base import ExponentialFamily, gaussian_dev_resids
from interlace.families.links import IdentityLink, Link
from interlace.families.variance import ConstantVariance

__all__ = ["GaussianFamily"]


class GaussianFamily(ExponentialFamily):
    """Gaussian: V(mu) = 1, links identity (default), log, inverse or a custom Link.

    >>> GaussianFamily(link="log").canonical
    False
    """

    canonical_link = IdentityLink
    allowed_links = ("identity", "log", "inverse", "sqrt")
    _fast_links = ("identity",)
    kernel_code = 2
    normal_errors = True

    def observation_variance(self, sigma2, params, null_mu):
        """The residual variance (identity link)."""
        if self.link.name != "identity":
            return super().observation_variance(sigma2, params, null_mu)
        return float(sigma2)

    def __init__(self, link: str | Link = "identity") -> None:
        super().__init__(link=link, variance=ConstantVariance(), name="gaussian", estimates_scale=True)

    def dispersion_family(self):
        """Normal(mu, sigma^2) with log(sigma^2) estimated (any of the links above).

        >>> GaussianFamily(link="log").dispersion_family()
        GaussianDispFamily(link='log')
        """
        from interlace.families.gaussian_disp import GaussianDispFamily

        return GaussianDispFamily(link=self.link.name)

    def simulate(self, mu, wt, rng, params):
        """N(mu, sigma^2 / wt), sigma^2 the fitted residual variance (``scale``)."""
        disp = params.get("dispersion")
        var = disp if disp is not None else params.get("scale", 1.0)
        return mu + rng.standard_normal(mu.shape) * np.sqrt(np.asarray(var) / wt)

    @property
    def engine(self) -> str:
        """The identity link is the linear mixed model (profiled deviance)."""
        return "lmm" if self.link.name == "identity" else super().engine

    def dev_resids(self, y, mu, wt):
        return gaussian_dev_resids(y, mu, wt)

    def loglik(self, y, mu, wt, scale: float = 1.0):
        """log density of N(mu, scale / wt), lmer's weighted ML logLik per row.

        ``scale`` is the residual variance sigma^2. Rows with ``wt == 0``
        contribute 0.
        """
        y, mu, wt = (np.asarray(a, dtype=np.float64) for a in (y, mu, wt))
        pos = wt > 0
        safe = np.where(pos, wt, 1.0)
        r = y - mu
        ll = 0.5 * np.log(safe / (2.0 * math.pi * scale)) - 0.5 * safe * r * r / scale
        return np.where(pos, ll, 0.0)

    def glm_aic(self, y, mu, wt, dev):
        """R's ``gaussian()$aic``: n (log(2 pi dev / n) + 1) + 2 - sum(log(wt))."""
        wt = np.asarray(wt, dtype=np.float64)
        n = np.asarray(y).size
        return float(n * (math.log(2.0 * math.pi * dev / n) + 1.0) + 2.0 - np.sum(np.log(wt[wt > 0])))

    def initialize(self, y, wt):
        """y, R's gaussian ``mustart``."""
        return np.asarray(y, dtype=np.float64).copy()

    def validate_response(self, y, wt, column: str) -> None:
        """The response must be finite (and positive for the log/inverse links)."""
        y = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"response {column!r} has non-finite values")
        if self.link.name in ("log", "inverse", "sqrt") and np.any(y <= 0):
            # R: "cannot find valid starting values: please specify some"
            raise ValueError(
                f"response {column!r} must be positive for the gaussian family with "
                f"the {self.link.name} link (starting values mu = y)"
            )
