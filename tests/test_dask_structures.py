"""The spatial and reduced-rank covariance structures (ou, exp, gau, mat, rr: issue 21) on a
Dask frame: the structure is carried from the sample's model frame to the distributed layout
(the coordinates are the levels' names, global over the partitions), so the Dask fit is the
in-memory one and glmmTMB 1.1.5's (tests/fixtures/covspatial, made by make_fixtures.R)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import interlace  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "covspatial"

CASES = {
    "ou_poisson": ("y ~ x + ou(numFactor(t) + 0 | subject)", "poisson"),
    "gau_binomial": ("y ~ x + gau(numFactor(px, py) + 0 | year)", "binomial"),
    "mat_poisson": ("y ~ x + mat(pos + 0 | group)", "poisson"),
    "rr_poisson": ("y ~ 0 + trait + x + rr(0 + trait | site, d = 2)", "poisson"),
}


@pytest.fixture(scope="module")
def client():
    c = distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None)
    yield c
    c.close()


def _data(case: str) -> pd.DataFrame:
    d = pd.read_csv(FIX / f"{case}.csv")
    if "px" in d:
        d["pos"] = interlace.numFactor(d.px, d.py)
    d["group"] = "1"
    return d


def _fits(formula, df, family):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = interlace.glmer(formula, df, family=family)
        dsk = interlace.glmer(formula, dd.from_pandas(df, npartitions=3), family=family)
    return mem, dsk


@pytest.mark.parametrize("case", list(CASES))
def test_structure_on_dask_matches_in_memory_and_glmmtmb(client, case):
    formula, family = CASES[case]
    fx = json.loads((FIX / f"{case}.json").read_text())
    mem, dsk = _fits(formula, _data(case), family)
    assert list(dsk.theta.index) == list(mem.theta.index)
    assert dsk.llf == pytest.approx(mem.llf, abs=1e-6)
    assert dsk.llf >= fx["logLik"] - 1e-4 and dsk.llf - fx["logLik"] < 1e-3
    np.testing.assert_allclose(dsk.theta.to_numpy(), mem.theta.to_numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dsk.fe_params.to_numpy(), list(fx["fixef"].values()), rtol=1e-3, atol=1e-3)


def test_exp_structure_on_dask(client):
    # exp() with a count response on the mat case's irregular positions
    mem, dsk = _fits("y ~ x + exp(pos + 0 | group)", _data("mat_poisson"), "poisson")
    assert dsk.llf == pytest.approx(mem.llf, abs=1e-6)
    np.testing.assert_allclose(dsk.theta.to_numpy(), mem.theta.to_numpy(), rtol=1e-4, atol=1e-6)


def test_gaussian_structure_on_dask_is_refused_clearly(client):
    # the Gaussian identity model is lmer's profiled engine, which has no Dask passes
    with pytest.raises(NotImplementedError, match="Gaussian identity model"):
        interlace.glmer("y ~ z + exp(pos + 0 | group)", dd.from_pandas(_data("exp_gaussian"), npartitions=2),
                        family="gaussian")
