"""glmmTMB's ``nbinom1``: negative binomial with Var(Y) = mu (1 + phi).

The density is dnbinom(y, mu = mu, size = mu / phi); log(phi) is estimated
(or modelled by ``dispformula``).

Example
-------
>>> NegativeBinomial1Family().disp_meaning
'log(phi)'
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.base import fitted_param
from interlace.families.likelihood import LikelihoodFamily, Parts

__all__ = ["NegativeBinomial1Family"]


class NegativeBinomial1Family(LikelihoodFamily):
    """NB1 with log link; ``phi`` given -> held fixed.

    >>> NegativeBinomial1Family(phi=2.0).params
    {'phi': 2.0}
    """

    name = "nbinom1"
    aux_blocks = ("disp",)
    disp_meaning = "log(phi)"
    response_scale_name = "rate"

    def observation_variance(self, sigma2, params, null_mu):
        """log(1 + (1 + phi) / mu0)."""
        if "phi" not in params:
            return super().observation_variance(sigma2, params, null_mu)
        return float(np.log1p((1.0 + float(params["phi"])) / null_mu()))

    def __init__(self, phi: float | None = None, link: str = "log") -> None:
        super().__init__(link)
        self.hold_disp(phi, "phi")

    def parts(self, y, eta, lphi, order) -> Parts:
        # k = mu / phi is the NB size; log f = lgamma(y + k) - lgamma(k) - lgamma(y + 1)
        #   - k log(1 + phi) + y (log phi - log(1 + phi)).
        k = np.exp(eta - lphi)
        l1p = np.logaddexp(0.0, lphi)  # log(1 + phi)
        g = (special.gammaln(y + k) - special.gammaln(k) - special.gammaln(y + 1.0)
             - k * l1p + y * (lphi - l1p))
        P = Parts(g=g)
        if order >= 1:
            T0 = special.digamma(y + k) - special.digamma(k) - l1p
            T1 = special.polygamma(1, y + k) - special.polygamma(1, k)
            P.e = k * T0
            P.ee = k * T0 + k * k * T1
            if order >= 2:
                T2 = special.polygamma(2, y + k) - special.polygamma(2, k)
                c = np.exp(lphi - l1p)  # phi / (1 + phi)
                P.eee = k * T0 + 3.0 * k * k * T1 + k ** 3 * T2
                P.p = -k * T0 - k * c + y * (1.0 - c)
                P.ep = -k * T0 - k * k * T1 - k * c
                P.eep = -k * T0 - 3.0 * k * k * T1 - k ** 3 * T2 - k * c
        return P

    def dev_resids_at(self, y, mu, wt, aux):
        """The NB1 likelihood deviance at the fitted phi:
        2 wt (sup_m log f(y | m) - log f(y | mu)).

        The NB1 density is not maximal at m = y (its size m / phi moves with
        m), so the supremum is found from d/dk [lgamma(y + k) - lgamma(k) - k
        log(1 + phi)] = 0 in k = m / phi (a zero has sup 0 at m -> 0). The
        Poisson deviance used before overstated it by phi / log(1 + phi) at y = 0.

        >>> import numpy as np
        >>> d = NegativeBinomial1Family().dev_resids_at(np.zeros(1), np.ones(1), np.ones(1), {"disp": np.zeros(1)})
        >>> bool(np.isclose(d[0], 2 * np.log(2.0)))
        True
        """
        y, mu, wt = (np.asarray(a, dtype=float) for a in (y, mu, wt))
        phi = np.exp(np.asarray(aux["disp"], dtype=float)) if "disp" in aux else np.full_like(mu, self.params["phi"])
        phi = np.broadcast_to(phi, y.shape)
        l1p = np.log1p(phi)
        k = mu / phi
        ks = _nb1_best_size(y, l1p)
        pos = y > 0
        kp = np.where(pos, ks, 1.0)
        sat = np.where(pos, special.gammaln(y + kp) - special.gammaln(kp) - kp * l1p, 0.0)
        fit = special.gammaln(y + k) - special.gammaln(k) - k * l1p
        return 2.0 * wt * np.maximum(sat - fit, 0.0)

    def pearson_variance(self, mu, aux):
        """glmmTMB's nbinom1 variance mu (1 + phi) at the fitted (per-row) phi."""
        return mu * (1.0 + np.exp(aux["disp"])) if "disp" in aux else self.variance(mu)

    def simulate(self, mu, wt, rng, params):
        size = mu / fitted_param(params, "phi", self.name)
        return rng.negative_binomial(size, size / (size + mu)).astype(float)

    def variance(self, mu):
        ph = self.params.get("phi", float(np.exp(self._aux_values()["disp"])))
        return np.asarray(mu, dtype=float) * (1.0 + ph)

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        return {"phi": float(np.exp(d["Intercept"]))} if list(d) == ["Intercept"] else {}


def _nb1_best_size(y: np.ndarray, l1p: np.ndarray) -> np.ndarray:
    """The root k of digamma(y + k) - digamma(k) = log(1 + phi) for y > 0 (the
    left side falls from +inf to 0 as k grows), by bisection on log k."""
    pos = y > 0
    yy = np.where(pos, y, 1.0)
    lo = np.full(y.shape, np.log(1e-12))
    hi = np.log(10.0 * (yy / l1p + 1.0))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        k = np.exp(mid)
        up = special.digamma(yy + k) - special.digamma(k) > l1p
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    return np.exp(0.5 * (lo + hi))
