"""Smoke test of the LMM bench suite (bench/lmm.py): one case, no R, no timing asserted."""

from __future__ import annotations

import json

from bench import lmm


def test_lmm_suite_one_case(tmp_path):
    assert lmm.main(["--cases", "dyestuff", "--no-r", "--no-fresh", "--reps", "1", "--out", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "lmm.json").read_text())
    (row,) = out["rows"]
    assert row["case"] == "dyestuff" and row["n"] == 30 and row["REML"]
    assert row["lme4"] is None  # --no-r
    assert "| dyestuff | 30 | REML |" in (tmp_path / "lmm.md").read_text()
