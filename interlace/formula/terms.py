"""Random-effect terms: grouping-factor coding and the left side's covariates.

A term ``(lhs | group)`` becomes a typed block (``ReTerm``): per-row level codes
of the grouping factor and the ``n x k`` matrix of the left side, built by
formulaic (so stateful transforms and factor contrasts can be replayed on new
data through the kept ``ModelSpec``).

Example
-------
>>> import pandas as pd
>>> codes, levels = factor_codes(pd.Series([3, 1, 3, 2]))
>>> codes.tolist(), levels
([2, 0, 2, 1], ['1', '2', '3'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..model.re_term import ReTerm
from .bars import Bar, group_parts

__all__ = ["factor_codes", "level_labels", "TermSpec", "build_term", "order_terms"]


def _label(v: Any) -> str:
    """One level label as R's ``as.character`` would print it."""
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if f.is_integer() and abs(f) < 1e15:
            return str(int(f))
        return format(f, ".15g")
    return str(v)


def level_labels(series: pd.Series) -> np.ndarray:
    """Per-row level labels (object array of str) of a grouping variable."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = [_label(c) for c in series.cat.categories]
        codes = np.asarray(series.array.codes)
        return np.array([cats[c] if c >= 0 else None for c in codes], dtype=object)
    return np.array([_label(v) for v in series.to_numpy()], dtype=object)


def _check_mixed_labels(series: pd.Series) -> None:
    """Distinct values of an object column that print alike (``1`` and ``"1"``)
    would silently become one level: a ValueError naming the column."""
    raw = pd.unique(series.dropna())
    labels = {}
    for v in raw:
        key = _label(v)
        if key in labels and type(labels[key]) is not type(v):
            raise ValueError(
                f"grouping column {series.name!r} (dtype object) holds {labels[key]!r} "
                f"({type(labels[key]).__name__}) and {v!r} ({type(v).__name__}), which would be one level; "
                "give the column one type (e.g. .astype(str))")
        labels[key] = v


def _arrow_strings(series: pd.Series) -> tuple[np.ndarray, list[str]] | None:
    """(codes with -1 for missing, labels in first-seen order) of an Arrow-backed string
    column, as pd.factorize gives them; None for any other column."""
    to_arrow = getattr(series.array, "__arrow_array__", None)
    if to_arrow is None or not pd.api.types.is_string_dtype(series.dtype):
        return None
    try:
        import pyarrow as pa

        arr = to_arrow()
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            return None
        enc = arr.dictionary_encode()
    except Exception:  # anything unusual: pandas' factorize
        return None
    idx = enc.indices
    codes = idx.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) if idx.null_count else \
        idx.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, [str(v) for v in enc.dictionary.to_pylist()]


def factor_codes(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Level codes (int64) and labels of a grouping variable, as R's ``factor()`` makes them.

    Categoricals keep their category order with unused levels dropped (lme4
    drops them for grouping factors); numbers sort numerically; anything else
    sorts as strings.
    """
    dt = series.dtype
    if isinstance(dt, np.dtype) and dt.kind in "iub":
        # numpy integers/booleans: no missing values, and np.unique sorts as factorize(sort=True)
        uniq, inverse = np.unique(series.to_numpy(), return_inverse=True)
        return inverse.astype(np.int64).reshape(-1), [_label(u) for u in uniq]
    if isinstance(dt, pd.CategoricalDtype):
        raw = np.asarray(series.array.codes, dtype=np.int64)
        used = np.unique(raw[raw >= 0])
        remap = np.full(len(series.cat.categories), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        codes = np.where(raw >= 0, remap[np.maximum(raw, 0)], -1)
        cats = series.cat.categories  # once: the accessor builds a Categorical per call
        levels = [_label(v) for v in cats.take(used).to_numpy(dtype=object)]
        return codes.astype(np.int64), levels
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        codes, uniq = pd.factorize(series, sort=True, use_na_sentinel=True)
        return codes.astype(np.int64), [_label(u) for u in np.asarray(uniq)]
    if series.dtype == object:
        _check_mixed_labels(series)
    # Hash first, then sort only the distinct labels (as R's factor() sorts them).
    arrow = _arrow_strings(series)
    if arrow is not None:  # pandas 3 strings: Arrow's dictionary encoding, 4x cheaper than factorize
        codes, labels = arrow
    else:
        codes, uniq = pd.factorize(series.astype(str) if series.dtype == object else series, use_na_sentinel=True)
        labels = [str(u) for u in np.asarray(uniq, dtype=object)]
    order = sorted(range(len(labels)), key=labels.__getitem__)
    remap = np.empty(len(labels), dtype=np.int64)
    remap[order] = np.arange(len(labels))
    codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1).astype(np.int64)
    return codes, [labels[i] for i in order]


