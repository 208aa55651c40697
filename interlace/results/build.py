"""Build a GLMMResult from the model frame, the objective and the optimum
(lme4's mkMerMod): labelled pandas objects, VarCorr, conditional modes and
their conditional SDs, vcov from the Hessian of the deviance."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from interlace.model_frame import ModelFrame
from interlace.optimize.checks import is_failure_message
from interlace.results.lazy import Deferred

SINGULAR_TOL = 1e-4


def _theta_names(re) -> list[str]:
    """One name per covariance parameter (the terms' covariance structures name them)."""
    return re.theta_names()


def _varcorr_columns(re, theta: np.ndarray, scale: float, residual: bool) -> dict[str, list]:
    """The columns of :func:`varcorr_frame` as lists (shared with the variance components)."""
    grp: list = []
    var1: list = []
    var2: list = []
    vcov: list = []
    sdcor: list = []
    for j, lam in enumerate(re.lambdas(theta)):
        term = re.terms[j]
        cov = scale * (lam @ lam.T)
        sd = np.sqrt(np.diag(cov))
        k = term.k
        # the structure says which correlations it reports (all pairs for us, one for cs/ar1)
        pairs = re.covs[j].vc_pairs()
        grp += [term.vc_name] * (k + len(pairs))
        var1 += list(term.cnames[:k])
        var2 += [None] * k
        vcov += np.diag(cov).tolist()
        sdcor += sd.tolist()
        for b, a in pairs:
            den = sd[a] * sd[b]
            var1.append(term.cnames[b])
            var2.append(term.cnames[a])
            vcov.append(float(cov[a, b]))
            sdcor.append(float(cov[a, b] / den) if den > 0 else np.nan)
    if residual:
        grp.append("Residual")
        var1.append(None)
        var2.append(None)
        vcov.append(float(scale))
        sdcor.append(float(np.sqrt(scale)))
    return {"grp": grp, "var1": var1, "var2": var2, "vcov": vcov, "sdcor": sdcor}


def _varcorr_from_columns(cols: dict[str, list]) -> pd.DataFrame:
    if not cols["grp"]:
        return pd.DataFrame([], columns=["grp", "var1", "var2", "vcov", "sdcor"])
    # Column by column (not from row tuples): the same dtypes, at a fraction of the cost.
    return pd.DataFrame({"grp": cols["grp"], "var1": cols["var1"], "var2": cols["var2"],
                         "vcov": np.array(cols["vcov"], dtype=np.float64),
                         "sdcor": np.array(cols["sdcor"], dtype=np.float64)})


def varcorr_frame(re, theta: np.ndarray, scale: float, residual: bool) -> pd.DataFrame:
    """Rows of R's as.data.frame(VarCorr(m)): variances/SDs first, then
    covariances/correlations, per term; a Residual row for LMMs."""
    return _varcorr_from_columns(_varcorr_columns(re, theta, scale, residual))


def conditional_variances(re, chol, theta: np.ndarray, scale: float) -> list[np.ndarray]:
    """Per term an (nlevels, k) array of conditional SDs of b (lme4's condVar)."""
    Ainv11, Ainv22 = chol.selected_inverse_diag()
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
        # only the diagonal of Lambda B Lambda' per level: (Lambda B) . Lambda summed over
        # columns, O(k^3) through matmul (the full triple einsum is O(k^4): slow for a
        # spatial term with hundreds of columns)
        cv = np.sum((lam @ blocks) * lam, axis=-1) * scale
        out.append(np.sqrt(np.maximum(cv, 0.0)))
    return out


def group_frames(re, per_term: list[np.ndarray], _labels: dict | None = None) -> dict[str, pd.DataFrame]:
    """Merge per-term (nlevels, k) arrays into one DataFrame per grouping
    factor (as lme4's ranef does for several terms on one factor).

    ``_labels`` (a dict, filled on first use) lets a second call reuse the
    level and column Index objects of the first (each frame gets its own
    shallow copy): building a string Index is most of the cost here.
    """
    out: dict[str, pd.DataFrame] = {}
    for j, arr in enumerate(per_term):
        term = re.terms[j]
        if _labels is None:
            index, columns = pd.Index(term.levels, name=term.group), list(term.cnames)
        else:
            if j not in _labels:
                _labels[j] = (pd.Index(term.levels, name=term.group), pd.Index(list(term.cnames)))
            index, columns = (x.copy() for x in _labels[j])
        df = pd.DataFrame(arr, index=index, columns=columns)
        if term.group in out:
            prev = out[term.group]
            cols = [c if c not in prev.columns else f"{c}.{j}" for c in df.columns]
            df.columns = cols
            out[term.group] = pd.concat([prev, df], axis=1)
        else:
            out[term.group] = df
    return out


def _variance_components(grp: list, var1: list, is_var: list, value: list) -> pd.Series:
    rows = [i for i in range(len(grp)) if is_var[i]]
    count: dict = {}
    for i in rows:
        count[grp[i]] = count.get(grp[i], 0) + 1
    out = {}
    for i in rows:
        out[grp[i] if count[grp[i]] == 1 else f"{grp[i]}:{var1[i]}"] = value[i]
    if not out:
        return pd.Series(out, name="variance_components", dtype=float)
    return pd.Series(list(out.values()), index=list(out.keys()), name="variance_components", dtype=float)


def variance_components(vc: pd.DataFrame) -> pd.Series:
    """Variances from a VarCorr frame: keyed by group for a group with one
    variance, ``"group:term"`` otherwise (the Residual row keyed "Residual")."""
    return _variance_components(vc["grp"].tolist(), vc["var1"].tolist(), vc["var2"].isna().tolist(),
                                vc["vcov"].tolist())


def is_singular(re, theta: np.ndarray, tol: float = SINGULAR_TOL) -> bool:
    """lme4's isSingular: a diagonal element of some Lambda_j near zero. A structure whose
    Lambda has zero columns by construction (rr's padding) gives its own rule, ``singular``."""
    ent = re.entries(theta)
    e0, out = 0, False
    for j, c in enumerate(re.covs):
        rule = getattr(c, "singular", None)
        if rule is not None:
            out |= bool(rule(re._par(theta, j), tol))
        else:
            out |= bool(np.any(ent[e0:e0 + c.nentries][c.rows == c.cols] < tol))
        e0 += c.nentries
    return out


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
    messages = list(extra_messages or []) + list(opt.messages)
    if engine == "lmm":
        scale = obj.sigma2
        V = scale * _rx_inverse(obj.RX)
        u = obj.u
        eta = obj.eta.copy()
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
    # The numbers now (the objective may later move to another theta), the labelled
    # pandas objects on first access (results/lazy.py): building a pandas 3 string
    # Index costs more than a small model's numbers.
    b = re.u_to_b(theta, u)
    csd = getattr(obj, "conditional_variances", lambda *_: None)(theta, scale)  # the LMM's own factor
    if csd is None:
        csd = conditional_variances(re, obj.chol, theta, scale)
    vc_cols = _varcorr_columns(re, theta, scale, residual=(engine == "lmm"))
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
    labels: dict = {}
    bse = np.sqrt(np.diag(V))
    theta_names = _theta_names(re)
    fe_index = _OnceIndex(fe_names)

    def rows_index() -> pd.Index:
        # the user's row labels, which attach_row_labels records on the model frame after the fit
        if getattr(mf, "full_index", None) is not None:
            from interlace.results.align import fitted_index

            idx = fitted_index(_FrameOnly(mf))
            if len(idx) == n:
                return idx
        return pd.Index(mf.row_index if mf.row_index is not None else np.arange(n))

    res = GLMMResult(
        formula=formula, family=family,
        fe_params=Deferred(lambda: pd.Series(beta, index=fe_index(), name="fe_params"), beta),
        fe_bse=Deferred(lambda: pd.Series(bse, index=fe_index(), name="fe_bse"), bse),
        vcov=Deferred(lambda: pd.DataFrame(V, index=fe_index(), columns=fe_index())),
        random_effects=Deferred(lambda: group_frames(re, b, labels)),
        random_effects_sd=Deferred(lambda: group_frames(re, csd, labels)),
        variance_components=Deferred(lambda: _variance_components(
            vc_cols["grp"], vc_cols["var1"], [v is None for v in vc_cols["var2"]], vc_cols["vcov"])),
        varcorr=Deferred(lambda: _varcorr_from_columns(vc_cols)),
        theta=Deferred(lambda: pd.Series(theta, index=theta_names, name="theta"), theta),
        llf=float(llf), aic=float(aic), bic=float(bic), deviance=float(deviance),
        df_model=int(df_model), df_resid=int(n - df_model), nobs=int(n), ngroups=ngroups,
        scale=float(scale),
        fittedvalues=Deferred(lambda: pd.Series(mu, index=rows_index(), name="fitted")),
        linear_predictor=Deferred(lambda: pd.Series(eta, index=rows_index(), name="eta")),
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


class _FrameOnly:
    """What fitted_index reads of a result: its model frame."""

    def __init__(self, mf: ModelFrame) -> None:
        self.model_frame = mf


class _OnceIndex:
    """One pandas Index for the coefficient names, built on first use; each caller
    gets its own shallow copy (objects must not share a mutable Index)."""

    def __init__(self, names: list[str]) -> None:
        self.names, self.index = names, None

    def __call__(self) -> pd.Index:
        if self.index is None:
            self.index = pd.Index(self.names)
            return self.index
        return self.index.copy()


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
    from interlace.optimize.trisolve import solve_triangular

    RX = np.asarray(RX)
    if not np.all(np.isfinite(RX)):  # solve_triangular's check_finite
        raise ValueError("array must not contain infs or NaNs")
    Li = solve_triangular(RX, np.eye(RX.shape[0]), lower=True)
    return Li.T @ Li
