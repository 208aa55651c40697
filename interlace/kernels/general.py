"""Per-row kernels of the general-likelihood engine (glmmTMB's families).

Same typed-block layout as :mod:`interlace.kernels.crossprod`: per term a
level code per row and the k_j columns of z_j Lambda_j. Sums over rows only,
so chunks of rows can be added.
"""

from __future__ import annotations

import numpy as np
from numba import njit



@njit(cache=True)
def ut_times(v, codes, zl, kcol, kdim, uoff, out):
    """out += U' v (out has length q)."""
    n = v.shape[0]
    m = codes.shape[0]
    for i in range(n):
        vi = v[i]
        if vi == 0.0:
            continue
        for j in range(m):
            l = codes[j, i]
            k = kdim[j]
            o = uoff[j] + l * k
            c0 = kcol[j]
            for a in range(k):
                out[o + a] += zl[i, c0 + a] * vi



@njit(cache=True, inline="always")
def _hinv(j1, l1, a1, j2, l2, a2, uoff, kdim, Ainv11, Adense, dense):
    """Entry of H^{-1}: block-diagonal blocks for one term, else the dense inverse."""
    if not dense:
        return Ainv11[l1, a1, a2]
    return Adense[uoff[j1] + l1 * kdim[j1] + a1, uoff[j2] + l2 * kdim[j2] + a2]


@njit(cache=True)
def leverage(codes, zl, kcol, kdim, uoff, Ainv11, Adense, dense, lev):
    """lev_i = U_i H^{-1} U_i'."""
    n = lev.shape[0]
    m = codes.shape[0]
    for i in range(n):
        d = 0.0
        for j1 in range(m):
            l1 = codes[j1, i]
            for a1 in range(kdim[j1]):
                z1 = zl[i, kcol[j1] + a1]
                for j2 in range(m):
                    l2 = codes[j2, i]
                    for a2 in range(kdim[j2]):
                        d += z1 * zl[i, kcol[j2] + a2] * _hinv(j1, l1, a1, j2, l2, a2, uoff, kdim,
                                                                Ainv11, Adense, dense)
        lev[i] = d


@njit(cache=True)
def gradient_pass(s, D, v, X, z, codes, zl, kcol, kdim, uoff, u, xi, Ainv11, Adense, dense,
                  th_term, th_a, th_b, gbeta, gtheta):
    """d dev / d(theta, beta) of the Laplace deviance with H = U'DU + I.

    Per row g_i = -2 s_i + v_i - D_i (U xi)_i with v_i = D'_i lev_i and
    xi = H^{-1} U'v; beta: sum g_i X_i; theta_t (entry (a, b) of Lambda_j):
    sum z_ia [g_i u_col + s_i xi_col + 2 D_i (U_i H^{-1})_col]."""
    n = s.shape[0]
    m = codes.shape[0]
    p = X.shape[1]
    nth = th_term.shape[0]
    # entry (a, b) of term j gets z[i, a] * r[b]: r once per column (O((sum k)^2) per row)
    r = np.empty(kcol[m])
    for i in range(n):
        uxi = 0.0
        for j in range(m):
            l = codes[j, i]
            for a in range(kdim[j]):
                uxi += zl[i, kcol[j] + a] * xi[uoff[j] + l * kdim[j] + a]
        g = -2.0 * s[i] + v[i] - D[i] * uxi
        for c in range(p):
            gbeta[c] += g * X[i, c]
        for j in range(m):
            l = codes[j, i]
            for b in range(kdim[j]):
                col = uoff[j] + l * kdim[j] + b
                ua = 0.0
                for j1 in range(m):
                    l1 = codes[j1, i]
                    for a1 in range(kdim[j1]):
                        # H^{-1} is symmetric: read (col, a1) along a row of the stored block
                        zv = zl[i, kcol[j1] + a1]
                        if zv != 0.0:  # Z Lambda rows of an indicator term (0 + f) are sparse
                            ua += zv * _hinv(j, l, b, j1, l1, a1, uoff, kdim, Ainv11, Adense, dense)
                r[kcol[j] + b] = g * u[col] + s[i] * xi[col] + 2.0 * D[i] * ua
        for t in range(nth):
            j = th_term[t]
            za = z[i, kcol[j] + th_a[t]]
            if za != 0.0:  # indicator columns: most entries miss row i
                gtheta[t] += za * r[kcol[j] + th_b[t]]
