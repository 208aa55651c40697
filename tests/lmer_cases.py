"""Load the lmer fixtures (tests/fixtures/lmer, made by make_lmer.R) and fit them."""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import pandas as pd

FIX = Path(__file__).parent / "fixtures"
LMER_DIR = FIX / "lmer"
CASES = sorted(p.stem for p in LMER_DIR.glob("*.json"))
SMALL = [c for c in CASES if not c.startswith("sim_crossed")]


@functools.lru_cache(maxsize=None)
def load(case: str) -> dict:
    return json.loads((LMER_DIR / f"{case}.json").read_text())


@functools.lru_cache(maxsize=None)
def data(dataset: str) -> pd.DataFrame:
    return pd.read_csv(FIX / "data" / dataset)


@functools.lru_cache(maxsize=None)
def fitted(case: str, reml: bool = True):
    import interlace

    fx = load(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.lmer(fx["python_formula"], data(fx["dataset"]), REML=reml, weights=fx.get("weights"))


def r_name(name: str) -> str:
    return "(Intercept)" if name == "Intercept" else name
