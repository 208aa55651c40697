"""Hook specifications of interlace's plugin system.

A family plugin implements :func:`interlace_register_families` and adds its
families to the registry it is handed.

Example
-------
>>> from interlace.plugins import hookimpl
>>> from interlace.families import PoissonFamily
>>> @hookimpl
... def interlace_register_families(registry):
...     registry.add("poisson_sqrt", lambda: PoissonFamily(link="sqrt"))

The example plugins of the repository's ``plugins/`` folder (``interlace-skellam``,
``interlace-nbp``, ``interlace-delaporte``) each implement this hook in one module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

PROJECT_NAME = "interlace"
ENTRY_POINT_GROUP = "interlace.families"

#: Marks a plugin's hook implementation: ``@hookimpl def interlace_register_families(registry): ...``
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
#: Marks the hook specifications below.
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

if TYPE_CHECKING:
    from interlace.plugins.registry import FamilyRegistry


@hookspec
def interlace_register_families(registry: FamilyRegistry) -> None:
    """Add this plugin's families to ``registry``.

    Called once per process, the first time interlace needs a family by name.
    Call ``registry.add(name, factory, aliases=(...))`` for each family, where
    ``factory(**params)`` returns an object satisfying
    :class:`interlace.families.GLMMFamily` (usually an
    :class:`~interlace.families.ExponentialFamily` subclass). ``params`` are
    the keyword arguments of ``interlace.family(name, **params)``.
    The providing distribution is recorded automatically.

    Parameters
    ----------
    registry:
        The shared :class:`~interlace.plugins.registry.FamilyRegistry`.
    """
