"""Covariance structures cs, ar1, toep and the hom/het variants (issue 21 item 2): exact
Jacobians, exact gradients through them in the engines, errors for terms a structure cannot
support, lme4-style equalities (cs with two levels is us, homdiag is a random intercept on the
interaction, homcs is two nested intercepts, diag is ``||``), VarCorr rows and summary()."""

from __future__ import annotations

import re

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.families import get_family
from interlace.model.covariance import (AR1, STRUCTURES, CompoundSymmetry, HetAR1, HomCompoundSymmetry,
                                        HomDiagonal, HomToeplitz, Toeplitz, make_structure)
from interlace.model_frame import build_model_frame
from interlace.objective.laplace import LaplaceObjective
from interlace.results.summary import varcorr_matrices

OURS = [CompoundSymmetry, HomCompoundSymmetry, AR1, HetAR1, Toeplitz, HomToeplitz, HomDiagonal]


def _fd_jacobian(cov, par, h=1e-6):
    cols = []
    for i in range(len(par)):
        e = np.zeros(len(par))
        e[i] = h
        cols.append((cov.entries(par + e) - cov.entries(par - e)) / (2 * h))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("cls", OURS)
@pytest.mark.parametrize("k", [2, 3, 5])
def test_jacobian_and_correlation(cls, k):
    rng = np.random.default_rng(k)
    cov = cls(k)
    assert STRUCTURES[cov.name] is cls
    for _ in range(3):
        par = np.concatenate([rng.uniform(0.2, 2.0, cov.nsd), rng.normal(0, 1.2, cov.ncorr)])
        lam = cov.lambda_(par)
        assert np.allclose(np.triu(lam, 1), 0.0) and np.all(np.diag(lam) >= 0)
        np.testing.assert_allclose(cov.jacobian(par), _fd_jacobian(cov, par), atol=1e-7)
        S = lam @ lam.T
        sd = np.sqrt(np.diag(S))
        R = cov.correlation(par)
        np.testing.assert_allclose(S / np.outer(sd, sd), R, atol=1e-12)
        assert np.all(np.linalg.eigvalsh(R) > 0)  # every parameter value is a valid correlation
        np.testing.assert_allclose(sd, np.broadcast_to(par[: cov.nsd], (k,)))
    assert len(cov.lower) == len(cov.start()) == len(cov.even_params) == cov.nparams
    np.testing.assert_allclose(cov.correlation(cov.start()), np.eye(k), atol=1e-12)  # lme4's start: identity


def test_glmmtmb_correlation_maps():
    # cs: rho = logistic(x)(1 + a) - a, a = 1/(k-1); ar1: phi = x/sqrt(1+x^2) (glmmTMB.cpp)
    x = 0.7
    for k in (2, 4):
        a = 1 / (k - 1)
        R = CompoundSymmetry(k).correlation(np.r_[np.ones(k), x])
        assert R[0, 1] == pytest.approx(1 / (1 + np.exp(-x)) * (1 + a) - a)
    R = AR1(4).correlation(np.r_[1.0, x])
    phi = x / np.sqrt(1 + x * x)
    np.testing.assert_allclose(R[3], [phi ** 3, phi ** 2, phi, 1.0])
    # toep: the lags' partial autocorrelations; lag-1 correlation = first pacf
    R = Toeplitz(3).correlation(np.r_[np.ones(3), x, 0.0])
    np.testing.assert_allclose(R[0], [1.0, phi, phi ** 2])  # pacf_2 = 0: an AR(1)


def test_ar1_closed_form_cholesky_near_one():
    cov = AR1(10)
    for x in (30.0, -30.0, 1e4):
        lam = cov.lambda_(np.r_[1.0, x])
        np.testing.assert_allclose(lam @ lam.T, cov.correlation(np.r_[1.0, x]), atol=1e-12)


