"""Model comparison and intervals for lmer fits against lme4 (make_lmer.R):
anova of REML fits refits with ML, confint (Wald, profile) of a REML fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import interlace
from tests.lmer_cases import data, fitted, load


def test_anova_of_reml_fits_refits_with_ml():
    fx = load("sleepstudy_reml")
    df = data(fx["dataset"])
    m1 = fitted("sleepstudy_reml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m0 = interlace.lmer(fx["anova_refit"]["m0_formula"], df)
    with pytest.warns(UserWarning, match="refitting model"):
        tab = interlace.anova(m0, m1, names=["m0", "m"])
    assert tab.attrs["refitted"]
    for r in fx["anova_refit"]["rows"]:
        ours = tab.loc[r["term"]]
        assert ours["npar"] == r["npar"]
        assert ours["logLik"] == pytest.approx(r["logLik"], abs=1e-4)
        assert ours["AIC"] == pytest.approx(r["AIC"], abs=2e-4)
        if r["Chisq"] is not None:
            assert ours["Chisq"] == pytest.approx(r["Chisq"], abs=2e-4)
            assert ours["Pr(>Chisq)"] == pytest.approx(r["Pr(>Chisq)"], rel=1e-3)


def test_anova_same_fixed_effects_keeps_reml():
    df = data("sleepstudy.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no refit message
        a = interlace.lmer("Reaction ~ Days + (1 | Subject)", df)
        b = fitted("sleepstudy_reml")
        tab = interlace.anova(a, b)
    assert not tab.attrs["refitted"]
    assert tab["logLik"].iloc[1] == pytest.approx(b.llf)


def test_single_lmer_anova_is_the_f_table():
    m = fitted("cake_main")
    tab = interlace.anova(m, type=2)
    rows = {r["term"]: r for r in load("cake_main")["satterthwaite"]["anova2"]}
    assert tab.loc["recipe", "F value"] == pytest.approx(rows["recipe"]["F value"], rel=1e-3)


def test_confint_wald_and_profile_of_reml_fit():
    fx = load("sleepstudy_reml")["confint"]
    m = fitted("sleepstudy_reml")
    w = m.confint(method="Wald")
    for r in fx["Wald"]:
        name = "Intercept" if r["term"] == "(Intercept)" else r["term"]
        if r["2.5 %"] is None:
            assert np.isnan(w.loc[name]).all()
        else:
            np.testing.assert_allclose(w.loc[name], [r["2.5 %"], r["97.5 %"]], rtol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = m.confint(method="profile")
    for r in fx["profile"]:
        name = "Intercept" if r["term"] == "(Intercept)" else r["term"]
        np.testing.assert_allclose(p.loc[name], [r["2.5 %"], r["97.5 %"]], rtol=2e-3, atol=2e-3)


def test_bootstrap_of_reml_fit_refits_reml():
    m = fitted("dyestuff_reml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        br = m.bootstrap(nsim=3, seed=1, fn=lambda r: np.array([float(r.optinfo["REML"])]))
    assert br.replicates.to_numpy()[:, 0].tolist() == [1.0, 1.0, 1.0]
