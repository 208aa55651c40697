"""Cheap refits (issue 26 item 5): the Refitter reuses the model frame, the objective's
buffers and the warm start, and the bootstrap computes only the statistic it needs.
Every number must be the one the full refit path (``engines.refit``: a new objective,
a full GLMMResult per replicate) gives."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.engines import Refitter, refit
from interlace.inference.bootstrap import _default_stat
from interlace.results.simulate import simulate, simulator

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp():
    return interlace.glmer(CBPP, interlace.datasets.load("cbpp"), family="binomial")


@pytest.fixture(scope="module")
def grouse():
    df = interlace.datasets.load("grouseticks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.glmer("TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION)", df, family="poisson")


def _replicate_responses(m, seed, k):
    children = np.random.SeedSequence(seed).spawn(k)
    return [np.asarray(m.simulate(1, seed=np.random.default_rng(c), re="unconditional")).reshape(-1)
            for c in children]


def test_refit_on_the_original_response_reproduces_the_fit(cbpp):
    rf = Refitter(cbpp)
    assert rf.fast
    for res in (rf.fit(cbpp.model_frame.y), refit(cbpp, cbpp.model_frame.y)):
        assert res.llf == pytest.approx(cbpp.llf, abs=1e-8)
        np.testing.assert_allclose(res.fe_params.to_numpy(), cbpp.fe_params.to_numpy(), atol=1e-6)
        np.testing.assert_allclose(res.fe_bse.to_numpy(), cbpp.fe_bse.to_numpy(), rtol=1e-5)
        np.testing.assert_allclose(res.theta.to_numpy(), cbpp.theta.to_numpy(), atol=1e-6)
    beta, theta, ok, _msgs = rf.estimates(cbpp.model_frame.y)
    assert ok
    np.testing.assert_allclose(beta, cbpp.fe_params.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(theta, cbpp.theta.to_numpy(), atol=1e-6)


@pytest.mark.parametrize("model", ["cbpp", "grouse"])
def test_reused_objective_gives_the_full_refits_numbers(model, request):
    """The same objective refitted on several responses in turn (its state reset each
    time) gives, replicate by replicate, exactly what a fresh full refit gives."""
    m = request.getfixturevalue(model)
    rf = Refitter(m)
    ys = _replicate_responses(m, 11, 4)
    for y in ys + ys[:1]:  # back to the first response after others: no state carried over
        full = refit(m, y)
        beta, theta, ok, msgs = rf.estimates(y)
        np.testing.assert_array_equal(beta, full.fe_params.to_numpy())
        np.testing.assert_array_equal(theta, full.theta.to_numpy())
        assert ok == full.converged
        assert [x for x in msgs if "singular" not in x] == \
            [x for x in full.optinfo["messages"] if "singular" not in x]
        fast_full = rf.fit(y)
        assert fast_full.llf == full.llf
        np.testing.assert_array_equal(fast_full.fe_bse.to_numpy(), full.fe_bse.to_numpy())
        np.testing.assert_array_equal(fast_full.fittedvalues.to_numpy(), full.fittedvalues.to_numpy())


def test_bootstrap_equals_a_loop_of_full_refits(cbpp):
    """bootstrap(seed) replicate i is the full refit of the response simulated from child
    seed i: the fast path changes no replicate, SE or interval."""
    k = 6
    b = cbpp.bootstrap(k, seed=5, progress=False)
    ref = np.array([_default_stat(refit(cbpp, y)) for y in _replicate_responses(cbpp, 5, k)])
    np.testing.assert_array_equal(b.replicates.to_numpy(), ref)
    np.testing.assert_array_equal(b.replicates.std().to_numpy(), pd.DataFrame(ref).std().to_numpy())
    fn = lambda r: pd.Series({"llf": r.llf, "se": r.fe_bse.iloc[0]})  # noqa: E731
    bf = cbpp.bootstrap(3, fn=fn, seed=5, progress=False)
    ref_fn = np.array([fn(refit(cbpp, y)).to_numpy() for y in _replicate_responses(cbpp, 5, 3)])
    np.testing.assert_array_equal(bf.replicates.to_numpy(), ref_fn)


@pytest.mark.parametrize("re", ["conditional", "unconditional"])
def test_prepared_simulator_draws_what_simulate_draws(cbpp, grouse, re):
    for m in (cbpp, grouse):
        a = simulate(m, 3, seed=np.random.default_rng(7), re=re)
        draw = simulator(m, re)
        rng = np.random.default_rng(7)
        np.testing.assert_array_equal(draw(3, rng), a)


def test_refitter_rejects_a_response_of_the_wrong_length(cbpp):
    with pytest.raises(ValueError, match="response"):
        Refitter(cbpp).estimates(np.zeros(3))
