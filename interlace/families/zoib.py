"""Zero-one-inflated beta: proportions with exact 0s and 1s.

P(Y in {0, 1}) = zoi with logit(zoi) = X_zi @ gamma (``ziformula``); given an
exact 0 or 1, P(Y = 1) = coi (logit(coi) is the "coi" parameter, intercept
only); otherwise Y ~ Beta(mu phi, (1 - mu) phi) with logit(mu) = eta
(brms's zero_one_inflated_beta). glmmTMB 1.1.5 has no such family; the
likelihood is checked against numerical integration in the tests.
Fitted values are E[Y] = zoi coi + (1 - zoi) mu.

Example
-------
>>> ZeroOneInflatedBetaFamily().aux_blocks
('disp', 'zi', 'coi')
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.beta import beta_parts
from interlace.families.base import fitted_param
from interlace.families.likelihood import Derivs, LikelihoodFamily

__all__ = ["ZeroOneInflatedBetaFamily"]


class ZeroOneInflatedBetaFamily(LikelihoodFamily):
    """ZOIB with logit link; ``phi`` given -> held fixed.

    >>> ZeroOneInflatedBetaFamily(phi=3.0).params
    {'phi': 3.0}
    """

    name = "zoib"
    aux_blocks = ("disp", "zi", "coi")
    allowed_links = ("logit",)
    disp_meaning = "log(phi)"
    zero_model = None  # its "zi" block is the probability of 0 or 1, not a mixture with the mean's zeros
    deviance_residuals = False  # no unit deviance (glmmTMB has none either)

    def __init__(self, link: str = "logit", phi: float | None = None) -> None:
        super().__init__(link)
        self.hold_disp(phi, "phi")

    def start_eta(self, y):
        y = np.clip(np.asarray(y, dtype=float), 0.01, 0.99)
        return np.log(y / (1.0 - y))

    def derivs(self, y, wt, eta, aux, order=2):
        wt = np.asarray(wt, dtype=float)
        ends = (y == 0) | (y == 1)
        mid = ~ends
        z, c = aux["zi"], aux["coi"]
        yb = np.where(mid, y, 0.5)  # the beta part is only used inside (0, 1)
        P = beta_parts(yb, eta, aux["disp"], order)
        lz = np.where(ends, -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z))
        lc = np.where(y == 1, -np.logaddexp(0.0, -c), np.where(y == 0, -np.logaddexp(0.0, c), 0.0))
        out = Derivs(l=wt * (lz + lc + np.where(mid, P.g, 0.0)))
        if order == 0:
            return out
        m = lambda a: wt * np.where(mid, a, 0.0)  # noqa: E731
        out.e, out.ee = m(P.e), m(P.ee)
        if order == 1:
            return out
        out.eee = m(P.eee)
        zeros = np.zeros_like(z)
        out.aux["disp"] = (m(P.p), m(P.ep), m(P.eep))
        pz, pc = special.expit(z), special.expit(c)
        out.aux["zi"] = (wt * (ends - pz), zeros, zeros)
        out.aux["coi"] = (wt * np.where(ends, (y == 1) - pc, 0.0), zeros, zeros)
        return out

    def mean(self, eta, aux):
        zoi, coi = special.expit(aux["zi"]), special.expit(aux["coi"])
        return zoi * coi + (1.0 - zoi) * special.expit(eta)

    def pearson_variance(self, mu, aux):
        """The beta's bare variance function mu (1 - mu), as for ``beta``."""
        return mu * (1.0 - mu)

    def simulate(self, mu, wt, rng, params):
        """Beta(mu phi, (1 - mu) phi); with probability plogis(zi) an end point, 1 with plogis(coi)."""
        aux = params.get("aux") or {}
        phi = fitted_param(params, "phi", self.name)
        y = rng.beta(mu * phi, (1.0 - mu) * phi)
        ends = rng.uniform(size=mu.shape) < special.expit(aux["zi"])
        ones = rng.uniform(size=mu.shape) < special.expit(aux["coi"])
        return np.where(ends, ones.astype(float), y)

    def natural_params(self, coefs):
        out = {}
        if list(coefs.get("disp", {})) == ["Intercept"]:
            out["phi"] = float(np.exp(coefs["disp"]["Intercept"]))
        if list(coefs.get("zi", {})) == ["Intercept"]:
            out["zoi"] = float(special.expit(coefs["zi"]["Intercept"]))
        if "coi" in coefs:
            out["coi"] = float(special.expit(coefs["coi"]["Intercept"]))
        return out

    def validate_response(self, y, wt, column):
        y = np.asarray(y, dtype=float)
        if np.any(~np.isfinite(y)) or np.any(y < 0) or np.any(y > 1):
            raise ValueError(f"zoib response {column!r} must lie in [0, 1] "
                             f"({int(((y < 0) | (y > 1)).sum())} value(s) outside)")
