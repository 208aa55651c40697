"""Issue 19 item 5: every post-fit quantity of every family against R.

One parametrised test per (family case, quantity): fitted values, residuals of
each type R defines, predictions (link / response, with and without the random
effects), the SE of the link predictions (glmmTMB's se.fit) and the per-row
moments of simulate(). R's numbers: tests/fixtures/postfit/<case>.json, made by
tests/fixtures/make_postfit.R (lme4 1.1.31 / glmmTMB 1.1.5)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES

import interlace

POSTFIT = FIXTURES / "postfit"
CASES = sorted(p.stem for p in POSTFIT.glob("*.json"))
FACTORS = {"cbpp.csv": ["period", "herd"], "grouseticks.csv": ["YEAR", "LOCATION"], "sleepstudy.csv": ["Subject"],
           "sim_gamma.csv": ["trt", "g"], "owls.csv": ["Nest", "FoodTreatment", "SexParent"],
           "sim_beta.csv": ["g"], "salamanders.csv": ["mined", "site"]}
# The fits agree with R to ~1e-4 relative (parity: 1e-3), so do the quantities built on them.
RTOL = 1e-3


def _load(case: str) -> dict:
    return json.loads((POSTFIT / f"{case}.json").read_text())


_FITS: dict[str, tuple] = {}


def _fit(case: str):
    if case not in _FITS:
        ref = _load(case)
        df = pd.read_csv(FIXTURES / "data" / ref["dataset"])
        for col in FACTORS.get(ref["dataset"], []):
            df[col] = pd.Categorical(df[col].astype(str), categories=sorted(df[col].astype(str).unique(),
                                                                            key=_r_order(df[col])))
        call = dict(ref["python_call"])
        fam = call.pop("family")
        link = call.pop("link", None)
        formula = call.pop("formula")
        family = interlace.family(fam, link=link) if link else fam
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = interlace.glmer(formula, df, family=family, **call)
        _FITS[case] = (ref, res, df)
    return _FITS[case]


def _r_order(col: pd.Series):
    """R's factor() level order: numeric order for numbers, else string sort (C locale)."""
    vals = col.astype(str)
    try:
        pd.to_numeric(vals.unique())
        return lambda s: float(s)
    except ValueError:
        return lambda s: s


def _close(mine, ref, rtol=RTOL):
    mine = np.asarray(mine, dtype=float)
    ref = np.asarray(ref, dtype=float)
    assert mine.shape == ref.shape
    scale = max(float(np.max(np.abs(ref))), 1e-12)
    np.testing.assert_allclose(mine, ref, rtol=rtol, atol=rtol * scale)


def _quantities():
    out = []
    for case in CASES:
        ref = _load(case)
        out.append((case, "fitted"))
        for t in ref["residuals"]:
            if not t.endswith("_glmmTMB"):  # glmmTMB's own value kept for the record
                out.append((case, f"resid_{t}"))
        for t in ref["predict"]:
            out.append((case, f"predict_{t}"))
        for t in (ref.get("se_fit") or {}):
            # the conditional se_fit ("link") is glmmTMB's joint one (results/predict.py: the
            # conditional variance plus J Cov(theta, beta, aux) J'), 6-36 % too large before
            out.append((case, f"se_fit_{t}"))
        out.append((case, "simulate_moments"))
    return out


@pytest.mark.parametrize("case,what", _quantities())
def test_postfit_against_r(case, what):
    ref, res, df = _fit(case)
    assert res.llf >= ref["loglik"] - 1e-4
    if what == "fitted":
        _close(res.fittedvalues, ref["fitted"])
    elif what.startswith("resid_"):
        t = what[len("resid_"):]
        _close(res.resid(t), ref["residuals"][t])
    elif what.startswith("predict_"):
        t = what[len("predict_"):]
        typ = t if t in ("conditional", "zprob") else "link" if t.startswith("link") else "response"
        _close(res.predict(df, type=typ, include_re=not t.endswith("_population")), ref["predict"][t])
    elif what.startswith("se_fit_"):
        t = what[len("se_fit_"):]
        pred = res.predict(df, type="link", include_re=not t.endswith("_population"), se_fit=True)
        _close(pred[1], ref["se_fit"][t], rtol=5e-3)
    else:
        _check_simulation(res, ref)


