"""Families outside the exponential-family/PIRLS world (glmmTMB's families).

A :class:`LikelihoodFamily` supplies the per-observation log-likelihood
l_i(eta_i, aux_i) and its derivatives, where ``aux`` are per-row linear
predictors of the family's own parameters ("disp": log theta, log phi, log
shape, log sigma^2; "zi": logit of the zero-inflation / hurdle probability;
others such as zoib's "coi"). The general engine (``interlace.engine_general``)
runs Newton on the spherical random effects and Laplace's approximation on
top, with exact outer gradients built from:

    l, dl/deta, d2l/deta2, d3l/deta3,
    and per aux block a: dl/da, d2l/deta da, d3l/deta2 da.

Base distributions return a :class:`Parts` (log density g and derivatives in
eta and in its dispersion); the zero-inflation and hurdle wrappers combine
them by the chain rule, so ZINB, ZIP and hurdle models need no new calculus.

Example
-------
>>> import numpy as np
>>> from interlace.families.negbin2 import NegativeBinomial2Family
>>> fam = NegativeBinomial2Family()
>>> d = fam.derivs(np.array([3.0]), np.ones(1), np.array([0.5]), {"disp": np.array([0.2])}, order=1)
>>> bool(d.ee[0] < 0)
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

from interlace.families.base import FamilyTraits, poisson_dev_resids
from interlace.families.links import Link, get_link

__all__ = ["Parts", "Derivs", "LikelihoodFamily", "zero_inflate", "hurdle", "chain_parts", "check_counts",
           "check_open_unit", "check_positive", "central_parts", "SigmaScale", "nb2_tables"]


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


@dataclass
class Parts:
    """Log density g of one component per row, with derivatives in eta (e, ee,
    eee) and in the log-dispersion (p, ep, eep; None without dispersion)."""

    g: np.ndarray
    e: np.ndarray | None = None
    ee: np.ndarray | None = None
    eee: np.ndarray | None = None
    p: np.ndarray | None = None
    ep: np.ndarray | None = None
    eep: np.ndarray | None = None
    #: optional second and third derivatives in p (random effects in dispformula);
    #: where a family leaves them None they are taken by central differences of p and ep
    pp: np.ndarray | None = None
    epp: np.ndarray | None = None
    ppp: np.ndarray | None = None


@dataclass
class Derivs:
    """Weighted per-row log-likelihood and derivatives the engine needs.

    ``aux[name] = (dl/da, d2l/deta da, d3l/deta2 da)`` per aux block."""

    l: np.ndarray
    e: np.ndarray | None = None
    ee: np.ndarray | None = None
    eee: np.ndarray | None = None
    aux: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)


class LikelihoodFamily(FamilyTraits):
    """Base class of the general-likelihood families.

    Subclasses set ``name``, ``aux_blocks`` (e.g. ``("disp",)``), the default
    link and implement :meth:`parts` (the base distribution) and :meth:`mean`.
    A parameter given to the constructor (``theta=2.0``) is held fixed: its
    block is then not estimated (``fixed_aux``).
    """

    name: str = "likelihood"
    aux_blocks: tuple[str, ...] = ()
    allowed_links: tuple[str, ...] = ("log",)
    fast_path = None
    estimates_scale = False
    canonical = False
    #: glmer fits these with the general-likelihood engine (glmmTMB's model), not PIRLS
    engine = "general"
    #: what the raw "disp" coefficients model, for the result's description
    disp_meaning: str = "log dispersion"

    @property
    def zero_model(self) -> str | None:  # type: ignore[override]
        """"zi" when the family has a zero-inflation block (a plugin's default too)."""
        return "zi" if "zi" in self.aux_blocks else None

    def __init__(self, link: str | Link | None = None) -> None:
        link = self.allowed_links[0] if link is None else link
        if isinstance(link, str) and link not in self.allowed_links:
            raise ValueError(f"link {link!r} is not available for the {self.name} family; "
                             f"use one of {', '.join(self.allowed_links)}")
        self.link: Link = get_link(link)
        if self.link.name not in self.allowed_links:
            raise ValueError(f"link {self.link.name!r} is not supported by the {self.name} family")
        self.fixed_aux: dict[str, float] = {}
        self.params: dict[str, float] = {}
        self.param_bounds: dict[str, tuple[float, float]] = {}
        self.param_start: dict[str, float] = {}

    def hold_disp(self, value: Any, name: str) -> None:
        """Hold the dispersion block at log(``value``) when a value is given (``params[name]``
        reports it): the ``phi=`` / ``theta=`` / ``sigma=`` / ``shape=`` argument of a family."""
        v = as_fixed(value, name)
        if v is not None:
            self.fixed_aux["disp"] = float(np.log(v))
            self.params[name] = v

    # ---- protocol pieces (GLMMFamily) -------------------------------------------
    def linkfun(self, mu):
        return self.link.link(mu)

    def linkinv(self, eta):
        return self.link.linkinv(eta)

    def mu_eta(self, eta):
        return self.link.mu_eta(eta)

    def variance(self, mu):
        """Variance function at the fitted (or fixed) family parameters."""
        return _arr(mu)

    def dev_resids(self, y, mu, wt):
        """-2 (loglik(y | mu) - loglik(y | y)) is not defined for every family here;
        the Poisson-type deviance is returned as a descriptive quantity."""
        return poisson_dev_resids(y, mu, wt)

    def dev_resids_at(self, y, mu, wt, aux: dict[str, np.ndarray]) -> np.ndarray:
        """Per-row deviances at the fitted family parameters (``aux``: the per-row
        linear predictors of the family's sub-models); the deviance residuals are
        sign(y - mu) sqrt of these.

        Default: the likelihood deviance 2 (sup_m l(y | m) - l(y | mu)) with the
        family parameters held at their fitted values, the supremum found by a
        safeguarded Newton search in eta (a family whose density is maximal at
        m = y overrides this with its closed form). Families with an
        exponential-family unit deviance (R's unscaled ``dev.resids``) return
        :meth:`dev_resids` instead.
        """
        y, wt = _arr(y), _arr(wt)
        eta = _arr(self.linkfun(_arr(mu)))
        aux = {k: _arr(v) for k, v in aux.items()}
        l_fit = self.derivs(y, wt, eta, aux, order=0).l
        return 2.0 * np.maximum(_sup_loglik(self, y, wt, eta, aux, l_fit) - l_fit, 0.0)

    def pearson_variance(self, mu: np.ndarray, aux: dict[str, np.ndarray]) -> np.ndarray:
        """The variance that divides a Pearson residual, as R defines it for the
        family (glmmTMB: ``family$variance(mu, sigma)``; the zero-inflation
        mixing is applied by the caller). Default: :meth:`variance`."""
        return _arr(self.variance(mu))

    def simulate(self, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator,
                 params: dict[str, Any]) -> np.ndarray:
        """Responses with conditional mean ``mu`` (shape (nsim, n)); ``params``
        carries the fitted family parameters, per-row ``dispersion``, ``zprob``
        and ``aux``. The built-in families override this."""
        raise NotImplementedError(
            f"family {self.name!r} has no simulator: give the family a simulate(mu, wt, rng, params) method")

    def initialize(self, y, wt):
        return _arr(y) + 0.1

    def loglik(self, y, mu, wt, scale: float = 1.0):
        """Per-row log-likelihood at mean mu with the family's current parameters
        (aux blocks at ``self.params``' values; zero-inflation not included)."""
        eta = _arr(self.linkfun(_arr(mu)))
        aux = {k: np.full(eta.shape, v) for k, v in self._aux_values().items()}
        return self.derivs(_arr(y), _arr(wt), eta, aux, order=0).l

    def _aux_values(self) -> dict[str, float]:
        return {b: self.fixed_aux.get(b, self.aux_default(b)) for b in self.aux_blocks}

    # ---- what the engine uses -------------------------------------------------------
    def aux_default(self, block: str, y: np.ndarray | None = None) -> float:
        """Start value of an aux block's intercept (glmmTMB starts at 0)."""
        return 0.0

    def start_eta(self, y: np.ndarray) -> np.ndarray:
        """A rough linear predictor per row for the starting fixed effects."""
        return np.log(np.maximum(_arr(y), 0.0) + 0.5)

    def parts(self, y: np.ndarray, eta: np.ndarray, lphi: np.ndarray | None, order: int) -> Parts:
        raise NotImplementedError

    def parts_w(self, y: np.ndarray, wt: np.ndarray, eta: np.ndarray, lphi: np.ndarray | None,
                order: int) -> tuple[Parts, np.ndarray]:
        """The base distribution's :class:`Parts` and the likelihood weights of the rows.
        Default: ``parts`` with the prior weights; a family whose weights are trials
        (betabinomial) returns the density of the counts and unit weights."""
        return self.parts(y, eta, lphi, order), wt

    def derivs(self, y, wt, eta, aux: dict[str, np.ndarray], order: int = 2) -> Derivs:
        """Weighted derivatives; ``order`` 0: l only, 1: + e, ee, 2: everything."""
        P, lw = self.parts_w(y, wt, eta, aux.get("disp"), order)
        return _from_parts(P, lw, order, "disp" in self.aux_blocks)

    def mean(self, eta: np.ndarray, aux: dict[str, np.ndarray]) -> np.ndarray:
        """E[Y] per row (the result's fitted values)."""
        return _arr(self.linkinv(eta))

    def row_dispersion(self, aux: dict[str, np.ndarray]) -> np.ndarray | None:
        """The per-row family parameter on its natural scale (theta, phi, shape, sigma^2)."""
        d = aux.get("disp")
        return None if d is None else np.exp(d)

    def natural_params(self, coefs: dict[str, dict[str, float]]) -> dict[str, float]:
        """Named natural-scale parameters for intercept-only aux blocks."""
        return {}

    def validate_response(self, y, wt, column: str) -> None:
        check_counts(y, column, self.name)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}(link={self.link.name!r}{extra})"


