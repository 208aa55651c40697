"""The Tweedie density's series (Dunn & Smyth 2005) and its derivatives, per row.

For 1 < p < 2 and y > 0 the density is

    f(y; mu, phi, p) = (1 / y) A(y, phi, p) exp((y mu^(1-p) / (1-p) - mu^(2-p) / (2-p)) / phi),
    A = sum_{j >= 1} W_j,  log W_j = j z - lgamma(j + 1) - lgamma(-j alpha),
    alpha = (2 - p) / (1 - p) < 0,
    z = -alpha log y + alpha log(p - 1) - (1 - alpha) log phi - log(2 - p).

W_j is unimodal in j with its maximum near j* = y^(2-p) / (phi (2 - p)); the sum runs outward
from j* until the terms fall 37 nats (a factor 1e-16) below the largest. Besides log A the
kernel returns d log A / d log phi and d log A / dp (the W-weighted means of the terms'
derivatives), which the general engine's exact outer gradient needs. The parts of a term that
depend on p only (lgamma(j + 1) + lgamma(-j alpha) and psi(-j alpha)) are tabulated once per
call for every j the rows reach: a term then costs one exp.

:func:`tweedie_rows` is the family's log density and its derivatives in eta, log(phi) and
psi (p = 1 + plogis(psi)) in one pass over the rows.

Example
-------
>>> import numpy as np
>>> la, dphi, dp = tweedie_log_series(np.array([1.5]), np.array([1.0]), 1.5)
>>> bool(np.isfinite(la[0]))
True
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["tweedie_log_series", "tweedie_rows"]

_DROP = 37.0  # stop when a term is below the largest by this many nats (1e-16 relative)
_MAXTERMS = 200000  # per direction: a cap on every loop
_TABLE_MAX = 1 << 20  # the largest table of the p-only parts (rows beyond it compute theirs)


@njit(cache=True, inline="always")
def _digamma(x: float) -> float:
    """psi(x) for x > 0: the recurrence up to x >= 6, then the asymptotic series."""
    r = 0.0
    while x < 6.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    return r + math.log(x) - 0.5 / x - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (
        1.0 / 240 - f * (1.0 / 132)))))


@njit(cache=True)
def _p_part(j: float, alpha: float, dalpha: float):
    """Term j's parts that depend on p only: lgamma(j + 1) + lgamma(-j alpha), dalpha psi(-j alpha)."""
    return math.lgamma(j + 1.0) + math.lgamma(-j * alpha), dalpha * _digamma(-j * alpha)


@njit(cache=True, inline="always")
def _part(j: float, G: np.ndarray, D: np.ndarray, alpha: float, dalpha: float):
    k = int(j)
    if k < G.shape[0]:
        return G[k], D[k]
    return _p_part(j, alpha, dalpha)


