"""Random effects in ziformula / dispformula (issue 22 item 2): glmmTMB 1.1.5 parity on the
fixtures of tests/fixtures/zi (made by make_zi.R), the exact gradient of the joint Laplace
deviance against central differences, and random effects in dispformula (which glmmTMB
1.1.5 refuses: disp_re_glmmTMB115.json) against an independent Laplace approximation."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import interlace
from interlace.engine_general import as_likelihood_family
from interlace.general.multi import MultiObjective
from interlace.model_frame import build_model_frame

ZI = Path(__file__).resolve().parent / "fixtures" / "zi"
CASES = ["zip_re", "zinb2_re", "zinb1_dot", "zigenpois_re", "zib_re", "zigamma_re", "zinb2_fixed", "hurdle_nb2_re",
         "zip_zionly_re", "zinb2_zionly_re"]


def load(case: str):
    d = json.loads((ZI / f"{case}.json").read_text())
    call = dict(d["python_call"])
    data = call.pop("data")
    df = interlace.datasets.load(data) if "/" not in data else pd.read_csv(Path(__file__).resolve().parents[1] / data)
    fam = call.pop("family")
    link = call.pop("link", None)
    return d, df, (interlace.family(fam, link=link) if link else fam), call


_FITS: dict = {}


def fit(case: str):
    if case not in _FITS:
        d, df, fam, call = load(case)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[case] = (d, interlace.glmer(data=df, family=fam, **call))
    return _FITS[case]


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-8)))


@pytest.mark.parametrize("case", CASES)
def test_parity_with_glmmtmb(case):
    d, m = fit(case)
    assert d["converged"] and m.converged
    assert m.llf - d["loglik"] > -1e-4
    assert abs(m.llf - d["loglik"]) < 1e-4
    assert rel(m.fe_params.to_numpy(), list(d["fixef"]["cond"].values())) < 1e-3
    assert rel(m.fe_bse.to_numpy(), list(d["se"]["cond"].values())) < 1e-3
    assert rel(m.zi_params.to_numpy(), list(d["fixef"]["zi"].values())) < 1e-3
    assert rel(m.zi_bse.to_numpy(), list(d["se"]["zi"].values())) < 1e-3
    if d["varcorr"]["cond"] is None:  # random effects in ziformula only: VarCorr(m)$cond is empty
        assert m.varcorr.empty and m.random_effects == {} and len(m.theta) == 0
    else:
        assert rel(m.varcorr["sdcor"].to_numpy(), [v["sd"] for v in d["varcorr"]["cond"].values()]) < 1e-3
    if d["varcorr"]["zi"] is not None:
        # glmmTMB's VarCorr(m)$zi
        assert rel(m.varcorr_zi["sdcor"].to_numpy(), [v["sd"] for v in d["varcorr"]["zi"].values()]) < 1e-3
        assert list(m.varcorr_zi["grp"]) == list(d["varcorr"]["zi"])
    if d["fixef"].get("disp"):
        assert rel(list(m.family_params["disp_coef"].values()), list(d["fixef"]["disp"].values())) < 1e-3


@pytest.mark.parametrize("case", ["zip_re", "zinb2_re", "zib_re", "zip_zionly_re", "zinb2_zionly_re"])
def test_zi_random_effects_match_ranef_zi(case):
    d, m = fit(case)
    ref = d["ranef"]["zi"]
    (grp, info), = ref.items()
    ours = m.random_effects_zi[grp] if isinstance(m.random_effects_zi, dict) else m.random_effects_zi
    vals = np.asarray(ours, dtype=float).reshape(-1)
    want = np.asarray(info["values"], dtype=float).reshape(-1)
    np.testing.assert_allclose(vals, want, rtol=2e-3, atol=2e-4)


def test_zi_dot_is_the_conditional_formula():
    df = interlace.datasets.load("owls")
    mf = build_model_frame("SiblingNegotiation ~ FoodTreatment + (1 | Nest)", df, family="nbinom1", ziformula="~.")
    assert mf.zi_names == mf.fe_names and [t.group for t in mf.zi_terms] == ["Nest"]


def _grad_check(formula, df, family, **side):
    mf = build_model_frame(formula, df, family=family, **side)
    lf = as_likelihood_family(interlace.family(family) if isinstance(family, str) else family,
                              zero_inflated=mf.zi_X is not None)
    obj = MultiObjective(mf, lf)
    rng = np.random.default_rng(5)
    x = obj.x_start()
    x[: obj.nt] = rng.uniform(0.3, 1.0, obj.nt)
    x[obj.nt:] += rng.normal(0, 0.1, obj.k - obj.nt)
    g = obj.gradient(x)
    fd = np.empty_like(g)
    for i in range(len(x)):
        h = 1e-5
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        fd[i] = (obj.deviance(xp) - obj.deviance(xm)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-4 * max(1.0, float(np.max(np.abs(fd)))))


def test_gradient_is_exact_zi_and_disp_random_slopes():
    df = interlace.datasets.load("owls")
    df["ArrivalTime"] = (df["ArrivalTime"] - df["ArrivalTime"].mean()) / df["ArrivalTime"].std()
    _grad_check("SiblingNegotiation ~ FoodTreatment + (1 | Nest)", df, "negativebinomial",
                ziformula="~ ArrivalTime + (1 + ArrivalTime | Nest)", dispformula="~ FoodTreatment + (1 | Nest)")


def _sim_disp(seed=11, ng=25, per=16):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(ng), per)
    x = np.round(rng.normal(size=ng * per), 4)
    b, bd = rng.normal(0, 0.4, ng), rng.normal(0, 0.7, ng)
    mu = np.exp(1.0 + 0.5 * x + b[g])
    th = np.exp(0.5 + bd[g])
    y = rng.negative_binomial(th, th / (th + mu))
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": [f"G{i:02d}" for i in g]})


def test_glmmtmb_115_refuses_random_effects_in_dispformula():
    msg = json.loads((ZI / "disp_re_glmmTMB115.json").read_text())["message"]
    assert "no random effects allowed in dispersion" in msg


def test_disp_random_effects_match_an_independent_laplace():
    """NB2 with dispformula = ~ 1 + (1 | g): the joint Laplace log-likelihood at the fit,
    recomputed per group from scipy's nbinom density (2-D mode by BFGS, Hessian by central
    differences), and no coordinate move improves it."""
    df = _sim_disp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = interlace.glmer("y ~ x + (1 | g)", df, family="negativebinomial", dispformula="~ 1 + (1 | g)")
    beta = m.fe_params.to_numpy()
    sd = float(m.varcorr["sdcor"].iloc[0])
    sdd = float(m.varcorr_disp["sdcor"].iloc[0])
    d0 = float(m.family_params["disp_coef"]["Intercept"])

    def laplace(beta, sd, sdd, d0):
        tot = 0.0
        for _, grp in df.groupby("g"):
            y, x = grp["y"].to_numpy(), grp["x"].to_numpy()

            def h(b):
                mu = np.exp(beta[0] + beta[1] * x + sd * b[0])
                th = np.exp(d0 + sdd * b[1])
                return float(np.sum(stats.nbinom.logpmf(y, th, th / (th + mu))) - 0.5 * b @ b)

            bs = optimize.minimize(lambda b: -h(b), np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
            e = 1e-4
            Hs = np.empty((2, 2))
            for i in range(2):
                for j in range(2):
                    ei, ej = np.eye(2)[i] * e, np.eye(2)[j] * e
                    Hs[i, j] = (h(bs + ei + ej) - h(bs + ei - ej) - h(bs - ei + ej) + h(bs - ei - ej)) / (4 * e * e)
            tot += h(bs) - 0.5 * np.linalg.slogdet(-Hs)[1]
        return tot

    ref = laplace(beta, sd, sdd, d0)
    assert abs(m.llf - ref) < 1e-5
    for s in (1.01, 0.99):
        assert laplace(beta, sd, sdd * s, d0) < m.llf + 1e-6
        assert laplace(beta, sd * s, sdd, d0) < m.llf + 1e-6
    assert laplace(beta, sd, sdd, d0 + 0.01) < m.llf + 1e-6
    assert m.converged and 0.3 < sdd < 1.2


@pytest.mark.parametrize("case", CASES)
def test_predict_every_type_matches_glmmtmb(case):
    """predict(type = response, link, conditional, zprob, zlink, disp, se.fit = TRUE) on the
    fitted rows: glmmTMB's values and TMB's sdreport SEs (random effects of every
    predictor and the fixed parameters' uncertainty)."""
    d, m = fit(case)
    for kind, ref in d["predict"].items():
        f, se = m.predict(type=kind, se_fit=True)
        want = np.asarray(ref["fit"], dtype=float)
        scale = np.maximum(np.abs(want), 0.1)
        assert np.max(np.abs(np.asarray(f) - want) / scale) < 1e-3, kind
        if ref["se"] is not None:
            rse = np.asarray(ref["se"], dtype=float)
            assert np.max(np.abs(np.asarray(se) - rse) / np.maximum(rse, 1e-3)) < 2e-3, kind


@pytest.mark.parametrize("case", CASES)
def test_confint_rows_as_glmmtmb(case):
    """confint(style="glmmTMB") is glmmTMB's Wald confint(m, full = TRUE): the same row
    names (cond./zi./disp. coefficients, sigma, <model>.Std.Dev.<coef>|<group>), estimates
    and limits (SDs on the log scale, sigma mapped from log scale)."""
    d, m = fit(case)
    ci = m.confint(style="glmmTMB")
    ref = d["confint"]
    assert list(ci.index) == ref["rownames"]
    for col, key in (("Estimate", "estimate"), ("2.5 %", "lower"), ("97.5 %", "upper")):
        want = np.asarray(ref[key], dtype=float)
        got = ci[col].to_numpy(dtype=float)
        assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 0.05)) < 2e-3, (col, got, want)


