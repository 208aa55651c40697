"""glmmTMB families against glmmTMB fits made with R (llf, fixed effects, SEs,
variance components and family parameters), and glmer.nb's grouseticks fit.

Every number comes from the JSON fixtures (tests/fixtures/oracle and
tests/fixtures/cases, made by tests/fixtures/make_glmmtmb.R)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import load_case
from oracle_utils import compare, fit_case, r_to_formulaic, rel_err

TMB_CASES = ["owls_nb2", "salamanders_zip", "sleepstudy_disp", "grouseticks_nb_tmb", "nb1", "gamma_log", "beta",
             "zinb", "hurdle_poisson", "nb2_disp"]
TOL = 1e-3


def family_param_errors(res, case: dict) -> dict[str, float]:
    """Relative errors of the dispersion / zero-inflation coefficients and their SEs
    (glmmTMB's raw scale: log theta, log phi, log shape, log sigma^2, logit p)."""
    fp = case["family_params"]
    out = {}
    for r_key, ours in (("disp_coef_raw", "disp_coef"), ("zi_coef", "zi_coef")):
        if not isinstance(fp.get(r_key), dict):
            continue
        names = list(fp[r_key])
        mine = res.family_params[ours]
        mine_se = res.family_params[ours + "_se"]
        py = [r_to_formulaic(n, case) for n in names]
        out[ours] = rel_err([mine[p] for p in py], [fp[r_key][n] for n in names])
        out[ours + "_se"] = rel_err([mine_se[p] for p in py], [fp[r_key + "_se"][n] for n in names])
    for name in ("theta", "phi", "shape"):
        if isinstance(fp.get(name), (int, float)) and name in res.family_params:
            out[name] = rel_err(res.family_params[name], fp[name])
    return out


@pytest.fixture(scope="module")
def fits():
    cache = {}

    def get(name):
        if name not in cache:
            case = load_case(name)
            t0 = time.perf_counter()
            res = fit_case(case)
            cache[name] = (case, res, time.perf_counter() - t0)
        return cache[name]

    return get


@pytest.mark.parametrize("name", TMB_CASES)
def test_parity_with_glmmtmb(fits, name):
    case, res, _secs = fits(name)
    assert res.optinfo["engine"] == "general"
    c = compare(res, case)
    assert abs(c["llf_diff"]) < 1e-4, c
    for key in ("fixef", "se", "varcorr"):
        assert c[key] < TOL, (key, c)
    fp = family_param_errors(res, case)
    assert fp, "no family parameters compared"
    for key, err in fp.items():
        assert err < TOL, (key, fp)


@pytest.mark.parametrize("name", TMB_CASES)
def test_random_effects_and_fitted_match(fits, name):
    """Conditional modes, TMB's conditional SDs (including the fixed-parameter
    uncertainty) and E[Y] (zero-inflated / hurdle means) match glmmTMB."""
    case, res, _ = fits(name)
    c = compare(res, case)
    for key in ("ranef", "condsd", "fitted"):
        if key in c:
            assert c[key] < TOL, (key, c)


def test_grouseticks_joint_maximum_beats_glmer_nb(fits):
    """glmer.nb alternates theta and the GLMM fit; the joint maximum (glmmTMB's,
    and ours) has a log-likelihood at least as high."""
    case, res, _ = fits("grouseticks_nb")
    assert res.llf >= case["loglik"] - 1e-4
    tmb = load_case("grouseticks_nb_tmb")
    assert abs(res.llf - tmb["loglik"]) < 1e-4
    assert rel_err(res.family_params["theta"], tmb["family_params"]["theta"]) < TOL


def test_dispformula_gaussian_is_residual_variance(fits):
    """phi_i = exp(X_d delta) is the residual variance (glmmTMB's log(sigma^2) scale)."""
    case, res, _ = fits("sleepstudy_disp")
    phi = np.asarray(case["family_params"]["phi_row"], float)
    assert rel_err(res.dispersion, phi) < TOL
    assert res.disp_params.index.tolist() == ["Intercept", "Days"]
    assert res.disp_bse is not None and np.all(res.disp_bse > 0)


def test_nb2_disp_rows_are_theta(fits):
    case, res, _ = fits("nb2_disp")
    assert rel_err(res.dispersion, np.asarray(case["family_params"]["disp_row"], float)) < TOL


def test_zero_inflation_rows(fits):
    for name in ("salamanders_zip", "zinb", "hurdle_poisson"):
        case, res, _ = fits(name)
        obj = res.objective
        p = 1.0 / (1.0 + np.exp(-obj._state["aux"]["zi"]))
        assert rel_err(p, np.asarray(case["family_params"]["zi_prob_row"], float)) < TOL, name


def test_timings_reported(fits):
    """Each fit is timed against R's median (informative; generous bound)."""
    for name in TMB_CASES:
        case, res, secs = fits(name)
        assert secs < 30 + 20 * float(case.get("r_seconds") or 1.0), (name, secs)
