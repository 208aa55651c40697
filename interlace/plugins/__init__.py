"""interlace's plugin system (pluggy): family plugins through one entry point.

A plugin is a module (or object) with a function decorated by :data:`hookimpl`
named ``interlace_register_families(registry)``; a distribution exposes it
under the entry-point group ``interlace.families``. The built-in families
register through the same hook (``interlace.families.builtin``).

Example
-------
>>> from interlace.plugins import hookimpl, get_registry
>>> "binomial" in get_registry()
True
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "interlace"
ENTRY_POINT_GROUP = "interlace.families"

#: Marks a plugin's hook implementation: ``@hookimpl def interlace_register_families(registry): ...``
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
#: Marks the hook specifications in :mod:`interlace.plugins.hookspecs`.
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

from interlace.plugins.registry import FamilyRegistry, PluginWarning  # noqa: E402
from interlace.plugins.manager import (  # noqa: E402
    get_plugin_manager,
    get_registry,
    register_plugin,
    reset,
)

__all__ = [
    "PROJECT_NAME",
    "ENTRY_POINT_GROUP",
    "hookimpl",
    "hookspec",
    "FamilyRegistry",
    "PluginWarning",
    "get_plugin_manager",
    "get_registry",
    "register_plugin",
    "reset",
]
