"""interlace-delaporte against independent references: R's numerical integration of the
Poisson-shifted-gamma mixture and its Poisson / negative-binomial convolution (fixture made by
tests/fixtures/make_ddelaporte.R), scipy.integrate.quad of the same mixture, central
differences of the log density, the core nbinom2 and poisson fits it nests (nu -> 0, nu -> 1),
and independent Laplace approximations built from scipy.stats' Poisson and negative-binomial
densities alone (grouseticks with nu held fixed; simulated data with every parameter free)."""

from __future__ import annotations

import importlib
import json
import sys
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

import interlace
from interlace.plugins import manager

HERE = Path(__file__).resolve().parent


def _module():
    """The installed plugin (entry point), or its source next to this folder."""
    eps = [ep for ep in metadata.entry_points(group="interlace.families") if ep.name == "delaporte"]
    if not eps:
        sys.path.insert(0, str(HERE.parent))
        mod = importlib.import_module("interlace_delaporte")
        if "delaporte" not in manager.get_registry():
            manager.register_plugin(mod, name="interlace-delaporte (source)", distribution="interlace-delaporte")
        return mod
    return importlib.import_module(eps[0].value)


@pytest.fixture(scope="module")
def mod():
    return _module()


def _fit(formula, df, family):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.glmer(formula, df, family=family)


# ------------------------------------------------------------------ registration


def test_registered_through_the_entry_point(mod):
    eps = [ep for ep in metadata.entry_points(group="interlace.families") if ep.name == "delaporte"]
    if eps:  # installed: the entry point belongs to the distribution, which the registry names
        assert eps[0].dist.name == "interlace-delaporte" and eps[0].value == "interlace_delaporte"
    assert interlace.families.available()["delaporte"] == "interlace-delaporte"
    fam = interlace.family("delaporte", sigma=0.5, nu=0.25)
    assert fam.name == "delaporte"
    assert fam.fixed_aux["disp"] == pytest.approx(np.log(0.5))
    assert fam.fixed_aux["nu"] == pytest.approx(special.logit(0.25))


