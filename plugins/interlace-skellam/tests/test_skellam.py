"""interlace-skellam against independent references: VGAM's dskellam (fixture made by
tests/fixtures/make_dskellam.R), scipy.stats.skellam, central differences, and an
independent Laplace approximation built from scipy's log density alone."""

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
from scipy import optimize, stats

import interlace
from interlace.plugins import manager

HERE = Path(__file__).resolve().parent


def _module():
    """The installed plugin (entry point), or its source next to this folder."""
    eps = [ep for ep in metadata.entry_points(group="interlace.families") if ep.name == "skellam"]
    if not eps:
        sys.path.insert(0, str(HERE.parent))
        mod = importlib.import_module("interlace_skellam")
        if "skellam" not in manager.get_registry():
            manager.register_plugin(mod, name="interlace-skellam (source)", distribution="interlace-skellam")
        return mod
    return importlib.import_module(eps[0].value)


@pytest.fixture(scope="module")
def mod():
    return _module()


def test_registered(mod):
    assert interlace.family("skellam").name == "skellam"
    assert interlace.family("skellam", mu2=2.0).fixed_aux["disp"] == pytest.approx(np.log(2.0))


def test_density_matches_vgam_and_scipy(mod):
    ref = json.loads((HERE / "fixtures" / "dskellam.json").read_text())
    y, mu1, mu2 = (np.asarray(ref[k], float) for k in ("y", "mu1", "mu2"))
    g = mod.skellam_parts(y, np.log(mu1), np.log(mu2), 0).g
    np.testing.assert_allclose(g, ref["logd"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(g, stats.skellam.logpmf(y, mu1, mu2), rtol=1e-8, atol=1e-8)


def test_derivatives_match_central_differences(mod):
    rng = np.random.default_rng(1)
    y = rng.integers(-12, 15, size=40).astype(float)
    eta, p = rng.normal(0.5, 1.0, 40), rng.normal(0.3, 1.0, 40)
    P = mod.skellam_parts(y, eta, p, 2)
    h = 1e-5

    def part(e, q, name):
        return getattr(mod.skellam_parts(y, e, q, 2), name)

    for name, base in (("g", "e"), ("e", "ee"), ("ee", "eee"), ("p", "ep"), ("ep", "eep")):
        fd = (part(eta + h, p, name) - part(eta - h, p, name)) / (2 * h)
        np.testing.assert_allclose(getattr(P, base), fd, rtol=1e-5, atol=1e-6)
    fd = (part(eta, p + h, "g") - part(eta, p - h, "g")) / (2 * h)
    np.testing.assert_allclose(P.p, fd, rtol=1e-5, atol=1e-6)


def _sim(seed=7, ng=30, per=12):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(ng), per)
    x = np.round(rng.normal(size=ng * per), 4)
    b = rng.normal(0, 0.5, ng)
    mu1 = np.exp(0.8 + 0.4 * x + b[g])
    y = rng.poisson(mu1) - rng.poisson(1.5, size=ng * per)
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": pd.Categorical([f"G{i:02d}" for i in g])})


def _laplace_llf(df, beta, sd, mu2):
    """Independent Laplace log-likelihood: per group, the mode of the joint log density in
    b (scipy's logpmf, scalar optimisation) and its curvature by central differences."""
    total = 0.0
    for _, d in df.groupby("g", observed=True):
        y, x = d["y"].to_numpy(), d["x"].to_numpy()

        def h(b):
            return float(np.sum(stats.skellam.logpmf(y, np.exp(beta[0] + beta[1] * x + b), mu2))
                         + stats.norm.logpdf(b, 0.0, sd))

        bs = optimize.minimize_scalar(lambda b: -h(b), bounds=(-5, 5), method="bounded",
                                      options={"xatol": 1e-10}).x
        e = 1e-4
        curv = -(h(bs + e) - 2 * h(bs) + h(bs - e)) / e ** 2
        total += h(bs) + 0.5 * np.log(2 * np.pi) - 0.5 * np.log(curv)
    return total


def test_random_intercept_fit_is_the_laplace_optimum(mod):
    df = _sim()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = interlace.glmer("y ~ x + (1 | g)", df, family="skellam")
    beta = m.fe_params.to_numpy()
    sd = float(m.varcorr["sdcor"].iloc[0])
    mu2 = m.family_params["mu2"]
    ref = _laplace_llf(df, beta, sd, mu2)
    assert abs(m.llf - ref) < 1e-5
    # no coordinate move of the independent objective improves on the fit
    for i, step in ((0, 1e-3), (1, 1e-3)):
        for s in (step, -step):
            bb = beta.copy()
            bb[i] += s
            assert _laplace_llf(df, bb, sd, mu2) < m.llf + 1e-6
    for s in (1.01, 0.99):
        assert _laplace_llf(df, beta, sd * s, mu2) < m.llf + 1e-6
        assert _laplace_llf(df, beta, sd, mu2 * s) < m.llf + 1e-6
    assert abs(beta[1] - 0.4) < 0.15 and abs(mu2 - 1.5) < 0.6


def test_simulate_has_the_skellam_moments(mod):
    fam = interlace.family("skellam")
    rng = np.random.default_rng(3)
    mu = np.full((1, 200000), 2.0)
    y = fam.simulate(mu, np.ones(200000), rng, {"mu2": 1.5, "dispersion": None})
    assert abs(y.mean() - 2.0) < 0.03 and abs(y.var() - (3.5 + 1.5)) < 0.1


def test_rejects_fractional_response(mod):
    df = _sim().assign(y=lambda d: d["y"] + 0.5)
    with pytest.raises(ValueError, match="whole numbers"):
        interlace.glmer("y ~ x + (1 | g)", df, family="skellam")
