"""The large-dense-block path of BlockedCholesky (many crossed levels, q2 >= DENSE_MAX;
issue 26 item 3) against dense linear algebra on the matrix it represents:
the in-place LAPACK factor's log-determinant and solves, the buffers trading
places, the product with the unfactored system, conjugate gradients
preconditioned with the factor of another point, and the diagonal blocks of
A^{-1} taken through the pair pattern."""

from __future__ import annotations

import numpy as np
import pytest

from interlace.kernels import pirls as kp
from interlace.objective.predictor import BlockedCholesky
from tests.test_parallel_kernels import random_structure


def _system(re, w, zl):
    """Dense A = U'WU + I from the codes (U = Z Lambda)."""
    n = w.shape[0]
    U = np.zeros((n, re.q))
    for j in range(re.m):
        k, c0 = int(re.kdim[j]), int(re.kcol[j])
        for a in range(k):
            U[np.arange(n), re.uoff[j] + re.codes[j] * k + a] = zl[:, c0 + a]
    return U.T @ (w[:, None] * U) + np.eye(re.q)


@pytest.mark.parametrize("spec", [[(300, 1), (80, 1)], [(120, 2), (60, 1), (9, 1)]])
def test_large_block_factor_solve_pcg(spec):
    rng = np.random.default_rng(11)
    n = 5000
    re = random_structure(spec, n, rng)
    assert re.q2 >= kp.DENSE_MAX
    zl = re.zlambda(re.theta_start() * 0.8)
    w1, w2 = rng.uniform(0.05, 0.25, n), rng.uniform(0.05, 0.25, n)
    A1, A2 = _system(re, w1, zl), _system(re, w2, zl)
    chol = BlockedCholesky(re)
    assert chol.big and not chol.factored
    assert chol.pcg_solve(np.ones(re.q), np.zeros(re.q), 1e-12) is None  # no factor yet

    chol.accumulate(w1, np.zeros(n), zl)
    x = rng.normal(size=re.q)
    np.testing.assert_allclose(chol.matvec(x), A1 @ x, rtol=1e-12, atol=1e-12)
    a22, l22 = chol.A22, chol.L22
    ld = chol.factor()
    assert chol.L22 is a22 and chol.A22 is l22  # in place, the buffers trade places
    assert np.all(np.triu(chol.L22, 1) == 0.0)
    sign, ref = np.linalg.slogdet(A1)
    assert sign > 0 and abs(ld - ref) <= 1e-10 * abs(ref)
    b = rng.normal(size=re.q)
    np.testing.assert_allclose(chol.solve(b), np.linalg.solve(A1, b), rtol=1e-9, atol=1e-12)
    B = rng.normal(size=(re.q, 3))
    np.testing.assert_allclose(chol.solve(B), np.linalg.solve(A1, B), rtol=1e-9, atol=1e-12)

    # the factor of A1 preconditions A2 (the system of the next pass)
    chol.accumulate(w2, np.zeros(n), zl)
    xs = chol.pcg_solve(b, np.zeros(re.q), 1e-11)
    assert xs is not None
    np.testing.assert_allclose(xs, np.linalg.solve(A2, b), rtol=1e-8, atol=1e-10)
    ld2 = chol.factor()
    assert abs(ld2 - np.linalg.slogdet(A2)[1]) <= 1e-10 * abs(ld2)

    Ainv = np.linalg.inv(A2)
    Ainv11, Ainv22 = chol.selected_inverse_diag()
    k0 = int(re.kdim[0])
    for lv in range(int(re.nlev[0])):
        np.testing.assert_allclose(Ainv11[lv], Ainv[lv * k0:(lv + 1) * k0, lv * k0:(lv + 1) * k0],
                                   rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(Ainv22, Ainv[re.q0:, re.q0:], rtol=1e-9, atol=1e-12)
    s11, s21, s22 = chol.selected_inverse_pairs(scratch=True)
    assert s22 is chol.A22  # in the dead buffer
    np.testing.assert_allclose(s22, Ainv[re.q0:, re.q0:], rtol=1e-9, atol=1e-12)
