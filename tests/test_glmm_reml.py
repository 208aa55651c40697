"""glmmTMB's REML = TRUE for GLMMs (beta integrated out by Laplace): interlace.glmer(..., REML=True)
against fixtures from tests/fixtures/glmm_reml/make_glmm_reml.R (glmmTMB 1.1.5; lmer for the LMM)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.families import GammaFamily
from interlace.inference.confint import confint

FIX = Path(__file__).parent / "fixtures" / "glmm_reml"
DATA = Path(__file__).parent / "fixtures" / "data"

CASES = {
    "gaussian_sleepstudy": ("sleepstudy", "gaussian", {}),
    "nbinom2_grouseticks": ("grouseticks", "negativebinomial", {}),
    "poisson_grouseticks": ("grouseticks", "poisson", {}),
    "gamma_sim": (None, "gamma_log", {}),
    "gaussian_disp_sleepstudy": ("sleepstudy", "gaussian", {"dispformula": "~ Days"}),
    "binomial_cbpp": ("cbpp", "binomial", {}),
    "nbinom2_two_terms_grouseticks": ("grouseticks", "negativebinomial", {}),
    "gamma_slope_sleepstudy": ("sleepstudy", "gamma_log", {}),
}


def _data(name):
    if name is None:
        return pd.read_csv(DATA / "sim_gamma.csv").rename(columns={"Y": "y"})
    return interlace.datasets.load(name)


def _fit(case):
    ds, fam, kw = CASES[case]
    r = json.loads((FIX / f"{case}.json").read_text())
    family = GammaFamily(link="log") if fam == "gamma_log" else fam
    return interlace.glmer(r["formula"], _data(ds), family=family, REML=True, **kw), r


def _rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-8))


@pytest.fixture(scope="module", params=sorted(CASES))
def fitted(request):
    return (request.param, *_fit(request.param))


def test_loglik_df_aic(fitted):
    _case, m, r = fitted
    assert m.optinfo["REML"] is True
    assert m.llf == pytest.approx(r["logLik"], abs=1e-4)
    assert m.df_model == r["df"]  # glmmTMB's df counts beta for REML fits too
    assert m.aic == pytest.approx(r["AIC"], abs=2e-4)
    assert m.df_resid == r["df_resid"]  # nobs minus the parameters that are not integrated out
    assert "fit by REML" in str(m.summary())
    assert abs(m.llf - r["logLik_ML"]) > 1e-2  # the restricted likelihood is not the ML one


def test_fixef_and_se(fitted):
    _case, m, r = fitted
    names = [k.replace("[T.", "").replace("]", "") for k in m.fe_params.index]
    assert names == [k.replace("(Intercept)", "Intercept") for k in r["fixef"]]
    assert _rel(m.fe_params.to_numpy(), list(r["fixef"].values())) < 1e-3
    assert _rel(m.fe_bse.to_numpy(), list(r["se"].values())) < 1e-3
    # the whole matrix on the correlation scale (off-diagonals can be tiny next to the diagonal)
    ref = np.array(r["vcov"])
    sd = np.sqrt(np.diag(ref))
    assert np.max(np.abs(m.vcov.to_numpy() - ref) / np.outer(sd, sd)) < 1e-3


def test_varcorr(fitted):
    _case, m, r = fitted
    vc = m.varcorr
    for grp, sds in r["sd"].items():
        rows = vc[(vc["grp"] == grp) & vc["var2"].isna()]
        assert _rel(rows["sdcor"].to_numpy(), list(sds.values())) < 1e-3
    for grp, cors in r["corr"].items() if isinstance(r["corr"], dict) else []:
        rows = vc[(vc["grp"] == grp) & vc["var2"].notna()]
        assert np.max(np.abs(rows["sdcor"].to_numpy() - np.array(cors))) < 1e-3


def test_random_effects_and_conditional_sds(fitted):
    """Conditional modes and glmmTMB's condsd: for a REML fit TMB's sdreport takes them from the
    joint covariance of (beta, b), so they include beta's uncertainty."""
    case, m, r = fitted
    if case == "nbinom2_two_terms_grouseticks":
        # LOCATION's SD (0.20, SE 1.1) is barely identified: glmmTMB stops ("singular convergence", also
        # with rel.tol=1e-15) where interlace's dev_R has gradient 7e-5 in it, 2e-4 from interlace's point
        # (gradient 4e-7; the criteria agree to 1e-9 at both). The conditional SDs, which carry theta's
        # uncertainty, are 0.1-0.7% apart there; logLik, beta, SEs (2e-4) and VarCorr are tested above.
        pytest.xfail("glmmTMB's optimum is imprecise in a flat direction: conditional SDs 0.1-0.7% apart")
    for key, ref in r["ranef"].items():
        grp, term = key.split("|")
        col = term.replace("(Intercept)", "Intercept")
        levels = [str(g) for g in ref["grp"]]
        modes = m.random_effects[grp].rename(index=str).loc[levels, col].to_numpy()
        sds = m.random_effects_sd[grp].rename(index=str).loc[levels, col].to_numpy()
        scale = np.max(np.abs(ref["condval"]))
        assert np.max(np.abs(modes - np.array(ref["condval"]))) < 1e-3 * scale
        assert _rel(sds, ref["condsd"]) < 1e-3