class SigmaScale:
    """Families whose dispersion block is log(sigma), sigma a constant data-scale SD (glmmTMB's
    t and lognormal): ``sigma()`` per row is the base ``row_dispersion``, Var(Y) = sigma^2 (the
    variance function, constant in mu) and squared-residual deviance residuals."""

    def variance(self, mu):
        """sigma^2 at the fitted sigma (constant in mu)."""
        sig = self.params.get("sigma", 1.0)
        return np.full_like(np.asarray(mu, dtype=float), sig * sig)

    def pearson_variance(self, mu, aux):
        return np.broadcast_to(np.exp(2.0 * np.asarray(aux["disp"], dtype=float)), np.shape(mu)).copy()

    def dev_resids(self, y, mu, wt):
        return np.asarray(wt, float) * (np.asarray(y, float) - np.asarray(mu, float)) ** 2


def central_parts(first, y, eta, lphi, order: int, h: float) -> Parts:
    """Parts of a log density from its exact first derivatives ``first(y, eta, lphi) ->
    (l, dl/deta, dl/dlphi)`` (unweighted): the second and third orders in eta and the cross
    ones by central differences of those in eta (step ``h``)."""
    y = np.asarray(y, dtype=float)
    eta = np.asarray(eta, dtype=float)
    lphi = np.broadcast_to(np.asarray(lphi, dtype=float), eta.shape)
    l, le, ls = first(y, eta, lphi)
    P = Parts(g=l)
    if order < 1:
        return P
    _lp, lep, lsp = first(y, eta + h, lphi)
    _lm, lem, lsm = first(y, eta - h, lphi)
    P.e, P.ee = le, (lep - lem) / (2.0 * h)
    if order >= 2:
        P.eee = (lep - 2.0 * le + lem) / h ** 2
        P.p, P.ep, P.eep = ls, (lsp - lsm) / (2.0 * h), (lsp - 2.0 * ls + lsm) / h ** 2
    return P


