"""The model frame's fast path (interlace/formula/fastframe.py) builds exactly what the
general path (formulaic, pandas) builds, and hands everything else to it."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.formula import fastframe
from interlace.formula.fastframe import fast_model_frame
from interlace.model_frame import ModelFrame, build_model_frame


def _general(formula, data, **kw):
    fastframe.FAST_PATH["enabled"] = False
    try:
        return build_model_frame(formula, data, **kw)
    finally:
        fastframe.FAST_PATH["enabled"] = True


def _frame():
    rng = np.random.default_rng(3)
    n = 60
    return pd.DataFrame({
        "y": rng.poisson(3.0, n).astype(np.int64),
        "yf": rng.normal(size=n),
        "s": rng.integers(0, 6, n),
        "size": np.full(n, 6, dtype=np.int64),
        "x": rng.normal(size=n),
        "xi": rng.integers(0, 20, n),
        "f": pd.Categorical(rng.choice(["b", "a", "c"], n), categories=["c", "a", "b"]),
        "h": pd.Categorical(rng.choice(["u", "v"], n)),
        "fi": pd.Categorical(rng.choice([3, 1, 2], n), categories=[1, 2, 3]),
        "g": pd.Categorical(rng.choice([f"g{i}" for i in range(8)], n)),
        "gi": rng.integers(100, 110, n),
        "w": rng.uniform(0.5, 2.0, n),
        "off": rng.normal(scale=0.1, size=n),
    })


CBPP = interlace.datasets.load("cbpp")
SLEEP = interlace.datasets.load("sleepstudy")
GROUSE = interlace.datasets.load("grouseticks")
DF = _frame()

# (formula, data, keyword arguments): each must take the fast path
FAST = [
    ("cbind(incidence, size - incidence) ~ period + (1 | herd)", CBPP, dict(family="binomial")),
    ("cbind(incidence, size - incidence) ~ 0 + period + (1 | herd)", CBPP, dict(family="binomial")),
    ("cbind(incidence, size-incidence) ~ 1 + (1 | herd)", CBPP, dict(family="binomial")),
    ("prop ~ period + (1 | herd)", CBPP, dict(family="binomial", weights="size")),
    ("Reaction ~ Days + (Days | Subject)", SLEEP, dict(family="gaussian")),
    ("Reaction ~ Days + (Days || Subject)", SLEEP, dict(family="gaussian")),
    ("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", SLEEP, dict(family="gaussian")),
    ("Reaction ~ Days + (Days | Subject)", SLEEP, dict(family="gaussian", dispformula="~1")),
    ("Reaction ~ 1 + Days + (1 + Days | Subject)", SLEEP, dict(family="gaussian")),
    ("TICKS ~ YEAR + HEIGHT_c + (1 | LOCATION)", GROUSE, dict(family="negativebinomial")),
    ("TICKS ~ YEAR + HEIGHT_c + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", GROUSE, dict(family="poisson")),
    ("y ~ x + f + (1 | g)", DF, dict(family="poisson")),
    ("y ~ f + x + h + xi + (1 | g)", DF, dict(family="poisson")),
    ("y ~ 0 + f + h + (1 | g)", DF, dict(family="poisson")),
    ("y ~ 0 + x + (1 | g)", DF, dict(family="poisson")),
    ("y ~ x + x + f + (1 | g)", DF, dict(family="poisson")),
    ("y ~ fi + x + (1 | gi)", DF, dict(family="poisson")),
    ("y ~ x + (1 | gi) + (1 | g)", DF, dict(family="poisson")),
    ("y ~ x + (1 | fi)", DF, dict(family="poisson")),  # integer categories as a grouping factor
    ("y ~ x + (x + xi | g)", DF, dict(family="poisson")),
    ("y ~ x + (0 + x | g)", DF, dict(family="poisson")),
    ("y ~ x + (1 | g)", DF, dict(family="poisson", offset="off")),
    ("y ~ x + (1 | g)", DF, dict(family="poisson", offset=DF["off"].to_numpy())),
    ("y ~ x + (1 | g)", DF, dict(family="poisson", weights=DF["w"].to_numpy())),
    ("y ~ x + (1 | g)", DF, dict(family="poisson", weights="w", offset="off")),
    ("y ~ x + (1 | g)", DF, dict(family="poisson", ziformula="~1")),
    ("y ~ x + (1 | g)", DF, dict(family="poisson", ziformula="~ 1", dispformula="~1")),
    ("yf ~ x + f + (1 | g)", DF, dict(family="gaussian", weights="w")),
    ("cbind(s, size - s) ~ x + (1 | g)", DF, dict(family="binomial")),
    ("cbind(s, 2 * size - s - 1 + 1 - size) ~ x + h + (1 | g)", DF, dict(family="binomial")),
    ("cbind(s, xi) ~ x + (1 | g)", DF, dict(family="binomial")),
]

# (formula, data, keyword arguments): each must fall back to the general path
SLOW = [
    ("y ~ x * f + (1 | g)", DF, dict(family="poisson")),
    ("y ~ log(x + 5) + (1 | g)", DF, dict(family="poisson")),
    ("y ~ -1 + x + f + (1 | g)", DF, dict(family="poisson")),  # '- 1': formulaic reads it
    ("y ~ x + offset(off) + (1 | g)", DF, dict(family="poisson")),
    ("y ~ x + (1 | g:h)", DF, dict(family="poisson")),
    ("y ~ x + (f | g)", DF, dict(family="poisson")),
    ("y ~ x + diag(1 + x | g)", DF, dict(family="poisson")),
    ("y ~ x + (1 | g)", DF, dict(family="poisson", groups="h")),
    ("y ~ x + (1 | g)", DF, dict(family="poisson", dispformula="~x")),
    ("y ~ x + (1 | g)", DF.assign(x=DF.x.where(DF.index % 7 != 3)), dict(family="poisson")),  # missing values
    ("y ~ x + f + (1 | g)", DF.assign(f=DF.f.cat.add_categories(["zz"])), dict(family="poisson")),  # unused level
    ("y ~ x + f + (1 | g)", DF.assign(f=DF.f.astype(str)), dict(family="poisson")),  # strings
    ("y ~ x + f + (1 | g)", DF.assign(f=DF.f.astype(object)), dict(family="poisson")),
    ("y ~ x + f + (1 | g)", DF.assign(f=DF.f.cat.as_ordered()), dict(family="poisson")),  # contr.poly
    ("y ~ x + (1 | g)", DF.assign(x=DF.x * 1e6), dict(family="poisson")),  # scale warning
    ("y ~ x + b + (1 | g)", DF.assign(b=DF.x > 0), dict(family="poisson")),  # a boolean column
    ("y ~ x + x2 + (1 | g)", DF.assign(x2=2 * DF.x), dict(family="poisson")),  # rank deficient
    ("yf ~ x + (1 | g)", DF, dict(family="poisson")),  # non-integer counts (a warning)
]


def _assert_same(a, b):
    np.testing.assert_array_equal(a.y, b.y)
    assert a.y.dtype == b.y.dtype and a.X.dtype == b.X.dtype
    np.testing.assert_array_equal(a.X, b.X)
    assert a.X.flags.c_contiguous and b.X.flags.c_contiguous
    assert a.fe_names == b.fe_names
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.offset, b.offset)
    for f in ("response_name", "formula", "n_dropped", "dropped_columns", "messages", "disp_names", "zi_names"):
        assert getattr(a, f) == getattr(b, f), f
    np.testing.assert_array_equal(a.row_index, b.row_index)
    for f in ("disp_X", "zi_X"):
        if getattr(b, f) is None:
            assert getattr(a, f) is None
        else:
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert len(a.terms) == len(b.terms) and not a.zi_terms and not a.disp_terms
    for s, t in zip(a.terms, b.terms):
        assert (s.group, s.vc_name, s.levels, s.cnames, s.lhs) == (t.group, t.vc_name, t.levels, t.cnames, t.lhs)
        assert s.codes.dtype == t.codes.dtype
        np.testing.assert_array_equal(s.codes, t.codes)
        np.testing.assert_array_equal(s.z, t.z)
        assert type(s.cov) is type(t.cov)
    sa, sb = a.spec, b.spec
    for f in ("formula", "fixed", "keep_columns", "fe_names", "formula_offsets", "offset_expr", "offset_columns",
              "columns"):
        assert getattr(sa, f) == getattr(sb, f), f
    assert type(sa.fixed_spec) is type(sb.fixed_spec)
    assert sa.fixed_spec.column_names == sb.fixed_spec.column_names
    assert sa.context.caller == sb.context.caller
    for s, t in zip(sa.terms, sb.terms):
        assert (s.group, s.parts, s.levels, s.lhs, s.cnames) == (t.group, t.parts, t.levels, t.lhs, t.cnames)
        assert s.lhs_spec is None and t.lhs_spec is None


@pytest.mark.parametrize("formula,data,kw", FAST, ids=[f"{f} {sorted(k)}" for f, _, k in FAST])
def test_fast_path_equals_general_path(formula, data, kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fast_model_frame(formula, data, **kw)
        assert out is not None, "expected the fast path"
        fast = ModelFrame(**out[0])
        general = _general(formula, data, **kw)
    _assert_same(fast, general)
    # predict's design on new rows (the lazily built formulaic spec) is the same too
    new = data.iloc[::3].reset_index(drop=True)
    off = {"offset": "off"} if kw.get("offset") is not None else {}
    Xa, ba, oa = fast.spec.transform(new, **off)
    Xb, bb, ob = general.spec.transform(new, **off)
    np.testing.assert_array_equal(Xa, Xb)
    np.testing.assert_array_equal(oa, ob)
    for (ca, za), (cb, zb) in zip(ba, bb):
        np.testing.assert_array_equal(ca, cb)
        np.testing.assert_array_equal(za, zb)
    for side in ("disp_spec", "zi_spec"):
        sa, sb = getattr(fast.spec, side), getattr(general.spec, side)
        assert (sa is None) == (sb is None)
        if sa is not None:
            np.testing.assert_array_equal(np.asarray(sa.get_model_matrix(new)), np.asarray(sb.get_model_matrix(new)))
    # the frame pickles (the lazy spec keeps its own copy of the columns)
    again = pickle.loads(pickle.dumps(fast))
    np.testing.assert_array_equal(again.spec.transform(new, **off)[0], Xb)


@pytest.mark.parametrize("formula,data,kw", SLOW, ids=[f"{f} {sorted(k)}" for f, _, k in SLOW])
def test_general_path_for_everything_else(formula, data, kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert fast_model_frame(formula, data, **kw) is None


def test_fast_frame_does_not_alias_the_callers_columns():
    df = _frame()
    mf = build_model_frame("y ~ x + f + (1 | g)", df, family="poisson")
    new = df.iloc[:5].copy()
    before = mf.spec.transform(new)[0].copy()
    df.loc[0, "x"] = 1e3  # the caller edits the frame after the fit
    df["f"] = df["f"].cat.rename_categories(["C", "A", "B"])
    np.testing.assert_array_equal(mf.spec.transform(new)[0], before)
    assert mf.X[0, 1] != 1e3


def test_fit_identical_with_and_without_fast_path():
    fm = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    a = interlace.glmer(fm, CBPP, family="binomial")
    fastframe.FAST_PATH["enabled"] = False
    try:
        b = interlace.glmer(fm, CBPP, family="binomial")
    finally:
        fastframe.FAST_PATH["enabled"] = True
    assert a.llf == b.llf
    np.testing.assert_array_equal(a.fe_params.to_numpy(), b.fe_params.to_numpy())
    pa = a.predict(CBPP.iloc[:7])
    pb = b.predict(CBPP.iloc[:7])
    np.testing.assert_array_equal(np.asarray(pa), np.asarray(pb))


def test_errors_come_from_the_general_path():
    with pytest.raises(ValueError, match="not a column"):
        build_model_frame("y ~ x + (1 | nope)", DF, family="poisson")
    with pytest.raises(ValueError, match="weights"):
        build_model_frame("y ~ x + (1 | g)", DF, family="poisson", weights=-DF["w"].to_numpy())
    with pytest.raises(ValueError):
        build_model_frame("y ~ x + (1 | g)", DF, family="poisson", weights=np.ones(3))
