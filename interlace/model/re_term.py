"""One random-effect term ``(lhs | group)`` of a model frame: its grouping
factor's codes and levels, the covariates of its left side and its covariance
structure. The parse stage builds it (``formula/terms.py``); the objectives
read it. Imports nothing from the package.

Example
-------
>>> import numpy as np
>>> t = ReTerm("g", "g", np.array([0, 1, 1]), ["a", "b"], np.ones((3, 1)), ["Intercept"])
>>> t.k, t.nlevels, t.q
(1, 2, 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ReTerm"]


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
    cov:
        The term's covariance structure (``interlace.model.covariance``) when the formula
        names one (``ar1(0 + t | s)``); None is lme4's default, unstructured.
    """

    group: str
    vc_name: str
    codes: np.ndarray
    levels: list[str]
    z: np.ndarray
    cnames: list[str]
    lhs: str = "1"
    cov: Any = None

    @property
    def k(self) -> int:
        return int(self.z.shape[1])

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def q(self) -> int:
        return self.k * self.nlevels
