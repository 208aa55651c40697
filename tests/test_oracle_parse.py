"""Every oracle case parses into R's fixed-effect names and random-term level counts.

The R numbers (fixef_names, ranef levels) are read from tests/fixtures/oracle JSONs;
nothing from them is copied into the code.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import case_data_path, load_case, oracle_cases
from interlace.model_frame import build_model_frame

CASES = oracle_cases()

_CALL_KEYS = ("groups", "random", "weights", "offset", "dispformula", "ziformula")


def read_case_data(case: dict) -> pd.DataFrame:
    """The case's CSV with R's factor columns restored as ordered-category pandas categoricals."""
    df = pd.read_csv(case_data_path(case))
    for col, info in case.get("factor_levels", {}).items():
        if col in df.columns:
            levels = [str(v) for v in info["levels"]]
            df[col] = pd.Categorical(df[col].astype(str), categories=levels)
    return df


def frame_from_call(call: dict, df: pd.DataFrame, **override):
    kw = {k: call[k] for k in _CALL_KEYS if k in call}
    kw.update(override)
    formula = kw.pop("formula", call["formula"])
    return build_model_frame(formula, df, family=call["family"], **kw)


def r_name_to_formulaic(name: str, case: dict) -> str:
    """Map an R coefficient name onto formulaic's: '(Intercept)' -> 'Intercept', 'period2' -> 'period[T.2]'."""
    if name == "(Intercept)":
        return "Intercept"
    levels = case.get("factor_levels", {})
    parts = []
    for piece in name.split(":"):
        mapped = piece
        # Longest factor-name prefix wins (R names are <var><level>).
        for var in sorted(levels, key=len, reverse=True):
            if piece.startswith(var) and piece[len(var) :] in [str(v) for v in levels[var]["levels"]]:
                mapped = f"{var}[T.{piece[len(var):]}]"
                break
        else:
            mapped = case.get("fixef_name_map", {}).get(piece, piece)
        parts.append(mapped)
    return ":".join(parts)


def r_levels_per_term(case: dict) -> dict[str, int]:
    return {g: len(levels) for g, levels in case["ranef"].items()}


def r_columns_per_group(case: dict) -> dict[str, list[str]]:
    return {g: list(next(iter(levels.values())).keys()) for g, levels in case["ranef"].items()}


@pytest.mark.parametrize("name", CASES)
def test_fixed_effects_match_r(name):
    case = load_case(name)
    df = read_case_data(case)
    mf = frame_from_call(case["python_call"], df)
    expected = [r_name_to_formulaic(n, case) for n in case["fixef_names"]]
    assert mf.fe_names == expected
    assert mf.p == len(case["fixef_names"])
    assert mf.n == case["nobs"]


@pytest.mark.parametrize("name", CASES)
def test_random_terms_match_r(name):
    case = load_case(name)
    mf = frame_from_call(case["python_call"], read_case_data(case))
    expected = r_levels_per_term(case)
    for t in mf.terms:
        assert t.nlevels == expected[t.group], t.group
    # Every R grouping factor is there, with R's columns (formulaic naming).
    cols: dict[str, list[str]] = {}
    for t in mf.terms:
        cols.setdefault(t.group, []).extend(t.cnames)
    r_cols = {
        g: ["Intercept" if c == "(Intercept)" else c for c in cs] for g, cs in r_columns_per_group(case).items()
    }
    assert cols == r_cols
    # VarCorr's group names (e.g. Subject.1 for the expanded ||) in lme4's order.
    r_grps = list(dict.fromkeys(row["grp"] for row in case["varcorr"] if row["grp"] != "Residual"))
    assert list(dict.fromkeys(t.vc_name for t in mf.terms)) == r_grps


def _assert_same_frame(a, b):
    assert a.fe_names == b.fe_names
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_allclose(a.y, b.y, rtol=1e-15)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-15)
    np.testing.assert_allclose(a.offset, b.offset, rtol=1e-15, atol=0)
    assert [(t.group, t.vc_name, t.cnames, t.levels) for t in a.terms] == [
        (t.group, t.vc_name, t.cnames, t.levels) for t in b.terms
    ]
    for ta, tb in zip(a.terms, b.terms):
        np.testing.assert_array_equal(ta.codes, tb.codes)
        np.testing.assert_array_equal(ta.z, tb.z)


@pytest.mark.parametrize("name", CASES)
def test_inline_random_and_groups_forms_agree(name):
    case = load_case(name)
    df = read_case_data(case)
    call = case["python_call"]
    inline = frame_from_call(call, df)
    parts = case["formula_parts"]
    response = call["formula"].split("~", 1)[0].strip()
    fixed_formula = f"{response} ~ {parts['fixed']}"
    via_random = frame_from_call(call, df, formula=fixed_formula, random=parts["random"])
    _assert_same_frame(inline, via_random)
    # groups= builds random intercepts: only where every term is (1 | g).
    if all(re.fullmatch(r"\(1 \| \w+\)", r) for r in parts["random"]):
        groups = [r[5:-1] for r in parts["random"]]
        via_groups = frame_from_call(call, df, formula=fixed_formula, groups=groups)
        _assert_same_frame(inline, via_groups)


@pytest.mark.parametrize("name", [c for c in CASES if "python_call_alt" in load_case(c)])
def test_alternative_call_agrees(name):
    case = load_case(name)
    df = read_case_data(case)
    a = frame_from_call(case["python_call"], df)
    b = frame_from_call(case["python_call_alt"], df)
    assert a.fe_names == b.fe_names
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_allclose(a.y, b.y, rtol=1e-12)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-12)
    np.testing.assert_allclose(a.offset, b.offset, rtol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_no_warnings_on_oracle_data(name):
    case = load_case(name)
    df = read_case_data(case)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mf = frame_from_call(case["python_call"], df)
    assert mf.n_dropped == 0 and mf.dropped_columns == []


@pytest.mark.parametrize("name", CASES)
def test_spec_transform_reproduces_training(name):
    case = load_case(name)
    df = read_case_data(case)
    mf = frame_from_call(case["python_call"], df)
    X, blocks, off = mf.spec.transform(df)
    np.testing.assert_array_equal(X, mf.X)
    for t, (codes, z) in zip(mf.terms, blocks):
        np.testing.assert_array_equal(codes, t.codes)
        np.testing.assert_array_equal(z, t.z)
    np.testing.assert_allclose(off, mf.offset, rtol=1e-15)
