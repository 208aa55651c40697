"""Fit on internally rescaled covariates when the data's scale breaks the fit.

A covariate on a scale of thousands (a random slope on ``x * 1000``) makes the
penalized system so ill-conditioned near the start (theta at the identity)
that the Cholesky factor of the joint (u, beta) system fails, where lme4
warns ("Some predictor variables are on very different scales") and fits.
Dividing a column of X or of a term's Z by a constant is an exact
reparameterisation: beta_j -> beta_j * s_j, and row a of Lambda_j scaled by
s_a (Lambda = D Lambda', b = D b', the same u). So the model is fitted on
columns divided by powers of ten near their standard deviation, and the
optimum is mapped back: the objective of the original data is evaluated at
the mapped (theta, beta), and the Hessian is transformed (H = J^-1 H' J^-1), so
every reported number (estimates, vcov, VarCorr, conditional modes, post-fit
methods) is on the data's own scale.

Example
-------
>>> import numpy as np
>>> from types import SimpleNamespace
>>> mf = SimpleNamespace(X=np.c_[np.ones(4), [1000.0, 2000.0, 3000.0, 4000.0]],
...                      terms=[SimpleNamespace(z=np.ones((4, 1)))])
>>> sx, sz = column_scales(mf)
>>> sx.tolist(), [s.tolist() for s in sz]
([1.0, 1000.0], [[1.0]])
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["column_scales", "scaled_frame", "unscale_opt", "fit_rescaled"]

# columns whose standard deviation is this many decades from 1 are rescaled
DECADES = 1.5


def _scales(A: np.ndarray) -> np.ndarray:
    s = np.ones(A.shape[1])
    for j in range(A.shape[1]):
        col = A[:, j]
        if col.size < 2 or np.all(np.isin(col, (0.0, 1.0))):
            continue  # intercepts and indicators keep their coding
        sd = float(np.std(col, ddof=1))
        if sd > 0 and np.isfinite(sd) and abs(np.log10(sd)) > DECADES:
            s[j] = 10.0 ** np.round(np.log10(sd))
    return s


def _rescalable(term: Any) -> bool:
    """Whether the term's structure can carry a column's scale into its parameters."""
    cov = getattr(term, "cov", None)
    return cov is None or cov.rescale_factors(np.ones(cov.k)) is not None


def column_scales(mf: Any) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """Powers of ten to divide the columns of X and of each term's Z by, or
    None when no column is far from unit scale."""
    sx = _scales(mf.X)
    # a structure that cannot carry a column's scale into its parameters keeps its Z as is
    sz = [_scales(t.z) if _rescalable(t) else np.ones(t.z.shape[1]) for t in mf.terms]
    if np.all(sx == 1.0) and all(np.all(s == 1.0) for s in sz):
        return None
    return sx, sz


def scaled_frame(mf: Any, sx: np.ndarray, sz: list[np.ndarray]) -> Any:
    """A copy of the ModelFrame with X and the terms' Z divided column-wise."""
    terms = [dataclasses.replace(t, z=np.ascontiguousarray(t.z / s)) for t, s in zip(mf.terms, sz)]
    return dataclasses.replace(mf, X=np.ascontiguousarray(mf.X / sx), terms=terms)


def _theta_factors(re: Any, sz: list[np.ndarray]) -> np.ndarray:
    """theta_t (original) = theta'_t * factor_t: row a of Lambda_j is divided by s_a (each
    structure says what that does to its parameters)."""
    return np.concatenate([c.rescale_factors(s) if np.any(s != 1.0) else np.ones(c.nparams)
                           for c, s in zip(re.covs, sz)])


def unscale_opt(opt: Any, re: Any, sx: np.ndarray, sz: list[np.ndarray]) -> Any:
    """The optimizer's result in the original parameterisation x = J x'."""
    jt = _theta_factors(re, sz)
    jb = 1.0 / sx
    J = np.concatenate([jt, jb])
    nt = len(jt)
    changes: dict[str, Any] = {"theta": np.asarray(opt.theta) * jt, "beta": np.asarray(opt.beta) * jb}
    g = getattr(opt, "gradient", None)
    if g is not None:
        g = np.asarray(g, dtype=float)
        changes["gradient"] = g / (J if g.size == J.size else jt[: g.size])
    H = getattr(opt, "hessian", None)
    if H is not None:
        H = np.asarray(H, dtype=float)
        Jh = J if H.shape[0] == J.size else jt[: H.shape[0]]
        changes["hessian"] = H / np.outer(Jh, Jh)
    del nt
    return dataclasses.replace(opt, **changes)


