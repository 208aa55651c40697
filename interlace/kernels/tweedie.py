"""The Tweedie density's series (Dunn & Smyth 2005) and its derivatives, per row.

For 1 < p < 2 and y > 0 the density is

    f(y; mu, phi, p) = (1 / y) A(y, phi, p) exp((y mu^(1-p) / (1-p) - mu^(2-p) / (2-p)) / phi),
    A = sum_{j >= 1} W_j,  log W_j = j z - lgamma(j + 1) - lgamma(-j alpha),
    alpha = (2 - p) / (1 - p) < 0,
    z = -alpha log y + alpha log(p - 1) - (1 - alpha) log phi - log(2 - p).

W_j is unimodal in j with its maximum near j* = y^(2-p) / (phi (2 - p)); the sum runs outward
from j* until the terms fall 37 nats (a factor 1e-16) below the largest. Besides log A the
kernel returns d log A / d log phi and d log A / dp (the W-weighted means of the terms'
derivatives), which the general engine's exact outer gradient needs.

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

__all__ = ["tweedie_log_series"]

_DROP = 37.0  # stop when a term is below the largest by this many nats (1e-16 relative)
_MAXTERMS = 200000  # per direction: a cap on every loop


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
def _row(y: float, lphi: float, p: float):
    alpha = (2.0 - p) / (1.0 - p)
    dalpha = 1.0 / ((1.0 - p) * (1.0 - p))
    ly = math.log(y)
    lp1 = math.log(p - 1.0)
    z = -alpha * ly + alpha * lp1 - (1.0 - alpha) * lphi - math.log(2.0 - p)
    # d z / dp, and the j-independent part of d log W_j / dp (per unit j)
    dz_dp = -dalpha * ly + dalpha * lp1 + alpha / (p - 1.0) + dalpha * lphi + 1.0 / (2.0 - p)
    jstar = math.exp((2.0 - p) * ly - lphi) / (2.0 - p)
    j0 = max(1.0, math.floor(jstar + 0.5))
    lw0 = j0 * z - math.lgamma(j0 + 1.0) - math.lgamma(-j0 * alpha)
    # weighted sums relative to the term at j0 (log-sum-exp with a fixed reference)
    s = 0.0
    sphi = 0.0
    sp = 0.0
    lmax = lw0
    j = j0
    lf0 = math.lgamma(j0 + 1.0)
    lf = lf0  # lgamma(j + 1), updated by log(j) steps instead of a call per term
    for _ in range(_MAXTERMS):
        lw = j * z - lf - math.lgamma(-j * alpha)
        if lw > lmax:
            lmax = lw
        w = math.exp(lw - lw0)
        s += w
        sphi += w * (-j * (1.0 - alpha))
        sp += w * (j * dz_dp + j * dalpha * _digamma(-j * alpha))
        if lw < lmax - _DROP and j > jstar:
            break
        j += 1.0
        lf += math.log(j)
    j = j0 - 1.0
    lf = lf0 - math.log(j0)
    for _ in range(_MAXTERMS):
        if j < 1.0:
            break
        lw = j * z - lf - math.lgamma(-j * alpha)
        if lw > lmax:
            lmax = lw
        w = math.exp(lw - lw0)
        s += w
        sphi += w * (-j * (1.0 - alpha))
        sp += w * (j * dz_dp + j * dalpha * _digamma(-j * alpha))
        if lw < lmax - _DROP:
            break
        lf -= math.log(j)
        j -= 1.0
    return lw0 + math.log(s), sphi / s, sp / s


@njit(cache=True)
def tweedie_log_series(y: np.ndarray, lphi: np.ndarray, p: float):
    """(log A, d log A / d log phi, d log A / dp) per row; 0 where y == 0 (f(0) has no series)."""
    n = y.shape[0]
    la = np.zeros(n)
    dphi = np.zeros(n)
    dp = np.zeros(n)
    for i in range(n):
        if y[i] > 0.0:
            a, b, c = _row(y[i], lphi[i], p)
            la[i] = a
            dphi[i] = b
            dp[i] = c
    return la, dphi, dp