def _from_parts(P: Parts, wt, order: int, has_disp: bool) -> Derivs:
    wt = _arr(wt)
    d = Derivs(l=wt * P.g)
    if order >= 1:
        d.e, d.ee = wt * P.e, wt * P.ee
    if order >= 2:
        d.eee = wt * P.eee
        if has_disp:
            d.aux["disp"] = (wt * P.p, wt * P.ep, wt * P.eep)
    return d


def _sup_loglik(fam: LikelihoodFamily, y, wt, eta0, aux, l0, iters: int = 200) -> np.ndarray:
    """Per row sup over eta of l(y | eta) (aux fixed): Newton on each row with
    steps capped at 5 and halved until l does not decrease; eta stays within
    60 of its start, where a supremum at the edge of the support (a zero count
    under the log link) is reached to within exp(-60)."""
    eta, l = eta0.copy(), l0.copy()
    lo, hi = eta0 - 60.0, eta0 + 60.0
    with np.errstate(all="ignore"):
        for _ in range(iters):
            d = fam.derivs(y, wt, eta, aux, order=1)
            step = np.where(d.ee < 0, -d.e / d.ee, np.sign(d.e))
            step = np.clip(np.nan_to_num(step), -5.0, 5.0)
            t = np.ones_like(eta)
            moved = np.zeros(eta.shape, dtype=bool)
            for _ in range(40):
                new = np.clip(eta + t * step, lo, hi)
                ln = fam.derivs(y, wt, new, aux, order=0).l
                ok = np.isfinite(ln) & (ln >= l)
                take = ok & ~moved
                eta = np.where(take, new, eta)
                l = np.where(take, ln, l)
                moved |= ok
                if moved.all():
                    break
                t = np.where(moved, t, 0.5 * t)
            if np.max(np.abs(np.where(moved, t * step, 0.0))) < 1e-10:
                break
    return l


