"""Weighted cross-products per random-effect block, one pass over the rows.

The random-effects design U = Z Lambda is held as typed blocks: per term j a
level code per row (codes[j]) and the k_j columns of z_j Lambda_j (zl[:, kcol[j]:
kcol[j] + kdim[j]]). Term 0 has the most levels; its block of U'WU is
block-diagonal (A11, one k0 x k0 block per level). The blocks between term 0
and later terms are sparse: their nonzero (level_j, level_0) pairs were found
once (pairidx) and only their values are summed here (V21). Blocks among the
later terms are summed into a dense matrix (A22), small by construction.

Everything is a sum over rows, so chunks of rows can be added.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def nz_range(zl, i, c0, k):
    """(lo, hi): the columns a in [lo, hi) of zl[i, c0:c0 + k] outside which the
    row is zero. A term over the levels of a factor (``0 + t``: one indicator per
    row) has one nonzero column of Z, so its row of Z Lambda is a row of Lambda:
    one column for diag, the first t + 1 for the lower-triangular factor of us,
    cs, ar1 or toep. Loops over [lo, hi) skip only exact zeros, whose products
    add nothing: the sums are the same numbers in the same order."""
    lo = 0
    while lo < k and zl[i, c0 + lo] == 0.0:
        lo += 1
    hi = k
    while hi > lo and zl[i, c0 + hi - 1] == 0.0:
        hi -= 1
    return lo, hi


@njit(cache=True, inline="always")
def add_row_re(i, wi, wz, codes, zl, kcol, kdim, uoff, pairidx, poff, q0, A11, V21, A22, rhs):
    """Add row i's share of U'WU (blocks) and U'W zw: w_i z_i z_i' and
    w_i zw_i z_i, z_i the row of U = Z Lambda (shared by every row pass).
    Only the row's nonzero column range of each term is visited (nz_range)."""
    m = codes.shape[0]
    k0 = kdim[0]
    c0 = codes[0, i]
    lo0, hi0 = nz_range(zl, i, 0, k0)
    for a in range(lo0, hi0):
        za = zl[i, a]
        rhs[c0 * k0 + a] += za * wz
        # the lower triangle only: the pass's caller mirrors it (mirror_blocks) once
        for b in range(lo0, a + 1):
            A11[c0, a, b] += wi * za * zl[i, b]
    for j in range(1, m):
        cj = codes[j, i]
        kj = kdim[j]
        colj = kcol[j]
        base = poff[j] + pairidx[j, i] * kj * k0
        rowj = uoff[j] - q0 + cj * kj
        loj, hij = nz_range(zl, i, colj, kj)
        for a in range(loj, hij):
            za = zl[i, colj + a]
            wza = wi * za
            rhs[uoff[j] + cj * kj + a] += za * wz
            for b in range(lo0, hi0):
                V21[base + a * k0 + b] += wza * zl[i, b]
            for jj in range(1, m):
                cjj = codes[jj, i]
                kjj = kdim[jj]
                coljj = kcol[jj]
                rowjj = uoff[jj] - q0 + cjj * kjj
                lojj, hijj = nz_range(zl, i, coljj, kjj)
                for b in range(lojj, hijj):
                    A22[rowj + a, rowjj + b] += wza * zl[i, coljj + b]


@njit(cache=True, inline="always")
def mirror_blocks(A11):
    """Copy each k x k block's lower triangle to its upper one (add_row_re sums
    the lower triangle only: half the work on the rows, O(levels k^2) here)."""
    nl, k, _ = A11.shape
    for l in range(nl):
        for a in range(1, k):
            for b in range(a):
                A11[l, b, a] = A11[l, a, b]


@njit(cache=True, nogil=True)
def accumulate_re(w, zw, codes, zl, kcol, kdim, uoff, pairidx, poff, A11, V21, A22, rhs):
    """Add U'WU (in blocks) and U'W zw to the output arrays (zeroed by the caller)."""
    n = w.shape[0]
    m = codes.shape[0]
    q0 = uoff[1] if m > 1 else 0
    for i in range(n):
        wi = w[i]
        if wi == 0.0:
            continue
        add_row_re(i, wi, wi * zw[i], codes, zl, kcol, kdim, uoff, pairidx, poff, q0, A11, V21, A22, rhs)
    mirror_blocks(A11)


