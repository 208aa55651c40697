"""Spatial / continuous-time structures (ou, exp, gau, mat), reduced rank (rr) and numFactor
(issue 21 part 2): the maps and their exact Jacobians against finite differences, glmmTMB's
correlation functions from their formulas, numFactor's level names against glmmTMB's (fixture
made by tests/fixtures/covspatial/numfactor.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special

import interlace
from interlace.formula.numfactor import numFactor, parse_num_levels, r_number
from interlace.model.reduced_rank import ReducedRank
from interlace.model.spatial import (
    ExponentialCovariance,
    GaussianCovariance,
    MaternCovariance,
    OUCovariance,
    matern,
)

FIX = Path(__file__).parent / "fixtures" / "covspatial"


def _fd_jacobian(cov, par, h=1e-6):
    cols = []
    for i in range(len(par)):
        e = np.zeros(len(par))
        e[i] = h
        cols.append((cov.entries(par + e) - cov.entries(par - e)) / (2 * h))
    return np.stack(cols, axis=1)


def _positions(n, seed=0, dim=2):
    rng = np.random.default_rng(seed)
    xy = np.round(rng.uniform(0, 4, size=(n, dim)), 3)
    return list(numFactor(*xy.T).categories)


@pytest.mark.parametrize("cov,par", [
    (OUCovariance(["t(0)", "t(0.5)", "t(1.7)", "t(3)", "t(3.2)"]), np.array([1.3, -0.4])),
    (ExponentialCovariance(_positions(7)), np.array([0.8, 0.3])),
    (GaussianCovariance(_positions(6, 1)), np.array([1.1, -0.5])),
    (MaternCovariance(_positions(6, 2)), np.array([0.9, 0.1, -0.3])),
    (MaternCovariance(_positions(5, 3)), np.array([0.7, -0.4, 0.8])),
    (MaternCovariance(_positions(5, 4)), np.array([0.7, -3.0, 4.2])),  # kappa = 67: large order
    (ReducedRank(["a", "b", "c", "d"], d=2), np.array([1.2, 0.7, 0.3, -0.5, 0.9, 0.2, -0.1])),
    (ReducedRank(["a", "b", "c"], d=1), np.array([0.8, -0.3, 0.5])),
])
def test_maps_and_exact_jacobians(cov, par):
    lam = cov.lambda_(par)
    assert lam.shape == (cov.k, cov.k) and np.allclose(np.triu(lam, 1), 0.0)
    assert cov.entries(par).tolist() == lam[cov.rows, cov.cols].tolist()
    assert len(cov.lower) == len(cov.start()) == len(cov.param_names("g", [f"c{i}" for i in range(cov.k)])) \
        == cov.nparams
    np.testing.assert_allclose(cov.jacobian(par), _fd_jacobian(cov, par), rtol=1e-6, atol=1e-8)
    # canonical keeps Sigma = Lambda Lambda' and puts the even parameters on their non-negative side
    flipped = np.where(cov.even_params, -par, par)
    lc = cov.lambda_(cov.canonical(flipped))
    lf = cov.lambda_(flipped)
    np.testing.assert_allclose(lc @ lc.T, lf @ lf.T, atol=1e-12)
    assert np.all(cov.canonical(flipped)[cov.even_params] >= 0)


def test_spatial_correlations_are_glmmtmb_formulas():
    """glmmTMB.cpp: exp: exp(-d e^-th1); gau: exp(-d^2 e^-2th1); ou: exp(-e^th1 |dt|);
    mat: TMB's matern(d, e^th1, e^th2), which is exp(-d/phi) at kappa = 1/2."""
    names = ["(0,0)", "(3,4)", "(6,8)"]
    d = np.array([[0, 5, 10], [5, 0, 5], [10, 5, 0]], float)
    th = 0.7
    np.testing.assert_allclose(ExponentialCovariance(names).correlation([1, th]), np.exp(-d * np.exp(-th)))
    np.testing.assert_allclose(GaussianCovariance(names).correlation([1, th]), np.exp(-d**2 * np.exp(-2 * th)))
    np.testing.assert_allclose(OUCovariance(["(0)", "(5)", "(10)"]).correlation([1, th]),
                               np.exp(-np.exp(th) * d))
    np.testing.assert_allclose(MaternCovariance(names).correlation([1, th, np.log(0.5)]),
                               np.exp(-d / np.exp(th)), rtol=1e-12)
    # kappa = 3/2: (1 + x) exp(-x)
    x = d / np.exp(th)
    np.testing.assert_allclose(MaternCovariance(names).correlation([1, th, np.log(1.5)]),
                               (1 + x) * np.exp(-x), rtol=1e-12)
    assert float(matern(np.array(0.0), 2.0, 1.0)) == 1.0
    assert float(matern(np.array(2.0), 2.0, 1.0)) == pytest.approx(1.0 * special.kv(1.0, 1.0))


