"""Adaptive Gauss-Hermite quadrature kernels: one pass per level of a single
grouping factor, rows sorted by level.

For level l with k random effects, spherical u in R^k, conditional mode u0 and
the Cholesky factor L of A = I + sum_i w_i lam_i lam_i' at u0 (Fisher weights,
lam_i = Lambda' z_i, as lme4 scales its rule), the level's contribution to the
deviance is

    D_l = log|A| - 2 log sum_j W_j exp(|z_j|^2 / 2 - devc(u0 + L^{-T} z_j) / 2),

devc(u) = |u|^2 + sum_{i in l} dev_i(eta_i(u)) (unit deviances), z_j and W_j the
product Gauss-Hermite rule for the standard normal in k dimensions. With one
node (z = 0, W = 1) D_l is the Laplace term. The sum over nodes is done in log
space (logsumexp), so tiny weights and far tails never underflow the total.

The gradient in (theta, beta) is exact: besides the explicit dependence of the
node values it follows the centre u0 (implicit function theorem on the mode
equation u = sum_i s_i lam_i, with the observed information H) and the scale
L^{-T} (derivative of the Cholesky factor of A). See docs/agq.md.

ndarray in, ndarray out; imports only the per-row family kernels.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from interlace.kernels.glm import EPS, EXP_MAX, LOGIT_THRESH, _linkinv_mueta, _variance_devres

LOG_EPS = math.log(EPS)  # below it R clamps exp(eta) at EPS
FACT_MAX = 700.0  # |log| range in which exp(base) exp(lambda t) is safe


@njit(cache=True, inline="always")
def _score(y: float, wt: float, mu: float, d: float, v: float) -> float:
    """d loglik / d eta = wt (y - mu) mu_eta / V (equal to wt (y - mu) for canonical links)."""
    return wt * (y - mu) * d / v


@njit(cache=True, inline="always")
def _dev_score(fam, link, y, wt, c, eta, want_score):
    """(unit deviance minus its constant part c, score d loglik/d eta).

    The node loop is dominated by transcendental functions, so the two
    canonical pairs get one exp (and one log1p) per row: with
    c = 2 wt (y log y + (1 - y) log(1 - y)) (binomial) or 2 wt (y log y - y)
    (Poisson), dev - c = 2 wt (softplus(eta) - y eta) or 2 wt (mu - y eta).
    Outside R's clamping range, and for every other pair, the general
    formulas run (with c = 0 for the pairs without a constant split).
    """
    if fam == 0 and link == 0 and -LOGIT_THRESH <= eta <= LOGIT_THRESH:
        e = math.exp(-abs(eta))
        sp = max(eta, 0.0) + math.log1p(e)
        mu = 1.0 / (1.0 + e) if eta >= 0.0 else e / (1.0 + e)
        return 2.0 * wt * (sp - y * eta), wt * (y - mu)
    if fam == 1 and link == 3 and LOG_EPS < eta < EXP_MAX:
        mu = math.exp(eta)
        return 2.0 * wt * (mu - y * eta), wt * (y - mu)
    mu, d = _linkinv_mueta(link, eta)
    v, dr = _variance_devres(fam, y, mu, wt)
    sc = _score(y, wt, mu, d, v) if want_score else 0.0
    return dr - c, sc


def split_constants(fam: int, link: int, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
    """Per-row constant part c of the unit deviance used by _dev_score."""
    from scipy.special import xlogy

    y = np.asarray(y, dtype=np.float64)
    wt = np.asarray(wt, dtype=np.float64)
    if fam == 0 and link == 0:
        return 2.0 * wt * (xlogy(y, y) + xlogy(1.0 - y, 1.0 - y))
    if fam == 1 and link == 3:
        return 2.0 * wt * (xlogy(y, y) - y)
    return np.zeros_like(y)


@njit(cache=True)
def _lower_inverse(L: np.ndarray, Li: np.ndarray) -> None:
    """Li = L^{-1} for a small lower-triangular L."""
    k = L.shape[0]
    for a in range(k):
        for b in range(k):
            Li[a, b] = 0.0
    for j in range(k):
        Li[j, j] = 1.0 / L[j, j]
        for i in range(j + 1, k):
            s = 0.0
            for t in range(j, i):
                s -= L[i, t] * Li[t, j]
            Li[i, j] = s / L[i, i]


@njit(cache=True)
def _spd_solve(M: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = M^{-1} b for a small symmetric positive definite M (Cholesky)."""
    k = M.shape[0]
    C = np.zeros((k, k))
    for j in range(k):
        s = M[j, j]
        for t in range(j):
            s -= C[j, t] * C[j, t]
        d = math.sqrt(s) if s > 0.0 else 1e-300
        C[j, j] = d
        for i in range(j + 1, k):
            s2 = M[i, j]
            for t in range(j):
                s2 -= C[i, t] * C[j, t]
            C[i, j] = s2 / d
    tmp = np.empty(k)
    for i in range(k):
        s = b[i]
        for t in range(i):
            s -= C[i, t] * tmp[t]
        tmp[i] = s / C[i, i]
    for i in range(k - 1, -1, -1):
        s = tmp[i]
        for t in range(i + 1, k):
            s -= C[t, i] * out[t]
        out[i] = s / C[i, i]


