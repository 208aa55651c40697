"""Covariance structures of a random-effect term (lme4 >= 1.1-36's ``Covariance`` classes).

A term ``(lhs | g)`` with ``k`` columns has a k x k relative covariance factor Lambda
(Sigma = sigma^2 Lambda Lambda', sigma = 1 for GLMMs). A :class:`Covariance` maps the term's
own parameters to Lambda and says everything else the engine and the result need about them:

=====================  ==========================================================================
``k``                  dimension of the term
``nparams``            number of parameters
``lambda_(par)``       the k x k lower-triangular factor Lambda
``entries(par)``       Lambda's lower triangle, column-major (lme4's theta order for ``us``)
``jacobian(par)``      d entries / d par, shape (k(k+1)/2, nparams)
``lower``              lower bounds of the parameters (``-inf`` for none)
``start()``            start values (lme4: the identity Lambda)
``canonical(par)``     the same covariance with a non-negative diagonal (sign flips)
``even_params``        parameters the deviance is even in (a zero there is a boundary the
                       optimizer probes: the gradient vanishes on it)
``param_names(...)``   one name per parameter (``result.theta``'s index)
``correlated``         whether VarCorr lists correlations (False for ``diag``)
=====================  ==========================================================================

The engine's kernels compute the deviance's derivatives in Lambda's entries; the gradient in
a structure's parameters is ``jacobian(par).T @ d_entries`` (``ReStructure.chain``), so no
kernel assumes Lambda linear in its parameters. VarCorr rows come from ``lambda_`` (results
build Sigma = Lambda Lambda').

To add a structure (ar1, cs, toep, ...), subclass :class:`Covariance`, implement ``nparams``,
``lambda_``, ``jacobian``, ``lower`` and ``start``, and set the term's ``cov``; nothing in
the engine changes.

Example
-------
>>> import numpy as np
>>> us = Unstructured(2)
>>> us.nparams, us.lambda_(np.array([1.0, 0.5, 2.0])).tolist()
(3, [[1.0, 0.0], [0.5, 2.0]])
>>> dg = Diagonal(2)
>>> dg.nparams, dg.entries(np.array([1.5, 0.5])).tolist()
(2, [1.5, 0.0, 0.5])
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

__all__ = ["Covariance", "Unstructured", "Diagonal", "tri_index", "term_covariance", "STRUCTURES",
           "register_structure", "make_structure", "structure_kwargs", "ScaledCorrelation", "CompoundSymmetry",
           "HomCompoundSymmetry", "AR1", "HetAR1", "Toeplitz", "HomToeplitz", "HomDiagonal"]


def tri_index(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of Lambda's lower-triangle entries, column-major (lme4's theta order).

    >>> [a.tolist() for a in tri_index(2)]
    [[0, 1, 1], [0, 0, 1]]
    """
    a, b = [], []
    for col in range(k):
        for row in range(col, k):
            a.append(row)
            b.append(col)
    return np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)


def term_covariance(term) -> "Covariance":
    """A random-effect term's covariance structure: its ``cov`` attribute, ``us`` by default."""
    return getattr(term, "cov", None) or Unstructured(term.k)


