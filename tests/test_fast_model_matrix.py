"""The fast fixed-effects matrix (formula/fixed.py::fast_fixed) against formulaic itself.

For formulas of plain terms the fast path must give formulaic's X bit for bit
and its column names; anything else must fall back to formulaic. The lazy
``ModelSpec`` must replay formulaic on new data exactly (levels, the unseen
level error), and the pandas fast path of ``to_pandas_columns`` must give what
the narwhals route gives.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from interlace.data import frame_columns, frame_len, missing_mask, to_pandas_columns
from interlace.formula.fixed import LazyModelSpec, build_fixed, fast_fixed
from interlace.model_frame import build_model_frame

CTX = {"np": np, "numpy": np}


def formulaic_xy(text: str, frame: pd.DataFrame):
    from formulaic import model_matrix

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        mm = model_matrix(text, frame, na_action="ignore", context=CTX)
    X = np.asarray(mm, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] != len(frame):
        X = np.broadcast_to(X, (len(frame), X.shape[1])).copy()
    return X, [str(c) for c in mm.columns], mm.model_spec


def assert_same_as_formulaic(text: str, frame: pd.DataFrame):
    fast = fast_fixed(text, frame, CTX)
    assert fast is not None, f"{text!r} should take the fast path"
    X, names = fast
    Xf, namesf, _ = formulaic_xy(text, frame)
    assert names == namesf, text
    assert X.dtype == np.float64 and X.flags.c_contiguous
    assert X.shape == Xf.shape, text
    # bit-identical, NaN in the same places
    assert np.array_equal(X.view(np.uint64), np.ascontiguousarray(Xf).view(np.uint64)), text
    # and build_fixed returns the same, with a spec that knows the names
    Xb, namesb, spec = build_fixed(text, frame, CTX)
    assert isinstance(spec, LazyModelSpec)
    assert namesb == namesf and np.array_equal(Xb.view(np.uint64), X.view(np.uint64))
    assert list(spec.column_names) == namesf
    return X, names


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 40
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "i": rng.integers(-5, 50, n),
            "u": rng.integers(0, 9, n).astype(np.uint16),
            "f32": rng.normal(size=n).astype(np.float32),
            "f": pd.Series(rng.choice(["b", "a", "c", "B", "10", "9", "é", ""], n), dtype="str"),
            "o": pd.Series(rng.choice(["zz", "yy", "x"], n).tolist(), dtype=object),
            "g": pd.Categorical(rng.choice(["lo", "mid", "hi"], n), categories=["mid", "hi", "lo", "unused"]),
            "h": pd.Categorical(rng.choice([3, 1, 2], n)),
            # a numeric column named like a level of f, and levels that look like names
            "a": rng.normal(size=n),
            "k": pd.Series(rng.choice(["x", "f", "Intercept"], n), dtype="str"),
        }
    )


FORMULAS = [
    "1", "0", "-1", "x", "1 + x", "x + 1", "0 + x", "-1 + x", "x + 0", "x + -1", "1 + 0 + x", "0 + 1 + x",
    "x + i", "x + x", "i + u + f32", "f", "0 + f", "-1 + f", "f + x", "x + f", "0 + x + f", "0 + f + x",
    "f + g", "0 + f + g", "g + 0 + f", "0 + g", "g", "h", "0 + h", "o", "0 + o + g", "f + f", "a + f", "k",
    "f + g + o + h + x + i", "0 + x + i + g + h", "  x   +   f  ",
]


@pytest.mark.parametrize("text", FORMULAS)
def test_pandas_frame_identical(frame, text):
    assert_same_as_formulaic(text, frame)


def test_cbpp_like_period():
    """cbpp's period: a categorical with string categories '1'..'4'."""
    df = pd.DataFrame({"period": pd.Categorical(list("12341234"), categories=["1", "2", "3", "4"]),
                       "y": np.arange(8.0)})
    X, names = assert_same_as_formulaic("period", df)
    assert names == ["Intercept", "period[T.2]", "period[T.3]", "period[T.4]"]


def test_unused_and_reordered_categories(frame):
    """Unused categories stay (as formulaic keeps them); the dtype's order is the level order."""
    X, names = assert_same_as_formulaic("g", frame)
    assert names == ["Intercept", "g[T.hi]", "g[T.lo]", "g[T.unused]"]
    assert not X[:, 3].any()


def test_single_level_categorical(frame):
    df = frame.assign(one=pd.Series(["q"] * len(frame), dtype="str"))
    assert_same_as_formulaic("x + one", df)
    assert_same_as_formulaic("0 + one + x", df)


