"""R's formula semantics and the formula namespace, against R (tests/fixtures/make_formula.R).

- ``^`` is a power inside ``I()``, ``offset()`` and any call (issue 19 item 1);
- ordered factors (pandas ordered Categorical, polars Enum) get ``contr.poly`` (issue 19 item 2);
- a variable of the caller's scope is found, and ``scale()`` sees the whole data before rows with
  missing values are dropped (issue 19 item 6);
- unicode and backtick-quoted column names in every formula part (issue 25 item 5);
- formula expressions run in a restricted namespace (issue 25 item 6);
- the ``Intercept`` name clash (issue 25 item 1) and the error texts of issue 23 item 9.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import interlace
from interlace.formula.namespace import FormulaEnv, check_expression, r_powers
from interlace.model_frame import build_model_frame

FIX = Path(__file__).parent / "fixtures"


def ref(case: str) -> dict:
    return json.loads((FIX / "formula" / f"{case}.json").read_text())


def data(name: str) -> pd.DataFrame:
    return pd.read_csv(FIX / "data" / name)


def fit(formula: str, df, family: str = "gaussian", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.glmer(formula, df, family=family, **kw)


def r_name(name: str, factors: dict[str, str]) -> str:
    """R's coefficient name -> interlace's (``recipeB:temperature.L`` -> ``recipe[T.B]:temperature[.L]``).

    ``factors`` maps a factor to its coding: "treatment", "poly" or "full" (indicators)."""
    if name == "(Intercept)":
        return "Intercept"
    out = []
    for part in name.split(":"):
        for f, kind in factors.items():
            if part.startswith(f) and part != f:
                level = part[len(f):]
                if kind == "poly":
                    part = f"{f}[{level}]"
                elif kind == "full":
                    part = f"{f}[{level}]"
                else:
                    part = f"{f}[T.{level}]"
                break
        out.append(part)
    return ":".join(out)


def assert_matches_r(m, case: str, factors: dict[str, str] | None = None, names: dict[str, str] | None = None,
                     rtol: float = 1e-3) -> None:
    """llf no worse than R's by 1e-4; fixef, SE and variance components within ``rtol`` (relative)."""
    r = ref(case)
    assert m.llf >= r["loglik"] - 1e-4, (m.llf, r["loglik"])
    mapped = [(names or {}).get(n, r_name(n, factors or {})) for n in r["fixef_names"]]
    assert list(m.fe_params.index) == mapped
    fe = m.fe_params.to_numpy(dtype=float)
    # absolute floor for coefficients that are ~0 in R's units (cake's temperature^5)
    np.testing.assert_allclose(fe, [r["fixef"][n] for n in r["fixef_names"]], rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(m.fe_bse.to_numpy(dtype=float), [r["se"][n] for n in r["fixef_names"]], rtol=rtol)
    vc = m.varcorr
    for row in r["varcorr"]:
        got = vc.loc[vc["grp"] == row["grp"], "sdcor"].to_numpy()
        np.testing.assert_allclose(got[0], row["sdcor"], rtol=rtol, atol=1e-6)
    assert m.nobs == r["nobs"]


# ----------------------------------------------------------------------------- I(x^2): ^ is a power


@pytest.mark.parametrize("days_dtype", ["int64", "float64"])
def test_power_inside_I_matches_lmer_ml(days_dtype):
    """issue 19.1: I(Days^2) was Days XOR 2 (llf -896.1802, coefficient 1.536) on an integer column
    and a TypeError on a float one; lmer ML gives -896.4719 and 0.337."""
    df = data("sleepstudy.csv").astype({"Days": days_dtype})
    m = fit("Reaction ~ Days + I(Days^2) + (1 | Subject)", df)
    assert_matches_r(m, "sleep_days2", names={"I(Days^2)": "I(Days ** 2)"})


def test_power_in_offset_matches_glmer():
    df = data("cbpp.csv").astype({"period": str})
    m = fit("incidence ~ period + offset(log(size^2) / 2) + (1 | herd)", df, family="poisson")
    assert_matches_r(m, "cbpp_offset_power", factors={"period": "treatment"})
    # log(size^2) / 2 is log(size): the same model with the plain offset
    m2 = fit("incidence ~ period + offset(log(size)) + (1 | herd)", df, family="poisson")
    np.testing.assert_allclose(m.fe_params, m2.fe_params, rtol=1e-10)


def test_power_everywhere_r_reads_one():
    """The guard: ^ is ** in every part R evaluates as an expression; at the formula
    level it stays the crossing operator."""
    rng = np.random.default_rng(3)
    n = 80
    df = pd.DataFrame({"y": rng.poisson(3, n), "x": rng.uniform(0.5, 1.5, n), "t": rng.uniform(1, 2, n),
                       "a": rng.normal(size=n), "b": rng.normal(size=n), "g": np.repeat(np.arange(8), 10)})
    pairs = [
        ("y ~ I(x^2) + (1 | g)", "y ~ I(x**2) + (1 | g)", {}),
        ("y ~ x + offset(log(t^3)) + (1 | g)", "y ~ x + offset(log(t**3)) + (1 | g)", {}),
        ("y ~ x + (0 + I(x^2) | g)", "y ~ x + (0 + I(x**2) | g)", {}),
        ("y ~ np.log(x^2) + (1 | g)", "y ~ np.log(x**2) + (1 | g)", {}),
        ("y ~ x + (1 | g)", "y ~ x + (1 | g)", {"weights": "t^2"}),
        ("y ~ x + (1 | g)", "y ~ x + (1 | g)", {"offset": "log(t)^2"}),
    ]
    for a, b, kw in pairs:
        kwb = {k: v.replace("^", "**") for k, v in kw.items()}
        fa = build_model_frame(a, df, family="poisson", **kw)
        fb = build_model_frame(b, df, family="poisson", **kwb)
        np.testing.assert_array_equal(fa.X, fb.X)
        np.testing.assert_array_equal(fa.offset, fb.offset)
        np.testing.assert_array_equal(fa.weights, fb.weights)
        for ta, tb in zip(fa.terms, fb.terms):
            np.testing.assert_array_equal(ta.z, tb.z)
    # (a + b)^2 at the formula level crosses the terms (a, b, a:b), as in R
    assert build_model_frame("y ~ (a + b)^2 + (1 | g)", df, family="poisson").fe_names == ["Intercept", "a", "b", "a:b"]


def test_r_powers_leaves_strings_and_crossing():
    assert r_powers("C(f, levels=['a^b']) + (a + b)^2 + I(x^2)") == "C(f, levels=['a^b']) + (a + b)^2 + I(x**2)"
    assert r_powers("I((`my x` - 1)^2)") == "I((`my x` - 1)**2)"
    assert r_powers("log(t)^2", everywhere=True) == "log(t)**2"


# ----------------------------------------------------------------------------- ordered factors: contr.poly

CAKE_FACTORS = {"recipe": "treatment", "temperature": "poly"}


def cake(temperature: str = "ordered", recipe_dtype=None) -> pd.DataFrame:
    df = data("cake_ordered.csv")
    levels = ref("cake_ordered")["temperature_levels"]
    t = df["temperature"].astype(str)
    if temperature == "ordered":
        df["temperature"] = pd.Categorical(t, categories=levels, ordered=True)
    else:
        df["temperature"] = pd.Categorical(t, categories=levels, ordered=False)
    if recipe_dtype is not None:
        df["recipe"] = df["recipe"].astype(recipe_dtype)
    return df


def test_ordered_factor_contr_poly_matches_lmer_cake():
    """issue 19.2: lme4's cake example; R codes the ordered temperature with contr.poly."""
    m = fit("angle ~ recipe * temperature + (1 | recipe:replicate)", cake())
    assert_matches_r(m, "cake_ordered", CAKE_FACTORS)
    # the coding itself is R's contr.poly(6)
    X = m.model_frame.X
    names = list(m.fe_params.index)
    cols = [names.index(f"temperature[{s}]") for s in (".L", ".Q", ".C", "^4", "^5")]
    codes = cake()["temperature"].cat.codes.to_numpy()
    np.testing.assert_allclose(X[:, cols], np.asarray(ref("cake_ordered")["contr_poly"])[codes], atol=1e-12)


def test_polars_enum_is_ordered_factor():
    df = cake()
    plf = pl.from_pandas(df.assign(temperature=df["temperature"].astype(str))).with_columns(
        pl.col("temperature").cast(pl.Enum(ref("cake_ordered")["temperature_levels"])))
    m = fit("angle ~ recipe * temperature + (1 | recipe:replicate)", plf)
    assert_matches_r(m, "cake_ordered", CAKE_FACTORS)


def test_unordered_factor_keeps_treatment_contrasts():
    m = fit("angle ~ recipe * temperature + (1 | recipe:replicate)", cake("unordered"))
    assert_matches_r(m, "cake_unordered", {"recipe": "treatment", "temperature": "treatment"})


def test_ordered_factor_without_intercept_spans_it():
    m = fit("angle ~ 0 + temperature + recipe + (1 | recipe:replicate)", cake())
    assert_matches_r(m, "cake_ordered_nointercept", {"temperature": "full", "recipe": "treatment"})


def test_ordered_coding_replayed_on_new_data():
    """New data code the training contr.poly even when the column there is plain strings."""
    m = fit("angle ~ recipe * temperature + (1 | recipe:replicate)", cake())
    new = cake().head(12)
    plain = new.assign(temperature=new["temperature"].astype(str))
    X1, _, _ = m.model_frame.spec.transform(new)
    X2, _, _ = m.model_frame.spec.transform(plain)
    np.testing.assert_array_equal(X1, m.model_frame.X[:12])
    np.testing.assert_array_equal(X2, X1)


@pytest.mark.parametrize("dtype", ["string", pd.ArrowDtype(pa.large_string()), pd.ArrowDtype(pa.string())])
def test_string_dtype_predictor_matches_r(dtype):
    """issue 23.9: a pandas ``string`` / pyarrow string column is a factor (today: "could not convert
    string to float: 'basic'" with no column named)."""
    m = fit("angle ~ recipe * temperature + (1 | recipe:replicate)", cake(recipe_dtype=dtype))
    assert_matches_r(m, "cake_ordered", CAKE_FACTORS)


# ----------------------------------------------------------------------------- caller scope, scale() on whole data


def test_caller_scope_variable_found_as_r():
    """issue 19.6: k is not a column; R (and formulaic) find it in the formula's environment."""
    k = ref("sleep_caller_k")["k"]
    assert k == 4.5
    df = data("sleepstudy.csv")
    # called directly: the caller's scope is this function's (a helper in between would be the caller)
    m = interlace.glmer("Reaction ~ Days + I((Days - k)^2) + (1 | Subject)", df, family="gaussian")
    assert_matches_r(m, "sleep_caller_k", names={"I((Days - k)^2)": "I((Days - k) ** 2)"})
    # the value is kept with the model: predict after k changed (or in another process) uses 4.5
    before = np.asarray(m.predict(df.head(5)))
    k = 100.0  # noqa: F841
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(np.asarray(m2.predict(df.head(5))), before, rtol=1e-12)
    np.testing.assert_allclose(before, np.asarray(m.fittedvalues)[:5], rtol=1e-10)


def sq(v):
    return v * v


def test_caller_scope_function_and_data_first():
    df = data("sleepstudy.csv")
    a = fit("Reaction ~ Days + sq(Days) + (1 | Subject)", df)
    assert_matches_r(a, "sleep_days2", names={"I(Days^2)": "sq(Days)"})
    # a column wins over a variable of the same name (R looks in the data first)
    Days = np.zeros(len(df))  # noqa: N806, F841
    b = interlace.glmer("Reaction ~ Days + I(Days + 0) + (1 | Subject)", df, family="gaussian")
    assert b.model_frame.X[:, 1].tolist() == df["Days"].astype(float).tolist()


def test_caller_scope_refuses_modules_and_unknown_names():
    import os  # noqa: F401  (a module of the caller's scope is not taken)

    df = data("sleepstudy.csv")
    with pytest.raises(ValueError, match=r"os\.getcwd|'os'"):
        build_model_frame("Reaction ~ I(os.getcwd()) + (1 | Subject)", df, family="gaussian")
    with pytest.raises(ValueError, match="not_defined_anywhere"):
        build_model_frame("Reaction ~ I(Days * not_defined_anywhere) + (1 | Subject)", df, family="gaussian")


def airquality() -> pd.DataFrame:
    df = data("airquality.csv")
    df["Month"] = df["Month"].astype(str)
    return df


def test_scale_on_whole_data_before_missing_rows_dropped():
    """issue 19.6: R's model.frame evaluates scale() on all 153 rows (Solar.R: its 146 non-missing
    values), then drops the 42 rows with a missing Ozone or Solar.R."""
    m = fit("log(Ozone) ~ scale(Wind) + scale(`Solar.R`) + (1 | Month)", airquality())
    assert_matches_r(m, "airquality_scale", names={"scale(Solar.R)": "scale(`Solar.R`)"})
    assert m.model_frame.n == ref("airquality_scale")["nobs"] == 111
    # the state kept for new data is R's attributes
    state = m.model_frame.spec.fixed_spec.transform_state
    r = ref("airquality_scale")
    np.testing.assert_allclose([state["scale(Wind)"]["center"], state["scale(Wind)"]["scale"]],
                               [r["scale_Wind"]["center"], r["scale_Wind"]["scale"]], rtol=1e-12)
    # (formulaic keys the state by the sanitised name)
    np.testing.assert_allclose([state["scale(Solar_R)"]["center"], state["scale(Solar_R)"]["scale"]],
                               [r["scale_Solar_R"]["center"], r["scale_Solar_R"]["scale"]], rtol=1e-12)


def test_center_and_glmm_scale_on_whole_data():
    m = fit("log(Ozone) ~ scale(Wind, scale=False) + Temp + (1 | Month)", airquality())
    assert_matches_r(m, "airquality_center", names={"scale(Wind, scale = FALSE)": "scale(Wind, scale=False)"})
    g = fit("Ozone ~ scale(Temp) + scale(`Solar.R`) + (1 | Month)", airquality(), family="poisson")
    assert_matches_r(g, "airquality_scale_poisson", names={"scale(Solar.R)": "scale(`Solar.R`)"})


def test_scale_guard_random_side_and_offset():
    """The class of error: every part with a stateful transform takes the whole data's state."""
    df = airquality()
    full = df["Wind"].to_numpy()
    zw = (full - full.mean()) / full.std(ddof=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mf = build_model_frame("log(Ozone) ~ Temp + offset(scale(Wind)) + (0 + scale(Wind) | Month)", df,
                               family="gaussian")
    keep = mf.row_index
    np.testing.assert_allclose(mf.offset, zw[keep], rtol=1e-12)
    np.testing.assert_allclose(mf.terms[0].z[:, 0], zw[keep], rtol=1e-12)


# ----------------------------------------------------------------------------- names


def test_unicode_and_backtick_names_in_every_part():
    """issue 25.5: `组` was refused as a grouping factor, `größe` read as the column `gr`."""
    rng = np.random.default_rng(7)
    n = 240
    base = pd.DataFrame({"y": rng.poisson(4, n), "x": rng.normal(size=n), "z": rng.normal(size=n),
                         "g": np.repeat(np.arange(12), 20), "h": np.tile(np.arange(10), 24)})
    names = {"y": "反应", "x": "größe", "z": "my z", "g": "组", "h": "Gruppe h"}
    uni = base.rename(columns=names)
    kw = dict(family="nbinom2", dispformula="~ x", ziformula="~ z")
    a = fit("y ~ x + I(x**2) + (1 + x | g) + (1 | h)", base, **kw)
    b = fit("反应 ~ größe + I(größe**2) + (1 + größe | 组) + (1 | `Gruppe h`)", uni,
            **{**kw, "dispformula": "~ größe", "ziformula": "~ `my z`"})
    np.testing.assert_allclose(b.llf, a.llf, rtol=1e-10)
    np.testing.assert_allclose(b.fe_params, a.fe_params, rtol=1e-8)
    assert list(b.fe_params.index) == ["Intercept", "größe", "I(größe ** 2)"]
    # random= and groups= with unicode names build the same frame as the formula's bars
    f1 = build_model_frame("反应 ~ größe + (1 | 组)", uni, family="poisson")
    f2 = build_model_frame("反应 ~ größe", uni, family="poisson", random="(1 | 组)")
    f3 = build_model_frame("反应 ~ größe", uni, family="poisson", groups="组")
    for f in (f2, f3):
        np.testing.assert_array_equal(f.X, f1.X)
        np.testing.assert_array_equal(f.terms[0].codes, f1.terms[0].codes)
    assert f1.terms[0].group == "组"


# ----------------------------------------------------------------------------- the namespace


@pytest.fixture
def small() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 60
    return pd.DataFrame({"y": rng.poisson(3, n), "x": rng.normal(size=n), "w": rng.uniform(1, 2, n),
                         "g": np.repeat(np.arange(6), 10)})


def payloads(marker: Path) -> list[str]:
    m = str(marker)
    return [
        f"__import__('os').mkdir('{m}')",
        f"open('{m}', 'w')",
        f"eval(\"__import__('os').mkdir('{m}')\")",
        "x.__class__",
        "getattr(x, 'sum')()",
        f"np.save('{m}', x)",
        f"x.to_pickle('{m}')",
        "(lambda: 1)()",
        "[v for v in x]",
        "np.ctypeslib",
    ]


PARTS = {
    "fixed": lambda e: ("y ~ I({e}) + (1 | g)".format(e=e), {}),
    "dispformula": lambda e: ("y ~ x + (1 | g)", {"family": "nbinom2", "dispformula": "~ I({e})".format(e=e)}),
    "ziformula": lambda e: ("y ~ x + (1 | g)", {"family": "nbinom2", "ziformula": "~ I({e})".format(e=e)}),
    "bar": lambda e: ("y ~ x + (0 + I({e}) | g)".format(e=e), {}),
    "random=": lambda e: ("y ~ x", {"random": "(0 + I({e}) | g)".format(e=e)}),
    "offset()": lambda e: ("y ~ x + offset({e}) + (1 | g)".format(e=e), {}),
    "offset=": lambda e: ("y ~ x + (1 | g)", {"offset": e}),
    "weights=": lambda e: ("y ~ x + (1 | g)", {"weights": e}),
    "response": lambda e: ("I({e}) ~ x + (1 | g)".format(e=e), {}),
}


@pytest.mark.parametrize("part", list(PARTS))
def test_formula_code_cannot_escape(small, tmp_path, part):
    """issue 25.6: builtins removed, dunder attributes and file/code attributes refused, in every part;
    a ValueError naming the expression, and nothing ran."""
    marker = tmp_path / "ran"
    for e in payloads(marker):
        formula, kw = PARTS[part](e)
        kw = {"family": "poisson", **kw}
        with pytest.raises(ValueError) as info:
            fit(formula, small, **kw)
        assert any(s in str(info.value) for s in (e, e.split("(")[0])), str(info.value)
        assert not marker.exists() and not Path(str(marker) + ".npy").exists()


def test_formula_code_cannot_escape_on_dask(small, tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    marker = tmp_path / "ran"
    ddf = dd.from_pandas(small, npartitions=2)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None):
        for e in payloads(marker)[:3]:
            for formula, kw in (PARTS["fixed"](e), PARTS["bar"](e), PARTS["weights="](e), PARTS["offset="](e)):
                with pytest.raises(ValueError, match="formulas do not allow|not a column"):
                    fit(formula, ddf, family="poisson", **kw)
    assert not marker.exists()


def test_unpickled_result_predicts_in_namespace(small, tmp_path):
    marker = tmp_path / "ran"
    m = fit("y ~ x + I(w^2) + offset(log(w)) + (1 | g)", small, family="poisson")
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(m2.predict(small.head(7)), m.predict(small.head(7)), rtol=1e-12)
    with pytest.raises(ValueError, match="formulas do not allow"):
        m2.predict(small.head(3), offset=f"__import__('os').mkdir('{marker}')")
    assert not marker.exists()


def test_namespace_allows_what_formulas_use(small):
    env = FormulaEnv()
    cols = set(small.columns)
    for e in ("np.log(x + 5)", "abs(x)", "np.where(x > 0, 1.0, 0.0)", "max(w.max(), 1)", "round(x, 2)",
              "np.exp(-x ** 2)", "x.to_numpy()", "np.pi * w"):
        assert set(check_expression(e, cols, env, "t")) <= cols


# ----------------------------------------------------------------------------- name clashes, error texts


def test_intercept_column_refused(small):
    """issue 25.1: `y ~ Intercept + (1 | g)` fitted `y ~ 0 + Intercept` labelled Intercept."""
    df = small.assign(Intercept=small["x"])
    for f, kw in (("y ~ Intercept + (1 | g)", {}), ("y ~ x + (Intercept | g)", {}),
                  ("y ~ x + (1 | g)", {"family": "nbinom2", "dispformula": "~ Intercept"})):
        with pytest.raises(ValueError, match="'Intercept'.*clashes"):
            build_model_frame(f, df, **{"family": "poisson", **kw})


def test_generated_name_clash_refused(small):
    df = small.assign(f=np.where(small["x"] > 0, "a", "b"), **{"f[T.b]": small["w"]})
    with pytest.raises(ValueError, match=r"'f\[T\.b\]' twice"):
        build_model_frame("y ~ f + `f[T.b]` + (1 | g)", df, family="poisson")


def test_factor_suggests_C(small):
    df = small.assign(f=np.where(small["x"] > 0, "a", "b"))
    with pytest.raises(ValueError, match=r"write C\(f\)"):
        build_model_frame("y ~ factor(f) + (1 | g)", df, family="poisson")
    with pytest.raises(ValueError, match=r"write C\(f\)"):
        build_model_frame("y ~ as.factor(f) + (1 | g)", df, family="poisson")
    # and C(f) is the same model as f
    a = build_model_frame("y ~ C(f) + (1 | g)", df, family="poisson")
    b = build_model_frame("y ~ f + (1 | g)", df, family="poisson")
    np.testing.assert_array_equal(a.X, b.X)


def test_offset_overflow_named(small):
    df = small.assign(exposure=np.full(len(small), 800.0))
    with pytest.raises(ValueError, match=r"offset\(exposure\) reaches 800.*overflows"):
        build_model_frame("y ~ x + offset(exposure) + (1 | g)", df, family="poisson")
    with pytest.raises(ValueError, match=r"offset 'exposure \* 2' reaches 1600"):
        build_model_frame("y ~ x + (1 | g)", df, family="poisson", offset="exposure * 2")
    # the same offset on the log scale fits
    build_model_frame("y ~ x + offset(log(exposure)) + (1 | g)", df, family="poisson")


def test_dotted_name_hint():
    df = airquality()
    with pytest.raises(ValueError, match=r"written in backticks: `Solar\.R`"):
        build_model_frame("log(Ozone) ~ scale(Solar.R) + (1 | Month)", df, family="gaussian")


def test_stateful_transforms_refused_on_dask(small):
    """The class of error of scale() on part of the data: on Dask the spec is built from a
    sample of rows, so a stateful transform would silently take the sample's mean; refused."""
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    ddf = dd.from_pandas(small, npartitions=2)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None):
        for formula, kw, name in (("y ~ scale(x) + (1 | g)", {}, "scale(x)"),
                                  ("y ~ x + (0 + center(w) | g)", {}, "center(w)"),
                                  ("y ~ x + offset(poly(w, 1)) + (1 | g)", {}, "poly(w, 1)"),
                                  ("y ~ x + (1 | g)", {"weights": "scale(w, center=False)"}, "scale(w")):
            with pytest.raises(NotImplementedError, match=re.escape(name)):
                fit(formula, ddf, family="poisson", **kw)


def test_caller_scope_variable_on_dask(small):
    """A variable of the caller's scope in the fixed part on a Dask frame: the same fit as in memory."""
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    shift = 0.5
    ddf = dd.from_pandas(small, npartitions=2)
    mem = interlace.glmer("y ~ I(x - shift) + (1 | g)", small, family="poisson")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None):
        dsk = interlace.glmer("y ~ I(x - shift) + (1 | g)", ddf, family="poisson")
    assert shift == 0.5
    np.testing.assert_allclose(dsk.llf, mem.llf, rtol=1e-8)
    np.testing.assert_allclose(dsk.fe_params.to_numpy(), mem.fe_params.to_numpy(), rtol=1e-6)
