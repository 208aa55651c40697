"""Chunked parallel row passes for large fits, with the serial kernels' signatures.

A large fit spends most of its time in the row passes of ``glm``,
``gradient`` and ``crossprod``. Every pass is a sum over rows, so the rows are
split into a FIXED number of contiguous chunks; each chunk runs the serial
kernel itself (compiled ``nogil``) on row-sliced views of the per-row arrays,
into its own accumulation buffers (chunk 0 into the caller's when they are large), and
the buffers are then added in chunk order. Per-row outputs (eta, mu, w, r,
v, ...) are written through the views. (The views let every chunk's loop
start at a constant 0: a kernel looping over rows [lo, hi) with a run-time lo
measured 5-40% slower per row, LLVM keeping more index arithmetic.)

Determinism: the chunk count is a function of the number of rows and the
buffer sizes only, never of the thread count, and chunk c always sums rows
[c n / C, (c + 1) n / C) into buffer c. A pass therefore gives bit-identical
results on any machine and under any ``NUMBA_NUM_THREADS``; it differs from the
serial kernel only by the rounding of the regrouped sums.

Why threads claiming chunks and not ``prange``: a numba parallel region ends
at a barrier every worker thread must reach, so when another process holds
the second core a 4 ms pass waited tens of milliseconds for the worker's time
slice (measured on a 2-core machine: 30-40 ms per pass, 10x the serial
time). Here the calling thread and ``numba.get_num_threads() - 1`` helper
threads claim chunks one at a time; a helper that is not scheduled simply
claims nothing and the caller runs the remaining chunks itself. Nothing new
to compile beyond the serial kernels taking column-sliced (m, n) code arrays.

The dispatchers at the bottom (``pirls_pass``, ``pirls_pass_joint``,
``eta_deviance``, ``glm_score_terms``, ``leverage_pass``, ``gradient_pass``,
``accumulate_re``, ``accumulate_x``) take exactly the serial kernels'
arguments and return their values; they run the serial kernel below
``PARALLEL_MIN_ROWS`` rows (thread hand-offs cost more than they save there)
or when the per-chunk buffers would be too large.

Example
-------
>>> from interlace.kernels import parallel as kpar
>>> kpar.n_chunks(56, 10), kpar.n_chunks(100_000, 4_000), kpar.n_chunks(50_000, 90_000)
(1, 4, 2)
"""

from __future__ import annotations

import inspect
import os
import queue
import threading
import weakref
from collections.abc import Callable, Sequence

import numba
import numpy as np
from numba import njit

from interlace.kernels import crossprod as _kx
from interlace.kernels import glm as _kg
from interlace.kernels import gradient as _kgr
from interlace.kernels import wide_term as _wide
from interlace.kernels.crossprod import symmetrize_lower

# Below this many rows the serial kernels run: a chunk hand-off costs some
# tens of microseconds, a row 5-60 ns. Measured on 2 cores (simbin_ri rows,
# whole fits, parallel passes vs the compiled serial PIRLS loops): even at
# 10k and 20k rows, ahead from 40k (100k: 0.43 -> 0.26 s). Tests lower it to
# exercise the chunked path on small data.
PARALLEL_MIN_ROWS = 30_000
# chunk counts are powers of two from 4 (two per core on two cores, so a
# late helper costs at most a quarter of the pass) up to MAX_CHUNKS, one
# doubling per ROWS_PER_CHUNK * 4 rows
ROWS_PER_CHUNK = 25_000
MIN_CHUNKS = 4
MAX_CHUNKS = 16
# extra memory for the per-chunk buffers (chunks 1..C-1)
MAX_EXTRA_BYTES = 64 << 20
# the extra buffers are zeroed and added once per pass; beyond this many
# entries per row that costs more than the rows' share saved (dense A22 of
# many crossed levels), so fewer chunks, then none
MAX_BUFFER_PER_ROW = 4.0


