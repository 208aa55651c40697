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

Status codes returned by the loops: 0 converged, 1 iteration limit,
2 step-halving failed (PIRLSError), 3 factor not positive definite
(LinAlgError), 4 unusable start (caller restarts cold).
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
from interlace.kernels.glm import eta_deviance, pirls_pass, pirls_pass_joint

EPS = 2.220446049250313e-16


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
    NaN if A is not positive definite."""
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
        schur_lower(indptr, indices, pos, L21vals, A22)
        if q2 >= 48:
            # LAPACK for the larger dense block (raises LinAlgError if not PD)
            for i in range(q2):
                for c in range(i + 1, q2):
                    A22[i, c] = A22[c, i]
            L = np.linalg.cholesky(A22)
            L22[:, :] = L
            for i in range(q2):
                ld += 2.0 * math.log(L22[i, i])
        else:
            L22[:, :] = A22
            ld2 = dense_cholesky_lower(L22)
            if not math.isfinite(ld2):
                return np.nan
            ld += ld2
    return ld


@njit(cache=True)
def solve_L_inplace(L11, L21vals, indptr, indices, pos, L22, x):
    """x <- L^{-1} x for x of shape (q, c)."""
    nl, k0, _ = L11.shape
    q0 = nl * k0
    q = x.shape[0]
    nc = x.shape[1]
    for l in range(nl):
        o = l * k0
        for c in range(nc):
            for i in range(k0):
                s = x[o + i, c]
                for t in range(i):
                    s -= L11[l, i, t] * x[o + t, c]
                x[o + i, c] = s / L11[l, i, i]
    if q > q0:
        # x2 -= L21 x1 (CSC over term-0 columns), then L22 forward
        for col in range(q0):
            for e in range(indptr[col], indptr[col + 1]):
                r = q0 + indices[e]
                v = L21vals[pos[e]]
                for c in range(nc):
                    x[r, c] -= v * x[col, c]
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
        for col in range(q0):
            for e in range(indptr[col], indptr[col + 1]):
                r = q0 + indices[e]
                v = L21vals[pos[e]]
                for c in range(nc):
                    x[col, c] -= v * x[r, c]
    for l in range(nl):
        o = l * k0
        for c in range(nc):
            for i in range(k0 - 1, -1, -1):
                s = x[o + i, c]
                for t in range(i + 1, k0):
                    s -= L11[l, t, i] * x[o + t, c]
                x[o + i, c] = s / L11[l, i, i]


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
    the status code (module docstring)."""
    n = y.shape[0]
    q = u.shape[0]
    eta_t = np.empty(n)
    ut = np.empty(q)
    x = np.empty((q, 1))
    delta = np.empty(q)
    ok = True
    for i in range(q):
        if not math.isfinite(u[i]):
            ok = False
    if not ok:
        u[:] = 0.0
    _zero(A11, V21, A22, rhs)
    dev = pirls_pass(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
                     eta, mu, w, r, A11, V21, A22, rhs)
    pdev = dev + _dot(u, u)
    if not math.isfinite(pdev):
        u[:] = 0.0
        _zero(A11, V21, A22, rhs)
        dev = pirls_pass(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
                         eta, mu, w, r, A11, V21, A22, rhs)
        pdev = dev + _dot(u, u)
    status = 1
    logdet = np.nan
    iters = 0
    for _it in range(max_iter):
        iters += 1
        logdet = factor_blocked(A11, A22, L22, V21, L21vals, kdim, poff, npairs, pcols, pcoff,
                                indptr, indices, pos)
        if not math.isfinite(logdet):
            out[0] = dev
            out[1] = logdet
            out[2] = iters
            return 3
        for i in range(q):
            x[i, 0] = rhs[i]
        solve_L_inplace(A11, L21vals, indptr, indices, pos, L22, x)
        solve_Lt_inplace(A11, L21vals, indptr, indices, pos, L22, x)
        for i in range(q):
            delta[i] = x[i, 0] - u[i]
        # Newton decrement: log|L|^2 is not stationary in u, so stop only when
        # the remaining step is tiny (the optimizer's line search sees the rest)
        if _maxabs(delta) <= 1e-11 * (1.0 + _maxabs(u)):
            status = 0
            break
        for i in range(q):
            ut[i] = u[i] + delta[i]
        _zero(A11, V21, A22, rhs)
        dev_t = pirls_pass(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, ut, pairidx, poff,
                           eta, mu, w, r, A11, V21, A22, rhs)
        pdev_t = dev_t + _dot(ut, ut)
        if not (math.isfinite(pdev_t) and pdev_t <= pdev + 1e-12 * abs(pdev)):
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
            if not found:
                if pdev_t - pdev <= deviance_noise(y, wt, mu, eta):
                    # the Newton step is lost in rounding: u is the mode to working precision
                    _zero(A11, V21, A22, rhs)
                    dev = pirls_pass(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx,
                                     poff, eta, mu, w, r, A11, V21, A22, rhs)
                    logdet = factor_blocked(A11, A22, L22, V21, L21vals, kdim, poff, npairs, pcols,
                                            pcoff, indptr, indices, pos)
                    status = 0 if math.isfinite(logdet) else 3
                    break
                out[0] = dev
                out[1] = logdet
                out[2] = iters
                return 2
            _zero(A11, V21, A22, rhs)
            dev_t = pirls_pass(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, ut, pairidx, poff,
                               eta, mu, w, r, A11, V21, A22, rhs)
            pdev_t = dev_t + _dot(ut, ut)
        u[:] = ut
        pdev = pdev_t
        dev = dev_t
    if status == 1:
        logdet = factor_blocked(A11, A22, L22, V21, L21vals, kdim, poff, npairs, pcols, pcoff,
                                indptr, indices, pos)
        if not math.isfinite(logdet):
            status = 3
    out[0] = dev
    out[1] = logdet
    out[2] = iters
    return status


