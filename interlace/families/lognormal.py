"""Log-normal family in glmmTMB's parametrization (glmmTMB >= 1.1.7's ``lognormal``; not in
glmmTMB 1.1.5, so validated against an independent R reference, see
tests/fixtures/families_new/make_families_new.R).

Y > 0 with E[Y] = mu = exp(eta) and SD(Y) = sigma (both on the data scale): log Y ~ N(m, s^2),
s^2 = log(1 + sigma^2 / mu^2), m = log(mu) - s^2 / 2. The dispersion coefficients model
log(sigma); ``sigma()`` is sigma.

The first derivatives are exact: with w = sigma^2 / mu^2, S = s^2 = log(1 + w) and
r = log y - m,

    dl/dS = -1/(2S) - r/(2S) + r^2/(2S^2),   dS/deta = -2w/(1+w) = -dS/dlog(sigma),
    dl/deta = r/S + dl/dS dS/deta,          dl/dlog(sigma) = dl/dS dS/dlog(sigma);

the higher ones are central differences of these in eta (step 1e-4).

Example
-------
>>> import numpy as np
>>> fam = LognormalFamily()
>>> d = fam.derivs(np.array([2.0]), np.ones(1), np.log([2.0]), {"disp": np.log([0.5])}, 0)
>>> bool(np.isfinite(d.l[0]))
True
"""

from __future__ import annotations

import numpy as np

from interlace.families.base import fitted_param
from interlace.families.likelihood import LikelihoodFamily, Parts, _from_parts, as_fixed, check_positive

__all__ = ["LognormalFamily"]

_H = 1e-4
_LOG_2PI = float(np.log(2.0 * np.pi))


def _first(y, eta, lsig):
    """(l, dl/deta, dl/dlog(sigma)) per row."""
    w = np.exp(2.0 * (lsig - eta))
    S = np.log1p(w)
    ly = np.log(y)
    r = ly - eta + 0.5 * S
    l = -ly - 0.5 * (_LOG_2PI + np.log(S)) - r * r / (2.0 * S)
    dS = 2.0 * w / (1.0 + w)  # dS/dlog(sigma) = -dS/deta
    lS = -0.5 / S - r / (2.0 * S) + r * r / (2.0 * S * S)
    return l, r / S - lS * dS, lS * dS


class LognormalFamily(LikelihoodFamily):
    """Log-normal with log link, mean mu and data-scale SD sigma; ``sigma`` given -> held fixed.

    >>> LognormalFamily(sigma=2.0).params
    {'sigma': 2.0}
    """

    name = "lognormal"
    aux_blocks = ("disp",)
    disp_meaning = "log(sigma)"

    def __init__(self, link: str = "log", sigma: float | None = None) -> None:
        super().__init__(link)
        sg = as_fixed(sigma, "sigma")
        if sg is not None:
            self.fixed_aux["disp"] = float(np.log(sg))
            self.params["sigma"] = sg

    def parts(self, y, eta, lsig, order) -> Parts:
        y = np.asarray(y, dtype=float)
        eta = np.asarray(eta, dtype=float)
        lsig = np.broadcast_to(np.asarray(lsig, dtype=float), eta.shape)
        l, le, ls = _first(y, eta, lsig)
        P = Parts(g=l)
        if order < 1:
            return P
        _a, lep, lsp = _first(y, eta + _H, lsig)
        _b, lem, lsm = _first(y, eta - _H, lsig)
        P.e, P.ee = le, (lep - lem) / (2.0 * _H)
        if order >= 2:
            P.eee = (lep - 2.0 * le + lem) / _H ** 2
            P.p, P.ep, P.eep = ls, (lsp - lsm) / (2.0 * _H), (lsp - 2.0 * ls + lsm) / _H ** 2
        return P

    def derivs(self, y, wt, eta, aux, order=2):
        return _from_parts(self.parts(y, eta, aux["disp"], order), wt, order, True)

    def aux_default(self, block, y=None):
        """log SD of the response."""
        return 0.0 if y is None else float(np.log(max(np.std(np.asarray(y, float)), 1e-8)))

    def start_eta(self, y):
        return np.log(np.maximum(np.asarray(y, dtype=float), 1e-8))

    def initialize(self, y, wt):
        return np.asarray(y, dtype=float)

    def row_dispersion(self, aux):
        """sigma per row (the data-scale SD)."""
        return np.exp(aux["disp"]) if "disp" in aux else None

    def variance(self, mu):
        """Var(Y) = sigma^2 (constant in mu at a fixed sigma)."""
        sig = self.params.get("sigma", 1.0)
        return np.full_like(np.asarray(mu, dtype=float), sig * sig)

    def pearson_variance(self, mu, aux):
        return np.broadcast_to(np.exp(2.0 * np.asarray(aux["disp"], dtype=float)), np.shape(mu)).copy()

    def dev_resids(self, y, mu, wt):
        return np.asarray(wt, float) * (np.asarray(y, float) - np.asarray(mu, float)) ** 2

    def simulate(self, mu, wt, rng, params):
        sig = np.broadcast_to(fitted_param(params, "sigma", self.name), mu.shape)
        S = np.log1p((sig / mu) ** 2)
        return np.exp(np.log(mu) - 0.5 * S + np.sqrt(S) * rng.standard_normal(mu.shape))

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        return {"sigma": float(np.exp(d["Intercept"]))} if list(d) == ["Intercept"] else {}

    def validate_response(self, y, wt, column):
        check_positive(y, column, "lognormal")
