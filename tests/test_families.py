"""Families: log-likelihoods against scipy.stats, deviances against their formulas,
derivatives in eta against finite differences, R's starting values and response checks,
and lme4's Laplace identity on R's own fits."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import case_data_path, load_case
from interlace.families import (
    BinomialFamily,
    BinomialVariance,
    CauchitLink,
    ConstantVariance,
    ExponentialFamily,
    GammaFamily,
    GaussianFamily,
    GLMMFamily,
    InverseGaussianFamily,
    Link,
    LogLink,
    MuCubedVariance,
    MuSquaredVariance,
    MuVariance,
    NegBinVariance,
    PoissonFamily,
    PowerVariance,
    ProtocolFamilyAdapter,
    SupportsEtaDerivatives,
    SupportsLogLik,
    VarianceFunction,
    get_family,
)
from interlace.families.base import negbin_dev_resids, power_dev_resids, quasi_dev_resids

RNG = np.random.default_rng(20240611)
N = 40


def _binomial_data():
    m = RNG.integers(1, 20, N).astype(float)
    k = RNG.binomial(m.astype(int), 0.3).astype(float)
    mu = RNG.uniform(0.05, 0.95, N)
    return k / m, mu, m


def _poisson_data():
    y = RNG.poisson(3.0, N).astype(float)
    mu = RNG.uniform(0.5, 6.0, N)
    wt = RNG.uniform(0.5, 2.0, N)
    return y, mu, wt


def _positive_data():
    y = RNG.gamma(2.0, 1.5, N)
    mu = RNG.uniform(0.5, 5.0, N)
    wt = RNG.uniform(0.5, 2.0, N)
    return y, mu, wt


# --------------------------------------------------------------------------- log-likelihoods


def test_binomial_loglik_is_dbinom():
    y, mu, m = _binomial_data()
    ll = BinomialFamily().loglik(y, mu, m)
    np.testing.assert_allclose(ll, stats.binom.logpmf(np.rint(y * m), m, mu), rtol=1e-12)


def test_binomial_loglik_at_boundaries_and_zero_weight():
    fam = BinomialFamily()
    ll = fam.loglik(np.array([0.0, 1.0, 0.5]), np.array([0.0, 1.0, 0.3]), np.array([5.0, 5.0, 0.0]))
    np.testing.assert_array_equal(ll, [0.0, 0.0, 0.0])  # xlogy: 0 log 0 = 0; wt 0 -> 0


def test_poisson_loglik_is_weighted_dpois():
    y, mu, wt = _poisson_data()
    ll = PoissonFamily().loglik(y, mu, wt)
    np.testing.assert_allclose(ll, wt * stats.poisson.logpmf(y, mu), rtol=1e-12)


def test_gaussian_loglik_is_normal_with_variance_scale_over_weight():
    y, mu, wt = _positive_data()
    scale = 2.3
    ll = GaussianFamily().loglik(y, mu, wt, scale=scale)
    np.testing.assert_allclose(ll, stats.norm.logpdf(y, mu, np.sqrt(scale / wt)), rtol=1e-12)
    assert GaussianFamily().loglik(y[:1], mu[:1], np.zeros(1), scale)[0] == 0.0


def test_gamma_loglik_is_weighted_dgamma():
    y, mu, wt = _positive_data()
    phi = 0.4
    ll = GammaFamily(link="log").loglik(y, mu, wt, scale=phi)
    np.testing.assert_allclose(ll, wt * stats.gamma.logpdf(y, a=1 / phi, scale=mu * phi), rtol=1e-12)


def test_inverse_gaussian_loglik_is_weighted_dinvgauss():
    y, mu, wt = _positive_data()
    phi = 0.7
    lam = 1 / phi
    ll = InverseGaussianFamily().loglik(y, mu, wt, scale=phi)
    np.testing.assert_allclose(ll, wt * stats.invgauss.logpdf(y, mu / lam, scale=lam), rtol=1e-11)


# --------------------------------------------------------------------------- deviances


def test_dev_resids_formulas():
    y, mu, m = _binomial_data()
    expect = 2 * m * (
        np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu), 0)
        + np.where(y < 1, (1 - y) * np.log(np.where(y < 1, 1 - y, 1) / (1 - mu)), 0)
    )
    np.testing.assert_allclose(BinomialFamily().dev_resids(y, mu, m), expect, rtol=1e-12)

    y, mu, wt = _poisson_data()
    expect = 2 * wt * (np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu), 0) - (y - mu))
    np.testing.assert_allclose(PoissonFamily().dev_resids(y, mu, wt), expect, rtol=1e-12)

    y, mu, wt = _positive_data()
    np.testing.assert_allclose(GaussianFamily().dev_resids(y, mu, wt), wt * (y - mu) ** 2)
    np.testing.assert_allclose(
        GammaFamily().dev_resids(y, mu, wt), -2 * wt * (np.log(y / mu) - (y - mu) / mu), rtol=1e-12
    )
    np.testing.assert_allclose(
        InverseGaussianFamily().dev_resids(y, mu, wt), wt * (y - mu) ** 2 / (y * mu**2), rtol=1e-12
    )


@pytest.mark.parametrize(
    "fam,data,scale",
    [
        (BinomialFamily(), _binomial_data, 1.0),
        (PoissonFamily(), _poisson_data, 1.0),
        (GaussianFamily(), _positive_data, 1.0),
        (GammaFamily(), _positive_data, 0.3),
        (InverseGaussianFamily(), _positive_data, 0.6),
    ],
    ids=lambda x: getattr(x, "name", ""),
)
def test_deviance_is_twice_loglik_ratio_to_saturated(fam, data, scale):
    """dev_i = 2 scale (l(y; y) - l(y; mu)): the definition of the unit deviance."""
    y, mu, wt = data()
    sat = fam.loglik(y, np.clip(y, 1e-300, None) if fam.name != "binomial" else y, wt, scale)
    dev = 2 * scale * (sat - fam.loglik(y, mu, wt, scale))
    np.testing.assert_allclose(fam.dev_resids(y, mu, wt), dev, rtol=1e-9, atol=1e-12)


class Power15(VarianceFunction):
    """V(mu) = mu^1.5 (a Tweedie variance), written in a test without a derivative."""

    name = "mu^1.5"

    def __call__(self, mu):
        return np.asarray(mu, float) ** 1.5


def test_quasi_deviance_of_custom_variance_is_tweedie_formula():
    y, mu, wt = _positive_data()
    y[:5] = 0.0  # the integrand (y - t) / t^1.5 is singular at t = y = 0
    p = 1.5
    expect = 2 * wt * (
        y ** (2 - p) / ((1 - p) * (2 - p)) - y * mu ** (1 - p) / (1 - p) + mu ** (2 - p) / (2 - p)
    )
    fam = ExponentialFamily(link=LogLink(), variance=Power15(), name="tweedie15")
    np.testing.assert_allclose(fam.dev_resids(y, mu, wt), expect, rtol=1e-10)
    np.testing.assert_allclose(power_dev_resids(y, mu, wt, 1.5), expect, rtol=1e-12)
    # no full loglik given: quasi-likelihood -dev / (2 scale)
    np.testing.assert_allclose(fam.loglik(y, mu, wt, 2.0), -expect / 4.0, rtol=1e-10)
    assert not fam.has_full_loglik
    np.testing.assert_allclose(Power15().deriv(mu), 1.5 * mu**0.5, rtol=1e-6)


@pytest.mark.parametrize(
    "var", [ConstantVariance(), MuVariance(), BinomialVariance(), MuSquaredVariance(), MuCubedVariance(), NegBinVariance(2.5), PowerVariance(1.5), PowerVariance(2.5)]
)
def test_closed_form_quasi_deviance_matches_quadrature(var):
    """The closed forms used for the built-in variances equal the quasi-deviance integral."""
    y = RNG.uniform(0.1, 0.9, N)
    mu = RNG.uniform(0.1, 0.9, N)
    wt = RNG.uniform(0.5, 2.0, N)

    class Generic(VarianceFunction):
        def __call__(self, m):
            return var(m)

    np.testing.assert_allclose(
        quasi_dev_resids(y, mu, wt, var), quasi_dev_resids(y, mu, wt, Generic()), rtol=1e-9
    )
    h = 1e-6
    np.testing.assert_allclose(var.deriv(mu), (var(mu + h) - var(mu - h)) / (2 * h), rtol=1e-6, atol=1e-9)


def test_negbin_deviance_formula():
    y, mu, wt = _poisson_data()
    th = 1.7
    expect = 2 * wt * (
        np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu), 0) - (y + th) * np.log((y + th) / (mu + th))
    )
    np.testing.assert_allclose(negbin_dev_resids(y, mu, wt, th), expect, rtol=1e-12, atol=1e-13)


# --------------------------------------------------------------------------- derivatives in eta


@pytest.mark.parametrize(
    "fam,data,scale",
    [
        (BinomialFamily(), _binomial_data, 1.0),
        (BinomialFamily(link="probit"), _binomial_data, 1.0),
        (BinomialFamily(link="cloglog"), _binomial_data, 1.0),
        (BinomialFamily(link=CauchitLink()), _binomial_data, 1.0),
        (PoissonFamily(), _poisson_data, 1.0),
        (PoissonFamily(link="sqrt"), _poisson_data, 1.0),
        (GaussianFamily(), _positive_data, 1.7),
        (GammaFamily(link="log"), _positive_data, 0.5),
        (GammaFamily(), _positive_data, 0.5),
    ],
    ids=lambda x: repr(x) if hasattr(x, "link") else "",
)
def test_loglik_eta_derivatives_match_finite_differences(fam, data, scale):
    y, mu, wt = data()
    eta = fam.linkfun(mu)
    d1, d2 = fam.loglik_eta_derivs(y, eta, wt, scale)
    h = 1e-5 * np.maximum(1.0, np.abs(eta))

    def ll(e):
        return fam.loglik(y, fam.linkinv(e), wt, scale)

    np.testing.assert_allclose(d1, (ll(eta + h) - ll(eta - h)) / (2 * h), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(d2, (ll(eta + h) - 2 * ll(eta) + ll(eta - h)) / h**2, rtol=1e-4, atol=1e-4)
    # the expected information is the IRLS weight
    np.testing.assert_allclose(
        fam.working_weights(eta, wt) / scale,
        wt * fam.mu_eta(eta) ** 2 / (scale * fam.variance(mu)),
        rtol=1e-12,
    )


# --------------------------------------------------------------------------- initialize, checks


def test_initialize_like_r():
    y = np.array([0.0, 0.25, 1.0])
    wt = np.array([4.0, 8.0, 2.0])
    np.testing.assert_allclose(BinomialFamily().initialize(y, wt), (wt * y + 0.5) / (wt + 1))
    np.testing.assert_allclose(PoissonFamily().initialize(y, wt), y + 0.1)
    np.testing.assert_allclose(GaussianFamily().initialize(y, wt), y)
    np.testing.assert_allclose(GammaFamily().initialize(y + 1, wt), y + 1)
    # custom family: R's quasi rule
    fam = ExponentialFamily(link=LogLink(), variance=Power15())
    np.testing.assert_allclose(fam.initialize(y, wt), y + 0.1 * (y == 0))


def test_validate_response_names_the_column():
    ones = np.ones(3)
    with pytest.raises(ValueError, match="'prop'.*outside \\[0, 1\\]"):
        BinomialFamily().validate_response(np.array([0.2, 1.5, 0.1]), ones, "prop")
    with pytest.raises(ValueError, match="'count'.*negative"):
        PoissonFamily().validate_response(np.array([1.0, -1.0, 2.0]), ones, "count")
    with pytest.raises(ValueError, match="'time'"):
        GammaFamily().validate_response(np.array([1.0, 0.0, 2.0]), ones, "time")
    with pytest.raises(ValueError, match="'yy'.*non-finite"):
        GaussianFamily().validate_response(np.array([1.0, np.inf, 2.0]), ones, "yy")
    with pytest.warns(UserWarning, match="non-integer counts in response 'count'"):
        PoissonFamily().validate_response(np.array([1.5, 2.0, 0.0]), ones, "count")
    with pytest.warns(UserWarning, match="non-integer #successes"):
        BinomialFamily().validate_response(np.array([0.5, 0.3]), np.array([3.0, 10.0]), "p")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BinomialFamily().validate_response(np.array([0.5, 0.3]), np.array([4.0, 10.0]), "p")
        PoissonFamily().validate_response(np.array([1.0, 2.0, 0.0]), ones, "count")


# --------------------------------------------------------------------------- engine-facing API


def test_fast_path_only_for_exact_builtins():
    assert BinomialFamily().fast_path == ("binomial", "logit")
    assert BinomialFamily(link="probit").fast_path == ("binomial", "probit")
    assert BinomialFamily(link="cloglog").fast_path == ("binomial", "cloglog")
    assert BinomialFamily(link="cauchit").fast_path is None
    assert PoissonFamily().fast_path == ("poisson", "log")
    assert GaussianFamily().fast_path == ("gaussian", "identity")
    assert GaussianFamily(link="log").fast_path is None
    assert GammaFamily().fast_path is None

    class MyBinomial(BinomialFamily):
        pass

    class MyLogit(Link):  # a user Link subclass named like a built-in
        name = "logit"

        def link(self, mu):
            return np.log(mu / (1 - mu))

        def linkinv(self, eta):
            return 1 / (1 + np.exp(-eta))

        def mu_eta(self, eta):
            p = self.linkinv(eta)
            return p * (1 - p)

    assert MyBinomial().fast_path is None
    assert BinomialFamily(link=MyLogit()).fast_path is None


def test_family_attributes_and_protocols():
    fam = BinomialFamily()
    assert fam.name == "binomial" and fam.link.name == "logit" and fam.canonical
    assert not fam.estimates_scale and fam.params == {}
    assert GaussianFamily().estimates_scale and GammaFamily().estimates_scale
    mu = np.array([0.2, 0.7])
    np.testing.assert_array_equal(fam.link(mu), fam.linkfun(mu))  # the Link object is callable
    for f in (fam, PoissonFamily(), GaussianFamily(), GammaFamily()):
        assert isinstance(f, GLMMFamily)
        assert isinstance(f, SupportsLogLik) and isinstance(f, SupportsEtaDerivatives)
    assert repr(GammaFamily(link="log")) == "GammaFamily(link='log')"
    assert GammaFamily(link="log") == GammaFamily(link="log") != GammaFamily()
    with pytest.raises(ValueError, match="link 'sqrt' is not available for the binomial family"):
        BinomialFamily(link="sqrt")


class BareFamily:
    """Only the API document's protocol members: a quasi-Poisson-like user family."""

    name = "bare"

    def link(self, mu):
        return np.log(mu)

    def linkinv(self, eta):
        return np.exp(eta)

    def mu_eta(self, eta):
        return np.exp(eta)

    def variance(self, mu):
        return np.asarray(mu, float)

    def dev_resids(self, y, mu, wt):
        return PoissonFamily().dev_resids(y, mu, wt)


