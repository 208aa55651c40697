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

__all__ = ["r2_nakagawa", "icc", "variance_components", "SUPPORTED"]

SUPPORTED = {"gaussian": ("identity",), "binomial": ("logit", "probit", "cloglog"),
             "poisson": ("log",), "negativebinomial": ("log",), "nbinom2": ("log",), "nbinom1": ("log",),
             "gamma": ("log",), "beta": ("logit",)}


def _family(result) -> tuple[str, str]:
    fam = result.family
    name = str(getattr(fam, "name", "")).lower()
    link = str(getattr(getattr(fam, "link", None), "name", ""))
    return name, link


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


def _theta(result) -> float:
    fp = result.family_params or {}
    for k in ("theta", "size"):
        if k in fp and np.isscalar(fp[k]):
            return float(fp[k])
    aux = getattr(result, "aux_params", None) or {}
    if "disp" in aux and len(aux["disp"]) == 1:
        return float(np.exp(np.asarray(aux["disp"], dtype=float)[0]))
    if result.disp_params is not None and len(result.disp_params) == 1:
        return float(np.exp(result.disp_params.iloc[0]))
    raise ValueError("cannot find the negative binomial theta of this fit")


def _residual_variance(result) -> float:
    name, link = _family(result)
    if name == "gaussian" and link == "identity":
        return float(result.scale) if result.optinfo.get("engine") == "lmm" else float(
            (result.family_params or {}).get("sigma", np.sqrt(result.scale))) ** 2
    if name == "binomial":
        table = {"logit": np.pi ** 2 / 3.0, "probit": 1.0, "cloglog": np.pi ** 2 / 6.0}
        if link in table:
            return float(table[link])
    if name == "poisson" and link == "log":
        return float(np.log1p(1.0 / _null_mu(result)))
    if name in ("negativebinomial", "nbinom2", "negbin2") and link == "log":
        return float(np.log1p(1.0 / _null_mu(result) + 1.0 / _theta(result)))
    fp = result.family_params or {}
    if name == "nbinom1" and link == "log" and "phi" in fp:
        return float(np.log1p((1.0 + float(fp["phi"])) / _null_mu(result)))
    if name == "gamma" and link == "log" and "shape" in fp:
        return 1.0 / float(fp["shape"])  # sigma(m)^2, the squared coefficient of variation
    if name == "beta" and link == "logit" and "phi" in fp:
        mu = _null_mu(result)
        return float(np.log1p(mu * (1.0 - mu) / (1.0 + float(fp["phi"])) / mu ** 2))
    supported = ", ".join(f"{f} ({'/'.join(ls)})" for f, ls in SUPPORTED.items())
    raise NotImplementedError(f"R2 / ICC for family {name!r} with link {link!r} is not implemented "
                              f"(supported: {supported})")


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
