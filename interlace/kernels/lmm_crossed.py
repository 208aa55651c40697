"""The LMM with several scalar random-effect terms from a blocked cross-product
matrix accumulated once (numba; the dense factor is LAPACK's, see
objective/lmm.py).

Layout. One term (the one with most levels, "the first block") keeps a diagonal
block: its per-level sums g_l = sum w z^2 and, per level, a sparse column b_l of
cross-products with everything else. Everything else -- the levels of the other
terms, the columns of X and the response -- is the "dense part", indexed
0..N-1 (other terms' levels first, then X, then y last), with its dense
cross-product G = V'WV (V the rows' dense-part entries). Both are sums over
rows, made once; an evaluation never touches the rows again.

At theta (first-block scale t0, dense-part scales s: theta_j on term j's levels,
1 on X and y), with d_l = t0^2 g_l + 1:

    W = G - sum_l (t0^2 / d_l) b_l b_l'        (Schur complement of the first block)
    S = diag(s) W diag(s) + I_Z                (identity on the dense terms' levels)

and the lower Cholesky factor of S holds everything: log|A| = sum log d_l +
2 sum log L_aa over the dense terms' rows, log|RX|^2 over the X rows, pwrss =
L_yy^2, and the modes from the y row. The matrices are C-ordered with the
lower triangle of S stored in the upper triangle (``M[b, a]``, b <= a), so
``M.T`` is S's lower triangle in Fortran order, what LAPACK factors in place.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def crossed_setup(perm, code0, z0, dcodes, dz, X, y, w, nl0, N, G, g):
    """Accumulate the first block's g (nl0,), the dense part's G (N, N; upper
    triangle, zeroed by the caller) and the sparse columns b_l. Returns
    (bptr, bidx, bval): CSR over levels, indices ascending."""
    n = perm.shape[0]
    m2 = dcodes.shape[0]
    p = X.shape[1]
    nz = m2 + p + 1
    iy = N - 1
    ix = N - 1 - p
    idx = np.empty(nz, dtype=np.int64)
    val = np.empty(nz)
    # G: sum over rows of w v v'
    for i in range(n):
        wi = w[i]
        for j in range(m2):
            idx[j] = dcodes[j, i]
            val[j] = dz[j, i]
        for c in range(p):
            idx[m2 + c] = ix + c
            val[m2 + c] = X[i, c]
        idx[nz - 1] = iy
        val[nz - 1] = y[i]
        for q1 in range(nz):
            a = idx[q1]
            va = wi * val[q1]
            if va == 0.0:
                continue
            for q2 in range(q1, nz):
                G[a, idx[q2]] += va * val[q2]
    # first block: rows sorted by level (perm)
    cap = n * m2 + nl0 * (p + 1)
    bptr = np.zeros(nl0 + 1, dtype=np.int64)
    bidx = np.empty(cap, dtype=np.int64)
    bval = np.empty(cap)
    acc = np.zeros(N)
    mark = np.full(N, -1, dtype=np.int64)
    touched = np.empty(N, dtype=np.int64)
    pos = 0
    r = 0
    for l in range(nl0):
        nt = 0
        while r < n and code0[perm[r]] == l:
            i = perm[r]
            wz = w[i] * z0[i]
            g[l] += wz * z0[i]
            for j in range(m2):
                a = dcodes[j, i]
                if mark[a] != l:
                    mark[a] = l
                    touched[nt] = a
                    nt += 1
                acc[a] += wz * dz[j, i]
            for c in range(p):
                acc[ix + c] += wz * X[i, c]
            acc[iy] += wz * y[i]
            r += 1
        zs = np.sort(touched[:nt])
        for q in range(nt):
            a = zs[q]
            bidx[pos] = a
            bval[pos] = acc[a]
            acc[a] = 0.0
            pos += 1
        for c in range(p + 1):
            bidx[pos] = ix + c
            bval[pos] = acc[ix + c]
            acc[ix + c] = 0.0
            pos += 1
        bptr[l + 1] = pos
    return bptr, bidx[:pos].copy(), bval[:pos].copy()


@njit(cache=True, nogil=True)
def crossed_pairs(N, bptr, bidx, bval):
    """The first block's outer products b_l b_l' as a stream bucketed by row of the
    upper triangle: (rowptr (N + 1), col, level, value), so the Schur update and
    the gradient visit one row of the dense matrix at a time."""
    nl0 = bptr.shape[0] - 1
    cnt = np.zeros(N + 1, dtype=np.int64)
    for l in range(nl0):
        for q1 in range(bptr[l], bptr[l + 1]):
            cnt[bidx[q1] + 1] += bptr[l + 1] - q1
    for a in range(N):
        cnt[a + 1] += cnt[a]
    tot = cnt[N]
    pcol = np.empty(tot, dtype=np.int32)
    plev = np.empty(tot, dtype=np.int32)
    pval = np.empty(tot)
    fill = cnt[:N].copy()
    for l in range(nl0):
        for q1 in range(bptr[l], bptr[l + 1]):
            a = bidx[q1]
            va = bval[q1]
            e = fill[a]
            for q2 in range(q1, bptr[l + 1]):
                pcol[e] = bidx[q2]
                plev[e] = l
                pval[e] = va * bval[q2]
                e += 1
            fill[a] = e
    return cnt, pcol, plev, pval


@njit(cache=True, nogil=True)
def crossed_form(t0, s, nz_dense, G, g, prow, pcol, plev, pval, M, Wc, want_w):
    """Fill M with S at theta (upper triangle) and return d; with want_w also Wc
    with W (unscaled, upper triangle)."""
    N = G.shape[0]
    nl0 = g.shape[0]
    t2 = t0 * t0
    d = np.empty(nl0)
    coef = np.empty(nl0)
    for l in range(nl0):
        d[l] = t2 * g[l] + 1.0
        coef[l] = t2 / d[l]
    for a in range(N):
        for b in range(a, N):
            M[a, b] = G[a, b]
        if t2 != 0.0:
            for e in range(prow[a], prow[a + 1]):
                M[a, pcol[e]] -= coef[plev[e]] * pval[e]
        if want_w:
            for b in range(a, N):
                Wc[a, b] = M[a, b]
        sa = s[a]
        for b in range(a, N):
            M[a, b] *= sa * s[b]
        if a < nz_dense:
            M[a, a] += 1.0
    return d


@njit(cache=True, nogil=True)
def crossed_solve(t0, s, nz_dense, p, d, bptr, bidx, bval, M, x2, u0):
    """After the factor (M's upper triangle holds L'): returns (logdet of the Z
    part, log|RX|^2, pwrss) and fills the dense part's solution x2 (N - 1: the
    dense terms' u, then beta) and the first block's modes u0."""
    N = M.shape[0]
    nl0 = d.shape[0]
    K = N - 1
    ld_z = 0.0
    for l in range(nl0):
        ld_z += math.log(d[l])
    for a in range(nz_dense):
        ld_z += 2.0 * math.log(M[a, a])
    ld_x = 0.0
    for a in range(nz_dense, nz_dense + p):
        ld_x += 2.0 * math.log(M[a, a])
    pwrss = M[K, K] * M[K, K]
    # L' x = c, c the y row of L (L[K, a] = M[a, K]); L[m, a] = M[a, m]
    for a in range(K - 1, -1, -1):
        acc = M[a, K]
        for m in range(a + 1, K):
            acc -= M[a, m] * x2[m]
        x2[a] = acc / M[a, a]
    # first block: u_l = (t0 b_l[y] - t0 sum_a s_a b_la x2_a) / d_l
    for l in range(nl0):
        acc = 0.0
        e = bptr[l + 1] - 1  # the y entry is last
        for q in range(bptr[l], e):
            a = bidx[q]
            acc += s[a] * bval[q] * x2[a]
        u0[l] = t0 * (bval[e] - acc) / d[l]
    return ld_z, ld_x, pwrss


@njit(cache=True, nogil=True)
def crossed_grad_parts(t0, s, kend, term_of, nterm, g, d, bptr, bidx, bval, Sinv, Wc, use_diag, out):
    """The log-determinant's gradient: out[0] = d/dt0 = 2 t0 sum_l (g_l/d_l -
    (s o b_l)' Sinv (s o b_l) / d_l^2); out[1 + j] = 2 sum_{c in term j}
    (Sinv diag(s) W)_cc, d/dtheta_j. Sinv is the inverse of S[:kend, :kend], W
    the Schur complement, both upper triangles. The quadratic forms run level
    by level over the sparse b_l (crossed_quads), not over the stream of pairs:
    the same products of Sinv's entries, without reading the 16-byte stream.

    With ``use_diag`` (every dense term's theta away from 0) the second part
    needs only Sinv's diagonal: S = D W D + I_Z (D = diag(s)) gives
    Sinv D W D = I - Sinv I_Z, so (Sinv D W)_cc = (1 - Sinv_cc) / s_c on a
    term's levels, and Wc is not read. Without it the full sum over W (exact
    at theta_j = 0, where the identity divides by zero)."""
    nl0 = g.shape[0]
    for j in range(nterm + 1):
        out[j] = 0.0
    quads = np.empty(nl0)
    crossed_quads(s, kend, bptr, bidx, bval, Sinv, quads)
    acc0 = 0.0
    quad = 0.0
    for l in range(nl0):
        acc0 += g[l] / d[l]
        quad += quads[l] / (d[l] * d[l])
    for a in range(kend):
        ja = term_of[a]
        sa = s[a]
        if use_diag:
            if ja >= 0:
                out[1 + ja] += (1.0 - Sinv[a, a]) / sa
            continue
        for b in range(a, kend):
            v = Sinv[a, b] * Wc[a, b]
            if ja >= 0:
                out[1 + ja] += v * s[b]
            jb = term_of[b]
            if jb >= 0 and b != a:
                out[1 + jb] += v * sa
    out[0] = 2.0 * t0 * (acc0 - quad)
    for j in range(nterm):
        out[1 + j] *= 2.0


@njit(cache=True, nogil=True)
def crossed_quads(s, kend, bptr, bidx, bval, Sinv, out):
    """out[l] = (s o b_l)' Sinv (s o b_l) over the indices < kend (Sinv upper triangle)."""
    nl0 = out.shape[0]
    bt = np.empty(kend)
    for l in range(nl0):
        q0 = bptr[l]
        nb = 0
        for q in range(q0, bptr[l + 1]):
            a = bidx[q]
            if a >= kend:
                break
            bt[nb] = s[a] * bval[q]
            nb += 1
        quad = 0.0
        for r1 in range(nb):
            a = bidx[q0 + r1]
            va = bt[r1]
            quad += va * va * Sinv[a, a]
            tmp = 0.0
            for r2 in range(r1 + 1, nb):
                tmp += Sinv[a, bidx[q0 + r2]] * bt[r2]
            quad += 2.0 * va * tmp
        out[l] = quad