# --------------------------------------------------------------------------- wrappers


def zero_inflate(P: Parts, y: np.ndarray, wt, z: np.ndarray, order: int, has_disp: bool) -> Derivs:
    """Structural zeros with probability plogis(z): P(0) = p + (1-p) f(0).

    With r = plogis(g - z) (the probability that a zero is a sampling zero),
    d/deta log(p + (1-p) e^g) = r g_e, and r' = r (1 - r) g' - so every
    derivative follows from the base ones."""
    wt = _arr(wt)
    zero = y == 0
    if order == 0 and np.ndim(P.g) == 1:  # the log-likelihood alone (step halving): one compiled pass
        from interlace.kernels.zi_jet import zi_mix

        n = P.g.shape[0]
        l, r, s1 = np.empty(n), np.empty(n), np.empty(n)
        zi_mix(np.ascontiguousarray(P.g, dtype=float), np.ascontiguousarray(np.broadcast_to(z, (n,)), dtype=float),
               np.ascontiguousarray(np.broadcast_to(zero, (n,))), np.ascontiguousarray(np.broadcast_to(wt, (n,))),
               l, r, s1)
        return Derivs(l=l)
    lse = np.logaddexp(z, P.g)
    l = np.where(zero, lse, P.g) - np.logaddexp(0.0, z)
    out = Derivs(l=wt * l)
    if order == 0:
        return out
    r = np.where(zero, special.expit(P.g - z), 1.0)
    rr = r * (1.0 - r)
    e = r * P.e
    ee = r * P.ee + rr * P.e ** 2
    out.e, out.ee = wt * e, wt * ee
    if order == 1:
        return out
    eee = r * P.eee + 3.0 * rr * P.e * P.ee + (1.0 - 2.0 * r) * rr * P.e ** 3
    out.eee = wt * eee
    pz = special.expit(z)
    out.aux["zi"] = (wt * (np.where(zero, 1.0 - r, 0.0) - pz), wt * (-rr * P.e),
                     wt * (-rr * P.ee - (1.0 - 2.0 * r) * rr * P.e ** 2))
    if has_disp:
        lp = r * P.p
        lep = r * P.ep + rr * P.p * P.e
        leep = (rr * P.p * P.ee + r * P.eep + (1.0 - 2.0 * r) * rr * P.p * P.e ** 2
                + 2.0 * rr * P.e * P.ep)
        out.aux["disp"] = (wt * lp, wt * lep, wt * leep)
    return out


