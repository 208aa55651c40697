"""Confidence intervals for a fitted model (lme4's confint.merMod)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from interlace.inference._params import aux_layout, level_labels, param_table, resolve_parm, theta_to_sdcor
from interlace.model.covariance import Covariance

METHODS = ("Wald", "profile", "boot")


def aux_values(result) -> pd.Series:
    """The family-parameter coefficients (``disp.Intercept``, ``zi.Intercept``, ...) of a general-engine fit."""
    vals, names = [], []
    for b, cn in aux_layout(result):
        vals += list(result.aux_params[b].to_numpy(dtype=float))
        names += [f"{b}.{c}" for c in cn]
    return pd.Series(vals, index=names, dtype=float)


def _table(result):
    from interlace.objective.predictor import ReStructure

    re = getattr(result.objective, "re", None)
    if re is None and result.model_frame.terms:  # a GLM (no random-effect term) has no variance rows
        re = ReStructure(result.model_frame.terms)
    lmm = result.optinfo.get("engine") == "lmm"
    return re, param_table(re, list(result.fe_params.index), lmm, aux_layout(result)), lmm


def sdcor_values(result) -> pd.Series:
    """The variance parameters on lme4's scale: .sig01.. (SDs and correlations), .sigma for an LMM."""
    re, table, lmm = _table(result)
    sigma = float(np.sqrt(result.scale)) if lmm else 1.0
    vals = [] if re is None else list(theta_to_sdcor(re, result.theta.to_numpy(dtype=float), sigma))
    if lmm:
        vals.append(sigma)
    return pd.Series(vals, index=[p.name for p in table if p.kind in ("sd", "cor", "par", "sigma")])