def test_matern_large_smoothness_is_finite_and_gaussian():
    """TMB's matern is computed in log space: finite at any smoothness, and with range
    phi = s / (2 sqrt(kappa)) it tends to gau's exp(-d^2 / s^2) as kappa grows (an optimizer
    may walk there when the data prefer gau)."""
    d = np.linspace(0.01, 6, 40)
    s_, kappa = 2.0, 5000.0
    r = matern(d, s_ / (2 * np.sqrt(kappa)), kappa)
    assert np.all(np.isfinite(r))
    np.testing.assert_allclose(r, np.exp(-(d / s_) ** 2), atol=2e-3)
    cov = MaternCovariance(["(0,0)", "(0.3,0)", "(1,1)"])
    par = np.array([1.0, np.log(s_ / (2 * np.sqrt(kappa))), np.log(kappa)])
    assert np.all(np.isfinite(cov.jacobian(par)))


def test_spatial_without_coordinates_names_the_term():
    with pytest.raises(ValueError, match=r"exp\(x \+ 0 \| g\).*no coordinates"):
        ExponentialCovariance(["xa", "xb"], term="exp(x + 0 | g)")
    with pytest.raises(ValueError, match="no coordinates"):
        MaternCovariance(["Intercept"])
    with pytest.raises(ValueError, match="one-dimensional"):
        OUCovariance(["(0,1)", "(1,1)"], term="ou(pos + 0 | g)")
    with pytest.raises(ValueError, match="rank d = 4"):
        ReducedRank(["a", "b", "c"], d=4, term="rr(0 + trait | site, d = 4)")
    with pytest.raises(TypeError, match="integer rank"):
        ReducedRank(["a", "b", "c"], d=1.5)


def test_rr_is_glmmtmb_loading_order():
    # glmmTMB.cpp: lam_diag = theta.head(d); lam_lower fills column by column below the diagonal
    rr = ReducedRank(["a", "b", "c", "d"], d=2)
    L = rr.loadings(np.arange(1.0, 8.0))
    np.testing.assert_array_equal(L, [[1, 0], [3, 2], [4, 6], [5, 7]])
    lam = rr.lambda_(np.arange(1.0, 8.0))
    np.testing.assert_array_equal(lam @ lam.T, L @ L.T)


def test_numfactor_levels_match_glmmtmb():
    fx = json.loads((FIX / "numfactor.json").read_text())
    for case in fx["cases"]:
        f = numFactor(*[np.asarray(c, dtype=float) for c in case["columns"]])
        assert list(f.categories) == case["levels"], case["columns"]
        assert list(f.astype(str)) == case["values"]
        np.testing.assert_allclose(parse_num_levels(case["levels"]), np.asarray(case["parsed"], float).reshape(
            len(case["levels"]), -1), rtol=1e-14)
    assert [r_number(float(v)) for v in fx["numbers"]["x"]] == fx["numbers"]["as_character"]


