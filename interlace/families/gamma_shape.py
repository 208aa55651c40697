"""glmmTMB's Gamma: mean mu, shape estimated by maximum likelihood.

glmmTMB 1.1.5 models log(shape) with the dispersion coefficients (sigma(m)
= 1 / sqrt(shape) is the coefficient of variation). Links: log, inverse, identity.
``glmer(family="gamma")`` (the exponential-family ``GammaFamily``) runs on
this likelihood, so the shape is estimated jointly.

Example
-------
>>> GammaShapeFamily(link="inverse").link.name
'inverse'
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.base import fitted_param
from interlace.families.likelihood import LikelihoodFamily, Parts, chain_parts, check_positive

__all__ = ["GammaShapeFamily"]


class GammaShapeFamily(LikelihoodFamily):
    """Gamma(shape a, scale mu / a); ``shape`` given -> held fixed.

    >>> GammaShapeFamily(shape=2.0).params
    {'shape': 2.0}
    """

    name = "gamma"
    aux_blocks = ("disp",)
    allowed_links = ("log", "inverse", "identity")
    disp_meaning = "log(shape)"
    scale_equivariant = True

    def observation_variance(self, sigma2, params, null_mu):
        """1 / shape, the squared coefficient of variation (log link)."""
        if self.link.name != "log" or "shape" not in params:
            return super().observation_variance(sigma2, params, null_mu)
        return 1.0 / float(params["shape"])

    def __init__(self, link: str = "log", shape: float | None = None) -> None:
        super().__init__(link)
        self.hold_disp(shape, "shape")

    def start_eta(self, y):
        return np.asarray(self.linkfun(np.asarray(y, dtype=float)), dtype=float)

    def parts(self, y, eta, la, order) -> Parts:
        # log f = a log a - a log mu + (a - 1) log y - a y / mu - lgamma(a)
        a = np.exp(la)
        if self.link.name not in ("log", "inverse"):
            return self._parts_mean(y, eta, la, a, order)
        ly = np.log(y)
        if self.link.name == "log":
            ymu = y * np.exp(-np.minimum(eta, 700.0))  # y / mu
            lmu = eta
            ge, gee, geee = a * (ymu - 1.0), -a * ymu, a * ymu
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                lmu = np.where(eta > 0, -np.log(np.where(eta > 0, eta, 1.0)), np.inf)
            ymu = y * eta
            ge, gee, geee = a / eta - a * y, -a / eta ** 2, 2.0 * a / eta ** 3
        g = a * la - a * lmu + (a - 1.0) * ly - a * ymu - special.gammaln(a)
        if self.link.name == "inverse":
            g = np.where(eta > 0, g, -np.inf)
        P = Parts(g=g)
        if order >= 1:
            P.e, P.ee = ge, gee
        if order >= 2:
            P.eee = geee
            P.p = a * (la + 1.0 - lmu + ly - ymu - special.digamma(a))
            P.ep, P.eep = ge, gee
        return P

    def _parts_mean(self, y, eta, la, a, order) -> Parts:
        """Any other link: derivatives in mu and the chain rule (mu <= 0 is outside the support)."""
        mu = self.linkinv(eta)
        ok = np.isfinite(mu) & (mu > 0)
        mu = np.where(ok, mu, 1.0)
        ly = np.log(y)
        lmu = np.log(mu)
        ym = y / mu
        g = np.where(ok, a * la - a * lmu + (a - 1.0) * ly - a * ym - special.gammaln(a), -np.inf)
        if order < 1:
            return Parts(g=g)
        im = 1.0 / mu
        gm = (a * im * (ym - 1.0), a * im * im * (1.0 - 2.0 * ym), a * im ** 3 * (6.0 * ym - 2.0))
        gp = (a * (la + 1.0 - lmu + ly - ym - special.digamma(a)), gm[0], gm[1]) if order >= 2 else None
        return chain_parts(self.link, eta, g, gm, gp, order)

    def variance(self, mu):
        a = self.params.get("shape", float(np.exp(self._aux_values()["disp"])))
        return np.asarray(mu, dtype=float) ** 2 / a

    def dev_resids_at(self, y, mu, wt, aux):
        """R's unscaled unit deviance (lme4's and stats' convention), whatever the dispersion."""
        return self.dev_resids(y, mu, wt)

    def dev_resids(self, y, mu, wt):
        """R's ``Gamma()$dev.resids`` (the unit deviance, not scaled by the shape)."""
        from interlace.families.base import gamma_dev_resids

        return gamma_dev_resids(y, mu, wt)

    def pearson_variance(self, mu, aux):
        """glmmTMB 1.1.5: Gamma's bare variance function mu^2 (no shape)."""
        return mu * mu

    def sigma_rows(self, aux):
        """glmmTMB's ``sigma()`` for the Gamma: the coefficient of variation 1/sqrt(shape)."""
        return np.exp(-0.5 * np.asarray(aux["disp"], dtype=float))

    def simulate(self, mu, wt, rng, params):
        shape = np.broadcast_to(fitted_param(params, "shape", self.name), mu.shape)
        return rng.gamma(shape, mu / shape)

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        if list(d) != ["Intercept"]:
            return {}
        a = float(np.exp(d["Intercept"]))
        return {"shape": a, "sigma": 1.0 / np.sqrt(a)}

    def validate_response(self, y, wt, column):
        check_positive(y, column, "gamma")
