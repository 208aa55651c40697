"""The model frame of the common small model without pandas per-column overhead.

:func:`interlace.model_frame.build_model_frame` handles every formula, every frame
library, missing values and stateful transforms; on a pandas 3 frame its fixed cost
(column selection, per-column ``frame[c]`` lookups, missing-value scans) is a few
milliseconds, more than the whole fit of a small model. This module builds the
identical :class:`~interlace.model_frame.ModelFrame` for the grammar most models use,
reading each column's array once (``DataFrame._get_column_array``):

- response: a numeric column, or ``cbind(s, f)`` with ``s`` a numeric column and ``f`` a
  numeric column or plain arithmetic of numeric columns and numbers (``n - s``);
- fixed part: ``+``-separated ``1`` / ``0`` / ``-1``, numeric columns and unordered
  categorical columns (string or integer categories), as ``fast_fixed`` reads them;
- random-effect terms ``(lhs | g)`` / ``(lhs || g)``: ``lhs`` of ``1`` / ``0`` / numeric
  columns, ``g`` one categorical or integer column;
- ``weights`` / ``offset``: None, an array, or a numeric column's name;
- ``dispformula`` / ``ziformula``: None or ``~ 1``;
- a pandas frame with unique string labels, no missing value and no unused category
  in the columns used.

Anything else (and any input the general path would warn about or refuse) returns
None and the general path runs, so errors, warnings and results are the general
path's. The parse of the formula text is cached (it depends on the text only).
``tests/test_formula_fastframe.py`` checks that both paths build the same frame.

Example
-------
>>> import interlace
>>> df = interlace.datasets.load("cbpp")
>>> fields, _ = fast_model_frame("cbind(incidence, size - incidence) ~ period + (1 | herd)", df,
...                              family="binomial")
>>> fields["fe_names"], fields["terms"][0].nlevels
(['Intercept', 'period[T.2]', 'period[T.3]', 'period[T.4]'], 15)
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["fast_model_frame", "FAST_PATH"]

# Switch for tests (both paths must agree) and for bisecting a difference.
FAST_PATH = {"enabled": True}

_EXACT_INT = 2 ** 53
_SIMPLE_ARITH = re.compile(r"[\w\s.+\-*/()]*")


@dataclass(frozen=True)
class _Plan:
    """The text-only part of a model frame: what each part reads."""

    response: str
    cbind: tuple[str, str] | None  # (successes column, failures expression)
    fail_names: tuple[str, ...]  # columns the failures expression reads
    fail_code: Any  # compiled failures expression (None: a column name)
    fixed: str | None  # parsed.fixed (None: no fixed part written)
    intercept: bool
    fixed_terms: tuple[str, ...]
    bars: tuple  # expanded Bars
    bar_cnames: tuple  # per bar: (intercept, numeric columns)
    disp: bool  # dispformula ~ 1
    zi: bool  # ziformula ~ 1


def _plain_pieces(text: str) -> tuple[bool, list[str]] | None:
    """(intercept, identifiers) of ``1 + a + b`` / ``0 + a``; None for anything else.
    The last intercept token wins (formulaic's rule); repeats are dropped."""
    from .fixed import _KEYWORDS

    intercept = True
    names: list[str] = []
    for piece in text.split("+"):
        p = piece.strip()
        if p == "1":
            intercept = True
        elif p in ("0", "-1"):
            intercept = False
        elif p.isidentifier() and p not in _KEYWORDS and p != "Intercept":
            if p not in names:
                names.append(p)
        else:
            return None
    return intercept, names


def _side_one(text: str | None) -> bool | None:
    """True for ``~ 1``, False for None, None for anything else."""
    if text is None:
        return False
    if not isinstance(text, str):
        return None
    return True if text.replace(" ", "") in ("~1", "1") else None


@functools.lru_cache(maxsize=256)
def _plan(formula: str, dispformula: str | None, ziformula: str | None) -> _Plan | None:
    from .bars import expand_bars, group_parts, scan_formula
    from .fixed import _KEYWORDS, _parse_arithmetic
    from .response import cbind_args

    disp, zi = _side_one(dispformula), _side_one(ziformula)
    if disp is None or zi is None:
        return None
    try:
        parsed = scan_formula(formula)
        bars = expand_bars(parsed.bars)
    except (ValueError, TypeError):
        return None
    if parsed.response is None or parsed.offsets:
        return None
    response = parsed.response
    cb = cbind_args(response)
    fail_names: tuple[str, ...] = ()
    fail_code = None
    if cb is not None:
        s, f = (a.strip() for a in cb)
        if not (s.isidentifier() and s not in _KEYWORDS):
            return None
        if not (f.isidentifier() and f not in _KEYWORDS):
            if "^" in f or "**" in f or not _SIMPLE_ARITH.fullmatch(f):
                return None
            arith = _parse_arithmetic(f)
            if arith is None:
                return None
            fail_names, fail_code = arith
            if any(nm in _KEYWORDS for nm in fail_names):
                return None
        cb = (s, f)
    elif not (response.isidentifier() and response not in _KEYWORDS):
        return None
    fixed_text = parsed.fixed.strip() if parsed.fixed else ""
    pieces = _plain_pieces(fixed_text or "1")
    if pieces is None:
        return None
    intercept, fixed_terms = pieces
    seen = set()
    bar_cnames = []
    for b in bars:
        if b.structure is not None:
            return None
        try:
            gp = group_parts(b.group)
        except ValueError:
            return None
        if len(gp) != 1 or not gp[0].isidentifier() or gp[0] != b.group.strip():
            return None
        key = (" ".join(b.lhs.split()), b.group.replace(" ", ""), b.structure)
        if key in seen:
            return None
        seen.add(key)
        lhs = [p.strip() for p in b.lhs.split("+")]
        if any(not p for p in lhs):
            return None
        has_int, names = True, []
        for p in lhs:
            if p == "1":
                continue
            if p in ("0", "-1"):
                has_int = False
                continue
            if not p.isidentifier() or p in _KEYWORDS or p in names or p == "Intercept":
                return None
            names.append(p)
        bar_cnames.append((has_int, tuple(names)))
    return _Plan(response, cb, tuple(fail_names), fail_code, parsed.fixed, intercept, tuple(fixed_terms),
                 tuple(bars), tuple(bar_cnames), disp, zi)


class _Columns:
    """The caller's columns, each read once: numpy arrays and pandas Categoricals."""

    __slots__ = ("data", "arrays", "n")

    def __init__(self, data: pd.DataFrame) -> None:
        self.data = data
        self.arrays: dict[str, Any] = {}
        self.n = len(data)

    def get(self, name: str) -> Any:
        """The column's array, or None when it is absent or not one this path reads."""
        arr = self.arrays.get(name)
        if arr is not None:
            return arr
        cols = self.data.columns
        if name not in cols:
            return None
        loc = cols.get_loc(name)
        if not isinstance(loc, (int, np.integer)):
            return None
        arr = self.data._get_column_array(int(loc))
        if isinstance(arr, np.ndarray):
            k = arr.dtype.kind
            if k == "f":
                if np.isnan(arr).any():
                    return None  # missing values: the general path drops the rows
            elif k in "iu":
                if arr.size and np.abs(arr).max() > _EXACT_INT:
                    return None
            else:
                return None
        elif isinstance(arr, pd.Categorical):
            codes = arr.codes
            if len(arr.categories) == 0 or (codes.size and codes.min() < 0):
                return None
            if np.bincount(codes, minlength=len(arr.categories)).min() == 0:
                return None  # unused levels: the general path drops them from the frame
        else:
            return None
        self.arrays[name] = arr
        return arr

    def numeric(self, name: str) -> np.ndarray | None:
        arr = self.get(name)
        if not isinstance(arr, np.ndarray):
            return None
        return arr.astype(np.float64)  # our own copy, as the general path's

    def frame_data(self) -> dict[str, Any]:
        """Our own copies of the columns read (for a formulaic spec built later)."""
        return {c: a.copy() for c, a in self.arrays.items()}


class _LazyFrame:
    """A pandas frame made on first use from copied columns (picklable)."""

    __slots__ = ("columns",)

    def __init__(self, columns: dict[str, Any]) -> None:
        self.columns = columns

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns)


