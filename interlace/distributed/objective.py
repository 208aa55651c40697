"""The Laplace objective with its row passes run on the cluster.

The driver holds everything q- and p-sized (theta, beta, u, the blocked
Cholesky factor, blocks of A^{-1}); every pass over the rows is
``rows.run(pass, payload)`` on its RowBackend -- on Dask a round of
``Rounds.run`` whose partitions run the engine's numba kernels. The loops
are those of ``objective.laplace.LaplaceObjective`` (its fused PIRLS: the
pass at a trial point also sums the next iteration's system, so a PIRLS
iteration costs one round), with the same convergence rules, so the fit is
the same model; only the order of the additions differs.

Example
-------
>>> from interlace.distributed.objective import DistributedLaplaceObjective
>>> DistributedLaplaceObjective.MAX_ITER > 0
True
"""

from __future__ import annotations

import numpy as np

from interlace.control import DEFAULT_CONTROL
from interlace.distributed import blocks as B
from interlace.objective.laplace import LaplaceObjective, PIRLSError, joint_back_solve, joint_factor
from interlace.objective.protocol import RowBackend, ThetaBetaObjective
from interlace.objective.predictor import BlockedCholesky, ReStructure
from interlace.objective.response import GLMResponse


class DistributedReStructure(ReStructure):
    """ReStructure built from term metadata (no per-row arrays) and the
    global set of (level_j, level_0) pairs found over all partitions."""

    def __init__(self, terms, pair_keys: list[np.ndarray], n: int):
        self._pair_keys = pair_keys
        super().__init__(terms)
        self.n = int(n)

    def _build_pattern(self) -> None:
        # the pair keys were found on the workers (the rows live there)
        self.pairidx = np.zeros((self.m, 0), dtype=np.int64)
        self._layout_pairs([np.zeros(0, np.int64)] + [self._pair_keys[j] for j in range(1, self.m)])



