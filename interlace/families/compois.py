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
from interlace.families.likelihood import LikelihoodFamily, Parts, _from_parts, as_fixed, check_counts

__all__ = ["CompoisFamily", "TruncatedCompoisFamily"]

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

    def _first(self, y, eta, lphi):
        """(l, dl/deta, dl/dlog(phi)) per row (a truncated version adds its normalization)."""
        return _first(y, eta, lphi)

    def parts(self, y, eta, lphi, order) -> Parts:
        """Log density and its derivatives in eta and log(phi) (unweighted), the base of zero
        inflation; third orders and the cross ones by central differences of the exact first."""
        y = np.asarray(y, dtype=float)
        eta = np.asarray(eta, dtype=float)
        lphi = np.broadcast_to(np.asarray(lphi, dtype=float), eta.shape)
        l, le, ls = self._first(y, eta, lphi)
        P = Parts(g=l)
        if order < 1:
            return P
        _lp, lep, lsp = self._first(y, eta + _H, lphi)
        _lm, lem, lsm = self._first(y, eta - _H, lphi)
        P.e, P.ee = le, (lep - lem) / (2.0 * _H)
        if order >= 2:
            P.eee = (lep - 2.0 * le + lem) / _H ** 2
            P.p, P.ep, P.eep = ls, (lsp - lsm) / (2.0 * _H), (lsp - 2.0 * ls + lsm) / _H ** 2
        return P

    def derivs(self, y, wt, eta, aux, order=2):
        return _from_parts(self.parts(y, eta, aux["disp"], order), wt, order, True)

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


class TruncatedCompoisFamily(CompoisFamily):
    """Zero-truncated Conway-Maxwell-Poisson (glmmTMB's ``truncated_compois``): f(y) / (1 - f(0))
    for y >= 1, f(0) = 1 / Z(lambda, nu); with ``ziformula`` the hurdle CMP. With
    g0 = log f(0) = -log Z: dg0/deta = -mu^2 / Var Y, dg0/dnu = E[T] - mu Cov(Y, T) / Var Y, and
    h = -log(1 - e^g0) has dh = q dg0, q = f(0) / (1 - f(0)).

    >>> TruncatedCompoisFamily().name
    'truncated_compois'
    """

    name = "truncated_compois"

    def _first(self, y, eta, lphi):
        from interlace.kernels.compois import cmp_loglambda, cmp_moments

        nu = np.ascontiguousarray(np.broadcast_to(np.exp(-lphi), np.shape(eta)), dtype=float)
        eta = np.ascontiguousarray(eta, dtype=float)
        ll = cmp_loglambda(eta, nu)
        lz, m, v, et, c = cmp_moments(ll, nu)
        lgy = special.gammaln(y + 1.0)
        g0 = -lz
        with np.errstate(over="ignore", divide="ignore"):
            h = -np.log(-np.expm1(np.minimum(g0, -1e-300)))
            q = 1.0 / np.expm1(-g0)
        l = y * ll - nu * lgy - lz + h
        le = (y - m) * m / v + q * (-m * m / v)
        lnu = (y - m) * c / v - lgy + et + q * (et - m * c / v)
        pos = y > 0
        return np.where(pos, l, -np.inf), np.where(pos, le, 0.0), np.where(pos, -nu * lnu, 0.0)

    def derivs(self, y, wt, eta, aux, order=2):
        y = np.asarray(y, dtype=float)
        if np.any(y == 0):
            raise ValueError(f"the {self.name} family has no zeros: the response has {int((y == 0).sum())} "
                             "zero(s); add a ziformula (glmmTMB's hurdle model) or drop them")
        return super().derivs(y, wt, eta, aux, order)

    def mean(self, eta, aux):
        """E[Y] = mu / (1 - f(0))."""
        from interlace.kernels.compois import cmp_loglambda, cmp_moments

        eta = np.ascontiguousarray(eta, dtype=float)
        nu = np.ascontiguousarray(np.broadcast_to(np.exp(-np.asarray(aux["disp"], dtype=float)), eta.shape))
        lz = cmp_moments(cmp_loglambda(eta, nu), nu)[0]
        return np.exp(eta) / -np.expm1(-lz)

    def conditional_mean(self, eta, aux=None):
        aux = aux or {"disp": np.full(np.shape(eta), self._aux_values()["disp"])}
        return self.mean(eta, aux)

    def start_eta(self, y):
        return np.log(np.maximum(np.asarray(y, dtype=float), 1.0))

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

    def validate_response(self, y, wt, column):
        """Counts >= 1 (with a ``ziformula`` only the nonzero rows are checked: the hurdle)."""
        check_counts(y, column, self.name)
        y = np.asarray(y, dtype=float)
        zero = y == 0
        if np.any(zero):
            raise ValueError(f"the {self.name} family has no zeros: response {column!r} has {int(zero.sum())} "
                             "zero(s); add a ziformula (glmmTMB's hurdle model) or drop them")
        if np.any(y < 1):
            raise ValueError(f"the {self.name} family needs counts >= 1: response {column!r} has "
                             f"{int((y < 1).sum())} value(s) between 0 and 1")
