"""FamilyRegistry: family names -> factories, with the distribution providing each.

Example
-------
>>> from interlace.families import PoissonFamily
>>> reg = FamilyRegistry()
>>> reg.add("poisson", PoissonFamily, aliases=("pois",))
>>> reg.create("pois").name
'poisson'
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FamilyRegistry", "FamilyEntry", "PluginWarning"]


class PluginWarning(UserWarning):
    """A family plugin failed to load or conflicted with another; interlace carries on."""


@dataclass(frozen=True)
class FamilyEntry:
    """One registered family."""

    name: str
    factory: Callable[..., Any]
    aliases: tuple[str, ...] = ()
    distribution: str = "interlace"
    plugin: str = ""
    doc: str = field(default="", compare=False)

    def create(self, **params: Any) -> Any:
        """Build the family with ``params`` (e.g. ``link="log"``)."""
        try:
            return self.factory(**params)
        except TypeError as exc:
            raise TypeError(
                f"family {self.name!r} (from {self.distribution!r}) does not accept "
                f"parameters {sorted(params)}: {exc}"
            ) from exc


class FamilyRegistry:
    """Maps family names (and aliases) to factories.

    ``add`` records which distribution provides each family; when called from a
    plugin's hook the distribution defaults to that plugin's. A name that is
    already taken by another distribution is not replaced (a
    :class:`PluginWarning` names both) unless ``replace=True``.

    Example
    -------
    >>> from interlace.families import GammaFamily
    >>> reg = FamilyRegistry()
    >>> reg.add("gamma", GammaFamily, aliases=("Gamma",))
    >>> reg.create("Gamma", link="log").link.name
    'log'
    """

    def __init__(self) -> None:
        self._entries: dict[str, FamilyEntry] = {}
        self._aliases: dict[str, str] = {}
        self._current: tuple[str, str] | None = None
        self._added_now: list[str] = []
        #: names whose entries no plugin may replace or remove (see :meth:`reserve`)
        self._reserved: set[str] = set()

    def reserve(self) -> None:
        """Reserve every name registered so far: later ``add(..., replace=True)`` and
        ``remove`` calls on them are refused with a :class:`PluginWarning`.

        The plugin manager reserves the built-in families before it loads any plugin, so an
        installed package cannot make ``family="binomial"`` mean something else.

        >>> from interlace.families import BinomialFamily, PoissonFamily
        >>> reg = FamilyRegistry()
        >>> reg.add("binomial", BinomialFamily)
        >>> reg.reserve()
        >>> import warnings
        >>> with warnings.catch_warnings(record=True):
        ...     reg.add("binomial", PoissonFamily, replace=True)
        >>> reg.create("binomial").name
        'binomial'
        """
        self._reserved.update(self._entries)

    def _reserved_owner(self, key: str) -> FamilyEntry | None:
        owner = self._lookup_entry(key)
        return owner if owner is not None and owner.name in self._reserved else None

    # ---- registration ----------------------------------------------------------------
    def add(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        aliases: tuple[str, ...] | list[str] = (),
        distribution: str | None = None,
        replace: bool = False,
    ) -> None:
        """Register ``factory(**params) -> family`` under ``name`` (and ``aliases``).

        Parameters
        ----------
        name: the family name used in ``glmer(family=name)`` / ``interlace.family(name)``.
        factory: a class or function returning a family; called with the user's params.
        aliases: other names for the same family.
        distribution: the providing distribution; defaults to the plugin being loaded
            (``"interlace"`` outside a plugin hook).
        replace: overwrite an existing name instead of keeping the first.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"family name must be a non-empty string, got {name!r}")
        if not callable(factory):
            raise TypeError(f"factory for family {name!r} must be callable")
        dist, plugin = self._current or ("interlace", "")
        if distribution is not None:
            dist = distribution
        aliases = tuple(aliases)
        for key in (name, *aliases):
            reserved = self._reserved_owner(key)
            if reserved is not None:
                warnings.warn(
                    f"interlace: family name {key!r} from {dist!r}"
                    f"{f' (plugin {plugin!r})' if plugin else ''} is reserved: it is the "
                    f"built-in family {reserved.name!r} (already provided by "
                    f"{reserved.distribution!r}); keeping the built-in",
                    PluginWarning,
                    stacklevel=2,
                )
                return
            owner = self._lookup_entry(key)
            if owner is not None and not replace:
                warnings.warn(
                    f"interlace: family name {key!r} from {dist!r}"
                    f"{f' (plugin {plugin!r})' if plugin else ''} is already provided by "
                    f"{owner.distribution!r}; keeping the existing one",
                    PluginWarning,
                    stacklevel=2,
                )
                return
        entry = FamilyEntry(
            name=name,
            factory=factory,
            aliases=aliases,
            distribution=dist,
            plugin=plugin,
            doc=(getattr(factory, "__doc__", "") or "").strip().split("\n")[0],
        )
        if replace:
            self.remove(name)
            for a in aliases:
                self._aliases.pop(a, None)
        self._entries[name] = entry
        for a in aliases:
            self._aliases[a] = name
        self._added_now.append(name)

    def remove(self, name: str) -> None:
        """Unregister a family (and its aliases); no error when absent.

        A reserved (built-in) family is not removed: a :class:`PluginWarning` says so.
        """
        if name in self._reserved:
            warnings.warn(f"interlace: the built-in family {name!r} is reserved and was not removed",
                          PluginWarning, stacklevel=2)
            return
        entry = self._entries.pop(name, None)
        if entry is not None:
            for a in entry.aliases:
                if self._aliases.get(a) == name:
                    del self._aliases[a]

    @contextmanager
    def providing(self, distribution: str, plugin: str = "") -> Iterator[None]:
        """Attribute ``add`` calls inside the block to ``distribution``; roll back on error."""
        previous, self._current = self._current, (distribution, plugin)
        added_before = len(self._added_now)
        try:
            yield
        except BaseException:
            for name in self._added_now[added_before:]:
                self.remove(name)
            del self._added_now[added_before:]
            raise
        finally:
            self._current = previous

    # ---- lookup ------------------------------------------------------------------------
    def _lookup_entry(self, name: str) -> FamilyEntry | None:
        if name in self._entries:
            return self._entries[name]
        if name in self._aliases:
            return self._entries[self._aliases[name]]
        # Case-insensitive fallback ("Gamma", "Poisson"), unique matches only.
        low = name.lower()
        hits = {e.name for e in self._entries.values() if e.name.lower() == low} | {
            t for a, t in self._aliases.items() if a.lower() == low
        }
        if len(hits) == 1:
            return self._entries[hits.pop()]
        return None

    def get(self, name: str) -> FamilyEntry:
        """The entry for ``name`` or an alias; ValueError listing the known names.

        The message lists the installed families (built-in ones, then each plugin's with its
        distribution) and, when ``name`` belongs to a known plugin that is not installed, the
        ``pip install`` that provides it.
        """
        entry = self._lookup_entry(name) if isinstance(name, str) else None
        if entry is None:
            raise ValueError(self._unknown_message(name))
        return entry

    def _unknown_message(self, name: object) -> str:
        from interlace.plugins.known import KNOWN_PLUGIN_FAMILIES, install_hint

        msg = f"unknown family {name!r}"
        key = name.strip().lower() if isinstance(name, str) else None
        if key in KNOWN_PLUGIN_FAMILIES:
            msg += (f": it is provided by the plugin {KNOWN_PLUGIN_FAMILIES[key]!r}, which is not "
                    f"installed ({install_hint(KNOWN_PLUGIN_FAMILIES[key])})")
        # built-in (reserved) names first, then each plugin's family with its distribution
        own = [e.name for e in self.entries() if e.name in self._reserved or not self._reserved]
        plugged = [e for e in self.entries() if e.name not in own]
        msg += f"; available families: {', '.join(own)}"
        if plugged:
            msg += "; from plugins: " + ", ".join(f"{e.name} ({e.distribution})" for e in plugged)
        missing = sorted({d for f, d in KNOWN_PLUGIN_FAMILIES.items() if f not in self})
        if missing and key not in KNOWN_PLUGIN_FAMILIES:
            msg += ("; known plugins not installed: "
                    + ", ".join(f"{d} ({', '.join(f for f, dd in sorted(KNOWN_PLUGIN_FAMILIES.items()) if dd == d)})"
                                for d in missing))
        return msg

    def create(self, name: str, **params: Any) -> Any:
        """Build the family ``name`` with ``params`` (e.g. ``link="log"``)."""
        return self.get(name).create(**params)

    def names(self) -> list[str]:
        """Registered family names (aliases excluded), sorted."""
        return sorted(self._entries)

    def entries(self) -> list[FamilyEntry]:
        """All entries, sorted by name."""
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._lookup_entry(name) is not None

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"FamilyRegistry({', '.join(self.names())})"
