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

# the markers live in hookspecs.py, so the built-in families' hook module needs
# nothing of the manager that loads it
from interlace.plugins.hookspecs import ENTRY_POINT_GROUP, PROJECT_NAME, hookimpl, hookspec
from interlace.plugins.manager import (
    get_plugin_manager,
    get_registry,
    register_plugin,
    reset,
)
from interlace.plugins.registry import FamilyRegistry, PluginWarning

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
