"""Nakagawa's R2 and the ICC of a mixed model, as performance::r2_nakagawa and
performance::icc compute them (through insight::get_variance).

The variance components:

- fixed: the sample variance (n - 1) of the fixed part X beta (offset excluded);
- random: for each random-effect term the mean over rows of z' Sigma z
  (Johnson's extension for random slopes; the intercept variance for a
  random intercept);
- residual (distribution-specific) variance on the latent scale:
  Gaussian sigma^2; binomial pi^2/3 (logit), 1 (probit), pi^2/6 (cloglog);
  Poisson (log) log(1 + 1/mu); negative binomial 2 (log)
  log(1 + 1/mu + 1/theta), with mu = exp(intercept of the null model
  ``y ~ 1 + <random terms>``, refitted) as insight's lognormal approximation.

R2 marginal = vf / (vf + vr + ve), conditional = (vf + vr) / (vf + vr + ve);
ICC adjusted = vr / (vr + ve), unadjusted = vr / (vf + vr + ve).

Example
-------
>>> import interlace
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                     interlace.datasets.load("cbpp"), family="binomial")
>>> r = m.r2()
>>> round(float(r["R2_marginal"]), 3), round(float(r["R2_conditional"]), 3)
(0.085, 0.187)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["r2_nakagawa", "icc", "variance_components"]

def _fixed_variance(result) -> float:
    X = np.asarray(result.model_frame.X, dtype=float)
    eta = X @ result.fe_params.to_numpy(dtype=float)
    return float(np.var(eta, ddof=1))


def _random_variance(result) -> float:
    mf = result.model_frame
    if not mf.terms:  # a GLM: no random-effect variance (marginal R2 = conditional R2)
        return 0.0
    re = result.objective.re if getattr(result.objective, "re", None) is not None else None
    if re is None:
        from interlace.objective.predictor import ReStructure

        re = ReStructure(mf.terms)
    s2 = float(result.scale) if result.optinfo.get("engine") == "lmm" else 1.0
    lams = re.lambdas(result.theta.to_numpy(dtype=float))
    total = 0.0
    for t, lam in zip(mf.terms, lams):
        if t.nlevels == mf.n:  # an observation-level term is overdispersion, not a group variance
            continue
        Sigma = s2 * lam @ lam.T
        z = np.asarray(t.z, dtype=float)
        total += float(np.mean(np.einsum("ia,ab,ib->i", z, Sigma, z)))
    return total


def _null_mu(result) -> float:
    """exp(intercept) of the intercept-only model with the same random terms (insight's null model)."""
    from interlace.inference.tidy import update

    cache = result.__dict__.setdefault("_postfit_cache", {})
    if "null_mu" not in cache:
        mf = result.model_frame
        # insight's null model keeps the offset (the rate scale of mu) and the random terms
        pieces = [f"offset({o})" for o in mf.spec.formula_offsets]
        pieces += [f"({t.lhs} | {t.group})" for t in mf.terms]
        bars = " + ".join(pieces)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            null = update(result, f"~ 1 + {bars}")
        cache["null_mu"] = float(np.exp(null.fe_params.iloc[0]))
    return cache["null_mu"]


def _residual_variance(result) -> float:
    """The distribution-specific variance: the family's own ``observation_variance``
    (insight's ``get_variance_distribution``), given the residual variance of a
    Gaussian fit, the fitted family parameters and the null model's mean."""
    fam = result.family
    fp = dict(result.family_params or {})
    if result.optinfo.get("engine") == "lmm":
        sigma2 = float(result.scale)
    else:
        sigma2 = float(fp.get("sigma", np.sqrt(result.scale))) ** 2
    return float(fam.observation_variance(sigma2, fp, lambda: _null_mu(result)))


def variance_components(result) -> pd.Series:
    """insight::get_variance's var.fixed, var.random and var.residual."""
    return pd.Series({"var_fixed": _fixed_variance(result), "var_random": _random_variance(result),
                      "var_residual": _residual_variance(result)})


def r2_nakagawa(result) -> pd.Series:
    """performance::r2_nakagawa: ``R2_marginal`` and ``R2_conditional`` (see the module docstring)."""
    v = variance_components(result)
    tot = v.sum()
    return pd.Series({"R2_marginal": v["var_fixed"] / tot,
                      "R2_conditional": (v["var_fixed"] + v["var_random"]) / tot}, name="r2_nakagawa")


def icc(result) -> pd.Series:
    """performance::icc: ``ICC_adjusted`` = vr / (vr + ve), ``ICC_unadjusted`` = vr / (vf + vr + ve)."""
    v = variance_components(result)
    return pd.Series({"ICC_adjusted": v["var_random"] / (v["var_random"] + v["var_residual"]),
                      "ICC_unadjusted": v["var_random"] / v.sum()}, name="icc")
