"""The parse stage's output: a validated, numeric model frame.

``ModelFrame`` is the only thing the objective stage sees of the user's data
(lme4's ``glFormula`` result). Random-effect terms are typed blocks
(MixedModels.jl's ``ReMat``): per-row level codes plus the per-row covariates
of the bar's left side. Z is never formed as a dense n x q matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ReTerm:
    """One random-effect term ``(lhs | group)``.

    Attributes
    ----------
    group:
        Grouping factor as lme4 names it (``"herd"``, ``"a:b"``).
    vc_name:
        Name in VarCorr: the group name, or ``"Subject.1"`` for the second
        term on the same factor (lme4's naming after ``||`` expansion).
    codes:
        int64 array (n,), the level index of each row (0..nlevels-1).
    levels:
        Level labels, in index order.
    z:
        float64 array (n, k), C-contiguous: the covariates of the left side.
    cnames:
        The k column names of ``z`` in formulaic style (``"Intercept"``, ``"Days"``).
    lhs:
        The left side's formula text (``"1 + Days"``).
    """

    group: str
    vc_name: str
    codes: np.ndarray
    levels: list[str]
    z: np.ndarray
    cnames: list[str]
    lhs: str = "1"

    @property
    def k(self) -> int:
        return int(self.z.shape[1])

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def q(self) -> int:
        return self.k * self.nlevels


@dataclass
class ModelFrame:
    """Numeric model data after parsing, NA handling and validation.

    Attributes
    ----------
    y: float64 (n,) response (binomial: proportion of successes).
    X: float64 (n, p) fixed-effects matrix, aliased columns already dropped.
    fe_names: the p column names in formulaic style (``Intercept``, ``period[T.2]``).
    terms: random-effect terms ordered by decreasing number of levels (stable).
    weights: float64 (n,) prior weights (binomial ``cbind``: the trial counts).
    offset: float64 (n,) total offset (formula ``offset()`` plus ``offset=``).
    response_name: the response's text as written in the formula.
    formula: the full formula text as given (with bars).
    spec: object able to rebuild X, the terms and the offset from new data
        (``spec.transform(newdata, allow_new_levels=...)``); see formula/.
    row_index: positions (in the caller's frame) of the rows used.
    n_dropped: rows dropped for missing values.
    dropped_columns: aliased fixed-effect columns dropped.
    messages: warnings emitted while building the frame (also warned).
    disp_X / disp_names: dispersion sub-model matrix (None without dispformula).
    zi_X / zi_names: zero-inflation sub-model matrix (None without ziformula).
    """

    y: np.ndarray
    X: np.ndarray
    fe_names: list[str]
    terms: list[ReTerm]
    weights: np.ndarray
    offset: np.ndarray
    response_name: str = "y"
    formula: str = ""
    spec: Any = None
    row_index: np.ndarray | None = None
    n_dropped: int = 0
    dropped_columns: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    disp_X: np.ndarray | None = None
    disp_names: list[str] | None = None
    zi_X: np.ndarray | None = None
    zi_names: list[str] | None = None

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def p(self) -> int:
        return int(self.X.shape[1])
