"""glmmTMB's zero-truncated count families: ``truncated_poisson``, ``truncated_nbinom1``,
``truncated_nbinom2``.

Without ``ziformula`` the response has no zeros and P(Y = y) = f(y) / (1 - f(0)) for y >= 1,
f the Poisson / NB1 / NB2 density with mean mu = exp(eta) (the untruncated mean; the dispersion
as in nbinom1 / nbinom2). With ``ziformula`` glmmTMB fits the hurdle model: P(0) = p, positives
from the truncated f with probability 1 - p. :meth:`parts` gives log f(y) - log(1 - f(0))
with log density -inf at zero, so zero inflation of these families *is* the hurdle (glmmTMB's
likelihood: log(p + (1 - p) 0) = log p at a zero).

The derivatives of h = -log(1 - e^{g0}), g0 = log f(0), follow from g0's by the chain rule with
q = f(0) / (1 - f(0)): dh = q dg0, dq = q (1 + q) dg0 (the same composition as
``likelihood.hurdle``).

Example
-------
>>> import numpy as np
>>> fam = TruncatedPoissonFamily()
>>> d = fam.derivs(np.array([1.0]), np.ones(1), np.zeros(1), {}, 0)
>>> bool(np.isclose(d.l[0], np.log(np.exp(-1.0) / (1 - np.exp(-1.0)))))
True
"""

from __future__ import annotations

import numpy as np

from interlace.families.base import apply_zprob, fitted_param
from interlace.families.genpois import GeneralizedPoissonFamily
from interlace.families.likelihood import Parts, _from_parts, check_counts, poisson_parts
from interlace.families.likelihood import LikelihoodFamily as _LikelihoodFamily
from interlace.families.negbin1 import NegativeBinomial1Family
from interlace.families.negbin2 import NegativeBinomial2Family

__all__ = ["TruncatedPoissonFamily", "TruncatedNB1Family", "TruncatedNB2Family", "TruncatedGenpoisFamily",
           "truncate_parts"]


def truncate_parts(P: Parts, P0: Parts, y: np.ndarray, order: int, has_disp: bool) -> Parts:
    """Parts of log f(y) - log(1 - f(0)) from those of log f(y) (P) and log f(0) (P0);
    -inf (with zero derivatives) at y = 0."""
    pos = np.asarray(y) > 0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        h = -np.log(-np.expm1(np.minimum(P0.g, -1e-300)))
        out = Parts(g=np.where(pos, P.g + h, -np.inf))
        if order < 1:
            return out
        q = np.where(pos, 1.0 / np.expm1(-P0.g), 0.0)
    qq = q * (1.0 + q)
    z = np.zeros_like(q)
    out.e = np.where(pos, P.e + q * P0.e, z)
    out.ee = np.where(pos, P.ee + q * P0.ee + qq * P0.e ** 2, z)
    if order < 2:
        return out
    out.eee = np.where(pos, P.eee + q * P0.eee + 3.0 * qq * P0.e * P0.ee + qq * (1.0 + 2.0 * q) * P0.e ** 3, z)
    if has_disp:
        out.p = np.where(pos, P.p + q * P0.p, z)
        out.ep = np.where(pos, P.ep + q * P0.ep + qq * P0.p * P0.e, z)
        out.eep = np.where(pos, P.eep + qq * P0.p * P0.ee + q * P0.eep + qq * (1.0 + 2.0 * q) * P0.p * P0.e ** 2
                           + 2.0 * qq * P0.e * P0.ep, z)
    return out


class _Truncated:
    """What the three truncated families share (mixed in before their base family)."""

    def zero_inflated_family(self):
        """None: with a ziformula a truncated family is glmmTMB's hurdle model (the generic
        zero model of engine_general), not its base family's zero-inflated version."""
        return None

    def derivs(self, y, wt, eta, aux, order=2):
        y = np.asarray(y, dtype=float)
        if np.any(y == 0):  # only a hurdle (ziformula) gives zeros a probability
            raise ValueError(f"the {self.name} family has no zeros: the response has {int((y == 0).sum())} "
                             "zero(s); add a ziformula (glmmTMB's hurdle model) or drop them")
        P = self.parts(y, eta, aux.get("disp"), order)
        return _from_parts(P, wt, order, "disp" in self.aux_blocks)

    def parts(self, y, eta, lphi, order) -> Parts:
        y = np.asarray(y, dtype=float)
        P = self._base_parts(y, eta, lphi, order)
        P0 = self._base_parts(np.zeros_like(y), eta, lphi, order)
        return truncate_parts(P, P0, y, order, lphi is not None)

    def p_zero(self, mu: np.ndarray, aux: dict) -> np.ndarray:
        """f(0) of the untruncated density at mean mu."""
        raise NotImplementedError

    def mean(self, eta, aux):
        """E[Y] = mu / (1 - f(0)) (glmmTMB's ``predict(type = "response")``)."""
        mu = np.exp(np.asarray(eta, dtype=float))
        return mu / (1.0 - self.p_zero(mu, aux))

    def conditional_mean(self, eta, aux=None):
        """Mean of the truncated count part (glmmTMB's ``type = "conditional"``)."""
        return self.mean(eta, aux or self._aux_rows(np.shape(eta)))

    def _aux_rows(self, shape):
        return {k: np.full(shape, v) for k, v in self._aux_values().items()}

    def start_eta(self, y):
        y = np.asarray(y, dtype=float)
        return np.log(np.maximum(y, 1.0))

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


