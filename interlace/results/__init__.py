"""The result stage: GLMMResult and its construction (lme4's mkMerMod)."""

from interlace.results.glmm_result import GLMMResult

__all__ = ["GLMMResult"]
