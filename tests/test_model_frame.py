"""build_model_frame: frame libraries, caller's data untouched, grammar pieces, FrameSpec on new data."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import interlace.data
from interlace.model_frame import build_model_frame


@pytest.fixture
def df() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 120
    return pd.DataFrame(
        {
            "y": rng.poisson(3.0, n).astype(np.int64),
            "s": rng.binomial(8, 0.3, n),
            "n": np.full(n, 8),
            "x": rng.normal(size=n),
            "z": rng.uniform(1, 2, n),
            "t": rng.uniform(1, 3, n),
            "f": rng.choice(["lo", "mid", "hi"], n),
            "g": rng.integers(1, 13, n),
            "h": rng.choice(["p", "q", "r", "s"], n),
            "unused": ["u"] * n,
        }
    )


def _same(a, b):
    assert a.fe_names == b.fe_names
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.offset, b.offset)
    assert len(a.terms) == len(b.terms)
    for ta, tb in zip(a.terms, b.terms):
        assert (ta.group, ta.vc_name, ta.levels, ta.cnames) == (tb.group, tb.vc_name, tb.levels, tb.cnames)
        np.testing.assert_array_equal(ta.codes, tb.codes)
        np.testing.assert_array_equal(ta.z, tb.z)


FORMULA = "cbind(s, n - s) ~ x * f + log(z) + offset(np.log(t)) + (1 + x | g) + (1 | h) + (1 | g:h)"


def test_pandas_polars_pyarrow_identical(df):
    a = build_model_frame(FORMULA, df, family="binomial")
    b = build_model_frame(FORMULA, pl.from_pandas(df), family="binomial")
    c = build_model_frame(FORMULA, pa.Table.from_pandas(df), family="binomial")
    _same(a, b)
    _same(a, c)


def test_polars_enum_keeps_category_order(df):
    # a polars Enum is an ordered factor (R's contr.poly on its category order),
    # exactly as a pandas ordered Categorical; an unordered Categorical keeps its
    # order with treatment contrasts
    pdf = df.assign(f=pd.Categorical(df["f"], categories=["mid", "lo", "hi"], ordered=True))
    plf = pl.from_pandas(df).with_columns(pl.col("f").cast(pl.Enum(["mid", "lo", "hi"])))
    a = build_model_frame("y ~ f + (1 | g)", pdf, family="poisson")
    b = build_model_frame("y ~ f + (1 | g)", plf, family="poisson")
    assert a.fe_names == ["Intercept", "f[.L]", "f[.Q]"]
    _same(a, b)
    u = build_model_frame("y ~ f + (1 | g)", pdf.assign(f=pdf["f"].cat.as_unordered()), family="poisson")
    assert u.fe_names == ["Intercept", "f[T.lo]", "f[T.hi]"]


def test_caller_frame_unchanged(df):
    before = copy.deepcopy(df)
    dfna = df.copy()
    dfna.loc[3, "x"] = np.nan
    before_na = copy.deepcopy(dfna)
    build_model_frame(FORMULA, df, family="binomial")
    with pytest.warns(UserWarning):
        build_model_frame(FORMULA, dfna, family="binomial")
    pd.testing.assert_frame_equal(df, before)
    pd.testing.assert_frame_equal(dfna, before_na)
    pol = pl.from_pandas(df)
    pol_before = pol.clone()
    build_model_frame(FORMULA, pol, family="binomial")
    assert pol.equals(pol_before)


def test_only_used_columns_converted(df, monkeypatch):
    seen: list[list[str]] = []
    real = interlace.data.to_pandas_columns

    def spy(data, columns, arg="data"):
        cols = list(columns)
        seen.append(cols)
        return real(data, cols, arg)

    monkeypatch.setattr(interlace.data, "to_pandas_columns", spy)
    build_model_frame("y ~ x + (1 | g)", pl.from_pandas(df), family="poisson")
    assert seen and set(seen[0]) == {"y", "x", "g"}


def test_forms_identical(df):
    inline = build_model_frame("y ~ x + (1 | g) + (1 | h)", df, family="poisson")
    _same(inline, build_model_frame("y ~ x", df, family="poisson", groups=["g", "h"]))
    _same(inline, build_model_frame("y ~ x", df, family="poisson", random=["(1 | g)", "(1 | h)"]))
    # random= takes precedence over groups=
    _same(inline, build_model_frame("y ~ x", df, family="poisson", groups="f", random=["(1|g)", "(1|h)"]))


def test_random_terms_grammar(df):
    mf = build_model_frame("y ~ x + (x | g)", df, family="poisson")
    assert mf.terms[0].cnames == ["Intercept", "x"] and mf.terms[0].k == 2
    mf0 = build_model_frame("y ~ x + (0 + x | g)", df, family="poisson")
    assert mf0.terms[0].cnames == ["x"]
    np.testing.assert_array_equal(mf0.terms[0].z[:, 0], df["x"].to_numpy())
    unc = build_model_frame("y ~ x + (1 + x || g)", df, family="poisson")
    assert [(t.lhs, t.vc_name, t.cnames) for t in unc.terms] == [("1", "g", ["Intercept"]), ("0 + x", "g.1", ["x"])]
    nest = build_model_frame("y ~ x + (1 | h/g)", df, family="poisson")
    inter = build_model_frame("y ~ x + (1 | h) + (1 | g:h)", df, family="poisson")
    _same(nest, inter)
    # a:b: only combinations present, labelled "g_level:h_level", first factor slowest.
    t = next(t for t in inter.terms if t.group == "g:h")
    present = sorted({(g, h) for h, g in zip(df["h"], df["g"])})
    assert t.levels == [f"{g}:{h}" for g, h in present]
    labels = [f"{g}:{h}" for h, g in zip(df["h"], df["g"])]
    assert [t.levels[c] for c in t.codes] == labels


def test_factor_on_bar_lhs_expands_indicators(df):
    mf = build_model_frame("y ~ x + (0 + f | g)", df, family="poisson")
    t = mf.terms[0]
    assert t.cnames == ["f[hi]", "f[lo]", "f[mid]"]
    np.testing.assert_array_equal(t.z.sum(axis=1), np.ones(len(df)))


def test_terms_ordered_as_lme4(df):
    # h has 4 levels, g 12, g:h more: lme4 reorders by rev(order(nlevels)).
    mf = build_model_frame("y ~ x + (1 | h) + (1 | g) + (1 | g:h)", df, family="poisson")
    nl = [t.nlevels for t in mf.terms]
    assert nl == sorted(nl, reverse=True)
    assert [t.group for t in mf.terms] == ["g:h", "g", "h"]


def test_grouping_levels_numeric_and_string_sort():
    d = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "g": [10, 9, 10, 100, 9, 100], "s": list("bBaabB")})
    mf = build_model_frame("y ~ 1 + (1 | g) + (1 | s)", d, family="gaussian")
    assert mf.terms[0].levels == ["9", "10", "100"]
    assert mf.terms[1].levels == sorted(["a", "b", "B"])
    # categoricals keep their order and drop unused levels
    d["c"] = pd.Categorical(list("zzyyzy"), categories=["z", "w", "y"])
    mf = build_model_frame("y ~ 1 + (1 | c)", d, family="gaussian")
    assert mf.terms[0].levels == ["z", "y"]


def test_fixed_names_and_intercept_removal(df):
    mf = build_model_frame("y ~ 0 + f + x + (1 | g)", df, family="poisson")
    assert mf.fe_names == ["f[hi]", "f[lo]", "f[mid]", "x"]
    mf = build_model_frame("y ~ x - 1 + (1 | g)", df, family="poisson")
    assert mf.fe_names == ["x"]
    mf = build_model_frame("y ~ I(x ** 2) + f:x + (1 | g)", df, family="poisson")
    assert mf.fe_names[:2] == ["Intercept", "I(x ** 2)"]


def test_responses(df):
    a = build_model_frame("cbind(s, n - s) ~ x + (1 | g)", df, family="binomial")
    np.testing.assert_allclose(a.y, df["s"] / df["n"])
    np.testing.assert_allclose(a.weights, df["n"])
    b = build_model_frame("s / n ~ x + (1 | g)", df, family="binomial", weights="n")
    np.testing.assert_allclose(b.y, a.y)
    np.testing.assert_allclose(b.weights, a.weights)
    c = build_model_frame("log(z) ~ x + (1 | g)", df, family="gaussian")
    np.testing.assert_allclose(c.y, np.log(df["z"]))
    # cbind with prior weights multiplies the trials
    w = np.linspace(1, 2, len(df))
    with pytest.warns(UserWarning, match="non-integer #successes"):  # as R's binomial warns
        d = build_model_frame("cbind(s, n - s) ~ x + (1 | g)", df, family="binomial", weights=w)
    np.testing.assert_allclose(d.weights, w * df["n"])


def test_offsets_add_up(df):
    mf = build_model_frame("y ~ x + offset(log(t)) + (1 | g)", df, family="poisson", offset=df["z"].to_numpy())
    np.testing.assert_allclose(mf.offset, np.log(df["t"]) + df["z"])
    assert "log(t)" not in " ".join(mf.fe_names)
    mf2 = build_model_frame("y ~ x + (1 | g)", df, family="poisson", offset="log(t)")
    mf3 = build_model_frame("y ~ x + (1 | g)", df.assign(lt=np.log(df["t"])), family="poisson", offset="lt")
    np.testing.assert_allclose(mf2.offset, mf3.offset)


def test_disp_and_zi_formulas(df):
    mf = build_model_frame("y ~ x + (1 | g)", df, family="zip", dispformula="~ z", ziformula="~1")
    assert mf.disp_names == ["Intercept", "z"]
    np.testing.assert_array_equal(mf.disp_X[:, 1], df["z"].to_numpy())
    assert mf.zi_names == ["Intercept"] and mf.zi_X.shape == (len(df), 1)
    plain = build_model_frame("y ~ x + (1 | g)", df, family="poisson")
    assert plain.disp_X is None and plain.zi_X is None


def test_missing_rows_dropped_with_warning(df):
    d = df.copy()
    d.loc[[2, 5], "x"] = np.nan
    d.loc[7, "g"] = np.nan
    d.loc[9, "unused"] = None  # not a model column: no effect
    with pytest.warns(UserWarning, match=r"3 row\(s\) with missing values dropped \(columns: x, g\)"):
        mf = build_model_frame("y ~ x + (1 | g)", d, family="poisson")
    assert mf.n == len(df) - 3 and mf.n_dropped == 3
    np.testing.assert_array_equal(mf.row_index, np.setdiff1d(np.arange(len(df)), [2, 5, 7]))
    np.testing.assert_array_equal(mf.y, df["y"].to_numpy()[mf.row_index])
    with pytest.raises(ValueError, match="missing"):
        build_model_frame("y ~ x + (1 | g)", d, family="poisson", missing="raise")


def test_missing_in_weight_array_dropped(df):
    w = np.ones(len(df))
    w[0] = np.nan
    with pytest.warns(UserWarning, match="weights"):
        mf = build_model_frame("y ~ x + (1 | g)", df, family="poisson", weights=w)
    assert mf.n == len(df) - 1


def test_rank_deficient_columns_dropped(df):
    d = df.assign(x2=2.0 * df["x"] + 1.0)
    with pytest.warns(UserWarning, match="fixed-effect model matrix is rank deficient so dropping 1 column / coefficient: x2"):
        mf = build_model_frame("y ~ x + x2 + z + (1 | g)", d, family="poisson")
    assert mf.fe_names == ["Intercept", "x", "z"] and mf.dropped_columns == ["x2"]
    X, _, _ = mf.spec.transform(d)
    np.testing.assert_array_equal(X, mf.X)


def test_scale_warning(df):
    d = df.assign(big=df["x"] * 1e5)
    with pytest.warns(UserWarning, match="very different scales"):
        mf = build_model_frame("y ~ z + big + (1 | g)", d, family="poisson")
    assert any("rescaling" in m for m in mf.messages)


def test_spec_transform_training_and_new_levels(df):
    mf = build_model_frame(FORMULA, df, family="binomial")
    X, blocks, off = mf.spec.transform(df.drop(columns=["s", "n"]))  # response not needed
    np.testing.assert_array_equal(X, mf.X)
    for t, (codes, z) in zip(mf.terms, blocks):
        np.testing.assert_array_equal(codes, t.codes)
        np.testing.assert_array_equal(z, t.z)
    np.testing.assert_allclose(off, mf.offset)
    new = df.iloc[:3].copy()
    new["g"] = [1, 999, 2]
    with pytest.raises(ValueError, match="grouping factor 'g(:h)?'.*999"):
        mf.spec.transform(new)
    X2, blocks2, _ = mf.spec.transform(new, allow_new_levels=True)
    g_codes = next(c for t, (c, _) in zip(mf.terms, blocks2) if t.group == "g")
    assert g_codes[1] == -1 and g_codes[0] >= 0
    bad = df.iloc[:2].copy()
    bad["f"] = ["lo", "unheard"]
    with pytest.raises(ValueError, match="fixed-effect factor"):
        mf.spec.transform(bad)


def test_spec_keeps_stateful_transforms(df):
    mf = build_model_frame("y ~ center(x) + (1 | g)", df, family="poisson")
    X, _, _ = mf.spec.transform(df.iloc[:5])
    np.testing.assert_allclose(X[:, 1], df["x"].to_numpy()[:5] - df["x"].mean())


def test_spec_offset_argument_on_new_data(df):
    mf = build_model_frame("y ~ x + (1 | g)", df, family="poisson", offset="log(t)")
    _, _, off = mf.spec.transform(df.iloc[:4])
    np.testing.assert_allclose(off, np.log(df["t"].to_numpy()[:4]))
    _, _, off = mf.spec.transform(df.iloc[:4], offset=np.ones(4))
    np.testing.assert_allclose(off, np.ones(4))


def test_no_warnings_for_clean_model(df):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_model_frame(FORMULA, df, family="binomial")


def test_aliased_columns_keep_earlier_like_r():
    from interlace.formula.fixed import aliased_columns

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=50), rng.normal(size=50)
    X = np.column_stack([np.ones(50), a, b, a + b, np.zeros(50), 3 * a - b + 2])
    # R: qr(X)$pivot moves columns 4, 5, 6 (1-based) to the end; rank 3.
    assert aliased_columns(X) == [3, 4, 5]
    assert aliased_columns(X[:, [0, 3, 1, 2]]) == [3]


def test_lme4_term_order_reverses_ties_when_reordering(df):
    # lme4's mkReTrms uses rev(order(nlevels)) when any later term has more levels:
    # the two g terms (tied) come out reversed, and VarCorr names follow that order.
    mf = build_model_frame("y ~ x + (1 | h) + (0 + x | h) + (1 | g)", df, family="poisson")
    assert [(t.group, t.lhs, t.vc_name) for t in mf.terms] == [
        ("g", "1", "g"),
        ("h", "0 + x", "h"),
        ("h", "1", "h.1"),
    ]


def test_polars_categorical_sorted_like_strings(df):
    plf = pl.from_pandas(df).with_columns(pl.col("f").cast(pl.Categorical))
    a = build_model_frame("y ~ f + (1 | h)", df, family="poisson")
    b = build_model_frame("y ~ f + (1 | h)", plf, family="poisson")
    _same(a, b)
    assert a.fe_names == ["Intercept", "f[T.lo]", "f[T.mid]"]


def test_factor_response_for_binomial(df):
    d = df.assign(ok=pd.Categorical(np.where(df["y"] > 2, "yes", "no"), categories=["no", "yes"]))
    mf = build_model_frame("ok ~ x + (1 | g)", d, family="binomial")
    np.testing.assert_array_equal(mf.y, (df["y"] > 2).to_numpy(dtype=float))
