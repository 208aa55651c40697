"""The blocked cross-product path of the LMM (several scalar terms,
interlace/kernels/lmm_crossed.py) against the row path and against
mathematics: the same deviance, modes, fixed effects and RX as the row-wise
blocked Cholesky, and a gradient equal to central differences of the deviance
(including at a zero theta, where the deviance is even)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from interlace.families import get_family
from interlace.model_frame import build_model_frame
from interlace.objective.lmm import LMMObjective

DATA = Path(__file__).parent / "fixtures" / "data"
CASES = [
    ("penicillin.csv", "diameter ~ 1 + (1 | plate) + (1 | sample)", ["plate", "sample"]),
    ("pastes.csv", "strength ~ 1 + (1 | batch/cask)", ["batch", "cask"]),
]


def _frame(csv: str, formula: str, factors: list[str]):
    df = pd.read_csv(DATA / csv)
    for f in factors:
        df[f] = df[f].astype(str)
    return build_model_frame(formula, df, family=get_family("gaussian"))


@pytest.mark.parametrize("csv,formula,factors", CASES)
@pytest.mark.parametrize("reml", [True, False])
def test_crossed_path_matches_row_path(csv, formula, factors, reml):
    mf = _frame(csv, formula, factors)
    fast = LMMObjective(mf, reml=reml)
    rows = LMMObjective(mf, reml=reml)
    rows._crossed = False
    assert fast._crossed
    for theta in (np.array([1.0, 1.0]), np.array([0.42, 1.7]), np.array([0.8, 0.0])):
        d1, d2 = fast.deviance(theta), rows.deviance(theta)
        assert d1 == pytest.approx(d2, rel=1e-12, abs=1e-9)
        np.testing.assert_allclose(fast.gradient(theta), rows.gradient(theta), rtol=1e-8, atol=1e-8)
        fast.deviance(theta)
        rows.deviance(theta)
        np.testing.assert_allclose(fast.beta, rows.beta, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(fast.u, rows.u, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(fast.eta, rows.eta, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(fast.RX, rows.RX, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("reml", [True, False])
def test_crossed_gradient_is_the_derivative(reml):
    mf = _frame(*CASES[0])
    obj = LMMObjective(mf, reml=reml)
    for theta in (np.array([0.6, 2.2]), np.array([1.3, 0.0])):
        obj.deviance(theta)
        g = obj.gradient(theta)
        h = 1e-6
        fd = [(obj.deviance(theta + h * e) - obj.deviance(theta - h * e)) / (2 * h) for e in np.eye(2)]
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-5)
