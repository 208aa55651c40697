"""GLMMResult: plain attributes holding labelled pandas objects (statsmodels
style) and a summary() that reads like lme4's summary(glmer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from interlace.results.lazy import install_lazy_fields, resolve_all


@dataclass
class GLMMResult:
    """A fitted generalized linear mixed model.

    Example
    -------
    >>> import interlace
    >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     interlace.datasets.load("cbpp"), family="binomial")
    >>> round(m.llf, 2)
    -92.03
    """

    formula: str
    family: Any
    fe_params: pd.Series
    fe_bse: pd.Series
    vcov: pd.DataFrame
    random_effects: dict[str, pd.DataFrame]
    random_effects_sd: dict[str, pd.DataFrame]
    variance_components: pd.Series
    varcorr: pd.DataFrame
    theta: pd.Series
    llf: float
    aic: float
    bic: float
    deviance: float
    df_model: int
    df_resid: int
    nobs: int
    ngroups: dict[str, int]
    scale: float
    fittedvalues: pd.Series
    linear_predictor: pd.Series
    converged: bool
    singular: bool
    optinfo: dict
    nAGQ: int = 1
    disp_params: pd.Series | None = None
    dispersion: np.ndarray | None = None
    zi_params: pd.Series | None = None
    family_params: dict = field(default_factory=dict)
    # standard errors of the dispersion / zero-inflation coefficients and all
    # auxiliary sub-models (glmmTMB families; None for exponential families)
    disp_bse: pd.Series | None = None
    zi_bse: pd.Series | None = None
    aux_params: dict = field(default_factory=dict)
    aux_bse: dict = field(default_factory=dict)
    model_frame: Any = None
    objective: Any = field(default=None, repr=False, compare=False)  # machinery: see the property below
    warnings: list[str] = field(default_factory=list)
    #: the engines that fitted it (``interlace.engines.Fitter``): refit, refit_ml and the
    #: objective go through it; None for a fit whose rows stay on a Dask cluster
    fitter: Any = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ data, not machinery
    def __getstate__(self) -> dict:
        """Pickle / deepcopy state: everything but the engine's objective (numba
        state, caches), which is rebuilt from the model frame on first use."""
        resolve_all(self)  # deferred pandas attributes are closures: build them before pickling
        state = dict(self.__dict__)
        state["_objective"] = None
        state.pop("_postfit_cache", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def refit(self, new_response) -> "GLMMResult":
        """The same model fitted to ``new_response`` (lme4's ``refit``), warm-started
        at this fit's parameters; ``new_response`` is on the model frame's scale
        (binomial: proportions of the same trials). Bootstrap and profile refit
        through here.

        Example
        -------
        >>> import interlace
        >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                     interlace.datasets.load("cbpp"), family="binomial")
        >>> abs(m.refit(m.model_frame.y).llf - m.llf) < 1e-6
        True
        """
        return self._fitter("refit").refit(self, new_response)

    def refit_ml(self) -> "GLMMResult":
        """The same linear mixed model fitted by maximum likelihood (lme4's ``refitML``);
        a fit that is not a REML fit is returned as it is."""
        if not self.optinfo.get("REML", False):
            return self
        return self._fitter("refit_ml").refit_ml(self)

    def _fitter(self, what: str):
        if self.fitter is None:
            raise NotImplementedError(f"{what} needs the model frame's rows and the engine that fitted them "
                                      "(a fit on a Dask frame keeps its rows on the cluster)")
        return self.fitter

    # ------------------------------------------------------------------ access
    @property
    def params(self) -> pd.Series:
        return self.fe_params

    @property
    def bse(self) -> pd.Series:
        return self.fe_bse

    def sigma(self) -> float:
        """glmmTMB's / lme4's ``sigma()``: the family's ``sigma`` where it names one (Gaussian
        SD, the t's scale, Gamma's coefficient of variation 1 / sqrt(shape)), else the
        exponentiated dispersion intercept (NB2 theta, NB1 / beta / Tweedie phi, as
        glmmTMB), else sqrt of the scale (lme4; 1 for binomial and Poisson).

        >>> import interlace
        >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                     interlace.datasets.load("cbpp"), family="binomial")
        >>> m.sigma()
        1.0
        """
        fp = self.family_params or {}
        if isinstance(fp.get("sigma"), (int, float)):
            return float(fp["sigma"])
        if self.disp_params is not None and "Intercept" in self.disp_params.index:
            return float(np.exp(self.disp_params["Intercept"]))
        return float(np.sqrt(self.scale))

    @property
    def fe_table(self) -> pd.DataFrame:
        """Fixed-effects table: Estimate, Std. Error, z value, Pr(>|z|) (t value for LMMs)."""
        from interlace.results.summary import fe_table

        return fe_table(self)

    @property
    def _is_lmm(self) -> bool:
        return self.optinfo.get("engine") == "lmm"

    # ------------------------------------------------------------------ predict
    def predict(self, newdata=None, type: str = "response", include_re: bool = True,
                allow_new_levels: bool = False, se_fit: bool = False, offset=None, *,
                re_form=None, random_only: bool = False):
        """Predictions as lme4's / glmmTMB's predict (see :func:`interlace.results.predict.predict`).

        ``type``: ``"response"``, ``"link"``, and for zero-inflated / hurdle
        families ``"conditional"`` and ``"zprob"``. ``re_form`` is lme4's
        ``re.form``: None (all random effects), ``"~0"`` / ``"NA"`` (population
        level; newdata then needs no grouping columns) or a formula naming
        some terms (``"~ (1 | Subject)"``); ``include_re=False`` = ``"~0"``.
        ``random_only=True`` gives the random-effects part alone. A missing
        predictor gives NaN for its row (na.pass); an unseen level of a
        grouping factor raises unless ``allow_new_levels=True`` (predicted at
        zero); an unseen fixed-effect level raises naming column and level.
        ``se_fit=True`` returns ``Prediction(fit, se_fit)`` with glmmTMB's
        joint standard errors (beta, theta and the conditional modes), on the
        scale of ``type``. Results are pandas Series indexed like ``newdata``
        or like the fitted rows.

        Example
        -------
        >>> import interlace
        >>> df = interlace.datasets.load("cbpp")
        >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                     df, family="binomial")
        >>> m.predict(df.head(2)[["period"]], type="link", re_form="~0").round(2).tolist()
        [-1.4, -2.39]
        """
        from interlace.results.predict import predict

        return predict(self, newdata=newdata, type=type, include_re=include_re,
                       allow_new_levels=allow_new_levels, se_fit=se_fit, offset=offset,
                       re_form=re_form, random_only=random_only)

    def fitted(self) -> pd.Series:
        """Fitted means on the user's row index (NaN at dropped rows for ``missing="exclude"``)."""
        from interlace.results.align import as_series

        return as_series(self, self.fittedvalues.to_numpy(dtype=float), "fitted")

    # ------------------------------------------------------------------ post-fit (delegating)
    def resid(self, type: str = "deviance") -> pd.Series:
        """Residuals as R's residuals(m, type=...): ``"deviance"`` (default, as
        for glmer), ``"pearson"``, ``"response"`` or ``"working"``, as a Series
        on the user's row index (NaN at dropped rows for ``missing="exclude"``).

        Example
        -------
        >>> import interlace
        >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                     interlace.datasets.load("cbpp"), family="binomial")
        >>> m.resid("response").shape
        (56,)
        """
        from interlace.results.align import as_series
        from interlace.results.residuals import resid

        return as_series(self, resid(self, type=type), "resid")

    def simulate(self, nsim: int = 1, seed=None, re: str = "conditional", progress: bool | None = None) -> np.ndarray:
        """(nsim, n) responses simulated from the fitted model (lme4's simulate):
        ``re="conditional"`` keeps the conditional modes (``use.u = TRUE``),
        ``"unconditional"`` draws new random effects. Binomial responses are
        proportions, on the scale of the model frame's y. Replicates are drawn
        in blocks of 1000 from one generator (the same draws with or without
        the ``progress`` bar).

        Example
        -------
        >>> import interlace
        >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                     interlace.datasets.load("cbpp"), family="binomial")
        >>> m.simulate(10, seed=1, re="unconditional").shape
        (10, 56)
        """
        from interlace.inference.progress import progress_bar
        from interlace.results.simulate import simulate

        nsim = int(nsim)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        block = 1000
        if nsim <= block:
            return simulate(self, nsim=nsim, seed=rng, re=re)
        out = []
        with progress_bar(nsim, "simulate", progress, unit="sim") as bar:
            for start in range(0, nsim, block):
                k = min(block, nsim - start)
                out.append(simulate(self, nsim=k, seed=rng, re=re))
                bar.update(k)
        return np.vstack(out)

    def scaled_residuals(self, nsim: int = 250, seed=None, re: str = "conditional"):
        """DHARMa-style randomized quantile residuals (uniform under a correct
        model) with ``test_uniformity()``, ``test_dispersion()`` and
        ``test_zero_inflation()``; ``re`` as in :meth:`simulate`.

        Example
        -------
        >>> import interlace
        >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                     interlace.datasets.load("cbpp"), family="binomial")
        >>> sr = m.scaled_residuals(nsim=100, seed=1)
        >>> 0 <= sr.test_dispersion().pvalue <= 1
        True
        """
        from interlace.results.residuals import scaled_residuals

        return scaled_residuals(self, nsim=nsim, seed=seed, re=re)

    def confint(self, parm=None, level: float = 0.95, method: str = "Wald", **kwargs) -> pd.DataFrame:
        """Confidence intervals like lme4's confint.merMod (Wald, profile, boot);
        profile and boot take ``n_jobs`` and ``progress``."""
        from interlace.inference.confint import confint

        return confint(self, parm=parm, level=level, method=method, **kwargs)

    def bootstrap(self, nsim: int, fn=None, seed=None, n_jobs: int = 1, **kwargs):
        """Parametric bootstrap (lme4's bootMer)."""
        from interlace.inference.bootstrap import bootstrap

        return bootstrap(self, nsim=nsim, fn=fn, seed=seed, n_jobs=n_jobs, **kwargs)

    def plot_caterpillar(self, **kwargs):
        """Caterpillar plot of the conditional modes (needs interlace[plot])."""
        from interlace.results.plots import caterpillar

        return caterpillar(self, **kwargs)

    def plot_residuals(self, **kwargs):
        """Residual diagnostic figure (needs interlace[plot])."""
        from interlace.results.plots import residual_figure

        return residual_figure(self, **kwargs)

    # ------------------------------------------------------------------ analysis toolbox (postfit)
    @property
    def tvalues(self) -> pd.Series:
        """Wald statistics of the fixed effects (statsmodels' name; z for GLMMs, t for LMMs)."""
        return (self.fe_params / self.fe_bse).rename("tvalues")

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided normal p-values of the fixed effects (as summary's Pr(>|z|))."""
        from interlace.inference.tidy import wald_pvalues

        return wald_pvalues(self)

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald intervals of the fixed effects, columns 0 and 1 (statsmodels' ``conf_int``)."""
        from interlace.inference.tidy import conf_int

        return conf_int(self, alpha=alpha)

    def emmeans(self, specs, by=None, at=None, type: str = "link", level: float = 0.95, **kwargs):
        """Estimated marginal means and contrasts (see :func:`interlace.inference.emmeans.emmeans`)."""
        from interlace.inference.emmeans import emmeans

        return emmeans(self, specs, by=by, at=at, type=type, level=level, **kwargs)

    def Anova(self, type: int | str = 2, test: str = "Chisq", **kwargs) -> pd.DataFrame:
        """car::Anova: Type II / III Wald chi-square tests of whole terms; ``test="F"`` for
        LMMs with Kenward-Roger / Satterthwaite df (see interlace.inference.car)."""
        from interlace.inference.car import Anova

        return Anova(self, type=type, test=test, **kwargs)

    def drop1(self, test: str = "Chisq") -> pd.DataFrame:
        """R's drop1: likelihood-ratio tests of dropping each droppable term (refits)."""
        from interlace.inference.car import drop1

        return drop1(self, test=test)

    def r2(self, **kwargs) -> pd.Series:
        """Nakagawa's marginal and conditional R2 (performance::r2_nakagawa)."""
        from interlace.inference.r2 import r2_nakagawa

        return r2_nakagawa(self, **kwargs)

    def icc(self, **kwargs) -> pd.Series:
        """Adjusted and unadjusted ICC (performance::icc)."""
        from interlace.inference.r2 import icc

        return icc(self, **kwargs)

    def tidy(self, effects: str = "fixed", conf_int: bool = False, conf_level: float = 0.95) -> pd.DataFrame:
        """broom.mixed's tidy(): one row per estimate (see interlace.inference.tidy)."""
        from interlace.inference.tidy import tidy

        return tidy(self, effects=effects, conf_int=conf_int, conf_level=conf_level)

    def glance(self) -> pd.DataFrame:
        """broom.mixed's glance(): one row of fit statistics."""
        from interlace.inference.tidy import glance

        return glance(self)

    def update(self, formula: str | None = None, data=None, **kwargs) -> "GLMMResult":
        """Refit with a changed formula (R's ``update``: ``"~ . - x"``, ``". ~ . + z"``)
        and/or other data or arguments (see interlace.inference.tidy.update)."""
        from interlace.inference.tidy import update

        return update(self, formula, data=data, **kwargs)

    # ------------------------------------------------------------------ summary
    def summary(self, ddf: str | None = None) -> "Summary":
        """The text of lme4's summary(glmer); ``str()`` it or show it in a notebook.
        For an ``interlace.lmer`` fit, lmerTest's: t-tests with ``ddf``
        "Satterthwaite" (default) or "Kenward-Roger" degrees of freedom.

        Example
        -------
        >>> import interlace
        >>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                     interlace.datasets.load("cbpp"), family="binomial")
        >>> "Random effects:" in str(m.summary())
        True
        """
        return Summary(self, ddf=ddf)

    def _repr_html_(self) -> str:
        """The notebook view: lme4's summary in one HTML table layout (results/html.py)."""
        return self.summary()._repr_html_()

    def __repr__(self) -> str:
        return f"<GLMMResult {self.formula!r} family={getattr(self.family, 'name', '?')} llf={self.llf:.4f}>"


def _get_objective(self):
    obj = self.__dict__.get("_objective")
    if obj is None and self.model_frame is not None and self.fitter is not None:
        obj = self.fitter.objective_at(self)
        self.__dict__["_objective"] = obj
    return obj


def _set_objective(self, obj) -> None:
    self.__dict__["_objective"] = obj


# The engine's objective at the optimum: kept from the fit, rebuilt from the model frame
# after unpickling (dataclass __init__ assigns through the setter).
GLMMResult.objective = property(_get_objective, _set_objective,
                                doc="The engine's objective at the optimum (rebuilt after unpickling).")

# The labelled pandas attributes are built on first access (results/lazy.py): a small
# fit spends more on pandas Index construction than on its numbers.
install_lazy_fields(GLMMResult, ("fe_params", "fe_bse", "vcov", "random_effects", "random_effects_sd",
                                 "variance_components", "varcorr", "theta", "fittedvalues",
                                 "linear_predictor"))

from interlace.results.summary import Summary  # noqa: E402  (re-exported; summary imports nothing from here)
