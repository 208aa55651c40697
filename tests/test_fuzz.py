"""Property-based fuzzing of glmer over small random data sets and formulas.

For every drawn (family, formula, data): glmer returns a finite result or
raises ValueError / TypeError with a message; no other exception type, no
NaN in fe_params, fe_bse or llf; the caller's frame is left unchanged; and
refitting with the rows shuffled gives the same log-likelihood (1e-6).

Example
-------
>>> spec = Spec("poisson", "y ~ x + (1 | g)", 0, 30, 4, 3, "pois")
>>> frame(spec).shape[0]
30
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interlace

# random-effect parts of the supported grammar
RANDOM = ["(1 | g)", "(x | g)", "(1 + x || g)", "(0 + x | g)", "(1 | g) + (1 | h)", "(1 | g/h)",
          "(1 | g) + (0 + z | g)", "(1 | g:h)"]
FIXED = ["1", "x", "x + z", "f", "x + f", "x * f", "I(x ** 2) + z", "0 + f"]
FAMILIES = ["binomial", "poisson", "gaussian"]


@dataclass(frozen=True)
class Spec:
    """One drawn case: family, formula, seed, rows, levels of g and h, response kind."""

    family: str
    formula: str
    seed: int
    n: int
    ng: int
    nh: int
    kind: str


def frame(spec: Spec) -> pd.DataFrame:
    """The data of `spec`: numerics x, z, a factor f, grouping factors g, h, responses."""
    rng = np.random.default_rng(spec.seed)
    n = spec.n
    g = rng.integers(0, spec.ng, n)
    h = rng.integers(0, spec.nh, n)
    x = np.round(rng.normal(size=n), 3)
    z = np.round(rng.uniform(-2, 2, n), 3)
    f = rng.choice(["a", "b", "c"], n)
    b = rng.normal(0, rng.choice([0.0, 0.5, 1.5]), spec.ng)
    eta = 0.3 + 0.5 * x + b[g]
    df = pd.DataFrame({"x": x, "z": z, "f": f, "g": [f"g{v}" for v in g], "h": [f"h{v}" for v in h]})
    if spec.kind == "bern":
        df["y"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
    elif spec.kind == "binom":
        df["size"] = rng.integers(1, 12, n)
        df["k"] = rng.binomial(df["size"], 1 / (1 + np.exp(-eta)))
    elif spec.kind == "pois":
        df["y"] = rng.poisson(np.exp(eta))
    else:
        df["y"] = np.round(eta + rng.normal(0, 0.7, n), 4)
    return df


@st.composite
def specs(draw) -> Spec:
    family = draw(st.sampled_from(FAMILIES))
    kind = {"binomial": draw(st.sampled_from(["bern", "binom"])), "poisson": "pois", "gaussian": "gauss"}[family]
    lhs = "cbind(k, size - k)" if kind == "binom" else "y"
    rhs = f"{draw(st.sampled_from(FIXED))} + {draw(st.sampled_from(RANDOM))}"
    return Spec(family, f"{lhs} ~ {rhs}", draw(st.integers(0, 2**31 - 1)), draw(st.integers(6, 60)),
                draw(st.integers(2, 8)), draw(st.integers(2, 5)), kind)


def _fit(spec: Spec, df: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.glmer(spec.formula, df, family=spec.family)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_glmer_is_finite_or_raises_a_clear_error(spec: Spec):
    df = frame(spec)
    before = df.copy(deep=True)
    try:
        m = _fit(spec, df)
    except (ValueError, TypeError) as exc:
        assert str(exc).strip(), "error without a message"
        pd.testing.assert_frame_equal(df, before)
        return
    pd.testing.assert_frame_equal(df, before)  # the caller's frame is never modified
    assert np.all(np.isfinite(m.fe_params.to_numpy())), m.fe_params
    assert np.all(np.isfinite(m.fe_bse.to_numpy())), m.fe_bse
    assert np.isfinite(m.llf)
    assert np.all(np.isfinite(m.theta.to_numpy()))
    assert isinstance(m.converged, bool) and isinstance(m.singular, bool)
    # rows in another order: the same model, the same optimum
    perm = np.random.default_rng(spec.seed ^ 0x5EED).permutation(len(df))
    try:
        m2 = _fit(spec, df.iloc[perm].reset_index(drop=True))
    except (ValueError, TypeError):
        # only a fit already flagged (e.g. theta running off to infinity on a
        # saturated LMM) may break down when refitted in another row order
        assert not m.converged, m.optinfo["messages"]
        return
    if m.converged and m2.converged:
        assert m2.llf == pytest.approx(m.llf, abs=1e-6), (m.llf, m2.llf)
    else:  # a flagged fit may stop elsewhere on a flat surface, never higher than tolerance allows
        assert np.isfinite(m2.llf)


# Small data sets (n = 6) that lme4 fits (lmer / glmer, with warnings) but on
# which our optimizer walks into a numerically singular region and glmer
# raises FitError. Found by the fuzzer; kept as known gaps for the engine.
LME4_FITS = [
    Spec("gaussian", "y ~ f + (1 | g/h)", 2, 6, 3, 2, "gauss"),
    Spec("poisson", "y ~ f + (1 + x || g)", 3, 6, 3, 3, "pois"),
    Spec("binomial", "y ~ 0 + f + (x | g)", 33, 6, 2, 2, "bern"),
]


@pytest.mark.xfail(reason="known gap: FitError where lme4 fits (tiny n, theta or sigma running off)",
                   strict=False)
@pytest.mark.parametrize("spec", LME4_FITS, ids=lambda s: f"{s.family}:{s.formula}")
def test_small_cases_lme4_fits(spec: Spec):
    m = _fit(spec, frame(spec))
    assert np.isfinite(m.llf)


# ----------------------------------------------------------------------------- column dtypes (issue 25 item 1)
# The same numbers held in another dtype either fit the identical model (a
# lossless conversion) or are refused with a ValueError naming the column and
# its dtype; never a different model. Grouping columns are levels: any dtype
# holding the same values (categories in any order) gives the same fit.
NUMERIC_KINDS = ["int64", "float64", "Int64", "Float64", "int64[pyarrow]", "double[pyarrow]", "decimal",
                 "object-number"]
TEXT_KINDS = ["str", "string", "string[pyarrow]", "object-str", "category"]
INT_KINDS = {"int64": "float64", "Int64": "Float64", "int64[pyarrow]": "double[pyarrow]"}
GROUP_KINDS = ["str", "object-str", "category", "category-shuffled", "int64", "float64", "Int64",
               "int64[pyarrow]", "string[pyarrow]"]


def _convert(v: np.ndarray, kind: str, rng: np.random.Generator, missing: np.ndarray | None = None) -> pd.Series:
    """The values `v` (integers or floats) held in dtype `kind`; NA where `missing`."""
    from decimal import Decimal

    s = pd.Series(v)
    if kind in ("int64", "float64"):
        out = s.astype(kind)
    elif kind in ("Int64", "Float64", "int64[pyarrow]", "double[pyarrow]"):
        out = s.astype(kind)
    elif kind == "decimal":
        out = pd.Series([Decimal(repr(float(x))) if s.dtype.kind == "f" else Decimal(int(x)) for x in v], dtype=object)
    elif kind == "object-number":
        out = pd.Series([x.item() for x in v], dtype=object)
    elif kind == "str":
        out = s.astype(str)
    elif kind in ("string", "string[pyarrow]"):
        out = s.astype(str).astype(kind)
    elif kind == "object-str":
        out = pd.Series([str(x) for x in v], dtype=object)
    elif kind == "category":
        out = s.astype("category")
    elif kind == "category-shuffled":
        cats = list(pd.unique(s))
        rng.shuffle(cats)
        out = pd.Series(pd.Categorical(s, categories=cats))
    else:
        raise AssertionError(kind)
    if missing is not None and missing.any():
        out = out.copy()
        out[missing] = None if out.dtype == object else pd.NA
    return out


@dataclass(frozen=True)
class DtypeSpec:
    family: str
    role: str  # response, weights, offset, group
    kind: str
    seed: int
    n_missing: int


@st.composite
def dtype_specs(draw) -> DtypeSpec:
    family = draw(st.sampled_from(FAMILIES))
    role = draw(st.sampled_from(["response", "weights", "offset", "group"]))
    if role == "group":
        kind = draw(st.sampled_from(GROUP_KINDS))
    else:
        kind = draw(st.sampled_from(NUMERIC_KINDS + TEXT_KINDS))
    if (role == "offset" or (role == "response" and family == "gaussian")) and kind in INT_KINDS:
        kind = INT_KINDS[kind]  # non-integer values: the float dtype of the same family
    nullable = kind in ("Int64", "Float64", "int64[pyarrow]", "double[pyarrow]", "decimal", "object-number",
                        "string", "string[pyarrow]", "object-str", "str", "category")
    return DtypeSpec(family, role, kind, draw(st.integers(0, 2**31 - 1)),
                     draw(st.integers(0, 2)) if nullable else 0)


def _dtype_frame(spec: DtypeSpec) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(reference frame with plain float/str columns, the frame with the drawn dtype, fit keywords)."""
    rng = np.random.default_rng(spec.seed)
    n, ng = 48, 6
    g = rng.integers(0, ng, n)
    x = np.round(rng.normal(size=n), 3)
    eta = 0.2 + 0.4 * x + rng.normal(0, 0.6, ng)[g]
    y = {"poisson": rng.poisson(np.exp(eta)), "binomial": (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int),
         "gaussian": np.round(eta + rng.normal(0, 0.5, n), 3)}[spec.family]
    w = rng.integers(1, 4, n)
    o = np.round(rng.uniform(-0.3, 0.3, n), 2)
    ref = pd.DataFrame({"y": y, "x": x, "g": g + 10, "w": w.astype(float), "o": o})
    miss = np.zeros(n, dtype=bool)
    miss[rng.choice(n, spec.n_missing, replace=False)] = True
    col = {"response": "y", "weights": "w", "offset": "o", "group": "g"}[spec.role]
    df = ref.copy()
    base = ref[col].to_numpy()
    if spec.role == "weights":
        base = w
    df[col] = _convert(base, spec.kind, rng, miss)
    if spec.n_missing:
        r = ref[col].astype(float if spec.role != "group" else object).to_numpy(copy=True)
        r[miss] = np.nan if spec.role != "group" else None
        ref[col] = r
    if spec.role == "group":
        ref["g"] = ref["g"].map(lambda v: None if v is None else f"lvl{v}")
    kw = {"weights": "w"} if spec.role == "weights" else {"offset": "o"} if spec.role == "offset" else {}
    return ref, df, kw