def _described(names: list[str], s: np.ndarray) -> list[str]:
    return [f"{n} / {v:g}" for n, v in zip(names, s) if v != 1.0]


def fit_rescaled(mf: Any, fam: Any, optimizer: str, theta0: np.ndarray | None, nAGQ: int,
                 scales: tuple[np.ndarray, list[np.ndarray]]):
    """Laplace (or nAGQ = 0) fit of ``mf`` through its rescaled copy: returns
    (objective on the original data at the optimum, optimizer result in the
    original parameterisation, message)."""
    from interlace.objective.laplace import LaplaceObjective
    from interlace.optimize import optimize_glmm

    sx, sz = scales
    mf2 = scaled_frame(mf, sx, sz)
    obj2 = LaplaceObjective(mf2, fam)
    jt = _theta_factors(obj2.re, sz)
    t0 = None if theta0 is None else np.asarray(theta0, dtype=float) / jt
    opt2 = optimize_glmm(obj2, optimizer, t0, nAGQ)
    opt = unscale_opt(opt2, obj2.re, sx, sz)
    obj = LaplaceObjective(mf, fam)
    dev = float(obj.deviance(opt.theta, opt.beta))  # the original data's state at the optimum
    if not np.isfinite(dev):
        raise np.linalg.LinAlgError("the rescaled fit's optimum has no finite deviance on the original data")
    parts = _described(list(mf.fe_names), sx)
    for t, s in zip(mf.terms, sz):
        parts += _described([f"{c} in ({t.lhs} | {t.group})" for c in t.cnames], s)
    msg = ("covariates on very different scales were rescaled internally for the optimization ("
           + ", ".join(dict.fromkeys(parts)) + "); estimates, standard errors and variance components are "
           "reported on the original scale")
    return obj, opt, msg


def response_scale(mf: Any, fam: Any) -> tuple[float, float, float] | None:
    """For a family whose density is scale-equivariant (``scale_equivariant``:
    the Gamma): (c, a, d)
    with y' = y / c and eta' = a eta + d for the family's link (inverse: a = c;
    log: d = -log c; identity: a = 1 / c), when the response is decades from
    unit scale; else None."""
    if not getattr(fam, "scale_equivariant", False):
        return None
    med = float(np.median(np.abs(mf.y)))
    if not (med > 0 and np.isfinite(med)) or abs(np.log10(med)) <= DECADES:
        return None
    c = 10.0 ** np.round(np.log10(med))
    link = getattr(getattr(fam, "link", None), "name", None)
    return {"inverse": (c, c, 0.0), "log": (c, 1.0, -np.log(c)), "identity": (c, 1.0 / c, 0.0)}.get(link)


def refit_general_rescaled(mf: Any, lf: Any, optimizer: str, theta0: np.ndarray | None,
                           scales: tuple[np.ndarray, list[np.ndarray]] | None,
                           yscale: tuple[float, float, float] | None = None):
    """The general-likelihood engine's fit through a rescaled copy of ``mf``
    (columns of X and Z divided by ``scales``; for the Gamma family the
    response divided by c with the linear predictor mapped as ``yscale``
    says): (objective on the original data at the optimum, GeneralOpt in the
    original parameterisation x = (theta, beta, aux)), or None when that point
    has no finite deviance on the original data."""
    from interlace.general.objective import GeneralObjective
    from interlace.general.optimize import optimize_general

    sx, sz = scales if scales is not None else (np.ones(mf.X.shape[1]), [np.ones(t.z.shape[1]) for t in mf.terms])
    mf2 = scaled_frame(mf, sx, sz)
    a = 1.0
    if yscale is not None:
        c, a, d = yscale
        mf2 = dataclasses.replace(mf2, y=np.ascontiguousarray(mf.y / c),
                                  offset=np.ascontiguousarray(a * mf.offset + d))
    obj2 = GeneralObjective(mf2, lf)
    jt = _theta_factors(obj2.re, sz) / a
    J = np.concatenate([jt, 1.0 / (sx * a), np.ones(obj2.k - obj2.nt - obj2.p)])
    t0 = None if theta0 is None else np.asarray(theta0, dtype=float) / jt
    opt2 = optimize_general(obj2, optimizer, t0)
    changes: dict[str, Any] = {"x": np.asarray(opt2.x) * J, "gradient": np.asarray(opt2.gradient) / J}
    if opt2.hessian is not None:
        changes["hessian"] = np.asarray(opt2.hessian) / np.outer(J, J)
    opt = dataclasses.replace(opt2, **changes)
    obj = GeneralObjective(mf, lf)
    dev = float(obj.deviance(opt.x))
    if not np.isfinite(dev):
        return None
    opt.deviance = dev
    return obj, opt
