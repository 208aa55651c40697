"""The fixed-effects part: formulaic's model matrix, then lme4's rank check.

formulaic builds X with treatment contrasts and R-like term order; aliased
columns that survive its structural full-rank coding (exact collinearity in
the numbers) are found with a pivoted QR in R's (LINPACK ``dqrdc2``) manner:
a column whose residual after the earlier kept columns is negligible is
dropped, so earlier columns are kept.

Example
-------
>>> import numpy as np
>>> X = np.array([[1.0, 1.0, 2.0], [1.0, 2.0, 4.0], [1.0, 3.0, 6.0]])
>>> aliased_columns(X)
[2]
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["build_fixed", "aliased_columns", "evaluate_expression"]


def aliased_columns(X: np.ndarray, tol: float = 1e-7) -> list[int]:
    """Indices of columns linearly dependent on earlier ones (R's ``qr(X, tol = 1e-7)``).

    dqrdc2's criterion: column j is aliased when the norm of its residual after
    the earlier kept columns is at most ``tol`` times its own norm. Householder
    QR gives those residual norms as ``|R[j, j]|``; after each aliased column is
    found it is removed and the QR redone, so a noise direction never enters
    the basis (dqrdc2 moves such columns to the end for the same reason).
    """
    X = np.asarray(X, dtype=np.float64)
    cols = list(range(X.shape[1]))
    dropped: list[int] = []
    norms = np.linalg.norm(X, axis=0) if X.size else np.zeros(X.shape[1])
    for j in list(cols):
        if norms[j] == 0.0:
            dropped.append(j)
            cols.remove(j)
    while cols:
        A = X[:, cols]
        if A.shape[0] >= A.shape[1]:
            R = np.linalg.qr(A, mode="r")
            diag = np.abs(np.diag(R))
        else:  # more columns than rows: the trailing ones are aliased regardless
            R = np.linalg.qr(A[:, : A.shape[0]], mode="r")
            diag = np.concatenate([np.abs(np.diag(R)), np.zeros(A.shape[1] - A.shape[0])])
        bad = np.nonzero(diag <= tol * norms[cols])[0]
        if bad.size == 0:
            break
        j = cols[int(bad[0])]
        dropped.append(j)
        cols.remove(j)
    return sorted(dropped)


def build_fixed(fixed: str, frame: pd.DataFrame, context: dict) -> tuple[np.ndarray, list[str], Any]:
    """X (float64, n x p), its formulaic column names and the formulaic ``ModelSpec``."""
    from formulaic import model_matrix

    text = fixed.strip() or "1"
    try:
        with np.errstate(all="ignore"):  # non-finite values are reported by the caller
            mm = model_matrix(text, frame, na_action="ignore", context=context)
    except Exception as exc:
        raise ValueError(f"cannot build the fixed-effects matrix from {text!r}: {exc}") from exc
    X = np.asarray(mm, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] != len(frame):
        X = np.broadcast_to(X, (len(frame), X.shape[1])).copy()
    return np.ascontiguousarray(X), [str(c) for c in mm.columns], mm.model_spec


_ARITH_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|\d+\.?\d*(?:[eE][+-]?\d+)?|\*\*|[-+*/()])")


def _numeric_column(frame: pd.DataFrame, name: str, what: str) -> np.ndarray:
    s = frame[name]
    if not (pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)):
        raise TypeError(f"{what} column {name!r} must be numeric, got dtype {s.dtype}")
    return np.asarray(s.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _fast_arithmetic(expr: str, frame: pd.DataFrame, what: str) -> np.ndarray | None:
    """Plain arithmetic of numeric columns and numbers (``size - incidence``) without formulaic.

    Gives what formulaic's ``I(...)`` gives, in a fraction of the time; anything
    else (functions, attributes, non-numeric columns) returns None.
    """
    pos, names = 0, []
    while pos < len(expr):
        m = _ARITH_TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            return None
        if m.group(1):
            if m.group(1) not in frame.columns:
                return None
            names.append(m.group(1))
        pos = m.end()
    if not names:
        return None
    env = {}
    for nm in names:
        s = frame[nm]
        if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            return None
        env[nm] = _numeric_column(frame, nm, what)
    try:
        with np.errstate(all="ignore"):
            out = eval(compile(expr.strip(), "<expr>", "eval"), {"__builtins__": {}}, env)  # noqa: S307
    except Exception:
        return None
    out = np.asarray(out, dtype=np.float64)
    return np.broadcast_to(out, (len(frame),)).copy() if out.ndim == 0 else out


def evaluate_expression(expr: str, frame: pd.DataFrame, context: dict, what: str) -> np.ndarray:
    """A numeric vector from a column name or an expression formulaic evaluates (``log(t)``)."""
    from formulaic import model_matrix

    name = expr.strip().strip("`")
    if name in frame.columns:
        return _numeric_column(frame, name, what)
    fast = _fast_arithmetic(expr, frame, what)
    if fast is not None:
        return fast
    try:
        with np.errstate(all="ignore"):  # non-finite values are reported by the caller
            mm = model_matrix(f"0 + I({expr})", frame, na_action="ignore", context=context)
    except Exception as exc:
        raise ValueError(f"cannot evaluate {what} {expr!r}: {exc}") from exc
    v = np.asarray(mm, dtype=np.float64)
    if v.ndim == 2 and v.shape[1] != 1:
        raise ValueError(f"{what} {expr!r} must evaluate to one numeric column, got {v.shape[1]}")
    v = v.reshape(-1)
    if v.shape[0] != len(frame):
        v = np.broadcast_to(v, (len(frame),)).copy()
    return v
