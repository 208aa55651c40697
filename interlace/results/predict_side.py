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

__all__ = ["side_predict", "side_predict_newdata", "sigma_rows", "SIDE_TYPES"]

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


def _new_rows(result, newdata, allow_new_levels: bool, offset):
    """Per predictor of the joint objective: (base, cols, z) of the rows of ``newdata`` (base: the
    fixed part and offset; cols/z: each term's u columns and covariates, -1 for an unseen level),
    and the complete-row mask."""
    from interlace.data import to_pandas_columns
    from interlace.results.newdata import _needed_columns, _sub_design, newdata_design

    obj = result.objective
    mf = result.model_frame
    X, blocks, off, ok = newdata_design(result, newdata, None, allow_new_levels, offset)
    specs = getattr(mf.spec, "side_terms", {})
    rows = [(X, blocks, off)]
    frame = None
    for pr in obj.preds[1:]:
        Xs = _sub_design(result, pr.name, newdata)[ok]
        sb = []
        if pr.re is not None:
            if frame is None:
                need = list(dict.fromkeys(c for sp in sum(specs.values(), []) for c in sp.parts)) + \
                    [c for c in _needed_columns(result, [], None)]
                from interlace.data import frame_columns

                have = set(frame_columns(newdata, "newdata"))
                need += [c for sp in sum(specs.values(), []) for c in sp.cnames if c in have]
                frame = to_pandas_columns(newdata, list(dict.fromkeys(need)), arg="newdata")
                frame = frame.loc[ok].reset_index(drop=True) if not ok.all() else frame
            for sp in specs[pr.name]:
                sb.append((sp.codes_for(frame, allow_new_levels), sp.z_for(frame)))
        rows.append((Xs, sb, np.zeros(Xs.shape[0])))
    return rows, ok


def side_predict_newdata(result, newdata, type: str = "response", se_fit: bool = False,
                         allow_new_levels: bool = False, offset=None):
    """glmmTMB's predict types on ``newdata`` for a fit with random effects in a side model:
    every predictor's fixed part, offset and random effects (an unseen level at zero with
    ``allow_new_levels``); SEs as for the fitted rows (f_u A^-1 f_u' + J V J')."""
    obj = result.objective
    fam = result.optinfo.get("engine_family") or result.family
    x = np.asarray(result.optinfo["x"], dtype=float)
    rows, ok = _new_rows(result, newdata, allow_new_levels, offset)
    names = obj.names

    def coefs_of(xx):
        theta, beta, coefs = obj.split(xx)
        return [beta] + [coefs[b.name] if b.free else None for b in obj.blocks]

    def etas_at(xx):
        obj.deviance(xx)
        theta = xx[: obj.nt]
        cs = coefs_of(xx)
        out = []
        for k, pr in enumerate(obj.preds):
            Xk, blocks, off = rows[k]
            blk = obj.blocks[k - 1] if k else None
            base = Xk @ cs[k] if (k == 0 or blk.free) else np.full(Xk.shape[0], blk.fixed)
            e = base + off
            if pr.re is not None:
                uk = obj.u[pr.col0: pr.col0 + pr.q]
                for (codes, z), b in zip(blocks, pr.re.u_to_b(obj.theta_of(theta, k), uk)):
                    good = codes >= 0
                    e[good] += np.einsum("ik,ik->i", z[good], b[codes[good]])
            out.append(e)
        return out

    etas = etas_at(x)
    fit = _value(fam, type, etas, names)
    se = None
    if se_fit:
        m = fit.shape[0]
        d = np.zeros((m, len(names)))
        for k in range(len(names)):
            h = 1e-6 * np.maximum(1.0, np.abs(etas[k]))
            ep, em = list(etas), list(etas)
            ep[k], em[k] = etas[k] + h, etas[k] - h
            d[:, k] = (_value(fam, type, ep, names) - _value(fam, type, em, names)) / (2.0 * h)
        obj.deviance(x)
        Ai = obj.a_inverse()
        theta = x[: obj.nt]
        cols, vals = {}, {}
        for k, pr in enumerate(obj.preds):
            if pr.re is None:
                continue
            c_list, v_list = [], []
            for j, ((codes, z), lam) in enumerate(zip(rows[k][1], pr.re.lambdas(obj.theta_of(theta, k)))):
                kd = int(pr.re.kdim[j])
                good = codes >= 0
                c = pr.col0 + pr.re.uoff[j] + np.where(good, codes, 0)[:, None] * kd + np.arange(kd)[None, :]
                c_list.append(c)
                v_list.append(np.where(good[:, None], z @ lam, 0.0))
            cols[k], vals[k] = np.hstack(c_list), np.hstack(v_list)
        var = np.zeros(m)
        for a in cols:
            for b in cols:
                pab = Ai[cols[a][:, :, None], cols[b][:, None, :]]
                var += d[:, a] * d[:, b] * np.einsum("is,ist,it->i", vals[a], pab, vals[b])
        V = np.asarray(result.optinfo.get("vcov_all"), dtype=float)
        okp = np.isfinite(np.diag(V)) & (np.diag(V) > 0)
        J = np.zeros((m, len(x)))
        for j in np.flatnonzero(okp):
            h = 1e-5 * max(1.0, abs(x[j]))
            xp, xm = x.copy(), x.copy()
            xp[j] += h
            xm[j] -= h
            J[:, j] = (_value(fam, type, etas_at(xp), names) - _value(fam, type, etas_at(xm), names)) / (2.0 * h)
        var += np.einsum("ij,jk,ik->i", J[:, okp], V[np.ix_(okp, okp)], J[:, okp])
        obj.deviance(x)
        se = np.sqrt(np.maximum(var, 0.0))
    full = np.full(ok.shape[0], np.nan)
    full[ok] = fit
    if se is not None:
        sfull = np.full(ok.shape[0], np.nan)
        sfull[ok] = se
        se = sfull
    return full, se