def _long(seed=5, ns=60, nt=4, reps=2, phi=0.6):
    rng = np.random.default_rng(seed)
    R = phi ** np.abs(np.subtract.outer(np.arange(nt), np.arange(nt)))
    b = rng.multivariate_normal(np.zeros(nt), R, size=ns)
    s = np.repeat(np.arange(ns), nt * reps)
    t = np.tile(np.repeat(np.arange(nt), reps), ns)
    x = rng.normal(size=s.size)
    eta = -0.2 + 0.4 * x + b[s, t]
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)).astype(float), "yg": eta + rng.normal(0, 0.5, s.size),
                         "yb": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x": x, "s": s,
                         "t": t.astype(str), "tn": t.astype(float), "t2": np.where(t < 2, "a", "b")})


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


@pytest.mark.parametrize("structure", ["cs", "ar1", "toep", "hetar1", "homcs"])
def test_laplace_gradient_through_structure(structure):
    df = _long()
    fam = get_family("poisson")
    mf = build_model_frame(f"y ~ x + {structure}(0 + t | s)", df, family=fam)
    cov = mf.terms[0].cov
    assert cov.name == structure
    obj = LaplaceObjective(mf, fam)
    rng = np.random.default_rng(1)
    theta = np.concatenate([rng.uniform(0.5, 1.0, cov.nsd), rng.normal(0, 0.5, cov.ncorr)])
    beta = np.array([-0.1, 0.3])
    obj.deviance(theta, beta)
    g = obj.gradient(theta, beta)
    x0 = np.r_[theta, beta]
    nt = len(theta)
    fd = []
    for i in range(len(x0)):
        h = 1e-5
        xp, xm = x0.copy(), x0.copy()
        xp[i] += h
        xm[i] -= h
        fd.append((obj.deviance(xp[:nt], xp[nt:]) - obj.deviance(xm[:nt], xm[nt:])) / (2 * h))
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-5)


def test_errors_name_the_term():
    df = _long()
    with pytest.raises(ValueError, match=r"ar1\(0 \+ tn \| s\).*at least 2 columns.*factor"):
        build_model_frame("yg ~ x + ar1(0 + tn | s)", df, family="gaussian")
    with pytest.raises(ValueError, match=r"cs\(1 \| s\).*at least 2 columns"):
        build_model_frame("yg ~ x + cs(1 | s)", df, family="gaussian")
    with pytest.raises(ValueError, match=r"toep\(0 \+ t \| s, 3\).*no positional argument"):
        build_model_frame("yg ~ x + toep(0 + t | s, 3)", df, family="gaussian")
    with pytest.raises(ValueError, match="at least 2 columns"):
        make_structure("ar1", ["time"])


def test_cs_with_two_levels_equals_us():
    """k = 2: one correlation and two SDs, as unstructured (glmmTMB's cs map reaches (-1, 1))."""
    df = _long()
    for fit, resp, kw in ((interlace.lmer, "yg", {"REML": False}), (interlace.glmer, "y", {"family": "poisson"})):
        cs = _quiet(fit, f"{resp} ~ x + cs(0 + t2 | s)", df, **kw)
        us = _quiet(fit, f"{resp} ~ x + (0 + t2 | s)", df, **kw)
        assert cs.llf == pytest.approx(us.llf, abs=1e-6)
        np.testing.assert_allclose(cs.fe_params, us.fe_params, rtol=1e-4)
        np.testing.assert_allclose(cs.varcorr["sdcor"], us.varcorr["sdcor"], rtol=2e-3, atol=1e-5)


def test_diag_equals_double_bar_binomial():
    df = _long()
    a = _quiet(interlace.glmer, "yb ~ x + diag(1 + x | s)", df, family="binomial")
    b = _quiet(interlace.glmer, "yb ~ x + (1 + x || s)", df, family="binomial")
    assert a.llf == pytest.approx(b.llf, abs=1e-6)


