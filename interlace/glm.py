"""Models without random effects: the same ``glmer`` call fits a GLM.

Two estimators, chosen by the family's ``engine`` attribute (never its name):

- an exponential family (``engine`` "lmm" or "laplace", or "general" only because it has a
  dispersion) is fitted as R's ``glm``: IRLS for beta, the dispersion estimated from the
  Pearson statistic over the residual degrees of freedom (``summary.glm``), the standard
  errors scaled by it, and ``logLik`` / ``AIC`` from the family's ``glm_aic`` (R's
  ``family$aic``: Gaussian, Gamma and inverse Gaussian evaluate it at deviance / n, so the
  dispersion counts as one parameter);
- a family with its own likelihood (``LikelihoodFamily``), or any model with ``dispformula``
  / ``ziformula``, is fitted as glmmTMB fits it without random effects: maximum likelihood
  over (beta, family parameters), the covariance the inverse Hessian of -loglik.

Both return the same :class:`~interlace.results.glmm_result.GLMMResult` with no random-effect
terms (``theta`` empty, ``ngroups`` empty); ``optinfo["engine"]`` is ``"glm"``.

Example
-------
>>> import interlace
>>> df = interlace.datasets.load("cbpp")
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period", df, family="binomial")
>>> m.optinfo["engine"], round(m.llf, 3)
('glm', -99.029)
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg as sla

from interlace.model_frame import ModelFrame

__all__ = ["fit_glm", "is_glm_family"]

MAX_IRLS = 100


def is_glm_family(fam: Any, mf: ModelFrame) -> bool:
    """True when ``fam`` is fitted as R's glm (an exponential family without side models)."""
    from interlace.families.base import ExponentialFamily

    return isinstance(fam, ExponentialFamily) and mf.disp_X is None and mf.zi_X is None


def fit_glm(mf: ModelFrame, fam: Any, *, formula: str = "", optimizer: str = "lbfgsb", **_ignored: Any):
    """Fit ``mf`` (no random-effect terms) as a GLM; returns a GLMMResult."""
    if is_glm_family(fam, mf):
        return _fit_irls(mf, fam, formula or mf.formula)
    return _fit_ml(mf, fam, formula or mf.formula, optimizer)


# ----------------------------------------------------------------------------- R's glm


def _wls(X: np.ndarray, w: np.ndarray, z: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    return np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)[0]


def _fit_irls(mf: ModelFrame, fam: Any, formula: str):
    """R's glm.fit: IRLS from the family's mustart, step halving when the deviance is not
    finite or mu leaves its valid range; convergence |dev - dev_old| / (|dev| + 0.1) < 1e-8."""
    X, y, wt, off = mf.X, mf.y, mf.weights, mf.offset
    good = wt > 0
    mu = np.asarray(fam.initialize(y, wt), dtype=float)
    eta = np.asarray(fam.linkfun(mu), dtype=float)
    dev_old = float(np.sum(fam.dev_resids(y, mu, wt)))
    beta = None
    converged = False
    with np.errstate(all="ignore"):
        for _it in range(MAX_IRLS):
            me = fam.mu_eta(eta)
            w = np.where(good, wt * me * me / fam.variance(mu), 0.0)
            z = eta - off + (y - mu) / me
            new = _wls(X, w, np.where(good, z, 0.0))
            for _h in range(60):  # halve towards the previous beta while the step is not valid
                eta_n = X @ new + off
                mu_n = fam.linkinv(eta_n)
                dev = float(np.sum(fam.dev_resids(y, mu_n, wt)))
                if np.isfinite(dev) and fam.valid_eta(eta_n) and fam.valid_mu(mu_n):
                    break
                if beta is None:
                    raise ValueError("glm: no valid set of coefficients found; please supply starting values")
                new = 0.5 * (new + beta)
            beta, eta, mu = new, eta_n, mu_n
            if abs(dev - dev_old) / (abs(dev) + 0.1) < 1e-10:
                converged = True
                break
            dev_old = dev
    me = fam.mu_eta(eta)
    w = np.where(good, wt * me * me / fam.variance(mu), 0.0)
    p = X.shape[1]
    nobs = int(good.sum())
    df_resid = nobs - p
    has_disp = fam.dispersion_family() is not None
    if has_disp:
        pearson = float(np.sum(np.where(good, wt * (y - mu) ** 2 / fam.variance(mu), 0.0)))
        dispersion = pearson / df_resid if df_resid > 0 else np.nan
    else:
        dispersion = 1.0
    R = sla.qr(X * np.sqrt(w)[:, None], mode="r")[0][:p]
    Rinv = sla.solve_triangular(R, np.eye(p))
    V = dispersion * (Rinv @ Rinv.T)
    dev = float(np.sum(fam.dev_resids(y, mu, wt)))
    aic_fam = float(fam.glm_aic(y, mu, wt, dev))
    k = p + (1 if has_disp else 0)
    aic = aic_fam + 2 * p
    llf = k - aic / 2.0
    messages = [] if converged else ["glm.fit: algorithm did not converge"]
    fitted_family = copy.copy(fam)
    return _result(mf, fitted_family, formula, beta, V, eta, mu, llf=llf, k=k, dispersion=dispersion,
                   converged=converged, messages=messages, extra_info={"glm_deviance": dev,
                                                                        "dispersion_method": "pearson" if has_disp
                                                                        else "fixed"})


