"""confint: Wald and profile intervals against lme4's confint.merMod.

Fixtures: tests/fixtures/cases/*_confint.json (lme4 defaults) and *_tight.json (the same
models refitted by lme4 with tolPwrss = 1e-14, see docs/parity-notes.md).

Agreement achieved (docs/inference.md):
- profile vs lme4 default: <= 5e-4 relative for every limit except binary_slope's .sig02,
  where R itself warned "non-monotonic profile" / "bad spline fit ... falling back to linear
  interpolation": there R's limits are off its own profile (exact zeta at R's lower limit is
  1.972 instead of 1.960) and we differ by 4.3e-3. That one limit is held to 5e-3, and only
  after checking that R's fixture carries that warning.
- Wald: lme4's Wald interval is fixef +- z * SE. lme4's default SEs come from a
  finite-difference Hessian of its loosely converged deviance and differ from the exact
  Laplace SEs by up to 1.3 % (docs/parity-notes.md); against the tightly converged lme4 fits
  (same formula, R's numbers) our Wald intervals agree to 1e-3 relative.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings

import numpy as np
import pytest
from scipy import stats

from conftest import case_data_path, load_case
from oracle_utils import fit_case, r_to_formulaic

CASES = ["cbpp_confint", "grouseticks_ri_confint", "binary_slope_confint"]
TIGHT = {"cbpp_confint": "cbpp_laplace_tight", "grouseticks_ri_confint": "grouseticks_ri_tight",
         "binary_slope_confint": "binary_slope_tight"}
Z = stats.norm.ppf(0.975)


def _ours(name: str, case: dict) -> str:
    return name if name.startswith(".sig") else r_to_formulaic(name, case)


@pytest.fixture(scope="module")
def fits():
    return {c: fit_case(load_case(c)) for c in CASES}


@pytest.fixture(scope="module")
def profiles(fits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {c: fits[c].confint(method="profile") for c in CASES}


def rel(a, b):
    return np.abs(np.asarray(a, float) - np.asarray(b, float)) / np.abs(np.asarray(b, float))


# ------------------------------------------------------------------ Wald
@pytest.mark.parametrize("name", CASES)
def test_wald_is_lme4s_formula(name):
    """In R's own numbers: confint(method = "Wald") == fixef -+ qnorm(0.975) * SE, NA for .sig."""
    case = load_case(name)
    for nm, (lo, hi) in case["confint"]["Wald"].items():
        if nm.startswith(".sig"):
            assert lo is None and hi is None
            continue
        est, se = case["fixef"][nm], case["se"][nm]
        assert lo == pytest.approx(est - Z * se, rel=1e-10)
        assert hi == pytest.approx(est + Z * se, rel=1e-10)


@pytest.mark.parametrize("name", CASES)
def test_wald_ours(name, fits):
    res, case = fits[name], load_case(name)
    ci = res.confint(method="Wald")
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    assert list(ci.index) == [_ours(n, case) for n in case["confint"]["Wald"]]
    fe = ci.loc[list(res.fe_params.index)]
    np.testing.assert_allclose(fe["2.5 %"], res.fe_params - Z * res.fe_bse, rtol=1e-12)
    np.testing.assert_allclose(fe["97.5 %"], res.fe_params + Z * res.fe_bse, rtol=1e-12)
    sig = ci.loc[[i for i in ci.index if i.startswith(".sig")]]
    assert sig.isna().all().all()  # NA for variance parameters, as lme4


@pytest.mark.parametrize("name", CASES)
def test_wald_matches_tightly_converged_lme4(name, fits):
    """lme4's Wald formula on lme4's tightly converged fit of the same model: 1e-3 relative."""
    tight = load_case(TIGHT[name])
    ci = fits[name].confint(method="Wald")
    for nm in tight["fixef_names"]:
        est, se = tight["fixef"][nm], tight["se"][nm]
        ours = ci.loc[r_to_formulaic(nm, tight)].to_numpy(float)
        assert rel(ours, [est - Z * se, est + Z * se]).max() < 1e-3, nm


@pytest.mark.parametrize("name", CASES)
def test_wald_vs_default_lme4_documented_gap(name, fits):
    """Against default lme4 the gap is its SE gap (up to 1.3 % for cbpp, parity-notes.md)."""
    case = load_case(name)
    ci = fits[name].confint(method="Wald")
    worst = 0.0
    for nm, (lo, hi) in case["confint"]["Wald"].items():
        if lo is not None:
            worst = max(worst, rel(ci.loc[_ours(nm, case)], [lo, hi]).max())
    assert worst < 2e-2


