"""GLMMResult for the general engine (glmmTMB's fit summary).

The covariance of all fixed parameters (theta, beta, aux) is twice the inverse
Hessian of the Laplace deviance (glmmTMB's sdreport: the inverse Hessian of
-loglik); fixed-effect, dispersion and zero-inflation SEs are its blocks.
Conditional SDs of the random effects add, as TMB's sdreport does, the
uncertainty of the fixed parameters: Var(b) = Lambda H^{-1} Lambda' + J V J',
J = d b*/dx (central differences of the conditional modes).

Example
-------
>>> import interlace
>>> m = interlace.glmer("TICKS ~ YEAR + (1 | LOCATION)", interlace.datasets.load("grouseticks"),
...                     family="negativebinomial")
>>> sorted(m.family_params)[:2]
['disp_coef', 'disp_meaning']
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from interlace.general.objective import mode_jacobian
from interlace.results.build import _theta_names, group_frames, is_singular, variance_components, varcorr_frame

__all__ = ["build_general_result"]


def aux_estimates(obj, x: np.ndarray, se_all: np.ndarray):
    """Per free auxiliary block (dispersion, zero-inflation, ...): its
    coefficients and SEs as labelled Series, and plain dicts of the estimates
    for the family's natural parameters."""
    aux_params, aux_bse, coef_dicts = {}, {}, {}
    for i, b in enumerate(obj.blocks):
        if not b.free:
            continue
        s = slice(obj.offsets[2 + i], obj.offsets[3 + i])
        aux_params[b.name] = pd.Series(x[s], index=b.names, name=f"{b.name}_params")
        aux_bse[b.name] = pd.Series(se_all[s], index=b.names, name=f"{b.name}_bse")
        coef_dicts[b.name] = dict(zip(b.names, map(float, x[s])))
    return aux_params, aux_bse, coef_dicts


def _covariance(opt) -> np.ndarray | None:
    H = opt.hessian
    k = H.shape[0]
    free = ~opt.at_bound
    V = np.full((k, k), np.nan)
    try:
        Vf = 2.0 * np.linalg.inv(H[np.ix_(free, free)])
    except np.linalg.LinAlgError:
        return V
    V[np.ix_(free, free)] = 0.5 * (Vf + Vf.T)
    V[opt.at_bound, :] = 0.0
    V[:, opt.at_bound] = 0.0
    return V


def _cond_sd(obj, x: np.ndarray, V: np.ndarray) -> list[np.ndarray]:
    """Per term (nlevels, k) conditional SDs of b including parameter uncertainty."""
    re = obj.re
    obj.deviance(x)
    theta = x[: obj.nt]
    Ainv11, Adense, dense = obj.h_inverse()
    lams = re.lambdas(theta)
    base = []
    for j, lam in enumerate(lams):
        k, nl = int(re.kdim[j]), int(re.nlev[j])
        if not dense:
            blocks = Ainv11
        else:
            idx = int(re.uoff[j]) + np.arange(nl)[:, None] * k + np.arange(k)[None, :]
            blocks = Adense[idx[:, :, None], idx[:, None, :]]
        base.append(np.einsum("laa->la", np.einsum("ab,lbc,dc->lad", lam, blocks, lam)))
    extra = np.zeros(re.q)
    good = np.all(np.isfinite(V))
    if good:
        J = mode_jacobian(obj.b_at, x, obj.lower, V, re.q)
        extra = np.einsum("ij,jk,ik->i", J, V, J)
        obj.deviance(x)
    out = []
    for j in range(re.m):
        k, nl = int(re.kdim[j]), int(re.nlev[j])
        e = extra[re.uoff[j]:re.uoff[j + 1]].reshape(nl, k)
        out.append(np.sqrt(np.maximum(base[j] + e, 0.0)))
    return out