def test_bare_protocol_family_is_adapted():
    assert isinstance(BareFamily(), GLMMFamily)
    fam = get_family(BareFamily())
    assert isinstance(fam, ProtocolFamilyAdapter)
    assert fam.name == "bare" and fam.fast_path is None
    y, mu, wt = _poisson_data()
    np.testing.assert_allclose(fam.loglik(y, mu, wt), -0.5 * PoissonFamily().dev_resids(y, mu, wt))
    np.testing.assert_allclose(fam.linkfun(mu), np.log(mu))
    np.testing.assert_allclose(fam.initialize(y, wt), y + 0.1 * (y == 0))
    with pytest.raises(TypeError, match="lacks"):
        get_family(object())
    with pytest.raises(TypeError, match="only be given with a family name"):
        get_family(PoissonFamily(), link="log")


# --------------------------------------------------------------------------- lme4's Laplace identity


def _response(case: dict, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    call = case["python_call"]
    lhs = call["formula"].split("~")[0].strip()
    if lhs.startswith("cbind("):
        s, f = (t.strip() for t in lhs[len("cbind(") : -1].split(","))
        succ = df.eval(s).to_numpy(float)
        n = succ + df.eval(f).to_numpy(float)
        return succ / n, n
    y = df[lhs].to_numpy(float)
    wt = df[call["weights"]].to_numpy(float) if call.get("weights") else np.ones(len(y))
    return y, wt


LAPLACE_CASES = [
    "cbpp_laplace",
    "cbpp_prop",
    "cbpp_probit",
    "cbpp_cloglog",
    "cbpp_cauchit",
    "binom_priorweights",
    "binary_slope",
    "grouseticks_poisson",
    "grouseticks_nested",
    "poisson_offset",
]


@pytest.mark.parametrize("name", LAPLACE_CASES)
def test_loglik_reproduces_lme4_laplace_deviance(name):
    """lme4: -2 logLik = -2 sum(log p(y | u*)) + |u*|^2 + log|L|^2 (its devcomp).

    Evaluated at R's fitted values, our per-observation loglik must reproduce R's
    Laplace deviance; and the deviance residuals sum to R's drsum.
    """
    case = load_case(name)
    dc = case.get("lme4_devcomp_cmp")
    if not isinstance(dc, dict):
        pytest.skip(f"{name} has no devcomp")
    df = pd.read_csv(case_data_path(case))
    y, wt = _response(case, df)
    fp = case["family_params"]
    fam = get_family(fp["family"], link=fp["link"])
    mu = np.asarray(case["fitted"], float)
    ll = fam.loglik(y, mu, wt)
    np.testing.assert_allclose(-2 * ll.sum() + dc["ussq"] + dc["ldL2"], dc["dev"], rtol=1e-9)
    np.testing.assert_allclose(-2 * ll.sum() + dc["ussq"] + dc["ldL2"], -2 * case["loglik"], rtol=1e-9)
    np.testing.assert_allclose(fam.dev_resids(y, mu, wt).sum(), dc["drsum"], rtol=1e-8)


def test_gaussian_loglik_reproduces_lmer_ml_deviance():
    """lmer (ML): -2 logLik = log|L|^2 - 2 sum(log N(y; mu, sigma^2)) + |u|^2 / sigma^2."""
    case = load_case("sleepstudy_ml")
    dc = case["lme4_devcomp_cmp"]
    df = pd.read_csv(case_data_path(case))
    y = df["Reaction"].to_numpy(float)
    mu = np.asarray(case["fitted"], float)
    s2 = dc["sigmaML"] ** 2
    ll = GaussianFamily().loglik(y, mu, np.ones_like(y), scale=s2)
    np.testing.assert_allclose(dc["ldL2"] - 2 * ll.sum() + dc["ussq"] / s2, dc["dev"], rtol=1e-9)
    np.testing.assert_allclose(dc["ldL2"] - 2 * ll.sum() + dc["ussq"] / s2, -2 * case["loglik"], rtol=1e-9)


def test_binomial_zero_successes_loglik_no_nan():
    fam = BinomialFamily()
    ll = fam.loglik(np.zeros(3), np.array([1e-300, 0.5, 1 - 1e-16]), np.full(3, 5.0))
    assert np.all(np.isfinite(ll))
    assert math.isclose(ll[1], 5 * math.log(0.5))


# --------------------------------------------------------------------------- generic path == fast path


def test_generic_numpy_path_gives_the_fast_path_numbers():
    """A subclass of a built-in has no fast path; fitted, it gives the kernels' numbers."""
    import interlace

    glmer = getattr(interlace, "glmer", None)
    if glmer is None:
        pytest.skip("interlace.glmer (the Laplace engine, issue 4) is not available yet")
    case = load_case("cbpp_laplace")
    df = pd.read_csv(case_data_path(case))
    df["period"] = pd.Categorical(df["period"].astype(str), categories=case["factor_levels"]["period"]["levels"])
    df["herd"] = df["herd"].astype(str)

    class SlowBinomial(BinomialFamily):
        """Same maths, no fast path (a subclass may change anything)."""

    assert SlowBinomial(link="probit").fast_path is None
    for link in ("logit", "probit"):
        fast = glmer(case["python_call"]["formula"], df, family=BinomialFamily(link=link))
        slow = glmer(case["python_call"]["formula"], df, family=SlowBinomial(link=link))
        assert abs(fast.llf - slow.llf) < 1e-8
        np.testing.assert_allclose(slow.fe_params, fast.fe_params, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(slow.fe_bse, fast.fe_bse, rtol=1e-5)
        np.testing.assert_allclose(np.asarray(slow.theta), np.asarray(fast.theta), rtol=1e-6)
