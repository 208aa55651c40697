"""interlace.datasets against the R reference data in tests/fixtures/oracle.

The shipped CSVs must be the oracle's frames, and every factor must carry R's level order:
the order of the oracle JSON's ``factor_levels`` (fixed-effect factors) and the order of the
rows of its ``ranef`` (grouping factors), both written by R.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES, ORACLE, case_data_path, load_case, oracle_cases
from interlace import datasets

NAMES = ["cbpp", "sleepstudy", "grouseticks", "owls", "salamanders"]  # the oracle's frames
# exported from R by interlace/datasets/make_metadata.R: name -> (R name, package, rows, columns)
EXPORTED = {
    "verbagg": ("VerbAgg", "lme4", 7584, ["Anger", "Gender", "item", "resp", "id", "btype", "situ",
                                          "mode", "r2"]),
    "contraception": ("Contraception", "mlmRev", 1934, ["woman", "district", "use", "livch", "age",
                                                        "urban"]),
    "insteval": ("InstEval", "lme4", 73421, ["s", "d", "studage", "lectage", "service", "dept", "y"]),
    "penicillin": ("Penicillin", "lme4", 144, ["diameter", "plate", "sample"]),
    "dyestuff": ("Dyestuff", "lme4", 30, ["Batch", "Yield"]),
    "pastes": ("Pastes", "lme4", 60, ["strength", "batch", "cask", "sample"]),
}


def _oracle_csv(name: str) -> pd.DataFrame:
    path = ORACLE / "data" / f"{name}.csv"
    if not path.exists():
        pytest.fail(f"oracle data {path} missing")
    return pd.read_csv(path)


def _dataset_of(case: dict) -> str:
    return case["dataset"].removesuffix(".csv")


def test_available_lists_and_describes_the_shipped_sets():
    avail = datasets.available()
    assert sorted(avail) == sorted(NAMES + list(EXPORTED))
    for name, (r_name, package, rows, _) in EXPORTED.items():
        assert avail[name].startswith(f"{r_name} ({package}), {rows:,} rows: ")
    frame = datasets.available(as_frame=True)
    assert frame.index.name == "name" and list(frame.columns) == ["r_name", "r_package", "rows",
                                                                  "description"]
    assert frame.loc["cbpp", "rows"] == 56 and frame.loc["owls", "r_package"] == "glmmTMB"
    assert all(len(d) > 20 for d in frame["description"])


@pytest.mark.parametrize("name", list(EXPORTED))
def test_exported_sets_have_r_shape_and_factor_levels(name):
    r_name, package, rows, columns = EXPORTED[name]
    df = datasets.load(r_name)  # R's capitalisation works
    assert df.shape == (rows, len(columns)) and list(df.columns) == columns
    info = datasets.info(name)
    assert info["r_name"] == r_name and info["r_package"] == package
    for col, spec in info["factors"].items():
        assert list(df[col].cat.categories) == spec["levels"], col
        assert bool(df[col].cat.ordered) == spec["ordered"], col
        assert not df[col].isna().any(), col


def test_ordered_factors_and_level_orders_are_rs():
    # spot checks of R's level orders that a sort would get wrong
    verb = datasets.load("VerbAgg")
    assert list(verb["resp"].cat.categories) == ["no", "perhaps", "yes"] and verb["resp"].cat.ordered
    assert list(verb["mode"].cat.categories) == ["want", "do"]
    ie = datasets.load("InstEval")
    assert list(ie["dept"].cat.categories[:3]) == ["15", "5", "10"]
    assert list(ie["studage"].cat.categories) == ["2", "4", "6", "8"] and ie["studage"].cat.ordered
    assert list(datasets.load("Contraception")["livch"].cat.categories) == ["0", "1", "2", "3+"]


def test_contraception_and_insteval_are_the_frames_of_the_r_fixtures():
    """The project's R fits used the same data: tests/fixtures/data (make_lme4.R)."""
    ours = datasets.load("contraception")
    theirs = pd.read_csv(FIXTURES / "data" / "contraception.csv")
    for col in ["woman", "district", "use", "livch", "urban"]:
        assert ours[col].astype(str).tolist() == theirs[col].astype(str).tolist(), col
    assert np.allclose(ours["age"], theirs["age"], rtol=0, atol=5e-5)  # the fixture rounds to 4 dp
    ie = datasets.load("insteval")
    fx = pd.read_csv(FIXTURES / "data" / "insteval_binary.csv")
    for col in ["s", "d", "dept", "service", "y"]:
        assert ie[col].astype(str).tolist() == fx[col].astype(str).tolist(), col


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