# ----------------------------------------------------------------------------- glmmTMB without random effects


class _FixedOnly:
    """-2 loglik of a LikelihoodFamily over x = (beta, free aux coefficients), with its exact gradient."""

    def __init__(self, mf: ModelFrame, lf: Any) -> None:
        from interlace.general.objective import aux_blocks

        self.mf, self.family = mf, lf
        self.X, self.y, self.wt, self.off = mf.X, mf.y, mf.weights, mf.offset
        self.blocks = aux_blocks(mf, lf)
        self.p = self.X.shape[1]
        sizes = [self.p] + [b.size for b in self.blocks]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.k = int(self.offsets[-1])

    def split(self, x):
        coefs = {b.name: x[self.offsets[1 + i]:self.offsets[2 + i]] for i, b in enumerate(self.blocks)}
        return x[: self.p], coefs

    def aux_rows(self, coefs):
        n = self.mf.n
        return {b.name: (np.full(n, b.fixed) if b.fixed is not None else b.X @ coefs[b.name]) for b in self.blocks}

    def start(self) -> np.ndarray:
        lf = self.family
        z = np.asarray(lf.start_eta(self.y), dtype=float) - self.off
        x = np.zeros(self.k)
        x[: self.p] = np.linalg.lstsq(self.X, z, rcond=None)[0]
        for i, b in enumerate(self.blocks):
            if b.free and "Intercept" in b.names:
                x[self.offsets[1 + i] + b.names.index("Intercept")] = float(lf.aux_default(b.name, self.y))
        return x

    def fg(self, x):
        beta, coefs = self.split(x)
        eta = self.X @ beta + self.off
        with np.errstate(all="ignore"):
            d = self.family.derivs(self.y, self.wt, eta, self.aux_rows(coefs), order=2)
        val = -2.0 * float(np.sum(d.l))
        if not np.isfinite(val):
            return 1e300, np.zeros(len(x))
        g = [-2.0 * (self.X.T @ d.e)] + [-2.0 * (b.X.T @ d.aux[b.name][0]) for b in self.blocks if b.free]
        return val, np.concatenate(g)


