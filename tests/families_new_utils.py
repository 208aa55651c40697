"""Shared helpers of tests/test_families_new*.py: read a fixture of
tests/fixtures/families_new/ (made by make_families_new.R), fit it with interlace and
measure the relative differences from R."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import interlace

ROOT = Path(__file__).parent / "fixtures" / "families_new"


def load(name: str) -> dict:
    path = ROOT / f"{name}.json"
    if not path.exists():
        pytest.fail(f"fixture {path} is missing (run make_families_new.R)")
    return json.loads(path.read_text())


def data(case: dict) -> pd.DataFrame:
    return pd.read_csv(ROOT / case["data"])


def py_name(r_name: str) -> str:
    """R's coefficient names of these fixtures -> interlace's ('grpb' -> 'grp[T.b]')."""
    if r_name == "(Intercept)":
        return "Intercept"
    if r_name.startswith("grp") and len(r_name) == 4:
        return f"grp[T.{r_name[3:]}]"
    return r_name


def fit(case: dict, **extra):
    call = dict(case["python"])
    family = call.pop("family")
    kw = call.pop("family_args", {}) or {}
    if "link" in call:
        kw["link"] = call.pop("link")
    fam = interlace.family(family, **kw)
    formula = call.pop("formula")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.glmer(formula, data(case), family=fam, **call, **extra)


def rel(a, b) -> float:
    a, b = np.atleast_1d(np.asarray(a, dtype=float)), np.atleast_1d(np.asarray(b, dtype=float))
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-8)))


def series_rel(mine: pd.Series, ref, names=None) -> float:
    if not isinstance(ref, dict):  # R's one-row coefficient table loses its names
        ref = dict(zip(names, np.atleast_1d(ref)))
    return rel([mine[py_name(k)] for k in ref], list(ref.values()))


def compare(res, case: dict) -> dict[str, float]:
    """Differences of llf (absolute), fixed effects, SEs, RE SD, family parameters (relative)."""
    out = {"llf": res.llf - case["loglik"], "fixef": series_rel(res.fe_params, case["fixef"]),
           "se": series_rel(res.fe_bse, case["fixef_se"])}
    if case.get("re_sd"):
        vc = res.varcorr
        sd = vc.loc[vc["var2"].isna() & (vc["grp"] != "Residual"), "sdcor"].to_numpy(dtype=float)
        out["re_sd"] = rel(sd, list(case["re_sd"].values()))
    for block in ("disp", "zi"):
        if case.get(block):
            coef = res.aux_params[block]
            se = res.aux_bse[block]
            out[block] = series_rel(coef, case[block])
            out[block + "_se"] = series_rel(se, case[block + "_se"], list(case[block]))
    psi_blocks = [b for b in res.aux_params if b.startswith("psi")]
    if case.get("psi") is not None:
        mine = [float(res.aux_params[b].iloc[0]) for b in psi_blocks]
        mine_se = [float(res.aux_bse[b].iloc[0]) for b in psi_blocks]
        out["psi"] = rel(mine, case["psi"])
        out["psi_se"] = rel(mine_se, case["psi_se"])
    fp = case.get("family_params") or {}
    for name, value in (fp.items() if isinstance(fp, dict) else ()):
        out[name] = rel(res.family_params[name], value)
    return out