@njit(cache=True)
def _one_level(l, fam, link, want_grad, ri, y, wt, crow, base, X, Z, zl, start, u0, L, nodes, logw,
               Lam, th_a, th_b, s0, h0, w0, wd0, dev_lev, grad_lev):
    """Level l of agq_levels (see there)."""
    k = Z.shape[1]
    p = X.shape[1]
    nn = nodes.shape[0]
    nt = th_a.shape[0]
    r0 = start[l]
    r1 = start[l + 1]
    Ll = L[l]
    Li = np.empty((k, k))
    _lower_inverse(Ll, Li)
    logv = np.empty(nn)
    T = np.empty((nn, k))
    SX = np.zeros((nn, p))
    SZ = np.zeros((nn, k))
    tt = np.empty(k)
    csum = 0.0  # the rows' constant deviance parts, added once per node below
    for i in range(r0, r1):
        csum += crow[i]
    # random intercept with a canonical log/logit link: exp(eta) = exp(base) exp(lambda t)
    # factors, so the rows need one exp per evaluation instead of one per node
    fact = ri and ((fam == 0 and link == 0) or (fam == 1 and link == 3))
    E = np.empty(r1 - r0 if fact else 0)
    if fact:
        for i in range(r0, r1):
            bi = base[i]
            E[i - r0] = math.exp(bi) if -FACT_MAX < bi < FACT_MAX else -1.0
    for j in range(nn):
        # node in u-space: t = u0 + L^{-T} z_j
        devc = csum
        for a in range(k):
            acc = u0[l, a]
            for b in range(a, k):
                acc += Li[b, a] * nodes[j, b]
            tt[a] = acc
            T[j, a] = acc
            devc += acc * acc
        lt = Lam[0, 0] * tt[0]
        usef = fact and abs(lt) < FACT_MAX
        F = math.exp(lt) if usef else 0.0
        for i in range(r0, r1):
            eta = base[i]
            for a in range(k):
                eta += zl[i, a] * tt[a]
            if usef and E[i - r0] > 0.0 and (
                    (fam == 0 and -LOGIT_THRESH <= eta <= LOGIT_THRESH)
                    or (fam == 1 and LOG_EPS < eta < EXP_MAX)):
                ex = E[i - r0] * F
                if fam == 0:
                    mu = ex / (1.0 + ex)
                    dr = 2.0 * wt[i] * (math.log1p(ex) - y[i] * eta)
                else:
                    mu = ex
                    dr = 2.0 * wt[i] * (ex - y[i] * eta)
                sc = wt[i] * (y[i] - mu)
            else:
                dr, sc = _dev_score(fam, link, y[i], wt[i], crow[i], eta, want_grad)
            devc += dr
            if want_grad:
                for c in range(p):
                    SX[j, c] += sc * X[i, c]
                for a in range(k):
                    SZ[j, a] += sc * Z[i, a]
        logv[j] = logw[j] - 0.5 * devc
    mx = logv[0]
    for j in range(1, nn):
        if logv[j] > mx:
            mx = logv[j]
    tot = 0.0
    for j in range(nn):
        tot += math.exp(logv[j] - mx)
    lse = mx + math.log(tot)
    ld = 0.0
    for a in range(k):
        ld += 2.0 * math.log(Ll[a, a])
    dev_lev[l] = ld - 2.0 * lse
    if not want_grad:
        return
    g = grad_lev[l]
    for c in range(nt + p):
        g[c] = 0.0
    # (1) explicit dependence of the node values: d devc / d phi at t_j
    avec = np.zeros(k)        # sum_j pi_j grad_u devc(t_j)
    C = np.zeros((k, k))      # sum_j pi_j (L^{-1} g_j)(L^{-T} z_j)'
    gj = np.empty(k)
    ag = np.empty(k)
    for j in range(nn):
        pj = math.exp(logv[j] - lse)
        for c in range(p):
            g[nt + c] += -2.0 * pj * SX[j, c]
        for t in range(nt):
            g[t] += -2.0 * pj * SZ[j, th_a[t]] * T[j, th_b[t]]
        for b in range(k):
            acc = 2.0 * T[j, b]
            for a in range(k):
                acc -= 2.0 * Lam[a, b] * SZ[j, a]
            gj[b] = acc
            avec[b] += pj * acc
        for a in range(k):
            acc = 0.0
            for b in range(a + 1):
                acc += Li[a, b] * gj[b]
            ag[a] = acc
        for a in range(k):
            for b in range(k):
                C[a, b] += pj * ag[a] * (T[j, b] - u0[l, b])
    # (2) Q = A^{-1} - L^{-T} P L^{-1}, P = sym(Phi(L' C')): the coefficient
    # of dA in dD_l (log|A| and the scale L^{-T} both move with A)
    N = np.zeros((k, k))
    for a in range(k):
        for b in range(k):
            acc = 0.0
            for t in range(k):
                acc += Ll[t, a] * C[b, t]
            N[a, b] = acc
    P = np.zeros((k, k))
    for a in range(k):
        P[a, a] = 0.5 * N[a, a]
        for b in range(a):
            P[a, b] = 0.5 * N[a, b]
            P[b, a] = 0.5 * N[a, b]
    Q = np.zeros((k, k))
    for a in range(k):
        for b in range(k):
            acc = 0.0
            for t in range(k):
                acc += Li[t, a] * Li[t, b]  # A^{-1} = L^{-T} L^{-1}
                for s in range(k):
                    acc -= Li[t, a] * P[t, s] * Li[s, b]
            Q[a, b] = acc
    # (3) rows at u0: the coefficient of du0 and the observed information H
    evec = avec.copy()
    H = np.zeros((k, k))
    for a in range(k):
        H[a, a] = 1.0
    ql = np.empty(k)
    for i in range(r0, r1):
        lqlam = 0.0
        for a in range(k):
            acc = 0.0
            for b in range(k):
                acc += Q[a, b] * zl[i, b]
            ql[a] = acc
            lqlam += zl[i, a] * acc
        for a in range(k):
            evec[a] += wd0[i] * lqlam * zl[i, a]
            for b in range(k):
                H[a, b] += h0[i] * zl[i, a] * zl[i, b]
    r = np.empty(k)
    _spd_solve(H, evec, r)
    # (4) explicit dA terms and the implicit du0 = -H^{-1} dF
    for i in range(r0, r1):
        lqlam = 0.0
        rl = 0.0
        for a in range(k):
            acc = 0.0
            for b in range(k):
                acc += Q[a, b] * zl[i, b]
            ql[a] = acc
            lqlam += zl[i, a] * acc
            rl += r[a] * zl[i, a]
        ceta = wd0[i] * lqlam - h0[i] * rl
        for c in range(p):
            g[nt + c] += ceta * X[i, c]
        for t in range(nt):
            a = th_a[t]
            b = th_b[t]
            g[t] += Z[i, a] * (ceta * u0[l, b] + 2.0 * w0[i] * ql[b] + s0[i] * r[b])




