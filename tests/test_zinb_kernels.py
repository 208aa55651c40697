"""The compiled zero-inflated NB2 passes and the block-diagonal u-Hessian of the joint Laplace
approximation (issue 22 item 6) against the general code they stand for.

* ``kernels.zi_jet.zinb2_loglik`` / ``zinb2_jet`` / ``nb2_parts_rows`` (one theta for all rows,
  special functions tabulated per distinct count) equal the numpy formulas of
  ``likelihood.nbinom2_parts`` composed by ``zero_inflate`` / ``general.jet.zi_jet``;
* ``general.multi`` factors A = I + U'WU in blocks when no row links two groups of random
  effects; its deviance, gradient, A^-1 and the rows' conditional covariances equal those of
  the dense factor, and the dense factor is kept when a crossed factor links every group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interlace.families import likelihood as L
from interlace.families.negbin2 import NegativeBinomial2Family
from interlace.families.zinb import ZeroInflatedNB2Family
from interlace.families.zi import ZeroInflatedFamily
from interlace.general.multi import MultiObjective
from interlace.model_frame import build_model_frame


def _rows(n=3000, seed=1):
    rng = np.random.default_rng(seed)
    eta = 0.8 + 0.6 * rng.standard_normal(n)
    eta[:6] = [25.0, -25.0, 300.0, -300.0, 0.4, 0.4]  # far tails and eta = log(theta)
    y = np.where(rng.random(n) < 0.4, 0.0, rng.negative_binomial(1.5, 1.5 / (1.5 + np.exp(0.8)), n)).astype(float)
    z = -1.0 + 0.8 * rng.standard_normal(n)
    z[6:9] = [40.0, -40.0, 0.0]
    wt = rng.uniform(0.5, 2.0, n)
    return y, eta, np.full(n, 0.4), z, wt


def _close(a, b, rtol=1e-9):
    a, b = np.asarray(a), np.asarray(b)
    scale = np.maximum(np.abs(b), 1e-6 * np.max(np.abs(b)))
    assert np.all(np.isfinite(a) == np.isfinite(b))
    ok = np.isfinite(b)
    assert np.max(np.abs(a[ok] - b[ok]) / scale[ok]) < rtol


def test_tables_apply_only_with_one_theta():
    y, eta, lth, z, wt = _rows()
    assert L.nb2_tables(y, lth) is not None
    lth2 = lth.copy()
    lth2[5] += 1e-3
    assert L.nb2_tables(y, lth2) is None
    assert L.nb2_tables(y[:100], lth[:100]) is None  # small data: per row


@pytest.mark.parametrize("order", [0, 1, 2])
def test_nb2_parts_kernel_is_the_numpy_formula(order, monkeypatch):
    y, eta, lth, z, wt = _rows()
    P = L.nbinom2_parts(y, eta, lth, order)
    monkeypatch.setattr(L, "nb2_tables", lambda y, lth: None)
    Q = L.nbinom2_parts(y, eta, lth, order)
    for f in ("g", "e", "ee", "eee", "p", "ep", "eep", "pp"):
        if getattr(Q, f) is not None:
            _close(getattr(P, f)[6:], getattr(Q, f)[6:], 1e-8)


def test_zinb_loglik_and_jet_are_the_general_composition(monkeypatch):
    y, eta, lth, z, wt = _rows()
    fam = ZeroInflatedNB2Family()
    aux = {"disp": lth, "zi": z}
    names = ["cond", "disp", "zi"]
    l0 = fam.derivs(y, wt, eta, aux, order=0).l
    jets = {o: fam.jet(y, wt, eta, aux, names, o, aux_re={"zi"}) for o in (2, 3)}
    monkeypatch.setattr(L, "nb2_tables", lambda y, lth: None)
    from interlace.families import zinb as zmod

    monkeypatch.setattr(zmod, "nb2_tables", lambda y, lth: None)
    l1 = fam.derivs(y, wt, eta, aux, order=0).l
    _close(l0, l1, 1e-12)
    ref = ZeroInflatedFamily(NegativeBinomial2Family()).jet(y, wt, eta, aux, names, 3, aux_re={"zi"})
    for o, jet in jets.items():
        _close(jet[0], ref[0], 1e-12)
        _close(jet[1][6:], ref[1][6:], 1e-8)
        _close(jet[2][6:], ref[2][6:], 1e-8)
        if o == 3:
            _close(jet[3][6:], ref[3][6:], 1e-8)
        else:
            assert jet[3] is None


def _data(n=1500, ng=30, seed=3):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, ng, n)
    h = rng.integers(0, 7, n)
    x = rng.standard_normal(n)
    b, c = 0.5 * rng.standard_normal(ng), 0.7 * rng.standard_normal(ng)
    mu = np.exp(0.8 + 0.4 * x + b[g])
    y = rng.negative_binomial(1.5, 1.5 / (1.5 + mu))
    y = np.where(rng.random(n) < 1.0 / (1.0 + np.exp(1.0 - 0.5 * x - c[g])), 0, y)
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": [f"g{v:02d}" for v in g], "h": [f"h{v}" for v in h]})


@pytest.mark.parametrize("zi, blocked", [("~ x + (1 | g)", True), ("~ x + (1 | h)", False)])
def test_block_factor_is_the_dense_factor(zi, blocked):
    df = _data()
    fam = ZeroInflatedNB2Family()
    mf = build_model_frame("y ~ x + (1 | g)", df, family=fam, ziformula=zi)
    ob, od = MultiObjective(mf, fam), MultiObjective(mf, fam)
    assert (ob._blocks is not None) == blocked
    od._blocks = None
    x = ob.x_start()
    x[: ob.nt] = [0.6, 0.9][: ob.nt]
    for xx in (x, x + 0.02):
        assert ob.deviance(xx) == pytest.approx(od.deviance(xx), rel=1e-12)
        np.testing.assert_allclose(ob.gradient(xx), od.gradient(xx), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(ob.a_inverse(), od.a_inverse(), atol=1e-13)
        np.testing.assert_allclose(ob.row_covariance(), od.row_covariance(), atol=1e-13)


def test_zinb_loglik_is_the_log_space_mixture():
    y, eta, lth, z, wt = _rows()
    th = np.exp(lth)
    from scipy import special

    g = (special.gammaln(y + th) - special.gammaln(th) - special.gammaln(y + 1.0) + th * (lth - np.logaddexp(eta, lth))
         + y * (eta - np.logaddexp(eta, lth)))
    ref = wt * (np.where(y == 0, np.logaddexp(z, g), g) - np.logaddexp(0.0, z))
    _close(ZeroInflatedNB2Family().derivs(y, wt, eta, {"disp": lth, "zi": z}, order=0).l, ref, 1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_zinb_derivs_are_zero_inflate_of_the_nb2_parts(order):
    y, eta, lth, z, wt = _rows()
    d = ZeroInflatedNB2Family().derivs(y, wt, eta, {"disp": lth, "zi": z}, order=order)
    ref = L.zero_inflate(L.nbinom2_parts(y, eta, lth, order), y, wt, z, order, True)
    pairs = [(d.l, ref.l), (d.e, ref.e), (d.ee, ref.ee)]
    if order == 2:
        pairs += [(d.eee, ref.eee)] + [(a, b) for k in ("zi", "disp") for a, b in zip(d.aux[k], ref.aux[k])]
    for a, b in pairs:
        np.testing.assert_array_equal(a, b)  # the same operations in the same order