@njit(cache=True, inline="always")
def add_row_x(i, wi, wz, X, codes, zl, kcol, kdim, uoff, UtWX, XtWX, xrhs):
    """Add row i's share of U'WX, X'WX (lower triangle) and X'W zw."""
    m = codes.shape[0]
    p = X.shape[1]
    for c in range(p):
        wx = wi * X[i, c]
        xrhs[c] += X[i, c] * wz
        for d in range(c + 1):
            XtWX[c, d] += wx * X[i, d]
    for j in range(m):
        cj = codes[j, i]
        kj = kdim[j]
        colj = kcol[j]
        r0 = uoff[j] + cj * kj
        lo, hi = nz_range(zl, i, colj, kj)
        for a in range(lo, hi):
            wza = wi * zl[i, colj + a]
            for c in range(p):
                UtWX[r0 + a, c] += wza * X[i, c]


@njit(cache=True, nogil=True)
def symmetrize_lower(M):
    p = M.shape[0]
    for c in range(p):
        for d in range(c + 1, p):
            M[c, d] = M[d, c]


@njit(cache=True, nogil=True)
def accumulate_x(w, zw, X, codes, zl, kcol, kdim, uoff, UtWX, XtWX, xrhs):
    """Add U'WX, X'WX and X'W zw (the fixed-effects parts of the joint system)."""
    for i in range(w.shape[0]):
        wi = w[i]
        if wi == 0.0:
            continue
        add_row_x(i, wi, wi * zw[i], X, codes, zl, kcol, kdim, uoff, UtWX, XtWX, xrhs)
    symmetrize_lower(XtWX)


@njit(cache=True)
def block_cholesky_diag(A11):
    """In-place Cholesky of each k x k block (lower); returns log det sum
    (sum of 2 log diag) or -inf... raises via NaN if not positive definite."""
    nl, k, _ = A11.shape
    logdet = 0.0
    for l in range(nl):
        for j in range(k):
            s = A11[l, j, j]
            for t in range(j):
                s -= A11[l, j, t] * A11[l, j, t]
            if s <= 0.0:
                return np.nan
            d = np.sqrt(s)
            A11[l, j, j] = d
            logdet += 2.0 * np.log(d)
            for i in range(j + 1, k):
                s2 = A11[l, i, j]
                for t in range(j):
                    s2 -= A11[l, i, t] * A11[l, j, t]
                A11[l, i, j] = s2 / d
            for i in range(j):
                A11[l, i, j] = 0.0
    return logdet


@njit(cache=True)
def block_solve_lower(L11, x, transpose):
    """Solve L x = b (or L' x = b) in place, L block-diagonal with k x k lower blocks;
    x has shape (nl * k, ncol)."""
    nl, k, _ = L11.shape
    ncol = x.shape[1]
    for l in range(nl):
        o = l * k
        for c in range(ncol):
            if not transpose:
                for i in range(k):
                    s = x[o + i, c]
                    for t in range(i):
                        s -= L11[l, i, t] * x[o + t, c]
                    x[o + i, c] = s / L11[l, i, i]
            else:
                for i in range(k - 1, -1, -1):
                    s = x[o + i, c]
                    for t in range(i + 1, k):
                        s -= L11[l, t, i] * x[o + t, c]
                    x[o + i, c] = s / L11[l, i, i]


@njit(cache=True)
def pairs_times_linv_t(V21, poff_j, npairs, kj, k0, paircol, L11, out):
    """L21 blocks = A21 blocks @ L11[l]^{-T}: for each nonzero pair block
    B (kj x k0) with column level l, solve X L11[l]' = B row by row."""
    for p in range(npairs):
        l = paircol[p]
        base = poff_j + p * kj * k0
        for a in range(kj):
            # x L' = b  <=>  L x' = b'  (forward substitution)
            for i in range(k0):
                s = V21[base + a * k0 + i]
                for t in range(i):
                    s -= L11[l, i, t] * out[base + a * k0 + t]
                out[base + a * k0 + i] = s / L11[l, i, i]


@njit(cache=True)
def pairs_times_linv(L21vals, poff_j, npairs, kj, k0, paircol, L11, out):
    """M blocks = L21 blocks @ L11[l]^{-1}: solve X L11[l] = B, row by row
    (back substitution on L11[l]')."""
    for p in range(npairs):
        l = paircol[p]
        base = poff_j + p * kj * k0
        for a in range(kj):
            for i in range(k0 - 1, -1, -1):
                s = L21vals[base + a * k0 + i]
                for t in range(i + 1, k0):
                    s -= out[base + a * k0 + t] * L11[l, t, i]
                out[base + a * k0 + i] = s / L11[l, i, i]


