"""Gaussian identity: the profiled ML deviance of a linear mixed model, as
lmer(REML = FALSE) computes it. beta and sigma are profiled out, so the
optimizer sees theta only.

    D(theta) = log|L|^2 - sum(log w) + n (1 + log(2 pi pwrss / n))
"""

from __future__ import annotations

import numpy as np

from interlace.model_frame import ModelFrame
from interlace.objective.laplace import solve_joint
from interlace.objective.predictor import BlockedCholesky, ReStructure


class LMMObjective:
    """Profiled ML deviance of theta for a (prior-weighted) LMM."""

    def __init__(self, mf: ModelFrame) -> None:
        self.mf = mf
        self.re = ReStructure(mf.terms)
        self.chol = BlockedCholesky(self.re)
        self.X = np.ascontiguousarray(mf.X, dtype=np.float64)
        self.y = np.ascontiguousarray(mf.y, dtype=np.float64)
        self.w = np.ascontiguousarray(mf.weights, dtype=np.float64)
        self.offset = np.ascontiguousarray(mf.offset, dtype=np.float64)
        self.n = self.y.shape[0]
        self.sum_log_w = float(np.sum(np.log(self.w)))
        self.nfev = 0
        self.ngev = 0
        self.pirls_iters = 0
        self.pirls_converged = True

    def deviance(self, theta: np.ndarray) -> float:
        self.nfev += 1
        re = self.re
        zl = re.zlambda(theta)
        zw = self.y - self.offset
        u, beta, RZX, RX = solve_joint(re, self.chol, self.X, self.w, zw, zl)
        eta = re.eta_re(zl, u, self.X @ beta + self.offset)
        res = self.y - eta
        pwrss = float(np.sum(self.w * res * res) + u @ u)
        n = self.n
        self.u, self.beta, self.RX, self.pwrss, self.eta = u, beta, RX, pwrss, eta
        self._zl, self._res = zl, res
        self.last_logdet = self.chol.logdet
        return self.chol.logdet - self.sum_log_w + n * (1.0 + np.log(2.0 * np.pi * pwrss / n))

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """Exact dD/dtheta at the state of the last deviance(theta) call.

        d log|L|^2 = 2 tr(A^{-1} U'W dU); d pwrss = -2 sum w r (dU u) by the
        envelope theorem over (u, beta); both are sums over rows."""
        from interlace.kernels import gradient as kgr

        self.ngev += 1
        re, n = self.re, self.n
        Ainv11, Ainv21, Ainv22 = self.chol.selected_inverse_pairs()
        s = (n / self.pwrss) * self.w * self._res
        zero = np.zeros(n)
        gb = np.zeros(self.X.shape[1])
        gt = np.zeros(re.ntheta)
        kgr.gradient_pass(s, self.w, zero, zero, self.X, re.z, re.codes, self._zl, re.kcol, re.kdim, re.uoff,
                          re.pairidx, re.poff, self.u, np.zeros(re.q), zero, Ainv11, Ainv21, Ainv22,
                          re.theta_term, re.theta_a, re.theta_b, gb, gt, False)
        return gt

    @property
    def sigma2(self) -> float:
        return self.pwrss / self.n
