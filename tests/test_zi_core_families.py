"""genpois and betabinomial in the core (glmmTMB's parametrization): densities from
mathematics (mass, mean, variance), derivatives against central differences, simulation
moments. Parity of the fits with glmmTMB: tests/test_families_tmb.py (cases genpois,
betabinomial, betabinomial_sim in tests/fixtures/cases)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import interlace
from interlace.families.betabinomial import betabinomial_parts
from interlace.families.genpois import genpois_parts


def test_registered_as_builtin():
    avail = interlace.families.available()
    assert avail["genpois"] == "interlace" and avail["betabinomial"] == "interlace"


@pytest.mark.parametrize("mu,phi", [(3.2, 2.5), (0.4, 1.3), (12.0, 6.0)])
def test_genpois_mass_mean_variance(mu, phi):
    y = np.arange(0.0, 2000.0)
    p = np.exp(genpois_parts(y, np.full_like(y, np.log(mu)), np.full_like(y, np.log(phi)), 0).g)
    assert abs(p.sum() - 1) < 1e-10
    assert abs((y * p).sum() - mu) < 1e-8
    assert abs(((y - mu) ** 2 * p).sum() - phi * mu) < 1e-6


def test_betabinomial_mass_mean_variance():
    n, mu, phi = 9.0, 0.3, 4.0
    k = np.arange(0.0, n + 1)
    p = np.exp(betabinomial_parts(k, np.full_like(k, n), np.full_like(k, special.logit(mu)),
                                  np.full_like(k, np.log(phi)), 0).g)
    assert abs(p.sum() - 1) < 1e-12
    assert abs((k * p).sum() - n * mu) < 1e-10
    var = n * mu * (1 - mu) * (1 + (n - 1) / (phi + 1))
    assert abs(((k - n * mu) ** 2 * p).sum() - var) < 1e-9


def _check_parts(fn, eta, p):
    P = fn(eta, p)
    h = 1e-5
    for lo, hi in (("g", "e"), ("e", "ee"), ("ee", "eee"), ("p", "ep"), ("ep", "eep")):
        fd = (getattr(fn(eta + h, p), lo) - getattr(fn(eta - h, p), lo)) / (2 * h)
        np.testing.assert_allclose(getattr(P, hi), fd, rtol=1e-5, atol=1e-6)
    fd = (fn(eta, p + h).g - fn(eta, p - h).g) / (2 * h)
    np.testing.assert_allclose(P.p, fd, rtol=1e-5, atol=1e-6)


def test_derivatives_match_central_differences():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 20, 30).astype(float)
    _check_parts(lambda e, q: genpois_parts(y, e, q, 2), rng.normal(1, 0.5, 30), rng.normal(0.5, 0.4, 30))
    n = rng.integers(1, 12, 30).astype(float)
    k = np.floor(rng.uniform(size=30) * (n + 1))
    _check_parts(lambda e, q: betabinomial_parts(k, n, e, q, 2), rng.normal(0, 1, 30), rng.normal(1, 0.5, 30))


def test_simulate_moments():
    rng = np.random.default_rng(4)
    fam = interlace.family("genpois")
    y = fam.simulate(np.full((1, 40000), 3.0), np.ones(40000), rng, {"phi": 2.0, "dispersion": None})
    assert abs(y.mean() - 3.0) < 0.05 and abs(y.var() / 6.0 - 1) < 0.05
    fam = interlace.family("betabinomial")
    n = np.full(40000, 10.0)
    yb = fam.simulate(np.full((1, 40000), 0.3), n, rng, {"phi": 4.0, "dispersion": None}) * 10
    assert abs(yb.mean() - 3.0) < 0.05 and abs(yb.var() / (10 * 0.21 * (1 + 9 / 5)) - 1) < 0.05


@pytest.mark.parametrize("name", ["genpois", "betabinomial_sim", "betabinomial"])
def test_core_fit_matches_glmmtmb(name):
    """The glmmTMB fixtures that the plugins were tested on, now with the core families."""
    import warnings

    from conftest import load_case
    from oracle_utils import compare, fit_case

    case = load_case(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_case(case)
    assert res.optinfo["engine"] == "general" and type(res.family).__module__.startswith("interlace.families")
    c = compare(res, case)
    assert c["llf_diff"] > -1e-4, c
    assert c["fixef"] < 1e-3 and c["se"] < 1e-3, c
    if name != "betabinomial":  # cbpp: the herd SD is on the boundary (R 1.4e-4, ours 0)
        assert c["varcorr"] < 1e-3, c
    fp = case["family_params"]
    assert abs(res.family_params["phi"] / fp["phi"] - 1) < 1e-3
