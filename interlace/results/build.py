"""Build a GLMMResult from the model frame, the objective and the optimum
(lme4's mkMerMod): labelled pandas objects, VarCorr, conditional modes and
their conditional SDs, vcov from the Hessian of the deviance."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from interlace.model_frame import ModelFrame
from interlace.optimize.outer import is_failure_message

SINGULAR_TOL = 1e-4


def _theta_names(re) -> list[str]:
    names = []
    for t in range(re.ntheta):
        term = re.terms[re.theta_term[t]]
        a, b = re.theta_a[t], re.theta_b[t]
        if a == b:
            names.append(f"{term.vc_name}.{term.cnames[a]}")
        else:
            names.append(f"{term.vc_name}.{term.cnames[a]}.{term.cnames[b]}")
    return names


def varcorr_frame(re, theta: np.ndarray, scale: float, residual: bool) -> pd.DataFrame:
    """Rows of R's as.data.frame(VarCorr(m)): variances/SDs first, then
    covariances/correlations, per term; a Residual row for LMMs."""
    rows = []
    for j, lam in enumerate(re.lambdas(theta)):
        term = re.terms[j]
        cov = scale * (lam @ lam.T)
        sd = np.sqrt(np.diag(cov))
        for a in range(term.k):
            rows.append((term.vc_name, term.cnames[a], None, cov[a, a], sd[a]))
        for b in range(term.k):
            for a in range(b + 1, term.k):
                den = sd[a] * sd[b]
                corr = cov[a, b] / den if den > 0 else np.nan
                rows.append((term.vc_name, term.cnames[b], term.cnames[a], cov[a, b], corr))
    if residual:
        rows.append(("Residual", None, None, scale, np.sqrt(scale)))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])


def conditional_variances(re, chol, theta: np.ndarray, scale: float) -> list[np.ndarray]:
    """Per term an (nlevels, k) array of conditional SDs of b (lme4's condVar)."""
    Ainv11, _Ainv21, Ainv22 = chol.selected_inverse()
    lams = re.lambdas(theta)
    out = []
    for j, lam in enumerate(lams):
        k = int(re.kdim[j])
        nl = int(re.nlev[j])
        if j == 0:
            blocks = Ainv11
        else:
            r0 = int(re.uoff[j] - re.q0)
            idx = r0 + np.arange(nl)[:, None] * k + np.arange(k)[None, :]
            blocks = Ainv22[idx[:, :, None], idx[:, None, :]]
        cv = np.einsum("ab,lbc,dc->lad", lam, blocks, lam) * scale
        out.append(np.sqrt(np.maximum(np.einsum("laa->la", cv), 0.0)))
    return out


def group_frames(re, per_term: list[np.ndarray]) -> dict[str, pd.DataFrame]:
    """Merge per-term (nlevels, k) arrays into one DataFrame per grouping
    factor (as lme4's ranef does for several terms on one factor)."""
    out: dict[str, pd.DataFrame] = {}
    for j, arr in enumerate(per_term):
        term = re.terms[j]
        df = pd.DataFrame(arr, index=pd.Index(term.levels, name=term.group), columns=list(term.cnames))
        if term.group in out:
            prev = out[term.group]
            cols = [c if c not in prev.columns else f"{c}.{j}" for c in df.columns]
            df.columns = cols
            out[term.group] = pd.concat([prev, df], axis=1)
        else:
            out[term.group] = df
    return out


def variance_components(vc: pd.DataFrame) -> pd.Series:
    """Variances from a VarCorr frame: keyed by group for a group with one
    variance, ``"group:term"`` otherwise (the Residual row keyed "Residual")."""
    out = {}
    var_rows = vc[vc["var2"].isna()]
    for _, row in var_rows.iterrows():
        single = int((var_rows["grp"] == row["grp"]).sum()) == 1
        out[row["grp"] if single else f"{row['grp']}:{row['var1']}"] = row["vcov"]
    return pd.Series(out, name="variance_components", dtype=float)


def is_singular(re, theta: np.ndarray, tol: float = SINGULAR_TOL) -> bool:
    """lme4's isSingular: a diagonal element of some Lambda_j near zero."""
    diag = re.theta_a == re.theta_b
    return bool(np.any(theta[diag] < tol))


def build_result(mf: ModelFrame, family, obj, opt, *, nAGQ: int, engine: str, formula: str,
                 optimizer: str, extra_messages: list[str] | None = None):
    """Assemble the GLMMResult (lme4's mkMerMod) at the optimum `opt`."""
    from interlace.results.glmm_result import GLMMResult

    re = obj.re
    theta = np.asarray(opt.theta, dtype=float)
    beta = np.asarray(opt.beta, dtype=float)
    fe_names = list(mf.fe_names)
    p, nt = len(fe_names), re.ntheta
    n = mf.n
    index = pd.Index(mf.row_index if mf.row_index is not None else np.arange(n))
    messages = list(extra_messages or []) + list(opt.messages)
    if engine == "lmm":
        scale = obj.sigma2
        V = scale * _rx_inverse(obj.RX)
        u = obj.u
        eta = obj.eta
        mu = eta.copy()
        llf = -0.5 * opt.deviance
        df_model = p + nt + 1
        deviance = -2.0 * llf
    else:
        scale = 1.0
        V = vcov_from_hessian(opt.hessian, nt)
        if V is None:
            # fall back to the conditional covariance given theta (lme4's use.hessian = FALSE)
            from interlace.objective.laplace import solve_joint
            resp = obj.resp
            zl = re.zlambda(theta)
            solve_joint(re, obj.chol, obj.X, resp.w, (resp.eta - resp.offset) + resp.r, zl)
            _u, _b, _RZX, RX = solve_joint(re, obj.chol, obj.X, resp.w, (resp.eta - resp.offset) + resp.r, zl)
            V = _rx_inverse(RX)
            messages.append("variance-covariance matrix computed from finite-difference Hessian is\n"
                            "not positive definite or contains NA values: falling back to var-cov estimated from RX")
            obj.deviance(theta, beta)
        u = obj.u
        eta = obj.resp.eta.copy()
        mu = obj.resp.mu.copy()
        llf = -0.5 * opt.deviance
        df_model = p + nt
        deviance = float(np.sum(family.dev_resids(mf.y, mu, mf.weights)))
    fe = pd.Series(beta, index=fe_names, name="fe_params")
    bse = pd.Series(np.sqrt(np.diag(V)), index=fe_names, name="fe_bse")
    vcov = pd.DataFrame(V, index=fe_names, columns=fe_names)
    b = re.u_to_b(theta, u)
    ranef = group_frames(re, b)
    csd = conditional_variances(re, obj.chol, theta, scale)
    ranef_sd = group_frames(re, csd)
    vc = varcorr_frame(re, theta, scale, residual=(engine == "lmm"))
    singular = is_singular(re, theta)
    if singular:
        messages.insert(0, "boundary (singular) fit: see help('isSingular')")
    aic = -2 * llf + 2 * df_model
    bic = -2 * llf + np.log(n) * df_model
    ngroups: dict[str, int] = {}
    for t in re.terms:
        ngroups.setdefault(t.group, t.nlevels)
    disp_params = dispersion = None
    if engine == "lmm" and mf.disp_X is not None:
        disp_params = pd.Series([np.log(scale)], index=["Intercept"], name="disp_params")
        dispersion = np.full(n, scale)
    res = GLMMResult(
        formula=formula, family=family, fe_params=fe, fe_bse=bse, vcov=vcov,
        random_effects=ranef, random_effects_sd=ranef_sd,
        variance_components=variance_components(vc),
        varcorr=vc, theta=pd.Series(theta, index=_theta_names(re), name="theta"),
        llf=float(llf), aic=float(aic), bic=float(bic), deviance=float(deviance),
        df_model=int(df_model), df_resid=int(n - df_model), nobs=int(n), ngroups=ngroups,
        scale=float(scale), fittedvalues=pd.Series(mu, index=index, name="fitted"),
        linear_predictor=pd.Series(eta, index=index, name="eta"),
        converged=bool(opt.converged) and not any(map(is_failure_message, messages)),
        singular=singular,
        optinfo={"optimizer": optimizer, "engine": engine, "nfev": int(opt.nfev), "ngev": int(opt.ngev),
                 "pirls_iterations": int(getattr(obj, "pirls_iters", 0)), "messages": messages,
                 "optimizer_message": opt.opt_message, "stage1": opt.stage1,
                 "gradient": None if opt.gradient is None else np.asarray(opt.gradient),
                 "hessian": None if opt.hessian is None else np.asarray(opt.hessian)},
        nAGQ=nAGQ, disp_params=disp_params, dispersion=dispersion,
        model_frame=mf, objective=obj, warnings=messages,
    )
    return res


def vcov_from_hessian(H: np.ndarray | None, nt: int) -> np.ndarray | None:
    """lme4's vcov for GLMMs: the beta block of 2 H^{-1}, H the Hessian of the
    deviance in (theta, beta); None when H is missing or not usable."""
    if H is None:
        return None
    try:
        Vfull = 2.0 * np.linalg.solve(H, np.eye(H.shape[0]))
    except np.linalg.LinAlgError:
        return None
    V = 0.5 * (Vfull + Vfull.T)[nt:, nt:]
    if not np.all(np.isfinite(V)) or np.any(np.diag(V) <= 0):
        return None
    return V


def _rx_inverse(RX: np.ndarray) -> np.ndarray:
    """(RX RX')^{-1} by triangular solves (no explicit general inverse)."""
    import scipy.linalg as sla

    p = RX.shape[0]
    Li = sla.solve_triangular(RX, np.eye(p), lower=True)
    return Li.T @ Li
