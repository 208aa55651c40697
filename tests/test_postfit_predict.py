"""predict with re_form / random_only / na.pass / unseen levels, glmmTMB's joint se_fit,
and outputs aligned with the user's rows (issue 23 items 1-2, issue 19 item 5 se_fit).
R numbers: tests/fixtures/postfit_toolbox/predict.json (make_postfit_toolbox.R)."""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import interlace

FIX = Path(__file__).parent / "fixtures"
R = json.loads((FIX / "postfit_toolbox" / "predict.json").read_text())


def _sleep():
    return pd.read_csv(FIX / "data" / "sleepstudy.csv")


def _cbpp():
    return pd.read_csv(FIX / "data" / "cbpp.csv").astype({"period": str})


@functools.lru_cache(maxsize=None)
def fm2():
    return interlace.glmer("Reaction ~ Days + (Days | Subject)", _sleep(), family="gaussian")


@functools.lru_cache(maxsize=None)
def uncorr():
    return interlace.glmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", _sleep(), family="gaussian")


@functools.lru_cache(maxsize=None)
def cbpp():
    return interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", _cbpp(), family="binomial")


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


# ------------------------------------------------------------------ se_fit (glmmTMB's sdreport)


def test_se_fit_fm2_matches_glmmtmb():
    """glmmTMB's fm2: 12.945 for row 1 (the old x'Vx + z'Var(b|y)z gave 13.60)."""
    m, r = fm2(), R["fm2"]
    assert m.llf == pytest.approx(r["loglik"], abs=1e-4)
    fit, se = m.predict(se_fit=True, type="link")
    assert _rel(fit, r["fit"]) < 1e-5
    assert _rel(se, r["se_fit"]) < 1e-4
    assert se.iloc[0] == pytest.approx(12.945, abs=1e-3)
    fit0, se0 = m.predict(se_fit=True, type="link", re_form="~0")
    assert _rel(se0, r["se_fit_pop"]) < 1e-4
    nd = pd.DataFrame(r["newdata"])
    fit_n, se_n = m.predict(nd, se_fit=True, type="link")
    assert _rel(fit_n, r["new_fit"]) < 1e-5
    assert _rel(se_n, r["new_se_fit"]) < 1e-4


def test_se_fit_binomial_link_and_response_match_glmmtmb():
    m, r = cbpp(), R["cbpp"]
    fl, sl = m.predict(se_fit=True, type="link")
    fr, sr = m.predict(se_fit=True, type="response")
    assert _rel(fl, r["tmb_fit_link"]) < 1e-3
    assert _rel(sl, r["tmb_se_link"]) < 1e-3
    assert _rel(fr, r["tmb_fit_response"]) < 1e-3
    assert _rel(sr, r["tmb_se_response"]) < 1e-3


def test_se_fit_poisson_random_slope_matches_glmmtmb():
    d = pd.read_csv(FIX / "postfit_toolbox" / "sim_pois_slope.csv")
    m = interlace.glmer("y ~ x + (x | g)", d, family="poisson")
    r = R["pois_slope"]
    assert m.llf == pytest.approx(r["loglik"], abs=1e-4)
    fit, se = m.predict(se_fit=True, type="link")
    assert _rel(fit, r["fit"]) < 1e-3
    assert _rel(se, r["se_fit"]) < 2e-3


def test_se_fit_nb2_general_engine_matches_glmmtmb():
    """A glmmTMB family: the covariance of (theta, beta, log dispersion) moves the modes too."""
    gt = pd.read_csv(FIX / "data" / "grouseticks.csv").astype({"YEAR": str, "BROOD": str})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = interlace.glmer("TICKS ~ YEAR + cHEIGHT + (1 | BROOD)", gt, family="negativebinomial")
    r = R["grouse_nb2"]
    assert m.llf == pytest.approx(r["loglik"], abs=1e-4)
    fit, se = m.predict(se_fit=True, type="link")
    assert _rel(fit, r["fit"]) < 1e-4
    assert _rel(se, r["se_fit"]) < 1e-4
    assert _rel(m.predict(se_fit=True).se_fit, r["se_fit_response"]) < 1e-4


# ------------------------------------------------------------------ re_form, random_only


@pytest.mark.parametrize("key, kw", [("fit_all", {}), ("fit_na", {"re_form": "NA"}),
                                     ("fit_na", {"re_form": "~0"}), ("fit_na", {"re_form": np.nan}),
                                     ("fit_int", {"re_form": "~ (1 | Subject)"}),
                                     ("fit_slope", {"re_form": "~(0 + Days | Subject)"}),
                                     ("random_only", {"random_only": True}),
                                     ("random_only_int", {"random_only": True, "re_form": "~(1|Subject)"})])
