"""Identical rows collapsed to weighted unique rows before the row passes (issue 26 item 4).

Rows with the same fixed-effect row, offset, random-effect levels and random-effect
covariates share one conditional mean, so a family whose log-likelihood of such rows
depends on them only through a sufficient sum (binomial: successes and trials;
Poisson with the log link: counts, with log(rows) added to the offset) can fit the
summed rows instead. The log-likelihood of the summed rows differs from the original's
by a constant (the binomial log choose terms, the Poisson multinomial term), so the
Laplace deviance, its optimum, gradient and Hessian are those of the original rows;
the fit is then evaluated once on the original rows (:meth:`Collapsed.expand`), which
gives R's logLik and per-row fitted values, residuals and predictions.

The family says whether and how its rows sum (``family.aggregate_rows``); continuous
covariates make every row unique and nothing is collapsed.

Example
-------
>>> import numpy as np, pandas as pd, interlace
>>> rng = np.random.default_rng(1)
>>> df = pd.DataFrame({"y": rng.integers(0, 2, 4000).astype(float), "x": rng.integers(0, 3, 4000),
...                    "g": rng.integers(0, 50, 4000).astype(str)})
>>> m = interlace.glmer("y ~ x + (1 | g)", df, family="binomial")
>>> m.optinfo["collapsed_rows"]
150
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from interlace.model_frame import ModelFrame

__all__ = ["collapse_rows", "Collapsed", "MIN_ROWS", "MAX_FRACTION"]

MIN_ROWS = 2000  # below this the row passes cost less than finding the unique rows
MAX_FRACTION = 0.5  # collapse only when it at least halves the rows


@dataclasses.dataclass
class Collapsed:
    """A model frame of unique rows (``frame``) and the original row -> unique row map."""

    frame: ModelFrame
    inverse: np.ndarray

    def expand(self, obj, opt, mf: ModelFrame, family):
        """(objective on the original rows at the optimum, opt with its deviance):
        one PIRLS on the original rows from the collapsed fit's modes (the same
        modes: the u-function is the same up to a constant), so the result's
        logLik and per-row quantities are the original rows'."""
        from interlace.objective.laplace import LaplaceObjective

        full = LaplaceObjective(mf, family)
        full.u = np.array(obj.u, copy=True)
        dev = full.deviance(np.asarray(opt.theta, dtype=float), np.asarray(opt.beta, dtype=float))
        full.nfev, full.ngev, full.pirls_iters = obj.nfev, obj.ngev, obj.pirls_iters
        return full, dataclasses.replace(opt, deviance=float(dev))


def _column_codes(c: np.ndarray) -> tuple[np.ndarray, int]:
    codes, uniq = pd.factorize(c, sort=False)
    return codes.astype(np.int64, copy=False), len(uniq)


def collapse_rows(mf: ModelFrame, family: Any) -> Collapsed | None:
    """The unique rows of ``mf`` summed by ``family.aggregate_rows``, or None
    when the family cannot sum rows, the frame is small, has side models, or
    the rows are mostly unique (continuous covariates).

    >>> collapse_rows(mf, family) is None  # doctest: +SKIP
    False
    """
    agg = getattr(family, "aggregate_rows", None)
    n = mf.n
    if (agg is None or n < MIN_ROWS or not mf.terms or mf.zi_X is not None or mf.disp_X is not None
            or mf.zi_terms or mf.disp_terms):
        return None
    cols = [mf.X[:, j] for j in range(mf.p)] + [mf.offset]
    for t in mf.terms:
        cols.append(t.codes)
        cols += [t.z[:, j] for j in range(t.k)]
    limit = MAX_FRACTION * n
    key, nkeys = np.zeros(n, dtype=np.int64), 1
    for c in cols:
        codes, k = _column_codes(np.asarray(c))
        if k == 1:
            continue
        if k > limit:  # a continuous column: (nearly) every row unique
            return None
        if nkeys * k >= 2 ** 62:  # keep the mixed-radix key inside int64
            key, nkeys = _column_codes(key)
        key = key * k + codes
        nkeys *= k
    inverse, nuniq = _column_codes(key)
    if nuniq > limit:
        return None
    out = agg(mf.y, mf.weights, inverse, nuniq)
    if out is None:
        return None
    y_c, wt_c, offset_shift = out
    first = np.empty(nuniq, dtype=np.int64)
    first[inverse[::-1]] = np.arange(n - 1, -1, -1)  # the first original row of each unique row
    terms = [dataclasses.replace(t, codes=np.ascontiguousarray(t.codes[first]), z=np.ascontiguousarray(t.z[first]))
             for t in mf.terms]
    frame = dataclasses.replace(
        mf, y=np.ascontiguousarray(y_c, dtype=np.float64), X=np.ascontiguousarray(mf.X[first]),
        weights=np.ascontiguousarray(wt_c, dtype=np.float64),
        offset=np.ascontiguousarray(mf.offset[first] + offset_shift, dtype=np.float64), terms=terms,
        row_index=None, messages=[])
    return Collapsed(frame, inverse)
