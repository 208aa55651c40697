"""Conway-Maxwell-Poisson series per row: the normalizing constant, the moments the likelihood's
derivatives need, and the rate that gives a mean (glmmTMB's mean parametrization, Huang 2017).

P(Y = k) = exp(k l - nu lgamma(k + 1) - log Z(l, nu)), l = log(lambda). The sums run outward from
the mode (k ~ lambda^(1/nu)) until the terms fall 37 nats below the largest, with a cap on every
loop. ``cmp_moments`` returns log Z, E[Y], Var[Y], E[T] and Cov(Y, T) with T = lgamma(Y + 1);
``cmp_loglambda`` solves E[Y; l, nu] = mu for l by Newton's method (dE/dl = Var[Y]).

Example
-------
>>> import numpy as np
>>> lz, m, v, et, c = cmp_moments(np.log(np.array([2.0])), np.ones(1))  # nu = 1: Poisson(2)
>>> round(float(lz[0]), 12), round(float(m[0]), 12), round(float(v[0]), 12)
(2.0, 2.0, 2.0)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["cmp_moments", "cmp_loglambda"]

_DROP = 37.0
_MAXTERMS = 100000


@njit(cache=True)
def _row(l: float, nu: float):
    mode = math.floor(math.exp(l / nu))
    if mode > 1e7:
        mode = 1e7
    lt0 = mode * l - nu * math.lgamma(mode + 1.0)
    s0 = s1 = s2 = st = syt = 0.0
    lmax = lt0
    for direction in (1.0, -1.0):  # outward from the mode: up, then down from mode - 1
        k = mode if direction > 0 else mode - 1.0
        for _ in range(_MAXTERMS):
            if k < 0.0:
                break
            lg = math.lgamma(k + 1.0)
            lt = k * l - nu * lg
            if lt > lmax:
                lmax = lt
            w = math.exp(lt - lt0)
            s0 += w
            s1 += w * k
            s2 += w * k * k
            st += w * lg
            syt += w * k * lg
            if lt < lmax - _DROP:
                break
            k += direction
    m = s1 / s0
    et = st / s0
    return lt0 + math.log(s0), m, s2 / s0 - m * m, et, syt / s0 - m * et


@njit(cache=True)
def cmp_moments(l: np.ndarray, nu: np.ndarray):
    """(log Z, E[Y], Var[Y], E[T], Cov(Y, T)) per row at log-rate ``l`` and ``nu``."""
    n = l.shape[0]
    lz = np.empty(n)
    m = np.empty(n)
    v = np.empty(n)
    et = np.empty(n)
    c = np.empty(n)
    for i in range(n):
        lz[i], m[i], v[i], et[i], c[i] = _row(l[i], nu[i])
    return lz, m, v, et, c


@njit(cache=True)
def cmp_loglambda(logmu: np.ndarray, nu: np.ndarray):
    """log(lambda) per row with E[Y] = exp(logmu): Newton from the asymptotic
    lambda ~ (mu + (nu - 1) / (2 nu))^nu, steps capped at 2 and 100 iterations."""
    n = logmu.shape[0]
    out = np.empty(n)
    for i in range(n):
        mu = math.exp(logmu[i])
        a = mu + (nu[i] - 1.0) / (2.0 * nu[i])
        l = nu[i] * math.log(a) if a > 0.5 * mu else nu[i] * logmu[i]
        for _ in range(100):
            _lz, m, v, _et, _c = _row(l, nu[i])
            if not (v > 0.0 and m > 0.0):  # lambda so small (or large) that the moments underflow
                break
            # Newton on log E[Y] (smoother than E[Y] for small means): d log m / dl = v / m
            step = (math.log(m) - logmu[i]) * m / v
            if step > 2.0:
                step = 2.0
            elif step < -2.0:
                step = -2.0
            l -= step
            if abs(step) < 1e-13 * (1.0 + abs(l)):
                break
        out[i] = l
    return out
