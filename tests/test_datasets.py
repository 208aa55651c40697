"""interlace.datasets against the R reference data in tests/fixtures/oracle.

The shipped CSVs must be the oracle's frames, and every factor must carry R's level order:
the order of the oracle JSON's ``factor_levels`` (fixed-effect factors) and the order of the
rows of its ``ranef`` (grouping factors), both written by R.
"""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import ORACLE, case_data_path, load_case, oracle_cases
from interlace import datasets

NAMES = ["cbpp", "sleepstudy", "grouseticks", "owls", "salamanders"]


def _oracle_csv(name: str) -> pd.DataFrame:
    path = ORACLE / "data" / f"{name}.csv"
    if not path.exists():
        pytest.fail(f"oracle data {path} missing")
    return pd.read_csv(path)


def _dataset_of(case: dict) -> str:
    return case["dataset"].removesuffix(".csv")


def test_available_lists_the_shipped_sets():
    assert datasets.available() == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_shape_and_columns_match_the_oracle_csv(name):
    ours = datasets.load(name)
    theirs = _oracle_csv(name)
    assert ours.shape == theirs.shape
    assert list(ours.columns) == list(theirs.columns)


@pytest.mark.parametrize("name", NAMES)
def test_values_match_the_oracle_csv(name):
    ours = datasets.load(name)
    theirs = _oracle_csv(name)
    for col in theirs.columns:
        if isinstance(ours[col].dtype, pd.CategoricalDtype):
            # factor levels are R's strings; the CSV may have read them as integers
            assert ours[col].astype(str).tolist() == theirs[col].astype(str).tolist(), col
        else:
            pd.testing.assert_series_equal(ours[col], theirs[col], check_names=True)


@pytest.mark.parametrize("case_name", oracle_cases())
def test_fixed_effect_factors_have_the_oracle_level_order(case_name):
    case = load_case(case_name)
    df = datasets.load(_dataset_of(case))
    for col, spec in (case.get("factor_levels") or {}).items():
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
        assert list(df[col].cat.categories) == spec["levels"], col
        assert bool(df[col].cat.ordered) == bool(spec["ordered"]), col


@pytest.mark.parametrize("case_name", oracle_cases())
def test_grouping_factors_have_the_oracle_ranef_order(case_name):
    case = load_case(case_name)
    df = datasets.load(_dataset_of(case))
    for group, levels in case["ranef"].items():
        # interaction groups such as "a:b" are built by the model, not stored in the data
        if group not in df.columns:
            assert ":" in group, group
            continue
        assert isinstance(df[group].dtype, pd.CategoricalDtype), group
        assert list(df[group].cat.categories) == list(levels), group


@pytest.mark.parametrize("case_name", oracle_cases())
def test_shipped_frame_is_the_frame_the_case_used(case_name):
    case = load_case(case_name)
    df = datasets.load(_dataset_of(case))
    assert len(df) == case["nrow_data"]
    assert len(df) == len(pd.read_csv(case_data_path(case)))


@pytest.mark.parametrize("alias", ["Owls", "OWLS", "owls", " Salamanders ", "SleepStudy"])
def test_names_are_case_insensitive(alias):
    assert alias.strip().lower() in datasets.available()
    assert datasets.load(alias).equals(datasets.load(alias.strip().lower()))


def test_load_returns_a_fresh_copy():
    first = datasets.load("cbpp")
    first.loc[0, "incidence"] = -999
    first["herd"] = first["herd"].cat.rename_categories(lambda s: "x" + s)
    first["extra"] = 1.0
    second = datasets.load("cbpp")
    assert second.loc[0, "incidence"] != -999
    assert "extra" not in second.columns
    assert list(second["herd"].cat.categories)[:2] == ["1", "2"]
    assert second is not first


def test_info_is_a_copy():
    meta = datasets.info("cbpp")
    meta["factors"]["period"]["levels"].reverse()
    assert datasets.info("cbpp")["factors"]["period"]["levels"] == ["1", "2", "3", "4"]


def test_unknown_name_raises_value_error_listing_the_available_ones():
    with pytest.raises(ValueError, match="unknown data set 'iris'") as err:
        datasets.load("iris")
    for name in NAMES:
        assert name in str(err.value)


def test_non_string_name_raises_type_error():
    with pytest.raises(TypeError, match="name must be a string"):
        datasets.load(3)  # type: ignore[arg-type]
