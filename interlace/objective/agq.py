"""The adaptive Gauss-Hermite quadrature objective (glmer's nAGQ > 1).

One grouping factor; scalar random intercept as in lme4, or a vector-valued
random effect ``(1 + x | g)`` with a product rule in k dimensions (beyond
lme4, its issue #123). Per level the rule is centred at the conditional mode
u0 (from PIRLS) and scaled by L^{-T}, L the Cholesky factor of the Fisher
curvature I + U'WU at u0: lme4's choice (``glmerAGQ`` scales by the diagonal of
its Fisher-weight L), so the numbers match R.

The deviance is -2 times the FULL marginal log-likelihood (the family's
constants included), so at nAGQ = 1 it equals the Laplace deviance and the
llf is comparable across nAGQ; lme4's own AGQ logLik omits the saturated-model
constant. See docs/agq.md.

Example
-------
>>> import interlace
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                     interlace.datasets.load("cbpp"), family="binomial", nAGQ=9)
>>> m.optinfo["nAGQ"], m.optinfo["agq_nodes"]
(9, 9)
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.polynomial.hermite import hermgauss

from interlace.kernels import agq as ka
from interlace.objective.protocol import ThetaBetaObjective

MAX_NODES = 200_000  # product rules grow as nAGQ^k
PARALLEL_WORK = 500_000  # rows x nodes from which the level loop runs on threads (measured)


@functools.lru_cache(maxsize=64)
def gh_rule(nAGQ: int, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Product Gauss-Hermite rule for the k-dimensional standard normal.

    Returns (nodes, logw): nodes (nAGQ**k, k) and logw = log W_j + |z_j|^2 / 2,
    where sum_j W_j f(z_j) approximates E f(Z), Z ~ N(0, I_k). Computed once per
    (nAGQ, k) and cached; the arrays are read-only.

    >>> z, lw = gh_rule(3)
    >>> np.round(z[:, 0], 6).tolist()
    [-1.732051, 0.0, 1.732051]
    >>> round(float(np.exp(lw - z[:, 0] ** 2 / 2).sum()), 12)
    1.0
    """
    x, w = hermgauss(int(nAGQ))
    z1 = np.sqrt(2.0) * x
    lw1 = np.log(w) - 0.5 * np.log(np.pi)
    grids = np.meshgrid(*([z1] * k), indexing="ij")
    lgrids = np.meshgrid(*([lw1] * k), indexing="ij")
    nodes = np.ascontiguousarray(np.stack([g.ravel() for g in grids], axis=1))
    logw = np.ascontiguousarray(sum(g.ravel() for g in lgrids) + 0.5 * np.sum(nodes ** 2, axis=1))
    nodes.setflags(write=False)
    logw.setflags(write=False)
    return nodes, logw