def hurdle(P: Parts, P0: Parts, y: np.ndarray, wt, z: np.ndarray, order: int, has_disp: bool) -> Derivs:
    """Hurdle: P(0) = plogis(z); positives from f truncated at zero:
    log(1 - p) + g - log(1 - f(0)). With q = f(0) / (1 - f(0)),
    d/dg0 [-log(1 - e^g0)] = q and dq/dg0 = q (1 + q)."""
    wt = _arr(wt)
    zero = y == 0
    pos = ~zero
    with np.errstate(over="ignore", divide="ignore"):
        h = -np.log(-np.expm1(np.minimum(P0.g, -1e-300)))
    l = np.where(zero, -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z) + P.g + h)
    out = Derivs(l=wt * l)
    if order == 0:
        return out
    with np.errstate(over="ignore", divide="ignore"):
        q = 1.0 / np.expm1(-P0.g)
    q = np.where(pos, q, 0.0)
    qq = q * (1.0 + q)
    e = np.where(pos, P.e + q * P0.e, 0.0)
    ee = np.where(pos, P.ee + q * P0.ee + qq * P0.e ** 2, 0.0)
    out.e, out.ee = wt * e, wt * ee
    if order == 1:
        return out
    eee = np.where(pos, P.eee + q * P0.eee + 3.0 * qq * P0.e * P0.ee + qq * (1.0 + 2.0 * q) * P0.e ** 3, 0.0)
    out.eee = wt * eee
    pz = special.expit(z)
    zeros = np.zeros_like(pz)
    out.aux["zi"] = (wt * np.where(zero, 1.0 - pz, -pz), zeros, zeros)
    if has_disp:
        lp = np.where(pos, P.p + q * P0.p, 0.0)
        lep = np.where(pos, P.ep + q * P0.ep + qq * P0.p * P0.e, 0.0)
        leep = np.where(pos, P.eep + qq * P0.p * P0.ee + q * P0.eep + qq * (1.0 + 2.0 * q) * P0.p * P0.e ** 2
                        + 2.0 * qq * P0.e * P0.ep, 0.0)
        out.aux["disp"] = (wt * lp, wt * lep, wt * leep)
    return out


# --------------------------------------------------------------------------- mean-scale chain rule


def chain_parts(link: Link, eta: np.ndarray, g: np.ndarray, gm: tuple[np.ndarray, ...],
                gp: tuple[np.ndarray, ...] | None, order: int) -> Parts:
    """Parts in eta from derivatives in mu, for a density written in its mean.

    ``gm = (dg/dmu, d2g/dmu2, d3g/dmu3)``, ``gp = (dg/dp, d2g/dmu dp, d3g/dmu2 dp)``
    with p the log-dispersion. With mu = h(eta) and h1, h2, h3 its derivatives
    (from the link): g_e = g1 h1, g_ee = g2 h1^2 + g1 h2,
    g_eee = g3 h1^3 + 3 g2 h1 h2 + g1 h3.

    >>> import numpy as np
    >>> from interlace.families.links import LogLink
    >>> P = chain_parts(LogLink(), np.zeros(1), np.zeros(1), (np.ones(1),) * 3, None, 1)
    >>> float(P.e[0]), float(P.ee[0])
    (1.0, 2.0)
    """
    P = Parts(g=g)
    if order < 1:
        return P
    m1 = link.mu_eta(eta)
    m2 = link.d2mu_deta2(eta)
    g1, g2, g3 = gm
    P.e = g1 * m1
    P.ee = g2 * m1 * m1 + g1 * m2
    if order >= 2:
        m3 = link.d3mu_deta3(eta)
        P.eee = g3 * m1 ** 3 + 3.0 * g2 * m1 * m2 + g1 * m3
        if gp is not None:
            p0, p1, p2 = gp
            P.p = p0
            P.ep = p1 * m1
            P.eep = p2 * m1 * m1 + p1 * m2
    return P


