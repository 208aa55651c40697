"""interlace.anova: R's anova.merMod likelihood-ratio table (fixture cbpp_anova)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from conftest import load_case
from oracle_utils import read_case_data

import interlace

COLUMNS = ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]


def _fit(formula, df, family="binomial"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.glmer(formula, df, family=family)


@pytest.fixture(scope="module")
def case():
    return load_case("cbpp_anova")


@pytest.fixture(scope="module")
def models(case):
    df = read_case_data(case)
    m0 = _fit(case["anova_models"]["m0"]["python_call"]["formula"], df)
    m1 = _fit(case["python_call"]["formula"], df)
    return df, m0, m1


def test_table_matches_r(case, models):
    """Columns and rows as R's anova(m0, m1). Our logLik may be slightly higher than R's
    (lme4's default PIRLS tolerance, docs/parity-notes.md), so logLik-based numbers are held
    to an absolute 1e-3 and never worse than R's by more than 1e-4."""
    _df, m0, m1 = models
    tab = interlace.anova(m0, m1, names=["m0", "m1"])
    assert list(tab.columns) == COLUMNS
    assert list(tab.index) == ["m0", "m1"]
    for row in case["anova"]:
        ours = tab.loc[row["model"]]
        assert int(ours["npar"]) == row["npar"]
        assert ours["logLik"] >= row["logLik"] - 1e-4
        for col in ("AIC", "BIC", "logLik", "deviance"):
            assert ours[col] == pytest.approx(row[col], abs=2e-3), col
        if row["Chisq"] is None:
            assert np.isnan(ours["Chisq"]) and np.isnan(ours["Df"]) and np.isnan(ours["Pr(>Chisq)"])
        else:
            assert ours["Chisq"] == pytest.approx(row["Chisq"], abs=1e-3)
            assert int(ours["Df"]) == row["Df"]
            assert ours["Pr(>Chisq)"] == pytest.approx(row["Pr(>Chisq)"], rel=2e-3)


def test_table_is_internally_consistent(models):
    """Mathematics of the table: AIC/BIC from logLik and npar; Chisq = 2 diff logLik; p from chi2."""
    _df, m0, m1 = models
    tab = interlace.anova(m0, m1)
    n = m1.nobs
    np.testing.assert_allclose(tab["AIC"], -2 * tab["logLik"] + 2 * tab["npar"], rtol=1e-12)
    np.testing.assert_allclose(tab["BIC"], -2 * tab["logLik"] + np.log(n) * tab["npar"], rtol=1e-12)
    np.testing.assert_allclose(tab["deviance"], -2 * tab["logLik"], rtol=1e-12)
    chisq = 2 * (m1.llf - m0.llf)
    assert tab["Chisq"].iloc[1] == pytest.approx(chisq, rel=1e-12)
    assert tab["Pr(>Chisq)"].iloc[1] == pytest.approx(stats.chi2.sf(chisq, 3), rel=1e-12)
    # the table's AIC/BIC/logLik are the fits' own
    assert tab["AIC"].iloc[1] == pytest.approx(m1.aic, rel=1e-12)
    assert tab["BIC"].iloc[1] == pytest.approx(m1.bic, rel=1e-12)


def test_sorted_by_npar_like_r(models):
    _df, m0, m1 = models
    tab = interlace.anova(m1, m0, names=["big", "small"])
    assert list(tab.index) == ["small", "big"]
    assert tab["Df"].iloc[1] == 3
    default = interlace.anova(m1, m0)
    assert list(default.index) == ["model2", "model1"]


def test_three_models_test_consecutive_pairs(models):
    df, m0, m1 = models
    mid = _fit("cbind(incidence, size - incidence) ~ I(period == '4') + (1 | herd)", df)
    tab = interlace.anova(m0, m1, mid, names=["m0", "m1", "mid"])
    assert list(tab.index) == ["m0", "mid", "m1"]
    assert list(tab["Df"].iloc[1:]) == [1, 2]
    assert tab["Chisq"].iloc[2] == pytest.approx(max(0.0, 2 * (m1.llf - mid.llf)), rel=1e-12)


def test_different_observations_raise(models):
    df, m0, m1 = models
    fewer = _fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", df.iloc[:-3])
    with pytest.raises(ValueError, match="same data.*observations"):
        interlace.anova(m0, fewer)
    m_other = _fit("cbind(size - incidence, incidence) ~ period + (1 | herd)", df)
    with pytest.raises(ValueError, match="different responses"):
        interlace.anova(m0, m_other)


def test_same_count_but_different_rows_raise(models):
    df, m0, _m1 = models
    a = df.copy()
    a.loc[a.index[0], "period"] = np.nan  # drop the first row ...
    b = df.copy()
    b.loc[b.index[-1], "period"] = np.nan  # ... or the last
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ma = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", a, family="binomial")
        mb = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", b, family="binomial")
    assert ma.nobs == mb.nobs
    with pytest.raises(ValueError, match="different rows"):
        interlace.anova(ma, mb)


def test_needs_two_models(models):
    _df, m0, m1 = models
    with pytest.raises(ValueError, match="at least two"):
        interlace.anova(m0)
    with pytest.raises(ValueError, match="names"):
        interlace.anova(m0, m1, names=["a"])
