"""The Gamma family (R's ``Gamma()``), an exponential family with dispersion phi.

``scale`` is phi = 1 / shape. (Issue 13 adds glmmTMB's Gamma with the shape
estimated by maximum likelihood on the general-likelihood engine.)

Example
-------
>>> fam = GammaFamily(link="log")
>>> fam.link.name, fam.canonical, fam.fast_path
('log', False, None)
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.base import ExponentialFamily, gamma_dev_resids
from interlace.families.links import InverseLink, Link
from interlace.families.variance import MuSquaredVariance

__all__ = ["GammaFamily"]


class GammaFamily(ExponentialFamily):
    """Gamma: V(mu) = mu^2, links inverse (default), log, identity or a custom Link.

    >>> GammaFamily().canonical
    True
    """

    canonical_link = InverseLink
    allowed_links = ("inverse", "log", "identity")
    scale_equivariant = True  # y / c is Gamma with the same shape

    def __init__(self, link: str | Link = "inverse") -> None:
        super().__init__(link=link, variance=MuSquaredVariance(), name="gamma", estimates_scale=True)

    def dispersion_family(self):
        """glmmTMB's Gamma: the shape estimated by ML (links log, inverse, identity).

        >>> GammaFamily(link="log").dispersion_family()
        GammaShapeFamily(link='log')
        """
        from interlace.families.gamma_shape import GammaShapeFamily

        if self.link.name not in GammaShapeFamily.allowed_links:
            raise ValueError(f"the gamma family supports the links {', '.join(GammaShapeFamily.allowed_links)}, "
                             f"not {self.link.name!r}")
        return GammaShapeFamily(link=self.link.name)

    def simulate(self, mu, wt, rng, params):
        """Gamma with shape 1 / phi, phi the GLM dispersion ``scale``."""
        shape = np.broadcast_to(1.0 / np.asarray(params.get("scale", 1.0), dtype=float), mu.shape)
        return rng.gamma(shape, mu / shape)

    def dev_resids(self, y, mu, wt):
        return gamma_dev_resids(y, mu, wt)

    def loglik(self, y, mu, wt, scale: float = 1.0):
        """wt * log dgamma(y, shape = 1/scale, scale = mu * scale), as R's ``Gamma()$aic``."""
        y, mu, wt = (np.asarray(a, dtype=np.float64) for a in (y, mu, wt))
        shape = 1.0 / scale
        s = mu * scale
        ll = (shape - 1.0) * np.log(y) - y / s - shape * np.log(s) - special.gammaln(shape)
        return wt * ll

    def glm_aic(self, y, mu, wt, dev):
        """R's ``Gamma()$aic``: -2 sum(wt log dgamma) at dispersion dev / sum(wt), + 2."""
        disp = dev / float(np.sum(wt))
        return -2.0 * float(np.sum(self.loglik(y, mu, wt, disp))) + 2.0

    def initialize(self, y, wt):
        """y, R's Gamma ``mustart``."""
        return np.asarray(y, dtype=np.float64).copy()

    def validate_response(self, y, wt, column: str) -> None:
        """Gamma responses must be strictly positive."""
        y = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"response {column!r} has non-finite values")
        if np.any(y <= 0):
            raise ValueError(f"gamma response {column!r} must be positive "
                             f"({int((y <= 0).sum())} value(s) <= 0)")
