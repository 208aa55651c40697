"""interlace-genpois: glmmTMB's generalized Poisson (``genpois``) as an interlace plugin.

Consul & Famoye's generalized Poisson with mean mu = exp(eta) and Var(Y) =
phi mu. In Consul's (theta, lambda) form theta = mu / sqrt(phi), lambda =
1 - 1 / sqrt(phi):

    log f = log(theta) + (y - 1) log(theta + lambda y) - theta - lambda y - lgamma(y + 1).

log(phi) is estimated (or modelled by ``dispformula``) on interlace's
general-likelihood Laplace engine (glmmTMB's model).

    >>> import interlace                                                   # doctest: +SKIP
    >>> m = interlace.glmer("SiblingNegotiation ~ FoodTreatment + (1 | Nest)",
    ...                     interlace.datasets.load("owls"), family="genpois",
    ...                     offset="log(BroodSize)")                       # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.likelihood import Derivs, LikelihoodFamily, as_fixed, check_counts
from interlace.plugins import hookimpl

__all__ = ["GeneralizedPoissonFamily", "interlace_register_families"]
__version__ = "0.1.0"


class GeneralizedPoissonFamily(LikelihoodFamily):
    """Generalized Poisson with log link; ``phi`` given -> held fixed.

    >>> GeneralizedPoissonFamily(phi=2.0).params
    {'phi': 2.0}
    """

    name = "genpois"
    aux_blocks = ("disp",)
    disp_meaning = "log(phi)"

    def __init__(self, link: str = "log", phi: float | None = None) -> None:
        super().__init__(link)
        ph = as_fixed(phi, "phi")
        if ph is not None:
            self.fixed_aux["disp"] = float(np.log(ph))
            self.params["phi"] = ph

    def derivs(self, y, wt, eta, aux, order=2):
        wt = np.asarray(wt, dtype=float)
        y = np.asarray(y, dtype=float)
        s = np.exp(-0.5 * aux["disp"])  # 1 / sqrt(phi)
        ms = np.exp(eta) * s  # theta
        T = ms + y * (1.0 - s)  # theta + lambda y
        ok = T > 0
        Ts = np.where(ok, T, 1.0)
        g = np.where(ok, np.log(ms) + (y - 1.0) * np.log(Ts) - ms - (1.0 - s) * y - special.gammaln(y + 1.0),
                     -np.inf)
        out = Derivs(l=wt * g)
        if order == 0:
            return out
        r = ms / Ts  # d log T / d eta
        rr = r * (1.0 - r)
        out.e = wt * (1.0 + (y - 1.0) * r - ms)
        out.ee = wt * ((y - 1.0) * rr - ms)
        if order == 1:
            return out
        out.eee = wt * ((y - 1.0) * rr * (1.0 - 2.0 * r) - ms)
        w = y / Ts  # with ds/dlog(phi) = -s/2: dT/dlog(phi) = -(mu - y) s / 2 and dr/dlog(phi) = -r w / 2
        lp = -0.5 - (y - 1.0) * (ms - y * s) / (2.0 * Ts) + 0.5 * ms - 0.5 * y * s
        lep = -0.5 * (y - 1.0) * r * w + 0.5 * ms
        leep = -0.5 * (y - 1.0) * (1.0 - 2.0 * r) * r * w + 0.5 * ms
        out.aux["disp"] = (wt * lp, wt * lep, wt * leep)
        return out

    def mean(self, eta, aux):
        return np.exp(eta)

    def variance(self, mu):
        ph = self.params.get("phi", 1.0)
        return ph * np.asarray(mu, dtype=float)

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        return {"phi": float(np.exp(d["Intercept"]))} if list(d) == ["Intercept"] else {}

    def validate_response(self, y, wt, column):
        check_counts(y, column, "genpois")


@hookimpl
def interlace_register_families(registry) -> None:
    """Register ``"genpois"``."""
    registry.add("genpois", GeneralizedPoissonFamily)
