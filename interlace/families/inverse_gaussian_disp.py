"""Inverse Gaussian with its dispersion estimated (the general-likelihood engine).

Var(Y) = phi mu^3 and log(phi) is the "disp" coefficient (a scalar, or a
``dispformula`` model). ``glmer(family="inverse_gaussian")`` runs on this
likelihood, so phi is estimated jointly with the other parameters by the
Laplace approximation, as glmmTMB estimates a Gamma shape; sigma = sqrt(phi)
is what lme4's ``sigma()`` reports for an inverse Gaussian ``glmer``.

Example
-------
>>> InverseGaussianDispFamily(link="log").disp_meaning
'log(phi)'
"""

from __future__ import annotations

import numpy as np

from interlace.families.base import fitted_param
from interlace.families.likelihood import LikelihoodFamily, Parts, chain_parts, check_positive

__all__ = ["InverseGaussianDispFamily"]

_LOG_2PI = float(np.log(2.0 * np.pi))


class InverseGaussianDispFamily(LikelihoodFamily):
    """IG(mu, phi): log f = -(log(2 pi phi y^3) + (y - mu)^2 / (phi mu^2 y)) / 2.

    >>> import numpy as np
    >>> fam = InverseGaussianDispFamily(link="log")
    >>> P = fam.parts(np.array([2.0]), np.log(np.array([2.0])), np.zeros(1), 0)
    >>> round(float(P.g[0]), 6) == round(-0.5 * float(np.log(2 * np.pi * 8)), 6)
    True
    """

    name = "inverse_gaussian"
    aux_blocks = ("disp",)
    allowed_links = ("log", "1/mu^2", "inverse", "identity")
    disp_meaning = "log(phi)"

    def aux_default(self, block, y=None):
        """log of the moment estimate var(y) / mean(y)^3: a scale-aware start for log(phi)."""
        if y is None:
            return 0.0
        y = np.asarray(y, dtype=float)
        return float(np.log(max(np.var(y) / max(np.mean(y), 1e-300) ** 3, 1e-300)))

    def start_eta(self, y):
        return np.asarray(self.linkfun(np.asarray(y, dtype=float)), dtype=float)

    def initialize(self, y, wt):
        return np.asarray(y, dtype=float)

    def parts(self, y, eta, lphi, order) -> Parts:
        # Q = (y - mu)^2 / (mu^2 y) = y / mu^2 - 2 / mu + 1 / y; g = -(log 2pi + p + 3 log y + Q e^-p) / 2
        mu = self.linkinv(eta)
        ok = np.isfinite(mu) & (mu > 0)
        mu = np.where(ok, mu, 1.0)
        psi = np.exp(-lphi)
        im = 1.0 / mu
        q = y * im * im - 2.0 * im + 1.0 / y
        g = np.where(ok, -0.5 * (_LOG_2PI + lphi + 3.0 * np.log(y) + psi * q), -np.inf)
        if order < 1:
            return Parts(g=g)
        q1 = -2.0 * y * im ** 3 + 2.0 * im * im
        q2 = 6.0 * y * im ** 4 - 4.0 * im ** 3
        q3 = -24.0 * y * im ** 5 + 12.0 * im ** 4
        gm = (-0.5 * psi * q1, -0.5 * psi * q2, -0.5 * psi * q3)
        gp = (-0.5 + 0.5 * psi * q, 0.5 * psi * q1, 0.5 * psi * q2)
        return chain_parts(self.link, eta, g, gm, gp, order)

    def variance(self, mu):
        """phi mu^3 at the fitted (or fixed) phi."""
        phi = self.params.get("phi", float(np.exp(self._aux_values()["disp"])))
        return phi * np.asarray(mu, dtype=float) ** 3

    def dev_resids_at(self, y, mu, wt, aux):
        """R's unscaled unit deviance (lme4's and stats' convention), whatever the dispersion."""
        return self.dev_resids(y, mu, wt)

    def dev_resids(self, y, mu, wt):
        """R's ``inverse.gaussian()$dev.resids``: wt (y - mu)^2 / (y mu^2)."""
        y, mu, wt = (np.asarray(a, dtype=float) for a in (y, mu, wt))
        return wt * (y - mu) ** 2 / (y * mu * mu)

    def pearson_variance(self, mu, aux):
        """lme4's convention for the inverse Gaussian: V(mu) = mu^3 without phi."""
        return np.asarray(mu, dtype=float) ** 3

    def simulate(self, mu, wt, rng, params):
        lam = 1.0 / fitted_param(params, "phi", self.name)
        return rng.wald(mu, np.broadcast_to(lam * wt, mu.shape))

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        if list(d) != ["Intercept"]:
            return {}
        return {"phi": float(np.exp(d["Intercept"])), "sigma": float(np.exp(0.5 * d["Intercept"]))}

    def validate_response(self, y, wt, column):
        check_positive(y, column, "inverse_gaussian")
