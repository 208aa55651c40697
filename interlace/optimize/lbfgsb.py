"""L-BFGS-B with less overhead per evaluation than ``scipy.optimize.minimize``.

``minimize(method="L-BFGS-B")`` wraps the objective in a ``ScalarFunction`` (array
copies, bound checks and caching on every call) and builds an ``OptimizeResult`` per
iteration; on a small model that machinery costs more than the deviance itself (measured
on sleepstudy: 75% of the optimizer's time). This driver calls the same compiled routine
(scipy's ``setulb``, the C translation of Byrd, Lu, Nocedal and Zhu's code) with the same
arguments and the same stopping rules, so the iterates, the evaluation count and the
optimum are those of ``minimize`` to the last bit; only the Python between evaluations
is gone. Where scipy's private ``setulb`` is not the expected one (another scipy
version), ``minimize`` runs instead.

Example
-------
>>> import numpy as np
>>> fg = lambda x: (float((x[0] - 1) ** 2 + 10 * (x[1] + 2) ** 2), np.array([2 * (x[0] - 1), 20 * (x[1] + 2)]))
>>> r = minimize_lbfgsb(fg, np.zeros(2), lower=np.array([0.0, -np.inf]))
>>> np.round(r.x, 6).tolist(), r.success
([1.0, -2.0], True)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import optimize as sopt

try:  # scipy >= 1.15: the C translation with this signature
    from scipy.optimize import _lbfgsb
    from scipy.optimize._lbfgsb_py import LbfgsInvHessProduct, status_messages, task_messages

    _SETULB = getattr(_lbfgsb, "setulb", None)
except ImportError:  # pragma: no cover - other scipy layouts use minimize
    _SETULB = None

__all__ = ["minimize_lbfgsb"]


def minimize_lbfgsb(fg: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray,
                    lower: np.ndarray | None = None, upper: np.ndarray | None = None, *,
                    maxiter: int = 15000, maxfun: int = 15000, ftol: float = 2.2204460492503131e-09,
                    gtol: float = 1e-5, maxls: int = 20, maxcor: int = 10) -> sopt.OptimizeResult:
    """``scipy.optimize.minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=...)`` with
    the same options (``ftol``, ``gtol``, ``maxls``, ``maxiter``, ``maxfun``, ``maxcor``);
    ``lower`` / ``upper`` are arrays with -inf / inf for no bound."""
    x0 = np.asarray(x0, dtype=np.float64).ravel()
    n = x0.shape[0]
    lo = np.full(n, -np.inf) if lower is None else np.asarray(lower, dtype=np.float64)
    hi = np.full(n, np.inf) if upper is None else np.asarray(upper, dtype=np.float64)
    if _SETULB is None:
        bounds = [(a if np.isfinite(a) else None, b if np.isfinite(b) else None) for a, b in zip(lo, hi)]
        return sopt.minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                             options={"maxiter": maxiter, "maxfun": maxfun, "ftol": ftol, "gtol": gtol,
                                      "maxls": maxls, "maxcor": maxcor})
    if np.any(lo > hi):
        raise ValueError("L-BFGS-B: a lower bound is greater than an upper bound")
    fin_lo, fin_hi = np.isfinite(lo), np.isfinite(hi)
    # scipy's coding of the bound types: 0 none, 1 lower, 2 both, 3 upper
    nbd = np.where(fin_lo & fin_hi, 2, np.where(fin_lo, 1, np.where(fin_hi, 3, 0))).astype(np.int32)
    low_bnd = np.where(fin_lo, lo, 0.0)
    upper_bnd = np.where(fin_hi, hi, 0.0)
    x = np.clip(x0, lo, hi)  # scipy clips the start into the bounds too
    m = maxcor
    factr = ftol / np.finfo(float).eps
    f = np.array(0.0, dtype=np.float64)
    g = np.zeros(n, dtype=np.float64)
    nfev = 0
    last_x = None
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m, np.float64)
    iwa = np.zeros(3 * n, dtype=np.int32)
    task = np.zeros(2, dtype=np.int32)
    ln_task = np.zeros(2, dtype=np.int32)
    lsave = np.zeros(4, dtype=np.int32)
    isave = np.zeros(44, dtype=np.int32)
    dsave = np.zeros(29, dtype=np.float64)
    nit = 0
    while True:
        _SETULB(m, x, low_bnd, upper_bnd, nbd, f, g, factr, gtol, wa, iwa, task, lsave, isave, dsave,
                maxls, ln_task)
        if task[0] == 3:
            if last_x is None or not np.array_equal(x, last_x):  # as ScalarFunction: a new x only
                f_val, gv = fg(x.copy())
                f = float(f_val)  # what scipy hands setulb after an evaluation
                g = np.array(gv, dtype=np.float64)
                nfev += 1
                last_x = x.copy()
        elif task[0] == 1:
            nit += 1
            if nit >= maxiter:
                task[0], task[1] = 5, 504
            elif nfev > maxfun:
                task[0], task[1] = 5, 502
        else:
            break
    if task[0] == 4:
        warnflag = 0
    elif nfev > maxfun or nit >= maxiter:
        warnflag = 1
    else:
        warnflag = 2
    n_corrs = min(int(isave[30]), maxcor)
    s = wa[0:m * n].reshape(m, n)
    y = wa[m * n:2 * m * n].reshape(m, n)
    msg = status_messages[task[0]] + ": " + task_messages[task[1]]
    res = sopt.OptimizeResult(fun=float(f), jac=g, nfev=nfev, njev=nfev, nit=nit, status=warnflag,
                              message=msg, x=x, success=(warnflag == 0))
    res.hess_inv = _LazyInvHess(s[:n_corrs].copy(), y[:n_corrs].copy())
    return res


class _LazyInvHess:
    """The L-BFGS inverse-Hessian operator, built when read (``todense()``, ``matvec``):
    scipy's LinearOperator costs more to construct than most fits use it."""

    def __init__(self, s: np.ndarray, y: np.ndarray) -> None:
        self._s, self._y, self._op = s, y, None

    def _get(self):
        if self._op is None:
            self._op = LbfgsInvHessProduct(self._s, self._y)
        return self._op

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._get(), name)
