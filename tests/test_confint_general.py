"""confint for the general (glmmTMB-families) engine and for AGQ fits (issue 8).

Wald rows of the family-parameter coefficients (disp.*, zi.*) against their
SEs; profile intervals of the general engine's Laplace deviance and of the
AGQ deviance: finite, bracketing the estimate, close to Wald where the
likelihood is near-quadratic, and with endpoints where the profiled deviance
rises by the chi-square quantile (checked by re-minimizing at the endpoint).
The optional live-R test compares with glmmTMB's confint(method = "profile").
"""

from __future__ import annotations

import json
import subprocess
import warnings

import numpy as np
import pytest
from scipy import stats

from conftest import case_data_path, load_case
from oracle_utils import fit_case

from interlace.inference.profile import DevianceModel, profile


@pytest.fixture(scope="module")
def fits():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = fit_case(load_case(name))
        return cache[name]

    return get


@pytest.fixture(scope="module")
def profiles(fits):
    cache = {}

    def get(name):
        if name not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[name] = fits(name).confint(method="profile")
        return cache[name]

    return get


# ---------------------------------------------------------------------------- Wald
@pytest.mark.parametrize("name", ["grouseticks_nb_tmb", "nb2_disp", "zinb"])
def test_wald_family_rows_are_estimate_pm_z_se(name, fits):
    m = fits(name)
    assert m.optinfo["engine"] == "general"
    level = 0.9
    ci = m.confint(method="Wald", level=level)
    z = stats.norm.ppf(0.5 + level / 2)
    n_aux = 0
    for block, est in m.aux_params.items():
        se = m.aux_bse[block]
        for coef in est.index:
            lo, hi = ci.loc[f"{block}.{coef}"]
            assert lo == pytest.approx(est[coef] - z * se[coef], rel=1e-12, abs=1e-12)
            assert hi == pytest.approx(est[coef] + z * se[coef], rel=1e-12, abs=1e-12)
            n_aux += 1
    assert n_aux == sum(len(v) for v in m.aux_params.values()) > 0
    # fixed effects as before; the variance parameters NA as in lme4
    for j, nm in enumerate(m.fe_params.index):
        assert ci.loc[nm].iloc[0] == pytest.approx(m.fe_params.iloc[j] - z * m.fe_bse.iloc[j], rel=1e-12)
    assert np.isnan(ci.loc[".sig01"]).all()


def test_wald_parm_selection_and_glmmtmb_alias(fits):
    m = fits("nb2_disp")
    ci = m.confint(parm="aux_", method="Wald")
    assert list(ci.index) == ["disp.Intercept", "disp.FoodTreatment[T.Satiated]"]
    alias = m.confint(parm=["disp.(Intercept)"], method="Wald")
    assert list(alias.index) == ["disp.Intercept"]
    assert np.allclose(alias.to_numpy(), ci.loc[["disp.Intercept"]].to_numpy())
    assert ".sig01" in m.confint(parm="theta_", method="Wald").index


def test_wald_family_rows_match_glmmtmb_wald(fits):
    """glmmTMB's Wald rows disp.* are estimate +- z * SE of its dispersion
    coefficients; the oracle records both (disp_coef_raw, disp_coef_raw_se)."""
    case = load_case("nb2_disp")
    m = fits("nb2_disp")
    fp = case["family_params"]
    z = stats.norm.ppf(0.975)
    ci = m.confint(parm="aux_", method="Wald")
    for (r_name, est), se, ours in zip(fp["disp_coef_raw"].items(), fp["disp_coef_raw_se"].values(), ci.index):
        ref = np.array([est - z * se, est + z * se])
        got = ci.loc[ours].to_numpy(float)
        assert np.max(np.abs(got - ref)) < 2e-3 * np.max(np.abs(ref)), (r_name, got, ref)


# ---------------------------------------------------------------------------- profile, general engine
NB2 = ["grouseticks_nb_tmb", "owls_nb2"]


@pytest.mark.parametrize("name", NB2)
def test_profile_nb2_finite_brackets_and_near_wald(name, fits, profiles):
    m = fits(name)
    pr = profiles(name)
    wald = m.confint(method="Wald")
    est = {".sig01": float(abs(m.theta.iloc[0])), **m.fe_params.to_dict(),
           **{f"disp.{k}": v for k, v in m.aux_params["disp"].items()}}
    assert "disp.Intercept" in pr.index
    for nm, x in est.items():
        lo, hi = pr.loc[nm]
        assert np.isfinite(lo) and np.isfinite(hi), nm
        assert lo < x < hi, (nm, lo, x, hi)
    # where the log-likelihood is near-quadratic (fixed effects, log dispersion),
    # the profile interval has about the Wald length
    for nm in list(m.fe_params.index) + ["disp.Intercept"]:
        lp = pr.loc[nm].iloc[1] - pr.loc[nm].iloc[0]
        lw = wald.loc[nm].iloc[1] - wald.loc[nm].iloc[0]
        assert abs(lp / lw - 1) < 0.10, (nm, lp, lw)


