"""glmmTMB's ``ordbeta``: Kubinec's ordered beta regression for responses in [0, 1].

With mu = plogis(eta), cutpoints c1 < c2 (glmmTMB's psi) and precision phi:

    P(Y = 0) = 1 - plogis(eta - c1),   P(Y = 1) = plogis(eta - c2),
    Y in (0, 1): density (plogis(eta - c1) - plogis(eta - c2)) dbeta(y, mu phi, (1 - mu) phi).

glmmTMB 1.1.5 models log(phi) with the dispersion coefficients (``sigma(m)`` is phi) and
estimates the raw cutpoints, printing plogis of them as ``lower cutoff`` / ``upper cutoff``
(``family_params``); so does ``family_params`` here. The two cutpoints are the aux blocks
``psi1`` and ``psi2`` (one coefficient each).

Example
-------
>>> OrderedBetaFamily().aux_blocks
('disp', 'psi1', 'psi2')
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.beta import beta_parts
from interlace.families.likelihood import Derivs, LikelihoodFamily

__all__ = ["OrderedBetaFamily"]


def _f(x):
    """plogis' derivatives: (F, f = F(1-F), f' = f(1-2F), f'' = f((1-2F)^2 - 2f))."""
    F = special.expit(x)
    f = F * (1.0 - F)
    return F, f, f * (1.0 - 2.0 * F), f * ((1.0 - 2.0 * F) ** 2 - 2.0 * f)


class OrderedBetaFamily(LikelihoodFamily):
    """Ordered beta with logit link.

    >>> import numpy as np
    >>> fam = OrderedBetaFamily()
    >>> aux = {"disp": np.zeros(1), "psi1": np.full(1, -1.0), "psi2": np.full(1, 1.0)}
    >>> d = fam.derivs(np.array([0.0]), np.ones(1), np.zeros(1), aux, 0)
    >>> bool(np.isclose(np.exp(d.l[0]), 1 - 1 / (1 + np.exp(-1.0))))
    True
    """

    name = "ordbeta"
    aux_blocks = ("disp", "psi1", "psi2")
    allowed_links = ("logit",)
    disp_meaning = "log(phi)"

    def aux_default(self, block, y=None):
        """Cutpoints start at -1 and 1 (glmmTMB 1.1.5 starts both at 0, where the middle
        probability is 0 and its likelihood NaN); log(phi) at 1."""
        return {"psi1": -1.0, "psi2": 1.0}.get(block, 1.0)

    def start_eta(self, y):
        y = np.clip(np.asarray(y, dtype=float), 0.05, 0.95)
        return np.log(y / (1.0 - y))

    def initialize(self, y, wt):
        return np.clip(np.asarray(y, dtype=float), 0.05, 0.95)

    def derivs(self, y, wt, eta, aux, order=2):
        y = np.asarray(y, dtype=float)
        eta = np.asarray(eta, dtype=float)
        wt = np.asarray(wt, dtype=float)
        c1, c2 = aux["psi1"], aux["psi2"]
        a, b = eta - c1, eta - c2
        zero, one = y == 0, y == 1
        mid = ~(zero | one)
        with np.errstate(all="ignore"):
            # log(F(a) - F(b)) = log F(a) + log F(-b) + log(1 - e^(b - a)), stable for a > b
            ldel = -np.logaddexp(0.0, -a) - np.logaddexp(0.0, b) + np.log(-np.expm1(b - a))
            ldel = np.where(a > b, ldel, -np.inf)
            ym = np.where(mid, y, 0.5)
            B = beta_parts(ym, eta, aux["disp"], order)
            g = np.where(zero, -np.logaddexp(0.0, a), np.where(one, -np.logaddexp(0.0, -b), ldel + B.g))
        out = Derivs(l=wt * g)
        if order < 1:
            return out
        Fa, fa, fa1, fa2 = _f(a)
        Fb, fb, fb1, fb2 = _f(b)
        with np.errstate(all="ignore"):
            idel = np.where(mid, np.exp(-ldel), 0.0)
        # middle rows: L = log(F(a) - F(b)) plus the beta density
        L1 = (fa - fb) * idel
        L2 = (fa1 - fb1) * idel - L1 * L1
        L3 = (fa2 - fb2) * idel - 3.0 * L1 * L2 - L1 ** 3
        e = np.where(zero, -Fa, np.where(one, 1.0 - Fb, L1 + np.where(mid, B.e, 0.0)))
        ee = np.where(zero, -fa, np.where(one, -fb, L2 + np.where(mid, B.ee, 0.0)))
        out.e, out.ee = wt * e, wt * ee
        if order < 2:
            return out
        eee = np.where(zero, -fa1, np.where(one, -fb1, L3 + np.where(mid, B.eee, 0.0)))
        out.eee = wt * eee
        zz = np.zeros_like(eta)
        out.aux["disp"] = (wt * np.where(mid, B.p, zz), wt * np.where(mid, B.ep, zz), wt * np.where(mid, B.eep, zz))
        u = -fa * idel
        ue = -fa1 * idel - u * L1
        uee = -fa2 * idel + fa1 * idel * L1 - ue * L1 - u * L2
        v = fb * idel
        ve = fb1 * idel - v * L1
        vee = fb2 * idel - fb1 * idel * L1 - ve * L1 - v * L2
        out.aux["psi1"] = (wt * np.where(zero, Fa, np.where(mid, u, zz)), wt * np.where(zero, fa, np.where(mid, ue, zz)),
                           wt * np.where(zero, fa1, np.where(mid, uee, zz)))
        out.aux["psi2"] = (wt * np.where(one, Fb - 1.0, np.where(mid, v, zz)), wt * np.where(one, fb, np.where(mid, ve, zz)),
                           wt * np.where(one, fb1, np.where(mid, vee, zz)))
        return out

    def mean(self, eta, aux):
        """plogis(eta), glmmTMB 1.1.5's ``predict(type = "response")`` for ordbeta."""
        return special.expit(np.asarray(eta, dtype=float))

    def variance(self, mu):
        """glmmTMB's ordbeta variance function mu (1 - mu)."""
        mu = np.asarray(mu, dtype=float)
        return mu * (1.0 - mu)

    def pearson_variance(self, mu, aux):
        mu = np.asarray(mu, dtype=float)
        return mu * (1.0 - mu)

    def dev_resids(self, y, mu, wt):
        from interlace.families.base import binomial_dev_resids

        return binomial_dev_resids(y, mu, wt)

    def simulate(self, mu, wt, rng, params):
        """0 with probability 1 - plogis(eta - c1), 1 with plogis(eta - c2), else Beta(mu phi, (1 - mu) phi)."""
        phi = np.broadcast_to(np.asarray(params.get("dispersion", params.get("phi")), dtype=float), mu.shape)
        eta = special.logit(np.clip(mu, 1e-15, 1 - 1e-15))
        c1, c2 = special.logit(params["lower cutoff"]), special.logit(params["upper cutoff"])
        u = rng.uniform(size=mu.shape)
        p0 = 1.0 - special.expit(eta - c1)
        p1 = special.expit(eta - c2)
        draw = rng.beta(mu * phi, (1.0 - mu) * phi)
        return np.where(u < p0, 0.0, np.where(u > 1.0 - p1, 1.0, draw))

    def natural_params(self, coefs):
        out = {}
        d = coefs.get("disp", {})
        if list(d) == ["Intercept"]:
            out["phi"] = float(np.exp(d["Intercept"]))
        for blk, label in (("psi1", "lower cutoff"), ("psi2", "upper cutoff")):
            c = coefs.get(blk, {})
            if list(c) == ["Intercept"]:
                out[label] = float(special.expit(c["Intercept"]))
        return out

    def validate_response(self, y, wt, column):
        y = np.asarray(y, dtype=float)
        bad = ~np.isfinite(y) | (y < 0) | (y > 1)
        if np.any(bad):
            raise ValueError(f"ordbeta response {column!r} must lie in [0, 1] ({int(bad.sum())} value(s) outside)")
