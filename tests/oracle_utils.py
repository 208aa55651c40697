"""Helpers to fit an oracle case with interlace and compare with R's numbers.

Only the JSON files supply R's numbers; nothing here hard-codes them.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from conftest import case_data_path, ensure_family

import interlace

CALL_KEYS = ("groups", "random", "weights", "offset", "dispformula", "ziformula", "nAGQ")


def read_case_data(case: dict) -> pd.DataFrame:
    """The case's CSV with R's factor columns restored as categoricals in R's level order."""
    df = pd.read_csv(case_data_path(case))
    for col, info in case.get("factor_levels", {}).items():
        if col in df.columns:
            df[col] = pd.Categorical(df[col].astype(str), categories=[str(v) for v in info["levels"]])
    return df


def r_to_formulaic(name: str, case: dict) -> str:
    """'(Intercept)' -> 'Intercept', 'period2' -> 'period[T.2]', 'A:B' piecewise."""
    if name == "(Intercept)":
        return "Intercept"
    levels = case.get("factor_levels", {})
    parts = []
    for piece in name.split(":"):
        mapped = case.get("fixef_name_map", {}).get(piece, piece)
        for var in sorted(levels, key=len, reverse=True):
            lv = [str(v) for v in levels[var]["levels"]]
            if piece.startswith(var) and piece[len(var):] in lv:
                mapped = f"{var}[T.{piece[len(var):]}]"
                break
        parts.append(mapped)
    return ":".join(parts)


def fit_case(case: dict, call_key: str = "python_call", **override):
    call = dict(case[call_key])
    call.update(override)
    df = read_case_data(case)
    kw = {k: call[k] for k in CALL_KEYS if k in call}
    fam = call["family"]
    ensure_family(fam)  # the example plugins' families, from plugins/ when not pip-installed
    link = call.get("link")
    if link is not None and isinstance(fam, str):
        fam = interlace.family(fam, link=link)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.glmer(call["formula"], df, family=fam, **kw)


def rel_err(a, b, floor: float = 0.0) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    den = np.maximum(np.abs(b), floor)
    den = np.where(den == 0, 1.0, den)
    return float(np.max(np.abs(a - b) / den)) if a.size else 0.0


def r_loglik(case: dict) -> float:
    if "agq_loglik" in case and case["agq_loglik"]:
        return case["agq_loglik"]["loglik_full"]
    return case["loglik"]


def compare(res, case: dict) -> dict[str, float]:
    """Largest relative errors of interlace against R, by quantity."""
    out: dict[str, float] = {"llf_diff": res.llf - r_loglik(case)}
    names = [r_to_formulaic(n, case) for n in case["fixef_names"]]
    out["fixef"] = rel_err(res.fe_params[names], [case["fixef"][n] for n in case["fixef_names"]])
    out["se"] = rel_err(res.fe_bse[names], [case["se"][n] for n in case["fixef_names"]])
    # VarCorr: match rows by (grp, var1, var2) with R's '(Intercept)' -> 'Intercept'
    vc = res.varcorr.copy()
    fix = lambda s: None if s is None or (isinstance(s, float) and np.isnan(s)) else (  # noqa: E731
        r_to_formulaic(s, case))
    ours = {(r.grp, fix(r.var1), fix(r.var2)): r.sdcor for r in vc.itertuples()}
    errs = []
    for row in case["varcorr"]:
        key = (row["grp"], fix(row["var1"]), fix(row["var2"]))
        if key not in ours:
            raise KeyError(f"VarCorr row {key} missing; have {list(ours)}")
        is_corr = row["var2"] is not None
        errs.append(abs(ours[key] - row["sdcor"]) / (1.0 if is_corr else max(abs(row["sdcor"]), 1e-8)))
    out["varcorr"] = max(errs) if errs else 0.0
    for field, attr in (("ranef", "random_effects"), ("condsd", "random_effects_sd")):
        if not case.get(field):
            continue
        errs = []
        for grp, levels in case[field].items():
            ours_df = getattr(res, attr)[grp]
            r_vals = np.array([[v for v in lv.values()] for lv in levels.values()])
            cols = [fix(c) for c in next(iter(levels.values())).keys()]
            our_vals = ours_df.loc[[str(k) for k in levels.keys()], cols].to_numpy()
            scale = np.max(np.abs(r_vals)) if r_vals.size else 1.0
            errs.append(rel_err(our_vals, r_vals, floor=scale))
        out[field] = max(errs)
    if case.get("fitted"):
        r_fit = np.asarray(case["fitted"], float)
        out["fitted"] = rel_err(res.fittedvalues.to_numpy(), r_fit, floor=np.max(np.abs(r_fit)) * 1e-2)
    return out
