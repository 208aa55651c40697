"""Residuals: R's residuals(m, type = ...) and DHARMa's simulation-based
scaled (randomized quantile) residuals with its dispersion and
zero-inflation tests.

Example
-------
>>> import interlace
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                     interlace.datasets.load("cbpp"), family="binomial")
>>> m.resid("pearson").shape
(56,)
>>> sr = m.scaled_residuals(nsim=100, seed=1)
>>> bool(((sr.residuals >= 0) & (sr.residuals <= 1)).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

__all__ = ["resid", "scaled_residuals", "ScaledResiduals", "DHARMaTest"]

_TYPES = ("deviance", "pearson", "response", "working")


def _parts(result):
    """(y, E[y], mu of the conditional model, eta, prior weights, aux predictors)."""
    from interlace.results.predict import aux_predictors, response_mean

    mf = result.model_frame
    y = np.asarray(mf.y, dtype=float)
    eta = np.asarray(result.linear_predictor, dtype=float)
    mu = np.asarray(result.family.linkinv(eta), dtype=float)
    ey = response_mean(result, eta)
    return y, ey, mu, eta, np.asarray(mf.weights, dtype=float), aux_predictors(result)


def pearson_variance(result, ey: np.ndarray, mu: np.ndarray, aux: dict) -> np.ndarray:
    """The variance that divides a Pearson residual, as R computes it.

    lme4: the family's variance function at the fitted mean. The
    general-likelihood families give their own (``pearson_variance``: glmmTMB's
    ``family$variance(mu, sigma)``, the full Var(Y) for NB2 / NB1 but the bare
    variance function for Gamma and Beta). For zero-inflated families the
    variance of the mixture, (1 - p)(V(mu) + p mu^2); for the hurdle the exact one.
    """
    from scipy import special

    from interlace.results.predict import _is_hurdle, _is_zero_inflated

    fam = result.family
    own = getattr(fam, "pearson_variance", None)
    if aux and callable(own):  # the general-likelihood families define R's (glmmTMB's) convention
        v = np.asarray(own(mu, aux), dtype=float)
    else:
        base = ey if not _is_zero_inflated(fam) else mu
        v = np.asarray(fam.variance(base), dtype=float)
    if _is_zero_inflated(fam) or result.zi_params is not None and "zi" not in aux:
        from interlace.results.predict import zi_probability

        p = special.expit(aux["zi"]) if "zi" in aux else zi_probability(result)
        if _is_hurdle(fam):
            # exact Var(Y) of the hurdle model (glmmTMB 1.1.5's own formula differs)
            m0 = mu / -np.expm1(-mu)
            ey2 = (1.0 - p) * (v / -np.expm1(-mu) + m0 * m0 * (-np.expm1(-mu)))
            v = ey2 - ((1.0 - p) * m0) ** 2
        else:
            v = (1.0 - p) * (v + p * mu * mu)
    return v


def resid(result, type: str = "deviance") -> np.ndarray:
    """Residuals as R's ``residuals(m, type=)`` (lme4 for glmer/lmer fits,
    glmmTMB's definitions for its families).

    - ``response``: y - E[y] (binomial on the proportion scale).
    - ``pearson``: (y - E[y]) sqrt(w) / sqrt(V), see :func:`pearson_variance`
      (for the LMM V = 1: not divided by sigma, as lme4).
    - ``deviance``: sign(y - mu) sqrt(d_i), d_i the family's unit deviance
      times the prior weight (NB2 with the fitted theta, as glmer.nb).
    - ``working``: (y - E[y]) / (dmu/deta).
    """
    if type not in _TYPES:
        raise ValueError(f"type must be one of {', '.join(map(repr, _TYPES))}, got {type!r}")
    from interlace.results.predict import _is_zero_inflated

    fam = result.family
    y, ey, mu, eta, wt, aux = _parts(result)
    r = y - ey
    if type == "response":
        return r
    if type == "working":
        return r / np.asarray(fam.mu_eta(eta), dtype=float)
    if type == "pearson":
        if result.optinfo.get("engine") == "lmm":
            return r * np.sqrt(wt)
        return r * np.sqrt(wt) / np.sqrt(pearson_variance(result, ey, mu, aux))
    if _is_zero_inflated(fam) or not getattr(fam, "deviance_residuals", True):
        raise NotImplementedError("deviance residuals are not defined for zero-inflated/hurdle families "
                                  "(glmmTMB has none either); use 'pearson' or scaled_residuals()")
    at = getattr(fam, "dev_resids_at", None)  # the family's deviance at its fitted parameters
    d = np.asarray(at(y, mu, wt, aux) if callable(at) else fam.dev_resids(y, mu, wt), dtype=float)
    return np.sign(y - mu) * np.sqrt(np.maximum(d, 0.0))


# --------------------------------------------------------------------------- DHARMa


@dataclass
class DHARMaTest:
    """Result of a simulation test: statistic ratio observed / mean simulated,
    the two-sided p-value, and the observed and simulated statistics."""

    name: str
    ratio: float
    pvalue: float
    observed: float
    simulated: np.ndarray = field(repr=False)
    statistic: str = "ratio"

    def __str__(self) -> str:
        return f"{self.name}: {self.statistic} = {self.ratio:.4g}, p-value = {self.pvalue:.4g}"


def _generic_test(name: str, observed: float, simulated: np.ndarray) -> DHARMaTest:
    """DHARMa's testGeneric (two-sided): p = 2 min(P(sim >= obs), P(sim <= obs)),
    with the +1 correction of a Monte Carlo p-value so it is never 0."""
    nsim = simulated.shape[0]
    pg = (1 + np.sum(simulated >= observed)) / (1 + nsim)
    pl = (1 + np.sum(simulated <= observed)) / (1 + nsim)
    mean = float(np.mean(simulated))
    ratio = observed / mean if mean != 0 else np.inf
    return DHARMaTest(name, float(ratio), float(min(1.0, 2 * min(pg, pl))), float(observed), simulated)


@dataclass
class ScaledResiduals:
    """DHARMa's simulateResiduals: randomized quantile residuals in [0, 1].

    Under a correct model they are uniform whatever the family; plot them
    against a uniform QQ line or test them with :meth:`test_uniformity`,
    :meth:`test_dispersion` and :meth:`test_zero_inflation`.
    ``np.asarray(sr)`` gives the residuals.
    """

    residuals: np.ndarray
    observed: np.ndarray = field(repr=False)
    simulated: np.ndarray = field(repr=False)  # (nsim, n)
    fitted: np.ndarray = field(repr=False)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.residuals, dtype=dtype)

    def __len__(self) -> int:
        return len(self.residuals)

    def test_uniformity(self) -> DHARMaTest:
        """Kolmogorov-Smirnov test of the residuals against U(0, 1) (DHARMa's testUniformity)."""
        ks = stats.kstest(self.residuals, "uniform")
        return DHARMaTest("KS test of uniformity", float(ks.statistic), float(ks.pvalue), float(ks.statistic),
                          np.array([]), statistic="D")

    def test_dispersion(self) -> DHARMaTest:
        """DHARMa's default testDispersion: the SD of the observed residuals
        y - fitted against the SDs of the simulated ones (ratio > 1: overdispersion)."""
        obs = float(np.std(self.observed - self.fitted, ddof=1))
        sim = np.std(self.simulated - self.fitted[None, :], axis=1, ddof=1)
        return _generic_test("DHARMa nonparametric dispersion test via sd of residuals fitted vs. simulated",
                             obs, sim)

    def test_zero_inflation(self) -> DHARMaTest:
        """DHARMa's testZeroInflation: observed number of zeros against the
        simulated numbers (ratio > 1: more zeros than the model expects)."""
        obs = float(np.sum(self.observed == 0))
        sim = np.sum(self.simulated == 0, axis=1).astype(float)
        return _generic_test("DHARMa zero-inflation test via comparison to expected zeros", obs, sim)

    def tests(self) -> dict[str, DHARMaTest]:
        return {"uniformity": self.test_uniformity(), "dispersion": self.test_dispersion(),
                "zero_inflation": self.test_zero_inflation()}


def scaled_residuals(result, nsim: int = 250, seed=None, re: str = "conditional") -> ScaledResiduals:
    """DHARMa's simulateResiduals for ``result``.

    ``nsim`` responses are simulated from the fitted model; for each
    observation the residual is the fraction of simulations below it,
    randomized uniformly over ties (DHARMa's integer-response PIT), so
    discrete responses give continuous uniform residuals.

    ``re="conditional"`` (default) simulates given the conditional modes,
    DHARMa's ``simulateResiduals(m, re.form = NULL)``, which its authors
    recommend for the dispersion test of mixed models (it has power there;
    the shrinkage of the modes makes the ratio slightly below 1 under a correct
    model). ``re="unconditional"`` draws new random effects (DHARMa's lme4
    default, ``re.form = NA``); the dispersion test then measures spread around
    the simulations' own per-row means, so both sides include the
    random-effect variance.
    """
    from interlace.results.simulate import simulate

    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    sims = simulate(result, nsim=nsim, seed=rng, re=re)
    y = np.asarray(result.model_frame.y, dtype=float)
    # compare on a common grid: binomial proportions are k / n with float error
    tol = 1e-9 * np.maximum(1.0, np.abs(y))
    lo = np.mean(sims < y - tol, axis=0)
    hi = np.mean(sims <= y + tol, axis=0)
    u = lo + (hi - lo) * rng.uniform(size=y.shape)
    if re == "conditional":
        _y, fitted, *_ = _parts(result)
    else:
        fitted = sims.mean(axis=0)
    return ScaledResiduals(residuals=u, observed=y, simulated=sims, fitted=np.asarray(fitted, dtype=float))