def _categorical(arr: Any) -> tuple[np.ndarray, list[Any]] | None:
    """(codes, levels) of a fixed-effect factor as ``fast_fixed`` reads it; None otherwise."""
    if not isinstance(arr, pd.Categorical):
        return None
    dt = arr.dtype
    cats = dt.categories
    if dt.ordered:
        return None
    if cats.dtype.kind not in "iu" and not (cats.dtype == "str" or pd.api.types.infer_dtype(cats) == "string"):
        return None
    return np.asarray(arr.codes, dtype=np.int64), cats.tolist()  # (list(cats) iterates an Arrow Index: 20x slower)


def _group_codes(arr: Any) -> tuple[np.ndarray, list[str]] | None:
    """``factor_codes`` of a categorical (all levels used) or integer column."""
    from .terms import _label

    if isinstance(arr, pd.Categorical):
        return np.asarray(arr.codes, dtype=np.int64), _labels(arr.categories.tolist())
    if isinstance(arr, np.ndarray) and arr.dtype.kind in "iu":
        uniq, inverse = np.unique(arr, return_inverse=True)
        return inverse.astype(np.int64).reshape(-1), [_label(u) for u in uniq]
    return None


def _labels(values: list) -> list[str]:
    """``[_label(v) for v in values]``; strings are their own label."""
    from .terms import _label

    if all(type(v) is str for v in values):
        return values
    return [_label(v) for v in values]