def test_missing_values_in_columns(frame):
    """NaN stays NaN in a numeric column and gives an all-zero row for a categorical."""
    df = frame.copy()
    df.loc[[2, 5], "x"] = np.nan
    df["f"] = df["f"].where(df.index != 7)
    df["o"] = df["o"].astype(object).where(df.index != 4)
    df["g"] = df["g"].where(df.index != 9)
    for text in ("x + f", "0 + f + g", "o + x", "0 + o"):
        assert_same_as_formulaic(text, df)


@pytest.mark.parametrize("kind", ["polars", "pyarrow"])
def test_polars_pyarrow_input(frame, kind):
    src = frame.drop(columns=["g", "h"])
    native = pl.from_pandas(src) if kind == "polars" else pa.Table.from_pandas(src, preserve_index=False)
    df = to_pandas_columns(native, list(src.columns))
    for text in ("x + f", "0 + f + o + i", "k + a + u"):
        assert_same_as_formulaic(text, df)


def test_polars_enum_and_categorical():
    n = 12
    df = pl.DataFrame({
        "e": pl.Series(["lo", "hi", "mid"] * 4, dtype=pl.Enum(["mid", "lo", "hi"])),
        "c": pl.Series(["q", "p", "r", "p"] * 3, dtype=pl.Categorical),
        "x": np.linspace(0.0, 1.0, n),
    })
    pdf = to_pandas_columns(df, ["e", "c", "x"])
    # an Enum is an ordered factor: R's contr.poly, built by formulaic (not the fast path)
    assert pdf["e"].cat.ordered and fast_fixed("e + x", pdf, CTX) is None
    assert build_fixed("e + x", pdf, CTX)[1] == ["Intercept", "e[.L]", "e[.Q]", "x"]
    pdf["e"] = pdf["e"].cat.as_unordered()
    for text in ("e + x", "0 + e + c", "c"):
        assert_same_as_formulaic(text, pdf)


FALLBACK = [
    "x:f", "x * f", "f:g", "C(f)", "log(i + 100)", "I(x ** 2)", "np.log(i + 100)", "`x`", "x - 1", "(x + f)",
    "b", "nx", "x +", "x + 2", "center(x)", "x ** 2", "dt", "fl",
]