# --------------------------------------------------------------------------- base distributions


def poisson_parts(y: np.ndarray, eta: np.ndarray, order: int) -> Parts:
    """Poisson with log link: g = y eta - e^eta - lgamma(y + 1)."""
    mu = np.exp(np.minimum(eta, 700.0))
    P = Parts(g=y * eta - mu - special.gammaln(y + 1.0))
    if order >= 1:
        P.e, P.ee = y - mu, -mu
    if order >= 2:
        P.eee = -mu
    return P


_UNIQ: dict = {"y": None, "u": None, "inv": None}


def _special(fn, y: np.ndarray, th: np.ndarray) -> np.ndarray:
    """fn(y + theta) per row. With one theta for all rows (no dispformula, or its random
    effects absent) the special function is evaluated once per distinct count: the
    counts of a large data set take few values, and these functions dominate the cost."""
    if th.ndim == 0 or th.size < 256 or th[0] != th[-1] or np.ptp(th) != 0.0:
        return fn(y + th)
    if _UNIQ["y"] is not y:  # the same response array is passed on every call of a fit
        u, inv = np.unique(y, return_inverse=True)
        _UNIQ.update(y=y, u=u, inv=inv)
    u, inv = _UNIQ["u"], _UNIQ["inv"]
    if u.size > y.size // 4:
        return fn(y + th)
    return fn(u + th[0])[inv]


_NB2_TABLES: dict = {}  # "u": (y, distinct counts, inverse), "tabs": (y, theta, tables); tuples, read in one step


def nb2_tables(y: np.ndarray, lth) -> tuple | None:
    """When log(theta) ``lth`` is the same on every row of a large response ``y`` with few
    distinct counts (the case ``_special`` tabulates): (th, inv, gammaln(u + th),
    digamma(u + th), trigamma(u + th), gammaln(u + 1), gammaln(th), digamma(th),
    trigamma(th)) for the distinct counts u (``inv`` maps rows to them), the tables the
    compiled NB2 kernels (``kernels.zi_jet``) read. None otherwise."""
    if not (isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype == np.float64 and y.size >= 256
            and isinstance(lth, np.ndarray) and lth.shape == y.shape):
        return None
    if lth[0] != lth[-1] or np.ptp(lth) != 0.0:
        return None
    th = np.exp(lth[:1])[0]
    ent = _NB2_TABLES.get("tabs")
    if ent is not None and ent[0] is y and ent[1] == th:
        return ent[2]
    uq = _NB2_TABLES.get("u")
    if uq is None or uq[0] is not y:
        u, inv = np.unique(y, return_inverse=True)
        uq = (y, u, np.ascontiguousarray(inv, dtype=np.int64))
        _NB2_TABLES["u"] = uq
    _y, u, inv = uq
    if u.size > y.size // 4:
        return None
    x = u + th
    tabs = (float(th), inv, special.gammaln(x), special.digamma(x), _trigamma(x), special.gammaln(u + 1.0),
            float(special.gammaln(th)), float(special.digamma(th)), float(_trigamma(th)))
    _NB2_TABLES["tabs"] = (y, th, tabs)
    return tabs


