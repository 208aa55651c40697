"""The LMM with one random-effect term from per-level cross-products (numba only).

With one term, A = Lambda' Z'WZ Lambda + I is block diagonal (one k x k block
per level), so the profiled deviance and its exact gradient need only the
per-level sums M_l = Z_l'W Z_l, Z_l'W X, Z_l'W y and X'WX, X'Wy, y'Wy,
accumulated once: every evaluation costs O(levels k^2 p), independent of n.

Gradient pieces (theta_t holds Lambda[a, b]; Ainv_l = A_l^{-1}):
  d log|A|    = 2 sum_l (Ainv_l Lambda' M_l)[b, a]
  d pwrss     = -2 sum_l (Z'W r)_l[a] u_l[b]        (envelope theorem over u, beta)
  d log|RX|^2 = sum_l -2 (Z_l'WX Q_l')[a, b] + 2 (K_l Lambda' M_l)[b, a]
with C_l = Ainv_l Lambda' Z_l'WX, Q_l = C_l S^{-1}, K_l = Q_l C_l', S = RX RX'.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def lmm1_crossprods(codes, z, X, y, w, M, ZtX, Zty, XtX, Xty):
    """Accumulate the per-level and global weighted cross-products (buffers zeroed
    by the caller); returns y'Wy."""
    n, k = z.shape
    p = X.shape[1]
    yty = 0.0
    for i in range(n):
        l = codes[i]
        wi = w[i]
        yi = y[i]
        yty += wi * yi * yi
        for a in range(k):
            za = wi * z[i, a]
            for b in range(k):
                M[l, a, b] += za * z[i, b]
            for c in range(p):
                ZtX[l, a, c] += za * X[i, c]
            Zty[l, a] += za * yi
        for c in range(p):
            xc = wi * X[i, c]
            for d in range(p):
                XtX[c, d] += xc * X[i, d]
            Xty[c] += xc * yi
    return yty


@njit(cache=True, nogil=True, inline="always")
def _chol(A, k):
    """In-place lower Cholesky of A[:k, :k]; False if not positive definite."""
    for j in range(k):
        s = A[j, j]
        for m in range(j):
            s -= A[j, m] * A[j, m]
        if s <= 0.0:
            return False
        d = math.sqrt(s)
        A[j, j] = d
        for i in range(j + 1, k):
            s = A[i, j]
            for m in range(j):
                s -= A[i, m] * A[j, m]
            A[i, j] = s / d
        for i in range(j):
            A[i, j] = 0.0
    return True