class AGQObjective(ThetaBetaObjective):
    """AGQ deviance of (theta, beta) and its exact gradient, on top of the
    Laplace objective `obj` (which supplies PIRLS, the modes and the factor).

    ``deviance(theta, beta)`` runs PIRLS (leaving ``obj.u`` at the modes) and
    integrates each level with the adaptive rule in a numba kernel.
    """

    def __init__(self, obj, nAGQ: int) -> None:
        re = obj.re
        if re.m != 1:
            raise ValueError("nAGQ > 1 needs exactly one random-effect term on one grouping factor")
        self.obj = obj
        self.mf, self.re, self.family, self.p = obj.mf, obj.re, obj.family, obj.p
        self.nAGQ = int(nAGQ)
        if self.nAGQ < 1:
            raise ValueError(f"AGQObjective needs nAGQ >= 1, got {nAGQ}")
        self.k = int(re.kdim[0])
        self.nl = int(re.nlev[0])
        nn = self.nAGQ ** self.k
        if nn > MAX_NODES:
            t = obj.mf.terms[0]
            term = f"{t.cov.name if t.cov is not None else ''}({t.lhs} | {t.group})"
            raise ValueError(f"nAGQ = {self.nAGQ} on the term {term}: its {self.k} random effects per level "
                             f"need nAGQ^{self.k} quadrature nodes (more than {MAX_NODES}); lower nAGQ or use "
                             "the Laplace approximation (nAGQ = 1)")
        self.nodes, self.logw = gh_rule(self.nAGQ, self.k)
        codes = np.asarray(re.codes[0])
        if np.any(codes < 0):
            raise ValueError("AGQ needs every row to belong to a level of the grouping factor")
        # rows sorted by level once: each level is then a contiguous slice
        self.order = np.argsort(codes, kind="stable")
        self.start = np.searchsorted(codes[self.order], np.arange(self.nl + 1)).astype(np.int64)
        resp = obj.resp
        o = self.order
        self.y = np.ascontiguousarray(resp.y[o])
        self.wt = np.ascontiguousarray(resp.wt[o])
        self.off = np.ascontiguousarray(resp.offset[o])
        self.X = np.ascontiguousarray(obj.X[o])
        self.Z = np.ascontiguousarray(re.z[o, : self.k])
        self.fast = resp.codes is not None
        self.ri = bool(self.k == 1 and np.all(self.Z == 1.0))
        self.crow = ka.split_constants(*resp.codes, self.y, self.wt) if self.fast else np.zeros(0)
        self.th_a = re.theta_a.copy()
        self.th_b = re.theta_b.copy()
        self.ntheta = int(re.nentries)  # the kernels' gradient is in Lambda's entries; re.chain maps it
        self._dev_lev = np.empty(self.nl)
        self._grad_lev = np.empty((self.nl, self.ntheta + obj.p))
        self._want_grad = False  # switched on by the first gradient() request
        self._last_x: np.ndarray | None = None
        self._last_grad: np.ndarray | None = None
        self.nfev = 0
        self.ngev = 0

    @property
    def u(self) -> np.ndarray:
        """The Laplace modes the quadrature is centred on."""
        return self.obj.u

    # ------------------------------------------------------------------ info
    def has_exact_gradient(self) -> bool:
        """Exact gradient for the built-in fast-path families whose per-row
        derivatives (score, observed information, d w/d eta) are available."""
        if not self.fast:
            return False
        resp = self.obj.resp
        has = getattr(resp, "has_derivatives", None)
        return bool(has()) if has is not None else bool(resp.canonical)

    # ------------------------------------------------------------------ objective
    def deviance(self, theta: np.ndarray, beta: np.ndarray) -> float:
        """-2 x the AGQ marginal log-likelihood at (theta, beta), constants included."""
        theta = np.asarray(theta, dtype=float)
        beta = np.asarray(beta, dtype=float)
        obj = self.obj
        obj.nfev += 1
        self.nfev += 1
        obj.pirls(theta, beta)
        obj.beta = np.array(beta, copy=True)
        want = self._want_grad and self.has_exact_gradient()
        dev = self._evaluate(theta, beta, want)
        self._last_x = np.concatenate([theta, beta])
        return dev

    def gradient(self, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """Exact d deviance / d(theta, beta) (theta first), at (theta, beta)."""
        theta = np.asarray(theta, dtype=float)
        beta = np.asarray(beta, dtype=float)
        x = np.concatenate([theta, beta])
        self.obj.ngev += 1
        self.ngev += 1
        if self._last_grad is not None and self._last_x is not None and np.array_equal(x, self._last_x):
            return self._last_grad.copy()
        self._want_grad = True
        self.deviance(theta, beta)
        self.obj.nfev -= 1  # that evaluation was on the gradient's account
        self.nfev -= 1
        return self._last_grad.copy()

    # ------------------------------------------------------------------ internals
    def _evaluate(self, theta: np.ndarray, beta: np.ndarray, want_grad: bool) -> float:
        obj = self.obj
        re, resp = obj.re, obj.resp
        k = self.k
        lam = re.lambdas(theta)[0]
        u0 = np.ascontiguousarray(obj.u.reshape(self.nl, k))
        Lfac = obj.chol.L11  # lower factors at u0 (Fisher weights), as lme4
        if not self.fast:
            self._last_grad = None
            return self._evaluate_generic(lam, u0, Lfac, beta)
        base = self.X @ beta + self.off
        zl = np.ascontiguousarray(self.Z @ lam)
        if want_grad:
            s, h, wd = resp.loglik_terms()
            o = self.order
            s0 = np.ascontiguousarray(s[o])
            h0 = np.ascontiguousarray(h[o])
            w0 = np.ascontiguousarray(resp.w[o])
            wd0 = np.ascontiguousarray(wd[o])
        else:
            s0 = h0 = w0 = wd0 = np.zeros(0)
        fam, link = resp.codes
        # threads pay off only for big passes (their start-up costs ~ms on a busy machine)
        work = self.y.shape[0] * self.nodes.shape[0]
        kern = ka.agq_levels_parallel if (work >= PARALLEL_WORK and self.nl >= 64) else ka.agq_levels
        kern(fam, link, want_grad, self.ri, self.y, self.wt, self.crow, base, self.X, self.Z, zl, self.start, u0,
                      Lfac, self.nodes, self.logw, np.ascontiguousarray(lam), self.th_a, self.th_b,
                      s0, h0, w0, wd0, self._dev_lev, self._grad_lev)
        g = np.zeros(self.ntheta + obj.p)
        devsum = ka.sum_levels(self._dev_lev, self._grad_lev, want_grad, g)
        if want_grad:
            g = np.concatenate([re.chain(theta, g[:self.ntheta]), g[self.ntheta:]])
        self._last_grad = g if want_grad else None
        return float(self._total(devsum, lam, u0, beta))

    def _total(self, devsum: float, lam, u0, beta) -> float:
        """Add the saturated-model constant: -2 loglik = sum(dev) + const."""
        resp = self.obj.resp
        if np.isfinite(resp.sat_const):
            return devsum + resp.sat_const
        raise ValueError("AGQ needs a family whose saturated log-likelihood is finite")

    def _evaluate_generic(self, lam, u0, Lfac, beta) -> float:
        """NumPy path for families without numba kernels: the same sum, node by
        node over all rows (deviance only; the outer optimizer then uses finite
        differences)."""
        fam = self.obj.family
        base = self.X @ beta + self.off
        zl = self.Z @ lam
        codes = np.repeat(np.arange(self.nl), np.diff(self.start))
        Linv = np.linalg.inv(Lfac)  # (nl, k, k)
        nn = self.nodes.shape[0]
        logv = np.empty((self.nl, nn))
        for j in range(nn):
            t = u0 + np.einsum("lba,b->la", Linv, self.nodes[j])  # u0 + L^{-T} z_j
            eta = base + np.einsum("ia,ia->i", zl, t[codes])
            mu = np.asarray(fam.linkinv(eta), dtype=float)
            dr = np.asarray(fam.dev_resids(self.y, mu, self.wt), dtype=float)
            devc = np.bincount(codes, weights=dr, minlength=self.nl) + np.sum(t * t, axis=1)
            logv[:, j] = self.logw[j] - 0.5 * devc
        mx = logv.max(axis=1)
        lse = mx + np.log(np.exp(logv - mx[:, None]).sum(axis=1))
        ld = 2.0 * np.log(np.diagonal(Lfac, axis1=1, axis2=2)).sum(axis=1)
        return self._total(float(np.sum(ld - 2.0 * lse)), lam, u0, beta)

    # ------------------------------------------------------------------ result
    def finalize(self, res, opt) -> None:
        """Record the quadrature on the result. The conditional modes and SDs
        stay those of the Laplace step (lme4's ranef/condVar do the same)."""
        res.nAGQ = self.nAGQ
        res.optinfo["nAGQ"] = self.nAGQ
        res.optinfo["agq_nodes"] = int(self.nodes.shape[0])
        res.optinfo["agq_dim"] = self.k
        res.optinfo["agq_gradient"] = "exact" if self.has_exact_gradient() else "finite differences"
        res.optinfo["loglik_convention"] = (
            "full marginal log-likelihood (saturated-model constant included; lme4's logLik omits it "
            "for nAGQ > 1)")
