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
    """(y, E[y], mu of the conditional model, eta, prior weights, zero prob or None)."""
    from interlace.results.predict import _is_zero_inflated, zi_probability

    mf = result.model_frame
    y = np.asarray(mf.y, dtype=float)
    eta = np.asarray(result.linear_predictor, dtype=float)
    mu = np.asarray(result.family.linkinv(eta), dtype=float)
    p = None
    ey = mu
    if result.zi_params is not None or _is_zero_inflated(result.family):
        from interlace.results.predict import _unconditional_mean

        p = zi_probability(result)
        ey = _unconditional_mean(result, mu, p)
    return y, ey, mu, eta, np.asarray(mf.weights, dtype=float), p


def resid(result, type: str = "deviance") -> np.ndarray:
    """Residuals as R's ``residuals(m, type=)`` (lme4 for glmer/lmer fits,
    glmmTMB's definitions for its families).

    - ``response``: y - E[y] (binomial on the proportion scale).
    - ``pearson``: (y - E[y]) sqrt(w) / sqrt(V), V the family's variance
      function at the mean (for the LMM: 1, so not divided by sigma, as lme4);
      for zero-inflated families V is the variance of the mixture,
      (1 - p)(V(mu) + p mu^2).
    - ``deviance``: sign(y - mu) sqrt(d_i), d_i the family's unit deviance
      times the prior weight.
    - ``working``: (y - E[y]) / (dmu/deta).
    """
    if type not in _TYPES:
        raise ValueError(f"type must be one of {', '.join(map(repr, _TYPES))}, got {type!r}")
    fam = result.family
    y, ey, mu, eta, wt, p = _parts(result)
    r = y - ey
    if type == "response":
        return r
    if type == "working":
        return r / np.asarray(fam.mu_eta(eta), dtype=float)
    if type == "pearson":
        if result.optinfo.get("engine") == "lmm":
            return r * np.sqrt(wt)
        v = np.asarray(fam.variance(mu), dtype=float)
        if p is not None and not getattr(fam, "hurdle", False):
            v = (1.0 - p) * (v + p * mu * mu)
        elif p is not None and hasattr(fam, "response_variance"):
            v = np.asarray(fam.response_variance(mu, p), dtype=float)
        return r * np.sqrt(wt) / np.sqrt(v)
    if p is not None:
        raise NotImplementedError("deviance residuals are not defined for zero-inflated/hurdle families "
                                  "(glmmTMB has none either); use 'pearson' or scaled_residuals()")
    d = np.asarray(fam.dev_resids(y, mu, wt), dtype=float)
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

    def __str__(self) -> str:
        return f"{self.name}: ratio = {self.ratio:.4g}, p-value = {self.pvalue:.4g}"


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
                          np.array([]))

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


def scaled_residuals(result, nsim: int = 250, seed=None, re: str = "unconditional") -> ScaledResiduals:
    """DHARMa's simulateResiduals for ``result``.

    ``nsim`` responses are simulated from the fitted model (by default with
    new random effects, DHARMa's default for lme4 models, ``re.form = NA``);
    for each observation the residual is the fraction of simulations below
    it, randomized uniformly over ties (DHARMa's integer-response PIT), so
    discrete responses give continuous uniform residuals.
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
    _y, ey, *_ = _parts(result)
    return ScaledResiduals(residuals=u, observed=y, simulated=sims, fitted=np.asarray(ey, dtype=float))
