"""dispformula / ziformula on a Dask frame (issue 22 item 2): the side models' designs are
built partition by partition and the general engine's passes read them; the fit is the
in-memory one and glmmTMB 1.1.5's (tests/fixtures/zi, made by make_zi.R). Random effects in
a side formula are refused on Dask with the term named."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import interlace  # noqa: E402

ZI = Path(__file__).resolve().parent / "fixtures" / "zi"


@pytest.fixture(scope="module")
def client():
    c = distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None)
    yield c
    c.close()


def _fits(df, formula, family, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = interlace.glmer(formula, df, family=family, **kw)
        dsk = interlace.glmer(formula, dd.from_pandas(df, npartitions=3), family=family, **kw)
    return mem, dsk


def test_zinb2_fixed_ziformula_on_dask_matches_glmmtmb(client):
    fx = json.loads((ZI / "zinb2_fixed.json").read_text())
    call = dict(fx["python_call"])
    df = interlace.datasets.load(call.pop("data"))
    mem, dsk = _fits(df, call.pop("formula"), call.pop("family"), **call)
    assert dsk.converged and dsk.optinfo["engine"] == "general-dask"
    assert dsk.llf == pytest.approx(fx["loglik"], abs=1e-4)
    assert dsk.llf == pytest.approx(mem.llf, abs=1e-6)
    np.testing.assert_allclose(dsk.fe_params.to_numpy(), list(fx["fixef"]["cond"].values()), rtol=1e-3)
    np.testing.assert_allclose(dsk.fe_bse.to_numpy(), mem.fe_bse.to_numpy(), rtol=1e-4)
    np.testing.assert_allclose(dsk.zi_params.to_numpy(), mem.zi_params.to_numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dsk.zi_params.to_numpy(), list(fx["fixef"]["zi"].values()), rtol=1e-3)
    new = df.head(7)
    np.testing.assert_allclose(dsk.predict(dd.from_pandas(new, npartitions=2)).compute().to_numpy(),
                               np.asarray(mem.predict(new), dtype=float), rtol=1e-5)


def test_dispformula_on_dask_matches_in_memory(client):
    df = interlace.datasets.load("salamanders")
    mem, dsk = _fits(df, "count ~ mined + (1 | site)", "nbinom2", dispformula="~ mined")
    assert dsk.llf == pytest.approx(mem.llf, abs=1e-6)
    np.testing.assert_allclose(dsk.disp_params.to_numpy(), mem.disp_params.to_numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dsk.theta.to_numpy(), mem.theta.to_numpy(), rtol=1e-4)


def test_side_random_effects_on_dask_name_the_term(client):
    df = interlace.datasets.load("salamanders")
    with pytest.raises(NotImplementedError, match=r"ziformula.*\(1 ?\| ?site\)"):
        interlace.glmer("count ~ mined + (1 | site)", dd.from_pandas(df, npartitions=2), family="poisson",
                        ziformula="~ mined + (1 | site)")
