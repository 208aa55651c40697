"""The built-in families, registered through the same hook a third-party plugin uses.

interlace's own ``pyproject.toml`` declares this module as the entry point
``builtin`` of the group ``interlace.families``; the plugin manager also
registers it directly, so it works from a source checkout.

Example
-------
>>> from interlace.plugins import get_registry
>>> get_registry().get("gamma").distribution
'interlace'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interlace.families.binomial import BinomialFamily
from interlace.families.gamma import GammaFamily
from interlace.families.gaussian import GaussianFamily
from interlace.families.inverse_gaussian import InverseGaussianFamily
from interlace.families.poisson import PoissonFamily
from interlace.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from interlace.plugins.registry import FamilyRegistry


@hookimpl
def interlace_register_families(registry: FamilyRegistry) -> None:
    """Register binomial, poisson, gaussian, gamma and inverse_gaussian."""
    # Exponential families (PIRLS engine; numba fast path where fast_path is set).
    registry.add("binomial", BinomialFamily)
    registry.add("poisson", PoissonFamily)
    registry.add("gaussian", GaussianFamily)
    registry.add("gamma", GammaFamily, aliases=("Gamma", "ziGamma"))  # ziGamma: glmmTMB's Gamma with ziformula
    registry.add("inverse_gaussian", InverseGaussianFamily, aliases=("inverse.gaussian",))

    # Non-exponential families (issue 13): glmmTMB's model on the general-likelihood engine.
    from interlace.families.beta import BetaFamily
    from interlace.families.betabinomial import BetaBinomialFamily
    from interlace.families.genpois import GeneralizedPoissonFamily
    from interlace.families.hurdle_poisson import HurdlePoissonFamily
    from interlace.families.negbin1 import NegativeBinomial1Family
    from interlace.families.negbin2 import NegativeBinomial2Family
    from interlace.families.zinb import ZeroInflatedNB2Family
    from interlace.families.zip import ZeroInflatedPoissonFamily
    from interlace.families.zoib import ZeroOneInflatedBetaFamily

    registry.add("negativebinomial", NegativeBinomial2Family, aliases=("nbinom2",))
    registry.add("nbinom1", NegativeBinomial1Family)
    registry.add("beta", BetaFamily)
    registry.add("zip", ZeroInflatedPoissonFamily)
    registry.add("zinb", ZeroInflatedNB2Family)
    registry.add("hurdle_poisson", HurdlePoissonFamily)
    registry.add("zoib", ZeroOneInflatedBetaFamily)
    registry.add("genpois", GeneralizedPoissonFamily)
    registry.add("betabinomial", BetaBinomialFamily)

    # glmmTMB 1.1.5's further families (issue 22), by glmmTMB's names.
    from interlace.families.student_t import StudentTFamily

    from interlace.families.truncated import (
        TruncatedGenpoisFamily,
        TruncatedNB1Family,
        TruncatedNB2Family,
        TruncatedPoissonFamily,
    )

    registry.add("t", StudentTFamily, aliases=("t_family",))
    from interlace.families.tweedie import TweedieFamily

    from interlace.families.ordbeta import OrderedBetaFamily

    registry.add("tweedie", TweedieFamily)
    from interlace.families.compois import CompoisFamily, TruncatedCompoisFamily

    registry.add("ordbeta", OrderedBetaFamily)
    registry.add("compois", CompoisFamily)
    registry.add("truncated_compois", TruncatedCompoisFamily)

    # glmmTMB >= 1.1.7's lognormal (not in 1.1.5): validated against an independent R reference
    from interlace.families.lognormal import LognormalFamily

    registry.add("lognormal", LognormalFamily)
    registry.add("truncated_poisson", TruncatedPoissonFamily)
    registry.add("truncated_nbinom1", TruncatedNB1Family)
    registry.add("truncated_nbinom2", TruncatedNB2Family)
    registry.add("truncated_genpois", TruncatedGenpoisFamily)
