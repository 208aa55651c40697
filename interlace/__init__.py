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

from interlace.families.beta import BetaFamily  # noqa: E402
from interlace.families.hurdle_poisson import HurdlePoissonFamily  # noqa: E402
from interlace.families.negbin1 import NegativeBinomial1Family  # noqa: E402
from interlace.families.negbin2 import NegativeBinomial2Family  # noqa: E402
from interlace.families.zinb import ZeroInflatedNB2Family  # noqa: E402
from interlace.families.zip import ZeroInflatedPoissonFamily  # noqa: E402
from interlace.families.zoib import ZeroOneInflatedBetaFamily  # noqa: E402

from interlace import datasets  # noqa: E402,F401
from interlace.api import ConvergenceWarning, FitError, SingularFitWarning, glmer  # noqa: E402,F401
from interlace.results import GLMMResult  # noqa: E402,F401
from interlace.inference.anova import anova  # noqa: E402,F401
