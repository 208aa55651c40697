"""The fixed part, the random-effect blocks and the side models' designs of new rows
(``newdata``) for prediction, with the column-and-level messages. Shared by
predict.py and predict_side.py (neither imports the other for these).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["newdata_design"]


def _sub_design(result, block: str, newdata: Any) -> np.ndarray:
    """Design matrix of the ``dispformula`` ("disp") or ``ziformula`` ("zi")
    sub-model for the training rows or ``newdata`` (intercept only when the
    model has no such formula)."""
    mf = result.model_frame
    X_train = {"disp": mf.disp_X, "zi": mf.zi_X}.get(block)
    spec = getattr(mf.spec, {"disp": "disp_spec", "zi": "zi_spec"}.get(block, ""), None)
    if newdata is None:
        return np.asarray(X_train, dtype=float) if X_train is not None else np.ones((mf.n, 1))
    if spec is None or X_train is None:
        return np.ones((_nrows(newdata), 1))
    from interlace.data import to_pandas_columns

    frame = to_pandas_columns(newdata, _spec_columns(spec, newdata), arg="newdata")
    X = np.asarray(spec.get_model_matrix(frame), dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] != len(frame):
        X = np.broadcast_to(X, (len(frame), X.shape[1])).copy()
    return X


def _nrows(data: Any) -> int:
    from interlace.data import frame_len

    return frame_len(data, "newdata")


def _spec_columns(spec, data) -> list[str]:
    from interlace.data import frame_columns

    have = frame_columns(data, "newdata")
    try:
        needed = set(spec.required_variables)
    except Exception:  # older formulaic: read every column the frame has
        return list(have)
    return [c for c in have if c in needed]


def _unseen_level_message(fixed_spec, frame) -> str | None:
    """'column 'x' has level 'z' not seen in fitting' for the first unseen categorical level."""
    state = getattr(fixed_spec, "encoder_state", None) or {}
    for var, (kind, st) in state.items():
        cats = st.get("categories") if isinstance(st, dict) else None
        if cats is None or var not in frame.columns:
            continue
        known = set(map(str, cats))
        vals = frame[var]
        new = [v for v in dict.fromkeys(vals.dropna().tolist()) if str(v) not in known and v not in cats]
        if new:
            return (f"newdata column {var!r} has level(s) not seen in fitting: "
                    f"{', '.join(map(repr, map(str, new[:10])))} (known: {', '.join(map(str, cats[:20]))})")
    return None


def _needed_columns(result, which: list[int], offset: Any) -> list[str]:
    """Columns of newdata the fixed part, the kept random terms and the offsets read."""
    from interlace.data import identifiers

    spec = result.model_frame.spec
    known = set(spec.columns) | set(spec.offset_columns)
    need: list[str] = []
    if spec.fixed:
        need += [c for c in identifiers(spec.fixed, known) if c in known]
    for expr in spec.formula_offsets:
        need += [c for c in identifiers(expr, known) if c in known]
    if offset is None and spec.offset_expr is not None:
        need += list(spec.offset_columns)
    for i in which:
        t = spec.terms[i]
        need += list(t.parts) + [c for c in identifiers(t.lhs, known) if c in known]
    return list(dict.fromkeys(need))


def newdata_design(result, newdata: Any, which: list[int] | None = None, allow_new_levels: bool = False,
                   offset: Any = None):
    """``(X, blocks, offset, ok)`` for the rows of ``newdata`` without missing values.

    ``blocks`` holds ``(codes, z)`` for the terms in ``which`` only, so
    grouping columns of terms left out (population-level prediction) need not
    be in ``newdata``. ``ok`` marks the complete rows (lme4's ``na.pass``:
    the others predict NaN). An unseen level of a fixed-effect factor is a
    ValueError naming the column and the level.
    """
    from interlace.data import frame_columns, identifiers, missing_mask, to_pandas_columns

    mf = result.model_frame
    spec = mf.spec
    which = list(range(len(mf.terms))) if which is None else list(which)
    need = _needed_columns(result, which, offset)
    if isinstance(offset, str):
        have = set(frame_columns(newdata, "newdata"))
        need += [offset] if offset in have else [c for c in identifiers(offset, have) if c in have]
    frame = to_pandas_columns(newdata, need, arg="newdata")
    m_all = len(frame)
    mask, _ = missing_mask(frame)
    ok = ~mask
    if isinstance(offset, (np.ndarray, list, tuple)) or (offset is not None and not isinstance(offset, str)):
        arr = np.asarray(offset, dtype=np.float64).reshape(-1)
        if arr.shape[0] != m_all:
            raise ValueError(f"offset has length {arr.shape[0]}, but newdata has {m_all} rows")
        ok &= np.isfinite(arr)
        offset = arr[ok]
    sub = frame.loc[ok].reset_index(drop=True) if not ok.all() else frame
    X, blocks, off = spec.design(sub, allow_new_levels, which=which, offset=offset,
                                 unseen_message=_unseen_level_message)
    return X, blocks, off, ok
