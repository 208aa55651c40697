"""Parity with glmmTMB 1.1.5 for the ou, exp, gau, mat and rr structures (issue 21 part 2).

Fixtures: tests/fixtures/covspatial/make_fixtures.R (simulated data as CSV, glmmTMB's fits as
JSON). Each case is fitted here through the formula syntax and compared with glmmTMB: the
log-likelihood (no worse than R's by more than 1e-4), fixed effects and their SEs, the
variance components (SDs, the structure's correlation parameters, the correlation matrix) and
the conditional predictions at new positions / new time points (type "link").
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import interlace

FIX = Path(__file__).parent / "fixtures" / "covspatial"

CASES = {
    # case: (formula, family, extra columns)
    "ou_poisson": ("y ~ x + ou(numFactor(t) + 0 | subject)", "poisson"),
    "exp_gaussian": ("y ~ z + exp(pos + 0 | group)", "gaussian"),
    "gau_binomial": ("y ~ x + gau(numFactor(px, py) + 0 | year)", "binomial"),
    "mat_poisson": ("y ~ x + mat(pos + 0 | group)", "poisson"),
    "rr_poisson": ("y ~ 0 + trait + x + rr(0 + trait | site, d = 2)", "poisson"),
}

REL = 1e-3


def _data(case: str) -> pd.DataFrame:
    d = pd.read_csv(FIX / f"{case}.csv")
    if "px" in d:
        d["pos"] = interlace.numFactor(d.px, d.py)
    d["group"] = "1"
    return d


@lru_cache(maxsize=None)
def _fit(case: str):
    form, fam = CASES[case]
    return interlace.glmer(form, _data(case), family=fam)


def _fx(case: str) -> dict:
    return json.loads((FIX / f"{case}.json").read_text())


def _close(a, b, rel=REL, floor=1e-3):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    err = np.abs(a - b) / np.maximum(np.abs(b), floor)
    assert np.all(err <= rel), f"max relative difference {err.max():.2e}:\n{a}\n{b}"


@pytest.mark.parametrize("case", list(CASES))
def test_fit_matches_glmmtmb(case):
    fx, m = _fx(case), _fit(case)
    assert m.converged, m.optinfo
    assert m.llf >= fx["logLik"] - 1e-4
    assert m.llf - fx["logLik"] < 1e-3  # not a different model
    _close(m.fe_params.to_numpy(), list(fx["fixef"].values()))
    # glmmTMB's SEs come from the Hessian in every parameter, as glmer's (Laplace) do; an LMM
    # reports lme4's SEs, the covariance parameters held fixed (glmmTMB's with theta mapped)
    _close(m.fe_bse.to_numpy(), list(fx.get("se_theta_fixed", fx["se"]).values()))
    term = m.model_frame.terms[0]
    cov = term.cov
    par = m.theta.to_numpy(dtype=float)
    sigma = float(np.sqrt(m.scale)) if fx["family"] == "gaussian" else 1.0
    if fx["family"] == "gaussian":
        _close(sigma, fx["sigma"])
    lam = cov.lambda_(par) * sigma
    S = lam @ lam.T
    sd = np.sqrt(np.diag(S))
    _close(sd, fx["sd"])
    corr = S / np.outer(sd, sd)
    np.testing.assert_allclose(corr, np.asarray(fx["corr"], float), atol=REL)
    if case == "rr_poisson":
        # the loadings are unique up to each column's sign (glmmTMB's diagonal may be negative)
        R = np.asarray(fx["fact_load"], float).reshape(cov.k, cov.d)
        R = R * np.sign(np.diag(R))[None, :]
        _close(cov.loadings(par), R, floor=1e-2)
    else:
        # glmmTMB's theta: log SD, then the correlation parameters on glmmTMB's scale
        th = cov.tmb_theta(par, sigma)
        assert np.max(np.abs(th - np.asarray(fx["theta"]))) < REL


@pytest.mark.parametrize("case", ["ou_poisson", "exp_gaussian"])
def test_predict_new_positions_and_times(case):
    """glmmTMB's predict at new positions / time points: the conditional mean of the new
    random effects given the fitted ones, from the structure's correlation."""
    fx, m = _fx(case), _fit(case)
    nd = pd.DataFrame(fx["newdata"])
    if "px" in nd:
        nd["pos"] = interlace.numFactor(nd.px, nd.py)
        nd["group"] = "1"
    pr = m.predict(nd, type="link", allow_new_levels=True)
    _close(pr.to_numpy(), fx["predict_link"])
