"""simulate(): moments of many draws against the model's, for every family
interlace fits, and refits of unconditional simulations recovering the
parameters on average."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import special

from test_predict import fitted_case

import interlace
from interlace.results.predict import aux_predictors

NSIM = 2000


def model_variance(res) -> np.ndarray:
    """Var(Y_i | b) of the fitted model, written out per family (test reference)."""
    fam = res.family
    name = fam.name
    eta = res.linear_predictor.to_numpy()
    mu = np.asarray(fam.linkinv(eta))
    wt = res.model_frame.weights
    aux = aux_predictors(res)
    disp = fam.row_dispersion(aux) if aux and hasattr(fam, "row_dispersion") else None
    p = special.expit(aux["zi"]) if "zi" in aux else None
    if name == "binomial":
        return mu * (1 - mu) / wt
    if name == "poisson":
        return mu
    if name == "gaussian":
        return (disp if disp is not None else res.scale) / wt
    if name == "negativebinomial":
        return mu + mu**2 / disp
    if name == "nbinom1":
        return mu * (1 + disp)
    if name == "gamma":
        return mu**2 / disp
    if name == "beta":
        return mu * (1 - mu) / (1 + disp)
    if name == "zip":
        return (1 - p) * mu * (1 + p * mu)
    if name == "zinb":
        return (1 - p) * (mu + mu**2 / disp + p * mu**2)
    if name == "hurdle_poisson":
        q = -np.expm1(-mu)
        m1 = (1 - p) * mu / q
        m2 = (1 - p) * (mu + mu**2) / q
        return m2 - m1**2
    pytest.skip(f"no reference variance written for {name}")


CASES = ["cbpp_laplace", "binom_priorweights", "grouseticks_poisson", "poisson_offset", "sleepstudy_ml",
         "sleepstudy_disp", "owls_nb2", "nb1", "gamma_log", "beta", "salamanders_zip", "zinb",
         "hurdle_poisson", "nb2_disp"]


@pytest.mark.parametrize("name", CASES)
def test_conditional_simulation_moments(name):
    _case, res = fitted_case(name)
    sims = res.simulate(NSIM, seed=42)
    assert sims.shape == (NSIM, res.nobs)
    ey = res.fittedvalues.to_numpy()
    var = model_variance(res)
    # means: per-row z scores of the simulation mean; their sum over rows is N(0, n)
    z = (sims.mean(axis=0) - ey) / np.sqrt(var / NSIM)
    assert abs(z.sum() / np.sqrt(z.size)) < 4.5, name
    assert np.max(np.abs(z)) < 6.0, name
    # variances: the pooled sample variance against the model's (2000 draws: ~3 % per row)
    ratio = sims.var(axis=0, ddof=1).sum() / var.sum()
    assert abs(ratio - 1) < 0.05, f"{name}: variance ratio {ratio:.3f}"


def test_unconditional_gaussian_adds_random_effect_variance():
    _case, res = fitted_case("sleepstudy_ml")
    sims = res.simulate(NSIM, seed=3, re="unconditional")
    mf = res.model_frame
    t = mf.terms[0]
    vc = res.varcorr
    sd = vc[vc["var2"].isna() & (vc["grp"] == "Subject")]["sdcor"].to_numpy()
    corr = vc[vc["var2"].notna()]["sdcor"].iloc[0]
    Sigma = np.array([[sd[0] ** 2, corr * sd[0] * sd[1]], [corr * sd[0] * sd[1], sd[1] ** 2]])
    var = np.einsum("ik,kl,il->i", t.z, Sigma, t.z) + res.scale
    mean = mf.X @ res.fe_params.to_numpy()
    z = (sims.mean(axis=0) - mean) / np.sqrt(var / NSIM)
    assert abs(z.sum() / np.sqrt(z.size)) < 4.5
    # rows of one subject share the draw, so pool the variance over rows per column
    ratio = sims.var(axis=0, ddof=1).sum() / var.sum()
    assert abs(ratio - 1) < 0.08


def test_unconditional_poisson_mean_is_lognormal():
    _case, res = fitted_case("poisson_offset")
    sims = res.simulate(NSIM, seed=4, re="unconditional")
    mf = res.model_frame
    s2 = res.varcorr["vcov"].iloc[0]
    mean = np.exp(mf.X @ res.fe_params.to_numpy() + mf.offset + s2 / 2)
    ratio = sims.mean(axis=0).sum() / mean.sum()
    assert abs(ratio - 1) < 0.03


def test_seed_reproducible_and_arguments():
    _case, res = fitted_case("cbpp_laplace")
    np.testing.assert_array_equal(res.simulate(5, seed=9), res.simulate(5, seed=9))
    assert not np.array_equal(res.simulate(5, seed=9, re="unconditional"), res.simulate(5, seed=9))
    sims = res.simulate(5, seed=1)
    trials = res.model_frame.weights
    np.testing.assert_allclose(sims * trials, np.round(sims * trials), atol=1e-9)  # proportions k / n
    with pytest.raises(ValueError, match="re"):
        res.simulate(2, re="marginal")
    with pytest.raises(ValueError, match="nsim"):
        res.simulate(0)


def test_refits_of_unconditional_simulations_recover_parameters():
    """Parametric bootstrap sanity: 40 refits of cbpp simulated from the fit
    average to the fixed effects within Monte Carlo error and the herd SD
    within 15 % (its ML estimate is biased low with 15 herds)."""
    _case, res = fitted_case("cbpp_laplace")
    df = interlace.datasets.load("cbpp")
    sims = res.simulate(40, seed=2024, re="unconditional")
    betas, sds = [], []
    for y in sims:
        d = df.copy()
        d["incidence"] = np.round(y * d["size"]).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d,
                                family="binomial")
        betas.append(m.fe_params.to_numpy())
        sds.append(m.varcorr["sdcor"].iloc[0])
    betas = np.array(betas)
    mc_se = betas.std(axis=0, ddof=1) / np.sqrt(len(betas))
    assert np.all(np.abs(betas.mean(axis=0) - res.fe_params.to_numpy()) < 4 * mc_se + 0.05)
    true_sd = res.varcorr["sdcor"].iloc[0]
    assert abs(np.mean(sds) / true_sd - 1) < 0.15


def test_zero_truncated_poisson_draws():
    from interlace.families.hurdle_poisson import zero_truncated_poisson as _zero_truncated_poisson

    rng = np.random.default_rng(0)
    lam = np.full(200_000, 0.3)
    y = _zero_truncated_poisson(lam, rng)
    assert y.min() >= 1
    mean = 0.3 / -np.expm1(-0.3)
    assert abs(y.mean() / mean - 1) < 0.01


def test_family_simulate_method_takes_precedence():
    _case, res = fitted_case("grouseticks_poisson")

    class Fam(type(res.family)):
        def simulate(self, mu, wt, rng, params):
            return np.full(mu.shape, 7.0)

    import copy

    r2 = copy.copy(res)
    r2.family = Fam()
    assert np.all(r2.simulate(3, seed=1) == 7.0)