def build_general_result(mf, family, obj, opt, *, formula: str, optimizer: str, user_family=None):
    """Assemble the GLMMResult at the optimum of the general engine."""
    from interlace.results.glmm_result import GLMMResult

    re = obj.re  # None: random effects in ziformula / dispformula only
    x = opt.x
    obj.deviance(x)
    theta_all, beta, coefs = obj.split(x)
    theta = theta_all[: re.ntheta] if re is not None else np.zeros(0)  # the conditional model's
    st = obj._state
    eta, aux = st["eta"], st["aux"]
    side = getattr(obj, "preds", None)  # random effects in ziformula / dispformula
    n, p, nt = mf.n, obj.p, obj.nt
    index = pd.Index(mf.row_index if mf.row_index is not None else np.arange(n))
    V = _covariance(opt)
    se_all = np.sqrt(np.maximum(np.diag(V), 0.0)) if V is not None else np.full(obj.k, np.nan)
    fe_names = list(mf.fe_names)
    sl = slice(nt, nt + p)
    fe = pd.Series(beta, index=fe_names, name="fe_params")
    bse = pd.Series(se_all[sl], index=fe_names, name="fe_bse")
    vcov = pd.DataFrame(V[sl, sl], index=fe_names, columns=fe_names)

    aux_params, aux_bse, coef_dicts = aux_estimates(obj, x, se_all)

    fitted_family = copy.copy(family)
    nat = family.natural_params(coef_dicts)
    fitted_family.params = {**family.params, **nat}
    family_params = {
        "family": family.name, "link": family.link.name,
        "disp_meaning": getattr(family, "disp_meaning", "log dispersion"),
        **fitted_family.params,
    }
    for name, ser in aux_params.items():
        family_params[f"{name}_coef"] = ser.to_dict()
        family_params[f"{name}_coef_se"] = aux_bse[name].to_dict()
    for b in obj.blocks:
        if not b.free:
            family_params[f"{b.name}_fixed"] = b.fixed

    side_sd = None
    try:
        if side is not None:
            side_sd = obj.cond_sd(x, V)
            csd = side_sd.get("cond")
        else:
            csd = _cond_sd(obj, x, V)
    except Exception:  # conditional SDs must not sink the fit
        csd = None
    obj.deviance(x)
    if re is not None:
        if csd is None:
            csd = [np.full((int(re.nlev[j]), int(re.kdim[j])), np.nan) for j in range(re.m)]
        ranef = group_frames(re, re.u_to_b(theta, st["u"][: re.q]))
        ranef_sd = group_frames(re, csd)
        vc = varcorr_frame(re, theta, 1.0, residual=False)
        singular = is_singular(re, theta)
        theta_ser = pd.Series(theta, index=_theta_names(re), name="theta")
    else:  # no conditional random effects (glmmTMB's VarCorr()$cond is empty)
        ranef, ranef_sd, singular = {}, {}, False
        vc = pd.DataFrame(columns=["grp", "var1", "var2", "vcov", "sdcor"])
        theta_ser = pd.Series(dtype=float, name="theta")
    side_models = {}
    if side is not None:
        modes = obj.modes(x)
        for k, pr in enumerate(side[1:], start=1):
            if pr.re is None:
                continue
            th_k = obj.theta_of(theta_all, k)
            singular = singular or is_singular(pr.re, th_k)
            sd_k = side_sd[pr.name] if side_sd is not None else [np.full((int(pr.re.nlev[j]), int(pr.re.kdim[j])),
                                                                          np.nan) for j in range(pr.re.m)]
            side_models[pr.name] = {
                "varcorr": varcorr_frame(pr.re, th_k, 1.0, residual=False),
                "theta": pd.Series(th_k, index=_theta_names(pr.re), name=f"theta_{pr.name}"),
                "random_effects": group_frames(pr.re, modes[pr.name]),
                "random_effects_sd": group_frames(pr.re, sd_k),
            }
        obj.deviance(x)
    messages = list(mf.messages) + list(opt.messages)
    if singular:
        messages.insert(0, "boundary (singular) fit: see help('isSingular')")
    llf = -0.5 * opt.deviance
    df_model = obj.k
    aic = -2 * llf + 2 * df_model
    bic = -2 * llf + np.log(n) * df_model
    ngroups: dict[str, int] = {}
    for t in (re.terms if re is not None else []):
        ngroups.setdefault(t.group, t.nlevels)
    mean = np.asarray(family.mean(eta, aux), dtype=float)
    disp_rows = family.row_dispersion(aux)
    res = GLMMResult(
        formula=formula, family=fitted_family, fe_params=fe, fe_bse=bse, vcov=vcov,
        random_effects=ranef, random_effects_sd=ranef_sd,
        variance_components=variance_components(vc),
        varcorr=vc, theta=theta_ser,
        llf=float(llf), aic=float(aic), bic=float(bic), deviance=float(-2 * llf),
        df_model=int(df_model), df_resid=int(n - df_model), nobs=int(n), ngroups=ngroups,
        scale=1.0, fittedvalues=pd.Series(mean, index=index, name="fitted"),
        linear_predictor=pd.Series(eta, index=index, name="eta"),
        converged=bool(opt.converged), singular=singular,
        optinfo={"optimizer": optimizer, "engine": "general", "nfev": int(obj.nfev), "ngev": int(obj.ngev),
                 "inner_iterations": int(obj.inner_iters), "newton_polish_steps": int(opt.newton_steps),
                 "messages": messages, "optimizer_message": opt.opt_message,
                 "gradient": np.asarray(opt.gradient), "hessian": np.asarray(opt.hessian),
                 "param_names": obj.param_names(), "vcov_all": V,
                 "x": np.asarray(x, dtype=float).copy(), "engine_family": family},
        nAGQ=1, disp_params=aux_params.get("disp"), dispersion=disp_rows,
        zi_params=aux_params.get("zi"), family_params=family_params,
        model_frame=mf, objective=obj, warnings=messages,
    )
    # SEs of the family-parameter models (GLMMResult has no fields for them yet)
    res.disp_bse = aux_bse.get("disp")
    res.zi_bse = aux_bse.get("zi")
    res.aux_params = aux_params
    res.aux_bse = aux_bse
    # random effects of the side models (glmmTMB's VarCorr()$zi, ranef()$zi)
    res.side_models = side_models
    if side_models:  # per-row side predictors with their random effects (simulate, residuals)
        res.aux_rows = {k: np.asarray(v, dtype=float).copy() for k, v in aux.items()}
    for name, sm in side_models.items():
        setattr(res, f"varcorr_{name}", sm["varcorr"])
        setattr(res, f"random_effects_{name}", sm["random_effects"])
    return res
