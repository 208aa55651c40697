"""interlace-delaporte: the Delaporte distribution as an interlace family plugin.

Y | g ~ Poisson(mu g) with g = nu + (1 - nu) Z, Z ~ Gamma(shape 1/sigma, scale sigma): a
Poisson mixed with a shifted gamma (gamlss.dist's ``DEL(mu, sigma, nu)``, Rigby et al. 2019,
section 22.3.1). E[Y] = mu, Var(Y) = mu + sigma mu^2 (1 - nu)^2. Equivalently
Y = X1 + X2 with independent X1 ~ Poisson(mu nu) and X2 ~ NB2(mean mu (1 - nu), size 1/sigma):
a Poisson floor (nu) under negative-binomial overdispersion. nu -> 0 is the NB2 with
theta = 1/sigma, nu -> 1 the Poisson. No peer mixed-model package offers it.

log(mu) = eta is the conditional model (random effects allowed); log(sigma) is the family's
"disp" parameter (estimated, modelled by ``dispformula`` or held fixed with ``sigma=``);
logit(nu) is the "nu" parameter (estimated, or held fixed with ``nu=``).

The density is the sum over the split j = X2 of the terms
w_j = Poisson(y - j; mu nu) NB(j; 1/sigma, mu (1 - nu)), j = 0..y. Every derivative of
log f = log sum_j w_j follows from those of log w_j under the weights pi_j = w_j / f:
d log f = E[d log w], d2 = E[d2] + Var(d), d3 = E[d3] + 3 Cov(d2, d) + E[(d - E d)^3]
(with the mixed versions for eta and an aux parameter), all exact.

    >>> import interlace                                                    # doctest: +SKIP
    >>> m = interlace.glmer("TICKS ~ YEAR + (1 | LOCATION)", interlace.datasets.load("grouseticks"),
    ...                     family="delaporte")                              # doctest: +SKIP
    >>> m.family_params["sigma"], m.family_params["nu"]                     # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from interlace.families.likelihood import Derivs, LikelihoodFamily, as_fixed, check_counts
from interlace.plugins import hookimpl

__all__ = ["DelaporteFamily", "DelaporteDerivs", "delaporte_derivs", "delaporte_logpmf",
           "interlace_register_families"]
__version__ = "0.1.0"


@dataclass
class DelaporteDerivs:
    """The log density g per row and its derivatives in eta = log(mu) (e, ee, eee),
    s = log(sigma) (s, es, ees) and a = logit(nu) (a, ea, eea); None above ``order``."""

    g: np.ndarray
    e: np.ndarray | None = None
    ee: np.ndarray | None = None
    eee: np.ndarray | None = None
    s: np.ndarray | None = None
    es: np.ndarray | None = None
    ees: np.ndarray | None = None
    a: np.ndarray | None = None
    ea: np.ndarray | None = None
    eea: np.ndarray | None = None


def _terms(y: np.ndarray):
    """The flattened (row, j) pairs j = 0..y_i: row index, j, y of the row, segment starts."""
    n1 = y.astype(np.int64) + 1
    starts = np.concatenate(([0], np.cumsum(n1)[:-1]))
    row = np.repeat(np.arange(y.size), n1)
    j = (np.arange(int(n1.sum())) - np.repeat(starts, n1)).astype(float)
    return row, j, starts


def delaporte_derivs(y: np.ndarray, eta: np.ndarray, lsigma: np.ndarray, anu: np.ndarray,
                     order: int) -> DelaporteDerivs:
    """Log density of DEL(mu = e^eta, sigma = e^lsigma, nu = expit(anu)) and, for ``order`` >= 1,
    its derivatives in eta (e, ee; order 2 adds eee and those in log(sigma) and logit(nu)).

    Per term j (k = 1/sigma, m2 = mu (1 - nu), q = m2 / (k + m2), r = 1 / (k + m2)):
    log w_j = (y - j) log(mu nu) - mu nu - log (y - j)! + lgamma(k + j) - lgamma(k) - log j!
              + k log(1 - q) + j log q, and
    d_e = y - mu nu - (k + j) q, d_ee = -mu nu - (k + j) q (1 - q),
    d_eee = -mu nu - (k + j) q (1 - q) (1 - 2q);
    d_s = -k (psi(k + j) - psi(k) + log(1 - q) + q - j r), d_es = k q (q - j r),
    d_ees = k q (1 - q) - k (k + j) (1 - 2q) q r;
    d_a = (1 - nu) y - j - nu (1 - nu) mu + nu (k + j) q, d_ea = -nu (1 - nu) mu + nu (k + j) q (1 - q),
    d_eea = -nu (1 - nu) mu + nu (k + j) q (1 - q) (1 - 2q)."""
    y = np.asarray(y, dtype=float)
    shape = y.shape
    y = y.ravel()
    eta = np.broadcast_to(np.asarray(eta, dtype=float), shape).ravel()
    ls = np.broadcast_to(np.asarray(lsigma, dtype=float), shape).ravel()
    an = np.broadcast_to(np.asarray(anu, dtype=float), shape).ravel()
    row, j, starts = _terms(y)
    # per-row quantities
    k = np.exp(-ls)
    lnu, l1nu = -np.logaddexp(0.0, -an), -np.logaddexp(0.0, an)  # log(nu), log(1 - nu)
    nu = np.exp(lnu)
    mu = np.exp(eta)
    lm2 = eta + l1nu
    lkm = np.logaddexp(lm2, -ls)  # log(k + m2)
    lq = lm2 - lkm
    l1q = -ls - lkm  # log(1 - q) = log(k / (k + m2))
    q = np.exp(lq)
    lam = mu * nu
    # per-term log w_j
    yr, kr = y[row], k[row]
    ymj = yr - j
    lw = (ymj * (eta + lnu)[row] - lam[row] - special.gammaln(ymj + 1.0) + special.gammaln(kr + j)
          - special.gammaln(kr) - special.gammaln(j + 1.0) + kr * l1q[row] + j * lq[row])
    mx = np.maximum.reduceat(lw, starts)
    pw = np.exp(lw - mx[row])
    tot = np.add.reduceat(pw, starts)
    out = DelaporteDerivs(g=(mx + np.log(tot)).reshape(shape))
    if order < 1:
        return out
    pi = pw / tot[row]

    def E(v):
        return np.add.reduceat(pi * v, starts)

    qr = q[row]
    kj = kr + j
    q1 = qr * (1.0 - qr)
    d_e = yr - lam[row] - kj * qr
    d_ee = -lam[row] - kj * q1
    m_e = E(d_e)
    c_e = d_e - m_e[row]
    out.e = m_e.reshape(shape)
    out.ee = (E(d_ee) + E(c_e * c_e)).reshape(shape)
    if order < 2:
        return out
    q12 = q1 * (1.0 - 2.0 * qr)
    d_eee = -lam[row] - kj * q12
    c_ee = d_ee - E(d_ee)[row]
    out.eee = (E(d_eee) + 3.0 * E(c_ee * c_e) + E(c_e ** 3)).reshape(shape)

    def block(d_b, d_eb, d_eeb):
        m_b = E(d_b)
        c_b = d_b - m_b[row]
        c_eb = d_eb - E(d_eb)[row]
        l_b = m_b
        l_eb = E(d_eb) + E(c_e * c_b)
        l_eeb = E(d_eeb) + E(c_ee * c_b) + 2.0 * E(c_eb * c_e) + E(c_e * c_e * c_b)
        return l_b.reshape(shape), l_eb.reshape(shape), l_eeb.reshape(shape)

    rr = np.exp(-lkm)[row]
    d_s = -kr * (special.digamma(kj) - special.digamma(kr) + l1q[row] + qr - j * rr)
    d_es = kr * qr * (qr - j * rr)
    d_ees = kr * q1 - kr * kj * (1.0 - 2.0 * qr) * qr * rr
    out.s, out.es, out.ees = block(d_s, d_es, d_ees)
    nr = nu[row]
    c0 = (nu * np.exp(l1nu) * mu)[row]
    d_a = np.exp(l1nu)[row] * yr - j - c0 + nr * kj * qr
    d_ea = -c0 + nr * kj * q1
    d_eea = -c0 + nr * kj * q12
    out.a, out.ea, out.eea = block(d_a, d_ea, d_eea)
    return out


def delaporte_logpmf(y, mu, sigma, nu) -> np.ndarray:
    """log P(Y = y) of DEL(mu, sigma, nu) (gamlss.dist's parametrisation).

    >>> round(float(np.exp(delaporte_logpmf(0.0, 2.0, 0.5, 0.3))), 6)  # e^(-mu nu) (1 + mu sigma (1 - nu))^(-1/sigma)
    0.1899
    """
    y = np.asarray(y, dtype=float)
    shape = np.broadcast_shapes(y.shape, np.shape(mu), np.shape(sigma), np.shape(nu))
    y = np.broadcast_to(y, shape)
    return delaporte_derivs(y, np.log(mu), np.log(sigma), special.logit(nu), 0).g


class DelaporteFamily(LikelihoodFamily):
    """Delaporte with log link for mu, log(sigma) ("disp") and logit(nu) ("nu") as the family
    parameters; ``sigma`` or ``nu`` given -> held fixed.

    >>> DelaporteFamily(nu=0.25).params
    {'nu': 0.25}
    """

    name = "delaporte"
    aux_blocks = ("disp", "nu")
    disp_meaning = "log(sigma)"

    def __init__(self, link: str = "log", sigma: float | None = None, nu: float | None = None) -> None:
        super().__init__(link)
        self.hold_disp(sigma, "sigma")
        v = as_fixed(nu, "nu")
        if v is not None:
            if not v < 1.0:
                raise ValueError(f"nu must lie in (0, 1), got {nu!r}")
            self.fixed_aux["nu"] = float(special.logit(v))
            self.params["nu"] = v

    def derivs(self, y, wt, eta, aux, order=2) -> Derivs:
        wt = np.asarray(wt, dtype=float)
        D = delaporte_derivs(y, eta, aux["disp"], aux["nu"], order)
        out = Derivs(l=wt * D.g)
        if order >= 1:
            out.e, out.ee = wt * D.e, wt * D.ee
        if order >= 2:
            out.eee = wt * D.eee
            out.aux["disp"] = (wt * D.s, wt * D.es, wt * D.ees)
            out.aux["nu"] = (wt * D.a, wt * D.ea, wt * D.eea)
        return out

    def aux_default(self, block, y=None):
        """nu starts at 0.3; sigma from the moments, Var = mean + sigma mean^2 (1 - 0.3)^2."""
        if block == "nu":
            return float(special.logit(0.3))
        if y is None:
            return 0.0
        y = np.asarray(y, dtype=float)
        m = max(float(np.mean(y)), 1e-3)
        return float(np.log(max((float(np.var(y)) - m) / (m * m * 0.49), 0.05)))

    def _nu(self, aux) -> np.ndarray:
        return special.expit(np.asarray(aux["nu"], dtype=float))

    def mean(self, eta, aux):
        return np.exp(eta)

    def variance(self, mu):
        vals = self._aux_values()
        sig = self.params.get("sigma", float(np.exp(vals["disp"])))
        nu = self.params.get("nu", float(special.expit(vals["nu"])))
        mu = np.asarray(mu, dtype=float)
        return mu + sig * mu * mu * (1.0 - nu) ** 2

    def pearson_variance(self, mu, aux):
        mu = np.asarray(mu, dtype=float)
        return mu + np.exp(np.asarray(aux["disp"], dtype=float)) * mu * mu * (1.0 - self._nu(aux)) ** 2

    def simulate(self, mu, wt, rng, params):
        """Poisson(mu nu) + NB2(mean mu (1 - nu), size 1/sigma)."""
        sig = params.get("dispersion") if params.get("dispersion") is not None else params["sigma"]
        sig = np.broadcast_to(np.asarray(sig, dtype=float), mu.shape)
        aux = params.get("aux") or {}
        nu = self._nu(aux) if "nu" in aux else np.asarray(params["nu"], dtype=float)
        nu = np.broadcast_to(nu, mu.shape)
        k = 1.0 / sig
        m2 = mu * (1.0 - nu)
        y = rng.poisson(mu * nu) + rng.negative_binomial(k, k / (k + m2))
        zp = params.get("zprob")
        y = y.astype(float)
        return y if zp is None else np.where(rng.uniform(size=y.shape) < zp, 0.0, y)

    def natural_params(self, coefs):
        out = {}
        d = coefs.get("disp", {})
        if list(d) == ["Intercept"]:
            out["sigma"] = float(np.exp(d["Intercept"]))
        a = coefs.get("nu", {})
        if list(a) == ["Intercept"]:
            out["nu"] = float(special.expit(a["Intercept"]))
        return out

    def validate_response(self, y, wt, column):
        check_counts(y, column, "delaporte")
        y = np.asarray(y, dtype=float)
        if np.any(y != np.round(y)):
            raise ValueError(f"delaporte response {column!r} must hold whole counts "
                             f"({int(np.sum(y != np.round(y)))} value(s) are not)")


@hookimpl
def interlace_register_families(registry) -> None:
    """Register ``"delaporte"``."""
    registry.add("delaporte", DelaporteFamily)
