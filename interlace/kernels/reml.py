"""Row pass for the REML term of the LMM gradient (numba only).

d log|RX|^2 / d theta_t = -2 sum_i w_i z_ia (Xr_i S^{-1}) . C[col_i, :]

with C = A^{-1} U'WX, Xr = X - U C, S = RX RX' and col_i the position of
(term j, level of row i, column b) in u; (a, b) is the entry of Lambda_j
that theta_t holds. Derived from d log|J| - d log|A| for the joint factor
J = [[A, U'WX], [X'WU, X'WX]].
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def reml_logdet_rx_grad(w, X, z, codes, zl, kcol, kdim, uoff, C, Sinv, th_term, th_a, th_b, gtheta):
    """Accumulate d log|RX|^2 / d theta into gtheta (zeroed by the caller)."""
    n = w.shape[0]
    m = codes.shape[0]
    p = X.shape[1]
    nth = th_term.shape[0]
    xr = np.empty(p)
    g = np.empty(p)
    for i in range(n):
        for c in range(p):
            xr[c] = X[i, c]
        for j in range(m):
            o = uoff[j] + codes[j, i] * kdim[j]
            for a in range(kdim[j]):
                zz = zl[i, kcol[j] + a]
                if zz != 0.0:
                    for c in range(p):
                        xr[c] -= zz * C[o + a, c]
        for c in range(p):
            s = 0.0
            for d in range(p):
                s += xr[d] * Sinv[d, c]
            g[c] = s
        wi = w[i]
        for t in range(nth):
            j = th_term[t]
            za = z[i, kcol[j] + th_a[t]]
            if za == 0.0:
                continue
            col = uoff[j] + codes[j, i] * kdim[j] + th_b[t]
            s = 0.0
            for c in range(p):
                s += g[c] * C[col, c]
            gtheta[t] -= 2.0 * wi * za * s
