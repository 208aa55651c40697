"""Likelihood-ratio tests between nested fits (lme4's anova.merMod)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import special  # not scipy.stats: it adds ~1 s to `import interlace`


def _npar(m: Any) -> int:
    """Number of estimated parameters, as lme4's logLik 'df' counts them."""
    return int(m.df_model)


def _same_data(a: Any, b: Any) -> str | None:
    """Why two fits were not made on the same observations (None if they were)."""
    if a.nobs != b.nobs:
        return f"different numbers of observations ({a.nobs} and {b.nobs})"
    fa, fb = getattr(a, "model_frame", None), getattr(b, "model_frame", None)
    if fa is None or fb is None:
        return None
    ra, rb = fa.row_index, fb.row_index
    if ra is not None and rb is not None and not np.array_equal(np.asarray(ra), np.asarray(rb)):
        return "different rows of the data (missing values dropped differently?)"
    # the response as the likelihood sees it: binomial proportions times trials
    ya = np.asarray(fa.y, float) * np.asarray(fa.weights, float)
    yb = np.asarray(fb.y, float) * np.asarray(fb.weights, float)
    if not np.allclose(ya, yb, rtol=1e-12, atol=0.0):
        return f"different responses ({fa.response_name!r} and {fb.response_name!r})"
    return None


def anova(*models: Any, names: list[str] | None = None, refit: bool = True, type: int | str = 3,
          ddf: str = "Satterthwaite") -> pd.DataFrame:
    """Likelihood-ratio tests between nested models fitted to the same data.

    With one ``interlace.lmer`` fit: lmerTest's F-table of its fixed-effect
    terms (``type`` 1/2/3, ``ddf`` "Satterthwaite" or "Kenward-Roger"; see
    :func:`interlace.inference.lmertest.anova_table`).

    Linear mixed models fitted by REML whose fixed effects differ are refitted
    by maximum likelihood first, as lme4 does (``refit=False`` keeps the REML
    fits, valid only when the fixed effects are the same); the table's
    ``attrs["refitted"]`` is True then and a ``UserWarning`` says so.

    Returns R's ``anova(m0, m1, ...)`` table for merMod fits: one row per
    model, sorted by the number of parameters, with columns ``npar``,
    ``AIC``, ``BIC``, ``logLik``, ``deviance`` (-2 logLik), ``Chisq``,
    ``Df`` and ``Pr(>Chisq)`` (each row tested against the row above it).

    Raises ValueError when fewer than two models are given or when the models
    were fitted to different observations (number of rows, the rows used, or
    the response). As in R, nesting itself is the caller's responsibility.

    Example
    -------
    >>> import interlace
    >>> df = interlace.datasets.load("cbpp")
    >>> m0 = interlace.glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", df, family="binomial")
    >>> m1 = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", df, family="binomial")
    >>> tab = interlace.anova(m0, m1, names=["m0", "m1"])
    >>> list(tab.columns)
    ['npar', 'AIC', 'BIC', 'logLik', 'deviance', 'Chisq', 'Df', 'Pr(>Chisq)']
    >>> int(tab.loc["m1", "Df"])
    3
    """
    if len(models) == 1 and isinstance(models[0], (list, tuple)):
        models = tuple(models[0])
    if len(models) == 1 and models[0].optinfo.get("engine") == "lmm" and "REML" in models[0].optinfo:
        from interlace.inference.lmertest import anova_table

        return anova_table(models[0], type=type, ddf=ddf)
    if len(models) < 2:
        raise ValueError("anova needs at least two fitted models to compare")
    if names is None:
        names = [f"model{i + 1}" for i in range(len(models))]
    if len(names) != len(models):
        raise ValueError(f"names has {len(names)} entries for {len(models)} models")
    if len(set(names)) != len(names):
        raise ValueError("model names must be distinct")
    for i in range(1, len(models)):
        why = _same_data(models[0], models[i])
        if why is not None:
            raise ValueError(f"models were not all fitted to the same data: {names[0]!r} and {names[i]!r} "
                             f"have {why}")
    refitted = False
    if any(m.optinfo.get("REML", False) for m in models):
        same_fe = all(list(m.fe_params.index) == list(models[0].fe_params.index) for m in models)
        if refit and not same_fe:
            warnings.warn("refitting model(s) with ML (instead of REML): REML criteria are not comparable "
                          "across models with different fixed effects", UserWarning, stacklevel=2)
            models = tuple(m.refit_ml() for m in models)
            refitted = True
    npar = np.array([_npar(m) for m in models])
    order = np.argsort(npar, kind="stable")  # R: models sorted by npar
    llf = np.array([float(models[i].llf) for i in order])
    k = npar[order]
    n = np.array([models[i].nobs for i in order], float)
    aic = -2 * llf + 2 * k
    bic = -2 * llf + np.log(n) * k
    chisq = np.full(len(order), np.nan)
    df = np.full(len(order), np.nan)
    chisq[1:] = np.maximum(0.0, 2.0 * np.diff(llf))  # R clips negative statistics at 0
    df[1:] = np.diff(k)
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, special.chdtrc(np.where(df > 0, df, 1), chisq), np.nan)
    tab = pd.DataFrame(
        {"npar": k, "AIC": aic, "BIC": bic, "logLik": llf, "deviance": -2 * llf,
         "Chisq": chisq, "Df": df, "Pr(>Chisq)": p},
        index=pd.Index([names[i] for i in order]),
    )
    tab.attrs["refitted"] = refitted
    return tab