_DOC = """Per-level AGQ deviance terms (dev_lev[l], without the saturated constant)
    and, if want_grad, per-level gradients grad_lev[l] = d D_l / d(theta, beta)
    (theta first, lme4's order; then beta).

    Rows are sorted by level: level l owns rows start[l]:start[l+1].
    crow = split_constants(fam, link, y, wt), the rows' constant deviance parts.
    ri: one scalar term whose z is 1 on every row (a random intercept).
    base = X beta + offset; zl = Z Lambda; u0 (nl, k) the conditional modes;
    L (nl, k, k) the lower Cholesky factors of A at u0; nodes (nn, k) and logw
    (nn,) = log W_j + |z_j|^2 / 2. s0, h0, w0, wd0: per-row score, observed
    information, Fisher weight and its derivative in eta at u0 (gradient only).
    Levels are independent; every sum across levels is left to the caller
    (sum_levels, in a fixed order), so serial and parallel runs give
    bit-identical results.
    """


@njit(cache=True)
def agq_levels(fam, link, want_grad, ri, y, wt, crow, base, X, Z, zl, start, u0, L, nodes, logw,
               Lam, th_a, th_b, s0, h0, w0, wd0, dev_lev, grad_lev):
    for l in range(start.shape[0] - 1):
        _one_level(l, fam, link, want_grad, ri, y, wt, crow, base, X, Z, zl, start, u0, L, nodes, logw,
                   Lam, th_a, th_b, s0, h0, w0, wd0, dev_lev, grad_lev)


@njit(cache=True, parallel=True)
def agq_levels_parallel(fam, link, want_grad, ri, y, wt, crow, base, X, Z, zl, start, u0, L, nodes, logw,
                        Lam, th_a, th_b, s0, h0, w0, wd0, dev_lev, grad_lev):
    for l in prange(start.shape[0] - 1):
        _one_level(l, fam, link, want_grad, ri, y, wt, crow, base, X, Z, zl, start, u0, L, nodes, logw,
                   Lam, th_a, th_b, s0, h0, w0, wd0, dev_lev, grad_lev)


agq_levels.__doc__ = _DOC
agq_levels_parallel.__doc__ = "Parallel (prange over levels) twin of agq_levels; same numbers.\n\n" + _DOC


@njit(cache=True)
def sum_levels(dev_lev, grad_lev, want_grad, grad_out):
    """Sum the per-level terms in a fixed order (deterministic); returns the deviance."""
    nl = dev_lev.shape[0]
    tot = 0.0
    for l in range(nl):
        tot += dev_lev[l]
    if want_grad:
        m = grad_out.shape[0]
        for c in range(m):
            grad_out[c] = 0.0
        for l in range(nl):
            for c in range(m):
                grad_out[c] += grad_lev[l, c]
    return tot
