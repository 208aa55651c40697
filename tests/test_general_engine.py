"""The general-likelihood Laplace engine: per-family calculus, the exact
gradient, Laplace's identity for the Gaussian, ZOIB against numerical
integration, fixed family parameters, response validation and dispatch."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

import interlace
from interlace.engine_general import fit_general
from interlace.families.beta import BetaFamily
from interlace.families.gamma_shape import GammaShapeFamily
from interlace.families.gaussian_disp import GaussianDispFamily
from interlace.families.hurdle_poisson import HurdlePoissonFamily
from interlace.families.negbin1 import NegativeBinomial1Family
from interlace.families.negbin2 import NegativeBinomial2Family
from interlace.families.zinb import ZeroInflatedNB2Family
from interlace.families.zip import ZeroInflatedPoissonFamily
from interlace.families.zoib import ZeroOneInflatedBetaFamily
from interlace.general.objective import GeneralObjective
from interlace.model_frame import build_model_frame

RNG = np.random.default_rng(20240613)
N = 14
COUNTS = np.r_[0.0, 0.0, 0.0, RNG.poisson(3.0, N - 3)]
POSITIVE = RNG.gamma(2.0, 1.5, N)
UNIT = RNG.uniform(0.03, 0.97, N)
UNIT01 = np.r_[0.0, 1.0, 1.0, UNIT[3:]]

FAMILIES = [
    (NegativeBinomial2Family(), COUNTS, 0.5),
    (NegativeBinomial1Family(), COUNTS, 0.5),
    (GammaShapeFamily(link="log"), POSITIVE, 0.3),
    (GammaShapeFamily(link="inverse"), POSITIVE, None),
    (GaussianDispFamily(), POSITIVE, 2.0),
    (BetaFamily(), UNIT, 0.0),
    (ZeroInflatedPoissonFamily(), COUNTS, 0.5),
    (ZeroInflatedNB2Family(), COUNTS, 0.5),
    (HurdlePoissonFamily(), COUNTS, 0.5),
    (ZeroOneInflatedBetaFamily(), UNIT01, 0.0),
]
IDS = [f"{type(f).__name__}-{f.link.name}" for f, _, _ in FAMILIES]


def _eta_aux(fam, center):
    rng = np.random.default_rng(7)
    eta = (np.abs(rng.normal(0, 0.3, N)) + 0.2) if center is None else center + rng.normal(0, 0.5, N)
    aux = {b: rng.normal(0.2, 0.4, N) for b in fam.aux_blocks}
    return eta, aux


@pytest.mark.parametrize("fam,y,center", FAMILIES, ids=IDS)
def test_derivatives_match_finite_differences(fam, y, center):
    eta, aux = _eta_aux(fam, center)
    wt = np.random.default_rng(3).uniform(0.5, 2.0, N)
    d = fam.derivs(y, wt, eta, aux, order=2)
    h = 1e-5

    def at(e=eta, a=aux):
        return fam.derivs(y, wt, e, a, order=2)

    p, m = at(eta + h), at(eta - h)
    scale = lambda v: np.maximum(1.0, np.abs(v))  # noqa: E731
    assert np.max(np.abs((p.l - m.l) / (2 * h) - d.e) / scale(d.e)) < 1e-6
    assert np.max(np.abs((p.e - m.e) / (2 * h) - d.ee) / scale(d.ee)) < 1e-6
    assert np.max(np.abs((p.ee - m.ee) / (2 * h) - d.eee) / scale(d.eee)) < 1e-5
    for b in fam.aux_blocks:
        ap, am = dict(aux), dict(aux)
        ap[b], am[b] = aux[b] + h, aux[b] - h
        P, M = at(eta, ap), at(eta, am)
        a, ea, eea = d.aux[b]
        assert np.max(np.abs((P.l - M.l) / (2 * h) - a) / scale(a)) < 1e-6, b
        assert np.max(np.abs((P.e - M.e) / (2 * h) - ea) / scale(ea)) < 1e-6, b
        assert np.max(np.abs((P.ee - M.ee) / (2 * h) - eea) / scale(eea)) < 1e-5, b


def test_log_densities_match_scipy():
    eta = np.linspace(-1.0, 2.0, N)
    mu = np.exp(eta)
    one = np.ones(N)
    la = np.full(N, 0.4)
    k = np.exp(0.4)

    def ll(fam, y, e, **aux):
        return fam.derivs(y, one, e, {b: np.full(N, v) for b, v in aux.items()}, order=0).l

    np.testing.assert_allclose(ll(NegativeBinomial2Family(), COUNTS, eta, disp=0.4),
                               stats.nbinom.logpmf(COUNTS, k, k / (k + mu)), rtol=1e-10)
    np.testing.assert_allclose(ll(NegativeBinomial1Family(), COUNTS, eta, disp=0.4),
                               stats.nbinom.logpmf(COUNTS, mu / k, 1.0 / (1.0 + k)), rtol=1e-10)
    np.testing.assert_allclose(ll(GammaShapeFamily(), POSITIVE, eta, disp=0.4),
                               stats.gamma.logpdf(POSITIVE, k, scale=mu / k), rtol=1e-10)
    np.testing.assert_allclose(ll(GaussianDispFamily(), POSITIVE, eta, disp=0.4),
                               stats.norm.logpdf(POSITIVE, eta, np.sqrt(k)), rtol=1e-10)
    m = special.expit(eta)
    np.testing.assert_allclose(ll(BetaFamily(), UNIT, eta, disp=0.4),
                               stats.beta.logpdf(UNIT, m * k, (1 - m) * k), rtol=1e-10)
    p = special.expit(-0.3)
    zip_ll = np.where(COUNTS == 0, np.log(p + (1 - p) * np.exp(-mu)),
                      np.log(1 - p) + stats.poisson.logpmf(COUNTS, mu))
    np.testing.assert_allclose(ll(ZeroInflatedPoissonFamily(), COUNTS, eta, zi=-0.3), zip_ll, rtol=1e-10)
    f0 = stats.nbinom.pmf(0, k, k / (k + mu))
    zinb_ll = np.where(COUNTS == 0, np.log(p + (1 - p) * f0),
                       np.log(1 - p) + stats.nbinom.logpmf(COUNTS, k, k / (k + mu)))
    np.testing.assert_allclose(ll(ZeroInflatedNB2Family(), COUNTS, eta, disp=0.4, zi=-0.3), zinb_ll, rtol=1e-10)
    hp = np.where(COUNTS == 0, np.log(p),
                  np.log(1 - p) + stats.poisson.logpmf(COUNTS, mu) - np.log1p(-np.exp(-mu)))
    np.testing.assert_allclose(ll(HurdlePoissonFamily(), COUNTS, eta, zi=-0.3), hp, rtol=1e-10)


def test_zoib_density_is_proper():
    """P(0) + P(1) + integral of the continuous part = 1."""
    fam = ZeroOneInflatedBetaFamily()
    aux = {"disp": np.array([1.1]), "zi": np.array([-0.7]), "coi": np.array([0.4])}

    def dens(y):
        return float(np.exp(fam.derivs(np.array([y]), np.ones(1), np.array([0.3]), aux, order=0).l[0]))

    mass = dens(0.0) + dens(1.0) + integrate.quad(dens, 0.0, 1.0, points=[1e-9, 1 - 1e-9])[0]
    assert abs(mass - 1.0) < 1e-8


# --------------------------------------------------------------------------- engine


def _owls():
    df = interlace.datasets.load("owls")
    return df.assign(logBroodSize=np.log(df["BroodSize"]))


GRAD_MODELS = [
    ("SiblingNegotiation ~ FoodTreatment * SexParent + (1 | Nest) + (1 | SexParent)", "owls",
     NegativeBinomial2Family(), {"offset": "logBroodSize", "dispformula": "~ FoodTreatment"}),
    ("count ~ mined + (1 | site)", "salamanders", ZeroInflatedNB2Family(), {"ziformula": "~ mined"}),
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", GaussianDispFamily(), {"dispformula": "~ Days"}),
    ("count ~ mined + (1 | site)", "salamanders", HurdlePoissonFamily(), {}),
]


@pytest.mark.parametrize("formula,data,fam,kw", GRAD_MODELS, ids=["nb2-crossed-disp", "zinb", "gauss-slope", "hurdle"])
def test_exact_gradient_matches_finite_differences(formula, data, fam, kw):
    df = _owls() if data == "owls" else interlace.datasets.load(data)
    mf = build_model_frame(formula, df, family=fam, **kw)
    obj = GeneralObjective(mf, fam)
    x = obj.x_start()
    x[: obj.nt] *= 0.7
    x = x + 0.05
    g = obj.gradient(x)
    h = 1e-4
    fd = np.array([(obj.deviance(x + h * e) - obj.deviance(x - h * e)) / (2 * h) for e in np.eye(len(x))])
    assert np.max(np.abs(g - fd) / np.maximum(1.0, np.abs(fd))) < 1e-5


def test_gaussian_laplace_is_exact_marginal_likelihood():
    """For a Gaussian response Laplace is exact: the llf equals the multivariate
    normal log density of each subject's responses (V = s^2 11' + diag(phi_i))."""
    df = interlace.datasets.load("sleepstudy")
    m = interlace.glmer("Reaction ~ Days + (1 | Subject)", df, family="gaussian", dispformula="~ Days")
    s2 = float(m.variance_components.iloc[0])
    mean = m.predict(include_re=False)
    phi = m.dispersion
    ll = 0.0
    for _, idx in df.groupby("Subject", observed=True).indices.items():
        V = s2 * np.ones((len(idx), len(idx))) + np.diag(phi[idx])
        ll += stats.multivariate_normal.logpdf(df["Reaction"].to_numpy()[idx], mean[idx], V)
    assert abs(m.llf - ll) < 1e-8


def _sim_zoib(seed=11, ngroups=8, per=30):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(ngroups), per)
    x = rng.normal(size=g.size)
    b = rng.normal(0, 0.6, ngroups)
    mu = special.expit(-0.2 + 0.7 * x + b[g])
    phi = 8.0
    y = rng.beta(mu * phi, (1 - mu) * phi)
    ends = rng.uniform(size=g.size) < 0.15
    y[ends] = (rng.uniform(size=ends.sum()) < 0.6).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical([f"g{i}" for i in g])})


def test_zoib_loglik_against_numerical_integration():
    """At the fitted parameters: (1) the engine's Laplace value equals an
    independent Laplace computation (scalar mode search per group), and (2)
    differs from the exact marginal log-likelihood (scipy quad over the random
    intercept per group) by no more than Laplace's error on 30 rows per group."""
    df = _sim_zoib()
    m = interlace.glmer("y ~ x + (1 | g)", df, family="zoib")
    assert m.converged
    fam = m.objective.family
    aux = m.objective._state["aux"]
    sd = float(np.sqrt(m.variance_components.iloc[0]))
    fixed = m.predict(include_re=False, type="link")
    y = df["y"].to_numpy()
    exact, laplace = 0.0, 0.0
    for _, idx in df.groupby("g", observed=True).indices.items():
        a = {k: v[idx] for k, v in aux.items()}

        def logf(b, idx=idx, a=a):
            return float(np.sum(fam.derivs(y[idx], np.ones(len(idx)), fixed[idx] + b, a, order=0).l))

        mode = optimize.minimize_scalar(lambda b: -(logf(b) + stats.norm.logpdf(b, 0, sd)),
                                        bounds=(-5 * sd - 1, 5 * sd + 1), method="bounded",
                                        options={"xatol": 1e-12}).x
        c = logf(mode) + stats.norm.logpdf(mode, 0, sd)
        val = integrate.quad(lambda b: np.exp(logf(b) + stats.norm.logpdf(b, 0, sd) - c),
                             mode - 12 * sd, mode + 12 * sd, points=[mode], epsabs=0, epsrel=1e-12, limit=200)[0]
        exact += c + np.log(val)
        h = 1e-4
        curv = -(logf(mode + h) - 2 * logf(mode) + logf(mode - h)) / h ** 2 + 1 / sd ** 2
        laplace += c + 0.5 * np.log(2 * np.pi) - 0.5 * np.log(curv)
    assert abs(m.llf - laplace) < 1e-5
    assert abs(m.llf - exact) < 0.02
    # the zero/one parts separate: their MLEs are the observed frequencies
    ends = (y == 0) | (y == 1)
    assert abs(m.family_params["zoi"] - ends.mean()) < 1e-5
    assert abs(m.family_params["coi"] - (y[ends] == 1).mean()) < 1e-5


