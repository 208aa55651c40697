"""Wald intervals of the spatial (ou, exp) and rr structures' own parameters, against glmmTMB
1.1.5 (issue 21 item 4).

Fixture: tests/fixtures/covspatial/make_confint.R refits the ou_poisson, exp_gaussian,
gau_binomial, mat_poisson and rr_poisson cases of make_fixtures.R and writes glmmTMB's theta,
their SEs (``vcov(fit, full = TRUE)``) and ``confint(fit, full = TRUE)``.

- lme4-style ``confint`` (``.sig01`` SD, ``.sig02`` the correlation parameter ...): the SD's
  interval on the log scale, the correlation parameter's (glmmTMB's theta) on its own scale;
  glmmTMB prints no row for theta itself, so the check is theta +- z SE from its vcov.
- ``style="glmmTMB"``: every row of glmmTMB's ``confint(m, full = TRUE)`` for the ou fit,
  including the k(k-1)/2 ``Cor`` rows (the correlation function at theta moved by -+z SE).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from test_covspatial_parity import FIX, _fit  # noqa: E402

Z = stats.norm.ppf(0.975)


def _fx(case: str) -> dict:
    return json.loads((FIX / f"confint_{case}.json").read_text())


def _rel(a, b, floor=1e-3) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), floor)))


@pytest.mark.parametrize("case", ["ou_poisson", "exp_gaussian", "gau_binomial", "mat_poisson"])
def test_spatial_parameter_rows_are_glmmtmb_wald(case):
    fx, m = _fx(case), _fit(case)
    th, se = np.array(fx["theta"]), np.array(fx["se_theta"])
    nt = th.size  # mat: log SD, log range, log smoothness
    ci = m.confint(method="Wald", parm="theta_")
    # .sig01 the SD (log scale, back-transformed), .sig02 ... the correlation parameters as they are
    assert list(ci.index[:nt]) == [f".sig{i + 1:02d}" for i in range(nt)]
    want = np.array([[np.exp(th[0] - Z * se[0]), np.exp(th[0] + Z * se[0])]]
                    + [[th[i] - Z * se[i], th[i] + Z * se[i]] for i in range(1, nt)])
    assert _rel(ci.iloc[:nt].to_numpy(), want) < 1e-3
    # the parameter is also reachable by its name (the structure's parameter name)
    name = m.model_frame.terms[0].cov.param_names(m.model_frame.terms[0].vc_name,
                                                   list(m.model_frame.terms[0].cnames))[1]
    assert np.allclose(m.confint(parm=[name]).to_numpy(), ci.iloc[1:2].to_numpy())


def test_ou_full_confint_matches_glmmtmb_rows():
    fx, m = _fx("ou_poisson"), _fit("ou_poisson")
    r = fx["confint_full"]
    want = pd.DataFrame({"lo": r["lower"], "hi": r["upper"], "est": r["estimate"]}, index=r["names"])
    got = m.confint(style="glmmTMB")
    assert len(got) == len(want)  # 2 fixed effects, 8 SDs, 28 correlations
    # row kinds in glmmTMB's order (interlace names the columns after the numFactor call)
    kinds = [("Std.Dev" if ".Std.Dev." in i else "Cor" if ".Cor." in i else "beta") for i in got.index]
    assert kinds == ["beta"] * 2 + ["Std.Dev"] * 8 + ["Cor"] * 28
    assert all(k == "beta" or f"{k}." in w for k, w in zip(kinds, want.index))
    assert _rel(got.to_numpy(), want.to_numpy()) < 1e-3
    # the Cor rows are intervals (not the NA of an unstructured term) and contain the estimate
    cor = got.loc[[i for i in got.index if ".Cor." in i]].to_numpy()
    assert cor.shape == (28, 3)
    assert np.all((cor[:, 0] <= cor[:, 2]) & (cor[:, 2] <= cor[:, 1]))


@pytest.mark.parametrize("case", ["gau_binomial", "mat_poisson"])
def test_gau_mat_full_confint_matches_glmmtmb_rows(case):
    """glmmTMB's confint(m, full = TRUE) for gau (three replicate fields: 40 SD rows, 780 Cor
    rows) and mat (70 SD rows, 2415 Cor rows; both correlation parameters moved at once):
    fixed effects and SDs within 1e-3 relative; the Cor rows (the correlation function at the
    moved parameters, many of them near 0) within 1e-3 absolute."""
    fx, m = _fx(case), _fit(case)
    r = fx["confint_full"]
    want = pd.DataFrame({"lo": r["lower"], "hi": r["upper"], "est": r["estimate"]}, index=r["names"])
    got = m.confint(style="glmmTMB")
    assert len(got) == len(want)
    kinds = [("Std.Dev" if ".Std.Dev." in i else "Cor" if ".Cor." in i else "beta") for i in got.index]
    k = m.model_frame.terms[0].cov.k
    assert kinds == ["beta"] * 2 + ["Std.Dev"] * k + ["Cor"] * (k * (k - 1) // 2)
    assert all(t == "beta" or f"{t}." in w for t, w in zip(kinds, want.index))
    cor = np.array([t == "Cor" for t in kinds])
    assert _rel(got.to_numpy()[~cor], want.to_numpy()[~cor]) < 1e-3
    assert np.max(np.abs(got.to_numpy()[cor] - want.to_numpy()[cor])) < 1e-3
    c = got.to_numpy()[cor]
    assert np.all((c[:, 0] <= c[:, 2]) & (c[:, 2] <= c[:, 1]))


def test_rr_loading_rows_are_wald_on_the_loadings():
    """rr: glmmTMB's theta are the loadings; interlace reports each loading's Wald interval
    (glmmTMB's own confint rows for rr are SDs/correlations at every loading moved at once,
    which need not contain the estimate: not reproduced)."""
    fx, m = _fx("rr_poisson"), _fit("rr_poisson")
    th, se = np.array(fx["theta"]), np.array(fx["se_theta"])
    ci = m.confint(method="Wald", parm="theta_").to_numpy()
    assert ci.shape == (th.size, 2)
    # same loading order and signs as glmmTMB's theta (test_covspatial's rr order test)
    assert _rel(ci.mean(axis=1), th, floor=0.05) < 1e-3
    assert _rel((ci[:, 1] - ci[:, 0]) / (2 * Z), se, floor=0.05) < 1e-3


def _newdata(case: str) -> pd.DataFrame:
    import interlace

    nd = pd.DataFrame(json.loads((FIX / f"{case}.json").read_text())["newdata"])
    if "px" in nd:
        nd["pos"] = interlace.numFactor(nd.px, nd.py)
        nd["group"] = "1"
    return nd


@pytest.mark.parametrize("case", ["ou_poisson", "exp_gaussian"])
def test_se_fit_at_new_positions_matches_glmmtmb(case):
    """predict(newdata, se_fit=True) at new times (ou: forecasting after the last fitted time,
    and a fitted time) and new 2-D positions (exp, an LMM; one row at a fitted position):
    glmmTMB's predict(se.fit = TRUE): kriging variance, the fitted effects' conditional
    variance through the kriging weights, and the parameters' uncertainty (weights moving
    with theta)."""
    fx, m = _fx(case), _fit(case)
    fit, se = m.predict(_newdata(case), type="link", se_fit=True)
    assert _rel(np.asarray(fit), fx["predict_link"]) < 1e-4
    assert _rel(np.asarray(se), fx["predict_se"]) < 1e-4


def test_se_fit_at_fitted_positions_is_the_plain_one():
    """Rows at fitted times only take the plain design; mixed with new ones they go through
    kriging (weights a unit vector, no kriging variance): the same SEs."""
    m = _fit("ou_poisson")
    nd = _newdata("ou_poisson")
    _, se_mixed = m.predict(nd, type="link", se_fit=True)
    _, se_plain = m.predict(nd.iloc[[0]], type="link", se_fit=True)
    assert np.isclose(np.asarray(se_mixed)[0], np.asarray(se_plain)[0], rtol=1e-8)
