"""glmmTMB's ``compois``: Conway-Maxwell-Poisson in its mean parametrization (Huang 2017).

P(Y = y) = lambda^y / (y!)^nu / Z(lambda, nu), with lambda chosen so that E[Y] = mu = exp(eta);
glmmTMB 1.1.5 models log(phi), phi = 1 / nu, with the dispersion coefficients (``sigma(m)`` is
phi: phi > 1 over-, phi < 1 under-dispersed counts). The series and the rate are computed by
the compiled kernels of :mod:`interlace.kernels.compois`.

Derivatives: l = y log(lambda) - nu lgamma(y + 1) - log Z, with log(lambda) implicit in (eta, nu).
The first ones are exact from the moments (d log(lambda) / d eta = mu / Var Y; at fixed mu,
d log(lambda) / d nu = Cov(Y, lgamma(Y + 1)) / Var Y):

    dl/deta = (y - mu) mu / Var Y,
    dl/dnu  = (y - mu) Cov(Y, T) / Var Y - lgamma(y + 1) + E[T],   T = lgamma(Y + 1);

the higher ones are central differences of these in eta (step 1e-3).

Example
-------
>>> import numpy as np
>>> fam = CompoisFamily()
>>> d = fam.derivs(np.array([2.0]), np.ones(1), np.log([2.0]), {"disp": np.zeros(1)}, 0)  # nu = 1: Poisson
>>> bool(np.isclose(d.l[0], 2 * np.log(2.0) - 2.0 - np.log(2.0)))
True
"""

from __future__ import annotations

import numpy as np
from scipy import special

from interlace.families.base import apply_zprob, fitted_param
from interlace.families.likelihood import Derivs, LikelihoodFamily, as_fixed

__all__ = ["CompoisFamily"]

_H = 1e-3


def _first(y, eta, lphi):
    """(l, dl/deta, dl/dlog(phi)) per row."""
    from interlace.kernels.compois import cmp_loglambda, cmp_moments

    nu = np.exp(-lphi)
    eta = np.ascontiguousarray(eta, dtype=float)
    nu = np.ascontiguousarray(np.broadcast_to(nu, eta.shape), dtype=float)
    ll = cmp_loglambda(eta, nu)
    lz, m, v, et, c = cmp_moments(ll, nu)
    lgy = special.gammaln(y + 1.0)
    l = y * ll - nu * lgy - lz
    le = (y - m) * m / v
    lnu = (y - m) * c / v - lgy + et
    return l, le, -nu * lnu


class CompoisFamily(LikelihoodFamily):
    """Conway-Maxwell-Poisson with log link; ``phi`` (= 1 / nu) given -> held fixed.

    >>> CompoisFamily(phi=0.5).params
    {'phi': 0.5}
    """

    name = "compois"
    aux_blocks = ("disp",)
    disp_meaning = "log(phi), phi = 1/nu"

    def __init__(self, link: str = "log", phi: float | None = None) -> None:
        super().__init__(link)
        ph = as_fixed(phi, "phi")
        if ph is not None:
            self.fixed_aux["disp"] = float(np.log(ph))
            self.params["phi"] = ph

    def derivs(self, y, wt, eta, aux, order=2):
        y = np.asarray(y, dtype=float)
        eta = np.asarray(eta, dtype=float)
        wt = np.asarray(wt, dtype=float)
        lphi = np.broadcast_to(np.asarray(aux["disp"], dtype=float), eta.shape)
        l, le, ls = _first(y, eta, lphi)
        out = Derivs(l=wt * l)
        if order < 1:
            return out
        _lp, lep, lsp = _first(y, eta + _H, lphi)
        _lm, lem, lsm = _first(y, eta - _H, lphi)
        out.e = wt * le
        out.ee = wt * (lep - lem) / (2.0 * _H)
        if order < 2:
            return out
        out.eee = wt * (lep - 2.0 * le + lem) / _H ** 2
        out.aux["disp"] = (wt * ls, wt * (lsp - lsm) / (2.0 * _H), wt * (lsp - 2.0 * ls + lsm) / _H ** 2)
        return out

    def start_eta(self, y):
        return np.log(np.maximum(np.asarray(y, dtype=float), 0.0) + 0.5)

    def row_dispersion(self, aux):
        return np.exp(aux["disp"]) if "disp" in aux else None

    def _var(self, mu, phi):
        from interlace.kernels.compois import cmp_loglambda, cmp_moments

        mu = np.asarray(mu, dtype=float)
        nu = np.ascontiguousarray(np.broadcast_to(1.0 / np.asarray(phi, dtype=float), mu.shape), dtype=float)
        ll = cmp_loglambda(np.ascontiguousarray(np.log(mu).ravel()), nu.ravel())
        return cmp_moments(ll, nu.ravel())[2].reshape(mu.shape)

    def variance(self, mu):
        """Var(Y) at mean mu and the fitted phi (glmmTMB's ``compois_calc_var``)."""
        return self._var(mu, self.params.get("phi", 1.0))

    def pearson_variance(self, mu, aux):
        return self._var(mu, np.exp(np.asarray(aux["disp"], dtype=float)))

    def simulate(self, mu, wt, rng, params):
        """Inversion of the CMP distribution function, per row (mean mu, nu = 1 / phi)."""
        from interlace.kernels.compois import cmp_loglambda, cmp_moments

        phi = np.broadcast_to(fitted_param(params, "phi", self.name), mu.shape).ravel()
        m = np.asarray(mu, dtype=float).ravel()
        nu = np.ascontiguousarray(1.0 / phi)
        ll = cmp_loglambda(np.ascontiguousarray(np.log(m)), nu)
        lz = cmp_moments(ll, nu)[0]
        u = rng.uniform(size=m.shape)
        out = np.zeros(m.shape)
        cdf = np.exp(-lz)  # P(0)
        k = 0
        todo = u > cdf
        while np.any(todo) and k < 100000:
            k += 1
            cdf = cdf + np.exp(k * ll - nu * special.gammaln(k + 1.0) - lz)
            out[todo] = k
            todo &= u > cdf
        return apply_zprob(out.reshape(np.shape(mu)), params, rng)

    def natural_params(self, coefs):
        d = coefs.get("disp", {})
        return {"phi": float(np.exp(d["Intercept"]))} if list(d) == ["Intercept"] else {}
