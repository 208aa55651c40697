"""Where interlace's numba kernels are cached, and that a damaged cache recompiles.

Each check runs in a fresh interpreter (numba reads NUMBA_CACHE_DIR when it is imported) on
one small kernel, glm_deviance, whose value is checked against NumPy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import REPO

KERNELS = REPO / "interlace" / "kernels"

# Binomial deviance (family 0, logit link 0) of y at eta, computed by the kernel; prints the
# value and the directory numba caches the kernel in.
SCRIPT = """
import numpy as np
from interlace.kernels.glm import glm_deviance
y = np.array([0.0, 1.0, 1.0, 0.0, 1.0]); wt = np.ones(5); eta = np.array([-1.0, 0.5, 2.0, 0.1, -0.3])
print(repr(glm_deviance(0, 0, y, wt, eta)))
print(glm_deviance._cache._cache_path)
"""

# numba finds the in-tree __pycache__ unwritable when creating a temporary file there fails;
# as root every directory is writable, so the test makes that probe fail for the kernels' dir.
READ_ONLY_PACKAGE = """
import tempfile
_orig = tempfile.TemporaryFile
def _probe(*a, dir=None, **k):
    if dir is not None and str(dir).startswith({kernels!r}):
        raise PermissionError(13, "read-only package directory", dir)
    return _orig(*a, dir=dir, **k)
tempfile.TemporaryFile = _probe
"""


def _expected() -> float:
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    mu = 1.0 / (1.0 + np.exp(-np.array([-1.0, 0.5, 2.0, 0.1, -0.3])))
    return float(-2.0 * np.sum(y * np.log(mu) + (1 - y) * np.log(1 - mu)))


def _run(code: str, **env_over: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "INTERLACE_QUIET")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    for k, v in env_over.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _value_and_dir(proc: subprocess.CompletedProcess) -> tuple[float, Path]:
    value, where = proc.stdout.strip().splitlines()[-2:]
    return float(value), Path(where)


def test_numba_cache_dir_is_respected(tmp_path):
    proc = _run(SCRIPT, NUMBA_CACHE_DIR=str(tmp_path))
    value, where = _value_and_dir(proc)
    assert abs(value - _expected()) < 1e-12 * _expected()
    assert where.is_relative_to(tmp_path)
    assert list(where.glob("glm.glm_deviance-*.nbi")) and list(where.glob("glm.glm_deviance-*.nbc"))


def test_read_only_package_caches_in_the_per_user_directory(tmp_path):
    code = READ_ONLY_PACKAGE.format(kernels=str(KERNELS)) + SCRIPT
    proc = _run(code, NUMBA_CACHE_DIR=None, XDG_CACHE_HOME=str(tmp_path))
    value, where = _value_and_dir(proc)
    assert abs(value - _expected()) < 1e-12 * _expected()
    assert where.is_relative_to(tmp_path / "numba"), where
    assert list(where.glob("glm.glm_deviance-*.nbc"))


def test_corrupted_cache_files_are_recompiled_not_a_crash(tmp_path):
    first = _run(SCRIPT, NUMBA_CACHE_DIR=str(tmp_path))
    assert "compiling numba kernels" in first.stderr  # the one-line notice, on an empty cache
    assert first.stderr.count("interlace: compiling") == 1
    files = list(tmp_path.rglob("*.nbi")) + list(tmp_path.rglob("*.nbc"))
    assert files
    for i, f in enumerate(sorted(files)):  # garbage, and a truncated pickle
        f.write_bytes(b"\x80\x04garbage" if i % 2 else f.read_bytes()[: len(f.read_bytes()) // 2])
    second = _run(SCRIPT, NUMBA_CACHE_DIR=str(tmp_path))
    assert abs(_value_and_dir(second)[0] - _expected()) < 1e-12 * _expected()
    assert "compiling numba kernels" in second.stderr  # recompiled ...
    third = _run(SCRIPT, NUMBA_CACHE_DIR=str(tmp_path))
    assert abs(_value_and_dir(third)[0] - _expected()) < 1e-12 * _expected()
    assert "compiling" not in third.stderr  # ... and the rewritten cache is used again


# a second kernel that the cache above does not hold: compiled after glm_deviance was loaded
# from the cache (numba's registries are loaded only for compiling; a cache load skips them)
MIXED = SCRIPT + """
from interlace.kernels.pirls import dense_cholesky_lower
S = np.array([[4.0, 2.0], [2.0, 3.0]])
print(repr(dense_cholesky_lower(S)))
"""


def test_compiling_after_a_cache_load(tmp_path):
    first = _run(SCRIPT, NUMBA_CACHE_DIR=str(tmp_path))
    assert "compiling numba kernels" in first.stderr
    for _ in range(2):  # load + compile, then both loaded
        proc = _run(MIXED, NUMBA_CACHE_DIR=str(tmp_path))
        dev, _where, logdet = proc.stdout.strip().splitlines()[-3:]
        assert abs(float(dev) - _expected()) < 1e-12 * _expected()
        assert abs(float(logdet) - np.log(8.0)) < 1e-14  # log det [[4, 2], [2, 3]]
    assert "compiling" not in proc.stderr
