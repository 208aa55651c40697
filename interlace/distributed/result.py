"""The GLMMResult of a Dask fit (lme4's mkMerMod on the driver's small objects).

Parameters, VarCorr, conditional modes and their SDs, vcov and llf are the
in-memory ones (results.build's helpers); the per-row results --
``fittedvalues``, ``linear_predictor`` and ``predict`` on a Dask frame -- are
lazy Dask Series computed partition by partition with the in-memory
``predict`` and the fitted model's FrameSpec.

Example
-------
>>> from interlace.distributed.result import DaskGLMMResult
>>> DaskGLMMResult.__mro__[1].__name__
'GLMMResult'
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from interlace.distributed import blocks as B
from interlace.distributed.frames import is_dask_frame, native_dask
from interlace.model_frame import ModelFrame
from interlace.optimize.checks import is_failure_message
from interlace.results.build import (
    _rx_inverse,
    vcov_from_hessian,
    _theta_names,
    conditional_variances,
    group_frames,
    is_singular,
    varcorr_frame,
    variance_components,
)
from interlace.results.glmm_result import GLMMResult


def _not_here(what: str):
    raise NotImplementedError(f"{what} is not available for a fit on a Dask frame (the rows stay on the "
                              "cluster); use predict(ddf) / fittedvalues, or fit in memory")


class DaskGLMMResult(GLMMResult):
    """A GLMMResult whose per-row parts are Dask collections."""

    _light: GLMMResult
    _train: Any
    _used: list[str]

    def predict(self, newdata=None, type: str = "response", include_re: bool = True,
                allow_new_levels: bool = False, se_fit: bool = False, offset=None):
        """Like GLMMResult.predict; a Dask ``newdata`` (or none: the training
        frame) gives a lazy Dask Series, an in-memory frame a NumPy array.

        Example
        -------
        >>> # m = interlace.glmer(formula, ddf, "binomial"); m.predict(ddf).compute()
        """
        if se_fit:
            _not_here("se_fit")

        if newdata is None:
            if offset is not None:
                raise ValueError("offset= applies to newdata; the training rows keep their fitted offset")
            if type not in ("response", "link"):
                raise ValueError(f"type={type!r} is not available for the training rows of a Dask fit")
            if not include_re:
                return self.predict(self._train, type=type, include_re=False)
            return self.fittedvalues if type == "response" else self.linear_predictor
        if is_dask_frame(newdata):
            if offset is not None and not isinstance(offset, str):
                raise TypeError("with a Dask newdata, offset must be a column name or an expression")
            ddf = native_dask(newdata)
            kw = dict(type=type, include_re=include_re, allow_new_levels=allow_new_levels, offset=offset)
            return ddf.map_partitions(B.predict_partition, self._light, kw,
                                      meta=pd.Series(dtype=float, name="predicted"))
        from interlace.results.predict import predict

        return predict(self._light, newdata, type=type, include_re=include_re,
                       allow_new_levels=allow_new_levels, offset=offset)

    def resid(self, type: str = "deviance"):
        _not_here("resid()")

    def simulate(self, nsim: int = 1, seed=None, re: str = "conditional"):
        _not_here("simulate()")

    def scaled_residuals(self, nsim: int = 250, seed=None, re: str = "conditional"):
        _not_here("scaled_residuals()")


def build_dask_result(mf: ModelFrame, family, obj, opt, *, formula: str, optimizer: str, messages: list[str],
                      train, used: list[str], extra_info: dict) -> DaskGLMMResult:
    """Assemble the result at the optimum (results.build.build_result without per-row arrays)."""
    re = obj.re
    theta = np.asarray(opt.theta, dtype=float)
    beta = np.asarray(opt.beta, dtype=float)
    fe_names = list(mf.fe_names)
    p, nt, n = len(fe_names), re.ntheta, re.n
    messages = list(messages) + list(opt.messages)
    V = vcov_from_hessian(opt.hessian, nt)
    if V is None:
        V = _rx_inverse(obj.rx_at(theta, beta))
        messages.append("variance-covariance matrix computed from finite-difference Hessian is\n"
                        "not positive definite or contains NA values: falling back to var-cov estimated from RX")
    llf = -0.5 * opt.deviance
    df_model = p + nt
    b = re.u_to_b(theta, obj.u)
    ranef = group_frames(re, b)
    ranef_sd = group_frames(re, conditional_variances(re, obj.chol, theta, 1.0))
    vc = varcorr_frame(re, theta, 1.0, residual=False)
    singular = is_singular(re, theta)
    if singular:
        messages.insert(0, "boundary (singular) fit: see help('isSingular')")
    ngroups: dict[str, int] = {}
    for t in re.terms:
        ngroups.setdefault(t.group, t.nlevels)
    fields = dict(
        formula=formula, family=family,
        fe_params=pd.Series(beta, index=fe_names, name="fe_params"),
        fe_bse=pd.Series(np.sqrt(np.diag(V)), index=fe_names, name="fe_bse"),
        vcov=pd.DataFrame(V, index=fe_names, columns=fe_names),
        random_effects=ranef, random_effects_sd=ranef_sd,
        variance_components=variance_components(vc),
        varcorr=vc, theta=pd.Series(theta, index=_theta_names(re), name="theta"),
        llf=float(llf), aic=float(-2 * llf + 2 * df_model), bic=float(-2 * llf + np.log(n) * df_model),
        deviance=float(obj._dev), df_model=int(df_model), df_resid=int(n - df_model), nobs=int(n),
        ngroups=ngroups, scale=1.0,
        converged=bool(opt.converged) and not any(map(is_failure_message, messages)),
        singular=singular,
        optinfo={"optimizer": optimizer, "engine": "laplace-dask", "nfev": int(opt.nfev),
                 "ngev": int(opt.ngev), "pirls_iterations": int(obj.pirls_iters), "messages": messages,
                 "optimizer_message": opt.opt_message, "stage1": opt.stage1,
                 "gradient": None if opt.gradient is None else np.asarray(opt.gradient),
                 "hessian": None if opt.hessian is None else np.asarray(opt.hessian), **extra_info},
        nAGQ=int(extra_info.get("nAGQ", 1)), model_frame=mf, warnings=messages,
    )
    # what the workers get for predict: no objective (it holds the client), no per-row parts
    light = GLMMResult(fittedvalues=None, linear_predictor=None, objective=None, **fields)
    fitted = train.map_partitions(B.fitted_partition, light, used, "response",
                                  meta=pd.Series(dtype=float, name="fitted"))
    eta = train.map_partitions(B.fitted_partition, light, used, "link", meta=pd.Series(dtype=float, name="eta"))
    res = DaskGLMMResult(fittedvalues=fitted, linear_predictor=eta, objective=obj, **fields)
    res._light = light
    res._train = train
    res._used = used
    return res


def meta_model_frame(layout, spec, fe_names: list[str], dropped: list[str], messages: list[str]) -> ModelFrame:
    """A ModelFrame carrying the recipe (spec, terms, names) and no rows."""
    p = len(fe_names)
    side = {f"{b}_X": np.zeros((0, len(nm))) for b, nm in layout.side_names.items()}
    side.update({f"{b}_names": list(nm) for b, nm in layout.side_names.items()})
    return ModelFrame(y=np.zeros(0), X=np.zeros((0, p)), fe_names=fe_names, terms=layout.terms,
                      weights=np.zeros(0), offset=np.zeros(0), response_name=layout.cols.response,
                      formula=spec.formula, spec=copy.copy(spec), row_index=None, n_dropped=layout.n_dropped,
                      dropped_columns=dropped, messages=messages, **side)
