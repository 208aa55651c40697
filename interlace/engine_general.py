"""Entry point of the general-likelihood Laplace engine (glmmTMB's model).

``glmer`` sends here every family that supplies its own log-likelihood
derivatives (:class:`interlace.families.likelihood.LikelihoodFamily`: NB2,
NB1, Beta, ZIP, ZINB, hurdle Poisson, ZOIB, plugins), the Gamma family (shape
estimated by maximum likelihood) and any model with a ``dispformula``
(Gaussian: phi_i = exp(X_d delta) is the residual variance).

Example
-------
>>> import interlace
>>> df = interlace.datasets.load("sleepstudy")
>>> m = interlace.glmer("Reaction ~ Days + (1 | Subject)", df, family="gaussian", dispformula="~ Days")
>>> list(m.disp_params.index)
['Intercept', 'Days']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interlace.families.likelihood import LikelihoodFamily
from interlace.model_frame import ModelFrame

__all__ = ["fit_general", "as_likelihood_family", "general_objective"]


def as_likelihood_family(fam: Any, zero_inflated: bool = False) -> Any:
    """The general-engine version of ``fam`` (exponential families with an
    estimated dispersion are translated: gaussian -> sigma^2 model, gamma ->
    shape model). Raises ValueError for families it cannot handle.

    >>> from interlace.families import GammaFamily
    >>> type(as_likelihood_family(GammaFamily(link="log"))).__name__
    'GammaShapeFamily'
    """
    name = getattr(fam, "name", None)
    if zero_inflated and "zi" not in getattr(fam, "aux_blocks", ()):
        # glmmTMB's family + ziformula: the family's own zero-inflated version where it
        # has one (Poisson -> ZIP, NB2 -> ZINB), else the generic zero inflation of its density
        zi_hook = getattr(fam, "zero_inflated_family", None)
        zi = zi_hook() if callable(zi_hook) else None
        if zi is not None:
            return zi
        from interlace.families.zi import ZeroInflatedFamily

        hook = getattr(fam, "likelihood_family", None)
        base = hook() if callable(hook) else as_likelihood_family(fam, zero_inflated=False)
        own = [type(base).parts is not LikelihoodFamily.parts, type(base).parts_w is not LikelihoodFamily.parts_w]
        if not isinstance(base, LikelihoodFamily) or not any(own):
            raise ValueError(f"ziformula is not available for the {name!r} family (its log density has no "
                             "parts() to zero-inflate)")
        return ZeroInflatedFamily(base)
    if hasattr(fam, "derivs") and hasattr(fam, "aux_blocks"):
        return fam
    hook = getattr(fam, "dispersion_family", None)
    lf = hook() if callable(hook) else None
    if lf is not None:  # a family with a dispersion: its ML version (gaussian sigma^2, gamma shape, IG phi)
        return lf
    raise ValueError(f"the {name!r} family has no dispersion parameter to model: dispformula is not "
                     "available for it (use negativebinomial, nbinom1, gamma, inverse_gaussian, beta or gaussian)")


def general_objective(mf: ModelFrame, lf: Any):
    """The general engine's objective: random effects in the conditional model only
    (:class:`GeneralObjective`, the blocked kernels), or also in ``ziformula`` /
    ``dispformula`` (:class:`MultiObjective`, the joint Laplace approximation)."""
    from interlace.general.multi import MultiObjective, has_side_random_effects
    from interlace.general.objective import GeneralObjective

    return MultiObjective(mf, lf) if has_side_random_effects(mf) else GeneralObjective(mf, lf)


def fit_general(mf: ModelFrame, fam: Any, *, optimizer: str = "lbfgsb", theta0: np.ndarray | None = None,
                nAGQ: int = 1, formula: str = "", reml: bool = False, **_ignored: Any):
    """Fit ``mf`` with the general-likelihood Laplace engine; returns a GLMMResult.
    ``reml=True``: glmmTMB's REML (beta integrated out by Laplace, general/reml.py)."""
    from interlace.general.optimize import optimize_general
    from interlace.general.result import build_general_result

    if int(nAGQ) != 1:
        what = "dispformula" if mf.disp_X is not None else f"the {getattr(fam, 'name', '?')} family"
        raise ValueError(f"{what} is fitted by the Laplace approximation only (nAGQ = 1), got nAGQ = {nAGQ}")
    lf = reml_likelihood_family(fam, mf) if reml else as_likelihood_family(fam, zero_inflated=mf.zi_X is not None)
    obj = general_objective(mf, lf)
    if reml:
        return _fit_reml(mf, fam, lf, obj, optimizer, formula)
    opt = optimize_general(obj, optimizer, theta0)
    side_re = type(obj).__name__ == "MultiObjective"
    if not side_re and (not opt.converged or opt.hessian is None or not np.all(np.isfinite(opt.hessian))):
        # a covariate decades from unit scale (x * 1000): the exactly equivalent
        # model on rescaled columns, kept when it reaches a better optimum (rescale.py)
        from interlace.rescale import column_scales, refit_general_rescaled, response_scale

        scales, yscale = column_scales(mf), response_scale(mf, fam)
        alt = (refit_general_rescaled(mf, lf, optimizer, theta0, scales, yscale)
               if scales is not None or yscale is not None else None)
        if alt is not None and (alt[1].deviance < opt.deviance - 1e-8 * abs(opt.deviance)
                                or not np.isfinite(opt.deviance)):
            obj, opt = alt
            opt.messages.append("covariates or the response on very different scales were rescaled internally "
                                "for the optimization; estimates are reported on the original scale")
    if not np.isfinite(opt.deviance):
        raise RuntimeError(f"the {lf.name} model has no finite Laplace log-likelihood at the optimizer's "
                           "final point (check the link and the starting values)")
    return build_general_result(mf, lf, obj, opt, formula=formula or mf.formula, optimizer=optimizer,
                                user_family=fam)


def reml_likelihood_family(fam: Any, mf: ModelFrame) -> Any:
    """The general-engine family that REML=True fits: as :func:`as_likelihood_family`, and for
    families without a dispersion (poisson, binomial) their log-likelihood as a general family."""
    try:
        return as_likelihood_family(fam, zero_inflated=mf.zi_X is not None)
    except ValueError:
        hook = getattr(fam, "likelihood_family", None)
        if mf.disp_X is None and mf.zi_X is None and callable(hook):
            return hook()
        raise


def _fit_reml(mf: ModelFrame, fam: Any, lf: Any, obj: Any, optimizer: str, formula: str):
    from interlace.general.objective import GeneralObjective
    from interlace.general.reml import optimize_reml
    from interlace.general.result import build_general_result

    if not isinstance(obj, GeneralObjective):
        raise ValueError("REML=True is not available with random effects in ziformula / dispformula")
    if optimizer != "lbfgsb":
        raise ValueError(f"REML=True uses its own optimizer (L-BFGS-B then Newton); got optimizer={optimizer!r}")
    opt = optimize_reml(obj)
    if not np.isfinite(opt.deviance):
        raise RuntimeError(f"the {lf.name} model has no finite REML criterion at the optimizer's final point")
    res = build_general_result(mf, lf, obj, opt, formula=formula or mf.formula, optimizer="lbfgsb",
                               user_family=fam)
    res.optinfo["REML"] = True
    res.df_resid = int(mf.n - (obj.k - obj.p))  # glmmTMB: nobs - the outer (non-random) parameters
    return res
