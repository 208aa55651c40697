"""Per-row derivative tensors of the zero-inflated log-likelihood (general/jet.py's zi_jet).

One pass over the rows builds H (n, K, K) and, when asked, T (n, K, K, K) from the base
density's derivatives in (eta, log-dispersion); numpy's broadcasting would allocate
several (n, K, K, K) temporaries per call, which dominated large fits.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["zi_tensors", "zi_mix", "accumulate_hessian", "nb2_parts_rows", "zinb2_loglik", "zinb2_jet"]


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
    for i in range(g.shape[0]):
        li, r[i], s1[i] = _zi_mix_row(0.0 if zero[i] else 1.0, g[i], z[i], 1)
        l[i] = lw[i] * li


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


# ---------------------------------------------------------------- NB2 with one theta for every row
# The formulas of likelihood.nbinom2_parts and of zi_mix / zi_tensors, with the exponentials
# shared: one exp(-|a - b|) gives both logaddexp(a, b) = max + log1p(.) and the logistic
# weights (m = mu / (mu + theta), 1 - m, plogis), each without cancellation.


@njit(cache=True, inline="always")
def _nb2_row(yi, lgk, dgk, tgk, lg1k, eta_i, lth, th, lgth, dgth, tgth, order):  # pragma: no cover
    """One row of ``likelihood.nbinom2_parts`` (gammaln, digamma, trigamma of y + theta and
    gammaln(y + 1) given, from the tables per distinct count): (g, e, ee, eee, p, ep, eep, pp).
    Scalars only: array arguments would cost reference counting on every call."""
    d = eta_i - lth
    t = np.exp(-abs(d))
    lmt = (eta_i if d > 0 else lth) + np.log1p(t)  # log(mu + theta)
    g = lgk - lgth - lg1k + th * (lth - lmt) + yi * (eta_i - lmt)
    e = ee = eee = p = ep = eep = pp = 0.0
    if order >= 1:
        if d > 0:  # m = mu / (mu + theta), sm = 1 - m = theta / (mu + theta)
            m = 1.0 / (1.0 + t)
            sm = t / (1.0 + t)
        else:
            m = t / (1.0 + t)
            sm = 1.0 / (1.0 + t)
        mm = m * sm
        yt = yi + th
        e = yi - yt * m
        ee = -yt * mm
        if order >= 2:
            eee = -yt * mm * (1.0 - 2.0 * m)
            R = yt * (sm / th)  # (y + theta) / (mu + theta)
            p = th * (dgk - dgth + lth - lmt + 1.0 - R)
            ep = -th * m + yt * mm
            eep = -th * mm + yt * (1.0 - 2.0 * m) * mm
            D1 = tgk - tgth
            pp = p + th * (th * D1 + 1.0 - 2.0 * sm + sm * R)
    return g, e, ee, eee, p, ep, eep, pp


@njit(cache=True, inline="always")
def _zi_mix_row(yi, g, zi, order):  # pragma: no cover
    """(unweighted l, r, s1) of ``zi_mix`` for one row (r and s1 only when order >= 1)."""
    ez = np.exp(-abs(zi))
    sp = (zi if zi > 0 else 0.0) + np.log1p(ez)  # softplus(z)
    s1 = 0.0
    if order >= 1:
        s1 = 1.0 / (1.0 + ez) if zi >= 0 else ez / (1.0 + ez)  # plogis(z)
    if yi == 0:
        if g == -np.inf:
            return zi - sp, 0.0, s1
        dz = g - zi
        t = np.exp(-abs(dz))
        li = (g if dz > 0 else zi) + np.log1p(t) - sp
        r = 0.0
        if order >= 1:
            r = 1.0 / (1.0 + t) if dz >= 0 else t / (1.0 + t)  # plogis(g - z)
        return li, r, s1
    return g - sp, 1.0, s1


@njit(cache=True)
def nb2_parts_rows(y, inv, eta, lth, th, tlg, tdg, ttg, lg1, lgth, dgth, tgth, order,
                   g, e, ee, eee, p, ep, eep, pp):  # pragma: no cover
    """NB2 parts of every row (one pass) when theta is the same on every row."""
    for i in range(y.shape[0]):
        k = inv[i]
        r = _nb2_row(y[i], tlg[k], tdg[k], ttg[k], lg1[k], eta[i], lth, th, lgth, dgth, tgth, order)
        g[i] = r[0]
        if order >= 1:
            e[i] = r[1]
            ee[i] = r[2]
        if order >= 2:
            eee[i] = r[3]
            p[i] = r[4]
            ep[i] = r[5]
            eep[i] = r[6]
            pp[i] = r[7]


@njit(cache=True)
def zinb2_loglik(y, inv, eta, lth, th, tlg, lg1, lgth, z, lw, l):  # pragma: no cover
    """The zero-inflated NB2 log-likelihood per row (weighted), one pass: NB2's g as
    ``nb2_parts_rows``, then the mixing of ``zi_mix``."""
    for i in range(y.shape[0]):
        yi = y[i]
        k = inv[i]
        g = _nb2_row(yi, tlg[k], 0.0, 0.0, lg1[k], eta[i], lth, th, lgth, 0.0, 0.0, 0)[0]
        l[i] = lw[i] * _zi_mix_row(yi, g, z[i], 0)[0]


@njit(cache=True, inline="always")
def _zi3_vals(ri, sz, wt, e, ee, eee, p, ep, eep, pp, order):  # pragma: no cover
    """``zi_tensors``' row for the predictors (cond, disp, zi), no random effects in "disp"
    (epp = ppp = 0), as scalars: in canonical order w = (e, p, -1), Hess g = [[ee, ep, 0],
    [ep, pp, 0], [0, 0, 0]], third derivatives of g eee at (0, 0, 0) and eep at (0, 0, 1).
    Returns G (3), H's (00, 01, 02, 11, 12, 22) and T's ten distinct entries (a <= b <= c)."""
    rr = ri * (1.0 - ri)
    s2 = sz * (1.0 - sz)
    g0 = wt * ri * e
    gp = wt * ri * p
    gz = wt * (1.0 - ri - sz)
    h00 = wt * (rr * e * e + ri * ee)
    h01 = wt * (rr * e * p + ri * ep)
    h02 = -wt * rr * e
    h11 = wt * (rr * p * p + ri * pp)
    h12 = -wt * rr * p
    h22 = wt * rr - wt * s2
    t000 = t001 = t002 = t011 = t012 = t022 = t111 = t112 = t122 = t222 = 0.0
    if order >= 3:
        rr3 = rr * (1.0 - 2.0 * ri)
        s3 = s2 * (1.0 - 2.0 * sz)
        t000 = wt * (rr3 * e * e * e + ri * eee + 3.0 * rr * ee * e)
        t001 = wt * (rr3 * e * e * p + ri * eep + rr * (ee * p + 2.0 * ep * e))
        t002 = wt * (-rr3 * e * e - rr * ee)
        t011 = wt * (rr3 * e * p * p + rr * (2.0 * ep * p + pp * e))
        t012 = wt * (-rr3 * e * p - rr * ep)
        t022 = wt * rr3 * e
        t111 = wt * (rr3 * p * p * p + 3.0 * rr * pp * p)
        t112 = wt * (-rr3 * p * p - rr * pp)
        t122 = wt * rr3 * p
        t222 = -wt * rr3 - wt * s3
    return (g0, gp, gz, h00, h01, h02, h11, h12, h22,
            t000, t001, t002, t011, t012, t022, t111, t112, t122, t222)


@njit(cache=True)
def zinb2_jet(y, inv, eta, lth, th, tlg, tdg, ttg, lg1, lgth, dgth, tgth, z, lw, ip, iz,
              l, G, H, T, order):  # pragma: no cover
    """``zi_jet`` of the zero-inflated NB2 in one pass, the predictors (cond, disp, zi) at
    positions (0, ip, iz) (theta the same on every row, no random effects in the dispersion
    model: its second and third derivatives within "disp" beyond NB2's pp are zero).
    Returns the number of zero rows whose base density is not finite (the caller then
    takes the general path)."""
    bad = 0
    for i in range(y.shape[0]):
        yi = y[i]
        k = inv[i]
        g, e, ee, eee, p, ep, eep, pp = _nb2_row(yi, tlg[k], tdg[k], ttg[k], lg1[k], eta[i], lth, th, lgth, dgth,
                                                 tgth, 2)
        if yi == 0 and not np.isfinite(g):
            bad += 1
        li, ri, sz = _zi_mix_row(yi, g, z[i], 1)
        wt = lw[i]
        l[i] = wt * li
        r = _zi3_vals(ri, sz, wt, e, ee, eee, p, ep, eep, pp, order)
        G[i, 0] = r[0]
        G[i, ip] = r[1]
        G[i, iz] = r[2]
        H[i, 0, 0] = r[3]
        H[i, 0, ip] = r[4]
        H[i, ip, 0] = r[4]
        H[i, 0, iz] = r[5]
        H[i, iz, 0] = r[5]
        H[i, ip, ip] = r[6]
        H[i, ip, iz] = r[7]
        H[i, iz, ip] = r[7]
        H[i, iz, iz] = r[8]
        if order >= 3:
            # the ten distinct entries to their permutations
            T[i, 0, 0, 0] = r[9]
            T[i, 0, 0, ip] = r[10]
            T[i, 0, ip, 0] = r[10]
            T[i, ip, 0, 0] = r[10]
            T[i, 0, 0, iz] = r[11]
            T[i, 0, iz, 0] = r[11]
            T[i, iz, 0, 0] = r[11]
            T[i, 0, ip, ip] = r[12]
            T[i, ip, 0, ip] = r[12]
            T[i, ip, ip, 0] = r[12]
            T[i, 0, ip, iz] = r[13]
            T[i, 0, iz, ip] = r[13]
            T[i, ip, 0, iz] = r[13]
            T[i, ip, iz, 0] = r[13]
            T[i, iz, 0, ip] = r[13]
            T[i, iz, ip, 0] = r[13]
            T[i, 0, iz, iz] = r[14]
            T[i, iz, 0, iz] = r[14]
            T[i, iz, iz, 0] = r[14]
            T[i, ip, ip, ip] = r[15]
            T[i, ip, ip, iz] = r[16]
            T[i, ip, iz, ip] = r[16]
            T[i, iz, ip, ip] = r[16]
            T[i, ip, iz, iz] = r[17]
            T[i, iz, ip, iz] = r[17]
            T[i, iz, iz, ip] = r[17]
            T[i, iz, iz, iz] = r[18]
    return bad


# ---------------------------------------------------------------- block-diagonal u-Hessian (general/multi.py)
# When the random effects of all predictors fall apart into small groups that no row links
# (the side models share the conditional model's grouping factor: one block per level), the
# u-Hessian A is block diagonal after a permutation; it is kept as blocks B (nb, s, s),
# padded with the identity, and factored block by block.


@njit(cache=True)
def accumulate_blocks(B, blk, slot, cols_a, vals_a, cols_b, vals_b, W_ab):  # pragma: no cover
    """``accumulate_hessian`` into the blocks: u index c lives at B[blk[c], slot[c], .]."""
    n, ra = cols_a.shape
    rb = cols_b.shape[1]
    for i in range(n):
        w = W_ab[i]
        if w == 0.0:
            continue
        for s in range(ra):
            ca = cols_a[i, s]
            va = vals_a[i, s] * w
            b = blk[ca]
            sa = slot[ca]
            for t in range(rb):
                B[b, sa, slot[cols_b[i, t]]] += va * vals_b[i, t]


@njit(cache=True)
def block_cholesky(B):  # pragma: no cover
    """In place lower Cholesky factor of every block; False when one is not positive
    definite (or not finite)."""
    nb, s, _ = B.shape
    for b in range(nb):
        for j in range(s):
            d = B[b, j, j]
            for k in range(j):
                d -= B[b, j, k] * B[b, j, k]
            if not (d > 0.0) or not np.isfinite(d):
                return False
            d = np.sqrt(d)
            B[b, j, j] = d
            for i in range(j + 1, s):
                v = B[b, i, j]
                for k in range(j):
                    v -= B[b, i, k] * B[b, j, k]
                B[b, i, j] = v / d
            for i in range(j):
                B[b, i, j] = 0.0
    return True


@njit(cache=True)
def block_solve(L, idx, g, out):  # pragma: no cover
    """out = A^-1 g with A's blocks factored in L; idx[b, s] the u index of slot s (-1: padding)."""
    nb, s, _ = L.shape
    x = np.zeros(s)
    for b in range(nb):
        for j in range(s):
            c = idx[b, j]
            v = g[c] if c >= 0 else 0.0
            for k in range(j):
                v -= L[b, j, k] * x[k]
            x[j] = v / L[b, j, j]
        for j in range(s - 1, -1, -1):
            v = x[j]
            for k in range(j + 1, s):
                v -= L[b, k, j] * x[k]
            x[j] = v / L[b, j, j]
        for j in range(s):
            c = idx[b, j]
            if c >= 0:
                out[c] = x[j]


@njit(cache=True)
def block_inverse(L, Ai):  # pragma: no cover
    """Ai[b] = (L[b] L[b]')^-1 for every block."""
    nb, s, _ = L.shape
    Li = np.zeros((s, s))
    for b in range(nb):
        Li[:, :] = 0.0
        for j in range(s):  # Li = L^-1, column by column
            Li[j, j] = 1.0 / L[b, j, j]
            for i in range(j + 1, s):
                v = 0.0
                for k in range(j, i):
                    v -= L[b, i, k] * Li[k, j]
                Li[i, j] = v / L[b, i, i]
        for i in range(s):  # A^-1 = Li' Li
            for j in range(i + 1):
                v = 0.0
                for k in range(i, s):
                    v += Li[k, i] * Li[k, j]
                Ai[b, i, j] = v
                Ai[b, j, i] = v


@njit(cache=True)
def accumulate_all(A, blk, slot, cols, vals, kp, H, sign):  # pragma: no cover
    """A += sum_i U_i' (sign H_i) U_i over every pair of predictors in one pass: ``cols``,
    ``vals`` (n, R) all predictors' random-effect columns side by side, ``kp[s]`` the
    predictor of column s. A dense (q x q; blk None) or blocks (nb, s, s) addressed by
    ``blk``/``slot`` as in :func:`accumulate_blocks`."""
    n, R = cols.shape
    for i in range(n):
        for s in range(R):
            ca = cols[i, s]
            ka = kp[s]
            vs = vals[i, s]
            for t in range(R):
                w = sign * H[i, ka, kp[t]]
                if w == 0.0:
                    continue
                cb = cols[i, t]
                if blk is None:
                    A[ca, cb] += vs * w * vals[i, t]
                else:
                    A[blk[ca], slot[ca], slot[cb]] += vs * w * vals[i, t]


# ---------------------------------------------------------------- the gradient's row parts (general/multi.py)
# A^-1 is read as blocks Bi (nb, s, s) with u index c at (blk[c], slot[c]) (a dense A^-1 is
# one block); every sum runs in the order of the numpy expressions it replaces.


@njit(cache=True)
def grad_rows_v(Bi, blk, slot, cols, vals, kp, T, M, v):  # pragma: no cover
    """M_i = U_i A^-1 U_i' (n, K, K; zero where a predictor has no random effects) and
    v_i,m = sum_ab M_i,ab T_i,abm."""
    n, R = cols.shape
    K = M.shape[1]
    for i in range(n):
        for a in range(K):
            for b in range(K):
                M[i, a, b] = 0.0
        for s in range(R):
            ca = cols[i, s]
            ba = blk[ca]
            for t in range(R):
                cb = cols[i, t]
                ai = Bi[ba, slot[ca], slot[cb]] if blk[cb] == ba else 0.0  # A^-1[ca, cb]
                M[i, kp[s], kp[t]] += vals[i, s] * ai * vals[i, t]
        for m in range(K):
            acc = 0.0
            for a in range(K):
                for b in range(K):
                    acc += M[i, a, b] * T[i, a, b, m]
            v[i, m] = acc


@njit(cache=True)
def grad_rows_q(Bi, blk, slot, cols, vals, kp, re_k, G, H, v, xi, u, uxi, c, Q):  # pragma: no cover
    """Per row: U_i xi, c_i = -2 G_i - v_i - H_i U_i xi, and per random-effect column t of
    predictor k, Q_it = c_ik u_t + 2 (W_i U_i A^-1)_kt - G_ik xi_t (W = -H)."""
    n, R = cols.shape
    K = G.shape[1]
    for i in range(n):
        for k in range(K):
            uxi[k] = 0.0
        for s in range(R):
            uxi[kp[s]] += vals[i, s] * xi[cols[i, s]]
        for k in range(K):
            acc = 0.0
            for m in range(K):
                acc += H[i, k, m] * uxi[m]
            c[i, k] = -2.0 * G[i, k] - v[i, k] - acc
        for t in range(R):
            k = kp[t]
            ct = cols[i, t]
            bt = blk[ct]
            wp = 0.0
            for j in range(re_k.shape[0]):
                m = re_k[j]
                w = 0.0
                for s in range(R):
                    if kp[s] == m:
                        cs = cols[i, s]
                        ai = Bi[bt, slot[cs], slot[ct]] if blk[cs] == bt else 0.0  # A^-1[cs, ct]
                        w += vals[i, s] * ai
                wp += (-H[i, k, m]) * w
            Q[i, t] = c[i, k] * u[ct] + 2.0 * wp - G[i, k] * xi[ct]


# ---------------------------------------------------------------- likelihood.zero_inflate over NB2, compiled
_LOGE2 = 0.693147180559945309417232121458176568


@njit(cache=True, inline="always")
def _logaddexp(x, y):  # pragma: no cover
    """numpy's logaddexp, operation for operation."""
    if x == y:
        return x + _LOGE2
    tmp = x - y
    if tmp > 0:
        return x + np.log1p(np.exp(-tmp))
    elif tmp <= 0:
        return y + np.log1p(np.exp(tmp))
    return tmp


@njit(cache=True)
def zinb2_derivs(y, inv, eta, lth, th, tlg, tdg, ttg, lg1, lgth, dgth, tgth, z, lw, order,
                 l, e, ee, eee, z0, z1, z2, d0, d1, d2):  # pragma: no cover
    """``likelihood.zero_inflate`` of ``nbinom2_parts`` (order 1 or 2) in one pass, every
    operation in the order of the numpy expressions (scipy's expit is 1 / (1 + exp(-x)),
    ``**3`` is pow): l, e, ee (, eee, the "zi" and "disp" triples) weighted."""
    for i in range(y.shape[0]):
        yi = y[i]
        k = inv[i]
        g, pe, pee, peee, pp, pep, peep, _pp2 = _nb2_row(yi, tlg[k], tdg[k], ttg[k], lg1[k], eta[i], lth, th, lgth,
                                                        dgth, tgth, order)
        zi = z[i]
        wt = lw[i]
        zero = yi == 0
        li = _logaddexp(zi, g) if zero else g
        l[i] = wt * (li - _logaddexp(0.0, zi))
        r = 1.0 / (1.0 + np.exp(-(g - zi))) if zero else 1.0
        rr = r * (1.0 - r)
        e[i] = wt * (r * pe)
        ee[i] = wt * (r * pee + rr * (pe * pe))
        if order >= 2:
            q = 1.0 - 2.0 * r
            eee[i] = wt * (r * peee + 3.0 * rr * pe * pee + q * rr * np.power(pe, 3.0))
            pz = 1.0 / (1.0 + np.exp(-zi))
            z0[i] = wt * ((1.0 - r if zero else 0.0) - pz)
            z1[i] = wt * (-rr * pe)
            z2[i] = wt * (-rr * pee - q * rr * (pe * pe))
            d0[i] = wt * (r * pp)
            d1[i] = wt * (r * pep + rr * pp * pe)
            d2[i] = wt * (rr * pp * pee + r * peep + q * rr * pp * (pe * pe) + 2.0 * rr * pe * pep)


@njit(cache=True)
def ut_rows(cols, vals, kp, R, g):  # pragma: no cover
    """g += sum_i U_i' R_i: g[cols[i, s]] += vals[i, s] R[i, kp[s]], rows in order (the sums
    of numpy's bincount over each predictor's columns)."""
    n, S = cols.shape
    for i in range(n):
        for s in range(S):
            g[cols[i, s]] += vals[i, s] * R[i, kp[s]]


@njit(cache=True)
def etas_rows(cols, vals, kp, u, base, out):  # pragma: no cover
    """out[k, i] = base[k, i] + sum_s vals[i, s] u[cols[i, s]] over predictor k's columns
    (the random-effect part summed first, in column order, as numpy's row sum)."""
    n, S = cols.shape
    K = base.shape[0]
    acc = np.zeros(K)
    has = np.zeros(K, dtype=np.bool_)
    for s in range(S):
        has[kp[s]] = True
    for i in range(n):
        for k in range(K):
            acc[k] = 0.0
        for s in range(S):
            acc[kp[s]] += vals[i, s] * u[cols[i, s]]
        for k in range(K):
            out[k, i] = base[k, i] + acc[k] if has[k] else base[k, i]