def test_fixed_theta_is_held():
    df = interlace.datasets.load("grouseticks")
    free = interlace.glmer("TICKS ~ YEAR + (1 | LOCATION)", df, family="negativebinomial")
    fixed = interlace.glmer("TICKS ~ YEAR + (1 | LOCATION)", df, family=interlace.NegativeBinomial2Family(theta=2.0))
    assert fixed.family_params["theta"] == 2.0
    assert fixed.disp_params is None
    assert fixed.df_model == free.df_model - 1
    assert fixed.llf <= free.llf + 1e-8
    assert "theta" in free.family_params and free.family_params["theta"] != 2.0


def test_gamma_inverse_link_and_string_family():
    df = pd.read_csv(__import__("conftest").FIXTURES / "data" / "sim_gamma.csv")
    m_inv = interlace.glmer("y ~ x + trt + (1 | g)", df, family=interlace.family("gamma", link="inverse"))
    m_log = interlace.glmer("y ~ x + trt + (1 | g)", df, family="gamma")  # R's default link: inverse
    assert m_inv.optinfo["engine"] == "general" and m_inv.converged
    assert m_log.family.link.name == "inverse"
    assert abs(m_inv.llf - m_log.llf) < 1e-8
    assert m_inv.family_params["shape"] > 0


def test_hurdle_fitted_is_true_mean():
    df = interlace.datasets.load("salamanders")
    m = interlace.glmer("count ~ mined + (1 | site)", df, family="hurdle_poisson")
    mu = np.exp(m.linear_predictor.to_numpy())
    p = special.expit(m.zi_params["Intercept"])
    np.testing.assert_allclose(m.fittedvalues, (1 - p) * mu / (1 - np.exp(-mu)), rtol=1e-12)