@njit(cache=True, nogil=True)
def lmm1_eval(theta, ta, tb, M, ZtX, Zty, XtX, Xty, yty, nd, sum_log_w, reml, want_grad,
              L, RZX, cu, u, beta, RX, grad):
    """Profiled ML/REML deviance at theta (NaN when a factor fails). Fills the
    per-level factors L (nl, k, k), RZX (nl, k, p), cu (nl, k), the modes u
    (nl * k), beta, RX, and with want_grad the gradient. Returns (dev, pwrss,
    logdetA, logdetRX)."""
    nl, k, _ = M.shape
    p = XtX.shape[0]
    nt = theta.shape[0]
    Lam = np.zeros((k, k))
    for t in range(nt):
        Lam[ta[t], tb[t]] = theta[t]
    LtM = np.empty((nl, k, k))
    G = np.empty((k, p))
    for c in range(p):
        for d in range(p):
            RX[c, d] = XtX[c, d]
    rb = Xty.copy()
    ld_a = 0.0
    sq = 0.0
    for l in range(nl):
        # LtM = Lambda' M_l ; A = LtM Lambda + I
        for a in range(k):
            for b in range(k):
                s = 0.0
                for m in range(k):
                    s += Lam[m, a] * M[l, m, b]
                LtM[l, a, b] = s
        A = L[l]
        for a in range(k):
            for b in range(k):
                s = 1.0 if a == b else 0.0
                for m in range(k):
                    s += LtM[l, a, m] * Lam[m, b]
                A[a, b] = s
        if not _chol(A, k):
            return np.nan, np.nan, np.nan, np.nan
        for a in range(k):
            ld_a += 2.0 * math.log(A[a, a])
        # G = Lambda' ZtX_l ; RZX_l = L^{-1} G ; cu_l = L^{-1} Lambda' Zty_l
        for a in range(k):
            for c in range(p):
                s = 0.0
                for m in range(k):
                    s += Lam[m, a] * ZtX[l, m, c]
                G[a, c] = s
            s = 0.0
            for m in range(k):
                s += Lam[m, a] * Zty[l, m]
            cu[l, a] = s
        for a in range(k):
            for c in range(p):
                s = G[a, c]
                for m in range(a):
                    s -= A[a, m] * RZX[l, m, c]
                RZX[l, a, c] = s / A[a, a]
            s = cu[l, a]
            for m in range(a):
                s -= A[a, m] * cu[l, m]
            cu[l, a] = s / A[a, a]
            sq += cu[l, a] * cu[l, a]
        for c in range(p):
            for d in range(p):
                s = 0.0
                for a in range(k):
                    s += RZX[l, a, c] * RZX[l, a, d]
                RX[c, d] -= s
            s = 0.0
            for a in range(k):
                s += RZX[l, a, c] * cu[l, a]
            rb[c] -= s
    if not _chol(RX, p):
        return np.nan, np.nan, np.nan, np.nan
    ld_x = 0.0
    for c in range(p):
        ld_x += 2.0 * math.log(RX[c, c])
    cx = np.empty(p)
    for c in range(p):
        s = rb[c]
        for d in range(c):
            s -= RX[c, d] * cx[d]
        cx[c] = s / RX[c, c]
        sq += cx[c] * cx[c]
    for c in range(p - 1, -1, -1):
        s = cx[c]
        for d in range(c + 1, p):
            s -= RX[d, c] * beta[d]
        beta[c] = s / RX[c, c]
    pwrss = yty - sq
    if pwrss <= 0.0:
        pwrss = 1e-300
    for l in range(nl):
        A = L[l]
        for a in range(k - 1, -1, -1):
            s = cu[l, a]
            for c in range(p):
                s -= RZX[l, a, c] * beta[c]
            for m in range(a + 1, k):
                s -= A[m, a] * u[l * k + m]
            u[l * k + a] = s / A[a, a]
    dev = ld_a - sum_log_w + nd * (1.0 + math.log(2.0 * math.pi * pwrss / nd))
    if reml:
        dev += ld_x
    if not want_grad:
        return dev, pwrss, ld_a, ld_x
    for t in range(nt):
        grad[t] = 0.0
    fac = -2.0 * nd / pwrss
    Ainv = np.empty((k, k))
    Li = np.empty((k, k))
    Sinv = np.empty((p, p))
    if reml:
        # S^{-1} = RX^{-T} RX^{-1}
        Ri = np.zeros((p, p))
        for c in range(p):
            Ri[c, c] = 1.0 / RX[c, c]
            for d in range(c + 1, p):
                s = 0.0
                for m in range(c, d):
                    s -= RX[d, m] * Ri[m, c]
                Ri[d, c] = s / RX[d, d]
        for c in range(p):
            for d in range(p):
                s = 0.0
                for m in range(max(c, d), p):
                    s += Ri[m, c] * Ri[m, d]
                Sinv[c, d] = s
    r = np.empty(k)
    C = np.empty((k, p))
    Q = np.empty((k, p))
    for l in range(nl):
        A = L[l]
        # Li = L^{-1}; Ainv = Li' Li
        for a in range(k):
            for b in range(k):
                Li[a, b] = 0.0
        for b in range(k):
            Li[b, b] = 1.0 / A[b, b]
            for a in range(b + 1, k):
                s = 0.0
                for m in range(b, a):
                    s -= A[a, m] * Li[m, b]
                Li[a, b] = s / A[a, a]
        for a in range(k):
            for b in range(k):
                s = 0.0
                for m in range(max(a, b), k):
                    s += Li[m, a] * Li[m, b]
                Ainv[a, b] = s
        # (Z'W r)_l = Zty - ZtX beta - M Lambda u_l
        for a in range(k):
            s = Zty[l, a]
            for c in range(p):
                s -= ZtX[l, a, c] * beta[c]
            for m in range(k):
                lu = 0.0
                for q in range(k):
                    lu += Lam[m, q] * u[l * k + q]
                s -= M[l, a, m] * lu
            r[a] = s
        if reml:
            # C = Ainv Lambda' ZtX = L^{-T} RZX_l ; Q = C S^{-1}
            for a in range(k):
                for c in range(p):
                    s = 0.0
                    for m in range(a, k):
                        s += Li[m, a] * RZX[l, m, c]
                    C[a, c] = s
            for a in range(k):
                for c in range(p):
                    s = 0.0
                    for d in range(p):
                        s += C[a, d] * Sinv[d, c]
                    Q[a, c] = s
        for t in range(nt):
            a = ta[t]
            b = tb[t]
            s = 0.0
            for m in range(k):
                s += Ainv[b, m] * LtM[l, m, a]
            g = 2.0 * s + fac * r[a] * u[l * k + b]
            if reml:
                s1 = 0.0
                for c in range(p):
                    s1 += ZtX[l, a, c] * Q[b, c]
                # (K Lambda' M)[b, a] with K = Q C'
                s2 = 0.0
                for m in range(k):
                    kbm = 0.0
                    for c in range(p):
                        kbm += Q[b, c] * C[m, c]
                    s2 += kbm * LtM[l, m, a]
                g += -2.0 * s1 + 2.0 * s2
            grad[t] += g
    return dev, pwrss, ld_a, ld_x