@njit(cache=True)
def tweedie_log_series(y: np.ndarray, lphi: np.ndarray, p: float):
    """(log A, d log A / d log phi, d log A / dp) per row; 0 where y == 0 (f(0) has no series)."""
    n = y.shape[0]
    la = np.zeros(n)
    dphi = np.zeros(n)
    dp = np.zeros(n)
    alpha = (2.0 - p) / (1.0 - p)
    dalpha = 1.0 / ((1.0 - p) * (1.0 - p))
    lp1 = math.log(p - 1.0)
    l2p = math.log(2.0 - p)
    jtop = 1.0  # the largest central index: the tables cover the rows' sums
    for i in range(n):
        if y[i] > 0.0:
            jtop = max(jtop, math.exp((2.0 - p) * math.log(y[i]) - lphi[i]) / (2.0 - p))
    size = int(min(2.0 * jtop + 200.0, float(_TABLE_MAX)))
    G = np.zeros(size)
    D = np.zeros(size)
    for k in range(1, size):
        G[k], D[k] = _p_part(float(k), alpha, dalpha)
    for i in range(n):
        if y[i] <= 0.0:
            continue
        ly = math.log(y[i])
        z = -alpha * ly + alpha * lp1 - (1.0 - alpha) * lphi[i] - l2p
        # d z / dp, the j-independent part of d log W_j / dp (per unit j)
        dz_dp = -dalpha * ly + dalpha * lp1 + alpha / (p - 1.0) + dalpha * lphi[i] + 1.0 / (2.0 - p)
        jstar = math.exp((2.0 - p) * ly - lphi[i]) / (2.0 - p)
        j0 = max(1.0, math.floor(jstar + 0.5))
        lw0 = j0 * z - _part(j0, G, D, alpha, dalpha)[0]
        # weighted sums relative to the term at j0 (log-sum-exp with a fixed reference)
        s = 0.0
        sj = 0.0
        sp = 0.0
        lmax = lw0
        for direction in (1.0, -1.0):
            j = j0 if direction > 0 else j0 - 1.0
            for _ in range(_MAXTERMS):
                if j < 1.0:
                    break
                g, d = _part(j, G, D, alpha, dalpha)
                lw = j * z - g
                lmax = max(lmax, lw)
                w = math.exp(lw - lw0)
                s += w
                sj += w * j
                sp += w * j * (dz_dp + d)
                if lw < lmax - _DROP and (direction < 0 or j > jstar):
                    break
                j += direction
        la[i] = lw0 + math.log(s)
        dphi[i] = -(1.0 - alpha) * sj / s
        dp[i] = sp / s
    return la, dphi, dp


@njit(cache=True)
def tweedie_rows(y: np.ndarray, wt: np.ndarray, eta: np.ndarray, lphi: np.ndarray, p: float, la: np.ndarray,
                 dla_phi: np.ndarray, dla_p: np.ndarray, order: int):
    """Per row: l (weighted log density), and from ``order`` 1 its eta derivatives (e, ee), from
    2 also eee and the (value, d/deta, d2/deta2) of dl/dlog(phi) and dl/dpsi; arrays of length 0
    for the orders not asked. ``la, dla_phi, dla_p``: :func:`tweedie_log_series` at (y, phi, p)."""
    n = y.shape[0]
    m1 = n if order >= 1 else 0
    m2 = n if order >= 2 else 0
    l = np.empty(n)
    e = np.empty(m1)
    ee = np.empty(m1)
    eee = np.empty(m2)
    ph0, ph1, ph2 = np.empty(m2), np.empty(m2), np.empty(m2)
    ps0, ps1, ps2 = np.empty(m2), np.empty(m2), np.empty(m2)
    q1, q2 = 1.0 - p, 2.0 - p
    dp_dpsi = (p - 1.0) * (2.0 - p)  # d(1 + plogis(psi)) / dpsi
    for i in range(n):
        et = min(eta[i], 700.0)
        iphi = math.exp(-lphi[i])
        a = y[i] * math.exp(q1 * et)  # y mu^(1-p)
        b = math.exp(q2 * et)  # mu^(2-p)
        E = a / q1 - b / q2
        logy = math.log(y[i]) if y[i] > 0.0 else 0.0
        w = wt[i]
        l[i] = w * (E * iphi - logy + la[i])
        if order < 1:
            continue
        ge = (a - b) * iphi
        gee = (q1 * a - q2 * b) * iphi
        e[i] = w * ge
        ee[i] = w * gee
        if order < 2:
            continue
        eee[i] = w * (q1 * q1 * a - q2 * q2 * b) * iphi
        ph0[i] = w * (-E * iphi + dla_phi[i])
        ph1[i] = -w * ge
        ph2[i] = -w * gee
        Ep = a * (-et / q1 + 1.0 / (q1 * q1)) + b * (et / q2 - 1.0 / (q2 * q2))
        ps0[i] = w * dp_dpsi * (Ep * iphi + dla_p[i])
        ps1[i] = w * dp_dpsi * (-et * a + et * b) * iphi
        ps2[i] = w * dp_dpsi * (-a - q1 * et * a + b + q2 * et * b) * iphi
    return l, e, ee, eee, ph0, ph1, ph2, ps0, ps1, ps2
