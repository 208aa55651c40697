"""Shared test fixtures: locating the R reference fits, all of which live in tests/fixtures.

- ``tests/fixtures/oracle``: copy of the project's R oracle (lme4 / glmmTMB fits of the classic
  data sets; README.md there gives the format);
- ``tests/fixtures/oracle-scale``: the simulated 20k-100k row cases, copied by
  ``copy_oracle_scale.py`` without their per-row vectors and with gzipped CSVs;
- ``tests/fixtures/cases`` + ``data``: fits made by the project's own R scripts (make_*.R).

Nothing is read from outside the repository, so every parity test runs in a fresh clone; a
case or data file that is missing is a test failure, never a skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
ORACLE = FIXTURES / "oracle"
ORACLE_SCALE = FIXTURES / "oracle-scale"


def load_case(name: str, scale: bool = False) -> dict:
    """Read one reference JSON: the oracle copy (or oracle-scale), then the project's fixtures.

    A missing case fails the test: a parity test must never pass by not running.
    """
    roots = ([ORACLE_SCALE] if scale else [ORACLE]) + [FIXTURES]
    for root in roots:
        path = root / "cases" / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
    pytest.fail(f"reference case {name!r} not found under {', '.join(str(r) for r in roots)}")


def case_data_path(case: dict) -> Path:
    """The CSV a case was fitted on (``name.csv`` or its gzipped copy ``name.csv.gz``)."""
    for root in (ORACLE, ORACLE_SCALE, FIXTURES):
        for name in (case["dataset"], case["dataset"] + ".gz"):
            path = root / "data" / name
            if path.exists():
                return path
    raise FileNotFoundError(f"data set {case['dataset']} of case {case.get('case')} is not in tests/fixtures")


def oracle_cases(scale: bool = False) -> list[str]:
    root = ORACLE_SCALE if scale else ORACLE
    return sorted(p.stem for p in (root / "cases").glob("*.json"))


def fixture_cases() -> list[str]:
    """Full-fit fixture cases (the residual-only files carry "kind": "residuals")."""
    out = []
    for p in sorted((FIXTURES / "cases").glob("*.json")):
        if not p.stem.startswith("residuals_"):
            out.append(p.stem)
    return out


PLUGINS = REPO / "plugins"


def ensure_family(name: object) -> None:
    """Make a family of the repository's example plugins (plugins/*) available.

    CI pip-installs the plugins; a fresh clone has them only as sources. Then the plugin's
    module is loaded from plugins/<dist>/ and registered at run time, so the parity tests of
    betabinomial and genpois run in any clone instead of being skipped.
    """
    from interlace.plugins import manager
    from interlace.plugins.known import KNOWN_PLUGIN_FAMILIES

    if not isinstance(name, str) or name in manager.get_registry():
        return
    dist = KNOWN_PLUGIN_FAMILIES.get(name.strip().lower())
    if dist is None:
        return
    (src,) = (PLUGINS / dist).glob("interlace_*.py")
    module = sys.modules.get(src.stem)
    if module is None:
        spec = importlib.util.spec_from_file_location(src.stem, src)
        module = importlib.util.module_from_spec(spec)
        sys.modules[src.stem] = module
        spec.loader.exec_module(module)
    manager.register_plugin(module, name=f"{dist} (source in plugins/)", distribution=dist)


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
