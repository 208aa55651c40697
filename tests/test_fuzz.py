"""Property-based fuzzing of glmer over small random data sets and formulas.

For every drawn (family, formula, data): glmer returns a finite result or
raises ValueError / TypeError with a message; no other exception type, no
NaN in fe_params, fe_bse or llf; the caller's frame is left unchanged; and
refitting with the rows shuffled gives the same log-likelihood (1e-6).

Example
-------
>>> spec = Spec("poisson", "y ~ x + (1 | g)", 0, 30, 4, 3, "pois")
>>> frame(spec).shape[0]
30
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interlace

# random-effect parts of the supported grammar
RANDOM = ["(1 | g)", "(x | g)", "(1 + x || g)", "(0 + x | g)", "(1 | g) + (1 | h)", "(1 | g/h)",
          "(1 | g) + (0 + z | g)", "(1 | g:h)"]
FIXED = ["1", "x", "x + z", "f", "x + f", "x * f", "I(x ** 2) + z", "0 + f"]
FAMILIES = ["binomial", "poisson", "gaussian"]


@dataclass(frozen=True)
class Spec:
    """One drawn case: family, formula, seed, rows, levels of g and h, response kind."""

    family: str
    formula: str
    seed: int
    n: int
    ng: int
    nh: int
    kind: str


def frame(spec: Spec) -> pd.DataFrame:
    """The data of `spec`: numerics x, z, a factor f, grouping factors g, h, responses."""
    rng = np.random.default_rng(spec.seed)
    n = spec.n
    g = rng.integers(0, spec.ng, n)
    h = rng.integers(0, spec.nh, n)
    x = np.round(rng.normal(size=n), 3)
    z = np.round(rng.uniform(-2, 2, n), 3)
    f = rng.choice(["a", "b", "c"], n)
    b = rng.normal(0, rng.choice([0.0, 0.5, 1.5]), spec.ng)
    eta = 0.3 + 0.5 * x + b[g]
    df = pd.DataFrame({"x": x, "z": z, "f": f, "g": [f"g{v}" for v in g], "h": [f"h{v}" for v in h]})
    if spec.kind == "bern":
        df["y"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
    elif spec.kind == "binom":
        df["size"] = rng.integers(1, 12, n)
        df["k"] = rng.binomial(df["size"], 1 / (1 + np.exp(-eta)))
    elif spec.kind == "pois":
        df["y"] = rng.poisson(np.exp(eta))
    else:
        df["y"] = np.round(eta + rng.normal(0, 0.7, n), 4)
    return df


@st.composite
def specs(draw) -> Spec:
    family = draw(st.sampled_from(FAMILIES))
    kind = {"binomial": draw(st.sampled_from(["bern", "binom"])), "poisson": "pois", "gaussian": "gauss"}[family]
    lhs = "cbind(k, size - k)" if kind == "binom" else "y"
    rhs = f"{draw(st.sampled_from(FIXED))} + {draw(st.sampled_from(RANDOM))}"
    return Spec(family, f"{lhs} ~ {rhs}", draw(st.integers(0, 2**31 - 1)), draw(st.integers(6, 60)),
                draw(st.integers(2, 8)), draw(st.integers(2, 5)), kind)


def _fit(spec: Spec, df: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.glmer(spec.formula, df, family=spec.family)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_glmer_is_finite_or_raises_a_clear_error(spec: Spec):
    df = frame(spec)
    before = df.copy(deep=True)
    try:
        m = _fit(spec, df)
    except (ValueError, TypeError) as exc:
        assert str(exc).strip(), "error without a message"
        pd.testing.assert_frame_equal(df, before)
        return
    pd.testing.assert_frame_equal(df, before)  # the caller's frame is never modified
    assert np.all(np.isfinite(m.fe_params.to_numpy())), m.fe_params
    assert np.all(np.isfinite(m.fe_bse.to_numpy())), m.fe_bse
    assert np.isfinite(m.llf)
    assert np.all(np.isfinite(m.theta.to_numpy()))
    assert isinstance(m.converged, bool) and isinstance(m.singular, bool)
    # rows in another order: the same model, the same optimum
    perm = np.random.default_rng(spec.seed ^ 0x5EED).permutation(len(df))
    try:
        m2 = _fit(spec, df.iloc[perm].reset_index(drop=True))
    except (ValueError, TypeError):
        # only a fit already flagged (e.g. theta running off to infinity on a
        # saturated LMM) may break down when refitted in another row order
        assert not m.converged, m.optinfo["messages"]
        return
    if m.converged and m2.converged:
        assert m2.llf == pytest.approx(m.llf, abs=1e-6), (m.llf, m2.llf)
    else:  # a flagged fit may stop elsewhere on a flat surface, never higher than tolerance allows
        assert np.isfinite(m2.llf)


# Small data sets (n = 6) that lme4 fits (lmer / glmer, with warnings) but on
# which our optimizer walks into a numerically singular region and glmer
# raises FitError. Found by the fuzzer; kept as known gaps for the engine.
LME4_FITS = [
    Spec("gaussian", "y ~ f + (1 | g/h)", 2, 6, 3, 2, "gauss"),
    Spec("poisson", "y ~ f + (1 + x || g)", 3, 6, 3, 3, "pois"),
    Spec("binomial", "y ~ 0 + f + (x | g)", 33, 6, 2, 2, "bern"),
]


@pytest.mark.xfail(reason="known gap: FitError where lme4 fits (tiny n, theta or sigma running off)",
                   strict=False)
@pytest.mark.parametrize("spec", LME4_FITS, ids=lambda s: f"{s.family}:{s.formula}")
def test_small_cases_lme4_fits(spec: Spec):
    m = _fit(spec, frame(spec))
    assert np.isfinite(m.llf)
