"""Which engine fits a model, and the one path that fits (or refits) a parsed model frame.

``glmer`` parses the formula into a :class:`~interlace.model_frame.ModelFrame`, asks
:func:`select_engine` which engine fits it and calls :func:`fit_frame`. Inference that
needs the model again (parametric bootstrap, profiles) never imports an engine: it calls
:func:`refit` (lme4's ``refit.merMod``: the same model, a new response, warm-started at the
fitted parameters) or :func:`objective_at` (the engine's objective, rebuilt from the data
the result holds and evaluated at its optimum). A :class:`GLMMResult` therefore holds data
only and pickles; its objective is rebuilt on first use after unpickling.

Engines:

- ``"lmm"``: the profiled Gaussian identity-link deviance (lme4's lmer, ML).
- ``"laplace"`` / ``"agq"``: exponential families, lme4's glmer (two-stage optimization).
- ``"general"``: families with their own likelihood derivatives, Gamma with its shape by
  maximum likelihood and any dispersion / zero-inflation model (glmmTMB's model).
- ``"custom"``: a family that brings its own ``fit_engine``.

Example
-------
>>> import interlace
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                     interlace.datasets.load("cbpp"), family="binomial")
>>> r = refit(m, m.model_frame.y)
>>> abs(r.llf - m.llf) < 1e-6
True
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from interlace.engine_general import fit_general, general_objective
from interlace.model_frame import ModelFrame
from interlace.objective.agq import AGQObjective
from interlace.objective.laplace import LaplaceObjective, PIRLSError
from interlace.objective.lmm import LMMObjective
from interlace.optimize import optimize_glmm, optimize_lmm
from interlace.rescale import column_scales, fit_rescaled
from interlace.results.build import build_result
from interlace.validation import guard_result

__all__ = ["select_engine", "fit_frame", "refit", "objective_at", "IN_MEMORY_ENGINES"]

IN_MEMORY_ENGINES = ("lmm", "laplace", "agq", "general")


def select_engine(fam: Any, *, dispformula: str | None = None, ziformula: str | None = None,
                  nAGQ: int = 1) -> str:
    """The engine that fits ``fam`` with these side models (see the module docstring).

    >>> from interlace.families import get_family
    >>> select_engine(get_family("poisson")), select_engine(get_family("poisson"), nAGQ=5)
    ('laplace', 'agq')
    """
    kind = getattr(fam, "engine", None)  # the family says which engine fits it alone
    if kind is None:
        hook = getattr(fam, "dispersion_family", None)  # a duck-typed family with a dispersion to estimate
        if getattr(fam, "fit_engine", None) is not None:
            kind = "custom"
        else:
            kind = "general" if callable(hook) and hook() is not None else "laplace"
    simple_disp = dispformula is None or dispformula.replace(" ", "") == "~1"
    if kind == "lmm":
        return "lmm" if simple_disp else "general"
    if kind == "laplace" and (dispformula is not None or ziformula is not None):
        return "general"
    if kind != "laplace":
        return kind
    return "agq" if int(nAGQ) > 1 else "laplace"


def fit_frame(mf: ModelFrame, fam: Any, *, engine: str, optimizer: str = "lbfgsb",
              theta0: np.ndarray | None = None, beta0: np.ndarray | None = None, nAGQ: int = 1,
              formula: str = "", reml: bool = False):
    """Fit a parsed model frame with ``engine``; returns a GLMMResult.

    ``beta0`` (with ``theta0``) warm-starts the Laplace engines at a known
    (theta, beta): lme4's stage 1, which only finds a start, is skipped.
    """
    formula = formula or mf.formula
    if not mf.terms and (mf.zi_terms or mf.disp_terms):
        raise ValueError("random effects in ziformula / dispformula need random effects in the conditional "
                         "formula too (glmmTMB fits that model; interlace does not yet): add a term such as "
                         "(1 | group) to the formula")
    if not mf.terms:  # no random-effect term: a GLM (R's glm, or glmmTMB's fit without random effects)
        from interlace.glm import fit_glm

        return _guarded(fit_glm(mf, fam, formula=formula, optimizer=optimizer))
    if engine == "custom":
        return _guarded(fam.fit_engine(mf, fam, optimizer=optimizer, theta0=theta0, nAGQ=nAGQ, formula=formula))
    if engine == "general":
        return _guarded(fit_general(mf, fam, optimizer=optimizer, theta0=theta0, nAGQ=nAGQ, formula=formula,
                                    reml=reml))
    if engine == "lmm":
        if int(nAGQ) > 1:
            raise ValueError("nAGQ > 1 is not defined for the Gaussian identity model (its likelihood is exact)")
        obj = LMMObjective(mf, reml=True) if reml else LMMObjective(mf)
        opt = optimize_lmm(obj, optimizer, theta0)
        res = build_result(mf, fam, obj, opt, nAGQ=1, engine="lmm", formula=formula, optimizer=optimizer,
                           extra_messages=mf.messages)
        if reml:
            res.optinfo["REML"] = True
        return _guarded(res)
    obj = LaplaceObjective(mf, fam)
    agq = AGQObjective(obj, nAGQ) if engine == "agq" else None
    extra = list(mf.messages)
    try:
        opt = optimize_glmm(obj, optimizer, theta0, nAGQ, agq=agq, beta0=beta0)
    except (np.linalg.LinAlgError, PIRLSError, FloatingPointError):
        # a covariate on a scale of thousands can break the factorization near
        # the start; lme4 warns and fits: fit the exactly equivalent model on
        # rescaled columns (interlace/rescale.py)
        scales = column_scales(mf) if agq is None else None
        if scales is None:
            raise
        obj, opt, msg = fit_rescaled(mf, fam, optimizer, theta0, nAGQ, scales)
        extra.append(msg)
    res = build_result(mf, fam, obj, opt, nAGQ=nAGQ, engine=engine, formula=formula, optimizer=optimizer,
                       extra_messages=extra)
    if agq is not None:
        agq.finalize(res, opt)
    return _guarded(res)


def _guarded(res):
    guard_result(res)  # never converged=True with non-finite estimates or SEs
    return res


def _engine_of(result) -> str:
    engine = result.optinfo.get("engine", "laplace")
    if engine not in IN_MEMORY_ENGINES and getattr(result.family, "fit_engine", None) is not None:
        return "custom"
    return engine


def refit(result, y, *, optimizer: str | None = None):
    """The fitted model on a new response ``y`` (lme4's ``refit``), warm-started at
    the fitted parameters; every other part of the model frame is reused.

    ``y`` is on the model frame's scale (binomial: proportions of the same trials).
    """
    mf = result.model_frame
    if mf is None or mf.n == 0:
        raise NotImplementedError("refit needs the model frame's rows (a fit on a Dask frame keeps them "
                                  "on the cluster)")
    y = np.ascontiguousarray(np.asarray(y, dtype=np.float64).reshape(-1))
    if y.shape[0] != mf.n:
        raise ValueError(f"refit: the new response has {y.shape[0]} values, the model frame {mf.n} rows")
    engine = _engine_of(result)
    fam = result.optinfo.get("engine_family") or result.family
    theta = result.theta.to_numpy(dtype=float)
    beta = result.fe_params.to_numpy(dtype=float) if engine in ("laplace", "agq") else None
    res = fit_frame(dataclasses.replace(mf, y=y), fam, engine=engine,
                    optimizer=optimizer or result.optinfo.get("optimizer", "lbfgsb"),
                    theta0=theta, beta0=beta, nAGQ=int(result.nAGQ), formula=result.formula,
                    reml=bool(result.optinfo.get("REML", False)))
    if "REML" in result.optinfo:  # an lmer fit stays one (REML or ML, as fitted)
        res.optinfo["REML"] = bool(result.optinfo["REML"])
    return res


def objective_at(result):
    """The engine's objective for ``result``, rebuilt from its model frame and
    left at the fitted parameters (its state -- modes, factor -- is the optimum's).
    None when the fit has no in-memory objective (Dask, a custom engine)."""
    engine = result.optinfo.get("engine")
    mf = result.model_frame
    if engine not in IN_MEMORY_ENGINES or mf is None or mf.n == 0:
        return None
    theta = result.theta.to_numpy(dtype=float)
    if engine == "lmm":
        obj = LMMObjective(mf, reml=True) if result.optinfo.get("REML") else LMMObjective(mf)
        obj.deviance(theta)
        return obj
    if engine == "general":
        obj = general_objective(mf, result.optinfo.get("engine_family") or result.family)
        obj.deviance(np.asarray(result.optinfo["x"], dtype=float))
        return obj
    obj = LaplaceObjective(mf, result.family)
    obj.deviance(theta, result.fe_params.to_numpy(dtype=float))
    return obj