def n_chunks(n: int, buf_elems: int) -> int:
    """Number of contiguous row chunks for a pass over ``n`` rows whose sums
    need ``buf_elems`` float64 entries per chunk; 1 means run serially.

    A function of (n, buf_elems) only, so results never depend on threads.

    >>> n_chunks(1_000_000, 0), n_chunks(50_000, 40_000_000)
    (16, 1)
    """
    if n < max(PARALLEL_MIN_ROWS, 2):
        return 1
    nch = MIN_CHUNKS
    while nch * 2 <= MAX_CHUNKS and n // (nch * 2) >= ROWS_PER_CHUNK:
        nch *= 2
    while nch > 1 and ((nch - 1) * buf_elems * 8 > MAX_EXTRA_BYTES
                       or (nch - 1) * buf_elems > MAX_BUFFER_PER_ROW * n):
        nch //= 2
    return nch


@njit(cache=True, nogil=True)
def _add_chunks(out, bufs, off):
    """out += bufs[0, off:] + bufs[1, off:] + ... (flat views), in chunk order."""
    for c in range(bufs.shape[0]):
        for e in range(out.shape[0]):
            out[e] += bufs[c, off + e]


# chunk buffers are padded apart by this many float64 (two 64-byte cache
# lines): small buffers (the gradient's, X'WX) of different chunks in one
# cache line made two threads fight over it on every row (measured: the
# gradient pass gained 1.25x on two cores instead of 1.9x). For the same
# reason chunk 0 sums a small buffer into a padded copy too, not into the
# caller's array: that sits among other small arrays (kdim, uoff, ...) which
# the other threads read on every row.
_PAD = 16
_SMALL = 4096


# ----------------------------------------------------------------- the helper threads
class _Job:
    """One chunked pass: chunks are claimed one at a time by whichever thread
    is free; the caller waits only for chunks a helper has claimed."""

    def __init__(self, nch: int, work: Callable[[int], object]) -> None:
        self.nch = nch
        self.work = work
        self.results: list[object] = [None] * nch
        self.error: BaseException | None = None
        self._next = 0
        self._left = nch
        self._lock = threading.Lock()
        self._done = threading.Event()

    def _claim(self) -> int:
        with self._lock:
            c = self._next
            self._next += 1
            return c

    def run_chunks(self) -> None:
        while True:
            c = self._claim()
            if c >= self.nch:
                return
            try:
                self.results[c] = self.work(c)
            except BaseException as exc:  # re-raised by the caller
                self.error = exc
            with self._lock:
                self._left -= 1
                if self._left == 0:
                    self._done.set()

    def wait(self) -> None:
        self._done.wait()
        if self.error is not None:
            raise self.error


class _Pool:
    """Daemon helper threads that run the chunks of queued jobs."""

    def __init__(self, nthreads: int) -> None:
        self.nthreads = nthreads
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        for i in range(nthreads):
            threading.Thread(target=self._loop, name=f"interlace-rows-{i}", daemon=True).start()

    def _loop(self) -> None:
        while True:
            job = self.queue.get()
            job.run_chunks()


_POOL: _Pool | None = None
_POOL_LOCK = threading.Lock()


def _helpers() -> int:
    """Helper threads to use: numba's thread count (NUMBA_NUM_THREADS, by
    default the CPUs this process may run on) less the calling thread. Read
    from the configuration: asking numba.get_num_threads() would start
    numba's own thread pool, which these passes do not use."""
    return max(int(numba.config.NUMBA_NUM_THREADS) - 1, 0)


def _pool(nthreads: int) -> _Pool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.nthreads < nthreads:
            _POOL = _Pool(nthreads)
        return _POOL


def _after_fork_in_child() -> None:
    # the parent's helper threads do not exist in a forked child
    global _POOL, _POOL_LOCK
    _POOL = None
    _POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def run_chunks(nch: int, work: Callable[[int], object]) -> list[object]:
    """Run ``work(c)`` for c in range(nch) on the caller and the helper
    threads; return the results in chunk order.

    >>> run_chunks(3, lambda c: c * c)
    [0, 1, 4]
    """
    job = _Job(nch, work)
    nh = min(_helpers(), nch - 1)
    if nh > 0:
        pool = _pool(nh)
        for _ in range(nh):
            pool.queue.put(job)
    job.run_chunks()
    job.wait()
    return job.results


