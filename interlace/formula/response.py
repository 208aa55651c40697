"""The response: a column, ``cbind(successes, failures)``, ``successes / trials`` or an expression.

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

import numpy as np
import pandas as pd

from .bars import split_top_level
from .fixed import evaluate_expression

__all__ = ["Response", "evaluate_response", "cbind_args"]


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


def evaluate_response(text: str, frame: pd.DataFrame, context: dict) -> Response:
    """Evaluate the response as lme4's glmer reads it (binomial proportions for ``cbind``)."""
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
        if pd.api.types.is_bool_dtype(col.dtype):
            return Response(y=col.to_numpy(dtype=np.float64), kind="column")
        if not pd.api.types.is_numeric_dtype(col.dtype):
            # R's binomial: a factor response is 0 for its first level, 1 otherwise.
            if isinstance(col.dtype, pd.CategoricalDtype):
                first = col.cat.categories[0] if len(col.cat.categories) else None
            else:
                vals = sorted(str(v) for v in col.dropna().unique())
                first = vals[0] if vals else None
                col = col.astype(str)
            y = (col != first).to_numpy(dtype=np.float64)
            return Response(y=y, kind="factor")
        return Response(y=col.to_numpy(dtype=np.float64, na_value=np.nan), kind="column")
    return Response(y=evaluate_expression(text, frame, context, "response"), kind="expression")
