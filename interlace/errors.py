"""The warnings and errors a fit reports, and the one rule that turns an
optimizer's messages into warnings. Imports nothing from the package.

Example
-------
>>> issubclass(FitError, ValueError), issubclass(SingularFitWarning, UserWarning)
(True, True)
"""

from __future__ import annotations

import warnings

__all__ = ["ConvergenceWarning", "SingularFitWarning", "FitError", "emit_warnings"]


class ConvergenceWarning(UserWarning):
    """lme4-style convergence trouble (gradient/Hessian checks, PIRLS)."""


class SingularFitWarning(UserWarning):
    """A variance component on the boundary (lme4's isSingular)."""


class FitError(ValueError):
    """The numerical fit broke down (PIRLS could not reduce the deviance, a
    system lost positive definiteness): the data cannot be fitted as given.
    lme4 stops on the same data with "pwrssUpdate did not converge",
    "PIRLS step-halvings failed" or "Downdated VtV is not positive definite"."""


def emit_warnings(res, stacklevel: int = 3) -> None:
    """Warn each optimizer message of ``res`` once: a boundary fit as
    :class:`SingularFitWarning`, anything else as :class:`ConvergenceWarning`
    (messages already warned while parsing are skipped)."""
    for msg in res.optinfo.get("messages", []):
        if msg in getattr(res.model_frame, "messages", []):
            continue  # already warned while parsing
        if msg.startswith("boundary (singular) fit"):  # not "Hessian is numerically singular"
            warnings.warn(msg, SingularFitWarning, stacklevel=stacklevel)
        else:
            warnings.warn(msg, ConvergenceWarning, stacklevel=stacklevel)
