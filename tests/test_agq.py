"""Adaptive Gauss-Hermite quadrature (nAGQ > 1).

R's numbers come only from the oracle JSON files; the vector case, which lme4
lacks, is checked against an independent scipy cubature of the same
likelihood (scipy.stats log-pmfs, scipy.integrate.nquad), not against our code.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

from conftest import load_case
from oracle_utils import compare, fit_case, read_case_data

import interlace
from interlace.families import get_family
from interlace.model_frame import build_model_frame
from interlace.objective.agq import AGQObjective, gh_rule
from interlace.objective.laplace import LaplaceObjective

PARITY_CASES = [("cbpp_agq25", False), ("cbpp_agq5", False), ("cbpp_agq9", False), ("cbpp_agq50", False),
                ("grouseticks_agq_pois", False)]
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _objective(formula, df, family):
    fam = get_family(family) if isinstance(family, str) else family
    mf = build_model_frame(formula, df, family=fam)
    return LaplaceObjective(mf, fam)


def _fd_gradient(agq, theta, beta, h=1e-6):
    x = np.concatenate([theta, beta])
    nt = len(theta)
    g = np.empty_like(x)
    for i in range(len(x)):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (agq.deviance(xp[:nt], xp[nt:]) - agq.deviance(xm[:nt], xm[nt:])) / (2 * h)
    return g


@pytest.fixture(scope="module")
def sim_vector():
    """Small simulated data with a correlated random intercept and slope per group."""
    rng = np.random.default_rng(20240607)
    nl, m = 12, 10
    g = np.repeat(np.arange(nl), m)
    x = rng.normal(size=nl * m)
    cov = np.array([[0.6, 0.15], [0.15, 0.25]])
    b = rng.multivariate_normal(np.zeros(2), cov, size=nl)
    eta_c = 0.4 + 0.3 * x + b[g, 0] + b[g, 1] * x
    eta_y = -0.2 + 0.8 * x + 1.5 * (b[g, 0] + b[g, 1] * x)
    return pd.DataFrame({
        "c": rng.poisson(np.exp(eta_c)),
        "y": rng.binomial(1, 1.0 / (1.0 + np.exp(-eta_y))),
        "x": x,
        "g": pd.Categorical([f"g{i:02d}" for i in g]),
    })


# ---------------------------------------------------------------------------- the rule
def test_gh_rule_integrates_normal_moments_and_is_cached():
    z, lw = gh_rule(7)
    w = np.exp(lw - 0.5 * z[:, 0] ** 2)
    # 7 nodes integrate polynomials up to degree 13 exactly: E Z^(2m) = (2m - 1)!!
    for m in range(7):
        assert np.sum(w * z[:, 0] ** (2 * m)) == pytest.approx(float(np.prod(np.arange(2 * m - 1, 0, -2))),
                                                            rel=1e-12)
        assert abs(np.sum(w * z[:, 0] ** (2 * m + 1))) < 1e-10
    assert gh_rule(7) is gh_rule(7)
    z2, lw2 = gh_rule(5, 2)
    assert z2.shape == (25, 2)
    w2 = np.exp(lw2 - 0.5 * np.sum(z2 ** 2, axis=1))
    assert np.sum(w2) == pytest.approx(1.0, rel=1e-13)
    assert np.sum(w2 * z2[:, 0] ** 2 * z2[:, 1] ** 2) == pytest.approx(1.0, rel=1e-12)
    z100, lw100 = gh_rule(100)
    assert np.all(np.isfinite(lw100)) and np.sum(np.exp(lw100 - 0.5 * z100[:, 0] ** 2)) == pytest.approx(1.0)


# ---------------------------------------------------------------------------- objective
def test_one_node_is_the_laplace_deviance():
    obj = _objective(CBPP, interlace.datasets.load("cbpp"), "binomial")
    theta, beta = np.array([0.7]), np.array([-1.3, -1.0, -1.1, -1.5])
    lap = obj.deviance(theta, beta)
    assert AGQObjective(obj, 1).deviance(theta, beta) == pytest.approx(lap, rel=1e-13)


@pytest.mark.parametrize("nagq", [1, 5, 25])
def test_exact_gradient_scalar_binomial(nagq):
    obj = _objective(CBPP, interlace.datasets.load("cbpp"), "binomial")
    agq = AGQObjective(obj, nagq)
    theta, beta = np.array([0.8]), np.array([-1.4, -1.0, -1.1, -1.6])
    agq.deviance(theta, beta)
    g = agq.gradient(theta, beta)
    np.testing.assert_allclose(g, _fd_gradient(agq, theta, beta), atol=5e-6, rtol=1e-6)


def test_exact_gradient_scalar_poisson():
    case = load_case("grouseticks_agq_pois")
    obj = _objective(case["python_call"]["formula"], read_case_data(case), "poisson")
    agq = AGQObjective(obj, 11)
    theta, beta = np.array([0.9]), np.array([0.4, 1.1, 0.9, -0.9])
    g = agq.gradient(theta, beta)
    np.testing.assert_allclose(g, _fd_gradient(agq, theta, beta), atol=5e-5, rtol=1e-6)


@pytest.mark.parametrize("response,family", [("c", "poisson"), ("y", "binomial")])
def test_exact_gradient_vector(sim_vector, response, family):
    obj = _objective(f"{response} ~ x + (1 + x | g)", sim_vector, family)
    agq = AGQObjective(obj, 6)
    theta, beta = np.array([0.8, 0.25, 0.45]), np.array([0.1, 0.5])
    g = agq.gradient(theta, beta)
    np.testing.assert_allclose(g, _fd_gradient(agq, theta, beta), atol=5e-6, rtol=1e-6)


def test_generic_numpy_path_equals_kernels(sim_vector):
    for formula, family in (("c ~ x + (1 + x | g)", "poisson"), ("y ~ x + (1 | g)", "binomial")):
        obj = _objective(formula, sim_vector, family)
        agq = AGQObjective(obj, 5)
        theta = np.array([0.7, 0.1, 0.4])[: obj.re.ntheta]
        beta = np.array([0.2, 0.4])
        fast = agq.deviance(theta, beta)
        agq.fast = False
        assert agq.deviance(theta, beta) == pytest.approx(fast, rel=1e-12)


# ---------------------------------------------------------------------------- parity with lme4
@pytest.mark.parametrize("name,scale", PARITY_CASES)
def test_parity_with_lme4(name, scale):
    case = load_case(name, scale)
    res = fit_case(case)
    c = compare(res, case)
    assert res.nAGQ == case["python_call"]["nAGQ"] and res.optinfo["nAGQ"] == res.nAGQ
    assert c["llf_diff"] >= -1e-4, c
    assert c["fixef"] < 1e-3 and c["se"] < 1e-3 and c["varcorr"] < 1e-3, c
    # R's own logLik for nAGQ > 1 lacks the saturated constant; ours is the full value
    full = case["agq_loglik"]
    assert res.llf - case["loglik"] == pytest.approx(full["loglik_saturated"], abs=1e-4)
    assert res.aic == pytest.approx(full["aic_full"], abs=2e-4)
    assert res.bic == pytest.approx(full["bic_full"], abs=2e-4)
    assert res.converged


def test_llf_converges_as_nagq_grows():
    df = interlace.datasets.load("cbpp")
    llf = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for q in (1, 3, 5, 9, 11, 15, 25, 50, 100):
            llf[q] = interlace.glmer(CBPP, df, family="binomial", nAGQ=q).llf
    assert abs(llf[50] - llf[25]) < 1e-10 and abs(llf[100] - llf[50]) < 1e-10
    err = {q: abs(llf[q] - llf[100]) for q in (1, 3, 5, 9, 11, 15)}
    # few-node rules oscillate; from 5 nodes on the error shrinks steadily, fast
    assert err[5] > err[9] > err[11] > err[15]
    assert err[15] < 1e-8
    # the Laplace value (the one-node rule) is on the same scale, and farther off
    assert err[1] > err[5]


# ---------------------------------------------------------------------------- beyond lme4: vector RE
def _scipy_marginal_loglik(df, response, family, theta, beta, rtol=1e-11):
    """sum_l log int prod_i p(y_i | b) N(b; 0, Lambda Lambda') db, every level at once
    by scipy's adaptive cubature (array-valued integrand, Gauss-Kronrod product rule)
    over +-10 prior SDs; the log-pmfs are written out here, not taken from interlace."""
    lam = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
    sigma = lam @ lam.T
    sinv = np.linalg.inv(sigma)
    logdet = math.log(np.linalg.det(sigma))
    d = df.sort_values("g", kind="stable")
    nl = d["g"].nunique()
    x = d["x"].to_numpy().reshape(nl, -1)  # equal group sizes in these data
    y = d[response].to_numpy().astype(float).reshape(nl, -1)
    fe = beta[0] + beta[1] * x

    def logp(b):  # (npts, 2) -> (npts, nl)
        eta = fe[None] + b[:, 0, None, None] + b[:, 1, None, None] * x[None]
        if family == "poisson":
            ll = y[None] * eta - np.exp(eta) - special.gammaln(y + 1.0)[None]
        else:
            ll = y[None] * eta - np.logaddexp(0.0, eta)
        return ll.sum(axis=-1)

    ref = logp(np.zeros((1, 2)))[0]  # keeps each level's integrand O(1) near its peak

    def integrand(b):
        quad = np.einsum("pa,ab,pb->p", b, sinv, b)
        return np.exp(logp(b) - ref[None] - 0.5 * quad[:, None] - 0.5 * logdet - math.log(2 * math.pi))

    sd = np.sqrt(np.diag(sigma))
    res = integrate.cubature(integrand, -10 * sd, 10 * sd, rtol=rtol, atol=0.0, max_subdivisions=100000)
    assert res.status == "converged"
    assert np.all(res.error <= 10 * rtol * res.estimate)
    return float(np.sum(np.log(res.estimate) + ref))


@pytest.mark.parametrize("response,family", [("c", "poisson"), ("y", "binomial")])
def test_vector_agq_matches_scipy_cubature(sim_vector, response, family):
    obj = _objective(f"{response} ~ x + (1 + x | g)", sim_vector, family)
    theta, beta = np.array([0.75, 0.2, 0.45]), np.array([0.3, 0.4])
    ref = _scipy_marginal_loglik(sim_vector, response, family, theta, beta)
    agq = -0.5 * AGQObjective(obj, 20).deviance(theta, beta)
    lap = -0.5 * obj.deviance(theta, beta)
    assert agq == pytest.approx(ref, abs=1e-7)
    assert abs(lap - ref) > 1e3 * abs(agq - ref)  # quadrature, not Laplace, is what agrees


def test_vector_agq_fit_is_the_maximum_of_the_scipy_likelihood(sim_vector):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.glmer("c ~ x + (1 + x | g)", sim_vector, family="poisson", nAGQ=12)
        lap = interlace.glmer("c ~ x + (1 + x | g)", sim_vector, family="poisson", nAGQ=1)
    assert res.optinfo["agq_dim"] == 2 and res.optinfo["agq_nodes"] == 144
    assert res.optinfo["agq_gradient"] == "exact"
    assert res.converged and not res.singular
    theta, beta = res.theta.to_numpy(), res.fe_params.to_numpy()
    ref = _scipy_marginal_loglik(sim_vector, "c", "poisson", theta, beta)
    assert res.llf == pytest.approx(ref, abs=1e-6)
    near = lambda t, b: _scipy_marginal_loglik(sim_vector, "c", "poisson", t, b, rtol=1e-9)  # noqa: E731
    # the fitted parameters maximize the independently integrated likelihood
    for i, step in ((0, 0.02), (1, 0.02), (2, 0.02)):
        for sgn in (-1, 1):
            t = theta.copy()
            t[i] += sgn * step
            assert near(t, beta) < ref
    for i in range(2):
        for sgn in (-1, 1):
            b = beta.copy()
            b[i] += sgn * 0.02
            assert near(theta, b) < ref
    assert lap.llf != pytest.approx(res.llf, abs=1e-6)


def test_crossed_nested_and_split_terms_raise():
    case = load_case("grouseticks_agq_pois")
    df = read_case_data(case)
    for formula in ("TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION)",   # crossed
                    "TICKS ~ YEAR + (1 | LOCATION/BROOD)"):          # nested
        with pytest.raises(ValueError, match="nAGQ"):
            interlace.glmer(formula, df, family="poisson", nAGQ=5)
    rng = np.random.default_rng(3)
    sim = pd.DataFrame({"y": rng.poisson(2.0, 60), "x": rng.normal(size=60),
                        "g": pd.Categorical(np.repeat(list("abcdef"), 10))})
    with pytest.raises(ValueError, match="one random-effect term"):  # (1 + x || g): two terms
        interlace.glmer("y ~ x + (1 + x || g)", sim, family="poisson", nAGQ=3)


def test_summary_names_the_quadrature():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.glmer(CBPP, interlace.datasets.load("cbpp"), family="binomial", nAGQ=9)
    text = str(res.summary())
    assert "Adaptive Gauss-Hermite Quadrature" in text and "nAGQ = 9" in text
    assert "full marginal" in res.optinfo["loglik_convention"]


# ---------------------------------------------------------------------------- scale
@pytest.mark.slow
def test_simbin_ri_agq_scale():
    case = load_case("simbin_ri_agq", scale=True)
    fit_case(case)  # compile / warm up
    t0 = time.perf_counter()
    res = fit_case(case)
    seconds = time.perf_counter() - t0
    c = compare(res, case)
    print(f"\nsimbin_ri_agq: warm fit {seconds:.2f} s, R r_seconds {case['r_seconds']}, {c}")
    assert c["llf_diff"] >= -1e-4 and abs(c["llf_diff"]) < 1e-4, c
    assert c["fixef"] < 1e-3 and c["se"] < 1e-3 and c["varcorr"] < 1e-3, c