def test_family_parameters(fitted):
    case, m, r = fitted
    fp = m.family_params
    if case.startswith("nbinom2"):
        assert fp["theta"] == pytest.approx(r["sigma"], rel=1e-3)
    elif case.startswith("gamma"):
        assert fp["shape"] == pytest.approx(r["shape"], rel=1e-3)
    elif case == "gaussian_sleepstudy":
        assert fp["sigma"] == pytest.approx(r["sigma"], rel=1e-3)
    elif case == "gaussian_disp_sleepstudy":
        assert _rel(m.disp_params.to_numpy(), list(r["disp_coef"].values())) < 1e-3


def test_gaussian_reml_equals_lmer():
    m, r = _fit("gaussian_sleepstudy")
    lm = r["lmer"]
    assert m.llf == pytest.approx(lm["logLik"], abs=1e-4)
    assert _rel(m.fe_params.to_numpy(), list(lm["fixef"].values())) < 1e-6
    # glmmTMB's SEs add theta's uncertainty through d beta*/d theta (tiny for the LMM)
    assert _rel(m.fe_bse.to_numpy(), list(lm["se"].values())) < 1e-3
    ref = interlace.lmer(r["formula"], interlace.datasets.load("sleepstudy"), REML=True)
    assert m.llf == pytest.approx(ref.llf, abs=1e-4)


def test_reml_refuses_unsupported():
    df = interlace.datasets.load("grouseticks")
    with pytest.raises(ValueError, match="nAGQ"):
        interlace.glmer("TICKS ~ cHEIGHT + (1 | LOCATION)", df, family="poisson", nAGQ=5, REML=True)
    with pytest.raises(TypeError, match="REML"):
        interlace.glmer("TICKS ~ cHEIGHT + (1 | LOCATION)", df, family="poisson", REML="yes")
    with pytest.raises(ValueError, match="REML"):
        interlace.glmer("TICKS ~ cHEIGHT + (1 | LOCATION)", df, family="poisson", REML=True, optimizer="bobyqa")


def test_refit_stays_reml():
    """refit on the same response reproduces the REML fit (engines.refit keeps REML)."""
    from interlace.engines import refit

    m, r = _fit("poisson_grouseticks")
    m2 = refit(m, m.model_frame.y)
    assert m2.optinfo["REML"] is True
    assert m2.llf == pytest.approx(r["logLik"], abs=1e-6)
    assert _rel(m2.fe_bse.to_numpy(), m.fe_bse.to_numpy()) < 1e-6


def test_profile_refused_for_reml_glmm():
    m, _r = _fit("poisson_grouseticks")
    with pytest.raises(NotImplementedError, match="REML"):
        confint(m, method="profile")
