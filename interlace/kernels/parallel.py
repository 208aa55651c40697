"""Chunked parallel row passes for large fits, with the serial kernels' signatures.

A large fit spends most of its time in the row passes of ``glm``,
``gradient`` and ``crossprod``. Every pass is a sum over rows, so the rows are
split into a FIXED number of contiguous chunks, the chunks run under
``prange`` each with its own accumulation buffers (chunk 0 adds straight into
the caller's), and the buffers are then added in chunk order. Per-row outputs
(eta, mu, w, r, v, ...) are written directly.

Determinism: the chunk count is a function of the number of rows and the
buffer sizes only, never of the thread count, and no ``prange`` reduction is
used (their combination order depends on the threads). A pass therefore gives
bit-identical results on any machine and under any ``NUMBA_NUM_THREADS``; it
differs from the serial kernel only by the rounding of the regrouped sums.

The dispatchers at the bottom (``pirls_pass``, ``pirls_pass_joint``,
``eta_deviance``, ``glm_score_terms``, ``leverage_pass``, ``gradient_pass``,
``accumulate_re``, ``accumulate_x``) take exactly the serial kernels'
arguments and return their values; they run the serial kernel below
``PARALLEL_MIN_ROWS`` rows (thread start-up costs more than it saves there)
or when the per-chunk buffers would be too large.

Example
-------
>>> import numpy as np
>>> from interlace.kernels import parallel as kpar
>>> kpar.n_chunks(56, 10), kpar.n_chunks(100_000, 4_000)
(1, 2)
"""

from __future__ import annotations

import os
import threading

import numpy as np
from numba import njit, prange

from interlace.kernels import crossprod as _kx
from interlace.kernels import glm as _kg
from interlace.kernels import gradient as _kgr
from interlace.kernels.crossprod import accumulate_re_rows, accumulate_x_rows, symmetrize_lower
from interlace.kernels.glm import eta_deviance_rows, pirls_joint_rows, pirls_rows, score_terms_rows
from interlace.kernels.gradient import gradient_rows, leverage_rows

# Below this many rows the serial kernels run (measured: see tests and the
# module's report; the fork/join of a parallel region costs tens of
# microseconds, a row a few tens of nanoseconds). Tests may lower it.
PARALLEL_MIN_ROWS = 20_000
# rows per chunk before the chunk count doubles (2, 4, 8): two chunks balance
# two cores; larger data get more chunks for machines with more cores
ROWS_PER_CHUNK = 100_000
MAX_CHUNKS = 8
# extra memory for the per-chunk buffers (chunks 1..C-1)
MAX_EXTRA_BYTES = 64 << 20
# the buffers are zeroed and added once per chunk; past this many buffer
# entries per row that costs more than the rows' share saved
MAX_BUFFER_PER_ROW = 4.0


def n_chunks(n: int, buf_elems: int) -> int:
    """Number of contiguous row chunks for a pass over ``n`` rows whose sums
    need ``buf_elems`` float64 entries per chunk; 1 means run serially.

    A function of (n, buf_elems) only, so results never depend on threads.

    >>> n_chunks(1_000_000, 0), n_chunks(50_000, 40_000_000)
    (8, 1)
    """
    if n < PARALLEL_MIN_ROWS or n < 2:
        return 1
    nch = 2
    while nch * 2 <= MAX_CHUNKS and n // (nch * 2) >= ROWS_PER_CHUNK:
        nch *= 2
    while nch > 1 and ((nch - 1) * buf_elems * 8 > MAX_EXTRA_BYTES
                       or (nch - 1) * buf_elems > MAX_BUFFER_PER_ROW * n):
        nch //= 2
    return nch


# ----------------------------------------------------------------- compiled parts
@njit(cache=True, inline="always")
def _bounds(c, nch, n):
    return c * n // nch, (c + 1) * n // nch


@njit(parallel=True, cache=True)
def _add_chunks(out, bufs):
    """out += bufs[0] + bufs[1] + ... (flat, in chunk order), in parallel over
    entries: every entry's sum has the same order whatever the threads."""
    nb = bufs.shape[0]
    for e in prange(out.shape[0]):
        s = out[e]
        for c in range(nb):
            s += bufs[c, e]
        out[e] = s


