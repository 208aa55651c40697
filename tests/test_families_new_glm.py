"""Models without random effects (issue 22 item 3): the same glmer call fits a GLM.

Exponential families against R's glm (coefficients, SEs with glm's Pearson dispersion,
logLik / AIC from family$aic, Wald intervals, predictions with SEs, the LRT against the
null model); the other families against glmmTMB fitted without random effects.
Every reference number is read from tests/fixtures/families_new/ (make_families_new.R)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from families_new_utils import compare, data, fit, load, py_name, rel

import interlace

GLM_CASES = ["glm_binomial", "glm_poisson", "glm_gaussian", "glm_gamma", "glm_inverse_gaussian"]
TMB_CASES = ["tmb_nbinom2_nore", "tmb_tweedie_nore"]


@pytest.fixture(scope="module")
def fits():
    cache: dict = {}

    def get(name):
        if name not in cache:
            case = load(name)
            cache[name] = (case, fit(case))
        return cache[name]

    return get


@pytest.mark.parametrize("name", GLM_CASES)
def test_glm_parity(fits, name):
    case, res = fits(name)
    assert res.optinfo["engine"] == "glm" and res.converged
    assert res.ngroups == {} and len(res.theta) == 0
    c = compare(res, case)
    assert abs(c["llf"]) < 1e-6, c
    assert c["fixef"] < 1e-5 and c["se"] < 1e-5, c
    assert abs(res.aic - case["aic"]) < 1e-4
    assert abs(res.bic - case["bic"]) < 1e-4
    assert res.df_model == case["df"]
    assert rel(res.scale, case["dispersion"]) < 1e-4
    assert rel(res.fittedvalues.to_numpy()[:20], case["fitted"]) < 1e-4


@pytest.mark.parametrize("name", GLM_CASES)
def test_glm_wald_confint_and_predict(fits, name):
    case, res = fits(name)
    ci = res.confint(method="Wald")
    lo = [ci.loc[py_name(k), "2.5 %"] for k in case["wald_ci"]["lower"]]
    hi = [ci.loc[py_name(k), "97.5 %"] for k in case["wald_ci"]["upper"]]
    assert rel(lo, list(case["wald_ci"]["lower"].values())) < 1e-4
    assert rel(hi, list(case["wald_ci"]["upper"].values())) < 1e-4
    nd = pd.DataFrame(case["newdata"])
    p = res.predict(nd, type="link", se_fit=True)
    assert rel(np.asarray(p.fit), case["predict_link"]) < 1e-4
    assert rel(np.asarray(p.se_fit), case["predict_link_se"]) < 1e-4
    assert rel(np.asarray(res.predict(nd)), case["predict_response"]) < 1e-4


@pytest.mark.parametrize("name", GLM_CASES)
def test_glm_anova_against_null(fits, name):
    """The null model's logLik as R's; for binomial and Poisson the LRT is anova.glm's Chisq test
    (for families with an estimated dispersion R's anova.glm uses an F test on the deviance,
    interlace's anova the LRT of the two logLiks: only the logLiks are compared there)."""
    case, res = fits(name)
    lhs = case["python"]["formula"].split("~")[0].strip()
    null = fit({**case, "python": {**case["python"], "formula": f"{lhs} ~ 1"}})
    assert abs(null.llf - case["anova"]["loglik_null"]) < 1e-6
    if case["anova"]["test"] == "Chisq":
        tab = interlace.anova(null, res)
        assert rel(tab["Chisq"].iloc[1], case["anova"]["deviance"]) < 1e-6
        assert rel(tab["Pr(>Chisq)"].iloc[1], case["anova"]["p_value"]) < 1e-4


def test_glm_summary_has_no_random_effects(fits):
    case, res = fits("glm_gamma")
    text = str(res.summary())
    assert "['glm']" in text and "Random effects" not in text
    assert "t value" in text  # Gamma's dispersion is estimated: t tests, as summary.glm


@pytest.mark.parametrize("name", TMB_CASES)
def test_no_re_glmmtmb_parity(fits, name):
    case, res = fits(name)
    assert res.optinfo["engine"] == "glm" and res.converged
    c = compare(res, case)
    assert abs(c["llf"]) < 1e-4, c
    for k, v in c.items():
        if k != "llf":
            assert v < 1e-3, (k, c)
    assert abs(res.aic - case["aic"]) < 1e-4


def test_glm_postfit_tools(fits):
    """simulate, bootstrap (refits through engines.refit), pickling and the Dharma-style
    residuals work on a fit without random effects."""
    import pickle

    case, res = fits("glm_poisson")
    sims = res.simulate(3, seed=1)
    assert sims.shape == (3, res.nobs) and np.all(sims >= 0)
    boot = res.bootstrap(nsim=10, seed=2)
    assert len(boot.failures) == 0
    again = pickle.loads(pickle.dumps(res))
    nd = pd.DataFrame(case["newdata"])
    assert np.allclose(again.predict(nd), res.predict(nd))
    assert res.scaled_residuals(nsim=20, seed=3) is not None


def test_lmer_without_random_effects_says_what_to_do():
    case = load("glm_gaussian")
    with pytest.raises(ValueError, match="glmer"):
        interlace.lmer("ynorm ~ x + grp", data(case))


def test_glm_toolbox(fits):
    """r2 (no random variance: marginal = conditional), Anova, drop1, emmeans, tidy and glance run
    on a GLM; profile intervals say which methods apply."""
    case, res = fits("glm_poisson")
    r2 = res.r2()
    assert r2["R2_marginal"] == pytest.approx(r2["R2_conditional"]) and 0 < r2["R2_marginal"] < 1
    assert list(res.Anova().index) == ["x", "grp"]
    assert np.isfinite(res.drop1().iloc[1:, -1]).all()
    assert "b" in str(res.emmeans("grp"))
    assert res.glance()["logLik"].iloc[0] == pytest.approx(case["loglik"], abs=1e-6)
    with pytest.raises(NotImplementedError, match="Wald"):
        res.confint(method="profile")