def fast_model_frame(formula: Any, data: Any, *, family: Any, groups: Any = None, random: Any = None,
                     weights: Any = None, offset: Any = None, dispformula: Any = None, ziformula: Any = None,
                     missing: str = "drop") -> Any:
    """``(fields, offset_parts)``: the keyword arguments of the
    :class:`~interlace.model_frame.ModelFrame` that ``build_model_frame`` builds, for the
    grammar in the module docstring, and the offset's parts (for its range check, which
    ``build_model_frame`` makes); None for anything else (the general path then runs)."""
    if not FAST_PATH["enabled"] or groups is not None or random is not None or not isinstance(formula, str):
        return None
    if missing not in ("drop", "raise") or type(data) is not pd.DataFrame:
        return None
    from ..data import _plain_pandas

    if not _plain_pandas(data) or not hasattr(data, "_get_column_array"):
        return None
    if not (isinstance(dispformula, (str, type(None))) and isinstance(ziformula, (str, type(None)))):
        return None
    plan = _plan(formula, dispformula, ziformula)
    if plan is None:
        return None
    try:
        return _build(plan, formula, data, family, weights, offset)
    except (_Fallback, ValueError, TypeError):  # the general path raises its own errors
        return None


class _Fallback(Exception):
    """Anything the general path should see (it raises or warns as it always has)."""


def _need(x: Any) -> Any:
    if x is None:
        raise _Fallback
    return x


