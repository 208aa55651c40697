"""Live R timings: detect Rscript with lme4 and glmmTMB, and run ``bench/r_timing.R``.

Example
-------
>>> from bench.rlive import r_available
>>> r_available() in (True, False)
True
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.cases import Case, primary_variant

R_SCRIPT = Path(__file__).with_name("r_timing.R")


def r_available() -> bool:
    """True when ``Rscript`` is on PATH and can load lme4, glmmTMB and jsonlite."""
    exe = shutil.which("Rscript")
    if exe is None:
        return False
    probe = "suppressPackageStartupMessages({library(lme4); library(glmmTMB); library(jsonlite)})"
    try:
        return subprocess.run([exe, "-e", probe], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def r_variants(case: Case) -> list[str]:
    """The R fits to time for a case: the reference call, and for the scale cases lme4 with
    nloptwrap and the same model in glmmTMB (where that model exists in glmmTMB)."""
    variants = [primary_variant(case)]
    if case.suite == "scale" and case.r_call_head == "glmer":
        variants.append("nloptwrap")
        if int(case.spec["python_call"].get("nAGQ", 1)) <= 1:
            variants.append("glmmTMB")
    return variants


def run_r(cases: list[Case], reps_small: int = 5, reps_large: int = 3,
          large_nobs: int = 10_000, log=print) -> dict[str, dict[str, dict]]:
    """Time every case's R variants live; returns ``{case: {variant: record}}``.

    Small cases get one untimed warm-up fit (loading lme4's lazy code), large ones none:
    there the first fit costs the same as the next ones.
    """
    manifest = [
        {
            "case": c.name,
            "json": str(c.json_path),
            "data": str(c.data_path),
            # a case may set its own R repetitions (a glmmTMB fit of minutes: r_reps = 1)
            "reps": c.spec.get("r_reps", reps_large if c.nobs >= large_nobs else reps_small),
            "warmup": c.spec.get("r_warmup", 0 if c.nobs >= large_nobs else 1),
            "variants": r_variants(c),
        }
        for c in cases
    ]
    with tempfile.TemporaryDirectory() as tmp:
        man, out = Path(tmp) / "manifest.json", Path(tmp) / "out.json"
        man.write_text(json.dumps(manifest))
        proc = subprocess.Popen(["Rscript", str(R_SCRIPT), str(man), str(out)],
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        for line in proc.stderr:
            log(line.rstrip())
        if proc.wait() != 0 or not out.exists():
            raise RuntimeError("bench/r_timing.R failed")
        records = json.loads(out.read_text())
    result: dict[str, dict[str, dict]] = {}
    for rec in records:
        result.setdefault(rec["case"], {})[rec["variant"]] = rec
    return result
