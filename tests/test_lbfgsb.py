"""interlace.optimize.lbfgsb drives scipy's compiled L-BFGS-B without minimize()'s
wrappers: the iterates, evaluation counts and messages must be scipy's exactly."""

import numpy as np
import pytest
from scipy import optimize as sopt

from interlace.optimize.lbfgsb import minimize_lbfgsb


def _problem(rng, n):
    A = rng.normal(size=(n, n))
    A = A @ A.T + 0.1 * np.eye(n)
    c = rng.normal(size=n) * 3

    def fg(x):
        r = x - c
        return float(r @ A @ r + np.sum(np.cos(3 * x))), 2 * A @ r - 3 * np.sin(3 * x)

    return fg


@pytest.mark.parametrize("seed", range(40))
def test_same_iterates_as_scipy_minimize(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    fg = _problem(rng, n)
    lo = np.where(rng.random(n) < 0.5, 0.0, -np.inf)
    x0 = np.abs(rng.normal(size=n))
    for opts in ({"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-8, "maxls": 60},
                 {"maxiter": 3, "ftol": 1e-7, "gtol": 1e-2, "maxls": 20}):
        bounds = [(v if np.isfinite(v) else None, None) for v in lo]
        r1 = sopt.minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=bounds, options=opts)
        r2 = minimize_lbfgsb(fg, x0, lo, **opts)
        assert np.array_equal(r1.x, r2.x)
        assert (r1.fun, r1.nfev, r1.nit, r1.status, r1.message) == (r2.fun, r2.nfev, r2.nit, r2.status, r2.message)
        np.testing.assert_allclose(r2.hess_inv.todense(), r1.hess_inv.todense(), rtol=1e-10, atol=1e-12)


def test_unbounded_and_bad_bounds():
    fg = _problem(np.random.default_rng(0), 3)
    r1 = sopt.minimize(fg, np.ones(3), jac=True, method="L-BFGS-B")
    r2 = minimize_lbfgsb(fg, np.ones(3), ftol=2.2204460492503131e-09)
    assert np.array_equal(r1.x, r2.x) and r1.nfev == r2.nfev
    with pytest.raises(ValueError, match="lower bound"):
        minimize_lbfgsb(fg, np.ones(3), np.full(3, 2.0), np.full(3, 1.0))
