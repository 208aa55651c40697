"""glmmTMB's ``genpois``: Consul and Famoye's generalized Poisson, Var(Y) = phi mu.

Mean mu = exp(eta). In Consul's (theta, lambda) form theta = mu / sqrt(phi),
lambda = 1 - 1 / sqrt(phi) (glmmTMB's parametrization; ``sigma()`` is phi):

    log f = log(theta) + (y - 1) log(theta + lambda y) - theta - lambda y - lgamma(y + 1).

log(phi) is estimated (or modelled by ``dispformula``) on the general-likelihood
engine (it was the example plugin interlace-genpois before it moved into the core).

Example
-------
>>> import numpy as np
>>> fam = GeneralizedPoissonFamily()
>>> y = np.arange(0.0, 300.0)
>>> p = np.exp(fam.parts(y, np.full_like(y, np.log(3.0)), np.full_like(y, np.log(2.0)), 0).g)
>>> round(float(p.sum()), 10), round(float((y * p).sum()), 8)
(1.0, 3.0)
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.base import apply_zprob, fitted_param
from interlace.families.likelihood import LikelihoodFamily, Parts, check_counts

__all__ = ["GeneralizedPoissonFamily", "genpois_parts"]


def genpois_parts(y: np.ndarray, eta: np.ndarray, lphi: np.ndarray, order: int) -> Parts:
    """Log density and its derivatives in eta and p = log(phi) (log link).

    With s = phi^(-1/2), theta = mu s and T = theta + (1 - s) y: dlog T/deta = r = theta / T,
    ds/dp = -s/2, dT/dp = -(theta - y s)/2."""
    y = np.asarray(y, dtype=float)
    s = np.exp(-0.5 * lphi)
    ms = np.exp(eta) * s  # theta
    T = ms + y * (1.0 - s)
    ok = T > 0
    Ts = np.where(ok, T, 1.0)
    g = np.where(ok, np.log(ms) + (y - 1.0) * np.log(Ts) - ms - (1.0 - s) * y - special.gammaln(y + 1.0), -np.inf)
    P = Parts(g=g)
    if order < 1:
        return P
    r = ms / Ts
    rr = r * (1.0 - r)
    P.e = 1.0 + (y - 1.0) * r - ms
    P.ee = (y - 1.0) * rr - ms
    if order < 2:
        return P
    P.eee = (y - 1.0) * rr * (1.0 - 2.0 * r) - ms
    w = y / Ts
    P.p = -0.5 - (y - 1.0) * (ms - y * s) / (2.0 * Ts) + 0.5 * ms - 0.5 * y * s
    P.ep = -0.5 * (y - 1.0) * r * w + 0.5 * ms
    P.eep = -0.5 * (y - 1.0) * (1.0 - 2.0 * r) * r * w + 0.5 * ms
    return P


class GeneralizedPoissonFamily(LikelihoodFamily):
    """Generalized Poisson with log link; ``phi`` given -> held fixed.

    >>> GeneralizedPoissonFamily(phi=2.0).params
    {'phi': 2.0}
    """

    name = "genpois"
    aux_blocks = ("disp",)
    response_scale_name = "rate"  # emmeans calls the log-link count mean a rate
    disp_meaning = "log(phi)"

    def __init__(self, link: str = "log", phi: float | None = None) -> None:
        super().__init__(link)
        self.hold_disp(phi, "phi")

    def parts(self, y, eta, lphi, order) -> Parts:
        return genpois_parts(y, eta, lphi, order)

    def mean(self, eta, aux):
        return np.exp(eta)

    def variance(self, mu):
        ph = self.params.get("phi", float(np.exp(self._aux_values()["disp"])))
        return ph * np.asarray(mu, dtype=float)

    def pearson_variance(self, mu, aux):
        """glmmTMB's genpois variance phi mu at the fitted (per-row) phi."""
        return np.asarray(mu, dtype=float) * np.exp(aux["disp"]) if "disp" in aux else self.variance(mu)

    def simulate(self, mu, wt, rng, params):
        """Draws by inversion of the cumulative probabilities (summed in log space up to
        mean + 30 SD; glmmTMB's rgenpois is the same distribution)."""
        mu = np.asarray(mu, dtype=float)
        phi = np.broadcast_to(fitted_param(params, "phi", self.name), mu.shape)
        flat_mu, flat_phi = mu.reshape(-1), np.ascontiguousarray(phi).reshape(-1)
        top = int(np.ceil(np.max(flat_mu + 30.0 * np.sqrt(flat_phi * flat_mu) + 30.0)))
        ys = np.arange(top + 1, dtype=float)
        u = rng.uniform(size=flat_mu.shape)
        out = np.empty_like(flat_mu)
        for i in range(flat_mu.size):  # per row: the support's cut depends on (mu, phi)
            lp = genpois_parts(ys, np.full(ys.shape, np.log(flat_mu[i])), np.full(ys.shape, np.log(flat_phi[i])),
                               0).g
            cdf = np.cumsum(np.exp(lp))
            out[i] = float(min(np.searchsorted(cdf, u[i] * cdf[-1]), top))
        return apply_zprob(out.reshape(mu.shape), params, rng)

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        return {"phi": float(np.exp(d["Intercept"]))} if list(d) == ["Intercept"] else {}

    def validate_response(self, y, wt, column):
        check_counts(y, column, "genpois")
