"""Progress bars for long post-fit work (bootstrap, profile confidence
intervals, simulate), through tqdm's ``tqdm.auto``: a text bar in a terminal,
a widget in Jupyter.

``progress=None`` (the default everywhere) shows a bar when someone is
watching: stderr is a terminal or the code runs in a Jupyter kernel;
``True`` / ``False`` force it on or off. Without tqdm installed no bar is
shown (the work is the same).

Example
-------
>>> with progress_bar(3, "demo", enabled=False) as bar:
...     for _ in range(3):
...         bar.update(1)
>>> bar.n
3
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar", "wants_progress"]


def _in_notebook() -> bool:
    ip = sys.modules.get("IPython")
    if ip is None:
        return False
    try:
        shell = ip.get_ipython()
    except Exception:  # pragma: no cover - IPython present but not running
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def wants_progress(enabled: bool | None) -> bool:
    """Resolve ``progress=None`` to "show when stderr is a terminal or in Jupyter"."""
    if enabled is not None:
        return bool(enabled)
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty or _in_notebook()


class _Silent:
    """The bar's interface without output (counts updates, as tqdm's ``n``)."""

    def __init__(self, total: int):
        self.total = total
        self.n = 0

    def update(self, k: int = 1) -> None:
        self.n += k

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(total: int, desc: str, enabled: bool | None = None, unit: str = "it"):
    """A tqdm.auto bar of ``total`` steps (or a silent stand-in), usable as a context manager."""
    if not wants_progress(enabled):
        return _Silent(total)
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency; a broken install should still compute
        return _Silent(total)
    return tqdm(total=total, desc=desc, unit=unit, leave=True, file=sys.stderr)
