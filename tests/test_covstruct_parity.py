"""Parity of the covariance structures with glmmTMB 1.1.5 (issue 21 item 5).

tests/fixtures/covstruct/make_covstruct.R fits one or more cases per structure (us, diag, cs,
ar1, toep; binomial, Poisson, NB2 and the Gaussian LMM by ML and REML) on simulated data it
writes next to the cases. Each case is refitted here: log-likelihood no worse than glmmTMB's
by more than 1e-4, fixed effects, SEs and SDs within 1e-3 relative, correlations within 1e-3;
Gamma (log link) and a zero-inflated Poisson go through the general (glmmTMB-families) engine.

Gaussian SEs: interlace's lmer reports lme4's (X'V^-1 X)^-1 at the estimated covariance;
glmmTMB inverts the joint Hessian of beta and the covariance parameters, which differs by
O(1/n) terms (up to 2.5% on toep_gaussian_ml). The fixture stores the lme4-convention SE at
glmmTMB's estimates (``se_profiled``, computed by the R script), which is compared at 1e-3.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from covstruct_cases import CASES, compare, fit, load, rel  # noqa: E402

from interlace.model.covariance import term_covariance  # noqa: E402

STRUCTS = {"ar1", "cs", "toep", "diag", "us"}


def test_every_structure_has_a_case():
    assert STRUCTS <= {c.split("_")[0] for c in CASES}
    fams = {load(c)[0]["family"] for c in CASES}
    assert {"binomial", "poisson", "nbinom2", "gaussian", "Gamma"} <= fams
    assert any(load(c)[0].get("ziformula") for c in CASES)


@pytest.mark.parametrize("name", CASES)
def test_parity_with_glmmtmb(name):
    case, df = load(name)
    m = fit(case, df)
    assert m.converged
    structure = case["formula"].split("x + ", 1)[1].split("(")[0]
    assert term_covariance(m.model_frame.terms[0]).name == structure
    c = compare(case, m)
    assert c["llf"] > -1e-4 and abs(c["llf"]) < 1e-3, c
    assert c["fixef"] < 1e-3, c
    assert c["sd"] < 1e-3, c
    assert c["corr"] < 1e-3, c
    if case["family"] == "gaussian":
        assert c["sigma"] < 1e-3, c
        se = [m.fe_bse[k if k != "(Intercept)" else "Intercept"] for k in case["se_profiled"]]
        assert rel(se, list(case["se_profiled"].values())) < 1e-3
        assert c["se"] < 3e-2, c
    else:
        assert c["se"] < 1e-3, c
    if case.get("zi"):  # zero inflation (general engine)
        assert rel(m.zi_params.to_numpy(), list(case["zi"].values())) < 1e-3
    if case.get("shape"):  # Gamma's shape (general engine)
        assert rel([m.family_params["shape"]], [case["shape"]]) < 1e-3


@pytest.mark.parametrize("name", [c for c in CASES if "ranef" in load(c)[0]])
def test_conditional_modes(name):
    """BLUPs (conditional modes) as glmmTMB's ranef. Conditional SDs: glmmTMB's add the
    uncertainty of the fixed parameters (TMB's sdreport), a non-negative term, to lme4's
    condVar (interlace's), so ours are never larger; where the fixture has lme4's condVar for
    the same model (us), they agree with it."""
    case, df = load(name)
    m = fit(case, df)
    for r in case["ranef"]:
        ours = m.random_effects[r["group"]]
        modes = np.asarray(r["modes"], dtype=float)
        assert [str(v) for v in ours.index] == [str(v) for v in r["levels"]]
        np.testing.assert_allclose(ours.to_numpy(), modes, atol=2e-3 * np.abs(modes).max())
        csd = np.asarray(r["condsd"], dtype=float).reshape(modes.shape)
        sd = m.random_effects_sd[r["group"]].to_numpy()
        assert np.all(sd <= csd * (1 + 1e-4))
        if r.get("condsd_lme4") is not None:
            np.testing.assert_allclose(sd, np.asarray(r["condsd_lme4"], dtype=float).reshape(modes.shape), rtol=1e-2)


@pytest.mark.parametrize("name", [c for c in CASES if not load(c)[0]["REML"]
                                  and load(c)[0]["formula"].split("x + ", 1)[1][:2] in ("cs", "to", "ar", "di")])
def test_wald_confint_of_the_structure(name):
    """confint(m, "theta_", method = "wald") as glmmTMB's: log SDs and each correlation on
    glmmTMB's scale (glmmTMB 1.1.5 labels ar1's rho row as a second SD: only its SD row is
    compared; the Hessian is by differences of the exact gradient (GLMMs) or of the ML
    deviance (LMMs), hence 1e-3)."""
    case, df = load(name)
    m = fit(case, df)
    ours = m.confint(parm="theta_", method="Wald").to_numpy()
    ref = np.c_[case["confint_theta"]["lower"], case["confint_theta"]["upper"]]
    n = 1 if case["formula"].split("x + ", 1)[1].startswith("ar1") else len(ref)
    np.testing.assert_allclose(ours[:n], ref[:n], rtol=1e-3, atol=2e-4)
    assert np.all(np.isfinite(ours[: len(ref)]))  # (an LMM's .sigma row stays NA, as lme4's)


@pytest.mark.parametrize("name", ["ar1_poisson", "cs_poisson"])
def test_profile_confint_of_the_structure(name):
    """Profile intervals are invariant to the parametrization: glmmTMB's, on its theta (log SD,
    the correlation's unconstrained parameter), mapped to the SD/correlation scale, are ours
    (glmmTMB splines its profile: 2e-3 on the correlations)."""
    case, df = load(name)
    m = fit(case, df)
    cov = term_covariance(m.model_frame.terms[0])
    ours = m.confint(parm="theta_", method="profile").to_numpy()
    ref = np.c_[case["confint_profile"]["lower"], case["confint_profile"]["upper"]]
    nsd = cov.nsd
    np.testing.assert_allclose(ours[:nsd], np.exp(ref[:nsd]), rtol=2e-3)
    np.testing.assert_allclose(ours[nsd:], cov.corr_linkinv(ref[nsd:]), atol=2e-3)
