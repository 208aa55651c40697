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

import importlib.machinery
import importlib.util
import os
import sys
from typing import Any, Callable

import numpy as np

from interlace.objective.protocol import same_point


def _load_setulb() -> Any:
    """scipy's compiled ``setulb``, loaded without running ``scipy.optimize``'s package
    ``__init__``: that imports scipy.special, scipy.spatial, scipy.fft and linprog's
    machinery (0.1 s of CPU in a fresh process) which a fit never uses. The extension is
    registered under its own name, so a later ``import scipy.optimize`` reuses it."""
    name = "scipy.optimize._lbfgsb"
    mod = sys.modules.get(name)
    if mod is None:
        import scipy

        folder = os.path.join(os.path.dirname(scipy.__file__), "optimize")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "_lbfgsb" + suffix)
            if os.path.exists(path):
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    return None
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
                sys.modules[name] = mod
                break
    return getattr(mod, "setulb", None)


try:  # scipy >= 1.15: the C translation with the signature used below
    _SETULB = _load_setulb()
except Exception:  # pragma: no cover - another layout: scipy.optimize.minimize is used
    _SETULB = None

# scipy's status and task texts (scipy/optimize/_lbfgsb_py.py), so messages read as minimize's
_STATUS = {0: "START", 1: "NEW_X", 2: "RESTART", 3: "FG", 4: "CONVERGENCE", 5: "STOP", 6: "WARNING",
           7: "ERROR", 8: "ABNORMAL"}
_TASK = {0: "", 301: "", 302: "", 401: "NORM OF PROJECTED GRADIENT <= PGTOL",
         402: "RELATIVE REDUCTION OF F <= FACTR*EPSMCH", 501: "CPU EXCEEDING THE TIME LIMIT",
         502: "TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT", 503: "PROJECTED GRADIENT IS SUFFICIENTLY SMALL",
         504: "TOTAL NO. OF ITERATIONS REACHED LIMIT", 505: "CALLBACK REQUESTED HALT",
         601: "ROUNDING ERRORS PREVENT PROGRESS", 602: "STP = STPMAX", 603: "STP = STPMIN",
         604: "XTOL TEST SATISFIED", 701: "NO FEASIBLE SOLUTION", 702: "FACTR < 0", 703: "FTOL < 0",
         704: "GTOL < 0", 705: "XTOL < 0", 706: "STP < STPMIN", 707: "STP > STPMAX", 708: "STPMIN < 0",
         709: "STPMAX < STPMIN", 710: "INITIAL G >= 0", 711: "M <= 0", 712: "N <= 0", 713: "INVALID NBD"}


class LbfgsResult(dict):
    """What ``scipy.optimize.OptimizeResult`` offers: a dict with attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    __setattr__ = dict.__setitem__  # type: ignore[assignment]
    __delattr__ = dict.__delitem__  # type: ignore[assignment]


__all__ = ["minimize_lbfgsb"]


def minimize_lbfgsb(fg: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray,
                    lower: np.ndarray | None = None, upper: np.ndarray | None = None, *,
                    maxiter: int = 15000, maxfun: int = 15000, ftol: float = 2.2204460492503131e-09,
                    gtol: float = 1e-5, maxls: int = 20, maxcor: int = 10) -> Any:
    """``scipy.optimize.minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=...)`` with
    the same options (``ftol``, ``gtol``, ``maxls``, ``maxiter``, ``maxfun``, ``maxcor``);
    ``lower`` / ``upper`` are arrays with -inf / inf for no bound."""
    x0 = np.asarray(x0, dtype=np.float64).ravel()
    n = x0.shape[0]
    lo = np.full(n, -np.inf) if lower is None else np.asarray(lower, dtype=np.float64)
    hi = np.full(n, np.inf) if upper is None else np.asarray(upper, dtype=np.float64)
    if _SETULB is None:
        from scipy import optimize as sopt

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
            if last_x is None or not same_point(last_x, x):  # as ScalarFunction: a new x only
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
    msg = _STATUS[int(task[0])] + ": " + _TASK.get(int(task[1]), "")
    res = LbfgsResult(fun=float(f), jac=g, nfev=nfev, njev=nfev, nit=nit, status=warnflag,
                              message=msg, x=x, success=(warnflag == 0))
    res.hess_inv = _LazyInvHess(s[:n_corrs].copy(), y[:n_corrs].copy())  # (0, n) arrays: identity
    return res


class _LazyInvHess:
    """The L-BFGS approximation of the inverse Hessian from the stored corrections
    (s_i, y_i), identity start, as scipy's ``LbfgsInvHessProduct``: ``todense()`` and
    ``matvec`` by the two-loop recursion of Nocedal and Wright (Algorithm 7.4)."""

    def __init__(self, s: np.ndarray, y: np.ndarray) -> None:
        self.sk, self.yk = s, y
        self.rho = 1.0 / np.einsum("ij,ij->i", s, y) if len(s) else np.zeros(0)
        self.shape = (s.shape[1], s.shape[1])

    def matmat(self, X: np.ndarray) -> np.ndarray:
        q = np.array(X, dtype=np.float64)
        alpha = []
        for i in range(len(self.sk) - 1, -1, -1):
            a = self.rho[i] * (self.sk[i] @ q)
            q = q - np.multiply.outer(self.yk[i], a)
            alpha.append(a)
        alpha.reverse()
        for i in range(len(self.sk)):
            b = self.rho[i] * (self.yk[i] @ q)
            q = q + np.multiply.outer(self.sk[i], alpha[i] - b)
        return q

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return self.matmat(np.asarray(v, dtype=np.float64).reshape(-1, 1)).ravel()

    def todense(self) -> np.ndarray:
        return self.matmat(np.eye(self.shape[0]))