@njit(cache=True)
def _sum_in_order(x):
    s = 0.0
    for c in range(x.shape[0]):
        s += x[c]
    return s


@njit(parallel=True, cache=True)
def _pirls_par(nch, fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
               eta, mu_out, w_out, r_out, A11, V21, A22, rhs, A11c, V21c, A22c, rhsc):
    n = y.shape[0]
    devs = np.zeros(nch)
    for c in prange(nch):
        lo, hi = _bounds(c, nch, n)
        if c == 0:
            devs[c] = pirls_rows(lo, hi, fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
                                 eta, mu_out, w_out, r_out, A11, V21, A22, rhs)
        else:
            devs[c] = pirls_rows(lo, hi, fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
                                 eta, mu_out, w_out, r_out, A11c[c - 1], V21c[c - 1], A22c[c - 1], rhsc[c - 1])
    return _sum_in_order(devs)


@njit(parallel=True, cache=True)
def _pirls_joint_par(nch, fam, link, y, wt, X, beta, offset, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
                     eta, mu_out, w_out, r_out, A11, V21, A22, rhs, UtWX, XtWX, xrhs,
                     A11c, V21c, A22c, rhsc, UtWXc, XtWXc, xrhsc):
    n = y.shape[0]
    devs = np.zeros(nch)
    for c in prange(nch):
        lo, hi = _bounds(c, nch, n)
        if c == 0:
            devs[c] = pirls_joint_rows(lo, hi, fam, link, y, wt, X, beta, offset, codes, zl, kcol, kdim, uoff,
                                       u, pairidx, poff, eta, mu_out, w_out, r_out, A11, V21, A22, rhs,
                                       UtWX, XtWX, xrhs)
        else:
            devs[c] = pirls_joint_rows(lo, hi, fam, link, y, wt, X, beta, offset, codes, zl, kcol, kdim, uoff,
                                       u, pairidx, poff, eta, mu_out, w_out, r_out, A11c[c - 1], V21c[c - 1],
                                       A22c[c - 1], rhsc[c - 1], UtWXc[c - 1], XtWXc[c - 1], xrhsc[c - 1])
    return _sum_in_order(devs)


@njit(parallel=True, cache=True)
def _eta_deviance_par(nch, fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, eta):
    n = y.shape[0]
    devs = np.zeros(nch)
    for c in prange(nch):
        lo, hi = _bounds(c, nch, n)
        devs[c] = eta_deviance_rows(lo, hi, fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, eta)
    return _sum_in_order(devs)


@njit(parallel=True, cache=True)
def _score_terms_par(nch, fam, link, y, wt, eta, s, h, wd):
    n = y.shape[0]
    for c in prange(nch):
        lo, hi = _bounds(c, nch, n)
        score_terms_rows(lo, hi, fam, link, y, wt, eta, s, h, wd)


@njit(parallel=True, cache=True)
def _leverage_par(nch, wd, codes, zl, kcol, kdim, uoff, pairidx, poff, Ainv11, Ainv21, Ainv22, v, Utv, Utvc):
    n = wd.shape[0]
    for c in prange(nch):
        lo, hi = _bounds(c, nch, n)
        if c == 0:
            leverage_rows(lo, hi, wd, codes, zl, kcol, kdim, uoff, pairidx, poff, Ainv11, Ainv21, Ainv22, v, Utv)
        else:
            leverage_rows(lo, hi, wd, codes, zl, kcol, kdim, uoff, pairidx, poff, Ainv11, Ainv21, Ainv22, v,
                          Utvc[c - 1])


@njit(parallel=True, cache=True)
def _gradient_par(nch, s, w, hh, v, X, z, codes, zl, kcol, kdim, uoff, pairidx, poff, u, xi, xxi,
                  Ainv11, Ainv21, Ainv22, th_term, th_a, th_b, gbeta, gtheta, with_beta, gbc, gtc):
    n = s.shape[0]
    for c in prange(nch):
        lo, hi = _bounds(c, nch, n)
        if c == 0:
            gradient_rows(lo, hi, s, w, hh, v, X, z, codes, zl, kcol, kdim, uoff, pairidx, poff, u, xi, xxi,
                          Ainv11, Ainv21, Ainv22, th_term, th_a, th_b, gbeta, gtheta, with_beta)
        else:
            gradient_rows(lo, hi, s, w, hh, v, X, z, codes, zl, kcol, kdim, uoff, pairidx, poff, u, xi, xxi,
                          Ainv11, Ainv21, Ainv22, th_term, th_a, th_b, gbc[c - 1], gtc[c - 1], with_beta)