def _endpoint_excess(m, names, level):
    """2 (llf_max - llf_profile) - chi2_1(level) at each profile endpoint, by
    re-minimizing the deviance with the parameter held at the endpoint."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pr = profile(m, which=names, level=level)
        ci = pr.confint(level=level)
    dm = DevianceModel(m)
    x_hat, base, _ = dm.minimize(dm.x_hat.copy())
    q = stats.chi2.ppf(level, 1)
    out = []
    idx = {n: i for i, n in enumerate(dm.names)}
    for nm in names:
        i = idx[nm]
        for v in ci.loc[nm]:
            assert np.isfinite(v), nm
            x0 = x_hat.copy()
            x0[i] = v
            # start the others from the profile's nearest point: the optimum of the
            # others moves along the profile
            pp = pr.profiles[nm]
            x0 = pp.points[np.argmin(np.abs(pp.values - v))].copy()
            x0[i] = v
            _, dev, _ = dm.minimize(x0, fixed=i)
            out.append((nm, v, dev - base - q))
    dm.restore()
    return out


def test_profile_endpoints_are_chisq_crossings_general(fits):
    m = fits("grouseticks_nb_tmb")
    names = [".sig01", "HEIGHT_c", "disp.Intercept"]
    for nm, v, excess in _endpoint_excess(m, names, 0.95):
        assert abs(excess) < 1e-3, (nm, v, excess)


def test_profile_general_with_dispformula(fits, profiles):
    """A dispersion model with a covariate: all rows profiled and bracketing."""
    m = fits("nb2_disp")
    pr = profiles("nb2_disp")
    for block, est in m.aux_params.items():
        for coef, x in est.items():
            lo, hi = pr.loc[f"{block}.{coef}"]
            assert lo < x < hi
    for nm, x in m.fe_params.items():
        lo, hi = pr.loc[nm]
        assert lo < x < hi


def test_profile_leaves_general_fit_state(fits):
    m = fits("grouseticks_nb_tmb")
    obj = m.objective
    before = obj._state["dev"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.confint(parm=["HEIGHT_c"], method="profile")
    assert obj._state["dev"] == pytest.approx(before, rel=1e-12)


def test_boot_general_has_family_rows(fits):
    """confint(method="boot") of a general-engine fit reports the disp.* rows too."""
    m = fits("grouseticks_nb_tmb")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ci = m.confint(method="boot", nsim=20, seed=3)
    assert list(ci.index) == list(m.confint(method="Wald").index)
    assert np.isfinite(ci.to_numpy()).all()
    lo, hi = ci.loc["disp.Intercept"]
    assert lo < hi


# ---------------------------------------------------------------------------- profile, AGQ
def test_profile_agq_brackets_and_chisq_crossings(fits, profiles):
    m = fits("cbpp_agq25")
    assert m.optinfo["engine"] == "agq" and m.nAGQ == 25
    pr = profiles("cbpp_agq25")
    sd = float(abs(m.theta.iloc[0]))
    lo, hi = pr.loc[".sig01"]
    assert 0 < lo < sd < hi
    for nm, x in m.fe_params.items():
        lo, hi = pr.loc[nm]
        assert lo < x < hi
    for nm, v, excess in _endpoint_excess(m, [".sig01", "period[T.2]"], 0.95):
        assert abs(excess) < 1e-3, (nm, v, excess)


def test_profile_agq_differs_from_laplace(fits):
    """The AGQ profile is of the AGQ deviance, not the Laplace one."""
    m = fits("cbpp_agq25")
    dm = DevianceModel(m)
    x = dm.x_hat.copy()
    lap = m.objective.deviance(m.theta.to_numpy(float), m.fe_params.to_numpy(float))
    agq = dm.deviance(x)
    dm.restore()
    assert agq == pytest.approx(-2 * m.llf, rel=1e-8)
    assert abs(agq - lap) > 1e-4


# ---------------------------------------------------------------------------- live R (glmmTMB)
R_SCRIPT = r"""
suppressMessages(library(glmmTMB))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
for (f in strsplit(args[3], ",")[[1]]) if (nzchar(f)) d[[f]] <- factor(d[[f]])
m <- glmmTMB(as.formula(args[2]), data = d, family = nbinom2)
ci <- confint(m, method = "profile")
cat(jsonlite::toJSON(list(names = rownames(ci), lo = ci[, 1], hi = ci[, 2]), digits = NA))
"""


@pytest.mark.r
def test_profile_matches_live_glmmtmb(tmp_path, fits, profiles):
    """glmmTMB's profile intervals: fixed effects directly, its log-SD row
    (theta_1|...) exponentiated against our .sig01 (a profile interval is
    invariant under the monotone log map). Measured: 2.8e-4 relative at most;
    the issue's parity bar is 1e-3."""
    name = "grouseticks_nb_tmb"
    case = load_case(name)
    script = tmp_path / "ci.R"
    script.write_text(R_SCRIPT)
    formula = case["python_call"]["formula"]
    out = subprocess.run(["Rscript", str(script), str(case_data_path(case)), formula,
                          ",".join(case.get("factor_levels", {}))],
                         capture_output=True, text=True, check=True, timeout=900)
    got = json.loads(out.stdout)
    ours = profiles(name)
    from oracle_utils import r_to_formulaic

    for nm, lo, hi in zip(got["names"], got["lo"], got["hi"]):
        if nm.startswith("theta_"):
            key, ref = ".sig01", np.exp([lo, hi])
        else:
            key, ref = r_to_formulaic(nm, case), np.array([lo, hi])
        mine = ours.loc[key].to_numpy(float)
        assert np.max(np.abs(mine - ref) / np.abs(ref)) < 1e-3, (nm, mine, ref)
