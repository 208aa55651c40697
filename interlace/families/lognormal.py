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
from interlace.families.likelihood import (LikelihoodFamily, Parts, SigmaScale, _from_parts, central_parts,
                                          check_positive)

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


class LognormalFamily(SigmaScale, LikelihoodFamily):
    """Log-normal with log link, mean mu and data-scale SD sigma; ``sigma`` given -> held fixed.

    >>> LognormalFamily(sigma=2.0).params
    {'sigma': 2.0}
    """

    name = "lognormal"
    aux_blocks = ("disp",)
    disp_meaning = "log(sigma)"

    def __init__(self, link: str = "log", sigma: float | None = None) -> None:
        super().__init__(link)
        self.hold_disp(sigma, "sigma")

    def parts(self, y, eta, lsig, order) -> Parts:
        return central_parts(_first, y, eta, lsig, order, _H)

    def derivs(self, y, wt, eta, aux, order=2):
        return _from_parts(self.parts(y, eta, aux["disp"], order), wt, order, True)

    def aux_default(self, block, y=None):
        """log SD of the response."""
        return 0.0 if y is None else float(np.log(max(np.std(np.asarray(y, float)), 1e-8)))

    def start_eta(self, y):
        return np.log(np.maximum(np.asarray(y, dtype=float), 1e-8))

    def initialize(self, y, wt):
        return np.asarray(y, dtype=float)

    def simulate(self, mu, wt, rng, params):
        sig = np.broadcast_to(fitted_param(params, "sigma", self.name), mu.shape)
        S = np.log1p((sig / mu) ** 2)
        return np.exp(np.log(mu) - 0.5 * S + np.sqrt(S) * rng.standard_normal(mu.shape))

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        return {"sigma": float(np.exp(d["Intercept"]))} if list(d) == ["Intercept"] else {}

    def validate_response(self, y, wt, column):
        check_positive(y, column, "lognormal")
