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

from interlace.collapse import collapse_rows
from interlace.engine_general import fit_general, general_objective
from interlace.families import get_family
from interlace.glm import fit_glm
from interlace.model_frame import ModelFrame
from interlace.objective.agq import AGQObjective
from interlace.objective.laplace import LaplaceObjective, PIRLSError
from interlace.objective.lmm import LMMObjective
from interlace.optimize import optimize_glmm, optimize_lmm
from interlace.optimize.checks import is_failure_message
from interlace.rescale import column_scales, fit_rescaled
from interlace.results.build import build_result
from interlace.validation import guard_result

__all__ = ["select_engine", "fit_frame", "fit_lmm", "refit", "Refitter", "refit_ml", "is_reml", "objective_at",
           "Fitter", "FITTER", "IN_MEMORY_ENGINES"]

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
    if not mf.terms and not (mf.zi_terms or mf.disp_terms):
        # no random-effect term anywhere: a GLM (R's glm, or glmmTMB's fit without random effects);
        # random effects in ziformula / dispformula only go to the general engine's joint Laplace
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
    # identical rows (discrete covariates) summed into weighted unique rows: the row
    # passes then cost the unique rows, and the fit is evaluated once on every row
    coll = collapse_rows(mf, fam) if engine == "laplace" else None
    obj = LaplaceObjective(mf if coll is None else coll.frame, fam)
    agq = AGQObjective(obj, nAGQ) if engine == "agq" else None
    extra = list(mf.messages)
    try:
        opt = optimize_glmm(obj, optimizer, theta0, nAGQ, agq=agq, beta0=beta0)
        if coll is not None:
            obj, opt = coll.expand(obj, opt, mf, fam)
    except (np.linalg.LinAlgError, PIRLSError, FloatingPointError):
        coll = None
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
    if coll is not None:
        res.optinfo["collapsed_rows"] = coll.frame.n
    return _guarded(res)


def _guarded(res):
    guard_result(res)  # never converged=True with non-finite estimates or SEs
    res.fitter = FITTER
    return res


def fit_lmm(mf: ModelFrame, *, reml: bool, optimizer: str = "lbfgsb", theta0: np.ndarray | None = None,
            formula: str = "", messages: list[str] | None = None):
    """Fit an LMM on a built model frame (the stages lmer composes; anova's ML
    refit and ranova's reduced models call this on modified frames)."""
    obj = LMMObjective(mf, reml=reml)
    opt = optimize_lmm(obj, optimizer, theta0)
    res = build_result(mf, get_family("gaussian"), obj, opt, nAGQ=1, engine="lmm", formula=formula,
                       optimizer=optimizer, extra_messages=messages)
    res.optinfo["REML"] = bool(reml)
    res.fitter = FITTER
    return res


def is_reml(result) -> bool:
    """True for a linear mixed model fitted by REML."""
    return bool(result.optinfo.get("REML", False)) and result.optinfo.get("engine") == "lmm"


def refit_ml(result):
    """The same LMM fitted by maximum likelihood (lme4's refitML); an ML fit is returned as is."""
    if not is_reml(result):
        return result
    return fit_lmm(result.model_frame, reml=False, optimizer=result.optinfo.get("optimizer", "lbfgsb"),
                   theta0=result.theta.to_numpy(dtype=float), formula=result.formula)


def _engine_of(result) -> str:
    engine = result.optinfo.get("engine", "laplace")
    if engine not in IN_MEMORY_ENGINES and getattr(result.family, "fit_engine", None) is not None:
        return "custom"
    return engine


def _refit_args(result, y, optimizer: str | None):
    """(model frame, y as a float vector, engine, family, theta0, beta0, optimizer) of a refit."""
    mf = result.model_frame
    if mf is None or mf.n == 0:
        raise NotImplementedError("refit needs the model frame's rows (a fit on a Dask frame keeps them "
                                  "on the cluster)")
    y = np.ascontiguousarray(np.asarray(y, dtype=np.float64).reshape(-1))
    if y.shape[0] != mf.n:
        raise ValueError(f"refit: the new response has {y.shape[0]} values, the model frame {mf.n} rows")
    engine = _engine_of(result)
    fam = result.optinfo.get("engine_family") or result.family
    return mf, y, engine, fam, optimizer or result.optinfo.get("optimizer", "lbfgsb")


