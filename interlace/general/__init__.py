"""The general-likelihood Laplace engine (glmmTMB's model): objective, optimization, result."""
