"""REML for GLMMs as glmmTMB's ``REML = TRUE``: beta integrated out by Laplace.

glmmTMB treats the conditional fixed effects beta as random effects with a flat
prior, so the criterion is the Laplace approximation of the likelihood integrated
over (beta, u). With phi = (theta, aux coefficients), the joint mode (beta*, u*)
of the penalized deviance pen(beta, u) = -2 sum_i l_i + |u|^2 and
D = -d2l/deta2, A = U'DU + I, B = U'DX and the Schur complement
S = X'DX - B'A^{-1}B (the profiled curvature in beta),

    dev_R(phi) = pen(beta*, u*) + log det A + log det S - p log(2 pi),

the last term being the flat prior's (2 pi)^{p/2} that TMB's Laplace keeps
(glmmTMB's logLik is -dev_R/2 and its df counts beta). For the Gaussian LMM this
is exactly lmer's REML criterion. beta* is found by Newton on the profile over u
(gradient -2 X's by the envelope theorem, Hessian 2S); phi by L-BFGS-B on central
differences (phi is small: the covariance parameters and the family's), polished
by Newton on the differenced Hessian.

Reported covariance (glmmTMB's vcov for REML fits, which marginalizes TMB's joint
precision): Var(phi) = 2 H_phi^{-1}, Var(beta) = S^{-1} + J Var(phi) J',
Cov(beta, phi) = J Var(phi), J = d beta*/d phi.

Example
-------
>>> import interlace
>>> m = interlace.glmer("TICKS ~ cHEIGHT + (1 | LOCATION)", interlace.datasets.load("grouseticks"),
...                     family="poisson", REML=True)
>>> m.optinfo["REML"]
True
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from interlace.general.objective import GeneralObjective, InnerError
from interlace.general.optimize import GeneralOpt

__all__ = ["RemlObjective", "optimize_reml"]

LOG_2PI = float(np.log(2.0 * np.pi))


class RemlObjective:
    """dev_R(phi) over phi = (theta, aux coefficients) of a :class:`GeneralObjective`."""

    MAX_NEWTON = 50  # Newton steps on beta per evaluation
    MAX_HALVINGS = 30

    def __init__(self, obj: GeneralObjective) -> None:
        self.obj = obj
        nt, p, k = obj.nt, obj.p, obj.k
        self.bidx = np.arange(nt, nt + p)
        self.pidx = np.concatenate([np.arange(nt), np.arange(nt + p, k)]).astype(int)
        self.lower = obj.lower[self.pidx]
        self.beta = None
        self.S = None

    def full(self, phi: np.ndarray, beta: np.ndarray) -> np.ndarray:
        x = np.zeros(self.obj.k)
        x[self.pidx] = phi
        x[self.bidx] = beta
        return x

    def _profile(self, theta, beta, aux):
        """pen, the gradient -2X's, S and log det A at u*(beta)."""
        o = self.obj
        base = o.X @ beta + o.offset
        u, _cur = o.inner(theta, beta, self._auxc)
        eta = o.re.eta_re(o.zl(theta), u, base)
        with np.errstate(all="ignore"):
            d = o.family.derivs(o.y, o.wt, eta, aux, order=2)
        pen = -2.0 * float(np.sum(d.l)) + float(u @ u)
        D = -d.ee
        zl = o.zl(theta)
        o.chol.accumulate(D, np.zeros(o.re.n), zl)
        logdetA = o.chol.factor()
        from interlace.kernels import general as kgen

        B = np.zeros((o.re.q, o.p))
        for j in range(o.p):
            kgen.ut_times(np.ascontiguousarray(D * o.X[:, j]), o.re.codes, zl, o.re.kcol, o.re.kdim, o.re.uoff,
                          B[:, j])
        S = o.X.T @ (D[:, None] * o.X) - B.T @ o.chol.solve(B)
        S = 0.5 * (S + S.T)
        g = -2.0 * (o.X.T @ d.e)
        o.u = u
        return pen, g, S, logdetA

    def deviance(self, phi: np.ndarray) -> float:
        o = self.obj
        phi = np.asarray(phi, dtype=float)
        x = self.full(phi, self.beta if self.beta is not None else o.x_start()[self.bidx])
        theta, beta, coefs = o.split(x)
        aux = o.aux_rows(coefs)
        self._auxc = o.aux_coefs(coefs)  # what the objective's passes take
        beta = beta.copy()
        try:
            pen, g, S, logdetA = self._profile(theta, beta, aux)
            for _ in range(self.MAX_NEWTON):
                try:
                    step = -np.linalg.solve(S, 0.5 * g)
                except np.linalg.LinAlgError:
                    return np.inf
                dec = -float(g @ step)
                if not np.isfinite(dec):
                    return np.inf
                # stop on the step's size, not the decrement: log det A and log det S are
                # first order in beta, so beta* must be exact for differences of dev_R
                if np.max(np.abs(step)) < 1e-12 * (1.0 + np.max(np.abs(beta))):
                    break
                t = 1.0
                for _h in range(self.MAX_HALVINGS):
                    bt = beta + t * step
                    res = self._profile(theta, bt, aux)
                    if np.isfinite(res[0]) and res[0] <= pen + 1e-12 * abs(pen):
                        break
                    t *= 0.5
                else:
                    break
                beta = bt
                pen, g, S, logdetA = res
                if dec < 1e-14 * (1.0 + abs(pen)) and t == 1.0:
                    break  # quadratic convergence: this full step left beta exact to rounding
            ev = np.linalg.eigvalsh(S)
        except (InnerError, np.linalg.LinAlgError):
            return np.inf
        if ev.min() <= 0:
            return np.inf
        dev = pen + logdetA + float(np.sum(np.log(ev))) - o.p * LOG_2PI
        if not np.isfinite(dev):
            return np.inf
        self.beta, self.S = beta, S
        return dev

    def beta_at(self, phi: np.ndarray) -> np.ndarray:
        self.deviance(phi)
        return self.beta.copy()

    def gradient(self, phi: np.ndarray) -> np.ndarray:
        """Central differences (phi is low-dimensional; one-sided at a bound)."""
        g = np.zeros(len(phi))
        b0 = None if self.beta is None else self.beta.copy()
        for i in range(len(phi)):
            h = 1e-5 * max(1.0, abs(phi[i]))
            pp, pm = phi.copy(), phi.copy()
            pp[i] += h
            pm[i] -= h
            self.beta = b0
            fp = self.deviance(pp)
            self.beta = b0
            if pm[i] < self.lower[i]:
                g[i] = (fp - self.deviance(phi)) / h
            else:
                g[i] = (fp - self.deviance(pm)) / (2 * h)
        self.beta = b0
        return g

    def hessian(self, phi: np.ndarray, free: np.ndarray) -> np.ndarray:
        """Second differences of dev_R on the free coordinates (zeros elsewhere)."""
        k = len(phi)
        H = np.zeros((k, k))
        f0 = self.deviance(phi)
        b0 = self.beta.copy()
        hs = 2e-4 * np.maximum(1.0, np.abs(phi))
        idx = np.flatnonzero(free)

        def f(dx):
            self.beta = b0
            return self.deviance(phi + dx)

        for a in idx:
            ea = np.zeros(k)
            ea[a] = hs[a]
            H[a, a] = (f(ea) - 2 * f0 + f(-ea)) / hs[a] ** 2
            for b in idx[idx > a]:
                eb = np.zeros(k)
                eb[b] = hs[b]
                H[a, b] = H[b, a] = (f(ea + eb) - f(ea - eb) - f(-ea + eb) + f(-ea - eb)) / (4 * hs[a] * hs[b])
        self.beta = b0
        self.deviance(phi)
        return H


