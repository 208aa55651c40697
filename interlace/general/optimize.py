"""Outer optimization of the general Laplace objective (glmmTMB's nlminb step).

L-BFGS-B on the exact gradient over (theta, beta, aux), from the fit without
random effects; then Newton steps on the Hessian (central differences of the
exact gradient) to polish the optimum, as the same Hessian gives the
covariance matrix (glmmTMB's sdreport). Derivative-free optimizers
("bobyqa", "nelder-mead") run on the deviance alone and are polished the same way.

Example
-------
>>> import interlace
>>> m = interlace.glmer("TICKS ~ YEAR + (1 | LOCATION)", interlace.datasets.load("grouseticks"),
...                     family="negativebinomial")
>>> m.optinfo["engine"]
'general'
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from interlace.control import DEFAULT_CONTROL, Control
from interlace.optimize.checks import at_bound, verdict
from interlace.optimize.lbfgsb import minimize_lbfgsb
from interlace.optimize.outer import _minimize, settle_boundary

__all__ = ["GeneralOpt", "optimize_general", "hessian"]

MAXFUN = 20000  # evaluations of the deviance and gradient in one guarded L-BFGS-B minimization


@dataclass
class GeneralOpt:
    x: np.ndarray
    deviance: float
    converged: bool
    optimizer: str
    hessian: np.ndarray | None
    gradient: np.ndarray
    at_bound: np.ndarray
    messages: list[str] = field(default_factory=list)
    opt_message: str = ""
    newton_steps: int = 0


def hessian(obj, x: np.ndarray, at_bound: np.ndarray) -> np.ndarray:
    """Central differences of the exact gradient (one-sided at a bound)."""
    k = len(x)
    H = np.zeros((k, k))
    for i in range(k):
        h = 1e-4 * max(1.0, abs(x[i]))
        xp = x.copy()
        xp[i] += h
        gp = obj.gradient(xp)
        if at_bound[i] or x[i] - h < obj.lower[i]:
            H[:, i] = (gp - obj.gradient(x)) / h
        else:
            xm = x.copy()
            xm[i] -= h
            H[:, i] = (gp - obj.gradient(xm)) / (2.0 * h)
    obj.deviance(x)  # leave the state at x
    return 0.5 * (H + H.T)


def lbfgs_guarded(fg, x0: np.ndarray, lower: np.ndarray, *, maxiter: int = 3000, ftol: float = 1e-14,
                  gtol: float = 1e-8, maxfun: int = MAXFUN):
    """L-BFGS-B on fg (value, gradient) that copes with points outside the
    family's support (fg value 1e300): scipy's line search cannot backtrack
    from those, so after such a stall the search is repeated inside a box
    around the current point (a trust region that grows on success and shrinks
    when the box's corner leaves the support) until it ends inside the box.

    ``maxfun`` caps the evaluations of all the runs together (each run alone
    had scipy's 15,000, and up to 61 runs: a fit that cannot progress spun for
    many minutes); when it is spent the best point is returned with
    ``success=False`` and a message saying so."""
    state = {"bad": False, "nfev": 0}

    def f(x):
        state["nfev"] += 1
        v, g = fg(x)
        if v >= 1e299:
            state["bad"] = True
        return v, g

    def opts():
        return {"maxiter": maxiter, "ftol": ftol, "gtol": gtol, "maxls": 60,
                "maxfun": max(maxfun - state["nfev"], 1)}

    # scipy's L-BFGS-B without minimize()'s wrappers: the same iterates (optimize/lbfgsb.py)
    res = minimize_lbfgsb(f, x0, lower, **opts())
    if not state["bad"]:
        return res
    x, fx = (res.x, res.fun) if res.fun < fg(x0)[0] else (x0.copy(), fg(x0)[0])
    r = 0.5
    for _ in range(60):
        if state["nfev"] >= maxfun:
            res.x, res.fun = x, fx
            res.success = False
            res.message = f"stopped after {state['nfev']} evaluations without converging (evaluation limit)"
            return res
        lo = np.maximum(x - r, lower)
        hi = x + r
        state["bad"] = False
        rr = minimize_lbfgsb(f, x, lo, hi, **opts())
        if rr.fun < fx - 1e-12 * abs(fx):
            inside = np.all((rr.x > lo + 1e-10 * r) | (lo <= lower)) and np.all(rr.x < hi - 1e-10 * r)
            x, fx = rr.x, rr.fun
            if inside and not state["bad"]:
                break
            r *= 4.0
        else:
            if not state["bad"] and r >= 0.5:
                break  # no progress from a feasible box: converged
            r *= 0.25
            if r < 1e-10:
                res.x, res.fun = x, fx
                res.success = False
                res.message = "no progress: every step from the final point leaves the family's support"
                return res
    else:
        res.x, res.fun = x, fx
        res.success = False
        res.message = "no convergence after 60 trust-region rounds"
        return res
    res.x, res.fun = x, fx
    res.success, res.message = True, "converged (guarded L-BFGS-B)"
    return res


def _bound_mask(obj, x: np.ndarray) -> np.ndarray:
    lo = obj.lower
    return np.isfinite(lo) & (x <= lo + 1e-8)


def _polish(obj, x: np.ndarray, dev: float, lower: np.ndarray):
    """Newton steps on the free coordinates; returns (x, dev, H, steps, H_at_x): H_at_x says
    whether H was computed at the returned x (then with no parameter on a bound, the
    caller need not difference the gradient again)."""
    steps = 0
    H = None
    H_at_x = False
    for _ in range(8):
        g = obj.gradient(x)
        ab = _bound_mask(obj, x) & (g > 0)  # at a bound and pushing into it
        free = ~ab
        H = hessian(obj, x, ab)
        H_at_x = not _bound_mask(obj, x).any()
        Hf = H[np.ix_(free, free)]
        try:
            ev = np.linalg.eigvalsh(Hf)
            if ev.min() <= 0:
                break
            step = np.zeros_like(x)
            step[free] = -np.linalg.solve(Hf, g[free])
        except np.linalg.LinAlgError:
            break
        dec = -float(g @ step)
        if dec < 1e-12:
            break
        t = 1.0
        improved = False
        for _h in range(30):
            xt = np.maximum(x + t * step, lower)
            dt = obj.deviance(xt)
            if np.isfinite(dt) and dt <= dev + 1e-12 * abs(dev):
                improved = True
                break
            t *= 0.5
        if not improved:
            break
        x, dev = xt, dt
        steps += 1
        if dec < 1e-9:
            # a last step this small (|dx| ~ sqrt(dec / eigenvalue)) leaves the differenced
            # Hessian unchanged far below its own error: it stands for the Hessian at x
            H_at_x = H_at_x and t == 1.0
            break
        H_at_x = False
    return x, dev, H, steps, H_at_x


def optimize_general(obj, optimizer: str = "lbfgsb", theta0=None, control: Control = DEFAULT_CONTROL) -> GeneralOpt:
    """Minimize the Laplace deviance of a :class:`GeneralObjective` (in memory or
    on Dask); the boundary probe and the verdict are those of every engine."""
    x0 = obj.x_start()
    if theta0 is not None:
        theta0 = np.asarray(theta0, dtype=float).reshape(-1)
        x0[: min(len(theta0), obj.nt)] = theta0[: obj.nt]  # side models' theta (if any) keep their start
    lower = obj.lower
    x0 = np.maximum(x0, lower)

    def fg(x):
        d = obj.deviance(x)
        if not np.isfinite(d):
            return 1e300, np.zeros(len(x))
        return d, obj.gradient(x)

    def run(x_start):
        if optimizer == "lbfgsb":
            return lbfgs_guarded(fg, x_start, lower)
        return _minimize(lambda x: fg(x)[0], None, x_start, lower, optimizer)

    res = run(x0)
    x = np.maximum(np.asarray(res.x, dtype=float), lower)
    state = {"steps": 0}

    def finish(x):
        x, dev, H, steps, H_at_x = _polish(obj, x, obj.deviance(x), lower)
        state["steps"] += steps
        g = obj.gradient(x)
        if H is None or (steps and not H_at_x):
            H = hessian(obj, x, _bound_mask(obj, x))
        return x, obj.deviance(x), g, H

    def restart(x_start):
        r = run(x_start)
        return np.maximum(np.asarray(r.x, dtype=float), lower), r

    nt = obj.nt
    x, dev, g, H, res, gain = settle_boundary(obj.deviance, (*finish(x), res), lower[:nt], nt, finish, restart,
                                              control)
    dev = obj.deviance(x)
    bound = at_bound(x, lower, control)
    steps = state["steps"]
    v = verdict(g, H, bound, optimizer_ok=bool(res.success) or steps > 0, optimizer=optimizer,
                optimizer_status=getattr(res, "status", -1), optimizer_message=str(res.message),
                inner_converged=obj.inner_converged, inner="Newton iterations for the random effects",
                neighbour_gain=gain, control=control)
    return GeneralOpt(x=x, deviance=float(dev), converged=v.converged, optimizer=optimizer, hessian=H,
                      gradient=g, at_bound=_bound_mask(obj, x), messages=v.messages, opt_message=str(res.message),
                      newton_steps=steps)
