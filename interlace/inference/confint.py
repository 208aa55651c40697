"""Confidence intervals for a fitted model (lme4's confint.merMod)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from interlace.inference._params import level_labels, param_table, resolve_parm, theta_to_sdcor

METHODS = ("Wald", "profile", "boot")


def _table(result):
    from interlace.objective.predictor import ReStructure

    re = getattr(result.objective, "re", None)
    if re is None:
        re = ReStructure(result.model_frame.terms)
    lmm = result.optinfo.get("engine") == "lmm"
    return re, param_table(re, list(result.fe_params.index), lmm), lmm


def sdcor_values(result) -> pd.Series:
    """The variance parameters on lme4's scale: .sig01.. (SDs and correlations), .sigma for an LMM."""
    re, table, lmm = _table(result)
    sigma = float(np.sqrt(result.scale)) if lmm else 1.0
    vals = list(theta_to_sdcor(re, result.theta.to_numpy(dtype=float), sigma))
    if lmm:
        vals.append(sigma)
    return pd.Series(vals, index=[p.name for p in table if p.kind != "beta"])


def confint(result, parm=None, level: float = 0.95, method: str = "Wald", **kwargs) -> pd.DataFrame:
    """Confidence intervals for the random-effect SDs/correlations and the
    fixed effects, as lme4's ``confint.merMod``.

    Rows are named as lme4 names them: ``.sig01``, ``.sig02``, ... (SDs and
    correlations in theta's order), ``.sigma`` (LMMs), then the fixed effects
    (interlace's names); columns are R's ``"2.5 %"``, ``"97.5 %"``.

    ``method``:

    - ``"Wald"``: estimate +- z * SE from ``vcov`` for the fixed effects;
      NaN for the variance parameters, as lme4 gives NA.
    - ``"profile"``: the likelihood profile (see
      :func:`interlace.inference.profile.profile`); keyword ``polish``
      (default True) refines the splined crossing on the exact profile.
    - ``"boot"``: percentile intervals from the parametric bootstrap;
      keywords ``nsim`` (default 500, lme4's), ``seed``, ``n_jobs``,
      ``progress``.

    ``parm`` selects rows: None (all), ``"theta_"``, ``"beta_"``, names
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
        for i in sel:
            p = table[i]
            if p.kind == "beta":
                est = float(result.fe_params.iloc[p.index])
                se = float(result.fe_bse.iloc[p.index])
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


class _SdcorFixef:
    """Bootstrap statistic of confint(method="boot"): lme4's .sig/.sigma and the fixed effects.
    A class (not a lambda) so it pickles for worker processes."""

    def __call__(self, result) -> pd.Series:
        return pd.concat([sdcor_values(result), result.fe_params])
