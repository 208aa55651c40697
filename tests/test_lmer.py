"""interlace.lmer against lme4::lmer (fixtures from tests/fixtures/make_lmer.R):
REML criterion, logLik, AIC/BIC, sigma, fixed effects, SEs, VarCorr, BLUPs and
their conditional SDs, singular flags, for REML and ML fits."""

from __future__ import annotations

import numpy as np
import pytest

import interlace
from tests.lmer_cases import CASES, SMALL, data, fitted, load

RTOL = 1e-3


def _block(case, reml):
    return load(case)["reml" if reml else "ml"]


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("case", CASES)
def test_criterion_and_loglik(case, reml):
    r = _block(case, reml)
    m = fitted(case, reml)
    # parity rule: no worse than R by 1e-4 (the criterion is minimized)
    assert -2 * m.llf <= r["criterion"] + 2e-4
    assert abs(-2 * m.llf - r["criterion"]) < 1e-3
    assert m.llf == pytest.approx(r["logLik"], abs=1e-3)
    assert m.df_model == r["df"]
    assert m.aic == pytest.approx(r["AIC"], abs=2e-3)
    assert m.bic == pytest.approx(r["BIC"], abs=2e-3)
    assert np.sqrt(m.scale) == pytest.approx(r["sigma"], rel=RTOL)
    assert m.nobs == r["nobs"]
    assert m.optinfo["REML"] is reml


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("case", CASES)
def test_fixef_se_vcov(case, reml):
    r = _block(case, reml)
    m = fitted(case, reml)
    np.testing.assert_allclose(m.fe_params.to_numpy(), list(r["fixef"].values()), rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(m.fe_bse.to_numpy(), r["se"], rtol=RTOL)
    np.testing.assert_allclose(m.vcov.to_numpy(), np.array(r["vcov"]), rtol=RTOL, atol=1e-8 * np.max(r["se"]) ** 2)


def _key(grp, v1, v2):
    f = lambda v: None if v is None or v != v else ("(Intercept)" if v == "Intercept" else v)  # noqa: E731
    return (grp, f(v1), f(v2))


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("case", CASES)
def test_varcorr(case, reml):
    r = _block(case, reml)
    m = fitted(case, reml)
    ours = {_key(row.grp, row.var1, row.var2): (row.vcov, row.sdcor) for row in m.varcorr.itertuples()}
    assert len(ours) == len(r["varcorr"])
    for row in r["varcorr"]:
        vcov, sdcor = ours[_key(row["grp"], row.get("var1"), row.get("var2"))]
        scale = max(abs(row["vcov"]), 1e-6 * r["sigma"] ** 2)  # a singular component is compared absolutely
        assert abs(vcov - row["vcov"]) <= RTOL * scale + 1e-6, row
        if row.get("var2") is not None:
            assert sdcor == pytest.approx(row["sdcor"], abs=2e-3)


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("case", SMALL)
def test_ranef_and_condsd(case, reml):
    r = _block(case, reml)["ranef"]
    m = fitted(case, reml)
    got_v, got_s, want_v, want_s = [], [], [], []
    for g, t, lev, v, s in zip(r["grpvar"], r["term"], r["grp"], r["condval"], r["condsd"]):
        col = "Intercept" if t == "(Intercept)" else t
        frame = m.random_effects[g]
        idx = [str(x) for x in frame.index]
        i = idx.index(str(lev))
        got_v.append(frame[col].iloc[i])
        got_s.append(m.random_effects_sd[g][col].iloc[i])
        want_v.append(v)
        want_s.append(s)
    scale = np.max(np.abs(want_v)) + 1e-12
    np.testing.assert_allclose(got_v, want_v, atol=RTOL * scale)
    np.testing.assert_allclose(got_s, want_s, rtol=RTOL, atol=1e-6 * np.sqrt(m.scale))


@pytest.mark.parametrize("case", CASES)
def test_singular_flag(case):
    for reml in (True, False):
        assert fitted(case, reml).singular == _block(case, reml)["singular"], reml


def test_ml_equals_gaussian_glmer():
    fx = load("sleepstudy_reml")
    df = data(fx["dataset"])
    a = interlace.lmer(fx["python_formula"], df, REML=False)
    b = interlace.glmer(fx["python_formula"], df, family="gaussian")
    assert a.llf == pytest.approx(b.llf, abs=1e-8)
    np.testing.assert_allclose(a.fe_params, b.fe_params, rtol=1e-7)
    np.testing.assert_allclose(a.fe_bse, b.fe_bse, rtol=1e-6)


def test_fit_is_lmer():
    assert interlace.fit is interlace.lmer


def test_reml_gradient_matches_differences():
    from scipy.optimize import approx_fprime

    from interlace.objective.lmm import LMMObjective

    m = fitted("pastes_reml")
    for reml in (True, False):
        obj = LMMObjective(m.model_frame, reml=reml)
        th = np.array([0.7, 1.3])
        obj.deviance(th)
        g = obj.gradient(th)
        np.testing.assert_allclose(g, approx_fprime(th, obj.deviance, 1e-7), rtol=1e-4, atol=1e-5)


def test_weights_and_offset_columns():
    fx = load("sleepstudy_weighted")
    df = data(fx["dataset"]).copy()
    a = interlace.lmer(fx["python_formula"], df, weights="w")
    b = interlace.lmer(fx["python_formula"], df, weights=df["w"].to_numpy())
    assert a.llf == pytest.approx(b.llf, abs=1e-10)
    # an offset of 10 per day shifts the slope by exactly 10 and leaves the criterion unchanged
    c = interlace.lmer(fx["python_formula"], df, weights="w", offset=10.0 * df["Days"].to_numpy())
    assert c.llf == pytest.approx(a.llf, abs=1e-6)
    assert c.fe_params["Days"] == pytest.approx(a.fe_params["Days"] - 10.0, abs=1e-6)


def test_bad_arguments():
    df = data("sleepstudy.csv")
    with pytest.raises(TypeError, match="REML"):
        interlace.lmer("Reaction ~ Days + (1 | Subject)", df, REML="yes")
    with pytest.raises(ValueError, match="weights"):
        interlace.lmer("Reaction ~ Days + (1 | Subject)", df, weights="nope")
