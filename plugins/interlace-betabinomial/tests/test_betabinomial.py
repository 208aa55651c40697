"""interlace-betabinomial: found through its entry point and fitted against glmmTMB
(``family = betabinomial``) on cbpp and on simulated data (fixtures in tests/fixtures)."""

from __future__ import annotations

import json
import sys
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import interlace
from interlace.plugins import manager

HERE = Path(__file__).resolve().parent / "fixtures"


def _entry_point():
    eps = [ep for ep in metadata.entry_points(group="interlace.families") if ep.name == "betabinomial"]
    if not eps:
        pytest.skip("interlace-betabinomial is not installed: pip install ./plugins/interlace-betabinomial")
    return eps[0]


def _case(name):
    case = json.loads((HERE / f"{name}.json").read_text())
    df = pd.read_csv(HERE / case["dataset"])
    for col, info in case.get("factor_levels", {}).items():
        df[col] = pd.Categorical(df[col].astype(str), categories=[str(v) for v in info["levels"]])
    return case, df


def _fit(case, df, key="python_call"):
    call = case[key]
    kw = {k: call[k] for k in ("weights", "offset") if k in call}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.glmer(call["formula"], df, family="betabinomial", **kw)


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def test_registered_by_its_distribution():
    ep = _entry_point()
    assert ep.value == "interlace_betabinomial"
    manager.reset()
    sys.modules.pop("interlace_betabinomial", None)
    assert interlace.families.available()["betabinomial"] == "interlace-betabinomial"
    fam = interlace.family("betabinomial")
    assert fam.name == "betabinomial" and fam.link.name == "logit"


def test_density_matches_scipy():
    _entry_point()
    fam = interlace.family("betabinomial")
    n = np.array([5.0, 12.0, 1.0, 30.0])
    k = np.array([0.0, 7.0, 1.0, 11.0])
    eta = np.array([-0.4, 0.3, 1.2, -1.0])
    lphi = 1.3
    ll = fam.derivs(k / n, n, eta, {"disp": np.full(4, lphi)}, order=0).l
    mu, phi = special.expit(eta), np.exp(lphi)
    np.testing.assert_allclose(ll, stats.betabinom.logpmf(k, n, mu * phi, (1 - mu) * phi), rtol=1e-12)


@pytest.mark.parametrize("name", ["betabinomial_sim", "betabinomial"])
def test_fit_matches_glmmtmb(name):
    _entry_point()
    case, df = _case(name)
    res = _fit(case, df)
    names = case["fixef_names"]
    ours = [f"period[T.{n[len('period'):]}]" if n.startswith("period") else
            ("Intercept" if n == "(Intercept)" else n) for n in names]
    assert abs(res.llf - case["loglik"]) < 1e-4
    assert _rel(res.fe_params[ours], [case["fixef"][n] for n in names]) < 1e-3
    assert _rel(res.fe_bse[ours], [case["se"][n] for n in names]) < 1e-3
    fp = case["family_params"]
    assert _rel(res.family_params["phi"], fp["phi"]) < 1e-3
    assert _rel(res.family_params["disp_coef_se"]["Intercept"], fp["disp_coef_raw_se"]["(Intercept)"]) < 1e-3
    sd_r = case["varcorr"][0]["sdcor"]
    sd = float(res.varcorr["sdcor"].iloc[0])
    if name == "betabinomial":
        # the herd SD sits at the boundary (R: about 1e-4, weakly determined): compare absolutely
        assert abs(sd - sd_r) < 1e-3
    else:
        assert _rel(sd, sd_r) < 1e-3
    np.testing.assert_allclose(res.fittedvalues, case["fitted"], rtol=1e-3)
    if "python_call_alt" in case:  # proportion + weights = trials is the same model
        assert abs(_fit(case, df, "python_call_alt").llf - res.llf) < 1e-8


def test_invalid_response_names_column():
    _entry_point()
    _case_, df = _case("betabinomial")
    df = df.assign(p=df["incidence"] / df["size"] + 2.0)
    with pytest.raises(ValueError, match="'p'"):
        interlace.glmer("p ~ period + (1 | herd)", df, family="betabinomial", weights="size")