def group_codes(frame: pd.DataFrame, group: str) -> tuple[np.ndarray, list[str]]:
    """Codes and labels of a grouping factor ``a`` or interaction ``a:b`` (present combinations only)."""
    parts = group_parts(group)
    if len(parts) == 1:
        return factor_codes(frame[parts[0]])
    coded = [factor_codes(frame[p]) for p in parts]
    keys = np.stack([c for c, _ in coded], axis=1)
    # R's a:b orders levels with the first factor varying slowest; factor() drops absent ones.
    sizes = [max(len(lab), 1) for _, lab in coded]
    if keys.min(initial=0) >= 0 and float(np.prod(sizes, dtype=float)) < 2.0 ** 62:
        # one mixed-radix integer per row sorts as the rows do (first factor slowest):
        # np.unique on int64, not on rows (axis=0 sorts a void view, ~0.15 s on 73k rows)
        key = np.zeros(len(keys), dtype=np.int64)
        for j in range(len(parts)):
            key = key * sizes[j] + keys[:, j]
        ukey, inverse = np.unique(key, return_inverse=True)
        uniq = np.empty((len(ukey), len(parts)), dtype=np.int64)
        for j in range(len(parts) - 1, -1, -1):
            uniq[:, j] = ukey % sizes[j]
            ukey = ukey // sizes[j]
    else:
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    levels = [":".join(coded[j][1][row[j]] for j in range(len(parts))) for row in uniq]
    return inverse.astype(np.int64).ravel(), levels


@dataclass
class TermSpec:
    """What is needed to rebuild one term on new data."""

    group: str
    parts: list[str]
    levels: list[str]
    lhs: str
    lhs_spec: Any  # formulaic ModelSpec of the left side
    cnames: list[str]

    def codes_for(self, frame: pd.DataFrame, allow_new_levels: bool) -> np.ndarray:
        """Level codes of new rows; -1 (or a ValueError) for levels not seen in training."""
        labels = [level_labels(frame[p]) for p in self.parts]
        rows = labels[0] if len(labels) == 1 else np.array(
            [":".join(str(x) for x in t) for t in zip(*labels)], dtype=object
        )
        index = {lev: i for i, lev in enumerate(self.levels)}
        codes = np.fromiter((index.get(r, -1) for r in rows), dtype=np.int64, count=len(rows))
        if not allow_new_levels and (codes < 0).any():
            new = list(dict.fromkeys(str(r) for r, c in zip(rows, codes) if c < 0))
            raise ValueError(
                f"new level(s) of grouping factor {self.group!r}: {', '.join(new[:10])}"
                f"{' ...' if len(new) > 10 else ''}; use allow_new_levels=True to predict them "
                "at the population level"
            )
        return codes

    def z_for(self, frame: pd.DataFrame) -> np.ndarray:
        """The left side's covariates for new rows."""
        if self.lhs_spec is None:  # plain numeric columns (the fast path of build_term)
            return _plain_lhs(frame, self.cnames)
        mm = self.lhs_spec.get_model_matrix(frame)
        return np.ascontiguousarray(np.asarray(mm, dtype=np.float64))


