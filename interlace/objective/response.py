"""The response module (lme4's glmResp): y, prior weights, offset, eta, mu and
the family. It knows nothing of the random effects.

Built-in family/link pairs run the numba kernels (fast path); any other
object satisfying the GLMMFamily protocol runs the generic NumPy path, which
gives the same numbers.
"""

from __future__ import annotations

import numpy as np

from interlace.kernels import glm as kg
from interlace.kernels import parallel as kpar


def _fast_codes(family) -> tuple[int, int] | None:
    """(family code, link code) of the numba kernels: the family's ``kernel_code``
    when it qualifies for the fast path (``fast_path``), else None."""
    fp = getattr(family, "fast_path", None)
    code = getattr(family, "kernel_code", None)
    if not fp or code is None or fp[1] not in kg.LINK_CODES:
        return None
    return int(code), kg.LINK_CODES[fp[1]]


class GLMResponse:
    """Working quantities of a GLM response at a linear predictor eta."""

    def __init__(self, y: np.ndarray, weights: np.ndarray, offset: np.ndarray, family) -> None:
        self.y = np.ascontiguousarray(y, dtype=np.float64)
        self.wt = np.ascontiguousarray(weights, dtype=np.float64)
        self.offset = np.ascontiguousarray(offset, dtype=np.float64)
        self.family = family
        self.codes = _fast_codes(family)
        n = self.y.shape[0]
        self.mu = np.empty(n)
        self.w = np.empty(n)
        self.r = np.empty(n)
        self.eta = np.zeros(n)
        self.canonical = self.codes is not None and self.codes in ((0, 0), (1, 3), (2, 4))
        # -2 * saturated log-likelihood: -2 loglik = sum(dev.resids) + this constant
        self.sat_const = self._saturated_constant()

    def set_response(self, y: np.ndarray) -> None:
        """A new response of the same rows (a refit): written into the response's own
        buffer, working quantities back to a fresh response's state."""
        self.y[:] = y
        self.eta = np.zeros(self.y.shape[0])
        self.sat_const = self._saturated_constant()

    def _saturated_constant(self) -> float:
        fam = self.family
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = np.asarray(fam.loglik(self.y, self.y.copy(), self.wt), dtype=float)
        if not np.all(np.isfinite(ll)):
            return np.nan
        return float(-2.0 * ll.sum())

    def update(self, eta: np.ndarray) -> float:
        """Set eta and fill mu, working weights and residuals; return sum(dev.resids)."""
        self.eta = eta
        if self.codes is not None:
            return float(kg.glm_working(self.codes[0], self.codes[1], self.y, self.wt, eta,
                                        self.mu, self.w, self.r))
        fam = self.family
        mu = np.asarray(fam.linkinv(eta), dtype=float)
        d = np.asarray(fam.mu_eta(eta), dtype=float)
        v = np.asarray(fam.variance(mu), dtype=float)
        self.mu[:] = mu
        self.w[:] = self.wt * d * d / v
        self.r[:] = (self.y - mu) / d
        return float(np.sum(fam.dev_resids(self.y, mu, self.wt)))

    def deviance(self, eta: np.ndarray) -> float:
        if self.codes is not None:
            return float(kg.glm_deviance(self.codes[0], self.codes[1], self.y, self.wt, eta))
        mu = np.asarray(self.family.linkinv(eta), dtype=float)
        return float(np.sum(self.family.dev_resids(self.y, mu, self.wt)))

    def minus2loglik(self, devsum: float, mu: np.ndarray | None = None) -> float:
        """-2 log p(y | mu) from the deviance sum (exponential families, scale 1)."""
        if np.isfinite(self.sat_const):
            return devsum + self.sat_const
        mu = self.mu if mu is None else mu
        return float(-2.0 * np.sum(self.family.loglik(self.y, mu, self.wt)))

    def has_derivatives(self) -> bool:
        """Exact derivatives available: a canonical fast-path pair, or a family
        whose link gives d2mu/deta2 and whose variance gives dV/dmu."""
        if self.canonical:
            return True
        fam = self.family
        return hasattr(getattr(fam, "link", None), "d2mu_deta2") and hasattr(fam, "variance_deriv")

    def loglik_terms(self):
        """(s, h, dw) per row: the score d loglik/d eta, the observed information
        h = -d^2 loglik/d eta^2 and d w/d eta of the Fisher weight w."""
        if not self.canonical:
            fam, eta, y, wt = self.family, self.eta, self.y, self.wt
            mu = np.asarray(fam.linkinv(eta), dtype=float)
            me = np.asarray(fam.mu_eta(eta), dtype=float)
            me2 = np.asarray(fam.link.d2mu_deta2(eta), dtype=float)
            v = np.asarray(fam.variance(mu), dtype=float)
            vp = np.asarray(fam.variance_deriv(mu), dtype=float)
            s = wt * (y - mu) * me / v
            w = wt * me * me / v
            h = w - wt * (y - mu) * (me2 / v - me * me * vp / (v * v))
            wd = wt * (2.0 * me * me2 / v - me ** 3 * vp / (v * v))
            return s, h, wd
        n = self.y.shape[0]
        s, h, wd = np.empty(n), np.empty(n), np.empty(n)
        kpar.glm_score_terms(self.codes[0], self.codes[1], self.y, self.wt, self.eta, s, h, wd)
        return s, h, wd
