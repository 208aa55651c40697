"""interlace.glmer: a short composition of the pipeline stages
parse -> objective -> optimize -> result (lme4's glFormula -> mkGlmerDevfun ->
optimizeGlmer -> mkMerMod)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from interlace.engines import fit_frame, select_engine
from interlace.errors import ConvergenceWarning, FitError, SingularFitWarning, emit_warnings
from interlace.families import get_family
from interlace.model.covariance import term_covariance
from interlace.model_frame import build_model_frame
from interlace.threads import blas_single_thread
from interlace.validation import validate_fit_args

if TYPE_CHECKING:
    from interlace.results import GLMMResult

__all__ = ["glmer", "ConvergenceWarning", "SingularFitWarning", "FitError"]  # the warnings live in errors.py


def _is_lmm(fam, dispformula) -> bool:
    """True when ``fam`` (with ``dispformula``) is fitted by the profiled LMM engine."""
    return select_engine(fam, dispformula=dispformula) == "lmm"


def glmer(
    formula: str,
    data: Any,
    family: Any,
    groups: str | list[str] | None = None,
    random: list[str] | None = None,
    weights: Any = None,
    optimizer: str = "lbfgsb",
    theta0: np.ndarray | None = None,
    nAGQ: int = 1,
    offset: Any = None,
    dispformula: str | None = None,
    *,
    ziformula: str | None = None,
    missing: str = "drop",
    verbose: int | bool = 0,
    REML: bool = False,
) -> GLMMResult:
    """Fit a generalized linear mixed model (lme4's ``glmer``).

    Laplace approximation (``nAGQ=1``), adaptive Gauss-Hermite quadrature
    (``nAGQ > 1``, one grouping factor) or lme4's fast ``nAGQ=0``. The
    ``llf`` is always the full marginal log-likelihood (for ``nAGQ > 1`` it
    includes the saturated-model constant that lme4's ``logLik`` omits), so it is
    comparable across ``nAGQ`` values and with glmmTMB.

    ``missing``: rows with missing values are dropped (``"drop"``, lme4's
    na.omit), dropped but given back as NaN by ``fitted()``, ``resid()`` and
    ``predict()`` (``"exclude"``, na.exclude), or refused (``"raise"``).

    ``verbose`` (1 or True) reports the stages on stderr: the model frame's
    size, the engine and optimizer, and the optimum with its evaluations and time.

    ``family="gaussian"`` estimates the residual variance (as
    ``lmer(REML = FALSE)``); ``family="negativebinomial"`` estimates theta.

    ``REML=True`` is glmmTMB's ``REML = TRUE``: the fixed effects are integrated
    out with the random effects by the Laplace approximation (flat prior), every
    family on the general engine (Laplace only, no random effects in ``ziformula``
    / ``dispformula``). ``llf`` is glmmTMB's logLik of the REML fit (for the
    Gaussian LMM, lmer's REML logLik); see docs/lmm.md.

    Example
    -------
    >>> import interlace
    >>> df = interlace.datasets.load("cbpp")
    >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     df, family="binomial")
    >>> m.fe_params.round(2).tolist()
    [-1.4, -0.99, -1.13, -1.58]
    """
    from interlace.distributed.frames import is_dask_frame  # light: imports nothing from Dask

    if not isinstance(REML, (bool, np.bool_)):
        raise TypeError(f"REML must be True or False, got {REML!r}")
    if REML and int(nAGQ) != 1:
        raise ValueError(f"REML=True integrates the fixed effects out by the Laplace approximation: it needs "
                         f"nAGQ=1, got nAGQ={nAGQ}")
    if is_dask_frame(data):  # rows stay on the cluster: interlace/distributed
        if REML:
            raise ValueError("REML=True is not available for a Dask frame (fit an in-memory frame)")
        from interlace.distributed import glmer_dask

        return glmer_dask(formula, data, family, groups, random, weights, optimizer, theta0, nAGQ, offset,
                          dispformula, ziformula=ziformula, missing=missing)
    from interlace.objective.laplace import PIRLSError

    with blas_single_thread():
        try:
            return _glmer(formula, data, family, groups, random, weights, optimizer, theta0, nAGQ, offset,
                          dispformula, ziformula, missing, verbose, REML=bool(REML))
        except (np.linalg.LinAlgError, PIRLSError, FloatingPointError) as exc:
            raise FitError(
                f"the model could not be fitted: {exc}. Check for extreme responses or covariates and for "
                "separation, rescale covariates, or try another optimizer or theta0") from exc


def _glmer(formula, data, family, groups, random, weights, optimizer, theta0, nAGQ, offset,
           dispformula, ziformula, missing, verbose=0, REML=False):
    fam = get_family(family)
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be a string, got {type(optimizer).__name__}")
    optimizer = optimizer.lower()
    from interlace.results.align import MISSING, attach_row_labels

    if missing not in MISSING:
        raise ValueError(f"missing must be one of {', '.join(map(repr, MISSING))}, got {missing!r}")
    # "exclude" (lme4's na.exclude) drops the same rows; outputs are NaN-padded afterwards
    mf = build_model_frame(formula, data, family=fam, groups=groups, random=random, weights=weights,
                           offset=offset, dispformula=dispformula, ziformula=ziformula,
                           missing="drop" if missing == "exclude" else missing)
    ntheta = sum(term_covariance(t).nparams for t in mf.terms)
    validate_fit_args(optimizer=optimizer, theta0_len_expected=ntheta, theta0=theta0, nAGQ=nAGQ,
                      terms=mf.terms, dispformula=dispformula)
    nAGQ = int(nAGQ)
    if theta0 is not None:
        theta0 = np.asarray(theta0, dtype=float).reshape(-1)

    if verbose:
        from interlace.results.align import report_frame

        t_fit = report_frame(mf, fam, optimizer, nAGQ)
    engine = select_engine(fam, dispformula=dispformula, ziformula=ziformula, nAGQ=nAGQ)
    if REML:  # glmmTMB's REML: the general engine integrates beta out (general/reml.py)
        if engine not in ("general", "lmm", "laplace") or not mf.terms:
            raise ValueError(f"REML=True is not available for the {getattr(fam, 'name', family)!r} family "
                             "(or a model without random effects)")
        engine = "general"
    res = fit_frame(mf, fam, engine=engine, optimizer=optimizer, theta0=theta0, nAGQ=nAGQ, formula=formula,
                    reml=REML)
    attach_row_labels(res, data, missing, call=dict(
        __fit__=glmer, formula=formula, data=data, family=family, groups=groups, random=random, weights=weights,
        optimizer=optimizer, theta0=theta0, nAGQ=nAGQ, offset=offset, dispformula=dispformula,
        ziformula=ziformula, missing=missing, REML=REML))
    if verbose:
        from interlace.results.align import report_fit

        report_fit(res, t_fit)
    emit_warnings(res, stacklevel=4)
    return res
