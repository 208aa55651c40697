"""The compiled PIRLS loops (interlace/kernels/pirls.py) against the Python
loops they replace for small fits: the same algorithm, so the same numbers to
rounding, for one term, a vector-valued term and crossed/nested terms; and the
compiled blocked factor against a dense Cholesky of U'WU + I."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_case
from oracle_utils import read_case_data

from interlace.families import get_family
from interlace.model_frame import build_model_frame
from interlace.objective.laplace import LaplaceObjective

CASES = [
    ("cbpp_laplace", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial"),
    # a small second factor: the dense L22 block (< 48) is factored in numba, not LAPACK
    ("cbpp_laplace", "cbind(incidence, size - incidence) ~ 1 + (1 | herd) + (1 | period)", "binomial"),
    ("grouseticks_poisson", None, None),
    ("grouseticks_nested", None, None),
    ("binary_slope", None, None),
]


def _objective(name, formula, family):
    case = load_case(name)
    call = case["python_call"]
    df = read_case_data(case)
    fam = get_family(family or call["family"])
    kw = {k: call[k] for k in ("weights", "offset", "groups", "random") if k in call}
    mf = build_model_frame(formula or call["formula"], df, family=fam, **kw)
    return mf, fam


def _pair(mf, fam):
    a = LaplaceObjective(mf, fam)
    b = LaplaceObjective(mf, fam)
    b.compiled_loop = False
    return a, b


@pytest.mark.parametrize("name,formula,family", CASES)
def test_compiled_u_loop_matches_python_loop(name, formula, family):
    mf, fam = _objective(name, formula, family)
    a, b = _pair(mf, fam)
    rng = np.random.default_rng(1)
    theta = a.re.theta_start() * 0.7 + 0.05 * (a.re.theta_a == a.re.theta_b)
    for step in range(3):
        beta = a.beta + 0.05 * rng.standard_normal(a.p) * step
        da, db = a.deviance(theta, beta), b.deviance(theta, beta)
        assert da == pytest.approx(db, rel=1e-11, abs=1e-9)
        np.testing.assert_allclose(a.u, b.u, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(a.gradient(theta, beta), b.gradient(theta, beta), rtol=1e-7, atol=1e-8)
        assert a.chol.logdet == pytest.approx(b.chol.logdet, rel=1e-11, abs=1e-10)


@pytest.mark.parametrize("name,formula,family", CASES)
def test_compiled_joint_loop_matches_python_loop(name, formula, family):
    mf, fam = _objective(name, formula, family)
    a, b = _pair(mf, fam)
    for scale in (1.0, 0.5, 1.5):
        theta = a.re.theta_start() * scale
        da, db = a.pirls_joint(theta), b.pirls_joint(theta)
        assert da == pytest.approx(db, rel=1e-10, abs=1e-8)
        np.testing.assert_allclose(a.beta, b.beta, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(a.gradient_joint(theta), b.gradient_joint(theta), rtol=1e-6, atol=1e-7)


def test_blocked_factor_equals_dense_cholesky():
    """log|L|^2 and solves of the compiled blocked factor equal a dense
    Cholesky of I + U'WU built from the row data (two crossed terms)."""
    mf, fam = _objective("grouseticks_nested", None, None)
    obj = LaplaceObjective(mf, fam)
    theta = obj.re.theta_start() * 0.8
    obj.deviance(theta, obj.beta)
    re, resp = obj.re, obj.resp
    # dense U = Z Lambda from the term blocks
    zl = obj.zl(theta)
    U = np.zeros((re.n, re.q))
    for j in range(re.m):
        k = int(re.kdim[j])
        for a in range(k):
            U[np.arange(re.n), re.uoff[j] + re.codes[j] * k + a] = zl[:, re.kcol[j] + a]
    A = U.T @ (resp.w[:, None] * U) + np.eye(re.q)
    L = np.linalg.cholesky(A)
    assert obj.chol.logdet == pytest.approx(2 * np.sum(np.log(np.diag(L))), rel=1e-12)
    b = np.random.default_rng(0).standard_normal(re.q)
    np.testing.assert_allclose(obj.chol.solve(b), np.linalg.solve(A, b), rtol=1e-10, atol=1e-12)
