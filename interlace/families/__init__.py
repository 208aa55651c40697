"""GLMM families: links, variance functions, the GLMMFamily protocol and the registry.

The plugin base classes are exported here: :class:`ExponentialFamily` (a
link and a variance function, PIRLS with Fisher weights) and
:class:`LikelihoodFamily` (a log-likelihood and its derivatives in eta, Newton
with the observed information), both carrying :class:`FamilyTraits` (what the
rest of the package asks a family).

Example
-------
>>> import interlace.families as fam
>>> fam.get_family("binomial").link.name
'logit'
>>> fam.family("gamma", link="log").link.name
'log'
>>> "poisson" in fam.available()
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from interlace.families.base import (
    ExponentialFamily,
    FamilyTraits,
    GLMMFamily,
    ProtocolFamilyAdapter,
    SupportsEtaDerivatives,
    SupportsFastPath,
    SupportsLogLik,
    SupportsParams,
    SupportsValidation,
)
from interlace.families.binomial import BinomialFamily
from interlace.families.gamma import GammaFamily
from interlace.families.gaussian import GaussianFamily
from interlace.families.inverse_gaussian import InverseGaussianFamily
from interlace.families.likelihood import Derivs, LikelihoodFamily, Parts, chain_parts, hurdle, zero_inflate
from interlace.families.links import (
    CauchitLink,
    CloglogLink,
    IdentityLink,
    InverseLink,
    InverseSquaredLink,
    Link,
    LogitLink,
    LogLink,
    ProbitLink,
    SqrtLink,
    available_links,
    get_link,
)
from interlace.families.poisson import PoissonFamily
from interlace.families.variance import (
    BinomialVariance,
    ConstantVariance,
    MuCubedVariance,
    MuSquaredVariance,
    MuVariance,
    NegBinVariance,
    PowerVariance,
    VarianceFunction,
)

__all__ = [
    "GLMMFamily",
    "SupportsLogLik",
    "SupportsEtaDerivatives",
    "SupportsParams",
    "SupportsValidation",
    "SupportsFastPath",
    "FamilyTraits",
    "ExponentialFamily",
    "LikelihoodFamily",
    "Parts",
    "Derivs",
    "zero_inflate",
    "hurdle",
    "chain_parts",
    "ProtocolFamilyAdapter",
    "BinomialFamily",
    "PoissonFamily",
    "GaussianFamily",
    "GammaFamily",
    "InverseGaussianFamily",
    "Link",
    "LogitLink",
    "ProbitLink",
    "CauchitLink",
    "CloglogLink",
    "LogLink",
    "IdentityLink",
    "InverseLink",
    "InverseSquaredLink",
    "SqrtLink",
    "get_link",
    "available_links",
    "VarianceFunction",
    "ConstantVariance",
    "MuVariance",
    "BinomialVariance",
    "MuSquaredVariance",
    "MuCubedVariance",
    "NegBinVariance",
    "PowerVariance",
    "get_family",
    "family",
    "available",
]

_ENGINE_ATTRS = ("linkinv", "mu_eta", "variance", "dev_resids", "loglik", "initialize")


def get_family(spec: Any, **params: Any) -> ExponentialFamily | GLMMFamily:
    """Resolve ``spec`` (a registered name, a family instance or class) to a family.

    Names are looked up in the plugin registry (built-ins and installed
    plugins); ``params`` go to the family's constructor (``link="probit"``).
    An instance is returned as is when it has the engine's interface
    (``ExponentialFamily`` and subclasses); a bare :class:`GLMMFamily`
    object is wrapped in :class:`ProtocolFamilyAdapter`.

    Raises
    ------
    ValueError: unknown name (the message lists the available ones).
    TypeError: not a name or a family; params given with an instance.

    Example
    -------
    >>> get_family("binomial", link="probit").fast_path
    ('binomial', 'probit')
    >>> get_family(PoissonFamily()).name
    'poisson'
    """
    if isinstance(spec, str):
        from interlace.plugins.manager import lookup

        return lookup(spec).create(**params)
    if isinstance(spec, type):
        return get_family(spec(**params))
    if params:
        raise TypeError(
            f"family parameters {sorted(params)} can only be given with a family name, "
            f"not with an instance of {type(spec).__name__}"
        )
    if isinstance(spec, ExponentialFamily):
        return spec
    if all(hasattr(spec, a) for a in _ENGINE_ATTRS + ("name", "link", "fast_path")):
        return spec  # a foreign family with the full engine interface
    if isinstance(spec, GLMMFamily):
        return ProtocolFamilyAdapter(spec)
    missing = [a for a in ("name", "link", "linkinv", "mu_eta", "variance", "dev_resids") if not hasattr(spec, a)]
    raise TypeError(
        f"family must be a family name or an object implementing GLMMFamily; "
        f"{type(spec).__name__} lacks {', '.join(missing)}"
    )


def family(name: str, **params: Any) -> ExponentialFamily | GLMMFamily:
    """Build a registered family by name: ``interlace.family("gamma", link="log")``.

    >>> family("poisson").link.name
    'log'
    """
    if not isinstance(name, str):
        raise TypeError(f"family name must be a string, got {type(name).__name__}")
    return get_family(name, **params)


def available(as_frame: bool = False) -> dict[str, str] | pd.DataFrame:
    """Registered family names -> providing distribution.

    With ``as_frame=True``, a pandas DataFrame (index ``name``; columns
    ``distribution``, ``aliases``, ``plugin``, ``description``).

    >>> available()["binomial"]
    'interlace'
    """
    from interlace.plugins.manager import get_registry

    entries = get_registry().entries()
    if not as_frame:
        return {e.name: e.distribution for e in entries}
    import pandas as pd

    return pd.DataFrame(
        {
            "distribution": [e.distribution for e in entries],
            "aliases": [", ".join(e.aliases) for e in entries],
            "plugin": [e.plugin for e in entries],
            "description": [e.doc for e in entries],
        },
        index=pd.Index([e.name for e in entries], name="name"),
    )
