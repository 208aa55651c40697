"""Per-row derivative tensors of the zero-inflated log-likelihood (general/jet.py's zi_jet).

One pass over the rows builds H (n, K, K) and, when asked, T (n, K, K, K) from the base
density's derivatives in (eta, log-dispersion); numpy's broadcasting would allocate
several (n, K, K, K) temporaries per call, which dominated large fits.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["zi_tensors"]


@njit(cache=True)
def zi_tensors(K, ip, iz, r, s1, lw, e, ee, eee, p, ep, eep, pp, epp, ppp, G, H, T, order):  # pragma: no cover
    n = r.shape[0]
    g1 = np.zeros(K)
    g2 = np.zeros((K, K))
    g3 = np.zeros((K, K, K))
    w = np.zeros(K)
    for i in range(n):
        g1[:] = 0.0
        g2[:, :] = 0.0
        g1[0] = e[i]
        g2[0, 0] = ee[i]
        if ip >= 0:
            g1[ip] = p[i]
            g2[0, ip] = ep[i]
            g2[ip, 0] = ep[i]
            g2[ip, ip] = pp[i]
        ri = r[i]
        rr = ri * (1.0 - ri)
        sz = s1[i]
        s2 = sz * (1.0 - sz)
        wt = lw[i]
        for a in range(K):
            w[a] = g1[a]
        w[iz] -= 1.0
        for a in range(K):
            G[i, a] = wt * ri * g1[a]
        G[i, iz] += wt * (1.0 - ri - sz)
        for a in range(K):
            for b in range(K):
                H[i, a, b] = wt * (rr * w[a] * w[b] + ri * g2[a, b])
        H[i, iz, iz] -= wt * s2
        if order >= 3:
            g3[:, :, :] = 0.0
            g3[0, 0, 0] = eee[i]
            if ip >= 0:
                g3[0, 0, ip] = eep[i]
                g3[0, ip, 0] = eep[i]
                g3[ip, 0, 0] = eep[i]
                g3[0, ip, ip] = epp[i]
                g3[ip, 0, ip] = epp[i]
                g3[ip, ip, 0] = epp[i]
                g3[ip, ip, ip] = ppp[i]
            rr3 = rr * (1.0 - 2.0 * ri)
            s3 = s2 * (1.0 - 2.0 * sz)
            for a in range(K):
                for b in range(K):
                    for c in range(K):
                        T[i, a, b, c] = wt * (rr3 * w[a] * w[b] * w[c] + ri * g3[a, b, c]
                                              + rr * (g2[a, b] * w[c] + g2[a, c] * w[b] + g2[b, c] * w[a]))
            T[i, iz, iz, iz] -= wt * s3


@njit(cache=True)
def zi_mix(g, z, zero, lw, l, r, s1):  # pragma: no cover
    """Per row the zero-inflated log-likelihood l (weighted), r = plogis(g - z) at zeros
    (1 elsewhere) and s1 = plogis(z), in log space."""
    n = g.shape[0]
    for i in range(n):
        zi = z[i]
        sp = zi + np.log1p(np.exp(-zi)) if zi > 0 else np.log1p(np.exp(zi))  # softplus(z)
        s1[i] = 1.0 / (1.0 + np.exp(-zi)) if zi >= 0 else np.exp(zi) / (1.0 + np.exp(zi))
        gi = g[i]
        if zero[i]:
            if gi == -np.inf:
                l[i] = lw[i] * (zi - sp)
                r[i] = 0.0
            else:
                m = max(zi, gi)
                l[i] = lw[i] * (m + np.log(np.exp(zi - m) + np.exp(gi - m)) - sp)
                d = gi - zi
                r[i] = 1.0 / (1.0 + np.exp(-d)) if d >= 0 else np.exp(d) / (1.0 + np.exp(d))
        else:
            l[i] = lw[i] * (gi - sp)
            r[i] = 1.0


@njit(cache=True)
def accumulate_hessian(A, cols_a, vals_a, cols_b, vals_b, W_ab):  # pragma: no cover
    """A[cols_a[i, s], cols_b[i, t]] += vals_a[i, s] W_ab[i] vals_b[i, t] over the rows."""
    n, ra = cols_a.shape
    rb = cols_b.shape[1]
    for i in range(n):
        w = W_ab[i]
        if w == 0.0:
            continue
        for s in range(ra):
            va = vals_a[i, s] * w
            ca = cols_a[i, s]
            for t in range(rb):
                A[ca, cols_b[i, t]] += va * vals_b[i, t]
