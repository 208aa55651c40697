"""glmmTMB's ``numFactor``: a factor whose levels are coordinates.

Spatial (``exp``, ``gau``, ``mat``) and continuous-time (``ou``) covariance structures need the
position of each level of the term's left side. glmmTMB carries it in the level names: the
factor built by ``numFactor(x, y)`` has one level per distinct coordinate tuple, named
``"(x,y)"`` with R's ``as.character`` of each number (15 significant digits, fixed or
scientific notation, whichever is shorter), and the structure reads the coordinates back from
the model-matrix column names (glmmTMB's ``parseNumLevels``).

Levels are ordered as glmmTMB orders them: sorted by the last coordinate, ties broken by the
one before it, and so on (``numFactor`` sorts stably by each column in turn).

Example
-------
>>> f = numFactor([1, 2.5, 1], [3, 4, 3])
>>> list(f), list(f.categories)
(['(1,3)', '(2.5,4)', '(1,3)'], ['(1,3)', '(2.5,4)'])
>>> parse_num_levels(["pos(1,3)", "pos[(2.5,4)]"]).tolist()
[[1.0, 3.0], [2.5, 4.0]]
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["numFactor", "parse_num_levels", "r_number"]


def r_number(x: float) -> str:
    """R's ``as.character`` of a double (R 4.2): the fewest significant digits (at most 15)
    that give back the value rounded to 15, in fixed notation unless scientific is shorter.

    >>> [r_number(v) for v in (1e5, 1e-4, 0.00012, 120000.0, 1 / 3, 2.0**60, -2.5)]
    ['1e+05', '1e-04', '0.00012', '120000', '0.333333333333333', '1152921504606846976', '-2.5']
    """
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    if x == 0.0:
        return "0"
    mant, exp_s = f"{x:.14e}".split("e")
    kpower = int(exp_s)
    digits = mant.lstrip("-").replace(".", "").rstrip("0") or "0"
    nsig = len(digits)
    neg = x < 0
    # R's formatReal: fixed width vs scientific width; fixed wins ties (scipen = 0)
    rgt = max(0, nsig - kpower - 1)
    left = max(1, kpower + 1)
    fixed_w = neg + left + (rgt + 1 if rgt > 0 else 0)
    sci_w = neg + (nsig + 1 if nsig > 1 else 1) + (5 if abs(kpower) >= 100 else 4)
    if fixed_w <= sci_w:
        return f"{x:.{rgt}f}"
    m = digits[0] + ("." + digits[1:] if nsig > 1 else "")
    return f"{'-' if neg else ''}{m}e{'-' if kpower < 0 else '+'}{abs(kpower):02d}"


def _column(v: Any, i: int) -> tuple[list[str], np.ndarray]:
    """One argument of numFactor: its labels (R's as.character) and its sort keys."""
    if isinstance(v, pd.Series) and isinstance(v.dtype, pd.CategoricalDtype):
        v = v.array
    if isinstance(v, pd.Categorical):
        if (v.codes < 0).any():
            raise ValueError(f"numFactor: argument {i + 1} has missing values")
        return [str(c) for c in v.astype(object)], v.codes.astype(float)
    a = np.asarray(v)
    if a.ndim != 1:
        raise ValueError(f"numFactor: argument {i + 1} must be one-dimensional, got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise TypeError(f"numFactor: all arguments must be numeric or factor; argument {i + 1} has dtype {a.dtype}")
    a = a.astype(float)
    if np.isnan(a).any():
        raise ValueError(f"numFactor: argument {i + 1} has missing values")
    return [r_number(t) for t in a], a


def numFactor(*columns: Any) -> pd.Categorical:
    """A factor whose levels are the distinct coordinate tuples of ``columns`` (glmmTMB's
    ``numFactor``), named ``"(x1,x2,...)"`` as glmmTMB names them.

    Use it to make the position column of a spatial or continuous-time term,
    ``df["pos"] = numFactor(df.x, df.y)`` and ``exp(pos + 0 | group)``, or inside the formula,
    ``ou(numFactor(t) + 0 | subject)``.

    >>> numFactor([0.5, 2, 0.5]).categories.tolist()
    ['(0.5)', '(2)']
    """
    if not columns:
        raise ValueError("numFactor needs at least one coordinate column")
    cols = [_column(c, i) for i, c in enumerate(columns)]
    n = len(cols[0][0])
    if any(len(lab) != n for lab, _ in cols):
        raise ValueError(f"numFactor: the coordinate columns have different lengths {[len(lab) for lab, _ in cols]}")
    labels = ["(" + ",".join(parts) + ")" for parts in zip(*(lab for lab, _ in cols))]
    first: dict[str, int] = {}
    for i, lab in enumerate(labels):
        first.setdefault(lab, i)
    rows = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    # stable sorts by each column in turn: the last column is the primary key
    keys = np.stack([key[rows] for _, key in cols])
    order = np.lexsort(keys)
    levels = [labels[r] for r in rows[order]]
    return pd.Categorical(labels, categories=levels)


_TUPLE = re.compile(r"\(([^()]*)\)[^()]*$")


def parse_num_levels(names: Sequence[str]) -> np.ndarray:
    """Coordinates from level or column names ending in ``"(x1,x2,...)"`` (glmmTMB's
    ``parseNumLevels``); the text before the parenthesis (``"pos"``, ``"pos["``) is ignored.

    Returns an (n, d) float array. Raises ValueError naming the names that carry no
    coordinates or tuples of different lengths.

    >>> parse_num_levels(["(1e-05,2)", "(3,-4.5)"]).tolist()
    [[1e-05, 2.0], [3.0, -4.5]]
    """
    out: list[list[float]] = []
    bad: list[str] = []
    for s in names:
        m = _TUPLE.search(str(s))
        try:
            if m is None:
                raise ValueError
            out.append([float(p) for p in m.group(1).split(",")])
        except ValueError:
            bad.append(str(s))
    if bad:
        raise ValueError(f"cannot read coordinates from {bad[:3]}{' ...' if len(bad) > 3 else ''}: "
                         "the levels must be coordinate tuples such as '(1.5,2)' (make them with numFactor)")
    dims = {len(r) for r in out}
    if len(dims) > 1:
        raise ValueError(f"coordinate tuples of different lengths {sorted(dims)} in {list(names)[:3]} ...")
    return np.asarray(out, dtype=float).reshape(len(out), dims.pop() if dims else 0)
