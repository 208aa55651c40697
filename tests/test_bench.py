"""Smoke test of the benchmark harness (bench/): one small case, one repetition, no R.

No timing is asserted: only that ``python -m bench`` runs and writes the table with the
expected columns and a row for the case.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

EXPECTED_COLUMNS = [
    "case", "n", "ours warm (ms)", "ours CPU (ms)", "fresh: import + 1st fit (s)",
    "empty cache (s)", "peak MB warm / 1st fit", "llf − R", "R lme4 (s)", "R nloptwrap (s)",
    "R glmmTMB (s)", "ratio lme4", "ratio nloptwrap", "ratio glmmTMB", "ratio best R",
]


def test_bench_smoke(tmp_path):
    cmd = [sys.executable, "-m", "bench", "--cases", "cbpp_laplace", "--reps", "1",
           "--live-r", "no", "--no-fresh", "--no-peers", "--profile", "0", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (tmp_path / "results.md").read_text()
    assert "R timings: **recorded" in text
    table = text.split("## All cases", 1)[1].splitlines()
    header = next(line for line in table if line.startswith("| case |"))
    assert [c.strip() for c in header.strip("|").split("|")] == EXPECTED_COLUMNS
    row = next(line for line in table if line.startswith("| cbpp_laplace |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == len(EXPECTED_COLUMNS)
    assert cells[1] == "56"
    # the recorded lme4 time is there, so its ratio is a number
    assert float(cells[EXPECTED_COLUMNS.index("ratio lme4")]) > 0
    assert (tmp_path / "chart.png").stat().st_size > 0
    data = json.loads((tmp_path / "results.json").read_text())
    row = data["rows"][0]
    assert row["case"] == "cbpp_laplace" and data["source"] == "recorded"
    # llf difference is computed against the JSON's logLik, and is small for this case
    assert abs(row["llf_diff"]) < 1e-2
    # each target is printed with a verdict; which verdict is not a unit-test matter
    assert "cbpp_laplace warm fit <= 10 ms" in proc.stdout
