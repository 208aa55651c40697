"""Predictions of every linear predictor of a general-engine fit, with TMB's standard errors.

glmmTMB's ``predict`` types beyond the conditional mean: ``"zlink"`` (the zero-inflation
linear predictor), ``"zprob"`` (its inverse logit), ``"disp"`` (glmmTMB's ``sigma`` per
row), and ``"response"`` / ``"conditional"`` / ``"link"``, all on the fitted rows. When
``ziformula`` / ``dispformula`` have random effects (:class:`MultiObjective`) the
predictors include them, and the standard errors are TMB's ``sdreport`` of the prediction
f(x, u*(x)):

    Var f_i = f_u A^-1 f_u' + J V J',

with A^-1 the conditional covariance of the spherical random effects, f_u = sum_k
(df_i / d eta_ik) U_ik (exact chain rule through the row's predictors, the d/d eta by
central differences of the family's closed forms), J = d f(x, u*(x)) / dx (central
differences, u* re-solved) and V the covariance of the fixed parameters.

Example
-------
>>> import interlace
>>> m = interlace.glmer("count ~ mined + (1 | site)", interlace.datasets.load("salamanders"),
...                     family="poisson", ziformula="~ mined + (1 | site)")  # doctest: +SKIP
>>> fit, se = side_predict(m, "zprob", se_fit=True)                          # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["side_predict", "sigma_rows", "SIDE_TYPES"]

SIDE_TYPES = ("response", "link", "conditional", "zprob", "zlink", "disp")


def sigma_rows(fam, aux: dict[str, np.ndarray], n: int) -> np.ndarray:
    """glmmTMB's ``sigma()`` per row: the family's ``sigma_rows`` (Gamma: 1/sqrt(shape)),
    else the natural-scale dispersion, else 1 (families without one)."""
    base = getattr(fam, "base", fam)
    own = getattr(base, "sigma_rows", None)
    if callable(own):
        return np.asarray(own(aux), dtype=float)
    d = base.row_dispersion(aux) if "disp" in aux else None
    return np.ones(n) if d is None else np.asarray(d, dtype=float)


def _value(fam, kind: str, etas: list[np.ndarray], names: list[str]) -> np.ndarray:
    eta = etas[0]
    aux = {nm: etas[i] for i, nm in enumerate(names) if i > 0}
    if kind == "link":
        return eta
    if kind in ("zlink", "zprob"):
        if "zi" not in aux:
            raise ValueError(f"type={kind!r} is for zero-inflated and hurdle models; this model has no zero part")
        return aux["zi"] if kind == "zlink" else special.expit(aux["zi"])
    if kind == "disp":
        return sigma_rows(fam, aux, eta.shape[0])
    if kind == "conditional":
        cm = getattr(fam, "conditional_mean", None)
        if callable(cm):
            try:
                return np.asarray(cm(eta, aux), dtype=float)
            except TypeError:
                return np.asarray(cm(eta), dtype=float)
        return np.asarray(fam.linkinv(eta), dtype=float)
    return np.asarray(fam.mean(eta, aux), dtype=float)


def _etas_of(obj, x):
    """Every predictor's per-row values at x (random effects at their modes)."""
    obj.deviance(x)
    st = obj._state
    if "etas" in st:
        return list(st["etas"]), obj.names
    names = ["cond"] + [b.name for b in obj.blocks]
    return [st["eta"]] + [st["aux"][b.name] for b in obj.blocks], names


def side_predict(result, type: str = "response", se_fit: bool = False):
    """(fit, se or None) on the fitted rows for a general-engine result."""
    if type not in SIDE_TYPES:
        raise ValueError(f"type must be one of {', '.join(map(repr, SIDE_TYPES))}, got {type!r}")
    obj = result.objective
    fam = result.optinfo.get("engine_family") or result.family
    x = np.asarray(result.optinfo["x"], dtype=float)
    if se_fit and not hasattr(obj, "preds"):
        # the joint layout (random effects in the conditional model only) gives the
        # rows' conditional covariance the same way; x has the same layout
        from interlace.general.multi import MultiObjective

        obj = MultiObjective(result.model_frame, fam)
    etas, names = _etas_of(obj, x)
    fit = _value(fam, type, etas, names)
    if not se_fit:
        return fit, None
    var = np.zeros_like(fit)
    # the random effects' part: f_u A^-1 f_u'
    if hasattr(obj, "preds"):
        d = np.zeros((fit.shape[0], len(names)))
        for k in range(len(names)):
            h = 1e-6 * np.maximum(1.0, np.abs(etas[k]))
            ep, em = list(etas), list(etas)
            ep[k], em[k] = etas[k] + h, etas[k] - h
            d[:, k] = (_value(fam, type, ep, names) - _value(fam, type, em, names)) / (2.0 * h)
        M = obj.row_covariance()
        var += np.einsum("ik,ikm,im->i", d, M, d)
    # the fixed parameters' part: J V J'
    V = result.optinfo.get("vcov_all")
    if V is not None:
        V = np.asarray(V, dtype=float)
        J = np.zeros((fit.shape[0], len(x)))
        for j in range(len(x)):
            if not np.isfinite(V[j, j]) or V[j, j] <= 0:
                continue
            h = 1e-5 * max(1.0, abs(x[j]))
            xp, xm = x.copy(), x.copy()
            xp[j] += h
            xm[j] -= h
            fp = _value(fam, type, *_etas_of(obj, xp))
            fm = _value(fam, type, *_etas_of(obj, xm))
            J[:, j] = (fp - fm) / (2.0 * h)
        ok = np.isfinite(np.diag(V)) & (np.diag(V) > 0)
        var += np.einsum("ij,jk,ik->i", J[:, ok], V[np.ix_(ok, ok)], J[:, ok])
        obj.deviance(x)
    return fit, np.sqrt(np.maximum(var, 0.0))