def test_hom_het_variants_equalities():
    """glmmTMB 1.1.5 has no hom/het variants, so they are checked by equalities: with two
    columns ar1, homtoep and homcs are one model (one SD, one correlation); with four, each
    variant nests the simpler one (ar1 in hetar1 and homtoep, homtoep in toep), and the hom
    variants report one SD for every column."""
    df = _long()
    two = {st: _quiet(interlace.lmer, f"yg ~ x + {st}(0 + t2 | s)", df, REML=False) for st in ("ar1", "homtoep", "homcs")}
    for st in ("homtoep", "homcs"):
        assert two[st].llf == pytest.approx(two["ar1"].llf, abs=1e-6)
        np.testing.assert_allclose(varcorr_matrices(two[st])["s"]["cov"].to_numpy(),
                                   varcorr_matrices(two["ar1"])["s"]["cov"].to_numpy(), rtol=1e-3, atol=1e-6)
    four = {st: _quiet(interlace.lmer, f"yg ~ x + {st}(0 + t | s)", df, REML=False)
            for st in ("ar1", "hetar1", "homtoep", "toep", "homcs", "cs")}
    for simple, general in (("ar1", "hetar1"), ("ar1", "homtoep"), ("homtoep", "toep"), ("homcs", "cs")):
        assert four[general].llf >= four[simple].llf - 1e-6, (simple, general)
    for st in ("homtoep", "homcs", "ar1"):
        sd = np.sqrt(np.diag(varcorr_matrices(four[st])["s"]["cov"].to_numpy()))
        np.testing.assert_allclose(sd, sd[0], rtol=1e-12)
    assert len(four["homtoep"].theta) == 4 and len(four["hetar1"].theta) == 5


def test_homdiag_is_an_intercept_on_the_interaction():
    df = _long()
    for fit, resp, kw in ((interlace.lmer, "yg", {"REML": False}), (interlace.glmer, "y", {"family": "poisson"})):
        hd = _quiet(fit, f"{resp} ~ x + homdiag(0 + t | s)", df, **kw)
        ri = _quiet(fit, f"{resp} ~ x + (1 | s:t)", df, **kw)
        assert hd.llf == pytest.approx(ri.llf, abs=1e-6)
        assert hd.varcorr["sdcor"].iloc[0] == pytest.approx(ri.varcorr["sdcor"].iloc[0], rel=1e-3)
        assert len(hd.theta) == 1


def test_homcs_is_two_nested_intercepts():
    """Var = s1^2 + s2^2, Cov = s1^2 within a subject: homcs with rho = s1^2 / (s1^2 + s2^2) >= 0."""
    df = _long()
    hc = _quiet(interlace.lmer, "yg ~ x + homcs(0 + t | s)", df, REML=False)
    nest = _quiet(interlace.lmer, "yg ~ x + (1 | s) + (1 | s:t)", df, REML=False)
    assert hc.llf == pytest.approx(nest.llf, abs=1e-6)
    v = nest.varcorr.set_index("grp")["vcov"]
    rho = v["s"] / (v["s"] + v["s:t"])
    R = varcorr_matrices(hc)["s"]["corr"].to_numpy()
    assert R[0, 1] == pytest.approx(rho, rel=1e-3)


def test_scalar_structures_with_agq():
    """nAGQ > 1 needs one scalar term: diag/us/homdiag of one column are lme4's (1 | g)."""
    df = _long()
    ref = _quiet(interlace.glmer, "yb ~ x + (1 | s)", df, family="binomial", nAGQ=7)
    for st in ("diag", "us", "homdiag"):
        m = _quiet(interlace.glmer, f"yb ~ x + {st}(1 | s)", df, family="binomial", nAGQ=7)
        assert m.nAGQ == 7
        assert m.llf == pytest.approx(ref.llf, abs=1e-6)


