"""Gaussian with a dispersion model (glmmTMB's gaussian + dispformula).

phi_i = exp(X_d[i] @ delta) is the residual VARIANCE of row i (the API
document's convention; glmmTMB 1.1.5's raw dispersion coefficients model
log(sigma^2) too).

Example
-------
>>> GaussianDispFamily().disp_meaning
'log(sigma^2)'
"""

from __future__ import annotations

import numpy as np

from interlace.families.base import fitted_param
from interlace.families.likelihood import LikelihoodFamily, Parts, chain_parts

__all__ = ["GaussianDispFamily"]

_LOG_2PI = float(np.log(2.0 * np.pi))


class GaussianDispFamily(LikelihoodFamily):
    """Normal(mu, exp(disp)), mu = linkinv(eta): identity (default), log or inverse link
    (glmmTMB's ``gaussian(link = "log")``).

    >>> GaussianDispFamily().name
    'gaussian'
    """

    name = "gaussian"
    aux_blocks = ("disp",)
    allowed_links = ("identity", "log", "inverse", "sqrt")
    disp_meaning = "log(sigma^2)"
    normal_errors = True

    def observation_variance(self, sigma2, params, null_mu):
        """The residual variance (identity link)."""
        if self.link.name != "identity":
            return super().observation_variance(sigma2, params, null_mu)
        return float(sigma2)

    def aux_default(self, block, y=None):
        """log of the response variance: a scale-aware start for log(sigma^2)."""
        return 0.0 if y is None else float(np.log(max(np.var(np.asarray(y, float)), 1e-300)))

    def start_eta(self, y):
        y = np.asarray(y, dtype=float)
        if self.link.name in ("log", "sqrt", "inverse"):
            # those links need mu > 0: a non-positive response (a simulated one, say) starts
            # at a small positive value instead of a NaN
            floor = 1e-3 * max(float(np.mean(np.abs(y))), 1e-8)
            y = np.maximum(y, floor)
        return np.asarray(self.linkfun(y), dtype=float)

    def initialize(self, y, wt):
        return np.asarray(y, dtype=float)

    def parts(self, y, eta, lv, order) -> Parts:
        iv = np.exp(-lv)
        mu = eta if self.link.name == "identity" else self.linkinv(eta)
        r = y - mu
        g = -0.5 * (_LOG_2PI + lv + r * r * iv)
        if self.link.name == "identity":
            P = Parts(g=g)
            if order >= 1:
                P.e, P.ee = r * iv, -iv
            if order >= 2:
                P.eee = np.zeros_like(r)
                P.p = -0.5 + 0.5 * r * r * iv
                P.ep, P.eep = -r * iv, iv
            return P
        zero = np.zeros_like(r)
        return chain_parts(self.link, eta, g, (r * iv, -iv + zero, zero),
                           (-0.5 + 0.5 * r * r * iv, -r * iv, iv + zero), order)

    def variance(self, mu):
        return np.ones_like(np.asarray(mu, dtype=float))

    def dev_resids_at(self, y, mu, wt, aux):
        """R's unscaled unit deviance (lme4's and stats' convention), whatever the dispersion."""
        return self.dev_resids(y, mu, wt)

    def dev_resids(self, y, mu, wt):
        return np.asarray(wt, float) * (np.asarray(y, float) - np.asarray(mu, float)) ** 2

    def sigma_rows(self, aux):
        """glmmTMB's ``sigma()``: the residual standard deviation."""
        return np.exp(0.5 * np.asarray(aux["disp"], dtype=float))

    def simulate(self, mu, wt, rng, params):
        var = fitted_param(params, "sigma2", self.name)
        return mu + rng.standard_normal(mu.shape) * np.sqrt(var / wt)

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        if list(d) != ["Intercept"]:
            return {}
        return {"sigma2": float(np.exp(d["Intercept"])), "sigma": float(np.exp(0.5 * d["Intercept"]))}

    def validate_response(self, y, wt, column):
        if not np.all(np.isfinite(np.asarray(y, float))):
            raise ValueError(f"response {column!r} has non-finite values")
