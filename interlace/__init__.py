"""interlace: generalized linear mixed models with lme4's numbers, faster.

``import interlace`` is cheap: it loads no numba, pandas or scipy. Each public name below is
imported the first time it is used (PEP 562 module ``__getattr__``), so a script pays for the
fitting machinery only when it fits, and ``interlace.datasets`` / ``interlace.families`` /
any other submodule is one attribute access away.

Example
-------
>>> import interlace
>>> df = interlace.datasets.load("cbpp")
>>> m = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                     df, family="binomial")
>>> round(m.llf, 2)
-92.03
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "glmer": "interlace.api",
    "FitError": "interlace.api",
    "ConvergenceWarning": "interlace.api",
    "SingularFitWarning": "interlace.api",
    "GLMMResult": "interlace.results",
    "anova": "interlace.inference.anova",
    "lmer": "interlace.lmm",
    "fit": "interlace.lmm",
    "ranova": "interlace.inference.lmertest",
    "numFactor": "interlace.formula.numfactor",
    "family": "interlace.families",
    "GLMMFamily": "interlace.families",
    "ExponentialFamily": "interlace.families",
    "LikelihoodFamily": "interlace.families",
    "FamilyTraits": "interlace.families",
    "BinomialFamily": "interlace.families",
    "PoissonFamily": "interlace.families",
    "GaussianFamily": "interlace.families",
    "GammaFamily": "interlace.families",
    "InverseGaussianFamily": "interlace.families",
    "BetaFamily": "interlace.families.beta",
    "HurdlePoissonFamily": "interlace.families.hurdle_poisson",
    "NegativeBinomial1Family": "interlace.families.negbin1",
    "NegativeBinomial2Family": "interlace.families.negbin2",
    "ZeroInflatedNB2Family": "interlace.families.zinb",
    "ZeroInflatedPoissonFamily": "interlace.families.zip",
    "ZeroOneInflatedBetaFamily": "interlace.families.zoib",
}

__all__ = sorted(_LAZY) + ["datasets", "families", "__version__"]

if TYPE_CHECKING:  # type checkers and the API docs see the real objects
    from interlace import datasets, families
    from interlace.api import ConvergenceWarning, FitError, SingularFitWarning, glmer
    from interlace.families import (
        BinomialFamily,
        ExponentialFamily,
        FamilyTraits,
        GammaFamily,
        GaussianFamily,
        GLMMFamily,
        InverseGaussianFamily,
        LikelihoodFamily,
        PoissonFamily,
        family,
    )
    from interlace.families.beta import BetaFamily
    from interlace.families.hurdle_poisson import HurdlePoissonFamily
    from interlace.families.negbin1 import NegativeBinomial1Family
    from interlace.families.negbin2 import NegativeBinomial2Family
    from interlace.families.zinb import ZeroInflatedNB2Family
    from interlace.families.zip import ZeroInflatedPoissonFamily
    from interlace.families.zoib import ZeroOneInflatedBetaFamily
    from interlace.inference.anova import anova
    from interlace.formula.numfactor import numFactor
    from interlace.inference.lmertest import ranova
    from interlace.lmm import fit, lmer
    from interlace.results import GLMMResult


def __getattr__(name: str) -> Any:
    """Import a public name (or a submodule such as ``datasets``) on first access."""
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    else:
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise  # a submodule that exists but fails to import: show the real error
            raise AttributeError(f"module 'interlace' has no attribute {name!r}") from None
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