@pytest.mark.parametrize("family,col,bad,match", [
    ("negativebinomial", "TICKS", -1, "negative counts"),
    ("nbinom1", "TICKS", -2, "negative counts"),
    ("zinb", "TICKS", -1, "negative counts"),
    ("hurdle_poisson", "TICKS", -1, "negative counts"),
])
def test_invalid_counts_raise_naming_column(family, col, bad, match):
    df = interlace.datasets.load("grouseticks")
    df.loc[0, col] = bad
    with pytest.raises(ValueError, match=f"{match}|{col}"):
        interlace.glmer(f"{col} ~ YEAR + (1 | LOCATION)", df, family=family)


@pytest.mark.parametrize("family,value,match", [
    ("beta", 1.0, "beta response 'y'"), ("beta", 0.0, "beta response 'y'"),
    ("zoib", 1.5, "zoib response 'y'"), ("gamma", 0.0, "response 'y'"),
])
def test_invalid_continuous_responses_raise(family, value, match):
    df = _sim_zoib().assign(y=lambda d: d["y"].clip(0.05, 0.95))
    df.loc[3, "y"] = value
    with pytest.raises(ValueError, match=match):
        interlace.glmer("y ~ x + (1 | g)", df, family=family)


def test_family_validate_response_methods_name_the_column():
    with pytest.raises(ValueError, match="'resp'"):
        BetaFamily().validate_response(np.array([0.2, 1.0]), np.ones(2), "resp")
    with pytest.raises(ValueError, match="'resp'"):
        ZeroOneInflatedBetaFamily().validate_response(np.array([0.2, -0.1]), np.ones(2), "resp")
    with pytest.raises(ValueError, match="'resp'"):
        NegativeBinomial2Family().validate_response(np.array([2.0, -1.0]), np.ones(2), "resp")
    with pytest.raises(ValueError, match="'resp'"):
        GammaShapeFamily().validate_response(np.array([2.0, 0.0]), np.ones(2), "resp")