def _ztp_draws(lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zero-truncated Poisson(lam) by inversion of the truncated CDF."""
    from scipy import stats  # simulation only: scipy.stats costs ~0.5 s of CPU to import

    p0 = np.exp(-lam)
    u = p0 + rng.uniform(size=lam.shape) * (1.0 - p0)
    return np.maximum(stats.poisson.ppf(u, lam), 1.0)


def _ztnb_draws(size: np.ndarray, prob: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zero-truncated NB(size, prob) by inversion (as glmmTMB's rtruncated_nbinom)."""
    from scipy import stats  # simulation only

    p0 = stats.nbinom.pmf(0, size, prob)
    u = p0 + rng.uniform(size=np.shape(size)) * (1.0 - p0)
    return np.maximum(stats.nbinom.ppf(u, size, prob), 1.0)


class TruncatedPoissonFamily(_Truncated, _LikelihoodFamily):
    """Zero-truncated Poisson, log link; with ``ziformula`` the hurdle Poisson.

    >>> TruncatedPoissonFamily().aux_blocks
    ()
    """

    name = "truncated_poisson"
    aux_blocks = ()

    def _base_parts(self, y, eta, lphi, order):
        return poisson_parts(y, eta, order)

    def p_zero(self, mu, aux):
        return np.exp(-mu)

    def row_dispersion(self, aux):
        return None

    def variance(self, mu):
        """Var(Y) of the truncated Poisson with untruncated mean mu (glmmTMB's variance is in
        the untruncated mean: mu)."""
        return np.asarray(mu, dtype=float)

    def simulate(self, mu, wt, rng, params):
        """Zero-truncated Poisson draws (``mu`` is the untruncated mean, linkinv(eta))."""
        return apply_zprob(_ztp_draws(np.asarray(mu, dtype=float), rng), params, rng)


class TruncatedNB1Family(_Truncated, NegativeBinomial1Family):
    """Zero-truncated NB1 (Var = mu (1 + phi) before truncation); with ``ziformula`` the hurdle NB1.

    >>> TruncatedNB1Family(phi=2.0).params
    {'phi': 2.0}
    """

    name = "truncated_nbinom1"

    def _base_parts(self, y, eta, lphi, order):
        return NegativeBinomial1Family.parts(self, y, eta, lphi, order)

    def p_zero(self, mu, aux):
        phi = np.exp(aux["disp"]) if "disp" in aux else self.params["phi"]
        return np.exp(-mu / phi * np.log1p(phi))

    def dev_resids_at(self, y, mu, wt, aux):
        return _LikelihoodFamily.dev_resids_at(self, y, mu, wt, aux)

    def simulate(self, mu, wt, rng, params):
        """Zero-truncated NB1 draws (``mu`` is the untruncated mean, linkinv(eta))."""
        mu = np.asarray(mu, dtype=float)
        phi = fitted_param(params, "phi", self.name)
        size = np.broadcast_to(mu / phi, mu.shape)
        return apply_zprob(_ztnb_draws(size, np.broadcast_to(1.0 / (1.0 + phi), mu.shape), rng), params, rng)


class TruncatedNB2Family(_Truncated, NegativeBinomial2Family):
    """Zero-truncated NB2 (Var = mu + mu^2 / theta before truncation); with ``ziformula`` the
    hurdle NB2.

    >>> TruncatedNB2Family(theta=2.0).params
    {'theta': 2.0}
    """

    name = "truncated_nbinom2"

    def _base_parts(self, y, eta, lphi, order):
        return NegativeBinomial2Family.parts(self, y, eta, lphi, order)

    def p_zero(self, mu, aux):
        th = np.exp(aux["disp"]) if "disp" in aux else self.params["theta"]
        return np.exp(-th * np.log1p(mu / th))

    def dev_resids_at(self, y, mu, wt, aux):
        return _LikelihoodFamily.dev_resids_at(self, y, mu, wt, aux)

    def simulate(self, mu, wt, rng, params):
        """Zero-truncated NB2 draws (``mu`` is the untruncated mean, linkinv(eta))."""
        mu = np.asarray(mu, dtype=float)
        th = np.broadcast_to(fitted_param(params, "theta", self.name), mu.shape)
        return apply_zprob(_ztnb_draws(th, th / (th + mu), rng), params, rng)


class TruncatedGenpoisFamily(_Truncated, GeneralizedPoissonFamily):
    """Zero-truncated generalized Poisson (glmmTMB's ``truncated_genpois``: Var = phi mu before
    truncation, f(0) = exp(-mu / sqrt(phi))); with ``ziformula`` the hurdle genpois.

    >>> TruncatedGenpoisFamily(phi=2.0).params
    {'phi': 2.0}
    """

    name = "truncated_genpois"

    def _base_parts(self, y, eta, lphi, order):
        return GeneralizedPoissonFamily.parts(self, y, eta, lphi, order)

    def p_zero(self, mu, aux):
        phi = np.exp(aux["disp"]) if "disp" in aux else self.params["phi"]
        return np.exp(-mu / np.sqrt(phi))

    def dev_resids_at(self, y, mu, wt, aux):
        return _LikelihoodFamily.dev_resids_at(self, y, mu, wt, aux)

    def simulate(self, mu, wt, rng, params):
        """Generalized Poisson draws (``mu`` untruncated), zeros redrawn (at most 1000 rounds;
        P(0) = exp(-mu / sqrt(phi)) < 1 so each round keeps a fixed share)."""
        base = {k: v for k, v in params.items() if k != "zprob"}
        y = GeneralizedPoissonFamily.simulate(self, mu, wt, rng, base)
        for _ in range(1000):
            zero = y == 0
            if not zero.any():
                break
            sub = {k: (np.broadcast_to(v, y.shape)[zero] if np.ndim(v) else v) for k, v in base.items()
                   if k in ("phi", "dispersion")}
            y[zero] = GeneralizedPoissonFamily.simulate(self, np.broadcast_to(mu, y.shape)[zero], wt, rng, sub)
        return apply_zprob(np.maximum(y, 1.0), params, rng)
