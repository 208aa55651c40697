"""interlace.lmer: linear mixed models as lme4's lmer (REML by default).

parse -> LMMObjective (profiled REML or ML deviance, exact gradient in theta)
-> optimize_lmm -> build_result. ``interlace.fit`` is the same function (the
name the seed API gives the LMM entry point).
"""

from __future__ import annotations

from typing import Any

import narwhals as nw
import numpy as np

from interlace.distributed.frames import is_dask_frame
from interlace.engines import fit_lmm, is_reml, refit_ml
from interlace.errors import FitError, emit_warnings
from interlace.families import get_family
from interlace.model_frame import build_model_frame
from interlace.objective.laplace import PIRLSError
from interlace.results.align import MISSING, attach_row_labels
from interlace.threads import blas_single_thread
from interlace.validation import validate_fit_args

__all__ = ["lmer", "fit", "fit_lmm", "refit_ml", "is_reml"]


def lmer(
    formula: str,
    data: Any,
    REML: bool = True,
    weights: Any = None,
    offset: Any = None,
    *,
    groups: str | list[str] | None = None,
    random: list[str] | None = None,
    optimizer: str = "lbfgsb",
    theta0: np.ndarray | None = None,
    missing: str = "drop",
):
    """Fit a linear mixed model by REML (default) or maximum likelihood, as
    lme4's ``lmer(formula, data, REML = TRUE, weights, offset)``.

    The result is a :class:`~interlace.results.GLMMResult` whose ``llf`` is
    the REML log-likelihood for a REML fit (lme4's ``logLik``), ``aic`` /
    ``bic`` are computed from it, ``scale`` is sigma^2 and
    ``optinfo["REML"]`` records the criterion; ``summary()`` adds lmerTest's
    Satterthwaite degrees of freedom and p-values
    (``summary(ddf="Kenward-Roger")`` for pbkrtest's method). ``REML=False``
    gives the same fit as ``glmer(..., family="gaussian")``.

    ``weights`` are lme4's precision weights (residual variance sigma^2 / w),
    ``offset`` a known term added to the linear predictor; both accept an
    array or a column name. Random effects take every form glmer takes:
    ``(1 | g)``, ``(x | g)``, ``(x || g)``, crossed and nested (``a/b``).

    Example
    -------
    >>> import interlace
    >>> m = interlace.lmer("Reaction ~ Days + (Days | Subject)", interlace.datasets.load("sleepstudy"))
    >>> round(-2 * m.llf, 2)  # lme4: REML criterion at convergence: 1743.6
    1743.63
    >>> m.fe_params.round(3).tolist()
    [251.405, 10.467]
    """
    if is_dask_frame(data):
        raise NotImplementedError("lmer does not take Dask frames yet; glmer(..., family='gaussian') fits the "
                                  "same model by ML on a cluster")
    if not isinstance(REML, (bool, np.bool_)):
        raise TypeError(f"REML must be True or False, got {REML!r}")
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be a string, got {type(optimizer).__name__}")
    optimizer = optimizer.lower()
    fam = get_family("gaussian")

    if missing not in MISSING:
        raise ValueError(f"missing must be one of {', '.join(map(repr, MISSING))}, got {missing!r}")
    call = dict(__fit__=lmer, formula=formula, data=data, REML=REML, weights=weights, offset=offset,
                groups=groups, random=random, optimizer=optimizer, theta0=theta0, missing=missing)
    if isinstance(weights, str):
        weights = _column(data, weights, "weights")
    if isinstance(offset, str):
        offset = _column(data, offset, "offset")
    with blas_single_thread():
        mf = build_model_frame(formula, data, family=fam, groups=groups, random=random, weights=weights,
                               offset=offset, missing="drop" if missing == "exclude" else missing)
        if not mf.terms:  # R's lmer: "No random effects terms specified in formula"
            raise ValueError("no random-effect terms: lmer needs (1 | g) in the formula; "
                             "glmer(formula, data, family='gaussian') fits the linear model without them")
        ntheta = sum(t.k * (t.k + 1) // 2 for t in mf.terms)
        validate_fit_args(optimizer=optimizer, theta0_len_expected=ntheta, theta0=theta0, nAGQ=1,
                          terms=mf.terms, dispformula=None)
        if theta0 is not None:
            theta0 = np.asarray(theta0, dtype=float)
        try:
            res = fit_lmm(mf, reml=bool(REML), optimizer=optimizer, theta0=theta0, formula=formula,
                          messages=mf.messages)
        except (np.linalg.LinAlgError, PIRLSError, FloatingPointError) as exc:
            raise FitError(f"the model could not be fitted: {exc}. Check for extreme responses or covariates, "
                           "rescale covariates, or try another optimizer or theta0") from exc
    attach_row_labels(res, data, missing, call=call)  # user's row labels, emmeans grid, update()
    emit_warnings(res, stacklevel=3)
    return res


fit = lmer


def _column(data: Any, name: str, what: str) -> np.ndarray:

    frame = nw.from_native(data, eager_only=True)
    if name not in frame.columns:
        raise ValueError(f"{what}={name!r} is not a column of data")
    return frame[name].to_numpy()
