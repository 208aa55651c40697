"""The blocked Cholesky factor and whole PIRLS loops, compiled.

A small fit (cbpp: 56 rows) spends most of its time in Python between tiny
numba calls: per PIRLS iteration a factorization, two triangular solves and a
row pass, each a round trip through scipy or a dispatcher. Here the factor
(block-diagonal L11, sparse L21 on the fixed pair pattern, dense L22), its
solves and the PIRLS iterations themselves (Newton step, step-halving,
convergence test) run in one compiled call per deviance evaluation.

The algorithm is the one of ``interlace/objective/laplace.py`` (lme4's
PIRLS with a Newton-step convergence test); the Python loops there remain for
the chunked parallel passes of large fits, where one pass costs milliseconds
and the loop's overhead does not matter.

Layout (see ``interlace/objective/predictor.py``): term 0's k0 x k0 blocks in
A11 (factored in place), the cross blocks as flat values in pair order
(V21 -> L21vals) with a CSC map (indptr/indices over term-0 columns, pos into
the flat values), the dense rest A22 -> L22.

Status codes returned by the loop: 0 converged, 1 iteration limit,
2 step-halving failed (PIRLSError), 3 factor not positive definite
(LinAlgError). The nAGQ = 0 joint loop stays in Python around one compiled
factor-and-solve step (_joint_step): compiled whole, it took 15 s to compile.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from interlace.kernels.crossprod import (
    block_cholesky_diag,
    pairs_times_linv_t,
    schur_lower,
)
from interlace.kernels.glm import eta_deviance, pirls_pass

EPS = 2.220446049250313e-16
# dense L22 blocks up to this order are factored here; larger ones by LAPACK
# (numba's own np.linalg.cholesky would add seconds of compilation)
DENSE_MAX = 48


@njit(cache=True)
def dense_cholesky_lower(S):
    """In-place lower Cholesky of a small dense SPD matrix (upper part zeroed);
    returns sum of 2 log diag, NaN if not positive definite."""
    n = S.shape[0]
    ld = 0.0
    for j in range(n):
        s = S[j, j]
        for t in range(j):
            s -= S[j, t] * S[j, t]
        if not s > 0.0:
            return np.nan
        d = math.sqrt(s)
        S[j, j] = d
        ld += 2.0 * math.log(d)
        for i in range(j + 1, n):
            s2 = S[i, j]
            for t in range(j):
                s2 -= S[i, t] * S[j, t]
            S[i, j] = s2 / d
        for i in range(j):
            S[i, j] = 0.0
    return ld


@njit(cache=True)
def factor_blocked(A11, A22, L22, V21, L21vals, kdim, poff, npairs, pcols, pcoff,
                   indptr, indices, pos):
    """Factor A = U'WU + I held as (A11, V21, A22): A11 in place -> L11,
    L21vals, L22 (A22 is left as S = A22 + I - L21 L21'). Returns log|L|^2,
    NaN if A is not positive definite. When q2 >= DENSE_MAX the Schur
    complement and the dense block are left to the caller (A22 holds A22 + I;
    the log-determinant excludes the dense block): it forms S on both cores
    and factors it with LAPACK (BlockedCholesky.factor)."""
    nl, k0, _ = A11.shape
    for l in range(nl):
        for a in range(k0):
            A11[l, a, a] += 1.0
    ld = block_cholesky_diag(A11)
    if not math.isfinite(ld):
        return np.nan
    m = kdim.shape[0]
    if m > 1:
        for j in range(1, m):
            pairs_times_linv_t(V21, poff[j], npairs[j], kdim[j], k0, pcols[pcoff[j]:pcoff[j + 1]], A11, L21vals)
        q2 = A22.shape[0]
        for i in range(q2):
            A22[i, i] += 1.0
        if q2 >= DENSE_MAX:
            return ld
        schur_lower(indptr, indices, pos, L21vals, A22, 0, indptr.shape[0] - 1, np.empty(pos.shape[0]))
        for i in range(q2):  # (an array slice assignment here compiled for 2 s)
            for t in range(q2):
                L22[i, t] = A22[i, t]
        ld2 = dense_cholesky_lower(L22)
        if not math.isfinite(ld2):
            return np.nan
        ld += ld2
    return ld


# The pieces of the blocked triangular solves, shared by the whole solves (solve_L_inplace,
# solve_Lt_inplace) and the sparse parts used when the caller solves with a large L22 by BLAS.
@njit(cache=True, nogil=True)
def _solve_L11(L11, x):
    """x1 <- L11^{-1} x1, one k0 x k0 lower block per level."""
    nl, k0, _ = L11.shape
    nc = x.shape[1]
    for l in range(nl):
        o = l * k0
        for c in range(nc):
            for i in range(k0):
                s = x[o + i, c]
                for t in range(i):
                    s -= L11[l, i, t] * x[o + t, c]
                x[o + i, c] = s / L11[l, i, i]


@njit(cache=True, nogil=True)
def _solve_L11t(L11, x):
    """x1 <- L11^{-T} x1."""
    nl, k0, _ = L11.shape
    nc = x.shape[1]
    for l in range(nl):
        o = l * k0
        for c in range(nc):
            for i in range(k0 - 1, -1, -1):
                s = x[o + i, c]
                for t in range(i + 1, k0):
                    s -= L11[l, t, i] * x[o + t, c]
                x[o + i, c] = s / L11[l, i, i]


@njit(cache=True, nogil=True)
def _sub_L21(L21vals, indptr, indices, pos, q0, x):
    """x2 -= L21 x1 (L21 in CSC over the term-0 columns)."""
    nc = x.shape[1]
    for col in range(q0):
        for e in range(indptr[col], indptr[col + 1]):
            r = q0 + indices[e]
            v = L21vals[pos[e]]
            for c in range(nc):
                x[r, c] -= v * x[col, c]


@njit(cache=True, nogil=True)
def _sub_L21t(L21vals, indptr, indices, pos, q0, x):
    """x1 -= L21' x2."""
    nc = x.shape[1]
    for col in range(q0):
        for e in range(indptr[col], indptr[col + 1]):
            r = q0 + indices[e]
            v = L21vals[pos[e]]
            for c in range(nc):
                x[col, c] -= v * x[r, c]


@njit(cache=True)
def solve_L_inplace(L11, L21vals, indptr, indices, pos, L22, x):
    """x <- L^{-1} x for x of shape (q, c)."""
    nl, k0, _ = L11.shape
    q0 = nl * k0
    q = x.shape[0]
    nc = x.shape[1]
    _solve_L11(L11, x)
    if q > q0:
        # x2 -= L21 x1 (CSC over term-0 columns), then L22 forward
        _sub_L21(L21vals, indptr, indices, pos, q0, x)
        q2 = q - q0
        for c in range(nc):
            for i in range(q2):
                s = x[q0 + i, c]
                for t in range(i):
                    s -= L22[i, t] * x[q0 + t, c]
                x[q0 + i, c] = s / L22[i, i]


@njit(cache=True)
def solve_Lt_inplace(L11, L21vals, indptr, indices, pos, L22, x):
    """x <- L^{-T} x for x of shape (q, c)."""
    nl, k0, _ = L11.shape
    q0 = nl * k0
    q = x.shape[0]
    nc = x.shape[1]
    if q > q0:
        q2 = q - q0
        for c in range(nc):
            for i in range(q2 - 1, -1, -1):
                s = x[q0 + i, c]
                for t in range(i + 1, q2):
                    s -= L22[t, i] * x[q0 + t, c]
                x[q0 + i, c] = s / L22[i, i]
        _sub_L21t(L21vals, indptr, indices, pos, q0, x)
    _solve_L11t(L11, x)


@njit(cache=True)
def _dot(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@njit(cache=True)
def _maxabs(a):
    s = 0.0
    for i in range(a.shape[0]):
        v = abs(a[i])
        if v > s:
            s = v
    return s


@njit(cache=True)
def deviance_noise(y, wt, mu, eta):
    """Rounding noise of the deviance at eta (see LaplaceObjective._deviance_noise)."""
    s = 0.0
    for i in range(y.shape[0]):
        s += wt[i] * (abs(y[i]) + abs(mu[i])) * (1.0 + abs(eta[i]))
    return 64.0 * EPS * s


@njit(cache=True)
def _copy(dst, src):
    # an array slice assignment (dst[:] = src) took numba 2 s to compile
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@njit(cache=True)
def _zero(A11, V21, A22, rhs):
    A11[:] = 0.0
    V21[:] = 0.0
    A22[:] = 0.0
    rhs[:] = 0.0


@njit(cache=True)
def pirls_u_loop(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
                 eta, mu, w, r, A11, V21, A22, rhs, L22, L21vals,
                 npairs, pcols, pcoff, indptr, indices, pos, max_iter, max_halvings, out):
    """PIRLS for u at fixed (theta, beta): u is updated in place; the factor
    is left at the final u. out = [deviance, log|L|^2, iterations]. Returns
    the status code (module docstring).

    Written as a small state machine with ONE call site per kernel (row pass,
    deviance, factor): LLVM inlines callees per call site, and a loop written
    the natural way compiled for many seconds."""
    n = y.shape[0]
    q = u.shape[0]
    eta_t = np.empty(n)
    x = np.empty(q)
    ut = np.empty(q)
    sol = np.empty((q, 1))
    delta = np.empty(q)
    ok = True
    for i in range(q):
        if not math.isfinite(u[i]):
            ok = False
    if ok:
        _copy(x, u)
    else:
        x[:] = 0.0
    phase = 0  # 0 start, 1 full Newton step, 2 halved step, 3 back at u (step lost in rounding)
    retried = False
    stop = -1
    iters = 0
    dev = np.nan
    pdev = np.nan
    logdet = np.nan
    status = 1
    while True:
        _zero(A11, V21, A22, rhs)
        dev_x = pirls_pass(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, x, pairidx, poff,
                           eta, mu, w, r, A11, V21, A22, rhs)
        pdev_x = dev_x + _dot(x, x)
        if phase == 0:
            if not math.isfinite(pdev_x) and not retried:
                retried = True
                x[:] = 0.0
                continue
            _copy(u, x)
            dev = dev_x
            pdev = pdev_x
        elif phase == 1:
            if math.isfinite(pdev_x) and pdev_x <= pdev + 1e-12 * abs(pdev):
                _copy(u, x)
                dev = dev_x
                pdev = pdev_x
            else:
                step = 1.0
                found = False
                for _h in range(max_halvings):
                    step *= 0.5
                    for i in range(q):
                        ut[i] = u[i] + step * delta[i]
                    dt = eta_deviance(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, ut, eta_t)
                    pt = dt + _dot(ut, ut)
                    if math.isfinite(pt) and pt <= pdev + 1e-12 * abs(pdev):
                        found = True
                        break
                if found:
                    _copy(x, ut)
                    phase = 2
                    continue
                if pdev_x - pdev <= deviance_noise(y, wt, mu, eta):
                    # the Newton step is lost in rounding: u is the mode to working precision
                    _copy(x, u)
                    phase = 3
                    continue
                out[0] = dev
                out[1] = logdet
                out[2] = iters
                return 2
        elif phase == 2:
            _copy(u, x)
            dev = dev_x
            pdev = pdev_x
        else:
            dev = dev_x
            stop = 0
        # the buffers hold the system at u: factor it
        logdet = factor_blocked(A11, A22, L22, V21, L21vals, kdim, poff, npairs, pcols, pcoff,
                                indptr, indices, pos)
        if not math.isfinite(logdet):
            status = 3
            break
        if stop >= 0:
            status = stop
            break
        if iters >= max_iter:
            status = 1
            break
        iters += 1
        for i in range(q):
            sol[i, 0] = rhs[i]
        solve_L_inplace(A11, L21vals, indptr, indices, pos, L22, sol)
        solve_Lt_inplace(A11, L21vals, indptr, indices, pos, L22, sol)
        for i in range(q):
            delta[i] = sol[i, 0] - u[i]
        # Newton decrement: log|L|^2 is not stationary in u, so stop only when
        # the remaining step is tiny (the optimizer's line search sees the rest)
        if _maxabs(delta) <= 1e-11 * (1.0 + _maxabs(u)):
            status = 0
            break
        for i in range(q):
            x[i] = u[i] + delta[i]
        phase = 1
    out[0] = dev
    out[1] = logdet
    out[2] = iters
    return status


@njit(cache=True)
def joint_step(A11, A22, L22, V21, L21vals, kdim, poff, npairs, pcols, pcoff, indptr, indices, pos,
                rhs, UtWX, XtWX, xrhs, unew, bnew, RX):
    """Factor and solve the joint (u, beta) system; RX is filled (lower).
    Returns log|L|^2 (NaN on failure)."""
    q, p = UtWX.shape
    logdet = factor_blocked(A11, A22, L22, V21, L21vals, kdim, poff, npairs, pcols, pcoff,
                            indptr, indices, pos)
    if not math.isfinite(logdet):
        return np.nan
    RZX = UtWX.copy()
    solve_L_inplace(A11, L21vals, indptr, indices, pos, L22, RZX)
    for a in range(p):
        for b in range(a + 1):
            s = XtWX[a, b]
            for i in range(q):
                s -= RZX[i, a] * RZX[i, b]
            RX[a, b] = s
    for a in range(p):
        for b in range(a + 1, p):
            RX[a, b] = 0.0
    if not math.isfinite(dense_cholesky_lower(RX)):
        return np.nan
    cu = np.empty((q, 1))
    for i in range(q):
        cu[i, 0] = rhs[i]
    solve_L_inplace(A11, L21vals, indptr, indices, pos, L22, cu)
    # RX cx = xrhs - RZX' cu ; RX' b = cx
    cx = np.empty(p)
    for a in range(p):
        s = xrhs[a]
        for i in range(q):
            s -= RZX[i, a] * cu[i, 0]
        for t in range(a):
            s -= RX[a, t] * cx[t]
        cx[a] = s / RX[a, a]
    for a in range(p - 1, -1, -1):
        s = cx[a]
        for t in range(a + 1, p):
            s -= RX[t, a] * bnew[t]
        bnew[a] = s / RX[a, a]
    x = np.empty((q, 1))
    for i in range(q):
        s = cu[i, 0]
        for a in range(p):
            s -= RZX[i, a] * bnew[a]
        x[i, 0] = s
    solve_Lt_inplace(A11, L21vals, indptr, indices, pos, L22, x)
    for i in range(q):
        unew[i] = x[i, 0]
    return logdet


@njit(cache=True, nogil=True)
def matvec_blocked(A11, V21, indptr, indices, pos, A22, x, y):
    """y = (I + A) x for A = U'WU held unfactored as (A11 full k0 x k0 blocks,
    V21 the cross blocks in pair order through the CSC map, A22 full dense):
    the product of the preconditioned solves of large crossed fits
    (BlockedCholesky.pcg_solve), O(nnz) and O(q2^2), never a factorization."""
    nl, k0, _ = A11.shape
    q0 = nl * k0
    q = x.shape[0]
    for l in range(nl):
        o = l * k0
        for a in range(k0):
            s = x[o + a]
            for b in range(k0):
                s += A11[l, a, b] * x[o + b]
            y[o + a] = s
    q2 = q - q0
    for i in range(q2):
        s = x[q0 + i]
        for t in range(q2):
            s += A22[i, t] * x[q0 + t]
        y[q0 + i] = s
    for col in range(q0):
        xc = x[col]
        acc = 0.0
        for e in range(indptr[col], indptr[col + 1]):
            v = V21[pos[e]]
            r = q0 + indices[e]
            y[r] += v * xc
            acc += v * x[r]
        y[col] += acc


@njit(cache=True, nogil=True)
def solve_L_sparse_part(L11, L21vals, indptr, indices, pos, x):
    """The first two steps of solve_L_inplace: x1 <- L11^{-1} x1, x2 -= L21 x1
    (the caller solves with a large L22 by BLAS)."""
    nl, k0, _ = L11.shape
    q0 = nl * k0
    _solve_L11(L11, x)
    _sub_L21(L21vals, indptr, indices, pos, q0, x)


@njit(cache=True, nogil=True)
def solve_Lt_sparse_part(L11, L21vals, indptr, indices, pos, x):
    """The last two steps of solve_Lt_inplace (after the caller's L22' solve):
    x1 -= L21' x2, x1 <- L11^{-T} x1."""
    nl, k0, _ = L11.shape
    q0 = nl * k0
    _sub_L21t(L21vals, indptr, indices, pos, q0, x)
    _solve_L11t(L11, x)