def optimize_reml(obj: GeneralObjective) -> GeneralOpt:
    """Minimize dev_R; returns a :class:`GeneralOpt` in ``obj``'s layout whose
    ``hessian`` is 2 V^{-1} for the REML covariance V of (theta, beta, aux) (so the
    general engine's result builder reports glmmTMB's REML SEs)."""
    from interlace.general.optimize import optimize_general

    r = RemlObjective(obj)
    # start from the ML fit (robust: exact gradients): the REML optimum is close to it
    try:
        x0 = optimize_general(obj).x
    except (InnerError, np.linalg.LinAlgError, ValueError):
        x0 = obj.x_start()
    # ML variances on the boundary: dev_R is even in such a theta, so its derivative vanishes at 0
    # and the search could not leave it; restart those at lme4's start (1) to find an interior optimum
    nt = obj.nt
    at0 = np.isfinite(obj.lower[:nt]) & (x0[:nt] <= obj.lower[:nt] + 1e-6)
    x0 = x0.copy()
    x0[:nt][at0] = obj.re.theta_start()[at0] if hasattr(obj, "re") else 1.0
    if not np.isfinite(r.deviance(np.maximum(x0[r.pidx], r.lower))):
        x0 = obj.x_start()
    phi0 = np.maximum(x0[r.pidx], r.lower)
    r.beta = x0[r.bidx].copy()

    def fg(phi):
        d = r.deviance(phi)
        if not np.isfinite(d):
            return 1e300, np.zeros(len(phi))
        return d, r.gradient(phi)

    bounds = [(lo if np.isfinite(lo) else None, None) for lo in r.lower]
    res = minimize(fg, phi0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-7})
    phi = np.maximum(res.x, r.lower)
    dev = r.deviance(phi)
    messages: list[str] = []
    steps = 0
    at_lo = np.isfinite(r.lower) & (phi <= r.lower + 1e-8)
    free = ~at_lo
    H = r.hessian(phi, free)
    for _ in range(6):  # Newton polish on the free coordinates
        g = r.gradient(phi)
        Hf = H[np.ix_(free, free)]
        try:
            if np.linalg.eigvalsh(Hf).min() <= 0:
                break
            step = np.zeros_like(phi)
            step[free] = -np.linalg.solve(Hf, g[free])
        except np.linalg.LinAlgError:
            break
        if -float(g @ step) < 1e-12:
            break
        t, ok = 1.0, False
        for _h in range(30):
            pt = np.maximum(phi + t * step, r.lower)
            dt = r.deviance(pt)
            if np.isfinite(dt) and dt <= dev:
                ok = True
                break
            t *= 0.5
        if not ok:
            break
        phi, dev = pt, dt
        steps += 1
        H = r.hessian(phi, free)
    g = r.gradient(phi)
    dev = r.deviance(phi)
    beta, S = r.beta.copy(), r.S.copy()

    # covariance of (phi, beta) as glmmTMB's vcov(REML fit)
    m = len(phi)
    Vphi = np.zeros((m, m))
    Hf = H[np.ix_(free, free)]
    converged = bool(res.success or steps > 0) and np.all(np.abs(g[free]) < 1e-3)
    try:
        Vphi[np.ix_(free, free)] = 2.0 * np.linalg.inv(Hf)
    except np.linalg.LinAlgError:
        Vphi[:] = np.nan
        messages.append("the REML Hessian is singular: standard errors are not available")
    if free.any() and np.all(np.isfinite(Hf)) and np.linalg.eigvalsh(Hf).min() <= 0:
        converged = False
        messages.append("the REML Hessian is not positive definite")
    J = np.zeros((obj.p, m))
    for i in np.flatnonzero(free):
        h = 1e-5 * max(1.0, abs(phi[i]))
        pp, pm = phi.copy(), phi.copy()
        pp[i] += h
        pm[i] -= h
        r.beta = beta
        bp = r.beta_at(pp)
        r.beta = beta
        J[:, i] = (bp - r.beta_at(pm)) / (2 * h)
    r.beta = beta
    r.deviance(phi)
    Vbb = np.linalg.inv(S) + J @ Vphi @ J.T
    Vbp = J @ Vphi
    k = obj.k
    V = np.zeros((k, k))
    V[np.ix_(r.pidx, r.pidx)] = Vphi
    V[np.ix_(r.bidx, r.bidx)] = 0.5 * (Vbb + Vbb.T)
    V[np.ix_(r.bidx, r.pidx)] = Vbp
    V[np.ix_(r.pidx, r.bidx)] = Vbp.T
    x = r.full(phi, beta)
    bound = np.zeros(k, dtype=bool)
    bound[r.pidx] = at_lo
    Heff = np.zeros((k, k))
    fr = ~bound
    try:
        Heff[np.ix_(fr, fr)] = 2.0 * np.linalg.inv(V[np.ix_(fr, fr)])
    except np.linalg.LinAlgError:
        Heff[:] = np.nan
    gx = np.zeros(k)
    gx[r.pidx] = g
    if not converged:
        messages.append(f"the REML optimization did not converge: {res.message}")
    return GeneralOpt(x=x, deviance=float(dev), converged=converged, optimizer="lbfgsb-reml", hessian=Heff,
                      gradient=gx, at_bound=bound, messages=messages, opt_message=str(res.message),
                      newton_steps=steps)
