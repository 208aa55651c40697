"""The response: a column, ``cbind(successes, failures)``, ``successes / trials`` or an expression.

A response column must be numeric or convertible without loss (nullable,
pyarrow, Decimal; see :func:`interlace.validation.numeric_values`). Only the
binomial family reads a factor, as R does: a categorical (or a column of
non-numeric strings, whose levels sort as R's ``factor()`` sorts them) is 0
for its first level and 1 otherwise. Strings that are numbers are refused for
every family (lme4: "response must be numeric"), so a count held as text can
never be read as a two-level factor.

Example
-------
>>> import pandas as pd
>>> df = pd.DataFrame({"s": [1, 2], "n": [4, 4]})
>>> r = evaluate_response("cbind(s, n - s)", df, {})
>>> r.y.tolist(), r.trials.tolist()
([0.25, 0.5], [4.0, 4.0])
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .bars import split_top_level
from .fixed import evaluate_expression

__all__ = ["Response", "evaluate_response", "cbind_args"]

# families whose response may be an R factor (first level = failure)

@dataclass
class Response:
    """The numeric response; ``trials``/``failures`` are set for ``cbind``."""

    y: np.ndarray
    kind: str  # "column", "cbind", "expression", "factor"
    trials: np.ndarray | None = None
    failures: np.ndarray | None = None


def cbind_args(text: str) -> list[str] | None:
    """The two arguments of ``cbind(a, b)``, or None when the response is not a cbind."""
    m = re.fullmatch(r"\s*cbind\s*\((.*)\)\s*", text, flags=re.S)
    if not m:
        return None
    args = [p.strip() for _, p in split_top_level(m.group(1), ",")]
    if len(args) != 2 or not all(args):
        raise ValueError(f"cbind() in the response needs two arguments (successes, failures), got {text!r}")
    return args


def _family(family: Any) -> Any:
    """A family object from a name (None stays None: a factor is read as binomial's)."""
    if isinstance(family, str):
        from interlace.validation import resolve_family

        return resolve_family(family)
    return family


def _is_text(col: pd.Series) -> bool:
    dt = col.dtype
    if pd.api.types.is_string_dtype(dt) and not (isinstance(dt, np.dtype) and dt == object):
        return True
    if isinstance(dt, np.dtype) and dt == object:
        vals = col.dropna()
        return len(vals) > 0 and all(isinstance(v, str) for v in vals)
    return False


def _factor_response(col: pd.Series, name: str, fam: str | None) -> np.ndarray:
    """R's binomial factor response: 0 for the first level, 1 otherwise."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = col.cat.categories
        first = cats[0] if len(cats) else None
        y = (col != first).to_numpy(dtype=np.float64)
        y[col.isna().to_numpy()] = np.nan
        return y
    vals = col.dropna()
    numeric = [v for v in vals.unique() if _number_text(v)]
    if numeric:
        raise ValueError(
            f"{fam} response {name!r} holds numbers as strings (dtype {col.dtype}, e.g. {numeric[0]!r}); "
            "lme4 refuses a character response: convert it with .astype(float), or make it a categorical "
            "to use it as a factor")
    levels = sorted(str(v) for v in vals.unique())
    if len(levels) > 2:
        raise ValueError(
            f"{fam} response {name!r} has {len(levels)} distinct strings ({', '.join(levels[:5])}"
            f"{', ...' if len(levels) > 5 else ''}); a binomial response needs two (the first in sorted "
            "order is the failure) — make it a categorical to choose the level order")
    first = levels[0] if levels else None
    y = (col.astype(str) != first).to_numpy(dtype=np.float64)
    y[col.isna().to_numpy()] = np.nan
    return y


def _number_text(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        float(v)
    except ValueError:
        return False
    return True


def evaluate_response(text: str, frame: pd.DataFrame, context: dict, family: Any = None) -> Response:
    """Evaluate the response as lme4's glmer reads it (binomial proportions for ``cbind``).

    ``family`` (a name or family object) decides whether a factor response is
    allowed (binomial only); without it a factor is read as binomial's.

    >>> evaluate_response("y", pd.DataFrame({"y": ["0", "3"]}), {}, "poisson")
    Traceback (most recent call last):
    ...
    ValueError: poisson response 'y' must be numeric, got dtype str (strings): convert it with .astype(float) if the strings are numbers
    """
    from interlace.validation import numeric_values

    family = _family(family)
    fam = None if family is None else str(getattr(family, "name", "")).strip().lower() or None
    args = cbind_args(text)
    if args is not None:
        s = evaluate_expression(args[0], frame, context, "response")
        f = evaluate_expression(args[1], frame, context, "response")
        n = s + f
        with np.errstate(invalid="ignore", divide="ignore"):
            # R's binomial()$initialize: y = ifelse(n == 0, 0, s / n).
            y = np.where(n == 0, 0.0, s / np.where(n == 0, 1.0, n))
        return Response(y=y, kind="cbind", trials=n, failures=f)
    name = text.strip().strip("`")
    if name in frame.columns:
        col = frame[name]
        factor_ok = family is None or bool(getattr(family, "factor_response", False))
        if factor_ok and (isinstance(col.dtype, pd.CategoricalDtype) or _is_text(col)):
            return Response(y=_factor_response(col, name, fam or "binomial"), kind="factor")
        what = f"{fam} response {name!r}" if fam else f"response {name!r}"
        return Response(y=numeric_values(col, what), kind="column")
    return Response(y=evaluate_expression(text, frame, context, "response"), kind="expression")
