"""Per-row passes for the exact gradient of the Laplace deviance.

D(theta, beta) = -2 log p(y | u*) + |u*|^2 + log det(A),  A = U'WU + I.
By the envelope theorem only the explicit dependence of the first two terms
counts; log det(A) changes through Lambda, through W(eta) and through u*
(implicit derivative). With the selected inverse of A (the blocks any row
touches) every piece is a sum over rows. Canonical links only (W equals the
observed information there).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from interlace.kernels.crossprod import nz_range


@njit(cache=True, inline="always")
def _ainv(i, j1, l1, a1, j2, l2, a2, k0, q0, uoff, kdim, pairidx, poff, Ainv11, Ainv21, Ainv22):
    """Entry of A^{-1} between two positions row i touches; the cross block is
    stored on the pair pattern (flat layout of V21)."""
    if j1 == 0 and j2 == 0:
        return Ainv11[l1, a1, a2]
    if j1 == 0:
        return Ainv21[poff[j2] + pairidx[j2, i] * kdim[j2] * k0 + a2 * k0 + a1]
    if j2 == 0:
        return Ainv21[poff[j1] + pairidx[j1, i] * kdim[j1] * k0 + a1 * k0 + a2]
    return Ainv22[uoff[j1] - q0 + l1 * kdim[j1] + a1, uoff[j2] - q0 + l2 * kdim[j2] + a2]


@njit(cache=True, nogil=True)
def leverage_pass(wd, codes, zl, kcol, kdim, uoff, pairidx, poff, Ainv11, Ainv21, Ainv22, v, Utv):
    """v_i = (dw_i/deta) * U_i A^{-1} U_i'; Utv = U'v (Utv zeroed by caller).
    Each term's loops cover the row's nonzero column range only (nz_range)."""
    n = wd.shape[0]
    m = codes.shape[0]
    k0 = kdim[0]
    q0 = uoff[1] if m > 1 else 0
    lo = np.empty(m, np.int64)
    hi = np.empty(m, np.int64)
    for i in range(n):
        for j in range(m):
            lo[j], hi[j] = nz_range(zl, i, kcol[j], kdim[j])
        d = 0.0
        for j1 in range(m):
            l1 = codes[j1, i]
            for a1 in range(lo[j1], hi[j1]):
                z1 = zl[i, kcol[j1] + a1]
                for j2 in range(m):
                    l2 = codes[j2, i]
                    for a2 in range(lo[j2], hi[j2]):
                        d += z1 * zl[i, kcol[j2] + a2] * _ainv(i, j1, l1, a1, j2, l2, a2, k0, q0, uoff, kdim,
                                                                pairidx, poff, Ainv11, Ainv21, Ainv22)
        vi = wd[i] * d
        v[i] = vi
        for j1 in range(m):
            l1 = codes[j1, i]
            for a1 in range(lo[j1], hi[j1]):
                Utv[uoff[j1] + l1 * kdim[j1] + a1] += zl[i, kcol[j1] + a1] * vi


@njit(cache=True, nogil=True)
def gradient_pass(s, w, hh, v, X, z, codes, zl, kcol, kdim, uoff, pairidx, poff, u, xi, xxi,
                  Ainv11, Ainv21, Ainv22, th_term, th_a, th_b, gbeta, gtheta, with_beta):
    """Accumulate dD/dbeta (if with_beta) and dD/dtheta (both zeroed by caller).
    w: Fisher working weights (those in L); hh: observed information (equal to w
    for canonical links); xi solves (I + U'HU) xi = U'v."""
    n = s.shape[0]
    m = codes.shape[0]
    p = X.shape[1]
    k0 = kdim[0]
    q0 = uoff[1] if m > 1 else 0
    nth = th_term.shape[0]
    # per row, the factor of Lambda's entry (a, b) of term j is z[i, a] * r[b]: r is computed
    # once per column b (O((sum k)^2) per row, not O(k^3) for a k-column term)
    r = np.empty(kcol[m])
    lo = np.empty(m, np.int64)
    hi = np.empty(m, np.int64)
    # the entries t of each (term, column a) in increasing t: CSR over kcol[j] + a
    # (each gtheta[t] still gets the same terms in row order)
    ent_ptr = np.zeros(kcol[m] + 1, np.int64)
    for t in range(nth):
        ent_ptr[kcol[th_term[t]] + th_a[t] + 1] += 1
    for c in range(kcol[m]):
        ent_ptr[c + 1] += ent_ptr[c]
    ent_idx = np.empty(nth, np.int64)
    stamp = np.full(kcol[m], -1, np.int64)  # the row whose r[b] is stored
    fill = ent_ptr[:-1].copy()
    for t in range(nth):
        c = kcol[th_term[t]] + th_a[t]
        ent_idx[fill[c]] = t
        fill[c] += 1
    for i in range(n):
        for j in range(m):
            lo[j], hi[j] = nz_range(zl, i, kcol[j], kdim[j])
        uxi = xxi[i]
        for j in range(m):
            l = codes[j, i]
            for a in range(lo[j], hi[j]):
                uxi += zl[i, kcol[j] + a] * xi[uoff[j] + l * kdim[j] + a]
        g = -2.0 * s[i] + v[i] - hh[i] * uxi
        if with_beta:
            for c in range(p):
                gbeta[c] += g * X[i, c]
        # Lambda's entries (a, b) by the column a of z they need: only the row's
        # nonzero range of z is visited (a term over a factor's levels has one), and
        # r[b] = g u_b + s xi_b + 2 w (U_i A^{-1})_b only for the b an entry asks for
        # (each gtheta[t] still gets the same terms in row order)
        for j in range(m):
            l = codes[j, i]
            zlo, zhi = nz_range(z, i, kcol[j], kdim[j])
            for a in range(zlo, zhi):
                za = z[i, kcol[j] + a]
                if za == 0.0:
                    continue
                for e in range(ent_ptr[kcol[j] + a], ent_ptr[kcol[j] + a + 1]):
                    t = ent_idx[e]
                    b = th_b[t]
                    if stamp[kcol[j] + b] != i:
                        col = uoff[j] + l * kdim[j] + b
                        # (U_i A^{-1})[col]
                        ua = 0.0
                        for j1 in range(m):
                            l1 = codes[j1, i]
                            for a1 in range(lo[j1], hi[j1]):
                                # A^{-1} is symmetric: (col, a1) read along a row of the stored block
                                zv = zl[i, kcol[j1] + a1]
                                if zv != 0.0:  # Z Lambda rows of an indicator term (0 + f) are sparse
                                    ua += zv * _ainv(i, j, l, b, j1, l1, a1, k0, q0, uoff, kdim,
                                                     pairidx, poff, Ainv11, Ainv21, Ainv22)
                        r[kcol[j] + b] = g * u[col] + s[i] * xi[col] + 2.0 * w[i] * ua
                        stamp[kcol[j] + b] = i
                    gtheta[t] += za * r[kcol[j] + b]


@njit(cache=True, nogil=True)
def tangent_rhs(w, r, X, dbeta, codes, zl, zld, kcol, kdim, uoff, u, rhs_u, rhs_b, joint):
    """Right-hand side of the mode's tangent (the implicit function theorem
    on the PIRLS score equations u = U's, 0 = X's) for a move from the mode
    that changes U = Z Lambda by dU and beta by d(beta):

        rhs_u += dU' s - U' W (dU u + X d(beta)),   rhs_b += -X' W dU u  (joint)

    with s = w r the score and W the working weights at the mode. Lambda is
    linear in theta, so dU has rows zld = zlambda(d theta) and the mode's U
    rows zl - zld (zl: at the new theta). In the joint system d(beta) is
    solved for (pass zeros). Solved with the mode's factor, this predicts the
    next mode to first order: a warm start one PIRLS iteration closer.
    Buffers zeroed by the caller."""
    m = codes.shape[0]
    p = X.shape[1]
    for i in range(w.shape[0]):
        g = 0.0
        for c in range(p):
            g += X[i, c] * dbeta[c]
        for j in range(m):
            o = uoff[j] + codes[j, i] * kdim[j]
            c0 = kcol[j]
            dlo, dhi = nz_range(zld, i, c0, kdim[j])
            for a in range(dlo, dhi):
                g += zld[i, c0 + a] * u[o + a]
        wi = w[i]
        wg = wi * g
        si = wi * r[i]
        for j in range(m):
            o = uoff[j] + codes[j, i] * kdim[j]
            c0 = kcol[j]
            # the columns where zl or zld is nonzero (elsewhere both terms are exact zeros)
            dlo, dhi = nz_range(zld, i, c0, kdim[j])
            zlo, zhi = nz_range(zl, i, c0, kdim[j])
            if zhi > zlo:
                dlo = min(dlo, zlo) if dhi > dlo else zlo
                dhi = max(dhi, zhi)
            for a in range(dlo, dhi):
                d = zld[i, c0 + a]
                rhs_u[o + a] += d * si - (zl[i, c0 + a] - d) * wg
        if joint:
            for c in range(p):
                rhs_b[c] -= X[i, c] * wg
