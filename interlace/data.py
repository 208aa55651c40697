"""Data in: any eager frame narwhals reads -> a small pandas frame of the used columns.

Only the columns the model uses are selected (through narwhals, so a polars or
pyarrow frame is never converted whole) and the caller's frame is never
modified: the result is a new pandas frame with a fresh RangeIndex.

Example
-------
>>> import pandas as pd
>>> df = pd.DataFrame({"y": [1.0, 2.0], "x": [0.5, 1.5], "unused": ["a", "b"]})
>>> list(to_pandas_columns(df, ["y", "x"]).columns)
['y', 'x']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["to_pandas_columns", "frame_columns", "identifiers", "missing_mask"]

_PY_WORDS = {"True", "False", "None", "and", "or", "not", "in", "is", "if", "else", "lambda", "for"}
# Names formulaic (and Python) resolve themselves when they are not data columns.
_CONSTANTS = {"pi", "e", "inf", "nan"}


def _native_frame(data: Any, arg: str = "data"):
    import narwhals as nw

    try:
        frame = nw.from_native(data, eager_only=True)
    except TypeError:
        frame = None
    if frame is None or not isinstance(frame, nw.DataFrame):
        raise TypeError(
            f"{arg} must be a data frame (pandas, polars, pyarrow Table or another eager frame "
            f"narwhals reads), got {type(data).__module__}.{type(data).__name__}"
        )
    return frame


def _plain_pandas(data: Any) -> bool:
    """A pandas frame with unique string column labels: read directly, without narwhals.

    narwhals' pandas backend does the same selection, with a few hundred
    microseconds of wrapping per call; frames with duplicate or non-string
    labels keep the narwhals route (and its errors).
    """
    if not isinstance(data, pd.DataFrame):
        return False
    cols = data.columns
    return cols.is_unique and (cols.dtype == "str" or all(type(c) is str for c in cols))


def frame_columns(data: Any, arg: str = "data") -> list[str]:
    """Column names of any eager frame (TypeError naming ``arg`` for a non-frame)."""
    if _plain_pandas(data):
        return list(data.columns)
    return [str(c) for c in _native_frame(data, arg).columns]


def frame_len(data: Any, arg: str = "data") -> int:
    """Number of rows of any eager frame."""
    if _plain_pandas(data):
        return len(data)
    return int(_native_frame(data, arg).shape[0])


def to_pandas_columns(data: Any, columns: Iterable[str], arg: str = "data") -> pd.DataFrame:
    """Select ``columns`` of ``data`` and return them as a new pandas frame (RangeIndex).

    Category order is kept for pandas categoricals, polars Enums and pyarrow
    dictionaries; a polars ``Categorical`` (whose order is a global string
    cache, not a property of the column) becomes strings, sorted like R's
    ``factor()`` when used as a factor.
    """
    import narwhals as nw

    cols = list(dict.fromkeys(columns))
    if _plain_pandas(data):
        # Positional take: label lookups on a pandas 3 string Index cost far more.
        where = {c: i for i, c in enumerate(data.columns.tolist())}
        missing = [c for c in cols if c not in where]
        if missing:
            raise ValueError(f"column(s) not found in {arg}: {', '.join(missing)}")
        if not cols:
            return pd.DataFrame(index=pd.RangeIndex(len(data)))
        # What narwhals' select + to_pandas gives, with a fresh index.
        # Our own copy (not a copy-on-write view): arrays read from it later
        # (to_numpy) must never alias the caller's buffers.
        out = data.take([where[c] for c in cols], axis=1).copy()
        out.index = pd.RangeIndex(len(out))
        return out
    frame = _native_frame(data, arg)
    have = set(frame.columns)
    missing = [c for c in cols if c not in have]
    if missing:
        raise ValueError(f"column(s) not found in {arg}: {', '.join(missing)}")
    sub = frame.select(cols) if cols else frame.select([])
    if sub.implementation.is_polars():
        casts = [nw.col(c).cast(nw.String) for c, dt in sub.schema.items() if dt == nw.Categorical]
        if casts:
            sub = sub.with_columns(*casts)
    if cols:
        out = sub.to_pandas()
    else:
        out = pd.DataFrame(index=pd.RangeIndex(int(frame.shape[0])))
    # A fresh index (row positions) and our own copy: the caller's frame stays untouched.
    out = out.reset_index(drop=True).copy()
    return out


def identifiers(expr: str, columns: Iterable[str] = ()) -> list[str]:
    """Variable names an expression reads: not function names, attributes, keywords or strings.

    A name of a constant (``e``, ``pi``, ``inf``, ``nan``) is a variable when it is one of
    ``columns``: data first, as the formula namespace resolves it.

    >>> identifiers("log(y) + C(f, levels=['a']) + np.exp(x) + I(a / b)")
    ['y', 'f', 'x', 'a', 'b']
    >>> identifiers("größe + `my x` + 组")
    ['größe', 'my x', '组']
    >>> identifiers("np.log(e) + pi"), identifiers("np.log(e) + pi", columns=["e"])
    ([], ['e'])
    """
    # Blank out quoted strings (but keep backtick-quoted names).
    s = re.sub(r"'[^']*'|\"[^\"]*\"", lambda m: " " * len(m.group(0)), expr)
    data = set(columns)
    out: list[str] = []
    for m in re.finditer(r"`([^`]+)`|[^\W\d]\w*", s):  # unicode identifiers too (größe, 组)
        if m.group(1) is not None:
            out.append(m.group(1))
            continue
        name = m.group(0)
        start, end = m.start(), m.end()
        before = s[:start].rstrip()
        after = s[end:].lstrip()
        if before.endswith(".") or (start > 0 and (s[start - 1].isdigit() or s[start - 1] == ".")):
            continue  # attribute (np.log) or a number like 1e5
        if after.startswith("(") or after.startswith("."):
            continue  # function call or module
        if after.startswith("=") and not after.startswith("=="):
            continue  # keyword argument
        if name in _PY_WORDS or (name in _CONSTANTS and name not in data):
            continue
        out.append(name)
    return list(dict.fromkeys(out))


def _arrow_nulls(s: pd.Series) -> int | None:
    """The null count of an Arrow-backed column (pandas 3's default strings), None otherwise.
    pandas keeps a missing string as an Arrow null, so 0 means no missing value."""
    to_arrow = getattr(s.array, "__arrow_array__", None)
    if to_arrow is None or isinstance(s.dtype, pd.CategoricalDtype):
        return None
    try:
        return int(to_arrow().null_count)
    except Exception:  # not convertible: let isna() decide
        return None


def missing_mask(frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Rows with a missing value in any column, and the columns that have them."""
    mask = np.zeros(len(frame), dtype=bool)
    cols: list[str] = []
    for c, s in frame.items():
        dt = s.dtype
        if isinstance(dt, np.dtype) and dt.kind in "iub":
            continue  # numpy integers and booleans cannot hold a missing value
        if isinstance(dt, np.dtype) and dt.kind in "fc":
            m = np.isnan(s.to_numpy())
        elif _arrow_nulls(s) == 0:
            continue  # an Arrow-backed column (pandas 3 strings) knows its null count: no pass
        else:
            m = np.asarray(s.isna(), dtype=bool)
        if m.any():
            cols.append(str(c))
            mask |= m
    return mask, cols
