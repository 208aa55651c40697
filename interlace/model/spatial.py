"""Spatial and continuous-time covariance structures: glmmTMB's ``ou``, ``exp``, ``gau``, ``mat``.

A term ``exp(pos + 0 | g)`` has one column per position (the levels of ``pos``, made with
:func:`interlace.numFactor`); the structure reads each column's coordinates from its name
(``"pos(1.5,2)"``), and the k x k covariance of the term is

    Sigma = sd^2 C(d),   C_ij = rho(d_ij),   d_ij the Euclidean distance of positions i and j,

with glmmTMB 1.1.5's correlation functions and parameters (src/glmmTMB.cpp, ``termwise_nll``):

=======  ====================================================  =================================
``ou``   rho = exp(-exp(theta_1) |t_i - t_j|)  (1-D times)     theta_1 = log rate
``exp``  rho = exp(-d exp(-theta_1))                           theta_1 = log scale
``gau``  rho = exp(-d^2 exp(-2 theta_1))                       theta_1 = log scale
``mat``  rho = (d/phi)^kappa K_kappa(d/phi) / (Gamma(kappa)    theta_1 = log phi (range),
         2^(kappa-1))  (TMB's ``matern``)                      theta_2 = log kappa (smoothness)
=======  ====================================================  =================================

glmmTMB's theta_0 is log sd; here the first parameter is sd itself, relative to the residual
SD in the LMM (as lme4's theta), bounded below by 0 and even (so a zero variance is a boundary
the optimizer sees, as for ``us``); the others are glmmTMB's theta_1 (and theta_2) unchanged.
:meth:`SpatialCovariance.tmb_theta` gives glmmTMB's parametrization back.

Lambda = sd chol(C); its Jacobian in the correlation parameters is the Cholesky factor's
derivative, dL = L Phi(L^-1 dC L^-T) (Phi: the lower triangle with half the diagonal), exact.

Example
-------
>>> import numpy as np
>>> cov = ExponentialCovariance(["pos(0,0)", "pos(3,4)"])
>>> C = cov.correlation(np.array([1.0, np.log(5.0)]))
>>> round(float(C[0, 1]), 6) == round(float(np.exp(-1.0)), 6)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg as sla
from scipy import special

from interlace.formula.numfactor import parse_num_levels
from interlace.model.covariance import Covariance, register_structure

__all__ = [
    "SpatialCovariance",
    "OUCovariance",
    "ExponentialCovariance",
    "GaussianCovariance",
    "MaternCovariance",
    "matern",
]


def _phi(X: np.ndarray) -> np.ndarray:
    """The lower triangle of X with half its diagonal (the Cholesky derivative's map)."""
    out = np.tril(X)
    out[np.diag_indices_from(out)] *= 0.5
    return out


class SpatialCovariance(Covariance):
    """Base of the distance-based structures: Sigma = sd^2 C(theta), C from the positions.

    Subclasses define ``corr_params`` (glmmTMB's theta_1, ...), ``_rho(par)`` (the
    correlation at the distances ``self.dist``) and ``_drho(par)`` (its derivatives)."""

    name = "spatial"
    #: names of the correlation parameters after sd (glmmTMB's theta_1, theta_2)
    corr_params: tuple[str, ...] = ("log_scale",)
    #: coordinates must be one-dimensional (``ou``)
    one_dimensional = False
    #: a fixed number of parameters whatever the number of positions: one level of the grouping
    #: factor is enough (glmmTMB's exp(pos + 0 | group) with a one-level group), and more
    #: random effects than observations is no identifiability problem (validation.check_terms)
    parsimonious = True

    @classmethod
    def from_columns(cls, column_names: list[str], **args) -> "SpatialCovariance":
        """The structure of a term whose columns are positions (``pos(1.5,2)``)."""
        if args:
            raise ValueError(f"the {cls.name} structure takes no arguments, got {', '.join(args)}")
        return cls(column_names)

    def __init__(self, column_names: Sequence[str], term: str | None = None) -> None:
        names = [str(c) for c in column_names]
        super().__init__(len(names))
        what = f"the term {term!r}" if term else f"a {self.name}() term"
        try:
            coords = parse_num_levels(names)
        except ValueError as exc:
            raise ValueError(
                f"{what} has no coordinates: {self.name}() needs a position factor on the left side, "
                f"e.g. {self.name}(pos + 0 | g) with pos = interlace.numFactor(x, y); {exc}") from None
        if coords.shape[1] == 0:
            raise ValueError(f"{what} has no coordinates in its columns {names[:3]}")
        if self.one_dimensional and coords.shape[1] != 1:
            raise ValueError(f"{what}: {self.name}() is for one-dimensional times, got {coords.shape[1]}-D "
                             "coordinates")
        if len({tuple(r) for r in coords.tolist()}) != len(coords):
            raise ValueError(f"{what} has repeated coordinates among its columns: each column must be "
                             "a distinct position")
        self.column_names = names
        self.term = term
        self.coords = coords
        diff = coords[:, None, :] - coords[None, :, :]
        self.dist = np.sqrt(np.sum(diff * diff, axis=-1))
        self._off = ~np.eye(self.k, dtype=bool)

    # ------------------------------------------------------------ correlation
    def _rho(self, par: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _drho(self, par: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def correlation(self, par: np.ndarray) -> np.ndarray:
        """The k x k correlation matrix C at the parameters ``par`` (sd first)."""
        return self.correlation_at(np.asarray(par, dtype=float), self.dist)

    def correlation_at(self, par: np.ndarray, dist: np.ndarray) -> np.ndarray:
        """The correlation function at arbitrary distances (1 at distance 0), for prediction
        at new positions and for the correlation-vs-distance picture."""
        saved = self.dist
        try:
            self.dist = np.asarray(dist, dtype=float)
            r = self._rho(np.asarray(par, dtype=float))
        finally:
            self.dist = saved
        return np.where(np.asarray(dist) == 0.0, 1.0, r)

    def distances_to(self, coords: np.ndarray) -> np.ndarray:
        """Euclidean distances from new positions (rows of ``coords``) to the term's positions."""
        c = np.asarray(coords, dtype=float).reshape(-1, self.coords.shape[1])
        diff = c[:, None, :] - self.coords[None, :, :]
        return np.sqrt(np.sum(diff * diff, axis=-1))

    def new_effects(self, par: np.ndarray, b: np.ndarray, column_names: Sequence[str]) -> np.ndarray:
        """The effects at the positions (or times) ``column_names`` given the fitted effects
        ``b`` (nlevels, k) of every level: the conditional mean of a Gaussian field,
        b C_PP^-1 C_Pq (kriging; glmmTMB's predict at new positions gives it as the mode of
        the new effects, which have no data). At a fitted position it is the fitted effect.

        >>> cov = OUCovariance(["t(0)", "t(1)"])
        >>> cov.new_effects(np.array([1.0, 0.0]), np.array([[0.0, 2.0]]), ["t(1)", "t(2)"]).round(4).tolist()
        [[2.0, 0.7358]]
        """
        par = np.asarray(par, dtype=float)
        try:
            coords = parse_num_levels([str(c) for c in column_names])
        except ValueError as exc:
            raise ValueError(f"new positions for the {self.name}() term: {exc}") from None
        if coords.shape[1] != self.coords.shape[1]:
            raise ValueError(f"new positions for the {self.name}() term have {coords.shape[1]} coordinates, "
                             f"the fitted ones {self.coords.shape[1]}")
        C_qP = self.correlation_at(par, self.distances_to(coords))          # (m, k)
        W = sla.cho_solve((self._factor(par), True), C_qP.T, check_finite=False)  # C_PP^-1 C_Pq
        return np.asarray(b, dtype=float) @ W

    def kriging(self, par: np.ndarray, column_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(W, K) at the positions ``column_names``: the effects there given the fitted ones
        are b_new = b W (W = C_PP^-1 C_Pq, k x m) with conditional covariance
        K = sd^2 (C_qq - C_qP C_PP^-1 C_Pq) (m x m, relative to sigma^2 for an LMM): the
        Gaussian field's kriging, what glmmTMB's sdreport gives new random effects without data.

        >>> cov = OUCovariance(["t(0)", "t(1)"])
        >>> W, K = cov.kriging(np.array([1.0, 0.0]), ["t(1)", "t(2)"])
        >>> (W.round(4) + 0.0).tolist(), (K.round(4) + 0.0).tolist()
        ([[0.0, 0.0], [1.0, 0.3679]], [[0.0, 0.0], [0.0, 0.8647]])
        """
        par = np.asarray(par, dtype=float)
        coords = self._new_coords(column_names)
        C_qP = self.correlation_at(par, self.distances_to(coords))                # (m, k)
        W = sla.cho_solve((self._factor(par), True), C_qP.T, check_finite=False)  # (k, m)
        diff = coords[:, None, :] - coords[None, :, :]
        C_qq = self.correlation_at(par, np.sqrt(np.sum(diff * diff, axis=-1)))
        K = par[0] ** 2 * (C_qq - C_qP @ W)
        return W, 0.5 * (K + K.T)

    def _new_coords(self, column_names: Sequence[str]) -> np.ndarray:
        try:
            coords = parse_num_levels([str(c) for c in column_names])
        except ValueError as exc:
            raise ValueError(f"new positions for the {self.name}() term: {exc}") from None
        if coords.shape[1] != self.coords.shape[1]:
            raise ValueError(f"new positions for the {self.name}() term have {coords.shape[1]} coordinates, "
                             f"the fitted ones {self.coords.shape[1]}")
        return coords

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_last_factor", None)  # a cache, not part of the structure (k x k floats)
        return state

    def _factor(self, par: np.ndarray) -> np.ndarray:
        # Lambda and its Jacobian are asked at the same parameters once per gradient:
        # the k x k Cholesky factor of the last parameters is kept (read-only)
        key = np.asarray(par, dtype=float).tobytes()
        cached = getattr(self, "_last_factor", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        C = self.correlation(par)
        try:
            L = np.linalg.cholesky(C)
        except np.linalg.LinAlgError:
            raise np.linalg.LinAlgError(
                f"the {self.name}() correlation matrix is not positive definite at {par.tolist()}") from None
        L.flags.writeable = False
        self._last_factor = (key, L)
        return L

    # ------------------------------------------------------------ Covariance interface
    @property
    def nparams(self) -> int:
        return 1 + len(self.corr_params)

    def lambda_(self, par: np.ndarray) -> np.ndarray:
        par = np.asarray(par, dtype=float)
        return par[0] * self._factor(par)

    def jacobian(self, par: np.ndarray) -> np.ndarray:
        par = np.asarray(par, dtype=float)
        L = self._factor(par)
        J = np.empty((self.nentries, self.nparams))
        J[:, 0] = L[self.rows, self.cols]
        for j, dC in enumerate(self._drho(par)):
            dC = np.where(self._off, dC, 0.0)
            M = sla.solve_triangular(L, dC, lower=True, check_finite=False)           # L^-1 dC
            X = sla.solve_triangular(L, M.T, lower=True, check_finite=False)          # L^-1 dC L^-T
            dL = sla.blas.dtrmm(1.0, L, _phi(X), lower=1)  # L Phi(X), L triangular
            J[:, j + 1] = par[0] * dL[self.rows, self.cols]
        return J

    @property
    def lower(self) -> np.ndarray:
        return np.concatenate([[0.0], np.full(len(self.corr_params), -np.inf)])

    def start(self) -> np.ndarray:
        # glmmTMB's start: theta = 0 (sd 1, scale 1, smoothness 1)
        return np.concatenate([[1.0], np.zeros(len(self.corr_params))])

    @property
    def even_params(self) -> np.ndarray:
        out = np.zeros(self.nparams, bool)
        out[0] = True
        return out

    def canonical(self, par: np.ndarray) -> np.ndarray:
        out = np.array(par, dtype=float, copy=True)
        out[0] = abs(out[0])
        return out

    def param_names(self, vc_name: str, cnames: list[str]) -> list[str]:
        return [f"{vc_name}.sd"] + [f"{vc_name}.{p}" for p in self.corr_params]

    # ------------------------------------------------------------ the reported scale (inference)
    def sdcor_layout(self) -> list[tuple[str, int, int]]:
        """The SD, then the correlation parameters on glmmTMB's scale (kind ``"par"``: not a
        correlation; VarCorr's correlations come from the correlation function)."""
        return [("sd", 0, 0)] + [("par", i + 1, i + 1) for i in range(len(self.corr_params))]

    def sdcor(self, par: np.ndarray, sigma: float = 1.0) -> np.ndarray:
        par = np.asarray(par, dtype=float)
        return np.concatenate([[abs(par[0]) * sigma], par[1:]])

    def par_from_sdcor(self, values: np.ndarray, sigma: float = 1.0) -> tuple[np.ndarray, bool]:
        v = np.asarray(values, dtype=float)
        return np.concatenate([[v[0] / sigma], v[1:]]), bool(v[0] >= 0)

    def wald_sdcor(self, par: np.ndarray, V: np.ndarray, z: float, sigma: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
        """glmmTMB's Wald intervals: on log SD (back-transformed) and on theta_1, theta_2."""
        par = np.asarray(par, dtype=float)
        se = np.sqrt(np.maximum(np.diag(np.asarray(V, dtype=float)), 0.0))
        sd = abs(par[0]) * sigma
        with np.errstate(divide="ignore", invalid="ignore"):
            se_log = se[0] / abs(par[0])
        lo = np.concatenate([[sd * np.exp(-z * se_log)], par[1:] - z * se[1:]])
        hi = np.concatenate([[sd * np.exp(z * se_log)], par[1:] + z * se[1:]])
        return lo, hi

    def wald_from_sdcor(self, values: np.ndarray, V: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
        """An LMM's intervals from (SD, correlation parameters) and their covariance: the same
        scales as :meth:`wald_sdcor` (log SD; the correlation parameters as they are)."""
        return self.wald_sdcor(values, V, z)

    def tmb_wald_correlation(self, par: np.ndarray, V: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
        """glmmTMB's ``confint(m, full = TRUE)`` rows ``Cor.<a>.<b>|<group>``: the correlation
        matrix at the correlation parameters all moved by -z SE, and all by +z SE (glmmTMB's
        Wald: every parameter moved at once, each row's two values sorted). Returns
        (lower, upper) k x k matrices.

        >>> cov = OUCovariance(["t(0)", "t(1)"])
        >>> lo, hi = cov.tmb_wald_correlation(np.array([1.0, 0.0]), np.diag([0.01, 0.04]), 1.96)
        >>> bool(lo[0, 1] < np.exp(-1.0) < hi[0, 1])
        True
        """
        par = np.asarray(par, dtype=float)
        se = np.sqrt(np.maximum(np.diag(np.asarray(V, dtype=float)), 0.0))
        a = self.correlation(np.concatenate([par[:1], par[1:] - z * se[1:]]))
        b = self.correlation(np.concatenate([par[:1], par[1:] + z * se[1:]]))
        return np.minimum(a, b), np.maximum(a, b)

    def vc_pairs(self) -> list[tuple[int, int]]:
        """No correlation rows in VarCorr (k(k-1)/2 of them for k positions): the correlation
        matrix is the correlation function's (``correlation``, varcorr_matrices)."""
        return []

    def tmb_theta(self, par: np.ndarray, sigma: float = 1.0) -> np.ndarray:
        """glmmTMB's theta for these parameters: (log sd, theta_1, ...), sd absolute
        (``sigma`` the residual SD of an LMM, 1 for GLMMs).

        >>> ExponentialCovariance(["(0)", "(1)"]).tmb_theta(np.array([2.0, 0.5])).round(4).tolist()
        [0.6931, 0.5]
        """
        par = np.asarray(par, dtype=float)
        return np.concatenate([[np.log(abs(par[0]) * sigma)], par[1:]])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.k} positions)"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.column_names == other.column_names  # type: ignore[attr-defined]

    __hash__ = object.__hash__


class OUCovariance(SpatialCovariance):
    """``ou``: Ornstein-Uhlenbeck, the continuous-time AR(1) over the times of the columns,
    rho = exp(-exp(theta_1) |t_i - t_j|) (glmmTMB: theta_1 the log rate).

    >>> cov = OUCovariance(["t(0)", "t(1)", "t(3)"])
    >>> C = cov.correlation(np.array([1.0, 0.0]))
    >>> bool(np.isclose(C[0, 2], C[0, 1] * C[1, 2]))
    True
    """

    name = "ou"
    corr_params = ("log_rate",)
    one_dimensional = True

    def _rho(self, par: np.ndarray) -> np.ndarray:
        return np.exp(-np.exp(par[1]) * self.dist)

    def _drho(self, par: np.ndarray) -> list[np.ndarray]:
        a = np.exp(par[1]) * self.dist
        return [-a * np.exp(-a)]


class ExponentialCovariance(SpatialCovariance):
    """``exp``: rho = exp(-d / s), s = exp(theta_1) the scale (glmmTMB's ``exp``)."""

    name = "exp"

    def _rho(self, par: np.ndarray) -> np.ndarray:
        return np.exp(-self.dist * np.exp(-par[1]))

    def _drho(self, par: np.ndarray) -> list[np.ndarray]:
        a = self.dist * np.exp(-par[1])
        return [a * np.exp(-a)]


class GaussianCovariance(SpatialCovariance):
    """``gau``: rho = exp(-d^2 / s^2), s = exp(theta_1) (glmmTMB's ``gau``)."""

    name = "gau"

    def _rho(self, par: np.ndarray) -> np.ndarray:
        return np.exp(-self.dist**2 * np.exp(-2.0 * par[1]))

    def _drho(self, par: np.ndarray) -> list[np.ndarray]:
        a = self.dist**2 * np.exp(-2.0 * par[1])
        return [2.0 * a * np.exp(-a)]


# Gauss-Legendre nodes for d K_nu(x) / d nu = int_0^inf t sinh(nu t) exp(-x cosh t) dt
_GL_T, _GL_W = np.polynomial.legendre.leggauss(32)


_DEBYE_NU = 60.0  # above this order d K / d nu comes from the uniform expansion


def _log_kv_debye(nu: float, x: np.ndarray) -> np.ndarray:
    """log K_nu(x) by the uniform asymptotic expansion for large order (DLMF 10.41.4, two
    correction terms): where K_nu(x) overflows a double (large nu, small x), and for
    d K / d nu above order ``_DEBYE_NU``."""
    z = x / nu
    s = np.sqrt(1.0 + z * z)
    eta = s + np.log(z / (1.0 + s))
    t = 1.0 / s
    u1 = (3.0 * t - 5.0 * t**3) / 24.0
    u2 = (81.0 * t**2 - 462.0 * t**4 + 385.0 * t**6) / 1152.0
    return 0.5 * np.log(np.pi / (2.0 * nu)) - nu * eta - 0.5 * np.log(s) + np.log1p(-u1 / nu + u2 / nu**2)


def _log_kv(nu: float, x: np.ndarray) -> np.ndarray:
    """log K_nu(x) for x > 0: scipy's exponentially scaled ``kve`` where it is finite, else
    the large-order expansion (K_nu = K_-nu)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(all="ignore"):
        r = special.kve(nu, x)
        out = np.log(r) - x
    bad = ~(np.isfinite(r) & (r > 0))
    if bad.any():
        out[bad] = _log_kv_debye(abs(nu), x[bad])
    return out


def _log_dkv_dnu(nu: float, x: np.ndarray) -> np.ndarray:
    """log of d K_nu(x) / d nu (positive for nu > 0, x > 0), by Gauss-Legendre quadrature of
    int_0^T t sinh(nu t) exp(-x cosh t) dt summed in log space (no overflow for any order).
    T leaves out less than exp(-90) of the integral; the panels are narrow enough for the
    integrand's peak, of width (nu^2 + x^2)^(-1/4), at x sinh t = nu."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return x.copy()
    if nu > _DEBYE_NU:
        # large order (the quadrature would need hundreds of panels): differentiate the
        # uniform expansion, accurate to ~1e-8 there; d K / d nu = K d log K / d nu > 0
        h = 1e-3
        dlog = (_log_kv_debye(nu + h, x) - _log_kv_debye(nu - h, x)) / (2.0 * h)
        return _log_kv(nu, x) + np.log(dlog)
    T = np.arccosh(np.maximum(1.0 + 1e-12, (100.0 + nu * 40.0) / x)) + 1.0
    width = (nu * nu + x * x) ** -0.25
    npan = int(np.clip(np.ceil(np.max(T / (3.0 * width))), 6, 400))
    acc = np.full(x.shape, -np.inf)
    for p in range(npan):
        a = T * p / npan
        h = 0.5 * T / npan
        t = h[..., None] * (_GL_T + 1.0) + a[..., None]
        with np.errstate(divide="ignore"):
            g = (np.log(t) + nu * t - x[..., None] * np.cosh(t) + np.log(-np.expm1(-2.0 * nu * t))
                 - np.log(2.0) + np.log(_GL_W) + np.log(h)[..., None])
        acc = np.logaddexp(acc, special.logsumexp(g, axis=-1))
    return acc


def matern(d: np.ndarray, phi: float, kappa: float) -> np.ndarray:
    """TMB's ``matern(u, phi, kappa)``: (d/phi)^kappa K_kappa(d/phi) / (Gamma(kappa)
    2^(kappa-1)), 1 at d = 0 (computed in log space: finite for any smoothness).

    >>> round(float(matern(np.array(1.0), 1.0, 0.5)), 6) == round(float(np.exp(-1.0)), 6)
    True
    """
    d = np.asarray(d, dtype=float)
    x = np.where(d > 0, d / phi, 1.0)
    logc = -special.gammaln(kappa) - (kappa - 1.0) * np.log(2.0)
    r = np.exp(logc + kappa * np.log(x) + _log_kv(kappa, x))
    return np.where(d > 0, r, 1.0)


class MaternCovariance(SpatialCovariance):
    """``mat``: TMB's Matern correlation, range phi = exp(theta_1), smoothness
    kappa = exp(theta_2) (glmmTMB's ``mat``); kappa = 1/2 is ``exp``."""

    name = "mat"
    corr_params = ("log_range", "log_smoothness")

    def _rho(self, par: np.ndarray) -> np.ndarray:
        return matern(self.dist, np.exp(par[1]), np.exp(par[2]))

    def _drho(self, par: np.ndarray) -> list[np.ndarray]:
        phi, kappa = np.exp(par[1]), np.exp(par[2])
        d = self.dist
        pos = d > 0
        x = np.where(pos, d / phi, 1.0)
        # log of c x^kappa, c = 1 / (Gamma(kappa) 2^(kappa - 1)): every product in log space
        lcx = -special.gammaln(kappa) - (kappa - 1.0) * np.log(2.0) + kappa * np.log(x)
        rho = np.exp(lcx + _log_kv(kappa, x))
        # d/dx [x^k K_k(x)] = -x^k K_{k-1}(x); dx/dlog phi = -x
        d_logphi = np.exp(lcx + _log_kv(kappa - 1.0, x) + np.log(x))
        # d/dkappa: rho (log x - digamma(kappa) - log 2) + c x^k dK_k/dk; times kappa (log
        # scale). The quadrature on the distinct pairs only (the upper triangle), mirrored.
        iu = np.triu_indices(self.k, 1)
        ldk = np.full(x.shape, -np.inf)
        ldk[iu] = _log_dkv_dnu(kappa, x[iu])
        ldk = np.maximum(ldk, ldk.T)
        d_kappa = rho * (np.log(x) - special.digamma(kappa) - np.log(2.0)) + np.exp(lcx + ldk)
        return [np.where(pos, d_logphi, 0.0), np.where(pos, d_kappa * kappa, 0.0)]


register_structure("ou", OUCovariance)
register_structure("exp", ExponentialCovariance)
register_structure("gau", GaussianCovariance)
register_structure("mat", MaternCovariance)
