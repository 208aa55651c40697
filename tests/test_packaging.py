"""Packaging and CI: the README's two commands, .ci/run, pyproject.toml, tox.ini, the wheel.

A newcomer runs the README's install and test lines; CI (.ci/run) must run exactly those lines,
so these tests pin the README's first commands and check that .ci/run reads them from it.
"""

from __future__ import annotations

import configparser
import importlib
import importlib.metadata
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from conftest import REPO, load_case

README = REPO / "README.md"
CI_RUN = REPO / ".ci" / "run"
# The first line installs only what fitting needs; the test line adds the test extra.
INSTALL = "pip install -e . && python -m interlace.examples.cbpp"
TEST = 'pip install -e ".[test]" && python -m pytest -q'


def _marked_block(name: str) -> list[str]:
    """Non-empty lines of the fenced block between <!-- name --> and <!-- /name -->."""
    text = README.read_text(encoding="utf-8")
    m = re.search(rf"^<!-- {name} -->\n(.*?)^<!-- /{name} -->$", text, re.M | re.S)
    assert m, f"README.md has no <!-- {name} --> block"
    return [ln for ln in m.group(1).splitlines() if ln.strip() and not ln.startswith("```")]


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


# --- README -------------------------------------------------------------------------------


def test_readme_marked_commands_are_the_newcomers_two_commands():
    assert _marked_block("install") == [INSTALL]
    assert _marked_block("test") == [TEST]


def test_readme_starts_with_the_two_commands():
    # Before the install block there is only the title and one sentence; the first two code
    # blocks of the README are the install line and the test line.
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"^```\w*\n(.*?)^```$", text, re.M | re.S)
    assert [b.strip() for b in blocks[:2]] == [INSTALL, TEST]
    assert text.index(INSTALL) < 300


# --- .ci/run ------------------------------------------------------------------------------

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash not available")


@needs_bash
def test_ci_run_is_valid_bash_and_executable():
    subprocess.run(["bash", "-n", str(CI_RUN)], check=True)
    assert os.access(CI_RUN, os.X_OK)
    head = CI_RUN.read_text(encoding="utf-8").splitlines()
    assert head[0].startswith("#!") and "bash" in head[0]
    assert "set -euo pipefail" in head


@needs_bash
def test_ci_run_extracts_exactly_the_readme_commands():
    out = subprocess.run(
        ["bash", str(CI_RUN), "--show"], check=True, capture_output=True, text=True
    ).stdout
    assert out.splitlines() == [INSTALL, TEST]


def test_ci_run_does_the_required_steps():
    text = CI_RUN.read_text(encoding="utf-8")
    assert "-m venv" in text and "source .venv/bin/activate" in text
    assert 'run_step install "$INSTALL_CMD"' in text
    assert 'run_step test "$TEST_CMD"' in text
    assert "plugins/*/" in text and "pyproject.toml" in text
    assert "NUMBA_CACHE_DIR" in text and ".numba_cache" in text
    # install, then plugins, then tests
    assert text.index('run_step install') < text.index('run_step "plugin') < text.index("run_step test")


@needs_bash
def test_ci_run_fails_when_pytest_collects_nothing(tmp_path):
    # run_step must turn pytest's exit 5 (no tests) into a failure: exercise the function
    # itself, cut out of .ci/run, on an empty directory.
    text = CI_RUN.read_text(encoding="utf-8")
    func = re.search(r"^run_step\(\) \{.*?^\}$", text, re.M | re.S).group(0)
    script = f"set -euo pipefail\n{func}\ncd '{tmp_path}'\nrun_step test '{sys.executable} -m pytest -q -p no:cacheprovider'\n"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert proc.returncode == 5
    assert "no tests" in proc.stderr


# --- pyproject.toml -----------------------------------------------------------------------


def test_pyproject_metadata_and_dependencies():
    project = _pyproject()["project"]
    assert project["name"] == "interlace"
    assert project["requires-python"] == ">=3.11"
    names = {re.split(r"[<>=!\[ ;]", d, maxsplit=1)[0] for d in project["dependencies"]}
    # tqdm: progress bars of bootstrap / profile / simulate in terminals and Jupyter (issue 23)
    assert names == {"numba", "numpy", "scipy", "pandas", "narwhals", "formulaic", "pluggy",
                     "threadpoolctl", "tqdm"}
    extras = project["optional-dependencies"]
    def extra(name: str) -> set[str]:
        return {re.split(r"[<>=!\[ ;]", d, maxsplit=1)[0] for d in extras[name]}
    # the test extra brings plot and dask so that no test is skipped for a missing part
    assert extra("test") == {"pytest", "hypothesis", "polars", "pyarrow", "matplotlib", "dask",
                             "distributed", "wheel"}
    # matplotlib: the docs build draws the caterpillar and residual figures
    assert extra("docs") == {"mkdocs", "mkdocs-material", "mkdocstrings", "matplotlib"}
    assert extra("plot") == {"matplotlib"}
    assert extra("dask") == {"dask", "distributed"}
    assert extra("bench") == {"matplotlib", "mixedlm", "gpboost"}


def test_version_is_read_from_the_package():
    tool = _pyproject()["tool"]["setuptools"]
    assert tool["dynamic"]["version"] == {"attr": "interlace.__version__"}
    import interlace

    assert re.fullmatch(r"\d+\.\d+\.\d+.*", interlace.__version__)