def test_simulate_uses_the_zero_inflation_random_effects():
    """Conditional simulation reproduces the fitted zero fraction and mean (the zi random
    effects enter zprob); unconditional draws new zi random effects, so zeros vary more by nest."""
    d, m = fit("zinb2_re")
    y = m.model_frame.y
    s = m.simulate(nsim=400, seed=3)
    zprob = np.asarray(m.predict(type="zprob"))
    f0 = m.fittedvalues.to_numpy()
    assert abs(s.mean() - f0.mean()) < 0.1
    # P(0) per row = p + (1 - p) f_NB(0): the simulated zero fraction matches it
    mu = np.asarray(m.predict(type="conditional"))
    th = m.family_params["theta"]
    p0 = zprob + (1 - zprob) * (th / (th + mu)) ** th
    assert abs((s == 0).mean() - p0.mean()) < 0.01
    assert abs((y == 0).mean() - p0.mean()) < 0.03
    su = m.simulate(nsim=400, seed=3, re="unconditional")
    assert su.shape == s.shape and np.isfinite(su).all()


def test_scaled_residuals_and_bootstrap_run_on_side_random_effects():
    d, m = fit("zip_re")
    r = np.asarray(m.scaled_residuals(nsim=200, seed=1))
    assert r.shape == (m.nobs,) and np.all((r >= 0) & (r <= 1))
    assert abs(r.mean() - 0.5) < 0.05  # uniform under the fitted model
    b = m.bootstrap(nsim=2, seed=1)
    assert b.ok == 2 if hasattr(b, "ok") else True


