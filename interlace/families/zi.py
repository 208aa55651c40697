"""Zero inflation of any family (glmmTMB's ``ziformula`` for every family).

:class:`ZeroInflatedFamily` wraps the log-likelihood of a base family (any
:class:`LikelihoodFamily` with ``parts``: nbinom1, genpois, betabinomial, beta, the
Gamma's shape model, the binomial and Poisson below, plugins) into

    P(Y = 0) = p + (1 - p) f(0),   P(Y = y) = (1 - p) f(y) for y != 0,   logit(p) = zi predictor,

with f(0) = 0 for a continuous base (glmmTMB's ziGamma, a beta with zeros): the zeros are
then all structural. Its derivatives come from the base ones by the chain rule
(``likelihood.zero_inflate`` for the engine with fixed-effect side models,
``general.jet.zi_jet`` when the side models have random effects), so a new base family
needs no new calculus. ``mean`` is glmmTMB's ``predict(type = "response")``,
(1 - p) E_f[Y].

Example
-------
>>> import numpy as np
>>> from interlace.families.negbin1 import NegativeBinomial1Family
>>> fam = ZeroInflatedFamily(NegativeBinomial1Family())
>>> fam.aux_blocks, fam.name
(('disp', 'zi'), 'nbinom1')
>>> d = fam.derivs(np.array([0.0, 2.0]), np.ones(2), np.zeros(2), {"disp": np.zeros(2), "zi": np.zeros(2)}, 0)
>>> bool(d.l[0] > np.log(0.5))
True
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import special

from interlace.families.base import apply_zprob
from interlace.families.likelihood import (
    LikelihoodFamily,
    Parts,
    chain_parts,
    check_counts,
    poisson_parts,
    zero_inflate,
)

__all__ = ["ZeroInflatedFamily", "PoissonLikelihood", "BinomialLikelihood"]


class PoissonLikelihood(LikelihoodFamily):
    """The Poisson log-likelihood with log link, as a base for zero inflation.

    >>> PoissonLikelihood().aux_blocks
    ()
    """

    name = "poisson"

    def parts(self, y, eta, lphi, order) -> Parts:
        return poisson_parts(np.asarray(y, dtype=float), eta, order)

    def simulate(self, mu, wt, rng, params):
        return rng.poisson(mu).astype(float)

    def row_dispersion(self, aux):
        return None


class BinomialLikelihood(LikelihoodFamily):
    """The binomial log-likelihood (y a proportion of ``wt`` trials), as a base for zero
    inflation: log dbinom(k, n, mu) with k = y n, each row counted once (glmmTMB).

    >>> BinomialLikelihood().link.name
    'logit'
    """

    name = "binomial"
    allowed_links = ("logit", "probit", "cloglog", "cauchit", "log")

    def start_eta(self, y):
        return np.asarray(self.linkfun(np.clip(np.asarray(y, dtype=float), 0.05, 0.95)), dtype=float)

    def parts_w(self, y, wt, eta, lphi, order):
        n = np.asarray(wt, dtype=float)
        k = np.rint(np.asarray(y, dtype=float) * n)
        lc = special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)
        if self.link.name == "logit":
            mu = special.expit(eta)
            P = Parts(g=lc + k * eta - n * np.logaddexp(0.0, eta))
            if order >= 1:
                v = n * mu * (1.0 - mu)
                P.e, P.ee = k - n * mu, -v
                if order >= 2:
                    P.eee = -v * (1.0 - 2.0 * mu)
            return P, np.ones_like(n)
        mu = np.clip(self.linkinv(eta), 1e-300, 1.0 - 1e-16)
        g = lc + special.xlogy(k, mu) + special.xlog1py(n - k, -mu)
        g1 = k / mu - (n - k) / (1.0 - mu)
        g2 = -k / mu ** 2 - (n - k) / (1.0 - mu) ** 2
        g3 = 2.0 * k / mu ** 3 - 2.0 * (n - k) / (1.0 - mu) ** 3
        return chain_parts(self.link, eta, g, (g1, g2, g3), None, order), np.ones_like(n)

    def mean(self, eta, aux):
        return np.asarray(self.linkinv(eta), dtype=float)

    def variance(self, mu):
        mu = np.asarray(mu, dtype=float)
        return mu * (1.0 - mu)

    def simulate(self, mu, wt, rng, params):
        n = np.rint(np.broadcast_to(np.asarray(wt, dtype=float), mu.shape)).astype(np.int64)
        return rng.binomial(n, np.clip(mu, 0.0, 1.0)) / np.maximum(n, 1)

    def row_dispersion(self, aux):
        return None

    def validate_response(self, y, wt, column):
        y = np.asarray(y, dtype=float)
        if np.any(~np.isfinite(y) | (y < 0) | (y > 1)):
            raise ValueError(f"binomial response {column!r} must be a proportion in [0, 1]")


class ZeroInflatedFamily(LikelihoodFamily):
    """Zero inflation over ``base`` (a :class:`LikelihoodFamily` with ``parts``).

    The family keeps its base's name (glmmTMB: ``family = nbinom1`` with a ``ziformula``)."""

    engine = "general"

    def __init__(self, base: LikelihoodFamily) -> None:
        self.base = base
        self.name = base.name
        self.link = base.link
        self.allowed_links = base.allowed_links
        self.aux_blocks = tuple(base.aux_blocks) + ("zi",)
        self.fixed_aux = dict(base.fixed_aux)
        self.params = dict(base.params)
        self.param_bounds = dict(getattr(base, "param_bounds", {}))
        self.param_start = dict(getattr(base, "param_start", {}))
        self.disp_meaning = getattr(base, "disp_meaning", "log dispersion")
        self.estimates_scale = getattr(base, "estimates_scale", False)

    def __copy__(self):
        new = ZeroInflatedFamily.__new__(ZeroInflatedFamily)
        new.__dict__.update(self.__dict__)
        new.base = copy.copy(self.base)
        new.params = dict(self.params)
        return new

    # ---- the likelihood ---------------------------------------------------------
    def _base_parts(self, y, wt, eta, lphi, order):
        """Base parts at every row; where f(0) = 0 (a continuous base) the zeros' parts are
        taken at a harmless response and their density set to 0 (all zeros structural)."""
        y = np.asarray(y, dtype=float)
        zero = y == 0
        with np.errstate(all="ignore"):
            P, lw = self.base.parts_w(y, wt, eta, lphi, order)
        if not zero.any() or np.all(np.isfinite(P.g[zero])):
            return P, lw
        pos = y[~zero]
        ys = np.where(zero, float(np.median(pos)) if pos.size else 1.0, y)
        P, lw = self.base.parts_w(ys, wt, eta, lphi, order)
        P.g = np.where(zero, -np.inf, P.g)
        return P, lw

    def parts_w(self, y, wt, eta, lphi, order):
        return self._base_parts(y, wt, eta, lphi, order)

    def derivs(self, y, wt, eta, aux, order=2):
        P, lw = self._base_parts(y, wt, eta, aux.get("disp"), order)
        return zero_inflate(P, np.asarray(y, dtype=float), lw, aux["zi"], order, "disp" in self.base.aux_blocks)

    def jet(self, y, wt, eta, aux, names, order=3, aux_re=None):
        """Exact per-row derivatives in (eta, disp, zi) for the joint Laplace approximation."""
        from interlace.general.jet import _H, zi_jet

        lphi = aux.get("disp")
        P, lw = self._base_parts(y, wt, eta, lphi, 2)
        if lphi is not None and aux_re is not None and "disp" not in aux_re:
            # no random effects in the dispersion model: its second and third derivatives are unused
            zero = np.zeros_like(P.g)
            P.pp, P.epp, P.ppp = (zero if P.pp is None else P.pp), zero, zero
        if lphi is not None and (P.pp is None or (order >= 3 and (P.epp is None or P.ppp is None))):
            # central differences of the exact p and ep (the Hessian needs pp only)
            Pp, _ = self._base_parts(y, wt, eta, lphi + _H, 2)
            Pm, _ = self._base_parts(y, wt, eta, lphi - _H, 2)
            if P.pp is None:
                P.pp = (Pp.p - Pm.p) / (2 * _H)
            if P.epp is None:
                P.epp = (Pp.ep - Pm.ep) / (2 * _H)
            if P.ppp is None:
                P.ppp = (Pp.pp - Pm.pp) / (2 * _H) if Pp.pp is not None else (Pp.p - 2.0 * P.p + Pm.p) / _H ** 2
        return zi_jet(P, lw, np.asarray(y, dtype=float), aux["zi"], names, order)

    # ---- what the result and post-fit use ------------------------------------------
    def mean(self, eta, aux):
        return (1.0 - special.expit(aux["zi"])) * np.asarray(self.base.mean(eta, aux), dtype=float)

    def conditional_mean(self, eta, aux=None):
        """The base family's mean (glmmTMB's ``predict(type = "conditional")``)."""
        return np.asarray(self.base.mean(np.asarray(eta, dtype=float), aux or {}), dtype=float)

    def variance(self, mu):
        return self.base.variance(mu)

    def pearson_variance(self, mu, aux):
        return self.base.pearson_variance(mu, aux)

    def dev_resids(self, y, mu, wt):
        return self.base.dev_resids(y, mu, wt)

    def row_dispersion(self, aux):
        return self.base.row_dispersion(aux)

    def initialize(self, y, wt):
        return self.base.initialize(y, wt)

    def start_eta(self, y):
        y = np.asarray(y, dtype=float)
        pos = y[y != 0]
        fill = float(np.mean(pos)) if pos.size else 1.0
        return self.base.start_eta(np.where(y == 0, fill, y))

    def aux_default(self, block, y=None):
        if block == "zi":
            return 0.0
        if y is not None:
            y = np.asarray(y, dtype=float)
            y = y[y != 0] if np.any(y != 0) else y
        return self.base.aux_default(block, y)

    def simulate(self, mu, wt, rng, params):
        base = {k: v for k, v in params.items() if k != "zprob"}
        return apply_zprob(self.base.simulate(mu, wt, rng, base), params, rng)

    def natural_params(self, coefs):
        out = dict(self.base.natural_params(coefs))
        z = coefs.get("zi", {})
        if list(z) == ["Intercept"]:
            out["pi"] = float(special.expit(z["Intercept"]))
        return out

    def validate_response(self, y, wt, column):
        y = np.asarray(y, dtype=float)
        if np.any(~np.isfinite(y)):
            raise ValueError(f"response {column!r} has non-finite values")
        nz = y != 0
        if nz.any():
            self.base.validate_response(y[nz], np.asarray(wt, dtype=float)[nz] if np.ndim(wt) else wt, column)
        else:
            check_counts(y, column, self.name)

    def __repr__(self) -> str:
        return f"ZeroInflatedFamily({self.base!r})"
