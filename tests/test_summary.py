"""summary(): the printed numbers against R's (parsed back from our text),
the layout of lme4's summary(glmer), HTML, and fe_table."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import FIXTURES, load_case
from oracle_utils import r_to_formulaic
from test_predict import CASES, fitted_case

from interlace.results.summary import abbreviate, format_common


def _header(text: str) -> dict[str, float]:
    lines = text.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.split()[:2] == ["AIC", "BIC"])
    return dict(zip(lines[i].split(), map(float, lines[i + 1].split())))


def _r_header(case: dict) -> dict[str, float]:
    agq = case.get("agq_loglik")
    if agq:  # our llf is the full marginal one; compare with R's own full values
        ll, aic, bic = agq["loglik_full"], agq["aic_full"], agq["bic_full"]
    else:
        ll, aic, bic = case["loglik"], case["aic"], case["bic"]
    return {"AIC": aic, "BIC": bic, "logLik": ll, "deviance": -2 * ll, "df.resid": case["nobs"] - case["df"]}


def _model_key(case: dict) -> tuple:
    """Same data, family, link, coefficients and random-effect rows: the same model
    (cbind and proportion-with-weights forms included)."""
    call = case.get("python_call", {})
    vc = tuple((r["grp"], r["var1"], r["var2"]) for r in case.get("varcorr", []))
    return (case.get("dataset"), call.get("family"), call.get("link"), tuple(case.get("fixef_names", [])), vc,
            case.get("engine"), call.get("nAGQ", 1))


_TIGHT = {}
for _p in (FIXTURES / "cases").glob("*_tight.json"):
    _c = json.loads(_p.read_text())
    _TIGHT[_model_key(_c)] = _c


def _tight(case: dict) -> dict:
    """The *_tight refit of the same lme4 model (converged R fit) when one exists."""
    return _TIGHT.get(_model_key(case), case)


@pytest.mark.parametrize("name", CASES)
def test_header_numbers_match_r(name):
    case, res = fitted_case(name)
    ours = _header(str(res.summary()))
    for key, r in _r_header(case).items():
        # printed to one decimal, as lme4 prints them; our optimum is at most 1e-3 from R's
        assert ours[key] == pytest.approx(r, abs=0.051 + 2e-3), f"{name} {key}"


@pytest.mark.parametrize("name", CASES)
def test_random_and_fixed_tables_match_r(name):
    case, res = fitted_case(name)
    text = str(res.summary())
    s = res.summary()
    # random-effects table: variances and SDs (4 significant digits printed)
    rt = s.re_table
    for row in case["varcorr"]:
        if row["var2"] is not None:
            continue
        name_ = "(Intercept)" if row["var1"] in ("(Intercept)", None) else r_to_formulaic(row["var1"], case)
        if row["grp"] == "Residual":
            continue
        m = rt[(rt["Groups"] == row["grp"]) & (rt["Name"] == name_)]
        assert len(m) == 1, f"{name}: no row {row['grp']} {name_}"
        # a variance at the boundary (cbpp beta-binomial: R 1.4e-4, ours 0) is
        # compared absolutely, as the fixture's notes say
        at_boundary = row["sdcor"] < 1e-3
        assert m["Std.Dev."].iloc[0] == pytest.approx(row["sdcor"], rel=2e-3, abs=5e-4 if at_boundary else 1e-4)
    # fixed effects parsed back from the text
    fe_block = text.split("Fixed effects:")[1].split("\n\n")[0].strip("\n").splitlines()[1:]
    parsed = {}
    for ln in fe_block:
        parts = ln.split()
        if len(parts) >= 3 and not ln.startswith("---") and not ln.startswith("Signif"):
            parsed[parts[0]] = (float(parts[1]), float(parts[2]))
    se_ref = _tight(case)["se"]
    for rn in case["fixef_names"]:
        ours_name = r_to_formulaic(rn, case)
        label = "(Intercept)" if ours_name == "Intercept" else ours_name
        est, se = parsed[label]
        assert est == pytest.approx(case["fixef"][rn], rel=2e-3, abs=1e-3), f"{name} {rn}"
        # lme4's default-control SEs come from a Hessian of a loosely converged
        # PIRLS (cbpp: 1 % off); where a *_tight refit exists its SEs are the reference
        assert se == pytest.approx(se_ref[rn], rel=2e-3, abs=1e-4), f"{name} {rn} SE"
    assert f"Number of obs: {case['nobs']}" in text


@pytest.mark.parametrize("name", ["residuals_cbpp_laplace", "residuals_grouseticks_poisson",
                                  "residuals_sleepstudy_ml"])
def test_scaled_residual_quantiles_are_rs_pearson(name):
    fx = load_case(name)
    case, res = fitted_case(fx["oracle_case"])
    pear = np.asarray(fx["residuals"]["pearson"])
    if res.optinfo["engine"] == "lmm":  # lme4 scales by sigma
        pear = pear / np.sqrt(res.scale)
    q = np.quantile(pear, [0, 0.25, 0.5, 0.75, 1])
    ours = res.summary().residual_quantiles.to_numpy()
    np.testing.assert_allclose(ours, q, rtol=2e-3, atol=1e-3 * np.max(np.abs(q)))
    text = str(res.summary())
    line = text.split("Scaled residuals:")[1].splitlines()[2]
    np.testing.assert_allclose([float(v) for v in line.split()], ours, atol=6e-5)


def test_glmm_layout_like_lme4():
    _case, res = fitted_case("cbpp_laplace")
    text = str(res.summary())
    lines = text.splitlines()
    assert lines[0].startswith("Generalized linear mixed model fit by maximum likelihood (Laplace Approximation)")
    assert lines[1] == " Family: binomial  ( logit )"
    assert lines[2].startswith("Formula: cbind(incidence, size - incidence) ~ period + (1 | herd)")
    for block in ("Scaled residuals:", "Random effects:", " Groups", "Fixed effects:",
                  "Pr(>|z|)", "Signif. codes:", "Correlation of Fixed Effects:", "(Intr)",
                  "Number of obs: 56, groups:  herd, 15"):
        assert block in text
    # the correlation block is the covariance scaled to correlations
    s = res.summary()
    se = res.fe_bse.to_numpy()
    np.testing.assert_allclose(s.fe_corr.to_numpy(), res.vcov.to_numpy() / np.outer(se, se))
    corr_line = text.split("Correlation of Fixed Effects:")[1].splitlines()[2]
    assert float(corr_line.split()[-1]) == pytest.approx(s.fe_corr.iloc[1, 0], abs=6e-4)


def test_lmm_layout_and_residual_row():
    _case, res = fitted_case("sleepstudy_ml")
    text = str(res.summary())
    assert text.startswith("Linear mixed model fit by maximum likelihood")
    assert "t value" in text and "Pr(>|z|)" not in text
    assert re.search(r"^ Residual\s+\d", text, re.M)
    assert "Corr" in text  # (Days | Subject) is correlated
    assert list(res.fe_table.columns) == ["Estimate", "Std. Error", "t value"]


def test_general_family_sections():
    _case, res = fitted_case("zinb")
    text = str(res.summary())
    assert "Zero-inflation model:" in text
    assert "Fixed effects:" in text


def test_singular_and_convergence_messages_printed():
    import copy

    _case, res = fitted_case("cbpp_laplace")
    r2 = copy.copy(res)
    r2.optinfo = {**res.optinfo, "messages": ["boundary (singular) fit: see help('isSingular')"]}
    assert "boundary (singular) fit" in str(r2.summary())


def test_html_and_fe_table():
    _case, res = fitted_case("cbpp_laplace")
    s = res.summary()
    html = s._repr_html_()
    # one HTML layout (interlace/results/html.py): statistics, residuals, random, fixed, correlations
    assert html.count("<table") == 5 and "<pre>" not in html and "Fixed effects" in html
    ft = res.fe_table
    assert list(ft.columns) == ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    np.testing.assert_allclose(ft["z value"], res.fe_params / res.fe_bse)
    assert repr(s) == str(s)


def test_r_style_formatting_helpers():
    assert abbreviate("(Intercept)") == "(Intr)"
    assert abbreviate("period2") == "perid2"
    assert abbreviate("Days") == "Days"
    assert format_common([565.48, 32.68, 654.94]) == ["565.48", "32.68", "654.94"]
    assert format_common([23.78, 5.717, 25.592]) == ["23.780", "5.717", "25.592"]
