"""Row passes of the Laplace gradient for one wide random-effect term, through BLAS.

A spatial term (``exp(pos + 0 | group)``: one column per position) has a single term with
hundreds of columns on a few levels. The compiled row passes (kernels/gradient.py) do
O(k^2) scalar work per row there; grouped by level the same sums are matrix products:

- leverage: d_i = U_i A_l^-1 U_i' for the rows i of level l: rowsum((U_l A_l^-1) * U_l);
- gradient: r_i = g_i u_l + s_i xi_l + 2 w_i (U_i A_l^-1), and Lambda's entry (a, b) gets
  sum_i z_ia r_ib: the lower triangle of Z_l' R_l;
- PIRLS passes (glm.pirls_pass, glm.pirls_pass_joint, crossprod.accumulate_re): the per-row
  working weights and residuals from the compiled kernel run with a zero-width term (eta's
  random part U u added to the offset first), then U_l' W U_l, U_l' W zw and U_l' W X_l.

Same arguments and results as the compiled passes (tests/test_covspatial.py compares them);
kernels/parallel.py sends a single term of at least ``WIDE_K`` columns here.

Example
-------
>>> WIDE_K
32
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas as _blas

__all__ = ["WIDE_K", "is_wide", "leverage_pass", "gradient_pass", "pirls_pass", "pirls_pass_joint",
           "accumulate_re"]

#: a single term with at least this many columns takes the BLAS passes
WIDE_K = 32


def is_wide(codes: np.ndarray, kdim: np.ndarray) -> bool:
    """One random-effect term with at least ``WIDE_K`` columns."""
    return codes.shape[0] == 1 and int(kdim[0]) >= WIDE_K


def _levels(codes: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(level, its rows) for the levels that have rows."""
    c = codes[0]
    order = np.argsort(c, kind="stable")
    levels, starts = np.unique(c[order], return_index=True)
    bounds = list(starts) + [c.shape[0]]
    return [(int(lv), order[bounds[t]:bounds[t + 1]]) for t, lv in enumerate(levels)]


def leverage_pass(wd, codes, zl, kcol, kdim, uoff, Ainv11, v, Utv) -> None:
    """v_i = wd_i U_i A^-1 U_i'; Utv += U'v (gradient.leverage_pass for one wide term)."""
    k = int(kdim[0])
    for lv, rows in _levels(codes):
        U = zl[rows, :k]
        d = np.einsum("ik,ik->i", U @ Ainv11[lv], U)
        vi = wd[rows] * d
        v[rows] = vi
        Utv[uoff[0] + lv * k: uoff[0] + (lv + 1) * k] += vi @ U


def gradient_pass(s, w, hh, v, X, z, codes, zl, kcol, kdim, uoff, u, xi, xxi, Ainv11,
                  th_a, th_b, gbeta, gtheta, with_beta) -> None:
    """dD/dbeta (if with_beta) and dD/d(Lambda's entries) added to gbeta and gtheta
    (gradient.gradient_pass for one wide term)."""
    k = int(kdim[0])
    G = np.zeros((k, k))
    g_all = np.empty(s.shape[0])
    for lv, rows in _levels(codes):
        o = uoff[0] + lv * k
        U = zl[rows, :k]
        ul, xil = u[o:o + k], xi[o:o + k]
        g = -2.0 * s[rows] + v[rows] - hh[rows] * (U @ xil + xxi[rows])
        g_all[rows] = g
        R = np.outer(g, ul) + np.outer(s[rows], xil) + (2.0 * w[rows])[:, None] * (U @ Ainv11[lv])
        G += _zt_times(z[rows, :k], R)
    if with_beta:
        gbeta += X.T @ g_all
    gtheta += G[th_a, th_b]


def _gram(U: np.ndarray, w: np.ndarray) -> np.ndarray:
    """U' diag(w) U. With w >= 0 (Fisher weights) a symmetric rank-n update of
    sqrt(w) U by BLAS syrk (half the flops of the general product); otherwise
    (observed information can be negative) the general product."""
    if w.size and float(w.min()) >= 0.0:
        B = np.sqrt(w)[:, None] * U
        G = _blas.dsyrk(1.0, B, trans=1, lower=1)  # B'B in the lower triangle
        iu = np.triu_indices(G.shape[0], 1)
        G[iu] = G.T[iu]
        return G
    return U.T @ (w[:, None] * U)


