"""Tangent warm starts of PIRLS (LaplaceObjective._tangent_start).

After a converged PIRLS the mode moves with (theta, beta) along its tangent
(the implicit function theorem on the score equations u = U's, 0 = X's). The
prediction must be first-order accurate: its error against the true mode
shrinks like h^2 for a move of size h, while the plain warm start's shrinks
like h. And since it only moves PIRLS's starting point, deviances and
gradients with and without it agree to the convergence tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_case
from oracle_utils import read_case_data

from interlace.families import get_family
from interlace.model_frame import build_model_frame
from interlace.objective.laplace import LaplaceObjective

CASES = [
    ("grouseticks_poisson", None),  # three nested/crossed terms, Poisson
    ("cbpp_laplace", "cbind(incidence, size - incidence) ~ period + (1 | herd)"),
    ("binary_slope", None),  # a correlated random slope, Bernoulli
]


def _objective(name, formula):
    case = load_case(name)
    call = case["python_call"]
    df = read_case_data(case)
    fam = get_family(call["family"])
    kw = {k: call[k] for k in ("weights", "offset", "groups", "random") if k in call}
    mf = build_model_frame(formula or call["formula"], df, family=fam, **kw)
    obj = LaplaceObjective(mf, fam)
    obj.compiled_loop = False  # the tangent serves the Python loops (large fits)
    return obj


def _start(obj):
    theta = obj.re.theta_start() * 0.7 + 0.05 * (obj.re.theta_a == obj.re.theta_b)
    obj.deviance(theta, obj.beta)
    return theta, obj.beta.copy(), obj.u.copy()


@pytest.mark.parametrize("name,formula", CASES)
def test_u_tangent_is_first_order(name, formula):
    obj = _objective(name, formula)
    rng = np.random.default_rng(7)
    dth = rng.standard_normal(obj.re.ntheta) * 0.5
    db = rng.standard_normal(obj.p) * 0.5
    err_pred, err_warm = [], []
    for h in (1e-2, 1e-3):
        theta, beta, u0 = _start(obj)
        pred = obj._tangent_start(theta + h * dth, beta + h * db, None)
        assert pred is not None and pred[1] is None
        obj.deviance(theta + h * dth, beta + h * db)  # the true mode there
        err_pred.append(np.max(np.abs(pred[0] - obj.u)))
        err_warm.append(np.max(np.abs(u0 - obj.u)))
    # warm start: error ~ h (ratio ~10); prediction: ~ h^2 (ratio ~100)
    assert err_warm[0] / err_warm[1] == pytest.approx(10.0, rel=0.2)
    assert err_pred[0] / err_pred[1] > 50.0
    assert err_pred[1] < 0.05 * err_warm[1]


@pytest.mark.parametrize("name,formula", CASES)
def test_joint_tangent_is_first_order(name, formula):
    obj = _objective(name, formula)
    rng = np.random.default_rng(3)
    dth = rng.standard_normal(obj.re.ntheta) * 0.5
    errs_u, errs_b = [], []
    for h in (1e-2, 1e-3):
        theta = obj.re.theta_start() * 0.7 + 0.05 * (obj.re.theta_a == obj.re.theta_b)
        obj.pirls_joint(theta)
        u0, b0 = obj.u.copy(), obj.beta.copy()
        pred = obj._tangent_start(theta + h * dth, None, True)
        assert pred is not None and pred[1] is not None
        obj.pirls_joint(theta + h * dth)
        errs_u.append((np.max(np.abs(pred[0] - obj.u)), np.max(np.abs(u0 - obj.u))))
        errs_b.append((np.max(np.abs(pred[1] - obj.beta)), np.max(np.abs(b0 - obj.beta))))
    for errs in (errs_u, errs_b):
        assert errs[0][0] / errs[1][0] > 50.0  # h^2
        assert errs[1][0] < 0.05 * errs[1][1]


@pytest.mark.parametrize("name,formula", CASES)
def test_tangent_changes_iterations_not_results(name, formula):
    a, b = _objective(name, formula), _objective(name, formula)
    b._tangent_start = lambda *args: None
    rng = np.random.default_rng(11)
    theta = a.re.theta_start() * 0.7 + 0.05 * (a.re.theta_a == a.re.theta_b)
    beta = a.beta.copy()
    for step in range(5):
        t = theta + 0.01 * step * rng.standard_normal(a.re.ntheta)
        bb = beta + 0.01 * step * rng.standard_normal(a.p)
        assert a.deviance(t, bb) == pytest.approx(b.deviance(t, bb), rel=1e-10, abs=1e-8)
        np.testing.assert_allclose(a.gradient(t, bb), b.gradient(t, bb), rtol=1e-6, atol=1e-7)
    assert a.pirls_iters <= b.pirls_iters


def test_no_prediction_without_a_current_mode():
    obj = _objective(*CASES[1])
    theta, beta, _ = _start(obj)
    assert obj._tangent_start(theta, beta, None) is None  # no move
    obj._sysver += 1  # a row pass since the mode: its factor and weights are gone
    assert obj._tangent_start(theta * 1.01, beta, None) is None
    _start(obj)
    assert obj._tangent_start(theta * 1.01, None, True) is None  # no joint system at a u-only mode
