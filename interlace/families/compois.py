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
from interlace.families.likelihood import LikelihoodFamily, Parts, _from_parts, central_parts
from interlace.families.truncated import _Truncated

__all__ = ["CompoisFamily", "TruncatedCompoisFamily"]

_H = 1e-3


def _first(y, eta, lphi, truncated: bool = False):
    """(l, dl/deta, dl/dlog(phi)) per row. ``truncated``: of f(y) / (1 - f(0)) (-inf at y = 0):
    g0 = log f(0) = -log Z has dg0/deta = -mu^2 / Var Y, dg0/dnu = E[T] - mu Cov(Y, T) / Var Y,
    and h = -log(1 - e^g0) adds dh = q dg0, q = f(0) / (1 - f(0))."""
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
    if not truncated:
        return l, le, -nu * lnu
    with np.errstate(over="ignore", divide="ignore"):
        h = -np.log(-np.expm1(np.minimum(-lz, -1e-300)))
        q = 1.0 / np.expm1(lz)
    pos = y > 0
    return (np.where(pos, l + h, -np.inf), np.where(pos, le + q * (-m * m / v), 0.0),
            np.where(pos, -nu * (lnu + q * (et - m * c / v)), 0.0))


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
        self.hold_disp(phi, "phi")

    truncated = False  # the zero-truncated version's _first adds its normalization

    def _first(self, y, eta, lphi):
        """(l, dl/deta, dl/dlog(phi)) per row."""
        return _first(y, eta, lphi, self.truncated)

    def parts(self, y, eta, lphi, order) -> Parts:
        """Log density and its derivatives in eta and log(phi) (unweighted), the base of zero
        inflation; third orders and the cross ones by central differences of the exact first."""
        return central_parts(self._first, y, eta, lphi, order, _H)

    def derivs(self, y, wt, eta, aux, order=2):
        return _from_parts(self.parts(y, eta, aux["disp"], order), wt, order, True)

    def start_eta(self, y):
        return np.log(np.maximum(np.asarray(y, dtype=float), 0.0) + 0.5)

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


class TruncatedCompoisFamily(_Truncated, CompoisFamily):
    """Zero-truncated Conway-Maxwell-Poisson (glmmTMB's ``truncated_compois``): f(y) / (1 - f(0))
    for y >= 1, f(0) = 1 / Z(lambda, nu); with ``ziformula`` the hurdle CMP. With
    g0 = log f(0) = -log Z: dg0/deta = -mu^2 / Var Y, dg0/dnu = E[T] - mu Cov(Y, T) / Var Y, and
    h = -log(1 - e^g0) has dh = q dg0, q = f(0) / (1 - f(0)).

    >>> TruncatedCompoisFamily().name
    'truncated_compois'
    """

    name = "truncated_compois"
    truncated = True
    parts = CompoisFamily.parts  # its _first carries the truncation (the mixin's parts truncate a base)

    def p_zero(self, mu, aux):
        """f(0) = 1 / Z(lambda, nu) at mean mu (the mixin's mean and conditional_mean use it)."""
        from interlace.kernels.compois import cmp_loglambda, cmp_moments

        eta = np.ascontiguousarray(np.log(mu), dtype=float)
        nu = np.ascontiguousarray(np.broadcast_to(np.exp(-np.asarray(aux["disp"], dtype=float)), eta.shape))
        return np.exp(-cmp_moments(cmp_loglambda(eta, nu), nu)[0])

    def simulate(self, mu, wt, rng, params):
        """CMP draws with mean ``mu`` (untruncated), zeros redrawn (at most 1000 rounds)."""
        base = {k: v for k, v in params.items() if k != "zprob"}
        y = CompoisFamily.simulate(self, mu, wt, rng, base)
        for _ in range(1000):
            zero = y == 0
            if not zero.any():
                break
            sub = {k: (np.broadcast_to(v, y.shape)[zero] if np.ndim(v) else v) for k, v in base.items()
                   if k in ("phi", "dispersion")}
            y[zero] = CompoisFamily.simulate(self, np.broadcast_to(mu, y.shape)[zero], wt, rng, sub)
        return apply_zprob(np.maximum(y, 1.0), params, rng)
