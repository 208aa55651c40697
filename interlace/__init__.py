"""interlace: generalized linear mixed models with lme4's numbers, faster."""

__version__ = "0.1.0"

from interlace.families import (  # noqa: E402
    BinomialFamily,
    ExponentialFamily,
    GammaFamily,
    GaussianFamily,
    GLMMFamily,
    InverseGaussianFamily,
    PoissonFamily,
    family,
)

from interlace import datasets  # noqa: E402,F401
from interlace.api import ConvergenceWarning, SingularFitWarning, glmer  # noqa: E402,F401
from interlace.results import GLMMResult  # noqa: E402,F401