@pytest.mark.parametrize("kw", [{"nu": 1.0}, {"nu": 0.0}, {"nu": -0.2}, {"sigma": 0.0}, {"sigma": np.inf}])
def test_bad_parameters_name_the_argument(mod, kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        interlace.family("delaporte", **kw)


# ------------------------------------------------------------------ density and derivatives


def test_density_matches_r_integration_and_convolution(mod):
    ref = json.loads((HERE / "fixtures" / "ddelaporte.json").read_text())
    y, mu, sigma, nu = (np.asarray(ref[k], float) for k in ("y", "mu", "sigma", "nu"))
    g = mod.delaporte_logpmf(y, mu, sigma, nu)
    np.testing.assert_allclose(g, ref["logd_integrate"], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(g, ref["logd_convolution"], rtol=1e-10, atol=1e-10)


def test_density_matches_scipy_quadrature(mod):
    """P(Y = y) = int Poisson(y; mu (nu + (1 - nu) z)) Gamma(z; 1/sigma, sigma) dz."""
    rng = np.random.default_rng(11)
    for _ in range(30):
        y = float(rng.integers(0, 40))
        mu, sigma, nu = float(np.exp(rng.normal(1.0, 1.0))), float(np.exp(rng.normal(-0.3, 0.8))), float(
            rng.uniform(0.03, 0.97))
        k = 1.0 / sigma

        def f(z):  # Poisson(y; lam) times the Gamma(shape k, scale sigma) density, written out
            lam = mu * (nu + (1.0 - nu) * z)
            return np.exp(y * np.log(lam) - lam - special.gammaln(y + 1.0)
                          + (k - 1.0) * np.log(z) - z / sigma - special.gammaln(k) - k * np.log(sigma))

        zs = max((y / mu - nu) / (1.0 - nu), 0.0)
        cuts = sorted({0.0, *stats.gamma.ppf([1e-3, 0.5, 1 - 1e-3], k, scale=sigma), zs, 2 * zs + 1})
        pieces = [integrate.quad(f, a, b, epsabs=0, epsrel=1e-12, limit=500)[0] for a, b in zip(cuts, cuts[1:])]
        pieces.append(integrate.quad(f, cuts[-1], np.inf, epsabs=0, epsrel=1e-12, limit=500)[0])
        want = np.log(sum(pieces))
        assert abs(float(mod.delaporte_logpmf(y, mu, sigma, nu)) - want) < 1e-9 * max(1.0, abs(want))


def test_sums_to_one_with_the_delaporte_moments(mod):
    y = np.arange(0.0, 400.0)
    p = np.exp(mod.delaporte_logpmf(y, 12.0, 0.4, 0.35))
    assert abs(p.sum() - 1.0) < 1e-12
    mean = (y * p).sum()
    assert abs(mean - 12.0) < 1e-10
    assert abs(((y - mean) ** 2 * p).sum() - (12.0 + 0.4 * 144.0 * 0.65 ** 2)) < 1e-8


def test_derivatives_match_central_differences(mod):
    """Every derivative the engine takes from ``derivs``: l_e, l_ee, l_eee and, per aux block
    (log sigma, logit nu), l_a, l_ea, l_eea, with prior weights."""
    rng = np.random.default_rng(5)
    n = 60
    y = rng.negative_binomial(2, 0.25, n).astype(float)
    y[:4] = [0.0, 1.0, 55.0, 130.0]
    eta, s, a = rng.normal(1.2, 1.0, n), rng.normal(-0.4, 1.0, n), rng.normal(0.0, 1.5, n)
    wt = rng.uniform(0.5, 2.0, n)
    fam = interlace.family("delaporte")
    h = 1e-5

    def d(e=eta, ss=s, aa=a):
        return fam.derivs(y, wt, e, {"disp": ss, "nu": aa}, order=2)

    D = d()
    up, dn = d(e=eta + h), d(e=eta - h)
    for lo, hi in (("l", "e"), ("e", "ee"), ("ee", "eee")):
        fd = (getattr(up, lo) - getattr(dn, lo)) / (2 * h)
        np.testing.assert_allclose(getattr(D, hi), fd, rtol=1e-6, atol=1e-6)
    for blk, shift in (("disp", "ss"), ("nu", "aa")):
        base = {"ss": s, "aa": a}[shift]
        bp, bm = d(**{shift: base + h}), d(**{shift: base - h})
        np.testing.assert_allclose(D.aux[blk][0], (bp.l - bm.l) / (2 * h), rtol=1e-6, atol=1e-6)
        for i in (1, 2):  # d/deta of l_a and of l_ea
            fd = (up.aux[blk][i - 1] - dn.aux[blk][i - 1]) / (2 * h)
            np.testing.assert_allclose(D.aux[blk][i], fd, rtol=1e-6, atol=1e-6)
        for i, lo in ((1, "e"), (2, "ee")):  # the same mixed derivatives taken in the aux direction
            fd = (getattr(bp, lo) - getattr(bm, lo)) / (2 * h)
            np.testing.assert_allclose(D.aux[blk][i], fd, rtol=1e-6, atol=1e-6)
    P = mod.delaporte_derivs(y, eta, s, a, 2)
    np.testing.assert_allclose(D.l, wt * P.g, rtol=1e-15)


# ------------------------------------------------------------------ the families it nests


@pytest.fixture(scope="module")
def grouseticks():
    return interlace.datasets.load("grouseticks")


FORMULA = "TICKS ~ YEAR + (1 | LOCATION)"


def test_nu_to_zero_is_the_core_nbinom2_fit(mod, grouseticks):
    nb = _fit(FORMULA, grouseticks, "nbinom2")
    de = _fit(FORMULA, grouseticks, interlace.family("delaporte", nu=1e-10))
    assert abs(de.llf - nb.llf) < 1e-5
    np.testing.assert_allclose(de.fe_params.to_numpy(), nb.fe_params.to_numpy(), rtol=1e-4, atol=1e-5)
    assert abs(float(de.varcorr["sdcor"].iloc[0]) / float(nb.varcorr["sdcor"].iloc[0]) - 1) < 1e-4
    assert abs(1.0 / de.family_params["sigma"] / nb.family_params["theta"] - 1) < 1e-3


def test_nu_to_one_is_the_core_poisson_fit(mod, grouseticks):
    po = _fit(FORMULA, grouseticks, "poisson")
    de = _fit(FORMULA, grouseticks, interlace.family("delaporte", sigma=1.0, nu=1 - 1e-10))
    assert abs(de.llf - po.llf) < 1e-5
    np.testing.assert_allclose(de.fe_params.to_numpy(), po.fe_params.to_numpy(), rtol=1e-4, atol=1e-5)
    assert abs(float(de.varcorr["sdcor"].iloc[0]) / float(po.varcorr["sdcor"].iloc[0]) - 1) < 1e-4


def test_free_fit_on_grouseticks_is_at_least_the_nbinom2_fit(mod, grouseticks):
    """The Delaporte nests NB2, so its maximised log-likelihood cannot be lower (on grouseticks
    the maximum is at the NB2 edge, nu -> 0)."""
    nb = _fit(FORMULA, grouseticks, "nbinom2")
    de = _fit(FORMULA, grouseticks, "delaporte")
    assert de.llf > nb.llf - 1e-6
    assert de.family_params["nu"] < 1e-3


# ------------------------------------------------------------------ GLMM fits vs an independent Laplace


class _Terms:
    """The pairs (row, j), j = 0..y_row, of one group's rows, for the sum over the split."""

    def __init__(self, y):
        n1 = y.astype(int) + 1
        self.starts = np.concatenate(([0], np.cumsum(n1)[:-1]))
        self.row = np.repeat(np.arange(len(y)), n1)
        self.j = np.arange(n1.sum()) - np.repeat(self.starts, n1)
        self.ymj = y[self.row] - self.j


def _logpmf_scipy(t, mu, sigma, nu):
    """log P(Y = y) per row from scipy.stats alone: the log of
    sum_j Poisson(y - j; mu nu) NB(j; 1/sigma, mu (1 - nu))."""
    k = 1.0 / sigma
    m = mu[t.row]
    lw = stats.poisson.logpmf(t.ymj, m * nu) + stats.nbinom.logpmf(t.j, k, k / (k + m * (1.0 - nu)))
    mx = np.maximum.reduceat(lw, t.starts)
    return mx + np.log(np.add.reduceat(np.exp(lw - mx[t.row]), t.starts))


def _laplace_llf(groups, beta, sd, sigma, nu):
    """Per group: the mode of the joint log density in the random intercept b (scalar
    optimisation) and its curvature by central differences; the Laplace log-likelihood."""
    total = 0.0
    for t, X in groups:
        def h(b):
            return float(np.sum(_logpmf_scipy(t, np.exp(X @ beta + b), sigma, nu)) + stats.norm.logpdf(b, 0.0, sd))

        bs = optimize.minimize_scalar(lambda b: -h(b), bounds=(-6, 6), method="bounded",
                                      options={"xatol": 1e-10}).x
        e = 1e-4
        curv = -(h(bs + e) - 2 * h(bs) + h(bs - e)) / e ** 2
        total += h(bs) + 0.5 * np.log(2 * np.pi) - 0.5 * np.log(curv)
    return total


def _check_optimum(groups, beta, sd, sigma, nu, llf):
    ref = _laplace_llf(groups, beta, sd, sigma, nu)
    assert abs(llf - ref) < 1e-5, (llf, ref)
    moves = []
    for i in range(len(beta)):
        for s in (2e-3, -2e-3):
            bb = beta.copy()
            bb[i] += s
            moves.append((bb, sd, sigma, nu))
    for s in (1.01, 0.99):
        moves += [(beta, sd * s, sigma, nu), (beta, sd, sigma * s, nu)]
    return ref, moves


def test_grouseticks_fit_with_nu_held_is_the_laplace_optimum(mod, grouseticks):
    df = grouseticks
    m = _fit(FORMULA, df, interlace.family("delaporte", nu=0.2))
    X = np.column_stack([np.ones(len(df)), (df["YEAR"].astype(str) == "96").to_numpy(float),
                         (df["YEAR"].astype(str) == "97").to_numpy(float)])
    assert list(m.fe_params.index) == ["Intercept", "YEAR[T.96]", "YEAR[T.97]"]
    y = df["TICKS"].to_numpy(float)
    groups = [(_Terms(y[i]), X[i]) for i in df.groupby("LOCATION", observed=True).indices.values()]
    beta, sd, sigma = m.fe_params.to_numpy(), float(m.varcorr["sdcor"].iloc[0]), m.family_params["sigma"]
    _ref, moves = _check_optimum(groups, beta, sd, sigma, 0.2, m.llf)
    for b, s, sg, nu in moves:
        assert _laplace_llf(groups, b, s, sg, nu) < m.llf + 1e-6


def _sim(seed=2, ng=40, per=15, sigma=1.5, nu=0.5):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(ng), per)
    x = np.round(rng.normal(size=ng * per), 4)
    mu = np.exp(1.8 + 0.5 * x + rng.normal(0, 0.4, ng)[g])
    k = 1.0 / sigma
    y = rng.poisson(mu * nu) + rng.negative_binomial(k, k / (k + mu * (1 - nu)))
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": [f"G{i:02d}" for i in g]})


def test_free_fit_is_the_laplace_optimum(mod):
    df = _sim()
    m = _fit("y ~ x + (1 | g)", df, "delaporte")
    X = np.column_stack([np.ones(len(df)), df["x"].to_numpy(float)])
    y = df["y"].to_numpy(float)
    groups = [(_Terms(y[i]), X[i]) for i in df.groupby("g", observed=True).indices.values()]
    beta, sd = m.fe_params.to_numpy(), float(m.varcorr["sdcor"].iloc[0])
    sigma, nu = m.family_params["sigma"], m.family_params["nu"]
    _ref, moves = _check_optimum(groups, beta, sd, sigma, nu, m.llf)
    for s in (0.05, -0.05):  # logit(nu) moved
        moves.append((beta, sd, sigma, float(special.expit(special.logit(nu) + s))))
    for b, s, sg, n in moves:
        assert _laplace_llf(groups, b, s, sg, n) < m.llf + 1e-6
    # the simulation's values within a few standard errors
    assert abs(beta[1] - 0.5) < 0.1 and 0.2 < nu < 0.8 and 0.6 < sigma < 3.0


def test_simulate_has_the_delaporte_moments(mod):
    fam = interlace.family("delaporte")
    rng = np.random.default_rng(3)
    mu = np.full((1, 200000), 6.0)
    y = fam.simulate(mu, np.ones(200000), rng, {"sigma": 0.5, "nu": 0.4, "dispersion": None})
    assert abs(y.mean() - 6.0) < 0.05 and abs(y.var() / (6.0 + 0.5 * 36.0 * 0.36) - 1) < 0.03


def test_rejects_fractional_and_negative_counts(mod):
    df = _sim()
    with pytest.raises(ValueError, match="whole counts"):
        _fit("y ~ x + (1 | g)", df.assign(y=df["y"] + 0.5), "delaporte")
    with pytest.raises(ValueError, match="negative"):
        _fit("y ~ x + (1 | g)", df.assign(y=df["y"] - 100.0), "delaporte")
