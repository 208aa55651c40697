"""Gaussian identity: the profiled deviance of a linear mixed model, as lmer
computes it. beta and sigma are profiled out, so the optimizer sees theta only.

    ML   (REML = FALSE):  D(theta) = log|L|^2 - sum(log w) + n (1 + log(2 pi pwrss / n))
    REML (REML = TRUE):   D(theta) = log|L|^2 + log|RX|^2 - sum(log w)
                                     + (n - p) (1 + log(2 pi pwrss / (n - p)))

(lme4's lmer_Deviance; L the Cholesky factor of A = U'WU + I, RX that of the
Schur complement X'WX - RZX'RZX.) The gradient in theta is exact: the ML
part is a sum over rows (kernels/gradient.py); the REML term log|RX|^2 adds
one more row pass (kernels/reml.py).

The interface the optimizer and the result builder use: ``deviance(theta)``,
``gradient(theta)`` (at the state of the last deviance call), and the state
``u``, ``beta``, ``RX``, ``pwrss``, ``eta``, ``sigma2``; ``deviance_varpar``
is the unprofiled deviance in (theta, sigma) that lmerTest differentiates.

Example
-------
>>> import interlace
>>> from interlace.model_frame import build_model_frame
>>> from interlace.families import get_family
>>> df = interlace.datasets.load("sleepstudy")
>>> mf = build_model_frame("Reaction ~ Days + (Days | Subject)", df, family=get_family("gaussian"))
>>> obj = LMMObjective(mf, reml=True)
>>> round(obj.deviance(obj.re.theta_start()), 2) > 1743.6
True
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from interlace.model_frame import ModelFrame
from interlace.objective.laplace import solve_joint
from interlace.objective.predictor import BlockedCholesky, ReStructure


class LMMObjective:
    """Profiled ML (``reml=False``) or REML (``reml=True``) deviance of theta
    for a (prior-weighted) LMM."""

    def __init__(self, mf: ModelFrame, reml: bool = False) -> None:
        self.mf = mf
        self.reml = bool(reml)
        self.re = ReStructure(mf.terms)
        self.chol = BlockedCholesky(self.re)
        self.X = np.ascontiguousarray(mf.X, dtype=np.float64)
        self.y = np.ascontiguousarray(mf.y, dtype=np.float64)
        self.w = np.ascontiguousarray(mf.weights, dtype=np.float64)
        self.offset = np.ascontiguousarray(mf.offset, dtype=np.float64)
        self.n = self.y.shape[0]
        self.p = self.X.shape[1]
        if self.reml and self.n <= self.p:
            raise ValueError(f"REML needs more observations ({self.n}) than fixed effects ({self.p})")
        self.sum_log_w = float(np.sum(np.log(self.w)))
        self.nfev = 0
        self.ngev = 0
        self.pirls_iters = 0
        self.pirls_converged = True

    @property
    def df_resid(self) -> int:
        """n for ML, n - p for REML: the divisor of pwrss in sigma^2."""
        return self.n - self.p if self.reml else self.n

    def _solve(self, theta: np.ndarray) -> None:
        re = self.re
        zl = re.zlambda(theta)
        zw = self.y - self.offset
        u, beta, RZX, RX = solve_joint(re, self.chol, self.X, self.w, zw, zl)
        eta = re.eta_re(zl, u, self.X @ beta + self.offset)
        res = self.y - eta
        self.u, self.beta, self.RZX, self.RX, self.eta = u, beta, RZX, RX, eta
        self.pwrss = float(np.sum(self.w * res * res) + u @ u)
        self._zl, self._res = zl, res
        self.last_logdet = self.chol.logdet
        self.logdet_rx = 2.0 * float(np.sum(np.log(np.diag(RX)))) if self.p else 0.0

    def deviance(self, theta: np.ndarray) -> float:
        """The profiled deviance (REML criterion when ``reml``) at theta."""
        self.nfev += 1
        self._solve(np.asarray(theta, dtype=np.float64))
        nd = self.df_resid
        dev = self.chol.logdet - self.sum_log_w + nd * (1.0 + np.log(2.0 * np.pi * self.pwrss / nd))
        if self.reml:
            dev += self.logdet_rx
        return float(dev)

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """Exact dD/dtheta at the state of the last deviance(theta) call.

        d log|L|^2 = 2 tr(A^{-1} U'W dU); d pwrss = -2 sum w r (dU u) by the
        envelope theorem over (u, beta); for REML d log|RX|^2 as in
        kernels/reml.py. All are sums over rows."""
        self.ngev += 1
        return self._theta_gradient(self.df_resid / self.pwrss)

    def _theta_gradient(self, pwrss_factor: float) -> np.ndarray:
        """d(log|L|^2 + pwrss_factor * pwrss [+ log|RX|^2]) / dtheta at the current state."""
        from interlace.kernels import gradient as kgr

        re, n = self.re, self.n
        Ainv11, Ainv21, Ainv22 = self.chol.selected_inverse_pairs()
        s = pwrss_factor * self.w * self._res
        zero = np.zeros(n)
        gb = np.zeros(self.p)
        gt = np.zeros(re.ntheta)
        kgr.gradient_pass(s, self.w, zero, zero, self.X, re.z, re.codes, self._zl, re.kcol, re.kdim, re.uoff,
                          re.pairidx, re.poff, self.u, np.zeros(re.q), zero, Ainv11, Ainv21, Ainv22,
                          re.theta_term, re.theta_a, re.theta_b, gb, gt, False)
        if self.reml and self.p:
            from interlace.kernels.reml import reml_logdet_rx_grad

            C = np.ascontiguousarray(self.chol.solve_Lt(self.RZX))  # A^{-1} U'WX
            Sinv = self.rx_inverse()
            reml_logdet_rx_grad(self.w, self.X, re.z, re.codes, self._zl, re.kcol, re.kdim, re.uoff, C, Sinv,
                                re.theta_term, re.theta_a, re.theta_b, gt)
        return gt

    def rx_inverse(self) -> np.ndarray:
        """(RX RX')^{-1} at the current state (the unscaled vcov of beta)."""
        Li = sla.solve_triangular(self.RX, np.eye(self.p), lower=True, check_finite=False)
        return Li.T @ Li

    def deviance_varpar(self, theta: np.ndarray, sigma: float) -> float:
        """The deviance with sigma not profiled out (lmerTest's devfun_vp):
        log|L|^2 - sum(log w) + pwrss / sigma^2 + n log(2 pi sigma^2), and for
        REML + log|RX|^2 - p log(2 pi sigma^2). Leaves the state at theta."""
        self._solve(np.asarray(theta, dtype=np.float64))
        s2 = sigma * sigma
        dev = self.chol.logdet - self.sum_log_w + self.pwrss / s2 + self.n * np.log(2.0 * np.pi * s2)
        if self.reml:
            dev += self.logdet_rx - self.p * np.log(2.0 * np.pi * s2)
        return float(dev)

    def gradient_varpar(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """Exact gradient of :meth:`deviance_varpar` in (theta, sigma)."""
        self._solve(np.asarray(theta, dtype=np.float64))
        s2 = sigma * sigma
        gt = self._theta_gradient(1.0 / s2)
        nd = self.df_resid
        gs = -2.0 * self.pwrss / (s2 * sigma) + 2.0 * nd / sigma
        return np.append(gt, gs)

    @property
    def sigma2(self) -> float:
        """Profiled residual variance: pwrss / n (ML) or pwrss / (n - p) (REML)."""
        return self.pwrss / self.df_resid
