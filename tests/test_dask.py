"""The glmer call on a Dask DataFrame against the same fit in memory.

A distributed.LocalCluster on loopback (2 workers) is started and closed by
the module fixture. The reference is interlace's own in-memory fit of the
same rows: the Dask path must give the same model (llf to 1e-6, every
estimate to 1e-6 relative, standard errors to 1e-5), with fitted values and predictions as Dask
collections.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import interlace  # noqa: E402

N_ROWS = 200_000
N_PART = 8


def simulate(n: int, n_groups: int = 400, n_h: int = 30, seed: int = 20240611) -> pd.DataFrame:
    """A binary and a count response with a random intercept and slope on g
    and a crossed random intercept on h."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    h = rng.integers(0, n_h, n)
    x = rng.normal(size=n)
    f = rng.choice(np.array(["ctl", "trtA", "trtB"]), n)
    b0 = rng.normal(0.0, 0.7, n_groups)
    b1 = rng.normal(0.0, 0.3, n_groups)
    c0 = rng.normal(0.0, 0.5, n_h)
    eta = (-0.5 + 0.4 * x + np.where(f == "trtA", 0.3, 0.0) + np.where(f == "trtB", -0.2, 0.0)
           + b0[g] + b1[g] * x + c0[h])
    return pd.DataFrame({
        "y": rng.binomial(1, 1.0 / (1.0 + np.exp(-eta))).astype(float),
        "count": rng.poisson(np.exp(0.5 * eta)).astype(float),
        "x": x,
        "f": f,
        "g": pd.Categorical([f"g{i:03d}" for i in g]),
        "h": h,
    })


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def frames():
    df = simulate(N_ROWS)
    return df, dd.from_pandas(df, npartitions=N_PART)


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    den = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-8)
    return float(np.max(np.abs(a - b) / den))


def assert_same_fit(m_mem, m_dask, tol: float = 1e-6) -> None:
    assert abs(m_mem.llf - m_dask.llf) < tol
    assert list(m_mem.fe_params.index) == list(m_dask.fe_params.index)
    assert list(m_mem.theta.index) == list(m_dask.theta.index)
    assert _rel(m_mem.fe_params, m_dask.fe_params) < tol
    # standard errors come from forward differences of the gradient at each
    # engine's own optimum; the engines reach it along different PIRLS paths
    # (the in-memory one starts PIRLS on the mode's tangent), so they agree
    # to the optimizer's tolerance rather than to 1e-6 (measured: 2.2e-6)
    assert _rel(m_mem.fe_bse, m_dask.fe_bse) < 10 * tol
    assert _rel(m_mem.theta, m_dask.theta) < tol
    assert _rel(m_mem.varcorr["vcov"], m_dask.varcorr["vcov"]) < tol
    assert abs(m_mem.deviance - m_dask.deviance) < tol * abs(m_mem.deviance)
    assert m_mem.nobs == m_dask.nobs and m_mem.ngroups == m_dask.ngroups
    for g, re_mem in m_mem.random_effects.items():
        re_dask = m_dask.random_effects[g]
        assert list(re_mem.index) == list(re_dask.index)
        # conditional modes: relative to their spread (a mode can sit at ~0)
        scale = float(np.max(np.abs(re_mem.to_numpy())))
        assert np.max(np.abs(re_mem.to_numpy() - re_dask.to_numpy())) < tol * scale
        sd_mem, sd_dask = m_mem.random_effects_sd[g], m_dask.random_effects_sd[g]
        assert _rel(sd_mem.to_numpy(), sd_dask.to_numpy()) < tol


CASES = [
    ("binomial_intercept", "y ~ x + f + (1 | g)", "binomial"),
    ("poisson_slope", "count ~ x + (1 + x | g)", "poisson"),
    ("binomial_crossed", "y ~ x + (1 | g) + (1 | h)", "binomial"),
]


@pytest.mark.parametrize("name,formula,family", CASES, ids=[c[0] for c in CASES])
def test_dask_fit_matches_in_memory(client, frames, name, formula, family):
    df, ddf = frames
    m_mem = interlace.glmer(formula, df, family=family)
    m_dask = interlace.glmer(formula, ddf, family=family)
    assert m_dask.optinfo["engine"] == "laplace-dask"
    assert m_dask.optinfo["npartitions"] == N_PART
    assert m_dask.optinfo["dask_rounds"] > 0
    assert_same_fit(m_mem, m_dask)
    # per-row results are lazy Dask collections equal to the in-memory ones
    fv = m_dask.fittedvalues
    assert isinstance(fv, dd.Series)
    fvc = fv.compute()
    assert len(fvc) == N_ROWS
    np.testing.assert_allclose(fvc.to_numpy(), m_mem.fittedvalues.to_numpy(), rtol=1e-5, atol=1e-9)
    if name == "binomial_intercept":
        new = df.iloc[:5000]
        pr = m_dask.predict(dd.from_pandas(new, npartitions=3), type="link")
        assert isinstance(pr, dd.Series)
        np.testing.assert_allclose(pr.compute().to_numpy(), m_mem.predict(new, type="link"), rtol=1e-5, atol=1e-7)
        pop = m_dask.predict(dd.from_pandas(new, npartitions=2), include_re=False).compute()
        np.testing.assert_allclose(pop.to_numpy(), m_mem.predict(new, include_re=False), rtol=1e-5, atol=1e-9)
        assert "Random effects:" in str(m_dask.summary())


