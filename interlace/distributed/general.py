"""The general-likelihood Laplace engine (glmmTMB's NB2) with the rows on Dask.

:class:`DistributedGeneralObjective` is :class:`GeneralObjective` with every
pass over the rows replaced by a map/reduce round of ``general_rows``; the
driver keeps x = (theta, beta, log theta_NB), u, the blocked Cholesky factor
of H = U'DU + I and its selected inverse. The loops (start values, Newton on
u with step-halving, Laplace deviance, exact gradient) are those of the
in-memory objective with the same rules, so the optimizer
(``general.optimize.optimize_general``) and the covariance (``general.result``)
run unchanged on top of it; only the order of the additions differs.

Family parameters are intercept-only here: no dispformula / ziformula.

Example
-------
>>> from interlace.distributed.general import DistributedGeneralObjective
>>> DistributedGeneralObjective.MAX_ITER > 0
True
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from interlace.distributed import blocks as B
from interlace.distributed import general_rows as G
from interlace.general.objective import GeneralObjective, InnerError, aux_blocks
from interlace.objective.predictor import BlockedCholesky

__all__ = ["DistributedGeneralObjective", "supports_general", "fit_general_dask"]


def supports_general(fam: Any) -> bool:
    """Families whose general-engine fit runs on Dask: every general-likelihood
    family (its own ``derivs`` and ``aux_blocks``; the family parameters are
    intercept-only here)."""
    return callable(getattr(fam, "derivs", None)) and getattr(fam, "aux_blocks", None) is not None


class DistributedGeneralObjective(GeneralObjective):
    """GeneralObjective whose rows stay on the workers (same interface)."""

    def __init__(self, mf, fam, re, rounds) -> None:
        # no GeneralObjective.__init__: it would read the rows
        self.mf = mf
        self.family = fam
        self.re = re
        self.rounds = rounds
        self.chol = BlockedCholesky(re)
        self.p = len(mf.fe_names)
        self.blocks = aux_blocks(mf, fam)  # intercept-only (mf carries no dispformula / ziformula)
        self.nt = re.ntheta
        self._set_layout()
        self.u = np.zeros(re.q)
        self.nfev = self.ngev = self.inner_iters = 0
        self.inner_converged = True
        self.nonpd = False
        self._state: dict | None = None
        self._token = 0
        self._free = [b.name for b in self.blocks if b.free]

    # ------------------------------------------------------------ payloads
    def aux_rows(self, coefs: dict[str, np.ndarray]) -> dict[str, float]:
        """One value per aux block (intercept-only): the payload's ``aux``."""
        return {b.name: float(b.fixed) if b.fixed is not None else float(coefs[b.name][0]) for b in self.blocks}

    def _payload(self, theta, beta, u, aux, **kw) -> dict:
        pl = {"lams": self.re.lambdas(theta), "beta": np.asarray(beta, float), "u": np.asarray(u, float),
              "aux": aux, "free": self._free}
        pl.update(kw)
        return pl

    def _load(self, out: dict) -> None:
        ch = self.chol
        ch.A11[...] = out["A11"]
        ch.V21[...] = out["V21"]
        ch.A22[...] = out["A22"]
        ch.rhs[...] = 0.0

    # ------------------------------------------------------------ start values
    # the row passes of GeneralObjective.x_start, as rounds
    def _start_pieces(self) -> tuple[np.ndarray, float, np.ndarray]:
        st = self.rounds.run(G.start_round, {})
        n = max(st["n"], 1.0)
        m = st["ysum"] / n
        sd = float(np.sqrt(max(st["y2sum"] / n - m * m, 0.0)))
        # two values with the rows' mean and variance: what the families' moment starts read
        return np.linalg.lstsq(st["XtX"], st["Xtz"], rcond=None)[0], st["zsum"] / n, np.array([m - sd, m + sd])

    def _fixed_pass(self, beta: np.ndarray, coefs: dict) -> tuple[float, np.ndarray, dict]:
        out = self.rounds.run(G.fixed_round, {"beta": beta, "aux": self.aux_rows(coefs), "free": self._free})
        return float(out["l"]), out["ge"], {nm: np.array([out["ga_" + nm]]) for nm in self._free}

    # ------------------------------------------------------------ inner Newton on u
    def _newton(self, theta, beta, u, aux, curv: bool = False) -> dict:
        return self.rounds.run(G.newton_round, self._payload(theta, beta, u, aux, curv=curv))

    # the row passes of GeneralObjective.inner (one loop, in memory and here): one
    # round per trial point gives sum l, U'e and U'DU there
    def _pass_at(self, theta, beta, u, aux) -> dict:
        return self._newton(theta, beta, u, aux)

    def _load_curvature(self, theta, beta, u, aux, cur, exact: bool) -> None:
        self._load(cur if exact else self._newton(theta, beta, u, aux, curv=True))

    # ------------------------------------------------------------ objective
    def deviance(self, x: np.ndarray) -> float:
        """Laplace deviance at x (GeneralObjective.deviance); leaves the factor at u*."""
        x = np.asarray(x, dtype=float)
        if self._state is not None and np.array_equal(self._state["x"], x):
            return self._state["dev"]
        self.nfev += 1
        theta, beta, coefs = self.split(x)
        aux = self.aux_rows(coefs)
        try:
            u, cur = self.inner(theta, beta, aux)
        except (InnerError, np.linalg.LinAlgError):
            self._state = None
            return np.inf
        # the sums at u* hold U'DU with the exact D (D >= 0 was not imposed there)
        self._load(cur)
        try:
            logdet = self.chol.factor()
            self.nonpd = False
        except np.linalg.LinAlgError:
            self._state = None
            self.nonpd = True
            return np.inf
        dev = -2.0 * float(cur["l"]) + float(u @ u) + logdet
        if not np.isfinite(dev):
            self._state = None
            return np.inf
        self.u = u
        self._state = {"x": x.copy(), "dev": dev, "u": u, "aux": aux, "theta": theta, "beta": beta,
                       "logdet": logdet}
        return dev

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """Exact d dev / dx at x: two rounds (leverages, then the gradient pass)."""
        x = np.asarray(x, dtype=float)
        if self._state is None or not np.array_equal(self._state["x"], x):
            if not np.isfinite(self.deviance(x)):
                return np.full(self.k, np.nan)
        self.ngev += 1
        st = self._state
        self._token += 1
        pl = self._payload(st["theta"], st["beta"], st["u"], st["aux"], ainv=self.chol.selected_inverse_pairs(),
                           token=self._token)
        Utv = self.rounds.run(G.lev_round, pl)["Utv"]
        pl["xi"] = self.chol.solve(Utv)
        g = self.rounds.run(G.grad_round, pl)
        return np.concatenate([self.re.chain(st["theta"], g["gt"]), g["gb"]]
                              + [np.array([g["ga_" + nm]]) for nm in self._free])


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

    obj = DistributedGeneralObjective(mf, fam, re, rounds)
    opt = optimize_general(obj, optimizer, theta0)
    if not np.isfinite(opt.deviance):
        raise RuntimeError(f"the {fam.name} model has no finite Laplace log-likelihood at the optimizer's "
                           "final point (check the link and the starting values)")
    extra_info = {**extra_info, "dask_rounds": rounds.count, "dask_rounds_by_kind": dict(rounds.by_kind)}
    res = build_dask_general_result(mf, fam, obj, opt, formula=formula, optimizer=optimizer, messages=messages,
                                    train=train, used=used, extra_info=extra_info)
    res.optinfo["dask_rounds"] = rounds.count
    return res
