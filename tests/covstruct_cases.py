"""Shared by the covariance-structure parity tests and the parity table: load a glmmTMB 1.1.5
case of tests/fixtures/covstruct/ and fit it with interlace."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import interlace
from interlace.results.summary import varcorr_matrices

HERE = Path(__file__).resolve().parent / "fixtures" / "covstruct"
CASES = sorted(p.stem for p in HERE.glob("*.json"))
# factors of the data sets (R's factor(); levels are the values' text)
FACTORS = ("t", "s", "g", "f")


def load(name: str) -> tuple[dict, pd.DataFrame]:
    case = json.loads((HERE / f"{name}.json").read_text())
    df = pd.read_csv(HERE / case["dataset"])
    for c in FACTORS:
        if c in df.columns:
            df[c] = df[c].astype(str) if c in ("t", "f") else pd.Categorical(df[c])
    return case, df


def fit(case: dict, df: pd.DataFrame, formula: str | None = None):
    formula = formula or case["formula"]
    fam = case["family"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fam == "gaussian":
            return interlace.lmer(formula, df, REML=bool(case["REML"]))
        family = interlace.family(fam, link=case["link"]) if fam == "Gamma" else fam
        kw = {"ziformula": case["ziformula"]} if case.get("ziformula") else {}
        return interlace.glmer(formula, df, family=family, **kw)


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-8)))


def compare(case: dict, m) -> dict:
    """llf difference (ours - R) and the largest relative differences of fixef, SE, SDs, and
    the largest absolute difference of the correlations."""
    fe = [m.fe_params[k if k != "(Intercept)" else "Intercept"] for k in case["fixef"]]
    se = [m.fe_bse[k if k != "(Intercept)" else "Intercept"] for k in case["se"]]
    mats = varcorr_matrices(m)
    sd_r, corr_d = [], 0.0
    sd_ours = []
    for t in case["terms"]:
        mm = mats[t["group"]]
        sd_ours += mm["sd"].tolist()
        sd_r += list(t["sd"])
        corr_d = max(corr_d, float(np.max(np.abs(mm["corr"].to_numpy() - np.asarray(t["corr"], dtype=float)))))
    out = {"llf": m.llf - case["llf"], "fixef": rel(fe, list(case["fixef"].values())),
           "se": rel(se, list(case["se"].values())), "sd": rel(sd_ours, sd_r), "corr": corr_d}
    if case.get("sigma") is not None and case["family"] == "gaussian":
        out["sigma"] = rel([np.sqrt(m.scale)], [case["sigma"]])
    return out