def test_structured_vector_terms_with_agq():
    """nAGQ > 1 on a multi-column structured term: interlace integrates a vector term with the
    product rule (beyond lme4, docs/agq.md), through the structure's Jacobian. With two
    columns cs, hetar1 and toep are the unstructured covariance, so the AGQ fits agree."""
    df = _long()
    ref = _quiet(interlace.glmer, "yb ~ x + (0 + t2 | s)", df, family="binomial", nAGQ=5)
    S0 = varcorr_matrices(ref)["s"]["cov"].to_numpy()
    for st in ("cs", "hetar1", "toep", "us"):
        m = _quiet(interlace.glmer, f"yb ~ x + {st}(0 + t2 | s)", df, family="binomial", nAGQ=5)
        assert m.nAGQ == 5 and m.converged
        assert m.llf == pytest.approx(ref.llf, abs=1e-6)
        np.testing.assert_allclose(m.fe_params.to_numpy(), ref.fe_params.to_numpy(), rtol=1e-4)
        np.testing.assert_allclose(varcorr_matrices(m)["s"]["cov"].to_numpy(), S0, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("term", ["ar1(0 + t | s)", "exp(numFactor(tn) + 0 | s)"])
def test_agq_too_many_nodes_names_the_term(term):
    """A product rule beyond the node limit (25^4 nodes here) is a ValueError naming the term."""
    df = _long()
    with pytest.raises(ValueError, match=re.escape(f"on the term {term}")):
        _quiet(interlace.glmer, f"yb ~ x + {term}", df, family="binomial", nAGQ=25)


def test_varcorr_rows_and_summary():
    df = _long()
    m = _quiet(interlace.lmer, "yg ~ x + ar1(0 + t | s)", df, REML=False)
    vc = m.varcorr
    assert (vc["grp"] == "s").sum() == 4 + 1  # four SDs, one rho
    rho = vc[vc["var2"].notna()]["sdcor"].iloc[0]
    R = varcorr_matrices(m)["s"]["corr"].to_numpy()
    np.testing.assert_allclose(R[3], [rho ** 3, rho ** 2, rho, 1.0], rtol=1e-10)
    text = str(m.summary())
    assert f"{rho:5.2f} (ar1)" in text
    assert list(m.theta.index) == ["s.ar1.sd", "s.ar1.phi"]
    m = _quiet(interlace.glmer, "y ~ x + cs(0 + t | s)", df, family="poisson")
    assert (m.varcorr["grp"] == "s").sum() == 4 + 1
    assert " (cs)" in str(m.summary())
    m = _quiet(interlace.glmer, "y ~ x + toep(0 + t | s)", df, family="poisson")
    assert (m.varcorr["var2"].notna()).sum() == 3  # one correlation per lag
    rt = m.summary().re_table
    R = varcorr_matrices(m)["s"]["corr"].to_numpy()
    np.testing.assert_allclose(rt["Corr"].iloc[3], R[3, :3])  # the full triangle, as glmmTMB prints it


def test_simulate_predict_on_structures():
    """Unconditional simulation draws b ~ N(0, Sigma) of the structure: the within-subject
    covariance of simulated responses at lags 0..3 is Sigma's + sigma^2 on the diagonal;
    predict on the fitted rows is the fitted values."""
    df = _long(ns=40, reps=1)
    m = _quiet(interlace.lmer, "yg ~ x + ar1(0 + t | s)", df, REML=False)
    S = varcorr_matrices(m)["s"]["cov"].to_numpy() + m.scale * np.eye(4)
    sims = m.simulate(3000, seed=4, re="unconditional")  # (nsim, n)
    mu = (m.model_frame.X @ m.fe_params.to_numpy())[None, :]
    r = (sims - mu).reshape(3000, 40, 4)  # rows are subject-major, t inner
    emp = np.einsum("nsa,nsb->ab", r, r) / (3000 * 40)
    np.testing.assert_allclose(emp, S, atol=0.06 * S.max())
    np.testing.assert_allclose(m.predict(df), m.fittedvalues.to_numpy(), rtol=1e-10)


def test_structured_result_pickles():
    import pickle

    df = _long()
    m = _quiet(interlace.glmer, "y ~ x + toep(0 + t | s)", df, family="poisson")
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.model_frame.terms[0].cov == m.model_frame.terms[0].cov
    np.testing.assert_allclose(m2.predict(df.iloc[:20]), m.predict(df.iloc[:20]), rtol=1e-12)
    assert str(m2.summary()) == str(m.summary())
    np.testing.assert_allclose(m2.confint(parm="theta_").to_numpy(), m.confint(parm="theta_").to_numpy())
