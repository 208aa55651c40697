"""The Laplace (and nAGQ = 0) objective: PIRLS over the predictor and response
modules, the Laplace deviance and its exact gradient.

Deviance (lme4's):  D = -2 log p(y | u*, beta) + |u*|^2 + log|L|^2,
with u* the conditional mode found by PIRLS and L the Cholesky factor of
U'WU + I at u* (W the Fisher working weights, as lme4 uses).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from interlace.control import DEFAULT_CONTROL
from interlace.kernels import parallel as kpar
from interlace.kernels import pirls as kp
from interlace.kernels import wide_term
from interlace.model_frame import ModelFrame
from interlace.objective.protocol import ThetaBetaObjective, same_point
from interlace.objective.predictor import BlockedCholesky, ReStructure
from interlace.objective.response import GLMResponse
from interlace.optimize.trisolve import solve_triangular


# Newton steps of large crossed fits by preconditioned CG (predictor.BlockedCholesky.pcg_solve)
# need not be exact: each is followed by a row pass, and the mode is always confirmed by
# a step solved with a new factor. Solving them to this relative residual keeps the
# Newton iterations as few as exact steps (measured on 600 x 600 and 1,500 x 1,500
# crossed binomials) at a third of the CG iterations of 1e-10.
PCG_RTOL = 1e-6


class PIRLSError(RuntimeError):
    """PIRLS could not reduce the penalized deviance (step-halving exhausted)."""


class LaplaceObjective(ThetaBetaObjective):
    """Objective functions of (theta) and (theta, beta) for a GLMM.

    State (u, beta) is kept between evaluations as a warm start, as lme4 does.
    """

    MAX_ITER = DEFAULT_CONTROL.pirls_max_iter
    MAX_HALVINGS = DEFAULT_CONTROL.pirls_max_halvings

    def __init__(self, mf: ModelFrame, family, tol: float = DEFAULT_CONTROL.pirls_tol) -> None:
        self.mf = mf
        self.family = family
        self.re = ReStructure(mf.terms)
        self.chol = BlockedCholesky(self.re)
        self.resp = GLMResponse(mf.y, mf.weights, mf.offset, family)
        self.X = np.ascontiguousarray(mf.X, dtype=np.float64)
        self.p = self.X.shape[1]
        self.tol = tol
        self.u = np.zeros(self.re.q)
        self.beta = self._glm_start()
        self.pirls_iters = 0
        self.nfev = 0
        self.ngev = 0
        self.pirls_converged = True
        self.last_logdet = np.nan
        self._zl_theta = None
        self._zl = None
        self._chol_h = None
        # nAGQ = 0 PIRLS tolerances (the optimizer passes looser ones while stage 1 only seeds stage 2)
        self.joint_tol = tol
        self.joint_u_tol = DEFAULT_CONTROL.pirls_u_tol
        # whole PIRLS loops compiled; the Python loops remain for row passes
        # that run chunked in parallel (large n), where their overhead is nil
        # (not for one wide term, a spatial one: its row passes and factor go through BLAS/LAPACK)
        self.compiled_loop = (self.re.n < kpar.PARALLEL_MIN_ROWS and self.re.q2 < kp.DENSE_MAX
                              and not wide_term.is_wide(self.re.codes, self.re.kdim))
        self._joint_cache = None
        # the last converged mode, for tangent warm starts: (system version,
        # theta, beta, (RZX, RX) of the joint system or None); the version
        # counts row passes, which overwrite the factor and the weights
        self._sysver = 0
        self._mode = None

    def set_response(self, y: np.ndarray) -> None:
        """Refit on a new response ``y`` (same rows, weights, offset): the parsed
        structure, Z Lambda and the factor's buffers are kept; every piece of state
        an evaluation reads (modes, warm starts, caches, counters) goes back to what
        a freshly built objective holds, so a fit from here gives the same numbers
        as one on a new LaplaceObjective, without rebuilding it.

        >>> obj.set_response(y_new)  # doctest: +SKIP
        """
        if np.shape(y) != self.resp.y.shape:
            raise ValueError(f"set_response: y has shape {np.shape(y)}, the model {self.resp.y.shape}")
        if self.resp.y is self.mf.y:  # never write into the model frame's response
            self.resp.y = self.resp.y.copy()
        self.resp.set_response(y)
        for a in (self.chol.A11, self.chol.V21, self.chol.A22, self.chol.rhs, self.chol.L21vals, self.chol.L22):
            a.fill(0.0)
        self.chol.logdet = 0.0
        self.chol.factored = False
        self.u = np.zeros(self.re.q)
        self.beta = self._glm_start()
        self.pirls_iters = self.nfev = self.ngev = 0
        self.pirls_converged = True
        self.last_logdet = np.nan
        self._chol_h = None
        self.joint_tol, self.joint_u_tol = self.tol, 1e-9
        self._joint_cache = None
        self._sysver = 0
        self._mode = None
        self.__dict__.pop("_RX", None)
        self.__dict__.pop("_dev", None)

    def _glm_start(self) -> np.ndarray:
        """beta from one IRLS step of the GLM at the family's mustart (as
        glm.fit starts); zeros if that is not usable."""
        try:
            fam, resp = self.family, self.resp
            with np.errstate(all="ignore"):
                mu0 = np.asarray(fam.initialize(resp.y, resp.wt), dtype=float)
                eta0 = np.asarray(fam.link(mu0), dtype=float)
                d = np.asarray(fam.mu_eta(eta0), dtype=float)
                w = resp.wt * d * d / np.asarray(fam.variance(mu0), dtype=float)
                z = eta0 - resp.offset + (resp.y - mu0) / d
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(z))):
                return np.zeros(self.p)
            # weighted normal equations (a start value; X has full rank, checked
            # while parsing): a p x p solve instead of an n x p least squares
            XtW = self.X.T * w
            try:
                beta = sla.solve(XtW @ self.X, XtW @ z, assume_a="pos", check_finite=False)
            except (np.linalg.LinAlgError, ValueError):
                sw = np.sqrt(w)
                beta = np.linalg.lstsq(self.X * sw[:, None], sw * z, rcond=None)[0]
            return beta if np.all(np.isfinite(beta)) else np.zeros(self.p)
        except Exception:  # a user family without initialize/link: start at zero
            return np.zeros(self.p)

    # ---------------------------------------------------------------- helpers
    def zl(self, theta: np.ndarray) -> np.ndarray:
        if not same_point(self._zl_theta, theta):
            self._zl = self.re.zlambda(theta)
            self._zl_theta = np.array(theta, copy=True)
        return self._zl

    def _fixed(self, beta: np.ndarray) -> np.ndarray:
        return self.X @ beta + self.resp.offset

    # ---------------------------------------------------------------- PIRLS (u only)
    def _fused_pass(self, zl, base, u) -> float:
        """One fused row pass (fast path): eta, mu, w, r, deviance and the
        weighted cross-products at u, into the response and factor buffers."""
        re, resp, chol = self.re, self.resp, self.chol
        self._sysver += 1
        chol.A11.fill(0.0)
        chol.V21.fill(0.0)
        chol.A22.fill(0.0)
        chol.rhs.fill(0.0)
        eta = np.empty(re.n)
        fc, lc = resp.codes
        dev = kpar.pirls_pass(fc, lc, resp.y, resp.wt, base, re.codes, zl, re.kcol, re.kdim, re.uoff, u,
                            re.pairidx, re.poff, eta, resp.mu, resp.w, resp.r,
                            chol.A11, chol.V21, chol.A22, chol.rhs)
        resp.eta = eta
        return float(dev)

    def _pirls_fused(self, theta: np.ndarray, beta: np.ndarray) -> float:
        """PIRLS on the fast path: one fused row pass per iteration. The pass
        at a point gives its deviance and its system; the Newton step solved
        from that system is the convergence test, so a warm start that is
        already at the mode costs a single pass."""
        re, resp, chol = self.re, self.resp, self.chol
        zl = self.zl(theta)
        base = self._fixed(beta)
        fc, lc = resp.codes
        if self.compiled_loop:
            return self._pirls_compiled(zl, base)
        u = self.u if np.all(np.isfinite(self.u)) else np.zeros(re.q)
        pred = self._tangent_start(theta, beta, None)
        dev = self._fused_pass(zl, base, u if pred is None else pred[0])
        if pred is not None:
            if np.isfinite(dev + pred[0] @ pred[0]):
                u = pred[0]
            else:
                dev = self._fused_pass(zl, base, u)
        pdev = dev + u @ u
        if not np.isfinite(pdev):
            u = np.zeros(re.q)
            dev = self._fused_pass(zl, base, u)
            pdev = dev + u @ u
        converged = False
        eta_t = np.empty(re.n)
        last_change = np.inf
        logdet = np.nan
        for _ in range(self.MAX_ITER):
            self.pirls_iters += 1
            utol = self.tol * (1.0 + float(np.max(np.abs(u), initial=0.0)))
            # a large dense block (many crossed levels): the Newton steps away from
            # the mode by conjugate gradients preconditioned with the last factor;
            # the factor (its log-determinant) and the exact convergence test only
            # at the point where the step has become small
            x = chol.pcg_solve(chol.rhs, u, 0.1 * utol, PCG_RTOL) if chol.big else None
            if x is not None and float(np.max(np.abs(x - u), initial=0.0)) > utol:
                delta = x - u
            else:
                logdet = chol.factor()
                delta = chol.solve(chol.rhs) - u
                dmax = float(np.max(np.abs(delta), initial=0.0)) if delta.size else 0.0
                # Newton decrement: the predicted reduction of the penalized deviance
                # log|L|^2 is not stationary in u, so the Laplace deviance carries
                # the remaining step to first order: stop only when it is tiny
                # (otherwise the optimizer's line search sees the noise)
                if dmax <= utol:
                    converged = True
                    break
            unew = u + delta
            dev_t = self._fused_pass(zl, base, unew)
            pdev_t = dev_t + unew @ unew
            if not (np.isfinite(pdev_t) and pdev_t <= pdev + 1e-12 * abs(pdev)):
                step = 1.0
                for _h in range(self.MAX_HALVINGS):
                    step *= 0.5
                    ut = u + step * delta
                    dt = kpar.eta_deviance(fc, lc, resp.y, resp.wt, base, re.codes, zl, re.kcol, re.kdim,
                                         re.uoff, ut, eta_t)
                    if np.isfinite(dt + ut @ ut) and dt + ut @ ut <= pdev + 1e-12 * abs(pdev):
                        break
                else:
                    if pdev_t - pdev <= self._deviance_noise(resp.eta):
                        # the Newton step is lost in rounding: u is the mode to working precision
                        dev = self._fused_pass(zl, base, u)
                        logdet = chol.factor()
                        converged = True
                        break
                    raise PIRLSError("PIRLS step-halvings failed to reduce the penalized deviance")
                unew = ut
                dev_t = self._fused_pass(zl, base, unew)
                pdev_t = dev_t + unew @ unew
            last_change = abs(pdev - pdev_t)
            u, pdev, dev = unew, pdev_t, dev_t
        else:
            logdet = chol.factor()
        self.pirls_converged = converged
        self.last_logdet = logdet
        self.u = u
        self._dev = dev
        self._mode = (self._sysver, np.array(theta, copy=True), np.array(beta, copy=True), None) if converged else None
        return pdev

    def _tangent_start(self, theta, beta, joint):
        """First-order prediction of the mode at (theta, beta) from the last
        converged one: (u, beta) + the tangent of the mode, solved with the
        mode's factor (and its joint system when `joint` is its (RZX, RX)).
        None when there is no usable mode (the plain warm start is used).
        A prediction only moves PIRLS's starting point: convergence is
        tested as before, so it costs iterations, never accuracy."""
        mode = self._mode
        if mode is None or mode[0] != self._sysver or self.resp.codes is None:
            return None
        _, theta0, beta0, sys0 = mode
        if joint is not None and sys0 is None:
            return None
        dth = np.asarray(theta, dtype=float) - theta0
        dbeta = np.zeros(self.p) if beta is None else np.asarray(beta, dtype=float) - beta0
        if not (np.any(dth) or np.any(dbeta)):
            return None
        re, resp, chol = self.re, self.resp, self.chol
        zld = re.zlambda(dth)  # Lambda is linear in theta: dU has rows zlambda(d theta)
        rhs_u, rhs_b = np.zeros(re.q), np.zeros(self.p)
        kpar.tangent_rhs(resp.w, resp.r, self.X, dbeta, re.codes, self.zl(theta), zld, re.kcol, re.kdim,
                         re.uoff, self.u, rhs_u, rhs_b, beta is None)
        if beta is None:
            du, db = joint_back_solve(chol, *sys0, rhs_u, rhs_b)
            u_p, b_p = self.u + du, self.beta + db
        else:
            u_p, b_p = self.u + chol.solve(rhs_u), None
        if not (np.all(np.isfinite(u_p)) and (b_p is None or np.all(np.isfinite(b_p)))):
            return None
        # far moves (the optimizer's first steps, theta through 0) leave the
        # linear range of the mode: a large predicted change starts PIRLS
        # worse than the plain warm start (measured: 20 iterations instead of 3)
        if np.max(np.abs(u_p - self.u), initial=0.0) > 0.25 * (1.0 + np.max(np.abs(self.u), initial=0.0)):
            return None
        return u_p, b_p

    def _pirls_compiled(self, zl: np.ndarray, base: np.ndarray) -> float:
        """The same PIRLS as the Python loop of _pirls_fused, in one compiled
        call (kernels/pirls.py): for small fits the loop's Python overhead,
        not the row passes, is the cost."""
        re, resp, chol = self.re, self.resp, self.chol
        self._sysver += 1
        fc, lc = resp.codes
        u = np.array(self.u, dtype=np.float64, copy=True)
        eta = np.empty(re.n)
        out = np.zeros(3)
        status = kp.pirls_u_loop(fc, lc, resp.y, resp.wt, base, re.codes, zl, re.kcol, re.kdim, re.uoff, u,
                                 re.pairidx, re.poff, eta, resp.mu, resp.w, resp.r, chol.A11, chol.V21,
                                 chol.A22, chol.rhs, chol.L22, chol.L21vals, re.npairs, re.pcols, re.pcoff,
                                 re.csc_indptr, re.csc_indices, re.csc_pos, self.MAX_ITER, self.MAX_HALVINGS,
                                 out)
        self.pirls_iters += int(out[2])
        resp.eta = eta
        if status == 3:
            raise np.linalg.LinAlgError("random-effects system is not positive definite")
        if status == 2:
            raise PIRLSError("PIRLS step-halvings failed to reduce the penalized deviance")
        chol.logdet = float(out[1])
        self.pirls_converged = status == 0
        self.last_logdet = chol.logdet
        self.u = u
        self._dev = float(out[0])
        return self._dev + u @ u

    def pirls(self, theta: np.ndarray, beta: np.ndarray) -> float:
        """Find u*(theta, beta); leave the factor at u*; return the penalized deviance."""
        if self.resp.codes is not None:
            return self._pirls_fused(theta, beta)
        re, resp, chol = self.re, self.resp, self.chol
        zl = self.zl(theta)
        base = self._fixed(beta)
        u = self.u
        if not np.all(np.isfinite(u)):
            u = np.zeros(re.q)
        eta = re.eta_re(zl, u, base)
        dev = resp.update(eta)
        pdev = dev + u @ u
        if not np.isfinite(pdev):
            u = np.zeros(re.q)
            eta = re.eta_re(zl, u, base)
            dev = resp.update(eta)
            pdev = dev + u @ u
        converged = False
        for _ in range(self.MAX_ITER):
            self.pirls_iters += 1
            chol.accumulate(resp.w, (eta - base) + resp.r, zl)
            chol.factor()
            delta = chol.solve(chol.rhs) - u
            step = 1.0
            pdev_full = np.nan
            for _h in range(self.MAX_HALVINGS):
                ut = u + step * delta
                eta_t = re.eta_re(zl, ut, base)
                dev_t = resp.deviance(eta_t)
                pdev_t = dev_t + ut @ ut
                if step == 1.0:
                    pdev_full = pdev_t
                if np.isfinite(pdev_t) and pdev_t <= pdev + 1e-12 * abs(pdev):
                    break
                step *= 0.5
            else:
                if pdev_full - pdev <= self._deviance_noise(eta):
                    converged = True  # the Newton step is lost in rounding: at the mode
                    break
                raise PIRLSError("PIRLS step-halvings failed to reduce the penalized deviance")
            change = abs(pdev - pdev_t)
            ustep = float(np.max(np.abs(step * delta), initial=0.0)) if delta.size else 0.0
            u, eta, pdev = ut, eta_t, pdev_t
            dev = resp.update(eta)
            # both the penalized deviance and u must settle: Fisher scoring on a
            # non-canonical link converges linearly, and a deviance criterion
            # alone leaves u (and so the Hessian) loose.
            if change <= self.tol * (abs(pdev) + 1.0) and ustep <= self.joint_u_tol * (1.0 + float(np.max(np.abs(u), initial=0.0))):
                converged = True
                break
        self.pirls_converged = converged
        chol.accumulate(resp.w, (eta - base) + resp.r, zl)
        self.last_logdet = chol.factor()
        self.u = u
        self._dev = dev
        return pdev

    def deviance(self, theta: np.ndarray, beta: np.ndarray) -> float:
        """Laplace deviance D(theta, beta)."""
        self.nfev += 1
        self.pirls(theta, beta)
        self.beta = np.array(beta, copy=True)
        return self.resp.minus2loglik(self._dev) + self.u @ self.u + self.last_logdet

    # ---------------------------------------------------------------- gradient
    def has_exact_gradient(self) -> bool:
        return self.resp.has_derivatives()

    def gradient(self, theta: np.ndarray, beta: np.ndarray, with_beta: bool = True) -> np.ndarray:
        """Exact dD/d(theta, beta) at the current PIRLS state (call deviance first)."""
        self.ngev += 1
        re, chol, resp = self.re, self.chol, self.resp
        zl = self.zl(theta)
        s, h, wd = resp.loglik_terms()
        # a large Ainv22 in the A22 buffer: no row pass into chol before gradient_pass
        Ainv11, Ainv21, Ainv22 = chol.selected_inverse_pairs(scratch=True)
        v = np.empty(re.n)
        Utv = np.zeros(re.q)
        kpar.leverage_pass(wd, re.codes, zl, re.kcol, re.kdim, re.uoff, re.pairidx, re.poff, Ainv11, Ainv21, Ainv22, v, Utv)
        if resp.canonical:
            xi = chol.solve(Utv)
            hh = resp.w
        else:
            # u* moves with the observed information H, while L holds the Fisher
            # weights (as lme4's Laplace does): the implicit derivative needs
            # a factor of I + U'HU of its own.
            if self._chol_h is None:
                self._chol_h = BlockedCholesky(re)
            ch = self._chol_h
            ch.accumulate(h, np.zeros(re.n), zl)
            ch.factor()
            xi = ch.solve(Utv)
            hh = h
        gb = np.zeros(self.p)
        gt = np.zeros(re.nentries)  # in Lambda's entries; re.chain maps to theta
        kpar.gradient_pass(s, resp.w, hh, v, self.X, re.z, re.codes, zl, re.kcol, re.kdim, re.uoff, re.pairidx, re.poff,
                          self.u, xi, np.zeros(re.n), Ainv11, Ainv21, Ainv22, re.theta_term, re.theta_a, re.theta_b,
                          gb, gt, with_beta)
        gt = re.chain(theta, gt)
        return np.concatenate([gt, gb]) if with_beta else gt

    def gradient_joint(self, theta: np.ndarray) -> np.ndarray:
        """Exact dD0/dtheta of the nAGQ = 0 deviance at the current joint PIRLS
        state (call pirls_joint first): (u, beta) move together, so the
        implicit derivative solves the joint system once."""
        self.ngev += 1
        re, chol, resp = self.re, self.chol, self.resp
        zl = self.zl(theta)
        s, h, wd = resp.loglik_terms()
        Ainv11, Ainv21, Ainv22 = chol.selected_inverse_pairs(scratch=True)  # (see below)
        v = np.empty(re.n)
        Utv = np.zeros(re.q)
        kpar.leverage_pass(wd, re.codes, zl, re.kcol, re.kdim, re.uoff, re.pairidx, re.poff, Ainv11,
                          Ainv21, Ainv22, v, Utv)
        hh = resp.w if resp.canonical else h
        zero = np.zeros(re.n)
        cached = self._joint_cache
        if resp.canonical and cached is not None and cached[0] == self.nfev:
            # H = W: the joint system is the one the last PIRLS pass summed and
            # factored at this very (u, beta); reuse it instead of redoing both
            ch = chol
            _, UtHX, RX = cached
            RZX = ch.solve_L(UtHX)
        else:
            ch = chol if resp.canonical else (self._chol_h or BlockedCholesky(re))
            self._chol_h = None if resp.canonical else ch
            if ch is chol and chol.big:
                Ainv22 = Ainv22.copy()  # it lives in chol's A22 buffer, refilled next
            # joint system [[I + U'HU, U'HX], [X'HU, X'HX]] [xu; xb] = [U'v; X'v]
            ch.accumulate(hh, zero, zl)
            UtHX = np.zeros((re.q, self.p))
            XtHX = np.zeros((self.p, self.p))
            xr = np.zeros(self.p)
            kpar.accumulate_x(hh, zero, self.X, re.codes, zl, re.kcol, re.kdim, re.uoff, UtHX, XtHX, xr)
            ch.factor()
            RZX, RX = joint_factor(ch, UtHX, XtHX)
        xu, xb = joint_back_solve(ch, RZX, RX, Utv, self.X.T @ v)
        if resp.canonical and ch is chol and (cached is None or cached[0] != self.nfev):
            # the factor was overwritten with identical weights: restore A's factor
            ch.accumulate(resp.w, zero, zl)
            ch.factor()
        gb = np.zeros(self.p)
        gt = np.zeros(re.nentries)  # in Lambda's entries; re.chain maps to theta
        kpar.gradient_pass(s, resp.w, hh, v, self.X, re.z, re.codes, zl, re.kcol, re.kdim, re.uoff,
                          re.pairidx, re.poff, self.u, xu, self.X @ xb, Ainv11, Ainv21, Ainv22,
                          re.theta_term, re.theta_a, re.theta_b, gb, gt, False)
        return re.chain(theta, gt)

    # ---------------------------------------------------------------- nAGQ = 0
    def _joint_fused_pass(self, zl, u, beta, bufs) -> float:
        re, resp, chol = self.re, self.resp, self.chol
        self._sysver += 1
        UtWX, XtWX, xrhs = bufs
        for a in (chol.A11, chol.V21, chol.A22, chol.rhs, UtWX, XtWX, xrhs):
            a.fill(0.0)
        eta = np.empty(re.n)
        fc, lc = resp.codes
        dev = kpar.pirls_pass_joint(fc, lc, resp.y, resp.wt, self.X, beta, resp.offset, re.codes, zl,
                                  re.kcol, re.kdim, re.uoff, u, re.pairidx, re.poff, eta, resp.mu, resp.w,
                                  resp.r, chol.A11, chol.V21, chol.A22, chol.rhs, UtWX, XtWX, xrhs)
        resp.eta = eta
        return float(dev)

    def _joint_pcg(self, u: np.ndarray, beta: np.ndarray, bufs, atol: float):
        """The joint (u, beta) Newton target by CG on the joint system of the last
        pass, preconditioned with the joint factor of an earlier point (its L
        still in chol, its (RZX, RX) in _jprec). None without a usable one."""
        chol, q = self.chol, self.re.q
        jp = getattr(self, "_jprec", None)
        if jp is None or jp[0] != chol.nfactor or not chol.factored:
            return None
        _, RZX, RX = jp
        UtWX, XtWX, xrhs = bufs
        XtWXs = np.tril(XtWX) + np.tril(XtWX, -1).T

        def mv(x):
            xu, xb = x[:q], x[q:]
            return np.concatenate([chol.matvec(xu) + UtWX @ xb, UtWX.T @ xu + XtWXs @ xb])

        def pc(r):
            a, b = joint_back_solve(chol, RZX, RX, r[:q], r[q:])
            return np.concatenate([a, b])

        x = chol.pcg_solve(np.concatenate([chol.rhs, xrhs]), np.concatenate([u, beta]), atol, PCG_RTOL,
                           matvec=mv, precond=pc)
        return None if x is None else (x[:q], x[q:])

    def _pirls_joint_fused(self, theta: np.ndarray, u_tol: float) -> float | None:
        """nAGQ = 0 PIRLS on the fast path: one fused pass per iteration; the
        joint Newton step solved at a point is its convergence test. Returns
        None when the warm start is unusable (the caller starts cold)."""
        re, resp, chol = self.re, self.resp, self.chol
        zl = self.zl(theta)
        off = resp.offset
        p = self.p
        bufs = (np.zeros((re.q, p)), np.zeros((p, p)), np.zeros(p))
        # factor and joint solve in one compiled call when the dense block is
        # small (a whole compiled joint loop took 15 s to compile: not worth it)
        compiled_step = self.compiled_loop  # (which implies q2 < kp.DENSE_MAX)
        RX = np.zeros((p, p))
        unew_c, bnew_c = np.empty(re.q), np.empty(p)
        u, beta = self.u.copy(), self.beta.copy()
        if not (np.all(np.isfinite(u)) and np.all(np.isfinite(beta))):
            return None
        pred = None if compiled_step else self._tangent_start(theta, None, True)
        if pred is not None:
            dev = self._joint_fused_pass(zl, pred[0], pred[1], bufs)
            if np.isfinite(dev + pred[0] @ pred[0]):
                u, beta = pred
            else:
                pred = None
        if pred is None:
            dev = self._joint_fused_pass(zl, u, beta, bufs)
        pdev = dev + u @ u
        if not np.isfinite(pdev):
            return None
        fc, lc = resp.codes
        eta_t = np.empty(re.n)
        for _ in range(self.MAX_ITER):
            self.pirls_iters += 1
            UtWX, XtWX, xrhs = bufs
            pcg_step = False
            if compiled_step:
                ld = kp.joint_step(*chol.factor_args(), chol.rhs, UtWX, XtWX, xrhs, unew_c, bnew_c, RX)
                if not np.isfinite(ld):
                    raise np.linalg.LinAlgError("joint (u, beta) system is not positive definite")
                chol.logdet = float(ld)
                unew, bnew = unew_c.copy(), bnew_c.copy()
                RX = RX.copy()
            else:
                scale = 1.0 + max(float(np.max(np.abs(u), initial=0.0)), float(np.max(np.abs(beta), initial=0.0)))
                # a large dense block: steps away from the mode by preconditioned CG
                # (see _pirls_fused); the factor only where the step has become small
                x = self._joint_pcg(u, beta, bufs, 0.1 * u_tol * scale) if chol.big else None
                pcg_step = x is not None and float(np.max(np.abs(np.concatenate([x[0] - u, x[1] - beta])),
                                                          initial=0.0)) > u_tol * scale
                if pcg_step:
                    unew, bnew = x
                else:
                    chol.factor()
                    RZX, RX = joint_factor(chol, UtWX, XtWX)
                    self._jprec = (chol.nfactor, RZX, RX)
                    unew, bnew = joint_back_solve(chol, RZX, RX, chol.rhs, xrhs)
            if not pcg_step:
                self._RX = RX
            du, db = unew - u, bnew - beta
            dmax = max(float(np.max(np.abs(du), initial=0.0)) if du.size else 0.0, float(np.max(np.abs(db), initial=0.0)))
            scale = 1.0 + max(float(np.max(np.abs(u), initial=0.0)), float(np.max(np.abs(beta), initial=0.0)))
            if not pcg_step and dmax <= u_tol * scale:
                # the factor and the state are at (u, beta): gradient_joint reuses the system
                self._joint_cache = (self.nfev, UtWX, RX)
                if not compiled_step:
                    self._mode = (self._sysver, np.array(theta, copy=True), beta.copy(), (RZX, RX))
                break
            dev_t = self._joint_fused_pass(zl, unew, bnew, bufs)
            pdev_t = dev_t + unew @ unew
            if not (np.isfinite(pdev_t) and pdev_t <= pdev + 1e-12 * abs(pdev)):
                pdev_full = pdev_t
                step = 1.0
                for _h in range(self.MAX_HALVINGS):
                    step *= 0.5
                    ut, bt = u + step * du, beta + step * db
                    dt = kpar.eta_deviance(fc, lc, resp.y, resp.wt, self.X @ bt + off, re.codes, zl, re.kcol,
                                         re.kdim, re.uoff, ut, eta_t)
                    if np.isfinite(dt + ut @ ut) and dt + ut @ ut <= pdev + 1e-12 * abs(pdev):
                        break
                else:
                    if np.isfinite(pdev_full) and pdev_full - pdev <= self._deviance_noise(eta_t):
                        # the full step is lost in rounding: at the mode to working precision
                        dev = self._joint_fused_pass(zl, u, beta, bufs)
                        chol.factor()
                        break
                    raise PIRLSError("PIRLS step-halvings failed to reduce the penalized deviance")
                unew, bnew = ut, bt
                dev_t = self._joint_fused_pass(zl, unew, bnew, bufs)
                pdev_t = dev_t + unew @ unew
            u, beta, pdev, dev = unew, bnew, pdev_t, dev_t
        else:
            chol.factor()
        self.last_logdet = chol.logdet
        self.u, self.beta, self._dev = u, beta, dev
        return self.resp.minus2loglik(dev) + u @ u + self.last_logdet

    def pirls_joint(self, theta: np.ndarray, tol: float | None = None, u_tol: float | None = None) -> float:
        """PIRLS over (u, beta) jointly (lme4's nAGQ = 0); returns the deviance
        -2 log p(y | u, beta) + |u|^2 + log|L|^2 at the joint mode. ``tol``
        (relative deviance change) and ``u_tol`` (relative step) default to the
        objective's own; the optimizer's Control passes looser ones for stage 1."""
        self.nfev += 1
        tol = self.joint_tol if tol is None else tol
        u_tol = self.joint_u_tol if u_tol is None else u_tol
        if self.resp.codes is not None:
            d = self._pirls_joint_fused(theta, u_tol)
            if d is not None:
                return d
        re, resp, chol = self.re, self.resp, self.chol
        zl = self.zl(theta)
        off = resp.offset
        u, beta = self.u.copy(), self.beta.copy()
        eta = re.eta_re(zl, u, self.X @ beta + off)
        dev = resp.update(eta)
        if not np.isfinite(dev + u @ u):
            u[:] = 0.0
            mu0 = self.family.initialize(resp.y, resp.wt)
            eta = np.asarray(self.family.link(mu0), dtype=float)
            dev = resp.update(eta)
            beta = np.linalg.lstsq(self.X * np.sqrt(resp.w)[:, None],
                                   np.sqrt(resp.w) * (eta - off), rcond=None)[0]
            eta = self.X @ beta + off
            dev = resp.update(eta)
        pdev = dev + u @ u
        for _ in range(self.MAX_ITER):
            self.pirls_iters += 1
            zw = (eta - off) + resp.r
            unew, bnew = self._joint_solve(resp.w, zw, zl)
            du, db = unew - u, bnew - beta
            step = 1.0
            pdev_full = np.nan
            for _h in range(self.MAX_HALVINGS):
                ut, bt = u + step * du, beta + step * db
                eta_t = re.eta_re(zl, ut, self.X @ bt + off)
                pdev_t = resp.deviance(eta_t) + ut @ ut
                if step == 1.0:
                    pdev_full = pdev_t
                if np.isfinite(pdev_t) and pdev_t <= pdev + 1e-12 * abs(pdev):
                    break
                step *= 0.5
            else:
                if pdev_full - pdev <= self._deviance_noise(eta):
                    break  # the full Newton step is lost in rounding: at the mode to working precision
                raise PIRLSError("PIRLS step-halvings failed to reduce the penalized deviance")
            change = abs(pdev - pdev_t)
            ustep = float(np.max(np.abs(step * du), initial=0.0)) if du.size else 0.0
            u, beta, eta, pdev = ut, bt, eta_t, pdev_t
            dev = resp.update(eta)
            if change <= tol * (abs(pdev) + 1.0) and \
                    ustep <= u_tol * (1.0 + float(np.max(np.abs(u), initial=0.0))):
                break
        base = self.X @ beta + off
        chol.accumulate(resp.w, (eta - base) + resp.r, zl)
        self.last_logdet = chol.factor()
        self.u, self.beta, self._dev = u, beta, dev
        return self.resp.minus2loglik(dev) + u @ u + self.last_logdet

    def _deviance_noise(self, eta: np.ndarray) -> float:
        """Rounding noise of the deviance at eta: a few ulps of the summed
        magnitudes of its terms. With counts in the hundreds of millions a
        step near the mode changes the deviance by less than this, and
        step-halving cannot show a decrease (lme4's relative tolPwrss
        accepts such a point; so do we)."""
        resp = self.resp
        eps = np.finfo(np.float64).eps
        return 64.0 * eps * float(np.sum(resp.wt * (np.abs(resp.y) + np.abs(resp.mu)) * (1.0 + np.abs(eta))))

    def _joint_solve(self, w: np.ndarray, zw: np.ndarray, zl: np.ndarray):
        u, beta, _RZX, RX = solve_joint(self.re, self.chol, self.X, w, zw, zl)
        self._RX = RX
        return u, beta


def solve_joint(re: ReStructure, chol: BlockedCholesky, X: np.ndarray, w: np.ndarray,
                zw: np.ndarray, zl: np.ndarray):
    """Penalized weighted least squares for (u, beta) jointly:
    minimize sum w (zw - X beta - U u)^2 + |u|^2 with the blocked factor
    [[L, 0], [RZX', RX]] of the joint system. Returns (u, beta, RZX, RX)."""
    p = X.shape[1]
    chol.accumulate(w, zw, zl)
    UtWX = np.zeros((re.q, p))
    XtWX = np.zeros((p, p))
    xrhs = np.zeros(p)
    kpar.accumulate_x(w, zw, X, re.codes, zl, re.kcol, re.kdim, re.uoff, UtWX, XtWX, xrhs)
    chol.factor()
    RZX, RX = joint_factor(chol, UtWX, XtWX)
    u, beta = joint_back_solve(chol, RZX, RX, chol.rhs, xrhs)
    return u, beta, RZX, RX


def joint_factor(chol: BlockedCholesky, UtWX: np.ndarray, XtWX: np.ndarray):
    """The fixed-effects rows of the joint system's blocked factor
    [[L, 0], [RZX', RX]], given L already factored: RZX = L^{-1} U'WX and
    RX RX' = X'WX - RZX'RZX. Returns (RZX, RX)."""
    RZX = chol.solve_L(UtWX)
    RX = sla.cholesky(XtWX - RZX.T @ RZX, lower=True, check_finite=False)
    return RZX, RX


def joint_back_solve(chol: BlockedCholesky, RZX: np.ndarray, RX: np.ndarray, rhs_u: np.ndarray,
                     rhs_b: np.ndarray):
    """Solve the joint system [[A, U'WX], [X'WU, X'WX]] [x_u; x_b] = [rhs_u; rhs_b]
    with its blocked factor (forward through L and RX, back through RX' and L').
    Returns (x_u, x_b)."""
    cu = chol.solve_L(rhs_u)
    # scipy's trtrs without solve_triangular's argument checks (bitwise the same; optimize/trisolve.py)
    cx = solve_triangular(RX, rhs_b - RZX.T @ cu, lower=True)
    xb = solve_triangular(RX, cx, lower=True, trans=True)
    return chol.solve_Lt(cu - RZX @ xb), xb