def simulate_nb2(n: int, n_groups: int = 400, n_h: int = 30, theta: float = 1.7, seed: int = 20240612) -> pd.DataFrame:
    """An NB2 count response (Var = mu + mu^2 / theta) with a random intercept
    on g and a crossed random intercept on h (gamma-Poisson mixture)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    h = rng.integers(0, n_h, n)
    x = rng.normal(size=n)
    f = rng.choice(np.array(["ctl", "trtA", "trtB"]), n)
    eta = (0.4 + 0.5 * x + np.where(f == "trtA", 0.3, 0.0) + np.where(f == "trtB", -0.2, 0.0)
           + rng.normal(0.0, 0.6, n_groups)[g] + rng.normal(0.0, 0.3, n_h)[h])
    mu = np.exp(eta)
    return pd.DataFrame({
        "nb": rng.poisson(rng.gamma(theta, mu / theta)).astype(float),
        "x": x,
        "f": f,
        "g": pd.Categorical([f"g{i:03d}" for i in g]),
        "h": h,
    })


@pytest.fixture(scope="module")
def nb2_frames():
    df = simulate_nb2(N_ROWS)
    return df, dd.from_pandas(df, npartitions=N_PART)


NB2_CASES = [
    ("theta_estimated", "nb ~ x + f + (1 | g)", None),
    ("theta_fixed_crossed", "nb ~ x + (1 | g) + (1 | h)", 2.0),
]


@pytest.mark.parametrize("name,formula,nb_theta", NB2_CASES, ids=[c[0] for c in NB2_CASES])
def test_dask_nb2_matches_in_memory(client, nb2_frames, name, formula, nb_theta):
    """NB2 (glmmTMB's family, the general-likelihood engine) on Dask: the same
    fit as in memory -- llf to 1e-6, every estimate (fixed effects, their SEs,
    theta of the random effects, NB theta and its SE) to 1e-6 relative."""
    from interlace.families.negbin2 import NegativeBinomial2Family

    df, ddf = nb2_frames
    fam = "negativebinomial" if nb_theta is None else NegativeBinomial2Family(theta=nb_theta)
    m_mem = interlace.glmer(formula, df, family=fam)
    m_dask = interlace.glmer(formula, ddf, family=fam)
    assert m_mem.optinfo["engine"] == "general"
    assert m_dask.optinfo["engine"] == "general-dask"
    assert m_dask.optinfo["npartitions"] == N_PART
    assert m_dask.optinfo["dask_rounds"] > 0
    assert_same_fit(m_mem, m_dask)
    assert m_dask.df_model == m_mem.df_model
    assert m_dask.family_params["theta"] == pytest.approx(m_mem.family_params["theta"], rel=1e-6)
    if nb_theta is None:
        assert _rel(m_mem.aux_params["disp"], m_dask.aux_params["disp"]) < 1e-6
        assert _rel(m_mem.aux_bse["disp"], m_dask.aux_bse["disp"]) < 1e-6
        assert m_dask.family_params["disp_coef_se"] == pytest.approx(m_mem.family_params["disp_coef_se"], rel=1e-6)
    else:
        assert m_dask.family_params["theta"] == nb_theta and not m_dask.aux_params
    fv = m_dask.fittedvalues
    assert isinstance(fv, dd.Series)
    np.testing.assert_allclose(fv.compute().to_numpy(), m_mem.fittedvalues.to_numpy(), rtol=1e-5, atol=1e-9)


def test_dask_nb2_unsupported_parts(client):
    """Random effects in dispformula / ziformula and nAGQ > 1 stay in memory, with a clear
    error naming the part (fixed-effect side formulas fit on Dask: tests/test_dask_side.py)."""
    df = simulate_nb2(2000, n_groups=20, seed=5)
    ddf = dd.from_pandas(df, npartitions=2)
    with pytest.raises(NotImplementedError, match=r"dispformula.*\(1 ?\| ?g\)"):
        interlace.glmer("nb ~ x + (1 | g)", ddf, family="negativebinomial", dispformula="~ x + (1 | g)")
    with pytest.raises(NotImplementedError, match=r"ziformula.*\(1 ?\| ?g\)"):
        interlace.glmer("nb ~ x + (1 | g)", ddf, family="negativebinomial", ziformula="~ 1 + (1 | g)")
    with pytest.raises(NotImplementedError, match="nAGQ"):
        interlace.glmer("nb ~ x + (1 | g)", ddf, family="negativebinomial", nAGQ=3)


def test_dask_cbind_missing_rows_and_offset(client):
    """cbind response, a string factor, rows with missing values, an offset column."""
    rng = np.random.default_rng(7)
    n = 6000
    g = rng.integers(0, 60, n)
    x = rng.normal(size=n)
    size = rng.integers(1, 8, n)
    eta = -0.3 + 0.5 * x + rng.normal(0, 0.6, 60)[g]
    inc = rng.binomial(size, 1.0 / (1.0 + np.exp(-eta)))
    df = pd.DataFrame({"inc": inc.astype(float), "size": size.astype(float), "x": x,
                       "site": np.array([f"s{i % 4}" for i in range(n)]), "g": [f"h{i}" for i in g],
                       "lt": rng.normal(0, 0.1, n)})
    df.loc[[3, 500, 4000], "x"] = np.nan
    df.loc[[10, 3000], "g"] = None
    formula = "cbind(inc, size - inc) ~ x + site + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m_mem = interlace.glmer(formula, df, family="binomial", offset="lt")
        m_dask = interlace.glmer(formula, dd.from_pandas(df, npartitions=4), family="binomial", offset="lt")
    assert m_dask.nobs == m_mem.nobs == n - 5
    assert_same_fit(m_mem, m_dask)
    fv = m_dask.fittedvalues.compute()
    assert list(fv.index) == list(m_mem.fittedvalues.index)


def test_dask_nagq0(client):
    df = simulate(20_000, n_groups=50, seed=3)
    f = "y ~ x + f + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nAGQ = 0 has no Hessian: lme4's RX fallback, warned
        m_mem = interlace.glmer(f, df, family="binomial", nAGQ=0)
        m_dask = interlace.glmer(f, dd.from_pandas(df, npartitions=4), family="binomial", nAGQ=0)
    assert abs(m_mem.llf - m_dask.llf) < 1e-6
    assert _rel(m_mem.fe_params, m_dask.fe_params) < 1e-6
    assert _rel(m_mem.theta, m_dask.theta) < 1e-6
    assert _rel(m_mem.fe_bse, m_dask.fe_bse) < 1e-6  # nAGQ = 0: vcov from RX, both paths


def test_dask_argument_errors(client):
    df = simulate(2000, n_groups=20, seed=5)
    ddf = dd.from_pandas(df, npartitions=2)
    with pytest.raises(TypeError, match="weights"):
        interlace.glmer("y ~ x + (1 | g)", ddf, family="binomial", weights=np.ones(len(df)))
    with pytest.raises(ValueError, match="nope"):
        interlace.glmer("y ~ nope + (1 | g)", ddf, family="binomial")
    with pytest.raises(NotImplementedError, match="nAGQ"):
        interlace.glmer("y ~ x + (1 | g)", ddf, family="binomial", nAGQ=5)
    import narwhals as nw

    from interlace.distributed import is_dask_frame

    assert is_dask_frame(ddf) and is_dask_frame(nw.from_native(ddf)) and not is_dask_frame(df)


def test_in_memory_path_does_not_import_dask():
    code = ("import sys, interlace; df = interlace.datasets.load('cbpp'); "
            "interlace.glmer('cbind(incidence, size - incidence) ~ period + (1 | herd)', df, family='binomial'); "
            "print('dask' in sys.modules or 'distributed' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_dask_many_partitions_empty_partition_interaction_group(client):
    """More partitions than the client gathers at once (sums added on the
    workers first), an empty partition, and an interaction grouping factor."""
    df = simulate(12_000, n_groups=40, n_h=6, seed=11)
    df["f"] = df["f"].astype("category")
    chunks = [df.iloc[i * 500:(i + 1) * 500] for i in range(24)] + [df.iloc[:0]]
    ddf = dd.from_map(lambda i: chunks[i], list(range(len(chunks))), meta=df.iloc[:0])
    formula = "y ~ x + f + (1 | g) + (1 | f:h)"
    m_mem = interlace.glmer(formula, df, family="binomial")
    m_dask = interlace.glmer(formula, ddf, family="binomial")
    assert m_dask.optinfo["npartitions"] == 25
    assert_same_fit(m_mem, m_dask)