def test_re_form_and_random_only_match_lme4(key, kw):
    m, r = uncorr(), R["sleep_uncorr"]
    assert m.llf == pytest.approx(r["loglik"], abs=1e-4)
    ours = m.predict(type="link", **kw).to_numpy()
    ref = np.asarray(r[key], float)
    assert np.max(np.abs(ours - ref)) < 1e-5 * np.max(np.abs(ref)) + 1e-3


def test_random_only_response_scale_is_linkinv_as_lme4():
    m, r = cbpp(), R["cbpp"]
    assert np.max(np.abs(m.predict(random_only=True).to_numpy() - r["random_only_response"])) < 1e-3
    assert np.max(np.abs(m.predict(random_only=True, type="link").to_numpy() - r["random_only_link"])) < 1e-3
    assert np.max(np.abs(m.predict(re_form="NA").to_numpy() - r["fit_na_response"])) < 1e-4


def test_re_form_not_a_term_names_it():
    with pytest.raises(ValueError, match=r"\(Days \| Subject\)"):
        uncorr().predict(re_form="~ (Days | Subject)")
    with pytest.raises(ValueError, match="re_form"):
        uncorr().predict(re_form="~ Days")
    with pytest.raises(TypeError, match="re_form"):
        uncorr().predict(re_form=3)


def test_population_prediction_needs_no_grouping_column():
    m, r = uncorr(), R["sleep_uncorr"]
    nd = pd.DataFrame({"Days": r["newdata"]["Days"]}, index=["a", "b", "c", "d"])
    p = m.predict(nd, re_form="~0")
    assert list(p.index) == ["a", "b", "c", "d"]
    # na.pass: the row with a missing Days is NaN, the others are R's
    assert np.isnan(p["c"])
    ok = [0, 1, 3]
    np.testing.assert_allclose(p.to_numpy()[ok], np.asarray(r["new_fit_na"], dtype=float)[ok], rtol=1e-6)
    with pytest.raises(ValueError, match="Subject"):
        m.predict(nd)  # the conditional prediction does need it


def test_missing_predictor_gives_nan_rows_not_an_error():
    m = cbpp()
    nd = _cbpp().head(5).copy()
    nd["period"] = nd["period"].astype(object)
    nd.loc[1, "period"] = None
    nd.loc[3, "herd"] = np.nan
    ref = m.predict(_cbpp().head(5))
    p, se = m.predict(nd, se_fit=True)
    assert np.isnan(p.iloc[1]) and np.isnan(p.iloc[3]) and np.isnan(se.iloc[3])
    np.testing.assert_allclose(p.to_numpy()[[0, 2, 4]], ref.to_numpy()[[0, 2, 4]], rtol=1e-12)
    # population level: herd is not needed, so row 3 is predicted
    p0 = m.predict(nd, re_form="~0")
    assert np.isnan(p0.iloc[1]) and np.isfinite(p0.iloc[3])


def test_unseen_fixed_level_names_column_and_level():
    nd = _cbpp().head(2).copy()
    nd.loc[0, "period"] = "7"
    with pytest.raises(ValueError, match=r"'period'.*'7'"):
        cbpp().predict(nd)


# ------------------------------------------------------------------ aligned outputs


def test_outputs_carry_user_index_and_exclude_pads():
    df = _sleep()
    df.index = [f"r{i}" for i in range(len(df))]
    df.loc["r3", "Days"] = np.nan
    df.loc["r10", "Reaction"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m_ex = interlace.glmer("Reaction ~ Days + (1 | Subject)", df, family="gaussian", missing="exclude")
        m_om = interlace.glmer("Reaction ~ Days + (1 | Subject)", df, family="gaussian")
    for kind in ("fitted", "resid", "predict"):
        ex = getattr(m_ex, kind)()
        om = getattr(m_om, kind)()
        assert isinstance(ex, pd.Series) and isinstance(om, pd.Series)
        assert list(ex.index) == list(df.index)  # na.exclude: every row, NaN where dropped
        assert np.isnan(ex["r3"]) and np.isnan(ex["r10"])
        assert len(om) == len(df) - 2 and "r3" not in om.index  # na.omit: the used rows
        np.testing.assert_allclose(ex.drop(["r3", "r10"]).to_numpy(), om.to_numpy(), rtol=1e-10)
    assert m_om.fittedvalues.index[0] == "r0"
    with pytest.raises(ValueError, match="missing"):
        interlace.glmer("Reaction ~ Days + (1 | Subject)", df, family="gaussian", missing="pass")


def test_polars_newdata_gives_a_polars_series():
    pl = pytest.importorskip("polars")
    nd = _cbpp().head(3)
    out = cbpp().predict(pl.from_pandas(nd))
    assert isinstance(out, pl.Series)
    np.testing.assert_allclose(out.to_numpy(), cbpp().predict(nd).to_numpy(), rtol=1e-12)