@njit(parallel=True, cache=True)
def _accumulate_re_par(nch, w, zw, codes, zl, kcol, kdim, uoff, pairidx, poff, A11, V21, A22, rhs,
                       A11c, V21c, A22c, rhsc):
    n = w.shape[0]
    for c in prange(nch):
        lo, hi = _bounds(c, nch, n)
        if c == 0:
            accumulate_re_rows(lo, hi, w, zw, codes, zl, kcol, kdim, uoff, pairidx, poff, A11, V21, A22, rhs)
        else:
            accumulate_re_rows(lo, hi, w, zw, codes, zl, kcol, kdim, uoff, pairidx, poff, A11c[c - 1],
                               V21c[c - 1], A22c[c - 1], rhsc[c - 1])


@njit(parallel=True, cache=True)
def _accumulate_x_par(nch, w, zw, X, codes, zl, kcol, kdim, uoff, UtWX, XtWX, xrhs, UtWXc, XtWXc, xrhsc):
    n = w.shape[0]
    for c in prange(nch):
        lo, hi = _bounds(c, nch, n)
        if c == 0:
            accumulate_x_rows(lo, hi, w, zw, X, codes, zl, kcol, kdim, uoff, UtWX, XtWX, xrhs)
        else:
            accumulate_x_rows(lo, hi, w, zw, X, codes, zl, kcol, kdim, uoff, UtWXc[c - 1], XtWXc[c - 1],
                              xrhsc[c - 1])


# ----------------------------------------------------------------- Python side
# One parallel pass at a time: the workqueue threading layer (used where
# neither TBB nor OpenMP is installed) must not be entered from two threads,
# and two concurrent passes would only oversubscribe the cores. Waiting keeps
# the results the same as an uncontended run.
_LOCK = threading.Lock()
# GNU OpenMP cannot run a parallel region in a child forked after the parent
# ran one (numba aborts the child): such children run the serial kernels.
_launched = False
_forked_after_launch = False


def _after_fork_in_child() -> None:
    global _forked_after_launch
    if _launched:
        _forked_after_launch = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _chunks_for(n: int, bufs: tuple[np.ndarray, ...]) -> int:
    """Chunk count for these output buffers; 1 (serial) when any buffer is not
    C-contiguous (the chunk sums are added over flat views)."""
    if n < PARALLEL_MIN_ROWS or _forked_after_launch:
        return 1
    elems = 0
    for b in bufs:
        if not b.flags.c_contiguous:
            return 1
        elems += b.size
    return n_chunks(n, elems)


