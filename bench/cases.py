"""Benchmark cases: find the R reference fits, read their data, fit them with interlace.

A case is one JSON file from ``tests/fixtures/oracle``, ``tests/fixtures/oracle-scale`` (the
repository's copies of the R oracle; ``INTERLACE_SHARED=/path/to/shared`` reads
``oracle``/``oracle-scale`` there instead), ``tests/fixtures/covspatial/cases`` (issue 21's
spatial case) or (with ``--fixtures``) ``tests/fixtures/cases``. The few helpers below mirror
``tests/oracle_utils.py`` on purpose: the benchmark must not import from ``tests/``.

Example
-------
>>> from bench.cases import discover
>>> [c.name for c in discover(["cbpp_laplace"])]  # doctest: +SKIP
['cbpp_laplace']
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED = Path(os.environ["INTERLACE_SHARED"]) if os.environ.get("INTERLACE_SHARED") else FIXTURES
ORACLE = SHARED / "oracle"
ORACLE_SCALE = SHARED / "oracle-scale"
# issue 21's spatial case: exp() over 1,000 irregular positions (tests/fixtures/covspatial)
SPATIAL = FIXTURES / "covspatial"

# glmer's keyword arguments that a case's python_call may carry
CALL_KEYS = ("groups", "random", "weights", "offset", "dispformula", "ziformula", "nAGQ")


@dataclass
class Case:
    """One benchmark case: the oracle JSON, where it came from, and where its data lives."""

    name: str
    suite: str  # "oracle", "scale" or "fixtures"
    json_path: Path
    data_path: Path
    spec: dict[str, Any] = field(repr=False)

    @property
    def nobs(self) -> int:
        return int(self.spec.get("nobs") or 0)

    @property
    def engine(self) -> str:
        return str(self.spec.get("engine", "lme4"))

    @property
    def r_loglik(self) -> float | None:
        """R's log-likelihood comparable with interlace's llf (full marginal one for AGQ)."""
        agq = self.spec.get("agq_loglik")
        if agq:
            return float(agq["loglik_full"])
        ll = self.spec.get("loglik")
        return None if ll is None else float(ll)

    @property
    def r_call_head(self) -> str:
        """The R function the reference call uses: glmer, lmer, glmer.nb or glmmTMB."""
        return str(self.spec.get("r_call", "")).split("(", 1)[0].strip()

    def recorded_r_seconds(self) -> dict[str, float]:
        """R timings stored in the JSON, keyed by variant (lme4, nloptwrap, glmmTMB).

        ``r_seconds`` times the reference call itself, which is glmmTMB for glmmTMB cases.
        """
        out: dict[str, float] = {}
        if self.spec.get("r_seconds") is not None:
            out[primary_variant(self)] = float(self.spec["r_seconds"])
        if self.spec.get("r_seconds_nloptwrap") is not None:
            out["nloptwrap"] = float(self.spec["r_seconds_nloptwrap"])
        if self.spec.get("r_seconds_glmmTMB") is not None:
            out["glmmTMB"] = float(self.spec["r_seconds_glmmTMB"])
        return out


def primary_variant(case: Case) -> str:
    """Which R column the reference call's own timing belongs in."""
    return "glmmTMB" if case.r_call_head == "glmmTMB" else "lme4"


def _suite_dirs(include_fixtures: bool) -> list[tuple[str, Path]]:
    dirs = [("oracle", ORACLE), ("scale", ORACLE_SCALE), ("spatial", SPATIAL)]
    if include_fixtures:
        dirs.append(("fixtures", FIXTURES))
    return dirs


def _data_path(dataset: str, suite_root: Path) -> Path:
    for root in (suite_root, ORACLE, ORACLE_SCALE, FIXTURES):
        for name in (dataset, dataset + ".gz"):  # the scale copies are gzipped
            p = root / "data" / name
            if p.exists():
                return p
    raise FileNotFoundError(dataset)


def discover(names: list[str] | None = None, include_fixtures: bool = False) -> list[Case]:
    """All benchmarkable cases (full fits with a python_call), optionally filtered by name.

    Naming a fixture case in ``names`` includes it even without ``include_fixtures``.
    """
    cases: list[Case] = []
    seen: set[str] = set()
    for suite, root in _suite_dirs(include_fixtures or bool(names)):
        if not (root / "cases").exists():
            continue
        for p in sorted((root / "cases").glob("*.json")):
            if p.stem in seen or (names and p.stem not in names):
                continue
            if suite == "fixtures" and not names and not include_fixtures:
                continue
            spec = json.loads(p.read_text())
            if spec.get("kind") == "residuals" or "python_call" not in spec:
                continue
            try:
                data = _data_path(spec["dataset"], root)
            except FileNotFoundError:
                continue
            seen.add(p.stem)
            cases.append(Case(p.stem, suite, p, data, spec))
    if names:
        missing = sorted(set(names) - seen)
        if missing:
            raise ValueError(f"unknown case(s): {', '.join(missing)}")
    return cases


def read_case_data(case: Case):
    """The case's CSV with R's factor columns restored as categoricals in R's level order."""
    import pandas as pd

    df = pd.read_csv(case.data_path)
    for col, info in case.spec.get("factor_levels", {}).items():
        if col in df.columns:
            df[col] = pd.Categorical(df[col].astype(str), categories=[str(v) for v in info["levels"]])
    return df


def fit_case(case: Case, df=None):
    """Fit the case's ``python_call`` with interlace.glmer (formula parsing included).

    Example
    -------
    >>> res = fit_case(discover(["cbpp_laplace"])[0])  # doctest: +SKIP
    >>> round(res.llf, 2)  # doctest: +SKIP
    -92.03
    """
    import interlace

    if df is None:
        df = read_case_data(case)
    call = dict(case.spec["python_call"])
    kw = {k: call[k] for k in CALL_KEYS if k in call}
    fam = call["family"]
    if call.get("link") is not None and isinstance(fam, str):
        fam = interlace.family(fam, link=call["link"])
    with warnings.catch_warnings():
        # convergence and singular-fit messages are the engine's business, not the timer's
        warnings.simplefilter("ignore")
        return interlace.glmer(call["formula"], df, family=fam, **kw)
