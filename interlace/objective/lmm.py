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
from scipy.linalg.lapack import dpotrf as _dpotrf, dpotri as _dpotri

from interlace.model_frame import ModelFrame
from interlace.objective.laplace import solve_joint
from interlace.objective.protocol import ParamLayout
from interlace.objective.predictor import BlockedCholesky, ReStructure


#: largest dense part (levels of all but the largest term, + p + 1) factored densely
_CROSSED_MAX_DENSE = 3000
#: below this |theta_j| the crossed gradient sums over W instead of using Sinv's diagonal
#: ((1 - Sinv_cc) / theta_j loses ~eps / theta_j^2 relative to cancellation)
_DIAG_IDENTITY_MIN = 1e-3


class LMMObjective:
    """Profiled ML (``reml=False``) or REML (``reml=True``) deviance of theta
    for a (prior-weighted) LMM."""

    def __init__(self, mf: ModelFrame, reml: bool = False) -> None:
        self.mf = mf
        self.reml = bool(reml)
        self.re = ReStructure(mf.terms)
        self._chol = BlockedCholesky(self.re)
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
        self._stale = False  # row-path state (factor, eta) behind the fast path's theta
        self._theta = None
        self._grad = None
        # One grouping factor (one term, or several on the same factor as
        # `(x || g)` makes): A is block diagonal, so evaluations run on per-level
        # cross-products accumulated once (kernels/lmm_single.py). Terms on one
        # factor are merged into one term whose Lambda is block diagonal.
        terms = mf.terms
        self._fast = self.re.m == 1 or all(
            t.nlevels == terms[0].nlevels and np.array_equal(t.codes, terms[0].codes) for t in terms[1:])
        self._merged = self._fast and self.re.m > 1  # u in the merged layout until synced
        if self._fast:
            self._init_fast()
        self._crossed = (not self._fast) and self._crossed_ok()
        if self._crossed:
            self._init_crossed()

    def _init_fast(self) -> None:
        from interlace.kernels.lmm_single import lmm1_crossprods

        re = self.re
        nl, k, p = int(re.nlev[0]), int(re.kcol[-1]), self.p
        self._M = np.zeros((nl, k, k))
        self._ZtX = np.zeros((nl, k, p))
        self._Zty = np.zeros((nl, k))
        self._XtX = np.zeros((p, p))
        self._Xty = np.zeros(p)
        # The deviance is the same for y and y - X b (beta absorbs X b); taking the
        # weighted least-squares residuals keeps y'Wy - |c|^2 (pwrss) free of the
        # cancellation that would put rounding noise into the deviance.
        yc = self.y - self.offset
        self._beta0 = np.zeros(p)
        if p:
            sw = np.sqrt(self.w)
            self._beta0 = np.linalg.lstsq(self.X * sw[:, None], yc * sw, rcond=None)[0]
            yc = yc - self.X @ self._beta0
        self._yty = float(lmm1_crossprods(re.codes[0], re.z, self.X, yc, self.w, self._M,
                                          self._ZtX, self._Zty, self._XtX, self._Xty))
        self._L = np.zeros((nl, k, k))
        self._RZX1 = np.zeros((nl, k, p))
        self._cu = np.zeros((nl, k))
        # theta_t's entry of the merged Lambda: its term's columns start at kcol
        off = re.kcol[re.theta_term]
        self._ta = np.ascontiguousarray(off + re.theta_a, dtype=np.int64)
        self._tb = np.ascontiguousarray(off + re.theta_b, dtype=np.int64)

    def _eval_fast(self, theta: np.ndarray) -> float:
        from interlace.kernels.lmm_single import lmm1_eval

        re = self.re
        u = np.empty(re.q)
        beta = np.empty(self.p)
        RX = np.empty((self.p, self.p))
        grad = np.empty(re.nentries)  # in Lambda's entries; re.chain maps to theta
        dev, pwrss, ld_a, ld_x = lmm1_eval(re.entries(theta), self._ta, self._tb, self._M, self._ZtX, self._Zty, self._XtX,
                                           self._Xty, self._yty, float(self.df_resid), self.sum_log_w, self.reml,
                                           True, self._L, self._RZX1, self._cu, u, beta, RX, grad)
        if not np.isfinite(dev):
            # not positive definite in the compiled factor: the row path raises the usual error
            self._fast = False
            return self.deviance(theta)
        self._u, self.beta, self.RX, self.pwrss = u, beta + self._beta0, RX, float(pwrss)
        self.last_logdet, self.logdet_rx = float(ld_a), float(ld_x)
        self._theta, self._grad, self._stale = theta.copy(), re.chain(theta, grad), True
        return float(dev)

    # ------------------------------------------------------------ several scalar terms
    def _crossed_ok(self) -> bool:
        """Several scalar terms (crossed or nested ``(1 | a) + (1 | b)``) whose dense part
        (all levels but the largest term's, X, y) is small enough to factor densely."""
        re = self.re
        if not re.linear or re.m < 2 or np.any(re.kdim != 1) or re.ntheta != re.m:
            return False
        N = int(re.q - re.nlev.max()) + self.p + 1
        return N <= _CROSSED_MAX_DENSE

    def _init_crossed(self) -> None:
        """Accumulate the blocked cross-products [Z X y]'W[Z X y] once (kernels/lmm_crossed.py)."""
        from interlace.kernels.lmm_crossed import crossed_setup

        re, p = self.re, self.p
        f = int(np.argmax(re.nlev))  # the term kept as a diagonal block
        others = [j for j in range(re.m) if j != f]
        self._cf, self._co = f, others
        doff = np.zeros(re.m, dtype=np.int64)
        off = 0
        for j in others:
            doff[j] = off
            off += int(re.nlev[j])
        nzd = off
        N = nzd + p + 1
        self._cnz, self._cN, self._cdoff = nzd, N, doff
        term_of = np.full(N, -1, dtype=np.int64)
        for jj, j in enumerate(others):
            term_of[doff[j]:doff[j] + re.nlev[j]] = jj
        self._cterm_of = term_of
        dcodes = np.ascontiguousarray(np.stack([re.codes[j] + doff[j] for j in others]).astype(np.int64))
        dz = np.ascontiguousarray(np.stack([re.z[:, re.kcol[j]] for j in others]))
        yc = self.y - self.offset
        self._beta0 = np.zeros(p)
        if p:  # least-squares residuals: pwrss without cancellation (see _init_fast)
            sw = np.sqrt(self.w)
            self._beta0 = np.linalg.lstsq(self.X * sw[:, None], yc * sw, rcond=None)[0]
            yc = yc - self.X @ self._beta0
        code0 = np.ascontiguousarray(re.codes[f])
        perm = np.argsort(code0, kind="stable").astype(np.int64)
        nl0 = int(re.nlev[f])
        self._cG = np.zeros((N, N))
        self._cg = np.zeros(nl0)
        self._cb = crossed_setup(perm, code0, np.ascontiguousarray(re.z[:, re.kcol[f]]), dcodes, dz,
                                 self.X, np.ascontiguousarray(yc), self.w, nl0, N, self._cG, self._cg)
        from interlace.kernels.lmm_crossed import crossed_pairs

        self._cp = crossed_pairs(N, *self._cb)
        self._cM = np.zeros((N, N))
        self._cW = np.zeros((N, N))
        self._cstate = None

    def _eval_crossed(self, theta: np.ndarray) -> float:
        from interlace.kernels.lmm_crossed import crossed_form, crossed_solve

        re, p = self.re, self.p
        f, others, nzd, N = self._cf, self._co, self._cnz, self._cN
        t0 = float(theta[f])
        s = np.ones(N)
        for j in others:
            s[self._cdoff[j]:self._cdoff[j] + re.nlev[j]] = theta[j]
        bptr, bidx, bval = self._cb
        M = self._cM
        # the gradient reads W only when a dense term's theta is near 0 (crossed_grad_parts)
        want_w = bool(min(abs(float(theta[j])) for j in others) < _DIAG_IDENTITY_MIN)
        d = crossed_form(t0, s, nzd, self._cG, self._cg, *self._cp, M, self._cW, want_w)
        _, info = _dpotrf(M.T, lower=1, clean=0, overwrite_a=1)
        if info != 0:
            self._crossed = False  # not positive definite: the row path raises the usual error
            self._cstate = None
            return self.deviance(theta)
        x2 = np.zeros(N - 1)
        u0 = np.empty(int(re.nlev[f]))
        ld_z, ld_x, pwrss = crossed_solve(t0, s, nzd, p, d, bptr, bidx, bval, M, x2, u0)
        u = np.empty(re.q)
        u[re.uoff[f]:re.uoff[f + 1]] = u0
        for j in others:
            u[re.uoff[j]:re.uoff[j + 1]] = x2[self._cdoff[j]:self._cdoff[j] + re.nlev[j]]
        self._u = u
        self.beta = x2[nzd:nzd + p] + self._beta0
        self.RX = np.tril(M.T[nzd:nzd + p, nzd:nzd + p])
        self.pwrss = max(float(pwrss), 1e-300)
        self.last_logdet, self.logdet_rx = float(ld_z), float(ld_x)
        self._theta, self._grad, self._stale = theta.copy(), None, True
        self._csinv = None
        nd = self.df_resid
        dev = ld_z - self.sum_log_w + nd * (1.0 + np.log(2.0 * np.pi * self.pwrss / nd))
        if self.reml:
            dev += ld_x
        self._cstate = (theta.copy(), t0, s, d, float(dev), want_w)
        return float(dev)

    def _sinv_crossed(self, kend: int) -> np.ndarray:
        """Inverse of S[:kend, :kend] from the current factor (upper triangle, C order)."""
        Mi = np.array(self._cM[:kend, :kend], order="C")
        _, info = _dpotri(Mi.T, lower=1, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError("dpotri failed")
        return Mi

    def _z_quads(self, theta: np.ndarray, s: np.ndarray, nl0: int) -> tuple[np.ndarray, np.ndarray]:
        """(quads, dg): per first-block level (s o b_l)' (S_ZZ)^-1 (s o b_l) over the Z
        indices, and the diagonal of (S_ZZ)^-1. From the last gradient's inverse when it
        is at theta: for REML that inverse also spans X's rows, and the Z block's
        inverse is its block less a rank-p correction, (S_ZZ)^-1 = Si_ZZ - B T^-1 B'
        (B = Si_ZX, T = Si_XX), applied to the quadratic forms and the diagonal only
        (O(nnz p), not a new k x k matrix). Otherwise from a new inverse."""
        from interlace.kernels.lmm_crossed import crossed_quads

        nzd = self._cnz
        bptr, bidx, bval = self._cb
        quads = np.empty(nl0)
        c = getattr(self, "_csinv", None)
        if c is None or not np.array_equal(c[0], theta):
            Sinv = self._sinv_crossed(nzd)
            crossed_quads(s, nzd, bptr, bidx, bval, Sinv, quads)
            return quads, np.diag(Sinv).copy()
        _, kend, Sinv = c
        crossed_quads(s, nzd, bptr, bidx, bval, Sinv, quads)  # reads only the Z indices
        dg = np.diag(Sinv)[:nzd].copy()
        if kend == nzd:
            return quads, dg
        B = Sinv[:nzd, nzd:kend]  # a < b: the stored (upper) triangle
        T = np.triu(Sinv[nzd:kend, nzd:kend])
        Ti = np.linalg.inv(T + np.triu(T, 1).T)
        mask = bidx < nzd
        lev = np.repeat(np.arange(nl0), np.diff(bptr))[mask]
        cols = bidx[mask]
        vals = s[cols] * bval[mask]
        W = np.column_stack([np.bincount(lev, weights=vals * B[cols, k], minlength=nl0)
                             for k in range(kend - nzd)])  # (s o b_l)' B per level
        quads -= np.einsum("lp,pq,lq->l", W, Ti, W)
        dg -= np.einsum("cp,pq,cq->c", B, Ti, B)
        return quads, dg

    def _grad_crossed(self) -> np.ndarray:
        from interlace.kernels.lmm_crossed import crossed_grad_parts

        re = self.re
        theta, t0, s, d, _, want_w = self._cstate
        kend = self._cnz + (self.p if self.reml else 0)
        Sinv = self._sinv_crossed(kend)
        self._csinv = (theta, kend, Sinv)  # conditional_variances at the optimum reuses it
        parts = np.empty(len(self._co) + 1)
        crossed_grad_parts(t0, s, kend, self._cterm_of, len(self._co), self._cg, d, *self._cb, Sinv,
                           self._cW, not want_w, parts)
        fac = self.df_resid / self.pwrss
        g = np.zeros(re.ntheta)
        u = self._u
        for jj, j in enumerate([self._cf] + self._co):
            th = float(theta[j])
            uj = u[re.uoff[j]:re.uoff[j + 1]]
            dp = -2.0 * float(uj @ uj) / th if th != 0.0 else 0.0
            g[j] = parts[jj] + fac * dp
        return g

    def theta_start(self) -> np.ndarray:
        """The optimizer's start. lme4's (Lambda = I) in general; with several scalar
        terms (the crossed path) a moment estimate when its deviance is lower: per
        term, the between-level variance of the least-squares residuals less the
        within-level share, over the residual variance left. It starts the
        optimizer near the optimum (InstEval: 45 -> 12 evaluations)."""
        start = self.re.theta_start()
        if not self._crossed:
            return start
        yc = self.y - self.offset
        sw = np.sqrt(self.w)
        beta = np.linalg.lstsq(self.X * sw[:, None], yc * sw, rcond=None)[0] if self.p else np.zeros(0)
        r = yc - self.X @ beta
        rss = float(np.sum(self.w * r * r))
        n = self.n
        s2 = rss / max(n - self.p, 1)
        vs = np.zeros(self.re.m)
        for j, t in enumerate(self.re.terms):
            z = self.re.z[:, self.re.kcol[j]]
            nn = np.bincount(t.codes, self.w * z * z, minlength=t.nlevels)
            sm = np.bincount(t.codes, self.w * z * r, minlength=t.nlevels)
            between = float(np.sum(sm[nn > 0] ** 2 / nn[nn > 0]))
            within = (rss - between) / max(n - t.nlevels, 1)
            vs[j] = max((between - t.nlevels * within) / max(float(np.sum(nn)), 1e-300), 0.0)
        se = max(s2 - float(vs.sum()), 0.05 * s2)
        mom = np.maximum(np.sqrt(vs / se), 0.05)
        if not np.all(np.isfinite(mom)):
            return start
        try:
            d_start = self.deviance(start)
            d_mom = self.deviance(mom)
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            return start
        return mom if np.isfinite(d_mom) and d_mom <= d_start else start

    def _sync(self) -> None:
        """Bring the row-path state (factor of A, eta, residuals) to the last theta."""
        if self._stale:
            self._solve(self._theta)

    @property
    def u(self) -> np.ndarray:
        """Spherical random effects in ReStructure's layout (term by term)."""
        if self._merged:
            self._sync()
        return self._u

    @u.setter
    def u(self, value: np.ndarray) -> None:
        self._u = value

    @property
    def chol(self) -> BlockedCholesky:
        self._sync()
        return self._chol

    @property
    def eta(self) -> np.ndarray:
        if self._crossed and self._stale:  # from the modes, without the row path's factor
            re = self.re
            eta = self.X @ self.beta + self.offset
            for j in range(re.m):
                eta += re.z[:, re.kcol[j]] * (self._theta[j] * self._u[re.uoff[j]:re.uoff[j + 1]])[re.codes[j]]
            return eta
        self._sync()
        return self._eta

    def conditional_variances(self, theta: np.ndarray, scale: float) -> list[np.ndarray] | None:
        """Per term the (nlevels, k) conditional SDs of b (lme4's condVar) from the
        crossed path's factor when its state is at theta; None otherwise (the caller
        then uses the row path's factor)."""
        if not (self._crossed and self._cstate is not None and np.array_equal(theta, self._cstate[0])):
            return None
        re = self.re
        _, t0, s, d, _, _ = self._cstate
        quads, dg = self._z_quads(theta, s, d.shape[0])
        out: list[np.ndarray] = [np.empty(0)] * re.m
        f = self._cf
        out[f] = np.sqrt(np.maximum(t0 * t0 * (1.0 / d + t0 * t0 * quads / (d * d)) * scale, 0.0))[:, None]
        for j in self._co:
            o = self._cdoff[j]
            th = float(theta[j])
            out[j] = np.sqrt(np.maximum(th * th * dg[o:o + re.nlev[j]] * scale, 0.0))[:, None]
        return out

    @property
    def RZX(self) -> np.ndarray:
        self._sync()
        return self._RZX

    @property
    def df_resid(self) -> int:
        """n for ML, n - p for REML: the divisor of pwrss in sigma^2."""
        return self.n - self.p if self.reml else self.n

    def _solve(self, theta: np.ndarray) -> None:
        re = self.re
        zl = re.zlambda(theta)
        zw = self.y - self.offset
        u, beta, RZX, RX = solve_joint(re, self._chol, self.X, self.w, zw, zl)
        eta = re.eta_re(zl, u, self.X @ beta + self.offset)
        res = self.y - eta
        self.u, self.beta, self._RZX, self.RX, self._eta = u, beta, RZX, RX, eta
        self.pwrss = float(np.sum(self.w * res * res) + u @ u)
        self._zl, self._res = zl, res
        self._stale = False
        self._theta = np.array(theta, dtype=np.float64)
        self._grad = None
        self.last_logdet = self._chol.logdet
        self.logdet_rx = 2.0 * float(np.sum(np.log(np.diag(RX)))) if self.p else 0.0

    # ---------------------------------------------------------------- Objective protocol
    @property
    def layout(self) -> ParamLayout:
        """x = theta: beta and sigma are profiled out."""
        return ParamLayout.build(ntheta=self.re.ntheta, fe_names=None, theta_lower=self.re.theta_lower,
                                 theta_names=self.re.theta_names())

    def deviance_at(self, x: np.ndarray) -> float:
        return self.deviance(x)

    def gradient_at(self, x: np.ndarray) -> np.ndarray:
        self.deviance(x)
        return self.gradient(x)

    def mode(self) -> np.ndarray:
        return np.asarray(self.u, dtype=float).copy()

    def deviance(self, theta: np.ndarray) -> float:
        """The profiled deviance (REML criterion when ``reml``) at theta."""
        self.nfev += 1
        theta = np.asarray(theta, dtype=np.float64)
        if self._fast:
            return self._eval_fast(theta)
        if self._crossed:
            st = self._cstate
            if st is not None and np.array_equal(theta, st[0]):
                return st[4]  # the state is at theta (optimizers ask again at their last iterate)
            return self._eval_crossed(theta)
        self._solve(theta)
        nd = self.df_resid
        dev = self._chol.logdet - self.sum_log_w + nd * (1.0 + np.log(2.0 * np.pi * self.pwrss / nd))
        if self.reml:
            dev += self.logdet_rx
        return float(dev)

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """Exact dD/dtheta at the state of the last deviance(theta) call.

        d log|L|^2 = 2 tr(A^{-1} U'W dU); d pwrss = -2 sum w r (dU u) by the
        envelope theorem over (u, beta); for REML d log|RX|^2 as in
        kernels/reml.py. All are sums over rows."""
        self.ngev += 1
        theta = np.asarray(theta, dtype=np.float64)
        if self._grad is not None and self._theta is not None and np.array_equal(theta, self._theta):
            return self._grad.copy()  # computed with the deviance by the compiled single-term path
        if self._crossed and self._cstate is not None and np.array_equal(theta, self._cstate[0]):
            self._grad = self._grad_crossed()
            return self._grad.copy()
        if self._theta is None or not np.array_equal(theta, self._theta):
            self.nfev -= 1  # the state must be at theta; not a deviance evaluation the optimizer asked for
            self.deviance(theta)
            if self._grad is not None:
                return self._grad.copy()
            if self._crossed and self._cstate is not None:
                self._grad = self._grad_crossed()
                return self._grad.copy()
        return self._theta_gradient(self.df_resid / self.pwrss)

    def _theta_gradient(self, pwrss_factor: float) -> np.ndarray:
        """d(log|L|^2 + pwrss_factor * pwrss [+ log|RX|^2]) / dtheta at the current state."""
        from interlace.kernels import gradient as kgr

        re, n = self.re, self.n
        self._sync()
        Ainv11, Ainv21, Ainv22 = self._chol.selected_inverse_pairs()
        s = pwrss_factor * self.w * self._res
        zero = np.zeros(n)
        gb = np.zeros(self.p)
        gt = np.zeros(re.nentries)  # in Lambda's entries; re.chain maps to theta
        kgr.gradient_pass(s, self.w, zero, zero, self.X, re.z, re.codes, self._zl, re.kcol, re.kdim, re.uoff,
                          re.pairidx, re.poff, self.u, np.zeros(re.q), zero, Ainv11, Ainv21, Ainv22,
                          re.theta_term, re.theta_a, re.theta_b, gb, gt, False)
        if self.reml and self.p:
            from interlace.kernels.reml import reml_logdet_rx_grad

            C = np.ascontiguousarray(self._chol.solve_Lt(self._RZX))  # A^{-1} U'WX
            Sinv = self.rx_inverse()
            reml_logdet_rx_grad(self.w, self.X, re.z, re.codes, self._zl, re.kcol, re.kdim, re.uoff, C, Sinv,
                                re.theta_term, re.theta_a, re.theta_b, gt)
        return re.chain(self._theta, gt)

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
        dev = self._chol.logdet - self.sum_log_w + self.pwrss / s2 + self.n * np.log(2.0 * np.pi * s2)
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
