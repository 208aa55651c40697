"""Wald confidence intervals named and scaled as glmmTMB's ``confint(m, full = TRUE)``.

Rows, in glmmTMB's order: ``cond.<coef>`` (fixed effects), ``zi.<coef>`` (zero
inflation), ``disp.<coef>`` (a ``dispformula`` with covariates) or ``sigma`` (an
intercept-only dispersion: glmmTMB's ``sigma()`` on its natural scale, the interval
mapped from the log-scale one), then per model with random effects
``<model>.Std.Dev.<coef>|<group>`` (the interval on the log-SD scale, exponentiated,
as TMB's Wald on its log-SD parameters) and ``<model>.Cor.<a>.<b>|<group>``
(estimate only: glmmTMB's interval is on its own correlation parametrization; for the
ou, exp, gau and mat structures glmmTMB's interval, the correlation function at the
correlation parameters moved by -+z SE). Fits of the general engine, and of the Laplace
engine (its Hessian in (theta, beta)).
Columns ``2.5 %``, ``97.5 %``, ``Estimate``. Coefficient names are R's
(``(Intercept)``, ``minedno`` for ``mined[T.no]``).

Example
-------
>>> import interlace
>>> m = interlace.glmer("TICKS ~ YEAR + (1 | LOCATION)", interlace.datasets.load("grouseticks"),
...                     family="negativebinomial")
>>> list(confint_glmmtmb(m).index)[-2:]
['sigma', 'cond.Std.Dev.(Intercept)|LOCATION']
"""

from __future__ import annotations

import re as _re

import numpy as np
import pandas as pd
from scipy import stats

from interlace.inference._params import level_labels

__all__ = ["confint_glmmtmb", "r_coef_name"]


def r_coef_name(name: str) -> str:
    """interlace's (formulaic) coefficient name as R prints it.

    >>> r_coef_name("Intercept"), r_coef_name("mined[T.no]"), r_coef_name("a[T.x]:b")
    ('(Intercept)', 'minedno', 'ax:b')
    """
    if name == "Intercept":
        return "(Intercept)"
    return _re.sub(r"\[T\.([^\]]*)\]", r"\1", name)


def _predictors(obj):
    """(model name, ReStructure, theta offset) of every linear predictor with random effects."""
    preds = getattr(obj, "preds", None)
    if preds is not None:
        return [(p.name, p.re, p.theta0) for p in preds if p.re is not None]
    return [("cond", obj.re, 0)] if getattr(obj, "re", None) is not None else []


def _sd_cor(re, theta: np.ndarray) -> list[tuple[str, str, int, int, float]]:
    """(kind, group, a, b, value) for every SD and correlation of a layout at theta."""
    out = []
    for j, lam in enumerate(re.lambdas(theta)):
        S = lam @ lam.T
        sd = np.sqrt(np.diag(S))
        t = re.terms[j]
        for a in range(lam.shape[0]):
            out.append(("sd", t.vc_name, a, a, float(sd[a])))
        for b in range(lam.shape[0]):
            for a in range(b + 1, lam.shape[0]):
                out.append(("cor", t.vc_name, a, b, float(S[a, b] / (sd[a] * sd[b])) if sd[a] * sd[b] > 0 else 0.0))
    return out