def test_numfactor_inputs():
    f = numFactor(pd.Series([2, 1, 2]), pd.Categorical(["b", "a", "b"]))
    assert list(f.categories) == ["(1,a)", "(2,b)"]
    with pytest.raises(TypeError, match="numeric or factor"):
        numFactor(np.array(["x", "y"]))
    with pytest.raises(ValueError, match="different lengths"):
        numFactor([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="missing"):
        numFactor([1.0, np.nan])
    assert interlace.numFactor is numFactor


def test_wide_term_passes_equal_the_compiled_ones():
    """kernels/wide_term.py (BLAS by level, for one term of many columns) gives the compiled
    row passes' numbers."""
    from interlace.kernels import gradient as kgr
    from interlace.kernels import wide_term
    from interlace.model.covariance import tri_index

    rng = np.random.default_rng(5)
    n, k, nl = 300, 40, 3
    codes = rng.integers(0, nl, size=(1, n)).astype(np.int64)
    z = np.zeros((n, k))
    z[np.arange(n), rng.integers(0, k, n)] = 1.0
    zl = np.ascontiguousarray(z @ np.tril(rng.normal(size=(k, k))))
    kcol, kdim, uoff = np.array([0, k]), np.array([k]), np.array([0, nl * k])
    M = rng.normal(size=(nl, k, k))
    Ainv11 = np.einsum("lab,lcb->lac", M, M) + k * np.eye(k)
    wd, s, w, hh = rng.normal(size=n), rng.normal(size=n), rng.uniform(0.5, 2, n), rng.uniform(0.5, 2, n)
    X = rng.normal(size=(n, 2))
    u, xi, xxi = rng.normal(size=nl * k), rng.normal(size=nl * k), rng.normal(size=n)
    a, b = tri_index(k)
    pairidx, poff, e = np.zeros((1, n), np.int64), np.zeros(2, np.int64), np.zeros(0)
    v1, U1 = np.empty(n), np.zeros(nl * k)
    kgr.leverage_pass(wd, codes, zl, kcol, kdim, uoff, pairidx, poff, Ainv11, e, np.zeros((0, 0)), v1, U1)
    v2, U2 = np.empty(n), np.zeros(nl * k)
    wide_term.leverage_pass(wd, codes, zl, kcol, kdim, uoff, Ainv11, v2, U2)
    np.testing.assert_allclose(v2, v1, rtol=1e-10)
    np.testing.assert_allclose(U2, U1, rtol=1e-10, atol=1e-10)
    gb1, gt1 = np.zeros(2), np.zeros(len(a))
    kgr.gradient_pass(s, w, hh, v1, X, z, codes, zl, kcol, kdim, uoff, pairidx, poff, u, xi, xxi, Ainv11, e,
                      np.zeros((0, 0)), np.zeros(len(a), np.int64), a, b, gb1, gt1, True)
    gb2, gt2 = np.zeros(2), np.zeros(len(a))
    wide_term.gradient_pass(s, w, hh, v1, X, z, codes, zl, kcol, kdim, uoff, u, xi, xxi, Ainv11, a, b, gb2, gt2, True)
    np.testing.assert_allclose(gb2, gb1, rtol=1e-10)
    np.testing.assert_allclose(gt2, gt1, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_wide_term_pirls_passes_equal_the_compiled_ones(family):
    """The wide-term PIRLS passes (working weights by the compiled kernel, the cross-products by
    BLAS per level) give glm.pirls_pass / pirls_pass_joint / crossprod.accumulate_re's numbers."""
    from interlace.families import get_family
    from interlace.kernels import crossprod as kx
    from interlace.kernels import glm as kg
    from interlace.kernels import wide_term

    from interlace.objective.response import _fast_codes

    fc, lc = _fast_codes(get_family(family))
    rng = np.random.default_rng(7)
    n, k, nl, p = 300, 40, 3, 2
    codes = rng.integers(0, nl, size=(1, n)).astype(np.int64)
    z = np.zeros((n, k))
    z[np.arange(n), rng.integers(0, k, n)] = 1.0
    zl = np.ascontiguousarray(z @ np.tril(rng.normal(scale=0.3, size=(k, k))))
    kcol, kdim, uoff = np.array([0, k]), np.array([k]), np.array([0, nl * k])
    pairidx, poff = np.zeros((1, n), np.int64), np.zeros(2, np.int64)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    beta, off, u = np.array([0.2, 0.3]), rng.normal(scale=0.1, size=n), rng.normal(scale=0.5, size=nl * k)
    y = (rng.uniform(size=n) < 0.4).astype(float) if family == "binomial" else rng.poisson(1.5, n).astype(float)
    wt = np.ones(n)

    def bufs():
        return [np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.zeros((nl, k, k)), np.zeros(0),
                np.zeros((0, 0)), np.zeros(nl * k)]

    a, b = bufs(), bufs()
    d1 = kg.pirls_pass(fc, lc, y, wt, off, codes, zl, kcol, kdim, uoff, u, pairidx, poff, *a)
    d2 = wide_term.pirls_pass(fc, lc, y, wt, off, codes, zl, kcol, kdim, uoff, u, pairidx, poff, *b)
    assert d2 == pytest.approx(d1, rel=1e-12)
    for x1, x2 in zip(a, b):
        np.testing.assert_allclose(x2, x1, rtol=1e-10, atol=1e-12)
    a, b = bufs(), bufs()
    ja = [np.zeros((nl * k, p)), np.zeros((p, p)), np.zeros(p)]
    jb = [np.zeros((nl * k, p)), np.zeros((p, p)), np.zeros(p)]
    d1 = kg.pirls_pass_joint(fc, lc, y, wt, X, beta, off, codes, zl, kcol, kdim, uoff, u, pairidx, poff, *a, *ja)
    d2 = wide_term.pirls_pass_joint(fc, lc, y, wt, X, beta, off, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
                                    *b, *jb)
    assert d2 == pytest.approx(d1, rel=1e-12)
    for x1, x2 in zip(a + ja, b + jb):
        np.testing.assert_allclose(x2, x1, rtol=1e-10, atol=1e-12)
    zw, w = rng.normal(size=n), rng.uniform(0.5, 2, n)
    A1, A2, r1, r2 = np.zeros((nl, k, k)), np.zeros((nl, k, k)), np.zeros(nl * k), np.zeros(nl * k)
    kx.accumulate_re(w, zw, codes, zl, kcol, kdim, uoff, pairidx, poff, A1, np.zeros(0), np.zeros((0, 0)), r1)
    wide_term.accumulate_re(w, zw, codes, zl, kcol, kdim, uoff, pairidx, poff, A2, np.zeros(0), np.zeros((0, 0)), r2)
    np.testing.assert_allclose(A2, A1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r2, r1, rtol=1e-10, atol=1e-12)