def _zt_times(z: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Z' R for one level's rows; a scatter of R's rows when each row of Z has at
    most one nonzero (a term over positions: ``exp(pos + 0 | g)``), not a product."""
    nz = np.count_nonzero(z, axis=1)
    if np.all(nz <= 1):
        col = np.argmax(z != 0.0, axis=1)
        val = z[np.arange(z.shape[0]), col]
        G = np.zeros((z.shape[1], R.shape[1]))
        np.add.at(G, col, val[:, None] * R)
        return G
    return z.T @ R


def _re_part(codes, zl, kdim, uoff, u) -> np.ndarray:
    """(U u)_i for one wide term."""
    k = int(kdim[0])
    out = np.zeros(zl.shape[0])
    for lv, rows in _levels(codes):
        o = uoff[0] + lv * k
        out[rows] = zl[rows, :k] @ u[o:o + k]
    return out


def _no_re(codes, kdim):
    """A zero-width stand-in for the term (the compiled row pass then does the per-row work only)."""
    k0 = np.zeros_like(kdim)
    return k0, np.zeros((0, 0, 0)), np.zeros(0)


def accumulate_re(w, zw, codes, zl, kcol, kdim, uoff, pairidx, poff, A11, V21, A22, rhs) -> None:
    """A11 += U_l' W U_l and rhs += U_l' W zw per level (crossprod.accumulate_re for one wide term)."""
    k = int(kdim[0])
    for lv, rows in _levels(codes):
        U = zl[rows, :k]
        wr = w[rows]
        A11[lv] += _gram(U, wr)
        rhs[uoff[0] + lv * k: uoff[0] + (lv + 1) * k] += U.T @ (wr * zw[rows])


def pirls_pass(fam, link, y, wt, base, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
               eta, mu_out, w_out, r_out, A11, V21, A22, rhs) -> float:
    """glm.pirls_pass for one wide term (buffers zeroed by the caller)."""
    from interlace.kernels import glm as _kg

    ure = _re_part(codes, zl, kdim, uoff, u)
    k0, a0, r0 = _no_re(codes, kdim)
    dev = _kg.pirls_pass(fam, link, y, wt, base + ure, codes, zl, kcol, k0, uoff, u, pairidx, poff,
                         eta, mu_out, w_out, r_out, a0, V21, A22, r0)
    accumulate_re(w_out, eta - base + r_out, codes, zl, kcol, kdim, uoff, pairidx, poff, A11, V21, A22, rhs)
    return float(dev)


def pirls_pass_joint(fam, link, y, wt, X, beta, offset, codes, zl, kcol, kdim, uoff, u, pairidx, poff,
                     eta, mu_out, w_out, r_out, A11, V21, A22, rhs, UtWX, XtWX, xrhs) -> float:
    """glm.pirls_pass_joint for one wide term (buffers zeroed by the caller)."""
    from interlace.kernels import glm as _kg

    k = int(kdim[0])
    ure = _re_part(codes, zl, kdim, uoff, u)
    k0, a0, r0 = _no_re(codes, kdim)
    # eta = offset + U u + X beta; the kernel's X'W zw misses W U u (its offset holds it)
    dev = _kg.pirls_pass_joint(fam, link, y, wt, X, beta, offset + ure, codes, zl, kcol, k0, uoff, u, pairidx,
                               poff, eta, mu_out, w_out, r_out, a0, V21, A22, r0, np.zeros((0, X.shape[1])),
                               XtWX, xrhs)
    xrhs += X.T @ (w_out * ure)
    wz = w_out * (eta - offset + r_out)
    for lv, rows in _levels(codes):
        U = zl[rows, :k]
        wr = w_out[rows]
        o = uoff[0] + lv * k
        A11[lv] += _gram(U, wr)
        rhs[o:o + k] += U.T @ wz[rows]
        UtWX[o:o + k] += U.T @ (wr[:, None] * X[rows])
    return float(dev)