# ------------------------------------------------------------------ profile
@pytest.mark.parametrize("name", CASES)
def test_profile_matches_lme4(name, profiles):
    case = load_case(name)
    ci = profiles[name]
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    assert list(ci.index) == [_ours(n, case) for n in case["confint"]["profile"]]
    for nm, (lo, hi) in case["confint"]["profile"].items():
        err = rel(ci.loc[_ours(nm, case)], [lo, hi]).max()
        if name == "binary_slope_confint" and nm == ".sig02":
            # R's own profile of this correlation is flagged by R: see the module docstring
            assert any("bad spline fit for .sig02" in w for w in case["confint_warnings"])
            assert err < 5e-3, (nm, err)
        else:
            assert err < 1e-3, (nm, err)


def test_profile_limits_solve_the_exact_profile(fits, profiles):
    """Mathematics, not R: at each limit the re-optimized deviance gives zeta = -+z."""
    from interlace.inference.profile import DevianceModel

    res = fits["cbpp_confint"]
    ci = profiles["cbpp_confint"]
    m = DevianceModel(res)
    xh, base, _ = m.minimize(m.x_hat.copy())
    try:
        for i, nm in enumerate(m.names):
            for col, target in (("2.5 %", -Z), ("97.5 %", Z)):
                x0 = xh.copy()
                x0[i] = ci.loc[nm, col]
                _x, dev, ok = m.minimize(x0, fixed=i)
                zeta = np.sign(x0[i] - xh[i]) * np.sqrt(max(dev - base, 0.0))
                assert ok
                assert zeta == pytest.approx(target, abs=1e-5), (nm, col)
    finally:
        m.restore()


def test_profile_without_polish_is_the_spline(fits):
    """polish=False gives the splined crossing alone (lme4's approach); it is close to the
    polished one on a well-behaved profile."""
    res = fits["cbpp_confint"]
    a = res.confint(parm=[".sig01", "period[T.2]"], method="profile", polish=False)
    b = res.confint(parm=[".sig01", "period[T.2]"], method="profile")
    assert rel(a.to_numpy(), b.to_numpy()).max() < 2e-3


def test_profile_object(fits):
    from interlace.inference.profile import profile

    res = fits["cbpp_confint"]
    pr = profile(res, which="theta_")
    assert list(pr.profiles) == [".sig01"]
    pp = pr.profiles[".sig01"]
    assert np.all(np.diff(pp.zeta) > 0)  # monotone
    assert np.abs(pp.zeta).max() >= np.sqrt(stats.chi2.ppf(0.99, 5))  # lme4's default cutoff reached
    df = pr.to_frame()
    assert {".zeta", ".par", ".focal", ".sig01", "Intercept"} <= set(df.columns)
    # the fit is left where it was
    llf_before = res.llf
    assert -0.5 * res.objective.deviance(res.theta.to_numpy(), res.fe_params.to_numpy()) == pytest.approx(
        llf_before, abs=1e-8)


# ------------------------------------------------------------------ parm, level, errors
def test_parm_selection_and_names(fits):
    res = fits["binary_slope_confint"]
    all_ = res.confint()
    assert list(all_.index) == [".sig01", ".sig02", ".sig03", "Intercept", "age", "urban[T.Y]"]
    assert list(res.confint(parm="beta_").index) == ["Intercept", "age", "urban[T.Y]"]
    assert list(res.confint(parm="theta_").index) == [".sig01", ".sig02", ".sig03"]
    # lme4's oldNames = FALSE names, ours, theta names and R's (Intercept) all resolve
    same = res.confint(parm=["cor_urbanY.(Intercept)|district".replace("urbanY", "urban[T.Y]"),
                             "sd_Intercept|district", "(Intercept)", 5])
    assert list(same.index) == [".sig02", ".sig01", "Intercept", "urban[T.Y]"]
    th = res.confint(parm=list(res.theta.index))
    assert list(th.index) == [".sig01", ".sig02", ".sig03"]
    with pytest.raises(ValueError, match="unknown parameter"):
        res.confint(parm=["nope"])
    with pytest.raises(ValueError, match="unknown method"):
        res.confint(method="bayes")
    with pytest.raises(ValueError, match="level"):
        res.confint(level=1.5)


