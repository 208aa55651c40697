"""Runnable examples: ``python -m interlace.examples.<name>`` fits a shipped data set.

Example
-------
``python -m interlace.examples.cbpp`` fits lme4's classic binomial GLMM on the
cbpp data and prints the summary.
"""