def _fit_ml(mf: ModelFrame, fam: Any, formula: str, optimizer: str):
    from interlace.engine_general import as_likelihood_family
    from interlace.general.optimize import lbfgs_guarded

    lf = as_likelihood_family(fam, zero_inflated=mf.zi_X is not None)
    obj = _FixedOnly(mf, lf)
    x0 = obj.start()
    if obj.fg(x0)[0] >= 1e299 and "Intercept" in mf.fe_names:
        z = np.asarray(lf.start_eta(obj.y), dtype=float) - obj.off
        x0[: obj.p] = 0.0
        x0[mf.fe_names.index("Intercept")] = float(np.mean(z))
    r = lbfgs_guarded(obj.fg, x0, np.full(obj.k, -np.inf), maxiter=5000, ftol=1e-15, gtol=1e-9)
    x = np.asarray(r.x, dtype=float)
    # Newton polish on the Hessian from central differences of the exact gradient (its inverse
    # is the covariance, as glmmTMB's sdreport)
    H = _hessian(obj, x)
    for _ in range(10):
        g = obj.fg(x)[1]
        try:
            step = -np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or -float(g @ step) < 1e-12:
            break
        f0 = obj.fg(x)[0]
        t = 1.0
        for _h in range(30):
            if obj.fg(x + t * step)[0] <= f0 + 1e-12 * abs(f0):
                break
            t *= 0.5
        else:
            break
        x = x + t * step
        H = _hessian(obj, x)
    dev, g = obj.fg(x)
    try:
        V = 2.0 * np.linalg.inv(H)
        V = 0.5 * (V + V.T)
        ok = bool(np.all(np.linalg.eigvalsh(H) > 0))
    except np.linalg.LinAlgError:
        V, ok = np.full((obj.k, obj.k), np.nan), False
    converged = bool(r.success or np.max(np.abs(g)) < 1e-3) and ok and np.isfinite(dev)
    messages = [] if converged else ["the fixed-effects-only model did not converge "
                                     "(non-positive-definite Hessian or optimizer failure)"]
    beta, coefs = obj.split(x)
    eta = obj.X @ beta + obj.off
    aux = obj.aux_rows(coefs)
    mean = np.asarray(lf.mean(eta, aux), dtype=float)
    se_all = np.sqrt(np.maximum(np.diag(V), 0.0))
    aux_params, aux_bse, coef_dicts = {}, {}, {}
    for i, b in enumerate(obj.blocks):
        if not b.free:
            continue
        s = slice(obj.offsets[1 + i], obj.offsets[2 + i])
        aux_params[b.name] = pd.Series(x[s], index=b.names, name=f"{b.name}_params")
        aux_bse[b.name] = pd.Series(se_all[s], index=b.names, name=f"{b.name}_bse")
        coef_dicts[b.name] = dict(zip(b.names, map(float, x[s])))
    fitted_family = copy.copy(lf)
    fitted_family.params = {**lf.params, **lf.natural_params(coef_dicts)}
    family_params = {"family": lf.name, "link": lf.link.name,
                     "disp_meaning": getattr(lf, "disp_meaning", "log dispersion"), **fitted_family.params}
    for name, ser in aux_params.items():
        family_params[f"{name}_coef"] = ser.to_dict()
        family_params[f"{name}_coef_se"] = aux_bse[name].to_dict()
    for b in obj.blocks:
        if not b.free:
            family_params[f"{b.name}_fixed"] = b.fixed
    names = list(mf.fe_names) + [f"{b.name}.{s}" for b in obj.blocks if b.free for s in b.names]
    res = _result(mf, fitted_family, formula, beta, V[: obj.p, : obj.p], eta, mean, llf=-0.5 * dev, k=obj.k,
                  dispersion=1.0, converged=converged, messages=messages,
                  extra_info={"x": x.copy(), "vcov_all": V, "param_names": names, "gradient": g,
                              "hessian": H, "engine_family": lf, "optimizer_message": str(r.message)})
    res.disp_params = aux_params.get("disp")
    res.zi_params = aux_params.get("zi")
    res.dispersion = lf.row_dispersion(aux)
    res.family_params = family_params
    res.disp_bse, res.zi_bse = aux_bse.get("disp"), aux_bse.get("zi")
    res.aux_params, res.aux_bse = aux_params, aux_bse
    return res


def _hessian(obj: _FixedOnly, x: np.ndarray) -> np.ndarray:
    k = len(x)
    H = np.zeros((k, k))
    for i in range(k):
        h = 1e-4 * max(1.0, abs(x[i]))
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        H[:, i] = (obj.fg(xp)[1] - obj.fg(xm)[1]) / (2.0 * h)
    return 0.5 * (H + H.T)


# ----------------------------------------------------------------------------- the result


def _result(mf, family, formula, beta, V, eta, mu, *, llf, k, dispersion, converged, messages, extra_info):
    from interlace.results.glmm_result import GLMMResult

    n = mf.n
    index = pd.Index(mf.row_index if mf.row_index is not None else np.arange(n))
    names = list(mf.fe_names)
    fe = pd.Series(beta, index=names, name="fe_params")
    bse = pd.Series(np.sqrt(np.maximum(np.diag(V), 0.0)), index=names, name="fe_bse")
    aic = -2.0 * llf + 2.0 * k
    bic = -2.0 * llf + np.log(n) * k
    messages = list(mf.messages) + list(messages)
    return GLMMResult(
        formula=formula, family=family, fe_params=fe, fe_bse=bse,
        vcov=pd.DataFrame(V, index=names, columns=names),
        random_effects={}, random_effects_sd={},
        variance_components=pd.Series(dtype=float),
        varcorr=pd.DataFrame(columns=["grp", "var1", "var2", "vcov", "sdcor"]),
        theta=pd.Series(dtype=float, name="theta"),
        llf=float(llf), aic=float(aic), bic=float(bic), deviance=float(-2.0 * llf),
        df_model=int(k), df_resid=int(n - k), nobs=int(n), ngroups={},
        scale=float(dispersion), fittedvalues=pd.Series(mu, index=index, name="fitted"),
        linear_predictor=pd.Series(eta, index=index, name="eta"),
        converged=bool(converged), singular=False,
        optinfo={"optimizer": "irls" if extra_info.get("dispersion_method") else "lbfgsb", "engine": "glm",
                 "messages": messages, **extra_info},
        nAGQ=1, model_frame=mf, warnings=messages,
    )
