"""Determinism: the same call on the same data gives bit-identical results,
within a process, across processes, and with the numba cache warm (the
default cache directory) or cold (a fresh, empty NUMBA_CACHE_DIR, so every
kernel is compiled anew). NUMBA_DISABLE_JIT would change the arithmetic path
and is not what "cache off" means here.

Example
-------
>>> sorted(fingerprint_all())[:2]
['cbpp', 'cbpp_agq']
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import interlace

REPO = Path(__file__).resolve().parents[1]

# Fits covering the engines: Laplace (binomial, crossed Poisson with an
# observation-level term), AGQ, nAGQ = 0, the LMM path and a singular fit.
CALLS = {
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial", {}),
    "cbpp_agq": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial", {"nAGQ": 5}),
    "cbpp_nagq0": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial", {"nAGQ": 0}),
    "sleep_lmm": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian", {}),
    "grouse": ("TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION)", "grouseticks", "poisson", {}),
}


def fingerprint(name: str) -> dict[str, list[str]]:
    """Exact (hex) values of one fit's estimates, SEs, theta, llf and fitted values."""
    formula, dataset, family, kw = CALLS[name]
    df = interlace.datasets.load(dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = interlace.glmer(formula, df, family=family, **kw)
    out = {
        "fe_params": m.fe_params.tolist(),
        "fe_bse": m.fe_bse.tolist(),
        "theta": m.theta.tolist(),
        "llf": [m.llf],
        "fitted": m.fittedvalues.tolist(),
    }
    return {k: [float(v).hex() for v in vals] for k, vals in out.items()}


def fingerprint_all() -> dict[str, dict[str, list[str]]]:
    return {name: fingerprint(name) for name in CALLS}


def _in_subprocess(cache_dir: str | None) -> dict:
    env = dict(os.environ)
    env.pop("NUMBA_DISABLE_JIT", None)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    code = ("import json, sys; sys.path.insert(0, 'tests'); "
            "from test_determinism import fingerprint_all; print(json.dumps(fingerprint_all()))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def here() -> dict:
    return fingerprint_all()


def test_repeated_calls_bit_identical(here):
    assert fingerprint_all() == here


def test_other_process_warm_cache_bit_identical(here):
    first = _in_subprocess(None)  # default cache: populated by this run or earlier ones
    second = _in_subprocess(None)
    assert first == here
    assert second == here


def test_other_process_cold_cache_bit_identical(here, tmp_path):
    assert _in_subprocess(str(tmp_path / "numba-cache")) == here
