"""The one convergence verdict of every engine (LMM, Laplace/AGQ, general, Dask).

lme4's checkConv (gradient scaled by the Hessian's Cholesky factor, the Hessian's
eigenvalues), the optimizer's own code, the inner loop's (PIRLS / Newton on u) status and
the boundary check of issue 19 item 3: a fit that ends with a variance parameter on its
bound is only converged when no feasible neighbour off the bound has a lower deviance.
Tolerances come from :class:`interlace.control.Control`.

Example
-------
>>> import numpy as np
>>> v = verdict(np.zeros(2), np.diag([1e-9, 1e-9]), np.zeros(2, bool), optimizer_ok=True, optimizer="lbfgsb")
>>> v.converged, v.messages
(False, ['Hessian is numerically singular: parameters are not uniquely determined'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from interlace.control import DEFAULT_CONTROL, Control

__all__ = ["FAILURE_MARKERS", "is_failure_message", "check_convergence", "Verdict", "verdict",
           "at_bound", "better_neighbour", "BETTER_NEIGHBOUR"]

# Messages that mean the fit did not converge (lme4's negative codes); "nearly
# unidentifiable" is advice (positive codes).
FAILURE_MARKERS = ("failed to converge", "unable to evaluate scaled gradient", "numerically singular",
                   "Problem with Hessian check", "did not converge", "convergence code",
                   "lower deviance next to the boundary")
BETTER_NEIGHBOUR = "lower deviance next to the boundary"


def is_failure_message(msg: str) -> bool:
    """True for a convergence message that makes ``result.converged`` False.

    >>> is_failure_message("Hessian is numerically singular: parameters are not uniquely determined")
    True
    >>> is_failure_message("Model is nearly unidentifiable: large eigenvalue ratio")
    False
    """
    return any(k in msg for k in FAILURE_MARKERS)


def check_convergence(grad, hess, at_bound, tol_grad: float = DEFAULT_CONTROL.check_conv_grad,
                      tol_hess: float = DEFAULT_CONTROL.check_conv_hess) -> list[str]:
    """lme4's checkConv (with checkHess) on the free parameters: the gradient
    scaled by the Cholesky factor of the Hessian (its element-wise minimum
    with the raw gradient, as lme4), then the Hessian's eigenvalues:
    negative -> degenerate, near zero -> numerically singular, largest above
    1/tol or ratio below tol -> nearly unidentifiable. Parameters at a bound
    (a singular fit, reported separately) are left out.

    >>> check_convergence(np.zeros(2), np.diag([1e-9, 1e-9]), np.zeros(2, bool))
    ['Hessian is numerically singular: parameters are not uniquely determined']
    """
    msgs: list[str] = []
    free = ~np.asarray(at_bound, bool)
    if hess is None or not np.any(free):
        return msgs
    H = hess[np.ix_(free, free)]
    g = grad[free]
    if not (np.all(np.isfinite(H)) and np.all(np.isfinite(g))):
        return ["Problem with Hessian check (infinite or missing values?)"]
    try:
        scgrad = np.linalg.solve(np.linalg.cholesky(H), g)
    except np.linalg.LinAlgError:
        scgrad = None
    if scgrad is None or not np.all(np.isfinite(scgrad)):
        msgs.append("unable to evaluate scaled gradient")
    else:
        mingrad = np.minimum(np.abs(scgrad), np.abs(g))
        mg = float(np.max(mingrad)) if mingrad.size else 0.0
        if mg > tol_grad:
            comp = int(np.argmax(mingrad)) + 1
            msgs.append(f"Model failed to converge with max|grad| = {mg:.6g} (tol = {tol_grad}, component {comp})")
    ev = np.linalg.eigvalsh(H)
    nneg = int(np.sum(ev < -tol_hess))
    if nneg:
        msgs.append(f"Model failed to converge: degenerate  Hessian with {nneg} negative eigenvalues")
    elif np.any(np.abs(ev) < tol_hess) or scgrad is None:
        msgs.append("Hessian is numerically singular: parameters are not uniquely determined")
    else:
        if ev.max() * tol_hess > 1:
            msgs.append("Model is nearly unidentifiable: very large eigenvalue\n - Rescale variables?")
        if ev.min() / ev.max() < tol_hess:
            msgs.append("Model is nearly unidentifiable: large eigenvalue ratio\n - Rescale variables?")
    return msgs


def at_bound(x: np.ndarray, lower: np.ndarray, control: Control = DEFAULT_CONTROL) -> np.ndarray:
    """Parameters within ``control.boundary_tol`` of a finite lower bound (every engine's rule).

    >>> at_bound(np.array([0.0, 0.5, -2.0]), np.array([0.0, 0.0, -np.inf])).tolist()
    [True, False, False]
    """
    lower = np.asarray(lower, dtype=float)
    return np.isfinite(lower) & (np.asarray(x, dtype=float)[: len(lower)] <= lower + control.boundary_tol)


def better_neighbour(fun: Callable[[np.ndarray], float], x: np.ndarray, f0: float, at_bound: np.ndarray,
                     lower: np.ndarray, control: Control = DEFAULT_CONTROL) -> tuple[np.ndarray, float] | None:
    """A feasible point next to ``x`` with a lower value than ``f0``, or None.

    Each parameter at its lower bound is moved off it by the probe steps of
    ``control`` (the others held), the best point kept. The deviance is even in
    a zero diagonal of Lambda, so its gradient there is zero and a gradient
    method can stop on the bound although the optimum is inside (lme4's gotway
    hessianfly fit); a probe sees it. ``fun`` returns inf where it cannot be
    evaluated.

    >>> f = lambda z: float((z[0] - 0.5) ** 2 - 0.2 * z[0] ** 2)  # noqa: E731
    >>> better_neighbour(f, np.zeros(1), f(np.zeros(1)), np.array([True]), np.zeros(1))[0].round(2).tolist()
    [0.3]
    """
    best, bestf = None, f0
    thresh = 1e-9 * (abs(f0) + 1.0)
    for i in np.flatnonzero(at_bound):
        for h in control.boundary_probe:
            xt = np.array(x, dtype=float, copy=True)
            xt[i] = max(lower[i], x[i]) + h
            try:
                ft = float(fun(xt))
            except (np.linalg.LinAlgError, FloatingPointError, ArithmeticError, RuntimeError):
                continue
            if np.isfinite(ft) and ft < bestf - thresh:
                best, bestf = xt, ft
    return None if best is None else (best, bestf)


@dataclass
class Verdict:
    """converged, and the messages behind it (lme4's optinfo$conv)."""

    converged: bool
    messages: list[str] = field(default_factory=list)


def verdict(gradient: np.ndarray | None, hessian: np.ndarray | None, at_bound: np.ndarray, *,
            optimizer_ok: bool, optimizer: str, optimizer_status: int | str = -1, optimizer_message: str = "",
            inner_converged: bool = True, inner: str = "PIRLS",
            neighbour_gain: float | None = None, control: Control = DEFAULT_CONTROL) -> Verdict:
    """The one convergence verdict: the optimizer's own success, lme4's gradient and
    Hessian checks on the free parameters, the inner loop's convergence at the
    optimum and the boundary check (``neighbour_gain``: how much lower the deviance
    is at a feasible neighbour off the bound, None when there is none). Any message
    of :data:`FAILURE_MARKERS` makes the fit not converged, whatever the engine.
    """
    msgs: list[str] = []
    if not optimizer_ok:
        msgs.append(f"optimizer ({optimizer}) convergence code: {optimizer_status} ({optimizer_message})")
    if gradient is not None:
        msgs += check_convergence(np.asarray(gradient, dtype=float), hessian, at_bound,
                                  control.check_conv_grad, control.check_conv_hess)
    if not inner_converged:
        msgs.append(f"{inner} did not converge at the optimum")
    if neighbour_gain is not None:
        msgs.append(f"Model failed to converge: {BETTER_NEIGHBOUR} (by {neighbour_gain:.3g} in the deviance): "
                    "a variance parameter is on its bound although moving off it improves the fit")
    return Verdict(bool(optimizer_ok) and inner_converged and not any(map(is_failure_message, msgs)), msgs)