def _chunk_buffers(nch: int, bufs: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    return [np.zeros((nch - 1,) + b.shape) for b in bufs]


def _run(fn, nch, args, bufs, cbufs):
    """Run a chunked kernel, then add the chunk buffers into the outputs."""
    global _launched
    with _LOCK:
        _launched = True
        res = fn(nch, *args, *cbufs)
        for b, cb in zip(bufs, cbufs):
            if b.size:
                _add_chunks(b.reshape(-1), cb.reshape(nch - 1, -1))
    return res


def pirls_pass(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
               eta, mu_out, w_out, r_out, A11, V21, A22, rhs) -> float:
    """glm.pirls_pass, chunked over the rows when there are many.

    >>> # same call as interlace.kernels.glm.pirls_pass(...)
    """
    bufs = (A11, V21, A22, rhs)
    nch = _chunks_for(y.shape[0], bufs)
    args = (fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx, poff, eta, mu_out, w_out, r_out,
            A11, V21, A22, rhs)
    if nch <= 1:
        return _kg.pirls_pass(*args)
    return _run(_pirls_par, nch, args, bufs, _chunk_buffers(nch, bufs))


def pirls_pass_joint(fam, link, y, wt, X, beta, offset, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
                     eta, mu_out, w_out, r_out, A11, V21, A22, rhs, UtWX, XtWX, xrhs) -> float:
    """glm.pirls_pass_joint, chunked over the rows when there are many."""
    bufs = (A11, V21, A22, rhs, UtWX, XtWX, xrhs)
    nch = _chunks_for(y.shape[0], bufs)
    args = (fam, link, y, wt, X, beta, offset, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
            eta, mu_out, w_out, r_out, A11, V21, A22, rhs, UtWX, XtWX, xrhs)
    if nch <= 1:
        return _kg.pirls_pass_joint(*args)
    dev = _run(_pirls_joint_par, nch, args, bufs, _chunk_buffers(nch, bufs))
    symmetrize_lower(XtWX)
    return dev


def eta_deviance(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, eta) -> float:
    """glm.eta_deviance, chunked over the rows when there are many."""
    args = (fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, eta)
    nch = _chunks_for(y.shape[0], ())
    if nch <= 1:
        return _kg.eta_deviance(*args)
    return _run(_eta_deviance_par, nch, args, (), ())


def glm_score_terms(fam, link, y, wt, eta, s, h, wd) -> None:
    """glm.glm_score_terms, chunked over the rows when there are many."""
    args = (fam, link, y, wt, eta, s, h, wd)
    nch = _chunks_for(y.shape[0], ())
    if nch <= 1:
        return _kg.glm_score_terms(*args)
    return _run(_score_terms_par, nch, args, (), ())


def leverage_pass(wd, codes, zl, kcol, kdim, uoff, pairidx, poff, Ainv11, Ainv21, Ainv22, v, Utv) -> None:
    """gradient.leverage_pass, chunked over the rows when there are many."""
    args = (wd, codes, zl, kcol, kdim, uoff, pairidx, poff, Ainv11, Ainv21, Ainv22, v, Utv)
    bufs = (Utv,)
    nch = _chunks_for(wd.shape[0], bufs)
    if nch <= 1:
        return _kgr.leverage_pass(*args)
    return _run(_leverage_par, nch, args, bufs, _chunk_buffers(nch, bufs))


def gradient_pass(s, w, hh, v, X, z, codes, zl, kcol, kdim, uoff, pairidx, poff, u, xi, xxi,
                  Ainv11, Ainv21, Ainv22, th_term, th_a, th_b, gbeta, gtheta, with_beta) -> None:
    """gradient.gradient_pass, chunked over the rows when there are many."""
    args = (s, w, hh, v, X, z, codes, zl, kcol, kdim, uoff, pairidx, poff, u, xi, xxi,
            Ainv11, Ainv21, Ainv22, th_term, th_a, th_b, gbeta, gtheta, with_beta)
    bufs = (gbeta, gtheta)
    nch = _chunks_for(s.shape[0], bufs)
    if nch <= 1:
        return _kgr.gradient_pass(*args)
    return _run(_gradient_par, nch, args, bufs, _chunk_buffers(nch, bufs))


def accumulate_re(w, zw, codes, zl, kcol, kdim, uoff, pairidx, poff, A11, V21, A22, rhs) -> None:
    """crossprod.accumulate_re, chunked over the rows when there are many."""
    args = (w, zw, codes, zl, kcol, kdim, uoff, pairidx, poff, A11, V21, A22, rhs)
    bufs = (A11, V21, A22, rhs)
    nch = _chunks_for(w.shape[0], bufs)
    if nch <= 1:
        return _kx.accumulate_re(*args)
    return _run(_accumulate_re_par, nch, args, bufs, _chunk_buffers(nch, bufs))


def accumulate_x(w, zw, X, codes, zl, kcol, kdim, uoff, UtWX, XtWX, xrhs) -> None:
    """crossprod.accumulate_x, chunked over the rows when there are many."""
    args = (w, zw, X, codes, zl, kcol, kdim, uoff, UtWX, XtWX, xrhs)
    bufs = (UtWX, XtWX, xrhs)
    nch = _chunks_for(w.shape[0], bufs)
    if nch <= 1:
        return _kx.accumulate_x(*args)
    _run(_accumulate_x_par, nch, args, bufs, _chunk_buffers(nch, bufs))
    symmetrize_lower(XtWX)
