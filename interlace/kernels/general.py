"""Per-row kernels of the general-likelihood engine (glmmTMB's families).

Same typed-block layout as :mod:`interlace.kernels.crossprod`: per term a
level code per row and the k_j columns of z_j Lambda_j. Sums over rows only,
so chunks of rows can be added.
"""

from __future__ import annotations

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

