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


# ---------------------------------------------------------------------------- issue 26 items 4-5
SCALING_FORMULA = "y ~ x + (1 | g)"


def scaling_data(n: int, discrete: bool, groups: int = 1000, seed: int = 0):
    """The row-scaling design (issue 26 item 4): a binary response, one random intercept
    on ``groups`` levels, ``x`` continuous (normal) or discrete (4 values); the same
    design at every n.

    >>> scaling_data(2000, True).shape
    (2000, 3)
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    b = rng.normal(0.0, 0.7, groups)
    x = rng.integers(0, 4, n).astype(float) if discrete else rng.normal(size=n)
    eta = -0.5 + 0.4 * x + b[g]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


def time_scaling(ns: tuple[int, ...] = (10_000, 100_000, 1_000_000), reps: int = 3) -> dict:
    """CPU seconds of ``interlace.glmer`` (formula parsing included, warm) on
    :func:`scaling_data` per n and variant, and the exponent of CPU in n: the slope of
    log CPU on log n (least squares over ``ns``). Targets: exponent <= 1.0, the
    1,000,000-row fit under 2 s of CPU."""
    import statistics
    import time

    import numpy as np

    import interlace

    out: dict = {}
    for variant in ("discrete", "continuous"):
        rows = []
        for n in ns:
            df = scaling_data(n, variant == "discrete")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                interlace.glmer(SCALING_FORMULA, df.iloc[:2000], family="binomial")  # compiled kernels loaded
                cpu, wall = [], []
                for _ in range(reps if n < 1_000_000 else 1):
                    t, w = time.process_time(), time.perf_counter()
                    m = interlace.glmer(SCALING_FORMULA, df, family="binomial")
                    cpu.append(time.process_time() - t)
                    wall.append(time.perf_counter() - w)
            rows.append({"n": n, "cpu_s": statistics.median(cpu), "wall_s": statistics.median(wall),
                         "llf": float(m.llf), "collapsed_rows": m.optinfo.get("collapsed_rows")})
        slope = float(np.polyfit(np.log([r["n"] for r in rows]), np.log([r["cpu_s"] for r in rows]), 1)[0])
        out[variant] = {"rows": rows, "exponent": slope}
    return out


def time_bootstrap(nsim: int = 1000, seed: int = 1) -> dict:
    """CPU seconds of a ``nsim``-replicate parametric bootstrap of cbpp (issue 26 item 5:
    under 2 s for 1,000), after a short warm-up bootstrap (numba cache warm)."""
    import time

    import interlace

    m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                        interlace.datasets.load("cbpp"), family="binomial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.bootstrap(5, seed=0, progress=False)
        t, w = time.process_time(), time.perf_counter()
        b = m.bootstrap(nsim, seed=seed, progress=False)
    return {"nsim": nsim, "cpu_s": time.process_time() - t, "wall_s": time.perf_counter() - w,
            "n_ok": b.n_ok}


def scaling_section(scaling: dict, boot: dict) -> str:
    """The results.md section of :func:`time_scaling` and :func:`time_bootstrap`."""
    lines = ["", "## Row scaling and refits (issue 26 items 4-5)", "",
             f"Binary random intercept `{SCALING_FORMULA}`, 1,000 groups; CPU seconds of one warm "
             "`interlace.glmer` (parsing included).", "",
             "| x | n | CPU s | wall s | unique rows fitted | llf |", "|---|---:|---:|---:|---:|---:|"]
    for variant, rec in scaling.items():
        for r in rec["rows"]:
            lines.append(f"| {variant} | {r['n']:,} | {r['cpu_s']:.3f} | {r['wall_s']:.3f} | "
                         f"{r['collapsed_rows'] or r['n']:,} | {r['llf']:.4f} |")
    lines.append("")
    for variant, rec in scaling.items():
        big = rec["rows"][-1]
        lines.append(f"- {variant} x: exponent of CPU in n {rec['exponent']:.2f} "
                     f"({'PASS' if rec['exponent'] <= 1.0 else 'FAIL'} <= 1.0); {big['n']:,} rows "
                     f"{big['cpu_s']:.2f} CPU s ({'PASS' if big['cpu_s'] < 2.0 else 'FAIL'} < 2 s)")
    lines.append(f"- cbpp parametric bootstrap, {boot['nsim']:,} replicates: {boot['cpu_s']:.2f} CPU s, "
                 f"{boot['wall_s']:.2f} wall s ({'PASS' if boot['cpu_s'] < 2.0 else 'FAIL'} < 2 s)")
    return "\n".join(lines) + "\n"