def confint(result, parm=None, level: float = 0.95, method: str = "Wald", **kwargs) -> pd.DataFrame:
    """Confidence intervals for the random-effect SDs/correlations and the
    fixed effects, as lme4's ``confint.merMod``.

    Rows are named as lme4 names them: ``.sig01``, ``.sig02``, ... (SDs and
    correlations in theta's order), ``.sigma`` (LMMs), then the fixed effects
    (interlace's names), then for fits of the general (glmmTMB-families)
    engine the family-parameter coefficients ``disp.<coef>`` / ``zi.<coef>``
    on their link scale (glmmTMB's ``disp.(Intercept)``, ``zi.(Intercept)``
    rows; for a negative binomial with ``dispformula ~ 1``,
    ``exp(disp.Intercept)`` is theta, glmmTMB's ``sigma`` row). Columns are
    R's ``"2.5 %"``, ``"97.5 %"``.

    ``method``:

    - ``"Wald"``: estimate +- z * SE from ``vcov`` for the fixed effects and
      the family-parameter coefficients (SEs from the general engine's
      Hessian, ``result.aux_bse``); NaN for the variance parameters of us
      terms, as lme4 gives NA; for glmmTMB's structures (diag(...), cs, ar1,
      toep, ...) of a GLMM or an ML-fitted LMM, glmmTMB's intervals (log SD,
      and each correlation on glmmTMB's scale, back-transformed).
    - ``"profile"``: the likelihood profile (see
      :func:`interlace.inference.profile.profile`) of the Laplace deviance,
      the AGQ deviance (nAGQ > 1) or the general engine's Laplace deviance;
      keyword ``polish`` (default True) refines the splined crossing on the
      exact profile.
    - ``"boot"``: percentile intervals from the parametric bootstrap;
      keywords ``nsim`` (default 500, lme4's), ``seed``, ``n_jobs``,
      ``progress``.

    ``style="glmmTMB"`` (Wald only) gives glmmTMB's ``confint(m, full = TRUE)`` instead:
    rows ``cond.*``, ``zi.*``, ``disp.*`` or ``sigma``, ``cond.Std.Dev.(Intercept)|site``,
    ``zi.Std.Dev.(Intercept)|site`` (random effects of every model), with an
    ``Estimate`` column (:mod:`interlace.inference.confint_tmb`).

    ``parm`` selects rows: None (all), ``"theta_"``, ``"beta_"``, ``"aux_"``, names
    (lme4's ``.sig01`` or ``sd_(Intercept)|herd``, interlace's
    ``sd_Intercept|herd``, theta or fixed-effect names) or positions.

    Example
    -------
    >>> import interlace
    >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     interlace.datasets.load("cbpp"), family="binomial")
    >>> ci = m.confint(method="Wald")
    >>> list(ci.columns), list(ci.index[:2])
    (['2.5 %', '97.5 %'], ['.sig01', 'Intercept'])
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    style = kwargs.pop("style", "lme4")
    if style not in ("lme4", "glmmTMB"):
        raise ValueError(f"style must be 'lme4' or 'glmmTMB', got {style!r}")
    if style == "glmmTMB":  # glmmTMB's confint(m, full = TRUE): names, scales and the Estimate column
        from interlace.inference.confint_tmb import confint_glmmtmb

        if str(method).lower() != "wald":
            raise ValueError("style='glmmTMB' gives glmmTMB's Wald intervals (method='Wald')")
        out = confint_glmmtmb(result, level)
        if parm is None:
            return out
        return out.loc[[parm] if isinstance(parm, str) else list(parm)]
    meth = {m.lower(): m for m in METHODS}.get(str(method).lower())
    if meth is None:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    re, table, _lmm = _table(result)
    sel = resolve_parm(parm, table, list(result.theta.index))
    names = [table[i].name for i in sel]
    cols = level_labels(level)
    if meth == "Wald":
        z = stats.norm.ppf(0.5 + level / 2.0)
        out = pd.DataFrame(np.nan, index=names, columns=cols)
        theta_wald = _theta_wald(result, re, z)
        for i in sel:
            p = table[i]
            if p.kind == "beta":
                est = float(result.fe_params.iloc[p.index])
                se = float(result.fe_bse.iloc[p.index])
                out.loc[p.name] = [est - z * se, est + z * se]
            elif p.kind in ("sd", "cor", "par") and p.index in theta_wald:
                out.loc[p.name] = theta_wald[p.index]
            elif p.kind == "aux":
                blk, coef = p.name.split(".", 1)
                est = float(result.aux_params[blk][coef])
                se = float(result.aux_bse[blk][coef])
                out.loc[p.name] = [est - z * se, est + z * se]
        return out
    if meth == "profile":
        from interlace.inference.profile import profile

        polish = kwargs.pop("polish", True)
        pr = profile(result, which=[table[i].name for i in sel], level=level, **kwargs)
        return pr.confint(level=level, polish=polish).loc[names]
    # boot
    from interlace.inference.bootstrap import bootstrap

    nsim = int(kwargs.pop("nsim", 500))
    br = bootstrap(result, nsim=nsim, fn=_SdcorFixef(), **kwargs)
    return br.confint(level=level).loc[names]


def _theta_wald(result, re, z: float) -> dict[int, list[float]]:
    """Wald limits of the sd/cor rows whose structure gives them (glmmTMB's cs, ar1, toep, ...;
    lme4's us and diag give NA), from the Hessian of the deviance in (theta, ...) the fit kept.
    Keyed by the row's position in theta's sd/cor layout."""
    if re is not None and result.optinfo.get("engine") == "lmm":
        return _lmm_theta_wald(result, re, z)
    H = result.optinfo.get("hessian")
    if re is None or H is None:
        return {}
    H = np.asarray(H, dtype=float)
    nt = re.ntheta
    try:
        V = 2.0 * np.linalg.solve(H, np.eye(H.shape[0]))[:nt, :nt]
    except np.linalg.LinAlgError:
        return {}
    V = 0.5 * (V + V.T)
    theta = result.theta.to_numpy(dtype=float)
    out: dict[int, list[float]] = {}
    for j, cov in enumerate(re.covs):
        sl = slice(int(re.par_off[j]), int(re.par_off[j + 1]))
        lo, hi = cov.wald_sdcor(theta[sl], V[sl, sl], z)
        for i in range(cov.nparams):
            if np.isfinite(lo[i]) and np.isfinite(hi[i]):
                out[sl.start + i] = [float(lo[i]), float(hi[i])]
    return out


def _lmm_theta_wald(result, re, z: float) -> dict[int, list[float]]:
    """The LMM's Wald limits of the structured terms' sd/cor rows: the covariance of (sd/cor,
    sigma, beta) from the Hessian of the ML deviance on that scale (central differences of the
    exact deviance), then each structure's intervals (glmmTMB's scales). REML fits and us
    terms: none (lme4's NA)."""
    if result.optinfo.get("REML") or all(type(c).wald_from_sdcor is Covariance.wald_from_sdcor for c in re.covs):
        return {}
    from interlace.inference.profile import DevianceModel

    dm = DevianceModel(result)
    x0 = np.asarray(dm.x_hat, dtype=float)
    k = len(x0)
    h = 1e-4 * np.maximum(np.abs(x0), 1e-2)
    f0 = dm.deviance(x0)
    H = np.empty((k, k))
    for a in range(k):
        for b in range(a, k):
            ea = np.zeros(k)
            eb = np.zeros(k)
            ea[a] = h[a]
            eb[b] = h[b]
            if a == b:
                H[a, a] = (dm.deviance(x0 + ea) - 2.0 * f0 + dm.deviance(x0 - ea)) / (h[a] * h[a])
            else:
                H[a, b] = H[b, a] = (dm.deviance(x0 + ea + eb) - dm.deviance(x0 + ea - eb)
                                     - dm.deviance(x0 - ea + eb) + dm.deviance(x0 - ea - eb)) / (4 * h[a] * h[b])
    try:
        V = 2.0 * np.linalg.solve(H, np.eye(k))
    except np.linalg.LinAlgError:
        return {}
    out: dict[int, list[float]] = {}
    for j, cov in enumerate(re.covs):
        sl = slice(int(re.par_off[j]), int(re.par_off[j + 1]))
        lo, hi = cov.wald_from_sdcor(x0[sl], V[sl, sl], z)
        for i in range(cov.nparams):
            if np.isfinite(lo[i]) and np.isfinite(hi[i]):
                out[sl.start + i] = [float(lo[i]), float(hi[i])]
    return out


class _SdcorFixef:
    """Bootstrap statistic of confint(method="boot"): lme4's .sig/.sigma, the
    fixed effects and (general engine) the family-parameter coefficients.
    A class (not a lambda) so it pickles for worker processes."""

    def __call__(self, result) -> pd.Series:
        parts = [sdcor_values(result), result.fe_params]
        aux = aux_values(result)
        if len(aux):
            parts.append(aux)
        return pd.concat(parts)