class DistributedLaplaceObjective(ThetaBetaObjective):
    """Same interface as LaplaceObjective (what optimize_glmm and the result
    builder use); the rows stay on the workers."""

    MAX_ITER = LaplaceObjective.MAX_ITER
    MAX_HALVINGS = LaplaceObjective.MAX_HALVINGS

    def __init__(self, re: DistributedReStructure, rows: RowBackend, family, p: int, sat_const: float,
                 tol: float = DEFAULT_CONTROL.pirls_tol) -> None:
        self.re = re
        self.rows = rows  # the RowBackend: every pass over the rows is rows.run(pass, payload)
        self.family = family
        self.chol = BlockedCholesky(re)
        self.p = int(p)
        self.tol = tol
        self.sat_const = float(sat_const)
        self.need_ll = not np.isfinite(self.sat_const)
        # a one-row response answers the family questions (fast path, canonical, derivatives)
        self.resp_meta = GLMResponse(np.array([0.5]), np.ones(1), np.zeros(1), family)
        self.u = np.zeros(re.q)
        self.beta = np.zeros(self.p)
        self.pirls_iters = 0
        self.nfev = 0
        self.ngev = 0
        self.pirls_converged = True
        self.last_logdet = np.nan
        self._dev = np.nan
        self._last: dict = {}
        self._token = 0

    # ---------------------------------------------------------------- rounds
    def _payload(self, theta, beta, u, **kw) -> dict:
        pl = {"lams": self.re.lambdas(theta), "beta": np.asarray(beta, float), "u": np.asarray(u, float)}
        pl.update(kw)
        return pl

    def _load(self, chol: BlockedCholesky, out: dict) -> None:
        """Put summed cross-products into a factor's buffers (what accumulate fills)."""
        chol.A11[...] = out["A11"]
        chol.V21[...] = out["V21"]
        chol.A22[...] = out["A22"]
        chol.rhs[...] = out["rhs"]

    def _fused(self, theta, beta, u, mode: str) -> float:
        out = self.rows.run(B.pirls_round, self._payload(theta, beta, u, mode=mode, ll=self.need_ll))
        self._load(self.chol, out)
        self._last = out
        return float(out["dev"])

    def _dev_only(self, theta, beta, u) -> float:
        return float(self.rows.run(B.deviance_round, self._payload(theta, beta, u))["dev"])

    def _m2ll(self, dev: float) -> float:
        return dev + self.sat_const if not self.need_ll else float(self._last["m2ll"])

    def has_exact_gradient(self) -> bool:
        return self.resp_meta.has_derivatives()

    # ---------------------------------------------------------------- PIRLS (u only)
    def pirls(self, theta: np.ndarray, beta: np.ndarray) -> float:
        """u*(theta, beta) by the fused PIRLS of LaplaceObjective; the factor is left at u*."""
        chol, re = self.chol, self.re
        u = self.u if np.all(np.isfinite(self.u)) else np.zeros(re.q)
        dev = self._fused(theta, beta, u, "u")
        pdev = dev + u @ u
        if not np.isfinite(pdev):
            u = np.zeros(re.q)
            dev = self._fused(theta, beta, u, "u")
            pdev = dev + u @ u
        converged = False
        for _ in range(self.MAX_ITER):
            self.pirls_iters += 1
            chol.factor()
            unew = chol.solve(chol.rhs)
            delta = unew - u
            dev_t = self._fused(theta, beta, unew, "u")
            pdev_t = dev_t + unew @ unew
            step = 1.0
            if not (np.isfinite(pdev_t) and pdev_t <= pdev + 1e-12 * abs(pdev)):
                for _h in range(self.MAX_HALVINGS):
                    step *= 0.5
                    ut = u + step * delta
                    dt = self._dev_only(theta, beta, ut)
                    if np.isfinite(dt + ut @ ut) and dt + ut @ ut <= pdev + 1e-12 * abs(pdev):
                        break
                else:
                    raise PIRLSError("PIRLS step-halvings failed to reduce the penalized deviance")
                unew = ut
                dev_t = self._fused(theta, beta, unew, "u")
                pdev_t = dev_t + unew @ unew
            change = abs(pdev - pdev_t)
            ustep = float(np.max(np.abs(step * delta))) if delta.size else 0.0
            u, pdev, dev = unew, pdev_t, dev_t
            if change <= self.tol * (abs(pdev) + 1.0) and ustep <= DEFAULT_CONTROL.pirls_u_tol * (1.0 + float(np.max(np.abs(u)))):
                converged = True
                break
        self.pirls_converged = converged
        self.last_logdet = chol.factor()
        self.u = u
        self._dev = dev
        return pdev

    def deviance(self, theta: np.ndarray, beta: np.ndarray) -> float:
        """Laplace deviance D(theta, beta)."""
        self.nfev += 1
        self.pirls(theta, beta)
        self.beta = np.array(beta, copy=True)
        return self._m2ll(self._dev) + self.u @ self.u + self.last_logdet

    # ---------------------------------------------------------------- gradients
    def _next_token(self) -> int:
        self._token += 1
        return self._token

    def gradient(self, theta: np.ndarray, beta: np.ndarray, with_beta: bool = True) -> np.ndarray:
        """Exact dD/d(theta, beta) at the current PIRLS state (call deviance first): two rounds."""
        self.ngev += 1
        re, chol = self.re, self.chol
        canonical = self.resp_meta.canonical
        ainv = chol.selected_inverse_pairs()
        pl = self._payload(theta, beta, self.u, ainv=ainv, token=self._next_token(), canonical=canonical,
                           joint=False)
        lev = self.rows.run(B.leverage_round, pl)
        if canonical:
            xi = chol.solve(lev["Utv"])
        else:
            # u* moves with the observed information H (LaplaceObjective.gradient)
            ch = BlockedCholesky(re)
            self._load(ch, lev)
            ch.factor()
            xi = ch.solve(lev["Utv"])
        pl.update(xi=xi, xb=None, with_beta=with_beta)
        g = self.rows.run(B.gradient_round, pl)
        gt = self.re.chain(theta, g["gt"])  # Lambda's entries -> theta
        return np.concatenate([gt, g["gb"]]) if with_beta else gt

    def gradient_joint(self, theta: np.ndarray) -> np.ndarray:
        """Exact dD0/dtheta of the nAGQ = 0 deviance (LaplaceObjective.gradient_joint): two rounds."""
        self.ngev += 1
        re, chol = self.re, self.chol
        canonical = self.resp_meta.canonical
        ainv = chol.selected_inverse_pairs()
        pl = self._payload(theta, self.beta, self.u, ainv=ainv, token=self._next_token(), canonical=canonical,
                           joint=True)
        lev = self.rows.run(B.leverage_round, pl)
        ch = chol if canonical else BlockedCholesky(re)
        self._load(ch, lev)
        ch.factor()
        RZX, RX = joint_factor(ch, lev["UtHX"], lev["XtHX"])
        xu, xb = joint_back_solve(ch, RZX, RX, lev["Utv"], lev["Xtv"])
        if canonical:
            # A's factor again (the same weights were summed: reload and refactor)
            self._load(ch, lev)
            ch.factor()
        pl.update(xi=xu, xb=xb, with_beta=False)
        return self.re.chain(theta, self.rows.run(B.gradient_round, pl)["gt"])

    # ---------------------------------------------------------------- nAGQ = 0
    def _joint_solve_loaded(self):
        """(u, beta) of the penalized weighted least squares whose sums the
        last joint round loaded (objective.laplace.solve_joint after accumulate)."""
        chol, out = self.chol, self._last
        chol.factor()
        RZX, RX = joint_factor(chol, out["UtWX"], out["XtWX"])
        u, beta = joint_back_solve(chol, RZX, RX, chol.rhs, out["xrhs"])
        self._RX = RX
        return u, beta

    def _initial_beta(self) -> np.ndarray:
        out = self.rows.run(B.init_round, {})
        return np.linalg.lstsq(out["XtWX"], out["xrhs"], rcond=None)[0]

    def pirls_joint(self, theta: np.ndarray, tol: float | None = None, u_tol: float | None = None) -> float:
        """PIRLS over (u, beta) jointly (lme4's nAGQ = 0), as LaplaceObjective.pirls_joint
        (its stopping rule is the objective's own ``tol``: each iteration is a cluster round)."""
        self.nfev += 1
        u, beta = self.u.copy(), self.beta.copy()
        dev = self._fused(theta, beta, u, "joint")
        if not np.isfinite(dev + u @ u):
            u[:] = 0.0
            beta = self._initial_beta()
            dev = self._fused(theta, beta, u, "joint")
        pdev = dev + u @ u
        for _ in range(self.MAX_ITER):
            self.pirls_iters += 1
            unew, bnew = self._joint_solve_loaded()
            du, db = unew - u, bnew - beta
            dev_t = self._fused(theta, bnew, unew, "joint")
            pdev_t = dev_t + unew @ unew
            step = 1.0
            ut, bt = unew, bnew
            if not (np.isfinite(pdev_t) and pdev_t <= pdev + 1e-12 * abs(pdev)):
                for _h in range(self.MAX_HALVINGS):
                    step *= 0.5
                    ut, bt = u + step * du, beta + step * db
                    dt = self._dev_only(theta, bt, ut)
                    if np.isfinite(dt + ut @ ut) and dt + ut @ ut <= pdev + 1e-12 * abs(pdev):
                        break
                else:
                    raise PIRLSError("PIRLS step-halvings failed to reduce the penalized deviance")
                dev_t = self._fused(theta, bt, ut, "joint")
                pdev_t = dev_t + ut @ ut
            change = abs(pdev - pdev_t)
            ustep = float(np.max(np.abs(step * du))) if du.size else 0.0
            u, beta, pdev, dev = ut, bt, pdev_t, dev_t
            if change <= self.tol * (abs(pdev) + 1.0) and ustep <= DEFAULT_CONTROL.pirls_u_tol * (1.0 + float(np.max(np.abs(u)))):
                break
        # the last joint round summed A at (u, beta): its factor is L
        self.last_logdet = self.chol.factor()
        self.u, self.beta, self._dev = u, beta, dev
        return self._m2ll(dev) + u @ u + self.last_logdet

    # ---------------------------------------------------------------- post-fit
    def rx_at(self, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """RX of the joint system at the current state (vcov given theta, lme4's
        use.hessian = FALSE); one round; the factor is restored afterwards."""
        self._fused(theta, beta, self.u, "joint")
        self._joint_solve_loaded()
        RX = self._RX
        self.deviance(theta, beta)
        return RX
