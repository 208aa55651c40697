"""interlace-genpois: found through its entry point and fitted against glmmTMB
(``family = genpois``) on Owls (fixture in tests/fixtures)."""

from __future__ import annotations

import json
import sys
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special

import interlace
from interlace.plugins import manager

HERE = Path(__file__).resolve().parent / "fixtures"


def _entry_point():
    eps = [ep for ep in metadata.entry_points(group="interlace.families") if ep.name == "genpois"]
    if not eps:
        pytest.skip("interlace-genpois is not installed: pip install ./plugins/interlace-genpois")
    return eps[0]


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def test_registered_by_its_distribution():
    ep = _entry_point()
    assert ep.value == "interlace_genpois"
    manager.reset()
    sys.modules.pop("interlace_genpois", None)
    assert interlace.families.available()["genpois"] == "interlace-genpois"
    assert interlace.family("genpois").link.name == "log"


def test_density_sums_to_one_with_mean_and_variance():
    """Consul's density with theta = mu / sqrt(phi), lambda = 1 - 1/sqrt(phi):
    total mass 1, mean mu, variance phi mu."""
    _entry_point()
    fam = interlace.family("genpois")
    y = np.arange(0.0, 400.0)
    mu, phi = 3.2, 2.5
    p = np.exp(fam.derivs(y, np.ones_like(y), np.full_like(y, np.log(mu)),
                          {"disp": np.full_like(y, np.log(phi))}, order=0).l)
    assert abs(p.sum() - 1) < 1e-10
    assert abs((y * p).sum() - mu) < 1e-8
    assert abs(((y - mu) ** 2 * p).sum() - phi * mu) < 1e-7
    assert np.isfinite(special.gammaln(1.0))


def test_fit_matches_glmmtmb():
    _entry_point()
    case = json.loads((HERE / "genpois.json").read_text())
    df = pd.read_csv(HERE / case["dataset"])
    for col, info in case["factor_levels"].items():
        df[col] = pd.Categorical(df[col].astype(str), categories=[str(v) for v in info["levels"]])
    call = case["python_call"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.glmer(call["formula"], df, family="genpois", offset=call["offset"])
    names = case["fixef_names"]
    ours = ["Intercept" if n == "(Intercept)" else f"FoodTreatment[T.{n[len('FoodTreatment'):]}]" for n in names]
    assert abs(res.llf - case["loglik"]) < 1e-4
    assert _rel(res.fe_params[ours], [case["fixef"][n] for n in names]) < 1e-3
    assert _rel(res.fe_bse[ours], [case["se"][n] for n in names]) < 1e-3
    assert _rel(res.varcorr["sdcor"].iloc[0], case["varcorr"][0]["sdcor"]) < 1e-3
    fp = case["family_params"]
    assert _rel(res.family_params["phi"], fp["phi"]) < 1e-3
    assert _rel(res.family_params["disp_coef_se"]["Intercept"], fp["disp_coef_raw_se"]["(Intercept)"]) < 1e-3
    np.testing.assert_allclose(res.fittedvalues, case["fitted"], rtol=1e-3)


def test_negative_counts_raise_naming_column():
    _entry_point()
    df = pd.read_csv(HERE / "owls.csv")
    df.loc[0, "SiblingNegotiation"] = -1
    with pytest.raises(ValueError, match="SiblingNegotiation"):
        interlace.glmer("SiblingNegotiation ~ FoodTreatment + (1 | Nest)", df, family="genpois")
