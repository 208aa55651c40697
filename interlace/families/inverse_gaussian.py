"""The inverse Gaussian family (R's ``inverse.gaussian()``); scale is the dispersion.

Example
-------
>>> fam = InverseGaussianFamily()
>>> fam.link.name, fam.canonical
('1/mu^2', True)
"""

from __future__ import annotations

import math

import numpy as np

from interlace.families.base import ExponentialFamily, inverse_gaussian_dev_resids
from interlace.families.links import InverseSquaredLink, Link
from interlace.families.variance import MuCubedVariance

__all__ = ["InverseGaussianFamily"]


class InverseGaussianFamily(ExponentialFamily):
    """Inverse Gaussian: V(mu) = mu^3, links 1/mu^2 (default), inverse, identity, log."""

    canonical_link = InverseSquaredLink
    allowed_links = ("1/mu^2", "inverse", "identity", "log")

    def __init__(self, link: str | Link = "1/mu^2") -> None:
        super().__init__(
            link=link, variance=MuCubedVariance(), name="inverse_gaussian", estimates_scale=True
        )

    def dispersion_family(self):
        """The inverse Gaussian with phi estimated by ML (links log, 1/mu^2, inverse, identity).

        >>> InverseGaussianFamily(link="log").dispersion_family()
        InverseGaussianDispFamily(link='log')
        """
        from interlace.families.inverse_gaussian_disp import InverseGaussianDispFamily

        return InverseGaussianDispFamily(link=self.link.name)

    def simulate(self, mu, wt, rng, params):
        """IG(mu, lambda = wt / phi), phi the dispersion."""
        disp = params.get("dispersion")
        lam = 1.0 / (disp if disp is not None else params.get("scale", 1.0))
        return rng.wald(mu, np.broadcast_to(lam * wt, mu.shape))

    def dev_resids(self, y, mu, wt):
        return inverse_gaussian_dev_resids(y, mu, wt)

    def loglik(self, y, mu, wt, scale: float = 1.0):
        """wt * log density of IG(mu, lambda = 1/scale), as R's ``inverse.gaussian()$aic``."""
        y, mu, wt = (np.asarray(a, dtype=np.float64) for a in (y, mu, wt))
        ll = -0.5 * np.log(2.0 * math.pi * scale * y**3) - (y - mu) ** 2 / (2.0 * scale * mu * mu * y)
        return wt * ll

    def glm_aic(self, y, mu, wt, dev):
        """R's ``inverse.gaussian()$aic``: sum(wt) (1 + log(2 pi dev / sum(wt))) + 3 sum(wt log y) + 2."""
        y, wt = np.asarray(y, dtype=np.float64), np.asarray(wt, dtype=np.float64)
        sw = float(np.sum(wt))
        return float(sw * (1.0 + math.log(2.0 * math.pi * dev / sw)) + 3.0 * np.sum(np.log(y) * wt) + 2.0)

    def initialize(self, y, wt):
        """y, R's inverse.gaussian ``mustart``."""
        return np.asarray(y, dtype=np.float64).copy()

    def validate_response(self, y, wt, column: str) -> None:
        """Inverse Gaussian responses must be strictly positive."""
        y = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise ValueError(
                f"response {column!r} must be positive and finite for the inverse_gaussian family"
            )