def build_term(frame: pd.DataFrame, bar: Bar, context: Any,
               full: pd.DataFrame | None = None) -> tuple[Any, TermSpec]:
    """Build the ``ReTerm`` of one expanded (single-bar, no ``/``) term and its ``TermSpec``.

    ``full``: the rows before missing values were dropped (stateful transforms
    of the left side take their state from them, as in R's model frame).
    """
    from .fixed import BoundSpec, _error_text, formulaic_matrix
    from .namespace import as_env

    codes, levels = group_codes(frame, bar.group)
    plain = _plain_cnames(bar.lhs, frame)
    if plain is not None:
        # Intercepts and numeric columns need no formulaic pass (most terms are like this).
        z = _plain_lhs(frame, plain)
        spec = TermSpec(bar.group, group_parts(bar.group), levels, bar.lhs, None, plain)
        term = ReTerm(group=bar.group, vc_name=bar.group, codes=codes, levels=levels, z=z, cnames=plain, lhs=bar.lhs,
                      cov=_structure(bar, plain))
        return term, spec
    env = as_env(context)
    try:
        mm = formulaic_matrix(bar.lhs, frame, env, f"random-effect term {bar.text()}", full)
    except Exception as exc:
        if isinstance(exc, ValueError) and "generates the column name" in str(exc):
            raise
        raise ValueError(f"cannot build the left side of random-effect term {bar.text()}: {_error_text(exc)}") from exc
    z = np.ascontiguousarray(np.asarray(mm, dtype=np.float64))
    if z.ndim != 2 or z.shape[1] == 0:
        raise ValueError(f"random-effect term {bar.text()} has no columns on its left side")
    if z.shape[0] != len(frame):
        z = np.broadcast_to(z, (len(frame), z.shape[1])).copy()
    cnames = [str(c) for c in mm.columns]
    spec = TermSpec(bar.group, group_parts(bar.group), levels, bar.lhs, BoundSpec(mm.model_spec, env), cnames)
    term = ReTerm(group=bar.group, vc_name=bar.group, codes=codes, levels=levels, z=z, cnames=cnames, lhs=bar.lhs,
                  cov=_structure(bar, cnames))
    return term, spec


def _structure(bar: Bar, cnames: list[str]) -> Any:
    """The term's covariance structure from ``name(lhs | group)`` (None: lme4's default ``us``).

    A ValueError from the registry (an unknown name, a term the structure cannot support)
    is re-raised naming the term as written.
    """
    if bar.structure is None:
        return None
    from ..model.covariance import make_structure, structure_kwargs

    try:
        return make_structure(bar.structure, list(cnames), **structure_kwargs(bar.structure, bar.args))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"random-effect term {bar.text()}: {exc}") from exc


def _plain_cnames(lhs: str, frame: pd.DataFrame) -> list[str] | None:
    """Column names of a left side made only of 1/0 and numeric columns, as formulaic names them."""
    pieces = [p.strip() for p in lhs.split("+")]
    if any(not p for p in pieces):
        return None
    intercept = True
    names: list[str] = []
    for p in pieces:
        if p == "1":
            continue
        if p in ("0", "-1"):
            intercept = False
            continue
        if p not in frame.columns or p in names:
            return None
        dt = frame[p].dtype
        if not pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt):
            return None
        names.append(p)
    return (["Intercept"] if intercept else []) + names


def _plain_lhs(frame: pd.DataFrame, cnames: list[str]) -> np.ndarray:
    z = np.empty((len(frame), len(cnames)), dtype=np.float64)
    for j, c in enumerate(cnames):
        z[:, j] = 1.0 if c == "Intercept" else frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
    return z


def order_terms(nlevels: list[int]) -> list[int]:
    """lme4's mkReTrms ordering: if any later term has more levels, ``rev(order(nl))``.

    ``order`` is R's stable ascending sort, reversed, so the result is
    decreasing in the number of levels (ties then come out in reverse order, as
    in lme4); when the terms are already non-increasing they are left as written.

    >>> order_terms([118, 403, 63])
    [1, 0, 2]
    >>> order_terms([18, 18])
    [0, 1]
    """
    if not any(b > a for a, b in zip(nlevels, nlevels[1:])):
        return list(range(len(nlevels)))
    asc = sorted(range(len(nlevels)), key=lambda i: nlevels[i])
    return asc[::-1]


def vc_names(groups: list[str]) -> list[str]:
    """R's ``make.unique``: ``["Subject", "Subject"]`` -> ``["Subject", "Subject.1"]``."""
    seen: dict[str, int] = {}
    out = []
    taken = set(groups)
    for g in groups:
        if g not in seen:
            seen[g] = 0
            out.append(g)
            continue
        k = seen[g]
        while True:
            k += 1
            cand = f"{g}.{k}"
            if cand not in taken:
                break
        seen[g] = k
        taken.add(cand)
        out.append(cand)
    return out