def _refused(spec: DtypeSpec) -> bool:
    """What must be refused: text or categorical numbers, except R's binomial factor response."""
    if spec.role == "group" or spec.kind in NUMERIC_KINDS:
        return False
    return not (spec.role == "response" and spec.family == "binomial" and spec.kind == "category")


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(dtype_specs())
def test_column_dtypes_fit_the_same_model_or_are_refused(spec: DtypeSpec):
    ref, df, kw = _dtype_frame(spec)
    before = df.copy(deep=True)
    formula = "y ~ x + (1 | g)"
    if _refused(spec):
        col = {"response": "y", "weights": "w", "offset": "o"}[spec.role]
        with pytest.raises(ValueError) as e:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                interlace.glmer(formula, df, family=spec.family, **kw)
        text = str(e.value)
        assert f"'{col}'" in text and "dtype" in text, text
        pd.testing.assert_frame_equal(df, before)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            m_ref = interlace.glmer(formula, ref, family=spec.family, **kw)
        except (ValueError, TypeError) as exc:  # e.g. a constant response drawn: the same refusal
            with pytest.raises(type(exc)):
                interlace.glmer(formula, df, family=spec.family, **kw)
            return
        m = interlace.glmer(formula, df, family=spec.family, **kw)
    pd.testing.assert_frame_equal(df, before)
    assert m.nobs == m_ref.nobs
    assert m.llf == pytest.approx(m_ref.llf, abs=1e-8), (spec, m.llf, m_ref.llf)
    np.testing.assert_allclose(m.fe_params.to_numpy(), m_ref.fe_params.to_numpy(), rtol=1e-7, atol=1e-9)
