"""Reduced-rank covariance: glmmTMB's ``rr(0 + trait | site, d = 2)``.

A term with p columns gets a covariance of rank d: Sigma = Lambda_d Lambda_d', Lambda_d the
p x d matrix of factor loadings, lower trapezoidal (entry (i, j) is zero for j > i). Its
parameters are glmmTMB 1.1.5's theta for ``rr`` (src/glmmTMB.cpp): the d diagonal loadings
first, then the loadings below the diagonal column by column, p d - d (d - 1) / 2 in all.

The engine's Lambda is p x p: the loadings padded with p - d zero columns. The spherical
effects of those columns have no data and leave the likelihood unchanged (glmmTMB also draws p
standard normal effects per level and uses d of them), so the fit is glmmTMB's. Lambda is
linear in the loadings: the Jacobian is a fixed selection matrix.

The diagonal loadings are bounded below by 0 (flipping a column of loadings leaves Sigma
unchanged, so this only fixes glmmTMB's sign ambiguity); the start is glmmTMB's, all ones.

Example
-------
>>> import numpy as np
>>> rr = ReducedRank(["a", "b", "c"], d=2)
>>> rr.nparams
5
>>> rr.loadings(np.array([1.0, 2.0, 0.5, -0.5, 0.25])).tolist()
[[1.0, 0.0], [0.5, 2.0], [-0.5, 0.25]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from interlace.model.covariance import Covariance, register_structure

__all__ = ["ReducedRank"]


class ReducedRank(Covariance):
    """``rr``: rank-``d`` covariance from factor loadings (glmmTMB's parametrization);
    glmmTMB's default rank is 2."""

    name = "rr"
    positional_args = ("d",)

    @classmethod
    def from_columns(cls, column_names: list[str], **args) -> "ReducedRank":
        """``rr(lhs | group, d = 2)``: glmmTMB's default rank is 2."""
        unknown = set(args) - {"d"}
        if unknown:
            raise ValueError(f"the rr structure takes only d (the rank), got {', '.join(sorted(unknown))}")
        return cls(column_names, d=args.get("d", 2))

    def __init__(self, column_names: Sequence[str] | int, d: int = 2, term: str | None = None) -> None:
        names = [f"c{i + 1}" for i in range(column_names)] if isinstance(column_names, int) else \
            [str(c) for c in column_names]
        super().__init__(len(names))
        what = f"the term {term!r}" if term else "an rr() term"
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) and not (
                isinstance(d, float) and float(d).is_integer()):
            raise TypeError(f"{what}: d must be an integer rank, got {d!r}")
        d = int(d)
        if not 1 <= d <= self.k:
            raise ValueError(f"{what}: the rank d = {d} must be between 1 and the number of columns {self.k}")
        self.d = d
        self.column_names = names
        p = self.k
        # position of each parameter in the p x d loadings: diagonals, then below-diagonal by column
        li, lj = list(range(d)), list(range(d))
        for j in range(d):
            for i in range(j + 1, p):
                li.append(i)
                lj.append(j)
        self._li = np.array(li, dtype=np.int64)
        self._lj = np.array(lj, dtype=np.int64)
        # Lambda's entries (column-major lower triangle of p x p) for each parameter
        pos = {(int(a), int(b)): t for t, (a, b) in enumerate(zip(self.rows, self.cols))}
        self._entry = np.array([pos[(int(a), int(b))] for a, b in zip(self._li, self._lj)], dtype=np.int64)
        self._J = np.zeros((self.nentries, len(li)))
        self._J[self._entry, np.arange(len(li))] = 1.0

    @property
    def nparams(self) -> int:
        return self.k * self.d - self.d * (self.d - 1) // 2

    def loadings(self, par: np.ndarray) -> np.ndarray:
        """The p x d factor loadings (glmmTMB's ``fact_load``)."""
        L = np.zeros((self.k, self.d))
        L[self._li, self._lj] = np.asarray(par, dtype=float)
        return L

    def lambda_(self, par: np.ndarray) -> np.ndarray:
        lam = np.zeros((self.k, self.k))
        lam[self._li, self._lj] = np.asarray(par, dtype=float)
        return lam

    def entries(self, par: np.ndarray) -> np.ndarray:
        out = np.zeros(self.nentries)
        out[self._entry] = np.asarray(par, dtype=float)
        return out

    def jacobian(self, par: np.ndarray) -> np.ndarray:
        return self._J.copy()

    @property
    def lower(self) -> np.ndarray:
        return np.where(self._li == self._lj, 0.0, -np.inf)

    def start(self) -> np.ndarray:
        return np.ones(self.nparams)  # glmmTMB starts every rr parameter at 1

    @property
    def even_params(self) -> np.ndarray:
        return self._li == self._lj

    def canonical(self, par: np.ndarray) -> np.ndarray:
        """Flip each column of loadings whose diagonal is negative (Sigma is unchanged)."""
        out = np.array(par, dtype=float, copy=True)
        for j in range(self.d):
            if out[j] < 0:
                out[self._lj == j] *= -1.0
        return out

    def singular(self, par: np.ndarray, tol: float) -> bool:
        """A boundary fit: a factor's diagonal loading near zero (the covariance lost rank);
        Lambda's padding columns are zero by construction and do not count."""
        return bool(np.any(np.abs(np.asarray(par, dtype=float)[: self.d]) < tol))

    def sdcor_layout(self) -> list[tuple[str, int, int]]:
        """The loadings as they are (kind ``"par"``): VarCorr's SDs and correlations come from
        Sigma = Lambda_d Lambda_d'."""
        return [("par", int(i), int(j)) for i, j in zip(self._li, self._lj)]

    def sdcor(self, par: np.ndarray, sigma: float = 1.0) -> np.ndarray:
        return np.asarray(par, dtype=float) * sigma

    def par_from_sdcor(self, values: np.ndarray, sigma: float = 1.0) -> tuple[np.ndarray, bool]:
        return np.asarray(values, dtype=float) / sigma, True

    def wald_sdcor(self, par: np.ndarray, V: np.ndarray, z: float, sigma: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Wald intervals of the loadings (glmmTMB's theta for rr)."""
        par = np.asarray(par, dtype=float) * sigma
        se = np.sqrt(np.maximum(np.diag(np.asarray(V, dtype=float)), 0.0)) * sigma
        return par - z * se, par + z * se

    def wald_from_sdcor(self, values: np.ndarray, V: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
        """An LMM's intervals of the loadings (already on the response scale)."""
        return self.wald_sdcor(values, V, z)

    def param_names(self, vc_name: str, cnames: list[str]) -> list[str]:
        return [f"{vc_name}.{cnames[i]}.rr{j + 1}" for i, j in zip(self._li, self._lj)]

    def __repr__(self) -> str:
        return f"ReducedRank({self.k}, d={self.d})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.k == other.k and self.d == other.d  # type: ignore[attr-defined]

    __hash__ = object.__hash__


register_structure("rr", ReducedRank)