def refit(result, y, *, optimizer: str | None = None):
    """The fitted model on a new response ``y`` (lme4's ``refit``), warm-started at
    the fitted parameters; every other part of the model frame is reused.

    ``y`` is on the model frame's scale (binomial: proportions of the same trials).
    """
    mf, y, engine, fam, optimizer = _refit_args(result, y, optimizer)
    theta = result.theta.to_numpy(dtype=float)
    beta = result.fe_params.to_numpy(dtype=float) if engine in ("laplace", "agq") else None
    res = fit_frame(dataclasses.replace(mf, y=y), fam, engine=engine,
                    optimizer=optimizer,
                    theta0=theta, beta0=beta, nAGQ=int(result.nAGQ), formula=result.formula,
                    reml=bool(result.optinfo.get("REML", False)))
    if "REML" in result.optinfo:  # an lmer fit stays one (REML or ML, as fitted)
        res.optinfo["REML"] = bool(result.optinfo["REML"])
    return res


class Refitter:
    """Many refits of one fitted model on new responses (bootstrap, simulation):
    lme4's ``refit.merMod`` repeated, with the parsed model frame, the objective's
    buffers (Z Lambda, the factor's blocks, the response's vectors) and the warm
    start (theta, beta of the fit) built once.

    :meth:`fit` returns the full GLMMResult, as :func:`refit` does;
    :meth:`estimates` only the numbers a bootstrap's default statistic needs
    (beta, theta, converged, messages), without building a result. Both give the
    numbers :func:`refit` gives: the reused objective is put back in a fresh
    objective's state before each fit (``LaplaceObjective.set_response``). Engines
    other than the one-stage-Laplace path, and any refit that raises, go through
    :func:`refit` itself.

    >>> import interlace
    >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     interlace.datasets.load("cbpp"), family="binomial")
    >>> rf = Refitter(m)
    >>> beta, theta, ok, msgs = rf.estimates(m.model_frame.y)
    >>> bool(abs(beta[0] - m.fe_params.iloc[0]) < 1e-6)
    True
    """

    def __init__(self, result, optimizer: str | None = None) -> None:
        self.result = result
        self.optimizer = optimizer
        mf, _y, engine, fam, opt_name = _refit_args(result, result.model_frame.y, optimizer)
        self.mf, self.engine, self.family, self.opt_name = mf, engine, fam, opt_name
        # the fast path: the Laplace engine (nAGQ = 1) with nothing fitted besides
        # theta and beta; everything else refits through fit_frame
        self.fast = (engine == "laplace" and int(result.nAGQ) == 1 and not result.optinfo.get("REML")
                     and bool(mf.terms) and not mf.zi_terms and not mf.disp_terms
                     and collapse_rows(mf, fam) is None)  # a collapsed fit refits through fit_frame
        self.theta0 = result.theta.to_numpy(dtype=float)
        self.beta0 = result.fe_params.to_numpy(dtype=float)
        self._obj: LaplaceObjective | None = None

    def _objective(self, y: np.ndarray) -> LaplaceObjective:
        if self._obj is None:
            self._obj = LaplaceObjective(self.mf, self.family)
        self._obj.set_response(y)
        return self._obj

    def _optimize(self, y: np.ndarray):
        """(objective, OptResult) as fit_frame's Laplace path computes them; None
        when that path raises (fit_frame then handles it: rescaling, or the error)."""
        obj = self._objective(y)
        try:
            return obj, optimize_glmm(obj, self.opt_name, self.theta0, 1, agq=None, beta0=self.beta0)
        except (np.linalg.LinAlgError, PIRLSError, FloatingPointError):
            return None

    def fit(self, y):
        """The refitted GLMMResult (what :func:`refit` returns)."""
        if not self.fast:
            return refit(self.result, y, optimizer=self.optimizer)
        y = np.ascontiguousarray(np.asarray(y, dtype=np.float64).reshape(-1))
        out = self._optimize(y)
        if out is None:
            return refit(self.result, y, optimizer=self.optimizer)
        obj, opt = out
        mf = dataclasses.replace(self.mf, y=y)
        res = build_result(mf, self.family, obj, opt, nAGQ=1, engine="laplace", formula=self.result.formula,
                           optimizer=self.opt_name, extra_messages=list(self.mf.messages))
        self._obj = None  # the result keeps this objective: the next refit builds its own
        return _guarded(res)

    def estimates(self, y) -> tuple[np.ndarray, np.ndarray, bool, list[str]]:
        """(beta, theta, converged, messages) of the refit on ``y``: the numbers and
        the verdict of :meth:`fit` (the same guard against non-finite estimates and
        standard errors), without assembling a result."""
        if not self.fast:
            res = self.fit(y)
            return (res.fe_params.to_numpy(dtype=float), res.theta.to_numpy(dtype=float), bool(res.converged),
                    list(res.optinfo.get("messages", [])))
        y = np.ascontiguousarray(np.asarray(y, dtype=np.float64).reshape(-1))
        out = self._optimize(y)
        if out is None:
            return self.estimates_from(refit(self.result, y, optimizer=self.optimizer))
        obj, opt = out
        from interlace.results.build import vcov_from_hessian

        V = vcov_from_hessian(opt.hessian, obj.re.ntheta)
        if V is None:  # build_result's fallback (and its message): the full path
            res = build_result(dataclasses.replace(self.mf, y=y), self.family, obj, opt, nAGQ=1,
                               engine="laplace", formula=self.result.formula, optimizer=self.opt_name,
                               extra_messages=list(self.mf.messages))
            return self.estimates_from(_guarded(res))
        messages = list(self.mf.messages) + list(opt.messages)
        converged = bool(opt.converged) and not any(map(is_failure_message, messages))
        beta, theta = np.asarray(opt.beta, dtype=float), np.asarray(opt.theta, dtype=float)
        if not (np.all(np.isfinite(beta)) and np.all(np.isfinite(theta)) and np.all(np.isfinite(np.diag(V)))
                and np.all(np.diag(V) >= 0)):
            res = build_result(dataclasses.replace(self.mf, y=y), self.family, obj, opt, nAGQ=1,
                               engine="laplace", formula=self.result.formula, optimizer=self.opt_name,
                               extra_messages=list(self.mf.messages))
            return self.estimates_from(_guarded(res))
        return beta.copy(), theta.copy(), converged, messages

    @staticmethod
    def estimates_from(res) -> tuple[np.ndarray, np.ndarray, bool, list[str]]:
        return (res.fe_params.to_numpy(dtype=float), res.theta.to_numpy(dtype=float), bool(res.converged),
                list(res.optinfo.get("messages", [])))


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


@dataclasses.dataclass(frozen=True)
class Fitter:
    """The engines, as a value a result holds (``GLMMResult.fitter``).

    Results and inference refit through it -- lme4's ``refit.merMod`` and
    ``refitML``, the objective at the optimum, an LMM on a modified frame --
    and so never import an engine: the engines build results, results do not
    build engines. It has no state and pickles by reference to this class.

    Example
    -------
    >>> import pickle
    >>> pickle.loads(pickle.dumps(FITTER)) == FITTER
    True
    """

    def refit(self, result, y, *, optimizer: str | None = None):
        """See :func:`refit`."""
        return refit(result, y, optimizer=optimizer)

    def refit_ml(self, result):
        """See :func:`refit_ml`."""
        return refit_ml(result)

    def objective_at(self, result):
        """See :func:`objective_at`."""
        return objective_at(result)

    def fit_lmm(self, mf: ModelFrame, **kw: Any):
        """See :func:`fit_lmm`."""
        return fit_lmm(mf, **kw)

    def refitter(self, result, optimizer: str | None = None) -> "Refitter":
        """See :class:`Refitter` (many refits of one model: bootstrap)."""
        return Refitter(result, optimizer)


FITTER = Fitter()
