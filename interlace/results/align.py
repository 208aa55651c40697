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


def attach_row_labels(result, data: Any, missing: str) -> None:
    """Record the user's row labels and ``missing`` on the fit's model frame and
    index ``fittedvalues`` / ``linear_predictor`` (the used rows: post-fit code
    reads them row by row) by those labels; ``fitted()``, ``resid()`` and
    ``predict()`` pad them for ``missing="exclude"``."""
    mf = getattr(result, "model_frame", None)
    if mf is None:
        return
    if isinstance(data, pd.DataFrame):
        labels = data.index
    else:
        from interlace.data import frame_len

        labels = pd.RangeIndex(frame_len(data))
    mf.full_index = labels
    mf.na_action = "exclude" if missing == "exclude" else "omit"
    idx = fitted_index(result)
    for attr in ("fittedvalues", "linear_predictor"):
        s = getattr(result, attr, None)
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
