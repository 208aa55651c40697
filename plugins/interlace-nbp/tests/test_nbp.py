"""interlace-nbp against independent references: scipy.stats.nbinom (the density with size
theta mu^(2 - P)), central differences of the log density, glmmTMB 1.1.5's nbinom2 (P = 2)
and nbinom1 (P = 1) fits (the repository's fixtures tests/fixtures/cases/grouseticks_nb_tmb.json
and nb1.json), and for P = 1.5 an independent Laplace approximation from scipy's density."""

from __future__ import annotations

import importlib
import json
import os
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
REPO = Path(os.environ.get("INTERLACE_REPO", Path(__file__).resolve().parents[3]))
CASES = REPO / "tests" / "fixtures" / "cases"


def _module():
    eps = [ep for ep in metadata.entry_points(group="interlace.families") if ep.name == "nbp"]
    if not eps:
        sys.path.insert(0, str(HERE.parent))
        mod = importlib.import_module("interlace_nbp")
        if "nbp" not in manager.get_registry():
            manager.register_plugin(mod, name="interlace-nbp (source)", distribution="interlace-nbp")
        return mod
    return importlib.import_module(eps[0].value)


@pytest.fixture(scope="module")
def mod():
    return _module()


@pytest.mark.parametrize("power", [1.0, 1.5, 2.0, 2.7])
def test_density_and_derivatives(mod, power):
    rng = np.random.default_rng(3)
    y = rng.poisson(4, 40).astype(float)
    eta, p = rng.normal(1.0, 0.6, 40), rng.normal(0.2, 0.7, 40)
    P = mod.nbp_parts(y, eta, p, power, 2)
    size, mu = np.exp(p) * np.exp(eta) ** (2 - power), np.exp(eta)
    np.testing.assert_allclose(P.g, stats.nbinom.logpmf(y, size, size / (size + mu)), rtol=1e-12, atol=1e-12)
    h = 1e-5

    def at(e, q, k):
        return getattr(mod.nbp_parts(y, e, q, power, 2), k)

    for lo, hi in (("g", "e"), ("e", "ee"), ("ee", "eee"), ("p", "ep"), ("ep", "eep"), ("pp", "epp")):
        np.testing.assert_allclose(getattr(P, hi), (at(eta + h, p, lo) - at(eta - h, p, lo)) / (2 * h),
                                   rtol=1e-6, atol=1e-6)
    for lo, hi in (("g", "p"), ("p", "pp"), ("pp", "ppp")):
        np.testing.assert_allclose(getattr(P, hi), (at(eta, p + h, lo) - at(eta, p - h, lo)) / (2 * h),
                                   rtol=1e-6, atol=1e-6)


def _case(name):
    case = json.loads((CASES / f"{name}.json").read_text())
    df = pd.read_csv(REPO / "tests" / "fixtures" / "data" / case["dataset"])
    for col, info in case.get("factor_levels", {}).items():
        df[col] = pd.Categorical(df[col].astype(str), categories=[str(v) for v in info["levels"]])
    return case, df


@pytest.mark.parametrize("name,power", [("grouseticks_nb_tmb", 2.0), ("nb1", 1.0)])
def test_power_two_and_one_are_glmmtmb_nbinom2_and_nbinom1(mod, name, power):
    case, df = _case(name)
    call = case["python_call"]
    kw = {"offset": call["offset"]} if "offset" in call else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = interlace.glmer(call["formula"], df, family=interlace.family("nbp", power=power), **kw)
    assert abs(m.llf - case["loglik"]) < 1e-4
    want = np.array([case["fixef"][k] for k in case["fixef_names"]])
    assert np.max(np.abs(m.fe_params.to_numpy() - want) / np.abs(want)) < 1e-3
    sd = case["varcorr"][0]["sdcor"]
    assert abs(float(m.varcorr["sdcor"].iloc[0]) / sd - 1) < 1e-3
    fp = case["family_params"]
    theta = fp["theta"] if power == 2.0 else 1.0 / fp["phi"]
    assert abs(m.family_params["theta"] / theta - 1) < 1e-3


def test_power_between_is_the_laplace_optimum(mod):
    rng = np.random.default_rng(8)
    ng, per = 30, 12
    g = np.repeat(np.arange(ng), per)
    x = np.round(rng.normal(size=ng * per), 4)
    mu = np.exp(1.0 + 0.5 * x + rng.normal(0, 0.4, ng)[g])
    size = 2.0 * mu ** 0.5
    y = rng.negative_binomial(size, size / (size + mu)).astype(float)
    df = pd.DataFrame({"y": y, "x": x, "g": [f"G{i:02d}" for i in g]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = interlace.glmer("y ~ x + (1 | g)", df, family=interlace.family("nbp", power=1.5))
    beta, sd, th = m.fe_params.to_numpy(), float(m.varcorr["sdcor"].iloc[0]), m.family_params["theta"]

    def laplace(beta, sd, th):
        tot = 0.0
        for _, d in df.groupby("g"):
            yy, xx = d["y"].to_numpy(), d["x"].to_numpy()

            def h(b):
                mu = np.exp(beta[0] + beta[1] * xx + b)
                k = th * mu ** 0.5
                return float(np.sum(stats.nbinom.logpmf(yy, k, k / (k + mu))) + stats.norm.logpdf(b, 0, sd))

            bs = optimize.minimize_scalar(lambda b: -h(b), bounds=(-4, 4), method="bounded",
                                          options={"xatol": 1e-10}).x
            e = 1e-4
            tot += h(bs) + 0.5 * np.log(2 * np.pi) - 0.5 * np.log(-(h(bs + e) - 2 * h(bs) + h(bs - e)) / e ** 2)
        return tot

    assert abs(m.llf - laplace(beta, sd, th)) < 1e-5
    for s in (1.01, 0.99):
        assert laplace(beta, sd * s, th) < m.llf + 1e-6
        assert laplace(beta, sd, th * s) < m.llf + 1e-6
    assert abs(th - 2.0) < 0.8
