"""The plugin manager: loads family plugins once, lazily, and never breaks interlace.

The first lookup builds a pluggy ``PluginManager("interlace")`` and registers the
built-in families module; their names are reserved, so no plugin can replace one
(a clash warns and the built-in wins). A built-in name (``glmer(family="binomial")``)
resolves from there without importing any plugin. The first lookup of another name,
or :func:`get_registry` / ``interlace.families.available()``, reads the entry points
of the group ``interlace.families`` once and calls each plugin's
``interlace_register_families(registry)`` separately, so a plugin that fails (at
import or in its hook, including ``sys.exit()`` and ``KeyboardInterrupt``) only
costs a :class:`PluginWarning` naming it.

Example
-------
>>> from interlace.plugins.manager import get_registry
>>> reg = get_registry()
>>> reg.get("binomial").distribution
'interlace'
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable
from importlib import metadata
from typing import Any

import pluggy

from interlace.plugins import hookspecs
from interlace.plugins.hookspecs import ENTRY_POINT_GROUP, PROJECT_NAME
from interlace.plugins.registry import FamilyEntry, FamilyRegistry, PluginWarning

__all__ = ["get_plugin_manager", "get_registry", "lookup", "register_plugin", "reset", "load_count"]

_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None
_registry: FamilyRegistry | None = None
_dist_of: dict[int, str] = {}
#: How many times the entry points were scanned (tests assert it stays 1).
load_count: int = 0


def _iter_entry_points() -> Iterable[metadata.EntryPoint]:
    """Entry points of the ``interlace.families`` group (patched in tests)."""
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return str(name) if name else f"entry point {ep.name!r}"


#: what a plugin may raise at import or in its hook without ending the user's program:
#: any error, and also sys.exit() (SystemExit) and KeyboardInterrupt raised by the plugin
_CONTAINED = (Exception, SystemExit, KeyboardInterrupt)

_plugins_loaded = False  # the entry points were read (once per process, or per reset())
_loading = False  # an entry-point scan is under way (a plugin importing interlace re-enters)


def _call_hook(pm: pluggy.PluginManager, registry: FamilyRegistry, plugin: Any) -> None:
    """Run one plugin's hook; on error, undo its registrations and warn naming it."""
    name = pm.get_name(plugin) or repr(plugin)
    dist = _dist_of.get(id(plugin), name)
    for impl in pm.hook.interlace_register_families.get_hookimpls():
        if impl.plugin is not plugin:
            continue
        try:
            with registry.providing(dist, name):
                impl.function(registry=registry)
        except _CONTAINED as exc:  # a broken plugin must not break interlace
            warnings.warn(
                f"interlace: family plugin {name!r} ({dist}) failed while registering "
                f"its families and was skipped: {type(exc).__name__}: {exc}",
                PluginWarning,
                stacklevel=4,
            )


def _build_builtins() -> tuple[pluggy.PluginManager, FamilyRegistry]:
    """The plugin manager with only interlace's own families, their names reserved."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    registry = FamilyRegistry()

    # Built-ins first, directly, so they work without an installed distribution;
    # reserving them means no plugin can replace or remove one.
    from interlace.families import builtin

    pm.register(builtin, name="interlace.builtin")
    _dist_of[id(builtin)] = "interlace"
    _call_hook(pm, registry, builtin)
    registry.reserve()
    return pm, registry


def _load_entry_points(pm: pluggy.PluginManager, registry: FamilyRegistry) -> None:
    """Import every entry point of the group once; each failure is one PluginWarning."""
    global load_count
    load_count += 1
    for ep in _iter_entry_points():
        dist = _dist_name(ep)
        try:
            plugin = ep.load()
        except _CONTAINED as exc:
            warnings.warn(
                f"interlace: family plugin {ep.name!r} ({dist}, {ep.value}) failed to load "
                f"and was skipped: {type(exc).__name__}: {exc}",
                PluginWarning,
                stacklevel=4,
            )
            continue
        if pm.is_registered(plugin):  # e.g. the builtin entry point of interlace itself
            continue
        try:
            pm.register(plugin, name=f"{dist}:{ep.name}" if not dist.startswith("entry point") else ep.name)
        except _CONTAINED as exc:
            warnings.warn(
                f"interlace: family plugin {ep.name!r} ({dist}) could not be registered "
                f"and was skipped: {type(exc).__name__}: {exc}",
                PluginWarning,
                stacklevel=4,
            )
            continue
        _dist_of[id(plugin)] = dist
        _call_hook(pm, registry, plugin)


def _ensure_builtins() -> tuple[pluggy.PluginManager, FamilyRegistry]:
    global _pm, _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                _pm, _registry = _build_builtins()
    assert _pm is not None
    return _pm, _registry


def _ensure() -> tuple[pluggy.PluginManager, FamilyRegistry]:
    """The manager and registry with the plugins loaded (once: a plugin that imports
    interlace while it loads sees the registry as built so far, not a second scan)."""
    global _plugins_loaded, _loading
    pm, registry = _ensure_builtins()
    if not _plugins_loaded:
        with _lock:
            if not _plugins_loaded and not _loading:
                _loading = True
                try:
                    _load_entry_points(pm, registry)
                finally:
                    _loading = False
                    _plugins_loaded = True
    return pm, registry


def get_registry() -> FamilyRegistry:
    """The process-wide family registry, loading plugins on first use.

    >>> "poisson" in get_registry()
    True
    """
    return _ensure()[1]


def lookup(name: str) -> FamilyEntry:
    """The registry entry for a family name; a built-in name never imports a plugin.

    Built-in names (and their aliases) are reserved, so they resolve from interlace's own
    families; only another name makes the registry read the installed plugins.

    >>> lookup("binomial").distribution
    'interlace'
    """
    registry = _ensure_builtins()[1]
    if isinstance(name, str) and name in registry:
        return registry.get(name)
    return get_registry().get(name)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide pluggy ``PluginManager("interlace")`` (loads plugins once)."""
    return _ensure()[0]


def register_plugin(plugin: Any, name: str | None = None, distribution: str = "__main__") -> None:
    """Register a plugin object at runtime (no entry point) and run its hook now.

    >>> import types
    >>> from interlace.plugins import hookimpl
    >>> from interlace.families import PoissonFamily
    >>> mod = types.SimpleNamespace()
    >>> mod.interlace_register_families = hookimpl(
    ...     lambda registry: registry.add("my_poisson", PoissonFamily))
    >>> register_plugin(mod, name="my-plugin")
    >>> get_registry().get("my_poisson").distribution
    '__main__'
    """
    pm, registry = _ensure()
    with _lock:
        pm.register(plugin, name=name)
        _dist_of[id(plugin)] = distribution
        _call_hook(pm, registry, plugin)


def reset() -> None:
    """Forget the loaded plugins; the next lookup loads them again (for tests)."""
    global _pm, _registry, _plugins_loaded
    with _lock:
        _pm = None
        _registry = None
        _plugins_loaded = False
        _dist_of.clear()