def test_level_labels(fits):
    res = fits["cbpp_confint"]
    ci = res.confint(level=0.9)
    assert list(ci.columns) == ["5 %", "95 %"]
    z = stats.norm.ppf(0.95)
    assert ci.loc["Intercept", "95 %"] == pytest.approx(res.fe_params["Intercept"] + z * res.fe_bse["Intercept"])
    assert list(res.confint(level=0.99).columns) == ["0.5 %", "99.5 %"]


def test_boot_method(fits):
    res = fits["cbpp_confint"]
    ci = res.confint(method="boot", nsim=40, seed=5)
    assert list(ci.index) == [".sig01", "Intercept", "period[T.2]", "period[T.3]", "period[T.4]"]
    assert np.all(ci["2.5 %"] < ci["97.5 %"])
    again = res.confint(method="boot", nsim=40, seed=5, parm=["period[T.2]"])
    assert again.loc["period[T.2]"].tolist() == ci.loc["period[T.2]"].tolist()


# ------------------------------------------------------------------ LMM
@pytest.fixture(scope="module")
def sleep_fit():
    case = load_case("sleepstudy_ml")
    return fit_case(case)


def test_lmm_wald_and_profile(sleep_fit):
    """LMM: .sig01.., .sigma, fixed effects; the profile of a fixed effect of a Gaussian model
    is close to its Wald interval (nearly quadratic log-likelihood)."""
    res = sleep_fit
    wald = res.confint()
    assert wald.index[:4].tolist() == [".sig01", ".sig02", ".sig03", ".sigma"]
    assert wald.loc[".sigma"].isna().all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof = res.confint(method="profile")
    assert prof.index.tolist() == wald.index.tolist()
    sigma = np.sqrt(res.scale)
    assert prof.loc[".sigma", "2.5 %"] < sigma < prof.loc[".sigma", "97.5 %"]
    for nm in res.fe_params.index:
        lo, hi = prof.loc[nm]
        wlo, whi = wald.loc[nm]
        assert lo < res.fe_params[nm] < hi
        assert abs((hi - lo) / (whi - wlo) - 1) < 0.1  # ML SEs ignore the variance parameters


R_SCRIPT = r"""
suppressMessages(library(lme4)); library(jsonlite)
args <- commandArgs(TRUE)
d <- read.csv(args[1])
for (v in fromJSON(args[3])) d[[v]] <- factor(d[[v]])
fam <- args[4]
ctl <- if (fam == "gaussian") lmerControl() else glmerControl(tolPwrss = 1e-14, optimizer = "bobyqa",
          optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
m <- if (fam == "gaussian") lmer(as.formula(args[2]), data = d, REML = FALSE) else
     glmer(as.formula(args[2]), data = d, family = fam, control = ctl)
ci <- suppressWarnings(suppressMessages(confint(m, method = "profile")))
cat(toJSON(list(names = rownames(ci), lo = ci[, 1], hi = ci[, 2]), digits = NA))
"""


@pytest.mark.r
@pytest.mark.parametrize("name", CASES + ["sleepstudy_ml"])
def test_profile_matches_live_tight_lme4(name, tmp_path, fits, profiles, sleep_fit):
    """Live R: lme4's profile intervals of the tightly converged fit (and lmer for sleepstudy)."""
    case = load_case(name)
    script = tmp_path / "ci.R"
    script.write_text(R_SCRIPT)
    call = case["python_call"]
    r_formula = call["formula"]
    out = subprocess.run(["Rscript", str(script), str(case_data_path(case)), r_formula,
                          json.dumps(list(case.get("factor_levels", {}))), call["family"]],
                         capture_output=True, text=True, check=True, timeout=900)
    got = json.loads(out.stdout)
    if name == "sleepstudy_ml":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci = sleep_fit.confint(method="profile")
    else:
        ci = profiles[name]
    for nm, lo, hi in zip(got["names"], got["lo"], got["hi"]):
        ours = ci.loc[_ours(nm, case)].to_numpy(float)
        # R's spline of this correlation's non-monotone profile (module docstring) moves with
        # R's optimizer settings: -0.9505 (default), -0.9521 (tolPwrss 1e-12), -0.9505 (1e-14)
        tol = 5e-3 if (name, nm) == ("binary_slope_confint", ".sig02") else 1e-3
        assert rel(ours, [lo, hi]).max() < tol, (nm, ours, lo, hi)
