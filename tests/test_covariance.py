"""Covariance as a type (issue 18 item 2): a term's covariance structure maps its parameters to
Lambda, and every engine's gradient goes through its Jacobian.

Checks: the structures' maps and Jacobians (against finite differences); a (1 + x | g) term
with the ``diag`` structure fits exactly lme4's ``(x || g)`` expansion in the LMM, Laplace and
general engines; a structure that is not linear in its parameters (Lambda = diag(exp(p)), a
test-only class) gets exact gradients (finite differences of the deviance) and the same
optimum."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.engines import fit_frame, select_engine
from interlace.families import get_family
from interlace.model.covariance import Covariance, Diagonal, Unstructured
from interlace.model_frame import build_model_frame
from interlace.objective.laplace import LaplaceObjective


class LogDiagonal(Covariance):
    """Lambda = diag(exp(p)): not linear in p (a test structure)."""

    name = "logdiag"

    @property
    def nparams(self) -> int:
        return self.k

    def lambda_(self, par):
        return np.diag(np.exp(np.asarray(par, dtype=float)))

    def jacobian(self, par):
        J = np.zeros((self.nentries, self.k))
        J[np.flatnonzero(self.rows == self.cols), np.arange(self.k)] = np.exp(np.asarray(par, dtype=float))
        return J

    @property
    def lower(self):
        return np.full(self.k, -np.inf)

    def start(self):
        return np.zeros(self.k)


def _fd_jacobian(cov, par, h=1e-6):
    cols = []
    for i in range(len(par)):
        e = np.zeros(len(par))
        e[i] = h
        cols.append((cov.entries(par + e) - cov.entries(par - e)) / (2 * h))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("cov,par", [(Unstructured(3), np.array([1.0, 0.2, -0.3, 0.7, 0.1, 0.4])),
                                     (Diagonal(3), np.array([0.5, 1.5, 0.2])),
                                     (LogDiagonal(2), np.array([0.3, -0.2]))])
def test_structure_maps_and_jacobian(cov, par):
    lam = cov.lambda_(par)
    assert lam.shape == (cov.k, cov.k) and np.allclose(np.triu(lam, 1), 0.0)
    assert cov.entries(par).tolist() == lam[cov.rows, cov.cols].tolist()
    np.testing.assert_allclose(cov.jacobian(par), _fd_jacobian(cov, par), atol=1e-8)
    assert len(cov.lower) == len(cov.start()) == cov.nparams
    # canonical keeps Lambda Lambda'
    flipped = -np.asarray(par) if cov.name != "logdiag" else np.asarray(par)
    lc = cov.lambda_(cov.canonical(flipped))
    np.testing.assert_allclose(lc @ lc.T, cov.lambda_(flipped) @ cov.lambda_(flipped).T)


def _data(seed=3):
    rng = np.random.default_rng(seed)
    ng, per = 30, 12
    g = np.repeat(np.arange(ng), per)
    x = rng.normal(size=ng * per)
    b0, b1 = rng.normal(0, 0.6, ng), rng.normal(0, 0.4, ng)
    eta = 0.5 + 0.3 * x + b0[g] + b1[g] * x
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)).astype(float),
                         "r": eta + rng.normal(0, 0.5, ng * per),
                         "x": x, "g": [f"g{i:02d}" for i in g]})


def _fit(formula, df, family, cov=None):
    fam = get_family(family)
    mf = build_model_frame(formula, df, family=fam)
    if cov is not None:
        mf.terms[0].cov = cov(mf.terms[0].k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_frame(mf, fam, engine=select_engine(fam))


@pytest.mark.parametrize("family,resp", [("gaussian", "r"), ("poisson", "y"), ("negativebinomial", "y")])
def test_diag_structure_equals_double_bar_expansion(family, resp):
    df = _data()
    ref = _fit(f"{resp} ~ x + (x || g)", df, family)
    m = _fit(f"{resp} ~ x + (1 + x | g)", df, family, cov=Diagonal)
    assert m.optinfo["engine"] == ref.optinfo["engine"]
    assert m.llf == pytest.approx(ref.llf, abs=1e-6)
    np.testing.assert_allclose(m.fe_params.to_numpy(), ref.fe_params.to_numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.sort(m.theta.to_numpy()), np.sort(ref.theta.to_numpy()), rtol=1e-3, atol=1e-5)
    assert list(m.theta.index) == ["g.Intercept", "g.x"]
    assert m.varcorr["var2"].isna().all()  # diag: no correlation rows (lme4's VarCorr of a diag term)

    def sds(vc):
        return np.sort(vc[vc["var2"].isna()]["sdcor"].to_numpy())  # SDs (and the Residual row of an LMM)

    np.testing.assert_allclose(sds(m.varcorr), sds(ref.varcorr), rtol=1e-3)


def test_nonlinear_structure_gradient_goes_through_the_jacobian():
    df = _data()
    fam = get_family("poisson")
    mf = build_model_frame("y ~ x + (1 + x | g)", df, family=fam)
    mf.terms[0].cov = LogDiagonal(2)
    obj = LaplaceObjective(mf, fam)
    theta, beta = np.array([-0.4, -0.9]), np.array([0.4, 0.25])
    obj.deviance(theta, beta)
    g = obj.gradient(theta, beta)
    x0 = np.r_[theta, beta]
    fd = []
    for i in range(len(x0)):
        h = 1e-5
        xp, xm = x0.copy(), x0.copy()
        xp[i] += h
        xm[i] -= h
        fd.append((obj.deviance(xp[:2], xp[2:]) - obj.deviance(xm[:2], xm[2:])) / (2 * h))
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-5)
    # the same optimum as the linear diag structure, reached with those gradients
    m = _fit("y ~ x + (1 + x | g)", df, "poisson", cov=LogDiagonal)
    ref = _fit("y ~ x + (1 + x | g)", df, "poisson", cov=Diagonal)
    assert m.llf == pytest.approx(ref.llf, abs=1e-6)
    np.testing.assert_allclose(np.exp(m.theta.to_numpy()), ref.theta.to_numpy(), rtol=1e-3)
