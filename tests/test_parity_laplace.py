"""Parity of the Laplace engine with lme4 on every nAGQ = 1 lme4 case.

R's numbers come from tests/fixtures (the oracle copy and the project's own fits, R scripts committed
there). Tolerances: llf no worse than R's by 1e-4; fixed effects, VarCorr,
BLUPs, conditional SDs and fitted values within 1e-3 relative; SEs within
1e-3 unless listed in SE_LOOSE, where lme4's own SEs are imprecise (see
docs/parity-notes.md: lme4 takes a finite-difference Hessian of a deviance
whose PIRLS stops at tolPwrss = 1e-7, and the *_tight fixtures made with a
tight tolerance agree with ours to 1e-3).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_case
from oracle_utils import compare, fit_case, r_loglik

ORACLE_LAPLACE = ["cbpp_laplace", "cbpp_prop", "grouseticks_poisson", "sleepstudy_ml", "sleepstudy_uncorr"]
FIXTURE_LAPLACE = ["cbpp_probit", "cbpp_cloglog", "cbpp_cauchit", "binom_priorweights", "poisson_offset",
                   "grouseticks_nested", "binary_slope"]

# case -> SE tolerance where default lme4's finite-difference Hessian is the limit
SE_LOOSE = {"cbpp_laplace": 1.5e-2, "cbpp_prop": 1.5e-2, "cbpp_cauchit": 5e-3,
            "binom_priorweights": 3e-3, "poisson_offset": 3e-3, "binary_slope": 3e-3,
            "instevel_binary": 5e-3}
# cases where lme4's loosely converged PIRLS moves its llf by more than 1e-4
# (our llf is higher): estimates are compared at the tolerance given.
R_SHORT = {"grouseticks_ri_laplace": 1e-2}


def _check(name: str, call_key: str = "python_call", **override):
    case = load_case(name)
    res = fit_case(case, call_key, **override)
    cmp = compare(res, case)
    assert cmp["llf_diff"] >= -1e-4, cmp
    tol = R_SHORT.get(name, 1e-3)
    for key in ("fixef", "varcorr", "ranef", "condsd", "fitted"):
        if key in cmp:
            assert cmp[key] < tol, (key, cmp)
    assert cmp["se"] < max(SE_LOOSE.get(name, 1e-3), tol), cmp
    assert res.converged, res.optinfo["messages"]
    return res, case


@pytest.mark.parametrize("name", ORACLE_LAPLACE + FIXTURE_LAPLACE + list(R_SHORT))
def test_laplace_parity(name):
    _check(name)


@pytest.mark.parametrize("name", ["cbpp_laplace", "grouseticks_poisson", "sleepstudy_ml", "binary_slope"])
def test_random_argument_form_matches(name):
    """The formula_parts form (fixed part + random=[...]) gives the same fit."""
    case = load_case(name)
    parts = case["formula_parts"]
    lhs = case["python_call"]["formula"].split("~")[0].strip()
    res_inline = fit_case(case)
    res_random = fit_case(case, formula=f"{lhs} ~ {parts['fixed']}", random=parts["random"])
    assert abs(res_inline.llf - res_random.llf) < 1e-8
    np.testing.assert_allclose(res_inline.fe_params, res_random.fe_params, rtol=1e-6)


def test_proportion_form_matches_cbind():
    case = load_case("cbpp_laplace")
    a = fit_case(case)
    b = fit_case(case, "python_call_alt")
    assert abs(a.llf - b.llf) < 1e-8
    np.testing.assert_allclose(a.fe_bse, b.fe_bse, rtol=1e-6)


def test_r_loose_pirls_case():
    """grouseticks (1 | LOCATION): lme4's reported llf is 2e-3 below ours, and
    our exact Laplace deviance at R's own parameters is also 2e-3 above R's
    value: lme4 evaluates its Laplace deviance with PIRLS stopped at
    tolPwrss = 1e-7 (docs/parity-notes.md). Our optimum is at least as high
    and the estimates agree to 1e-2."""
    case = load_case("grouseticks_ri_laplace")
    res, _ = _check("grouseticks_ri_laplace")
    assert res.llf > r_loglik(case)


@pytest.mark.slow
def test_three_factor_crossed_insteval():
    """InstEval as a binary response: 73,421 rows, crossed s x d x dept
    (2,972 x 1,128 x 14 levels, q = 4,114). Term s gives the diagonal block,
    the cross block with d and dept is sparse, and only the small d + dept
    block (1,142 x 1,142) is dense: no q x q matrix, nothing growing with n."""
    res, case = _check("instevel_binary")
    re = res.objective.re
    assert re.q == 4114 and re.q0 == 2972 and re.q2 == 1142
    assert res.objective.chol.L22.shape == (1142, 1142)


def test_nagq0_fast_mode_runs_and_is_close():
    case = load_case("cbpp_laplace")
    res0 = fit_case(case, nAGQ=0)
    res1 = fit_case(case)
    assert res0.nAGQ == 0
    # nAGQ = 0 maximizes a different criterion: estimates close, llf not higher
    np.testing.assert_allclose(res0.fe_params, res1.fe_params, atol=0.05)
    assert res0.llf <= res1.llf + 1e-8


def test_bobyqa_reaches_same_optimum():
    case = load_case("cbpp_laplace")
    a = fit_case(case, optimizer="bobyqa")
    b = fit_case(case)
    assert abs(a.llf - b.llf) < 1e-5
    np.testing.assert_allclose(a.fe_params, b.fe_params, rtol=2e-3)


def test_theta0_seeds_the_fit():
    case = load_case("cbpp_laplace")
    a = fit_case(case, theta0=np.array([0.5]))
    b = fit_case(case)
    assert abs(a.llf - b.llf) < 1e-6


def test_optinfo_records_evaluations():
    res = fit_case(load_case("cbpp_laplace"))
    assert res.optinfo["nfev"] > 0 and res.optinfo["ngev"] > 0
    assert res.optinfo["optimizer"] == "lbfgsb"