class Covariance:
    """Base class of a term's covariance structure (see the module docstring)."""

    name = "covariance"
    correlated = True
    #: summary()'s tag after the structure's correlation, glmmTMB's ``0.67 (ar1)``; None for
    #: structures printed as a correlation triangle (us, toep) or without correlations (diag)
    vc_label: str | None = None
    #: summary() prints only the first column's row (glmmTMB's ar1: every row is alike)
    vc_first_row_only = False
    #: names of the extra arguments a positional argument fills, in order (``rr(x | g, 2)``)
    positional_args: tuple[str, ...] = ()

    @classmethod
    def from_columns(cls, column_names: list[str], **args) -> "Covariance":
        """The structure of a term whose model-matrix columns are ``column_names``.

        The default takes the dimension from the number of columns and no extra arguments;
        structures that read more from the columns (coordinates of a ``numFactor``) or take
        arguments (``rr``'s ``d``) override it. Raise ValueError for a term the structure
        cannot support (the caller names the term).
        """
        if args:
            raise ValueError(f"the {cls.name} structure takes no arguments, got {', '.join(args)}")
        return cls(len(column_names))

    def __init__(self, k: int) -> None:
        if int(k) < 1:
            raise ValueError(f"a covariance structure needs a dimension of at least 1, got {k}")
        self.k = int(k)
        self.rows, self.cols = tri_index(self.k)

    @property
    def nentries(self) -> int:
        return self.k * (self.k + 1) // 2

    # ------------------------------------------------------------ to implement
    @property
    def nparams(self) -> int:
        raise NotImplementedError

    def lambda_(self, par: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def jacobian(self, par: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def lower(self) -> np.ndarray:
        raise NotImplementedError

    def start(self) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------ shared
    def entries(self, par: np.ndarray) -> np.ndarray:
        """Lambda's lower triangle, column-major."""
        return self.lambda_(np.asarray(par, dtype=float))[self.rows, self.cols]

    @property
    def even_params(self) -> np.ndarray:
        """Parameters the deviance is even in (default: none)."""
        return np.zeros(self.nparams, bool)

    def canonical(self, par: np.ndarray) -> np.ndarray:
        """The same covariance with non-negative diagonal parameters (default: unchanged)."""
        return np.array(par, dtype=float, copy=True)

    # ------------------------------------------------------------ the sd/cor scale (inference)
    def sdcor_layout(self) -> list[tuple[str, int, int]]:
        """Per parameter, the SD or correlation it is reported as (lme4's confint/profile rows):
        ``("sd", a, a)`` or ``("cor", a, b)``. The default is lme4's for ``us``: Lambda's lower
        triangle, SDs on the diagonal, correlations below it."""
        return [("sd", int(a), int(a)) if a == b else ("cor", int(a), int(b)) for a, b in zip(self.rows, self.cols)]

    def sdcor(self, par: np.ndarray, sigma: float = 1.0) -> np.ndarray:
        """The parameters' SDs/correlations (``sdcor_layout``) of Sigma = sigma^2 Lambda Lambda'."""
        lam = self.lambda_(np.asarray(par, dtype=float))
        cov = sigma * sigma * (lam @ lam.T)
        sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
        out = []
        for kind, a, b in self.sdcor_layout():
            if kind == "sd":
                out.append(sd[a])
            else:
                den = sd[a] * sd[b]
                out.append(cov[a, b] / den if den > 0 else 0.0)
        return np.array(out, dtype=float)

    def par_from_sdcor(self, values: np.ndarray, sigma: float = 1.0) -> tuple[np.ndarray, bool]:
        """Inverse of :meth:`sdcor`: (parameters, ok); ok is False for values outside the
        structure's set (a correlation matrix that is not positive semidefinite)."""
        sd = np.zeros(self.k)
        R = np.eye(self.k)
        for v, (kind, a, b) in zip(np.asarray(values, dtype=float), self.sdcor_layout()):
            if kind == "sd":
                sd[a] = v
            else:
                R[a, b] = R[b, a] = v
        L, ok = _semidefinite_cholesky(R)
        lam = (sd[:, None] * L) / sigma
        return lam[self.rows, self.cols], ok

    def wald_sdcor(self, par: np.ndarray, V: np.ndarray, z: float, sigma: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Wald limits of the ``sdcor`` rows from V, the covariance of the parameters, at
        z standard errors. The default gives NaN (lme4's confint gives NA for the variance
        parameters); structures with glmmTMB's parametrization override it."""
        nan = np.full(self.nparams, np.nan)
        return nan, nan.copy()

    def wald_from_sdcor(self, values: np.ndarray, V: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
        """Wald limits from the ``sdcor`` values and their covariance V (the LMM's, from the
        Hessian of its deviance on that scale). Default NaN, as :meth:`wald_sdcor`."""
        nan = np.full(self.nparams, np.nan)
        return nan, nan.copy()

    def vc_pairs(self) -> list[tuple[int, int]]:
        """(column b, column a), b < a, of the correlations VarCorr lists: every pair for a
        correlated structure (``us``), none for ``diag``; cs and ar1 list one, toep one per lag."""
        if not self.correlated:
            return []
        return [(b, a) for b in range(self.k) for a in range(b + 1, self.k)]

    def rescale_factors(self, s: np.ndarray) -> np.ndarray | None:
        """Factors f with par (original) = par' * f when the term's columns are divided by ``s``
        (Lambda's row a scaled by 1 / s_a: interlace/rescale.py), or None when the structure's
        parameters cannot absorb a column scale (the default; the columns are then left as is)."""
        return None

    def param_names(self, vc_name: str, cnames: list[str]) -> list[str]:
        """``group.column`` per parameter (default: ``group.p1``, ``group.p2``, ...)."""
        return [f"{vc_name}.{self.name}{i + 1}" for i in range(self.nparams)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.k})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.k == other.k  # type: ignore[attr-defined]

    __hash__ = object.__hash__


class Unstructured(Covariance):
    """``us``: every entry of the lower triangle is a parameter (lme4's default; today's
    correlated terms ``(1 + x | g)``). Lambda is linear in its parameters: the Jacobian is
    the identity.

    >>> Unstructured(2).param_names("Subject", ["Intercept", "Days"])
    ['Subject.Intercept', 'Subject.Days.Intercept', 'Subject.Days']
    """

    name = "us"

    @property
    def nparams(self) -> int:
        return self.nentries

    def lambda_(self, par: np.ndarray) -> np.ndarray:
        lam = np.zeros((self.k, self.k))
        lam[self.rows, self.cols] = par
        return lam

    def entries(self, par: np.ndarray) -> np.ndarray:
        return np.asarray(par, dtype=float)

    def jacobian(self, par: np.ndarray) -> np.ndarray:
        return np.eye(self.nentries)

    @property
    def lower(self) -> np.ndarray:
        return np.where(self.rows == self.cols, 0.0, -np.inf)

    def start(self) -> np.ndarray:
        return np.where(self.rows == self.cols, 1.0, 0.0)

    @property
    def even_params(self) -> np.ndarray:
        return self.rows == self.cols

    def canonical(self, par: np.ndarray) -> np.ndarray:
        """Flip each column of Lambda whose diagonal is negative (Lambda Lambda' is unchanged)."""
        out = np.array(par, dtype=float, copy=True)
        for t in np.flatnonzero((self.rows == self.cols) & (out < 0)):
            out[self.cols == self.cols[t]] *= -1.0
        return out

    def rescale_factors(self, s: np.ndarray) -> np.ndarray:
        return 1.0 / np.asarray(s, dtype=float)[self.rows]

    def param_names(self, vc_name: str, cnames: list[str]) -> list[str]:
        return [f"{vc_name}.{cnames[a]}" if a == b else f"{vc_name}.{cnames[a]}.{cnames[b]}"
                for a, b in zip(self.rows, self.cols)]


class Diagonal(Covariance):
    """``diag``: independent effects, one relative SD per column (lme4's ``||``).

    >>> Diagonal(2).jacobian(np.ones(2)).tolist()
    [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    """

    name = "diag"
    correlated = False

    @property
    def nparams(self) -> int:
        return self.k

    def lambda_(self, par: np.ndarray) -> np.ndarray:
        return np.diag(np.asarray(par, dtype=float))

    def jacobian(self, par: np.ndarray) -> np.ndarray:
        J = np.zeros((self.nentries, self.k))
        diag = np.flatnonzero(self.rows == self.cols)
        J[diag, np.arange(self.k)] = 1.0
        return J

    @property
    def lower(self) -> np.ndarray:
        return np.zeros(self.k)

    def start(self) -> np.ndarray:
        return np.ones(self.k)

    @property
    def even_params(self) -> np.ndarray:
        return np.ones(self.k, bool)

    def canonical(self, par: np.ndarray) -> np.ndarray:
        return np.abs(np.asarray(par, dtype=float))

    def rescale_factors(self, s: np.ndarray) -> np.ndarray:
        return 1.0 / np.asarray(s, dtype=float)

    def sdcor_layout(self) -> list[tuple[str, int, int]]:
        return [("sd", a, a) for a in range(self.k)]

    def par_from_sdcor(self, values: np.ndarray, sigma: float = 1.0) -> tuple[np.ndarray, bool]:
        v = np.asarray(values, dtype=float)
        return v / sigma, bool(np.all(v >= 0))

    def wald_sdcor(self, par: np.ndarray, V: np.ndarray, z: float, sigma: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
        """glmmTMB's Wald intervals of ``diag(...)`` SDs: on log SD, back-transformed (a zero
        SD, on the boundary, gets NaN)."""
        par = np.abs(np.asarray(par, dtype=float))
        with np.errstate(divide="ignore", invalid="ignore"):
            se = np.sqrt(np.maximum(np.diag(V), 0.0)) / par
            centre = np.log(sigma * par)
        se = np.where(par > 0, se, np.nan)
        return np.exp(centre - z * se), np.exp(centre + z * se)

    def wald_from_sdcor(self, values: np.ndarray, V: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
        return self.wald_sdcor(values, V, z)

    def param_names(self, vc_name: str, cnames: list[str]) -> list[str]:
        return [f"{vc_name}.{c}" for c in cnames[: self.k]]


def _semidefinite_cholesky(R: np.ndarray) -> tuple[np.ndarray, bool]:
    """Lower Cholesky factor of a correlation matrix allowing |cor| = 1 (pivots clipped at 0).
    Returns (L, ok); ok is False when R is not positive semidefinite."""
    k = R.shape[0]
    L = np.zeros((k, k))
    ok = True
    for j in range(k):
        piv = R[j, j] - L[j, :j] @ L[j, :j]
        if piv < -1e-10:
            ok = False
        d = np.sqrt(max(piv, 0.0))
        L[j, j] = d
        for i in range(j + 1, k):
            s = R[i, j] - L[i, :j] @ L[j, :j]
            L[i, j] = s / d if d > 0 else 0.0
            if d == 0 and abs(s) > 1e-10:
                ok = False
    return L, ok


# --------------------------------------------------------------------------- SDs x correlation

def _chol_derivative(C: np.ndarray, dR: np.ndarray) -> np.ndarray:
    """d chol(R) for R = C C' moved by dR: C Phi(C^-1 dR C^-T), Phi = lower triangle with the
    diagonal halved (the Cholesky factor's first-order perturbation)."""
    X = sla.solve_triangular(C, dR, lower=True, check_finite=False)
    X = sla.solve_triangular(C, X.T, lower=True, check_finite=False)
    Phi = np.tril(X)
    Phi[np.diag_indices_from(Phi)] *= 0.5
    return C @ Phi


class ScaledCorrelation(Covariance):
    """Sigma = D R D: standard deviations D (one per column, or one for all in the homogeneous
    variants) times a structured correlation matrix R (glmmTMB's cs, ar1, toep, ...).

    Parameters: the relative SDs first (lower bound 0, as lme4's theta: the optimizer can
    reach a zero variance), then the correlation parameters on glmmTMB's unconstrained scale.
    Lambda = D chol(R) is lower triangular with a non-negative diagonal: the Cholesky factor of
    D R D, and still a factor when an SD is 0. Subclasses give ``ncorr``, ``corr(cp)``, its
    derivatives ``corr_derivs(cp)`` and the correlation rows VarCorr lists (``vc_pairs``).
    """

    homogeneous = False
    min_k = 2

    def __init__(self, k: int) -> None:
        super().__init__(k)
        if self.k < self.min_k:
            raise ValueError(f"the {self.name} structure needs at least {self.min_k} columns, the term has {self.k} "
                             "(a factor's levels give the columns: write e.g. 0 + f with f a factor)")

    @classmethod
    def from_columns(cls, column_names: list[str], **args) -> "Covariance":
        if args:
            raise ValueError(f"the {cls.name} structure takes no arguments, got {', '.join(args)}")
        k = len(column_names)
        if k < cls.min_k:
            raise ValueError(f"the {cls.name} structure needs at least {cls.min_k} columns, the term has {k} "
                             f"({', '.join(column_names)}); a numeric variable gives one column: use a factor "
                             "(its levels are the columns, e.g. 0 + factor(time))")
        return cls(k)

    # --- the correlation part (to implement)
    @property
    def ncorr(self) -> int:
        raise NotImplementedError

    def corr(self, cp: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def corr_derivs(self, cp: np.ndarray) -> np.ndarray:
        """dR / d cp_m, shape (ncorr, k, k)."""
        raise NotImplementedError

    def corr_start(self) -> np.ndarray:
        return np.zeros(self.ncorr)

    def corr_chol(self, cp: np.ndarray) -> np.ndarray:
        return np.linalg.cholesky(self.corr(cp))

    def vc_pairs(self) -> list[tuple[int, int]]:
        """(column b, column a) of the correlations VarCorr lists (default: the first pair)."""
        return [(0, 1)]

    def corr_param_names(self) -> list[str]:
        return [f"{self.name}{i + 1}" for i in range(self.ncorr)]

    # --- shared
    @property
    def nsd(self) -> int:
        return 1 if self.homogeneous else self.k

    @property
    def nparams(self) -> int:
        return self.nsd + self.ncorr

    def _split(self, par: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        par = np.asarray(par, dtype=float)
        sd = np.broadcast_to(par[: self.nsd], (self.k,))
        return sd, par[self.nsd:]

    def lambda_(self, par: np.ndarray) -> np.ndarray:
        sd, cp = self._split(par)
        return sd[:, None] * self.corr_chol(cp)

    def jacobian(self, par: np.ndarray) -> np.ndarray:
        sd, cp = self._split(par)
        C = self.corr_chol(cp)
        J = np.empty((self.nentries, self.nparams))
        cvals = C[self.rows, self.cols]
        if self.homogeneous:
            J[:, 0] = cvals
        else:
            for i in range(self.k):
                J[:, i] = np.where(self.rows == i, cvals, 0.0)
        for m, dR in enumerate(self.corr_derivs(cp)):
            dC = _chol_derivative(C, dR)
            J[:, self.nsd + m] = sd[self.rows] * dC[self.rows, self.cols]
        return J

    @property
    def lower(self) -> np.ndarray:
        return np.concatenate([np.zeros(self.nsd), np.full(self.ncorr, -np.inf)])

    def start(self) -> np.ndarray:
        return np.concatenate([np.ones(self.nsd), self.corr_start()])

    @property
    def even_params(self) -> np.ndarray:
        # Sigma = s^2 R is even in a common SD; a column's own SD flips its correlations' signs
        return np.concatenate([np.full(self.nsd, self.homogeneous), np.zeros(self.ncorr, bool)])

    def canonical(self, par: np.ndarray) -> np.ndarray:
        out = np.array(par, dtype=float, copy=True)
        if self.homogeneous:
            out[0] = abs(out[0])
        return out

    def rescale_factors(self, s: np.ndarray) -> np.ndarray | None:
        if self.homogeneous:
            return None  # one SD cannot carry two column scales
        return np.concatenate([1.0 / np.asarray(s, dtype=float), np.ones(self.ncorr)])

    def correlation(self, par: np.ndarray) -> np.ndarray:
        """The structure's k x k correlation matrix R at ``par``."""
        return self.corr(self._split(par)[1])

    # the sd/cor scale: the SDs, then the correlations the parameters map to one to one
    def corr_layout(self) -> list[tuple[int, int]]:
        """(a, b) of R's entry each correlation parameter is reported as (default: (1, 0))."""
        return [(1, 0)]

    def corr_from_values(self, r: np.ndarray) -> tuple[np.ndarray, bool]:
        """Correlation parameters from the reported correlations (``corr_layout``'s entries)."""
        raise NotImplementedError

    def sdcor_layout(self) -> list[tuple[str, int, int]]:
        return [("sd", i, i) for i in range(self.nsd)] + [("cor", a, b) for a, b in self.corr_layout()]

    def sdcor(self, par: np.ndarray, sigma: float = 1.0) -> np.ndarray:
        par = np.asarray(par, dtype=float)
        R = self.corr(par[self.nsd:])
        return np.concatenate([sigma * par[: self.nsd], [R[a, b] for a, b in self.corr_layout()]])

    def par_from_sdcor(self, values: np.ndarray, sigma: float = 1.0) -> tuple[np.ndarray, bool]:
        v = np.asarray(values, dtype=float)
        cp, ok = self.corr_from_values(v[self.nsd:])
        return np.concatenate([v[: self.nsd] / sigma, cp]), bool(ok and np.all(v[: self.nsd] >= 0))

    # glmmTMB's scale of a reported correlation (its theta): x / sqrt(1 + x^2) = r by default
    @staticmethod
    def corr_link(r: np.ndarray) -> np.ndarray:
        return r / np.sqrt(1.0 - r * r)

    @staticmethod
    def corr_link_deriv(r: np.ndarray) -> np.ndarray:
        return (1.0 - r * r) ** -1.5

    @staticmethod
    def corr_linkinv(x: np.ndarray) -> np.ndarray:
        return x / np.sqrt(1.0 + x * x)

    def wald_sdcor(self, par: np.ndarray, V: np.ndarray, z: float, sigma: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
        """glmmTMB's Wald intervals: on log SD and on glmmTMB's scale of each correlation (its
        theta: the per-lag correlation of toep, logit of cs's rescaled rho, ar1's phi map),
        back-transformed. The SEs come from V by the delta method, which at the optimum equals
        glmmTMB's SE on its own parametrization."""
        par = np.asarray(par, dtype=float)
        vals = self.sdcor(par, sigma)
        G = np.zeros((self.nparams, self.nparams))  # d (transformed row) / d par
        for i in range(self.nsd):
            G[i, i] = 1.0 / par[i] if par[i] > 0 else np.nan
        r = vals[self.nsd:]
        dR = self.corr_derivs(par[self.nsd:])
        dlink = self.corr_link_deriv(r)
        for row, (a, b) in enumerate(self.corr_layout()):
            G[self.nsd + row, self.nsd:] = dlink[row] * dR[:, a, b]
        se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", G, V, G), 0.0))
        centre = np.concatenate([np.log(vals[: self.nsd]), self.corr_link(r)])
        lo, hi = centre - z * se, centre + z * se
        back = np.concatenate([np.exp(lo[: self.nsd]), self.corr_linkinv(lo[self.nsd:])]), \
            np.concatenate([np.exp(hi[: self.nsd]), self.corr_linkinv(hi[self.nsd:])])
        return back

    def wald_from_sdcor(self, values: np.ndarray, V: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`wald_sdcor`, from the SDs/correlations and their covariance."""
        v = np.asarray(values, dtype=float)
        r = v[self.nsd:]
        with np.errstate(divide="ignore", invalid="ignore"):
            G = np.concatenate([1.0 / v[: self.nsd], self.corr_link_deriv(r)])
            se = np.sqrt(np.maximum(np.diag(V), 0.0)) * np.abs(G)
            centre = np.concatenate([np.log(v[: self.nsd]), self.corr_link(r)])
        lo, hi = centre - z * se, centre + z * se
        return (np.concatenate([np.exp(lo[: self.nsd]), self.corr_linkinv(lo[self.nsd:])]),
                np.concatenate([np.exp(hi[: self.nsd]), self.corr_linkinv(hi[self.nsd:])]))

    def param_names(self, vc_name: str, cnames: list[str]) -> list[str]:
        sds = [f"{vc_name}.{self.name}.sd"] if self.homogeneous else [f"{vc_name}.{c}" for c in cnames[: self.k]]
        return sds + [f"{vc_name}.{n}" for n in self.corr_param_names()]


def _logistic(x: float) -> float:
    return float(0.5 * (1.0 + np.tanh(0.5 * x)))  # overflow-free 1 / (1 + exp(-x))


class CompoundSymmetry(ScaledCorrelation):
    """``cs``: one correlation rho between every pair of columns, heterogeneous SDs (glmmTMB).

    rho = logistic(x) (1 + a) - a with a = 1 / (k - 1): glmmTMB's map of its parameter x onto
    (-1/(k-1), 1), the range where R is positive definite.

    >>> cs = CompoundSymmetry(3)
    >>> cs.nparams, round(float(cs.correlation(np.array([1.0, 1.0, 1.0, 0.0]))[0, 1]), 6)
    (4, 0.25)
    """

    name = "cs"
    vc_label = "cs"

    @property
    def ncorr(self) -> int:
        return 1

    def _a(self) -> float:
        return 1.0 / (self.k - 1.0)

    def rho(self, x: float) -> float:
        a = self._a()
        return _logistic(x) * (1.0 + a) - a

    def corr(self, cp: np.ndarray) -> np.ndarray:
        r = self.rho(float(cp[0]))
        return np.full((self.k, self.k), r) + (1.0 - r) * np.eye(self.k)

    def corr_derivs(self, cp: np.ndarray) -> np.ndarray:
        p = _logistic(float(cp[0]))
        d = (1.0 + self._a()) * p * (1.0 - p)
        return (d * (np.ones((self.k, self.k)) - np.eye(self.k)))[None]

    def corr_start(self) -> np.ndarray:
        a = self._a()  # rho = 0: logistic(x) = a / (1 + a)
        return np.array([np.log(a)])

    def corr_param_names(self) -> list[str]:
        return ["cs.rho"]

    def corr_link(self, r: np.ndarray) -> np.ndarray:  # type: ignore[override]
        a = self._a()
        p = (np.asarray(r) + a) / (1.0 + a)
        return np.log(p / (1.0 - p))

    def corr_link_deriv(self, r: np.ndarray) -> np.ndarray:  # type: ignore[override]
        a = self._a()
        p = (np.asarray(r) + a) / (1.0 + a)
        return 1.0 / ((1.0 + a) * p * (1.0 - p))

    def corr_linkinv(self, x: np.ndarray) -> np.ndarray:  # type: ignore[override]
        a = self._a()
        return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x))) * (1.0 + a) - a

    def corr_from_values(self, r: np.ndarray) -> tuple[np.ndarray, bool]:
        a = self._a()
        p = (float(r[0]) + a) / (1.0 + a)
        ok = 0.0 < p < 1.0
        p = min(max(p, 1e-12), 1.0 - 1e-12)
        return np.array([np.log(p / (1.0 - p))]), ok


class HomCompoundSymmetry(CompoundSymmetry):
    """``homcs``: compound symmetry with one SD for all columns (glmmTMB >= 1.1.10's name).

    >>> HomCompoundSymmetry(4).nparams
    2
    """

    name = "homcs"
    vc_label = "homcs"
    homogeneous = True


class AR1(ScaledCorrelation):
    """``ar1``: R[i, j] = phi^|i - j| over the columns in order (equally spaced times), one SD
    for all columns: glmmTMB 1.1.5's ar1, with phi = x / sqrt(1 + x^2).

    >>> ar = AR1(3)
    >>> np.round(ar.correlation(np.array([2.0, 1.0]))[2], 4).tolist()
    [0.5, 0.7071, 1.0]
    """

    name = "ar1"
    vc_label = "ar1"
    vc_first_row_only = True
    homogeneous = True

    @property
    def ncorr(self) -> int:
        return 1

    @staticmethod
    def phi(x: float) -> float:
        return float(x / np.sqrt(1.0 + x * x))

    def _lags(self) -> np.ndarray:
        i = np.arange(self.k)
        return np.abs(i[:, None] - i[None, :])

    def corr(self, cp: np.ndarray) -> np.ndarray:
        return self.phi(float(cp[0])) ** self._lags()

    def corr_derivs(self, cp: np.ndarray) -> np.ndarray:
        x = float(cp[0])
        ph = self.phi(x)
        dphi = (1.0 + x * x) ** -1.5
        L = self._lags()
        return (np.where(L > 0, L * ph ** np.maximum(L - 1, 0), 0.0) * dphi)[None]

    def corr_chol(self, cp: np.ndarray) -> np.ndarray:
        # closed form: column 0 is phi^i, column j >= 1 is phi^(i - j) sqrt(1 - phi^2) (exact as
        # |phi| -> 1, where a numerical Cholesky of R loses its last digits)
        x = float(cp[0])
        ph = self.phi(x)
        c = 1.0 / np.sqrt(1.0 + x * x)  # sqrt(1 - phi^2) without cancellation
        L = np.tril(ph ** np.tril(self._lags()))
        L[:, 1:] *= c
        return L

    def corr_param_names(self) -> list[str]:
        return ["ar1.phi"]

    def corr_from_values(self, r: np.ndarray) -> tuple[np.ndarray, bool]:
        return _from_unit(np.asarray(r, dtype=float))


class HetAR1(AR1):
    """``hetar1``: ar1 correlations with one SD per column (glmmTMB >= 1.1.10's name).

    >>> HetAR1(3).nparams
    4
    """

    name = "hetar1"
    vc_label = "hetar1"
    vc_first_row_only = False
    homogeneous = False


def _pacf_to_acf(p: np.ndarray) -> np.ndarray:
    """Autocorrelations rho_1..rho_m of the stationary process with partial autocorrelations
    p_1..p_m (Durbin-Levinson); every p in (-1, 1) gives a positive definite Toeplitz R.
    Plain arithmetic, so complex arguments give exact derivatives (complex step)."""
    m = len(p)
    rho = np.zeros(m, dtype=p.dtype)
    phi = np.zeros(0, dtype=p.dtype)
    v = 1.0 + 0.0 * p[0] if m else 1.0
    for k in range(m):
        rho[k] = (phi @ rho[:k][::-1] if k else 0.0) + p[k] * v
        phi = np.concatenate([phi - p[k] * phi[::-1], [p[k]]])
        v = v * (1.0 - p[k] * p[k])
    return rho


def _acf_to_pacf(rho: np.ndarray) -> np.ndarray:
    """Partial autocorrelations of autocorrelations rho_1..rho_m (Durbin-Levinson); an entry
    of modulus >= 1 marks a sequence that is not positive definite."""
    m = len(rho)
    r = np.concatenate([[1.0], rho])
    pacf = np.zeros(m)
    phi = np.zeros(0)
    v = 1.0
    for k in range(m):
        num = r[k + 1] - (phi @ r[1:k + 1][::-1] if k else 0.0)
        p = num / v if v > 0 else np.sign(num)
        pacf[k] = p
        phi = np.concatenate([phi - p * phi[::-1], [p]])
        v = v * (1.0 - p * p)
    return pacf


def _from_unit(p: np.ndarray) -> tuple[np.ndarray, bool]:
    """x with x / sqrt(1 + x^2) = p (glmmTMB's map onto (-1, 1)); ok False outside it."""
    ok = bool(np.all(np.abs(p) < 1.0))
    q = np.clip(p, -1.0 + 1e-12, 1.0 - 1e-12)
    return q / np.sqrt(1.0 - q * q), ok


class Toeplitz(ScaledCorrelation):
    """``toep``: one correlation per lag, R[i, j] = rho_|i - j|, heterogeneous SDs (glmmTMB).

    The k - 1 correlation parameters are the lags' partial autocorrelations, each
    x / sqrt(1 + x^2): every value gives a positive definite R (glmmTMB 1.1.5 maps each lag's
    correlation itself, which can leave the positive definite set); VarCorr and the fitted
    covariance are on the correlation scale either way.

    >>> t = Toeplitz(3)
    >>> np.round(t.correlation(np.array([1, 1, 1, 0.0, 0.0])), 3)[0].tolist()
    [1.0, 0.0, 0.0]
    """

    name = "toep"

    @property
    def ncorr(self) -> int:
        return self.k - 1

    def _acf(self, cp: np.ndarray) -> np.ndarray:
        x = np.asarray(cp)
        return _pacf_to_acf(x / np.sqrt(1.0 + x * x))

    def corr(self, cp: np.ndarray) -> np.ndarray:
        r = np.concatenate([[1.0], self._acf(np.asarray(cp, dtype=float))])
        i = np.arange(self.k)
        return r[np.abs(i[:, None] - i[None, :])]

    def corr_derivs(self, cp: np.ndarray) -> np.ndarray:
        cp = np.asarray(cp, dtype=float)
        h = 1e-30
        i = np.arange(self.k)
        lag = np.abs(i[:, None] - i[None, :])
        out = np.zeros((self.ncorr, self.k, self.k))
        for m in range(self.ncorr):
            z = cp.astype(complex)
            z[m] += 1j * h
            dr = np.concatenate([[0.0], self._acf(z).imag / h])  # complex step: exact to rounding
            out[m] = dr[lag]
        return out

    def vc_pairs(self) -> list[tuple[int, int]]:
        return [(0, a) for a in range(1, self.k)]

    def corr_layout(self) -> list[tuple[int, int]]:
        return [(a, 0) for a in range(1, self.k)]  # the lag-a correlation

    def corr_from_values(self, r: np.ndarray) -> tuple[np.ndarray, bool]:
        return _from_unit(_acf_to_pacf(np.asarray(r, dtype=float)))

    def corr_param_names(self) -> list[str]:
        return [f"toep.pacf{lag}" for lag in range(1, self.k)]


class HomToeplitz(Toeplitz):
    """``homtoep``: Toeplitz correlations with one SD (glmmTMB >= 1.1.10's name).

    >>> HomToeplitz(3).nparams
    3
    """

    name = "homtoep"
    homogeneous = True


class HomDiagonal(ScaledCorrelation):
    """``homdiag``: independent columns with one common SD (glmmTMB >= 1.1.10's name); the
    same model as a random intercept on the interaction of the group and the columns' factor.

    >>> HomDiagonal(3).lambda_(np.array([2.0])).tolist()
    [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]
    """

    name = "homdiag"
    homogeneous = True
    correlated = False
    min_k = 1

    @property
    def ncorr(self) -> int:
        return 0

    def corr(self, cp: np.ndarray) -> np.ndarray:
        return np.eye(self.k)

    def corr_chol(self, cp: np.ndarray) -> np.ndarray:
        return np.eye(self.k)

    def corr_derivs(self, cp: np.ndarray) -> np.ndarray:
        return np.zeros((0, self.k, self.k))

    def vc_pairs(self) -> list[tuple[int, int]]:
        return []

    def corr_layout(self) -> list[tuple[int, int]]:
        return []

    def corr_from_values(self, r: np.ndarray) -> tuple[np.ndarray, bool]:
        return np.zeros(0), True


# --------------------------------------------------------------------------- registry

#: structure name (as written in a formula, ``ar1(0 + t | s)``) -> its Covariance class
STRUCTURES: dict[str, type[Covariance]] = {}


def register_structure(name: str, cls: type[Covariance]) -> None:
    """Make ``name(lhs | group)`` in a formula build a ``cls`` structure.

    >>> register_structure("us", Unstructured)  # already there: a no-op
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a structure name must be an identifier, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Covariance)):
        raise TypeError(f"structure {name!r}: {cls!r} is not a Covariance subclass")
    have = STRUCTURES.get(name)
    if have is not None and have is not cls:
        raise ValueError(f"covariance structure {name!r} is already registered ({have.__name__})")
    STRUCTURES[name] = cls


def make_structure(name: str, column_names: list[str], **args) -> Covariance:
    """The covariance structure ``name`` for a term with model-matrix columns ``column_names``.

    ``args`` are the structure's extra arguments from the formula (``d = 2``). An unknown name
    or a term the structure cannot support is a ValueError (callers prefix the term).

    >>> make_structure("diag", ["(Intercept)", "x"])
    Diagonal(2)
    """
    cls = STRUCTURES.get(name)
    if cls is None:
        raise ValueError(f"unknown covariance structure {name!r} (known: {', '.join(sorted(STRUCTURES))})")
    return cls.from_columns(list(column_names), **args)


def structure_kwargs(name: str, args: tuple) -> dict:
    """A bar's ``(name, value)`` argument pairs as keywords, positional ones named by the
    structure's ``positional_args``.

    >>> structure_kwargs("us", ())
    {}
    """
    cls = STRUCTURES.get(name)
    if cls is None:
        raise ValueError(f"unknown covariance structure {name!r} (known: {', '.join(sorted(STRUCTURES))})")
    out: dict = {}
    pos = list(cls.positional_args)
    for key, val in args:
        if not key:
            if not pos:
                raise ValueError(f"the {name} structure takes no positional argument (got {val!r})")
            key = pos.pop(0)
        if key in out:
            raise ValueError(f"argument {key!r} of the {name} structure given twice")
        out[key] = val
    return out


register_structure("us", Unstructured)
register_structure("diag", Diagonal)
register_structure("cs", CompoundSymmetry)
register_structure("homcs", HomCompoundSymmetry)
register_structure("ar1", AR1)
register_structure("hetar1", HetAR1)
register_structure("toep", Toeplitz)
register_structure("homtoep", HomToeplitz)
register_structure("homdiag", HomDiagonal)