def test_families_entry_point_points_at_an_importable_hook():
    eps = _pyproject()["project"]["entry-points"]["interlace.families"]
    assert eps["builtin"] == "interlace.families.builtin"
    module = importlib.import_module(eps["builtin"])
    assert callable(getattr(module, "interlace_register_families"))


def test_installed_distribution_declares_the_entry_point():
    try:
        dist = importlib.metadata.distribution("interlace")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("interlace is not installed (run pip install -e .)")
    eps = {ep.name: ep.value for ep in dist.entry_points if ep.group == "interlace.families"}
    assert eps.get("builtin") == "interlace.families.builtin"


def test_pytest_configuration():
    ini = _pyproject()["tool"]["pytest"]["ini_options"]
    assert ini["testpaths"] == ["tests"]
    markers = {m.split(":")[0] for m in ini["markers"]}
    assert {"r", "slow"} <= markers


# --- tox.ini ------------------------------------------------------------------------------


def test_tox_default_env_runs_the_readme_test_command():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "tox.ini")
    env = cfg["testenv"]
    assert env["extras"].split() == ["test"]  # the README test line's extra
    commands = [c.strip() for c in env["commands"].strip().splitlines()]
    assert commands == [TEST.split(" && ")[-1] + " {posargs}"]


# --- the wheel ----------------------------------------------------------------------------


def test_wheel_ships_the_datasets_and_the_entry_point(tmp_path):
    # A non-editable install must carry the CSVs and metadata.json (package data) and the
    # entry point; build the wheel from this checkout without touching the network.
    # Offline build: needs setuptools >= 64 and, before setuptools 70.1, the wheel package.
    pytest.importorskip("setuptools")
    from setuptools import __version__ as st_version

    st = tuple(int(x) for x in re.findall(r"\d+", st_version)[:2])
    if st < (64, 0):
        pytest.skip(f"setuptools {st_version} < 64")
    if st < (70, 1) and importlib.util.find_spec("wheel") is None:
        pytest.skip(f"setuptools {st_version} needs the wheel package to build wheels")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}")
    (wheel,) = tmp_path.glob("interlace-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        data = {n for n in names if n.startswith("interlace/datasets/data/")}
        for csv in (REPO / "interlace" / "datasets" / "data").glob("*.csv*"):  # .csv and .csv.gz
            assert f"interlace/datasets/data/{csv.name}" in data
        assert "interlace/datasets/data/metadata.json" in data
        assert "interlace/py.typed" in names
        assert "interlace/examples/cbpp.py" in names
        assert not any(n.startswith("tests/") for n in names)
        (ep_file,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = zf.read(ep_file).decode()
    assert "[interlace.families]" in entry_points
    assert "builtin = interlace.families.builtin" in entry_points


# --- the README's example -----------------------------------------------------------------


def test_cbpp_example_prints_a_real_fit():
    # The README's first command ends in this module; its summary must be the lme4 fit.
    case = load_case("cbpp_laplace")
    from interlace.examples import cbpp

    buf = io.StringIO()
    with redirect_stdout(buf):
        cbpp.main()
    text = buf.getvalue()
    for name in ("Intercept", "period[T.2]", "period[T.3]", "period[T.4]", "herd"):
        assert name in text
    m = cbpp.fit()
    # the parity rule: no worse than R's optimum by 1e-4 (a slightly higher llf is a
    # better optimum); far above R would mean a different likelihood, not a better fit
    assert case["loglik"] - 1e-4 <= m.llf <= case["loglik"] + 1e-2
    assert m.nobs == case["nobs"]


# --- a newcomer's first minutes: light import, types, extras ---------------------------------


def test_import_interlace_loads_no_heavy_dependency():
    # `import interlace` must stay cheap: numba, pandas, scipy and the formula machinery load
    # when a fit (or a data set) needs them, not at import (measured CPU: bench/ and README).
    code = ("import sys, interlace; heavy = ('numba', 'pandas', 'scipy', 'formulaic', 'narwhals', "
            "'pluggy', 'dask', 'matplotlib'); print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True).stdout
    assert out.strip() == "[]"


def test_lazy_public_names_resolve():
    import interlace

    for name in interlace.__all__:
        assert getattr(interlace, name) is not None, name
    assert interlace.glmer.__module__ == "interlace.api"
    assert interlace.datasets.__name__ == "interlace.datasets"
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        interlace.no_such_thing  # noqa: B018


def test_py_typed_and_return_annotations():
    import inspect

    import interlace

    assert (REPO / "interlace" / "py.typed").exists()
    assert "py.typed" in _pyproject()["tool"]["setuptools"]["package-data"]["interlace"]
    assert inspect.signature(interlace.glmer).return_annotation == "GLMMResult"
    for func in (interlace.family, interlace.families.get_family, interlace.families.available,
                 interlace.datasets.load, interlace.datasets.available, interlace.datasets.info,
                 interlace.anova):
        assert inspect.signature(func).return_annotation is not inspect.Signature.empty, func


def test_missing_dask_extra_names_it(monkeypatch):
    import importlib.util as iu

    from interlace import distributed

    real = iu.find_spec
    monkeypatch.setattr(iu, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    with pytest.raises(ImportError, match=r"needs distributed: pip install 'interlace\[dask\]'"):
        distributed.glmer_dask("y ~ x + (1 | g)", None, "binomial")
