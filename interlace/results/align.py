"""Outputs aligned with the user's data (lme4's na.action = na.exclude / na.omit).

The model frame keeps the positions of the rows it used (``row_index``);
``attach_row_labels`` records the user's row labels and the missing-value
policy on the model frame, so fitted values, residuals and predictions come
back as pandas Series carrying the user's index: only the used rows
(``missing="drop"``, lme4's na.omit), or every row of the data with NaN at
the rows dropped for missing values (``missing="exclude"``, na.exclude).

Example
-------
>>> import numpy as np, interlace
>>> df = interlace.datasets.load("sleepstudy")
>>> df.index = [f"r{i}" for i in range(len(df))]
>>> df.loc["r3", "Days"] = np.nan
>>> m = interlace.glmer("Reaction ~ Days + (1 | Subject)", df, family="gaussian", missing="exclude")
>>> f = m.fitted()
>>> len(f), bool(np.isnan(f["r3"])), f.index[0]
(180, True, 'r0')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["attach_row_labels", "fitted_index", "pad_excluded", "MISSING"]

MISSING = ("drop", "exclude", "raise")


def attach_row_labels(result, data: Any, missing: str, call: dict | None = None) -> None:
    """Record the user's row labels and ``missing`` on the fit's model frame and
    index ``fittedvalues`` / ``linear_predictor`` (the used rows: post-fit code
    reads them row by row) by those labels; ``fitted()``, ``resid()`` and
    ``predict()`` pad them for ``missing="exclude"``. ``call`` (the fit's
    arguments, data included, as R's merMod keeps its call and frame) lets
    ``update()`` and ``drop1()`` refit."""
    mf = getattr(result, "model_frame", None)
    if mf is None:
        return
    if isinstance(data, pd.DataFrame):
        labels = data.index
    else:
        from interlace.data import frame_len

        labels = pd.RangeIndex(frame_len(data))
    mf.full_index = labels
    mf.call = call
    mf.na_action = "exclude" if missing == "exclude" else "omit"
    # emmeans' reference grid (ModelFrame.covariate_summary) is read from call["data"] on
    # first use, as R's emmeans recovers the data from the call.
    from interlace.results.lazy import Deferred

    mf.__dict__.pop("covariate_summary", None)
    mf.__dict__["_covariate_data"] = data
    idx = None
    for attr in ("fittedvalues", "linear_predictor"):
        if isinstance(result.__dict__.get(attr), Deferred):
            continue  # built on first access, on these labels (results/build.py)
        s = getattr(result, attr, None)
        if idx is None and isinstance(s, pd.Series):
            idx = fitted_index(result)
        if isinstance(s, pd.Series) and len(s) == len(idx):
            s.index = idx


def fitted_index(result) -> pd.Index:
    """The user's labels of the rows the fit used."""
    mf = result.model_frame
    labels = getattr(mf, "full_index", None)
    rows = mf.row_index
    if labels is None:
        return pd.RangeIndex(mf.n) if rows is None else pd.Index(rows)
    return labels if rows is None else labels[np.asarray(rows)]


def pad_excluded(result, values: np.ndarray) -> np.ndarray:
    """Per-used-row ``values`` spread over all rows of the data with NaN at the
    dropped ones when the fit used ``missing="exclude"``; unchanged otherwise."""
    mf = result.model_frame
    values = np.asarray(values, dtype=float)
    if getattr(mf, "na_action", "omit") != "exclude" or values.shape[0] != mf.n:
        return values
    out = np.full(len(mf.full_index), np.nan)
    out[np.asarray(mf.row_index)] = values
    return out


def as_series(result, values: np.ndarray, name: str) -> pd.Series:
    """Per-used-row ``values`` as a Series on the user's labels (NaN-padded for missing='exclude')."""
    values = np.asarray(values, dtype=float)
    mf = result.model_frame
    if getattr(mf, "na_action", "omit") == "exclude" and values.shape[0] == mf.n:
        return pd.Series(pad_excluded(result, values), index=mf.full_index, name=name)
    idx = fitted_index(result)
    if len(idx) != values.shape[0]:
        return pd.Series(values, name=name)
    return pd.Series(values, index=idx, name=name)


def covariate_summary(mf, data: Any) -> dict:
    """Per column of the fixed part: ``("numeric", mean)`` over the used rows, or
    ``("factor", levels)`` (emmeans' reference grid: covariates at their means,
    factors at their levels)."""
    from interlace.data import identifiers, to_pandas_columns
    from interlace.formula.terms import factor_codes

    spec = mf.spec
    # the fixed part's variables and those of its offset() terms (emmeans keeps an offset's
    # covariates in the reference grid at their means)
    texts = [spec.fixed or ""] + list(spec.formula_offsets)
    cols = [c for c in dict.fromkeys(n for t in texts for n in identifiers(t, spec.columns)) if c in set(spec.columns)]
    if not cols:
        return {}
    frame = to_pandas_columns(data, cols)
    if mf.row_index is not None:
        frame = frame.iloc[np.asarray(mf.row_index)]
    out: dict = {}
    for c in cols:
        s = frame[c]
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            out[c] = ("numeric", float(s.astype(float).mean()))
        else:
            _codes, levels = factor_codes(s)
            if isinstance(s.dtype, pd.CategoricalDtype):
                raw = [v for v in s.cat.categories if (s == v).any()]
            else:
                uniq = list(dict.fromkeys(s.dropna().tolist()))
                by_label = {str(v): v for v in uniq}
                raw = [by_label.get(lv, lv) for lv in levels]
            out[c] = ("factor", raw)
    return out


# --------------------------------------------------------------------------- verbose=


def report_frame(mf, family, optimizer: str, nAGQ: int) -> float:
    """glmer(verbose=1): the model frame's size and the fitting plan on stderr; returns the start time."""
    import sys
    import time

    terms = ", ".join(f"({t.lhs} | {t.group}) {t.nlevels} levels" for t in mf.terms) or "none"
    print(f"interlace: {mf.n} rows ({mf.n_dropped} dropped for missing values), {mf.p} fixed effects, "
          f"random terms: {terms}", file=sys.stderr)
    print(f"interlace: family {getattr(family, 'name', family)}, optimizer {optimizer}, nAGQ {nAGQ}",
          file=sys.stderr)
    return time.perf_counter()


def report_fit(result, t0: float) -> None:
    """glmer(verbose=1): the optimum, its cost and the convergence verdict on stderr."""
    import sys
    import time

    oi = result.optinfo
    print(f"interlace: {oi.get('engine')} engine, {oi.get('nfev')} deviance evaluations, "
          f"{oi.get('ngev')} gradients, {time.perf_counter() - t0:.2f} s; logLik {result.llf:.4f}; "
          f"{'converged' if result.converged else 'NOT converged'}"
          f"{' (singular)' if result.singular else ''}", file=sys.stderr)