def confint_glmmtmb(result, level: float = 0.95) -> pd.DataFrame:
    """glmmTMB's Wald ``confint(m, full = TRUE)`` for a general-engine fit (see the module docstring)."""
    from interlace.results.predict_side import sigma_rows

    engine = result.optinfo.get("engine")
    obj = result.objective
    if engine == "general":
        x = np.asarray(result.optinfo["x"], dtype=float)
        V = np.asarray(result.optinfo["vcov_all"], dtype=float)
        nt, blocks = obj.nt, obj.blocks
    elif engine in ("laplace", "agq") and result.optinfo.get("hessian") is not None:
        # the Laplace engine's parameters are (theta, beta), glmmTMB's model without side models;
        # Cov = 2 H^-1 of the deviance, the covariance glmmTMB's sdreport gives
        x = np.concatenate([result.theta.to_numpy(dtype=float), result.fe_params.to_numpy(dtype=float)])
        H = np.asarray(result.optinfo["hessian"], dtype=float)
        if H.shape != (x.size, x.size):
            raise ValueError("glmmTMB-style intervals need the fit's Hessian in (theta, beta)")
        V = 2.0 * np.linalg.pinv(0.5 * (H + H.T))
        nt, blocks = int(result.theta.shape[0]), []
    else:
        raise ValueError("glmmTMB-style intervals are for fits of the general (glmmTMB) engine or the Laplace "
                         "engine with its Hessian")
    z = stats.norm.ppf(0.5 + level / 2.0)
    fam = result.optinfo.get("engine_family") or result.family
    se_all = np.sqrt(np.maximum(np.diag(V), 0.0))
    rows: list[tuple[str, float, float, float]] = []

    def wald(name, i):
        rows.append((name, x[i] - z * se_all[i], x[i] + z * se_all[i], x[i]))

    for j, nm in enumerate(result.model_frame.fe_names):
        wald(f"cond.{r_coef_name(nm)}", nt + j)
    order = sorted(range(len(blocks)), key=lambda i: {"zi": 0, "disp": 1}.get(blocks[i].name, 2))
    for i in order:
        b = blocks[i]
        if not b.free:
            continue
        o = int(obj.offsets[2 + i])
        if b.name == "disp" and b.names == ["Intercept"]:
            vals = [sigma_rows(fam, {"disp": np.array([v])}, 1)[0] for v in (x[o] - z * se_all[o], x[o] + z * se_all[o],
                                                                             x[o])]
            rows.append(("sigma", min(vals[:2]), max(vals[:2]), vals[2]))
            continue
        for j, nm in enumerate(b.names):
            wald(f"{b.name}.{r_coef_name(nm)}", o + j)
    for model, re, t0 in _predictors(obj):
        th = x[t0: t0 + re.ntheta]
        base = _sd_cor(re, th)
        # d log(SD) / d theta by central differences (the SDs are smooth in theta)
        J = np.zeros((len(base), re.ntheta))
        for k in range(re.ntheta):
            h = 1e-6 * max(1.0, abs(th[k]))
            tp, tm = th.copy(), th.copy()
            tp[k] += h
            tm[k] -= h
            vp = np.array([v[4] for v in _sd_cor(re, tp)])
            vm = np.array([v[4] for v in _sd_cor(re, tm)])
            J[:, k] = (np.log(np.abs(vp) + 1e-300) - np.log(np.abs(vm) + 1e-300)) / (2 * h)
        Vt = V[t0: t0 + re.ntheta, t0: t0 + re.ntheta]
        # structures whose correlations are functions of their own parameters (ou, exp, gau,
        # mat) give glmmTMB's Cor intervals: the parameters moved by -+z SE at once
        cor_ci = {}
        for j, cov in enumerate(re.covs):
            f = getattr(cov, "tmb_wald_correlation", None)
            if callable(f):
                sl = slice(int(re.par_off[j]), int(re.par_off[j + 1]))
                cor_ci[re.terms[j].vc_name] = f(th[sl], Vt[sl, sl], z)
        for r, (kind, grp, a, b, val) in enumerate(base):
            term = next(t for t in re.terms if t.vc_name == grp)
            if kind == "cor" and grp in cor_ci:
                lo_c, hi_c = cor_ci[grp]
                rows.append((f"{model}.Cor.{r_coef_name(term.cnames[a])}.{r_coef_name(term.cnames[b])}|{grp}",
                             float(lo_c[a, b]), float(hi_c[a, b]), val))
            elif kind == "sd":
                s = float(np.sqrt(max(J[r] @ Vt @ J[r], 0.0))) if np.all(np.isfinite(Vt)) else np.nan
                rows.append((f"{model}.Std.Dev.{r_coef_name(term.cnames[a])}|{grp}", val * np.exp(-z * s),
                             val * np.exp(z * s), val))
            else:
                rows.append((f"{model}.Cor.{r_coef_name(term.cnames[a])}.{r_coef_name(term.cnames[b])}|{grp}",
                             np.nan, np.nan, val))
    lo, hi = level_labels(level)
    return pd.DataFrame([r[1:] for r in rows], index=[r[0] for r in rows], columns=[lo, hi, "Estimate"])