def _check_simulation(res, ref):
    """Per-row moments of simulate() against R's (both Monte Carlo, new random
    effects drawn): row means within 5 Monte Carlo SEs for 99 % of the rows, and
    the mean row variance within 6 %."""
    nsim = int(ref["nsim"])
    sims = np.asarray(res.simulate(nsim=nsim, seed=7, re="unconditional"), dtype=float)
    m_py, v_py = sims.mean(axis=0), sims.var(axis=0, ddof=1)
    m_r, v_r = np.asarray(ref["sim_mean"], dtype=float), np.asarray(ref["sim_var"], dtype=float)
    se = np.sqrt(v_py / nsim + v_r / nsim) + 1e-12
    assert np.mean(np.abs(m_py - m_r) <= 5 * se) >= 0.99
    assert abs(v_py.mean() / v_r.mean() - 1.0) < 0.06


# --------------------------------------------------------------------------- links (guard)

LINKS = json.loads((FIXTURES / "links" / "links.json").read_text())


@pytest.mark.parametrize("name", sorted(k for k in LINKS if k != "versions"))
def test_link_functions_match_r_at_extreme_points(name):
    """Guard for the cauchit error's class (a link losing digits near 0, 1 or
    its clamp): every link's linkfun / linkinv / mu_eta against R's family
    functions at ordinary and extreme points, to 1e-13 relative (cauchit at
    mu = eps was -1.375e15, R -1.4335e15). Where R's formula itself cancels the
    fixture carries the exact value (``<field>_exact``, computed in R), used instead."""
    from interlace.families.links import get_link

    ref = {k: np.asarray([float(v) for v in vals]) for k, vals in LINKS[name].items()}
    lk = get_link(name)
    ref = {k: ref.get(k + "_exact", v) for k, v in ref.items() if not k.endswith("_exact")}
    np.testing.assert_allclose(lk.link(ref["mu"]), ref["linkfun"], rtol=1e-13, atol=0)
    np.testing.assert_allclose(lk.linkinv(ref["eta"]), ref["linkinv"], rtol=1e-13, atol=0)
    np.testing.assert_allclose(lk.mu_eta(ref["eta"]), ref["mu_eta"], rtol=1e-13, atol=0)


# --------------------------------------------------------------------------- deviance (guard)


def _registry_names():
    from interlace.plugins import get_registry

    return [e.name for e in get_registry().entries()]


def _row_loglik(res, y, wt):
    """l_i(eta) at the fitted family parameters, as a function of a per-row eta."""
    from interlace.results.predict import aux_predictors

    fam = res.family
    aux = aux_predictors(res)
    if hasattr(fam, "derivs"):
        return lambda eta, i: float(fam.derivs(y[i:i + 1], wt[i:i + 1], np.array([eta]),
                                               {k: v[i:i + 1] for k, v in aux.items()}, order=0).l[0])
    scale = float(res.scale)
    return lambda eta, i: float(fam.loglik(y[i:i + 1], fam.linkinv(np.array([eta])), wt[i:i + 1], scale)[0])


@pytest.mark.parametrize("name", _registry_names())
def test_deviance_residuals_are_the_family_likelihood_deviance(name):
    """Guard for the NB1 error's class (a family's deviance residuals computed
    from another family's deviance): for every registered family whose
    deviance residuals are defined, d_i = r_i^2 must equal
    c * 2 (sup_m l_i(m) - l_i(mu_i)) with one constant c for all rows (c = 1 for
    NB1 / NB2, the dispersion for an exponential family's unscaled deviance)."""
    from scipy.optimize import minimize_scalar
    from test_dispersion import fit_registry_family

    fam, res, kind, y, wt, _has_disp, _lf = fit_registry_family(name)
    try:
        r = np.asarray(res.resid("deviance"), dtype=float)
    except NotImplementedError:
        pytest.skip(f"{name}: no deviance residuals (zero-inflated / hurdle, none in glmmTMB either)")
    ll = _row_loglik(res, y, wt)
    eta = np.asarray(res.linear_predictor, dtype=float)
    ratios = []
    for i in range(0, len(y), 5):  # every fifth row keeps the test short
        w = 2.0
        while True:  # widen the bracket while the maximum sits on its edge (sup at the support's edge)
            opt = minimize_scalar(lambda e: -ll(e, i), bounds=(eta[i] - w, eta[i] + w), method="bounded",
                                  options={"xatol": 1e-10})
            if abs(abs(opt.x - eta[i]) - w) > 1e-3 * w or w > 1e4:
                break
            w *= 4.0
        if opt.x < eta[i] - 8.0:
            # The supremum is a limit as mu -> 0 (a truncated count's y = 1), on a tail too flat
            # for Brent and where 1 - f(0) loses its digits: no reliable numerical reference.
            continue
        gap = 2.0 * (max(-opt.fun, ll(eta[i], i)) - ll(eta[i], i))
        if gap > 1e-4:
            ratios.append(r[i] ** 2 / gap)
    ratios = np.asarray(ratios)
    assert len(ratios) > 10
    np.testing.assert_allclose(ratios, np.median(ratios), rtol=2e-3)
