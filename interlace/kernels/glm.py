"""Per-row GLM kernels for the built-in family/link pairs (the fast path).

ndarray in, ndarray out; no imports from the rest of the package. Every
function returns sums (or fills per-row arrays) so that the same kernel can
run on a chunk of rows and the results be added.

Family codes (the families' ``kernel_code``): 0 binomial, 1 poisson, 2 gaussian.
Link codes:   0 logit, 1 probit, 2 cloglog, 3 log, 4 identity.
Clamping follows R's C code for make.link/family (logit_linkinv, etc.), so
mu never reaches 0 or 1 and exp() never overflows.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from interlace.kernels.crossprod import add_row_re, add_row_x, mirror_blocks, symmetrize_lower

LINK_CODES = {"logit": 0, "probit": 1, "cloglog": 2, "log": 3, "identity": 4}

EPS = 2.220446049250313e-16
INVEPS = 1.0 / EPS
LOGIT_THRESH = 30.0
PROBIT_THRESH = 8.125890664701906  # -qnorm(DBL_EPSILON)
EXP_MAX = 700.0  # exp(700) is finite; beyond that clamp (lme4/R would overflow)
LN_SQRT_2PI = 0.9189385332046728


@njit(cache=True, inline="always")
def _linkinv_mueta(link: int, eta: float):
    """Return (mu, dmu/deta) with R's clamping."""
    if link == 0:  # logit
        if eta < -LOGIT_THRESH:
            t = EPS
        elif eta > LOGIT_THRESH:
            t = INVEPS
        else:
            t = math.exp(eta)
        mu = t / (1.0 + t)
        if eta > LOGIT_THRESH or eta < -LOGIT_THRESH:
            d = EPS
        else:
            op = 1.0 + t
            d = t / (op * op)
        return mu, d
    elif link == 1:  # probit
        e = min(max(eta, -PROBIT_THRESH), PROBIT_THRESH)
        mu = 0.5 * math.erfc(-e / math.sqrt(2.0))
        d = max(math.exp(-0.5 * eta * eta - LN_SQRT_2PI), EPS)
        return mu, d
    elif link == 2:  # cloglog
        mu = max(min(-math.expm1(-math.exp(min(eta, EXP_MAX))), 1.0 - EPS), EPS)
        e = min(eta, EXP_MAX)
        d = max(math.exp(e) * math.exp(-math.exp(e)), EPS)
        return mu, d
    elif link == 3:  # log
        mu = max(math.exp(min(eta, EXP_MAX)), EPS)
        return mu, mu
    else:  # identity
        return eta, 1.0


@njit(cache=True, inline="always")
def _ylogy(y: float, mu: float) -> float:
    return y * math.log(y / mu) if y > 0.0 else 0.0


@njit(cache=True, inline="always")
def _variance_devres(fam: int, y: float, mu: float, wt: float):
    """Return (V(mu), weighted unit deviance)."""
    if fam == 0:
        v = mu * (1.0 - mu)
        dr = 2.0 * wt * (_ylogy(y, mu) + _ylogy(1.0 - y, 1.0 - mu))
        return v, dr
    elif fam == 1:
        dr = 2.0 * wt * (_ylogy(y, mu) - (y - mu))
        return mu, dr
    else:
        r = y - mu
        return 1.0, wt * r * r


@njit(cache=True, inline="always")
def _row_working(fam, link, yi, wti, etai, i, mu_out, w_out, r_out):
    """Row i at eta: store mu, the working weight and residual; return
    (w, r, weighted unit deviance)."""
    if fam == 0 and link == 0 and -LOGIT_THRESH <= etai <= LOGIT_THRESH:
        # canonical logit: mu_eta = V(mu) = t / (1 + t)^2, so w = wt V and
        # r = (y - mu) / V; two divisions instead of five, and a Bernoulli
        # row needs one log (the same numbers to rounding)
        t = math.exp(etai)
        inv = 1.0 / (1.0 + t)
        mu = t * inv
        v = mu * inv
        wi = wti * v
        ri = (yi - mu) / v
        if yi == 1.0:
            dr = -2.0 * wti * math.log(mu)
        elif yi == 0.0:
            dr = -2.0 * wti * math.log(inv)
        else:
            dr = 2.0 * wti * (_ylogy(yi, mu) + _ylogy(1.0 - yi, inv))
        mu_out[i] = mu
        w_out[i] = wi
        r_out[i] = ri
        return wi, ri, dr
    mu, d = _linkinv_mueta(link, etai)
    v, dr = _variance_devres(fam, yi, mu, wti)
    wi = wti * d * d / v
    ri = (yi - mu) / d
    mu_out[i] = mu
    w_out[i] = wi
    r_out[i] = ri
    return wi, ri, dr


@njit(cache=True)
def glm_working(fam, link, y, wt, eta, mu, w, r):
    """Fill mu, the working weights w = wt mu_eta^2 / V and the working
    residuals r = (y - mu) / mu_eta; return the sum of deviance residuals."""
    n = y.shape[0]
    dev = 0.0
    for i in range(n):
        dev += _row_working(fam, link, y[i], wt[i], eta[i], i, mu, w, r)[2]
    return dev


@njit(cache=True)
def glm_deviance(fam, link, y, wt, eta):
    """Sum of deviance residuals at eta (no per-row output)."""
    dev = 0.0
    for i in range(y.shape[0]):
        m, d = _linkinv_mueta(link, eta[i])
        v, dr = _variance_devres(fam, y[i], m, wt[i])
        dev += dr
    return dev