def test_dispatch_errors():
    df = interlace.datasets.load("grouseticks")
    with pytest.raises(ValueError, match="dispformula"):
        interlace.glmer("TICKS ~ YEAR + (1 | LOCATION)", df, family="poisson", dispformula="~ YEAR")
    with pytest.raises(ValueError, match="ziformula"):
        # nbinom1 takes a ziformula since issue 22; tweedie (no parts() to zero-inflate) does not
        interlace.glmer("TICKS ~ YEAR + (1 | LOCATION)", df, family="tweedie", ziformula="~ YEAR")
    with pytest.raises(ValueError, match="nAGQ|dispformula"):
        interlace.glmer("TICKS ~ YEAR + (1 | LOCATION)", df, family="negativebinomial",
                        dispformula="~ YEAR", nAGQ=5)
    with pytest.raises(ValueError, match="nAGQ"):
        interlace.glmer("TICKS ~ YEAR + (1 | LOCATION)", df, family="negativebinomial", nAGQ=3)
    with pytest.raises(ValueError, match="theta"):
        interlace.NegativeBinomial2Family(theta=-1.0)


def test_poisson_with_ziformula_is_zip():
    df = interlace.datasets.load("salamanders")
    a = interlace.glmer("count ~ mined + (1 | site)", df, family="poisson", ziformula="~ 1")
    b = interlace.glmer("count ~ mined + (1 | site)", df, family="zip")
    assert abs(a.llf - b.llf) < 1e-9
    assert a.zi_bse is not None and a.zi_bse.index.tolist() == ["Intercept"]


def test_registry_names_and_top_level_classes():
    av = interlace.families.available()
    for name in ("negativebinomial", "nbinom1", "beta", "zip", "zinb", "hurdle_poisson", "zoib", "gamma"):
        assert name in av
    assert isinstance(interlace.family("nbinom2"), interlace.NegativeBinomial2Family)
    for cls in ("NegativeBinomial2Family", "NegativeBinomial1Family", "GammaFamily", "BetaFamily",
                "ZeroInflatedPoissonFamily", "ZeroInflatedNB2Family", "HurdlePoissonFamily",
                "ZeroOneInflatedBetaFamily"):
        assert hasattr(interlace, cls)


def test_optimizers_agree():
    df = interlace.datasets.load("grouseticks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = interlace.glmer("TICKS ~ YEAR + (1 | LOCATION)", df, family="negativebinomial")
        b = interlace.glmer("TICKS ~ YEAR + (1 | LOCATION)", df, family="negativebinomial", optimizer="nelder-mead")
    assert abs(a.llf - b.llf) < 1e-6
    np.testing.assert_allclose(a.fe_params, b.fe_params, rtol=1e-4, atol=1e-6)