@njit(cache=True)
def _joint_step(A11, A22, L22, V21, L21vals, kdim, poff, npairs, pcols, pcoff, indptr, indices, pos,
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


@njit(cache=True)
def _zero_joint(A11, V21, A22, rhs, UtWX, XtWX, xrhs):
    _zero(A11, V21, A22, rhs)
    UtWX[:] = 0.0
    XtWX[:] = 0.0
    xrhs[:] = 0.0


@njit(cache=True)
def pirls_joint_loop(fam, link, y, wt, X, offset, codes, zl, kcol, kdim, uoff, u, beta, pairidx, poff,
                     eta, mu, w, r, A11, V21, A22, rhs, L22, L21vals, UtWX, XtWX, xrhs, RX,
                     npairs, pcols, pcoff, indptr, indices, pos, max_iter, max_halvings, u_tol, out):
    """nAGQ = 0 PIRLS over (u, beta) from a warm start, updated in place; the
    joint Newton step solved at a point is its convergence test. out =
    [deviance, log|L|^2, iterations]. Returns the status code; 4 means the
    warm start is unusable (the caller restarts cold)."""
    n = y.shape[0]
    q = u.shape[0]
    p = beta.shape[0]
    for i in range(q):
        if not math.isfinite(u[i]):
            return 4
    for a in range(p):
        if not math.isfinite(beta[a]):
            return 4
    _zero_joint(A11, V21, A22, rhs, UtWX, XtWX, xrhs)
    dev = pirls_pass_joint(fam, link, y, wt, X, beta, offset, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
                           eta, mu, w, r, A11, V21, A22, rhs, UtWX, XtWX, xrhs)
    pdev = dev + _dot(u, u)
    if not math.isfinite(pdev):
        return 4
    unew = np.empty(q)
    bnew = np.empty(p)
    ut = np.empty(q)
    bt = np.empty(p)
    base_t = np.empty(n)
    eta_t = np.empty(n)
    logdet = np.nan
    iters = 0
    status = 1
    for _it in range(max_iter):
        iters += 1
        logdet = _joint_step(A11, A22, L22, V21, L21vals, kdim, poff, npairs, pcols, pcoff, indptr,
                             indices, pos, rhs, UtWX, XtWX, xrhs, unew, bnew, RX)
        if not math.isfinite(logdet):
            out[0] = dev
            out[1] = logdet
            out[2] = iters
            return 3
        dmax = 0.0
        for i in range(q):
            dmax = max(dmax, abs(unew[i] - u[i]))
        for a in range(p):
            dmax = max(dmax, abs(bnew[a] - beta[a]))
        scale = 1.0 + max(_maxabs(u), _maxabs(beta))
        if dmax <= u_tol * scale:
            status = 0
            break  # the factor and the state are at (u, beta)
        _zero_joint(A11, V21, A22, rhs, UtWX, XtWX, xrhs)
        dev_t = pirls_pass_joint(fam, link, y, wt, X, bnew, offset, codes, zl, kcol, kdim, uoff, unew,
                                 pairidx, poff, eta, mu, w, r, A11, V21, A22, rhs, UtWX, XtWX, xrhs)
        pdev_t = dev_t + _dot(unew, unew)
        if not (math.isfinite(pdev_t) and pdev_t <= pdev + 1e-12 * abs(pdev)):
            pdev_full = pdev_t
            step = 1.0
            found = False
            for _h in range(max_halvings):
                step *= 0.5
                for i in range(q):
                    ut[i] = u[i] + step * (unew[i] - u[i])
                for a in range(p):
                    bt[a] = beta[a] + step * (bnew[a] - beta[a])
                for i in range(n):
                    s = offset[i]
                    for a in range(p):
                        s += X[i, a] * bt[a]
                    base_t[i] = s
                dt = eta_deviance(fam, link, y, wt, base_t, codes, zl, kcol, kdim, uoff, ut, eta_t)
                pt = dt + _dot(ut, ut)
                if math.isfinite(pt) and pt <= pdev + 1e-12 * abs(pdev):
                    found = True
                    break
            if not found:
                if math.isfinite(pdev_full) and pdev_full - pdev <= deviance_noise(y, wt, mu, eta_t):
                    # the full step is lost in rounding: at the mode to working precision
                    _zero_joint(A11, V21, A22, rhs, UtWX, XtWX, xrhs)
                    dev = pirls_pass_joint(fam, link, y, wt, X, beta, offset, codes, zl, kcol, kdim, uoff,
                                           u, pairidx, poff, eta, mu, w, r, A11, V21, A22, rhs, UtWX,
                                           XtWX, xrhs)
                    logdet = factor_blocked(A11, A22, L22, V21, L21vals, kdim, poff, npairs, pcols,
                                            pcoff, indptr, indices, pos)
                    status = 0 if math.isfinite(logdet) else 3
                    break
                out[0] = dev
                out[1] = logdet
                out[2] = iters
                return 2
            unew[:] = ut
            bnew[:] = bt
            _zero_joint(A11, V21, A22, rhs, UtWX, XtWX, xrhs)
            dev_t = pirls_pass_joint(fam, link, y, wt, X, bnew, offset, codes, zl, kcol, kdim, uoff, unew,
                                     pairidx, poff, eta, mu, w, r, A11, V21, A22, rhs, UtWX, XtWX, xrhs)
            pdev_t = dev_t + _dot(unew, unew)
        u[:] = unew
        beta[:] = bnew
        pdev = pdev_t
        dev = dev_t
    if status == 1:
        logdet = factor_blocked(A11, A22, L22, V21, L21vals, kdim, poff, npairs, pcols, pcoff,
                                indptr, indices, pos)
        if not math.isfinite(logdet):
            status = 3
    out[0] = dev
    out[1] = logdet
    out[2] = iters
    return status
