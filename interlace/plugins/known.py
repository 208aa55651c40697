"""Family plugins interlace knows about but does not ship: what the unknown-family error names.

The example plugins live in the repository's ``plugins/`` folder, each an installable
distribution; installing one adds its families through the ``interlace.families`` entry point.

Example
-------
>>> KNOWN_PLUGIN_FAMILIES["skellam"]
'interlace-skellam'
>>> install_hint("interlace-skellam")
'pip install ./plugins/interlace-skellam from the root of an interlace checkout'
"""

from __future__ import annotations

__all__ = ["KNOWN_PLUGIN_FAMILIES", "install_hint"]

#: family name (lower case) -> the distribution in ``plugins/`` that provides it
KNOWN_PLUGIN_FAMILIES: dict[str, str] = {
    "skellam": "interlace-skellam",
    "nbp": "interlace-nbp",
    "delaporte": "interlace-delaporte",
}


def install_hint(distribution: str) -> str:
    """The command that installs one of the known plugins."""
    return f"pip install ./plugins/{distribution} from the root of an interlace checkout"