def test_pickled_result_keeps_the_side_models():
    """The result pickles; its objective (the joint one) is rebuilt on first use and gives
    the same predictions and intervals."""
    import pickle

    d, m = fit("zinb2_re")
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(m2.varcorr_zi["sdcor"], m.varcorr_zi["sdcor"])
    f, s = m2.predict(type="zprob", se_fit=True)
    f0, s0 = m.predict(type="zprob", se_fit=True)
    np.testing.assert_allclose(np.asarray(f), np.asarray(f0), rtol=1e-8)
    np.testing.assert_allclose(np.asarray(s), np.asarray(s0), rtol=1e-6)


@pytest.mark.parametrize("case", ["zip_re", "zinb2_re", "zib_re", "zip_zionly_re"])
def test_predict_newdata_with_side_random_effects(case):
    """predict(newdata) rebuilds every predictor (fixed part, offset, the side models' random
    effects) from new rows: on the training rows it equals the fitted-row prediction (which
    matches glmmTMB), fit and SE; an unseen level (allow_new_levels) has zero random effects."""
    d, m = fit(case)
    _, df, _, _ = load(case)
    for kind in ("response", "zprob", "zlink", "conditional"):
        f0, s0 = m.predict(type=kind, se_fit=True)
        f1, s1 = m.predict(df, type=kind, se_fit=True)
        np.testing.assert_allclose(np.asarray(f1), np.asarray(f0), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(s1), np.asarray(s0), rtol=1e-6, atol=1e-10)
    grp = m.model_frame.zi_terms[0].group
    new = df.head(3).copy()
    new[grp] = new[grp].astype(str) + "_unseen"
    with pytest.raises(ValueError, match="new level"):
        m.predict(new, type="zlink")
    zl = np.asarray(m.predict(new, type="zlink", allow_new_levels=True))
    np.testing.assert_allclose(zl, m.model_frame.zi_X[:3] @ m.zi_params.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("family", ["gaussian", "gamma", "beta", "genpois"])
def test_dispformula_random_effects_gradient_other_families(family):
    """dispformula = ~ 1 + (1 | g) for families whose jet takes the dispersion's second and
    third derivatives by central differences of exact lower ones: the Laplace gradient still
    matches central differences of the deviance."""
    rng = np.random.default_rng(1)
    ng, per = 20, 15
    g = np.repeat(np.arange(ng), per)
    x = rng.normal(size=ng * per)
    mu = np.exp(1 + 0.3 * x + rng.normal(0, 0.4, ng)[g])
    y = {"gaussian": 3 + x + rng.normal(0, 0.5, ng)[g] + rng.normal(size=ng * per) * np.exp(rng.normal(0, 0.3, ng)[g]),
         "gamma": rng.gamma(2, mu / 2), "beta": np.clip(rng.beta(2, 3, ng * per), 0.01, 0.99),
         "genpois": rng.poisson(mu).astype(float)}[family]
    df = pd.DataFrame({"y": y, "x": x, "g": [f"G{i}" for i in g]})
    fam = interlace.family("gamma", link="log") if family == "gamma" else family
    _grad_check("y ~ x + (1 | g)", df, fam, dispformula="~ 1 + (1 | g)")


def _laplace_disp_only(df, beta, sdd, d0):
    """NB2 with dispformula = ~ 1 + (1 | g) and no conditional random effects: the Laplace
    log-likelihood per group from scipy's nbinom density (1-D mode by Brent, curvature by
    central differences)."""
    tot = 0.0
    for _, grp in df.groupby("g"):
        y, x = grp["y"].to_numpy(), grp["x"].to_numpy()
        mu = np.exp(beta[0] + beta[1] * x)

        def h(b):
            th = np.exp(d0 + sdd * b)
            return float(np.sum(stats.nbinom.logpmf(y, th, th / (th + mu))) - 0.5 * b * b)

        bs = optimize.minimize_scalar(lambda b: -h(b), bracket=(-1.0, 1.0), tol=1e-12).x
        e = 1e-3  # the second difference's rounding error ~ 1e-16 |h| / e^2 stays far below 1e-5
        curv = -(h(bs + e) - 2.0 * h(bs) + h(bs - e)) / (e * e)
        tot += h(bs) - 0.5 * np.log(curv)
    return tot


def test_disp_random_effects_without_conditional_ones():
    """dispformula = ~ 1 + (1 | g) with no random effect in the conditional formula (glmmTMB
    1.1.5 refuses random effects in dispformula: disp_re_glmmTMB115.json): the joint Laplace
    fit matches an independent per-group Laplace approximation, and no coordinate move
    improves it; VarCorr, predict and summary carry the dispersion model's random effects."""
    df = _sim_disp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = interlace.glmer("y ~ x", df, family="negativebinomial", dispformula="~ 1 + (1 | g)")
    beta = m.fe_params.to_numpy()
    sdd = float(m.varcorr_disp["sdcor"].iloc[0])
    d0 = float(m.family_params["disp_coef"]["Intercept"])
    ref = _laplace_disp_only(df, beta, sdd, d0)
    assert m.converged and abs(m.llf - ref) < 1e-5
    for s in (1.01, 0.99):
        assert _laplace_disp_only(df, beta, sdd * s, d0) < m.llf + 1e-6
        assert _laplace_disp_only(df, beta * s, sdd, d0) < m.llf + 1e-6
    assert _laplace_disp_only(df, beta, sdd, d0 + 0.01) < m.llf + 1e-6
    assert m.varcorr.empty and list(m.varcorr_disp["grp"]) == ["g"]
    f, se = m.predict(type="disp", se_fit=True)
    f1 = m.predict(df, type="disp")
    np.testing.assert_allclose(np.asarray(f1), np.asarray(f), rtol=1e-9)
    assert np.all(np.asarray(se) > 0)
    assert "Dispersion model" in str(m.summary())


def test_side_random_effects_need_a_family_parameter():
    df = interlace.datasets.load("salamanders")
    with pytest.raises(ValueError, match="dispformula"):
        interlace.glmer("count ~ mined + (1 | site)", df, family="poisson", dispformula="~ 1 + (1 | site)")


@pytest.mark.parametrize("case", ["zinb2_re", "zip_zionly_re"])
def test_summary_prints_the_zero_inflation_random_effects(case):
    d, m = fit(case)
    text = str(m.summary())
    zi = text[text.index("Zero-inflation model:"):]
    (grp, info), = d["varcorr"]["zi"].items()
    sd = info["sd"][0] if isinstance(info["sd"], list) else info["sd"]
    assert "Random effects:" in zi.split("Estimate")[0] and f"{sd:.4g}" in zi.split("Estimate")[0]


def test_profile_says_it_is_not_available_and_boot_confint_runs():
    d, m = fit("zib_re")
    with pytest.raises(NotImplementedError, match="ziformula"):
        m.confint(method="profile", parm=["x"])
    ci = m.confint(method="boot", nsim=3, seed=2)
    assert "x" in ci.index and np.isfinite(ci.loc["x"]).all()
