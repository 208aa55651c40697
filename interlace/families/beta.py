"""glmmTMB's ``beta_family``: Y ~ Beta(mu phi, (1 - mu) phi), logit link.

Var(Y) = mu (1 - mu) / (1 + phi); log(phi) is estimated (or modelled by
``dispformula``). Also the continuous part of :mod:`zoib`.

Example
-------
>>> BetaFamily().link.name
'logit'
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.base import fitted_param
from interlace.families.likelihood import LikelihoodFamily, Parts, check_open_unit

__all__ = ["BetaFamily", "beta_parts"]


def beta_parts(y, eta, lphi, order) -> Parts:
    """Beta log density in (eta = logit mu, log phi) with derivatives.

    With v = mu (1 - mu), a = mu phi, b = (1 - mu) phi, R = logit(y) -
    (psi(a) - psi(b)): dl/deta = phi v R."""
    phi = np.exp(lphi)
    mu = special.expit(eta)
    a, b = mu * phi, (1.0 - mu) * phi
    ly, l1y = np.log(y), np.log1p(-y)
    g = (special.gammaln(phi) - special.gammaln(a) - special.gammaln(b)
         + (a - 1.0) * ly + (b - 1.0) * l1y)
    P = Parts(g=g)
    if order >= 1:
        v = mu * (1.0 - mu)
        v1 = v * (1.0 - 2.0 * mu)
        R = (ly - l1y) - (special.digamma(a) - special.digamma(b))
        S1 = special.polygamma(1, a) + special.polygamma(1, b)
        P.e = phi * v * R
        P.ee = phi * v1 * R - phi * phi * v * v * S1
        if order >= 2:
            v2 = v * (1.0 - 2.0 * mu) ** 2 - 2.0 * v * v
            pa, pb = special.polygamma(2, a), special.polygamma(2, b)
            S2 = pa - pb
            dmu = a * special.polygamma(1, a) - b * special.polygamma(1, b)  # d(psi(a) - psi(b))/dlog phi
            P.eee = phi * v2 * R - 3.0 * phi * phi * v * v1 * S1 - phi ** 3 * v ** 3 * S2
            P.p = phi * (special.digamma(phi) - mu * special.digamma(a) - (1.0 - mu) * special.digamma(b)
                         + mu * ly + (1.0 - mu) * l1y)
            P.ep = phi * v * (R - dmu)
            P.eep = phi * v1 * (R - dmu) - phi * phi * v * v * (2.0 * S1 + a * pa + b * pb)
    return P


class BetaFamily(LikelihoodFamily):
    """Beta regression with precision phi (``phi`` given -> held fixed).

    >>> BetaFamily(phi=5.0).params
    {'phi': 5.0}
    """

    name = "beta"
    aux_blocks = ("disp",)
    allowed_links = ("logit",)
    disp_meaning = "log(phi)"

    def observation_variance(self, sigma2, params, null_mu):
        """log(1 + mu0 (1 - mu0) / (1 + phi) / mu0^2)."""
        if "phi" not in params:
            return super().observation_variance(sigma2, params, null_mu)
        mu = null_mu()
        return float(np.log1p(mu * (1.0 - mu) / (1.0 + float(params["phi"])) / mu ** 2))

    def __init__(self, link: str = "logit", phi: float | None = None) -> None:
        super().__init__(link)
        self.hold_disp(phi, "phi")

    def start_eta(self, y):
        y = np.clip(np.asarray(y, dtype=float), 0.01, 0.99)
        return np.log(y / (1.0 - y))

    def initialize(self, y, wt):
        return np.clip(np.asarray(y, dtype=float), 0.01, 0.99)

    def parts(self, y, eta, lphi, order) -> Parts:
        return beta_parts(y, eta, lphi, order)

    def variance(self, mu):
        ph = self.params.get("phi", float(np.exp(self._aux_values()["disp"])))
        mu = np.asarray(mu, dtype=float)
        return mu * (1.0 - mu) / (1.0 + ph)

    def dev_resids(self, y, mu, wt):
        from interlace.families.base import binomial_dev_resids

        return binomial_dev_resids(y, mu, wt)

    def pearson_variance(self, mu, aux):
        """glmmTMB 1.1.5: the beta's bare variance function mu (1 - mu) (no phi)."""
        return mu * (1.0 - mu)

    def simulate(self, mu, wt, rng, params):
        phi = fitted_param(params, "phi", self.name)
        return rng.beta(mu * phi, (1.0 - mu) * phi)

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        return {"phi": float(np.exp(d["Intercept"]))} if list(d) == ["Intercept"] else {}

    def validate_response(self, y, wt, column):
        check_open_unit(y, column, "beta")
