"""glmmTMB's ``betabinomial``: Binomial(size, p) with p ~ Beta(mu phi, (1 - mu) phi).

    log f = lchoose(n, k) + lbeta(k + a, n - k + b) - lbeta(a, b),  a = mu phi, b = (1 - mu) phi,

logit(mu) = eta, Var(Y / n) = mu (1 - mu) (1 + (n - 1) / (phi + 1)) / n; log(phi) is
estimated (or modelled by ``dispformula``; ``sigma()`` is phi, glmmTMB's). The
response is written as in glmer: ``cbind(successes, failures)`` or a proportion
with ``weights=`` the trials (the weights are the trial counts, as in glmmTMB).
It was the example plugin interlace-betabinomial before it moved into the core.

Example
-------
>>> import numpy as np
>>> fam = BetaBinomialFamily()
>>> k = np.arange(0.0, 6.0)
>>> P, _ = fam.parts_w(k / 5, np.full(6, 5.0), np.zeros(6), np.full(6, np.log(3.0)), 0)
>>> round(float(np.exp(P.g).sum()), 12)
1.0
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.base import apply_zprob, fitted_param
from interlace.families.likelihood import LikelihoodFamily, Parts

__all__ = ["BetaBinomialFamily", "betabinomial_parts"]


def betabinomial_parts(k: np.ndarray, n: np.ndarray, eta: np.ndarray, lphi: np.ndarray, order: int) -> Parts:
    """Log density of k successes in n trials and its derivatives in eta (logit) and log(phi)."""
    phi = np.exp(lphi)
    mu = special.expit(eta)
    a, b = mu * phi, (1.0 - mu) * phi
    g = (special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)
         + special.gammaln(k + a) + special.gammaln(n - k + b) - special.gammaln(n + phi)
         - special.gammaln(a) - special.gammaln(b) + special.gammaln(phi))
    P = Parts(g=g)
    if order < 1:
        return P
    v = mu * (1.0 - mu)
    v1 = v * (1.0 - 2.0 * mu)
    A = special.digamma(k + a) - special.digamma(a)
    B = special.digamma(n - k + b) - special.digamma(b)
    A1 = special.polygamma(1, k + a) - special.polygamma(1, a)
    B1 = special.polygamma(1, n - k + b) - special.polygamma(1, b)
    P.e = phi * v * (A - B)
    P.ee = phi * v1 * (A - B) + phi * phi * v * v * (A1 + B1)
    if order < 2:
        return P
    v2 = v * (1.0 - 2.0 * mu) ** 2 - 2.0 * v * v
    A2 = special.polygamma(2, k + a) - special.polygamma(2, a)
    B2 = special.polygamma(2, n - k + b) - special.polygamma(2, b)
    P.eee = phi * v2 * (A - B) + 3.0 * phi * phi * v * v1 * (A1 + B1) + phi ** 3 * v ** 3 * (A2 - B2)
    dAB = a * A1 - b * B1  # d(A - B)/dlog(phi)
    P.p = a * A + b * B - phi * (special.digamma(n + phi) - special.digamma(phi))
    P.ep = phi * v * (A - B) + phi * v * dAB
    P.eep = (phi * v1 * (A - B) + phi * v1 * dAB + 2.0 * phi * phi * v * v * (A1 + B1)
             + phi * phi * v * v * (a * A2 + b * B2))
    return P


class BetaBinomialFamily(LikelihoodFamily):
    """Beta-binomial with logit link; ``phi`` given -> held fixed.

    >>> BetaBinomialFamily(phi=4.0).params
    {'phi': 4.0}
    """

    name = "betabinomial"
    aux_blocks = ("disp",)
    allowed_links = ("logit",)
    disp_meaning = "log(phi)"

    def __init__(self, link: str = "logit", phi: float | None = None) -> None:
        super().__init__(link)
        self.hold_disp(phi, "phi")

    def start_eta(self, y):
        y = np.clip(np.asarray(y, dtype=float), 0.02, 0.98)
        return np.log(y / (1.0 - y))

    def initialize(self, y, wt):
        return (np.asarray(wt, float) * np.asarray(y, float) + 0.5) / (np.asarray(wt, float) + 1.0)

    def parts_w(self, y, wt, eta, lphi, order):
        """The weights are the trials: the density of k = y n successes, each row counted once."""
        n = np.asarray(wt, dtype=float)
        k = np.rint(np.asarray(y, dtype=float) * n)
        return betabinomial_parts(k, n, eta, lphi, order), np.ones_like(n)

    def mean(self, eta, aux):
        return special.expit(eta)

    def variance(self, mu):
        mu = np.asarray(mu, dtype=float)
        return mu * (1.0 - mu)

    def dev_resids(self, y, mu, wt):
        from interlace.families.base import binomial_dev_resids

        return binomial_dev_resids(y, mu, wt)

    def simulate(self, mu, wt, rng, params):
        """Proportions k / n with p ~ Beta(mu phi, (1 - mu) phi), k ~ Binomial(n, p)."""
        phi = fitted_param(params, "phi", self.name)
        n = np.broadcast_to(np.asarray(wt, dtype=float), mu.shape)
        p = rng.beta(mu * phi, (1.0 - mu) * phi)
        k = rng.binomial(np.rint(n).astype(np.int64), p).astype(float)
        return apply_zprob(k / np.where(n > 0, n, 1.0), params, rng)

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        return {"phi": float(np.exp(d["Intercept"]))} if list(d) == ["Intercept"] else {}

    def validate_response(self, y, wt, column):
        y = np.asarray(y, dtype=float)
        bad = ~np.isfinite(y) | (y < 0) | (y > 1)
        if np.any(bad):
            raise ValueError(f"betabinomial response {column!r} must be a proportion in [0, 1] with "
                             f"weights = trials, or cbind(successes, failures) ({int(bad.sum())} bad value(s))")
