"""interlace-betabinomial: glmmTMB's ``betabinomial`` family as an interlace plugin.

Y | p ~ Binomial(size, p), p ~ Beta(mu phi, (1 - mu) phi), logit(mu) = eta:

    log f = lchoose(n, k) + lbeta(k + a, n - k + b) - lbeta(a, b),  a = mu phi, b = (1 - mu) phi,

Var(Y / n) = mu (1 - mu) (1 + (n - 1) / (phi + 1)) / n. log(phi) is estimated
(or modelled by ``dispformula``). The family runs on interlace's
general-likelihood Laplace engine (glmmTMB's model): it supplies the
log-likelihood and its derivatives in eta and in log(phi).

The response is written as in glmer: ``cbind(successes, failures)`` or a
proportion with ``weights=`` the number of trials (the weights are the trial
counts, not likelihood weights).

    >>> import interlace                                                  # doctest: +SKIP
    >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     interlace.datasets.load("cbpp"), family="betabinomial")  # doctest: +SKIP
    >>> m.family_params["phi"]                                            # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.likelihood import Derivs, LikelihoodFamily, as_fixed
from interlace.plugins import hookimpl

__all__ = ["BetaBinomialFamily", "interlace_register_families"]
__version__ = "0.1.0"


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
        ph = as_fixed(phi, "phi")
        if ph is not None:
            self.fixed_aux["disp"] = float(np.log(ph))
            self.params["phi"] = ph

    def start_eta(self, y):
        y = np.clip(np.asarray(y, dtype=float), 0.02, 0.98)
        return np.log(y / (1.0 - y))

    def initialize(self, y, wt):
        return (np.asarray(wt, float) * np.asarray(y, float) + 0.5) / (np.asarray(wt, float) + 1.0)

    def derivs(self, y, wt, eta, aux, order=2):
        n = np.asarray(wt, dtype=float)
        k = np.rint(np.asarray(y, dtype=float) * n)
        lphi = aux["disp"]
        phi = np.exp(lphi)
        mu = special.expit(eta)
        a, b = mu * phi, (1.0 - mu) * phi
        g = (special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)
             + special.gammaln(k + a) + special.gammaln(n - k + b) - special.gammaln(n + phi)
             - special.gammaln(a) - special.gammaln(b) + special.gammaln(phi))
        out = Derivs(l=g)
        if order == 0:
            return out
        v = mu * (1.0 - mu)
        v1 = v * (1.0 - 2.0 * mu)
        A = special.digamma(k + a) - special.digamma(a)
        B = special.digamma(n - k + b) - special.digamma(b)
        A1 = special.polygamma(1, k + a) - special.polygamma(1, a)
        B1 = special.polygamma(1, n - k + b) - special.polygamma(1, b)
        out.e = phi * v * (A - B)
        out.ee = phi * v1 * (A - B) + phi * phi * v * v * (A1 + B1)
        if order == 1:
            return out
        v2 = v * (1.0 - 2.0 * mu) ** 2 - 2.0 * v * v
        A2 = special.polygamma(2, k + a) - special.polygamma(2, a)
        B2 = special.polygamma(2, n - k + b) - special.polygamma(2, b)
        out.eee = phi * v2 * (A - B) + 3.0 * phi * phi * v * v1 * (A1 + B1) + phi ** 3 * v ** 3 * (A2 - B2)
        dAB = a * A1 - b * B1  # d(A - B)/dlog(phi)
        lp = a * A + b * B - phi * (special.digamma(n + phi) - special.digamma(phi))
        lep = phi * v * (A - B) + phi * v * dAB
        leep = (phi * v1 * (A - B) + phi * v1 * dAB + 2.0 * phi * phi * v * v * (A1 + B1)
                + phi * phi * v * v * (a * A2 + b * B2))
        out.aux["disp"] = (lp, lep, leep)
        return out

    def mean(self, eta, aux):
        return special.expit(eta)

    def variance(self, mu):
        mu = np.asarray(mu, dtype=float)
        return mu * (1.0 - mu)

    def dev_resids(self, y, mu, wt):
        from interlace.families.base import binomial_dev_resids

        return binomial_dev_resids(y, mu, wt)

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        return {"phi": float(np.exp(d["Intercept"]))} if list(d) == ["Intercept"] else {}

    def validate_response(self, y, wt, column):
        y = np.asarray(y, dtype=float)
        bad = ~np.isfinite(y) | (y < 0) | (y > 1)
        if np.any(bad):
            raise ValueError(f"betabinomial response {column!r} must be a proportion in [0, 1] with "
                             f"weights = trials, or cbind(successes, failures) ({int(bad.sum())} bad value(s))")


@hookimpl
def interlace_register_families(registry) -> None:
    """Register ``"betabinomial"``."""
    registry.add("betabinomial", BetaBinomialFamily)
