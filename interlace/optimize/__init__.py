"""The optimize stage: two-stage outer optimization and lme4's convergence checks."""

from interlace.optimize.outer import OptResult, optimize_glmm, optimize_lmm

__all__ = ["OptResult", "optimize_glmm", "optimize_lmm"]
