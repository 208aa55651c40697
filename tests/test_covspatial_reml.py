"""REML fits of the spatial and continuous-time structures (ou, exp, gau, mat) on a Gaussian
response, against glmmTMB 1.1.5's ``REML = TRUE`` (issue 21 item 3: the LMM by REML with
every structure).

Fixture: tests/fixtures/covspatial/make_reml.R (exp, gau and mat on the exp_gaussian data of
make_fixtures.R, 60 irregular 2-D positions in one group; ou on ou_gaussian.csv, 40 subjects
at irregular times). Compared: the restricted log-likelihood within 1e-4, fixed effects, SEs,
sigma and the SDs within 1e-3 relative, glmmTMB's theta (log SD, then the correlation
parameters) and the correlation matrix within 1e-3. The SEs are lme4's LMM convention (the
GLS covariance at the estimates, ``se_theta_fixed`` computed by the R script), which
interlace's LMM reports.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import interlace

FIX = Path(__file__).parent / "fixtures" / "covspatial"

CASES = {
    "ou": "y ~ x + ou(numFactor(t) + 0 | subject)",
    "exp": "y ~ z + exp(pos + 0 | group)",
    "gau": "y ~ z + gau(pos + 0 | group)",
    "mat": "y ~ z + mat(pos + 0 | group)",
}


def _fx(st: str) -> dict:
    return json.loads((FIX / f"reml_{st}_gaussian.json").read_text())


@lru_cache(maxsize=None)
def _fit(st: str):
    d = pd.read_csv(FIX / _fx(st)["dataset"])
    if "px" in d:
        d["pos"] = interlace.numFactor(d.px, d.py)
        d["group"] = "1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.lmer(CASES[st], d, REML=True)


def _close(a, b, rel=1e-3, floor=1e-3):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    err = np.abs(a - b) / np.maximum(np.abs(b), floor)
    assert np.all(err <= rel), f"max relative difference {err.max():.2e}:\n{a}\n{b}"


@pytest.mark.parametrize("st", list(CASES))
def test_reml_matches_glmmtmb(st):
    fx, m = _fx(st), _fit(st)
    assert fx["REML"] and fx["structure"] == st
    assert m.converged, m.optinfo
    assert m.optinfo.get("REML") is True
    assert abs(m.llf - fx["logLik"]) < 1e-4
    _close(m.fe_params.to_numpy(), list(fx["fixef"].values()))
    _close(m.fe_bse.to_numpy(), list(fx["se_theta_fixed"].values()))
    cov = m.model_frame.terms[0].cov
    assert cov.name == st
    par = m.theta.to_numpy(dtype=float)
    sigma = float(np.sqrt(m.scale))
    _close(sigma, fx["sigma"])
    assert np.max(np.abs(cov.tmb_theta(par, sigma) - np.asarray(fx["theta"]))) < 1e-3
    lam = cov.lambda_(par) * sigma
    S = lam @ lam.T
    sd = np.sqrt(np.diag(S))
    _close(sd, fx["sd"])
    np.testing.assert_allclose(S / np.outer(sd, sd), np.asarray(fx["corr"], float), atol=1e-3)


def test_reml_is_not_ml():
    """The REML fit differs from the ML one on the same data (the fixture is not an ML fit)."""
    fx = _fx("exp")
    d = pd.read_csv(FIX / fx["dataset"])
    d["pos"] = interlace.numFactor(d.px, d.py)
    d["group"] = "1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = interlace.lmer(CASES["exp"], d, REML=False)
    assert abs(ml.llf - fx["logLik"]) > 0.1
    assert np.sqrt(ml.scale) != pytest.approx(fx["sigma"], rel=1e-3)