@njit(cache=True, nogil=True)
def selected_cross_inverse(indptr, indices, pos, Mflat, Ainv22, k0, out, Ainv11, c0, c1, mv):
    """Entries of A^{-1}_{21} = -Ainv22 M on the pattern of M (= the pattern of
    A21, all a row ever touches), and the correction -M_l' Ainv21_l of the
    diagonal blocks of A^{-1}_{11}, for term-0 columns [c0, c1) (whole levels:
    c0, c1 multiples of k0, so column ranges can run on separate threads).
    Columns of M are (level, component) of term 0 in CSC form; `pos` maps each
    stored entry to the flat pair layout; `mv` (one entry per stored entry) is
    scratch for the columns' values gathered into CSC order (the inner loop
    then reads contiguous values, 1.4x faster than through `pos`)."""
    for e in range(indptr[c0], indptr[c1]):
        mv[e] = Mflat[pos[e]]
    for col in range(c0, c1):
        a, b = indptr[col], indptr[col + 1]
        for e1 in range(a, b):
            row = Ainv22[indices[e1]]
            s = 0.0
            for e2 in range(a, b):
                s += row[indices[e2]] * mv[e2]
            out[pos[e1]] = -s
    for col in range(c0, c1):
        l = col // k0
        bcol = col % k0
        for bb in range(k0):
            s = 0.0
            for e in range(indptr[col], indptr[col + 1]):
                s += mv[e] * out[pos[e] - bcol + bb]
            Ainv11[l, bcol, bb] -= s


@njit(cache=True, nogil=True)
def schur_lower(indptr, indices, pos, vals, S, c0, c1, cv):
    """S -= L21 L21' on the lower triangle, over term-0 columns [c0, c1) of
    L21 (CSC): work is the sum over columns of nnz^2, not q2^2 q0. `cv` is
    scratch for the values gathered into CSC order (contiguous inner loop)."""
    for e in range(indptr[c0], indptr[c1]):
        cv[e] = vals[pos[e]]
    for col in range(c0, c1):
        a = indptr[col]
        for e1 in range(a, indptr[col + 1]):
            r1 = indices[e1]
            v1 = cv[e1]
            for e2 in range(a, e1 + 1):
                S[r1, indices[e2]] -= v1 * cv[e2]


@njit(cache=True, nogil=True)
def schur_lower_rows(indptr, indices, cv, S, r0, r1):
    """S -= L21 L21' on the rows [r0, r1) of the lower triangle, over all
    term-0 columns (CSC, row indices sorted within each column; `cv` the values
    already gathered into CSC order). Every entry is summed in column order,
    as by :func:`schur_lower`, so row ranges on separate threads give the
    serial kernel's numbers and need no private copies of S."""
    for col in range(indptr.shape[0] - 1):
        a, b = indptr[col], indptr[col + 1]
        for e1 in range(a, b):
            r = indices[e1]
            if r < r0:
                continue
            if r >= r1:
                break
            v1 = cv[e1]
            for e2 in range(a, e1 + 1):
                S[r, indices[e2]] -= v1 * cv[e2]


@njit(cache=True, nogil=True)
def gather(vals, pos, out):
    """out[e] = vals[pos[e]]."""
    for e in range(pos.shape[0]):
        out[e] = vals[pos[e]]


@njit(cache=True)
def block_chol_inverse(L11, out):
    """out[l] = (L11[l] L11[l]')^{-1} for each k x k lower-triangular block.

    M = L^{-1} is lower triangular too: column c of M has its nonzeros in rows
    i >= c, and (M'M)[a, b] sums over t >= max(a, b) (the skipped terms are
    exact zeros, so the sums are the same numbers in the same order)."""
    nl, k, _ = L11.shape
    li = np.zeros((k, k))
    for l in range(nl):
        li[:, :] = 0.0
        for c in range(k):
            # forward substitution: L x = e_c (x_i = 0 for i < c)
            for i in range(c, k):
                s = 1.0 if i == c else 0.0
                for t in range(c, i):
                    s -= L11[l, i, t] * li[t, c]
                li[i, c] = s / L11[l, i, i]
        for a in range(k):
            for b in range(a + 1):
                s = 0.0
                for t in range(a, k):
                    s += li[t, a] * li[t, b]
                out[l, a, b] = s
                out[l, b, a] = s

@njit(cache=True, nogil=True)
def gather_rows(lam, col, val, out, c0):
    """out[i, c0:c0 + k] = val[i] * lam[col[i], :] (val empty: 1): the rows of
    Z Lambda for a term whose Z has one nonzero per row (a gather, not a product)."""
    k = lam.shape[1]
    scaled = val.shape[0] > 0
    for i in range(col.shape[0]):
        r = col[i]
        if scaled:
            v = val[i]
            for b in range(k):
                out[i, c0 + b] = v * lam[r, b]
        else:
            for b in range(k):
                out[i, c0 + b] = lam[r, b]