@njit(cache=True, nogil=True)
def glm_score_terms(fam, link, y, wt, eta, s, h, wd):
    """Per-row derivatives of the log-likelihood in eta (scale 1):
    s = d loglik / d eta, h = -d^2 loglik / d eta^2 at the Fisher weights'
    definition (canonical links: equal), and wd = d w / d eta, the derivative
    of the working weight, needed by the gradient of log|L|^2.
    Only canonical links are handled exactly here (logit, log, identity)."""
    for i in range(y.shape[0]):
        m, d = _linkinv_mueta(link, eta[i])
        if fam == 0:
            v = m * (1.0 - m)
            s[i] = wt[i] * (y[i] - m)
            h[i] = wt[i] * v
            # w = wt mu (1 - mu) -> dw/deta = wt (1 - 2 mu) v
            wd[i] = wt[i] * (1.0 - 2.0 * m) * v
        elif fam == 1:
            s[i] = wt[i] * (y[i] - m)
            h[i] = wt[i] * m
            wd[i] = wt[i] * m
        else:
            s[i] = wt[i] * (y[i] - m)
            h[i] = wt[i]
            wd[i] = 0.0
        if eta[i] > LOGIT_THRESH and fam == 0 or eta[i] < -LOGIT_THRESH and fam == 0:
            wd[i] = 0.0


@njit(cache=True, inline="always")
def row_eta(i, base, codes, zl, kcol, kdim, uoff, u):
    """eta_i = base_i + the row's random-effects contribution (U u)_i."""
    acc = base
    for j in range(codes.shape[0]):
        c = codes[j, i]
        if c < 0:  # a level unseen in fitting (prediction): no random effect
            continue
        k = kdim[j]
        o = uoff[j] + c * k
        c0 = kcol[j]
        for a in range(k):
            acc += zl[i, c0 + a] * u[o + a]
    return acc


@njit(cache=True)
def linear_predictor(base, codes, zl, kcol, kdim, uoff, u, eta):
    """eta = base + sum over terms of zl[i, term cols] . u[level block]."""
    for i in range(base.shape[0]):
        eta[i] = row_eta(i, base[i], codes, zl, kcol, kdim, uoff, u)
    return eta


@njit(cache=True, nogil=True)
def eta_deviance(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, eta):
    """Fused: eta = base + Z Lambda u, then the sum of deviance residuals."""
    dev = 0.0
    for i in range(y.shape[0]):
        acc = row_eta(i, base[i], codes, zl, kcol, kdim, uoff, u)
        eta[i] = acc
        mu, d = _linkinv_mueta(link, acc)
        v, dr = _variance_devres(fam, y[i], mu, wt[i])
        dev += dr
    return dev


@njit(cache=True, nogil=True)
def pirls_pass(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
               eta, mu_out, w_out, r_out, A11, V21, A22, rhs):
    """Fused PIRLS row pass at u: eta, mu, working weights and residuals, the
    deviance, and U'WU (blocks) and U'W(Uu + r) summed in the same loop.
    Output buffers must be zeroed by the caller. Returns sum(dev.resids)."""
    m = codes.shape[0]
    q0 = uoff[1] if m > 1 else 0
    dev = 0.0
    for i in range(y.shape[0]):
        acc = row_eta(i, base[i], codes, zl, kcol, kdim, uoff, u)
        eta[i] = acc
        wi, ri, dr = _row_working(fam, link, y[i], wt[i], acc, i, mu_out, w_out, r_out)
        dev += dr
    # the cross-products in a second sweep over the stored w, eta and r (the
    # same numbers in the same order; two lean loops run faster than one)
    for i in range(y.shape[0]):
        wi = w_out[i]
        if wi != 0.0:
            add_row_re(i, wi, wi * (eta[i] - base[i] + r_out[i]), codes, zl, kcol, kdim, uoff, pairidx, poff, q0,
                       A11, V21, A22, rhs)
    mirror_blocks(A11)
    return dev


@njit(cache=True, nogil=True)
def pirls_pass_joint(fam, link, y, wt, X, beta, offset, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
                     eta, mu_out, w_out, r_out, A11, V21, A22, rhs, UtWX, XtWX, xrhs):
    """Fused nAGQ = 0 PIRLS pass at (u, beta): like pirls_pass, plus the
    fixed-effects parts U'WX, X'WX and X'W zw of the joint system, with the
    working response zw = eta - offset + r. Buffers zeroed by the caller."""
    m = codes.shape[0]
    p = X.shape[1]
    q0 = uoff[1] if m > 1 else 0
    dev = 0.0
    for i in range(y.shape[0]):
        xb = offset[i]
        for c in range(p):
            xb += X[i, c] * beta[c]
        acc = row_eta(i, xb, codes, zl, kcol, kdim, uoff, u)
        eta[i] = acc
        wi, ri, dr = _row_working(fam, link, y[i], wt[i], acc, i, mu_out, w_out, r_out)
        dev += dr
    # the cross-products in later sweeps over the stored w, eta and r: the
    # same numbers in the same row order, but lean loops run faster than one
    # fat one (registers and the compiler's scheduling)
    for i in range(y.shape[0]):
        wi = w_out[i]
        if wi != 0.0:
            add_row_re(i, wi, wi * (eta[i] - offset[i] + r_out[i]), codes, zl, kcol, kdim, uoff, pairidx, poff,
                       q0, A11, V21, A22, rhs)
    mirror_blocks(A11)
    for i in range(y.shape[0]):
        wi = w_out[i]
        if wi != 0.0:
            add_row_x(i, wi, wi * (eta[i] - offset[i] + r_out[i]), X, codes, zl, kcol, kdim, uoff, UtWX, XtWX,
                      xrhs)
    symmetrize_lower(XtWX)
    return dev
