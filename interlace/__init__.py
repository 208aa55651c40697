"""interlace: generalized linear mixed models with lme4's numbers, faster."""

__version__ = "0.1.0"