@pytest.mark.parametrize("text", FALLBACK)
def test_fallback_taken(frame, text):
    df = frame.assign(
        b=np.arange(len(frame)) % 2 == 0,  # bool: formulaic has its own rules
        s=pd.array(["p", "q"] * (len(frame) // 2), dtype="string"),  # pandas "string" (pd.NA) dtype
        nx=pd.array(np.arange(len(frame)), dtype="Int64"),  # nullable integer
        dt=pd.Categorical(pd.date_range("2020-01-01", periods=len(frame))),  # non-string categories
        fl=pd.Categorical(np.arange(len(frame)) % 3 + 0.5),  # float categories
    )
    assert fast_fixed(text, df, CTX) is None
    try:
        Xf, namesf, specf = formulaic_xy(text, df)
    except Exception:
        with pytest.raises(ValueError):
            build_fixed(text, df, CTX)
        return
    X, names, spec = build_fixed(text, df, CTX)
    assert not isinstance(spec, LazyModelSpec)
    assert names == namesf and np.array_equal(X, Xf, equal_nan=True)


def test_object_column_of_non_strings_falls_back():
    df = pd.DataFrame({"m": pd.Series([1, "a", 2.5, "b"], dtype=object), "x": np.arange(4.0)})
    assert fast_fixed("x + m", df, CTX) is None


def test_context_names_fall_back():
    df = pd.DataFrame({"np": np.arange(4.0)})
    assert fast_fixed("np", df, CTX) is None


# --------------------------------------------------------------------------- the lazy spec


def test_lazy_spec_replays_formulaic(frame):
    train = frame.iloc[:30].reset_index(drop=True)
    new = frame.iloc[30:].reset_index(drop=True)
    text = "x + f + g + i"
    _, _, lazy = build_fixed(text, train, CTX)
    assert isinstance(lazy, LazyModelSpec) and lazy._spec is None
    _, _, real = formulaic_xy(text, train)
    got = np.asarray(lazy.get_model_matrix(new), dtype=np.float64)
    want = np.asarray(real.get_model_matrix(new), dtype=np.float64)
    assert np.array_equal(got, want)
    assert lazy._frame is None  # released once formulaic has run
    assert set(lazy.required_variables) == set(real.required_variables)
    assert tuple(lazy.column_names) == tuple(real.column_names)


def test_lazy_spec_unseen_level_warns(frame):
    from formulaic.errors import DataMismatchWarning

    _, _, lazy = build_fixed("x + f", frame, CTX)
    new = frame.head(3).assign(f=pd.Series(["never", "a", "b"], dtype="str"))
    with pytest.warns(DataMismatchWarning):
        lazy.get_model_matrix(new)


def test_lazy_spec_pickles(frame):
    _, _, lazy = build_fixed("x + f", frame, CTX)
    back = pickle.loads(pickle.dumps(lazy))
    assert back.column_names == lazy.column_names
    assert np.array_equal(np.asarray(back.get_model_matrix(frame.head(4)), float),
                          np.asarray(lazy.get_model_matrix(frame.head(4)), float))
    again = pickle.loads(pickle.dumps(lazy))  # after the spec was built
    assert again.column_names == lazy.column_names


def test_model_frame_predict_paths(frame):
    """Fit-time model frame through the fast path; transform on new data and an unseen level."""
    df = frame.assign(y=np.arange(len(frame)) % 5, grp=np.arange(len(frame)) % 6)
    mf = build_model_frame("y ~ x + f + (1 | grp)", df, family="poisson")
    assert isinstance(mf.spec.fixed_spec, LazyModelSpec)
    X, _, _ = mf.spec.transform(df)
    assert np.array_equal(X, mf.X)
    bad = df.head(2).assign(f=pd.Series(["never", "a"], dtype="str"))
    with pytest.raises(ValueError, match="not seen in training"):
        mf.spec.transform(bad)


def test_model_frame_na_rows_dropped(frame):
    """Rows dropped for NA before the matrix: the fast X equals formulaic's on the kept rows."""
    df = frame.assign(y=np.arange(len(frame)) % 5, grp=np.arange(len(frame)) % 6)
    df.loc[[1, 4], "x"] = np.nan
    df["f"] = df["f"].where(df.index != 8)
    with pytest.warns(UserWarning, match="missing values dropped"):
        mf = build_model_frame("y ~ x + f + g + (1 | grp)", df, family="poisson")
    kept = df.drop(index=[1, 4, 8]).reset_index(drop=True)
    kept["g"] = kept["g"].cat.remove_unused_categories()
    Xf, namesf, _ = formulaic_xy("x + f + g", kept)
    assert mf.fe_names == namesf
    assert np.array_equal(mf.X, Xf)
    assert mf.row_index.tolist() == [i for i in range(len(df)) if i not in (1, 4, 8)]


# --------------------------------------------------------------------------- pandas input fast path


def _narwhals_route(data, cols):
    """The narwhals conversion, as to_pandas_columns did it for every input."""
    import narwhals as nw

    sub = nw.from_native(data, eager_only=True).select(cols)
    return sub.to_pandas().reset_index(drop=True).copy()


def test_pandas_columns_same_as_narwhals(frame):
    df = frame.assign(s=pd.array(["p", "q"] * (len(frame) // 2), dtype="string"),
                      nx=pd.array(np.arange(len(frame)), dtype="Int64"),
                      b=np.arange(len(frame)) % 3 == 0)
    df.index = pd.Index(np.arange(len(df))[::-1] * 3 + 7, name="row")  # not a RangeIndex
    df.columns.name = "vars"
    cols = ["f", "x", "g", "s", "nx", "b", "o", "h"]
    before = df.copy()
    got = to_pandas_columns(df, cols)
    want = _narwhals_route(df, cols)
    pd.testing.assert_frame_equal(got, want)
    assert isinstance(got.index, pd.RangeIndex)
    got["x"] = 0.0  # our copy: the caller's frame is untouched
    got.loc[0, "f"] = "zzz"
    pd.testing.assert_frame_equal(df, before)
    assert frame_columns(df) == list(df.columns) and frame_len(df) == len(df)


def test_pandas_columns_errors():
    df = pd.DataFrame({"a": [1.0], "b": [2.0]})
    with pytest.raises(ValueError, match="column\\(s\\) not found in data: c"):
        to_pandas_columns(df, ["a", "c"])
    with pytest.raises(TypeError, match="must be a data frame"):
        frame_columns([1, 2])
    dup = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(Exception):
        frame_columns(dup)
    assert list(to_pandas_columns(df, []).columns) == [] and len(to_pandas_columns(df, [])) == 1


def test_missing_mask_all_dtypes(frame):
    df = frame.assign(nx=pd.array([1, None] * (len(frame) // 2), dtype="Int64"))
    df.loc[3, "x"] = np.nan
    df["f"] = df["f"].where(df.index != 5)
    df["g"] = df["g"].where(df.index != 6)
    mask, cols = missing_mask(df)
    want = df.isna().to_numpy().any(axis=1)
    assert np.array_equal(mask, want)
    assert cols == [c for c in df.columns if df[c].isna().any()]


def test_model_frame_does_not_alias_caller_frame():
    """Arrays of the model frame never share memory with the caller's columns."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"y": rng.normal(size=30), "x": rng.normal(size=30), "g": np.arange(30) % 5})
    mf = build_model_frame("y ~ x + (x | g)", df, family="gaussian")
    y0, X0, z0 = mf.y.copy(), mf.X.copy(), mf.terms[0].z.copy()
    df.loc[0, "y"] = 1e6
    df.loc[0, "x"] = 1e6
    df["y"].to_numpy()  # (a no-op read)
    assert np.array_equal(mf.y, y0) and np.array_equal(mf.X, X0) and np.array_equal(mf.terms[0].z, z0)
    for arr in (mf.y, mf.X, mf.terms[0].z):
        assert not np.shares_memory(arr, df["y"].to_numpy()) and not np.shares_memory(arr, df["x"].to_numpy())


# --------------------------------------------------------------------------- result objects


def _reference_varcorr(re, theta, scale, residual):
    """The row-by-row VarCorr frame (the construction build.py used before its column fast path)."""
    rows = []
    for j, lam in enumerate(re.lambdas(theta)):
        term = re.terms[j]
        cov = scale * (lam @ lam.T)
        sd = np.sqrt(np.diag(cov))
        for a in range(term.k):
            rows.append((term.vc_name, term.cnames[a], None, cov[a, a], sd[a]))
        for b in range(term.k):
            for a in range(b + 1, term.k):
                den = sd[a] * sd[b]
                rows.append((term.vc_name, term.cnames[b], term.cnames[a], cov[a, b],
                             cov[a, b] / den if den > 0 else np.nan))
    if residual:
        rows.append(("Residual", None, None, scale, np.sqrt(scale)))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])


def _reference_variance_components(vc):
    out = {}
    var_rows = vc[vc["var2"].isna()]
    for _, row in var_rows.iterrows():
        single = int((var_rows["grp"] == row["grp"]).sum()) == 1
        out[row["grp"] if single else f"{row['grp']}:{row['var1']}"] = row["vcov"]
    return pd.Series(out, name="variance_components", dtype=float)


RESULT_MODELS = [
    ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial"),
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", "gaussian"),
    ("sleepstudy", "Reaction ~ Days + (Days || Subject)", "gaussian"),
    ("sleepstudy", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "poisson"),
]


@pytest.mark.parametrize("data,formula,family", RESULT_MODELS)
def test_result_tables_same_as_rowwise(data, formula, family):
    import interlace
    from interlace.results.build import group_frames, variance_components, varcorr_frame

    df = interlace.datasets.load(data)
    if family == "poisson":
        df = df.assign(Reaction=np.round(df["Reaction"]).astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = interlace.glmer(formula, df, family=family)
    re = m.objective.re
    theta = np.asarray(m.theta, dtype=float)
    for scale, residual in ((1.0, False), (2.5, True), (m.scale, m._is_lmm)):
        got = varcorr_frame(re, theta, scale, residual)
        want = _reference_varcorr(re, theta, scale, residual)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        pd.testing.assert_series_equal(variance_components(got), _reference_variance_components(want),
                                       check_exact=True)
    pd.testing.assert_frame_equal(m.varcorr, _reference_varcorr(re, theta, m.scale, m._is_lmm), check_exact=True)
    pd.testing.assert_series_equal(m.variance_components, _reference_variance_components(m.varcorr),
                                   check_exact=True)
    # shared level/column labels give the same frames as fresh ones, and independent Index objects
    b = re.u_to_b(theta, m.objective.u)
    labels: dict = {}
    first, second = group_frames(re, b, labels), group_frames(re, b, labels)
    for g, frame_ in group_frames(re, b).items():
        pd.testing.assert_frame_equal(first[g], frame_, check_exact=True)
        pd.testing.assert_frame_equal(second[g], frame_, check_exact=True)
        assert first[g].index is not second[g].index and first[g].index.name == g
    assert m.fe_params.index is not m.fe_bse.index and m.vcov.index is not m.vcov.columns
    assert list(m.vcov.index) == list(m.fe_params.index) == list(m.fe_bse.index) == list(m.model_frame.fe_names)


def test_unusual_names():
    df = pd.DataFrame({"é": [1.0, 2, 3], "_x": [1.0, 2, 4], "x1": [3.0, 1, 2], "Intercept": [5.0, 6, 7],
                       "match": [1.0, 0, 1], "ñf": ["a", "b", "c"]})
    for text in ("é", "_x + x1", "match + ñf", "0 + ñf"):
        assert_same_as_formulaic(text, df)
    # formulaic merges a column named Intercept with its intercept: left to formulaic
    assert fast_fixed("Intercept", df) is None and fast_fixed("0 + Intercept + x1", df) is None


def test_ordered_categorical():
    """An ordered categorical gets R's contr.poly (formulaic path, RMaterializer);
    without an intercept it spans it with indicators, as R codes any factor."""
    df = pd.DataFrame({"o": pd.Categorical(list("abcab"), categories=list("cba"), ordered=True),
                       "x": np.arange(5.0)})
    assert fast_fixed("o + x", df, CTX) is None and fast_fixed("0 + o", df, CTX) is None
    X, names, _ = build_fixed("o + x", df, CTX)
    assert names == ["Intercept", "o[.L]", "o[.Q]", "x"]
    # contr.poly(3) on the category order c < b < a: .L = (-1, 0, 1)/sqrt(2), .Q = (1, -2, 1)/sqrt(6)
    pos = np.array([2, 1, 0, 2, 1])  # rank of a, b, c, a, b
    np.testing.assert_allclose(X[:, 1], (pos - 1) / np.sqrt(2), atol=1e-15)
    np.testing.assert_allclose(X[:, 2], np.array([1.0, -2.0, 1.0])[pos] / np.sqrt(6), atol=1e-15)
    X0, names0, _ = build_fixed("0 + o", df, CTX)
    assert names0 == ["o[c]", "o[b]", "o[a]"]
    np.testing.assert_array_equal(X0, np.eye(3)[pos])
    # unordered: the fast path, treatment contrasts, as before
    du = df.assign(o=df["o"].cat.as_unordered())
    assert_same_as_formulaic("o + x", du)


@pytest.mark.parametrize("dtype", ["string", "large_string[pyarrow]", "string[pyarrow]"])
def test_string_dtype_columns_are_categorical(dtype):
    """pandas ``string`` and pyarrow string columns code as categorical, exactly as
    object strings do (formulaic alone reads them as numbers and fails)."""
    vals = ["basic", "fancy", "basic", None, "plain", "fancy"]
    df = pd.DataFrame({"s": pd.Series(vals, dtype=dtype), "x": np.arange(6.0)})
    ref = pd.DataFrame({"s": pd.Series(vals, dtype=object), "x": np.arange(6.0)})
    X, names, spec = build_fixed("s + x", df, CTX)
    Xr, namesr, _ = build_fixed("s + x", ref, CTX)
    assert names == namesr == ["Intercept", "s[T.fancy]", "s[T.plain]", "x"]
    np.testing.assert_array_equal(X, Xr)
    new = pd.DataFrame({"s": pd.Series(["plain"], dtype=dtype), "x": [1.0]})
    assert np.asarray(spec.get_model_matrix(new)).tolist() == [[1.0, 0.0, 1.0, 1.0]]


@pytest.mark.parametrize("seed", range(6))
def test_aliased_columns_gram_shortcut_agrees_with_qr(seed):
    """The X'X Cholesky shortcut of aliased_columns only ever answers "full
    rank" when the QR (R's dqrdc2 criterion) says so too; planted exact and
    near (1e-10) collinearity still goes to the QR and is found."""
    from interlace.formula import fixed as fx

    rng = np.random.default_rng(seed)
    n = 3000
    X = np.column_stack([np.ones(n), rng.standard_normal((n, 4))])
    assert fx._clearly_full_rank(X)
    assert fx.aliased_columns(X) == []
    Xa = np.column_stack([X, X[:, 1] - 2.0 * X[:, 3]])
    assert not fx._clearly_full_rank(Xa)
    assert fx.aliased_columns(Xa) == [5]
    Xn = np.column_stack([X, X[:, 2] + 1e-10 * rng.standard_normal(n)])
    assert not fx._clearly_full_rank(Xn)
    assert fx.aliased_columns(Xn) == [5]
