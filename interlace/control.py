"""One object for the optimizer's tolerances (lme4's ``glmerControl``).

Every engine (LMM, Laplace/AGQ, general likelihood, Dask) reads its tolerances from a
:class:`Control`; nothing is set on an objective while it is being optimized.

Example
-------
>>> from interlace.control import Control
>>> Control().check_conv_grad, Control(check_conv_grad=1e-3).check_conv_grad
(0.002, 0.001)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Control", "DEFAULT_CONTROL"]


@dataclass(frozen=True)
class Control:
    """Tolerances of the optimization and of its convergence verdict.

    check_conv_grad: lme4's ``check.conv.grad`` tolerance on the scaled gradient.
    check_conv_hess: lme4's ``check.conv.hess`` tolerance on the Hessian's eigenvalues.
    boundary_tol: a variance parameter this close to its lower bound is "at the bound"
        (left out of the gradient check; lme4's ``boundary.tol``).
    singular_tol: lme4's ``isSingular`` tolerance on the diagonal of Lambda.
    boundary_probe: probe steps (in theta units) off a bound: a better feasible neighbour
        there means the optimum is not on the bound (issue 19 item 3).
    boundary_restarts: how many times the optimizer restarts from a better neighbour.
    boundary_gain_tol: a neighbour is better when its deviance is lower by more than this
        times (|deviance| + 1) (rounding noise of the inner loop is far below it).
    stage1_tol, stage1_u_tol, stage1_maxiter: the nAGQ = 0 PIRLS tolerances and the
        iteration cap of lme4's stage 1 while it only seeds stage 2.
    stage2_gtol: stage 2's gradient tolerance in its scaled coordinates (standard-error
        units); the Newton polish takes the rest.
    stage2_restarts, stage2_restart_grad: stage 2 restarts (rescaled by differences of the
        exact gradient) at most this often while it stops with a scaled gradient above this
        (a far start, theta0 = 50, leaves stage 1 where the deviance is concave in theta).
    pirls_tol, pirls_u_tol, pirls_max_iter, pirls_max_halvings: the inner loop of the
        exponential families (PIRLS with Fisher weights): the relative deviance / Newton
        decrement tolerance, the (u, beta) step tolerance of nAGQ = 0, the iteration and
        step-halving caps.
    newton_tol, newton_max_iter, newton_max_halvings: the inner loop of the general
        likelihoods (Newton on u with the observed information): its decrement tolerance
        and caps. The objectives read these defaults; nothing sets them mid-fit.
    """

    check_conv_grad: float = 0.002
    check_conv_hess: float = 1e-6
    boundary_tol: float = 1e-4
    singular_tol: float = 1e-4
    boundary_probe: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)
    boundary_restarts: int = 3
    boundary_gain_tol: float = 1e-7
    stage1_tol: float = 1e-8
    stage1_u_tol: float = 1e-5
    stage1_maxiter: int = 6
    stage2_gtol: float = 1e-4
    stage2_restarts: int = 2
    stage2_restart_grad: float = 1e-2
    pirls_tol: float = 1e-11
    pirls_u_tol: float = 1e-9
    pirls_max_iter: int = 60
    pirls_max_halvings: int = 20
    newton_tol: float = 1e-11
    newton_max_iter: int = 100
    newton_max_halvings: int = 30


DEFAULT_CONTROL = Control()
