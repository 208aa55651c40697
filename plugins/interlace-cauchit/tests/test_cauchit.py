"""interlace-cauchit: found through the entry point (never imported here) and fitted
against R's ``glmer(..., family = binomial(link = "cauchit"))`` on cbpp."""

from __future__ import annotations

import json
import os
import sys
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.plugins import manager

# The R fixture lives in the main repository (tests/fixtures/cases/cbpp_cauchit.json).
REPO = Path(os.environ.get("INTERLACE_REPO", Path(__file__).resolve().parents[3]))
FIXTURE = REPO / "tests" / "fixtures" / "cases" / "cbpp_cauchit.json"


def _entry_point():
    eps = [ep for ep in metadata.entry_points(group="interlace.families") if ep.name == "cauchit"]
    if not eps:
        pytest.skip("interlace-cauchit is not installed: pip install ./plugins/interlace-cauchit")
    return eps[0]


def test_entry_point_declared():
    ep = _entry_point()
    assert ep.value == "interlace_cauchit"
    assert ep.dist is not None and ep.dist.name == "interlace-cauchit"


def test_registered_under_its_name_by_its_distribution():
    _entry_point()
    manager.reset()  # load plugins afresh in this process
    sys.modules.pop("interlace_cauchit", None)
    avail = interlace.families.available()
    assert avail["binomial_cauchit"] == "interlace-cauchit"
    assert "interlace_cauchit" in sys.modules  # imported by interlace's plugin manager
    fam = interlace.family("binomial_cauchit")
    assert fam.name == "binomial" and fam.link.name == "cauchit" and fam.fast_path is None
    mu = fam.linkinv(np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_allclose(mu, [0.25, 0.5, 0.75])


def test_fit_matches_lme4_cauchit():
    """glmer(family="binomial_cauchit") vs lme4 on cbpp.

    The cauchit likelihood is flat along the fixed effects: R's Nelder-Mead stops
    slightly below interlace's maximum (2e-5 to 3e-4 in llf), moving the estimates
    by up to 0.02 of their standard errors. llf is held to 1e-4 (and may exceed
    R's), the fixed effects to 0.05 standard errors, their SEs, theta and the
    fitted values to 1e-2 (theta to 1e-3).
    """
    _entry_point()
    if not hasattr(interlace, "glmer"):
        pytest.skip("interlace.glmer is not available in this interlace version")
    if not FIXTURE.exists():
        pytest.skip(f"R fixture {FIXTURE} not found (set INTERLACE_REPO to the interlace checkout)")
    case = json.loads(FIXTURE.read_text())
    df = pd.read_csv(REPO / "tests" / "fixtures" / "data" / case["dataset"])
    levels = case["factor_levels"]["period"]["levels"]
    df["period"] = pd.Categorical(df["period"].astype(str), categories=levels)
    df["herd"] = df["herd"].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.glmer(case["python_call"]["formula"], df, family="binomial_cauchit")
    assert res.family.link.name == "cauchit"
    assert res.llf >= case["loglik"] - 1e-4
    assert abs(res.llf - case["loglik"]) < 1e-3
    beta_r = np.array([case["fixef"][n] for n in case["fixef_names"]])
    se_r = np.array([case["se"][n] for n in case["fixef_names"]])
    assert np.all(np.abs(np.asarray(res.fe_params, float) - beta_r) < 0.05 * se_r)
    np.testing.assert_allclose(np.asarray(res.fe_bse, float), se_r, rtol=1e-2)
    np.testing.assert_allclose(np.asarray(res.theta, float), list(case["theta"].values()), rtol=1e-3)
    np.testing.assert_allclose(np.asarray(res.fittedvalues, float), case["fitted"], rtol=1e-2)
