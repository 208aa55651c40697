"""lmerTest's inference against lmerTest 3.1 / pbkrtest 0.5 (fixtures from
tests/fixtures/make_lmer.R): Satterthwaite and Kenward-Roger t-tables,
Type II/III F-tables, ranova."""

from __future__ import annotations

import numpy as np
import pytest

from interlace.inference import lmertest
from tests.lmer_cases import SMALL, fitted, load

DF_RTOL = 1e-3
P_RTOL = 5e-3  # p-values amplify the optimum tolerance of R (df error times log t); see the parity table


def _cases(key):
    return [c for c in SMALL if key in load(c)]


def _check_coef(tab, rows):
    assert len(tab) == len(rows)
    for (_, ours), r in zip(tab.iterrows(), rows):
        assert ours["Estimate"] == pytest.approx(r["Estimate"], rel=1e-4, abs=1e-8)
        assert ours["Std. Error"] == pytest.approx(r["Std. Error"], rel=1e-3)
        assert ours["df"] == pytest.approx(r["df"], rel=DF_RTOL)
        assert ours["t value"] == pytest.approx(r["t value"], rel=1e-3)
        assert ours["Pr(>|t|)"] == pytest.approx(r["Pr(>|t|)"], rel=P_RTOL, abs=1e-12)


@pytest.mark.parametrize("case", _cases("satterthwaite"))
def test_satterthwaite_summary(case):
    _check_coef(lmertest.coef_table(fitted(case), "Satterthwaite"), load(case)["satterthwaite"]["summary"])


@pytest.mark.parametrize("case", _cases("satterthwaite"))
def test_satterthwaite_summary_ml(case):
    _check_coef(lmertest.coef_table(fitted(case, False), "Satterthwaite"),
                load(case)["satterthwaite"]["summary_ml"])


@pytest.mark.parametrize("case", _cases("kenward_roger"))
def test_kenward_roger_summary(case):
    _check_coef(lmertest.coef_table(fitted(case), "Kenward-Roger"), load(case)["kenward_roger"]["summary"])


def _check_anova(tab, rows):
    rows = [r for r in rows if r.get("NumDF") is not None]
    assert len(tab) == len(rows)
    for r in rows:
        ours = tab.loc[r["term"]]
        assert ours["NumDF"] == r["NumDF"]
        assert ours["DenDF"] == pytest.approx(r["DenDF"], rel=DF_RTOL)
        assert ours["F value"] == pytest.approx(r["F value"], rel=1e-3)
        assert ours["Sum Sq"] == pytest.approx(r["Sum Sq"], rel=1e-3)
        assert ours["Pr(>F)"] == pytest.approx(r["Pr(>F)"], rel=P_RTOL, abs=1e-12)


ANOVAS = [(c, m, t) for c in SMALL for m in ("satterthwaite", "kenward_roger") if m in load(c)
          for t in ("anova3", "anova2") if load(c)[m].get(t)]


@pytest.mark.parametrize("case,method,table", ANOVAS)
def test_anova_tables(case, method, table):
    ddf = "Satterthwaite" if method == "satterthwaite" else "Kenward-Roger"
    tab = lmertest.anova_table(fitted(case), type=int(table[-1]), ddf=ddf)
    _check_anova(tab, load(case)[method][table])


@pytest.mark.parametrize("case", _cases("ranova"))
def test_ranova(case):
    rows = load(case)["ranova"]
    tab = lmertest.ranova(fitted(case))
    assert list(tab.index) == [r["term"] for r in rows] or sorted(tab.index) == sorted(r["term"] for r in rows)
    for r in rows:
        ours = tab.loc[r["term"]]
        assert ours["npar"] == r["npar"]
        assert ours["logLik"] == pytest.approx(r["logLik"], abs=1e-3)
        if r.get("LRT") is not None:
            assert ours["LRT"] == pytest.approx(r["LRT"], abs=2e-3)
            assert ours["Pr(>Chisq)"] == pytest.approx(r["Pr(>Chisq)"], rel=1e-2, abs=1e-12)


def test_kr_needs_reml():
    with pytest.raises(ValueError, match="REML"):
        lmertest.coef_table(fitted("sleepstudy_reml", False), "Kenward-Roger")


def test_contest_matches_coef_table():
    m = fitted("cake_main")
    tab = lmertest.coef_table(m)
    one = lmertest.contest(m, np.eye(len(m.fe_params))[2])
    assert one["df"].iloc[0] == pytest.approx(tab["df"].iloc[2], rel=1e-12)


def test_summary_text_is_lmertests():
    m = fitted("sleepstudy_reml")
    fx = load("sleepstudy_reml")
    text = str(m.summary())
    assert text.splitlines()[0] == ("Linear mixed model fit by REML. t-tests use Satterthwaite's method "
                                    "['lmerModLmerTest']")
    assert f"REML criterion at convergence: {fx['reml']['criterion']:.1f}" in text
    assert "Pr(>|t|)" in text and " df " in text
    kr = m.summary(ddf="Kenward-Roger")
    assert "Kenward-Roger's method" in str(kr).splitlines()[0]
    np.testing.assert_allclose(kr.fe_table["df"], [r["df"] for r in fx["kenward_roger"]["summary"]], rtol=1e-3)
    ml = str(fitted("sleepstudy_reml", False).summary())
    assert ml.startswith("Linear mixed model fit by maximum likelihood . t-tests use Satterthwaite's method")