def nbinom2_parts(y: np.ndarray, eta: np.ndarray, lth: np.ndarray, order: int) -> Parts:
    """NB2 with log link, theta = exp(lth): Var = mu + mu^2 / theta.

    With m = mu / (mu + theta): dl/deta = y - (y + theta) m, dm/deta = m (1 - m),
    dm/dlog(theta) = -m (1 - m). With one theta for all rows of a large data set the
    rows are one compiled pass (``kernels.zi_jet.nb2_parts_rows``, the same formulas with
    the special functions tabulated per distinct count)."""
    tabs = nb2_tables(y, lth) if np.shape(eta) == np.shape(y) else None
    if tabs is not None:
        from interlace.kernels.zi_jet import nb2_parts_rows

        th, inv, tlg, tdg, ttg, lg1, lgth, dgth, tgth = tabs
        n = y.shape[0]
        arrs = [np.empty(n) for _ in range(8 if order >= 2 else (3 if order >= 1 else 1))]
        arrs += [arrs[0]] * (8 - len(arrs))
        nb2_parts_rows(y, inv, np.ascontiguousarray(eta, dtype=np.float64), float(lth[0]), th, tlg, tdg, ttg,
                       lg1, lgth, dgth, tgth, int(order), *arrs)
        P = Parts(g=arrs[0])
        if order >= 1:
            P.e, P.ee = arrs[1], arrs[2]
        if order >= 2:
            P.eee, P.p, P.ep, P.eep, P.pp = arrs[3:8]
        return P
    th = np.exp(lth)
    lmt = np.logaddexp(eta, lth)  # log(mu + theta)
    one = np.ones_like(th)
    g = (_special(special.gammaln, y, th) - _of_theta(special.gammaln, th) - _special(special.gammaln, y, one)
         + th * (lth - lmt) + y * (eta - lmt))
    P = Parts(g=g)
    if order >= 1:
        m = np.exp(eta - lmt)
        mm = m * (1.0 - m)
        yt = y + th
        P.e = y - yt * m
        P.ee = -yt * mm
        if order >= 2:
            P.eee = -yt * mm * (1.0 - 2.0 * m)
            P.p = th * (_special(special.digamma, y, th) - _of_theta(special.digamma, th) + lth - lmt + 1.0
                        - yt * np.exp(-lmt))
            P.ep = -th * m + yt * mm
            P.eep = -th * mm + yt * (1.0 - 2.0 * m) * mm
            # d2/dp2 (random effects in dispformula): with s = 1 - m, R = (y + theta)/(mu + theta),
            # g_p = theta A, dA/dp = theta D1 + 1 - 2 s + s R, D1 = trigamma(y + theta) - trigamma(theta)
            sm = 1.0 - m
            R = yt * np.exp(-lmt)
            D1 = _special(_trigamma, y, th) - _of_theta(_trigamma, th)
            P.pp = P.p + th * (th * D1 + 1.0 - 2.0 * sm + sm * R)
    return P


def _of_theta(fn, th: np.ndarray) -> np.ndarray:
    """fn(theta) per row, evaluated once when theta is the same on every row."""
    if np.ndim(th) and th.size >= 256 and th[0] == th[-1] and np.ptp(th) == 0.0:
        return np.full(th.shape, fn(th[0]))
    return fn(th)


def _trigamma(x):
    return special.polygamma(1, x)


# --------------------------------------------------------------------------- response checks


def check_counts(y, column: str, family: str) -> None:
    y = _arr(y)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"response {column!r} has non-finite values")
    if np.any(y < 0):
        raise ValueError(f"{family} response {column!r} has negative counts "
                         f"({int((y < 0).sum())} value(s) < 0)")
    if np.any(np.abs(y - np.round(y)) > 1e-7 * np.maximum(1.0, np.abs(y))):
        warnings.warn(f"non-integer counts in the {family} response {column!r}", UserWarning, stacklevel=3)


def check_open_unit(y, column: str, family: str) -> None:
    y = _arr(y)
    if np.any(~np.isfinite(y)) or np.any(y <= 0) or np.any(y >= 1):
        raise ValueError(f"{family} response {column!r} must lie strictly inside (0, 1) "
                         f"({int(((y <= 0) | (y >= 1)).sum())} value(s) outside)")


def check_positive(y, column: str, family: str) -> None:
    y = _arr(y)
    if np.any(~np.isfinite(y)) or np.any(y <= 0):
        raise ValueError(f"{family} response {column!r} must be positive "
                         f"({int((y <= 0).sum())} non-positive value(s))")


def as_fixed(value: Any, name: str, positive: bool = True) -> float | None:
    """A user-fixed family parameter: None, or a positive finite float."""
    if value is None:
        return None
    v = float(value)
    if not np.isfinite(v) or (positive and v <= 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v
