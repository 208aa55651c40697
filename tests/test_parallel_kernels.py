"""The chunked parallel row passes (interlace.kernels.parallel) against the serial kernels.

For random problems (one k = 1 term, a k = 2 slope term, two and three crossed
terms) every dispatcher's outputs equal the serial kernel's to 1e-12 relative
(the chunked sums only regroup the additions), repeated calls are
bit-identical, and a run under NUMBA_NUM_THREADS=1 is bit-identical to one
with two threads (the chunk count never depends on the threads).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from interlace.kernels import crossprod as kx
from interlace.kernels import glm as kg
from interlace.kernels import gradient as kgr
from interlace.kernels import parallel as kpar
from interlace.model_frame import ReTerm
from interlace.objective.predictor import BlockedCholesky, ReStructure

REPO = Path(__file__).resolve().parents[1]
KERNELS = ["pirls_pass", "pirls_pass_joint", "eta_deviance", "glm_score_terms", "leverage_pass",
           "gradient_pass", "accumulate_re", "accumulate_x"]
SERIAL = {"pirls_pass": kg, "pirls_pass_joint": kg, "eta_deviance": kg, "glm_score_terms": kg,
          "leverage_pass": kgr, "gradient_pass": kgr, "accumulate_re": kx, "accumulate_x": kx}
# (levels, k) per term; the first has the most levels, as ReStructure expects
SPECS = {
    "k1": [(300, 1)],
    "slope": [(150, 2)],
    "crossed2": [(200, 1), (40, 1)],
    "crossed3": [(120, 2), (30, 1), (7, 1)],
}


def random_structure(spec, n: int, rng) -> ReStructure:
    """Random-effects terms of the given (levels, k) layout on n rows: random
    level codes (every level present), an intercept and normal covariates."""
    terms = []
    for j, (nlev, k) in enumerate(spec):
        codes = rng.integers(0, nlev, n)
        codes[:nlev] = np.arange(nlev)  # every level present
        z = np.ones((n, k))
        if k > 1:
            z[:, 1:] = rng.normal(size=(n, k - 1))
        terms.append(ReTerm(group=f"g{j}", vc_name=f"g{j}", codes=codes, levels=[str(i) for i in range(nlev)],
                            z=np.ascontiguousarray(z), cnames=["(Intercept)"] + [f"x{a}" for a in range(1, k)]))
    return ReStructure(terms)


def make_problem(spec, n: int, fam: int = 0, seed: int = 0):
    """Kernel inputs for a random GLMM of the given term layout: returns a
    function building a fresh argument tuple (new zeroed outputs) per kernel."""
    rng = np.random.default_rng(seed)
    re = random_structure(spec, n, rng)
    theta = re.theta_start() * 0.8 + np.where(re.theta_a != re.theta_b, 0.2, 0.0)
    zl = re.zlambda(theta)
    p = 3
    X = np.ascontiguousarray(np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))]))
    beta = np.array([0.2, -0.4, 0.3])
    offset = rng.normal(size=n) * 0.1
    base = X @ beta + offset
    u = rng.normal(size=re.q) * 0.7
    eta0 = re.eta_re(zl, u, base)
    link = 0 if fam == 0 else 3
    if fam == 0:
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta0))).astype(float)
    else:
        y = rng.poisson(np.exp(np.clip(eta0, -5, 5))).astype(float)
    wt = rng.uniform(0.5, 2.0, n)
    mu, w, r = np.empty(n), np.empty(n), np.empty(n)
    kg.glm_working(fam, link, y, wt, eta0, mu, w, r)
    w[::97] = 0.0  # rows with zero weight are skipped by the accumulations
    zw = (eta0 - base) + r
    chol = BlockedCholesky(re)
    chol.accumulate(w, zw, zl)
    chol.factor()
    Ainv11, Ainv21, Ainv22 = chol.selected_inverse_pairs()
    s, h, wd = np.empty(n), np.empty(n), np.empty(n)
    kg.glm_score_terms(fam, link, y, wt, eta0, s, h, wd)
    v = rng.normal(size=n) * 0.01
    xi = rng.normal(size=re.q) * 0.1
    xxi = rng.normal(size=n) * 0.1
    k0 = int(re.kdim[0])
    nt, q = re.ntheta, re.q

    def re_bufs():
        return (np.zeros((int(re.nlev[0]), k0, k0)), np.zeros(re.nv21), np.zeros((re.q2, re.q2)), np.zeros(q))

    def x_bufs():
        return (np.zeros((q, p)), np.zeros((p, p)), np.zeros(p))

    def e():
        return np.empty(n)

    def args(name):
        if name == "pirls_pass":
            return (fam, link, y, wt, base, re.codes, zl, re.kcol, re.kdim, re.uoff, u, re.pairidx, re.poff,
                    e(), e(), e(), e()) + re_bufs()
        if name == "pirls_pass_joint":
            return (fam, link, y, wt, X, beta, offset, re.codes, zl, re.kcol, re.kdim, re.uoff, u, re.pairidx,
                    re.poff, e(), e(), e(), e()) + re_bufs() + x_bufs()
        if name == "eta_deviance":
            return (fam, link, y, wt, base, re.codes, zl, re.kcol, re.kdim, re.uoff, u, e())
        if name == "glm_score_terms":
            return (fam, link, y, wt, eta0, e(), e(), e())
        if name == "leverage_pass":
            return (wd, re.codes, zl, re.kcol, re.kdim, re.uoff, re.pairidx, re.poff, Ainv11, Ainv21, Ainv22,
                    e(), np.zeros(q))
        if name == "gradient_pass":
            return (s, w, h, v, X, re.z, re.codes, zl, re.kcol, re.kdim, re.uoff, re.pairidx, re.poff, u, xi, xxi,
                    Ainv11, Ainv21, Ainv22, re.theta_term, re.theta_a, re.theta_b, np.zeros(p), np.zeros(nt), True)
        if name == "accumulate_re":
            return (w, zw, re.codes, zl, re.kcol, re.kdim, re.uoff, re.pairidx, re.poff) + re_bufs()
        if name == "accumulate_x":
            return (w, zw, X, re.codes, zl, re.kcol, re.kdim, re.uoff) + x_bufs()
        raise KeyError(name)

    return args


def outputs(args, result) -> list[np.ndarray]:
    """The float arrays a call may have written, and its return value."""
    out = [a for a in args if isinstance(a, np.ndarray) and a.dtype == np.float64]
    if result is not None:
        out.append(np.atleast_1d(np.asarray(result, dtype=float)))
    return out


@pytest.fixture
def low_threshold(monkeypatch):
    """Force the chunked path on small test problems (and several chunks)."""
    monkeypatch.setattr(kpar, "PARALLEL_MIN_ROWS", 1000)
    monkeypatch.setattr(kpar, "ROWS_PER_CHUNK", 800)


@pytest.mark.parametrize("fam", [0, 1])
@pytest.mark.parametrize("layout", list(SPECS))
def test_dispatchers_equal_serial_kernels(low_threshold, layout, fam):
    n = 7001  # not a multiple of the chunk count
    mk = make_problem(SPECS[layout], n, fam=fam, seed=list(SPECS).index(layout))
    assert kpar._chunks_for(n, ()) == 8
    for name in KERNELS:
        a_ser, a_par = mk(name), mk(name)
        r_ser = getattr(SERIAL[name], name)(*a_ser)
        r_par = getattr(kpar, name)(*a_par)
        assert (r_ser is None) == (r_par is None), name
        for xs, xp in zip(outputs(a_ser, r_ser), outputs(a_par, r_par)):
            scale = max(float(np.max(np.abs(xs))) if xs.size else 0.0, 1e-300)
            np.testing.assert_allclose(xp, xs, rtol=0, atol=1e-12 * scale, err_msg=name)
        # deterministic: a second call gives the same bits
        a_par2 = mk(name)
        r_par2 = getattr(kpar, name)(*a_par2)
        for x1, x2 in zip(outputs(a_par, r_par), outputs(a_par2, r_par2)):
            assert np.array_equal(x1, x2), name


def test_serial_below_threshold():
    """Small inputs (n = 56, like cbpp) take the serial kernel: identical bits."""
    mk = make_problem(SPECS["crossed2"], 560, seed=3)
    assert kpar._chunks_for(560, ()) == 1
    for name in KERNELS:
        a_ser, a_par = mk(name), mk(name)
        r_ser = getattr(SERIAL[name], name)(*a_ser)
        r_par = getattr(kpar, name)(*a_par)
        for xs, xp in zip(outputs(a_ser, r_ser), outputs(a_par, r_par)):
            assert np.array_equal(xs, xp), name


def test_chunk_count_rules():
    assert kpar.n_chunks(56, 10) == 1
    assert kpar.n_chunks(100_000, 4_000) == 4
    assert kpar.n_chunks(1_000_000, 0) == 16
    # two crossed factors of 50k rows (A22 200 x 200 + V21): fewer chunks
    assert kpar.n_chunks(50_000, 90_000) == 2
    # per-chunk buffers beyond the memory cap (A22 of 3000 x 3000): serial
    assert kpar.n_chunks(200_000, 3000 * 3000) == 1
    # big buffers shrink the chunk count before going serial
    assert kpar.n_chunks(1_000_000, 1_500_000) == 2


_SUBPROCESS = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    import numba
    from test_parallel_kernels import KERNELS, SPECS, make_problem, outputs
    from interlace.kernels import parallel as kpar
    kpar.PARALLEL_MIN_ROWS = 1000
    kpar.ROWS_PER_CHUNK = 800
    hsh = hashlib.sha256()
    for layout in SPECS:
        mk = make_problem(SPECS[layout], 7001, seed=11)
        for name in KERNELS:
            a = mk(name)
            r = getattr(kpar, name)(*a)
            for x in outputs(a, r):
                hsh.update(np.ascontiguousarray(x).tobytes())
    print(numba.config.NUMBA_NUM_THREADS, kpar._helpers(), hsh.hexdigest())
""")