def _build(plan: _Plan, formula: str, data: pd.DataFrame, family: Any, weights: Any, offset: Any) -> Any:
    from ..model.re_term import ReTerm
    from ..validation import (
        check_finite,
        check_response,
        check_terms,
        check_vector,
        check_weights,
        resolve_family,
        scale_message,
    )
    from .fixed import LazyModelSpec, aliased_columns
    from .namespace import FormulaEnv
    from .spec import FrameSpec
    from .terms import TermSpec, order_terms, vc_names

    n_full = len(data)
    if n_full == 0 or len(data.columns) == 0:
        raise _Fallback
    family = resolve_family(family)
    cols = _Columns(data)

    # Response (the general path's evaluate_response).
    if plan.cbind is not None:
        s = _need(cols.numeric(plan.cbind[0]))
        if plan.fail_code is None:
            f = _need(cols.numeric(plan.cbind[1]))
        else:
            env = {}
            for nm in plan.fail_names:
                if nm not in env:
                    env[nm] = _need(cols.numeric(nm))
            with np.errstate(all="ignore"):
                f = eval(plan.fail_code, {"__builtins__": {}}, env)  # noqa: S307  (names and + - * / only)
            f = np.asarray(f, dtype=np.float64)
            f = np.broadcast_to(f, (n_full,)).copy() if f.ndim == 0 else f
        trials = s + f
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(trials == 0, 0.0, s / np.where(trials == 0, 1.0, trials))
        failures = f
    else:
        y = _need(cols.numeric(plan.response))
        trials = failures = None

    pred_cols: list[str] = list(plan.fixed_terms)
    fixed_arrays = [_need(cols.get(t)) for t in plan.fixed_terms]
    for b, (_, names) in zip(plan.bars, plan.bar_cnames):
        pred_cols += list(names) + [b.group.strip()]
    if "Intercept" in pred_cols:
        raise _Fallback

    # Weights and offset: None, an array, or a numeric column.
    def vec(v: Any, arg: str) -> tuple[np.ndarray | None, str | None]:
        if v is None:
            return None, None
        if isinstance(v, str):
            return _need(cols.numeric(v)), v
        arr = check_vector(v, n_full, arg)
        if np.isnan(arr).any():
            raise _Fallback
        return arr, None

    w_arr, w_expr = vec(weights, "weights")
    o_arr, o_expr = vec(offset, "offset")
    n = n_full
    prior = np.ones(n) if w_arr is None else w_arr
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning belongs to the general path (it sends it)
        try:
            check_finite(prior, "weights", nonnegative=True)
            wts = prior * trials if trials is not None else prior.copy()
            check_weights(prior, wts)
        except Warning:
            raise _Fallback from None
    off = np.zeros(n)
    off_parts: list[tuple[str, np.ndarray]] = []
    if o_arr is not None:
        if o_expr is None:
            check_finite(o_arr, "offset")
            off_parts.append(("offset", o_arr))
        else:
            check_finite(o_arr, f"offset {o_expr!r}")
            off_parts.append((f"offset {o_expr!r}", o_arr))
    for _, v in off_parts:
        off = off + v

    # Fixed effects (fast_fixed's layout).
    intercept = plan.intercept
    kinds = []
    width = int(intercept)
    full_done = intercept
    for t, arr in zip(plan.fixed_terms, fixed_arrays):
        if isinstance(arr, np.ndarray):
            kinds.append(("num", arr))
            width += 1
            continue
        cat = _need(_categorical(arr))
        codes, levels = cat
        full = not full_done
        full_done = True
        kinds.append(("cat", (codes, levels, full)))
        width += len(levels) - (0 if full else 1)
    X = np.zeros((n, width), dtype=np.float64)
    names: list[str] = []
    j = 0
    if intercept:
        X[:, 0] = 1.0
        names.append("Intercept")
        j = 1
    rows = np.arange(n)
    for t, (kind, val) in zip(plan.fixed_terms, kinds):
        if kind == "num":
            X[:, j] = val
            names.append(t)
            j += 1
            continue
        codes, levels, full = val
        drop = 0 if full else 1
        sel = codes >= drop
        X[rows[sel], j + codes[sel] - drop] = 1.0
        names += [f"{t}[{lev}]" for lev in levels] if full else [f"{t}[T.{lev}]" for lev in levels[1:]]
        j += len(levels) - drop
    if not np.all(np.isfinite(X)):
        raise _Fallback
    messages: list[str] = []
    drop_cols = aliased_columns(X)
    if drop_cols:
        raise _Fallback  # the general path warns and drops them
    keep_cols = list(range(X.shape[1]))
    fe_names = names
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            smsg = scale_message(X, fe_names)
        except Warning:
            raise _Fallback from None
    if smsg:
        raise _Fallback

    # Random-effect terms (build_term's plain path), in lme4's order.
    built = []
    for b, (has_int, lhs_names) in zip(plan.bars, plan.bar_cnames):
        group = b.group.strip()
        codes, levels = _need(_group_codes(_need(cols.get(group))))
        cnames = (["Intercept"] if has_int else []) + list(lhs_names)
        z = np.empty((n, len(cnames)), dtype=np.float64)
        for k, c in enumerate(cnames):
            if c == "Intercept":
                z[:, k] = 1.0
            else:
                z[:, k] = _need(cols.numeric(c))
        spec = TermSpec(b.group, [group], levels, b.lhs, None, cnames)
        term = ReTerm(group=b.group, vc_name=b.group, codes=codes, levels=levels, z=z, cnames=cnames, lhs=b.lhs,
                      cov=None)
        built.append((term, spec))
    order = order_terms([t.nlevels for t, _ in built])
    built = [built[i] for i in order]
    terms = [t for t, _ in built]
    for t, name in zip(terms, vc_names([t.group for t in terms])):
        t.vc_name = name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            check_terms(terms, n, family)
            keep_rows = (y != 0) if plan.zi and np.any(y != 0) else slice(None)
            rmsg = check_response(family, y[keep_rows], wts[keep_rows], plan.response,
                                  failures=failures[keep_rows] if failures is not None else None)
        except Warning:
            raise _Fallback from None
    if rmsg:
        raise _Fallback  # messages are warned by the general path
    messages += rmsg

    lazy = _LazyFrame(cols.frame_data())
    disp_X = disp_names = zi_X = zi_names = None
    disp_spec = zi_spec = None
    if plan.disp:
        disp_X, disp_names = np.ones((n, 1)), ["Intercept"]
        disp_spec = LazyModelSpec("1", lazy, disp_names)
    if plan.zi:
        zi_X, zi_names = np.ones((n, 1)), ["Intercept"]
        zi_spec = LazyModelSpec("1", lazy, zi_names)

    fixed_text = (plan.fixed or "").strip() or "1"
    spec = FrameSpec(
        formula=formula,
        fixed=plan.fixed,
        fixed_spec=LazyModelSpec(fixed_text, lazy, fe_names),
        keep_columns=keep_cols,
        fe_names=fe_names,
        terms=[s for _, s in built],
        formula_offsets=[],
        offset_expr=o_expr,
        offset_columns=[o_expr] if o_expr is not None else [],
        columns=list(dict.fromkeys(pred_cols)),
        context=FormulaEnv(),
        disp_spec=disp_spec,
        zi_spec=zi_spec,
    )
    fields = dict(
        y=np.ascontiguousarray(y, dtype=np.float64),
        X=np.ascontiguousarray(X),
        fe_names=fe_names,
        terms=terms,
        weights=np.ascontiguousarray(wts, dtype=np.float64),
        offset=np.ascontiguousarray(off, dtype=np.float64),
        response_name=plan.response,
        formula=formula,
        spec=spec,
        row_index=np.arange(n_full),
        n_dropped=0,
        dropped_columns=[],
        messages=messages,
        disp_X=disp_X,
        disp_names=disp_names,
        zi_X=zi_X,
        zi_names=zi_names,
        zi_terms=[],
        disp_terms=[],
    )
    return fields, off_parts
