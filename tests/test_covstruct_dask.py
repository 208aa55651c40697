"""A structured term on a Dask frame fits the same model as in memory (the structure is carried
from the sample's model frame to the distributed layout)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import interlace  # noqa: E402


@pytest.fixture(scope="module")
def client():
    c = distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None)
    yield c
    c.close()


def test_ar1_on_dask_equals_in_memory(client):
    rng = np.random.default_rng(8)
    ns, nt = 120, 4
    R = 0.6 ** np.abs(np.subtract.outer(np.arange(nt), np.arange(nt)))
    b = rng.multivariate_normal(np.zeros(nt), R, size=ns)
    s = np.repeat(np.arange(ns), nt)
    t = np.tile(np.arange(nt), ns)
    x = rng.normal(size=s.size)
    df = pd.DataFrame({"y": rng.poisson(np.exp(0.2 + 0.3 * x + b[s, t])).astype(float), "x": x,
                       "s": pd.Categorical([f"s{i:03d}" for i in s]),
                       "t": pd.Categorical([f"t{i}" for i in t])})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = interlace.glmer("y ~ x + ar1(0 + t | s)", df, family="poisson")
        dsk = interlace.glmer("y ~ x + ar1(0 + t | s)", dd.from_pandas(df, npartitions=3), family="poisson")
    assert list(dsk.theta.index) == ["s.ar1.sd", "s.ar1.phi"]
    assert dsk.llf == pytest.approx(mem.llf, abs=1e-6)
    np.testing.assert_allclose(dsk.theta.to_numpy(), mem.theta.to_numpy(), rtol=1e-4)
