"""The general-likelihood Laplace engine (glmmTMB's families) with the rows on Dask.

The objective is :class:`~interlace.general.objective.GeneralObjective` itself,
its :class:`~interlace.objective.protocol.RowBackend` the fit's ``Rounds``: each
pass over the rows (``objective.rows``) is a map/reduce round; the driver keeps
x = (theta, beta, family parameters), u, the blocked Cholesky factor of
H = U'DU + I and its selected inverse. The optimizer
(``general.optimize.optimize_general``) and the covariance (``general.result``)
run unchanged on top of it; only the order of the additions differs.

Family parameters are intercept-only here: no dispformula / ziformula.

Example
-------
>>> supports_general(object())
False
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from interlace.distributed import blocks as B
from interlace.general.objective import GeneralObjective

__all__ = ["supports_general", "fit_general_dask"]


def supports_general(fam: Any) -> bool:
    """Families whose general-engine fit runs on Dask: every general-likelihood
    family (its own ``derivs`` and ``aux_blocks``; the family parameters are
    intercept-only here)."""
    return callable(getattr(fam, "derivs", None)) and getattr(fam, "aux_blocks", None) is not None


# ----------------------------------------------------------------------------- result


def build_dask_general_result(mf, family, obj, opt, *, formula: str, optimizer: str, messages: list[str],
                              train, used: list[str], extra_info: dict):
    """general.result.build_general_result without per-row arrays; fitted
    values and predictions are lazy Dask Series."""
    from interlace.distributed.result import DaskGLMMResult
    from interlace.general.result import _cond_sd, _covariance, aux_estimates
    from interlace.results.build import (_theta_names, group_frames, is_singular, variance_components,
                                         varcorr_frame)
    from interlace.results.glmm_result import GLMMResult

    re = obj.re
    x = opt.x
    obj.deviance(x)
    theta, beta, _coefs = obj.split(x)
    u = obj._state["u"]
    n, p, nt = re.n, obj.p, obj.nt
    V = _covariance(opt)
    se_all = np.sqrt(np.maximum(np.diag(V), 0.0)) if V is not None else np.full(obj.k, np.nan)
    fe_names = list(mf.fe_names)
    sl = slice(nt, nt + p)
    aux_params, aux_bse, coef_dicts = aux_estimates(obj, x, se_all)
    fitted_family = copy.copy(family)
    fitted_family.params = {**family.params, **family.natural_params(coef_dicts)}
    family_params = {"family": family.name, "link": family.link.name,
                     "disp_meaning": getattr(family, "disp_meaning", "log dispersion"), **fitted_family.params}
    for name, ser in aux_params.items():
        family_params[f"{name}_coef"] = ser.to_dict()
        family_params[f"{name}_coef_se"] = aux_bse[name].to_dict()
    for b in obj.blocks:
        if not b.free:
            family_params[f"{b.name}_fixed"] = b.fixed
    ranef = group_frames(re, re.u_to_b(theta, u))
    try:
        csd = _cond_sd(obj, x, V)
    except Exception:  # conditional SDs must not sink the fit
        csd = [np.full((int(re.nlev[j]), int(re.kdim[j])), np.nan) for j in range(re.m)]
    ranef_sd = group_frames(re, csd)
    obj.deviance(x)
    vc = varcorr_frame(re, theta, 1.0, residual=False)
    singular = is_singular(re, theta)
    messages = list(messages) + list(opt.messages)
    if singular:
        messages.insert(0, "boundary (singular) fit: see help('isSingular')")
    llf = -0.5 * opt.deviance
    df_model = obj.k
    ngroups: dict[str, int] = {}
    for t in re.terms:
        ngroups.setdefault(t.group, t.nlevels)
    disp = aux_params.get("disp")
    fields = dict(
        formula=formula, family=fitted_family,
        fe_params=pd.Series(beta, index=fe_names, name="fe_params"),
        fe_bse=pd.Series(se_all[sl], index=fe_names, name="fe_bse"),
        vcov=pd.DataFrame(V[sl, sl], index=fe_names, columns=fe_names),
        random_effects=ranef, random_effects_sd=ranef_sd,
        variance_components=variance_components(vc),
        varcorr=vc, theta=pd.Series(theta, index=_theta_names(re), name="theta"),
        llf=float(llf), aic=float(-2 * llf + 2 * df_model), bic=float(-2 * llf + np.log(n) * df_model),
        deviance=float(-2 * llf), df_model=int(df_model), df_resid=int(n - df_model), nobs=int(n),
        ngroups=ngroups, scale=1.0, converged=bool(opt.converged), singular=singular,
        optinfo={"optimizer": optimizer, "engine": "general-dask", "nfev": int(obj.nfev), "ngev": int(obj.ngev),
                 "inner_iterations": int(obj.inner_iters), "newton_polish_steps": int(opt.newton_steps),
                 "messages": messages, "optimizer_message": opt.opt_message,
                 "gradient": np.asarray(opt.gradient), "hessian": np.asarray(opt.hessian),
                 "param_names": obj.param_names(), "vcov_all": V, **extra_info},
        nAGQ=1, disp_params=disp, dispersion=None, zi_params=aux_params.get("zi"),
        family_params=family_params, model_frame=mf, warnings=messages,
    )
    light = GLMMResult(fittedvalues=None, linear_predictor=None, objective=None, **fields)
    fitted = train.map_partitions(B.fitted_partition, light, used, "response",
                                  meta=pd.Series(dtype=float, name="fitted"))
    eta = train.map_partitions(B.fitted_partition, light, used, "link", meta=pd.Series(dtype=float, name="eta"))
    res = DaskGLMMResult(fittedvalues=fitted, linear_predictor=eta, objective=obj, **fields)
    res._light = light
    res._train = train
    res._used = used
    for r in (res, light):
        r.disp_bse = aux_bse.get("disp")
        r.zi_bse = aux_bse.get("zi")
        r.aux_params = aux_params
        r.aux_bse = aux_bse
    return res


def fit_general_dask(mf, fam, re, rounds, *, optimizer: str, theta0, formula: str, messages: list[str],
                     train, used: list[str], extra_info: dict):
    """Optimize the distributed general objective and build the result."""
    from interlace.general.optimize import optimize_general

    obj = GeneralObjective(mf, fam, rows=rounds, re=re)
    opt = optimize_general(obj, optimizer, theta0)
    if not np.isfinite(opt.deviance):
        raise RuntimeError(f"the {fam.name} model has no finite Laplace log-likelihood at the optimizer's "
                           "final point (check the link and the starting values)")
    extra_info = {**extra_info, "dask_rounds": rounds.count, "dask_rounds_by_kind": dict(rounds.by_kind)}
    res = build_dask_general_result(mf, fam, obj, opt, formula=formula, optimizer=optimizer, messages=messages,
                                    train=train, used=used, extra_info=extra_info)
    res.optinfo["dask_rounds"] = rounds.count
    return res
