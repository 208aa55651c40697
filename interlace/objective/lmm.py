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
        self.last_logdet = self.chol.logdet
        return self.chol.logdet - self.sum_log_w + n * (1.0 + np.log(2.0 * np.pi * pwrss / n))

    @property
    def sigma2(self) -> float:
        return self.pwrss / self.n
