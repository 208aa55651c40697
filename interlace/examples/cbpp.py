"""Fit lme4's classic binomial GLMM on the shipped cbpp data and print its summary.

This is the README's first command (``python -m interlace.examples.cbpp``); it is
the same model as R's

    glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
          data = cbpp, family = binomial)

Example
-------
>>> from interlace.examples.cbpp import fit
>>> m = fit()
>>> list(m.fe_params.index)
['Intercept', 'period[T.2]', 'period[T.3]', 'period[T.4]']
"""

from __future__ import annotations

import interlace
import interlace.datasets

FORMULA = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def fit() -> "interlace.GLMMResult":
    """Fit the cbpp model (Laplace, as glmer's default) and return the result."""
    df = interlace.datasets.load("cbpp")
    return interlace.glmer(FORMULA, df, family="binomial")


def main() -> None:
    print(fit().summary())


if __name__ == "__main__":
    main()