def _run_with_threads(nthreads: int) -> tuple[int, str]:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(nthreads))
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", _SUBPROCESS.format(tests=str(REPO / "tests"))], env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    nt, nh, digest = out.stdout.strip().splitlines()[-1].split()
    assert int(nh) == int(nt) - 1
    return int(nt), digest


def test_bit_identical_across_thread_counts():
    one = _run_with_threads(1)
    two = _run_with_threads(2)
    assert one[0] == 1 and two[0] == 2
    assert one[1] == two[1]
    assert hashlib.sha256(b"").hexdigest() != one[1]


def test_concurrent_calls_from_threads(low_threshold):
    """Passes started from several Python threads at once (a threaded Dask
    scheduler, user threads) share the helper threads and give the same bits."""
    import threading

    mk = make_problem(SPECS["crossed3"], 9001, seed=4)
    ref_args = mk("pirls_pass_joint")
    ref = outputs(ref_args, kpar.pirls_pass_joint(*ref_args))
    got: list = [None] * 4

    def one(t: int) -> None:
        a = mk("pirls_pass_joint")
        got[t] = outputs(a, kpar.pirls_pass_joint(*a))

    threads = [threading.Thread(target=one, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for g in got:
        assert g is not None and all(np.array_equal(x, y) for x, y in zip(ref, g))


def test_run_chunks_order_and_errors():
    assert kpar.run_chunks(5, lambda c: 10 * c) == [0, 10, 20, 30, 40]

    def bad(c: int) -> int:
        if c == 2:
            raise ValueError("chunk 2")
        return c

    with pytest.raises(ValueError, match="chunk 2"):
        kpar.run_chunks(4, bad)


# ----------------------------------------------------------------- cross-block column kernels
def _cross_problem(spec, n=6000, seed=3):
    """A factored BlockedCholesky (before its dense block) for crossed terms, and
    the dense A = U'WU + I it represents, built directly from the codes."""
    rng = np.random.default_rng(seed)
    re = random_structure(spec, n, rng)
    theta = re.theta_start() * 0.9
    zl = re.zlambda(theta)
    w = rng.uniform(0.05, 0.25, n)
    U = np.zeros((n, re.q))
    for j in range(re.m):
        k, c0 = int(re.kdim[j]), int(re.kcol[j])
        for a in range(k):
            U[np.arange(n), re.uoff[j] + re.codes[j] * k + a] = zl[:, c0 + a]
    A = U.T @ (w[:, None] * U) + np.eye(re.q)
    chol = BlockedCholesky(re)
    chol.accumulate(w, rng.normal(size=n), zl)
    return re, chol, A


@pytest.mark.parametrize("spec", [[(400, 1), (60, 1)], [(150, 2), (50, 1), (9, 1)]])
def test_column_chunked_cross_kernels(monkeypatch, spec):
    """The row-chunked Schur complement and the column-chunked selected inverse
    equal the serial kernels exactly (both write disjoint entries in the serial
    order), chunks cut at whole levels, and the factor
    they feed reproduces log det A and A^{-1} of the dense matrix."""
    monkeypatch.setattr(kpar, "CROSS_MIN_WORK", 1)
    re, chol, A = _cross_problem(spec)
    k0 = int(re.kdim[0])
    splits = kpar._column_splits(re.csc_indptr, k0)
    assert splits is not None and len(splits) == kpar.CROSS_CHUNKS + 1
    assert np.all(splits % k0 == 0) and splits[0] == 0 and splits[-1] == re.q0

    chol.factor()  # the chunked Schur complement (q2 >= DENSE_MAX) and LAPACK
    sign, logdet = np.linalg.slogdet(A)
    assert sign > 0 and abs(chol.logdet - logdet) <= 1e-10 * abs(logdet)

    ncol = re.csc_indptr.shape[0] - 1
    S_ser = np.eye(re.q2) * 3.0
    S_par = S_ser.copy()
    scratch = np.empty(re.csc_pos.shape[0])
    kx.schur_lower(re.csc_indptr, re.csc_indices, re.csc_pos, chol.L21vals, S_ser, 0, ncol, scratch)
    rsplits = kpar._row_splits(re.csc_indptr, re.csc_indices, re.q2)
    assert rsplits is not None and len(rsplits) == kpar.CROSS_CHUNKS + 1
    kpar.schur_lower(re.csc_indptr, re.csc_indices, re.csc_pos, chol.L21vals, S_par)
    # row ranges: every entry summed in the serial kernel's order
    assert np.array_equal(np.tril(S_par), np.tril(S_ser))

    Ainv11, Ainv21, Ainv22 = chol.selected_inverse_pairs()  # the chunked path
    Ainv = np.linalg.inv(A)
    q0 = re.q0
    for l in range(int(re.nlev[0])):
        blk = Ainv[l * k0:(l + 1) * k0, l * k0:(l + 1) * k0]
        np.testing.assert_allclose(Ainv11[l], blk, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(Ainv22, Ainv[q0:, q0:], rtol=1e-9, atol=1e-12)
    monkeypatch.setattr(kpar, "CROSS_MIN_WORK", 10**18)  # serial
    s11, s21, _ = chol.selected_inverse_pairs()
    assert np.array_equal(s21, Ainv21) and np.array_equal(s11, Ainv11)
