"""Dask partitions whose categorical columns carry different category sets or
orders ("label drift", as when each partition is read from its own file) give
the same fit as the rows in memory: levels are unified by value across
partitions (issue 25 item 2). Ordered categoricals without a common order are
refused with a message naming the column.

The reference is interlace's in-memory fit of the same rows (``pd.concat`` of
the partitions: differing categoricals become their values, sorted as R's
``factor()`` sorts them), as in tests/test_dask.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import interlace  # noqa: E402
from interlace.distributed.layout import unified_categories  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _data(n: int = 4000, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 30, n)
    f = rng.choice(["a", "b", "c"], n)
    x = rng.normal(size=n)
    eta = -0.3 + 0.5 * x + np.select([f == "b", f == "c"], [0.4, -0.5], 0) + rng.normal(0, 0.7, 30)[g]
    df = pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float), "x": x, "f": f,
                       "g": [f"g{v:02d}" for v in g], "k": g + 100})
    # sorted so that each partition holds only some levels of f and g
    return df.sort_values(["f", "g"], kind="stable").reset_index(drop=True)


def _drifted(df: pd.DataFrame, columns: list[str], nparts: int = 4, ordered: bool = False) -> list[pd.DataFrame]:
    """Partitions as if read from separate files: each categorical holds the
    values its own file has, in the order first seen (reversed every other file)."""
    size = len(df) // nparts
    parts = []
    for i in range(nparts):
        p = df.iloc[i * size:(i + 1) * size].copy()
        for c in columns:
            cats = list(dict.fromkeys(p[c]))
            p[c] = pd.Categorical(p[c], categories=cats[::-1] if i % 2 else cats, ordered=ordered)
        parts.append(p.reset_index(drop=True))
    return parts


def _dask(parts: list[pd.DataFrame], meta: pd.DataFrame | None = None):
    meta = parts[0].iloc[:0] if meta is None else meta
    return dd.from_delayed([dask.delayed(lambda q=q: q)() for q in parts], meta=meta, verify_meta=False)


def _fit(formula, data, family="binomial"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.glmer(formula, data, family=family)


def _assert_same(m_mem, m_dask, tol=1e-6):
    assert abs(m_mem.llf - m_dask.llf) < tol
    assert list(m_mem.fe_params.index) == list(m_dask.fe_params.index)
    np.testing.assert_allclose(m_dask.fe_params.to_numpy(), m_mem.fe_params.to_numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(m_dask.theta.to_numpy(), m_mem.theta.to_numpy(), rtol=tol, atol=tol)
    assert m_mem.nobs == m_dask.nobs and m_mem.ngroups == m_dask.ngroups


def test_drifting_fixed_and_grouping_factors_fit_as_in_memory(client):
    # before: meta held the first file's categories, the other files' levels
    # were lost ("levels ... not seen in training") or coded by position
    parts = _drifted(_data(), ["f", "g"])
    assert len({tuple(p["f"].cat.categories) for p in parts}) > 1
    mem = pd.concat(parts, ignore_index=True)
    m_mem = _fit("y ~ x + f + (1 | g)", mem)
    m_dask = _fit("y ~ x + f + (1 | g)", _dask(parts))
    _assert_same(m_mem, m_dask)
    # the same model as the plain string columns (R's factor() of the values)
    _assert_same(_fit("y ~ x + f + (1 | g)", _data()), m_dask)
    fitted = m_dask.fittedvalues.compute().to_numpy()
    np.testing.assert_allclose(fitted, m_mem.fittedvalues.to_numpy(), rtol=1e-6, atol=1e-9)


def test_drifting_numeric_categories_unified_by_value(client):
    parts = _drifted(_data(), ["k"])
    ref = _data().assign(k=lambda d: d["k"].astype(str))
    m_dask = _fit("y ~ x + (1 | k)", _dask(parts))
    _assert_same(_fit("y ~ x + (1 | k)", ref), m_dask)
    assert list(m_dask.random_effects["k"].index) == [str(v) for v in sorted(_data()["k"].unique())]


def test_meta_categories_that_no_partition_has(client):
    # all partitions agree; the declared meta does not: the data win
    df = _data()
    df["f"] = pd.Categorical(df["f"], categories=["a", "b", "c"])
    parts = [df.iloc[i * 1000:(i + 1) * 1000].reset_index(drop=True) for i in range(4)]
    meta = parts[0].iloc[:0].assign(f=pd.Categorical([], categories=["a"]))
    _assert_same(_fit("y ~ x + f + (1 | g)", df), _fit("y ~ x + f + (1 | g)", _dask(parts, meta)))


def test_ordered_categoricals_without_a_common_order_are_refused(client):
    parts = _drifted(_data(), ["f"], ordered=True)
    with pytest.raises(ValueError, match="column 'f' is an ordered categorical whose categories differ"):
        _fit("y ~ x + f + (1 | g)", _dask(parts))


def test_unified_categories_rules():
    meta = pd.DataFrame({"f": pd.Categorical([], categories=["b", "a"]), "h": pd.Categorical([], categories=[2, 1])})
    same = {"f": [(("b", "a"), False)]}
    assert unified_categories(same, meta) == {}
    u = unified_categories({"f": [(("b", "a"), False), (("a", "b"), False)],
                            "h": [((2, 10), False), ((1,), False)]}, meta)
    assert u["f"].categories.tolist() == ["a", "b"]
    assert u["h"].categories.tolist() == [1, 2, 10]  # numbers sort as numbers


def test_dask_response_dtypes_follow_the_in_memory_rules(client):
    df = _data().assign(ys=lambda d: d["y"].astype(int).astype(str))
    ddf = dd.from_pandas(df, npartitions=4)
    with pytest.raises(ValueError, match="poisson response 'ys' must be numeric, got dtype"):
        _fit("ys ~ x + (1 | g)", ddf, family="poisson")
    with pytest.raises(ValueError, match="binomial response 'ys' holds numbers as strings"):
        _fit("ys ~ x + (1 | g)", ddf, family="binomial")
    # a factor response with labels: R's binomial factor, as in memory
    lab = df.assign(ys=np.where(df["y"] == 1, "yes", "no"))
    _assert_same(_fit("ys ~ x + (1 | g)", lab), _fit("ys ~ x + (1 | g)", dd.from_pandas(lab, npartitions=4)))
