"""Identical rows collapsed to weighted unique rows (issue 26 item 4, interlace/collapse.py):
the collapsed fit is the uncollapsed fit (logLik with R's constants, fixed effects, SEs,
VarCorr), and fitted values, residuals and predictions stay per original row."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
import interlace.collapse as collapse


def _binary(n=6000, G=60, seed=3):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, G, n)
    h = rng.integers(0, 8, n)
    x = rng.integers(0, 3, n).astype(float)
    f = rng.choice(["a", "b", "c"], n)
    eta = -0.3 + 0.5 * x + (f == "b") * 0.4 + rng.normal(0, 0.8, G)[g] + rng.normal(0, 0.5, 8)[h]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "f": f, "g": [f"g{v}" for v in g], "h": [f"h{v}" for v in h],
                         "size": rng.integers(1, 4, n), "expo": rng.choice([1.0, 2.0, 4.0], n)})


def _fit(formula, df, family, collapsed, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if collapsed:
            return interlace.glmer(formula, df, family=family, **kw)
        old = collapse.MIN_ROWS
        collapse.MIN_ROWS = 10 ** 12  # nothing is collapsed
        try:
            return interlace.glmer(formula, df, family=family, **kw)
        finally:
            collapse.MIN_ROWS = old


def _cases():
    df = _binary()
    rng = np.random.default_rng(8)
    df["succ"] = rng.binomial(df["size"], 0.4)
    df["fail"] = df["size"] - df["succ"]
    df["count"] = rng.poisson(np.exp(0.2 + 0.3 * df["x"] + np.log(df["expo"])))
    return [
        ("y ~ x + f + (1 | g)", df, "binomial", {}),
        ("y ~ x + (1 | g) + (1 | h)", df, "binomial", {}),
        ("y ~ x + (x | g)", df, "binomial", {}),
        ("cbind(succ, fail) ~ x + (1 | g)", df, "binomial", {}),
        ("y ~ x + (1 | g)", df, interlace.family("binomial", link="probit"), {}),
        ("count ~ x + f + offset(np.log(expo)) + (1 | g)", df, "poisson", {}),
    ]


@pytest.mark.parametrize("case", range(6))
def test_collapsed_fit_equals_the_uncollapsed_fit(case):
    formula, df, family, kw = _cases()[case]
    a = _fit(formula, df, family, True, **kw)
    b = _fit(formula, df, family, False, **kw)
    assert a.optinfo.get("collapsed_rows", len(df)) < len(df) / 2  # it did collapse
    assert "collapsed_rows" not in b.optinfo
    assert a.nobs == b.nobs == len(df)
    assert a.llf == pytest.approx(b.llf, abs=1e-8 * abs(b.llf))
    np.testing.assert_allclose(a.fe_params.to_numpy(), b.fe_params.to_numpy(), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(a.fe_bse.to_numpy(), b.fe_bse.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(a.theta.to_numpy(), b.theta.to_numpy(), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(a.variance_components.to_numpy(dtype=float),
                               b.variance_components.to_numpy(dtype=float), rtol=1e-7, atol=1e-10)
    # per original row: fitted values, residuals, predictions
    assert len(a.fittedvalues) == len(df)
    np.testing.assert_allclose(a.fittedvalues.to_numpy(), b.fittedvalues.to_numpy(), rtol=1e-7, atol=1e-12)
    for kind in ("deviance", "pearson", "response"):
        np.testing.assert_allclose(np.asarray(a.resid(kind)), np.asarray(b.resid(kind)), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.asarray(a.predict(df.iloc[:50])), np.asarray(b.predict(df.iloc[:50])),
                               rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(a.deviance, b.deviance, rtol=1e-8)


def test_continuous_covariates_are_not_collapsed():
    df = _binary()
    df["z"] = np.random.default_rng(0).normal(size=len(df))
    m = _fit("y ~ z + (1 | g)", df, "binomial", True)
    assert "collapsed_rows" not in m.optinfo


def test_non_integer_binomial_successes_are_not_collapsed():
    df = _binary()
    df["p"] = np.where(df["y"] > 0, 0.7, 0.2)
    m = _fit("p ~ x + (1 | g)", df, "binomial", True)
    assert "collapsed_rows" not in m.optinfo