# ----------------------------------------------------------------- chunked passes
def _chunks_for(n: int, bufs: Sequence[np.ndarray]) -> int:
    """Chunk count for these output buffers; 1 (serial) when any buffer is not
    C-contiguous (the chunk sums are added over flat views)."""
    if n < PARALLEL_MIN_ROWS:
        return 1
    elems = 0
    for b in bufs:
        if not b.flags.c_contiguous:
            return 1
        elems += b.size
    return n_chunks(n, elems)


def _chunked(kernel, n: int, nch: int, args: tuple, rows: str) -> list[object]:
    """Run ``kernel`` on nch row chunks. ``rows`` gives per argument how it is
    cut: 'r' per-row (first axis), 'c' (m, n) per-row columns, 'b' an output
    buffer (chunk c > 0 gets its own zeroed copy, added into the caller's in
    chunk order afterwards), '.' passed whole. Returns the chunks' return
    values in chunk order."""
    bpos = [k for k, t in enumerate(rows) if t == "b"]
    # chunk c sums buffer k into views[k][c]: a padded private copy, or for
    # chunk 0 and a large buffer the caller's array itself
    first = [1 if args[k].size >= _SMALL else 0 for k in bpos]
    cbufs = [np.zeros((nch - f, -(-(args[k].size + _PAD) // _PAD) * _PAD + _PAD)) for k, f in zip(bpos, first)]
    views = [([args[k]] if f else []) + [cb[c, _PAD:_PAD + args[k].size].reshape(args[k].shape)
                                         for c in range(nch - f)]
             for k, f, cb in zip(bpos, first, cbufs)]

    def work(c: int):
        lo, hi = c * n // nch, (c + 1) * n // nch
        a = list(args)
        for k, t in enumerate(rows):
            if t == "r":
                a[k] = args[k][lo:hi]
            elif t == "c":
                a[k] = args[k][:, lo:hi]
        for k, v in zip(bpos, views):
            a[k] = v[c]
        return kernel(*a)

    res = run_chunks(nch, work)
    for k, cb in zip(bpos, cbufs):
        b = args[k]
        if b.size:
            _add_chunks(b.reshape(-1), cb, _PAD)
    return res


# how each kernel's arguments are cut into chunks, by parameter name (the
# kernels share their names): per-row first axis, (m, n) columns, buffers
_ROW_ARGS = {"y", "wt", "base", "zl", "eta", "mu_out", "w_out", "r_out", "X", "offset", "s", "w", "hh", "v", "z",
             "xxi", "wd", "zw", "h", "zld", "r"}
_COL_ARGS = {"codes", "pairidx"}
_BUF_ARGS = {"A11", "V21", "A22", "rhs", "UtWX", "XtWX", "xrhs", "Utv", "gbeta", "gtheta", "rhs_u", "rhs_b"}


def _cuts(kernel) -> str:
    names = inspect.signature(kernel.py_func).parameters
    return "".join("r" if a in _ROW_ARGS else "c" if a in _COL_ARGS else "b" if a in _BUF_ARGS else "."
                   for a in names)


_CUTS = {k.__name__: _cuts(k) for k in (_kg.pirls_pass, _kg.pirls_pass_joint, _kg.eta_deviance,
                                        _kg.glm_score_terms, _kgr.leverage_pass, _kgr.gradient_pass,
                                        _kx.accumulate_re, _kx.accumulate_x, _kgr.tangent_rhs)}


def _sum_in_order(parts: Sequence[object]) -> float:
    s = 0.0
    for d in parts:
        s += float(d)
    return s


# ----------------------------------------------------------------- dispatchers
def pirls_pass(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
               eta, mu_out, w_out, r_out, A11, V21, A22, rhs) -> float:
    """glm.pirls_pass, chunked over the rows when there are many.

    Same arguments and return value as :func:`interlace.kernels.glm.pirls_pass`.
    """
    if _wide.is_wide(codes, kdim):  # one term of many columns (spatial): BLAS by level
        return _wide.pirls_pass(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
                                eta, mu_out, w_out, r_out, A11, V21, A22, rhs)
    args = (fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx, poff, eta, mu_out, w_out, r_out,
            A11, V21, A22, rhs)
    n = y.shape[0]
    nch = _chunks_for(n, (A11, V21, A22, rhs))
    if nch <= 1:
        return _kg.pirls_pass(*args)
    return _sum_in_order(_chunked(_kg.pirls_pass, n, nch, args, _CUTS['pirls_pass']))


def pirls_pass_joint(fam, link, y, wt, X, beta, offset, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
                     eta, mu_out, w_out, r_out, A11, V21, A22, rhs, UtWX, XtWX, xrhs) -> float:
    """glm.pirls_pass_joint, chunked over the rows when there are many."""
    if _wide.is_wide(codes, kdim):  # one term of many columns (spatial): BLAS by level
        return _wide.pirls_pass_joint(fam, link, y, wt, X, beta, offset, codes, zl, kcol, kdim, uoff, u, pairidx,
                                      poff, eta, mu_out, w_out, r_out, A11, V21, A22, rhs, UtWX, XtWX, xrhs)
    args = (fam, link, y, wt, X, beta, offset, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
            eta, mu_out, w_out, r_out, A11, V21, A22, rhs, UtWX, XtWX, xrhs)
    n = y.shape[0]
    nch = _chunks_for(n, (A11, V21, A22, rhs, UtWX, XtWX, xrhs))
    if nch <= 1:
        return _kg.pirls_pass_joint(*args)
    dev = _sum_in_order(_chunked(_kg.pirls_pass_joint, n, nch, args, _CUTS['pirls_pass_joint']))
    symmetrize_lower(XtWX)
    return dev


def eta_deviance(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, eta) -> float:
    """glm.eta_deviance, chunked over the rows when there are many."""
    args = (fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, eta)
    n = y.shape[0]
    nch = _chunks_for(n, ())
    if nch <= 1:
        return _kg.eta_deviance(*args)
    return _sum_in_order(_chunked(_kg.eta_deviance, n, nch, args, _CUTS['eta_deviance']))


def glm_score_terms(fam, link, y, wt, eta, s, h, wd) -> None:
    """glm.glm_score_terms, chunked over the rows when there are many."""
    args = (fam, link, y, wt, eta, s, h, wd)
    n = y.shape[0]
    nch = _chunks_for(n, ())
    if nch <= 1:
        return _kg.glm_score_terms(*args)
    _chunked(_kg.glm_score_terms, n, nch, args, _CUTS['glm_score_terms'])


def leverage_pass(wd, codes, zl, kcol, kdim, uoff, pairidx, poff, Ainv11, Ainv21, Ainv22, v, Utv) -> None:
    """gradient.leverage_pass, chunked over the rows when there are many."""
    if _wide.is_wide(codes, kdim):  # one term of many columns (spatial): BLAS by level
        return _wide.leverage_pass(wd, codes, zl, kcol, kdim, uoff, Ainv11, v, Utv)
    args = (wd, codes, zl, kcol, kdim, uoff, pairidx, poff, Ainv11, Ainv21, Ainv22, v, Utv)
    n = wd.shape[0]
    nch = _chunks_for(n, (Utv,))
    if nch <= 1:
        return _kgr.leverage_pass(*args)
    _chunked(_kgr.leverage_pass, n, nch, args, _CUTS['leverage_pass'])


def gradient_pass(s, w, hh, v, X, z, codes, zl, kcol, kdim, uoff, pairidx, poff, u, xi, xxi,
                  Ainv11, Ainv21, Ainv22, th_term, th_a, th_b, gbeta, gtheta, with_beta) -> None:
    """gradient.gradient_pass, chunked over the rows when there are many."""
    if _wide.is_wide(codes, kdim):  # one term of many columns (spatial): BLAS by level
        return _wide.gradient_pass(s, w, hh, v, X, z, codes, zl, kcol, kdim, uoff, u, xi, xxi, Ainv11,
                                   th_a, th_b, gbeta, gtheta, with_beta)
    args = (s, w, hh, v, X, z, codes, zl, kcol, kdim, uoff, pairidx, poff, u, xi, xxi,
            Ainv11, Ainv21, Ainv22, th_term, th_a, th_b, gbeta, gtheta, with_beta)
    n = s.shape[0]
    nch = _chunks_for(n, (gbeta, gtheta))
    if nch <= 1:
        return _kgr.gradient_pass(*args)
    _chunked(_kgr.gradient_pass, n, nch, args, _CUTS['gradient_pass'])


def tangent_rhs(w, r, X, dbeta, codes, zl, zld, kcol, kdim, uoff, u, rhs_u, rhs_b, joint) -> None:
    """gradient.tangent_rhs, chunked over the rows when there are many."""
    args = (w, r, X, dbeta, codes, zl, zld, kcol, kdim, uoff, u, rhs_u, rhs_b, joint)
    n = w.shape[0]
    nch = _chunks_for(n, (rhs_u, rhs_b))
    if nch <= 1:
        return _kgr.tangent_rhs(*args)
    _chunked(_kgr.tangent_rhs, n, nch, args, _CUTS['tangent_rhs'])


def accumulate_re(w, zw, codes, zl, kcol, kdim, uoff, pairidx, poff, A11, V21, A22, rhs) -> None:
    """crossprod.accumulate_re, chunked over the rows when there are many."""
    if _wide.is_wide(codes, kdim):  # one term of many columns (spatial): BLAS by level
        return _wide.accumulate_re(w, zw, codes, zl, kcol, kdim, uoff, pairidx, poff, A11, V21, A22, rhs)
    args = (w, zw, codes, zl, kcol, kdim, uoff, pairidx, poff, A11, V21, A22, rhs)
    n = w.shape[0]
    nch = _chunks_for(n, (A11, V21, A22, rhs))
    if nch <= 1:
        return _kx.accumulate_re(*args)
    _chunked(_kx.accumulate_re, n, nch, args, _CUTS['accumulate_re'])


def accumulate_x(w, zw, X, codes, zl, kcol, kdim, uoff, UtWX, XtWX, xrhs) -> None:
    """crossprod.accumulate_x, chunked over the rows when there are many."""
    args = (w, zw, X, codes, zl, kcol, kdim, uoff, UtWX, XtWX, xrhs)
    n = w.shape[0]
    nch = _chunks_for(n, (UtWX, XtWX, xrhs))
    if nch <= 1:
        return _kx.accumulate_x(*args)
    _chunked(_kx.accumulate_x, n, nch, args, _CUTS['accumulate_x'])
    symmetrize_lower(XtWX)


# ----------------------------------------------------------------- column-chunked cross-block kernels
# Crossed factors (simcross: 1,000 x 200 levels, 44k level pairs) spend a
# third of the fit in two column loops over the cross block L21: the Schur
# complement S = A22 + I - L21 L21' and the selected inverse on its pattern.
# Their work is sum over term-0 columns of nnz(col)^2; from CROSS_MIN_WORK
# (about 0.1 ms) the columns are cut into CROSS_CHUNKS ranges of equal work,
# again a function of the pattern only, never of the threads.
CROSS_MIN_WORK = 100_000
CROSS_CHUNKS = 2


# the splits of the last patterns seen: a fit calls these kernels on the same
# pattern arrays hundreds of times (keyed by identity, checked by weak reference)
_SPLITS: dict = {}


def _column_splits(indptr: np.ndarray, k0: int) -> np.ndarray | None:
    """Column boundaries (multiples of k0) cutting sum nnz^2 into
    CROSS_CHUNKS equal parts, or None when the work is too small to split.

    >>> _column_splits(np.arange(0, 3000, 3), 1) is None
    True
    """
    key = (id(indptr), k0, CROSS_MIN_WORK, CROSS_CHUNKS)
    hit = _SPLITS.get(key)
    if hit is not None and hit[0]() is indptr:
        return hit[1]
    splits = _compute_splits(indptr, k0)
    if len(_SPLITS) > 64:
        _SPLITS.clear()
    _SPLITS[key] = (weakref.ref(indptr), splits)
    return splits


def _compute_splits(indptr: np.ndarray, k0: int) -> np.ndarray | None:
    nnz = np.diff(indptr).astype(np.float64)
    work = np.cumsum(nnz * nnz)
    if len(work) == 0 or work[-1] < CROSS_MIN_WORK:
        return None
    ncol = len(nnz)
    cuts = np.searchsorted(work, work[-1] * np.arange(1, CROSS_CHUNKS) / CROSS_CHUNKS)
    cuts = (cuts // k0) * k0
    return np.unique(np.concatenate([[0], np.clip(cuts, 0, ncol), [ncol]]))


def _row_splits(indptr: np.ndarray, indices: np.ndarray, q2: int) -> np.ndarray | None:
    """Row boundaries cutting the Schur complement's work (each stored entry
    costs its position in its column + 1) into CROSS_CHUNKS equal parts, or
    None when the work is too small to split; cached per pattern like
    :func:`_column_splits`."""
    key = ("rows", id(indptr), id(indices), q2, CROSS_MIN_WORK, CROSS_CHUNKS)
    hit = _SPLITS.get(key)
    if hit is not None and hit[0]() is indptr:
        return hit[1]
    nnz = np.diff(indptr)
    if float(np.sum(nnz.astype(np.float64) ** 2)) < CROSS_MIN_WORK or q2 < 2:
        splits = None
    else:
        rank = np.arange(indices.shape[0]) - np.repeat(indptr[:-1], nnz) + 1.0
        work = np.cumsum(np.bincount(indices, weights=rank, minlength=q2))
        cuts = np.searchsorted(work, work[-1] * np.arange(1, CROSS_CHUNKS) / CROSS_CHUNKS)
        splits = np.unique(np.concatenate([[0], np.clip(cuts, 0, q2), [q2]])).astype(np.int64)
    if len(_SPLITS) > 64:
        _SPLITS.clear()
    _SPLITS[key] = (weakref.ref(indptr), splits)
    return splits


def schur_lower(indptr, indices, pos, vals, S) -> None:
    """S -= L21 L21' (lower triangle); see crossprod.schur_lower. Ranges of
    rows of equal work on the helper threads, each writing its own rows of S
    (no private copies of S, which is q2 x q2 and dense; every entry summed
    in the serial kernel's order, so the result does not depend on the split)."""
    cv = np.empty(pos.shape[0])
    _kx.gather(vals, pos, cv)
    splits = _row_splits(indptr, indices, S.shape[0])
    if splits is None or len(splits) <= 2:
        _kx.schur_lower_rows(indptr, indices, cv, S, 0, S.shape[0])
        return
    run_chunks(len(splits) - 1, lambda c: _kx.schur_lower_rows(indptr, indices, cv, S, splits[c], splits[c + 1]))


def selected_cross_inverse(indptr, indices, pos, Mflat, Ainv22, k0, out, Ainv11) -> None:
    """crossprod.selected_cross_inverse over all term-0 columns, in column
    ranges of equal work (whole levels) on the helper threads; the ranges
    write disjoint entries, so the result does not depend on the split."""
    mv = np.empty(pos.shape[0])
    ncol = indptr.shape[0] - 1
    splits = _column_splits(indptr, k0)
    if splits is None or len(splits) <= 2:
        _kx.selected_cross_inverse(indptr, indices, pos, Mflat, Ainv22, k0, out, Ainv11, 0, ncol, mv)
        return
    run_chunks(len(splits) - 1, lambda c: _kx.selected_cross_inverse(
        indptr, indices, pos, Mflat, Ainv22, k0, out, Ainv11, splits[c], splits[c + 1], mv))
