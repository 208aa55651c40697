"""Inference after the fit: likelihood-ratio tests (anova), Wald, profile and
bootstrap confidence intervals (confint), and lme4's parametric bootstrap."""

from interlace.inference.anova import anova

__all__ = ["anova"]
