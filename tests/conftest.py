"""Shared test fixtures: locating the R oracle fits beside the checkout."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("INTERLACE_SHARED", REPO.parent / "shared"))
ORACLE = SHARED / "oracle"
ORACLE_SCALE = SHARED / "oracle-scale"
FIXTURES = REPO / "tests" / "fixtures"


def load_case(name: str, scale: bool = False) -> dict:
    """Read one oracle JSON: ../shared/oracle (or oracle-scale) first, then tests/fixtures."""
    for root in ([ORACLE_SCALE] if scale else [ORACLE]) + [FIXTURES]:
        path = root / "cases" / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
    pytest.skip(f"oracle case {name} not available")


def case_data_path(case: dict) -> Path:
    for root in (ORACLE, ORACLE_SCALE, FIXTURES):
        path = root / "data" / case["dataset"]
        if path.exists():
            return path
    raise FileNotFoundError(case["dataset"])


def oracle_cases(scale: bool = False) -> list[str]:
    root = ORACLE_SCALE if scale else ORACLE
    return sorted(p.stem for p in (root / "cases").glob("*.json")) if root.exists() else []


def fixture_cases() -> list[str]:
    """Full-fit fixture cases (the residual-only files carry "kind": "residuals")."""
    out = []
    for p in sorted((FIXTURES / "cases").glob("*.json")):
        if not p.stem.startswith("residuals_"):
            out.append(p.stem)
    return out


def pytest_configure(config):
    config.addinivalue_line("markers", "r: calls R live; runs only with INTERLACE_RUN_R=1")
    config.addinivalue_line("markers", "slow: long-running fit")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("INTERLACE_RUN_R") == "1":
        return
    skip = pytest.mark.skip(reason="live R tests run only with INTERLACE_RUN_R=1")
    for item in items:
        if "r" in item.keywords:
            item.add_marker(skip)
